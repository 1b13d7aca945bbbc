//! The Anthropic Messages wire format, read back by a plain HTTP client.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use common::{names, parse_sse, post, post_text};
use keel_test_support::{MockModelServer, Script, ScriptedBlock, ScriptedTurn, ScriptedUsage};
use serde_json::{Value, json};

fn request(stream: bool) -> Value {
    json!({
        "model": "claude-test",
        "max_tokens": 1000,
        "stream": stream,
        "messages": [{"role": "user", "content": "hi"}],
    })
}

async fn server(turns: Vec<ScriptedTurn>) -> MockModelServer {
    MockModelServer::start(Script::new(turns)).await.unwrap()
}

#[tokio::test]
async fn text_streams_as_the_api_does() {
    let text = "The quick brown fox jumps over the lazy dog, twice.";
    let server = server(vec![ScriptedTurn::text(text)]).await;
    assert!(server.url().starts_with("http://127.0.0.1:") && !server.url().ends_with('/'));

    let res = post(&server.url(), "/v1/messages", &request(true)).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    let events = parse_sse(&res.text().await.unwrap());
    let kinds = names(&events);
    let deltas = kinds
        .iter()
        .filter(|k| **k == "content_block_delta")
        .count();
    assert!(deltas >= 3, "text arrives in several pieces: {kinds:?}");
    let mut expected = vec!["message_start", "ping", "content_block_start"];
    expected.extend(std::iter::repeat_n("content_block_delta", deltas));
    expected.extend(["content_block_stop", "message_delta", "message_stop"]);
    assert_eq!(kinds, expected);
    for event in &events {
        assert_eq!(event.json()["type"], event.event.as_deref().unwrap());
    }

    let start = events[0].json();
    let message = &start["message"];
    assert!(message["id"].as_str().unwrap().starts_with("msg_"));
    assert_eq!(message["type"], "message");
    assert_eq!(message["role"], "assistant");
    assert_eq!(
        message["model"], "claude-test",
        "the request's model is echoed"
    );
    assert_eq!(message["content"], json!([]));
    assert_eq!(message["stop_reason"], Value::Null);
    assert_eq!(message["usage"]["input_tokens"], 100);
    assert_eq!(message["usage"]["cache_read_input_tokens"], 0);
    assert_eq!(message["usage"]["cache_creation_input_tokens"], 0);

    assert_eq!(
        events[2].json()["content_block"],
        json!({"type": "text", "text": ""})
    );
    let streamed: String = events
        .iter()
        .filter(|e| e.event.as_deref() == Some("content_block_delta"))
        .map(|e| {
            let delta = e.json()["delta"].clone();
            assert_eq!(delta["type"], "text_delta");
            delta["text"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(streamed, text);

    let end = events[events.len() - 2].json();
    assert_eq!(
        end["delta"],
        json!({"stop_reason": "end_turn", "stop_sequence": null})
    );
    assert_eq!(end["usage"]["output_tokens"], 20);
    assert_eq!(server.remaining(), 0);
}

#[tokio::test]
async fn tool_input_arrives_in_pieces_that_parse_to_the_scripted_input() {
    let input = json!({"file_path": "/tmp/ünïcödé/lib.rs", "offset": 10, "limit": [1, 2, 3]});
    let server = server(vec![ScriptedTurn {
        content: vec![
            ScriptedBlock::Text {
                text: "Reading.".into(),
            },
            ScriptedBlock::ToolUse {
                id: None,
                name: "Read".into(),
                input: input.clone(),
            },
            ScriptedBlock::ToolUseRaw {
                id: Some("toolu_bad".into()),
                name: "Read".into(),
                partial_json: "{\"file_path\": \"/etc/hos".into(),
            },
        ],
        ..Default::default()
    }])
    .await;
    let (status, body) = post_text(&server.url(), "/v1/messages", &request(true)).await;
    assert_eq!(status, 200);
    let events = parse_sse(&body);

    let block_starts: Vec<Value> = events
        .iter()
        .filter(|e| e.event.as_deref() == Some("content_block_start"))
        .map(|e| e.json())
        .collect();
    assert_eq!(block_starts.len(), 3);
    let call = &block_starts[1];
    assert_eq!(call["index"], 1);
    assert_eq!(call["content_block"]["type"], "tool_use");
    assert_eq!(call["content_block"]["name"], "Read");
    assert_eq!(call["content_block"]["input"], json!({}));
    let id = call["content_block"]["id"].as_str().unwrap();
    assert!(id.starts_with("toolu_") && id.len() > 10, "{id}");
    assert_eq!(block_starts[2]["content_block"]["id"], "toolu_bad");

    let pieces = |index: u64| -> Vec<String> {
        events
            .iter()
            .map(|e| e.json())
            .filter(|e| e["type"] == "content_block_delta" && e["index"] == index)
            .map(|e| {
                assert_eq!(e["delta"]["type"], "input_json_delta");
                e["delta"]["partial_json"].as_str().unwrap().to_string()
            })
            .collect()
    };
    let good = pieces(1);
    assert!(good.len() > 3, "the input is split: {good:?}");
    assert!(
        good.iter()
            .any(|p| serde_json::from_str::<Value>(p).is_err()),
        "pieces cut through tokens"
    );
    let joined: Value = serde_json::from_str(&good.concat()).unwrap();
    assert_eq!(joined, input);
    assert_eq!(pieces(2).concat(), "{\"file_path\": \"/etc/hos");

    let end = events
        .iter()
        .find(|e| e.event.as_deref() == Some("message_delta"))
        .unwrap()
        .json();
    assert_eq!(end["delta"]["stop_reason"], "tool_use");
}

#[tokio::test]
async fn thinking_streams_deltas_then_a_signature_and_redacted_thinking_comes_whole() {
    let server = server(vec![ScriptedTurn {
        content: vec![
            ScriptedBlock::Thinking {
                thinking: "Let me think about this step by step.".into(),
                signature: Some("sig-abc".into()),
            },
            ScriptedBlock::RedactedThinking {
                data: "opaque-bytes".into(),
            },
            ScriptedBlock::Text {
                text: "Answer.".into(),
            },
        ],
        ..Default::default()
    }])
    .await;
    let (_, body) = post_text(&server.url(), "/v1/messages", &request(true)).await;
    let events: Vec<Value> = parse_sse(&body).iter().map(|e| e.json()).collect();
    let of = |index: u64| -> Vec<&Value> {
        events
            .iter()
            .filter(|e| e["index"] == index && e["type"] != "message_start")
            .collect()
    };

    let thinking = of(0);
    assert_eq!(
        thinking[0]["content_block"],
        json!({"type": "thinking", "thinking": ""})
    );
    let n = thinking.len();
    assert_eq!(thinking[n - 1]["type"], "content_block_stop");
    assert_eq!(
        thinking[n - 2]["delta"],
        json!({"type": "signature_delta", "signature": "sig-abc"})
    );
    let text: String = thinking[1..n - 2]
        .iter()
        .map(|e| {
            assert_eq!(e["delta"]["type"], "thinking_delta");
            e["delta"]["thinking"].as_str().unwrap()
        })
        .collect();
    assert_eq!(text, "Let me think about this step by step.");
    assert!(n - 3 >= 2, "thinking arrives in several deltas");

    let redacted = of(1);
    assert_eq!(redacted.len(), 2, "start and stop only");
    assert_eq!(
        redacted[0]["content_block"],
        json!({"type": "redacted_thinking", "data": "opaque-bytes"})
    );
}

#[tokio::test]
async fn without_stream_the_answer_is_one_message_object() {
    let server = server(vec![ScriptedTurn {
        content: vec![
            ScriptedBlock::Thinking {
                thinking: "hmm".into(),
                signature: None,
            },
            ScriptedBlock::Text {
                text: "Calling a tool.".into(),
            },
            ScriptedBlock::ToolUse {
                id: Some("toolu_1".into()),
                name: "Glob".into(),
                input: json!({"pattern": "*.rs"}),
            },
        ],
        usage: Some(ScriptedUsage {
            input_tokens: 7,
            output_tokens: 3,
            cache_creation_input_tokens: 5,
            cache_read_input_tokens: 11,
        }),
        model: Some("claude-scripted".into()),
        ..Default::default()
    }])
    .await;
    let res = post(&server.url(), "/v1/messages", &request(false)).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/json");
    let message: Value = res.json().await.unwrap();
    assert_eq!(message["type"], "message");
    assert_eq!(message["role"], "assistant");
    assert_eq!(message["model"], "claude-scripted");
    assert_eq!(message["stop_reason"], "tool_use");
    assert_eq!(message["content"][0]["type"], "thinking");
    assert!(
        !message["content"][0]["signature"]
            .as_str()
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        message["content"][1],
        json!({"type": "text", "text": "Calling a tool."})
    );
    assert_eq!(
        message["content"][2],
        json!({"type": "tool_use", "id": "toolu_1", "name": "Glob", "input": {"pattern": "*.rs"}})
    );
    assert_eq!(
        message["usage"],
        json!({"input_tokens": 7, "output_tokens": 3,
               "cache_creation_input_tokens": 5, "cache_read_input_tokens": 11})
    );
}

#[tokio::test]
async fn base_urls_with_a_path_prefix_work_and_count_tokens_answers() {
    let server = server(vec![ScriptedTurn::text("prefixed")]).await;
    let (status, body) = post_text(
        &server.url(),
        "/gateway/anthropic/v1/messages",
        &request(false),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let message: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(message["content"][0]["text"], "prefixed");

    let body = json!({"model": "m", "messages": [{"role": "user", "content": "x".repeat(400)}]});
    let sent = body.to_string().len();
    let (status, text) = post_text(&server.url(), "/v1/messages/count_tokens", &body).await;
    assert_eq!(status, 200);
    let count: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(count["input_tokens"], sent / 4);
    assert_eq!(server.remaining(), 0, "count_tokens does not use up a turn");
    assert_eq!(server.requests().len(), 2);
}
