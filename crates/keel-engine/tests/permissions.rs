//! The engine's permission path against the real mock model server: questions go out as
//! `ApprovalRequested` events and answers come back as `Op::Approval`, as every frontend does.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::Driver;
use std::path::Path;
use std::sync::Arc;

use keel_engine::{Approver, Session, SessionConfig, SessionSetup, allow_once};
use keel_model::{AnthropicAuth, AnthropicClient, AnthropicConfig};
use keel_policy::{PermissionMode, Policy, RuleList, RuleSource};
use keel_protocol::{ApprovalAnswer, Event, Op, Outcome, SessionId};
use keel_test_support::{MockModelServer, Script, ScriptedBlock, ScriptedTurn};
use keel_tools::{ToolContext, ToolRegistry};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

fn call(id: &str, name: &str, input: Value) -> ScriptedTurn {
    ScriptedTurn {
        content: vec![ScriptedBlock::ToolUse {
            id: Some(id.into()),
            name: name.into(),
            input,
        }],
        ..Default::default()
    }
}

impl Driver {
    fn start(
        server: &MockModelServer,
        dir: &Path,
        policy: Policy,
        local_settings: Option<&Path>,
    ) -> Self {
        let client = AnthropicClient::new(AnthropicConfig::new(
            server.url(),
            AnthropicAuth::ApiKey("k".into()),
        ))
        .unwrap();
        let session = Session::new(SessionSetup {
            id: SessionId::new(),
            config: SessionConfig::new("claude-sonnet-4-5", vec![]),
            client: Arc::new(client),
            tools: ToolRegistry::builtin(),
            tool_ctx: ToolContext::new(dir, dir.join(".spill"), CancellationToken::new()),
            policy,
            approver: Approver::Interactive,
            local_settings: local_settings.map(Path::to_path_buf),
            history: vec![],
            transcript: None,
            hooks: None,
            mcp: None,
            context: Default::default(),
        });
        Self::serve(session)
    }

    async fn approval(&mut self) -> (String, String, String) {
        self.next("an approval request", |e| match e {
            Event::ApprovalRequested {
                request_id,
                tool_name,
                reason,
                ..
            } => Some((request_id.clone(), tool_name.clone(), reason.clone())),
            _ => None,
        })
        .await
    }

    async fn finished(&mut self) -> (Outcome, Vec<keel_protocol::PermissionDenial>) {
        self.next("the end of the run", |e| match e {
            Event::RunFinished {
                outcome,
                permission_denials,
                ..
            } => Some((outcome.clone(), permission_denials.clone())),
            _ => None,
        })
        .await
    }
}

fn policy(mode: PermissionMode, dir: &Path) -> Policy {
    Policy::new(mode, dir, &dir.join("home"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_waits_for_approval_and_runs_once_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("new.txt");
    let server = MockModelServer::start(Script::new(vec![
        call("w", "Write", json!({"file_path": file, "content": "hello"})),
        ScriptedTurn::text("written"),
    ]))
    .await
    .unwrap();
    let mut d = Driver::start(
        &server,
        dir.path(),
        policy(PermissionMode::Default, dir.path()),
        None,
    );
    d.send(Op::UserInput {
        text: "write it".into(),
    });
    let (request_id, tool, _) = d.approval().await;
    assert_eq!(tool, "Write");
    assert!(!file.exists(), "nothing runs before the answer");
    d.send(Op::Approval {
        request_id,
        answer: allow_once(),
    });
    let (outcome, denials) = d.finished().await;
    assert_eq!(outcome, Outcome::Success);
    assert!(denials.is_empty());
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "hello");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denial_reaches_the_model_with_the_users_message() {
    let dir = tempfile::tempdir().unwrap();
    let server = MockModelServer::start(Script::new(vec![
        call("b", "Bash", json!({"command": "touch made-by-bash"})),
        ScriptedTurn::text("ok, I won't"),
    ]))
    .await
    .unwrap();
    let mut d = Driver::start(
        &server,
        dir.path(),
        policy(PermissionMode::Default, dir.path()),
        None,
    );
    d.send(Op::UserInput { text: "go".into() });
    let (request_id, tool, reason) = d.approval().await;
    assert_eq!(tool, "Bash");
    assert!(reason.contains("touch"), "{reason}");
    d.send(Op::Approval {
        request_id,
        answer: ApprovalAnswer::Deny {
            message: "use the Write tool instead".into(),
        },
    });
    let (outcome, denials) = d.finished().await;
    assert_eq!(outcome, Outcome::Success);
    assert_eq!(denials.len(), 1);
    assert_eq!(denials[0].tool_name, "Bash");
    assert!(!dir.path().join("made-by-bash").exists());
    let sent = &server.requests()[1].body["messages"][2]["content"][0];
    assert_eq!(sent["is_error"], true);
    assert!(
        sent["content"]
            .as_str()
            .unwrap()
            .contains("use the Write tool instead")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn always_allow_is_saved_and_the_next_call_does_not_ask() {
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join(".keel/settings.local.json");
    let server = MockModelServer::start(Script::new(vec![
        call("b1", "Bash", json!({"command": "touch first.txt"})),
        call("b2", "Bash", json!({"command": "touch second.txt"})),
        ScriptedTurn::text("done"),
    ]))
    .await
    .unwrap();
    let mut d = Driver::start(
        &server,
        dir.path(),
        policy(PermissionMode::Default, dir.path()),
        Some(&local),
    );
    d.send(Op::UserInput { text: "go".into() });
    let (request_id, _, _) = d.approval().await;
    d.send(Op::Approval {
        request_id,
        answer: ApprovalAnswer::AllowAlways {
            rules: vec!["Bash(touch:*)".into()],
        },
    });
    let (outcome, _) = d.finished().await;
    assert_eq!(outcome, Outcome::Success);
    assert!(
        !d.seen
            .iter()
            .skip_while(|e| !matches!(e, Event::ToolResult { .. }))
            .any(|e| matches!(e, Event::ApprovalRequested { .. })),
        "the second touch ran without asking"
    );
    assert!(dir.path().join("first.txt").exists() && dir.path().join("second.txt").exists());
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(&local).unwrap()).unwrap();
    assert_eq!(saved["permissions"]["allow"], json!(["Bash(touch:*)"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_mode_refuses_writes_until_the_plan_is_approved() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plan.txt");
    let server = MockModelServer::start(Script::new(vec![
        call(
            "w1",
            "Write",
            json!({"file_path": file, "content": "too early"}),
        ),
        call("p", "ExitPlanMode", json!({"plan": "1. write plan.txt"})),
        call(
            "w2",
            "Write",
            json!({"file_path": file, "content": "after approval"}),
        ),
        ScriptedTurn::text("done"),
    ]))
    .await
    .unwrap();
    let mut d = Driver::start(
        &server,
        dir.path(),
        policy(PermissionMode::Plan, dir.path()),
        None,
    );
    d.send(Op::UserInput {
        text: "plan it".into(),
    });
    let (request_id, tool, _) = d.approval().await;
    assert_eq!(
        tool, "ExitPlanMode",
        "the early Write was refused without asking"
    );
    assert!(!file.exists());
    d.send(Op::Approval {
        request_id,
        answer: allow_once(),
    });
    let mode = d
        .next("the mode change", |e| match e {
            Event::PermissionModeChanged { mode } => Some(mode.clone()),
            _ => None,
        })
        .await;
    assert_eq!(mode, "default");
    // In default mode the Write asks; approve it.
    let (request_id, tool, _) = d.approval().await;
    assert_eq!(tool, "Write");
    d.send(Op::Approval {
        request_id,
        answer: allow_once(),
    });
    let (outcome, denials) = d.finished().await;
    assert_eq!(outcome, Outcome::Success);
    assert_eq!(denials.len(), 1, "only the early write was refused");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "after approval");
    let refused = &server.requests()[1].body["messages"][2]["content"][0];
    assert!(
        refused["content"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("plan mode"),
        "{refused}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deny_rules_hold_in_bypass_mode_and_mode_switches_apply_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let keep = dir.path().join("keep.txt");
    std::fs::write(&keep, "precious").unwrap();
    let server = MockModelServer::start(Script::new(vec![
        call("b", "Bash", json!({"command": "git status; rm keep.txt"})),
        ScriptedTurn::text("could not"),
        call(
            "w",
            "Write",
            json!({"file_path": dir.path().join("x.txt"), "content": "x"}),
        ),
        ScriptedTurn::text("wrote"),
    ]))
    .await
    .unwrap();
    let mut p = policy(PermissionMode::BypassPermissions, dir.path());
    p.add_rules(
        RuleList::Deny,
        ["Bash(rm:*)"],
        &RuleSource::new("test", dir.path()),
    );
    let mut d = Driver::start(&server, dir.path(), p, None);
    d.send(Op::UserInput {
        text: "clean up".into(),
    });
    let (outcome, denials) = d.finished().await;
    assert_eq!(outcome, Outcome::Success);
    assert_eq!(denials.len(), 1);
    assert_eq!(std::fs::read_to_string(&keep).unwrap(), "precious");

    // Plan mode from now on: the Write is refused without a question.
    d.send(Op::SetPermissionMode {
        mode: "plan".into(),
    });
    d.send(Op::UserInput {
        text: "write".into(),
    });
    let (_, denials) = d.finished().await;
    assert_eq!(denials.len(), 1);
    assert!(!dir.path().join("x.txt").exists());
    assert!(
        d.seen
            .iter()
            .any(|e| matches!(e, Event::PermissionModeChanged { mode } if mode == "plan"))
    );
}
