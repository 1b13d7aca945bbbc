//! Talking to models. A provider-neutral [`ModelClient`] trait streams [`StreamEvent`]s that a
//! [`MessageAccumulator`] turns into a complete [`AssistantMessage`]. Implementations: the
//! Anthropic Messages API (SSE), OpenAI-compatible chat completions (OpenAI, Ollama, vLLM,
//! llama.cpp, OpenRouter, gateways), and replay from a recorded file; [`RecordingClient`] writes
//! such files. [`select`] picks the provider from options and the environment, [`RetryPolicy`]
//! says when to resend, and pricing lives here too, so cost is computed in one place.
//!
//! [`AssistantMessage`]: keel_protocol::AssistantMessage

use std::pin::Pin;

use async_trait::async_trait;
use futures::Stream;
use keel_protocol::{Message, ToolSpec};

mod accumulate;
mod anthropic;
mod error;
mod http;
pub mod models;
mod openai;
pub mod pricing;
mod provider;
mod replay;
mod retry;

pub use accumulate::{Assembled, InvalidToolInput, MessageAccumulator};
pub use anthropic::{AnthropicAuth, AnthropicClient, AnthropicConfig};
pub use error::{ConfigError, ModelError};
pub use http::{Timeouts, deepest_cause};
pub use models::{DEFAULT_MODEL, default_max_tokens};
pub use openai::{OpenAiClient, OpenAiConfig, ReasoningParam, TokenLimitParam};
pub use pricing::{PriceOverride, Pricing};
pub use provider::{
    EnvLookup, OLLAMA_DEFAULT_HOST, Preset, ProviderKind, ProviderOptions, QUICKSTART_REPLAY,
    Selected, SelectedBy, SelectionError, UnknownProvider, ollama_model_has_tools, preset, select,
};
pub use replay::{
    RecordingClient, ReplayClient, ReplayRecord, RequestSummary, parse_records, replay_events,
};
pub use retry::{DEFAULT_MAX_RETRIES, Retry, RetryPolicy};

/// Everything one model request needs, independent of the provider's wire format.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelRequest {
    /// The model name, as the provider knows it.
    pub model: String,
    /// System prompt parts, in order (sent as separate text blocks where the API allows).
    pub system: Vec<String>,
    /// The conversation so far.
    pub messages: Vec<Message>,
    /// The tools the model may call.
    pub tools: Vec<ToolSpec>,
    /// The most output tokens the model may produce in this turn.
    pub max_tokens: u32,
    /// Extended thinking: how many tokens the model may think with (`None`: no thinking).
    /// Anthropic gets `thinking: {type: "enabled", budget_tokens}` (at least 1024, with
    /// `max_tokens` raised above it); OpenAI's reasoning models get `reasoning_effort`,
    /// OpenRouter `reasoning.max_tokens`; other servers ignore it.
    pub thinking: Option<u32>,
    /// Ask for prompt caching: Anthropic gets `cache_control` breakpoints on the tools, the
    /// system prompt and the newest user messages; other providers cache by themselves or not
    /// at all, and ignore it.
    pub cache: bool,
    /// Tools the provider runs itself, as the API's own definitions (Anthropic's
    /// `{"type": "web_search_20250305", "name": "web_search", ...}`), sent after `tools`.
    /// Providers without server tools ignore them.
    pub server_tools: Vec<serde_json::Value>,
}

impl ModelRequest {
    /// A request for `model` with `messages`, no system prompt, no tools, and the model's
    /// default output limit; set the other fields directly.
    pub fn new(model: impl Into<String>, messages: Vec<Message>) -> Self {
        let model = model.into();
        Self {
            max_tokens: default_max_tokens(&model),
            model,
            system: Vec::new(),
            messages,
            tools: Vec::new(),
            thinking: None,
            cache: false,
            server_tools: Vec::new(),
        }
    }
}

/// The stream of events of one model turn.
pub type EventStream = Pin<Box<dyn Stream<Item = Result<StreamEvent, ModelError>> + Send>>;

/// A model provider. `stream` sends one request and yields the answer as it arrives; errors
/// before the first event (HTTP status, connection) come from the returned future, errors
/// mid-stream as items of the stream.
#[async_trait]
pub trait ModelClient: Send + Sync {
    /// Sends `request` and streams the model's answer.
    async fn stream(&self, request: &ModelRequest) -> Result<EventStream, ModelError>;
}

/// One piece of a streamed answer, in the order the model produced it. The shape follows the
/// Anthropic Messages API's stream (the richest of the supported providers); other providers'
/// streams are translated into it.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent {
    /// The answer begins; carries the message id, the model and the input token counts.
    MessageStart {
        /// The provider's message id.
        id: String,
        /// The model that answers.
        model: String,
        /// Input token counts (output is usually 0 or 1 here).
        usage: keel_protocol::Usage,
    },
    /// A content block begins at `index`.
    BlockStart {
        /// Position of the block in the message.
        index: usize,
        /// What kind of block it is.
        block: BlockStart,
    },
    /// More answer text for the text block at `index`.
    TextDelta {
        /// The block's position.
        index: usize,
        /// The new text.
        text: String,
    },
    /// More reasoning for the thinking block at `index`.
    ThinkingDelta {
        /// The block's position.
        index: usize,
        /// The new reasoning text.
        thinking: String,
    },
    /// The signature of the thinking block at `index`.
    SignatureDelta {
        /// The block's position.
        index: usize,
        /// The signature (sent back unchanged with the block).
        signature: String,
    },
    /// A citation for the text block at `index` (text backed by a server tool's results).
    CitationDelta {
        /// The block's position.
        index: usize,
        /// The citation, as the API sent it.
        citation: serde_json::Value,
    },
    /// More of a tool call's JSON input (concatenate all pieces, then parse).
    InputJsonDelta {
        /// The block's position.
        index: usize,
        /// The next piece of raw JSON.
        partial_json: String,
    },
    /// The block at `index` is complete.
    BlockStop {
        /// The block's position.
        index: usize,
    },
    /// The message's end state: why it stopped and the final output token count.
    MessageDelta {
        /// Why the model stopped.
        stop_reason: Option<keel_protocol::StopReason>,
        /// The stop sequence that matched, if any.
        stop_sequence: Option<String>,
        /// Usage counts; fields that are non-zero replace those from `MessageStart`.
        usage: keel_protocol::Usage,
    },
    /// The answer is complete.
    MessageStop,
    /// A keep-alive; carries nothing.
    Ping,
}

/// The kind of a content block announced by [`StreamEvent::BlockStart`].
#[derive(Debug, Clone, PartialEq)]
pub enum BlockStart {
    /// Answer text.
    Text,
    /// A tool call; its input follows as [`StreamEvent::InputJsonDelta`]s.
    ToolUse {
        /// The call's id.
        id: String,
        /// The tool's name.
        name: String,
    },
    /// Visible reasoning.
    Thinking,
    /// Encrypted reasoning, complete in this event.
    RedactedThinking {
        /// Opaque data to send back unchanged.
        data: String,
    },
    /// A block keel does not interpret (a server tool's call or result), as the API started it;
    /// [`StreamEvent::InputJsonDelta`]s that follow fill its `input`.
    Raw {
        /// The block's JSON.
        block: serde_json::Value,
    },
}
