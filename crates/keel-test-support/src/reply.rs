//! A scripted turn made concrete for one request (ids generated, defaults filled in), plus the
//! chunking both wire formats share, so each format only decides how the pieces are framed.

use serde_json::Value;

use crate::script::{ScriptedBlock, ScriptedTurn, ScriptedUsage, StreamError};

/// Words per text delta: small enough that every answer arrives in several pieces.
const WORDS_PER_DELTA: usize = 3;
/// Bytes per tool-input piece: splits keys and values mid-token, as real servers do.
const JSON_PIECE_BYTES: usize = 7;

/// One turn, resolved for one request.
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    /// Id of the message / completion.
    pub id: String,
    /// The model name reported.
    pub model: String,
    /// The content, ids filled in.
    pub blocks: Vec<ReplyBlock>,
    /// The stop reason in Anthropic terms (`end_turn`, `tool_use`, `max_tokens`, ...).
    pub stop_reason: String,
    /// The usage reported.
    pub usage: ScriptedUsage,
    /// An error to end the stream with instead of finishing.
    pub stream_error: Option<StreamError>,
}

/// One content block, resolved.
#[derive(Debug, Clone)]
pub(crate) enum ReplyBlock {
    /// Text.
    Text(String),
    /// A tool call; `input_json` is the serialized input, or the raw text of a `tool_use_raw`.
    ToolUse {
        id: String,
        name: String,
        input_json: String,
    },
    /// Thinking with its signature.
    Thinking { thinking: String, signature: String },
    /// Redacted thinking.
    Redacted(String),
    /// A block sent as scripted (server tools, cited text).
    Raw(Value),
}

impl Reply {
    /// Fills in what the script left open: ids (with the provider's prefixes), the model
    /// (echoed from the request), stop reason and usage.
    pub fn resolve(
        turn: &ScriptedTurn,
        request: &Value,
        message_prefix: &str,
        tool_prefix: &str,
    ) -> Self {
        let model = turn.model.clone().unwrap_or_else(|| {
            request
                .get("model")
                .and_then(Value::as_str)
                .unwrap_or("mock-model")
                .to_string()
        });
        let blocks = turn
            .content
            .iter()
            .map(|block| match block {
                ScriptedBlock::Text { text } => ReplyBlock::Text(text.clone()),
                ScriptedBlock::ToolUse { id, name, input } => ReplyBlock::ToolUse {
                    id: id.clone().unwrap_or_else(|| random_id(tool_prefix)),
                    name: name.clone(),
                    input_json: input.to_string(),
                },
                ScriptedBlock::ToolUseRaw {
                    id,
                    name,
                    partial_json,
                } => ReplyBlock::ToolUse {
                    id: id.clone().unwrap_or_else(|| random_id(tool_prefix)),
                    name: name.clone(),
                    input_json: partial_json.clone(),
                },
                ScriptedBlock::Thinking {
                    thinking,
                    signature,
                } => ReplyBlock::Thinking {
                    thinking: thinking.clone(),
                    signature: signature.clone().unwrap_or_else(|| random_id("mocksig_")),
                },
                ScriptedBlock::RedactedThinking { data } => ReplyBlock::Redacted(data.clone()),
                ScriptedBlock::Raw { block } => ReplyBlock::Raw(block.clone()),
            })
            .collect();
        Self {
            id: random_id(message_prefix),
            model,
            blocks,
            stop_reason: turn.resolved_stop_reason(),
            usage: turn.resolved_usage(),
            stream_error: turn.stream_error.clone(),
        }
    }
}

/// `prefix` followed by 24 random hex digits (uuid v4 is the only randomness we depend on).
pub(crate) fn random_id(prefix: &str) -> String {
    let hex = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}{}", &hex[..24])
}

/// Splits text into pieces of a few words each (whitespace stays with the word before it),
/// so clients must accumulate deltas. Empty text gives no pieces.
pub(crate) fn text_pieces(text: &str) -> Vec<&str> {
    let mut pieces = Vec::new();
    let mut start = 0;
    let mut words = 0;
    let mut in_space = false;
    for (i, c) in text.char_indices() {
        if c.is_whitespace() {
            in_space = true;
        } else if in_space {
            // A new word begins at `i`.
            in_space = false;
            words += 1;
            if words == WORDS_PER_DELTA {
                pieces.push(&text[start..i]);
                start = i;
                words = 0;
            }
        }
    }
    if start < text.len() {
        pieces.push(&text[start..]);
    }
    pieces
}

/// Splits JSON text every few bytes, on char boundaries, so pieces cut through keys and values.
pub(crate) fn json_pieces(json: &str) -> Vec<&str> {
    let mut pieces = Vec::new();
    let mut start = 0;
    while start < json.len() {
        let mut end = (start + JSON_PIECE_BYTES).min(json.len());
        while !json.is_char_boundary(end) {
            end += 1;
        }
        pieces.push(&json[start..end]);
        start = end;
    }
    pieces
}

/// Unix time in seconds (OpenAI's `created`).
pub(crate) fn unix_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_split_into_few_word_pieces_that_rejoin() {
        let text = "The first part of a long answer that gets cut";
        let pieces = text_pieces(text);
        assert_eq!(
            pieces,
            ["The first part ", "of a long ", "answer that gets ", "cut"]
        );
        assert_eq!(pieces.concat(), text);
        assert_eq!(text_pieces(""), Vec::<&str>::new());
        let odd = "  lead\n\nand  trail  ";
        assert_eq!(text_pieces(odd).concat(), odd);
    }

    #[test]
    fn json_is_split_mid_token_on_char_boundaries() {
        let json = r#"{"path":"/tmp/é日本語/x"}"#;
        let pieces = json_pieces(json);
        assert!(pieces.len() > 3);
        assert_eq!(pieces.concat(), json);
        assert!(pieces.iter().all(|p| p.len() <= 7 + 3));
        assert_eq!(json_pieces("{}"), ["{}"]);
    }
}
