//! Compaction on realistic conversations: micro-compaction of old tool outputs, the summary
//! request, the compacted conversation (checked to be valid for the Messages API), the kept
//! tail, recently touched files, and session notes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::path::PathBuf;

use keel_context::{
    COMPACTED_MARKER, MICRO_MARKER, MicroOptions, SessionNotes, choose_kept_tail,
    compacted_conversation, compacted_from_notes, estimate_messages, micro_compact, recent_files,
    summary_request, summary_request_within, tail_for_notes, update_request,
};
use keel_protocol::{ContentBlock, Message, PlanItem, Role, ToolResultBlock, ToolResultContent};
use serde_json::{Value, json};

fn user(text: &str) -> Message {
    Message::user_text(text)
}

fn assistant(text: &str, calls: &[(&str, &str, Value)]) -> Message {
    let mut content = Vec::new();
    if !text.is_empty() {
        content.push(ContentBlock::Text { text: text.into() });
    }
    for (id, name, input) in calls {
        content.push(ContentBlock::ToolUse {
            id: (*id).into(),
            name: (*name).into(),
            input: input.clone(),
        });
    }
    Message {
        role: Role::Assistant,
        content,
    }
}

fn results(items: &[(&str, String, bool)]) -> Message {
    Message {
        role: Role::User,
        content: items
            .iter()
            .map(|(id, text, is_error)| ContentBlock::ToolResult {
                tool_use_id: (*id).into(),
                content: ToolResultContent::Text(text.clone()),
                is_error: *is_error,
            })
            .collect(),
    }
}

fn big(label: &str, lines: usize) -> String {
    (1..=lines)
        .map(|i| format!("{i:>6}\t{label} line {i} with some code in it;\n"))
        .collect()
}

/// A session: a request, several tool rounds with large outputs, a second request.
fn session() -> Vec<Message> {
    vec![
        user("Fix the failing parser test in src/parse.rs"),
        assistant(
            "Let me look.",
            &[
                ("t1", "Read", json!({"file_path": "/repo/src/parse.rs"})),
                (
                    "t2",
                    "Grep",
                    json!({"pattern": "fn parse_header", "path": "/repo/src"}),
                ),
            ],
        ),
        results(&[
            ("t1", big("parse.rs", 400), false),
            ("t2", "/repo/src/parse.rs:12:fn parse_header".into(), false),
        ]),
        assistant(
            "",
            &[(
                "t3",
                "Bash",
                json!({"command": "cargo test -p parser", "description": "run tests"}),
            )],
        ),
        results(&[("t3", big("test output", 300), true)]),
        assistant(
            "",
            &[(
                "t4",
                "Edit",
                json!({"file_path": "/repo/src/parse.rs", "old_string": "a", "new_string": "b"}),
            )],
        ),
        results(&[(
            "t4",
            "The file /repo/src/parse.rs has been updated.".into(),
            false,
        )]),
        assistant(
            "",
            &[("t5", "Read", json!({"file_path": "/repo/src/missing.rs"}))],
        ),
        results(&[("t5", "File does not exist.".into(), true)]),
        assistant("Fixed: the header length was off by one.", &[]),
        user("Now also update the changelog"),
        assistant(
            "",
            &[("t6", "Read", json!({"file_path": "/repo/CHANGELOG.md"}))],
        ),
        results(&[("t6", big("changelog", 200), false)]),
        assistant(
            "",
            &[(
                "t7",
                "Write",
                json!({"file_path": "/repo/CHANGELOG.md", "content": "..."}),
            )],
        ),
        results(&[("t7", "File created successfully".into(), false)]),
    ]
}

/// Checks what the Messages API requires: starts with a user message, roles alternate, every
/// tool result answers a call in the message just before it, and every call (except in a
/// trailing assistant message) is answered in the message just after it.
fn assert_valid(messages: &[Message]) {
    assert_eq!(
        messages[0].role,
        Role::User,
        "must start with a user message"
    );
    for pair in messages.windows(2) {
        assert_ne!(pair[0].role, pair[1].role, "roles must alternate");
    }
    for (i, message) in messages.iter().enumerate() {
        let ids = |m: &Message, results: bool| -> HashSet<String> {
            m.content
                .iter()
                .filter_map(|b| match b {
                    ContentBlock::ToolUse { id, .. } if !results => Some(id.clone()),
                    ContentBlock::ToolResult { tool_use_id, .. } if results => {
                        Some(tool_use_id.clone())
                    }
                    _ => None,
                })
                .collect()
        };
        let answered = ids(message, true);
        if !answered.is_empty() {
            assert!(i > 0, "tool result in the first message");
            let calls = ids(&messages[i - 1], false);
            assert!(answered.is_subset(&calls), "orphan tool result at {i}");
        }
        let calls = ids(message, false);
        if !calls.is_empty() && i + 1 < messages.len() {
            let answers = ids(&messages[i + 1], true);
            assert_eq!(calls, answers, "unanswered tool call at {i}");
        }
    }
}

fn result_texts(messages: &[Message]) -> Vec<String> {
    messages
        .iter()
        .flat_map(|m| &m.content)
        .filter_map(|b| match b {
            ContentBlock::ToolResult { content, .. } => Some(match content {
                ToolResultContent::Text(t) => t.clone(),
                ToolResultContent::Blocks(_) => "[blocks]".into(),
            }),
            _ => None,
        })
        .collect()
}

fn plan() -> Vec<PlanItem> {
    vec![
        PlanItem {
            id: "1".into(),
            subject: "Fix the parser test".into(),
            description: String::new(),
            active_form: None,
            status: "completed".into(),
            owner: None,
            blocks: vec![],
            blocked_by: vec![],
        },
        PlanItem {
            id: "2".into(),
            subject: "Update the changelog".into(),
            description: "Mention the header fix".into(),
            active_form: Some("Updating the changelog".into()),
            status: "in_progress".into(),
            owner: None,
            blocks: vec![],
            blocked_by: vec!["1".into()],
        },
    ]
}

#[test]
fn micro_compaction_clears_old_large_outputs_and_keeps_the_pairing() {
    let messages = session();
    let before = estimate_messages(&messages);
    let options = MicroOptions {
        keep_recent: 2,
        ..MicroOptions::default()
    };
    let out = micro_compact(&messages, before / 2, &options);
    assert_valid(&out.messages);
    assert_eq!(out.messages.len(), messages.len());
    // The Read of parse.rs and the failing test log were old and large: cleared. The small
    // Grep/Edit results and the newest two (changelog Read and Write) are intact.
    assert_eq!(out.cleared, 2);
    let texts = result_texts(&out.messages);
    assert!(texts[0].starts_with(MICRO_MARKER));
    assert!(texts[0].contains("Call: Read file_path=/repo/src/parse.rs"));
    assert!(texts[0].contains("     1\tparse.rs line 1 with some code in it;"));
    assert!(texts[0].contains("call the tool again"));
    assert!(texts[2].contains("Call: Bash command=cargo test -p parser"));
    assert_eq!(texts[1], "/repo/src/parse.rs:12:fn parse_header");
    assert_eq!(texts[5], big("changelog", 200));
    // Error flags and ids are untouched.
    let ContentBlock::ToolResult {
        tool_use_id,
        is_error,
        ..
    } = &out.messages[4].content[0]
    else {
        panic!()
    };
    assert_eq!((tool_use_id.as_str(), *is_error), ("t3", true));
    assert!(out.tokens_saved > before / 2, "saved {}", out.tokens_saved);
    assert_eq!(estimate_messages(&out.messages), before - out.tokens_saved);

    // Idempotent: placeholders are not compacted again.
    let again = micro_compact(&out.messages, 0, &options);
    assert_eq!(again.cleared, 0);
    assert_eq!(again.messages, out.messages);
    // Not even when every size qualifies: the small results go, the placeholders stay as
    // they were.
    let everything = MicroOptions {
        keep_recent: 0,
        min_tokens: 0,
        ..options
    };
    let again = micro_compact(&out.messages, 0, &everything);
    let again_texts = result_texts(&again.messages);
    assert_eq!(again_texts[0], texts[0]);
    assert_eq!(again_texts[2], texts[2]);
    assert!(again_texts[1].starts_with(MICRO_MARKER));
}

#[test]
fn kept_tail_does_not_cut_between_a_large_call_and_its_results() {
    // The assistant's message is large (long reasoning text), its results small: a budget
    // that fits only the results must not keep them without their call.
    let messages = vec![
        user("go"),
        assistant(
            &"thinking out loud ".repeat(500),
            &[("c1", "Bash", json!({"command": "ls"}))],
        ),
        results(&[("c1", "a.txt".into(), false)]),
        assistant("done", &[]),
    ];
    let budget = estimate_messages(&messages[2..]);
    assert_eq!(choose_kept_tail(&messages, budget), 3);
    let everything = estimate_messages(&messages[1..]);
    assert_eq!(choose_kept_tail(&messages, everything), 1);
}

#[test]
fn micro_compaction_does_nothing_under_budget() {
    let messages = session();
    let out = micro_compact(&messages, u64::MAX, &MicroOptions::default());
    assert_eq!(out.cleared, 0);
    assert_eq!(out.tokens_saved, 0);
    assert_eq!(out.messages, messages);
}

#[test]
fn micro_compaction_counts_images_in_block_results() {
    let messages = vec![
        user("look at the screenshot"),
        assistant(
            "",
            &[("i1", "Read", json!({"file_path": "/repo/shot.png"}))],
        ),
        Message {
            role: Role::User,
            content: vec![ContentBlock::ToolResult {
                tool_use_id: "i1".into(),
                content: ToolResultContent::Blocks(vec![
                    ToolResultBlock::Text {
                        text: "Image 800x600".into(),
                    },
                    ToolResultBlock::Image {
                        source: json!({"type": "base64", "media_type": "image/png", "data": "AAAA"}),
                    },
                ]),
                is_error: false,
            }],
        },
        assistant("A login form.", &[]),
    ];
    let out = micro_compact(
        &messages,
        0,
        &MicroOptions {
            keep_recent: 0,
            ..MicroOptions::default()
        },
    );
    assert_eq!(out.cleared, 1);
    let text = &result_texts(&out.messages)[0];
    assert!(text.contains("and 1 image(s)"), "{text}");
    assert!(out.tokens_saved > 1_000);
}

#[test]
fn kept_tail_never_starts_with_orphan_tool_results() {
    let messages = session();
    for budget in [0, 50, 500, 1_000, 3_000, 10_000, 20_000, 1_000_000] {
        let start = choose_kept_tail(&messages, budget);
        assert!(start >= 1 && start <= messages.len());
        if start < messages.len() {
            let first = &messages[start];
            assert!(
                first.role == Role::Assistant
                    || !first
                        .content
                        .iter()
                        .any(|b| matches!(b, ContentBlock::ToolResult { .. })),
                "budget {budget}: cut at a tool result message {start}"
            );
            assert!(estimate_messages(&messages[start..]) <= budget);
        }
        let compacted = compacted_conversation("summary", &messages[start..], &plan(), vec![]);
        assert_valid(&compacted);
    }
    // A budget for everything still summarises the first message.
    assert_eq!(choose_kept_tail(&messages, u64::MAX), 1);
    // A budget that fits the last exchange keeps it from the assistant's call on.
    let last_two = estimate_messages(&messages[13..]);
    assert_eq!(choose_kept_tail(&messages, last_two), 13);
    assert_eq!(choose_kept_tail(&[], 100), 0);
}

#[test]
fn compacted_conversation_carries_summary_tasks_and_files_then_the_tail() {
    let messages = session();
    let start = 10; // "Now also update the changelog"
    let reread = vec![
        (
            PathBuf::from("/repo/CHANGELOG.md"),
            "# Changelog\n- fix header\n".to_string(),
        ),
        (PathBuf::from("/repo/src/parse.rs"), "x".repeat(100_000)),
    ];
    let out = compacted_conversation(
        "## Goal\nFix the parser test.",
        &messages[start..],
        &plan(),
        reread,
    );
    assert_valid(&out);
    assert_eq!(out.len(), messages.len() - start);
    let first = &out[0].content;
    let texts: Vec<&str> = first
        .iter()
        .filter_map(|b| match b {
            ContentBlock::Text { text } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    assert!(texts[0].starts_with(COMPACTED_MARKER));
    assert!(texts[0].contains("<summary>\n## Goal\nFix the parser test.\n</summary>"));
    assert!(texts[1].contains("- [completed] #1 Fix the parser test"));
    assert!(texts[1].contains(
        "- [in_progress] #2 Update the changelog: Mention the header fix (blocked by #1)"
    ));
    assert!(texts[2].contains("Current contents of /repo/CHANGELOG.md"));
    assert!(texts[2].contains("# Changelog\n- fix header"));
    // The big file is cut to the per-file limit with a marker.
    assert!(texts[3].contains("Current contents of /repo/src/parse.rs"));
    assert!(texts[3].len() < 17_000);
    assert!(texts[3].contains("characters left out"));
    // The kept user prompt joined the first message, last.
    assert_eq!(texts[4], "Now also update the changelog");
    assert_eq!(out[1], messages[start + 1]);
    assert_eq!(out.last(), messages.last());
}

#[test]
fn a_tail_starting_at_an_assistant_turn_follows_the_summary_directly() {
    let messages = session();
    let out = compacted_conversation("s", &messages[13..], &[], vec![]);
    assert_valid(&out);
    assert_eq!(out.len(), 3);
    assert_eq!(out[0].content.len(), 1);
    assert_eq!(out[1], messages[13]);
}

#[test]
fn an_empty_tail_asks_the_model_to_continue_and_orphans_are_dropped() {
    let out = compacted_conversation("s", &[], &[], vec![]);
    assert_eq!(out.len(), 1);
    assert!(matches!(
        out[0].content.last(),
        Some(ContentBlock::Text { text }) if text.starts_with("Continue from here")
    ));
    // Misuse: a tail that starts with tool results whose calls were summarised.
    let messages = session();
    let out = compacted_conversation("s", &messages[2..], &[], vec![]);
    assert_valid(&out);
    assert_eq!(out[1], messages[3]);
}

#[test]
fn summary_request_asks_for_the_sections_and_cuts_long_outputs() {
    let messages = session();
    let (system, request) = summary_request(&messages, &plan(), Some("Focus on the parser fix"));
    for section in [
        "## Goal",
        "## Latest request",
        "## Decisions",
        "## Files touched",
        "## Open work",
        "## Tasks",
    ] {
        assert!(system.contains(section), "{section}");
    }
    assert_eq!(request.len(), 1);
    assert_eq!(request[0].role, Role::User);
    let ContentBlock::Text { text } = &request[0].content[0] else {
        panic!()
    };
    assert!(text.contains("<user>\nFix the failing parser test in src/parse.rs\n</user>"));
    assert!(
        text.contains(r#"<tool_call name="Read">{"file_path":"/repo/src/parse.rs"}</tool_call>"#)
    );
    assert!(text.contains(r#"<tool_result name="Bash" error="true">"#));
    assert!(text.contains("characters left out"));
    assert!(text.contains("- [in_progress] #2 Update the changelog"));
    assert!(text.contains("Focus on the parser fix"));
    // Cutting outputs makes the request much smaller than the conversation.
    assert!(keel_context::estimate_messages(&request) < estimate_messages(&messages) / 2);
    let (_, without) = summary_request(&messages, &[], Some("  "));
    let ContentBlock::Text { text } = &without[0].content[0] else {
        panic!()
    };
    assert!(!text.contains("asked for this when compacting"));
    assert!(!text.contains("task list"));
}

#[test]
fn a_limited_summary_request_fits_a_small_window() {
    let messages = session();
    let (_, request) = summary_request_within(&messages, &plan(), None, 3_000);
    let tokens = estimate_messages(&request);
    assert!(tokens <= 3_000, "{tokens}");
    let ContentBlock::Text { text } = &request[0].content[0] else {
        panic!()
    };
    // The original request and the newest exchange survive; the middle is left out.
    assert!(text.contains("Fix the failing parser test"));
    assert!(text.contains(r#"<tool_call name="Write">"#));
    assert!(text.contains("older entries left out"));
    let (_, full) = summary_request(&messages, &plan(), None);
    assert!(estimate_messages(&full) > tokens);
}

#[test]
fn recent_files_are_newest_first_unique_and_skip_failed_calls() {
    let messages = session();
    assert_eq!(
        recent_files(&messages, 5),
        vec![
            PathBuf::from("/repo/CHANGELOG.md"),
            PathBuf::from("/repo/src/parse.rs"),
        ]
    );
    assert_eq!(
        recent_files(&messages, 1),
        vec![PathBuf::from("/repo/CHANGELOG.md")]
    );
}

#[test]
fn session_notes_round_trip_and_tolerate_the_models_formatting() {
    let notes = SessionNotes {
        goal: "Fix the parser test; then update the changelog.".into(),
        decisions: "- Off-by-one in header length.".into(),
        files: "- /repo/src/parse.rs: fixed parse_header".into(),
        open_work: String::new(),
        other: String::new(),
    };
    let text = notes.render();
    assert!(text.starts_with("# Session notes\n\n## Goal\n"));
    assert!(text.contains("## Open work\n(none yet)\n"));
    assert_eq!(SessionNotes::parse(&text), notes);

    let from_model = "Here are the notes:\n# Session notes\n### Goal:\nShip it\n## Files touched\n- a.rs\n## Risks\n- flaky CI\n## open work\n- push\n";
    let parsed = SessionNotes::parse(from_model);
    assert_eq!(parsed.goal, "Ship it");
    assert_eq!(parsed.files, "- a.rs");
    assert_eq!(parsed.open_work, "- push");
    assert_eq!(parsed.other, "## Risks\n- flaky CI");
    assert!(parsed.render().contains("## Risks\n- flaky CI"));
    assert!(SessionNotes::parse("nothing useful").is_empty());
}

#[test]
fn session_notes_are_saved_atomically_and_loaded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("session-1/notes.md");
    assert_eq!(SessionNotes::load(&path).unwrap(), None);
    let notes = SessionNotes {
        goal: "g".into(),
        ..SessionNotes::default()
    };
    notes.save(&path).unwrap();
    assert_eq!(SessionNotes::load(&path).unwrap(), Some(notes.clone()));
    let newer = SessionNotes {
        goal: "g2".into(),
        ..notes
    };
    newer.save(&path).unwrap();
    assert_eq!(SessionNotes::load(&path).unwrap(), Some(newer));
    // No temporary files are left beside it.
    assert_eq!(
        std::fs::read_dir(path.parent().unwrap()).unwrap().count(),
        1
    );
    // A path that cannot be a file gives an error naming it.
    let error = SessionNotes::default().save(dir.path()).unwrap_err();
    assert!(
        error
            .to_string()
            .contains(&dir.path().display().to_string())
    );
}

#[test]
fn notes_update_request_carries_current_notes_and_new_messages() {
    let messages = session();
    let (system, request) = update_request(None, &messages[..3]);
    assert!(system.contains("## Open work"));
    let ContentBlock::Text { text } = &request[0].content[0] else {
        panic!()
    };
    assert!(text.contains("no notes yet"));
    assert!(text.contains("Fix the failing parser test"));

    let current = SessionNotes {
        goal: "Fix the parser".into(),
        ..SessionNotes::default()
    };
    let (_, request) = update_request(Some(&current), &messages[10..]);
    let ContentBlock::Text { text } = &request[0].content[0] else {
        panic!()
    };
    assert!(text.contains("<notes>\n# Session notes\n\n## Goal\nFix the parser"));
    assert!(text.contains("Now also update the changelog"));
    assert!(!text.contains("Fix the failing parser test"));
}

#[test]
fn compaction_from_fresh_notes_keeps_every_uncovered_message() {
    let messages = session();
    let notes = SessionNotes {
        goal: "Fix the parser test".into(),
        ..SessionNotes::default()
    };
    // Notes written after message 10: a tail from 10 or earlier covers the rest.
    let budget = estimate_messages(&messages[10..]);
    let start = tail_for_notes(&messages, 11, budget).unwrap();
    assert!(start <= 11);
    let out = compacted_from_notes(&notes, &messages[start..], &plan(), vec![]);
    assert_valid(&out);
    let ContentBlock::Text { text } = &out[0].content[0] else {
        panic!()
    };
    assert!(text.starts_with(COMPACTED_MARKER));
    assert!(text.contains("<session_notes>\n# Session notes\n\n## Goal\nFix the parser test"));
    assert_eq!(out.last(), messages.last());
    // Stale notes (covering only the first message) cannot be used with a small budget.
    assert_eq!(tail_for_notes(&messages, 1, budget), None);
}
