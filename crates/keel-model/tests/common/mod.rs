//! Helpers shared by keel-model's integration tests: clients pointed at the mock server, and
//! draining a stream into events plus the error that ended it.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use futures::StreamExt;
use keel_model::{
    AnthropicAuth, AnthropicClient, AnthropicConfig, EventStream, MessageAccumulator, ModelError,
    ModelRequest, OpenAiClient, OpenAiConfig, ProviderKind, StreamEvent, Timeouts,
};
use keel_protocol::{AssistantMessage, Message, ToolSpec};
use keel_test_support::MockModelServer;
use serde_json::json;

/// Short timeouts so fault tests finish quickly.
pub fn short_timeouts() -> Timeouts {
    Timeouts {
        connect: Duration::from_secs(2),
        first_byte: Duration::from_secs(5),
        idle: Duration::from_millis(300),
    }
}

pub fn anthropic(server: &MockModelServer) -> AnthropicClient {
    let mut config = AnthropicConfig::new(server.url(), AnthropicAuth::ApiKey("test-key".into()));
    config.timeouts = short_timeouts();
    AnthropicClient::new(config).unwrap()
}

pub fn openai_config(server: &MockModelServer, kind: ProviderKind) -> OpenAiConfig {
    let mut config = OpenAiConfig::new(kind, format!("{}/v1", server.url()));
    config.timeouts = short_timeouts();
    config
}

pub fn openai(server: &MockModelServer) -> OpenAiClient {
    OpenAiClient::new(openai_config(server, ProviderKind::OpenAiCompatible)).unwrap()
}

pub fn tools() -> Vec<ToolSpec> {
    ["Read", "Grep"]
        .into_iter()
        .map(|name| ToolSpec {
            name: name.into(),
            description: format!("the {name} tool"),
            input_schema: json!({"type": "object", "properties": {"file_path": {"type": "string"}}}),
        })
        .collect()
}

/// A request with a system prompt, one user message and two tools.
pub fn request(model: &str) -> ModelRequest {
    let mut request = ModelRequest::new(model, vec![Message::user_text("fix the test")]);
    request.system = vec!["You are keel.".into()];
    request.tools = tools();
    request.max_tokens = 4096;
    request
}

/// Every event of the stream, and the error that ended it (if one did).
pub async fn drain(stream: EventStream) -> (Vec<StreamEvent>, Option<ModelError>) {
    let mut stream = stream;
    let mut events = Vec::new();
    while let Some(item) = stream.next().await {
        match item {
            Ok(event) => events.push(event),
            Err(error) => {
                assert!(
                    stream.next().await.is_none(),
                    "nothing may follow a stream error"
                );
                return (events, Some(error));
            }
        }
    }
    (events, None)
}

/// The complete message of an error-free stream that ended with `MessageStop`.
pub fn assemble(events: &[StreamEvent]) -> AssistantMessage {
    let mut acc = MessageAccumulator::new();
    events.iter().for_each(|e| acc.push(e));
    assert!(
        acc.is_complete(),
        "the stream ended without MessageStop: {events:?}"
    );
    let assembled = acc.finish();
    assert!(
        assembled.invalid_tool_inputs.is_empty(),
        "{:?}",
        assembled.invalid_tool_inputs
    );
    assembled.message
}

/// Sends `request` and returns the complete message, failing the test on any error.
pub async fn complete(
    client: &dyn keel_model::ModelClient,
    request: &ModelRequest,
) -> AssistantMessage {
    let stream = client.stream(request).await.unwrap();
    let (events, error) = drain(stream).await;
    assert!(error.is_none(), "{error:?}");
    assemble(&events)
}
