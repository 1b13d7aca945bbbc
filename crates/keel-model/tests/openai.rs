//! The OpenAI-compatible client against the mock server over loopback: streaming tool calls,
//! reasoning, usage, the non-streaming fallback, and errors a user can act on.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{complete, drain, openai, openai_config, request};
use keel_model::{ModelClient, ModelError, OpenAiClient, ProviderKind, StreamEvent};
use keel_protocol::{ContentBlock, StopReason, Usage};
use keel_test_support::{MockModelServer, Script, ScriptedBlock, ScriptedTurn, ScriptedUsage};
use serde_json::json;

fn two_reads() -> ScriptedTurn {
    ScriptedTurn {
        content: vec![
            ScriptedBlock::Thinking {
                thinking: "Both files matter, so I will read them together.".into(),
                signature: None,
            },
            ScriptedBlock::Text {
                text: "Reading the two files now, then I will fix the bug.".into(),
            },
            ScriptedBlock::ToolUse {
                id: Some("call_a".into()),
                name: "Read".into(),
                input: json!({"file_path": "/work/calc.py"}),
            },
            ScriptedBlock::ToolUse {
                id: Some("call_b".into()),
                name: "Grep".into(),
                input: json!({"pattern": "def add", "output_mode": "content", "-n": true}),
            },
        ],
        usage: Some(ScriptedUsage {
            input_tokens: 120,
            output_tokens: 33,
            cache_creation_input_tokens: 0,
            cache_read_input_tokens: 80,
        }),
        ..ScriptedTurn::default()
    }
}

fn expected_content() -> Vec<ContentBlock> {
    vec![
        ContentBlock::Thinking {
            thinking: "Both files matter, so I will read them together.".into(),
            signature: String::new(),
        },
        ContentBlock::Text {
            text: "Reading the two files now, then I will fix the bug.".into(),
        },
        ContentBlock::ToolUse {
            id: "call_a".into(),
            name: "Read".into(),
            input: json!({"file_path": "/work/calc.py"}),
        },
        ContentBlock::ToolUse {
            id: "call_b".into(),
            name: "Grep".into(),
            input: json!({"pattern": "def add", "output_mode": "content", "-n": true}),
        },
    ]
}

#[tokio::test]
async fn streams_reasoning_text_and_several_tool_calls_split_across_chunks() {
    let server = MockModelServer::start(Script::new(vec![two_reads()]))
        .await
        .unwrap();
    let client = openai(&server);
    let stream = client.stream(&request("qwen2.5-coder")).await.unwrap();
    let (events, error) = drain(stream).await;
    assert!(error.is_none(), "{error:?}");

    // The arguments really arrived in pieces, each under its own block index.
    let pieces = |wanted: usize| {
        events
            .iter()
            .filter(|e| matches!(e, StreamEvent::InputJsonDelta { index, .. } if *index == wanted))
            .count()
    };
    assert!(pieces(2) > 2 && pieces(3) > 2, "{events:?}");
    let starts: Vec<usize> = events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::BlockStart { index, .. } => Some(*index),
            _ => None,
        })
        .collect();
    assert_eq!(
        starts,
        [0, 1, 2, 3],
        "blocks numbered in order of appearance"
    );
    assert!(
        matches!(&events[0], StreamEvent::MessageStart { id, model, .. }
        if id.starts_with("chatcmpl-") && model == "qwen2.5-coder")
    );
    assert_eq!(events.last(), Some(&StreamEvent::MessageStop));

    let message = common::assemble(&events);
    assert_eq!(message.content, expected_content());
    assert_eq!(message.stop_reason, Some(StopReason::ToolUse));
    // prompt_tokens counts cached tokens too; keel reports them apart.
    assert_eq!(
        message.usage,
        Usage {
            input_tokens: 120,
            output_tokens: 33,
            cache_creation_input_tokens: 0,
            cache_read_input_tokens: 80,
        }
    );

    let body = &server.requests()[0].body;
    assert_eq!(server.requests()[0].path, "/v1/chat/completions");
    assert_eq!(body["stream"], true);
    assert_eq!(body["stream_options"], json!({"include_usage": true}));
    assert_eq!(body["max_tokens"], 4096);
    assert_eq!(
        body["messages"][0],
        json!({"role": "system", "content": "You are keel."})
    );
    assert_eq!(body["tools"][1]["function"]["name"], "Grep");
    assert!(
        !server.requests()[0].headers.contains_key("authorization"),
        "no key, no header"
    );
}

#[tokio::test]
async fn the_key_goes_in_a_bearer_header_and_openai_gets_max_completion_tokens() {
    let server = MockModelServer::start(Script::new(vec![ScriptedTurn::text("hi")]))
        .await
        .unwrap();
    let mut config = openai_config(&server, ProviderKind::OpenAi);
    config.api_key = Some("sk-test".into());
    config.token_limit = keel_model::TokenLimitParam::MaxCompletionTokens;
    let client = OpenAiClient::new(config).unwrap();
    let message = complete(&client, &request("gpt-4.1")).await;
    assert_eq!(message.text(), "hi");
    assert_eq!(message.stop_reason, Some(StopReason::EndTurn));
    let recorded = &server.requests()[0];
    assert_eq!(recorded.headers["authorization"], "Bearer sk-test");
    assert_eq!(recorded.body["max_completion_tokens"], 4096);
    assert!(recorded.body.get("max_tokens").is_none());
}

#[tokio::test]
async fn a_server_that_cannot_stream_tool_calls_is_answered_without_streaming_from_then_on() {
    let script = Script::new(vec![two_reads(), ScriptedTurn::text("Fixed it.")])
        .openai_stream_tool_calls(false);
    let server = MockModelServer::start(script).await.unwrap();
    let client = openai(&server);
    assert!(client.streams_tool_calls());

    let first = complete(&client, &request("llama3.1")).await;
    assert_eq!(first.content, expected_content());
    assert_eq!(first.stop_reason, Some(StopReason::ToolUse));
    assert_eq!(first.usage.cache_read_input_tokens, 80);
    assert!(!client.streams_tool_calls(), "the refusal is remembered");

    let second = complete(&client, &request("llama3.1")).await;
    assert_eq!(second.text(), "Fixed it.");

    let streamed: Vec<bool> = server
        .requests()
        .iter()
        .map(|r| r.body["stream"] == true)
        .collect();
    assert_eq!(
        streamed,
        [true, false, false],
        "one refused streaming attempt, then straight to non-streaming"
    );
    assert!(server.requests()[1].body.get("stream_options").is_none());
}

#[tokio::test]
async fn a_client_configured_not_to_stream_tool_calls_never_tries() {
    let script = Script::new(vec![ScriptedTurn::text("ok")]).openai_stream_tool_calls(false);
    let server = MockModelServer::start(script).await.unwrap();
    let mut config = openai_config(&server, ProviderKind::Ollama);
    config.stream_tool_calls = false;
    let client = OpenAiClient::new(config).unwrap();
    assert_eq!(complete(&client, &request("m")).await.text(), "ok");
    assert_eq!(server.requests().len(), 1);
    assert_eq!(server.requests()[0].body["stream"], false);
}

async fn error_for(kind: ProviderKind, key_env: Option<&str>, turn: ScriptedTurn) -> ModelError {
    let server = MockModelServer::start(Script::new(vec![turn]))
        .await
        .unwrap();
    let mut config = openai_config(&server, kind);
    config.api_key_env = key_env.map(str::to_string);
    config.api_key = key_env.map(|_| "sk-wrong".to_string());
    let client = OpenAiClient::new(config).unwrap();
    match client.stream(&request("some-model")).await {
        Ok(_) => panic!("the request should have failed"),
        Err(error) => error,
    }
}

#[tokio::test]
async fn a_rejected_key_names_the_variable_of_the_provider() {
    for (kind, var) in [
        (ProviderKind::OpenAi, "OPENAI_API_KEY"),
        (ProviderKind::OpenRouter, "OPENROUTER_API_KEY"),
        (ProviderKind::OpenAiCompatible, "MY_GATEWAY_KEY"),
    ] {
        let turn =
            ScriptedTurn::http_error(401, "invalid_request_error", "Incorrect API key provided");
        let error = error_for(kind, Some(var), turn).await;
        let text = error.to_string();
        assert!(
            text.starts_with("authentication failed (401 invalid_request_error): Incorrect API key provided. Check ")
                && text.contains(var),
            "{text}"
        );
        assert!(!error.is_retryable());
        assert!(!text.contains('\n'));
    }
}

#[tokio::test]
async fn an_unknown_model_says_how_to_get_it() {
    let turn = ScriptedTurn::http_error(
        404,
        "api_error",
        "model \"qwen9\" not found, try pulling it first",
    );
    let text = error_for(ProviderKind::Ollama, None, turn)
        .await
        .to_string();
    assert!(
        text.starts_with("not found (404 api_error): model \"qwen9\" not found"),
        "{text}"
    );
    assert!(text.contains("ollama pull NAME"), "{text}");
    let turn = ScriptedTurn::http_error(404, "", "The model `gpt-9` does not exist");
    let text = error_for(ProviderKind::OpenAi, Some("OPENAI_API_KEY"), turn)
        .await
        .to_string();
    assert!(
        text.ends_with("Check the model name given with --model"),
        "{text}"
    );
}

#[tokio::test]
async fn a_model_without_tools_is_a_clear_error_not_a_retry() {
    let turn = ScriptedTurn::http_error(
        400,
        "api_error",
        "registry.ollama.ai/library/gemma:2b does not support tools",
    );
    let error = error_for(ProviderKind::Ollama, None, turn).await;
    assert!(matches!(&error, ModelError::ToolsUnsupported { model, .. } if model == "some-model"));
    assert!(!error.is_retryable());
    let text = error.to_string();
    assert!(
        text.starts_with("the model \"some-model\" cannot call tools (registry.ollama.ai/library/gemma:2b does not support tools)"),
        "{text}"
    );
    assert!(
        text.contains("qwen2.5-coder") && text.contains("llama3.1"),
        "{text}"
    );

    let turn = ScriptedTurn::http_error(404, "", "No endpoints found that support tool use.");
    let error = error_for(ProviderKind::OpenRouter, Some("OPENROUTER_API_KEY"), turn).await;
    assert!(
        error.to_string().contains("supported_parameters=tools"),
        "{error}"
    );
}
