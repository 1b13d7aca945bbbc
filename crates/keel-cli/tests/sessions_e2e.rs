//! End-to-end: sessions are recorded as they happen and can be continued, resumed and forked,
//! even after `kill -9` in the middle of a turn.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{Harness, stderr, stdout_json, wait_for};
use keel_test_support::{ScriptedBlock, ScriptedTurn};
use serde_json::{Value, json};

fn call(id: &str, name: &str, input: Value) -> ScriptedTurn {
    ScriptedTurn {
        content: vec![ScriptedBlock::ToolUse {
            id: Some(id.into()),
            name: name.into(),
            input,
        }],
        ..Default::default()
    }
}

/// The user messages' texts of a request, in order.
fn user_texts(body: &Value) -> Vec<String> {
    body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "user")
        .flat_map(|m| m["content"].as_array().unwrap().clone())
        .filter_map(|b| b["text"].as_str().map(str::to_string))
        .collect()
}

/// Checks the API's rule that every tool_use is answered by a tool_result in the next message.
fn assert_well_formed(body: &Value) {
    let messages = body["messages"].as_array().unwrap();
    for (i, message) in messages.iter().enumerate() {
        let uses: Vec<&str> = message["content"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|b| b["type"] == "tool_use")
            .map(|b| b["id"].as_str().unwrap())
            .collect();
        if uses.is_empty() {
            continue;
        }
        let next = messages
            .get(i + 1)
            .unwrap_or_else(|| panic!("tool_use at the end: {body}"));
        for id in uses {
            assert!(
                next["content"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|b| b["type"] == "tool_result" && b["tool_use_id"] == id),
                "tool_use {id} has no result in {next}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn continue_picks_up_the_last_conversation() {
    let h = Harness::new(vec![
        ScriptedTurn::text("The capital is Paris."),
        ScriptedTurn::text("About two million people."),
    ])
    .await;
    let first = h
        .run(&["-p", "capital of France?", "--output-format", "json"])
        .await;
    assert!(first.status.success(), "stderr: {}", stderr(&first));
    let session_id = stdout_json(&first)["session_id"]
        .as_str()
        .unwrap()
        .to_string();
    let second = h
        .run(&[
            "-c",
            "-p",
            "how many live there?",
            "--output-format",
            "json",
        ])
        .await;
    assert!(second.status.success(), "stderr: {}", stderr(&second));
    assert_eq!(stdout_json(&second)["session_id"], session_id.as_str());
    let body = &h.requests()[1].body;
    assert_eq!(
        user_texts(body),
        ["capital of France?", "how many live there?"]
    );
    assert_eq!(
        body["messages"][1]["content"][0]["text"],
        "The capital is Paris."
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_by_id_and_fork() {
    let h = Harness::new(vec![
        ScriptedTurn::text("one"),
        ScriptedTurn::text("two"),
        ScriptedTurn::text("three"),
        ScriptedTurn::text("four"),
    ])
    .await;
    let out = h
        .run(&["-p", "first session", "--output-format", "json"])
        .await;
    let first_id = stdout_json(&out)["session_id"]
        .as_str()
        .unwrap()
        .to_string();
    h.run(&["-p", "second session"]).await;

    let out = h
        .run(&[
            "--resume",
            &first_id,
            "-p",
            "back to the first",
            "--output-format",
            "json",
        ])
        .await;
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    assert_eq!(
        user_texts(&h.requests()[2].body),
        ["first session", "back to the first"]
    );

    let out = h
        .run(&[
            "--resume",
            &first_id,
            "--fork-session",
            "-p",
            "a fork",
            "--output-format",
            "json",
        ])
        .await;
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    let fork_id = stdout_json(&out)["session_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(fork_id, first_id);
    assert_eq!(
        user_texts(&h.requests()[3].body),
        ["first session", "back to the first", "a fork"]
    );

    // The fork stands on its own: resuming it later replays its inherited history.
    h.server.push_turn(ScriptedTurn::text("five"));
    let out = h.run(&["--resume", &fork_id, "-p", "fork again"]).await;
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    assert_eq!(
        user_texts(&h.requests()[4].body),
        ["first session", "back to the first", "a fork", "fork again"]
    );

    let out = h.run(&["sessions"]).await;
    let listing = String::from_utf8_lossy(&out.stdout);
    assert_eq!(listing.matches("first session").count(), 2, "{listing}");
    assert!(
        listing.contains("second session") && listing.contains(&first_id),
        "{listing}"
    );

    let out = h.run(&["--resume", "-p", "x"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains(&first_id), "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_stream_then_continue_sends_the_earlier_conversation() {
    let h = Harness::new(vec![]).await;
    h.ws.write("a.txt", "alpha\n");
    let path = h.path("a.txt");
    h.server.push_turn(call(
        "r",
        "Read",
        json!({"file_path": path.to_str().unwrap()}),
    ));
    // The second answer stalls half way: keel is streaming when it is killed.
    h.server.push_turn(ScriptedTurn {
        content: vec![ScriptedBlock::Text {
            text: "The file says alpha, and".into(),
        }],
        stall_after_events: Some(4),
        ..Default::default()
    });
    let mut child = h
        .keel()
        .args(["-p", "read a.txt"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    h.server
        .wait_for_requests(2, Duration::from_secs(30))
        .await
        .expect("keel reaches the second model request");
    child.start_kill().unwrap();
    child.wait().await.unwrap();

    h.server.push_turn(ScriptedTurn::text("Continuing."));
    let out = h
        .run(&["-c", "-p", "go on", "--output-format", "json"])
        .await;
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    let body = &h.requests()[2].body;
    assert_well_formed(body);
    assert_eq!(user_texts(body), ["read a.txt", "go on"]);
    let messages = body["messages"].as_array().unwrap();
    assert_eq!(messages[1]["content"][0]["name"], "Read");
    assert!(
        messages[2]["content"][0]["content"]
            .as_str()
            .unwrap()
            .contains("alpha")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_bash_then_continue_marks_the_call_interrupted() {
    let h = Harness::new(vec![call(
        "long",
        "Bash",
        json!({"command": "echo $$ > shell.pid; sleep 60"}),
    )])
    .await;
    let mut child = h
        .keel()
        .args(["-p", "run it", "--dangerously-skip-permissions"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid_file = h.path("shell.pid");
    wait_for("the Bash command to start", Duration::from_secs(30), || {
        std::fs::read_to_string(&pid_file).is_ok_and(|s| s.ends_with('\n'))
    })
    .await;
    child.start_kill().unwrap();
    child.wait().await.unwrap();
    // keel died without cleaning up; don't leave the command running after the test.
    let shell: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let _ = nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(shell),
        nix::sys::signal::Signal::SIGKILL,
    );

    h.server
        .push_turn(ScriptedTurn::text("It was interrupted; rerunning later."));
    let out = h.run(&["-c", "-p", "what happened?"]).await;
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    let body = &h.requests()[1].body;
    assert_well_formed(body);
    let result = &body["messages"][2]["content"][0];
    assert_eq!(result["tool_use_id"], "long");
    assert_eq!(result["is_error"], true);
    assert!(
        result["content"].as_str().unwrap().contains("interrupted"),
        "{result}"
    );
    assert_eq!(body["messages"][3]["content"][0]["text"], "what happened?");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_transcript_line_is_a_warning_not_an_error() {
    let h = Harness::new(vec![
        ScriptedTurn::text("first"),
        ScriptedTurn::text("second"),
    ])
    .await;
    let out = h.run(&["-p", "hello", "--output-format", "json"]).await;
    let id = stdout_json(&out)["session_id"]
        .as_str()
        .unwrap()
        .to_string();
    let dir = std::fs::read_dir(h.ws.home.join(".keel/projects"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let transcript = dir.join(format!("{id}.jsonl"));
    let mut text = std::fs::read_to_string(&transcript).unwrap();
    text.push_str("{\"ts\":\"2026-01-01T00:00:00Z\",\"event\":{\"type\":\"assis");
    std::fs::write(&transcript, text).unwrap();
    let out = h.run(&["-c", "-p", "again"]).await;
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    assert!(
        stderr(&out).contains("skipped an unreadable transcript line"),
        "{}",
        stderr(&out)
    );
    assert_eq!(user_texts(&h.requests()[1].body), ["hello", "again"]);
}
