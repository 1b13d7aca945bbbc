//! Word wrapping of styled lines to a width. Lines are wrapped once, when they enter the
//! scrollback, so the terminal never has to wrap (or re-wrap) them itself.

use ratatui::text::{Line, Span};
use unicode_width::UnicodeWidthChar;

/// Wraps every line to at most `width` columns, breaking after spaces where possible and
/// inside words that are longer than a line.
pub fn wrap_lines(lines: &[Line<'static>], width: u16) -> Vec<Line<'static>> {
    let width = usize::from(width.max(1));
    let mut out = Vec::new();
    for line in lines {
        wrap_line(line, width, &mut out);
    }
    out
}

/// One styled character.
type Cell = (char, ratatui::style::Style);

fn wrap_line(line: &Line<'static>, width: usize, out: &mut Vec<Line<'static>>) {
    if line.width() <= width {
        out.push(line.clone());
        return;
    }
    let cells: Vec<Cell> = line
        .spans
        .iter()
        .flat_map(|s| {
            let style = line.style.patch(s.style);
            s.content.chars().map(move |c| (c, style))
        })
        .collect();
    // Continuation lines hang under the text: the leading indent, quote bars and bullets of
    // the first line become the same width of indent (quote bars stay).
    let hang: Vec<Cell> = cells
        .iter()
        .take_while(|(c, _)| matches!(c, ' ' | '│' | '•' | '●' | '⎿'))
        .map(|&(c, style)| if c == '│' { (c, style) } else { (' ', style) })
        .collect();
    let hang = if hang.len() * 2 > width {
        Vec::new()
    } else {
        hang
    };
    let hang_width = hang.len();
    let mut start = 0;
    let mut first = true;
    while start < cells.len() {
        let mut used = if first { 0 } else { hang_width };
        let mut end = start;
        let mut last_space = None;
        while end < cells.len() {
            let w = cells[end].0.width().unwrap_or(0);
            if used + w > width {
                break;
            }
            if cells[end].0 == ' ' {
                last_space = Some(end);
            }
            used += w;
            end += 1;
        }
        if end < cells.len()
            && cells[end].0 != ' '
            && let Some(space) = last_space.filter(|&s| s > start)
        {
            end = space + 1;
        }
        if end == start {
            // A character wider than the whole line: emit it alone rather than loop forever.
            end = start + 1;
        }
        if first {
            out.push(to_line(&cells[start..end]));
        } else {
            let mut row = hang.clone();
            row.extend_from_slice(&cells[start..end]);
            out.push(to_line(&row));
        }
        first = false;
        start = end;
        // A continuation line does not start with the space it broke at.
        if start < cells.len() && cells[start].0 == ' ' {
            start += 1;
        }
    }
}

fn to_line(cells: &[Cell]) -> Line<'static> {
    let mut spans: Vec<Span<'static>> = Vec::new();
    let mut text = String::new();
    let mut style = None;
    for &(c, s) in cells {
        if style.is_some_and(|cur| cur != s) {
            spans.push(Span::styled(
                std::mem::take(&mut text),
                style.unwrap_or_default(),
            ));
        }
        style = Some(s);
        text.push(c);
    }
    if !text.is_empty() {
        spans.push(Span::styled(text, style.unwrap_or_default()));
    }
    // Trailing spaces would only make the terminal wrap a line that fits.
    if let Some(last) = spans.last_mut() {
        let trimmed = last.content.trim_end().to_string();
        last.content = trimmed.into();
    }
    Line::from(spans)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps_at_spaces_and_inside_long_words() {
        let lines = wrap_lines(&[Line::raw("aaa bbb ccc"), Line::raw("abcdefghij")], 7);
        let text: Vec<String> = lines.iter().map(ToString::to_string).collect();
        assert_eq!(text, ["aaa bbb", "ccc", "abcdefg", "hij"]);
    }
}
