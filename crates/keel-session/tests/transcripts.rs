//! Transcripts on disk: written as events happen, read back after crashes, listed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::path::Path;

use keel_protocol::{
    AssistantMessage, ContentBlock, Event, Outcome, Role, SessionId, StopReason, ToolResultContent,
    Usage,
};
use keel_session::{SessionStore, Totals, Transcript, TranscriptWriter};
use serde_json::json;

fn started(id: &SessionId, cwd: &Path) -> Event {
    Event::SessionStarted {
        session_id: id.clone(),
        model: "claude-sonnet-4-5".into(),
        cwd: cwd.display().to_string(),
        tools: vec!["Bash".into()],
        permission_mode: "default".into(),
    }
}

fn prompt(text: &str) -> Event {
    Event::UserMessage {
        content: vec![ContentBlock::Text { text: text.into() }],
    }
}

fn tool_call(id: &str) -> Event {
    Event::AssistantMessage {
        message: AssistantMessage {
            id: "msg".into(),
            role: Role::Assistant,
            model: "claude-sonnet-4-5".into(),
            content: vec![ContentBlock::ToolUse {
                id: id.into(),
                name: "Bash".into(),
                input: json!({"command": "ls"}),
            }],
            stop_reason: Some(StopReason::ToolUse),
            stop_sequence: None,
            usage: Usage::default(),
        },
    }
}

fn finished(turns: u32, cost: f64) -> Event {
    Event::RunFinished {
        outcome: Outcome::Success,
        result: "done".into(),
        num_turns: turns,
        usage: Usage::default(),
        total_cost_usd: cost,
        duration_ms: 1,
        duration_api_ms: 1,
        permission_denials: vec![],
        model_usage: vec![],
    }
}

#[test]
fn events_round_trip_and_deltas_are_left_out() {
    let dir = tempfile::tempdir().unwrap();
    let store = SessionStore::new(dir.path());
    let cwd = Path::new("/work/my.project");
    let id = SessionId::new();
    let path = store.path_for(cwd, id.as_str());
    assert!(path.starts_with(dir.path().join(".keel/projects/-work-my-project")));
    let mut writer = TranscriptWriter::open(&path, Totals::default()).unwrap();
    for event in [
        started(&id, cwd),
        prompt("list files"),
        Event::TextDelta { text: "x".into() },
        tool_call("t1"),
        Event::ToolResult {
            tool_use_id: "t1".into(),
            tool_name: "Bash".into(),
            content: ToolResultContent::Text("a.txt".into()),
            is_error: false,
            structured: None,
        },
        finished(2, 0.5),
    ] {
        writer.append(&event).unwrap();
    }
    writer.close().unwrap();

    let transcript = Transcript::read(&path).unwrap();
    assert!(transcript.warnings.is_empty());
    assert_eq!(transcript.records.len(), 5, "the text delta is not stored");
    assert_eq!(transcript.totals().turns, 2);
    let messages = transcript.conversation().messages();
    assert_eq!(messages.len(), 3);
    assert_eq!(messages[2].role, Role::User);
}

#[test]
fn a_torn_last_line_is_skipped_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.jsonl");
    let id = SessionId::new();
    let mut writer = TranscriptWriter::open(&path, Totals::default()).unwrap();
    writer.append(&started(&id, dir.path())).unwrap();
    writer.append(&prompt("hello")).unwrap();
    writer.close().unwrap();
    // A crash in the middle of writing the next line.
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    file.write_all(br#"{"ts":"2026-01-01T00:00:00.000Z","event":{"type":"assistant_mess"#)
        .unwrap();
    drop(file);

    let transcript = Transcript::read(&path).unwrap();
    assert_eq!(transcript.records.len(), 2);
    assert_eq!(transcript.warnings.len(), 1);
    assert!(
        transcript.warnings[0].contains(":3:"),
        "{:?}",
        transcript.warnings
    );

    // The session goes on: appending after the torn line still gives a readable transcript.
    let mut writer = TranscriptWriter::open(&path, transcript.totals()).unwrap();
    writer.append(&prompt("again")).unwrap();
    writer.close().unwrap();
    let transcript = Transcript::read(&path).unwrap();
    let messages = transcript.conversation().messages();
    assert_eq!(messages.len(), 2);
}

#[test]
fn totals_accumulate_across_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.jsonl");
    let id = SessionId::new();
    let mut writer = TranscriptWriter::open(&path, Totals::default()).unwrap();
    writer.append(&started(&id, dir.path())).unwrap();
    writer.append(&finished(3, 0.25)).unwrap();
    writer.close().unwrap();
    let previous = Transcript::read(&path).unwrap().totals();
    let mut writer = TranscriptWriter::open(&path, previous).unwrap();
    writer.append(&finished(2, 0.5)).unwrap();
    writer.close().unwrap();
    let totals = Transcript::read(&path).unwrap().totals();
    assert_eq!(totals.turns, 5);
    assert_eq!(totals.runs, 2);
    assert!((totals.cost_usd - 0.75).abs() < 1e-12);
}

#[test]
fn a_full_disk_is_reported_not_fatal() {
    // /dev/full accepts the open and fails every write with ENOSPC.
    let path = Path::new("/dev/full");
    if !path.exists() {
        return;
    }
    let mut writer = TranscriptWriter::open(path, Totals::default()).unwrap();
    writer.append(&prompt("one")).unwrap();
    let mut reported = None;
    // The writer thread reports the failure as soon as it has tried; poll for it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while std::time::Instant::now() < deadline {
        if let Err(error) = writer.append(&prompt("two")) {
            reported = Some(error.to_string());
            break;
        }
        std::thread::yield_now();
    }
    let message = reported.expect("the write error is reported");
    assert!(
        message.contains("/dev/full") && message.to_lowercase().contains("space"),
        "{message}"
    );
}

#[test]
fn latest_find_and_list() {
    let dir = tempfile::tempdir().unwrap();
    let store = SessionStore::new(dir.path());
    let cwd = Path::new("/work/p");
    let other = Path::new("/work/q");
    let mut ids = Vec::new();
    for (i, (dir_of, text)) in [
        (cwd, "first session"),
        (cwd, "second session"),
        (other, "elsewhere"),
    ]
    .into_iter()
    .enumerate()
    {
        let id = SessionId::new();
        let path = store.path_for(dir_of, id.as_str());
        let mut writer = TranscriptWriter::open(&path, Totals::default()).unwrap();
        writer.append(&started(&id, dir_of)).unwrap();
        writer.append(&prompt(text)).unwrap();
        writer.append(&finished(i as u32 + 1, 0.1)).unwrap();
        writer.close().unwrap();
        let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000 + i as u64);
        std::fs::File::options()
            .append(true)
            .open(&path)
            .unwrap()
            .set_modified(time)
            .unwrap();
        ids.push(id);
    }
    let latest = store.latest(cwd).unwrap().unwrap();
    assert!(latest.ends_with(format!("{}.jsonl", ids[1])));
    assert_eq!(
        store.find(cwd, ids[2].as_str()).unwrap().parent().unwrap(),
        store.project_dir(other)
    );
    assert!(
        store
            .find(cwd, "not-a-uuid")
            .unwrap_err()
            .to_string()
            .contains("not a session id")
    );
    let missing = SessionId::new();
    assert!(
        store
            .find(cwd, missing.as_str())
            .unwrap_err()
            .to_string()
            .contains("keel sessions")
    );

    let here = store.list(Some(cwd)).unwrap();
    assert_eq!(here.len(), 2);
    assert_eq!(here[0].first_prompt, "second session");
    assert_eq!(here[0].totals.turns, 2);
    assert_eq!(here[0].cwd, "/work/p");
    assert_eq!(store.list(None).unwrap().len(), 3);
}
