//! Subagents and slash commands in a long-lived session, driven like an interactive frontend:
//! a subagent's permission question reaches the frontend as an ordinary `ApprovalRequested`
//! and the frontend's `Op::Approval` answers it; its other events arrive tagged with the
//! `Agent` call; `/clear` and `/model` apply to the next prompt of the same session.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::Driver;
use std::path::Path;
use std::sync::Arc;

use keel_engine::{
    Approver, ContextSetup, Extensions, Session, SessionConfig, SessionSetup, allow_once,
};
use keel_model::{AnthropicAuth, AnthropicClient, AnthropicConfig};
use keel_policy::{PermissionMode, Policy};
use keel_protocol::{Event, Op, Outcome, SessionId};
use keel_test_support::{MockModelServer, Script, ScriptedBlock, ScriptedTurn, TurnMatcher};
use keel_tools::{ToolContext, ToolRegistry};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const MAIN_SYSTEM: &str = "MAIN-AGENT";

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

fn when_system(system: &str, mut turn: ScriptedTurn) -> ScriptedTurn {
    turn.when = Some(TurnMatcher {
        system_contains: Some(system.into()),
        ..Default::default()
    });
    turn
}

impl Driver {
    fn start(server: &MockModelServer, dir: &Path) -> Self {
        let client = AnthropicClient::new(AnthropicConfig::new(
            server.url(),
            AnthropicAuth::ApiKey("k".into()),
        ))
        .unwrap();
        let session = Session::new(SessionSetup {
            id: SessionId::new(),
            config: SessionConfig::new("claude-sonnet-4-5", vec![MAIN_SYSTEM.into()]),
            client: Arc::new(client),
            tools: ToolRegistry::builtin(),
            tool_ctx: ToolContext::new(dir, dir.join(".spill"), CancellationToken::new()),
            policy: Policy::new(PermissionMode::Default, dir, &dir.join("home")),
            approver: Approver::Interactive,
            local_settings: None,
            history: vec![],
            transcript: None,
            hooks: None,
            mcp: None,
            context: ContextSetup::default(),
        })
        .with_extensions(Extensions::default());
        Self::serve(session)
    }

    async fn finished(&mut self) -> (Outcome, String) {
        self.next("the end of the run", |e| match e {
            Event::RunFinished {
                outcome, result, ..
            } => Some((outcome.clone(), result.clone())),
            _ => None,
        })
        .await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subagents_question_is_answered_by_the_frontend_like_any_other() {
    let server = MockModelServer::start(Script::new(vec![
        when_system(
            MAIN_SYSTEM,
            call(
                "agent_1",
                "Agent",
                json!({"description": "make a file", "prompt": "create sub.txt"}),
            ),
        ),
        when_system(
            "subagent of keel",
            call("bash_1", "Bash", json!({"command": "touch sub.txt"})),
        ),
        when_system("subagent of keel", ScriptedTurn::text("created sub.txt")),
        when_system(MAIN_SYSTEM, ScriptedTurn::text("the subagent made it")),
    ]))
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut driver = Driver::start(&server, dir.path());
    driver.send(Op::UserInput {
        text: "make sub.txt".into(),
    });
    let (request_id, tool_use_id) = driver
        .next("the subagent's question", |e| match e {
            Event::ApprovalRequested {
                request_id,
                tool_use_id,
                tool_name,
                ..
            } if tool_name == "Bash" => Some((request_id.clone(), tool_use_id.clone())),
            _ => None,
        })
        .await;
    assert_eq!(tool_use_id, "bash_1");
    assert!(!dir.path().join("sub.txt").exists());
    driver.send(Op::Approval {
        request_id,
        answer: allow_once(),
    });
    let (outcome, result) = driver.finished().await;
    assert_eq!(outcome, Outcome::Success);
    assert_eq!(result, "the subagent made it");
    assert!(dir.path().join("sub.txt").exists());
    // The subagent's own messages arrived tagged with the Agent call, never bare.
    let tagged: Vec<&Event> = driver
        .seen
        .iter()
        .filter_map(|e| match e {
            Event::Subagent {
                parent_tool_use_id,
                event,
            } if parent_tool_use_id == "agent_1" => Some(event.as_ref()),
            _ => None,
        })
        .collect();
    assert!(tagged.iter().any(|e| matches!(
        e,
        Event::AssistantMessage { message } if message.text() == "created sub.txt"
    )));
    assert!(tagged.iter().any(
        |e| matches!(e, Event::ToolResult { tool_use_id, is_error: false, .. } if tool_use_id == "bash_1")
    ));
    let bare_sub_results = driver
        .seen
        .iter()
        .any(|e| matches!(e, Event::ToolResult { tool_use_id, .. } if tool_use_id == "bash_1"));
    assert!(!bare_sub_results);
    // The parent got the answer as the Agent call's result.
    let agent_result = driver
        .seen
        .iter()
        .find_map(|e| match e {
            Event::ToolResult {
                tool_use_id,
                content,
                ..
            } if tool_use_id == "agent_1" => Some(content.text()),
            _ => None,
        })
        .unwrap();
    assert!(
        agent_result.starts_with("created sub.txt\n\n<usage>"),
        "{agent_result}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clear_and_model_apply_to_the_next_prompt_of_the_session() {
    let server = MockModelServer::start(Script::new(vec![
        ScriptedTurn::text("one"),
        ScriptedTurn::text("two"),
    ]))
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut driver = Driver::start(&server, dir.path());
    driver.send(Op::UserInput {
        text: "first".into(),
    });
    assert_eq!(driver.finished().await.0, Outcome::Success);
    for command in ["/clear", "/model haiku"] {
        driver.send(Op::UserInput {
            text: command.into(),
        });
        let output = driver
            .next("the command's output", |e| match e {
                Event::CommandOutput { command, text } => Some((command.clone(), text.clone())),
                _ => None,
            })
            .await;
        assert_eq!(output.0, command.split(' ').next().unwrap());
        let (outcome, result) = driver.finished().await;
        assert_eq!(outcome, Outcome::Success);
        assert_eq!(result, output.1);
    }
    assert!(driver.seen.iter().any(|e| matches!(
        e,
        Event::Compacted { trigger, messages, .. } if trigger == "clear" && messages.is_empty()
    )));
    assert!(
        driver
            .seen
            .iter()
            .any(|e| matches!(e, Event::ModelChanged { model } if model == "claude-haiku-4-5"))
    );
    driver.send(Op::UserInput {
        text: "second".into(),
    });
    assert_eq!(driver.finished().await.0, Outcome::Success);
    let requests = server.requests();
    assert_eq!(requests.len(), 2, "the commands sent nothing");
    let body = &requests[1].body;
    assert_eq!(body["model"], "claude-haiku-4-5");
    assert_eq!(body["messages"].as_array().unwrap().len(), 1);
    assert_eq!(body["messages"][0]["content"][0]["text"], "second");
}
