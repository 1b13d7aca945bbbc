//! End-to-end: hooks in Claude Code's settings format and the OS sandbox, through the real
//! binary.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{Harness, stderr, stdout_json};
use keel_test_support::{ScriptedBlock, ScriptedTurn};
use serde_json::{Value, json};

fn bash(id: &str, command: &str) -> ScriptedTurn {
    ScriptedTurn {
        content: vec![ScriptedBlock::ToolUse {
            id: Some(id.into()),
            name: "Bash".into(),
            input: json!({"command": command}),
        }],
        ..Default::default()
    }
}

/// Settings whose hooks run `command` for each `(event, matcher)`.
fn hook_settings(entries: &[(&str, &str, &str, Option<u64>)]) -> String {
    let mut hooks = serde_json::Map::new();
    for (event, matcher, command, timeout) in entries {
        let mut hook = json!({"type": "command", "command": command});
        if let Some(t) = timeout {
            hook["timeout"] = json!(t);
        }
        hooks
            .entry(event.to_string())
            .or_insert_with(|| json!([]))
            .as_array_mut()
            .unwrap()
            .push(json!({"matcher": matcher, "hooks": [hook]}));
    }
    json!({"hooks": hooks}).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_event_fires_when_expected_with_claude_codes_json() {
    let h = Harness::new(vec![bash("b1", "echo hi"), ScriptedTurn::text("done")]).await;
    let log = h.ws.root.path().join("hooks.log");
    // Each hook appends its stdin (one JSON object) as a line.
    let record = format!("(cat; echo) >> {}", log.display());
    let events = [
        "SessionStart",
        "UserPromptSubmit",
        "PreToolUse",
        "PostToolUse",
        "Stop",
        "SessionEnd",
    ];
    let entries: Vec<(&str, &str, &str, Option<u64>)> = events
        .iter()
        .map(|e| (*e, "", record.as_str(), None))
        .collect();
    h.ws.write(".keel/settings.json", &hook_settings(&entries));
    let out = h
        .run(&[
            "-p",
            "say hi",
            "--output-format",
            "json",
            "--dangerously-skip-permissions",
        ])
        .await;
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    let session_id = stdout_json(&out)["session_id"]
        .as_str()
        .unwrap()
        .to_string();
    let lines: Vec<Value> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let fired: Vec<&str> = lines
        .iter()
        .map(|l| l["hook_event_name"].as_str().unwrap())
        .collect();
    assert_eq!(fired, events, "each event exactly once, in order");
    for line in &lines {
        assert_eq!(line["session_id"], session_id.as_str());
        assert_eq!(line["cwd"], h.project().to_str().unwrap());
        assert_eq!(line["permission_mode"], "bypassPermissions");
        let transcript = line["transcript_path"].as_str().unwrap();
        assert!(
            transcript.ends_with(&format!("{session_id}.jsonl")),
            "{transcript}"
        );
    }
    assert_eq!(lines[0]["source"], "startup");
    assert_eq!(lines[1]["prompt"], "say hi");
    assert_eq!(lines[2]["tool_name"], "Bash");
    assert_eq!(lines[2]["tool_input"]["command"], "echo hi");
    assert_eq!(lines[2]["tool_use_id"], "b1");
    assert_eq!(lines[3]["tool_response"]["stdout"], "hi\n");
    assert_eq!(lines[4]["stop_hook_active"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denying_pre_tool_use_hook_stops_the_tool_and_the_model_sees_why() {
    let h = Harness::new(vec![bash("b1", "touch made.txt"), ScriptedTurn::text("ok")]).await;
    let deny = r#"echo '{"hookSpecificOutput":{"hookEventName":"PreToolUse","permissionDecision":"deny","permissionDecisionReason":"no touching today"}}'"#;
    h.ws.write(
        ".keel/settings.json",
        &hook_settings(&[("PreToolUse", "Bash", deny, None)]),
    );
    let out = h
        .run(&[
            "-p",
            "go",
            "--output-format",
            "json",
            "--dangerously-skip-permissions",
        ])
        .await;
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    assert!(!h.path("made.txt").exists());
    let sent = &h.tool_results_sent(1)[0];
    assert_eq!(sent["is_error"], true);
    assert!(
        sent["content"]
            .as_str()
            .unwrap()
            .contains("no touching today"),
        "{sent}"
    );
    assert_eq!(
        stdout_json(&out)["permission_denials"][0]["tool_name"],
        "Bash"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_code_2_blocks_with_stderr_as_the_reason() {
    let h = Harness::new(vec![bash("b1", "touch made.txt"), ScriptedTurn::text("ok")]).await;
    let block = "echo 'commands must go through make' >&2; exit 2";
    h.ws.write(
        ".keel/settings.json",
        &hook_settings(&[("PreToolUse", "Bash", block, None)]),
    );
    let out = h.run(&["-p", "go", "--dangerously-skip-permissions"]).await;
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    assert!(!h.path("made.txt").exists());
    let sent = &h.tool_results_sent(1)[0];
    assert!(
        sent["content"]
            .as_str()
            .unwrap()
            .contains("commands must go through make")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updated_input_changes_the_command_that_runs() {
    let h = Harness::new(vec![
        bash("b1", "echo original > out.txt"),
        ScriptedTurn::text("ok"),
    ])
    .await;
    let rewrite = r#"echo '{"hookSpecificOutput":{"hookEventName":"PreToolUse","permissionDecision":"allow","updatedInput":{"command":"echo rewritten > out.txt"}}}'"#;
    h.ws.write(
        ".keel/settings.json",
        &hook_settings(&[("PreToolUse", "Bash", rewrite, None)]),
    );
    // The hook's allow is enough: no permission flag needed.
    let out = h.run(&["-p", "go"]).await;
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    assert_eq!(h.ws.read("out.txt"), "rewritten\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hook_past_its_timeout_is_killed_and_the_turn_goes_on() {
    let h = Harness::new(vec![
        bash("b1", "echo ran > ran.txt"),
        ScriptedTurn::text("ok"),
    ])
    .await;
    let pid_file = h.ws.root.path().join("hook.pid");
    let slow = format!("echo $$ > {}; sleep 60", pid_file.display());
    h.ws.write(
        ".keel/settings.json",
        &hook_settings(&[("PreToolUse", "Bash", slow.as_str(), Some(1))]),
    );
    let started = Instant::now();
    let out = h.run(&["-p", "go", "--dangerously-skip-permissions"]).await;
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(h.ws.read("ran.txt"), "ran\n", "the tool still ran");
    assert!(stderr(&out).contains("timed out"), "{}", stderr(&out));
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    common::wait_for("the hook to be gone", Duration::from_secs(5), || {
        !common::process_alive(pid)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hooks_list_shows_what_is_configured() {
    let h = Harness::new(vec![]).await;
    h.ws.write(
        ".keel/settings.json",
        &hook_settings(&[("PreToolUse", "Edit|Write", "./check.sh", Some(5))]),
    );
    let out = h.run(&["hooks", "list"]).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("PreToolUse") && text.contains("Edit|Write") && text.contains("./check.sh"),
        "{text}"
    );
    assert!(
        text.contains("timeout 5s") && text.contains(".keel/settings.json"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sandbox_stops_writes_outside_the_project() {
    let h = Harness::new(vec![]).await;
    // The sandbox keeps temp directories writable; the target must lie outside all of them.
    let outside_dir = keel_test_support::workspace::outside_temp_dir("sandbox-outside").unwrap();
    let outside = outside_dir.path().join("outside");
    h.server.push_turn(bash(
        "b1",
        &format!("echo x > {}; echo inside > inside.txt", outside.display()),
    ));
    h.server.push_turn(ScriptedTurn::text("done"));
    h.ws.write(".keel/settings.json", r#"{"sandbox": {"enabled": true}}"#);
    let out = h.run(&["-p", "go", "--dangerously-skip-permissions"]).await;
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    assert!(
        !outside.exists(),
        "the write outside the project was blocked"
    );
    assert_eq!(h.ws.read("inside.txt"), "inside\n");
    let sent = h.tool_results_sent(1)[0]["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(sent.contains("sandbox"), "the model is told why: {sent}");

    let out = h.run(&["sandbox", "status"]).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("this directory: sandbox on"), "{text}");
    assert!(text.to_lowercase().contains("landlock"), "{text}");
}
