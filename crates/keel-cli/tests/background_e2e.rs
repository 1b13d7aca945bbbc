//! End-to-end: background commands (`Bash` with `run_in_background`, `TaskOutput`,
//! `TaskStop`, completion notices, cleanup when the session ends) through the real binary.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{Harness, finish, process_alive, stderr, wait_for};
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

/// Every file under `dir` whose name is `name`.
fn find_files(dir: &Path, name: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.file_name().is_some_and(|n| n == name) {
                found.push(path);
            }
        }
    }
    found
}

fn read_pid(path: &Path) -> Option<i32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// The text of the tool result answering `id` in any captured request.
fn result_text(h: &Harness, id: &str) -> String {
    for request in h.requests() {
        for message in request.body["messages"].as_array().unwrap() {
            for block in message["content"].as_array().into_iter().flatten() {
                if block["type"] == "tool_result" && block["tool_use_id"] == id {
                    return match &block["content"] {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                }
            }
        }
    }
    panic!("no result for {id}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dev_server_runs_in_the_background_is_read_stopped_and_gone_after_the_session() {
    let h = Harness::new(vec![
        turn(vec![
            call(
                "bg1",
                "Bash",
                json!({
                    "command": "echo $$ > server.pid; exec python3 -u -m http.server 0 --bind 127.0.0.1",
                    "description": "Start the dev server",
                    "run_in_background": true
                }),
            ),
            call(
                "bg2",
                "Bash",
                json!({
                    "command": "echo $$ > ticker.pid; while true; do echo tick; sleep 0.2; done",
                    "run_in_background": true
                }),
            ),
        ]),
        turn(vec![call(
            "out1",
            "TaskOutput",
            json!({"task_id": "bash_1", "block": true, "timeout": 4000}),
        )]),
        turn(vec![call("stop1", "TaskStop", json!({"task_id": "bash_1"}))]),
        ScriptedTurn::text("The server ran and is stopped."),
    ])
    .await;
    let child = h
        .keel()
        .args([
            "-p",
            "start the dev server",
            "--dangerously-skip-permissions",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();

    // While keel waits in TaskOutput, the server is up and answers HTTP.
    let home = h.ws.home.clone();
    let mut port = None;
    wait_for(
        "the dev server to announce its port",
        Duration::from_secs(20),
        || {
            let outputs = find_files(&home, "bash_1.output");
            let text = outputs
                .first()
                .and_then(|p| std::fs::read_to_string(p).ok())
                .unwrap_or_default();
            port = text
                .split("port ")
                .nth(1)
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|p| p.parse::<u16>().ok());
            port.is_some()
        },
    )
    .await;
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port.unwrap())).unwrap();
    stream
        .write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("HTTP/1.0 200"), "{reply}");

    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("keel finishes within 60 s")
        .unwrap();
    assert!(out.status.success(), "stderr: {}", stderr(&out));

    let started = result_text(&h, "bg1");
    assert!(
        started.starts_with(
            "Command running in background with ID: bash_1. Output is being written to: "
        ),
        "{started}"
    );
    assert!(result_text(&h, "bg2").contains("bash_2"));
    let read = result_text(&h, "out1");
    assert!(
        read.contains("<retrieval_status>timeout</retrieval_status>"),
        "{read}"
    );
    assert!(read.contains("<status>running</status>"), "{read}");
    assert!(read.contains("Serving HTTP on 127.0.0.1"), "{read}");
    assert!(
        read.contains("GET / HTTP/1.0\" 200"),
        "the request was logged: {read}"
    );
    let stopped = result_text(&h, "stop1");
    assert!(
        stopped.starts_with("Successfully stopped task: bash_1"),
        "{stopped}"
    );

    // Both processes are gone: one stopped by TaskStop, the other when the session ended.
    let server = read_pid(&h.path("server.pid")).unwrap();
    let ticker = read_pid(&h.path("ticker.pid")).unwrap();
    wait_for(
        "the background processes to be gone",
        Duration::from_secs(5),
        || !process_alive(server) && !process_alive(ticker),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_background_command_is_announced_at_the_next_turn() {
    let h = Harness::new(vec![
        turn(vec![call(
            "bg",
            "Bash",
            json!({
                "command": "sleep 0.3; echo all-done; exit 3",
                "description": "Run the slow check",
                "run_in_background": true
            }),
        )]),
        turn(vec![call(
            "out",
            "TaskOutput",
            json!({"task_id": "bash_1", "block": true, "timeout": 20000}),
        )]),
        turn(vec![call(
            "again",
            "TaskOutput",
            json!({"task_id": "bash_1", "block": false}),
        )]),
        ScriptedTurn::text("done"),
    ])
    .await;
    let out = h
        .run(&["-p", "check", "--dangerously-skip-permissions"])
        .await;
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    let read = result_text(&h, "out");
    assert!(
        read.contains("<retrieval_status>success</retrieval_status>"),
        "{read}"
    );
    assert!(read.contains("<status>failed</status>"), "{read}");
    assert!(read.contains("<exit_code>3</exit_code>"), "{read}");
    assert!(read.contains("all-done"), "{read}");
    // A second read has nothing new.
    let again = result_text(&h, "again");
    assert!(
        again.contains("no new output since the last read"),
        "{again}"
    );
    // The notice reached the model once, in the request after the command ended.
    let requests = h.requests();
    let notices: Vec<usize> = requests
        .iter()
        .enumerate()
        .filter(|(_, r)| {
            let last = r.body["messages"]
                .as_array()
                .unwrap()
                .last()
                .unwrap()
                .to_string();
            last.contains("<task-notification>")
        })
        .map(|(i, _)| i)
        .collect();
    assert_eq!(notices, [2], "the notice entered exactly one request");
    let notice = requests[2].body["messages"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .to_string();
    assert!(
        notice.contains("Background command \\\"Run the slow check\\\" failed (exit code 3)"),
        "{notice}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_tasks_can_be_kept_past_the_session_and_listed() {
    let h = Harness::new(vec![
        turn(vec![call(
            "bg",
            "Bash",
            json!({
                "command": "echo $$ > kept.pid; exec sleep 30",
                "run_in_background": true
            }),
        )]),
        ScriptedTurn::text("started"),
    ])
    .await;
    let out = finish(h.keel().env("KEEL_KEEP_BACKGROUND_TASKS", "1").args([
        "-p",
        "start it",
        "--dangerously-skip-permissions",
    ]))
    .await;
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    assert!(
        stderr(&out).contains("background tasks left running: bash_1 (pid"),
        "{}",
        stderr(&out)
    );
    let pid = read_pid(&h.path("kept.pid")).unwrap();
    assert!(process_alive(pid), "the kept task still runs");
    let list = h.run(&["tasks", "background"]).await;
    let text = String::from_utf8_lossy(&list.stdout).to_string();
    assert!(
        text.contains(&format!("bash_1 [running] pid {pid}")),
        "{text}"
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    wait_for("the kept task to end", Duration::from_secs(5), || {
        !process_alive(pid)
    })
    .await;
    let list = h.run(&["tasks", "background"]).await;
    let text = String::from_utf8_lossy(&list.stdout).to_string();
    assert!(text.contains("bash_1 [killed]"), "{text}");
}
