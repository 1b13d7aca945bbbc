//! An MCP client for the conformance suite's client scenarios, built on keel's own manager:
//! `keel-mcp-conformance-client URL` (scenario in `MCP_CONFORMANCE_SCENARIO`). It connects
//! the way a keel session does, lists the tools, and calls the one the scenario expects.
//! Exits 0 when the manager did what the scenario asks, 1 otherwise (reasons on stderr).

use std::process::ExitCode;

use keel_mcp::{ConfigScope, ManagerOptions, McpManager, ServerConfig, ServerStatus};
use keel_tools::ToolContext;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// The tool each scenario's test server expects to be called, with its arguments.
fn scenario_call(scenario: &str) -> Option<(&'static str, Value)> {
    match scenario {
        "tools_call" => Some(("add_numbers", json!({"a": 5, "b": 3}))),
        "sse-retry" => Some(("test_reconnection", json!({}))),
        _ => None,
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("KEEL_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .try_init();
    let Some(url) = std::env::args().nth(1) else {
        eprintln!(
            "usage: keel-mcp-conformance-client SERVER_URL (scenario in MCP_CONFORMANCE_SCENARIO)"
        );
        return ExitCode::from(2);
    };
    let scenario = std::env::var("MCP_CONFORMANCE_SCENARIO").unwrap_or_default();
    let cwd = std::env::current_dir().unwrap_or_else(|_| std::env::temp_dir());
    let config = ServerConfig::new(
        "test",
        ConfigScope::Flag,
        "conformance",
        &json!({"type": "http", "url": url}),
    );
    let manager = McpManager::start(vec![config], ManagerOptions::new(&cwd)).await;
    let status = manager
        .statuses()
        .into_iter()
        .next()
        .map(|(_, status)| status);
    if status != Some(ServerStatus::Connected) {
        eprintln!("conformance client: server did not connect: {status:?}");
        return ExitCode::FAILURE;
    }
    let tools = manager.tools();
    eprintln!(
        "conformance client: connected; tools: {:?}",
        tools
            .iter()
            .map(|t| t.name().to_string())
            .collect::<Vec<_>>()
    );
    let mut code = ExitCode::SUCCESS;
    if let Some((tool, input)) = scenario_call(&scenario) {
        let name = keel_mcp::tool_name("test", tool);
        match tools.iter().find(|t| t.name() == name) {
            None => {
                eprintln!("conformance client: the server does not offer `{tool}`");
                code = ExitCode::FAILURE;
            }
            Some(tool) => {
                let spill = std::env::temp_dir().join("keel-mcp-conformance");
                let ctx = ToolContext::new(&cwd, spill, CancellationToken::new());
                match tool.call(input, &ctx).await {
                    Ok(output) => eprintln!("conformance client: result: {}", output.content),
                    Err(error) => {
                        eprintln!("conformance client: call failed: {error}");
                        code = ExitCode::FAILURE;
                    }
                }
            }
        }
    }
    manager.shutdown().await;
    code
}
