//! The prompt editor: multi-line text with a cursor, the usual readline keys, and rendering
//! into rows of a given width with the cursor drawn as a reversed cell.

use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use unicode_width::UnicodeWidthChar;

/// The text being typed and where the cursor is (a byte offset on a char boundary).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Editor {
    text: String,
    cursor: usize,
}

impl Editor {
    /// The text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The cursor's byte offset.
    pub fn cursor(&self) -> usize {
        self.cursor
    }

    /// Replaces the text; the cursor goes to its end.
    pub fn set(&mut self, text: impl Into<String>) {
        self.text = text.into();
        self.cursor = self.text.len();
    }

    /// Empties the editor and returns what it held.
    pub fn take(&mut self) -> String {
        self.cursor = 0;
        std::mem::take(&mut self.text)
    }

    /// Whether nothing is typed.
    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }

    /// Inserts text at the cursor.
    pub fn insert(&mut self, text: &str) {
        self.text.insert_str(self.cursor, text);
        self.cursor += text.len();
    }

    fn prev_boundary(&self, from: usize) -> usize {
        self.text[..from]
            .char_indices()
            .next_back()
            .map_or(0, |(i, _)| i)
    }

    fn next_boundary(&self, from: usize) -> usize {
        self.text[from..]
            .chars()
            .next()
            .map_or(from, |c| from + c.len_utf8())
    }

    /// Deletes the character before the cursor.
    pub fn backspace(&mut self) {
        if self.cursor > 0 {
            let start = self.prev_boundary(self.cursor);
            self.text.replace_range(start..self.cursor, "");
            self.cursor = start;
        }
    }

    /// Deletes the character under the cursor.
    pub fn delete(&mut self) {
        if self.cursor < self.text.len() {
            let end = self.next_boundary(self.cursor);
            self.text.replace_range(self.cursor..end, "");
        }
    }

    /// Moves one character left.
    pub fn left(&mut self) {
        self.cursor = self.prev_boundary(self.cursor);
    }

    /// Moves one character right.
    pub fn right(&mut self) {
        self.cursor = self.next_boundary(self.cursor);
    }

    fn line_start(&self) -> usize {
        self.text[..self.cursor].rfind('\n').map_or(0, |i| i + 1)
    }

    fn line_end(&self) -> usize {
        self.text[self.cursor..]
            .find('\n')
            .map_or(self.text.len(), |i| self.cursor + i)
    }

    /// Moves to the start of the line.
    pub fn home(&mut self) {
        self.cursor = self.line_start();
    }

    /// Moves to the end of the line.
    pub fn end(&mut self) {
        self.cursor = self.line_end();
    }

    /// Whether the cursor is on the first line (Up then means history).
    pub fn on_first_line(&self) -> bool {
        !self.text[..self.cursor].contains('\n')
    }

    /// Whether the cursor is on the last line (Down then means history).
    pub fn on_last_line(&self) -> bool {
        !self.text[self.cursor..].contains('\n')
    }

    /// Moves to the same column of the line above.
    pub fn up(&mut self) {
        let start = self.line_start();
        if start == 0 {
            return;
        }
        let column = self.text[start..self.cursor].chars().count();
        let prev_start = self.text[..start - 1].rfind('\n').map_or(0, |i| i + 1);
        self.cursor = advance(&self.text, prev_start, column, start - 1);
    }

    /// Moves to the same column of the line below.
    pub fn down(&mut self) {
        let end = self.line_end();
        if end == self.text.len() {
            return;
        }
        let column = self.text[self.line_start()..self.cursor].chars().count();
        let next_start = end + 1;
        let next_end = self.text[next_start..]
            .find('\n')
            .map_or(self.text.len(), |i| next_start + i);
        self.cursor = advance(&self.text, next_start, column, next_end);
    }

    /// Moves to the start of the previous word.
    pub fn word_left(&mut self) {
        let before = &self.text[..self.cursor];
        let trimmed = before.trim_end();
        self.cursor = trimmed
            .rfind(|c: char| c.is_whitespace())
            .map_or(0, |i| i + 1);
    }

    /// Moves past the end of the next word.
    pub fn word_right(&mut self) {
        let after = &self.text[self.cursor..];
        let skip = after.len() - after.trim_start().len();
        let rest = &after[skip..];
        let word = rest.find(char::is_whitespace).unwrap_or(rest.len());
        self.cursor += skip + word;
    }

    /// Moves to the start of the next word (vi's `w`).
    pub fn word_forward(&mut self) {
        let after = &self.text[self.cursor..];
        let word = after.find(char::is_whitespace).unwrap_or(after.len());
        let rest = &after[word..];
        let space = rest.len() - rest.trim_start().len();
        self.cursor += word + space;
    }

    /// Deletes the cursor's line with its line break (vi's `dd`).
    pub fn delete_line(&mut self) {
        let start = self.line_start();
        let end = self.line_end();
        if end < self.text.len() {
            self.text.replace_range(start..=end, "");
        } else {
            // The last line: the break before it goes instead.
            let from = start.saturating_sub(1);
            self.text.replace_range(from..end, "");
        }
        self.cursor = start.min(self.text.len());
        self.cursor = self.line_start();
    }

    /// Deletes the word before the cursor (Ctrl+W).
    pub fn delete_word(&mut self) {
        let end = self.cursor;
        self.word_left();
        self.text.replace_range(self.cursor..end, "");
    }

    /// Deletes from the start of the line to the cursor (Ctrl+U).
    pub fn kill_to_start(&mut self) {
        let start = self.line_start();
        self.text.replace_range(start..self.cursor, "");
        self.cursor = start;
    }

    /// Deletes from the cursor to the end of the line (Ctrl+K).
    pub fn kill_to_end(&mut self) {
        let end = self.line_end();
        self.text.replace_range(self.cursor..end, "");
    }

    /// The word the cursor is in or just after, with its start offset (for `@` and `/`
    /// completion).
    pub fn current_word(&self) -> (usize, &str) {
        let start = self.text[..self.cursor]
            .rfind(char::is_whitespace)
            .map_or(0, |i| i + 1);
        (start, &self.text[start..self.cursor])
    }

    /// Replaces the text from `start` to the cursor.
    pub fn replace_before_cursor(&mut self, start: usize, with: &str) {
        self.text.replace_range(start..self.cursor, with);
        self.cursor = start + with.len();
    }

    /// The text as rows of at most `width` columns after a `prompt` (the first row) or an
    /// indent of the same width (the others), with the cursor drawn when `show_cursor`.
    pub fn render(&self, prompt: &str, width: u16, show_cursor: bool) -> Vec<Line<'static>> {
        let indent = prompt.chars().count();
        let width = usize::from(width).max(indent + 2);
        let cursor_style = Style::new().add_modifier(Modifier::REVERSED);
        let mut rows: Vec<Line<'static>> = Vec::new();
        let mut spans: Vec<Span<'static>> = vec![Span::styled(
            prompt.to_string(),
            Style::new().fg(Color::Magenta),
        )];
        let mut used = indent;
        let mut plain = String::new();
        let flush = |spans: &mut Vec<Span<'static>>, plain: &mut String| {
            if !plain.is_empty() {
                spans.push(Span::raw(std::mem::take(plain)));
            }
        };
        let mut new_row = |spans: &mut Vec<Span<'static>>, used: &mut usize| {
            rows.push(Line::from(std::mem::take(spans)));
            spans.push(Span::raw(" ".repeat(indent)));
            *used = indent;
        };
        for (i, c) in self.text.char_indices() {
            let at_cursor = show_cursor && i == self.cursor;
            if c == '\n' {
                if at_cursor {
                    flush(&mut spans, &mut plain);
                    spans.push(Span::styled(" ", cursor_style));
                }
                flush(&mut spans, &mut plain);
                new_row(&mut spans, &mut used);
                continue;
            }
            let w = c.width().unwrap_or(0);
            if used + w > width {
                flush(&mut spans, &mut plain);
                new_row(&mut spans, &mut used);
            }
            if at_cursor {
                flush(&mut spans, &mut plain);
                spans.push(Span::styled(c.to_string(), cursor_style));
            } else {
                plain.push(c);
            }
            used += w;
        }
        flush(&mut spans, &mut plain);
        if show_cursor && self.cursor >= self.text.len() {
            if used + 1 > width {
                new_row(&mut spans, &mut used);
            }
            spans.push(Span::styled(" ", cursor_style));
        }
        rows.push(Line::from(spans));
        rows
    }
}

/// The offset `column` characters after `from`, but not past `limit`.
fn advance(text: &str, from: usize, column: usize, limit: usize) -> usize {
    text[from..limit]
        .char_indices()
        .nth(column)
        .map_or(limit, |(i, _)| from + i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn editing_keys_move_and_delete_by_characters_and_words() {
        let mut e = Editor::default();
        e.insert("héllo world");
        e.word_left();
        assert_eq!(e.current_word(), (7, ""));
        e.delete_word();
        assert_eq!(e.text(), "world");
        e.end();
        e.backspace();
        assert_eq!(e.text(), "worl");
        e.insert("\nnext");
        e.up();
        assert_eq!(e.cursor(), 4);
        e.down();
        assert!(e.on_last_line());
    }

    #[test]
    fn long_input_wraps_under_the_prompt() {
        let mut e = Editor::default();
        e.insert("abcdefghij");
        let rows: Vec<String> = e
            .render("> ", 8, true)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(rows, ["> abcdef", "  ghij "]);
    }
}
