//! `keel mcp add/add-json/remove/list/get`, run through `keel_mcp::cli::run` as keel-cli
//! calls it, in a temporary project and home.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use common::*;
use keel_mcp::cli::{McpArgs, McpContext, run};
use keel_tools::ToolRegistry;
use serde_json::{Value, json};

/// `keel mcp ...` as clap parses it inside keel-cli.
#[derive(Debug, Parser)]
struct Keel {
    #[command(subcommand)]
    command: Top,
}

#[derive(Debug, clap::Subcommand)]
enum Top {
    Mcp(McpArgs),
}

struct Env {
    _dir: tempfile::TempDir,
    project: std::path::PathBuf,
    home: std::path::PathBuf,
}

fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("project");
    let home = dir.path().join("home");
    std::fs::create_dir_all(&project).unwrap();
    std::fs::create_dir_all(&home).unwrap();
    Env {
        _dir: dir,
        project,
        home,
    }
}

fn context(
    env: &Env,
    settings_servers: BTreeMap<String, Value>,
    mcp_config: Vec<String>,
    strict: bool,
) -> McpContext {
    let mut options = options(&env.project);
    options.start_timeout = Duration::from_secs(5);
    McpContext {
        cwd: env.project.clone(),
        project_root: env.project.clone(),
        home: env.home.clone(),
        settings_servers,
        mcp_config,
        strict_mcp_config: strict,
        disabled_project_servers: Vec::new(),
        registry: ToolRegistry::builtin(),
        gate: Arc::new(|_: &str, _: &Value| Ok(())),
        spill_dir: env.project.join(".spill"),
        manager_options: Some(options),
    }
}

/// Runs `keel <args>` and returns (success, output or error text).
async fn keel(ctx: McpContext, args: &[&str]) -> (bool, String) {
    let parsed = Keel::try_parse_from(std::iter::once("keel").chain(args.iter().copied()))
        .unwrap_or_else(|error| panic!("{args:?} does not parse: {error}"));
    let Top::Mcp(mcp) = parsed.command;
    let mut out = Vec::new();
    match run(mcp, ctx, &mut out).await {
        Ok(code) => (
            code == std::process::ExitCode::SUCCESS,
            String::from_utf8(out).unwrap(),
        ),
        Err(error) => (false, error.to_string()),
    }
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_remove_and_get_edit_the_scoped_files() {
    let env = env();
    let ctx = || context(&env, BTreeMap::new(), vec![], false);

    let (ok, out) = keel(
        ctx(),
        &[
            "mcp",
            "add",
            "fs",
            "-e",
            "ROOT=/data",
            "--",
            "npx",
            "-y",
            "@scope/server",
            "--flag",
        ],
    )
    .await;
    assert!(ok, "{out}");
    assert!(out.contains("Added stdio MCP server `fs`"), "{out}");
    assert_eq!(
        read_json(&env.project.join(".mcp.json")),
        json!({"mcpServers": {"fs": {"type": "stdio", "command": "npx", "args": ["-y", "@scope/server", "--flag"], "env": {"ROOT": "/data"}}}})
    );

    let (ok, out) = keel(
        ctx(),
        &[
            "mcp",
            "add",
            "--scope",
            "user",
            "-H",
            "Authorization: Bearer ${TOKEN}",
            "api",
            "https://example.invalid/mcp",
        ],
    )
    .await;
    assert!(ok, "{out}");
    let settings = read_json(&env.home.join(".keel/settings.json"));
    assert_eq!(
        settings["mcpServers"]["api"],
        json!({"type": "http", "url": "https://example.invalid/mcp", "headers": {"Authorization": "Bearer ${TOKEN}"}})
    );

    let (ok, out) = keel(
        ctx(),
        &[
            "mcp",
            "add-json",
            "legacy",
            r#"{"type":"sse","url":"http://127.0.0.1:9/sse"}"#,
        ],
    )
    .await;
    assert!(ok, "{out}");
    assert_eq!(
        read_json(&env.project.join(".mcp.json"))["mcpServers"]["legacy"]["type"],
        "sse"
    );

    let (ok, out) = keel(ctx(), &["mcp", "add", "fs", "--", "other"]).await;
    assert!(!ok);
    assert!(
        out.contains("already exists") && out.contains("keel mcp remove fs"),
        "{out}"
    );
    let (ok, out) = keel(ctx(), &["mcp", "add", "bad.name", "--", "x"]).await;
    assert!(!ok);
    assert!(out.contains("invalid server name `bad.name`"), "{out}");
    let (ok, out) = keel(ctx(), &["mcp", "add-json", "j", "{not json"]).await;
    assert!(!ok);
    assert!(out.contains("not valid JSON"), "{out}");

    // `get` shows the definition (the server itself cannot start: npx -y @scope/server is
    // not installed here, so the status is a failure with its reason, not a hang).
    let (ok, out) = keel(ctx(), &["mcp", "get", "fs"]).await;
    assert!(ok, "{out}");
    assert!(out.starts_with("fs:\n  Scope: project ("), "{out}");
    assert!(
        out.contains("  Type: stdio\n  Command: npx\n  Args: -y @scope/server --flag\n"),
        "{out}"
    );
    assert!(out.contains("    ROOT=/data"), "{out}");
    assert!(out.contains("  Status: "), "{out}");
    let (ok, out) = keel(ctx(), &["mcp", "get", "nope"]).await;
    assert!(!ok);
    assert!(out.contains("no MCP server named `nope`"), "{out}");

    let (ok, out) = keel(ctx(), &["mcp", "remove", "fs"]).await;
    assert!(ok, "{out}");
    assert!(
        out.contains("Removed MCP server `fs`") && out.contains("(project scope)"),
        "{out}"
    );
    let (ok, out) = keel(ctx(), &["mcp", "remove", "api", "--scope", "project"]).await;
    assert!(!ok);
    assert!(out.contains("no MCP server named `api`"), "{out}");
    let (ok, out) = keel(ctx(), &["mcp", "remove", "api"]).await;
    assert!(ok, "{out}");
    assert!(out.contains("(user scope)"), "{out}");
    assert_eq!(
        read_json(&env.home.join(".keel/settings.json"))["mcpServers"],
        json!({})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_starts_every_server_and_reports_each_status() {
    let env = env();
    std::fs::write(
        env.project.join(".mcp.json"),
        serde_json::to_string(&json!({"mcpServers": {
            "everything": everything_stdio(),
            "broken": {"command": "/nonexistent/keel-no-server"},
        }}))
        .unwrap(),
    )
    .unwrap();
    let settings = BTreeMap::from([("time".to_string(), json!({"command": time_server()}))]);
    let (ok, out) = keel(
        context(&env, settings.clone(), vec![], false),
        &["mcp", "list"],
    )
    .await;
    assert!(ok, "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(
        lines[0].starts_with("broken: stdio: /nonexistent/keel-no-server (project) - failed: "),
        "{out}"
    );
    assert!(lines[0].contains("command not found"), "{out}");
    assert!(lines[1].starts_with("everything: stdio: "), "{out}");
    // 13 tools always, plus those server-everything adds for the client's capabilities.
    let count: usize = lines[1]
        .strip_suffix(" tools)")
        .and_then(|rest| rest.rsplit_once("(project) - connected ("))
        .map(|(_, n)| n.parse().unwrap())
        .unwrap_or_else(|| panic!("{out}"));
    assert!(count >= 13, "{out}");
    assert!(lines[2].starts_with("time: stdio: "), "{out}");
    assert!(lines[2].ends_with("(user) - connected (2 tools)"), "{out}");

    // --strict-mcp-config: only the --mcp-config servers.
    let inline = json!({"mcpServers": {"only": {"command": "/nonexistent/x"}}}).to_string();
    let (ok, out) = keel(
        context(&env, settings, vec![inline], true),
        &["mcp", "list"],
    )
    .await;
    assert!(ok, "{out}");
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(
        out.starts_with("only: stdio: /nonexistent/x (flag) - failed"),
        "{out}"
    );
}

#[tokio::test]
async fn list_without_servers_says_how_to_add_one() {
    let env = env();
    let (ok, out) = keel(
        context(&env, BTreeMap::new(), vec![], false),
        &["mcp", "list"],
    )
    .await;
    assert!(ok);
    assert!(
        out.contains("No MCP servers configured") && out.contains("keel mcp add"),
        "{out}"
    );
    std::fs::write(env.project.join(".mcp.json"), "{\"mcpServers\": ").unwrap();
    let (ok, out) = keel(
        context(&env, BTreeMap::new(), vec![], false),
        &["mcp", "list"],
    )
    .await;
    assert!(!ok);
    assert!(out.contains(".mcp.json: not valid JSON"), "{out}");
}
