//! The OpenAI Responses API wire format (what Codex CLI speaks), read back by a plain HTTP client.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use common::{parse_sse, post, post_text};
use keel_test_support::{MockModelServer, Script, ScriptedBlock, ScriptedTurn, TurnMatcher};
use serde_json::{Value, json};

fn request(stream: bool) -> Value {
    json!({
        "model": "gpt-test",
        "instructions": "You are Codex.",
        "stream": stream,
        "input": [{"type": "message", "role": "user",
                   "content": [{"type": "input_text", "text": "fix the bug"}]}],
        "tools": [{"type": "function", "name": "shell", "parameters": {"type": "object"}},
                  {"type": "custom", "name": "apply_patch"}],
    })
}

fn tool_turn() -> ScriptedTurn {
    ScriptedTurn {
        content: vec![
            ScriptedBlock::Text {
                text: "Looking at the file, then patching it.".into(),
            },
            ScriptedBlock::ToolUse {
                id: Some("call_a".into()),
                name: "shell".into(),
                input: json!({"command": ["cat", "a.rs"]}),
            },
            ScriptedBlock::ToolUse {
                id: None,
                name: "apply_patch".into(),
                input: json!("*** Begin Patch\n*** End Patch\n"),
            },
        ],
        ..Default::default()
    }
}

#[tokio::test]
async fn streaming_sends_response_events_for_text_function_and_custom_tool_calls() {
    let server = MockModelServer::start(Script::new(vec![tool_turn()]))
        .await
        .unwrap();
    let res = post(&server.url(), "/v1/responses", &request(true)).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    let events = parse_sse(&res.text().await.unwrap());
    let data: Vec<Value> = events.iter().map(|e| e.json()).collect();
    for (event, json) in events.iter().zip(&data) {
        assert_eq!(event.event.as_deref(), json["type"].as_str());
    }
    assert_eq!(data[0]["type"], "response.created");
    assert_eq!(data[0]["response"]["status"], "in_progress");
    let last = data.last().unwrap();
    assert_eq!(last["type"], "response.completed");
    assert_eq!(last["response"]["usage"]["input_tokens"], 100);
    let sequence: Vec<u64> = data
        .iter()
        .map(|d| d["sequence_number"].as_u64().unwrap())
        .collect();
    assert_eq!(sequence, (0..data.len() as u64).collect::<Vec<_>>());

    let text: String = data
        .iter()
        .filter(|d| d["type"] == "response.output_text.delta")
        .map(|d| d["delta"].as_str().unwrap())
        .collect();
    assert_eq!(text, "Looking at the file, then patching it.");
    let arguments: String = data
        .iter()
        .filter(|d| d["type"] == "response.function_call_arguments.delta")
        .map(|d| d["delta"].as_str().unwrap())
        .collect();
    assert_eq!(
        serde_json::from_str::<Value>(&arguments).unwrap(),
        json!({"command": ["cat", "a.rs"]})
    );

    let done: Vec<&Value> = data
        .iter()
        .filter(|d| d["type"] == "response.output_item.done")
        .map(|d| &d["item"])
        .collect();
    assert_eq!(done.len(), 3);
    assert_eq!(done[0]["type"], "message");
    assert_eq!(done[1]["type"], "function_call");
    assert_eq!(done[1]["call_id"], "call_a");
    assert_eq!(done[1]["name"], "shell");
    assert_eq!(done[2]["type"], "custom_tool_call");
    assert_eq!(done[2]["name"], "apply_patch");
    assert_eq!(done[2]["input"], "*** Begin Patch\n*** End Patch\n");
    assert!(done[2]["call_id"].as_str().unwrap().starts_with("call_"));
    assert_eq!(last["response"]["output"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn non_streaming_answers_one_response_object() {
    let server = MockModelServer::start(Script::new(vec![ScriptedTurn::text("All done.")]))
        .await
        .unwrap();
    let (status, body) = post_text(&server.url(), "/v1/responses", &request(false)).await;
    assert_eq!(status, 200);
    let response: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(response["object"], "response");
    assert_eq!(response["status"], "completed");
    assert_eq!(response["output"][0]["content"][0]["text"], "All done.");
}

#[tokio::test]
async fn matchers_read_instructions_and_input() {
    let turn = |needle: &str, text: &str, system: bool| ScriptedTurn {
        when: Some(if system {
            TurnMatcher {
                system_contains: Some(needle.into()),
                ..Default::default()
            }
        } else {
            TurnMatcher {
                messages_contain: Some(needle.into()),
                ..Default::default()
            }
        }),
        ..ScriptedTurn::text(text)
    };
    let server = MockModelServer::start(Script::new(vec![
        turn("not there", "wrong", false),
        turn("fix the bug", "by input", false),
        turn("You are Codex", "by instructions", true),
    ]))
    .await
    .unwrap();
    for expected in ["by input", "by instructions"] {
        let (_, body) = post_text(&server.url(), "/v1/responses", &request(false)).await;
        let response: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(response["output"][0]["content"][0]["text"], expected);
    }
}

#[tokio::test]
async fn errors_use_the_openai_error_shape() {
    let server = MockModelServer::start(Script::new(vec![])).await.unwrap();
    let (status, body) = post_text(&server.url(), "/v1/responses", &request(true)).await;
    assert_eq!(status, 500);
    let error: Value = serde_json::from_str(&body).unwrap();
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("exhausted")
    );
}
