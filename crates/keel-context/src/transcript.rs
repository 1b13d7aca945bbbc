//! Conversations rendered as text for the model calls that summarise them (compaction,
//! session notes). Sending a rendering rather than the messages themselves lets long tool
//! outputs be cut, so the summary request fits even when the conversation no longer does, and
//! keeps the summariser from trying to continue the work.

use std::collections::HashMap;

use keel_protocol::{ContentBlock, Message, PlanItem, Role, ToolResultBlock, ToolResultContent};
use serde_json::Value;

/// The most of one tool result's text a transcript keeps.
const RESULT_CHARS: usize = 2_000;
/// The most of one tool call's input a transcript keeps.
const INPUT_CHARS: usize = 1_000;
/// The most of one user or assistant text a transcript keeps.
const TEXT_CHARS: usize = 8_000;
/// The most a whole transcript keeps (about 90k tokens); older middle entries go first.
pub(crate) const TRANSCRIPT_CHARS: usize = 360_000;

/// Renders `messages` as tagged text, cutting long parts and, when the whole is too long,
/// dropping entries after the first until the rest fits.
pub(crate) fn render(messages: &[Message], max_chars: usize) -> String {
    let names = tool_names(messages);
    let entries: Vec<String> = messages
        .iter()
        .map(|m| render_message(m, &names))
        .filter(|e| !e.is_empty())
        .collect();
    let total: usize = entries.iter().map(String::len).sum();
    if total <= max_chars || entries.len() < 3 {
        return entries.join("\n");
    }
    // Keep the first entry (the original request, or an earlier summary) and the newest ones.
    let mut budget = max_chars.saturating_sub(entries[0].len());
    let mut tail = Vec::new();
    for entry in entries[1..].iter().rev() {
        if entry.len() > budget {
            break;
        }
        budget -= entry.len();
        tail.push(entry.as_str());
    }
    tail.reverse();
    let dropped = entries.len() - 1 - tail.len();
    let mut out = entries[0].clone();
    out.push_str(&format!(
        "\n[… {dropped} older entries left out to fit; they are covered by the earlier parts of the conversation …]\n"
    ));
    out.push_str(&tail.join("\n"));
    out
}

/// The task list as plain lines.
pub(crate) fn render_plan(plan: &[PlanItem]) -> String {
    plan.iter()
        .map(|item| {
            let mut line = format!("- [{}] #{} {}", item.status, item.id, item.subject);
            if !item.description.is_empty() && item.description != item.subject {
                line.push_str(&format!(": {}", item.description));
            }
            if !item.blocked_by.is_empty() {
                line.push_str(&format!(" (blocked by #{})", item.blocked_by.join(", #")));
            }
            line
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Tool call ids to tool names, for labelling results.
pub(crate) fn tool_names(messages: &[Message]) -> HashMap<&str, (&str, &Value)> {
    messages
        .iter()
        .flat_map(|m| &m.content)
        .filter_map(|b| match b {
            ContentBlock::ToolUse { id, name, input } => {
                Some((id.as_str(), (name.as_str(), input)))
            }
            _ => None,
        })
        .collect()
}

fn render_message(message: &Message, names: &HashMap<&str, (&str, &Value)>) -> String {
    let mut parts = Vec::new();
    for block in &message.content {
        match block {
            ContentBlock::Text { text } if !text.trim().is_empty() => {
                let tag = match message.role {
                    Role::User => "user",
                    Role::Assistant => "assistant",
                };
                parts.push(format!(
                    "<{tag}>\n{}\n</{tag}>",
                    cut(text.trim(), TEXT_CHARS)
                ));
            }
            ContentBlock::ToolUse { name, input, .. } => {
                let input = serde_json::to_string(input).unwrap_or_default();
                parts.push(format!(
                    "<tool_call name=\"{name}\">{}</tool_call>",
                    cut(&input, INPUT_CHARS)
                ));
            }
            ContentBlock::ToolResult {
                tool_use_id,
                content,
                is_error,
            } => {
                let name = names.get(tool_use_id.as_str()).map_or("?", |(n, _)| n);
                let error = if *is_error { " error=\"true\"" } else { "" };
                parts.push(format!(
                    "<tool_result name=\"{name}\"{error}>\n{}\n</tool_result>",
                    cut(&result_text(content), RESULT_CHARS)
                ));
            }
            // Reasoning is the model's scratch work; the summary needs its outcomes only.
            _ => {}
        }
    }
    parts.join("\n")
}

/// A tool result's text, with images named rather than dropped silently.
pub(crate) fn result_text(content: &ToolResultContent) -> String {
    match content {
        ToolResultContent::Text(text) => text.clone(),
        ToolResultContent::Blocks(blocks) => blocks
            .iter()
            .map(|b| match b {
                ToolResultBlock::Text { text } => text.clone(),
                ToolResultBlock::Image { .. } => "[image]".to_string(),
            })
            .collect::<Vec<_>>()
            .join("\n"),
    }
}

/// `text` cut to about `max` characters: its head and tail with a note of what is left out.
pub(crate) fn cut(text: &str, max: usize) -> String {
    let count = text.chars().count();
    if count <= max {
        return text.to_string();
    }
    let head_chars = max * 3 / 4;
    let tail_chars = max - head_chars;
    let head: String = text.chars().take(head_chars).collect();
    let tail: String = text.chars().skip(count - tail_chars).collect();
    format!(
        "{head}\n[… {} characters left out …]\n{tail}",
        count - head_chars - tail_chars
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cut_keeps_head_and_tail() {
        let text = format!("{}{}", "a".repeat(100), "z".repeat(100));
        let out = cut(&text, 40);
        assert!(out.starts_with(&"a".repeat(30)));
        assert!(out.ends_with(&"z".repeat(10)));
        assert!(out.contains("[… 160 characters left out …]"));
        assert_eq!(cut("short", 40), "short");
    }

    #[test]
    fn long_transcripts_keep_the_first_and_newest_entries() {
        let messages: Vec<Message> = (0..10)
            .map(|i| Message::user_text(format!("message {i} {}", "x".repeat(100))))
            .collect();
        let out = render(&messages, 500);
        assert!(out.starts_with("<user>\nmessage 0 "));
        assert!(out.contains("message 9 "));
        assert!(!out.contains("message 1 "));
        assert!(out.contains("older entries left out"));
    }
}
