//! End-to-end: a long session in a small context window is micro-compacted, then compacted
//! from a summary (or from the session notes), "prompt too long" is answered by compacting
//! and retrying, and memory files of subdirectories arrive when a tool first touches them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Harness, stderr, stdout_json};
use keel_test_support::{ScriptedBlock, ScriptedTurn, TurnMatcher};
use serde_json::{Value, json};

const SUMMARY_MARK: &str = "You summarise a coding agent's session";
const NOTES_MARK: &str = "You keep the working notes of a coding agent's session";

/// A turn that reads `path`, served only to requests that offer tools (not to the summary or
/// notes calls, which have none).
fn read(path: &str) -> ScriptedTurn {
    ScriptedTurn {
        content: vec![ScriptedBlock::ToolUse {
            id: None,
            name: "Read".into(),
            input: json!({"file_path": path}),
        }],
        when: Some(TurnMatcher {
            tools_include: Some("Read".into()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn answer(text: &str) -> ScriptedTurn {
    ScriptedTurn {
        when: Some(TurnMatcher {
            tools_include: Some("Read".into()),
            ..Default::default()
        }),
        ..ScriptedTurn::text(text)
    }
}

fn reply_to(mark: &str, text: &str) -> ScriptedTurn {
    ScriptedTurn {
        when: Some(TurnMatcher {
            system_contains: Some(mark.into()),
            ..Default::default()
        }),
        ..ScriptedTurn::text(text)
    }
}

/// A text file of about `tokens` tokens.
fn filler(tokens: usize, tag: &str) -> String {
    (0..tokens / 10)
        .map(|i| format!("{tag} line {i:04} lorem ipsum dolor sit amet\n"))
        .collect()
}

fn body_len(body: &Value) -> usize {
    body.to_string().len()
}

fn is_summary(body: &Value) -> bool {
    body["system"].to_string().contains(SUMMARY_MARK)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_session_is_micro_compacted_then_summarised_and_completes() {
    let h = Harness::new(vec![]).await;
    let mut turns = Vec::new();
    for i in 0..8 {
        h.ws.write(&format!("small{i}.txt"), &filler(1_200, "small"));
        turns.push(read(&format!("small{i}.txt")));
    }
    for i in 0..4 {
        h.ws.write(&format!("big{i}.txt"), &filler(5_000, "big"));
        turns.push(read(&format!("big{i}.txt")));
    }
    turns.push(answer("All files read."));
    turns.push(reply_to(
        SUMMARY_MARK,
        "## Goal\nRead every file.\n## Latest request\nread them all\n## Decisions\nnone\n\
         ## Files touched\nsmall*.txt, big*.txt\n## Open work\nfinish the big files\n## Tasks\nnone",
    ));
    for turn in turns {
        h.server.push_turn(turn);
    }
    h.server.set_estimate_usage(true);
    let out = h
        .run(&[
            "-p",
            "read them all",
            "--output-format",
            "json",
            "--settings",
            r#"{"contextWindow": 24000}"#,
            "--max-retries",
            "0",
            // Only the tool the script uses: the window's arithmetic must not move with the
            // size of every other tool's definition.
            "--tools",
            "Read",
        ])
        .await;
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    assert_eq!(stdout_json(&out)["result"], "All files read.");
    // (retries are off above: a request the script cannot answer must fail, not be retried)

    let requests = h.requests();
    // The agent's own requests (the summary and notes calls have no tools).
    let bodies: Vec<&Value> = requests
        .iter()
        .map(|r| &r.body)
        .filter(|b| !b["tools"].is_null() || is_summary(b))
        .collect();
    let micro = bodies
        .iter()
        .position(|b| {
            b.to_string()
                .contains("[keel: old tool output cleared to save context]")
        })
        .expect("old tool outputs were cleared");
    assert!(
        body_len(bodies[micro]) < body_len(bodies[micro - 1]),
        "the request after micro-compaction is smaller than the one before"
    );
    let summary = bodies
        .iter()
        .position(|b| is_summary(b))
        .expect("a summary was requested");
    assert!(summary > micro, "micro-compaction came first");
    assert!(
        bodies[summary]["tools"].is_null(),
        "the summary call offers no tools"
    );
    let next = &bodies[summary + 1];
    let text = next["messages"].to_string();
    assert!(
        text.contains("<summary>") && text.contains("Read every file."),
        "{text}"
    );
    assert!(
        body_len(next) < body_len(bodies[summary - 1]),
        "the compacted request ({}) is smaller than the last one before ({})",
        body_len(next),
        body_len(bodies[summary - 1])
    );
    assert!(
        stderr(&out).contains("cleared"),
        "the user is told: {}",
        stderr(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fresh_session_notes_make_compaction_instant() {
    let h = Harness::new(vec![]).await;
    // Small results, as in a real window, where one tool output is a small part of the window.
    for i in 0..20 {
        h.ws.write(&format!("f{i}.txt"), &filler(400, "f"));
        h.server.push_turn(read(&format!("f{i}.txt")));
    }
    h.server.push_turn(answer("Done."));
    // Every notes update gets the same notes; no summary turn is scripted at all.
    for _ in 0..40 {
        h.server.push_turn(reply_to(
            NOTES_MARK,
            "## Goal\nRead the f files.\n## Decisions\nnone\n## Files\nf0.txt..f5.txt\n## Open work\nkeep reading",
        ));
    }
    h.server.set_estimate_usage(true);
    let out = common::finish(h.keel().args([
        "-p",
        "read the f files",
        "--output-format",
        "json",
        "--settings",
        r#"{"contextWindow": 20000, "autoCompactThreshold": 0.5}"#,
        "--max-retries",
        "0",
    ]))
    .await;
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    let requests = h.requests();
    assert!(
        !requests.iter().any(|r| is_summary(&r.body)),
        "no summary call was needed"
    );
    assert!(
        requests
            .iter()
            .any(|r| r.body["system"].to_string().contains(NOTES_MARK))
    );
    let compacted = requests
        .iter()
        .find(|r| r.body["messages"].to_string().contains("<session_notes>"))
        .expect("a request continues from the notes");
    assert!(
        compacted.body["messages"]
            .to_string()
            .contains("Read the f files.")
    );
    // The notes file lives in the session's folder.
    let session = stdout_json(&out)["session_id"]
        .as_str()
        .unwrap()
        .to_string();
    let projects = h.ws.home.join(".keel/projects");
    let dir = std::fs::read_dir(&projects)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let notes = std::fs::read_to_string(dir.join(&session).join("notes.md")).unwrap();
    assert!(notes.contains("Read the f files."), "{notes}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prompt_too_long_compacts_and_retries() {
    let h = Harness::new(vec![]).await;
    h.ws.write("big.txt", &filler(1_500, "big"));
    h.server.push_turn(read("big.txt"));
    h.server.push_turn(ScriptedTurn {
        when: Some(TurnMatcher {
            tools_include: Some("Read".into()),
            ..Default::default()
        }),
        ..ScriptedTurn::http_error(
            400,
            "invalid_request_error",
            "prompt is too long: 210000 tokens > 200000 maximum",
        )
    });
    h.server.push_turn(answer("Recovered."));
    h.server.push_turn(reply_to(
        SUMMARY_MARK,
        "## Goal\nRead big.txt\n## Open work\nanswer",
    ));
    let out = h
        .run(&[
            "-p",
            "read big.txt",
            "--output-format",
            "json",
            "--settings",
            r#"{"contextWindow": 8000}"#,
            // Only the tool the script uses: a window this small holds little else.
            "--tools",
            "Read",
        ])
        .await;
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    let result = stdout_json(&out);
    assert_eq!(result["result"], "Recovered.");
    let requests = h.requests();
    assert!(
        is_summary(&requests[2].body),
        "the failure led to a summary call"
    );
    assert!(
        requests[3].body["messages"]
            .to_string()
            .contains("<summary>")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compact_op_through_continue_and_nested_memory_on_first_touch() {
    let h = Harness::new(vec![]).await;
    h.ws.write("pkg/AGENTS.md", "Always run `make check` in pkg.\n");
    h.ws.write("pkg/code.txt", "hello\n");
    h.server.push_turn(read("pkg/code.txt"));
    h.server.push_turn(read("pkg/code.txt"));
    h.server.push_turn(answer("read twice"));
    let out = h.run(&["-p", "read pkg/code.txt twice"]).await;
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    let results: Vec<String> = (1..=2)
        .map(|n| {
            h.tool_results_sent(n)[0]["content"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert!(
        results[0].contains("Always run `make check` in pkg."),
        "{}",
        results[0]
    );
    assert!(
        !results[1].contains("make check"),
        "only on the first touch: {}",
        results[1]
    );
    let system = h.requests()[0].body["system"].to_string();
    assert!(
        !system.contains("make check"),
        "nested memory stays out of the system prompt"
    );
}
