//! How `examples/quickstart.jsonl` is made: the mock model plays `examples/demo-script.json`
//! (the same turns `examples/demo.sh` shows) over the Anthropic wire format, and a
//! [`RecordingClient`] writes each response down. Shared by the `record_quickstart` example
//! (which regenerates the file) and the test that checks the shipped file is still what this
//! produces.
//!
//! The tool results sent back here are placeholders: a replay file holds only the model's
//! responses (and a count of the tool results each request carried), so when keel replays it,
//! its real tools run against the real files and the placeholders are never seen.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::StreamExt;
use keel_model::{
    AnthropicAuth, AnthropicClient, AnthropicConfig, MessageAccumulator, ModelClient, ModelRequest,
    RecordingClient,
};
use keel_protocol::{ContentBlock, Message, Role, ToolResultContent, ToolSpec};
use keel_test_support::{MockModelServer, Script};
use serde_json::json;

/// The prompt the README's offline quick start passes with `-p`.
pub const PROMPT: &str = "the add test fails; fix it";

/// The workspace's `examples/` directory.
pub fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

fn tool(name: &str, properties: serde_json::Value) -> ToolSpec {
    ToolSpec {
        name: name.into(),
        description: format!("keel's {name} tool"),
        input_schema: json!({"type": "object", "properties": properties}),
    }
}

/// Plays the demo script through a recording client into `out`.
pub async fn record(out: &Path) {
    let script = Script::from_file(&examples_dir().join("demo-script.json")).unwrap();
    let server = MockModelServer::start(script).await.unwrap();
    let client = AnthropicClient::new(AnthropicConfig::new(
        server.url(),
        AnthropicAuth::ApiKey("quickstart".into()),
    ))
    .unwrap();
    let recorder = RecordingClient::create(out, Arc::new(client))
        .await
        .unwrap();
    let mut request = ModelRequest::new("mock-model", vec![Message::user_text(PROMPT)]);
    request.system = vec!["You are keel, a coding agent.".into()];
    request.tools = vec![
        tool("Read", json!({"file_path": {"type": "string"}})),
        tool(
            "Edit",
            json!({"file_path": {"type": "string"}, "old_string": {"type": "string"}, "new_string": {"type": "string"}}),
        ),
        tool("Bash", json!({"command": {"type": "string"}})),
        tool("Grep", json!({"pattern": {"type": "string"}})),
    ];
    loop {
        let mut stream = recorder.stream(&request).await.unwrap();
        let mut accumulator = MessageAccumulator::new();
        while let Some(event) = stream.next().await {
            accumulator.push(&event.unwrap());
        }
        let message = accumulator.finish().message;
        request.messages.push(message.to_message());
        let results: Vec<ContentBlock> = message
            .tool_uses()
            .map(|call| ContentBlock::ToolResult {
                tool_use_id: call.id.to_string(),
                content: ToolResultContent::Text(
                    "(placeholder; see tests/quickstart/mod.rs)".into(),
                ),
                is_error: false,
            })
            .collect();
        if results.is_empty() {
            break;
        }
        request.messages.push(Message {
            role: Role::User,
            content: results,
        });
    }
}
