//! Bash with real processes: output, exit codes, the persistent working directory, timeouts,
//! interruption and stray background jobs.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use std::time::Duration;

use common::{Workspace, process_alive, wait_for};
use keel_tools::ToolContext;
use serde_json::json;
use tokio_util::sync::CancellationToken;

fn read_pids(path: &std::path::Path) -> Vec<i32> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| l.trim().parse().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdout_then_stderr_and_the_structured_streams() {
    let ws = Workspace::new();
    let result = ws
        .ok(
            "Bash",
            json!({"command": "echo out; echo err >&2", "description": "print twice"}),
        )
        .await;
    assert_eq!(result.content, "out\nerr");
    let structured = result.structured.unwrap();
    assert_eq!(structured["stdout"], "out\n");
    assert_eq!(structured["stderr"], "err\n");
    assert_eq!(structured["interrupted"], false);
    assert_eq!(structured["isImage"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_zero_exit_is_an_error_that_starts_with_the_code() {
    let ws = Workspace::new();
    let result = ws
        .call(
            "Bash",
            json!({"command": "echo oops; echo bad >&2; exit 3"}),
        )
        .await;
    assert!(result.is_error);
    assert_eq!(result.content, "Exit code 3\noops\nbad");
    assert_eq!(result.structured.unwrap()["stdout"], "oops\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_command_says_so() {
    let ws = Workspace::new();
    let result = ws.ok("Bash", json!({"command": "true"})).await;
    assert_eq!(result.content, "(Command completed with no output)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_working_directory_persists_between_calls() {
    let ws = Workspace::new();
    ws.ok("Bash", json!({"command": "mkdir -p sub/dir && cd sub/dir"}))
        .await;
    let result = ws.ok("Bash", json!({"command": "pwd"})).await;
    assert_eq!(result.content, ws.path("sub/dir").to_str().unwrap());
    assert_eq!(ws.ctx.current_dir(), ws.path("sub/dir"));
    // Relative paths of the file tools follow it.
    std::fs::write(ws.path("sub/dir/here.txt"), "found me\n").unwrap();
    let read = ws.ok("Read", json!({"file_path": "here.txt"})).await;
    assert_eq!(read.content, "     1\tfound me");
    // A failing command still moves the directory, and its status is kept.
    let result = ws.call("Bash", json!({"command": "cd ..; false"})).await;
    assert!(
        result.is_error && result.content.starts_with("Exit code 1"),
        "{}",
        result.content
    );
    assert_eq!(ws.ctx.current_dir(), ws.path("sub"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_kills_children_and_grandchildren() {
    let ws = Workspace::new();
    let started = std::time::Instant::now();
    let result = ws
        .call(
            "Bash",
            json!({
                "command": "echo begun; sleep 60 & echo $! > pids; (sleep 60 & echo $! >> pids; wait) & echo $! >> pids; wait",
                "timeout": 500
            }),
        )
        .await;
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(result.is_error);
    assert!(
        result.content.starts_with("Command timed out after 500ms"),
        "{}",
        result.content
    );
    assert!(result.content.contains("begun"), "{}", result.content);
    assert_eq!(result.structured.unwrap()["interrupted"], true);
    let pids = read_pids(&ws.path("pids"));
    assert_eq!(pids.len(), 3);
    wait_for(
        "the timed-out processes to die",
        Duration::from_secs(5),
        || pids.iter().all(|pid| !process_alive(*pid)),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_returns_the_partial_output_and_kills_the_command() {
    let ws = Workspace::new();
    let cancel = CancellationToken::new();
    let ctx: ToolContext = ws.ctx.with_cancel(cancel.clone());
    let tools = keel_tools::ToolRegistry::builtin();
    let pid_file = ws.path("sleep.pid");
    let call = tokio::spawn(async move {
        tools
            .call(
                "Bash",
                json!({"command": "echo partial-output; sleep 60 & echo $! > sleep.pid; wait"}),
                &ctx,
            )
            .await
    });
    wait_for("the command to start", Duration::from_secs(10), || {
        std::fs::read_to_string(&pid_file).is_ok_and(|s| s.ends_with('\n'))
    })
    .await;
    let sleep_pid = read_pids(&pid_file)[0];
    cancel.cancel();
    let result = tokio::time::timeout(Duration::from_secs(10), call)
        .await
        .expect("the call returns promptly after cancellation")
        .unwrap();
    assert!(result.is_error);
    assert!(
        result.content.contains("partial-output"),
        "{}",
        result.content
    );
    assert!(result.content.contains("interrupted"), "{}", result.content);
    wait_for(
        "the interrupted command to die",
        Duration::from_secs(5),
        || !process_alive(sleep_pid),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stray_background_process_neither_hangs_the_call_nor_survives_it() {
    let ws = Workspace::new();
    let result = tokio::time::timeout(
        Duration::from_secs(20),
        ws.call(
            "Bash",
            json!({"command": "sleep 60 & echo $! > bg.pid; echo started"}),
        ),
    )
    .await
    .expect("the call returns when the shell exits");
    assert!(!result.is_error, "{}", result.content);
    assert_eq!(result.content, "started");
    let pid = read_pids(&ws.path("bg.pid"))[0];
    wait_for(
        "the background sleep to die",
        Duration::from_secs(5),
        || !process_alive(pid),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_get_no_stdin_and_timeouts_are_bounded() {
    let ws = Workspace::new();
    // `cat` with an empty stdin returns at once instead of waiting for a user.
    let result = ws.ok("Bash", json!({"command": "cat; echo done"})).await;
    assert_eq!(result.content, "done");
    let err = ws
        .err("Bash", json!({"command": "true", "timeout": 600_001}))
        .await;
    assert!(err.contains("`timeout` must be at most 600000"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_output_is_cut_for_the_model_and_spilled_whole() {
    let ws = Workspace::new();
    let result = ws.ok("Bash", json!({"command": "seq 1 100000"})).await;
    assert!(result.content.starts_with("1\n2\n3\n"));
    assert!(result.content.ends_with("99999\n100000"));
    assert!(
        result.content.contains("(100000 lines) is saved to"),
        "marker missing"
    );
    let spilled = std::fs::read_dir(&ws.ctx.spill_dir)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let saved = std::fs::read_to_string(spilled).unwrap();
    assert_eq!(saved.lines().count(), 100_000);
    assert!(saved.ends_with("100000"));
}
