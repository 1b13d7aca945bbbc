//! Retries and transcripts: a flaky model costs a retry, never the session, and what the
//! session records is exactly the conversation it had.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use keel_engine::{Approver, Session, SessionConfig, SessionSetup};
use keel_model::{AnthropicAuth, AnthropicClient, AnthropicConfig};
use keel_policy::{PermissionMode, Policy};
use keel_protocol::{Event, Op, Outcome, SessionId};
use keel_session::{Totals, Transcript, TranscriptWriter};
use keel_test_support::{HttpError, MockModelServer, Script, ScriptedBlock, ScriptedTurn};
use keel_tools::{ToolContext, ToolRegistry};
use serde_json::json;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

async fn run(
    server: &MockModelServer,
    dir: &Path,
    transcript: Option<TranscriptWriter>,
    max_retries: u32,
) -> Vec<Event> {
    let client = AnthropicClient::new(AnthropicConfig::new(
        server.url(),
        AnthropicAuth::ApiKey("k".into()),
    ))
    .unwrap();
    let mut config = SessionConfig::new("claude-sonnet-4-5", vec![]);
    config.retry = keel_model::RetryPolicy::with_max_retries(max_retries);
    let session = Session::new(SessionSetup {
        id: SessionId::new(),
        config,
        client: Arc::new(client),
        tools: ToolRegistry::builtin(),
        tool_ctx: ToolContext::new(dir, dir.join(".spill"), CancellationToken::new()),
        policy: Policy::new(PermissionMode::BypassPermissions, dir, dir),
        approver: Approver::Unattended,
        local_settings: None,
        history: vec![],
        transcript,
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
    while let Some(event) = tokio::time::timeout(Duration::from_secs(30), events_rx.recv())
        .await
        .expect("the engine keeps reporting")
    {
        events.push(event);
    }
    engine.await.unwrap();
    events
}

fn overloaded(retry_after: Option<&str>) -> ScriptedTurn {
    ScriptedTurn {
        http_error: Some(HttpError {
            status: 529,
            error_type: "overloaded_error".into(),
            message: "Overloaded".into(),
            retry_after: retry_after.map(str::to_string),
        }),
        ..Default::default()
    }
}

fn finished(events: &[Event]) -> (Outcome, String) {
    match events
        .iter()
        .rev()
        .find(|e| matches!(e, Event::RunFinished { .. }))
    {
        Some(Event::RunFinished {
            outcome, result, ..
        }) => (outcome.clone(), result.clone()),
        _ => panic!("no RunFinished in {events:#?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_twice_then_success_is_retried_without_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let server = MockModelServer::start(Script::new(vec![
        overloaded(None),
        overloaded(Some("0")),
        ScriptedTurn::text("finally"),
    ]))
    .await
    .unwrap();
    let events = run(&server, dir.path(), None, 3).await;
    let retries: Vec<u32> = events
        .iter()
        .filter_map(|e| match e {
            Event::Retrying { attempt, error, .. } => {
                assert!(
                    error.contains("529") && error.contains("overloaded"),
                    "{error}"
                );
                Some(*attempt)
            }
            _ => None,
        })
        .collect();
    assert_eq!(retries, [1, 2]);
    assert_eq!(finished(&events), (Outcome::Success, "finally".into()));
    let answers = events
        .iter()
        .filter(|e| matches!(e, Event::AssistantMessage { .. }))
        .count();
    assert_eq!(answers, 1);
    assert_eq!(server.requests().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_is_honoured() {
    let dir = tempfile::tempdir().unwrap();
    let server = MockModelServer::start(Script::new(vec![
        overloaded(Some("1")),
        ScriptedTurn::text("ok"),
    ]))
    .await
    .unwrap();
    let events = run(&server, dir.path(), None, 2).await;
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::Retrying { delay_ms: 1000, .. }))
    );
    let requests = server.requests();
    let waited = requests[1].received_unix_us - requests[0].received_unix_us;
    assert!(waited >= 1_000_000, "the retry came after {waited} µs");
    assert_eq!(finished(&events).0, Outcome::Success);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_cut_inside_a_tool_call_is_retried_and_the_tool_runs_once() {
    let dir = tempfile::tempdir().unwrap();
    let tool_turn = |cut: Option<usize>| ScriptedTurn {
        content: vec![ScriptedBlock::ToolUse {
            id: Some("t1".into()),
            name: "Bash".into(),
            input: json!({"command": "echo ran >> runs.txt"}),
        }],
        abort_after_events: cut,
        ..Default::default()
    };
    let server = MockModelServer::start(Script::new(vec![
        // message_start, ping, block start, then a piece of the input: cut there.
        tool_turn(Some(4)),
        tool_turn(None),
        ScriptedTurn::text("done"),
    ]))
    .await
    .unwrap();
    let events = run(&server, dir.path(), None, 2).await;
    assert_eq!(finished(&events).0, Outcome::Success);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("runs.txt")).unwrap(),
        "ran\n"
    );
    let tool_uses = events
        .iter()
        .filter(|e| matches!(e, Event::ToolCallStarted { .. }))
        .count();
    assert_eq!(tool_uses, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exhausted_retries_end_with_a_clear_error_and_an_intact_transcript() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.jsonl");
    let server = MockModelServer::start(Script::new(vec![
        overloaded(Some("0")),
        overloaded(Some("0")),
        overloaded(Some("0")),
    ]))
    .await
    .unwrap();
    let writer = TranscriptWriter::open(&path, Totals::default()).unwrap();
    let events = run(&server, dir.path(), Some(writer), 2).await;
    let (outcome, _) = finished(&events);
    let Outcome::Error { message } = outcome else {
        panic!("{outcome:?}");
    };
    assert!(
        message.contains("overloaded") && message.contains("529"),
        "{message}"
    );
    let transcript = Transcript::read(&path).unwrap();
    assert!(transcript.warnings.is_empty());
    let messages = transcript.conversation().messages();
    assert_eq!(messages.len(), 1, "the prompt is kept");
    assert!(matches!(
        transcript.records.last().unwrap().event,
        Event::RunFinished { .. }
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_transcript_replays_to_the_conversation_the_model_saw() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.txt"), "alpha\n").unwrap();
    let path = dir.path().join("t.jsonl");
    let server = MockModelServer::start(Script::new(vec![
        ScriptedTurn {
            content: vec![
                ScriptedBlock::Text {
                    text: "reading".into(),
                },
                ScriptedBlock::ToolUse {
                    id: Some("r".into()),
                    name: "Read".into(),
                    input: json!({"file_path": dir.path().join("a.txt")}),
                },
                ScriptedBlock::ToolUse {
                    id: Some("g".into()),
                    name: "Glob".into(),
                    input: json!({"pattern": "*.txt"}),
                },
            ],
            ..Default::default()
        },
        ScriptedTurn::text("it says alpha"),
        // The next request (a resumed session's) must carry exactly the history.
        ScriptedTurn::text("unused"),
    ]))
    .await
    .unwrap();
    let writer = TranscriptWriter::open(&path, Totals::default()).unwrap();
    run(&server, dir.path(), Some(writer), 0).await;
    let replayed = Transcript::read(&path).unwrap().conversation().messages();
    let mut last_request = server.requests()[1].body["messages"].clone();
    // Cache breakpoints are request annotations, not conversation content.
    strip_cache_control(&mut last_request);
    let mut expected: Vec<serde_json::Value> = last_request.as_array().unwrap().clone();
    // The final answer is not in the last request; it is the last message of the replay.
    assert_eq!(replayed.len(), expected.len() + 1);
    expected
        .push(json!({"role": "assistant", "content": [{"type": "text", "text": "it says alpha"}]}));
    assert_eq!(serde_json::to_value(&replayed).unwrap(), json!(expected));
}

fn strip_cache_control(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            map.remove("cache_control");
            map.values_mut().for_each(strip_cache_control);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(strip_cache_control),
        _ => {}
    }
}
