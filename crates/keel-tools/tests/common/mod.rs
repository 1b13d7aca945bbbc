//! Shared setup for the tool tests: a temp workspace, a context rooted in it, the built-ins.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use keel_tools::{ToolCallResult, ToolContext, ToolRegistry};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

pub struct Workspace {
    pub dir: tempfile::TempDir,
    pub root: PathBuf,
    pub ctx: ToolContext,
    pub tools: ToolRegistry,
}

impl Workspace {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        // Canonical, so paths compare equal to what `pwd -P` and canonicalize report.
        let root = std::fs::canonicalize(dir.path()).unwrap().join("project");
        std::fs::create_dir(&root).unwrap();
        let spill = root.parent().unwrap().join("spill");
        let ctx = ToolContext::new(&root, spill, CancellationToken::new());
        Self {
            dir,
            root,
            ctx,
            tools: ToolRegistry::builtin(),
        }
    }

    pub fn path(&self, relative: &str) -> PathBuf {
        self.root.join(relative)
    }

    pub fn write(&self, relative: &str, content: &str) -> PathBuf {
        let path = self.path(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, content).unwrap();
        path
    }

    pub async fn call(&self, tool: &str, input: Value) -> ToolCallResult {
        self.tools.call(tool, input, &self.ctx).await
    }

    /// Calls a tool and insists that it succeeded.
    pub async fn ok(&self, tool: &str, input: Value) -> ToolCallResult {
        let result = self.call(tool, input.clone()).await;
        assert!(
            !result.is_error,
            "{tool} {input} failed: {}",
            result.content
        );
        result
    }

    /// Calls a tool and insists that it failed.
    pub async fn err(&self, tool: &str, input: Value) -> String {
        let result = self.call(tool, input.clone()).await;
        assert!(
            result.is_error,
            "{tool} {input} should fail: {}",
            result.content
        );
        result.content
    }
}

pub fn set_mtime(path: &Path, seconds_after_epoch: u64) {
    let file = std::fs::File::options().write(true).open(path).unwrap();
    file.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(seconds_after_epoch))
        .unwrap();
}

pub fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Whether a process is still running (a zombie waiting to be reaped counts as gone).
pub fn process_alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat.rsplit_once(')').map(|(_, rest)| rest.trim_start());
            !matches!(state.and_then(|r| r.chars().next()), Some('Z') | Some('X'))
        }
        Err(_) => false,
    }
}

/// Polls `condition` until it holds, failing the test after `timeout`.
pub async fn wait_for(what: &str, timeout: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + timeout;
    while !condition() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
