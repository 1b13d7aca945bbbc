//! Callback hooks (the Agent SDK's hook callbacks): selected by the same matchers as command
//! hooks, run alongside them, and merged with the same rules; failures, timeouts and
//! cancellation as the user would see them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use keel_config::HookMatcher;
use keel_policy::hooks::{
    CallbackHook, CallbackReply, HookContext, HookEnv, HookEvent, HookFailure, HookOutcome, HookSet,
};
use keel_policy::{Decision, PermissionMode};
use serde_json::{Value, json};

fn context(dir: &std::path::Path) -> HookContext {
    HookContext {
        session_id: "session-1".into(),
        transcript_path: dir.join("t.jsonl"),
        cwd: dir.to_path_buf(),
        permission_mode: PermissionMode::Default,
    }
}

fn callback(id: &str) -> CallbackHook {
    CallbackHook {
        id: id.into(),
        timeout: Duration::from_secs(5),
        block_on_failure: false,
    }
}

/// A caller that answers each callback id from `answers` and records what it was asked.
fn answering(
    answers: BTreeMap<&'static str, CallbackReply>,
    asked: Arc<Mutex<Vec<(String, Value)>>>,
) -> impl Fn(CallbackHook, Value) -> std::pin::Pin<Box<dyn Future<Output = CallbackReply> + Send>> {
    move |hook, input| {
        asked.lock().unwrap().push((hook.id.clone(), input));
        let answer = answers
            .get(hook.id.as_str())
            .cloned()
            .unwrap_or(CallbackReply::Output(json!({})));
        Box::pin(async move { answer })
    }
}

#[tokio::test]
async fn callbacks_are_selected_by_matcher_and_see_the_hook_input() {
    let dir = tempfile::tempdir().unwrap();
    let mut set = HookSet::default();
    set.add_callbacks(HookEvent::PreToolUse, "Bash", vec![callback("hook_0")])
        .unwrap();
    set.add_callbacks(
        HookEvent::PreToolUse,
        "Edit|Write",
        vec![callback("hook_1")],
    )
    .unwrap();
    assert!(set.has(HookEvent::PreToolUse));
    assert!(!set.has(HookEvent::PostToolUse));
    let asked = Arc::new(Mutex::new(Vec::new()));
    let input = context(dir.path()).pre_tool_use("Bash", &json!({"command": "ls"}), "toolu_9");
    let outcome = set
        .run_with(
            &input,
            &HookEnv::new(dir.path()),
            answering(BTreeMap::new(), asked.clone()),
        )
        .await;
    assert_eq!(outcome.ran, 1);
    assert!(outcome.is_noop());
    let asked = asked.lock().unwrap();
    assert_eq!(asked.len(), 1);
    assert_eq!(asked[0].0, "hook_0");
    assert_eq!(asked[0].1["tool_name"], "Bash");
    assert_eq!(asked[0].1["tool_use_id"], "toolu_9");
    assert_eq!(asked[0].1["hook_event_name"], "PreToolUse");
}

#[tokio::test]
async fn a_callbacks_deny_outweighs_a_commands_allow() {
    let dir = tempfile::tempdir().unwrap();
    let settings: BTreeMap<String, Vec<HookMatcher>> = serde_json::from_value(json!({
        "PreToolUse": [{"matcher": "Bash", "hooks": [{"type": "command",
            "command": "echo '{\"hookSpecificOutput\":{\"hookEventName\":\"PreToolUse\",\"permissionDecision\":\"allow\"}}'"}]}]
    }))
    .unwrap();
    let (mut set, _) = HookSet::from_settings(&settings, false);
    set.add_callbacks(HookEvent::PreToolUse, "", vec![callback("hook_0")])
        .unwrap();
    let answers = BTreeMap::from([(
        "hook_0",
        CallbackReply::Output(json!({"hookSpecificOutput": {
            "hookEventName": "PreToolUse",
            "permissionDecision": "deny",
            "permissionDecisionReason": "not on Fridays",
        }})),
    )]);
    let input = context(dir.path()).pre_tool_use("Bash", &json!({"command": "ls"}), "t");
    let outcome = set
        .run_with(
            &input,
            &HookEnv::new(dir.path()),
            answering(answers, Arc::default()),
        )
        .await;
    assert_eq!(outcome.ran, 2);
    assert_eq!(outcome.permission.unwrap().decision, Decision::Deny);
    assert_eq!(outcome.blocked.as_deref(), Some("not on Fridays"));
}

#[tokio::test]
async fn disable_all_hooks_leaves_callbacks_running() {
    let dir = tempfile::tempdir().unwrap();
    let (mut set, _) = HookSet::from_settings(&BTreeMap::new(), true);
    set.add_callbacks(HookEvent::UserPromptSubmit, "", vec![callback("hook_0")])
        .unwrap();
    let answers = BTreeMap::from([(
        "hook_0",
        CallbackReply::Output(json!({"hookSpecificOutput": {
            "hookEventName": "UserPromptSubmit",
            "additionalContext": "the user prefers tabs",
        }})),
    )]);
    let input = context(dir.path()).user_prompt_submit("hi");
    let outcome = set
        .run_with(
            &input,
            &HookEnv::new(dir.path()),
            answering(answers, Arc::default()),
        )
        .await;
    assert_eq!(outcome.additional_context, ["the user prefers tabs"]);
}

#[tokio::test]
async fn failures_are_reported_and_block_only_when_the_matcher_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let input = context(dir.path()).pre_tool_use("Bash", &json!({"command": "ls"}), "t");
    for block_on_failure in [false, true] {
        let mut set = HookSet::default();
        let hook = CallbackHook {
            block_on_failure,
            ..callback("hook_0")
        };
        set.add_callbacks(HookEvent::PreToolUse, "", vec![hook])
            .unwrap();
        let answers = BTreeMap::from([(
            "hook_0",
            CallbackReply::Failed("ValueError: bad input".into()),
        )]);
        let outcome = set
            .run_with(
                &input,
                &HookEnv::new(dir.path()),
                answering(answers, Arc::default()),
            )
            .await;
        assert_eq!(outcome.errors.len(), 1);
        assert_eq!(
            outcome.errors[0].failure,
            HookFailure::Callback("ValueError: bad input".into())
        );
        assert!(outcome.notices()[0].contains("callback hook_0"));
        if block_on_failure {
            let reason = outcome.blocked.unwrap();
            assert!(reason.contains("ValueError: bad input"), "{reason}");
            assert_eq!(outcome.permission.unwrap().decision, Decision::Deny);
        } else {
            assert!(outcome.blocked.is_none() && outcome.permission.is_none());
        }
    }
}

#[tokio::test]
async fn an_unusable_answer_counts_as_a_failure() {
    let dir = tempfile::tempdir().unwrap();
    let mut set = HookSet::default();
    let hook = CallbackHook {
        block_on_failure: true,
        ..callback("hook_0")
    };
    set.add_callbacks(HookEvent::PreToolUse, "", vec![hook])
        .unwrap();
    let answers = BTreeMap::from([(
        "hook_0",
        CallbackReply::Output(json!({"hookSpecificOutput": {
            "hookEventName": "PreToolUse", "permissionDecision": "Deny"}})),
    )]);
    let input = context(dir.path()).pre_tool_use("Bash", &json!({}), "t");
    let outcome = set
        .run_with(
            &input,
            &HookEnv::new(dir.path()),
            answering(answers, Arc::default()),
        )
        .await;
    assert!(matches!(
        &outcome.errors[0].failure,
        HookFailure::InvalidOutput(why) if why.contains("permissionDecision")
    ));
    assert!(outcome.blocked.is_some());
}

#[tokio::test]
async fn a_silent_callback_times_out_and_an_interrupt_cancels_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut set = HookSet::default();
    let hook = CallbackHook {
        timeout: Duration::from_millis(100),
        ..callback("hook_0")
    };
    set.add_callbacks(HookEvent::Stop, "", vec![hook]).unwrap();
    let never = |_: CallbackHook, _: Value| std::future::pending::<CallbackReply>();
    let input = context(dir.path()).stop(false);
    let outcome = set.run_with(&input, &HookEnv::new(dir.path()), never).await;
    assert!(matches!(
        &outcome.errors[0].failure,
        HookFailure::Callback(why) if why.contains("did not answer within 0.1 s")
    ));
    // Stop ignores blocking on failure, and a failure without it never blocks anyway.
    assert!(outcome.blocked.is_none());

    let env = HookEnv::new(dir.path());
    env.cancel.cancel();
    let outcome = set.run_with(&input, &env, never).await;
    assert_eq!(outcome.errors[0].failure, HookFailure::Cancelled);
}

#[test]
fn an_answer_reads_like_a_commands_json_stdout() {
    let outcome = HookOutcome::from_output(
        HookEvent::Stop,
        "callback hook_0",
        &json!({"decision": "block", "reason": "tests still fail", "continue": true}),
    );
    assert_eq!(outcome.blocked.as_deref(), Some("tests still fail"));
    let outcome = HookOutcome::from_output(
        HookEvent::PostToolUse,
        "callback hook_0",
        &json!({"continue": false, "stopReason": "enough", "systemMessage": "stopping"}),
    );
    assert_eq!(outcome.stop.unwrap().reason.as_deref(), Some("enough"));
    assert_eq!(outcome.system_messages, ["stopping"]);
    // An asynchronous callback has no say.
    assert!(
        HookOutcome::from_output(HookEvent::PreToolUse, "c", &json!({"async": true})).is_noop()
    );
    let invalid = HookOutcome::from_output(HookEvent::PreToolUse, "c", &json!(null));
    assert!(matches!(
        &invalid.errors[0].failure,
        HookFailure::InvalidOutput(why) if why.contains("JSON object")
    ));
}

#[test]
fn a_broken_matcher_is_refused_with_the_fix() {
    let mut set = HookSet::default();
    let problem = set
        .add_callbacks(HookEvent::PreToolUse, "Edit(", vec![callback("hook_0")])
        .unwrap_err();
    assert!(
        problem.contains("Edit(") && problem.contains("Edit|Write"),
        "{problem}"
    );
    assert!(set.list().is_empty());
    set.add_callbacks(HookEvent::PreToolUse, "Bash", vec![callback("hook_0")])
        .unwrap();
    assert_eq!(set.list()[0].command, "callback hook_0");
}
