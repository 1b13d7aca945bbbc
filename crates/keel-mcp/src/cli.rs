//! `keel mcp serve|add|add-json|remove|list|get`: the command-line side of MCP, kept here so
//! keel-cli only parses `keel mcp ...` into [`McpArgs`] and calls [`run`].

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use keel_tools::{ToolContext, ToolRegistry};
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;

use crate::client::{ManagerOptions, McpManager, ServerStatus};
use crate::config::{
    ConfigError, EditScope, McpSources, ServerConfig, TransportKind, add_server, load_servers,
    remove_server,
};
use crate::server::{HttpServer, PermissionGate, ServeError, serve_stdio};

/// `keel mcp ...`.
#[derive(Debug, Clone, clap::Args)]
pub struct McpArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: McpCommand,
}

/// The `keel mcp` subcommands.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum McpCommand {
    /// Offer keel's tools to other MCP clients (stdio by default), under keel's permission rules.
    Serve {
        /// Serve streamable HTTP at http://ADDR/mcp instead of stdio (e.g. 127.0.0.1:8765).
        #[arg(long, value_name = "ADDR")]
        http: Option<SocketAddr>,
    },
    /// Add a server: `keel mcp add NAME -- COMMAND [ARGS...]` or `keel mcp add NAME URL`.
    Add {
        /// The server's name (letters, digits, `-`, `_`).
        name: String,
        /// The command and its arguments (stdio), or the URL (http, sse).
        #[arg(
            required = true,
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "COMMAND_OR_URL"
        )]
        command_or_url: Vec<String>,
        /// stdio, http or sse (default: http for an http(s) URL, else stdio).
        #[arg(short = 't', long, value_parser = ["stdio", "http", "sse"])]
        transport: Option<String>,
        /// Where to save it: project (.mcp.json) or user (~/.keel/settings.json).
        #[arg(short = 's', long, value_enum, default_value_t = EditScope::Project)]
        scope: EditScope,
        /// An environment variable for a stdio server, KEY=VALUE (repeatable).
        #[arg(short = 'e', long = "env", value_name = "KEY=VALUE")]
        env: Vec<String>,
        /// An HTTP header for an http or sse server, "Name: value" (repeatable).
        #[arg(short = 'H', long = "header", value_name = "NAME: VALUE")]
        header: Vec<String>,
    },
    /// Add a server from its JSON definition, as written in .mcp.json.
    AddJson {
        /// The server's name.
        name: String,
        /// The definition, e.g. '{"type":"http","url":"https://example.com/mcp"}'.
        json: String,
        /// Where to save it.
        #[arg(short = 's', long, value_enum, default_value_t = EditScope::Project)]
        scope: EditScope,
    },
    /// Remove a server (from the given scope, or wherever it is defined).
    Remove {
        /// The server's name.
        name: String,
        /// Only this scope.
        #[arg(short = 's', long, value_enum)]
        scope: Option<EditScope>,
    },
    /// Start every configured server and show whether it connects.
    List,
    /// Show one server's definition and status.
    Get {
        /// The server's name.
        name: String,
    },
}

/// What the MCP commands need from the rest of keel.
pub struct McpContext {
    /// The working directory (relative `--mcp-config` paths start here).
    pub cwd: PathBuf,
    /// The project root (where `.mcp.json` lives; stdio servers run here).
    pub project_root: PathBuf,
    /// The home directory (for `~/.keel/settings.json`).
    pub home: PathBuf,
    /// The merged settings' `mcpServers`.
    pub settings_servers: BTreeMap<String, Value>,
    /// `--mcp-config` values.
    pub mcp_config: Vec<String>,
    /// `--strict-mcp-config`.
    pub strict_mcp_config: bool,
    /// The settings' `disabledMcpjsonServers`.
    pub disabled_project_servers: Vec<String>,
    /// The tools `keel mcp serve` offers (normally [`ToolRegistry::builtin`]).
    pub registry: ToolRegistry,
    /// keel's permission rules for `keel mcp serve`.
    pub gate: PermissionGate,
    /// Where `keel mcp serve` spills large tool output.
    pub spill_dir: PathBuf,
    /// Options for starting servers (`keel mcp list/get`); `None` uses the defaults.
    pub manager_options: Option<ManagerOptions>,
}

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The configuration is wrong or could not be changed.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Serving failed.
    #[error(transparent)]
    Serve(#[from] ServeError),
    /// The arguments do not make sense together.
    #[error("{0}")]
    Usage(String),
    /// Writing the output failed.
    #[error("cannot write output: {0}")]
    Output(#[from] std::io::Error),
}

/// Runs `keel mcp ...`, writing human-readable output to `out`.
pub async fn run(
    args: McpArgs,
    ctx: McpContext,
    out: &mut (dyn Write + Send),
) -> Result<ExitCode, CliError> {
    match args.command {
        McpCommand::Serve { http } => serve(http, ctx).await,
        McpCommand::Add {
            name,
            command_or_url,
            transport,
            scope,
            env,
            header,
        } => {
            let value = definition(&command_or_url, transport.as_deref(), &env, &header)?;
            let kind = value
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or("stdio")
                .to_string();
            let path = add_server(scope, &name, value, &ctx.project_root, &ctx.home)?;
            writeln!(
                out,
                "Added {kind} MCP server `{name}` to {} ({scope} scope)",
                path.display()
            )?;
            Ok(ExitCode::SUCCESS)
        }
        McpCommand::AddJson { name, json, scope } => {
            let value: Value = serde_json::from_str(&json).map_err(|error| {
                CliError::Usage(format!(
                    "the definition of `{name}` is not valid JSON: {error}"
                ))
            })?;
            let path = add_server(scope, &name, value, &ctx.project_root, &ctx.home)?;
            writeln!(
                out,
                "Added MCP server `{name}` to {} ({scope} scope)",
                path.display()
            )?;
            Ok(ExitCode::SUCCESS)
        }
        McpCommand::Remove { name, scope } => {
            let (scope, path) = remove_server(scope, &name, &ctx.project_root, &ctx.home)?;
            writeln!(
                out,
                "Removed MCP server `{name}` from {} ({scope} scope)",
                path.display()
            )?;
            Ok(ExitCode::SUCCESS)
        }
        McpCommand::List => {
            let configs = load_servers(&sources(&ctx))?;
            if configs.is_empty() {
                writeln!(
                    out,
                    "No MCP servers configured. Add one with `keel mcp add NAME -- COMMAND [ARGS...]` \
                     or `keel mcp add NAME URL`."
                )?;
                return Ok(ExitCode::SUCCESS);
            }
            let manager = McpManager::start(configs, options(&ctx)).await;
            for state in manager.servers() {
                writeln!(
                    out,
                    "{}: {} ({}) - {}",
                    state.name,
                    state.config.describe(),
                    state.config.scope,
                    status_line(&state.status, state.tool_count)
                )?;
            }
            manager.shutdown().await;
            Ok(ExitCode::SUCCESS)
        }
        McpCommand::Get { name } => {
            let configs = load_servers(&sources(&ctx))?;
            let Some(config) = configs.iter().find(|c| c.name == name).cloned() else {
                let known: Vec<&str> = configs.iter().map(|c| c.name.as_str()).collect();
                return Err(CliError::Usage(format!(
                    "no MCP server named `{name}`; configured: {}",
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                )));
            };
            describe(&config, out)?;
            let manager = McpManager::start(vec![config], options(&ctx)).await;
            if let Some(state) = manager.servers().into_iter().next() {
                writeln!(
                    out,
                    "  Status: {}",
                    status_line(&state.status, state.tool_count)
                )?;
                if let Some((server, version)) = state.server_info {
                    writeln!(out, "  Server: {server} {version}")?;
                }
            }
            manager.shutdown().await;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn sources(ctx: &McpContext) -> McpSources {
    McpSources {
        project_root: Some(ctx.project_root.clone()),
        settings_servers: ctx.settings_servers.clone(),
        flag_configs: ctx.mcp_config.clone(),
        strict: ctx.strict_mcp_config,
        disabled_project_servers: ctx.disabled_project_servers.clone(),
        cwd: ctx.cwd.clone(),
    }
}

fn options(ctx: &McpContext) -> ManagerOptions {
    ctx.manager_options
        .clone()
        .unwrap_or_else(|| ManagerOptions::new(ctx.project_root.clone()))
}

fn status_line(status: &ServerStatus, tools: usize) -> String {
    match status {
        ServerStatus::Connected => format!(
            "connected ({tools} tool{})",
            if tools == 1 { "" } else { "s" }
        ),
        other => other.to_string(),
    }
}

fn describe(config: &ServerConfig, out: &mut (dyn Write + Send)) -> std::io::Result<()> {
    writeln!(out, "{}:", config.name)?;
    writeln!(out, "  Scope: {} ({})", config.scope, config.origin)?;
    match &config.spec {
        Err(error) => writeln!(out, "  Error: {error}")?,
        Ok(spec) => {
            writeln!(out, "  Type: {}", spec.transport)?;
            if let Some(command) = &spec.command {
                writeln!(out, "  Command: {command}")?;
                writeln!(out, "  Args: {}", spec.args.join(" "))?;
            }
            if let Some(url) = &spec.url {
                writeln!(out, "  URL: {url}")?;
            }
            if !spec.env.is_empty() {
                writeln!(out, "  Environment:")?;
                for (key, value) in &spec.env {
                    writeln!(out, "    {key}={value}")?;
                }
            }
            if !spec.headers.is_empty() {
                writeln!(out, "  Headers:")?;
                for (key, value) in &spec.headers {
                    writeln!(out, "    {key}: {value}")?;
                }
            }
        }
    }
    Ok(())
}

/// Builds the `.mcp.json` definition `keel mcp add` writes.
fn definition(
    command_or_url: &[String],
    transport: Option<&str>,
    env: &[String],
    headers: &[String],
) -> Result<Value, CliError> {
    let first = command_or_url.first().map(String::as_str).unwrap_or("");
    let looks_like_url = first.starts_with("http://") || first.starts_with("https://");
    let kind = match transport {
        Some(kind) => TransportKind::parse(kind).ok_or_else(|| {
            CliError::Usage(format!(
                "unknown transport `{kind}`; use stdio, http or sse"
            ))
        })?,
        None if looks_like_url && command_or_url.len() == 1 => TransportKind::Http,
        None => TransportKind::Stdio,
    };
    let mut value = Map::new();
    value.insert("type".into(), json!(kind.as_str()));
    match kind {
        TransportKind::Sdk => {
            return Err(CliError::Usage(
                "an sdk server lives inside an Agent SDK program, which declares it itself; use \
                 stdio, http or sse here"
                    .into(),
            ));
        }
        TransportKind::Stdio => {
            if !headers.is_empty() {
                return Err(CliError::Usage(
                    "--header applies to http and sse servers; a stdio server takes -e KEY=VALUE"
                        .into(),
                ));
            }
            value.insert("command".into(), json!(first));
            value.insert(
                "args".into(),
                json!(command_or_url[1.min(command_or_url.len())..]),
            );
            let mut vars = Map::new();
            for pair in env {
                let (key, val) = pair.split_once('=').ok_or_else(|| {
                    CliError::Usage(format!("-e `{pair}`: write it as KEY=VALUE"))
                })?;
                vars.insert(key.to_string(), json!(val));
            }
            if !vars.is_empty() {
                value.insert("env".into(), Value::Object(vars));
            }
        }
        TransportKind::Http | TransportKind::Sse => {
            if command_or_url.len() != 1 {
                return Err(CliError::Usage(format!(
                    "a {kind} server takes one URL, not `{}`",
                    command_or_url.join(" ")
                )));
            }
            if !env.is_empty() {
                return Err(CliError::Usage(format!(
                    "-e applies to stdio servers; a {kind} server takes --header \"Name: value\""
                )));
            }
            value.insert("url".into(), json!(first));
            let mut map = Map::new();
            for header in headers {
                let (key, val) = header.split_once(':').ok_or_else(|| {
                    CliError::Usage(format!("--header `{header}`: write it as \"Name: value\""))
                })?;
                map.insert(key.trim().to_string(), json!(val.trim()));
            }
            if !map.is_empty() {
                value.insert("headers".into(), Value::Object(map));
            }
        }
    }
    Ok(Value::Object(value))
}

async fn serve(http: Option<SocketAddr>, ctx: McpContext) -> Result<ExitCode, CliError> {
    let cancel = CancellationToken::new();
    let tool_ctx = ToolContext::new(&ctx.project_root, ctx.spill_dir.clone(), cancel.clone());
    match http {
        None => {
            serve_stdio(ctx.registry, tool_ctx, ctx.gate).await?;
        }
        Some(addr) => {
            let server =
                HttpServer::bind(addr, ctx.registry, tool_ctx, ctx.gate, cancel.clone()).await?;
            // stderr, because a supervisor reading stdout may expect nothing there.
            eprintln!(
                "keel MCP server listening on http://{}/mcp",
                server.local_addr()
            );
            let stop = cancel.clone();
            let ctrl_c = async move {
                let _ = tokio::signal::ctrl_c().await;
                stop.cancel();
            };
            tokio::select! {
                result = server.run() => result?,
                () = ctrl_c => {}
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn add_builds_definitions_like_mcp_json() {
        assert_eq!(
            definition(
                &strings(&["npx", "-y", "srv"]),
                None,
                &strings(&["K=v=1"]),
                &[]
            )
            .unwrap(),
            json!({"type": "stdio", "command": "npx", "args": ["-y", "srv"], "env": {"K": "v=1"}})
        );
        assert_eq!(
            definition(
                &strings(&["https://x/mcp"]),
                None,
                &[],
                &strings(&["Authorization: Bearer t"])
            )
            .unwrap(),
            json!({"type": "http", "url": "https://x/mcp", "headers": {"Authorization": "Bearer t"}})
        );
        assert_eq!(
            definition(&strings(&["http://x/sse"]), Some("sse"), &[], &[]).unwrap(),
            json!({"type": "sse", "url": "http://x/sse"})
        );
        let error = definition(&strings(&["srv"]), None, &strings(&["NOEQUALS"]), &[]).unwrap_err();
        assert!(error.to_string().contains("KEY=VALUE"), "{error}");
        let error = definition(&strings(&["srv"]), None, &[], &strings(&["A: b"])).unwrap_err();
        assert!(
            error.to_string().contains("--header applies to http"),
            "{error}"
        );
        let error = definition(&strings(&["http://x", "y"]), Some("http"), &[], &[]).unwrap_err();
        assert!(error.to_string().contains("takes one URL"), "{error}");
    }
}
