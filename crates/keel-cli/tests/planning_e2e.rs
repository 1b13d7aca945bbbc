//! End-to-end: the planning tools (TaskCreate, TaskGet, TaskUpdate, TaskList, TodoWrite), the
//! plan as transcript events, the reminder, and resume.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};

use common::{Harness, stderr, stdout_json};
use keel_test_support::{ScriptedBlock, ScriptedTurn};
use serde_json::{Value, json};

fn call(id: &str, name: &str, input: Value) -> ScriptedBlock {
    ScriptedBlock::ToolUse {
        id: Some(id.to_string()),
        name: name.to_string(),
        input,
    }
}

fn turn(content: Vec<ScriptedBlock>) -> ScriptedTurn {
    ScriptedTurn {
        content,
        ..Default::default()
    }
}

fn result_text(h: &Harness, id: &str) -> String {
    for request in h.requests() {
        for message in request.body["messages"].as_array().unwrap() {
            for block in message["content"].as_array().into_iter().flatten() {
                if block["type"] == "tool_result" && block["tool_use_id"] == id {
                    return block["content"].as_str().unwrap_or_default().to_string();
                }
            }
        }
    }
    panic!("no result for {id}")
}

fn transcript(home: &Path, session: &str) -> Vec<Value> {
    let root = home.join(".keel/projects");
    for dir in std::fs::read_dir(root).unwrap().flatten() {
        let path = dir.path().join(format!("{session}.jsonl"));
        if path.is_file() {
            return std::fs::read_to_string(path)
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
        }
    }
    panic!("no transcript for {session}")
}

fn plans(records: &[Value]) -> Vec<Value> {
    records
        .iter()
        .filter(|r| r["event"]["type"] == "plan_updated")
        .map(|r| r["event"]["items"].clone())
        .collect()
}

fn session_dir(home: &Path, session: &str) -> PathBuf {
    let root = home.join(".keel/projects");
    for dir in std::fs::read_dir(root).unwrap().flatten() {
        let path = dir.path().join(session);
        if path.is_dir() {
            return path;
        }
    }
    panic!("no session folder for {session}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_task_list_lives_beside_the_transcript_and_comes_back_on_resume() {
    let h = Harness::new(vec![
        turn(vec![
            call("c1", "TaskCreate", json!({"subject": "Write the parser", "description": "Parse the config", "activeForm": "Writing the parser"})),
            call("c2", "TaskCreate", json!({"subject": "Test the parser", "description": "Unit tests"})),
            call("c3", "TaskCreate", json!({"subject": "Document it", "description": "README"})),
        ]),
        turn(vec![
            call("u1", "TaskUpdate", json!({"taskId": "2", "addBlockedBy": ["1"]})),
            call("u2", "TaskUpdate", json!({"taskId": "1", "status": "in_progress"})),
            call("u3", "TaskUpdate", json!({"taskId": "3", "addBlockedBy": ["3"]})),
        ]),
        turn(vec![
            call("l1", "TaskList", json!({})),
            call("g1", "TaskGet", json!({"taskId": "2"})),
        ]),
        ScriptedTurn::text("planned"),
        // The resumed session.
        turn(vec![call("l2", "TaskList", json!({}))]),
        ScriptedTurn::text("still planned"),
    ])
    .await;
    let out = h
        .run(&["-p", "plan the parser work", "--output-format", "json"])
        .await;
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    let session = stdout_json(&out)["session_id"]
        .as_str()
        .unwrap()
        .to_string();

    assert_eq!(
        result_text(&h, "c1"),
        "Task #1 created successfully: Write the parser"
    );
    assert_eq!(
        result_text(&h, "c3"),
        "Task #3 created successfully: Document it"
    );
    assert_eq!(result_text(&h, "u1"), "Updated task #2 blockedBy");
    assert_eq!(result_text(&h, "u2"), "Updated task #1 status");
    assert!(result_text(&h, "u3").contains("cannot wait for itself"));
    assert_eq!(
        result_text(&h, "l1"),
        "#1 [in_progress] Write the parser\n#2 [pending] Test the parser [blocked by #1]\n#3 [pending] Document it"
    );
    let get = result_text(&h, "g1");
    assert!(
        get.starts_with("Task #2: Test the parser\nStatus: pending"),
        "{get}"
    );
    assert!(get.contains("Blocked by: #1"), "{get}");

    // One JSON file per task, in the session's folder.
    let dir = session_dir(&h.ws.home, &session).join("tasks");
    let task: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("1.json")).unwrap()).unwrap();
    assert_eq!(task["status"], "in_progress");
    assert_eq!(task["activeForm"], "Writing the parser");
    assert_eq!(task["blocks"], json!(["2"]));

    // Every change is a plan event in the transcript; the last one is the whole list.
    let records = transcript(&h.ws.home, &session);
    let all_plans = plans(&records);
    assert_eq!(all_plans.len(), 5, "3 creations and 2 successful updates");
    let last = all_plans.last().unwrap();
    assert_eq!(last[0]["status"], "in_progress");
    assert_eq!(last[0]["activeForm"], "Writing the parser");
    assert_eq!(last[1]["blockedBy"], json!(["1"]));

    // Resuming shows the list at once and the tools still see it.
    let out = h
        .run(&[
            "--resume",
            &session,
            "-p",
            "what is left?",
            "--output-format",
            "json",
        ])
        .await;
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    assert!(result_text(&h, "l2").starts_with("#1 [in_progress] Write the parser"));
    let records = transcript(&h.ws.home, &session);
    let restarted = records
        .iter()
        .rposition(|r| r["event"]["type"] == "session_started")
        .unwrap();
    assert_eq!(records[restarted + 1]["event"]["type"], "plan_updated");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_task_list_untouched_for_five_turns_earns_one_reminder() {
    let mut turns = vec![
        turn(vec![call(
            "c1",
            "TaskCreate",
            json!({"subject": "Fix the bug", "description": "It crashes"}),
        )]),
        turn(vec![call(
            "u1",
            "TaskUpdate",
            json!({"taskId": "1", "status": "in_progress"}),
        )]),
    ];
    for i in 0..6 {
        turns.push(turn(vec![call(
            &format!("b{i}"),
            "Bash",
            json!({"command": "true"}),
        )]));
    }
    turns.push(ScriptedTurn::text("done"));
    let h = Harness::new(turns).await;
    let out = h
        .run(&["-p", "fix it", "--dangerously-skip-permissions"])
        .await;
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    let reminded: Vec<usize> = h
        .requests()
        .iter()
        .enumerate()
        .filter(|(_, r)| {
            r.body["messages"]
                .as_array()
                .unwrap()
                .last()
                .unwrap()
                .to_string()
                .contains("<system-reminder>")
        })
        .map(|(i, _)| i)
        .collect();
    // Requests 3 to 7 follow Bash calls; the reminder comes with the 8th.
    assert_eq!(reminded, [7]);
    let text = h.requests()[7].body["messages"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .to_string();
    assert!(text.contains("#1 [in_progress] Fix the bug"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_todo_tool_setting_offers_todo_write_instead() {
    let h = Harness::new(vec![
        turn(vec![call(
            "t1",
            "TodoWrite",
            json!({"todos": [
                {"content": "Read the code", "status": "completed", "activeForm": "Reading the code"},
                {"content": "Fix the bug", "status": "in_progress", "activeForm": "Fixing the bug"}
            ]}),
        )]),
        ScriptedTurn::text("ok"),
    ])
    .await;
    h.ws.write(".keel/settings.json", r#"{"todoTool": "TodoWrite"}"#);
    let out = h.run(&["-p", "fix", "--output-format", "json"]).await;
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    let tools: Vec<String> = h.requests()[0].body["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect();
    assert!(tools.contains(&"TodoWrite".to_string()), "{tools:?}");
    assert!(!tools.contains(&"TaskCreate".to_string()), "{tools:?}");
    let session = stdout_json(&out)["session_id"]
        .as_str()
        .unwrap()
        .to_string();
    let records = transcript(&h.ws.home, &session);
    let plan = plans(&records).pop().unwrap();
    assert_eq!(plan[0]["subject"], "Read the code");
    assert_eq!(plan[0]["status"], "completed");
    assert_eq!(plan[1]["activeForm"], "Fixing the bug");
}
