//! Tool scheduling in the engine, against the mock model server and the real Anthropic client.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use keel_engine::{Approver, Session, SessionConfig, SessionSetup};
use keel_model::{AnthropicAuth, AnthropicClient, AnthropicConfig};
use keel_policy::{PermissionMode, Policy};
use keel_protocol::{Event, Op, Outcome};
use keel_test_support::{MockModelServer, Script, ScriptedBlock, ScriptedTurn};
use keel_tools::{Tool, ToolContext, ToolError, ToolOutput, ToolRegistry};
use serde_json::{Value, json};
use tokio::sync::{Barrier, mpsc};
use tokio_util::sync::CancellationToken;

/// A tool that waits at a shared barrier: two calls finish only if they run at the same time.
struct Rendezvous {
    name: &'static str,
    read_only: bool,
    barrier: Arc<Barrier>,
    log: Arc<Mutex<Vec<String>>>,
}

#[async_trait]
impl Tool for Rendezvous {
    fn name(&self) -> &str {
        self.name
    }
    fn description(&self) -> &str {
        "test tool"
    }
    fn input_schema(&self) -> Value {
        json!({"type": "object", "properties": {"tag": {"type": "string"}}, "required": ["tag"]})
    }
    fn is_read_only(&self) -> bool {
        self.read_only
    }
    async fn call(&self, input: Value, _ctx: &ToolContext) -> Result<ToolOutput, ToolError> {
        let tag = input["tag"].as_str().unwrap_or_default().to_string();
        self.log.lock().unwrap().push(format!("start {tag}"));
        if self.read_only {
            self.barrier.wait().await;
        }
        self.log.lock().unwrap().push(format!("end {tag}"));
        Ok(ToolOutput::text(format!("done {tag}")))
    }
}

fn call(id: &str, name: &str, tag: &str) -> ScriptedBlock {
    ScriptedBlock::ToolUse {
        id: Some(id.into()),
        name: name.into(),
        input: json!({"tag": tag}),
    }
}

async fn run_session(
    server: &MockModelServer,
    registry: ToolRegistry,
    dir: &std::path::Path,
) -> Vec<Event> {
    run_session_with(server, registry, dir, keel_model::DEFAULT_MAX_RETRIES).await
}

async fn run_session_with(
    server: &MockModelServer,
    registry: ToolRegistry,
    dir: &std::path::Path,
    max_retries: u32,
) -> Vec<Event> {
    let client = AnthropicClient::new(AnthropicConfig::new(
        server.url(),
        AnthropicAuth::ApiKey("k".into()),
    ))
    .unwrap();
    let mut config = SessionConfig::new("claude-sonnet-4-5", vec![]);
    config.max_tokens = 1000;
    config.retry = keel_model::RetryPolicy::with_max_retries(max_retries);
    let ctx = ToolContext::new(dir, dir.join("spill"), CancellationToken::new());
    let session = Session::new(SessionSetup {
        id: keel_protocol::SessionId::new(),
        config,
        client: Arc::new(client),
        tools: registry,
        tool_ctx: ctx,
        policy: Policy::new(PermissionMode::BypassPermissions, dir, dir),
        approver: Approver::Unattended,
        local_settings: None,
        history: vec![],
        transcript: None,
        hooks: None,
        mcp: None,
        context: Default::default(),
    });
    let (ops, ops_rx) = mpsc::unbounded_channel();
    let (events_tx, mut events_rx) = mpsc::unbounded_channel();
    let engine = tokio::spawn(session.serve(ops_rx, events_tx));
    ops.send(Op::UserInput { text: "go".into() }).unwrap();
    drop(ops);
    let mut events = Vec::new();
    while let Some(event) = tokio::time::timeout(Duration::from_secs(10), events_rx.recv())
        .await
        .expect("the engine keeps reporting (a deadlock would stop it)")
    {
        events.push(event);
    }
    engine.await.unwrap();
    events
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_calls_run_together_and_mutating_ones_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let barrier = Arc::new(Barrier::new(2));
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut registry = ToolRegistry::new();
    for (name, read_only) in [("Look", true), ("Change", false)] {
        registry
            .register(Arc::new(Rendezvous {
                name,
                read_only,
                barrier: barrier.clone(),
                log: log.clone(),
            }))
            .unwrap();
    }
    let server = MockModelServer::start(Script::new(vec![
        ScriptedTurn {
            content: vec![
                call("c1", "Change", "m1"),
                call("l1", "Look", "a"),
                call("l2", "Look", "b"),
                call("c2", "Change", "m2"),
            ],
            ..Default::default()
        },
        ScriptedTurn::text("finished"),
    ]))
    .await
    .unwrap();

    let events = run_session(&server, registry, dir.path()).await;

    // Both Look calls passed the two-party barrier, so they ran concurrently.
    let log = log.lock().unwrap().clone();
    assert_eq!(&log[..2], ["start m1", "end m1"]);
    assert_eq!(&log[log.len() - 2..], ["start m2", "end m2"]);
    let middle: Vec<&str> = log[2..6].iter().map(String::as_str).collect();
    assert!(
        middle[..2].iter().all(|e| e.starts_with("start")),
        "{log:?}"
    );

    // Results go back in the model's order regardless of completion order.
    let sent = &server.requests()[1].body["messages"][2]["content"];
    let ids: Vec<&str> = sent
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["tool_use_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["c1", "l1", "l2", "c2"]);
    match events.last().unwrap() {
        Event::RunFinished {
            outcome, result, ..
        } => {
            assert_eq!(outcome, &Outcome::Success);
            assert_eq!(result, "finished");
        }
        other => panic!("last event was {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_stream_ends_the_run_with_an_error_and_keeps_partial_text() {
    let dir = tempfile::tempdir().unwrap();
    let server = MockModelServer::start(Script::new(vec![ScriptedTurn {
        content: vec![ScriptedBlock::Text {
            text: "The first part of a long answer that gets cut".into(),
        }],
        cut_after_events: Some(5),
        ..Default::default()
    }]))
    .await
    .unwrap();
    // No retries: this is what the user gets once retrying is over.
    let events = run_session_with(&server, ToolRegistry::builtin(), dir.path(), 0).await;
    let streamed: String = events
        .iter()
        .filter_map(|e| match e {
            Event::TextDelta { text } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    assert!(!streamed.is_empty());
    match events.last().unwrap() {
        Event::RunFinished {
            outcome, result, ..
        } => {
            assert!(
                matches!(outcome, Outcome::Error { message } if message.contains("ended early")),
                "{outcome:?}"
            );
            assert_eq!(result, &streamed, "the partial answer is kept");
        }
        other => panic!("last event was {other:?}"),
    }
}
