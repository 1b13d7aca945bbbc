//! Shared harness for end-to-end tests: a temp workspace with its own HOME, the mock model
//! server, and the real `keel` binary pointed at it.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use keel_test_support::workspace::TestWorkspace;
use keel_test_support::{MockModelServer, RecordedRequest, Script, ScriptedTurn};
use serde_json::Value;

pub struct Harness {
    pub ws: TestWorkspace,
    pub server: MockModelServer,
}

impl Harness {
    pub async fn new(turns: Vec<ScriptedTurn>) -> Self {
        let ws = TestWorkspace::new();
        let server = MockModelServer::start(Script::new(turns))
            .await
            .expect("mock server starts");
        std::fs::create_dir_all(ws.root.path().join("tmp")).unwrap();
        Self { ws, server }
    }

    pub fn project(&self) -> &Path {
        &self.ws.project
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.ws.project.join(rel)
    }

    /// `keel` with a clean environment: its own HOME and TMPDIR, a fake key, the mock's URL.
    pub fn keel(&self) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_keel"));
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &self.ws.home)
            .env("TMPDIR", self.ws.root.path().join("tmp"))
            .env("ANTHROPIC_API_KEY", "sk-test-key")
            .env("ANTHROPIC_BASE_URL", self.server.url())
            .current_dir(&self.ws.project)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        cmd
    }

    pub async fn run(&self, args: &[&str]) -> Output {
        finish(self.keel().args(args)).await
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.server.requests()
    }

    /// The `tool_result` blocks the model was sent in request `n` (0-based), in order.
    pub fn tool_results_sent(&self, n: usize) -> Vec<Value> {
        let requests = self.requests();
        let messages = requests[n].body["messages"].as_array().unwrap().clone();
        let last = messages.last().unwrap();
        assert_eq!(last["role"], "user");
        last["content"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|b| b["type"] == "tool_result")
            .cloned()
            .collect()
    }
}

/// Runs a prepared command to completion; a keel that does not exit fails the test instead of
/// hanging it.
pub async fn finish(cmd: &mut tokio::process::Command) -> Output {
    tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .expect("keel finishes within 60 s")
        .expect("keel runs")
}

pub fn stdout_json(output: &Output) -> Value {
    let text = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(text.trim()).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON object ({e}):\n{text}\nstderr:\n{}",
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

pub fn stdout_lines(output: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Waits until `condition` holds, polling; fails the test after `limit`.
pub async fn wait_for(what: &str, limit: Duration, mut condition: impl FnMut() -> bool) {
    let start = Instant::now();
    while !condition() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// True while a process with this pid exists and is not a zombie.
pub fn process_alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            // The state follows the parenthesised command name.
            let state = stat.rsplit(')').next().unwrap_or("").trim_start();
            !state.starts_with('Z') && !state.starts_with('X')
        }
        Err(_) => false,
    }
}
