//! `keel mcp serve|add|add-json|remove|list|get`. Parsing and running live in keel-mcp
//! (`keel_mcp::cli`, where they are tested); this module supplies what they need from the
//! workspace: the settings' servers, the flags, and keel's permission rules for `serve`.

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context as _, Result};
use keel_mcp::cli::McpContext;
use keel_mcp::{ManagerOptions, PermissionGate};
use keel_policy::{Decision, Policy, ToolCall};
use keel_tools::ToolRegistry;

pub use keel_mcp::cli::McpArgs;

use crate::args::Args;
use keel_setup::Workspace;

/// Runs `keel mcp ...`. `keel mcp serve` (stdio) owns stdout for the protocol and writes
/// nothing else there; logs go to stderr (see `init_logging`).
pub fn run(command: McpArgs, args: &Args, ws: &Workspace) -> Result<ExitCode> {
    let registry = ToolRegistry::builtin();
    let gate = gate(ws.policy(&args.session_options())?, &registry, ws);
    let mut options = ManagerOptions::new(ws.settings.project_root.clone());
    let env = ws.env.clone();
    options.env = Arc::new(move |name| env.get(name).cloned());
    let ctx = McpContext {
        cwd: ws.cwd.clone(),
        project_root: ws.settings.project_root.clone(),
        home: ws.home.clone(),
        settings_servers: ws.settings.effective.mcp_servers.clone(),
        mcp_config: args.mcp_config.clone(),
        strict_mcp_config: args.strict_mcp_config,
        disabled_project_servers: ws.settings.effective.disabled_mcpjson_servers.clone(),
        registry,
        gate,
        spill_dir: std::env::temp_dir()
            .join("keel-mcp-serve")
            .join(std::process::id().to_string()),
        manager_options: Some(options),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let mut out = std::io::stdout();
    Ok(runtime.block_on(keel_mcp::cli::run(command, ctx, &mut out))?)
}

/// keel's permission rules for calls that arrive over MCP: Allow runs; Deny refuses with the
/// rule's reason; Ask refuses too, since nobody is there to answer, and says which rule
/// would allow the call.
fn gate(policy: Policy, registry: &ToolRegistry, ws: &Workspace) -> PermissionGate {
    let read_only: HashMap<String, bool> = registry
        .names()
        .into_iter()
        .map(|name| {
            let read_only = registry.is_read_only(&name).unwrap_or(false);
            (name, read_only)
        })
        .collect();
    let cwd = ws.cwd.clone();
    Arc::new(move |tool: &str, input: &serde_json::Value| {
        let call = ToolCall::new(tool, input, &cwd)
            .with_read_only(read_only.get(tool).copied().unwrap_or(false));
        let verdict = policy.decide(&call);
        match verdict.decision {
            Decision::Allow => Ok(()),
            Decision::Deny => Err(verdict.reason.to_string()),
            Decision::Ask => {
                let mut reason = format!(
                    "{}; it needs approval and `keel mcp serve` has no one to ask",
                    verdict.reason
                );
                if !verdict.suggestions.is_empty() {
                    reason.push_str(&format!(
                        " (an allow rule such as {} would let it run)",
                        verdict.suggestions.join(", ")
                    ));
                }
                Err(reason)
            }
        }
    })
}
