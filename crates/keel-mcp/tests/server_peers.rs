//! keel's MCP server against third-party clients: the Python MCP SDK over stdio and
//! streamable HTTP, and the `@modelcontextprotocol/conformance` server scenarios that apply
//! to a tools-only server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use keel_mcp::{HttpServer, KeelServer, PermissionGate};
use keel_tools::ToolRegistry;
use rmcp::ServiceExt as _;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

/// keel's permission rules as the lead will wire them, reduced to: Bash is denied.
fn gate() -> PermissionGate {
    Arc::new(|tool: &str, _input: &Value| {
        if tool == "Bash" {
            Err("Bash is denied by the rule `Bash` in permissions.deny.".to_string())
        } else {
            Ok(())
        }
    })
}

fn workspace() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("notes.txt");
    std::fs::write(&file, "alpha line\nbeta line\n").unwrap();
    (dir, file)
}

/// What the Python client must have seen, having negotiated `protocol`.
fn check_report(report: &Path, protocol: &str) {
    let text = std::fs::read_to_string(report).unwrap();
    let report: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(report["protocol"], protocol, "{report}");
    if protocol != "2026-07-28" {
        // The stateless revision has no initialize, so no server name.
        assert_eq!(report["server"], "keel", "{report}");
    }
    let tools = report["tools"].as_object().unwrap();
    for name in ["Read", "Write", "Edit", "Bash", "Glob", "Grep"] {
        assert!(tools.contains_key(name), "{name} missing: {report}");
    }
    assert_eq!(tools["Read"]["read_only"], true);
    assert_eq!(tools["Bash"]["read_only"], false);
    assert_eq!(tools["Read"]["required"], serde_json::json!(["file_path"]));
    assert_eq!(report["read"]["is_error"], false, "{report}");
    assert!(
        report["read"]["text"]
            .as_str()
            .unwrap()
            .contains("1\talpha line"),
        "{report}"
    );
    assert_eq!(report["bash"]["is_error"], true, "{report}");
    let bash = report["bash"]["text"].as_str().unwrap();
    assert!(bash.contains("keel's permission rules refused"), "{bash}");
    assert!(bash.contains("Bash is denied by the rule"), "{bash}");
    assert!(
        bash.contains("change them in .keel/settings.json"),
        "{bash}"
    );
    assert!(!bash.contains(".."), "{bash}");
    assert_eq!(report["missing"]["is_error"], true, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_client_lists_and_calls_keel_tools_over_stdio_stateless() {
    let (dir, file) = workspace();
    let report = dir.path().join("report.json");
    // The client talks over its own stdin/stdout; this test is the server on the other end
    // of the pipes, exactly as `keel mcp serve` is on its own stdio.
    let mut child = tokio::process::Command::new(python())
        .arg(fixture("py_client.py"))
        .arg(&report)
        .arg(&file)
        .arg("self")
        .env("PY_CLIENT_MODE", "auto")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let to_client = child.stdin.take().unwrap();
    let from_client = child.stdout.take().unwrap();
    let ctx = tool_ctx(dir.path());
    let server = KeelServer::new(ToolRegistry::builtin(), ctx, gate());
    let running = server.serve((from_client, to_client)).await.unwrap();
    wait_for_async(
        "the Python client's report",
        Duration::from_secs(30),
        || {
            let done = std::fs::metadata(&report).is_ok_and(|m| m.len() > 0);
            async move { done }
        },
    )
    .await;
    // The client waits for its stdin to close, as a server would; closing our end says so.
    let _ = running.cancel().await;
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("the Python client exits once its stdin closes")
        .unwrap();
    assert!(status.success(), "python client failed: {status}");
    check_report(&report, "2026-07-28");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_client_lists_and_calls_keel_tools_over_streamable_http_with_initialize() {
    let (dir, file) = workspace();
    let report = dir.path().join("report.json");
    let cancel = CancellationToken::new();
    let server = HttpServer::bind(
        "127.0.0.1:0".parse().unwrap(),
        ToolRegistry::builtin(),
        tool_ctx(dir.path()),
        gate(),
        cancel.clone(),
    )
    .await
    .unwrap();
    let url = format!("http://{}/mcp", server.local_addr());
    let serving = tokio::spawn(server.run());
    let output = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::process::Command::new(python())
            .arg(fixture("py_client.py"))
            .arg(&report)
            .arg(&file)
            .arg("http")
            .arg(&url)
            .env("PY_CLIENT_MODE", "legacy")
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the Python client finishes")
    .unwrap();
    assert!(
        output.status.success(),
        "python client failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    check_report(&report, "2025-11-25");
    cancel.cancel();
    serving.await.unwrap().unwrap();
}

/// Runs the conformance suite (Node 22) and returns (exit success, combined output).
async fn conformance(args: &[&str], dir: &Path) -> (bool, String) {
    let output = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(node())
            .arg(conformance_js())
            .args(args)
            .arg("-o")
            .arg(dir.join("results"))
            .current_dir(dir)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the conformance suite finishes")
    .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_server_scenarios_for_a_tools_only_server() {
    let (dir, _file) = workspace();
    let cancel = CancellationToken::new();
    let server = HttpServer::bind(
        "127.0.0.1:0".parse().unwrap(),
        ToolRegistry::builtin(),
        tool_ctx(dir.path()),
        gate(),
        cancel.clone(),
    )
    .await
    .unwrap();
    let url = format!("http://{}/mcp", server.local_addr());
    let serving = tokio::spawn(server.run());
    for scenario in [
        "server-initialize",
        "ping",
        "tools-list",
        "server-sse-multiple-streams",
        "dns-rebinding-protection",
    ] {
        let (ok, text) = conformance(
            &["server", "--url", &url, "--scenario", scenario],
            dir.path(),
        )
        .await;
        assert!(ok, "conformance scenario {scenario} failed:\n{text}");
        assert!(text.contains(" 0 failed"), "scenario {scenario}:\n{text}");
    }
    cancel.cancel();
    serving.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_client_scenarios() {
    let dir = tempfile::tempdir().unwrap();
    let client = env!("CARGO_BIN_EXE_keel-mcp-conformance-client");
    for scenario in ["initialize", "tools_call", "sse-retry"] {
        let (ok, text) = conformance(
            &["client", "--command", client, "--scenario", scenario],
            dir.path(),
        )
        .await;
        assert!(ok, "conformance client scenario {scenario} failed:\n{text}");
        assert!(
            text.contains("OVERALL: PASSED"),
            "scenario {scenario}:\n{text}"
        );
    }
}
