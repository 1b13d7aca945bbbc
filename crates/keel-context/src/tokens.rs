//! Token accounting: fast estimates of what a request costs, calibrated against the real
//! counts the API reports, the context window of a model, and when to compact.
//!
//! Anthropic's tokenizer is not public and a BPE tokenizer would cost megabytes and
//! milliseconds, so estimates count bytes: about four bytes of ASCII per token, one token per
//! non-ASCII character (CJK text and emoji take roughly one each). [`TokenCounter`] then scales
//! estimates by how far the last request's estimate was from the `usage` the API returned,
//! which absorbs the tokenizer's real ratio and the API's hidden per-request overhead.

use keel_protocol::{ContentBlock, Message, ToolResultBlock, ToolResultContent, ToolSpec, Usage};
use serde_json::Value;

/// What one image costs: the API charges by pixels, about 1,600 tokens for an image at the
/// size it scales to, and the data is not sent as text, so its bytes say nothing.
pub const IMAGE_TOKENS: u64 = 1_600;

/// Role and framing tokens around each message.
const MESSAGE_OVERHEAD: u64 = 4;

/// Framing around each content block (type tag, ids).
const BLOCK_OVERHEAD: u64 = 3;

/// Framing around each tool definition.
const TOOL_OVERHEAD: u64 = 8;

/// Estimated tokens of a piece of text.
pub fn estimate_text(text: &str) -> u64 {
    let bytes = text.as_bytes();
    if text.is_ascii() {
        return (bytes.len() as u64).div_ceil(4);
    }
    // Count characters that start a multi-byte sequence; their continuation bytes are free.
    let mut ascii = 0u64;
    let mut wide = 0u64;
    for b in bytes {
        if *b < 0x80 {
            ascii += 1;
        } else if *b >= 0xC0 {
            wide += 1;
        }
    }
    ascii.div_ceil(4) + wide
}

/// Estimated tokens of a JSON value as the API sees it (its compact serialization).
pub fn estimate_json(value: &Value) -> u64 {
    let mut counter = ByteCounter::default();
    // Writing into a counter cannot fail except on I/O, which the counter never reports.
    let _ = serde_json::to_writer(&mut counter, value);
    counter.ascii.div_ceil(4) + counter.wide
}

/// Estimated tokens of one content block.
pub fn estimate_block(block: &ContentBlock) -> u64 {
    BLOCK_OVERHEAD
        + match block {
            ContentBlock::Text { text } => estimate_text(text),
            ContentBlock::ToolUse { name, input, .. } => {
                estimate_text(name) + estimate_json(input) + 6
            }
            ContentBlock::ToolResult { content, .. } => estimate_tool_result(content) + 6,
            ContentBlock::Thinking { thinking, .. } => estimate_text(thinking),
            // Encrypted reasoning is sent back as opaque data; count it like text to be safe.
            ContentBlock::RedactedThinking { data } => estimate_text(data),
            // Server-tool results (search results with encrypted content) are sent back whole.
            ContentBlock::Other(raw) => estimate_json(raw),
        }
}

/// Estimated tokens of a tool result's content.
pub fn estimate_tool_result(content: &ToolResultContent) -> u64 {
    match content {
        ToolResultContent::Text(text) => estimate_text(text),
        ToolResultContent::Blocks(blocks) => blocks
            .iter()
            .map(|b| match b {
                ToolResultBlock::Text { text } => estimate_text(text) + BLOCK_OVERHEAD,
                ToolResultBlock::Image { .. } => IMAGE_TOKENS,
            })
            .sum(),
    }
}

/// Estimated tokens of one message.
pub fn estimate_message(message: &Message) -> u64 {
    MESSAGE_OVERHEAD + message.content.iter().map(estimate_block).sum::<u64>()
}

/// Estimated tokens of a conversation.
pub fn estimate_messages(messages: &[Message]) -> u64 {
    messages.iter().map(estimate_message).sum()
}

/// Estimated tokens of the tool definitions offered to the model.
pub fn estimate_tools(tools: &[ToolSpec]) -> u64 {
    tools
        .iter()
        .map(|t| {
            TOOL_OVERHEAD
                + estimate_text(&t.name)
                + estimate_text(&t.description)
                + estimate_json(&t.input_schema)
        })
        .sum()
}

/// Estimated tokens of the system prompt's text blocks.
pub fn estimate_system(blocks: &[String]) -> u64 {
    blocks
        .iter()
        .map(|b| estimate_text(b) + BLOCK_OVERHEAD)
        .sum()
}

/// Estimated tokens of a whole request: system prompt, tools and conversation.
pub fn estimate_request(system: &[String], tools: &[ToolSpec], messages: &[Message]) -> u64 {
    estimate_system(system) + estimate_tools(tools) + estimate_messages(messages)
}

/// The tokens a finished request leaves in the context: everything sent (cached or not) plus
/// the answer, which the next request sends back.
pub fn context_used(usage: &Usage) -> u64 {
    usage.input_tokens
        + usage.cache_creation_input_tokens
        + usage.cache_read_input_tokens
        + usage.output_tokens
}

/// The context window to plan for: the user's override (settings `contextWindow`) if given
/// and non-zero, otherwise what keel knows about the model.
pub fn context_window(model: &str, override_tokens: Option<u64>) -> u64 {
    match override_tokens {
        Some(tokens) if tokens > 0 => tokens,
        _ => keel_model::models::context_window(model),
    }
}

/// Turns raw estimates into numbers that track the real tokenizer, learning from the
/// `usage` of each response.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TokenCounter {
    ratio: f64,
    observed: bool,
}

impl Default for TokenCounter {
    fn default() -> Self {
        Self {
            ratio: 1.0,
            observed: false,
        }
    }
}

impl TokenCounter {
    /// The lowest and highest ratio accepted; outside this the usage numbers are not about
    /// the request that was estimated (a proxy, a provider that counts differently).
    const RATIO_RANGE: (f64, f64) = (0.5, 4.0);

    /// A counter that trusts the raw estimate until it has seen a response.
    pub fn new() -> Self {
        Self::default()
    }

    /// Learns from a response: `estimated` is [`estimate_request`] of what was sent, `usage`
    /// what the API counted for it. Responses without input counts are ignored.
    ///
    /// The latest request replaces earlier ones: it contains nearly all of their content, so
    /// it is the best sample of what the conversation is made of now.
    pub fn observe(&mut self, estimated: u64, usage: &Usage) {
        let actual =
            usage.input_tokens + usage.cache_creation_input_tokens + usage.cache_read_input_tokens;
        if actual == 0 || estimated == 0 {
            return;
        }
        let ratio = actual as f64 / estimated as f64;
        self.ratio = ratio.clamp(Self::RATIO_RANGE.0, Self::RATIO_RANGE.1);
        self.observed = true;
    }

    /// Real tokens per estimated token, 1.0 before the first response.
    pub fn ratio(&self) -> f64 {
        self.ratio
    }

    /// Whether a response has calibrated the counter yet.
    pub fn is_calibrated(&self) -> bool {
        self.observed
    }

    /// A raw estimate scaled to the real tokenizer.
    pub fn calibrate(&self, raw: u64) -> u64 {
        (raw as f64 * self.ratio).ceil() as u64
    }

    /// The raw estimate that corresponds to `tokens` real tokens (to turn a budget in real
    /// tokens into one the estimate functions can be compared with).
    pub fn to_raw(&self, tokens: u64) -> u64 {
        (tokens as f64 / self.ratio).floor() as u64
    }
}

/// What the engine should do about the context before a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContextAction {
    /// Nothing: there is room.
    Nothing,
    /// Clear old tool outputs ([`crate::micro_compact`]).
    MicroCompact,
    /// Summarise and start over from the summary ([`crate::compacted_conversation`]).
    Compact,
}

/// When to compact, as fractions of the context window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ContextPolicy {
    /// The model's context window in tokens.
    pub window: u64,
    /// Above this fraction, old tool outputs are cleared.
    pub micro_threshold: f64,
    /// Above this fraction (settings `autoCompactThreshold`), the conversation is summarised.
    pub auto_threshold: f64,
    /// Tokens kept free for the answer and the summary call, whatever the threshold.
    pub output_reserve: u64,
}

impl ContextPolicy {
    /// The default fraction at which the conversation is compacted.
    pub const DEFAULT_AUTO_THRESHOLD: f64 = 0.8;
    /// The default fraction at which old tool outputs are cleared.
    pub const DEFAULT_MICRO_THRESHOLD: f64 = 0.5;
    /// The default room kept for output.
    pub const DEFAULT_OUTPUT_RESERVE: u64 = 20_000;

    /// A policy for a window, with the settings' threshold (clamped to 0.5–0.98, as the
    /// settings documentation promises) or the default 0.8.
    pub fn new(window: u64, auto_threshold: Option<f64>) -> Self {
        let auto = auto_threshold
            .filter(|t| t.is_finite())
            .map_or(Self::DEFAULT_AUTO_THRESHOLD, |t| t.clamp(0.5, 0.98));
        Self {
            window,
            micro_threshold: Self::DEFAULT_MICRO_THRESHOLD.min(auto),
            auto_threshold: auto,
            output_reserve: Self::DEFAULT_OUTPUT_RESERVE.min(window / 4),
        }
    }

    /// Tokens above which old tool outputs are cleared.
    pub fn micro_limit(&self) -> u64 {
        (self.window as f64 * self.micro_threshold) as u64
    }

    /// Tokens above which the conversation is compacted.
    pub fn auto_limit(&self) -> u64 {
        let by_fraction = (self.window as f64 * self.auto_threshold) as u64;
        by_fraction.min(self.window.saturating_sub(self.output_reserve))
    }

    /// How many tokens of recent turns to keep verbatim after a compaction: a tenth of the
    /// window, so the compacted conversation starts well below the micro-compaction limit.
    pub fn kept_tail_budget(&self) -> u64 {
        self.window / 10
    }

    /// What to do when the next request takes `used` tokens.
    pub fn action(&self, used: u64) -> ContextAction {
        if used >= self.auto_limit() {
            ContextAction::Compact
        } else if used >= self.micro_limit() {
            ContextAction::MicroCompact
        } else {
            ContextAction::Nothing
        }
    }
}

/// Counts serialized bytes without keeping them.
#[derive(Default)]
struct ByteCounter {
    ascii: u64,
    wide: u64,
}

impl std::io::Write for ByteCounter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        for b in buf {
            if *b < 0x80 {
                self.ascii += 1;
            } else if *b >= 0xC0 {
                self.wide += 1;
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn text_estimate_counts_ascii_by_four_and_wide_characters_by_one() {
        assert_eq!(estimate_text(""), 0);
        assert_eq!(estimate_text("abcd"), 1);
        assert_eq!(estimate_text("abcde"), 2);
        assert_eq!(estimate_text("日本語"), 3);
        assert_eq!(estimate_text("ab日本"), 3);
    }

    #[test]
    fn tool_calls_results_and_images_count() {
        let call = Message {
            role: keel_protocol::Role::Assistant,
            content: vec![ContentBlock::ToolUse {
                id: "t1".into(),
                name: "Read".into(),
                input: json!({"file_path": "/a/b/c.rs"}),
            }],
        };
        let with_image = Message {
            role: keel_protocol::Role::User,
            content: vec![ContentBlock::ToolResult {
                tool_use_id: "t1".into(),
                content: ToolResultContent::Blocks(vec![
                    ToolResultBlock::Text {
                        text: "x".repeat(400),
                    },
                    ToolResultBlock::Image {
                        source: json!({"type": "base64", "data": "A".repeat(100_000)}),
                    },
                ]),
                is_error: false,
            }],
        };
        assert!(estimate_message(&call) > estimate_text("/a/b/c.rs"));
        let image_cost = estimate_message(&with_image);
        // The image's base64 bytes are not counted as text, the fixed cost is.
        assert!(image_cost > IMAGE_TOKENS + 100 && image_cost < IMAGE_TOKENS + 200);
    }

    #[test]
    fn counter_calibrates_from_usage() {
        let mut counter = TokenCounter::new();
        assert_eq!(counter.calibrate(1000), 1000);
        counter.observe(
            1000,
            &Usage {
                input_tokens: 200,
                cache_read_input_tokens: 1000,
                cache_creation_input_tokens: 100,
                output_tokens: 50,
            },
        );
        assert!(counter.is_calibrated());
        assert_eq!(counter.calibrate(1000), 1300);
        assert_eq!(counter.to_raw(1300), 1000);
        // A provider that reports no usage does not reset what was learned.
        counter.observe(1000, &Usage::default());
        assert_eq!(counter.calibrate(100), 130);
        // Absurd numbers are clamped.
        counter.observe(
            10,
            &Usage {
                input_tokens: 1_000_000,
                ..Usage::default()
            },
        );
        assert_eq!(counter.ratio(), 4.0);
    }

    #[test]
    fn window_override_wins() {
        assert_eq!(context_window("claude-sonnet-4-5", None), 200_000);
        assert_eq!(context_window("claude-sonnet-4-5", Some(64_000)), 64_000);
        assert_eq!(context_window("claude-sonnet-4-5", Some(0)), 200_000);
    }

    #[test]
    fn policy_thresholds() {
        let policy = ContextPolicy::new(200_000, None);
        assert_eq!(policy.micro_limit(), 100_000);
        assert_eq!(policy.auto_limit(), 160_000);
        assert_eq!(policy.action(99_999), ContextAction::Nothing);
        assert_eq!(policy.action(100_000), ContextAction::MicroCompact);
        assert_eq!(policy.action(160_000), ContextAction::Compact);
        // The reserve for output caps a threshold set too high.
        let high = ContextPolicy::new(200_000, Some(0.98));
        assert_eq!(high.auto_limit(), 180_000);
        // Out-of-range settings are clamped, not trusted.
        assert_eq!(ContextPolicy::new(100, Some(5.0)).auto_threshold, 0.98);
        assert_eq!(ContextPolicy::new(100, Some(0.1)).auto_threshold, 0.5);
    }
}
