//! Hooks run as real shell commands and scripts in a temp directory; each test checks what
//! the engine would see in the merged outcome (or what the hook saw on stdin).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use keel_config::HookMatcher;
use keel_policy::hooks::{
    CompactTrigger, HookContext, HookEnv, HookEvent, HookFailure, HookInput, HookOutcome, HookSet,
    SessionEndReason, SessionStartSource,
};
use keel_policy::{Decision, PermissionMode};
use serde_json::{Value, json};

fn settings(value: Value) -> BTreeMap<String, Vec<HookMatcher>> {
    serde_json::from_value(value).unwrap()
}

/// Compiles hooks that must all be valid.
fn hook_set(value: Value) -> HookSet {
    let (set, warnings) = HookSet::from_settings(&settings(value), false);
    assert!(warnings.is_empty(), "{warnings:?}");
    set
}

/// One hook per event: `{ "Event": [{ "matcher": m, "hooks": [command] }] }`.
fn one(event: &str, matcher: &str, command: &str) -> Value {
    json!({ event: [{ "matcher": matcher, "hooks": [{ "type": "command", "command": command }] }] })
}

fn context(dir: &Path) -> HookContext {
    HookContext {
        session_id: "session-1".into(),
        transcript_path: dir.join("transcript.jsonl"),
        cwd: dir.to_path_buf(),
        permission_mode: PermissionMode::AcceptEdits,
    }
}

fn env(dir: &Path) -> HookEnv {
    let mut env = HookEnv::new(dir);
    env.env.insert("HOOK_DIR".into(), dir.display().to_string());
    env
}

/// Writes an executable script into `dir`.
fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt as _;
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/bash\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn pre_tool_use(dir: &Path, tool: &str, input: Value) -> HookInput {
    context(dir).pre_tool_use(tool, &input, "toolu_01")
}

async fn run(set: &HookSet, input: &HookInput, dir: &Path) -> HookOutcome {
    set.run(input, &env(dir)).await
}

#[tokio::test]
async fn every_event_input_reaches_the_hook_with_claude_code_field_names() {
    let dir = tempfile::tempdir().unwrap();
    let record = script(
        dir.path(),
        "record.sh",
        r#"cat >> "$HOOK_DIR/record.jsonl"; echo >> "$HOOK_DIR/record.jsonl"
printf '%s|%s|%s\n' "$CLAUDE_PROJECT_DIR" "$KEEL_PROJECT_DIR" "$PWD" >> "$HOOK_DIR/env.txt""#,
    );
    let command = record.display().to_string();
    let all: serde_json::Map<String, Value> = HookEvent::ALL
        .iter()
        .map(|e| {
            (
                e.as_str().to_string(),
                json!([{ "hooks": [{ "type": "command", "command": command }] }]),
            )
        })
        .collect();
    let set = hook_set(Value::Object(all));
    let ctx = context(dir.path());
    let inputs = [
        ctx.pre_tool_use("Bash", &json!({ "command": "ls" }), "toolu_01"),
        ctx.post_tool_use(
            "Bash",
            &json!({ "command": "ls" }),
            &json!({ "stdout": "a\n", "stderr": "", "interrupted": false }),
            "toolu_01",
        ),
        ctx.user_prompt_submit("fix the bug"),
        ctx.notification(
            "keel needs your permission to use Bash",
            "permission_prompt",
        ),
        ctx.stop(false),
        ctx.subagent_stop(true),
        ctx.pre_compact(CompactTrigger::Manual, Some("keep the API notes")),
        ctx.session_start(SessionStartSource::Resume),
        ctx.session_end(SessionEndReason::PromptInputExit),
    ];
    for input in &inputs {
        let outcome = run(&set, input, dir.path()).await;
        assert_eq!(outcome.ran, 1, "{:?}", input.event());
        assert!(outcome.is_noop(), "{outcome:?}");
    }

    let recorded: Vec<Value> = std::fs::read_to_string(dir.path().join("record.jsonl"))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(recorded.len(), 9);
    let cwd = dir.path().display().to_string();
    let transcript = dir.path().join("transcript.jsonl").display().to_string();
    for (seen, event) in recorded.iter().zip(HookEvent::ALL) {
        assert_eq!(seen["hook_event_name"], event.as_str());
        assert_eq!(seen["session_id"], "session-1");
        assert_eq!(seen["transcript_path"], transcript.as_str());
        assert_eq!(seen["cwd"], cwd.as_str());
        assert_eq!(seen["permission_mode"], "acceptEdits");
    }
    let strip = |v: &Value| {
        let mut v = v.clone();
        for key in [
            "hook_event_name",
            "session_id",
            "transcript_path",
            "cwd",
            "permission_mode",
        ] {
            v.as_object_mut().unwrap().remove(key);
        }
        v
    };
    let expected = [
        json!({ "tool_name": "Bash", "tool_input": { "command": "ls" }, "tool_use_id": "toolu_01" }),
        json!({
            "tool_name": "Bash",
            "tool_input": { "command": "ls" },
            "tool_response": { "stdout": "a\n", "stderr": "", "interrupted": false },
            "tool_use_id": "toolu_01",
        }),
        json!({ "prompt": "fix the bug" }),
        json!({
            "message": "keel needs your permission to use Bash",
            "notification_type": "permission_prompt",
        }),
        json!({ "stop_hook_active": false }),
        json!({ "stop_hook_active": true }),
        json!({ "trigger": "manual", "custom_instructions": "keep the API notes" }),
        json!({ "source": "resume" }),
        json!({ "reason": "prompt_input_exit" }),
    ];
    for ((seen, want), event) in recorded.iter().zip(expected).zip(HookEvent::ALL) {
        assert_eq!(strip(seen), want, "{event}");
    }

    // The project directory is exported under both names, and hooks run in the cwd.
    let env_lines = std::fs::read_to_string(dir.path().join("env.txt")).unwrap();
    let canonical = dir.path().canonicalize().unwrap().display().to_string();
    for line in env_lines.lines() {
        assert_eq!(line, format!("{cwd}|{cwd}|{canonical}"));
    }
}

#[tokio::test]
async fn exit_code_2_blocks_with_stderr_as_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let command = "echo 'rm is not allowed here' >&2; exit 2";

    let set = hook_set(one("PreToolUse", "Bash", command));
    let outcome = run(
        &set,
        &pre_tool_use(dir.path(), "Bash", json!({"command": "rm -rf x"})),
        dir.path(),
    )
    .await;
    assert_eq!(outcome.blocked.as_deref(), Some("rm is not allowed here"));
    let permission = outcome.permission.unwrap();
    assert_eq!(permission.decision, Decision::Deny);
    assert_eq!(permission.reason.as_deref(), Some("rm is not allowed here"));
    assert!(outcome.errors.is_empty());

    for (event, input) in [
        (
            "UserPromptSubmit",
            context(dir.path()).user_prompt_submit("hi"),
        ),
        ("Stop", context(dir.path()).stop(false)),
        ("SubagentStop", context(dir.path()).subagent_stop(false)),
        (
            "PostToolUse",
            context(dir.path()).post_tool_use("Bash", &json!({}), &json!({}), "t"),
        ),
    ] {
        let set = hook_set(one(event, "", command));
        let outcome = run(&set, &input, dir.path()).await;
        assert_eq!(
            outcome.blocked.as_deref(),
            Some("rm is not allowed here"),
            "{event}"
        );
        assert_eq!(outcome.permission, None, "{event}");
    }

    // Where nothing can be blocked, exit 2 is an error shown to the user.
    let set = hook_set(one("Notification", "", command));
    let input = context(dir.path()).notification("hello", "idle_prompt");
    let outcome = run(&set, &input, dir.path()).await;
    assert_eq!(outcome.blocked, None);
    assert_eq!(outcome.errors.len(), 1);
    assert_eq!(outcome.errors[0].failure, HookFailure::Exit(2));
    assert_eq!(outcome.errors[0].stderr, "rm is not allowed here");
}

#[tokio::test]
async fn json_permission_decision_deny_carries_its_reason() {
    let dir = tempfile::tempdir().unwrap();
    let hook = script(
        dir.path(),
        "deny.sh",
        r#"cat > /dev/null
cat <<'EOF'
{"hookSpecificOutput": {"hookEventName": "PreToolUse", "permissionDecision": "deny",
  "permissionDecisionReason": "secrets are off limits"}, "systemMessage": "blocked a read"}
EOF"#,
    );
    let set = hook_set(one("PreToolUse", "Read", &hook.display().to_string()));
    let input = pre_tool_use(dir.path(), "Read", json!({ "file_path": ".env" }));
    let outcome = run(&set, &input, dir.path()).await;
    let permission = outcome.permission.clone().unwrap();
    assert_eq!(permission.decision, Decision::Deny);
    assert_eq!(permission.reason.as_deref(), Some("secrets are off limits"));
    assert_eq!(outcome.blocked.as_deref(), Some("secrets are off limits"));
    assert_eq!(outcome.system_messages, ["blocked a read"]);
    assert_eq!(outcome.notices(), ["blocked a read"]);
    assert!(outcome.errors.is_empty());
}

#[tokio::test]
async fn deny_beats_ask_beats_allow_across_parallel_hooks() {
    let dir = tempfile::tempdir().unwrap();
    let decision = |d: &str, reason: &str| {
        format!(
            r#"echo '{{"hookSpecificOutput":{{"hookEventName":"PreToolUse","permissionDecision":"{d}","permissionDecisionReason":"{reason}"}}}}'"#
        )
    };
    let group = |commands: &[String]| {
        json!({ "PreToolUse": [{ "matcher": "*", "hooks": commands.iter()
            .map(|c| json!({ "type": "command", "command": c })).collect::<Vec<_>>() }] })
    };
    let input = pre_tool_use(dir.path(), "Bash", json!({ "command": "make" }));

    let set = hook_set(group(&[
        decision("allow", "fine"),
        decision("ask", "check this"),
        decision("deny", "never"),
        decision("ask", "and this"),
    ]));
    let outcome = run(&set, &input, dir.path()).await;
    assert_eq!(
        outcome.permission.as_ref().unwrap().decision,
        Decision::Deny
    );
    assert_eq!(
        outcome.permission.as_ref().unwrap().reason.as_deref(),
        Some("never")
    );

    let set = hook_set(group(&[
        decision("allow", "fine"),
        decision("ask", "check this"),
        decision("ask", "and this"),
    ]));
    let outcome = run(&set, &input, dir.path()).await;
    let permission = outcome.permission.unwrap();
    assert_eq!(permission.decision, Decision::Ask);
    assert_eq!(permission.reason.as_deref(), Some("check this\nand this"));
    assert_eq!(outcome.blocked, None);

    // The legacy `decision: approve` is an allow.
    let set = hook_set(one(
        "PreToolUse",
        "",
        r#"echo '{"decision":"approve","reason":"ok"}'"#,
    ));
    let outcome = run(&set, &input, dir.path()).await;
    assert_eq!(outcome.permission.unwrap().decision, Decision::Allow);
}

#[tokio::test]
async fn updated_input_replaces_the_tool_input_and_the_last_hook_wins() {
    let dir = tempfile::tempdir().unwrap();
    // The hook rewrites whatever command it is given into a dry run of it.
    let rewrite = script(
        dir.path(),
        "rewrite.sh",
        r#"input=$(cat)
cmd=$(printf '%s' "$input" | sed -n 's/.*"command":"\([^"]*\)".*/\1/p')
printf '{"hookSpecificOutput":{"hookEventName":"PreToolUse","permissionDecision":"allow","updatedInput":{"command":"echo would run: %s"}}}' "$cmd""#,
    );
    let set = hook_set(one("PreToolUse", "Bash", &rewrite.display().to_string()));
    let input = pre_tool_use(dir.path(), "Bash", json!({ "command": "make deploy" }));
    let outcome = run(&set, &input, dir.path()).await;
    assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
    assert_eq!(
        outcome.updated_input,
        Some(json!({ "command": "echo would run: make deploy" }))
    );
    assert_eq!(outcome.permission.unwrap().decision, Decision::Allow);

    let update = |cmd: &str| {
        json!({ "type": "command", "command": format!(
            r#"echo '{{"hookSpecificOutput":{{"hookEventName":"PreToolUse","updatedInput":{{"command":"{cmd}"}}}}}}'"#
        ) })
    };
    let set = hook_set(json!({ "PreToolUse": [
        { "matcher": "Bash", "hooks": [update("first")] },
        { "matcher": "*", "hooks": [update("second")] },
    ] }));
    let outcome = run(&set, &input, dir.path()).await;
    assert_eq!(outcome.updated_input, Some(json!({ "command": "second" })));
    assert_eq!(outcome.permission, None, "no decision was given");

    // A denied call is never rewritten.
    let set = hook_set(json!({ "PreToolUse": [
        { "matcher": "Bash", "hooks": [update("first"), { "type": "command", "command": "exit 2" }] },
    ] }));
    let outcome = run(&set, &input, dir.path()).await;
    assert_eq!(outcome.permission.unwrap().decision, Decision::Deny);
    assert_eq!(outcome.updated_input, None);
}

#[tokio::test]
async fn user_prompt_submit_context_comes_from_plain_stdout_and_additional_context() {
    let dir = tempfile::tempdir().unwrap();
    let set = hook_set(json!({ "UserPromptSubmit": [{ "hooks": [
        { "type": "command", "command": "cat > /dev/null; echo 'Current branch: main'" },
        { "type": "command", "command": r#"echo '{"hookSpecificOutput":{"hookEventName":"UserPromptSubmit","additionalContext":"Ticket ABC-1 is open"}}'"# },
    ] }] }));
    let input = context(dir.path()).user_prompt_submit("what next?");
    let outcome = run(&set, &input, dir.path()).await;
    assert_eq!(
        outcome.additional_context,
        ["Current branch: main", "Ticket ABC-1 is open"]
    );
    assert_eq!(outcome.blocked, None);
    assert!(outcome.output.is_empty());

    // JSON `decision: block` on a prompt blocks it with the reason.
    let set = hook_set(one(
        "UserPromptSubmit",
        "",
        r#"echo '{"decision":"block","reason":"prompts may not contain keys"}'"#,
    ));
    let outcome = run(&set, &input, dir.path()).await;
    assert_eq!(
        outcome.blocked.as_deref(),
        Some("prompts may not contain keys")
    );

    // Elsewhere plain stdout is for verbose display only.
    let set = hook_set(one("PreToolUse", "", "echo checked"));
    let outcome = run(
        &set,
        &pre_tool_use(dir.path(), "Bash", json!({})),
        dir.path(),
    )
    .await;
    assert!(outcome.additional_context.is_empty());
    assert_eq!(outcome.output.len(), 1);
    assert_eq!(outcome.output[0].text, "checked");
    assert!(!outcome.is_noop());
}

#[tokio::test]
async fn post_tool_use_block_and_context_go_to_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let set = hook_set(one(
        "PostToolUse",
        "Edit|Write",
        r#"echo '{"decision":"block","reason":"lint failed: unused import","hookSpecificOutput":{"hookEventName":"PostToolUse","additionalContext":"run cargo fmt"}}'"#,
    ));
    let input = context(dir.path()).post_tool_use(
        "Write",
        &json!({ "file_path": "a.rs" }),
        &json!({ "type": "create" }),
        "toolu_02",
    );
    let outcome = run(&set, &input, dir.path()).await;
    assert_eq!(
        outcome.blocked.as_deref(),
        Some("lint failed: unused import")
    );
    assert_eq!(outcome.additional_context, ["run cargo fmt"]);
}

#[tokio::test]
async fn continue_false_stops_the_session_with_its_reason() {
    let dir = tempfile::tempdir().unwrap();
    let set = hook_set(one(
        "Stop",
        "",
        r#"echo '{"continue": false, "stopReason": "daily budget used up", "suppressOutput": true}'"#,
    ));
    let outcome = run(&set, &context(dir.path()).stop(false), dir.path()).await;
    assert_eq!(
        outcome.stop.as_ref().unwrap().reason.as_deref(),
        Some("daily budget used up")
    );
    assert!(outcome.suppress_output);
    assert_eq!(outcome.blocked, None);
}

#[tokio::test]
async fn matchers_select_by_tool_name_and_by_session_source() {
    let dir = tempfile::tempdir().unwrap();
    let label = |matcher: &str, label: &str| json!({ "matcher": matcher, "hooks": [{ "type": "command", "command": format!("echo {label}") }] });
    let set = hook_set(json!({
        "PreToolUse": [
            label("Edit|Write", "edit-write"),
            label("mcp__.*", "mcp"),
            label("*", "star"),
            label("", "empty"),
            label("Bash", "bash"),
        ],
        "SessionStart": [ label("resume", "resumed"), label("startup|clear", "fresh") ],
    }));
    let labels = |outcome: &HookOutcome| -> BTreeSet<String> {
        outcome
            .output
            .iter()
            .map(|t| t.text.clone())
            .chain(outcome.additional_context.iter().cloned())
            .collect()
    };
    let cases: &[(&str, &[&str])] = &[
        ("Edit", &["edit-write", "star", "empty"]),
        ("Write", &["edit-write", "star", "empty"]),
        ("NotebookEdit", &["star", "empty"]),
        ("mcp__github__list_issues", &["mcp", "star", "empty"]),
        ("Bash", &["bash", "star", "empty"]),
    ];
    for (tool, expected) in cases {
        let outcome = run(&set, &pre_tool_use(dir.path(), tool, json!({})), dir.path()).await;
        let want: BTreeSet<String> = expected.iter().map(|s| s.to_string()).collect();
        assert_eq!(labels(&outcome), want, "{tool}");
    }
    let ctx = context(dir.path());
    let outcome = run(
        &set,
        &ctx.session_start(SessionStartSource::Resume),
        dir.path(),
    )
    .await;
    assert_eq!(outcome.additional_context, ["resumed"]);
    let outcome = run(
        &set,
        &ctx.session_start(SessionStartSource::Clear),
        dir.path(),
    )
    .await;
    assert_eq!(outcome.additional_context, ["fresh"]);
    let outcome = run(
        &set,
        &ctx.session_start(SessionStartSource::Compact),
        dir.path(),
    )
    .await;
    assert!(outcome.is_noop());
    assert_eq!(outcome.ran, 0);
}

#[tokio::test]
async fn an_invalid_regex_matcher_is_skipped_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let hooks = settings(json!({ "PreToolUse": [
        { "matcher": "Edit(", "hooks": [{ "type": "command", "command": "echo broken" }] },
        { "matcher": "Edit", "hooks": [{ "type": "command", "command": "echo fine" }] },
    ] }));
    let (set, warnings) = HookSet::from_sources([(Some(".claude/settings.json"), &hooks)], false);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    let warning = &warnings[0];
    for part in [
        ".claude/settings.json",
        "hooks.PreToolUse[0]",
        "PreToolUse",
        "`Edit(`",
    ] {
        assert!(warning.contains(part), "{warning} should name {part}");
    }
    let outcome = run(
        &set,
        &pre_tool_use(dir.path(), "Edit", json!({})),
        dir.path(),
    )
    .await;
    assert_eq!(outcome.ran, 1);
    assert_eq!(outcome.output[0].text, "fine");
}

#[tokio::test]
async fn hooks_of_one_event_run_at_the_same_time() {
    let dir = tempfile::tempdir().unwrap();
    // Each hook announces itself, then waits (bounded) for the other's announcement: both
    // can succeed only if they run concurrently; run one after the other, the first gives up.
    let waiter = |me: &str, other: &str| {
        format!(
            r#"touch "$HOOK_DIR/{me}"; for i in $(seq 1 200); do [ -e "$HOOK_DIR/{other}" ] && exit 0; sleep 0.05; done; echo "{other} never started" >&2; exit 1"#
        )
    };
    let set = hook_set(json!({ "Stop": [{ "hooks": [
        { "type": "command", "command": waiter("a", "b") },
        { "type": "command", "command": waiter("b", "a") },
    ] }] }));
    let outcome = run(&set, &context(dir.path()).stop(false), dir.path()).await;
    assert_eq!(outcome.ran, 2);
    assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
}

/// Live (non-zombie) processes whose process group is `pgid`.
fn live_members(pgid: i32) -> Vec<i32> {
    let mut members = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // Fields after the command name (which is in parentheses): state, ppid, pgrp, …
        let Some(rest) = stat.rsplit_once(')').map(|(_, rest)| rest) else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.len() > 2 && fields[2] == pgid.to_string() && fields[0] != "Z" {
            members.push(pid);
        }
    }
    members
}

#[tokio::test]
async fn a_hook_past_its_timeout_is_killed_with_its_whole_process_group() {
    let dir = tempfile::tempdir().unwrap();
    let set = hook_set(json!({ "PreToolUse": [{ "hooks": [{
        "type": "command",
        "command": r#"echo $$ > "$HOOK_DIR/pgid"; sleep 300 & sleep 300"#,
        "timeout": 1,
    }] }] }));
    let started = Instant::now();
    let outcome = run(
        &set,
        &pre_tool_use(dir.path(), "Bash", json!({})),
        dir.path(),
    )
    .await;
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(outcome.errors.len(), 1);
    assert_eq!(
        outcome.errors[0].failure,
        HookFailure::TimedOut(Duration::from_secs(1))
    );
    assert!(
        outcome.errors[0]
            .to_string()
            .contains("timed out after 1 s")
    );
    assert_eq!(outcome.blocked, None, "a timeout does not block");
    assert_eq!(outcome.permission, None);

    let pgid: i32 = std::fs::read_to_string(dir.path().join("pgid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !live_members(pgid).is_empty() {
        assert!(
            Instant::now() < deadline,
            "processes of the hook's group survived: {:?}",
            live_members(pgid)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Whether a failure is the expected one.
type FailureCheck = fn(&HookFailure) -> bool;

#[tokio::test]
async fn failing_hooks_are_non_blocking_errors() {
    let dir = tempfile::tempdir().unwrap();
    let input = pre_tool_use(dir.path(), "Bash", json!({ "command": "ls" }));
    let cases: &[(&str, FailureCheck, &str)] = &[
        (
            "echo oops >&2; exit 1",
            |f| *f == HookFailure::Exit(1),
            "oops",
        ),
        (
            "/nonexistent/keel-hook",
            |f| *f == HookFailure::Exit(127),
            "No such file",
        ),
        ("kill -9 $$", |f| *f == HookFailure::Signal(9), ""),
        (
            "echo '{\"decision\": '",
            |f| matches!(f, HookFailure::InvalidOutput(why) if why.contains("not a valid hook JSON")),
            "",
        ),
        (
            r#"echo '{"hookSpecificOutput":{"hookEventName":"PreToolUse","permissionDecision":"maybe"}}'"#,
            |f| matches!(f, HookFailure::InvalidOutput(why) if why.contains("\"maybe\"")),
            "",
        ),
        (
            r#"echo '{"hookSpecificOutput":{"hookEventName":"Stop","permissionDecision":"deny"}}'"#,
            |f| matches!(f, HookFailure::InvalidOutput(why) if why.contains("hookEventName")),
            "",
        ),
        (
            r#"echo '{"continue": "no"}'"#,
            |f| matches!(f, HookFailure::InvalidOutput(_)),
            "",
        ),
    ];
    for (command, failure_ok, stderr_part) in cases {
        let set = hook_set(one("PreToolUse", "", command));
        let outcome = run(&set, &input, dir.path()).await;
        assert_eq!(outcome.errors.len(), 1, "{command}: {outcome:?}");
        let error = &outcome.errors[0];
        assert!(failure_ok(&error.failure), "{command}: {:?}", error.failure);
        assert!(
            error.stderr.contains(stderr_part),
            "{command}: {}",
            error.stderr
        );
        assert_eq!(error.command, *command);
        assert!(error.to_string().starts_with("PreToolUse hook `"));
        assert_eq!(outcome.blocked, None, "{command}");
        assert_eq!(outcome.permission, None, "{command}");
        assert_eq!(outcome.stop, None, "{command}");
    }
}

#[tokio::test]
async fn disable_all_hooks_runs_nothing_but_still_lists_them() {
    let dir = tempfile::tempdir().unwrap();
    let hooks = settings(one("UserPromptSubmit", "", r#"touch "$HOOK_DIR/ran""#));
    let (set, warnings) = HookSet::from_settings(&hooks, true);
    assert!(warnings.is_empty());
    assert!(set.is_disabled());
    assert!(!set.has(HookEvent::UserPromptSubmit));
    let outcome = run(
        &set,
        &context(dir.path()).user_prompt_submit("x"),
        dir.path(),
    )
    .await;
    assert_eq!(outcome.ran, 0);
    assert!(outcome.is_noop());
    assert!(!dir.path().join("ran").exists());
    assert_eq!(set.list().len(), 1);

    let (enabled, _) = HookSet::from_settings(&hooks, false);
    assert!(enabled.has(HookEvent::UserPromptSubmit));
    assert!(!enabled.has(HookEvent::Stop));
    run(
        &enabled,
        &context(dir.path()).user_prompt_submit("x"),
        dir.path(),
    )
    .await;
    assert!(dir.path().join("ran").exists());
}

#[tokio::test]
async fn identical_commands_run_once() {
    let dir = tempfile::tempdir().unwrap();
    let command = r#"echo run >> "$HOOK_DIR/count""#;
    let set = hook_set(json!({ "Stop": [
        { "hooks": [{ "type": "command", "command": command }] },
        { "hooks": [{ "type": "command", "command": command }] },
    ] }));
    let outcome = run(&set, &context(dir.path()).stop(false), dir.path()).await;
    assert_eq!(outcome.ran, 1);
    let count = std::fs::read_to_string(dir.path().join("count")).unwrap();
    assert_eq!(count.lines().count(), 1);
}

#[tokio::test]
async fn cancelling_kills_running_hooks() {
    let dir = tempfile::tempdir().unwrap();
    let set = hook_set(one(
        "PreToolUse",
        "",
        r#"echo $$ > "$HOOK_DIR/pgid"; sleep 300"#,
    ));
    let env = env(dir.path());
    let cancel = env.cancel.clone();
    let pgid_file = dir.path().join("pgid");
    let canceller = async {
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::fs::read_to_string(&pgid_file).map_or(true, |s| !s.ends_with('\n')) {
            assert!(Instant::now() < deadline, "the hook never started");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        cancel.cancel();
    };
    let input = pre_tool_use(dir.path(), "Bash", json!({}));
    let started = Instant::now();
    let (outcome, ()) = tokio::join!(set.run(&input, &env), canceller);
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(outcome.errors.len(), 1);
    assert_eq!(outcome.errors[0].failure, HookFailure::Cancelled);
    let pgid: i32 = std::fs::read_to_string(&pgid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !live_members(pgid).is_empty() {
        assert!(Instant::now() < deadline, "the cancelled hook survived");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn listing_shows_event_matcher_command_timeout_and_file() {
    let user =
        settings(json!({ "Stop": [{ "hooks": [{ "type": "command", "command": "say done" }] }] }));
    let project = settings(json!({ "PreToolUse": [{ "matcher": "Edit|Write", "hooks": [
        { "type": "command", "command": "cargo fmt", "timeout": 30 },
        { "type": "prompt", "command": "is this fine?" },
    ] }] }));
    let (set, warnings) = HookSet::from_sources(
        [
            (Some("~/.claude/settings.json"), &user),
            (Some(".claude/settings.json"), &project),
        ],
        false,
    );
    assert_eq!(warnings.len(), 1);
    assert!(
        warnings[0].contains("\"prompt\" is not supported"),
        "{}",
        warnings[0]
    );
    let listed = set.list();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].event, HookEvent::Stop);
    assert_eq!(listed[0].command, "say done");
    assert_eq!(listed[0].timeout, Duration::from_secs(60));
    assert_eq!(listed[0].source.as_deref(), Some("~/.claude/settings.json"));
    assert_eq!(listed[1].event, HookEvent::PreToolUse);
    assert_eq!(listed[1].matcher, "Edit|Write");
    assert_eq!(listed[1].timeout, Duration::from_secs(30));
    assert_eq!(listed[1].source.as_deref(), Some(".claude/settings.json"));
}

#[test]
fn event_names_parse_and_unknown_ones_are_explained() {
    for event in HookEvent::ALL {
        assert_eq!(event.as_str().parse::<HookEvent>().unwrap(), event);
    }
    let error = "PreToolUSE".parse::<HookEvent>().unwrap_err().to_string();
    assert!(error.contains("unknown hook event `PreToolUSE`"), "{error}");
    assert!(error.contains("PreToolUse"), "{error}");
}

#[tokio::test]
async fn hooks_from_loaded_settings_name_their_files_and_honour_disable_all() {
    let home = tempfile::tempdir().unwrap();
    let project = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(home.path().join(".claude")).unwrap();
    std::fs::create_dir_all(project.path().join(".claude")).unwrap();
    let user_file = home.path().join(".claude/settings.json");
    let project_file = project.path().join(".claude/settings.json");
    let project_settings = json!({ "hooks": one("Stop", "", "echo project") });
    std::fs::write(&project_file, project_settings.to_string()).unwrap();
    let user_settings = json!({ "hooks": one("Stop", "", "echo user") });
    std::fs::write(&user_file, user_settings.to_string()).unwrap();
    let load = || {
        keel_config::load(&keel_config::LoadOptions {
            home: home.path().to_path_buf(),
            cwd: project.path().to_path_buf(),
            sources: keel_config::SourceSet::default(),
            flag_settings: None,
        })
        .unwrap()
    };

    let (set, warnings) = HookSet::from_loaded(&load());
    assert!(warnings.is_empty(), "{warnings:?}");
    let sources: Vec<String> = set.list().into_iter().filter_map(|l| l.source).collect();
    assert_eq!(
        sources,
        [
            user_file.display().to_string(),
            project_file.display().to_string()
        ]
    );
    let outcome = run(&set, &context(project.path()).stop(false), project.path()).await;
    let texts: Vec<&str> = outcome.output.iter().map(|t| t.text.as_str()).collect();
    assert_eq!(texts, ["user", "project"]);

    let disabled = json!({ "disableAllHooks": true, "hooks": one("Stop", "", "echo project") });
    std::fs::write(&project_file, disabled.to_string()).unwrap();
    let (set, _) = HookSet::from_loaded(&load());
    assert!(set.is_disabled());
    assert!(!set.has(HookEvent::Stop));
}
