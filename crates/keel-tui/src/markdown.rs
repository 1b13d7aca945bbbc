//! Markdown to styled terminal lines: headings, emphasis, lists, quotes, links, and code blocks
//! highlighted by syntect. Soft line breaks are kept as line breaks, so a streamed answer renders
//! the same lines whether it arrived in one piece or many (lines never re-flow once shown).

use std::sync::OnceLock;

use pulldown_cmark::{CodeBlockKind, Event as Md, HeadingLevel, Options, Parser, Tag, TagEnd};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use syntect::easy::HighlightLines;
use syntect::highlighting::{Theme, ThemeSet};
use syntect::parsing::SyntaxSet;

use crate::wrap::wrap_lines;

/// Syntect's syntax definitions and theme, loaded once (they take a few milliseconds).
struct Highlighter {
    syntaxes: SyntaxSet,
    theme: Theme,
}

fn highlighter() -> Option<&'static Highlighter> {
    static CELL: OnceLock<Option<Highlighter>> = OnceLock::new();
    CELL.get_or_init(|| {
        let syntaxes = SyntaxSet::load_defaults_newlines();
        let mut themes = ThemeSet::load_defaults();
        let theme = themes.themes.remove("base16-ocean.dark")?;
        Some(Highlighter { syntaxes, theme })
    })
    .as_ref()
}

/// Starts loading the highlighter on a background thread so the first code block does not stall
/// a frame.
pub fn warm_up() {
    std::thread::spawn(|| {
        let _ = highlighter();
    });
}

/// Renders Markdown `source` as lines at most `width` columns wide.
pub fn render(source: &str, width: u16) -> Vec<Line<'static>> {
    let lines = Renderer::default().run(source);
    wrap_lines(&lines, width)
}

#[derive(Default)]
struct Renderer {
    lines: Vec<Line<'static>>,
    current: Vec<Span<'static>>,
    styles: Vec<Style>,
    /// Open lists: `None` for bullets, `Some(n)` for the next number.
    lists: Vec<Option<u64>>,
    quote_depth: usize,
    /// Language of the open fenced code block, if inside one.
    code: Option<String>,
    code_text: String,
    /// The prefix of the current list item's first line, waiting for its text.
    pending_item: Option<String>,
    link: Option<String>,
}

const CODE_STYLE: Style = Style::new().fg(Color::Cyan);
const QUOTE_STYLE: Style = Style::new().fg(Color::DarkGray);

impl Renderer {
    fn run(mut self, source: &str) -> Vec<Line<'static>> {
        let parser = Parser::new_ext(source, Options::ENABLE_STRIKETHROUGH);
        for event in parser {
            self.event(event);
        }
        if self.code.is_some() {
            // An unclosed fence (still streaming): show what there is.
            self.flush_code();
        }
        self.flush_line();
        while self.lines.last().is_some_and(|l| l.width() == 0) {
            self.lines.pop();
        }
        self.lines
    }

    fn style(&self) -> Style {
        self.styles
            .iter()
            .fold(Style::default(), |acc, s| acc.patch(*s))
    }

    fn push_text(&mut self, text: &str) {
        if let Some(prefix) = self.pending_item.take() {
            self.current.push(Span::raw(prefix));
        }
        let style = self.style();
        self.current.push(Span::styled(text.to_string(), style));
    }

    fn prefix(&self) -> Vec<Span<'static>> {
        let mut spans = Vec::new();
        for _ in 0..self.quote_depth {
            spans.push(Span::styled("│ ", QUOTE_STYLE));
        }
        let indent = self.lists.len().saturating_sub(1) * 2;
        if indent > 0 {
            spans.push(Span::raw(" ".repeat(indent)));
        }
        spans
    }

    fn flush_line(&mut self) {
        if self.current.is_empty() && self.pending_item.is_none() {
            return;
        }
        if let Some(prefix) = self.pending_item.take() {
            self.current.insert(0, Span::raw(prefix));
        }
        let mut spans = self.prefix();
        spans.append(&mut self.current);
        self.lines.push(Line::from(spans));
    }

    fn blank(&mut self) {
        self.flush_line();
        if self.lines.last().is_some_and(|l| l.width() > 0) {
            self.lines.push(Line::default());
        }
    }

    fn flush_code(&mut self) {
        let text = std::mem::take(&mut self.code_text);
        let lang = self.code.clone().unwrap_or_default();
        for line in highlight(&text, &lang) {
            let mut spans = self.prefix();
            spans.push(Span::raw("  "));
            spans.extend(line.spans);
            self.lines.push(Line::from(spans));
        }
    }

    fn event(&mut self, event: Md<'_>) {
        match event {
            Md::Start(tag) => self.start(tag),
            Md::End(tag) => self.end(tag),
            Md::Text(text) => {
                if self.code.is_some() {
                    self.code_text.push_str(&text);
                } else {
                    self.push_text(&text);
                }
            }
            Md::Code(code) => {
                if let Some(prefix) = self.pending_item.take() {
                    self.current.push(Span::raw(prefix));
                }
                self.current.push(Span::styled(
                    code.to_string(),
                    self.style().patch(CODE_STYLE),
                ));
            }
            Md::SoftBreak | Md::HardBreak => self.flush_line(),
            Md::Rule => {
                self.blank();
                self.lines.push(Line::styled(
                    "─".repeat(40),
                    Style::new().fg(Color::DarkGray),
                ));
            }
            Md::Html(html) | Md::InlineHtml(html) => self.push_text(&html),
            Md::TaskListMarker(done) => self.push_text(if done { "[x] " } else { "[ ] " }),
            Md::FootnoteReference(_) | Md::InlineMath(_) | Md::DisplayMath(_) => {}
        }
    }

    fn start(&mut self, tag: Tag<'_>) {
        match tag {
            Tag::Paragraph => {}
            Tag::Heading { level, .. } => {
                self.blank();
                let style = match level {
                    HeadingLevel::H1 => Style::new()
                        .add_modifier(Modifier::BOLD | Modifier::UNDERLINED)
                        .fg(Color::Magenta),
                    HeadingLevel::H2 => {
                        Style::new().add_modifier(Modifier::BOLD).fg(Color::Magenta)
                    }
                    _ => Style::new().add_modifier(Modifier::BOLD),
                };
                self.styles.push(style);
            }
            Tag::BlockQuote(_) => {
                self.blank();
                self.quote_depth += 1;
            }
            Tag::CodeBlock(kind) => {
                self.blank();
                let lang = match kind {
                    CodeBlockKind::Fenced(info) => info
                        .split_whitespace()
                        .next()
                        .unwrap_or_default()
                        .to_string(),
                    CodeBlockKind::Indented => String::new(),
                };
                self.code = Some(lang);
            }
            Tag::List(start) => {
                if self.lists.is_empty() {
                    self.blank();
                } else {
                    self.flush_line();
                }
                self.lists.push(start);
            }
            Tag::Item => {
                self.flush_line();
                let marker = match self.lists.last_mut() {
                    Some(Some(n)) => {
                        let marker = format!("{n}. ");
                        *n += 1;
                        marker
                    }
                    _ => "• ".to_string(),
                };
                self.pending_item = Some(marker);
            }
            Tag::Emphasis => self
                .styles
                .push(Style::new().add_modifier(Modifier::ITALIC)),
            Tag::Strong => self.styles.push(Style::new().add_modifier(Modifier::BOLD)),
            Tag::Strikethrough => self
                .styles
                .push(Style::new().add_modifier(Modifier::CROSSED_OUT)),
            Tag::Link { dest_url, .. } => {
                self.styles.push(
                    Style::new()
                        .fg(Color::Blue)
                        .add_modifier(Modifier::UNDERLINED),
                );
                self.link = Some(dest_url.to_string());
            }
            _ => {}
        }
    }

    fn end(&mut self, tag: TagEnd) {
        match tag {
            TagEnd::Paragraph => {
                self.flush_line();
                if self.lists.is_empty() {
                    self.blank();
                }
            }
            TagEnd::Heading(_) => {
                self.styles.pop();
                self.flush_line();
                self.blank();
            }
            TagEnd::BlockQuote(_) => {
                self.flush_line();
                self.quote_depth = self.quote_depth.saturating_sub(1);
                self.blank();
            }
            TagEnd::CodeBlock => {
                self.flush_code();
                self.code = None;
                self.blank();
            }
            TagEnd::List(_) => {
                self.flush_line();
                self.lists.pop();
                if self.lists.is_empty() {
                    self.blank();
                }
            }
            TagEnd::Item => self.flush_line(),
            TagEnd::Emphasis | TagEnd::Strong | TagEnd::Strikethrough => {
                self.styles.pop();
            }
            TagEnd::Link => {
                self.styles.pop();
                if let Some(url) = self.link.take() {
                    let shown = self
                        .current
                        .last()
                        .is_some_and(|s| s.content.as_ref() == url);
                    if !shown {
                        self.current
                            .push(Span::styled(format!(" ({url})"), QUOTE_STYLE));
                    }
                }
            }
            _ => {}
        }
    }
}

/// Highlights `code` as language `lang` (a fence's info string: `rust`, `py`, ...); unknown
/// languages and a missing highlighter fall back to one plain colour.
pub fn highlight(code: &str, lang: &str) -> Vec<Line<'static>> {
    let plain = || {
        code.lines()
            .map(|l| Line::styled(l.to_string(), CODE_STYLE))
            .collect()
    };
    let Some(hl) = highlighter() else {
        return plain();
    };
    let syntax = if lang.is_empty() {
        None
    } else {
        hl.syntaxes
            .find_syntax_by_token(lang)
            .or_else(|| hl.syntaxes.find_syntax_by_extension(lang))
    };
    let Some(syntax) = syntax else {
        return plain();
    };
    let mut lines = HighlightLines::new(syntax, &hl.theme);
    let mut out = Vec::new();
    for line in syntect::util::LinesWithEndings::from(code) {
        let Ok(regions) = lines.highlight_line(line, &hl.syntaxes) else {
            return plain();
        };
        let spans: Vec<Span<'static>> = regions
            .into_iter()
            .map(|(style, text)| {
                let fg = style.foreground;
                Span::styled(
                    text.trim_end_matches(['\n', '\r']).to_string(),
                    Style::new().fg(Color::Rgb(fg.r, fg.g, fg.b)),
                )
            })
            .filter(|s| !s.content.is_empty())
            .collect();
        out.push(Line::from(spans));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(lines: &[Line<'_>]) -> Vec<String> {
        lines.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn soft_breaks_stay_line_breaks() {
        assert_eq!(plain(&render("one\ntwo", 80)), ["one", "two"]);
    }

    #[test]
    fn streaming_prefix_renders_the_same_lines() {
        let full = "# Title\n\nSome *text* here.\n\n- a\n- b\n\n```rust\nfn x() {}\n```\n";
        let whole = plain(&render(full, 40));
        let cut = full.find("- b").unwrap_or(0);
        let partial = plain(&render(&full[..cut], 40));
        assert_eq!(whole[..partial.len()], partial[..]);
    }
}
