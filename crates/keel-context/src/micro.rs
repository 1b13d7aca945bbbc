//! Micro-compaction: old, large tool outputs are replaced by a short placeholder before a
//! request, once the conversation passes a budget.
//!
//! Most of a long session's context is tool output the model has already acted on (files
//! read, test logs). The placeholder keeps what the model needs to remember that the call
//! happened (the tool, its path, command or pattern, and the first lines) and says how to get
//! the rest back: call the tool again. The tool_use/tool_result pairing, ids and error flags
//! are never touched, so the conversation stays valid for the API.
//!
//! When the budget is exceeded every eligible output is cleared in one pass rather than just
//! enough of them: each change to an early message invalidates the prompt cache from there on,
//! so clearing rarely and thoroughly is cheaper than clearing a little on every turn.

use keel_protocol::{ContentBlock, Message, ToolResultBlock, ToolResultContent};
use serde_json::Value;

use crate::tokens::{estimate_messages, estimate_tool_result};
use crate::transcript::{result_text, tool_names};

/// How every placeholder begins; a result starting with it is never compacted again.
pub const MICRO_MARKER: &str = "[keel: old tool output cleared to save context]";

/// The input fields worth keeping in a placeholder, in the order they are shown.
const KEY_FIELDS: [&str; 8] = [
    "file_path",
    "notebook_path",
    "path",
    "pattern",
    "glob",
    "command",
    "url",
    "query",
];

/// What micro-compaction may touch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MicroOptions {
    /// The newest tool results kept intact, however large (the model is working with them).
    pub keep_recent: usize,
    /// Results smaller than this many estimated tokens are left alone (clearing them saves
    /// little and loses their content).
    pub min_tokens: u64,
    /// How many characters of the output's beginning the placeholder keeps.
    pub head_chars: usize,
}

impl Default for MicroOptions {
    fn default() -> Self {
        Self {
            keep_recent: 4,
            min_tokens: 500,
            head_chars: 300,
        }
    }
}

/// The result of [`micro_compact`].
#[derive(Debug, Clone, PartialEq)]
pub struct MicroCompacted {
    /// The conversation with old outputs cleared.
    pub messages: Vec<Message>,
    /// How many tool results were replaced.
    pub cleared: usize,
    /// Estimated tokens saved (raw estimate; scale with `TokenCounter::calibrate`).
    pub tokens_saved: u64,
}

/// Clears old, large tool outputs when the conversation's estimate
/// ([`estimate_messages`]) exceeds `budget` (raw estimate units: convert a budget in real
/// tokens with `TokenCounter::to_raw`). Below the budget the messages come back unchanged.
///
/// Idempotent: placeholders are recognised by [`MICRO_MARKER`] and left alone.
pub fn micro_compact(messages: &[Message], budget: u64, options: &MicroOptions) -> MicroCompacted {
    let before = estimate_messages(messages);
    let mut out = messages.to_vec();
    if before <= budget {
        return MicroCompacted {
            messages: out,
            cleared: 0,
            tokens_saved: 0,
        };
    }
    let total_results = messages
        .iter()
        .flat_map(|m| &m.content)
        .filter(|b| matches!(b, ContentBlock::ToolResult { .. }))
        .count();
    let eligible = total_results.saturating_sub(options.keep_recent);
    let calls = tool_names(messages);
    let mut seen = 0;
    let mut cleared = 0;
    for message in &mut out {
        for block in &mut message.content {
            let ContentBlock::ToolResult {
                tool_use_id,
                content,
                ..
            } = block
            else {
                continue;
            };
            seen += 1;
            if seen > eligible {
                continue;
            }
            if is_placeholder(content) || estimate_tool_result(content) < options.min_tokens {
                continue;
            }
            let call = calls.get(tool_use_id.as_str()).copied();
            *content = ToolResultContent::Text(placeholder(call, content, options.head_chars));
            cleared += 1;
        }
    }
    let after = estimate_messages(&out);
    MicroCompacted {
        messages: out,
        cleared,
        tokens_saved: before.saturating_sub(after),
    }
}

fn is_placeholder(content: &ToolResultContent) -> bool {
    match content {
        ToolResultContent::Text(text) => text.starts_with(MICRO_MARKER),
        ToolResultContent::Blocks(blocks) => matches!(
            blocks.first(),
            Some(ToolResultBlock::Text { text }) if text.starts_with(MICRO_MARKER)
        ),
    }
}

fn placeholder(
    call: Option<(&str, &Value)>,
    content: &ToolResultContent,
    head_chars: usize,
) -> String {
    let text = result_text(content);
    let images = match content {
        ToolResultContent::Blocks(blocks) => blocks
            .iter()
            .filter(|b| matches!(b, ToolResultBlock::Image { .. }))
            .count(),
        ToolResultContent::Text(_) => 0,
    };
    let mut out = String::from(MICRO_MARKER);
    out.push('\n');
    match call {
        Some((name, input)) => {
            out.push_str(&format!("Call: {name}"));
            for field in KEY_FIELDS {
                if let Some(value) = input.get(field).and_then(Value::as_str) {
                    out.push_str(&format!(" {field}={}", one_line(value, 200)));
                }
            }
            out.push('\n');
        }
        None => out.push_str("Call: (unknown tool)\n"),
    }
    let chars = text.chars().count();
    out.push_str(&format!(
        "The output had {chars} characters (about {} tokens)",
        estimate_tool_result(content)
    ));
    if images > 0 {
        out.push_str(&format!(" and {images} image(s)"));
    }
    let head = head_of(&text, head_chars);
    if head.is_empty() {
        out.push_str(".\n");
    } else {
        out.push_str(" and began:\n");
        out.push_str(&head);
        out.push_str("\n[…]\n");
    }
    out.push_str("The rest is gone from the conversation; call the tool again if you need it.");
    out
}

/// The first `max` characters, ending at a line break when one is reasonably close.
fn head_of(text: &str, max: usize) -> String {
    let head: String = text.chars().take(max).collect();
    if head.len() == text.len() {
        return head.trim_end().to_string();
    }
    match head.rfind('\n') {
        Some(i) if i >= head.len() / 2 => head[..i].to_string(),
        _ => head,
    }
}

fn one_line(value: &str, max: usize) -> String {
    let flat = value.replace('\n', " ");
    if flat.chars().count() <= max {
        flat
    } else {
        let cut: String = flat.chars().take(max).collect();
        format!("{cut}…")
    }
}
