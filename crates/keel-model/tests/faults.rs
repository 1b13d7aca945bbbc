//! Faults a real network and a busy API produce, for both wire formats: each must surface as a
//! retryable error (so the engine's retry loop can recover the turn) with the right retry delay,
//! and a stalled stream must end at the idle timeout instead of hanging the session.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{anthropic, complete, drain, openai, openai_config, request};
use keel_model::{ModelClient, ModelError, OpenAiClient, ProviderKind, RetryPolicy, StreamEvent};
use keel_test_support::{HttpError, MockModelServer, Script, ScriptedTurn, StreamError};
use serde_json::json;

#[derive(Debug, Clone, Copy)]
enum Wire {
    Anthropic,
    OpenAi,
}

const BOTH: [Wire; 2] = [Wire::Anthropic, Wire::OpenAi];

fn client(wire: Wire, server: &MockModelServer) -> Box<dyn ModelClient> {
    match wire {
        Wire::Anthropic => Box::new(anthropic(server)),
        Wire::OpenAi => Box::new(openai(server)),
    }
}

fn tool_turn() -> ScriptedTurn {
    ScriptedTurn::tool_use(
        "Edit",
        json!({"file_path": "calc.py", "old_string": "return a - b", "new_string": "return a + b"}),
    )
}

/// Streams one request and returns what arrived before the error, and the error.
async fn failed(wire: Wire, turn: ScriptedTurn) -> (Vec<StreamEvent>, ModelError, Duration) {
    let server = MockModelServer::start(Script::new(vec![turn]))
        .await
        .unwrap();
    let client = client(wire, &server);
    let started = Instant::now();
    let stream = client.stream(&request("m")).await.unwrap();
    let (events, error) = drain(stream).await;
    let error = error.unwrap_or_else(|| panic!("{wire:?}: the stream did not fail: {events:?}"));
    (events, error, started.elapsed())
}

#[tokio::test]
async fn overloaded_then_success_is_retried_after_the_servers_retry_after() {
    for wire in BOTH {
        let overloaded = ScriptedTurn {
            http_error: Some(HttpError {
                status: 529,
                error_type: "overloaded_error".into(),
                message: "Overloaded".into(),
                retry_after: Some("3".into()),
            }),
            ..ScriptedTurn::default()
        };
        let server =
            MockModelServer::start(Script::new(vec![overloaded, ScriptedTurn::text("done")]))
                .await
                .unwrap();
        let client = client(wire, &server);
        let Err(error) = client.stream(&request("m")).await else {
            panic!("{wire:?}: the 529 was not reported");
        };
        assert!(
            matches!(error, ModelError::Api { status: 529, .. }),
            "{wire:?}: {error}"
        );
        assert!(error.is_retryable());
        assert_eq!(error.retry_after(), Some(Duration::from_secs(3)));
        let retry = RetryPolicy::default().decide(1, &error).unwrap();
        assert_eq!(
            retry.delay,
            Duration::from_secs(3),
            "retry-after replaces the backoff"
        );
        assert!(retry.message.contains("overloaded"), "{}", retry.message);
        // The engine waits, then resends: the second attempt succeeds.
        assert_eq!(
            complete(client.as_ref(), &request("m")).await.text(),
            "done"
        );
    }
}

#[tokio::test]
async fn rate_limits_without_retry_after_back_off_exponentially() {
    for wire in BOTH {
        let server = MockModelServer::start(Script::new(vec![ScriptedTurn::http_error(
            429,
            "rate_limit_error",
            "slow down",
        )]))
        .await
        .unwrap();
        let Err(error) = client(wire, &server).stream(&request("m")).await else {
            panic!("{wire:?}: the 429 was not reported");
        };
        assert_eq!(error.retry_after(), None);
        let policy = RetryPolicy::default();
        let delays: Vec<Duration> = (1..=4)
            .map(|attempt| {
                policy
                    .decide_with_jitter(attempt, &error, 0.999_999)
                    .unwrap()
                    .delay
            })
            .collect();
        assert!(delays.windows(2).all(|w| w[1] > w[0]), "{delays:?}");
        assert!(delays[0] < Duration::from_millis(501) && delays[3] > Duration::from_millis(3900));
        assert_eq!(
            policy.delay(11, &error),
            None,
            "ten retries, then the error stands"
        );
    }
}

#[tokio::test]
async fn a_stream_cut_inside_a_tool_call_is_a_retryable_early_end() {
    // Anthropic: message_start, ping, content_block_start, then 2 of the input pieces.
    // OpenAI: the role chunk, the call's head, then 2 argument pieces.
    for (wire, cut) in [(Wire::Anthropic, 5), (Wire::OpenAi, 4)] {
        let turn = ScriptedTurn {
            cut_after_events: Some(cut),
            ..tool_turn()
        };
        let (events, error, _) = failed(wire, turn).await;
        assert!(
            events
                .iter()
                .any(|e| matches!(e, StreamEvent::InputJsonDelta { .. })),
            "{wire:?}: the cut should land inside the tool input: {events:?}"
        );
        assert!(
            matches!(error, ModelError::StreamEnded),
            "{wire:?}: {error}"
        );
        assert!(error.is_retryable());
        assert!(!events.contains(&StreamEvent::MessageStop));
    }
}

#[tokio::test]
async fn a_connection_broken_mid_stream_is_retryable() {
    for wire in BOTH {
        let turn = ScriptedTurn {
            abort_after_events: Some(4),
            ..tool_turn()
        };
        let (_, error, _) = failed(wire, turn).await;
        assert!(
            matches!(error, ModelError::StreamBroken(_)),
            "{wire:?}: {error}"
        );
        assert!(error.is_retryable());
    }
}

#[tokio::test]
async fn a_malformed_event_is_retryable() {
    for wire in BOTH {
        let turn = ScriptedTurn {
            malformed_after_events: Some(3),
            ..tool_turn()
        };
        let (_, error, _) = failed(wire, turn).await;
        assert!(
            matches!(error, ModelError::MalformedEvent { .. }),
            "{wire:?}: {error}"
        );
        assert!(error.is_retryable());
    }
}

#[tokio::test]
async fn an_overloaded_error_event_mid_stream_is_retryable() {
    for wire in BOTH {
        let turn = ScriptedTurn {
            stream_error: Some(StreamError {
                error_type: "overloaded_error".into(),
                message: "Overloaded".into(),
            }),
            ..ScriptedTurn::text("partial answer")
        };
        let (_, error, _) = failed(wire, turn).await;
        assert!(
            matches!(&error, ModelError::StreamError { error_type, .. } if error_type == "overloaded_error"),
            "{wire:?}: {error}"
        );
        assert!(error.is_retryable());
    }
}

#[tokio::test]
async fn a_stalled_stream_ends_at_the_idle_timeout() {
    for wire in BOTH {
        let turn = ScriptedTurn {
            stall_after_events: Some(3),
            ..tool_turn()
        };
        let (events, error, elapsed) = failed(wire, turn).await;
        assert!(!events.is_empty());
        assert!(
            matches!(error, ModelError::Timeout { phase: "the stream went silent", after } if after == Duration::from_millis(300)),
            "{wire:?}: {error}"
        );
        assert!(error.is_retryable());
        assert!(
            elapsed >= Duration::from_millis(290) && elapsed < Duration::from_secs(4),
            "{wire:?}: gave up after {elapsed:?}"
        );
    }
}

#[tokio::test]
async fn a_response_that_never_starts_ends_at_the_first_byte_timeout() {
    let server = MockModelServer::start(Script::new(vec![ScriptedTurn {
        delay_ms: Some(5_000),
        ..ScriptedTurn::text("late")
    }]))
    .await
    .unwrap();
    let mut config = openai_config(&server, ProviderKind::OpenAiCompatible);
    config.timeouts.first_byte = Duration::from_millis(300);
    let client = OpenAiClient::new(config).unwrap();
    let started = Instant::now();
    let Err(error) = client.stream(&request("m")).await else {
        panic!("the late response was accepted");
    };
    assert!(
        matches!(
            error,
            ModelError::Timeout {
                phase: "waiting for the response to start",
                ..
            }
        ),
        "{error}"
    );
    assert!(started.elapsed() >= Duration::from_millis(290));
    assert!(error.is_retryable());
}

#[tokio::test]
async fn non_streaming_answers_fail_the_same_retryable_ways() {
    let turns = vec![
        ScriptedTurn {
            stall_after_events: Some(0),
            ..tool_turn()
        },
        ScriptedTurn {
            malformed_after_events: Some(0),
            ..tool_turn()
        },
        ScriptedTurn {
            cut_after_events: Some(0),
            ..tool_turn()
        },
        ScriptedTurn {
            stream_error: Some(StreamError {
                error_type: "overloaded_error".into(),
                message: "busy".into(),
            }),
            ..tool_turn()
        },
    ];
    let server = MockModelServer::start(Script::new(turns)).await.unwrap();
    let mut config = openai_config(&server, ProviderKind::Ollama);
    config.stream_tool_calls = false;
    let client = OpenAiClient::new(config).unwrap();
    let mut errors = Vec::new();
    for _ in 0..4 {
        match client.stream(&request("m")).await {
            Ok(stream) => errors.push(drain(stream).await.1.expect("an error")),
            Err(error) => errors.push(error),
        }
    }
    assert!(
        matches!(errors[0], ModelError::Timeout { .. }),
        "{}",
        errors[0]
    );
    assert!(
        matches!(errors[1], ModelError::MalformedEvent { .. }),
        "{}",
        errors[1]
    );
    assert!(
        matches!(errors[2], ModelError::StreamEnded),
        "{}",
        errors[2]
    );
    assert!(
        matches!(errors[3], ModelError::Api { status: 529, .. }),
        "{}",
        errors[3]
    );
    assert!(errors.iter().all(ModelError::is_retryable));
}

#[tokio::test]
async fn an_unreachable_server_is_a_retryable_connect_error_naming_the_url() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let config =
        keel_model::OpenAiConfig::new(ProviderKind::Ollama, format!("http://127.0.0.1:{port}/v1"));
    let client = OpenAiClient::new(config).unwrap();
    let Err(error) = client.stream(&request("m")).await else {
        panic!("nothing listens there");
    };
    assert!(matches!(error, ModelError::Connect { .. }), "{error}");
    assert!(
        error
            .to_string()
            .contains(&format!("127.0.0.1:{port}/v1/chat/completions")),
        "{error}"
    );
    assert!(error.is_retryable());
}
