//! OpenAI-compatible chat completions (`POST {base_url}/chat/completions`): OpenAI itself,
//! Ollama, vLLM, llama.cpp's server, OpenRouter and gateways. Requests are translated from
//! keel's Messages-API-shaped conversation; streamed chunks (or, for servers that cannot stream
//! tool calls, one whole completion) are translated into keel's [`StreamEvent`]s.

use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use keel_protocol::{
    ContentBlock, Message, Role, StopReason, ToolResultBlock, ToolResultContent, Usage,
};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::http::{self, ErrorResponse, Timeouts, Translated};
use crate::provider::ProviderKind;
use crate::{BlockStart, EventStream, ModelClient, ModelError, ModelRequest, StreamEvent};

/// Which request field carries the output limit; servers disagree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenLimitParam {
    /// `max_tokens`: what most OpenAI-compatible servers (Ollama, vLLM, llama.cpp, OpenRouter) read.
    MaxTokens,
    /// `max_completion_tokens`: what OpenAI wants (its reasoning models reject `max_tokens`).
    MaxCompletionTokens,
    /// Send no limit and let the server decide (servers that reject both fields).
    Omit,
}

/// How the server takes a thinking budget, if at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReasoningParam {
    /// Not sent: the server has no such control, or keel does not know its spelling.
    None,
    /// OpenAI's `reasoning_effort` (`low`/`medium`/`high`), sent only to its reasoning models.
    Effort,
    /// OpenRouter's `reasoning: {max_tokens}`.
    MaxTokens,
}

/// Where and how to reach an OpenAI-compatible server.
#[derive(Clone)]
pub struct OpenAiConfig {
    /// Which preset this is; decides the wording of help in error messages.
    pub kind: ProviderKind,
    /// The API's base URL, usually ending in `/v1`; requests go to `{base_url}/chat/completions`.
    pub base_url: String,
    /// The key, sent as `Authorization: Bearer`; local servers need none.
    pub api_key: Option<String>,
    /// The environment variable the key comes from (or should), named in error messages.
    pub api_key_env: Option<String>,
    /// Headers added to every request.
    pub extra_headers: Vec<(String, String)>,
    /// Connect, first-byte and idle timeouts.
    pub timeouts: Timeouts,
    /// Which field carries `max_tokens`.
    pub token_limit: TokenLimitParam,
    /// How a thinking budget is sent.
    pub reasoning: ReasoningParam,
    /// False to send requests that carry tools without streaming from the start (servers that
    /// cannot stream tool calls); keel also finds this out by itself on the first refusal.
    pub stream_tool_calls: bool,
}

impl std::fmt::Debug for OpenAiConfig {
    // The key never reaches logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiConfig")
            .field("kind", &self.kind)
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "***"))
            .field("api_key_env", &self.api_key_env)
            .field("extra_headers", &self.extra_headers)
            .field("timeouts", &self.timeouts)
            .field("token_limit", &self.token_limit)
            .field("reasoning", &self.reasoning)
            .field("stream_tool_calls", &self.stream_tool_calls)
            .finish()
    }
}

impl OpenAiConfig {
    /// A configuration for a server at `base_url` with no key, default timeouts, `max_tokens`,
    /// no reasoning control and streaming tool calls.
    pub fn new(kind: ProviderKind, base_url: impl Into<String>) -> Self {
        Self {
            kind,
            base_url: base_url.into().trim().trim_end_matches('/').to_string(),
            api_key: None,
            api_key_env: None,
            extra_headers: Vec::new(),
            timeouts: Timeouts::default(),
            token_limit: TokenLimitParam::MaxTokens,
            reasoning: ReasoningParam::None,
            stream_tool_calls: true,
        }
    }
}

/// A client for an OpenAI-compatible chat completions API. Remembers, for its lifetime, when
/// the server refused to stream so later turns go straight to non-streaming requests.
#[derive(Debug)]
pub struct OpenAiClient {
    http: http::HttpClient,
    config: OpenAiConfig,
    endpoint: String,
    /// The server refused a streaming request that carried tools.
    no_stream_with_tools: AtomicBool,
    /// The server refused a streaming request without tools (it cannot stream at all).
    no_stream: AtomicBool,
}

impl OpenAiClient {
    /// A client for `config`. The HTTP stack is set up in the background (see
    /// `http::HttpClient`); should that fail, the first request reports it.
    pub fn new(config: OpenAiConfig) -> Result<Self, ModelError> {
        let http = http::HttpClient::new(&config.base_url, &config.timeouts);
        let endpoint = format!("{}/chat/completions", config.base_url);
        let no_stream_with_tools = AtomicBool::new(!config.stream_tool_calls);
        Ok(Self {
            http,
            config,
            endpoint,
            no_stream_with_tools,
            no_stream: AtomicBool::new(false),
        })
    }

    /// Where requests go.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Whether a request carrying tools would be streamed (false after the server refused).
    pub fn streams_tool_calls(&self) -> bool {
        !self.no_stream_with_tools.load(Ordering::Relaxed)
            && !self.no_stream.load(Ordering::Relaxed)
    }

    /// The request body for `request`, streaming or not, as chat completions expect it.
    pub fn body(&self, request: &ModelRequest, stream: bool) -> Value {
        let mut body = json!({
            "model": request.model,
            "messages": chat_messages(request),
            "stream": stream,
        });
        if stream {
            body["stream_options"] = json!({"include_usage": true});
        }
        match self.config.token_limit {
            TokenLimitParam::MaxTokens => body["max_tokens"] = json!(request.max_tokens),
            TokenLimitParam::MaxCompletionTokens => {
                body["max_completion_tokens"] = json!(request.max_tokens);
            }
            TokenLimitParam::Omit => {}
        }
        if !request.tools.is_empty() {
            body["tools"] = Value::Array(
                request
                    .tools
                    .iter()
                    .map(|tool| {
                        json!({"type": "function", "function": {
                            "name": tool.name,
                            "description": tool.description,
                            "parameters": tool.input_schema,
                        }})
                    })
                    .collect(),
            );
        }
        if let Some(budget) = request.thinking {
            match self.config.reasoning {
                ReasoningParam::Effort if is_openai_reasoning_model(&request.model) => {
                    body["reasoning_effort"] = json!(effort_for(budget));
                }
                ReasoningParam::MaxTokens => {
                    body["reasoning"] = json!({"max_tokens": budget});
                }
                ReasoningParam::Effort | ReasoningParam::None => {}
            }
        }
        body
    }

    async fn send(
        &self,
        request: &ModelRequest,
        stream: bool,
    ) -> Result<reqwest::Response, ModelError> {
        let mut builder = self
            .http
            .get()
            .await?
            .post(&self.endpoint)
            .json(&self.body(request, stream));
        if stream {
            builder = builder.header("accept", "text/event-stream");
        }
        if let Some(key) = &self.config.api_key {
            builder = builder.bearer_auth(key);
        }
        for (name, value) in &self.config.extra_headers {
            builder = builder.header(name, value);
        }
        http::send(builder, &self.endpoint, &self.config.timeouts).await
    }

    /// The whole answer in one response, replayed as stream events.
    async fn complete(&self, request: &ModelRequest) -> Result<EventStream, ModelError> {
        let response = self.send(request, false).await?;
        if !response.status().is_success() {
            let error = http::read_error(response, self.config.timeouts.idle).await;
            return Err(self.api_error(request, error));
        }
        let body = http::read_body(response, self.config.timeouts.idle).await?;
        if body.iter().all(u8::is_ascii_whitespace) {
            return Err(ModelError::StreamEnded);
        }
        let completion: Completion =
            serde_json::from_slice(&body).map_err(|e| ModelError::MalformedEvent {
                event: "chat.completion".into(),
                reason: e.to_string(),
            })?;
        let events = completion_events(completion, &request.model)?;
        Ok(Box::pin(futures::stream::iter(events.into_iter().map(Ok))))
    }

    fn api_error(&self, request: &ModelRequest, error: ErrorResponse) -> ModelError {
        if !request.tools.is_empty() && tools_unsupported(&error.message) {
            return ModelError::ToolsUnsupported {
                model: request.model.clone(),
                detail: error.message,
                help: tools_help(self.config.kind).to_string(),
            };
        }
        let help = self.help_for(error.status, &error.message);
        ModelError::Api {
            status: error.status,
            error_type: error.error_type,
            message: error.message,
            help,
            retry_after: error.retry_after,
        }
    }

    fn help_for(&self, status: u16, message: &str) -> Option<String> {
        let ollama = self.config.kind == ProviderKind::Ollama;
        match status {
            401 | 403 => Some(match (&self.config.api_key_env, &self.config.api_key) {
                (Some(var), Some(_)) => format!(
                    "Check {var}: {} did not accept the key it holds",
                    self.config.base_url
                ),
                (Some(var), None) => format!("Set {var} to your API key"),
                (None, _) => format!(
                    "{} wants an API key: put it in an environment variable and name that \
                     variable in keel's provider settings (api key env)",
                    self.config.base_url
                ),
            }),
            404 if message.to_ascii_lowercase().contains("model") => Some(if ollama {
                "Check the model name given with --model; Ollama needs `ollama pull NAME` \
                 first, and `ollama list` shows what is installed"
                    .to_string()
            } else {
                "Check the model name given with --model".to_string()
            }),
            404 => Some(format!(
                "keel sent the request to {}; check the base URL (it usually ends in /v1)",
                self.endpoint
            )),
            413 => Some("The conversation is too large; start a new session".into()),
            429 => Some("Wait a moment and try again, or check your plan's rate limits".into()),
            500..=599 => Some("The server is having trouble; try again shortly".into()),
            _ => None,
        }
    }
}

#[async_trait]
impl ModelClient for OpenAiClient {
    async fn stream(&self, request: &ModelRequest) -> Result<EventStream, ModelError> {
        let has_tools = !request.tools.is_empty();
        if self.no_stream.load(Ordering::Relaxed)
            || (has_tools && self.no_stream_with_tools.load(Ordering::Relaxed))
        {
            return self.complete(request).await;
        }
        let response = self.send(request, true).await?;
        if !response.status().is_success() {
            let error = http::read_error(response, self.config.timeouts.idle).await;
            if refuses_streaming(error.status, &error.message) {
                tracing::info!(
                    server = %self.config.base_url,
                    reason = %error.message,
                    "the server cannot stream this request; using non-streaming requests from now on"
                );
                let flag = if has_tools {
                    &self.no_stream_with_tools
                } else {
                    &self.no_stream
                };
                flag.store(true, Ordering::Relaxed);
                return self.complete(request).await;
            }
            return Err(self.api_error(request, error));
        }
        Ok(http::sse_events(
            response,
            self.config.timeouts.idle,
            Chunks::new(&request.model),
        ))
    }
}

/// OpenAI's models that take `reasoning_effort` (others reject it).
fn is_openai_reasoning_model(model: &str) -> bool {
    let m = model.to_ascii_lowercase();
    let m = m.rsplit('/').next().unwrap_or(&m);
    m.starts_with("o1") || m.starts_with("o3") || m.starts_with("o4") || m.starts_with("gpt-5")
}

/// A thinking budget in OpenAI's three effort levels.
fn effort_for(budget: u32) -> &'static str {
    match budget {
        0..=4_096 => "low",
        4_097..=16_384 => "medium",
        _ => "high",
    }
}

/// Whether an error says the server cannot stream (this request, or with tools): Ollama's and
/// the mock's "tools are not supported in streaming mode", llama.cpp's "Cannot use tools with
/// stream", OpenAI's "'stream' does not support true with this model".
fn refuses_streaming(status: u16, message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    // "stream" as a word of its own ("streaming" counts, "upstream" does not).
    let mentions_stream = m.match_indices("stream").any(|(at, _)| {
        !m[..at]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_ascii_alphabetic())
    });
    matches!(status, 400 | 422 | 500 | 501)
        && mentions_stream
        && [
            "not supported",
            "unsupported",
            "does not support",
            "not support",
            "cannot use",
            "can't use",
            "not allowed",
        ]
        .iter()
        .any(|phrase| m.contains(phrase))
}

/// Whether an error says the model cannot call tools: Ollama's "MODEL does not support tools",
/// OpenRouter's "No endpoints found that support tool use", llama.cpp without `--jinja`, vLLM
/// without `--enable-auto-tool-choice`, and the common phrasings of other servers.
fn tools_unsupported(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    [
        "does not support tools",
        "doesn't support tools",
        "tool use is not supported",
        "tools are not supported",
        "tools is not supported",
        "does not support function calling",
        "function calling is not supported",
        "support tool use",
        "tools param requires --jinja",
        "\"auto\" tool choice requires",
    ]
    .iter()
    .any(|phrase| m.contains(phrase))
}

/// What to do about a model without tools, per provider.
fn tools_help(kind: ProviderKind) -> &'static str {
    match kind {
        ProviderKind::Ollama => {
            "Pick a model that supports tools with --model, e.g. qwen2.5-coder or llama3.1 \
             (`ollama pull qwen2.5-coder`)"
        }
        ProviderKind::OpenRouter => {
            "Pick a model that supports tools with --model (the list: \
             https://openrouter.ai/models?supported_parameters=tools)"
        }
        ProviderKind::OpenAi => "Pick a model that supports tools with --model, e.g. gpt-4.1",
        _ => {
            "Pick a model that supports tools with --model, e.g. qwen2.5-coder or llama3.1; \
             llama.cpp's server needs --jinja and vLLM needs --enable-auto-tool-choice with a \
             --tool-call-parser"
        }
    }
}

/// The conversation as chat messages: one `system` message, user text (images as `image_url`
/// parts), assistant text and `tool_calls`, and one `tool` message per tool result. Thinking
/// blocks are left out: OpenAI-compatible servers neither need nor accept them back.
pub(crate) fn chat_messages(request: &ModelRequest) -> Vec<Value> {
    let mut out = Vec::new();
    let system: Vec<&str> = request
        .system
        .iter()
        .map(String::as_str)
        .filter(|s| !s.is_empty())
        .collect();
    if !system.is_empty() {
        out.push(json!({"role": "system", "content": system.join("\n\n")}));
    }
    for message in &request.messages {
        match message.role {
            Role::User => user_messages(message, &mut out),
            Role::Assistant => {
                if let Some(message) = assistant_message(message) {
                    out.push(message);
                }
            }
        }
    }
    out
}

fn user_messages(message: &Message, out: &mut Vec<Value>) {
    // Tool messages must directly follow the assistant's tool calls, so they go first; the
    // user's own text (and images tools returned, which tool messages cannot carry) follow.
    let mut parts: Vec<Value> = Vec::new();
    let mut has_image = false;
    for block in &message.content {
        match block {
            ContentBlock::Text { text } => parts.push(json!({"type": "text", "text": text})),
            ContentBlock::ToolResult {
                tool_use_id,
                content,
                is_error,
            } => {
                let (text, images) = split_tool_content(content);
                let text = match (*is_error, text.is_empty()) {
                    (true, _) => format!("Error: {text}"),
                    (false, true) => "(no output)".to_string(),
                    (false, false) => text,
                };
                out.push(json!({"role": "tool", "tool_call_id": tool_use_id, "content": text}));
                if !images.is_empty() {
                    has_image = true;
                    parts.push(json!({
                        "type": "text",
                        "text": format!("The image(s) returned by tool call {tool_use_id}:"),
                    }));
                    parts.extend(images);
                }
            }
            // Cited text keeps its words; server-tool blocks mean nothing to these servers.
            ContentBlock::Other(_) => {
                if let Some(text) = block.text() {
                    parts.push(json!({"type": "text", "text": text}));
                }
            }
            ContentBlock::ToolUse { .. }
            | ContentBlock::Thinking { .. }
            | ContentBlock::RedactedThinking { .. } => {}
        }
    }
    if parts.is_empty() {
        return;
    }
    if has_image {
        out.push(json!({"role": "user", "content": parts}));
    } else {
        // Plain strings: every server understands them, not all understand part arrays.
        let text: Vec<&str> = parts.iter().filter_map(|p| p["text"].as_str()).collect();
        out.push(json!({"role": "user", "content": text.join("\n\n")}));
    }
}

/// A tool result's text, and its images as `image_url` parts.
fn split_tool_content(content: &ToolResultContent) -> (String, Vec<Value>) {
    match content {
        ToolResultContent::Text(text) => (text.clone(), Vec::new()),
        ToolResultContent::Blocks(blocks) => {
            let mut texts = Vec::new();
            let mut images = Vec::new();
            for block in blocks {
                match block {
                    ToolResultBlock::Text { text } => texts.push(text.as_str()),
                    ToolResultBlock::Image { source } => {
                        if let Some(url) = image_url(source) {
                            images.push(json!({"type": "image_url", "image_url": {"url": url}}));
                        }
                    }
                }
            }
            (texts.join("\n"), images)
        }
    }
}

/// An Anthropic image source as a URL: base64 data becomes a `data:` URL.
fn image_url(source: &Value) -> Option<String> {
    match source["type"].as_str() {
        Some("base64") => Some(format!(
            "data:{};base64,{}",
            source["media_type"].as_str().unwrap_or("image/png"),
            source["data"].as_str()?
        )),
        Some("url") => source["url"].as_str().map(str::to_string),
        _ => None,
    }
}

fn assistant_message(message: &Message) -> Option<Value> {
    let mut text = String::new();
    let mut tool_calls = Vec::new();
    for block in &message.content {
        match block {
            ContentBlock::Text { text: t } => text.push_str(t),
            ContentBlock::ToolUse { id, name, input } => tool_calls.push(json!({
                "id": id,
                "type": "function",
                "function": {"name": name, "arguments": input.to_string()},
            })),
            ContentBlock::Other(_) => text.push_str(block.text().unwrap_or_default()),
            ContentBlock::ToolResult { .. }
            | ContentBlock::Thinking { .. }
            | ContentBlock::RedactedThinking { .. } => {}
        }
    }
    if text.is_empty() && tool_calls.is_empty() {
        return None;
    }
    let mut out = json!({
        "role": "assistant",
        "content": if text.is_empty() { Value::Null } else { Value::String(text) },
    });
    if !tool_calls.is_empty() {
        out["tool_calls"] = Value::Array(tool_calls);
    }
    Some(out)
}

/// One streamed chunk (or, for a non-streaming answer, the whole message recast as one).
#[derive(Deserialize, Default)]
struct Chunk {
    #[serde(default)]
    id: String,
    #[serde(default)]
    model: String,
    #[serde(default)]
    choices: Vec<ChunkChoice>,
    #[serde(default)]
    usage: Option<WireUsage>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Deserialize, Default)]
struct ChunkChoice {
    #[serde(default)]
    delta: Delta,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize, Default)]
struct Delta {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    reasoning_content: Option<String>,
    /// OpenRouter's and newer vLLM's and Ollama's name for `reasoning_content`.
    #[serde(default)]
    reasoning: Option<String>,
    #[serde(default)]
    refusal: Option<String>,
    #[serde(default)]
    tool_calls: Option<Vec<ToolCallDelta>>,
}

#[derive(Deserialize, Default)]
struct ToolCallDelta {
    #[serde(default)]
    index: Option<u64>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    function: Option<FunctionDelta>,
}

#[derive(Deserialize, Default)]
struct FunctionDelta {
    #[serde(default)]
    name: Option<String>,
    /// A string of JSON; some servers send the object itself in non-streaming answers.
    #[serde(default)]
    arguments: Option<Value>,
}

#[derive(Deserialize, Default, Clone, Copy)]
struct WireUsage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
    #[serde(default)]
    prompt_tokens_details: Option<PromptDetails>,
    /// DeepSeek's spelling of cached prompt tokens.
    #[serde(default)]
    prompt_cache_hit_tokens: Option<u64>,
}

#[derive(Deserialize, Default, Clone, Copy)]
struct PromptDetails {
    #[serde(default)]
    cached_tokens: Option<u64>,
}

impl From<WireUsage> for Usage {
    /// `prompt_tokens` includes cached tokens; keel counts them apart, as Anthropic does.
    fn from(wire: WireUsage) -> Self {
        let cached = wire
            .prompt_tokens_details
            .and_then(|d| d.cached_tokens)
            .or(wire.prompt_cache_hit_tokens)
            .unwrap_or(0)
            .min(wire.prompt_tokens);
        Usage {
            input_tokens: wire.prompt_tokens - cached,
            output_tokens: wire.completion_tokens,
            cache_creation_input_tokens: 0,
            cache_read_input_tokens: cached,
        }
    }
}

/// The non-streaming answer.
#[derive(Deserialize)]
struct Completion {
    #[serde(default)]
    id: String,
    #[serde(default)]
    model: String,
    #[serde(default)]
    choices: Vec<CompletionChoice>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct CompletionChoice {
    #[serde(default)]
    message: CompletionMessage,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize, Default)]
struct CompletionMessage {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    reasoning_content: Option<String>,
    #[serde(default)]
    reasoning: Option<String>,
    #[serde(default)]
    refusal: Option<String>,
    #[serde(default)]
    tool_calls: Vec<WholeToolCall>,
}

#[derive(Deserialize)]
struct WholeToolCall {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    function: FunctionDelta,
}

/// A whole completion as the event sequence its stream would have produced.
fn completion_events(completion: Completion, model: &str) -> Result<Vec<StreamEvent>, ModelError> {
    let choice = completion.choices.into_iter().next();
    let (message, finish_reason) = match choice {
        Some(c) => (c.message, c.finish_reason),
        None => (CompletionMessage::default(), None),
    };
    // Each part as a chunk of its own, in the order a stream would send them.
    let head = |delta: Delta| Chunk {
        id: completion.id.clone(),
        model: completion.model.clone(),
        choices: vec![ChunkChoice {
            delta,
            finish_reason: None,
        }],
        ..Chunk::default()
    };
    let mut chunks = vec![
        head(Delta {
            reasoning_content: message.reasoning_content.or(message.reasoning),
            ..Delta::default()
        }),
        head(Delta {
            content: message.content,
            refusal: message.refusal,
            ..Delta::default()
        }),
    ];
    for (index, call) in message.tool_calls.into_iter().enumerate() {
        chunks.push(head(Delta {
            tool_calls: Some(vec![ToolCallDelta {
                index: Some(index as u64),
                id: call.id,
                function: Some(call.function),
            }]),
            ..Delta::default()
        }));
    }
    chunks.push(Chunk {
        choices: vec![ChunkChoice {
            delta: Delta::default(),
            finish_reason,
        }],
        usage: completion.usage,
        ..Chunk::default()
    });
    let mut translator = Chunks::new(model);
    let mut events = Vec::new();
    for chunk in chunks {
        events.extend(translator.chunk(chunk)?);
    }
    events.extend(translator.finish());
    Ok(events)
}

/// What kind of block is open for deltas that continue it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Open {
    Text(usize),
    Thinking(usize),
}

/// A tool call seen in the stream.
struct ToolSlot {
    /// The call's `index` in the chunks.
    key: u64,
    /// Its block index, once announced (the name may come after the first piece).
    block: Option<usize>,
    id: String,
    name: String,
    /// Argument pieces that arrived before the name.
    buffered: String,
    closed: bool,
}

/// Translates chat completion chunks into keel's events. Blocks get indexes in the order they
/// first appear; a block closes when content of another kind starts.
struct Chunks {
    fallback_model: String,
    started: bool,
    next_index: usize,
    open: Option<Open>,
    tools: Vec<ToolSlot>,
    finish: Option<String>,
    usage: Option<Usage>,
}

impl Chunks {
    fn new(model: &str) -> Self {
        Self {
            fallback_model: model.to_string(),
            started: false,
            next_index: 0,
            open: None,
            tools: Vec::new(),
            finish: None,
            usage: None,
        }
    }

    fn start(&mut self, id: &str, model: &str, events: &mut Vec<StreamEvent>) {
        if self.started {
            return;
        }
        self.started = true;
        events.push(StreamEvent::MessageStart {
            id: if id.is_empty() {
                "chatcmpl-keel".to_string()
            } else {
                id.to_string()
            },
            model: if model.is_empty() {
                self.fallback_model.clone()
            } else {
                model.to_string()
            },
            usage: Usage::default(),
        });
    }

    fn close_open(&mut self, events: &mut Vec<StreamEvent>) {
        if let Some(Open::Text(index) | Open::Thinking(index)) = self.open.take() {
            events.push(StreamEvent::BlockStop { index });
        }
    }

    fn close_tools(&mut self, events: &mut Vec<StreamEvent>) {
        for slot in &mut self.tools {
            if let (Some(index), false) = (slot.block, slot.closed) {
                slot.closed = true;
                events.push(StreamEvent::BlockStop { index });
            }
        }
    }

    fn text(&mut self, text: &str, thinking: bool, events: &mut Vec<StreamEvent>) {
        if text.is_empty() {
            return;
        }
        let index = match (self.open, thinking) {
            (Some(Open::Text(index)), false) | (Some(Open::Thinking(index)), true) => index,
            _ => {
                self.close_open(events);
                self.close_tools(events);
                let index = self.next_index;
                self.next_index += 1;
                self.open = Some(if thinking {
                    Open::Thinking(index)
                } else {
                    Open::Text(index)
                });
                let block = if thinking {
                    BlockStart::Thinking
                } else {
                    BlockStart::Text
                };
                events.push(StreamEvent::BlockStart { index, block });
                index
            }
        };
        events.push(if thinking {
            StreamEvent::ThinkingDelta {
                index,
                thinking: text.to_string(),
            }
        } else {
            StreamEvent::TextDelta {
                index,
                text: text.to_string(),
            }
        });
    }

    fn tool_call(&mut self, call: ToolCallDelta, events: &mut Vec<StreamEvent>) {
        // Servers that omit `index` send one call at a time: a new id means a new call.
        let key = match call.index {
            Some(key) => key,
            None => match (&call.id, self.tools.last()) {
                (Some(id), Some(last)) if *id != last.id => last.key + 1,
                (_, Some(last)) => last.key,
                (_, None) => 0,
            },
        };
        let function = call.function.unwrap_or_default();
        let arguments = match function.arguments {
            Some(Value::String(s)) => s,
            Some(Value::Null) | None => String::new(),
            Some(other) => other.to_string(),
        };
        let position = match self.tools.iter().position(|slot| slot.key == key) {
            Some(position) => position,
            None => {
                self.close_open(events);
                self.close_tools(events);
                self.tools.push(ToolSlot {
                    key,
                    block: None,
                    id: call.id.clone().unwrap_or_default(),
                    name: String::new(),
                    buffered: String::new(),
                    closed: false,
                });
                self.tools.len() - 1
            }
        };
        let next_index = &mut self.next_index;
        let slot = &mut self.tools[position];
        if slot.id.is_empty()
            && let Some(id) = call.id
        {
            slot.id = id;
        }
        if let Some(name) = function.name.filter(|n| !n.is_empty()) {
            slot.name.push_str(&name);
        }
        match slot.block {
            Some(index) => {
                if !arguments.is_empty() {
                    events.push(StreamEvent::InputJsonDelta {
                        index,
                        partial_json: arguments,
                    });
                }
            }
            None if slot.name.is_empty() => slot.buffered.push_str(&arguments),
            None => {
                let index = *next_index;
                *next_index += 1;
                slot.block = Some(index);
                if slot.id.is_empty() {
                    slot.id = format!("call_keel_{index}");
                }
                events.push(StreamEvent::BlockStart {
                    index,
                    block: BlockStart::ToolUse {
                        id: slot.id.clone(),
                        name: slot.name.clone(),
                    },
                });
                let mut pending = std::mem::take(&mut slot.buffered);
                pending.push_str(&arguments);
                if !pending.is_empty() {
                    events.push(StreamEvent::InputJsonDelta {
                        index,
                        partial_json: pending,
                    });
                }
            }
        }
    }

    fn chunk(&mut self, chunk: Chunk) -> Result<Vec<StreamEvent>, ModelError> {
        let mut events = Vec::new();
        if let Some(error) = chunk.error {
            let (error_type, message) =
                http::parse_error_body(&json!({"error": error}).to_string());
            return Err(ModelError::StreamError {
                error_type,
                message,
            });
        }
        self.start(&chunk.id, &chunk.model, &mut events);
        if let Some(usage) = chunk.usage {
            self.usage = Some(usage.into());
        }
        // keel asks for one choice; anything else is ignored.
        if let Some(choice) = chunk.choices.into_iter().next() {
            let delta = choice.delta;
            for thinking in [delta.reasoning_content, delta.reasoning]
                .into_iter()
                .flatten()
            {
                self.text(&thinking, true, &mut events);
            }
            for text in [delta.content, delta.refusal].into_iter().flatten() {
                self.text(&text, false, &mut events);
            }
            for call in delta.tool_calls.into_iter().flatten() {
                self.tool_call(call, &mut events);
            }
            if let Some(reason) = choice.finish_reason.filter(|r| !r.is_empty()) {
                self.close_open(&mut events);
                self.close_tools(&mut events);
                self.finish = Some(reason);
            }
        }
        Ok(events)
    }

    /// The closing events: open blocks stopped, the stop reason and usage, `MessageStop`.
    fn finish(&mut self) -> Vec<StreamEvent> {
        let mut events = Vec::new();
        self.start("", "", &mut events);
        // A tool call that never got a name cannot be run; it still shows up, so the model
        // hears about it instead of the call vanishing.
        for position in 0..self.tools.len() {
            if self.tools[position].block.is_none() {
                self.tools[position].name = "unknown".into();
                let buffered = std::mem::take(&mut self.tools[position].buffered);
                let call = ToolCallDelta {
                    index: Some(self.tools[position].key),
                    id: None,
                    function: Some(FunctionDelta {
                        name: None,
                        arguments: Some(Value::String(buffered)),
                    }),
                };
                // The slot exists and now has a name, so this announces the block.
                self.tool_call(call, &mut events);
            }
        }
        self.close_open(&mut events);
        self.close_tools(&mut events);
        let called_tools = !self.tools.is_empty();
        let stop_reason = match self.finish.as_deref() {
            Some("tool_calls" | "function_call") => StopReason::ToolUse,
            // Some servers say `stop` even when the answer is tool calls.
            Some("stop") | None if called_tools => StopReason::ToolUse,
            Some("stop") | None => StopReason::EndTurn,
            Some("length") => StopReason::MaxTokens,
            Some("content_filter") => StopReason::Refusal,
            Some(_) => StopReason::Unknown,
        };
        events.push(StreamEvent::MessageDelta {
            stop_reason: Some(stop_reason),
            stop_sequence: None,
            usage: self.usage.unwrap_or_default(),
        });
        events.push(StreamEvent::MessageStop);
        events
    }
}

impl http::Translate for Chunks {
    fn event(&mut self, _name: &str, data: &str) -> Result<Translated, ModelError> {
        if data.trim() == "[DONE]" {
            return Ok(Translated {
                events: self.finish(),
                done: true,
            });
        }
        let chunk: Chunk = serde_json::from_str(data).map_err(|e| ModelError::MalformedEvent {
            event: "chat.completion.chunk".into(),
            reason: e.to_string(),
        })?;
        Ok(Translated::more(self.chunk(chunk)?))
    }

    fn end_of_body(&mut self) -> Result<Vec<StreamEvent>, ModelError> {
        // A server that said why it stopped has sent the whole answer, even if `[DONE]` (or
        // the usage after it) was lost; anything less is an answer cut short.
        if self.finish.is_some() {
            tracing::debug!("stream ended without [DONE] after finish_reason; accepting it");
            Ok(self.finish())
        } else {
            Err(ModelError::StreamEnded)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MessageAccumulator;
    use keel_protocol::ToolSpec;

    fn request(messages: Vec<Message>) -> ModelRequest {
        let mut request = ModelRequest::new("gpt-test", messages);
        request.system = vec!["You are keel.".into(), "Be brief.".into()];
        request.tools = vec![ToolSpec {
            name: "Read".into(),
            description: "Reads a file".into(),
            input_schema: json!({"type": "object"}),
        }];
        request.max_tokens = 1000;
        request
    }

    fn feed(data: &[&str]) -> Result<Vec<StreamEvent>, ModelError> {
        let mut chunks = Chunks::new("fallback");
        let mut events = Vec::new();
        for d in data {
            let translated = http::Translate::event(&mut chunks, "", d)?;
            events.extend(translated.events);
            if translated.done {
                break;
            }
        }
        Ok(events)
    }

    #[test]
    fn conversation_becomes_chat_messages() {
        let messages = vec![
            Message::user_text("fix it"),
            Message {
                role: Role::Assistant,
                content: vec![
                    ContentBlock::Thinking {
                        thinking: "hmm".into(),
                        signature: "sig".into(),
                    },
                    ContentBlock::Text {
                        text: "Reading.".into(),
                    },
                    ContentBlock::ToolUse {
                        id: "call_1".into(),
                        name: "Read".into(),
                        input: json!({"file_path": "a.py"}),
                    },
                    ContentBlock::ToolUse {
                        id: "call_2".into(),
                        name: "Read".into(),
                        input: json!({"file_path": "b.png"}),
                    },
                ],
            },
            Message {
                role: Role::User,
                content: vec![
                    ContentBlock::ToolResult {
                        tool_use_id: "call_1".into(),
                        content: ToolResultContent::Text("no such file".into()),
                        is_error: true,
                    },
                    ContentBlock::ToolResult {
                        tool_use_id: "call_2".into(),
                        content: ToolResultContent::Blocks(vec![
                            ToolResultBlock::Text {
                                text: "b.png, 1x1".into(),
                            },
                            ToolResultBlock::Image {
                                source: json!({"type": "base64", "media_type": "image/png", "data": "iVBO"}),
                            },
                        ]),
                        is_error: false,
                    },
                ],
            },
        ];
        let chat = chat_messages(&request(messages));
        assert_eq!(
            chat,
            vec![
                json!({"role": "system", "content": "You are keel.\n\nBe brief."}),
                json!({"role": "user", "content": "fix it"}),
                json!({"role": "assistant", "content": "Reading.", "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "Read", "arguments": "{\"file_path\":\"a.py\"}"}},
                    {"id": "call_2", "type": "function", "function": {"name": "Read", "arguments": "{\"file_path\":\"b.png\"}"}},
                ]}),
                json!({"role": "tool", "tool_call_id": "call_1", "content": "Error: no such file"}),
                json!({"role": "tool", "tool_call_id": "call_2", "content": "b.png, 1x1"}),
                json!({"role": "user", "content": [
                    {"type": "text", "text": "The image(s) returned by tool call call_2:"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO"}},
                ]}),
            ]
        );
    }

    #[test]
    fn body_carries_tools_usage_and_the_right_token_field() {
        let mut config = OpenAiConfig::new(ProviderKind::OpenAi, "http://x/v1/");
        config.token_limit = TokenLimitParam::MaxCompletionTokens;
        let client = OpenAiClient::new(config).unwrap();
        assert_eq!(client.endpoint(), "http://x/v1/chat/completions");
        let body = client.body(&request(vec![Message::user_text("hi")]), true);
        assert_eq!(body["stream"], true);
        assert_eq!(body["stream_options"], json!({"include_usage": true}));
        assert_eq!(body["max_completion_tokens"], 1000);
        assert!(body.get("max_tokens").is_none());
        assert_eq!(
            body["tools"],
            json!([{"type": "function", "function": {"name": "Read", "description": "Reads a file", "parameters": {"type": "object"}}}])
        );
        let body = client.body(&request(vec![Message::user_text("hi")]), false);
        assert!(body.get("stream_options").is_none());
    }

    #[test]
    fn a_thinking_budget_becomes_the_providers_reasoning_control() {
        let body = |kind, reasoning, model: &str| {
            let mut config = OpenAiConfig::new(kind, "http://x/v1");
            config.reasoning = reasoning;
            let client = OpenAiClient::new(config).unwrap();
            let mut request = request(vec![Message::user_text("hi")]);
            request.model = model.into();
            request.thinking = Some(20_000);
            client.body(&request, true)
        };
        let openai = body(ProviderKind::OpenAi, ReasoningParam::Effort, "gpt-5-mini");
        assert_eq!(openai["reasoning_effort"], "high");
        let plain = body(ProviderKind::OpenAi, ReasoningParam::Effort, "gpt-4.1");
        assert!(
            plain.get("reasoning_effort").is_none(),
            "gpt-4.1 rejects it"
        );
        let routed = body(ProviderKind::OpenRouter, ReasoningParam::MaxTokens, "x/y");
        assert_eq!(routed["reasoning"], json!({"max_tokens": 20_000}));
        let local = body(ProviderKind::Ollama, ReasoningParam::None, "qwen3");
        assert!(local.get("reasoning").is_none() && local.get("reasoning_effort").is_none());
        assert_eq!((effort_for(1_024), effort_for(8_000)), ("low", "medium"));
    }

    #[test]
    fn interleaved_content_gets_blocks_in_order_of_appearance() {
        let events = feed(&[
            r#"{"id":"c1","model":"m","choices":[{"delta":{"role":"assistant","content":""}}]}"#,
            r#"{"choices":[{"delta":{"reasoning_content":"think "}}]}"#,
            r#"{"choices":[{"delta":{"reasoning":"more"}}]}"#,
            r#"{"choices":[{"delta":{"content":"Hi"}}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"id":"a","function":{"name":"Read","arguments":"{\"fi"}}]}}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":[{"index":1,"id":"b","function":{"name":"Grep","arguments":""}}]}}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":"le\":1}"}}]}}]}"#,
            r#"{"choices":[{"delta":{},"finish_reason":"tool_calls"}]}"#,
            r#"{"choices":[],"usage":{"prompt_tokens":50,"completion_tokens":7,"prompt_tokens_details":{"cached_tokens":20}}}"#,
            "[DONE]",
        ])
        .unwrap();
        let mut acc = MessageAccumulator::new();
        events.iter().for_each(|e| acc.push(e));
        assert!(acc.is_complete());
        let message = acc.finish().message;
        assert_eq!(message.id, "c1");
        assert_eq!(message.stop_reason, Some(StopReason::ToolUse));
        assert_eq!(
            message.usage,
            Usage {
                input_tokens: 30,
                output_tokens: 7,
                cache_creation_input_tokens: 0,
                cache_read_input_tokens: 20
            }
        );
        assert_eq!(
            message.content,
            vec![
                ContentBlock::Thinking {
                    thinking: "think more".into(),
                    signature: String::new()
                },
                ContentBlock::Text { text: "Hi".into() },
                ContentBlock::ToolUse {
                    id: "a".into(),
                    name: "Read".into(),
                    input: json!({"file": 1})
                },
                ContentBlock::ToolUse {
                    id: "b".into(),
                    name: "Grep".into(),
                    input: json!({})
                },
            ]
        );
    }

    #[test]
    fn finish_reasons_map_and_stop_with_tool_calls_means_tool_use() {
        let stop = |events: Vec<StreamEvent>| {
            events.iter().find_map(|e| match e {
                StreamEvent::MessageDelta { stop_reason, .. } => *stop_reason,
                _ => None,
            })
        };
        for (reason, expected) in [
            ("stop", StopReason::EndTurn),
            ("length", StopReason::MaxTokens),
            ("content_filter", StopReason::Refusal),
            ("weird", StopReason::Unknown),
        ] {
            let finish = format!(
                r#"{{"choices":[{{"delta":{{"content":"x"}},"finish_reason":"{reason}"}}]}}"#
            );
            assert_eq!(stop(feed(&[&finish, "[DONE]"]).unwrap()), Some(expected));
        }
        let events = feed(&[
            r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"id":"a","function":{"name":"Read","arguments":"{}"}}]},"finish_reason":"stop"}]}"#,
            "[DONE]",
        ])
        .unwrap();
        assert_eq!(stop(events), Some(StopReason::ToolUse));
    }

    #[test]
    fn a_tool_name_after_its_first_piece_is_waited_for() {
        let events = feed(&[
            r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"id":"a","function":{"arguments":"{\"x\""}}]}}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"name":"Read","arguments":":1}"}}]}}]}"#,
            "[DONE]",
        ])
        .unwrap();
        let mut acc = MessageAccumulator::new();
        events.iter().for_each(|e| acc.push(e));
        assert_eq!(
            acc.finish().message.content,
            vec![ContentBlock::ToolUse {
                id: "a".into(),
                name: "Read".into(),
                input: json!({"x": 1})
            }]
        );
    }

    #[test]
    fn error_chunks_and_broken_chunks_are_errors() {
        let error = feed(&[r#"{"error":{"message":"boom","type":"server_error"}}"#]).unwrap_err();
        assert!(
            matches!(&error, ModelError::StreamError { error_type, .. } if error_type == "server_error")
        );
        assert!(error.is_retryable());
        let error = feed(&[r#"{"id": "x", "obj"#]).unwrap_err();
        assert!(matches!(error, ModelError::MalformedEvent { .. }));
        assert!(error.is_retryable());
    }

    #[test]
    fn streaming_refusals_and_toolless_models_are_recognised() {
        assert!(refuses_streaming(
            400,
            "tools are not supported in streaming mode"
        ));
        assert!(refuses_streaming(500, "Cannot use tools with stream"));
        assert!(refuses_streaming(
            400,
            "Unsupported value: 'stream' does not support true with this model."
        ));
        assert!(!refuses_streaming(401, "streaming is not supported"));
        assert!(!refuses_streaming(
            500,
            "upstream provider: model not supported"
        ));
        assert!(!refuses_streaming(400, "llama3 does not support tools"));
        for message in [
            "registry.ollama.ai/library/llama3:latest does not support tools",
            "No endpoints found that support tool use. To learn more...",
            "tools param requires --jinja flag",
            "\"auto\" tool choice requires --enable-auto-tool-choice and --tool-call-parser to be set",
            "This model does not support function calling",
        ] {
            assert!(tools_unsupported(message), "{message}");
        }
        assert!(!tools_unsupported(
            "model \"x\" not found, try pulling it first"
        ));
    }

    #[test]
    fn a_whole_completion_becomes_the_same_events() {
        let completion: Completion = serde_json::from_value(json!({
            "id": "c2", "model": "m",
            "choices": [{"message": {"role": "assistant", "content": null, "reasoning_content": "r",
                "tool_calls": [{"id": "t1", "type": "function", "function": {"name": "Read", "arguments": "{\"a\":1}"}},
                               {"id": "t2", "type": "function", "function": {"name": "Bash", "arguments": {"command": "ls"}}}]},
                "finish_reason": "tool_calls"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 3}
        }))
        .unwrap();
        let events = completion_events(completion, "m").unwrap();
        let mut acc = MessageAccumulator::new();
        events.iter().for_each(|e| acc.push(e));
        assert!(acc.is_complete());
        let message = acc.finish().message;
        assert_eq!(message.stop_reason, Some(StopReason::ToolUse));
        assert_eq!(message.usage.input_tokens, 10);
        assert_eq!(
            message.content,
            vec![
                ContentBlock::Thinking {
                    thinking: "r".into(),
                    signature: String::new()
                },
                ContentBlock::ToolUse {
                    id: "t1".into(),
                    name: "Read".into(),
                    input: json!({"a": 1})
                },
                ContentBlock::ToolUse {
                    id: "t2".into(),
                    name: "Bash".into(),
                    input: json!({"command": "ls"})
                },
            ]
        );
    }
}
