//! `keel mcp serve`: keel's tools offered over MCP, on stdio or streamable HTTP, each call
//! passing keel's permission rules first.

use std::net::SocketAddr;
use std::sync::Arc;

use keel_tools::{ToolContext, ToolRegistry};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ListToolsResult,
    PaginatedRequestParams, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::transport::StreamableHttpServerConfig;
use rmcp::transport::streamable_http_server::StreamableHttpService;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::{ErrorData, RoleServer, ServerHandler, ServiceExt as _};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// Decides whether a call may run: `Ok` runs it, `Err(reason)` refuses it with the reason
/// (which should say how to allow it). Built by the caller from keel's permission rules.
pub type PermissionGate = Arc<dyn Fn(&str, &Value) -> Result<(), String> + Send + Sync>;

/// Why serving stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The MCP session could not be set up.
    #[error("MCP server: {0}")]
    Protocol(String),
    /// The HTTP listener could not be bound or failed.
    #[error("cannot serve MCP over HTTP on {addr}: {source}")]
    Http {
        /// The address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
}

/// keel's tools as an MCP server.
#[derive(Clone)]
pub struct KeelServer {
    inner: Arc<Inner>,
}

struct Inner {
    registry: ToolRegistry,
    ctx: ToolContext,
    gate: PermissionGate,
}

impl KeelServer {
    /// A server offering every tool of `registry`, running calls in `ctx` after `gate` agrees.
    pub fn new(registry: ToolRegistry, ctx: ToolContext, gate: PermissionGate) -> Self {
        Self {
            inner: Arc::new(Inner {
                registry,
                ctx,
                gate,
            }),
        }
    }

    /// The `tools/list` entries: name, description, input schema and the read-only hint.
    pub fn tool_list(&self) -> Vec<Value> {
        let registry = &self.inner.registry;
        registry
            .specs()
            .into_iter()
            .map(|spec| {
                let read_only = registry.is_read_only(&spec.name).unwrap_or(false);
                json!({
                    "name": spec.name,
                    "description": spec.description,
                    "inputSchema": spec.input_schema,
                    "annotations": {
                        "readOnlyHint": read_only,
                        "destructiveHint": !read_only,
                    },
                })
            })
            .collect()
    }

    /// Runs one call: unknown tools are a protocol error; a refusal by the permission gate and
    /// a failed tool are `isError` results the client's model can read.
    pub async fn call(
        &self,
        name: &str,
        arguments: Value,
        cancel: CancellationToken,
    ) -> Result<Value, ErrorData> {
        let registry = &self.inner.registry;
        if registry.get(name).is_none() {
            return Err(ErrorData::invalid_params(
                format!(
                    "unknown tool `{name}`; keel offers: {}",
                    registry.names().join(", ")
                ),
                None,
            ));
        }
        if let Err(reason) = (self.inner.gate)(name, &arguments) {
            tracing::info!("MCP call to {name} refused by the permission rules: {reason}");
            return Ok(json!({
                "content": [{
                    "type": "text",
                    "text": format!(
                        "keel's permission rules refused this call to {name}: {}. `keel mcp \
                         serve` applies the permission rules of the directory it runs in: \
                         change them in .keel/settings.json, or start it with \
                         --allowedTools or --permission-mode",
                        reason.trim_end_matches('.')
                    ),
                }],
                "isError": true,
                "resultType": "complete",
            }));
        }
        let ctx = self.inner.ctx.with_cancel(cancel);
        let result = registry.call(name, arguments, &ctx).await;
        let mut content = vec![json!({"type": "text", "text": result.content})];
        for image in &result.images {
            content.push(json!({
                "type": "image",
                "data": image.get("data").cloned().unwrap_or(Value::Null),
                "mimeType": image.get("media_type").cloned().unwrap_or(Value::Null),
            }));
        }
        let mut value = json!({
            "content": content,
            "isError": result.is_error,
            "resultType": "complete",
        });
        if let Some(structured @ Value::Object(_)) = result.structured {
            value["structuredContent"] = structured;
        }
        Ok(value)
    }
}

fn decode<T: serde::de::DeserializeOwned>(value: Value, what: &str) -> Result<T, ErrorData> {
    serde_json::from_value(value)
        .map_err(|error| ErrorData::internal_error(format!("building the {what}: {error}"), None))
}

impl ServerHandler for KeelServer {
    fn get_info(&self) -> ServerConfig {
        let value = json!({
            "protocolVersion": rmcp::model::ProtocolVersion::LATEST_WITH_INITIALIZE,
            "capabilities": {"tools": {"listChanged": false}},
            "serverInfo": {"name": "keel", "title": "keel", "version": env!("CARGO_PKG_VERSION")},
            "instructions": "keel's built-in coding tools (read, write and edit files, run \
                             shell commands, search). Calls are checked against keel's \
                             permission rules; a refused call returns an error saying why.",
        });
        match serde_json::from_value(value) {
            Ok(config) => config,
            Err(error) => {
                // The literal above follows rmcp's schema; keep serving with its defaults if a
                // future rmcp disagrees.
                tracing::warn!("building the MCP server info: {error}");
                ServerConfig::default()
            }
        }
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        // `resultType` is required from 2026-07-28 on; rmcp drops it for older peers.
        decode(
            json!({"tools": self.tool_list(), "resultType": "complete"}),
            "tool list",
        )
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let arguments = Value::Object(request.arguments.unwrap_or_default());
        let value = self
            .call(&request.name, arguments, context.ct.clone())
            .await?;
        let result: CallToolResult = decode(value, "tool result")?;
        Ok(result.into())
    }
}

/// Serves `registry` over stdin/stdout until the client closes the connection. Logs go to
/// stderr: stdout carries the protocol.
pub async fn serve_stdio(
    registry: ToolRegistry,
    ctx: ToolContext,
    gate: PermissionGate,
) -> Result<(), ServeError> {
    let server = KeelServer::new(registry, ctx, gate);
    let running = server
        .serve(rmcp::transport::stdio())
        .await
        .map_err(|error| ServeError::Protocol(error.to_string()))?;
    running
        .waiting()
        .await
        .map_err(|error| ServeError::Protocol(error.to_string()))?;
    Ok(())
}

/// A bound streamable HTTP endpoint at `/mcp`, not yet serving.
pub struct HttpServer {
    listener: tokio::net::TcpListener,
    router: axum::Router,
    addr: SocketAddr,
    cancel: CancellationToken,
}

impl HttpServer {
    /// Binds `addr` (use `127.0.0.1:0` for any free port); [`run`](Self::run) serves until
    /// `cancel` is cancelled. Requests whose `Host` or `Origin` is not this machine get 403,
    /// so a web page cannot reach the server through DNS rebinding.
    pub async fn bind(
        addr: SocketAddr,
        registry: ToolRegistry,
        ctx: ToolContext,
        gate: PermissionGate,
        cancel: CancellationToken,
    ) -> Result<Self, ServeError> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| ServeError::Http {
                addr: addr.to_string(),
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| ServeError::Http {
            addr: addr.to_string(),
            source,
        })?;
        let mut hosts = vec![
            "localhost".to_string(),
            "127.0.0.1".to_string(),
            "::1".to_string(),
            "[::1]".to_string(),
        ];
        let mut origins = vec![
            "http://localhost:*".to_string(),
            "http://127.0.0.1:*".to_string(),
            "http://[::1]:*".to_string(),
        ];
        if !addr.ip().is_loopback() && !addr.ip().is_unspecified() {
            // Bound to a specific address: clients reach it by that address.
            let host = match addr.ip() {
                std::net::IpAddr::V6(ip) => format!("[{ip}]"),
                ip => ip.to_string(),
            };
            origins.push(format!("http://{host}:*"));
            hosts.push(host);
        }
        let config = StreamableHttpServerConfig::default()
            .with_allowed_hosts(hosts)
            .with_allowed_origins(origins)
            .enforce_origin_validation()
            .with_cancellation_token(cancel.child_token());
        let server = KeelServer::new(registry, ctx, gate);
        let service = StreamableHttpService::new(
            move || Ok(server.clone()),
            Arc::new(LocalSessionManager::default()),
            config,
        );
        let router = axum::Router::new().route_service("/mcp", service);
        Ok(Self {
            listener,
            router,
            addr,
            cancel,
        })
    }

    /// The address actually bound (with the real port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until the cancel token is cancelled.
    pub async fn run(self) -> Result<(), ServeError> {
        let cancel = self.cancel.clone();
        let addr = self.addr;
        axum::serve(self.listener, self.router)
            .with_graceful_shutdown(async move { cancel.cancelled().await })
            .await
            .map_err(|source| ServeError::Http {
                addr: addr.to_string(),
                source,
            })
    }
}

/// Serves `registry` over streamable HTTP at `http://addr/mcp` until `cancel` is cancelled.
pub async fn serve_http(
    addr: SocketAddr,
    registry: ToolRegistry,
    ctx: ToolContext,
    gate: PermissionGate,
    cancel: CancellationToken,
) -> Result<(), ServeError> {
    HttpServer::bind(addr, registry, ctx, gate, cancel)
        .await?
        .run()
        .await
}
