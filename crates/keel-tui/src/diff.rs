//! Edits as coloured unified diffs: from the `structuredPatch` hunks Edit reports, or computed
//! from the text before and after (a Write over an existing file).

use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};
use serde_json::Value;
use similar::{ChangeTag, TextDiff};

const ADDED: Style = Style::new().fg(Color::Green);
const REMOVED: Style = Style::new().fg(Color::Red);
const CONTEXT: Style = Style::new().fg(Color::DarkGray);

/// The most diff lines shown for one edit; the rest is summarised in one line.
pub const MAX_DIFF_LINES: usize = 40;

/// One line of a diff: its kind, its line number (new file for additions and context, old
/// file for removals) and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiffLine {
    /// `+`, `-` or ` `.
    pub tag: char,
    /// The line number it has in the file it belongs to.
    pub number: usize,
    /// The text without its newline.
    pub text: String,
}

/// Lines of a unified diff with three lines of context, from the text before and after.
pub fn diff_lines(old: &str, new: &str) -> Vec<DiffLine> {
    let diff = TextDiff::from_lines(old, new);
    let mut out = Vec::new();
    for group in diff.grouped_ops(3) {
        for op in group {
            for change in diff.iter_changes(&op) {
                let (tag, number) = match change.tag() {
                    ChangeTag::Delete => ('-', change.old_index().unwrap_or(0) + 1),
                    ChangeTag::Insert => ('+', change.new_index().unwrap_or(0) + 1),
                    ChangeTag::Equal => (' ', change.new_index().unwrap_or(0) + 1),
                };
                out.push(DiffLine {
                    tag,
                    number,
                    text: change.value().trim_end_matches(['\n', '\r']).to_string(),
                });
            }
        }
    }
    out
}

/// Lines of Claude Code's `structuredPatch` (hunks with `oldStart`, `newStart` and `lines`
/// prefixed by `+`, `-` or a space). Malformed hunks give no lines.
pub fn patch_lines(patch: &Value) -> Vec<DiffLine> {
    let mut out = Vec::new();
    for hunk in patch.as_array().into_iter().flatten() {
        let mut old_no = hunk["oldStart"].as_u64().unwrap_or(1) as usize;
        let mut new_no = hunk["newStart"].as_u64().unwrap_or(1) as usize;
        for line in hunk["lines"].as_array().into_iter().flatten() {
            let Some(line) = line.as_str() else { continue };
            let mut chars = line.chars();
            let tag = chars.next().unwrap_or(' ');
            let text = chars.as_str().to_string();
            match tag {
                '-' => {
                    out.push(DiffLine {
                        tag,
                        number: old_no,
                        text,
                    });
                    old_no += 1;
                }
                '+' => {
                    out.push(DiffLine {
                        tag,
                        number: new_no,
                        text,
                    });
                    new_no += 1;
                }
                _ => {
                    out.push(DiffLine {
                        tag: ' ',
                        number: new_no,
                        text,
                    });
                    old_no += 1;
                    new_no += 1;
                }
            }
        }
    }
    out
}

/// Renders diff lines as coloured terminal lines, indented under a tool entry, cut after
/// [`MAX_DIFF_LINES`].
pub fn render(lines: &[DiffLine]) -> Vec<Line<'static>> {
    let width = lines
        .iter()
        .map(|l| l.number.to_string().len())
        .max()
        .unwrap_or(1);
    let mut out: Vec<Line<'static>> = lines
        .iter()
        .take(MAX_DIFF_LINES)
        .map(|l| {
            let style = match l.tag {
                '+' => ADDED,
                '-' => REMOVED,
                _ => CONTEXT,
            };
            Line::from(vec![
                Span::styled(format!("    {:>width$} ", l.number), CONTEXT),
                Span::styled(format!("{} {}", l.tag, l.text), style),
            ])
        })
        .collect();
    if lines.len() > MAX_DIFF_LINES {
        out.push(Line::styled(
            format!("    … {} more lines", lines.len() - MAX_DIFF_LINES),
            CONTEXT,
        ));
    }
    out
}

/// How many lines were added and removed.
pub fn counts(lines: &[DiffLine]) -> (usize, usize) {
    let added = lines.iter().filter(|l| l.tag == '+').count();
    let removed = lines.iter().filter(|l| l.tag == '-').count();
    (added, removed)
}
