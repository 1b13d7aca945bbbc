//! keel's vocabulary: the serde types every other crate speaks.
//!
//! Messages and content blocks follow the Anthropic Messages API's JSON shapes exactly, so the
//! same values can be sent to the API, written to a transcript and printed as Claude Code's
//! stream-json without translation. `Op` is what a frontend asks of the engine; `Event` is
//! everything the engine reports back. No I/O lives here.

use serde::{Deserialize, Serialize};
use serde_json::Value;

mod event;
pub use event::{
    ApprovalAnswer, Event, HookReply, ImageInput, ModelUsage, NoticeLevel, Op, Outcome,
    PermissionDenial, PlanItem, Question, QuestionOption,
};

/// Identifies one agent session; a UUID string, as Claude Code uses, so scripts can pass it around.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SessionId(String);

impl SessionId {
    /// A fresh random session id.
    pub fn new() -> Self {
        Self(uuid::Uuid::new_v4().to_string())
    }

    /// An id given by the user or read from a transcript (checked by the caller).
    pub fn from_string(id: String) -> Self {
        Self(id)
    }

    /// The id as text, for JSON output and file names.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for SessionId {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Display for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Who wrote a message in the conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The user, including tool results sent back on the user's side.
    User,
    /// The model.
    Assistant,
}

/// One message of the conversation, in the Messages API's shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// Who wrote it.
    pub role: Role,
    /// Its content blocks, in order.
    pub content: Vec<ContentBlock>,
}

impl Message {
    /// A user message holding one text block.
    pub fn user_text(text: impl Into<String>) -> Self {
        Self {
            role: Role::User,
            content: vec![ContentBlock::Text { text: text.into() }],
        }
    }

    /// Whether this is a prompt the user typed: a user message with text and no tool results
    /// (tool results travel on the user's side too). What a rewind counts, in the engine and
    /// in every frontend that offers one.
    pub fn is_prompt(&self) -> bool {
        self.role == Role::User
            && self.content.iter().any(|b| b.text().is_some())
            && !self
                .content
                .iter()
                .any(|b| matches!(b, ContentBlock::ToolResult { .. }))
    }
}

/// A block of message content, tagged by `type` as the Messages API does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentBlock {
    /// Plain text.
    Text {
        /// The text itself.
        text: String,
    },
    /// The model asks for a tool to be run.
    ToolUse {
        /// The call's id, echoed by its result.
        id: String,
        /// The tool's name, e.g. `Read`.
        name: String,
        /// The arguments, a JSON object.
        input: Value,
    },
    /// The outcome of a tool call, sent back on the user's side.
    ToolResult {
        /// The `id` of the `tool_use` this answers.
        tool_use_id: String,
        /// What the tool returned.
        content: ToolResultContent,
        /// True when the call failed; the model is expected to react to the error.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        is_error: bool,
    },
    /// The model's visible reasoning; the signature must be sent back unchanged.
    Thinking {
        /// The reasoning text.
        thinking: String,
        /// The API's signature over it.
        signature: String,
    },
    /// Reasoning the API encrypted; kept and sent back as it came.
    RedactedThinking {
        /// Opaque data.
        data: String,
    },
    /// A block keel does not interpret (a server tool's call and result such as
    /// `server_tool_use` and `web_search_tool_result`, text carrying citations, a type newer
    /// than keel), kept as the JSON it came as and sent back unchanged, so nothing the API
    /// returned is ever dropped.
    #[serde(untagged)]
    Other(Value),
}

impl ContentBlock {
    /// The block's text, if it is text (plain, or a passthrough text block with citations).
    pub fn text(&self) -> Option<&str> {
        match self {
            Self::Text { text } => Some(text),
            Self::Other(raw) if raw["type"] == "text" => raw["text"].as_str(),
            _ => None,
        }
    }
}

/// The content of a tool result: a string, or a list of blocks (text and images).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ToolResultContent {
    /// Text only, the common case.
    Text(String),
    /// Several blocks, e.g. an image read from disk.
    Blocks(Vec<ToolResultBlock>),
}

impl ToolResultContent {
    /// All text in the content, joined; images are left out.
    pub fn text(&self) -> String {
        match self {
            Self::Text(t) => t.clone(),
            Self::Blocks(blocks) => blocks
                .iter()
                .filter_map(|b| match b {
                    ToolResultBlock::Text { text } => Some(text.as_str()),
                    ToolResultBlock::Image { .. } => None,
                })
                .collect::<Vec<_>>()
                .join("\n"),
        }
    }
}

/// One block inside a list-shaped tool result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ToolResultBlock {
    /// Text.
    Text {
        /// The text itself.
        text: String,
    },
    /// An image, as the API's `source` object (base64 data and media type).
    Image {
        /// The API's image source object.
        source: Value,
    },
}

/// Why the model stopped producing output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// The model finished its answer.
    EndTurn,
    /// The model wants tools run.
    ToolUse,
    /// The output hit `max_tokens`.
    MaxTokens,
    /// A stop sequence matched.
    StopSequence,
    /// A long server-side turn paused; send the conversation again to continue.
    PauseTurn,
    /// The model declined to answer.
    Refusal,
    /// A reason this version of keel does not know yet.
    #[serde(other)]
    Unknown,
}

/// Token counts for one request, or summed over a session.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Uncached input tokens.
    #[serde(default)]
    pub input_tokens: u64,
    /// Output tokens.
    #[serde(default)]
    pub output_tokens: u64,
    /// Input tokens written to the prompt cache.
    #[serde(default)]
    pub cache_creation_input_tokens: u64,
    /// Input tokens read from the prompt cache.
    #[serde(default)]
    pub cache_read_input_tokens: u64,
}

impl Usage {
    /// Adds another request's counts to these.
    pub fn add(&mut self, other: &Usage) {
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
        self.cache_creation_input_tokens += other.cache_creation_input_tokens;
        self.cache_read_input_tokens += other.cache_read_input_tokens;
    }
}

/// A complete assistant message as the API returns it (`type: "message"`), with id, model,
/// stop reason and usage: what stream-json prints and what the transcript keeps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename = "message")]
pub struct AssistantMessage {
    /// The API's message id.
    pub id: String,
    /// Always `assistant`.
    pub role: Role,
    /// The model that wrote it.
    pub model: String,
    /// Its content blocks.
    pub content: Vec<ContentBlock>,
    /// Why the model stopped; absent only for an interrupted, partial message.
    pub stop_reason: Option<StopReason>,
    /// The stop sequence that matched, if any.
    #[serde(default)]
    pub stop_sequence: Option<String>,
    /// Tokens this request used.
    #[serde(default)]
    pub usage: Usage,
}

impl AssistantMessage {
    /// The message as a conversation entry, for the next request.
    pub fn to_message(&self) -> Message {
        Message {
            role: Role::Assistant,
            content: self.content.clone(),
        }
    }

    /// All text blocks, joined: the answer a user reads.
    pub fn text(&self) -> String {
        self.content
            .iter()
            .filter_map(ContentBlock::text)
            .collect::<Vec<_>>()
            .join("")
    }

    /// The tool calls the model asked for, in order.
    pub fn tool_uses(&self) -> impl Iterator<Item = ToolUse<'_>> {
        self.content.iter().filter_map(|b| match b {
            ContentBlock::ToolUse { id, name, input } => Some(ToolUse { id, name, input }),
            _ => None,
        })
    }
}

/// A borrowed view of one `tool_use` block.
#[derive(Debug, Clone, Copy)]
pub struct ToolUse<'a> {
    /// The call's id.
    pub id: &'a str,
    /// The tool's name.
    pub name: &'a str,
    /// The arguments.
    pub input: &'a Value,
}

/// A model's prices set by the user (settings `pricing`), in US dollars per million tokens
/// (JSON: `{"input": 3, "output": 15, "cacheWrite": 3.75, "cacheRead": 0.3}`). Shared by the
/// settings that read it and the pricing that applies it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PriceOverride {
    /// Uncached input.
    pub input: f64,
    /// Output.
    pub output: f64,
    /// Input written to the prompt cache; keel-model defaults it to `input * 1.25`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_write: Option<f64>,
    /// Input read from the prompt cache; keel-model defaults it to `input * 0.1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_read: Option<f64>,
}

/// A tool as offered to the model: name, description and JSON Schema of its input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    /// The name the model calls it by.
    pub name: String,
    /// What it does and when to use it, for the model.
    pub description: String,
    /// JSON Schema of the input object.
    pub input_schema: Value,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn content_blocks_use_the_api_shapes() {
        let blocks = vec![
            ContentBlock::Text { text: "hi".into() },
            ContentBlock::ToolUse {
                id: "toolu_1".into(),
                name: "Read".into(),
                input: json!({"file_path": "/a"}),
            },
            ContentBlock::ToolResult {
                tool_use_id: "toolu_1".into(),
                content: ToolResultContent::Text("ok".into()),
                is_error: false,
            },
            ContentBlock::ToolResult {
                tool_use_id: "toolu_2".into(),
                content: ToolResultContent::Text("boom".into()),
                is_error: true,
            },
        ];
        assert_eq!(
            serde_json::to_value(&blocks).unwrap(),
            json!([
                {"type": "text", "text": "hi"},
                {"type": "tool_use", "id": "toolu_1", "name": "Read", "input": {"file_path": "/a"}},
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "ok"},
                {"type": "tool_result", "tool_use_id": "toolu_2", "content": "boom", "is_error": true},
            ])
        );
    }

    #[test]
    fn assistant_message_serializes_as_api_message() {
        let msg = AssistantMessage {
            id: "msg_1".into(),
            role: Role::Assistant,
            model: "m".into(),
            content: vec![ContentBlock::Text { text: "a".into() }],
            stop_reason: Some(StopReason::EndTurn),
            stop_sequence: None,
            usage: Usage::default(),
        };
        let v = serde_json::to_value(&msg).unwrap();
        assert_eq!(v["type"], "message");
        assert_eq!(v["role"], "assistant");
        assert_eq!(v["stop_reason"], "end_turn");
        let back: AssistantMessage = serde_json::from_value(v).unwrap();
        assert_eq!(back, msg);
    }

    #[test]
    fn unknown_blocks_round_trip_unchanged() {
        let raw = json!([
            {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {"query": "rust"}},
            {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1", "content": [
                {"type": "web_search_result", "title": "Rust", "url": "https://www.rust-lang.org/", "encrypted_content": "abc", "page_age": null}
            ]},
            {"type": "text", "text": "Rust is a language.", "citations": [
                {"type": "web_search_result_location", "url": "https://www.rust-lang.org/", "title": "Rust", "cited_text": "Rust", "encrypted_index": "x"}
            ]},
            {"type": "text", "text": "plain"}
        ]);
        let blocks: Vec<ContentBlock> = serde_json::from_value(raw.clone()).unwrap();
        assert!(matches!(blocks[0], ContentBlock::Other(_)));
        assert!(matches!(blocks[1], ContentBlock::Other(_)));
        assert_eq!(
            blocks[3],
            ContentBlock::Text {
                text: "plain".into()
            }
        );
        assert_eq!(blocks[3].text(), Some("plain"));
        // Order of keys and every field survive.
        assert_eq!(
            serde_json::to_value(&blocks[..2]).unwrap(),
            json!(raw.as_array().unwrap()[..2])
        );
        let cited = ContentBlock::Other(raw[2].clone());
        assert_eq!(cited.text(), Some("Rust is a language."));
        assert_eq!(serde_json::to_value(&cited).unwrap(), raw[2]);
    }

    #[test]
    fn unknown_stop_reason_is_tolerated() {
        let r: StopReason = serde_json::from_value(json!("model_context_window_exceeded")).unwrap();
        assert_eq!(r, StopReason::Unknown);
    }
}
