//! keel as the CLI under the Claude Agent SDK: the Python `claude-agent-sdk` from PyPI
//! (installed on first use by keel-test-support) drives the real `keel` binary through its
//! `cli_path` option against the mock model server. Each test runs one scenario of
//! `fixtures/sdk_driver.py`, which writes the SDK's typed messages (and what its callbacks
//! saw) to a report; the test checks the report and what the model was sent.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::Harness;
use keel_test_support::{ScriptedBlock, ScriptedTurn};
use serde_json::{Value, json};

fn driver() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sdk_driver.py")
}

/// Runs one driver scenario and returns its report; fails the test if the SDK raised.
async fn drive(h: &Harness, scenario: &str) -> Value {
    let python = keel_test_support::peers::ensure().join("venv/bin/python");
    let report = h.ws.root.path().join(format!("sdk-{scenario}.json"));
    let output = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::process::Command::new(python)
            .arg(driver())
            .arg(scenario)
            .arg(env!("CARGO_BIN_EXE_keel"))
            .arg(h.server.url())
            .arg(&h.ws.home)
            .arg(&report)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &h.ws.home)
            .current_dir(h.project())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the SDK driver finishes")
    .expect("python runs");
    let text = std::fs::read_to_string(&report).unwrap_or_else(|e| {
        panic!(
            "no report from the driver ({e}); status {}\nstdout:\n{}\nstderr:\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    });
    let report: Value = serde_json::from_str(&text).unwrap();
    assert!(
        report["error"].is_null(),
        "the SDK raised: {}\nkeel's stderr: {}\ndriver stderr: {}",
        report["error"],
        report["stderr"],
        String::from_utf8_lossy(&output.stderr)
    );
    report
}

fn classes(report: &Value) -> Vec<String> {
    report["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let class = m["class"].as_str().unwrap();
            match m["subtype"].as_str() {
                Some(subtype) if class == "SystemMessage" => format!("{class}:{subtype}"),
                _ => class.to_string(),
            }
        })
        .collect()
}

fn results(report: &Value) -> Vec<Value> {
    report["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["class"] == "ResultMessage")
        .cloned()
        .collect()
}

#[tokio::test]
async fn query_with_a_tool_call_returns_typed_messages_ending_in_a_result() {
    let h = Harness::new(vec![
        ScriptedTurn {
            content: vec![
                ScriptedBlock::Text {
                    text: "Reading it.".into(),
                },
                ScriptedBlock::ToolUse {
                    id: Some("toolu_read".into()),
                    name: "Read".into(),
                    input: json!({"file_path": "notes.txt"}),
                },
            ],
            ..ScriptedTurn::default()
        },
        ScriptedTurn::text("It says hello."),
    ])
    .await;
    std::fs::write(h.path("notes.txt"), "hello from the notes\n").unwrap();
    let report = drive(&h, "query").await;
    assert_eq!(
        classes(&report),
        [
            "SystemMessage:init",
            "AssistantMessage",
            "UserMessage",
            "AssistantMessage",
            "ResultMessage"
        ]
    );
    let messages = report["messages"].as_array().unwrap();
    assert_eq!(
        messages[0]["data"]["cwd"],
        h.project().display().to_string()
    );
    assert_eq!(messages[1]["content"][1]["name"], "Read");
    assert_eq!(messages[1]["model"], messages[0]["data"]["model"]);
    assert_eq!(messages[2]["content"][0]["tool_use_id"], "toolu_read");
    assert!(
        messages[2]["content"][0]["content"]
            .as_str()
            .unwrap()
            .contains("hello from the notes")
    );
    let result = &messages[4];
    assert_eq!(result["subtype"], "success");
    assert_eq!(result["is_error"], false);
    assert_eq!(result["num_turns"], 2);
    assert_eq!(result["result"], "It says hello.");
    assert_eq!(result["session_id"], messages[0]["data"]["session_id"]);
    // The model got the file's contents as the tool result.
    assert!(
        h.requests()[1]
            .body
            .to_string()
            .contains("hello from the notes")
    );
}

#[tokio::test]
async fn a_client_keeps_one_session_over_two_turns() {
    let h = Harness::new(vec![
        ScriptedTurn::text("Nice to meet you, Ada."),
        ScriptedTurn::text("Your name is Ada."),
    ])
    .await;
    let report = drive(&h, "client").await;
    assert_eq!(
        classes(&report),
        [
            "SystemMessage:init",
            "AssistantMessage",
            "ResultMessage",
            "SystemMessage:status",
            "AssistantMessage",
            "ResultMessage"
        ]
    );
    let results = results(&report);
    assert_eq!(results[0]["result"], "Nice to meet you, Ada.");
    assert_eq!(results[1]["result"], "Your name is Ada.");
    assert_eq!(results[0]["session_id"], results[1]["session_id"]);
    // set_permission_mode was answered and reported as a status line.
    let status = &report["messages"][3]["data"];
    assert_eq!(status["permissionMode"], "acceptEdits");
    // The second request carries the first exchange: one conversation, one process.
    let second = h.requests()[1].body["messages"].to_string();
    assert!(second.contains("My name is Ada.") && second.contains("Nice to meet you, Ada."));
    let info = &report["server_info"];
    assert_eq!(info["output_style"], "default");
    assert!(info["pid"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn a_can_use_tool_callback_denies_bash_and_the_model_sees_the_denial() {
    let h = Harness::new(vec![
        ScriptedTurn::tool_use("Bash", json!({"command": "touch made-by-bash.txt"})),
        ScriptedTurn::text("The shell was refused."),
    ])
    .await;
    let report = drive(&h, "deny").await;
    let asked = report["asked"].as_array().unwrap();
    assert_eq!(asked.len(), 1, "{report}");
    assert_eq!(asked[0]["tool_name"], "Bash");
    assert_eq!(asked[0]["input"]["command"], "touch made-by-bash.txt");
    assert!(
        asked[0]["tool_use_id"]
            .as_str()
            .unwrap()
            .starts_with("toolu_")
    );
    assert!(!h.path("made-by-bash.txt").exists());
    let sent = h.tool_results_sent(1);
    assert_eq!(sent[0]["is_error"], true);
    assert!(
        sent[0]["content"]
            .as_str()
            .unwrap()
            .contains("no shell today"),
        "{sent:?}"
    );
    let result = results(&report).pop().unwrap();
    assert_eq!(result["subtype"], "success");
    assert_eq!(result["permission_denials"][0]["tool_name"], "Bash");
}

#[tokio::test]
async fn a_pre_tool_use_hook_callback_sees_the_call_and_its_answer_counts() {
    let h = Harness::new(vec![
        ScriptedTurn {
            content: vec![ScriptedBlock::ToolUse {
                id: Some("toolu_private".into()),
                name: "Read".into(),
                input: json!({"file_path": "notes.txt"}),
            }],
            ..ScriptedTurn::default()
        },
        ScriptedTurn::text("That file is private."),
    ])
    .await;
    std::fs::write(h.path("notes.txt"), "secret\n").unwrap();
    let report = drive(&h, "hook").await;
    // Only the Read matcher's callback ran, with Claude Code's hook input.
    let calls = report["hook_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 1, "{calls:?}");
    let input = &calls[0]["input"];
    assert_eq!(input["hook_event_name"], "PreToolUse");
    assert_eq!(input["tool_name"], "Read");
    assert_eq!(input["tool_input"], json!({"file_path": "notes.txt"}));
    assert_eq!(input["tool_use_id"], "toolu_private");
    assert_eq!(calls[0]["tool_use_id"], "toolu_private");
    assert_eq!(input["cwd"], h.project().display().to_string());
    assert_eq!(input["permission_mode"], "default");
    let session_id = results(&report)[0]["session_id"].clone();
    assert_eq!(input["session_id"], session_id);
    assert!(
        input["transcript_path"]
            .as_str()
            .unwrap()
            .ends_with(".jsonl")
    );
    // Its deny kept the file from the model, with its reason.
    let sent = h.tool_results_sent(1);
    assert_eq!(sent[0]["is_error"], true);
    let text = sent[0]["content"].as_str().unwrap();
    assert!(
        text.contains("the SDK hook keeps notes.txt private"),
        "{text}"
    );
    assert!(!text.contains("secret"));
}

#[tokio::test]
async fn interrupt_stops_a_streaming_turn_and_the_session_takes_the_next_prompt() {
    let h = Harness::new(vec![
        ScriptedTurn {
            content: vec![ScriptedBlock::Text {
                text: "Once upon a time there was a very long story".into(),
            }],
            // message_start, ping, content_block_start, one delta; then nothing more.
            stall_after_events: Some(4),
            ..ScriptedTurn::default()
        },
        ScriptedTurn::text("Yes, still here."),
    ])
    .await;
    let report = drive(&h, "interrupt").await;
    assert_eq!(report["interrupt_returned"], true);
    let kinds = classes(&report);
    // Partial messages came as stream events before the interrupt.
    let first_result = kinds.iter().position(|k| k == "ResultMessage").unwrap();
    assert!(kinds[..first_result].iter().any(|k| k == "StreamEvent"));
    let results = results(&report);
    assert_eq!(results.len(), 2);
    assert_eq!(results[0]["subtype"], "error_during_execution");
    assert_eq!(results[0]["is_error"], true);
    assert_eq!(results[1]["subtype"], "success");
    assert_eq!(results[1]["result"], "Yes, still here.");
    // The interrupted text stayed in the conversation the model is sent next.
    let second = h.requests()[1].body["messages"].to_string();
    assert!(second.contains("Once upon a") && second.contains("Are you still there?"));
}

#[tokio::test]
async fn tools_of_an_in_process_sdk_mcp_server_are_offered_and_called() {
    let h = Harness::new(vec![
        ScriptedTurn::tool_use("mcp__probe__greet", json!({"name": "keel"})),
        ScriptedTurn::text("Greeted."),
    ])
    .await;
    let report = drive(&h, "mcp").await;
    assert_eq!(report["tool_calls"], json!([{"name": "keel"}]));
    let init = &report["messages"][0]["data"];
    assert_eq!(
        init["mcp_servers"],
        json!([{"name": "probe", "status": "connected"}])
    );
    let offered: Vec<String> = h.requests()[0].body["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect();
    assert!(offered.contains(&"mcp__probe__greet".to_string()));
    let sent = h.tool_results_sent(1);
    assert_eq!(sent[0]["content"], "Hello, keel!");
    assert_eq!(results(&report)[0]["subtype"], "success");
}
