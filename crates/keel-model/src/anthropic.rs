//! The Anthropic Messages API over SSE.

use std::time::Duration;

use async_trait::async_trait;
use keel_protocol::{StopReason, Usage};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::http::{self, Timeouts, Translated};
use crate::{
    BlockStart, ConfigError, EventStream, ModelClient, ModelError, ModelRequest, StreamEvent,
};

/// The API version header every request carries.
const ANTHROPIC_VERSION: &str = "2023-06-01";

/// How keel proves who it is to the API.
#[derive(Clone, PartialEq, Eq)]
pub enum AnthropicAuth {
    /// An API key, sent as `x-api-key` (`ANTHROPIC_API_KEY`).
    ApiKey(String),
    /// A bearer token, sent as `Authorization: Bearer` (`ANTHROPIC_AUTH_TOKEN`; gateways).
    Bearer(String),
}

impl std::fmt::Debug for AnthropicAuth {
    // Credentials never reach logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::ApiKey(_) => f.write_str("ApiKey(***)"),
            Self::Bearer(_) => f.write_str("Bearer(***)"),
        }
    }
}

/// Where and how to reach the Messages API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnthropicConfig {
    /// The API's base URL; requests go to `{base_url}/v1/messages`.
    pub base_url: String,
    /// Credentials.
    pub auth: AnthropicAuth,
    /// Headers added to every request (`ANTHROPIC_CUSTOM_HEADERS`, gateways).
    pub extra_headers: Vec<(String, String)>,
    /// Connect, first-byte and idle timeouts.
    pub timeouts: Timeouts,
}

impl AnthropicConfig {
    /// A configuration with default timeouts and no extra headers.
    pub fn new(base_url: impl Into<String>, auth: AnthropicAuth) -> Self {
        Self {
            base_url: base_url.into(),
            auth,
            extra_headers: Vec::new(),
            timeouts: Timeouts::default(),
        }
    }

    /// Reads the configuration from the environment as Claude Code does: `ANTHROPIC_API_KEY`
    /// or else `ANTHROPIC_AUTH_TOKEN`, `ANTHROPIC_BASE_URL`, `ANTHROPIC_CUSTOM_HEADERS`
    /// (`Name: value` lines), and `API_TIMEOUT_MS` for the first-byte and idle timeouts.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Like [`Self::from_env`], reading variables through `lookup` (for tests and settings).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let non_empty = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let auth = match (
            non_empty("ANTHROPIC_API_KEY"),
            non_empty("ANTHROPIC_AUTH_TOKEN"),
        ) {
            (Some(key), _) => AnthropicAuth::ApiKey(key.trim().to_string()),
            (None, Some(token)) => AnthropicAuth::Bearer(token.trim().to_string()),
            (None, None) => {
                return Err(ConfigError::MissingCredentials(
                    "no Anthropic API key: set ANTHROPIC_API_KEY (or ANTHROPIC_AUTH_TOKEN for a \
                     gateway that takes a bearer token), e.g. export ANTHROPIC_API_KEY=sk-ant-..."
                        .to_string(),
                ));
            }
        };
        let base_url = non_empty("ANTHROPIC_BASE_URL")
            .unwrap_or_else(|| "https://api.anthropic.com".to_string());
        let base_url = base_url.trim().trim_end_matches('/').to_string();
        if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
            return Err(ConfigError::Invalid {
                setting: "ANTHROPIC_BASE_URL".into(),
                problem: format!(
                    "{base_url:?} is not an http(s) URL; set it to e.g. https://api.anthropic.com"
                ),
            });
        }
        let mut extra_headers = Vec::new();
        if let Some(custom) = non_empty("ANTHROPIC_CUSTOM_HEADERS") {
            for line in custom.lines().filter(|l| !l.trim().is_empty()) {
                let Some((name, value)) = line.split_once(':') else {
                    return Err(ConfigError::Invalid {
                        setting: "ANTHROPIC_CUSTOM_HEADERS".into(),
                        problem: format!("{line:?} is not a `Name: value` header line"),
                    });
                };
                extra_headers.push((name.trim().to_string(), value.trim().to_string()));
            }
        }
        let mut timeouts = Timeouts::default();
        if let Some(ms) = non_empty("API_TIMEOUT_MS") {
            let ms: u64 = ms.trim().parse().map_err(|_| ConfigError::Invalid {
                setting: "API_TIMEOUT_MS".into(),
                problem: format!("{ms:?} is not a number of milliseconds"),
            })?;
            timeouts.first_byte = Duration::from_millis(ms);
            timeouts.idle = Duration::from_millis(ms);
        }
        Ok(Self {
            base_url,
            auth,
            extra_headers,
            timeouts,
        })
    }

    /// Where credentials came from, as Claude Code reports it in its `init` line.
    pub fn api_key_source(&self) -> &'static str {
        match self.auth {
            AnthropicAuth::ApiKey(_) => "ANTHROPIC_API_KEY",
            AnthropicAuth::Bearer(_) => "ANTHROPIC_AUTH_TOKEN",
        }
    }
}

/// A client for the Messages API. Cheap to share; holds one connection pool.
#[derive(Debug, Clone)]
pub struct AnthropicClient {
    http: http::HttpClient,
    config: AnthropicConfig,
    endpoint: String,
}

impl AnthropicClient {
    /// A client for `config`. The HTTP stack is set up in the background (see
    /// `http::HttpClient`); should that fail, the first request reports it.
    pub fn new(config: AnthropicConfig) -> Result<Self, ModelError> {
        let http = http::HttpClient::new(&config.base_url, &config.timeouts);
        let endpoint = format!("{}/v1/messages", config.base_url);
        Ok(Self {
            http,
            config,
            endpoint,
        })
    }

    /// The request body for `request`, as the Messages API expects it: extended thinking when
    /// `request.thinking` is set, prompt-cache breakpoints when `request.cache` is.
    pub fn body(request: &ModelRequest) -> Value {
        let mut max_tokens = request.max_tokens;
        let mut body = json!({
            "model": request.model,
            "messages": request.messages,
            "stream": true,
        });
        if let Some(budget) = request.thinking {
            let (budget, raised) = thinking_budget(&request.model, budget, max_tokens);
            max_tokens = raised;
            body["thinking"] = json!({"type": "enabled", "budget_tokens": budget});
        }
        body["max_tokens"] = json!(max_tokens);
        if !request.system.is_empty() {
            body["system"] = Value::Array(
                request
                    .system
                    .iter()
                    .map(|text| json!({"type": "text", "text": text}))
                    .collect(),
            );
        }
        if !request.tools.is_empty() || !request.server_tools.is_empty() {
            let mut tools: Vec<Value> = request.tools.iter().map(|t| json!(t)).collect();
            tools.extend(request.server_tools.iter().cloned());
            body["tools"] = Value::Array(tools);
        }
        if request.cache {
            add_cache_breakpoints(&mut body);
        }
        body
    }

    fn help_for(&self, status: u16, message: &str) -> Option<String> {
        match status {
            401 | 403 => Some(
                "Check ANTHROPIC_API_KEY (or ANTHROPIC_AUTH_TOKEN) and ANTHROPIC_BASE_URL".into(),
            ),
            404 if message.to_ascii_lowercase().contains("model") => {
                Some("Check the model name given with --model or ANTHROPIC_MODEL".into())
            }
            404 => Some(format!(
                "keel sent the request to {}; check ANTHROPIC_BASE_URL",
                self.endpoint
            )),
            413 => Some("The conversation is too large; start a new session".into()),
            429 => Some("Wait a moment and try again, or check your plan's rate limits".into()),
            500..=599 => Some("The service is having trouble; try again shortly".into()),
            _ => None,
        }
    }

    async fn error_from_response(&self, response: reqwest::Response) -> ModelError {
        let error = http::read_error(response, self.config.timeouts.idle).await;
        let help = self.help_for(error.status, &error.message);
        ModelError::Api {
            status: error.status,
            error_type: error.error_type,
            message: error.message,
            help,
            retry_after: error.retry_after,
        }
    }
}

/// The thinking budget and `max_tokens` to send. The API wants a budget of at least 1024 and
/// `max_tokens` above the budget (the budget is part of the output); `max_tokens` is raised to
/// leave room for the answer, within what the model can produce, and the budget lowered when
/// even that is not enough.
fn thinking_budget(model: &str, budget: u32, max_tokens: u32) -> (u32, u32) {
    const MIN_BUDGET: u32 = 1024;
    const ANSWER_ROOM: u32 = 4096;
    let budget = budget.max(MIN_BUDGET);
    if max_tokens > budget {
        return (budget, max_tokens);
    }
    let ceiling = crate::models::default_max_tokens(model).max(max_tokens);
    let raised = budget.saturating_add(ANSWER_ROOM).min(ceiling);
    if raised > budget {
        (budget, raised)
    } else {
        // The model cannot fit this budget plus an answer: think in half of what it can write.
        (
            (raised / 2).max(MIN_BUDGET),
            raised.max(MIN_BUDGET.saturating_mul(2)),
        )
    }
}

/// The most cache breakpoints the API accepts in one request.
const MAX_BREAKPOINTS: usize = 4;

/// Marks prompt-cache breakpoints: the last tool (caches the tools), the last system block
/// (tools + system), and the last content block of the last two user messages (the
/// conversation so far, and the previous turn's prefix in case the newest turn added more
/// blocks than the API looks back over). Empty text and thinking blocks cannot carry a
/// breakpoint, so the nearest eligible block before them is used.
fn add_cache_breakpoints(body: &mut Value) {
    let ephemeral = json!({"type": "ephemeral"});
    let mut placed = 0;
    if let Some(last) = body
        .get_mut("tools")
        .and_then(Value::as_array_mut)
        .and_then(|tools| tools.last_mut())
        .and_then(Value::as_object_mut)
    {
        last.insert("cache_control".into(), ephemeral.clone());
        placed += 1;
    }
    if let Some(last) = body
        .get_mut("system")
        .and_then(Value::as_array_mut)
        .and_then(|blocks| {
            blocks
                .iter_mut()
                .rev()
                .find(|b| b["text"].as_str().is_some_and(|t| !t.is_empty()))
        })
        .and_then(Value::as_object_mut)
    {
        last.insert("cache_control".into(), ephemeral.clone());
        placed += 1;
    }
    let Some(messages) = body.get_mut("messages").and_then(Value::as_array_mut) else {
        return;
    };
    for message in messages
        .iter_mut()
        .rev()
        .filter(|m| m["role"] == "user")
        .take(2)
    {
        if placed >= MAX_BREAKPOINTS {
            break;
        }
        let block = message
            .get_mut("content")
            .and_then(Value::as_array_mut)
            .and_then(|blocks| blocks.iter_mut().rev().find(|b| can_carry_breakpoint(b)))
            .and_then(Value::as_object_mut);
        if let Some(block) = block {
            block.insert("cache_control".into(), ephemeral.clone());
            placed += 1;
        }
    }
}

fn can_carry_breakpoint(block: &Value) -> bool {
    match block["type"].as_str() {
        Some("text") => block["text"].as_str().is_some_and(|t| !t.is_empty()),
        Some("thinking" | "redacted_thinking") | None => false,
        Some(_) => true,
    }
}

#[async_trait]
impl ModelClient for AnthropicClient {
    async fn stream(&self, request: &ModelRequest) -> Result<EventStream, ModelError> {
        let mut builder = self
            .http
            .get()
            .await?
            .post(&self.endpoint)
            .header("anthropic-version", ANTHROPIC_VERSION)
            .header("accept", "text/event-stream")
            .json(&Self::body(request));
        builder = match &self.config.auth {
            AnthropicAuth::ApiKey(key) => builder.header("x-api-key", key),
            AnthropicAuth::Bearer(token) => builder.bearer_auth(token),
        };
        if request.thinking.is_some() && wants_interleaved_thinking(&request.model) {
            // Lets Claude 4 models think between tool calls, not only before the first.
            builder = builder.header("anthropic-beta", INTERLEAVED_THINKING);
        }
        for (name, value) in &self.config.extra_headers {
            builder = builder.header(name, value);
        }
        let timeouts = self.config.timeouts;
        let response = http::send(builder, &self.endpoint, &timeouts).await?;
        if !response.status().is_success() {
            return Err(self.error_from_response(response).await);
        }
        Ok(http::sse_events(response, timeouts.idle, AnthropicEvents))
    }
}

/// The beta that allows thinking between tool calls.
const INTERLEAVED_THINKING: &str = "interleaved-thinking-2025-05-14";

fn wants_interleaved_thinking(model: &str) -> bool {
    let m = model.to_ascii_lowercase();
    m.contains("claude") && m.contains("-4")
}

/// Anthropic's SSE events need no state to translate.
struct AnthropicEvents;

impl http::Translate for AnthropicEvents {
    fn event(&mut self, name: &str, data: &str) -> Result<Translated, ModelError> {
        translate(name, data)
    }
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum WireEvent {
    MessageStart {
        message: WireMessageStart,
    },
    ContentBlockStart {
        index: usize,
        content_block: Value,
    },
    ContentBlockDelta {
        index: usize,
        delta: WireDelta,
    },
    ContentBlockStop {
        index: usize,
    },
    MessageDelta {
        delta: WireMessageDelta,
        #[serde(default)]
        usage: WireUsage,
    },
    MessageStop,
    Ping,
    Error {
        error: WireError,
    },
    #[serde(other)]
    Unknown,
}

#[derive(Deserialize)]
struct WireMessageStart {
    #[serde(default)]
    id: String,
    #[serde(default)]
    model: String,
    #[serde(default)]
    usage: WireUsage,
}

/// Usage as the wire carries it: any field may be missing or null.
#[derive(Deserialize, Default)]
struct WireUsage {
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    cache_creation_input_tokens: Option<u64>,
    cache_read_input_tokens: Option<u64>,
}

impl From<WireUsage> for Usage {
    fn from(wire: WireUsage) -> Self {
        Usage {
            input_tokens: wire.input_tokens.unwrap_or(0),
            output_tokens: wire.output_tokens.unwrap_or(0),
            cache_creation_input_tokens: wire.cache_creation_input_tokens.unwrap_or(0),
            cache_read_input_tokens: wire.cache_read_input_tokens.unwrap_or(0),
        }
    }
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum WireBlock {
    Text {
        #[serde(default)]
        text: String,
        #[serde(default)]
        citations: Option<Vec<Value>>,
    },
    ToolUse {
        id: String,
        name: String,
        #[serde(default)]
        input: Value,
    },
    Thinking {
        #[serde(default)]
        thinking: String,
        #[serde(default)]
        signature: String,
    },
    RedactedThinking {
        data: String,
    },
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum WireDelta {
    TextDelta {
        text: String,
    },
    InputJsonDelta {
        partial_json: String,
    },
    ThinkingDelta {
        thinking: String,
    },
    SignatureDelta {
        signature: String,
    },
    CitationsDelta {
        citation: Value,
    },
    #[serde(other)]
    Unknown,
}

#[derive(Deserialize)]
struct WireMessageDelta {
    stop_reason: Option<StopReason>,
    stop_sequence: Option<String>,
}

#[derive(Deserialize)]
struct WireError {
    #[serde(rename = "type", default)]
    error_type: String,
    #[serde(default)]
    message: String,
}

/// The block kinds keel interprets; anything else (or a malformed known kind) is `None` and
/// travels as a raw block.
fn block_kind(block: &Value) -> Option<WireBlock> {
    match block["type"].as_str() {
        Some("text" | "tool_use" | "thinking" | "redacted_thinking") => {
            WireBlock::deserialize(block).ok()
        }
        _ => None,
    }
}

fn translate(name: &str, data: &str) -> Result<Translated, ModelError> {
    let malformed = |reason: String| ModelError::MalformedEvent {
        event: if name.is_empty() {
            "unnamed".into()
        } else {
            name.to_string()
        },
        reason,
    };
    let wire: WireEvent = serde_json::from_str(data).map_err(|e| malformed(e.to_string()))?;
    let events = match wire {
        WireEvent::MessageStart { message } => vec![StreamEvent::MessageStart {
            id: message.id,
            model: message.model,
            usage: message.usage.into(),
        }],
        WireEvent::ContentBlockStart {
            index,
            content_block,
        } => match block_kind(&content_block) {
            Some(WireBlock::Text { text, citations }) => {
                let mut events = vec![StreamEvent::BlockStart {
                    index,
                    block: BlockStart::Text,
                }];
                if !text.is_empty() {
                    events.push(StreamEvent::TextDelta { index, text });
                }
                events.extend(
                    citations
                        .into_iter()
                        .flatten()
                        .map(|citation| StreamEvent::CitationDelta { index, citation }),
                );
                events
            }
            Some(WireBlock::ToolUse { id, name, input }) => {
                let mut events = vec![StreamEvent::BlockStart {
                    index,
                    block: BlockStart::ToolUse { id, name },
                }];
                // Input normally streams as deltas after an empty object; a proxy that sends it
                // whole in the start event is honoured.
                if input.as_object().is_some_and(|o| !o.is_empty()) {
                    events.push(StreamEvent::InputJsonDelta {
                        index,
                        partial_json: input.to_string(),
                    });
                }
                events
            }
            Some(WireBlock::Thinking {
                thinking,
                signature,
            }) => {
                let mut events = vec![StreamEvent::BlockStart {
                    index,
                    block: BlockStart::Thinking,
                }];
                if !thinking.is_empty() {
                    events.push(StreamEvent::ThinkingDelta { index, thinking });
                }
                if !signature.is_empty() {
                    events.push(StreamEvent::SignatureDelta { index, signature });
                }
                events
            }
            Some(WireBlock::RedactedThinking { data }) => vec![StreamEvent::BlockStart {
                index,
                block: BlockStart::RedactedThinking { data },
            }],
            // A server tool's call or result, or a type newer than keel: kept whole.
            None => vec![StreamEvent::BlockStart {
                index,
                block: BlockStart::Raw {
                    block: content_block,
                },
            }],
        },
        WireEvent::ContentBlockDelta { index, delta } => match delta {
            WireDelta::TextDelta { text } => vec![StreamEvent::TextDelta { index, text }],
            WireDelta::InputJsonDelta { partial_json } => {
                vec![StreamEvent::InputJsonDelta {
                    index,
                    partial_json,
                }]
            }
            WireDelta::ThinkingDelta { thinking } => {
                vec![StreamEvent::ThinkingDelta { index, thinking }]
            }
            WireDelta::SignatureDelta { signature } => {
                vec![StreamEvent::SignatureDelta { index, signature }]
            }
            WireDelta::CitationsDelta { citation } => {
                vec![StreamEvent::CitationDelta { index, citation }]
            }
            WireDelta::Unknown => vec![],
        },
        WireEvent::ContentBlockStop { index } => vec![StreamEvent::BlockStop { index }],
        WireEvent::MessageDelta { delta, usage } => vec![StreamEvent::MessageDelta {
            stop_reason: delta.stop_reason,
            stop_sequence: delta.stop_sequence,
            usage: usage.into(),
        }],
        WireEvent::MessageStop => {
            return Ok(Translated {
                events: vec![StreamEvent::MessageStop],
                done: true,
            });
        }
        WireEvent::Ping => vec![StreamEvent::Ping],
        WireEvent::Error { error } => {
            return Err(ModelError::StreamError {
                error_type: error.error_type,
                message: error.message,
            });
        }
        WireEvent::Unknown => vec![],
    };
    Ok(Translated::more(events))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        }
    }

    #[test]
    fn api_key_wins_over_auth_token() {
        let config = AnthropicConfig::from_lookup(lookup(&[
            ("ANTHROPIC_API_KEY", "k"),
            ("ANTHROPIC_AUTH_TOKEN", "t"),
        ]))
        .unwrap();
        assert_eq!(config.auth, AnthropicAuth::ApiKey("k".into()));
        assert_eq!(config.base_url, "https://api.anthropic.com");
    }

    #[test]
    fn missing_credentials_say_what_to_set() {
        let error =
            AnthropicConfig::from_lookup(lookup(&[("ANTHROPIC_API_KEY", " ")])).unwrap_err();
        assert!(error.to_string().contains("ANTHROPIC_API_KEY"));
        assert!(error.to_string().contains("ANTHROPIC_AUTH_TOKEN"));
    }

    #[test]
    fn base_url_keeps_its_path_and_loses_the_trailing_slash() {
        let config = AnthropicConfig::from_lookup(lookup(&[
            ("ANTHROPIC_AUTH_TOKEN", "t"),
            ("ANTHROPIC_BASE_URL", "http://proxy.local/anthropic/"),
            ("ANTHROPIC_CUSTOM_HEADERS", "X-Team: a\nX-Env: b"),
        ]))
        .unwrap();
        assert_eq!(config.base_url, "http://proxy.local/anthropic");
        assert_eq!(
            config.extra_headers,
            vec![("X-Team".into(), "a".into()), ("X-Env".into(), "b".into())]
        );
        let client = AnthropicClient::new(config).unwrap();
        assert_eq!(client.endpoint, "http://proxy.local/anthropic/v1/messages");
    }

    #[test]
    fn bad_base_url_and_header_lines_are_explained() {
        let error = AnthropicConfig::from_lookup(lookup(&[
            ("ANTHROPIC_API_KEY", "k"),
            ("ANTHROPIC_BASE_URL", "api.anthropic.com"),
        ]))
        .unwrap_err();
        assert!(
            error.to_string().starts_with("ANTHROPIC_BASE_URL:"),
            "{error}"
        );
        let error = AnthropicConfig::from_lookup(lookup(&[
            ("ANTHROPIC_API_KEY", "k"),
            ("ANTHROPIC_CUSTOM_HEADERS", "no colon here"),
        ]))
        .unwrap_err();
        assert!(error.to_string().contains("Name: value"), "{error}");
    }

    #[test]
    fn thinking_budget_fits_within_max_tokens_and_the_model() {
        // Enough room already: unchanged.
        assert_eq!(
            thinking_budget("claude-sonnet-4-5", 8_000, 64_000),
            (8_000, 64_000)
        );
        // The API's minimum budget.
        assert_eq!(
            thinking_budget("claude-sonnet-4-5", 100, 64_000),
            (1_024, 64_000)
        );
        // max_tokens raised to leave room for the answer.
        assert_eq!(
            thinking_budget("claude-sonnet-4-5", 8_000, 4_096),
            (8_000, 12_096)
        );
        // ...but never past what the model can write; then the budget gives way.
        assert_eq!(
            thinking_budget("claude-sonnet-4-5", 63_000, 32_000),
            (63_000, 64_000)
        );
        assert_eq!(
            thinking_budget("claude-sonnet-4-5", 64_000, 64_000),
            (32_000, 64_000)
        );
        assert_eq!(
            thinking_budget("claude-3-haiku", 8_000, 4_096),
            (2_048, 4_096)
        );
    }

    #[test]
    fn interleaved_thinking_is_asked_of_claude_4_models_only() {
        assert!(wants_interleaved_thinking("claude-sonnet-4-5"));
        assert!(wants_interleaved_thinking("claude-opus-4-1-20250805"));
        assert!(!wants_interleaved_thinking("claude-3-7-sonnet-latest"));
        assert!(!wants_interleaved_thinking("glm-4.6"));
    }

    #[test]
    fn wire_events_translate() {
        let Ok(Translated {
            events,
            done: false,
        }) = translate(
            "content_block_start",
            r#"{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_1","name":"Read","input":{}}}"#,
        )
        else {
            panic!("not translated");
        };
        assert_eq!(
            events,
            vec![StreamEvent::BlockStart {
                index: 1,
                block: BlockStart::ToolUse {
                    id: "toolu_1".into(),
                    name: "Read".into()
                }
            }]
        );
        let Err(error) = translate(
            "error",
            r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
        ) else {
            panic!("error event not reported");
        };
        assert!(error.to_string().contains("overloaded_error"));
        assert!(error.is_retryable());
        assert!(matches!(
            translate(
                "content_block_delta",
                "{\"type\": \"content_block_delta\", \"ind"
            ),
            Err(ModelError::MalformedEvent { .. })
        ));
        assert!(matches!(
            translate("future_event", r#"{"type":"future_event","x":1}"#),
            Ok(Translated { events, done: false }) if events.is_empty()
        ));
    }
}
