//! Snapshot tests of rendered widgets at fixed widths: Markdown, diffs, tool entries, the
//! prompt editor and the whole viewport. Each snapshot is the ratatui buffer's debug form, so
//! colours and modifiers are checked along with the text.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use keel_tui::cells::{self, ToolEntry};
use keel_tui::{App, Startup, diff, markdown};
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::Line;
use ratatui::widgets::{Paragraph, Widget};
use serde_json::json;

fn buffer(lines: &[Line<'static>], width: u16) -> Buffer {
    let height = u16::try_from(lines.len()).unwrap().max(1);
    let area = Rect::new(0, 0, width, height);
    let mut buf = Buffer::empty(area);
    Paragraph::new(lines.to_vec()).render(area, &mut buf);
    buf
}

fn text(lines: &[Line<'static>]) -> String {
    lines
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

const ANSWER: &str = "# Fixing the parser\n\nThe bug is in `parse_line`: it **drops** the last field when the line has no trailing newline, which *only* shows up at EOF.\n\n1. Read the line\n2. Split on commas\n   - keep empty fields\n\n> Note: this changes behaviour.\n\n```rust\nfn parse_line(s: &str) -> Vec<&str> {\n    s.split(',').collect()\n}\n```\n\nSee [the docs](https://example.com/parse).";

#[test]
fn markdown_at_60_columns() {
    let lines = markdown::render(ANSWER, 60);
    insta::assert_snapshot!("markdown_60_text", text(&lines));
    insta::assert_debug_snapshot!("markdown_60_styled", buffer(&lines, 60));
}

#[test]
fn markdown_wraps_at_30_columns() {
    let lines = markdown::render(ANSWER, 30);
    assert!(lines.iter().all(|l| l.width() <= 30));
    insta::assert_snapshot!("markdown_30_text", text(&lines));
}

#[test]
fn edit_diff_from_structured_patch() {
    let patch = json!([{
        "oldStart": 10, "oldLines": 4, "newStart": 10, "newLines": 4,
        "lines": [" fn parse_line(s: &str) -> Vec<&str> {", "-    s.split(',').skip(1).collect()", "+    s.split(',').collect()", " }"]
    }]);
    let lines = diff::render(&diff::patch_lines(&patch));
    insta::assert_debug_snapshot!("edit_diff_styled", buffer(&lines, 50));
}

#[test]
fn write_diff_over_an_existing_file() {
    let before = "a\nb\nc\nd\ne\nf\ng\nh\n";
    let after = "a\nb\nc\nD\ne\nf\ng\nh\ni\n";
    let lines = diff::render(&diff::diff_lines(before, after));
    insta::assert_snapshot!("write_diff_text", text(&lines));
}

fn entry_lines(
    name: &str,
    input: serde_json::Value,
    output: &str,
    is_error: bool,
    structured: Option<serde_json::Value>,
    expanded: bool,
) -> Vec<Line<'static>> {
    let entry = ToolEntry {
        name,
        input: &input,
        output,
        is_error,
        structured: structured.as_ref(),
        before: None,
    };
    cells::tool_entry(&entry, Path::new("/work/proj"), expanded, 60)
}

#[test]
fn tool_entries_collapsed_and_expanded() {
    let bash = entry_lines(
        "Bash",
        json!({"command": "cargo test -p parser", "description": "Run the tests"}),
        "running 6 tests\ntest a ... ok\ntest b ... ok\ntest c ... ok\ntest d ... ok\ntest e ... ok\ntest f ... ok",
        false,
        None,
        false,
    );
    insta::assert_snapshot!("bash_collapsed", text(&bash));
    let read = entry_lines(
        "Read",
        json!({"file_path": "/work/proj/src/lib.rs"}),
        "1\tfn a() {}\n2\tfn b() {}",
        false,
        None,
        false,
    );
    insta::assert_snapshot!("read_collapsed", text(&read));
    let failed = entry_lines(
        "Bash",
        json!({"command": "false"}),
        "Exit code 1\nboom",
        true,
        None,
        false,
    );
    insta::assert_debug_snapshot!("bash_failed_styled", buffer(&failed, 60));
    let expanded = entry_lines(
        "Grep",
        json!({"pattern": "fn parse"}),
        "src/lib.rs:3:fn parse()",
        false,
        None,
        true,
    );
    insta::assert_snapshot!("grep_expanded", text(&expanded));
    let edit = entry_lines(
        "Edit",
        json!({"file_path": "/work/proj/src/lib.rs", "old_string": "skip(1).", "new_string": ""}),
        "The file was updated.",
        false,
        Some(
            json!({"filePath": "src/lib.rs", "structuredPatch": [{"oldStart": 2, "newStart": 2, "lines": ["-    s.split(',').skip(1).collect()", "+    s.split(',').collect()"]}]}),
        ),
        false,
    );
    insta::assert_snapshot!("edit_entry", text(&edit));
}

fn app(width: u16) -> App {
    App::new(
        Startup {
            cwd: "/work/proj".into(),
            model: "claude-sonnet-4-5".into(),
            permission_mode: "default".into(),
            branch: Some("main".into()),
            commands: vec![
                (
                    "compact".into(),
                    "Summarise the conversation to free context [instructions]".into(),
                ),
                (
                    "cost".into(),
                    "Show the session's token usage and cost".into(),
                ),
            ],
            resumed: false,
            version: "0.1.0".into(),
            history: Vec::new(),
        },
        width,
        30,
    )
}

fn viewport(app: &mut App) -> String {
    let buf = app.render();
    let width = usize::from(buf.area.width);
    buf.content()
        .chunks(width)
        .map(|row| {
            row.iter()
                .map(|c| c.symbol())
                .collect::<String>()
                .trim_end()
                .to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn viewport_with_the_command_list_at_40_columns() {
    use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
    let mut app = app(40);
    app.on_key(KeyEvent::new(KeyCode::Char('/'), KeyModifiers::NONE));
    app.on_key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::NONE));
    insta::assert_snapshot!("viewport_slash_40", viewport(&mut app));
}

#[test]
fn viewport_with_an_approval_question() {
    let mut app = app(60);
    app.on_event(keel_protocol::Event::ApprovalRequested {
        request_id: "r1".into(),
        tool_use_id: "t1".into(),
        tool_name: "Bash".into(),
        input: json!({"command": "npm test"}),
        reason: "Bash commands need approval in default mode.".into(),
        suggestions: vec!["Bash(npm test:*)".into()],
    });
    insta::assert_snapshot!("viewport_approval_60", viewport(&mut app));
}

#[test]
fn viewport_with_a_running_command_shows_its_last_lines() {
    let mut app = app(60);
    app.on_event(keel_protocol::Event::ToolCallStarted {
        tool_use_id: "b1".into(),
        name: "Bash".into(),
        input: json!({"command": "cargo test"}),
    });
    for text in [
        "   Compiling keel v0.1.0\n",
        "running 12 tests\ntest a ... ok\n",
        "test b ... ok\nprogress 10%\rprogress 50%\r",
    ] {
        app.on_event(keel_protocol::Event::ToolProgress {
            tool_use_id: "b1".into(),
            text: text.into(),
        });
    }
    insta::assert_snapshot!("viewport_bash_tail_60", viewport(&mut app));
}

#[test]
fn viewport_with_the_rewind_picker() {
    use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
    let mut app = app(60);
    for prompt in ["first question", "second question\nwith a second line"] {
        app.on_event(keel_protocol::Event::UserMessage {
            content: vec![keel_protocol::ContentBlock::Text {
                text: prompt.into(),
            }],
        });
    }
    app.on_key(KeyEvent::new(KeyCode::Esc, KeyModifiers::NONE));
    app.on_key(KeyEvent::new(KeyCode::Esc, KeyModifiers::NONE));
    insta::assert_snapshot!("viewport_rewind_picker_60", viewport(&mut app));
    // Picking sends the rewind; nothing else is sent.
    app.on_key(KeyEvent::new(KeyCode::Char('2'), KeyModifiers::NONE));
    assert_eq!(
        app.take_ops(),
        vec![keel_protocol::Op::Rewind { user_turns_back: 2 }]
    );
}
