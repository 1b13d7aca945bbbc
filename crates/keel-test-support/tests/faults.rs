//! Fault injection: HTTP errors, delays, cut, stalled and malformed streams, stream errors.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use std::time::{Duration, Instant};

use common::{client, names, parse_sse, post, post_text, read_until_end};
use futures::StreamExt;
use keel_test_support::{HttpError, MockModelServer, Script, ScriptedTurn, StreamError};
use serde_json::{Value, json};

fn request(stream: bool) -> Value {
    json!({"model": "m", "max_tokens": 10, "stream": stream, "messages": []})
}

const LONG: &str = "one two three four five six seven eight nine ten eleven twelve";

async fn serve(turn: ScriptedTurn) -> MockModelServer {
    MockModelServer::start(Script::new(vec![turn]))
        .await
        .unwrap()
}

#[tokio::test]
async fn http_error_has_the_status_the_body_and_retry_after() {
    let server = MockModelServer::start(Script::new(vec![
        ScriptedTurn {
            http_error: Some(HttpError {
                status: 429,
                error_type: "rate_limit_error".into(),
                message: "slow down".into(),
                retry_after: Some("7".into()),
            }),
            ..Default::default()
        },
        ScriptedTurn::http_error(529, "", ""),
        ScriptedTurn::http_error(503, "server_error", "upstream down"),
    ]))
    .await
    .unwrap();

    let res = post(&server.url(), "/v1/messages", &request(true)).await;
    assert_eq!(res.status(), 429);
    assert_eq!(res.headers()["retry-after"], "7");
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        body,
        json!({"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}})
    );

    // Left empty, the type follows the status as the real API's would.
    let res = post(&server.url(), "/v1/messages", &request(false)).await;
    assert_eq!(res.status(), 529);
    assert!(res.headers().get("retry-after").is_none());
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["type"], "overloaded_error");

    // The OpenAI endpoint answers in OpenAI's error shape.
    let res = post(&server.url(), "/v1/chat/completions", &request(true)).await;
    assert_eq!(res.status(), 503);
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        body,
        json!({"error": {"message": "upstream down", "type": "server_error", "code": null}})
    );
}

#[tokio::test]
async fn delay_holds_the_response_back_but_the_request_is_recorded_on_arrival() {
    let server = serve(ScriptedTurn {
        delay_ms: Some(1500),
        ..ScriptedTurn::text("late")
    })
    .await;
    let url = server.url();
    let started = Instant::now();
    let call = tokio::spawn(async move { post_text(&url, "/v1/messages", &request(false)).await });
    let recorded = server
        .wait_for_requests(1, Duration::from_secs(10))
        .await
        .unwrap();
    assert!(
        !call.is_finished(),
        "the request is recorded before the delayed answer is sent"
    );
    let arrived_us = recorded[0].received_unix_us;
    let (status, body) = call.await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(started.elapsed() >= Duration::from_millis(1500));
    let now_us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64;
    assert!(
        now_us - arrived_us >= 1_500_000,
        "recorded before the delay"
    );
}

#[tokio::test]
async fn event_delay_spaces_the_events_out() {
    let server = serve(ScriptedTurn {
        event_delay_ms: Some(40),
        ..ScriptedTurn::text(LONG)
    })
    .await;
    let started = Instant::now();
    let (_, body) = post_text(&server.url(), "/v1/messages", &request(true)).await;
    let events = parse_sse(&body);
    let gaps = events.len() as u32 - 1;
    assert!(gaps >= 8);
    assert!(started.elapsed() >= Duration::from_millis(40) * gaps);
}

#[tokio::test]
async fn cut_after_events_ends_the_stream_after_exactly_that_many() {
    let server = serve(ScriptedTurn {
        cut_after_events: Some(4),
        ..ScriptedTurn::text(LONG)
    })
    .await;
    let res = post(&server.url(), "/v1/messages", &request(true)).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["connection"], "close");
    let (text, failed) = read_until_end(res).await;
    assert!(!failed, "the body just ends");
    let events = parse_sse(&text);
    assert_eq!(
        names(&events),
        [
            "message_start",
            "ping",
            "content_block_start",
            "content_block_delta"
        ]
    );

    // Non-streaming: an empty body where the JSON should be.
    let server = serve(ScriptedTurn {
        cut_after_events: Some(0),
        ..ScriptedTurn::text("x")
    })
    .await;
    let (status, body) = post_text(&server.url(), "/v1/messages", &request(false)).await;
    assert_eq!(status, 200);
    assert_eq!(body, "");
}

#[tokio::test]
async fn abort_after_events_breaks_the_connection_mid_body() {
    let server = serve(ScriptedTurn {
        abort_after_events: Some(3),
        ..ScriptedTurn::text(LONG)
    })
    .await;
    let res = post(&server.url(), "/v1/messages", &request(true)).await;
    assert_eq!(res.status(), 200);
    let (text, failed) = read_until_end(res).await;
    assert!(failed, "the client sees a transport error, not a clean end");
    assert_eq!(
        names(&parse_sse(&text)),
        ["message_start", "ping", "content_block_start"]
    );

    // Non-streaming: the body never completes.
    let server = serve(ScriptedTurn {
        abort_after_events: Some(0),
        ..ScriptedTurn::text("x")
    })
    .await;
    let res = client()
        .post(format!("{}/v1/messages", server.url()))
        .json(&request(false))
        .send()
        .await;
    if let Ok(res) = res {
        assert!(res.bytes().await.is_err());
    }
}

#[tokio::test]
async fn stall_sends_nothing_more_but_keeps_the_connection_open() {
    let server = serve(ScriptedTurn {
        stall_after_events: Some(3),
        ..ScriptedTurn::text(LONG)
    })
    .await;
    let res = post(&server.url(), "/v1/messages", &request(true)).await;
    let mut stream = res.bytes_stream();
    let mut text = String::new();
    while parse_sse(&text).len() < 3 || !text.ends_with("\n\n") {
        let chunk = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .expect("the first events arrive")
            .expect("the stream is open")
            .unwrap();
        text.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    assert_eq!(
        names(&parse_sse(&text)),
        ["message_start", "ping", "content_block_start"]
    );
    // An idle-timeout assertion: nothing, not even the end of the stream, arrives.
    let next = tokio::time::timeout(Duration::from_millis(700), stream.next()).await;
    assert!(next.is_err(), "expected silence, got {next:?}");

    // Stopping the server ends the stalled response instead of leaving it hanging.
    drop(server);
    let after = tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("the stalled stream ends when the server is dropped");
    assert!(!matches!(after, Some(Ok(_))), "{after:?}");
}

#[tokio::test]
async fn a_malformed_event_arrives_then_the_stream_goes_on() {
    let server = serve(ScriptedTurn {
        malformed_after_events: Some(3),
        ..ScriptedTurn::text(LONG)
    })
    .await;
    let (_, body) = post_text(&server.url(), "/v1/messages", &request(true)).await;
    let events = parse_sse(&body);
    let broken: Vec<usize> = events
        .iter()
        .enumerate()
        .filter(|(_, e)| serde_json::from_str::<Value>(&e.data).is_err())
        .map(|(i, _)| i)
        .collect();
    assert_eq!(
        broken,
        [3],
        "exactly one broken event, after three good ones"
    );
    assert!(
        events[3]
            .data
            .starts_with("{\"type\": \"content_block_delta\", \"ind")
    );
    assert_eq!(
        events.last().unwrap().event.as_deref(),
        Some("message_stop")
    );

    // Non-streaming: the body is truncated JSON.
    let server = serve(ScriptedTurn {
        malformed_after_events: Some(0),
        ..ScriptedTurn::text("x")
    })
    .await;
    let (status, body) = post_text(&server.url(), "/v1/messages", &request(false)).await;
    assert_eq!(status, 200);
    assert!(serde_json::from_str::<Value>(&body).is_err(), "{body}");
}

#[tokio::test]
async fn stream_error_replaces_the_end_of_the_message() {
    let overloaded = || StreamError {
        error_type: "overloaded_error".into(),
        message: "Overloaded".into(),
    };
    let server = MockModelServer::start(Script::new(vec![
        ScriptedTurn {
            stream_error: Some(overloaded()),
            ..ScriptedTurn::text("partial answer")
        },
        ScriptedTurn {
            stream_error: Some(overloaded()),
            ..ScriptedTurn::text("partial answer")
        },
        ScriptedTurn {
            stream_error: Some(overloaded()),
            ..ScriptedTurn::text("partial answer")
        },
    ]))
    .await
    .unwrap();

    let (status, body) = post_text(&server.url(), "/v1/messages", &request(true)).await;
    assert_eq!(status, 200);
    let events = parse_sse(&body);
    let kinds = names(&events);
    assert_eq!(kinds.last(), Some(&"error"), "{kinds:?}");
    assert!(kinds.contains(&"content_block_stop"));
    assert!(!kinds.contains(&"message_delta") && !kinds.contains(&"message_stop"));
    assert_eq!(
        events.last().unwrap().json(),
        json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
    );

    // OpenAI: an error chunk, and no [DONE].
    let (_, body) = post_text(&server.url(), "/v1/chat/completions", &request(true)).await;
    let events = parse_sse(&body);
    let last = events.last().unwrap();
    assert_eq!(
        last.json(),
        json!({"error": {"message": "Overloaded", "type": "overloaded_error", "code": null}})
    );
    assert!(!body.contains("[DONE]"));

    // Non-streaming: the failure surfaces as the status the API would send.
    let (status, body) = post_text(&server.url(), "/v1/messages", &request(false)).await;
    assert_eq!(status, 529);
    assert!(body.contains("overloaded_error"));
}
