//! The terminal: an inline viewport under the conversation, in the normal screen (no alternate
//! screen), so everything written above it stays in the terminal's scrollback after keel exits.
//!
//! Finished lines are printed above the viewport as ordinary text and scroll away like any
//! program's output; the viewport (live answer, prompts, input, status line) is redrawn row by
//! row, only the rows that changed. The real cursor stays hidden at the viewport's first
//! column: after a resize the terminal re-flows its lines and the cursor moves with the
//! viewport's first row, so asking the terminal where the cursor is says where the viewport is.

use std::io::{self, Write};

use crossterm::style::{
    Attribute, Color as CtColor, Print, ResetColor, SetAttribute, SetBackgroundColor,
    SetForegroundColor,
};
use crossterm::terminal::{self, BeginSynchronizedUpdate, ClearType, EndSynchronizedUpdate};
use crossterm::{cursor, event, execute, queue};
use ratatui::backend::IntoCrossterm;
use ratatui::buffer::{Buffer, Cell};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::Line;

/// The terminal, in raw mode, with the viewport's position and last drawn rows.
pub struct Screen<W: Write> {
    out: W,
    width: u16,
    height: u16,
    /// The viewport's first row.
    top: u16,
    /// The rows drawn last time (None: redraw everything).
    drawn: Option<Vec<Vec<Cell>>>,
    /// Whether raw mode and the terminal modes were switched on (and must be switched off).
    owns_terminal: bool,
}

impl Screen<io::Stdout> {
    /// Takes over the real terminal: raw mode, bracketed paste, hidden cursor. The viewport
    /// starts on the cursor's row.
    pub fn start() -> io::Result<Self> {
        terminal::enable_raw_mode()?;
        let mut out = io::stdout();
        execute!(out, event::EnableBracketedPaste, cursor::Hide)?;
        let (width, height) = terminal::size()?;
        let top = match cursor::position() {
            Ok((0, y)) => y,
            // Not at the start of a line: keep what is there and start below it.
            Ok((_, y)) => {
                execute!(out, Print("\r\n"))?;
                (y + 1).min(height.saturating_sub(1))
            }
            Err(_) => height.saturating_sub(1),
        };
        Ok(Self {
            out,
            width,
            height,
            top,
            drawn: None,
            owns_terminal: true,
        })
    }
}

impl<W: Write> Screen<W> {
    /// A screen on any writer with a known size, for tests and benchmarks; it does not touch
    /// terminal modes.
    pub fn with_writer(out: W, width: u16, height: u16) -> Self {
        Self {
            out,
            width,
            height,
            top: 0,
            drawn: None,
            owns_terminal: false,
        }
    }

    /// The usable width.
    pub fn width(&self) -> u16 {
        self.width
    }

    /// The terminal's height.
    pub fn height(&self) -> u16 {
        self.height
    }

    /// Prints finished lines above the viewport, into the scrollback. Lines must already fit
    /// the width.
    pub fn insert(&mut self, lines: &[Line<'static>]) -> io::Result<()> {
        if lines.is_empty() {
            return Ok(());
        }
        queue!(self.out, BeginSynchronizedUpdate)?;
        queue!(
            self.out,
            cursor::MoveTo(0, self.top),
            terminal::Clear(ClearType::FromCursorDown)
        )?;
        let mut y = self.top;
        let last = self.height.saturating_sub(1);
        for line in lines {
            write_line(&mut self.out, line)?;
            queue!(self.out, Print("\r\n"))?;
            if y < last {
                y += 1;
            }
        }
        self.top = y;
        self.drawn = None;
        queue!(self.out, EndSynchronizedUpdate)?;
        self.out.flush()
    }

    /// Draws the viewport; only rows that changed since the last draw are written.
    pub fn draw(&mut self, buffer: &Buffer) -> io::Result<()> {
        let rows = buffer.area.height.min(self.height);
        queue!(self.out, BeginSynchronizedUpdate)?;
        if self.top + rows > self.height {
            // Make room by scrolling what is above up, into the scrollback.
            let scroll = self.top + rows - self.height;
            queue!(self.out, cursor::MoveTo(0, self.height.saturating_sub(1)))?;
            for _ in 0..scroll {
                queue!(self.out, Print("\n"))?;
            }
            self.top = self.height - rows;
            self.drawn = None;
        }
        let previous = self.drawn.take();
        if previous
            .as_ref()
            .is_none_or(|p| p.len() > usize::from(rows))
        {
            queue!(
                self.out,
                cursor::MoveTo(0, self.top + rows),
                terminal::Clear(ClearType::FromCursorDown)
            )?;
        }
        let mut now = Vec::with_capacity(usize::from(rows));
        for row in 0..rows {
            let text = row_key(buffer, row);
            let same = previous
                .as_ref()
                .and_then(|p| p.get(usize::from(row)))
                .is_some_and(|p| *p == text);
            if !same {
                queue!(self.out, cursor::MoveTo(0, self.top + row))?;
                write_buffer_row(&mut self.out, buffer, row)?;
                queue!(self.out, terminal::Clear(ClearType::UntilNewLine))?;
            }
            now.push(text);
        }
        self.drawn = Some(now);
        queue!(self.out, cursor::MoveTo(0, self.top), EndSynchronizedUpdate)?;
        self.out.flush()
    }

    /// The terminal changed size: find where the viewport went (the terminal may have
    /// re-flowed the lines above it), clear it and redraw from scratch next time.
    pub fn resized(&mut self, width: u16, height: u16, cursor_row: Option<u16>) -> io::Result<()> {
        self.width = width;
        self.height = height;
        self.top = cursor_row.unwrap_or(self.top).min(height.saturating_sub(1));
        self.drawn = None;
        queue!(
            self.out,
            cursor::MoveTo(0, self.top),
            terminal::Clear(ClearType::FromCursorDown)
        )?;
        self.out.flush()
    }

    /// Clears the viewport and leaves the cursor where it was, so the shell prompt comes right
    /// after the conversation.
    pub fn finish(&mut self) -> io::Result<()> {
        queue!(
            self.out,
            cursor::MoveTo(0, self.top),
            terminal::Clear(ClearType::FromCursorDown),
            ResetColor,
            cursor::Show
        )?;
        self.out.flush()?;
        if self.owns_terminal {
            self.owns_terminal = false;
            execute!(self.out, event::DisableBracketedPaste)?;
            terminal::disable_raw_mode()?;
        }
        Ok(())
    }

    /// The writer (tests read what was written).
    pub fn writer(&self) -> &W {
        &self.out
    }
}

impl<W: Write> Drop for Screen<W> {
    fn drop(&mut self) {
        if self.owns_terminal {
            // A panic or an early error must not leave the user's terminal in raw mode.
            let _ = execute!(self.out, event::DisableBracketedPaste, cursor::Show);
            let _ = terminal::disable_raw_mode();
        }
    }
}

/// A row's cells (content and styles), to tell whether it changed.
fn row_key(buffer: &Buffer, row: u16) -> Vec<Cell> {
    let area = buffer.area;
    let start = usize::from(row) * usize::from(area.width);
    buffer
        .content
        .get(start..start + usize::from(area.width))
        .map(<[Cell]>::to_vec)
        .unwrap_or_default()
}

fn set_style(out: &mut impl Write, style: Style) -> io::Result<()> {
    queue!(out, SetAttribute(Attribute::Reset), ResetColor)?;
    if let Some(fg) = style.fg.filter(|c| *c != Color::Reset) {
        queue!(
            out,
            SetForegroundColor(IntoCrossterm::<CtColor>::into_crossterm(fg))
        )?;
    }
    if let Some(bg) = style.bg.filter(|c| *c != Color::Reset) {
        queue!(
            out,
            SetBackgroundColor(IntoCrossterm::<CtColor>::into_crossterm(bg))
        )?;
    }
    let m = style.add_modifier;
    for (flag, attr) in [
        (Modifier::BOLD, Attribute::Bold),
        (Modifier::DIM, Attribute::Dim),
        (Modifier::ITALIC, Attribute::Italic),
        (Modifier::UNDERLINED, Attribute::Underlined),
        (Modifier::REVERSED, Attribute::Reverse),
        (Modifier::CROSSED_OUT, Attribute::CrossedOut),
    ] {
        if m.contains(flag) {
            queue!(out, SetAttribute(attr))?;
        }
    }
    Ok(())
}

/// Writes one styled line at the cursor, then resets the style.
fn write_line(out: &mut impl Write, line: &Line<'_>) -> io::Result<()> {
    for span in &line.spans {
        set_style(out, line.style.patch(span.style))?;
        queue!(out, Print(span.content.as_ref()))?;
    }
    queue!(out, SetAttribute(Attribute::Reset), ResetColor)
}

/// Writes a buffer row up to its last visible cell (trailing blanks are left to the terminal's
/// clear, so a shrinking terminal has less to re-flow).
fn write_buffer_row(out: &mut impl Write, buffer: &Buffer, row: u16) -> io::Result<()> {
    let area = buffer.area;
    let y = area.top() + row;
    let visible = |x: u16| {
        let cell = &buffer[(x, y)];
        cell.symbol() != " "
            || cell.bg != Color::Reset
            || cell.modifier.contains(Modifier::REVERSED)
    };
    let Some(end) = (area.left()..area.right()).rev().find(|&x| visible(x)) else {
        return Ok(());
    };
    let mut current: Option<Style> = None;
    let mut hidden = 0usize;
    for x in area.left()..=end {
        let cell = &buffer[(x, y)];
        if hidden > 0 {
            // The cells a wide character covers.
            hidden -= 1;
            continue;
        }
        if cell.symbol().is_empty() {
            continue;
        }
        hidden = unicode_width::UnicodeWidthStr::width(cell.symbol()).saturating_sub(1);
        let style = Style::new()
            .fg(cell.fg)
            .bg(cell.bg)
            .add_modifier(cell.modifier);
        if current != Some(style) {
            set_style(out, style)?;
            current = Some(style);
        }
        queue!(out, Print(cell.symbol()))?;
    }
    queue!(out, SetAttribute(Attribute::Reset), ResetColor)
}

/// Where the terminal's cursor is (the viewport's first row after a re-flow), if it answers.
pub fn cursor_row() -> Option<u16> {
    cursor::position().ok().map(|(_, y)| y)
}
