//! `--permission-prompt-tool mcp__<server>__<tool>`: print mode asks an MCP tool (a server written
//! with the Python MCP SDK) instead of refusing calls that need approval, with Claude Code's
//! contract for the question and the answer.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use common::{Harness, stderr, stdout_json};
use keel_test_support::{ScriptedBlock, ScriptedTurn};
use serde_json::{Value, json};

/// `--mcp-config` JSON for the approver fixture, logging its questions to `log`.
fn approver_config(log: &Path) -> String {
    let python = keel_test_support::peers::ensure().join("venv/bin/python");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/approver.py");
    json!({"mcpServers": {"approver": {
        "command": python,
        "args": [script],
        "env": {"APPROVER_LOG": log},
    }}})
    .to_string()
}

#[tokio::test]
async fn an_mcp_tool_answers_permission_questions_in_print_mode() {
    let h = Harness::new(vec![
        ScriptedTurn {
            content: vec![
                ScriptedBlock::ToolUse {
                    id: Some("toolu_touch".into()),
                    name: "Bash".into(),
                    input: json!({"command": "touch approved.txt"}),
                },
                ScriptedBlock::ToolUse {
                    id: Some("toolu_rm".into()),
                    name: "Bash".into(),
                    input: json!({"command": "rm keep.txt"}),
                },
            ],
            ..ScriptedTurn::default()
        },
        ScriptedTurn::text("One ran, one was refused."),
    ])
    .await;
    std::fs::write(h.path("keep.txt"), "keep me\n").unwrap();
    let log = h.ws.root.path().join("approver.log");
    let config = approver_config(&log);
    let output = h
        .run(&[
            "-p",
            "tidy up",
            "--output-format",
            "json",
            "--mcp-config",
            &config,
            "--permission-prompt-tool",
            "mcp__approver__approve",
        ])
        .await;
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(h.path("approved.txt").exists());
    assert_eq!(
        std::fs::read_to_string(h.path("keep.txt")).unwrap(),
        "keep me\n"
    );
    let result = stdout_json(&output);
    assert_eq!(
        result["permission_denials"],
        json!([{"tool_name": "Bash", "tool_use_id": "toolu_rm", "tool_input": {"command": "rm keep.txt"}}])
    );
    let sent = h.tool_results_sent(1);
    assert_ne!(sent[0]["is_error"], true);
    assert_eq!(sent[1]["is_error"], true);
    assert!(
        sent[1]["content"]
            .as_str()
            .unwrap()
            .contains("the approver does not let files be deleted")
    );
    // The tool was asked with Claude Code's input shape, once per call.
    let asked: Vec<Value> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        asked,
        [
            json!({"tool_name": "Bash", "input": {"command": "touch approved.txt"}, "tool_use_id": "toolu_touch"}),
            json!({"tool_name": "Bash", "input": {"command": "rm keep.txt"}, "tool_use_id": "toolu_rm"}),
        ]
    );
}

#[tokio::test]
async fn a_prompt_tool_that_does_not_exist_stops_keel_at_start() {
    let h = Harness::new(vec![ScriptedTurn::text("never")]).await;
    let log = h.ws.root.path().join("approver.log");
    let config = approver_config(&log);
    let output = h
        .run(&[
            "-p",
            "hi",
            "--mcp-config",
            &config,
            "--permission-prompt-tool",
            "mcp__approver__aprove",
        ])
        .await;
    assert_eq!(output.status.code(), Some(1));
    let stderr = stderr(&output);
    assert!(
        stderr.contains("--permission-prompt-tool mcp__approver__aprove")
            && stderr.contains("mcp__approver__approve"),
        "{stderr}"
    );
    assert!(h.requests().is_empty());
}
