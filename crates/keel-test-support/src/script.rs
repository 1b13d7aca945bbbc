//! The script a mock server answers from: turns, their content blocks, fault options and
//! matchers, as Rust types and as the JSON a script file holds.

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::MockError;

/// What the mock model answers: a list of turns, served one per model request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Script {
    /// The turns, in the order they are served (subject to each turn's `when` matcher).
    #[serde(default)]
    pub turns: Vec<ScriptedTurn>,
    /// Start over from the first turn once every turn has been served (benchmarks loop a session).
    #[serde(default)]
    pub repeat: bool,
    /// When false, a streaming OpenAI request that carries `tools` is refused with a 400, as old
    /// llama.cpp and Ollama servers do, so clients can test their non-streaming fallback.
    #[serde(default = "yes")]
    pub openai_stream_tool_calls: bool,
    /// When true, a turn without scripted `usage` reports input tokens that follow the size of
    /// the request (its body's bytes / 4), as a real API does, so context accounting can be
    /// tested.
    #[serde(default)]
    pub estimate_usage: bool,
}

fn yes() -> bool {
    true
}

impl Default for Script {
    fn default() -> Self {
        Self::new(Vec::new())
    }
}

impl Script {
    /// A script that serves `turns` once each, in order.
    pub fn new(turns: Vec<ScriptedTurn>) -> Self {
        Self {
            turns,
            repeat: false,
            openai_stream_tool_calls: true,
            estimate_usage: false,
        }
    }

    /// Sets whether turns without scripted usage report input tokens from the request size.
    #[must_use]
    pub fn estimate_usage(mut self, estimate: bool) -> Self {
        self.estimate_usage = estimate;
        self
    }

    /// Sets whether the script starts over from the first turn when exhausted.
    #[must_use]
    pub fn repeat(mut self, repeat: bool) -> Self {
        self.repeat = repeat;
        self
    }

    /// Sets whether streaming OpenAI requests with `tools` are served (true) or refused with 400.
    #[must_use]
    pub fn openai_stream_tool_calls(mut self, allowed: bool) -> Self {
        self.openai_stream_tool_calls = allowed;
        self
    }

    /// Parses a script from JSON: `{"turns": [...], "repeat": false, ...}` or a bare `[...]` of turns.
    pub fn from_json(text: &str) -> Result<Self, MockError> {
        // Parsed straight from the text (not via Value) so errors keep their line and column.
        let script = if text.trim_start().starts_with('[') {
            serde_json::from_str(text).map(Script::new)
        } else {
            serde_json::from_str(text)
        }
        .map_err(MockError::ScriptJson)?;
        script.validate()?;
        Ok(script)
    }

    /// Reads and parses a script file (see [`Script::from_json`] for the format).
    pub fn from_file(path: &Path) -> Result<Self, MockError> {
        let text = std::fs::read_to_string(path).map_err(|source| MockError::ScriptRead {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_json(&text).map_err(|err| match err {
            MockError::ScriptJson(source) => MockError::ScriptFile {
                path: path.to_path_buf(),
                source,
            },
            other => other,
        })
    }

    /// Rejects values serde accepts but no HTTP response can carry.
    pub(crate) fn validate(&self) -> Result<(), MockError> {
        for (index, turn) in self.turns.iter().enumerate() {
            if let Some(err) = &turn.http_error
                && !(100..=999).contains(&err.status)
            {
                return Err(MockError::InvalidTurn {
                    index,
                    problem: format!(
                        "http_error.status {} is not an HTTP status code (use 100-999, e.g. 429 or 529)",
                        err.status
                    ),
                });
            }
        }
        Ok(())
    }
}

/// One scripted model response, with optional fault injection.
///
/// Event counts (`*_after_events`) count the scripted stream events (Anthropic: SSE events from
/// `message_start` on, `ping` included; OpenAI: `data:` chunks, `[DONE]` included); a count past
/// the end applies after the last event. A non-streaming answer is one piece: `stream_error`
/// becomes the matching HTTP status (529 overloaded, 429 rate limit, else 500), `cut`/`abort`/
/// `stall` apply before its first byte, `malformed` makes it truncated JSON.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScriptedTurn {
    /// The content blocks of the assistant message, in order.
    pub content: Vec<ScriptedBlock>,
    /// The stop reason; defaults to `tool_use` when the content calls a tool, else `end_turn`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_reason: Option<String>,
    /// Token usage reported; defaults to 100 input, 20 output, no cache.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<ScriptedUsage>,
    /// The model name reported; defaults to the model the request asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Answer with this HTTP error instead of a message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_error: Option<HttpError>,
    /// Wait this long before the response starts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<u64>,
    /// Wait this long between stream events.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_delay_ms: Option<u64>,
    /// End the response after this many stream events, without the terminating event, and
    /// close the connection (the client's stream just ends).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cut_after_events: Option<usize>,
    /// Break the connection after this many stream events, mid-body (no final chunk), so the
    /// client sees a transport error as on a network drop.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub abort_after_events: Option<usize>,
    /// Send nothing more after this many stream events, keeping the connection open.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stall_after_events: Option<usize>,
    /// After the content, send this error event instead of finishing the message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_error: Option<StreamError>,
    /// After this many stream events, send one syntactically broken event, then go on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub malformed_after_events: Option<usize>,
    /// Serve this turn only to a request that matches.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub when: Option<TurnMatcher>,
}

impl ScriptedTurn {
    /// A turn that answers with one text block.
    pub fn text(text: impl Into<String>) -> Self {
        Self {
            content: vec![ScriptedBlock::Text { text: text.into() }],
            ..Self::default()
        }
    }

    /// A turn that calls one tool (id generated).
    pub fn tool_use(name: impl Into<String>, input: Value) -> Self {
        Self {
            content: vec![ScriptedBlock::ToolUse {
                id: None,
                name: name.into(),
                input,
            }],
            ..Self::default()
        }
    }

    /// A turn answered with an HTTP error status and the provider's error JSON.
    pub fn http_error(
        status: u16,
        error_type: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            http_error: Some(HttpError {
                status,
                error_type: error_type.into(),
                message: message.into(),
                retry_after: None,
            }),
            ..Self::default()
        }
    }

    /// Whether any content block is a tool call (decides the default stop reason).
    pub(crate) fn calls_a_tool(&self) -> bool {
        self.content.iter().any(|b| {
            matches!(
                b,
                ScriptedBlock::ToolUse { .. } | ScriptedBlock::ToolUseRaw { .. }
            )
        })
    }

    /// The stop reason to report.
    pub(crate) fn resolved_stop_reason(&self) -> String {
        match &self.stop_reason {
            Some(reason) => reason.clone(),
            None if self.calls_a_tool() => "tool_use".to_string(),
            None => "end_turn".to_string(),
        }
    }

    /// The usage to report.
    pub(crate) fn resolved_usage(&self) -> ScriptedUsage {
        self.usage.clone().unwrap_or_default()
    }
}

/// One content block of a scripted assistant message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ScriptedBlock {
    /// Plain text, streamed as several deltas.
    Text {
        /// The text.
        text: String,
    },
    /// A tool call whose input is streamed as JSON split mid-token.
    ToolUse {
        /// The call id; `toolu_<random>` (OpenAI: `call_<random>`) when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        /// The tool name.
        name: String,
        /// The tool input.
        #[serde(default = "empty_object")]
        input: Value,
    },
    /// A tool call whose input is streamed verbatim, possibly invalid JSON.
    ToolUseRaw {
        /// The call id; generated when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        /// The tool name.
        name: String,
        /// The raw input text, sent as the tool's JSON input pieces.
        partial_json: String,
    },
    /// Extended thinking, streamed as thinking deltas then a signature.
    Thinking {
        /// The thinking text.
        thinking: String,
        /// The signature; a random one when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signature: Option<String>,
    },
    /// Redacted thinking, sent whole.
    RedactedThinking {
        /// The opaque data.
        data: String,
    },
    /// Any other block, as the API would send it: a server tool's `server_tool_use` (its
    /// `input` streamed as JSON pieces) or `web_search_tool_result` (sent whole), or a `text`
    /// block with `citations` (text deltas, then one `citations_delta` per citation). OpenAI
    /// answers carry only such a block's text.
    Raw {
        /// The block's JSON.
        block: Value,
    },
}

fn empty_object() -> Value {
    Value::Object(serde_json::Map::new())
}

/// Token usage a turn reports; missing JSON fields take the defaults (100 in, 20 out, no cache).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScriptedUsage {
    /// Uncached input tokens.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Input tokens written to the prompt cache.
    pub cache_creation_input_tokens: u64,
    /// Input tokens read from the prompt cache.
    pub cache_read_input_tokens: u64,
}

impl Default for ScriptedUsage {
    fn default() -> Self {
        Self {
            input_tokens: 100,
            output_tokens: 20,
            cache_creation_input_tokens: 0,
            cache_read_input_tokens: 0,
        }
    }
}

/// An HTTP error answer: status, the provider's error type and message, optional `retry-after`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpError {
    /// The HTTP status code.
    pub status: u16,
    /// The error type (`rate_limit_error`, `overloaded_error`, ...); derived from the status when empty.
    #[serde(rename = "type", alias = "error_type", default)]
    pub error_type: String,
    /// The error message.
    #[serde(default)]
    pub message: String,
    /// The `retry-after` header value, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<String>,
}

/// An error sent inside a stream after the content, instead of finishing the message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamError {
    /// The error type (`overloaded_error`, `api_error`, ...).
    #[serde(rename = "type", alias = "error_type")]
    pub error_type: String,
    /// The error message.
    #[serde(default)]
    pub message: String,
}

/// Conditions a request must meet to be served a turn; all given conditions must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TurnMatcher {
    /// The system prompt text contains this.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system_contains: Option<String>,
    /// The messages (serialized JSON, or their text) contain this.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub messages_contain: Option<String>,
    /// The request offers a tool with this name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tools_include: Option<String>,
    /// The request asks for exactly this model.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
}

impl TurnMatcher {
    /// Whether a request body (Anthropic or OpenAI shape) meets every given condition.
    pub fn matches(&self, body: &Value) -> bool {
        if let Some(model) = &self.model
            && body.get("model").and_then(Value::as_str) != Some(model.as_str())
        {
            return false;
        }
        if let Some(needle) = &self.system_contains
            && !system_text(body).contains(needle.as_str())
        {
            return false;
        }
        if let Some(needle) = &self.messages_contain {
            // The Responses API calls the conversation `input`.
            let messages = body
                .get("messages")
                .or_else(|| body.get("input"))
                .cloned()
                .unwrap_or(Value::Null);
            let serialized = messages.to_string();
            let mut text = String::new();
            collect_strings(&messages, &mut text);
            if !serialized.contains(needle.as_str()) && !text.contains(needle.as_str()) {
                return false;
            }
        }
        if let Some(tool) = &self.tools_include
            && !tool_names(body).any(|name| name == tool)
        {
            return false;
        }
        true
    }
}

/// The system prompt's text: Anthropic's `system` (string or blocks), the Responses API's
/// `instructions`, plus OpenAI's system and developer messages.
fn system_text(body: &Value) -> String {
    let mut text = String::new();
    for key in ["system", "instructions"] {
        if let Some(system) = body.get(key) {
            collect_strings(system, &mut text);
        }
    }
    for message in body
        .get("messages")
        .or_else(|| body.get("input"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let role = message.get("role").and_then(Value::as_str);
        if matches!(role, Some("system" | "developer"))
            && let Some(content) = message.get("content")
        {
            collect_strings(content, &mut text);
        }
    }
    text
}

/// Tool names in either wire format: `tools[].name` or `tools[].function.name`.
fn tool_names(body: &Value) -> impl Iterator<Item = &str> {
    body.get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|tool| {
            tool.get("name")
                .or_else(|| tool.get("function").and_then(|f| f.get("name")))
                .and_then(Value::as_str)
        })
}

/// Every string leaf, newline-separated, so a matcher can find text regardless of nesting.
fn collect_strings(value: &Value, out: &mut String) {
    match value {
        Value::String(s) => {
            out.push_str(s);
            out.push('\n');
        }
        Value::Array(items) => items.iter().for_each(|v| collect_strings(v, out)),
        Value::Object(map) => map.values().for_each(|v| collect_strings(v, out)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn demo_script_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/demo-script.json");
        let script = Script::from_file(&path).unwrap();
        assert_eq!(script.turns.len(), 4);
        assert!(script.turns[0].calls_a_tool());
        assert_eq!(script.turns[0].resolved_stop_reason(), "tool_use");
        assert_eq!(script.turns[3].resolved_stop_reason(), "end_turn");
        assert!(!script.repeat);
        assert!(script.openai_stream_tool_calls);
    }

    #[test]
    fn every_field_parses() {
        let script = Script::from_json(
            r#"{
              "repeat": true,
              "openai_stream_tool_calls": false,
              "turns": [{
                "content": [
                  {"type": "text", "text": "hi"},
                  {"type": "tool_use", "id": "toolu_1", "name": "Read", "input": {"file_path": "a"}},
                  {"type": "tool_use_raw", "name": "Read", "partial_json": "{\"file"},
                  {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                  {"type": "redacted_thinking", "data": "opaque"},
                  {"type": "raw", "block": {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {"query": "q"}}}
                ],
                "stop_reason": "max_tokens",
                "usage": {"output_tokens": 5},
                "model": "m",
                "http_error": {"status": 429, "type": "rate_limit_error", "message": "slow down", "retry_after": "2"},
                "delay_ms": 1, "event_delay_ms": 2, "cut_after_events": 3, "stall_after_events": 4, "abort_after_events": 6,
                "stream_error": {"type": "overloaded_error", "message": "busy"},
                "malformed_after_events": 5,
                "when": {"system_contains": "a", "messages_contain": "b", "tools_include": "c", "model": "d"}
              }]
            }"#,
        )
        .unwrap();
        assert!(script.repeat);
        assert!(!script.openai_stream_tool_calls);
        let turn = &script.turns[0];
        assert_eq!(turn.content.len(), 6);
        assert_eq!(
            turn.resolved_usage(),
            ScriptedUsage {
                input_tokens: 100,
                output_tokens: 5,
                ..ScriptedUsage::default()
            }
        );
        assert_eq!(
            turn.http_error.as_ref().unwrap().error_type,
            "rate_limit_error"
        );
        assert_eq!(turn.stream_error.as_ref().unwrap().message, "busy");
        assert_eq!(turn.when.as_ref().unwrap().model.as_deref(), Some("d"));
        // Round trip: what we serialize, we read back.
        let again = Script::from_json(&serde_json::to_string(&script).unwrap()).unwrap();
        assert_eq!(again, script);
    }

    #[test]
    fn a_bare_array_is_a_list_of_turns() {
        let script =
            Script::from_json(r#"[{"content": [{"type": "text", "text": "x"}]}]"#).unwrap();
        assert_eq!(script.turns, vec![ScriptedTurn::text("x")]);
    }

    #[test]
    fn typos_are_named() {
        let err = Script::from_json("{\"turns\": [\n {\"delay\": 5}]}").unwrap_err();
        assert!(err.to_string().contains("unknown field `delay`"), "{err}");
        assert!(err.to_string().contains("line 2"), "{err}");
        let err = Script::from_json(r#"{"turns": [{"content": [{"type": "txt", "text": "x"}]}]}"#)
            .unwrap_err();
        assert!(err.to_string().contains("unknown variant `txt`"), "{err}");
        let err = Script::from_json(r#"{"turns": [{"http_error": {"status": 42}}]}"#).unwrap_err();
        assert!(
            err.to_string().contains("turn 0") && err.to_string().contains("42"),
            "{err}"
        );
    }

    #[test]
    fn matcher_checks_every_given_condition() {
        let anthropic = json!({
            "model": "claude-x",
            "system": [{"type": "text", "text": "You summarize conversations."}],
            "messages": [{"role": "user", "content": [{"type": "text", "text": "say \"hi\"\nplease"}]}],
            "tools": [{"name": "Read", "input_schema": {}}]
        });
        let openai = json!({
            "model": "gpt-x",
            "messages": [{"role": "system", "content": "You summarize conversations."},
                         {"role": "user", "content": "hello"}],
            "tools": [{"type": "function", "function": {"name": "Bash", "parameters": {}}}]
        });
        let m = |j: Value| serde_json::from_value::<TurnMatcher>(j).unwrap();
        assert!(m(json!({})).matches(&anthropic));
        assert!(m(json!({"system_contains": "summarize"})).matches(&anthropic));
        assert!(m(json!({"system_contains": "summarize"})).matches(&openai));
        assert!(!m(json!({"system_contains": "hello"})).matches(&openai));
        assert!(m(json!({"messages_contain": "say \"hi\"\nplease"})).matches(&anthropic));
        assert!(m(json!({"messages_contain": "\"role\":\"user\""})).matches(&anthropic));
        assert!(m(json!({"tools_include": "Read"})).matches(&anthropic));
        assert!(m(json!({"tools_include": "Bash"})).matches(&openai));
        assert!(!m(json!({"tools_include": "Bash"})).matches(&anthropic));
        assert!(m(json!({"model": "claude-x", "tools_include": "Read"})).matches(&anthropic));
        assert!(!m(json!({"model": "claude-x", "tools_include": "Write"})).matches(&anthropic));
    }
}
