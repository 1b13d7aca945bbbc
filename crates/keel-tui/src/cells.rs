//! How conversation entries look: the user's prompt, tool calls as one-line entries with a
//! short result (or, expanded, their full input and output), edits as diffs, notices. Pure
//! functions from data to lines, so they can be snapshot-tested at fixed widths.

use std::path::Path;

use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use serde_json::Value;

use crate::diff;
use crate::wrap::wrap_lines;

/// Dimmed text: secondary information.
pub const DIM: Style = Style::new().fg(Color::DarkGray);
/// The bullet of tool entries.
const BULLET: &str = "● ";
/// The elbow under a tool entry that introduces its result.
const ELBOW: &str = "  ⎿  ";
/// How many output lines a collapsed entry shows.
const PREVIEW_LINES: usize = 4;

/// The user's prompt as it enters the conversation.
pub fn user_prompt(text: &str, width: u16) -> Vec<Line<'static>> {
    let style = Style::new().fg(Color::White).add_modifier(Modifier::BOLD);
    let lines: Vec<Line<'static>> = text
        .lines()
        .enumerate()
        .map(|(i, l)| {
            let prefix = if i == 0 { "> " } else { "  " };
            Line::from(vec![
                Span::styled(prefix, DIM),
                Span::styled(l.to_string(), style),
            ])
        })
        .collect();
    let mut out = vec![Line::default()];
    out.extend(wrap_lines(&lines, width));
    out.push(Line::default());
    out
}

/// The short argument shown after a tool's name: a path, a command, a pattern.
pub fn tool_argument(name: &str, input: &Value, cwd: &Path) -> String {
    let field = |key: &str| input.get(key).and_then(Value::as_str).map(str::to_string);
    let text = match name {
        "Read" | "Write" | "Edit" | "MultiEdit" | "NotebookEdit" => field("file_path")
            .or_else(|| field("notebook_path"))
            .map(|p| relative(&p, cwd)),
        "Bash" => field("command"),
        "Grep" | "Glob" => field("pattern"),
        "WebFetch" => field("url"),
        "WebSearch" => field("query"),
        "Agent" | "Task" => field("description"),
        "Skill" => field("skill").or_else(|| field("command")),
        _ => None,
    };
    let text = text.unwrap_or_else(|| {
        // Unknown tools: the first string argument says most.
        input
            .as_object()
            .and_then(|o| o.values().find_map(Value::as_str))
            .unwrap_or_default()
            .to_string()
    });
    let one_line = text.lines().next().unwrap_or_default().to_string();
    truncate(&one_line, 80)
}

fn relative(path: &str, cwd: &Path) -> String {
    Path::new(path)
        .strip_prefix(cwd)
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| path.to_string())
}

/// Cuts text to `max` characters with an ellipsis.
pub fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        let cut: String = text.chars().take(max.saturating_sub(1)).collect();
        format!("{cut}…")
    }
}

/// The one-line header of a tool call: `● Name(argument)`.
pub fn tool_header(name: &str, argument: &str, status: Style) -> Line<'static> {
    let mut spans = vec![
        Span::styled(BULLET, status),
        Span::styled(name.to_string(), Style::new().add_modifier(Modifier::BOLD)),
    ];
    if !argument.is_empty() {
        spans.push(Span::raw(format!("({argument})")));
    }
    Line::from(spans)
}

/// A finished tool call to show.
pub struct ToolEntry<'a> {
    /// The tool.
    pub name: &'a str,
    /// Its input.
    pub input: &'a Value,
    /// The text the model was sent.
    pub output: &'a str,
    /// Whether it failed or was refused.
    pub is_error: bool,
    /// Its structured result, if any.
    pub structured: Option<&'a Value>,
    /// The file before a Write, for its diff.
    pub before: Option<&'a str>,
}

/// A finished tool call: its header and a short result; `expanded` shows the full input and
/// output instead.
pub fn tool_entry(
    entry: &ToolEntry<'_>,
    cwd: &Path,
    expanded: bool,
    width: u16,
) -> Vec<Line<'static>> {
    let status = if entry.is_error {
        Style::new().fg(Color::Red)
    } else {
        Style::new().fg(Color::Green)
    };
    let argument = tool_argument(entry.name, entry.input, cwd);
    let mut lines = vec![tool_header(entry.name, &argument, status)];
    if expanded {
        let input = serde_json::to_string_pretty(entry.input).unwrap_or_default();
        for (i, l) in input.lines().enumerate() {
            let lead = if i == 0 { ELBOW } else { "     " };
            lines.push(Line::from(vec![
                Span::styled(lead, DIM),
                Span::raw(l.to_string()),
            ]));
        }
        for l in entry.output.lines() {
            lines.push(Line::from(vec![
                Span::styled("     ", DIM),
                Span::styled(l.to_string(), DIM),
            ]));
        }
        return wrap_lines(&lines, width);
    }
    if entry.is_error {
        let first = entry.output.lines().next().unwrap_or("failed");
        lines.push(Line::from(vec![
            Span::styled(ELBOW, DIM),
            Span::styled(truncate(first, 200), Style::new().fg(Color::Red)),
        ]));
        return wrap_lines(&lines, width);
    }
    let diff_lines = match entry.name {
        "Edit" | "MultiEdit" => entry
            .structured
            .map(|s| diff::patch_lines(&s["structuredPatch"]))
            .filter(|d| !d.is_empty())
            .or_else(|| {
                let old = entry.input["old_string"].as_str()?;
                let new = entry.input["new_string"].as_str()?;
                Some(diff::diff_lines(old, new))
            }),
        "Write" => {
            let content = entry.input["content"].as_str().unwrap_or_default();
            Some(diff::diff_lines(entry.before.unwrap_or_default(), content))
        }
        _ => None,
    };
    if let Some(d) = diff_lines {
        let (added, removed) = diff::counts(&d);
        let path = tool_argument(entry.name, entry.input, cwd);
        let summary = if entry.name == "Write" && entry.before.is_none() {
            format!("Wrote {added} line{} to {path}", plural(added))
        } else {
            format!(
                "Updated {path} with {added} addition{} and {removed} removal{}",
                plural(added),
                plural(removed)
            )
        };
        lines.push(Line::from(vec![
            Span::styled(ELBOW, DIM),
            Span::raw(summary),
        ]));
        let mut out = wrap_lines(&lines, width);
        out.extend(diff::render(&d));
        return out;
    }
    let summary = result_summary(entry.name, entry.output);
    for (i, l) in summary.iter().enumerate() {
        let lead = if i == 0 { ELBOW } else { "     " };
        lines.push(Line::from(vec![
            Span::styled(lead, DIM),
            Span::raw(l.clone()),
        ]));
    }
    wrap_lines(&lines, width)
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// The lines shown under a collapsed tool entry.
fn result_summary(name: &str, output: &str) -> Vec<String> {
    let lines: Vec<&str> = output.lines().collect();
    match name {
        "Read" => vec![format!("Read {} line{}", lines.len(), plural(lines.len()))],
        "Glob" | "Grep" if !lines.is_empty() => {
            vec![format!("Found {} line{}", lines.len(), plural(lines.len()))]
        }
        _ => {
            if lines.is_empty() {
                return vec!["(no output)".to_string()];
            }
            let mut shown: Vec<String> = lines
                .iter()
                .take(PREVIEW_LINES)
                .map(|l| truncate(l, 200))
                .collect();
            if lines.len() > PREVIEW_LINES {
                shown.push(format!(
                    "… +{} lines (ctrl+o to expand)",
                    lines.len() - PREVIEW_LINES
                ));
            }
            shown
        }
    }
}

/// A notice or a locally printed message, dimmed (`warning` in yellow).
pub fn notice(text: &str, warning: bool, width: u16) -> Vec<Line<'static>> {
    let style = if warning {
        Style::new().fg(Color::Yellow)
    } else {
        DIM
    };
    let lines: Vec<Line<'static>> = text
        .lines()
        .map(|l| Line::styled(l.to_string(), style))
        .collect();
    wrap_lines(&lines, width)
}

/// An error the user should act on.
pub fn error(text: &str, width: u16) -> Vec<Line<'static>> {
    let lines = vec![Line::from(vec![
        Span::styled("✗ ", Style::new().fg(Color::Red)),
        Span::styled(text.to_string(), Style::new().fg(Color::Red)),
    ])];
    wrap_lines(&lines, width)
}

/// The plan (todo list): one line per item with its status.
pub fn plan(items: &[keel_protocol::PlanItem]) -> Vec<Line<'static>> {
    items
        .iter()
        .map(|item| {
            let (mark, style) = match item.status.as_str() {
                "completed" => (
                    "☒ ",
                    Style::new()
                        .fg(Color::DarkGray)
                        .add_modifier(Modifier::CROSSED_OUT),
                ),
                "in_progress" => ("◼ ", Style::new().add_modifier(Modifier::BOLD)),
                _ => ("☐ ", Style::new()),
            };
            let text = if item.status == "in_progress" {
                item.active_form
                    .clone()
                    .unwrap_or_else(|| item.subject.clone())
            } else {
                item.subject.clone()
            };
            Line::from(vec![
                Span::styled(format!("  {mark}"), style),
                Span::styled(text, style),
            ])
        })
        .collect()
}
