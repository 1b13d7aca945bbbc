//! The OpenAI Chat Completions wire format, read back by a plain HTTP client.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use common::{parse_sse, post, post_text};
use keel_test_support::{MockModelServer, Script, ScriptedBlock, ScriptedTurn, ScriptedUsage};
use serde_json::{Value, json};

fn request(stream: bool, include_usage: bool) -> Value {
    let mut body = json!({
        "model": "gpt-test",
        "stream": stream,
        "messages": [{"role": "user", "content": "hi"}],
    });
    if include_usage {
        body["stream_options"] = json!({"include_usage": true});
    }
    body
}

fn tool_turn() -> ScriptedTurn {
    ScriptedTurn {
        content: vec![
            ScriptedBlock::Thinking {
                thinking: "I should read both files first.".into(),
                signature: None,
            },
            ScriptedBlock::Text {
                text: "Reading the two files now.".into(),
            },
            ScriptedBlock::ToolUse {
                id: Some("call_a".into()),
                name: "Read".into(),
                input: json!({"file_path": "/work/a.rs"}),
            },
            ScriptedBlock::ToolUse {
                id: None,
                name: "Read".into(),
                input: json!({"file_path": "/work/b.rs", "limit": 20}),
            },
        ],
        ..Default::default()
    }
}

/// The JSON chunks of a stream, and whether it ended with `[DONE]`.
fn chunks(body: &str) -> (Vec<Value>, bool) {
    let events = parse_sse(body);
    assert!(
        events.iter().all(|e| e.event.is_none()),
        "OpenAI streams have no event names"
    );
    let done = events.last().is_some_and(|e| e.data == "[DONE]");
    let chunks = events
        .iter()
        .filter(|e| e.data != "[DONE]")
        .map(|e| e.json())
        .collect();
    (chunks, done)
}

#[tokio::test]
async fn streaming_sends_text_reasoning_and_several_tool_calls_in_pieces() {
    let server = MockModelServer::start(Script::new(vec![tool_turn()]))
        .await
        .unwrap();
    let res = post(&server.url(), "/v1/chat/completions", &request(true, false)).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    let (chunks, done) = chunks(&res.text().await.unwrap());
    assert!(done, "the stream ends with [DONE]");
    for chunk in &chunks {
        assert_eq!(chunk["object"], "chat.completion.chunk");
        assert_eq!(chunk["model"], "gpt-test");
        assert!(chunk["id"].as_str().unwrap().starts_with("chatcmpl-"));
    }
    assert!(
        chunks.iter().all(|c| c.get("usage").is_none()),
        "no usage unless asked"
    );
    assert_eq!(
        chunks[0]["choices"][0]["delta"],
        json!({"role": "assistant", "content": ""})
    );

    let deltas: Vec<&Value> = chunks.iter().map(|c| &c["choices"][0]["delta"]).collect();
    let joined = |field: &str| -> (String, usize) {
        let pieces: Vec<&str> = deltas.iter().filter_map(|d| d[field].as_str()).collect();
        (pieces.concat(), pieces.len())
    };
    let (reasoning, n) = joined("reasoning_content");
    assert_eq!(reasoning, "I should read both files first.");
    assert!(n >= 2);
    let (content, n) = joined("content");
    assert_eq!(content, "Reading the two files now.");
    assert!(n >= 3, "the empty first content plus several pieces");

    let calls: Vec<&Value> = deltas
        .iter()
        .filter_map(|d| d["tool_calls"].as_array())
        .map(|calls| {
            assert_eq!(calls.len(), 1);
            &calls[0]
        })
        .collect();
    for index in [0, 1] {
        let mine: Vec<&&Value> = calls.iter().filter(|c| c["index"] == index).collect();
        let head = mine[0];
        assert_eq!(head["type"], "function");
        assert_eq!(head["function"]["name"], "Read");
        assert_eq!(head["function"]["arguments"], "");
        assert!(mine.len() > 3, "arguments arrive in several pieces");
        assert!(mine[1..].iter().all(|c| c.get("id").is_none()));
        let args: String = mine
            .iter()
            .map(|c| c["function"]["arguments"].as_str().unwrap())
            .collect();
        let args: Value = serde_json::from_str(&args).unwrap();
        if index == 0 {
            assert_eq!(head["id"], "call_a");
            assert_eq!(args, json!({"file_path": "/work/a.rs"}));
        } else {
            assert!(head["id"].as_str().unwrap().starts_with("call_"));
            assert_ne!(head["id"], "call_a");
            assert_eq!(args, json!({"file_path": "/work/b.rs", "limit": 20}));
        }
    }

    let last = chunks.last().unwrap();
    assert_eq!(last["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(last["choices"][0]["delta"], json!({}));
    let finishes = chunks
        .iter()
        .filter(|c| !c["choices"][0]["finish_reason"].is_null())
        .count();
    assert_eq!(finishes, 1);
}

#[tokio::test]
async fn usage_chunk_comes_only_when_asked_for() {
    let server = MockModelServer::start(Script::new(vec![ScriptedTurn {
        usage: Some(ScriptedUsage {
            input_tokens: 10,
            output_tokens: 4,
            cache_creation_input_tokens: 0,
            cache_read_input_tokens: 30,
        }),
        stop_reason: Some("max_tokens".into()),
        ..ScriptedTurn::text("cut short")
    }]))
    .await
    .unwrap();
    let (_, body) = post_text(&server.url(), "/v1/chat/completions", &request(true, true)).await;
    let (chunks, done) = chunks(&body);
    assert!(done);
    let usage_chunk = chunks.last().unwrap();
    assert_eq!(usage_chunk["choices"], json!([]));
    assert_eq!(
        usage_chunk["usage"],
        json!({"prompt_tokens": 40, "completion_tokens": 4, "total_tokens": 44,
               "prompt_tokens_details": {"cached_tokens": 30}})
    );
    let finish = &chunks[chunks.len() - 2];
    assert_eq!(finish["choices"][0]["finish_reason"], "length");
}

#[tokio::test]
async fn non_streaming_returns_one_completion() {
    let server = MockModelServer::start(Script::new(vec![
        tool_turn(),
        ScriptedTurn::text("All good."),
    ]))
    .await
    .unwrap();
    let res = post(
        &server.url(),
        "/v1/chat/completions",
        &request(false, false),
    )
    .await;
    assert_eq!(res.status(), 200);
    let completion: Value = res.json().await.unwrap();
    assert_eq!(completion["object"], "chat.completion");
    assert_eq!(completion["model"], "gpt-test");
    let choice = &completion["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    let message = &choice["message"];
    assert_eq!(message["role"], "assistant");
    assert_eq!(message["content"], "Reading the two files now.");
    assert_eq!(
        message["reasoning_content"],
        "I should read both files first."
    );
    let calls = message["tool_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0]["id"], "call_a");
    assert_eq!(calls[0]["type"], "function");
    assert_eq!(calls[0]["function"]["name"], "Read");
    let args = calls[1]["function"]["arguments"].as_str().unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(args).unwrap(),
        json!({"file_path": "/work/b.rs", "limit": 20})
    );
    assert_eq!(
        completion["usage"],
        json!({"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120,
               "prompt_tokens_details": {"cached_tokens": 0}})
    );

    // A prefixed base URL without /v1 routes too.
    let (status, body) = post_text(
        &server.url(),
        "/api/chat/completions",
        &request(false, false),
    )
    .await;
    assert_eq!(status, 200);
    let completion: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(completion["choices"][0]["message"]["content"], "All good.");
    assert_eq!(completion["choices"][0]["finish_reason"], "stop");
    assert!(
        completion["choices"][0]["message"]
            .get("tool_calls")
            .is_none()
    );
}

#[tokio::test]
async fn streaming_with_tools_can_be_refused_like_old_local_servers() {
    let server = MockModelServer::start(
        Script::new(vec![tool_turn(), ScriptedTurn::text("streamed")])
            .openai_stream_tool_calls(false),
    )
    .await
    .unwrap();
    let mut with_tools = request(true, false);
    with_tools["tools"] =
        json!([{"type": "function", "function": {"name": "Read", "parameters": {}}}]);

    let (status, body) = post_text(&server.url(), "/v1/chat/completions", &with_tools).await;
    assert_eq!(status, 400);
    let err: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        err["error"]["message"],
        "tools are not supported in streaming mode"
    );
    assert_eq!(server.remaining(), 2, "the refusal uses up no turn");

    // The client's fallback: the same request without streaming is served.
    with_tools["stream"] = json!(false);
    let (status, body) = post_text(&server.url(), "/v1/chat/completions", &with_tools).await;
    assert_eq!(status, 200);
    let completion: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(completion["choices"][0]["finish_reason"], "tool_calls");

    // Streaming without tools still works.
    let (status, body) =
        post_text(&server.url(), "/v1/chat/completions", &request(true, false)).await;
    assert_eq!(status, 200);
    let (chunks, done) = chunks(&body);
    assert!(done);
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, "streamed");
}

#[tokio::test]
async fn faults_apply_to_openai_streams_too() {
    let server = MockModelServer::start(Script::new(vec![
        ScriptedTurn {
            malformed_after_events: Some(1),
            ..ScriptedTurn::text("one two three four five six")
        },
        ScriptedTurn {
            cut_after_events: Some(2),
            ..ScriptedTurn::text("one two three four five six")
        },
        ScriptedTurn {
            abort_after_events: Some(2),
            ..ScriptedTurn::text("one two three four five six")
        },
    ]))
    .await
    .unwrap();
    let (_, body) = post_text(&server.url(), "/v1/chat/completions", &request(true, false)).await;
    let events = parse_sse(&body);
    let broken: Vec<usize> = events
        .iter()
        .enumerate()
        .filter(|(_, e)| e.data != "[DONE]" && serde_json::from_str::<Value>(&e.data).is_err())
        .map(|(i, _)| i)
        .collect();
    assert_eq!(broken, [1]);
    assert_eq!(events.last().unwrap().data, "[DONE]");

    for abort in [false, true] {
        let res = post(&server.url(), "/v1/chat/completions", &request(true, false)).await;
        let (text, failed) = common::read_until_end(res).await;
        assert_eq!(
            failed, abort,
            "cut ends cleanly, abort breaks the connection"
        );
        assert_eq!(parse_sse(&text).len(), 2);
        assert!(!text.contains("[DONE]"));
    }
}
