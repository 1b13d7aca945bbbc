// PENDING: this file moves to crates/keel-cli/tests/mcp_e2e.rs once keel-cli declares
// `commands::mcp` (see the keel-mcp report). Kept here, where cargo does not compile it, so
// `cargo test -p keel-cli` stays green until then. Verified green against the wired binary.
//! `keel mcp ...` through the real binary: `serve` over stdio and streamable HTTP driven by a
//! client written with the Python MCP SDK (installed by crates/keel-mcp/tests/peers/install.sh),
//! under the directory's permission rules; and `add/list/get/remove` against real servers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use keel_test_support::workspace::TestWorkspace;
use serde_json::Value;
use tokio::io::AsyncBufReadExt as _;

/// The third-party peers; fails (never skips) with the install command when missing.
fn peers() -> PathBuf {
    let dir = std::env::var_os("KEEL_MCP_PEERS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.peers"));
    assert!(
        dir.join("venv/bin/python").exists()
            && dir.join("venv/bin/mcp-server-time").exists()
            && dir
                .join("node_modules/@modelcontextprotocol/server-everything/dist/index.js")
                .exists(),
        "the third-party MCP peers are not installed in {}; install them with \
         crates/keel-mcp/tests/peers/install.sh [DIR] (and set KEEL_MCP_PEERS=DIR elsewhere)",
        dir.display()
    );
    dir.canonicalize().unwrap()
}

fn py_client() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../keel-mcp/tests/fixtures/py_client.py")
}

/// A project whose settings deny Bash, with a file to read.
fn workspace() -> TestWorkspace {
    let ws = TestWorkspace::new();
    ws.write(
        ".keel/settings.json",
        r#"{"permissions": {"deny": ["Bash"]}}"#,
    );
    ws.write("notes.txt", "alpha line\nbeta line\n");
    ws
}

fn keel(ws: &TestWorkspace) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_keel"));
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", &ws.home)
        .current_dir(&ws.project)
        .kill_on_drop(true);
    cmd
}

/// Runs the Python client; `target` is `stdio CMD ARGS...` or `http URL`.
async fn python_client(ws: &TestWorkspace, mode: &str, target: &[&str]) -> Value {
    let report = ws.root.path().join(format!("report-{mode}.json"));
    let output = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(peers().join("venv/bin/python"))
            .arg(py_client())
            .arg(&report)
            .arg(ws.project.join("notes.txt"))
            .args(target)
            .env("PY_CLIENT_MODE", mode)
            .env("HOME", &ws.home)
            .current_dir(&ws.project)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the Python client finishes")
    .unwrap();
    assert!(
        output.status.success(),
        "python client failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap()
}

fn check(report: &Value) {
    assert_eq!(report["tools"]["Read"]["read_only"], true, "{report}");
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
    assert!(bash.contains("deny rule `Bash`"), "{bash}");
    assert!(bash.contains(".keel/settings.json"), "{bash}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_serve_over_stdio_answers_a_python_sdk_client_under_the_permission_rules() {
    let ws = workspace();
    let keel = env!("CARGO_BIN_EXE_keel");
    for (mode, protocol) in [("legacy", "2025-11-25"), ("auto", "2026-07-28")] {
        let report = python_client(&ws, mode, &["stdio", keel, "mcp", "serve"]).await;
        assert_eq!(report["protocol"], protocol, "{report}");
        check(&report);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_serve_over_http_answers_a_python_sdk_client() {
    let ws = workspace();
    let mut server = keel(&ws)
        .args(["mcp", "serve", "--http", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(server.stderr.take().unwrap()).lines();
    let url = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(url) = line.strip_prefix("keel MCP server listening on ") {
                return url.to_string();
            }
        }
        panic!("keel mcp serve --http exited without listening");
    })
    .await
    .expect("keel mcp serve --http says where it listens");
    let report = python_client(&ws, "legacy", &["http", &url]).await;
    check(&report);
    server.kill().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_add_list_get_remove_through_the_binary() {
    let ws = workspace();
    let peers = peers();
    let time = peers.join("venv/bin/mcp-server-time");
    let run = |args: Vec<String>| {
        let mut cmd = keel(&ws);
        cmd.args(args);
        async move { cmd.output().await.unwrap() }
    };
    let text = |output: &std::process::Output| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    };
    let strings = |items: &[&str]| items.iter().map(|s| s.to_string()).collect::<Vec<_>>();

    let out = run(strings(&[
        "mcp",
        "add",
        "time",
        "--",
        time.to_str().unwrap(),
    ]))
    .await;
    assert!(out.status.success(), "{}", text(&out));
    let out = run(strings(&[
        "mcp",
        "add",
        "--scope",
        "user",
        "gone",
        "--",
        "/nonexistent/srv",
    ]))
    .await;
    assert!(out.status.success(), "{}", text(&out));
    let mcp_json: Value = serde_json::from_str(&ws.read(".mcp.json")).unwrap();
    assert_eq!(
        mcp_json["mcpServers"]["time"]["command"],
        time.to_str().unwrap()
    );

    let out = run(strings(&["mcp", "list"])).await;
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("gone: stdio: /nonexistent/srv (user) - failed: cannot run"),
        "{stdout}"
    );
    assert!(
        stdout.contains("(project) - connected (2 tools)"),
        "{stdout}"
    );

    let out = run(strings(&["mcp", "get", "time"])).await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Status: connected (2 tools)"),
        "{}",
        text(&out)
    );

    // --mcp-config with --strict-mcp-config sees only that server.
    let inline = format!(
        r#"{{"mcpServers": {{"flagged": {{"command": "{}"}}}}}}"#,
        time.display()
    );
    let out = run(vec![
        "--strict-mcp-config".into(),
        "--mcp-config".into(),
        inline,
        "mcp".into(),
        "list".into(),
    ])
    .await;
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(stdout.starts_with("flagged: "), "{stdout}");

    let out = run(strings(&["mcp", "remove", "gone"])).await;
    assert!(out.status.success(), "{}", text(&out));
    let out = run(strings(&["mcp", "get", "gone"])).await;
    assert!(!out.status.success());
    assert!(
        text(&out).contains("no MCP server named `gone`"),
        "{}",
        text(&out)
    );
}
