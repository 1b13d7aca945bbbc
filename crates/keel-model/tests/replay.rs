//! Replay and record: the shipped quickstart replays as a realistic stream, a recorded mock
//! conversation replays identically, failed attempts are not recorded, and running past the
//! end of a recording says what to do.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod quickstart;

use std::sync::Arc;

use common::{anthropic, complete, drain, openai, request};
use keel_model::{
    BlockStart, ModelClient, ModelError, ModelRequest, RecordingClient, ReplayClient, StreamEvent,
    parse_records,
};
use keel_protocol::{AssistantMessage, ContentBlock, Message, Role, StopReason, ToolResultContent};
use keel_test_support::{MockModelServer, Script, ScriptedBlock, ScriptedTurn, ScriptedUsage};
use serde_json::{Value, json};

/// A compact picture of an event sequence: one letter per event kind, with the block kind at
/// its start (`T` text, `U` tool use, `H` thinking), deltas as `.`, stops as `|`.
fn shape(events: &[StreamEvent]) -> String {
    events
        .iter()
        .map(|e| match e {
            StreamEvent::MessageStart { .. } => "<",
            StreamEvent::BlockStart { block, .. } => match block {
                BlockStart::Text => "T",
                BlockStart::ToolUse { .. } => "U",
                BlockStart::Thinking => "H",
                BlockStart::RedactedThinking { .. } => "R",
                BlockStart::Raw { .. } => "X",
            },
            StreamEvent::TextDelta { .. }
            | StreamEvent::InputJsonDelta { .. }
            | StreamEvent::ThinkingDelta { .. } => ".",
            StreamEvent::SignatureDelta { .. } => "s",
            StreamEvent::CitationDelta { .. } => "c",
            StreamEvent::BlockStop { .. } => "|",
            StreamEvent::MessageDelta { .. } => "d",
            StreamEvent::MessageStop => ">",
            StreamEvent::Ping => "p",
        })
        .collect()
}

fn tool_result(message: &AssistantMessage) -> Message {
    Message {
        role: Role::User,
        content: message
            .tool_uses()
            .map(|call| ContentBlock::ToolResult {
                tool_use_id: call.id.to_string(),
                content: ToolResultContent::Text("ok".into()),
                is_error: false,
            })
            .collect(),
    }
}

#[tokio::test]
async fn the_quickstart_replays_grep_read_edit_bash_and_an_answer() {
    let path = quickstart::examples_dir().join("quickstart.jsonl");
    let client = ReplayClient::open(&path).await.unwrap();
    assert_eq!(client.len(), 4);
    let mut request = ModelRequest::new("mock-model", vec![Message::user_text(quickstart::PROMPT)]);
    let mut shapes = Vec::new();
    let mut calls = Vec::new();
    let mut last = None;
    for _ in 0..4 {
        let (events, error) = drain(client.stream(&request).await.unwrap()).await;
        assert!(error.is_none());
        shapes.push(shape(&events));
        let message = common::assemble(&events);
        calls.extend(
            message
                .tool_uses()
                .map(|c| (c.name.to_string(), c.input.clone())),
        );
        request.messages.push(message.to_message());
        request.messages.push(tool_result(&message));
        last = Some(message);
    }
    // Text arrives in several deltas and tool input in several pieces, as from a live model.
    let re = |s: &str| s.chars().filter(|c| *c == '.').count();
    assert!(
        shapes[0].starts_with("<T..") && shapes[0].ends_with("|d>"),
        "{}",
        shapes[0]
    );
    assert_eq!(shapes[0].matches('U').count(), 2, "{}", shapes[0]);
    assert!(re(&shapes[2]) >= 3, "{}", shapes[2]);
    assert_eq!(
        calls,
        vec![
            (
                "Grep".to_string(),
                json!({"pattern": "def add", "output_mode": "content"})
            ),
            ("Read".to_string(), json!({"file_path": "calc.py"})),
            (
                "Edit".to_string(),
                json!({"file_path": "calc.py", "old_string": "return a - b", "new_string": "return a + b"})
            ),
            (
                "Bash".to_string(),
                json!({"command": "python3 test_calc.py && echo 'all tests pass'", "description": "Run the tests"})
            ),
        ]
    );
    let last = last.unwrap();
    assert_eq!(last.stop_reason, Some(StopReason::EndTurn));
    assert!(
        last.text().starts_with("Fixed `calc.py:2`"),
        "{}",
        last.text()
    );
    assert_eq!(client.served(), 4);

    // One request too many: the recording ran out.
    let Err(error) = client.stream(&request).await else {
        panic!("a fifth response was invented");
    };
    assert!(matches!(error, ModelError::Replay(_)));
    assert!(!error.is_retryable());
    let text = error.to_string();
    assert!(
        text.contains("has 4 responses; the session asked for more (request 5)"),
        "{text}"
    );
    assert!(text.contains("record it again with --record"), "{text}");
}

/// A record with the random ids blanked, to compare two recordings of the same script.
fn normalised(text: &str) -> Vec<Value> {
    parse_records(text, "quickstart")
        .unwrap()
        .into_iter()
        .map(|record| {
            let mut value = serde_json::to_value(record).unwrap();
            value["response"]["id"] = json!("");
            for block in value["response"]["content"].as_array_mut().unwrap() {
                if block.get("id").is_some() {
                    block["id"] = json!("");
                }
            }
            value
        })
        .collect()
}

#[tokio::test]
async fn the_shipped_quickstart_is_what_the_recording_program_produces() {
    let dir = tempfile::tempdir().unwrap();
    let fresh = dir.path().join("quickstart.jsonl");
    quickstart::record(&fresh).await;
    let shipped =
        std::fs::read_to_string(quickstart::examples_dir().join("quickstart.jsonl")).unwrap();
    assert_eq!(
        normalised(&std::fs::read_to_string(&fresh).unwrap()),
        normalised(&shipped),
        "examples/quickstart.jsonl is stale: run `cargo run -p keel-model --example record_quickstart`"
    );
}

fn rich_turns() -> Vec<ScriptedTurn> {
    vec![
        ScriptedTurn {
            content: vec![
                ScriptedBlock::Thinking {
                    thinking: "The test fails because add subtracts; read it to be sure.".into(),
                    signature: Some("sig-1".into()),
                },
                ScriptedBlock::RedactedThinking {
                    data: "opaque-bytes".into(),
                },
                ScriptedBlock::Text {
                    text: "Let me look at calc.py and the tests together.".into(),
                },
                ScriptedBlock::ToolUse {
                    id: Some("toolu_r1".into()),
                    name: "Read".into(),
                    input: json!({"file_path": "calc.py", "offset": 1, "limit": 40}),
                },
                ScriptedBlock::ToolUseRaw {
                    id: Some("toolu_r2".into()),
                    name: "Grep".into(),
                    partial_json: "{\"pattern\": \"def add".into(),
                },
            ],
            usage: Some(ScriptedUsage {
                input_tokens: 900,
                output_tokens: 120,
                cache_creation_input_tokens: 4000,
                cache_read_input_tokens: 0,
            }),
            ..ScriptedTurn::default()
        },
        ScriptedTurn {
            content: vec![ScriptedBlock::Text {
                text: "It subtracts; the fix is one character.".into(),
            }],
            stop_reason: Some("max_tokens".into()),
            ..ScriptedTurn::default()
        },
    ]
}

async fn live_then_replayed(client: Arc<dyn ModelClient>) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("run.jsonl");
    let recorder = RecordingClient::create(&file, client).await.unwrap();
    assert_eq!(recorder.path(), file);
    let mut req = request("claude-sonnet-4-5");
    let mut live = Vec::new();
    for _ in 0..2 {
        let (events, error) = drain(recorder.stream(&req).await.unwrap()).await;
        assert!(error.is_none(), "{error:?}");
        let assembled = {
            let mut acc = keel_model::MessageAccumulator::new();
            events.iter().for_each(|e| acc.push(e));
            acc.finish()
        };
        req.messages.push(assembled.message.to_message());
        req.messages.push(tool_result(&assembled.message));
        live.push(assembled);
    }
    assert_eq!(
        std::fs::read_to_string(&file).unwrap().lines().count(),
        2,
        "one flushed line per response"
    );

    let replay = ReplayClient::open(&file).await.unwrap();
    let mut req = request("claude-sonnet-4-5");
    for recorded in &live {
        let (events, error) = drain(replay.stream(&req).await.unwrap()).await;
        assert!(error.is_none());
        let mut acc = keel_model::MessageAccumulator::new();
        events.iter().for_each(|e| acc.push(e));
        assert!(acc.is_complete());
        let replayed = acc.finish();
        assert_eq!(
            &replayed, recorded,
            "the replay differs from the live answer"
        );
        req.messages.push(replayed.message.to_message());
        req.messages.push(tool_result(&replayed.message));
    }
}

#[tokio::test]
async fn a_recorded_anthropic_conversation_replays_identically() {
    let server = MockModelServer::start(Script::new(rich_turns()))
        .await
        .unwrap();
    live_then_replayed(Arc::new(anthropic(&server))).await;
}

#[tokio::test]
async fn a_recorded_openai_conversation_replays_identically() {
    let server = MockModelServer::start(Script::new(rich_turns()))
        .await
        .unwrap();
    live_then_replayed(Arc::new(openai(&server))).await;
}

#[tokio::test]
async fn failed_attempts_are_not_recorded() {
    let cut = ScriptedTurn {
        cut_after_events: Some(4),
        ..ScriptedTurn::text("a long answer that will be cut off before it ends")
    };
    let server = MockModelServer::start(Script::new(vec![cut, ScriptedTurn::text("second try")]))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("run.jsonl");
    let recorder = RecordingClient::create(&file, Arc::new(anthropic(&server)))
        .await
        .unwrap();
    let (_, error) = drain(recorder.stream(&request("m")).await.unwrap()).await;
    assert!(matches!(error, Some(ModelError::StreamEnded)));
    assert_eq!(
        complete(&recorder, &request("m")).await.text(),
        "second try"
    );
    let records = parse_records(&std::fs::read_to_string(&file).unwrap(), "run").unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].response.text(), "second try");
    assert_eq!(records[0].request.as_ref().unwrap().last, "fix the test");
}

#[tokio::test]
async fn an_unwritable_record_file_is_named() {
    let server = MockModelServer::start(Script::default()).await.unwrap();
    let error = RecordingClient::create(
        std::path::Path::new("/no/such/dir/run.jsonl"),
        Arc::new(anthropic(&server)),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        error.starts_with("cannot write the record file /no/such/dir/run.jsonl"),
        "{error}"
    );
}
