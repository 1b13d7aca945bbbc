//! The MCP client manager: starts every configured server concurrently, keeps each one's
//! status, exposes their tools as keel tools named `mcp__<server>__<tool>`, their resources
//! through `ListMcpResourcesTool`/`ReadMcpResourceTool` and their prompts for slash commands,
//! and restarts a server that stopped on its next use.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use async_trait::async_trait;
use keel_tools::{Tool, ToolContext, ToolError, ToolOutput};
// Roots are deprecated by SEP-2577 for the 2026 revision, but they are part of 2025-11-25,
// which keel negotiates, and servers such as server-filesystem rely on them.
use rmcp::model::{
    CallToolRequestParams, ClientConfig, GetPromptRequestParams, ReadResourceRequestParams,
};
#[allow(deprecated)]
use rmcp::model::{ListRootsResult, Root};
use rmcp::service::{NotificationContext, Peer, RequestContext, RunningService};
use rmcp::{ClientHandler, ErrorData, RoleClient, ServiceError, ServiceExt as _};
use serde_json::{Map, Value, json};
use tokio::io::AsyncBufReadExt as _;
use tokio::sync::Notify;

use crate::config::{Launch, ServerConfig};
use crate::content::{Converted, convert_blocks, image_source, save_blob};
use crate::{AbortOnDrop, lock};

/// How long a server may take to start and answer `initialize` (Claude Code's default).
pub const DEFAULT_START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one tool call may take before keel gives up on it.
pub const DEFAULT_TOOL_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// How many lines of a stdio server's stderr are kept to explain a failure.
const STDERR_LINES: usize = 20;
/// The longest tool name the model APIs accept everywhere (OpenAI's limit; Anthropic's is 128).
const MAX_TOOL_NAME: usize = 64;

/// Where a server stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerStatus {
    /// Starting (or not started yet).
    Pending,
    /// Initialised and serving.
    Connected,
    /// Could not start, or stopped; the reason says why and what to do.
    Failed(String),
}

impl fmt::Display for ServerStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Pending => f.write_str("pending"),
            Self::Connected => f.write_str("connected"),
            Self::Failed(reason) => write!(f, "failed: {reason}"),
        }
    }
}

/// One server's state as `/mcp` and `keel mcp list` show it.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerState {
    /// The configured name.
    pub name: String,
    /// Where it stands.
    pub status: ServerStatus,
    /// How many tools it offers (0 unless connected).
    pub tool_count: usize,
    /// The name and version it reported.
    pub server_info: Option<(String, String)>,
    /// The configuration it was started from.
    pub config: ServerConfig,
}

/// Looks up environment variables for `${VAR}` expansion.
pub type EnvLookup = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// How the manager starts and talks to servers.
#[derive(Clone)]
pub struct ManagerOptions {
    /// The project directory: stdio servers run in it and it is the one root offered to
    /// servers that ask (`roots/list`).
    pub project_root: PathBuf,
    /// Per-server limit for starting and initialising (env `MCP_TIMEOUT`, milliseconds).
    pub start_timeout: Duration,
    /// Per-call limit for tools (env `MCP_TOOL_TIMEOUT`, milliseconds).
    pub tool_timeout: Duration,
    /// Variables for `${VAR}` expansion (default: the process environment).
    pub env: EnvLookup,
    /// The name keel gives itself in `initialize`.
    pub client_name: String,
    /// The version keel gives in `initialize`.
    pub client_version: String,
    /// How to reach servers of type `sdk` (in the frontend's process); `None` outside an
    /// Agent SDK session, where such servers fail with an explanation.
    pub sdk_bridge: Option<Arc<dyn crate::sdk::SdkBridge>>,
}

impl fmt::Debug for ManagerOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManagerOptions")
            .field("project_root", &self.project_root)
            .field("start_timeout", &self.start_timeout)
            .field("tool_timeout", &self.tool_timeout)
            .finish_non_exhaustive()
    }
}

impl ManagerOptions {
    /// Defaults for a project, with `MCP_TIMEOUT` / `MCP_TOOL_TIMEOUT` (milliseconds) from the
    /// environment as Claude Code reads them.
    pub fn new(project_root: impl Into<PathBuf>) -> Self {
        let millis = |name: &str| {
            std::env::var(name)
                .ok()
                .and_then(|text| text.trim().parse::<u64>().ok())
                .filter(|ms| *ms > 0)
                .map(Duration::from_millis)
        };
        Self {
            project_root: project_root.into(),
            start_timeout: millis("MCP_TIMEOUT").unwrap_or(DEFAULT_START_TIMEOUT),
            tool_timeout: millis("MCP_TOOL_TIMEOUT").unwrap_or(DEFAULT_TOOL_TIMEOUT),
            env: Arc::new(|name| std::env::var(name).ok()),
            client_name: "keel".to_string(),
            client_version: env!("CARGO_PKG_VERSION").to_string(),
            sdk_bridge: None,
        }
    }
}

/// Why a manager operation failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum McpError {
    /// No server has that name.
    #[error("no MCP server named `{name}`; configured servers: {known}")]
    UnknownServer {
        /// The name asked for.
        name: String,
        /// The configured names.
        known: String,
    },
    /// The server is not connected.
    #[error("MCP server `{name}` is not connected: {reason}")]
    NotConnected {
        /// The server.
        name: String,
        /// Its status.
        reason: String,
    },
    /// The server stopped while keel was using it; the next use starts it again.
    #[error("MCP server `{name}` stopped: {reason}; it will be restarted on the next call")]
    Stopped {
        /// The server.
        name: String,
        /// What was seen.
        reason: String,
    },
    /// The server answered with an error.
    #[error("MCP server `{name}` returned an error: {message}")]
    Server {
        /// The server.
        name: String,
        /// Its message.
        message: String,
        /// The JSON-RPC error code, when the server sent one (-32601: method not found).
        code: Option<i32>,
    },
    /// The request took too long.
    #[error("MCP server `{name}` did not answer within {seconds} s{hint}")]
    Timeout {
        /// The server.
        name: String,
        /// The limit.
        seconds: u64,
        /// Which setting raises it.
        hint: String,
    },
    /// The request was malformed on keel's side (e.g. a prompt argument missing).
    #[error("{0}")]
    Invalid(String),
}

/// A prompt a server offers, for `/mcp__<server>__<prompt>` slash commands.
#[derive(Debug, Clone, PartialEq)]
pub struct McpPrompt {
    /// The server.
    pub server: String,
    /// The prompt's name on the server.
    pub name: String,
    /// The slash command (without `/`): `mcp__<server>__<prompt>`.
    pub command: String,
    /// What it is for.
    pub description: Option<String>,
    /// Its arguments, in the order positional values fill them.
    pub arguments: Vec<McpPromptArgument>,
}

/// One argument of a prompt.
#[derive(Debug, Clone, PartialEq)]
pub struct McpPromptArgument {
    /// Its name.
    pub name: String,
    /// What it means.
    pub description: Option<String>,
    /// Whether it must be given.
    pub required: bool,
}

/// Arguments for a prompt: positional (from a slash command line) or by name.
#[derive(Debug, Clone, PartialEq)]
pub enum PromptArgs {
    /// Values in the order the prompt declares its arguments.
    Positional(Vec<String>),
    /// Values by argument name.
    Named(BTreeMap<String, String>),
}

impl PromptArgs {
    /// Splits a slash command's argument text on whitespace, keeping "quoted phrases" whole.
    pub fn from_command_line(text: &str) -> Self {
        let mut values = Vec::new();
        let mut current = String::new();
        let mut quoted = false;
        let mut started = false;
        for c in text.chars() {
            match c {
                '"' => {
                    quoted = !quoted;
                    started = true;
                }
                c if c.is_whitespace() && !quoted => {
                    if started {
                        values.push(std::mem::take(&mut current));
                        started = false;
                    }
                }
                c => {
                    current.push(c);
                    started = true;
                }
            }
        }
        if started {
            values.push(current);
        }
        Self::Positional(values)
    }
}

/// One message of an expanded prompt.
#[derive(Debug, Clone, PartialEq)]
pub struct McpPromptMessage {
    /// `user` or `assistant`.
    pub role: String,
    /// Its text (embedded text resources included).
    pub text: String,
    /// Its images as API image sources.
    pub images: Vec<Value>,
}

/// A resource a server offers.
#[derive(Debug, Clone, PartialEq)]
pub struct McpResource {
    /// The server.
    pub server: String,
    /// The resource's URI.
    pub uri: String,
    /// Its name.
    pub name: String,
    /// Its media type.
    pub mime_type: Option<String>,
    /// What it is.
    pub description: Option<String>,
}

/// The client side of one connection: answers `roots/list` and hears `list_changed`.
#[allow(deprecated)] // roots: see the import
struct KeelClient {
    info: ClientConfig,
    roots: Vec<Root>,
    tools_changed: Arc<Notify>,
}

#[allow(deprecated)] // roots: see the import
impl ClientHandler for KeelClient {
    fn get_info(&self) -> ClientConfig {
        self.info.clone()
    }

    async fn list_roots(
        &self,
        _context: RequestContext<RoleClient>,
    ) -> Result<ListRootsResult, ErrorData> {
        Ok(ListRootsResult::new(self.roots.clone()))
    }

    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.tools_changed.notify_one();
    }
}

/// A live connection to one server.
struct Connection {
    service: RunningService<RoleClient, KeelClient>,
    stderr: Arc<Mutex<VecDeque<String>>>,
    /// The process of a stdio server.
    pid: Option<u32>,
    _tasks: Vec<AbortOnDrop>,
}

impl Connection {
    fn peer(&self) -> Peer<RoleClient> {
        self.service.peer().clone()
    }

    fn is_closed(&self) -> bool {
        self.service.is_closed() || self.service.peer().is_transport_closed()
    }

    /// Why the connection ended, with the server's last stderr line when there is one.
    fn stop_reason(&self) -> String {
        let tail = lock(&self.stderr).back().cloned();
        match tail {
            Some(line) => format!("the connection closed (last stderr line: {line})"),
            None => "the connection closed".to_string(),
        }
    }
}

/// The mutable part of a server's record.
struct SlotState {
    status: ServerStatus,
    tools: Vec<Arc<dyn Tool>>,
    instructions: Option<String>,
    server_info: Option<(String, String)>,
    has_resources: bool,
    has_prompts: bool,
    pid: Option<u32>,
}

/// One configured server.
struct Slot {
    config: ServerConfig,
    options: Arc<ManagerOptions>,
    /// Held while connecting or replacing the connection, so a restart happens once.
    conn: tokio::sync::Mutex<Option<Arc<Connection>>>,
    state: Mutex<SlotState>,
}

impl Slot {
    fn name(&self) -> &str {
        &self.config.name
    }

    fn set_status(&self, status: ServerStatus) {
        lock(&self.state).status = status;
    }

    /// The current connection, if one is open.
    async fn open_connection(&self) -> Option<Arc<Connection>> {
        let guard = self.conn.lock().await;
        guard.as_ref().filter(|conn| !conn.is_closed()).cloned()
    }

    /// Starts the server (under the connection lock) and records the outcome.
    async fn connect(self: &Arc<Self>) -> Result<Arc<Connection>, McpError> {
        let mut guard = self.conn.lock().await;
        if let Some(conn) = guard.as_ref()
            && !conn.is_closed()
        {
            return Ok(conn.clone());
        }
        *guard = None;
        self.set_status(ServerStatus::Pending);
        let timeout = self.options.start_timeout;
        let outcome = match tokio::time::timeout(timeout, self.start()).await {
            Ok(outcome) => outcome,
            Err(_) => Err(format!(
                "did not finish starting within {} s (raise MCP_TIMEOUT, in milliseconds, if it \
                 needs longer)",
                timeout.as_secs_f64()
            )),
        };
        match outcome {
            Ok(conn) => {
                let conn = Arc::new(conn);
                *guard = Some(conn.clone());
                Ok(conn)
            }
            Err(reason) => {
                tracing::warn!("MCP server `{}` failed to start: {reason}", self.name());
                let mut state = lock(&self.state);
                state.status = ServerStatus::Failed(reason.clone());
                state.tools.clear();
                state.has_resources = false;
                state.has_prompts = false;
                state.pid = None;
                Err(McpError::NotConnected {
                    name: self.name().to_string(),
                    reason,
                })
            }
        }
    }

    /// Launches the transport, initialises, and lists the tools.
    async fn start(self: &Arc<Self>) -> Result<Connection, String> {
        let launch = self
            .config
            .launch(self.options.env.as_ref())
            .map_err(|error| error.to_string())?;
        let tools_changed = Arc::new(Notify::new());
        let client = KeelClient {
            info: client_info(&self.options),
            roots: roots_of(&self.options.project_root),
            tools_changed: tools_changed.clone(),
        };
        let stderr = Arc::new(Mutex::new(VecDeque::new()));
        let mut tasks = Vec::new();
        let mut pid = None;
        let service = match &launch {
            Launch::Stdio { command, args, env } => {
                let mut cmd = tokio::process::Command::new(command);
                cmd.args(args)
                    .envs(env)
                    .current_dir(&self.options.project_root)
                    .kill_on_drop(true);
                let (transport, child_stderr) = rmcp::transport::TokioChildProcess::builder(cmd)
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .map_err(|error| spawn_error(command, &error))?;
                pid = transport.id();
                let mut stderr_reader = child_stderr
                    .map(|child_stderr| capture_stderr(self.name(), child_stderr, stderr.clone()));
                match client.serve(transport).await {
                    Ok(service) => {
                        tasks.extend(stderr_reader);
                        service
                    }
                    Err(error) => {
                        // Let the stderr reader drain what the process printed before it
                        // died (it ends at EOF), since that usually says why.
                        if let Some(reader) = stderr_reader.as_mut() {
                            reader.finish_within(Duration::from_millis(500)).await;
                        }
                        let tail: Vec<String> = lock(&stderr).iter().cloned().collect();
                        let mut reason = format!("initialize failed: {error}");
                        if !tail.is_empty() {
                            reason.push_str(&format!("; stderr: {}", tail.join(" | ")));
                        }
                        return Err(reason);
                    }
                }
            }
            Launch::Http { url, headers } => {
                let headers = crate::sse::header_map(headers).map_err(|e| e.to_string())?;
                let config = rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig::with_uri(
                    url.as_str(),
                )
                .custom_headers(headers.into_iter().filter_map(|(k, v)| Some((k?, v))).collect());
                let transport = rmcp::transport::StreamableHttpClientTransport::from_config(config);
                client
                    .serve(transport)
                    .await
                    .map_err(|error| format!("initialize failed at {url}: {error}"))?
            }
            Launch::Sse { url, headers } => {
                let transport = crate::sse::SseClientTransport::connect(url, headers)
                    .await
                    .map_err(|error| error.to_string())?;
                client
                    .serve(transport)
                    .await
                    .map_err(|error| format!("initialize failed at {url}: {error}"))?
            }
            Launch::Sdk { name } => {
                let bridge = self.options.sdk_bridge.clone().ok_or_else(|| {
                    "it is an in-process server of an Agent SDK program (type `sdk`), which \
                     exists only when that program runs keel (--input-format stream-json); \
                     remove it from this configuration"
                        .to_string()
                })?;
                let transport = crate::sdk::SdkTransport::new(bridge, name);
                client
                    .serve(transport)
                    .await
                    .map_err(|error| format!("initialize failed through the Agent SDK: {error}"))?
            }
        };
        let peer = service.peer().clone();
        let info = peer.peer_info();
        let capabilities = info
            .as_ref()
            .and_then(|info| serde_json::to_value(&info.capabilities).ok())
            .unwrap_or(Value::Null);
        let has = |key: &str| capabilities.get(key).is_some_and(|v| !v.is_null());
        let tools = if has("tools") {
            list_tools(self, &peer)
                .await
                .map_err(|e| format!("tools/list failed: {e}"))?
        } else {
            Vec::new()
        };
        {
            let mut state = lock(&self.state);
            state.instructions = info
                .as_ref()
                .and_then(|info| info.instructions.clone())
                .filter(|text| !text.trim().is_empty());
            state.server_info = info.as_ref().and_then(|info| {
                info.server_info
                    .as_ref()
                    .map(|i| (i.name.clone(), i.version.clone()))
            });
            state.has_resources = has("resources");
            state.has_prompts = has("prompts");
            state.tools = tools;
            state.status = ServerStatus::Connected;
            state.pid = pid;
        }
        tasks.push(refresh_on_change(Arc::downgrade(self), peer, tools_changed));
        Ok(Connection {
            service,
            stderr,
            pid,
            _tasks: tasks,
        })
    }

    /// The peer to send a request to: the open connection, or a new one when there is none.
    /// A connection found closed is reported as stopped (once) and dropped, so the next use
    /// starts the server again.
    async fn peer_for_use(
        self: &Arc<Self>,
    ) -> Result<(Peer<RoleClient>, Arc<Connection>), McpError> {
        let existing = self.conn.lock().await.clone();
        match existing {
            Some(conn) if !conn.is_closed() => Ok((conn.peer(), conn)),
            Some(conn) => Err(self.stopped(&conn).await),
            None => {
                let conn = self.connect().await?;
                Ok((conn.peer(), conn))
            }
        }
    }

    /// Records that `conn` has stopped, drops it, and returns the error to report.
    async fn stopped(&self, conn: &Arc<Connection>) -> McpError {
        let reason = conn.stop_reason();
        let mut guard = self.conn.lock().await;
        if guard
            .as_ref()
            .is_some_and(|current| Arc::ptr_eq(current, conn))
        {
            *guard = None;
            self.set_status(ServerStatus::Failed(format!(
                "stopped: {reason}; it will be restarted on its next use"
            )));
            lock(&self.state).pid = None;
        }
        McpError::Stopped {
            name: self.name().to_string(),
            reason,
        }
    }

    /// Classifies a request error: a closed transport means the server stopped.
    async fn request_error(&self, conn: &Arc<Connection>, error: ServiceError) -> McpError {
        match error {
            ServiceError::McpError(data) => McpError::Server {
                name: self.name().to_string(),
                message: format!("{} (code {})", data.message, data.code.0),
                code: Some(data.code.0),
            },
            ServiceError::TransportClosed | ServiceError::TransportSend(_) => {
                self.stopped(conn).await
            }
            ServiceError::Cancelled { .. } if conn.is_closed() => self.stopped(conn).await,
            other => {
                if conn.is_closed() {
                    self.stopped(conn).await
                } else {
                    McpError::Server {
                        name: self.name().to_string(),
                        message: other.to_string(),
                        code: None,
                    }
                }
            }
        }
    }

    /// Runs `request` against the server within `limit`, turning transport trouble into a
    /// `Stopped` error.
    async fn request<T, F, Fut>(
        self: &Arc<Self>,
        what: &str,
        limit: Limit,
        request: F,
    ) -> Result<T, McpError>
    where
        F: FnOnce(Peer<RoleClient>) -> Fut,
        Fut: Future<Output = Result<T, ServiceError>>,
    {
        let (peer, conn) = self.peer_for_use().await?;
        let (timeout, variable) = match limit {
            Limit::Work => (self.options.tool_timeout, "MCP_TOOL_TIMEOUT"),
            Limit::Listing => (self.options.start_timeout, "MCP_TIMEOUT"),
        };
        match tokio::time::timeout(timeout, request(peer)).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(self.request_error(&conn, error).await),
            Err(_) => Err(McpError::Timeout {
                name: self.name().to_string(),
                seconds: timeout.as_secs(),
                hint: format!(" to {what} (raise {variable}, in milliseconds, if it needs longer)"),
            }),
        }
    }
}

/// Which limit a request runs under.
#[derive(Debug, Clone, Copy)]
enum Limit {
    /// Real work (tool calls, reads, prompt expansion): `MCP_TOOL_TIMEOUT`.
    Work,
    /// Listing what a server offers, which should be quick: `MCP_TIMEOUT`.
    Listing,
}

/// keel's `initialize` parameters: roots declared (answered with the project directory), no
/// sampling or elicitation, since keel cannot serve those from inside a tool call.
fn client_info(options: &ManagerOptions) -> ClientConfig {
    let value = json!({
        "protocolVersion": rmcp::model::ProtocolVersion::LATEST_WITH_INITIALIZE,
        "capabilities": {"roots": {"listChanged": false}},
        "clientInfo": {"name": options.client_name, "version": options.client_version},
    });
    match serde_json::from_value(value) {
        Ok(info) => info,
        // The literal above matches rmcp's schema (covered by the peer tests); fall back to
        // rmcp's defaults rather than fail if a future version disagrees.
        Err(error) => {
            tracing::warn!("building the MCP initialize parameters: {error}");
            ClientConfig::default()
        }
    }
}

#[allow(deprecated)] // roots: see the import
fn roots_of(project_root: &std::path::Path) -> Vec<Root> {
    match reqwest::Url::from_file_path(project_root) {
        Ok(url) => {
            let mut root = Root::new(url.to_string());
            root.name = project_root
                .file_name()
                .map(|name| name.to_string_lossy().into_owned());
            vec![root]
        }
        Err(()) => Vec::new(),
    }
}

fn spawn_error(command: &str, error: &std::io::Error) -> String {
    if error.kind() == std::io::ErrorKind::NotFound {
        format!("cannot run `{command}`: command not found (check `command` and PATH)")
    } else {
        format!("cannot run `{command}`: {error}")
    }
}

/// Keeps the last lines a stdio server writes to stderr (logged at debug level).
fn capture_stderr(
    name: &str,
    stderr: tokio::process::ChildStderr,
    tail: Arc<Mutex<VecDeque<String>>>,
) -> AbortOnDrop {
    let name = name.to_string();
    AbortOnDrop::new(tokio::spawn(async move {
        let mut lines = tokio::io::BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            tracing::debug!("MCP server `{name}` stderr: {line}");
            let mut tail = lock(&tail);
            if tail.len() == STDERR_LINES {
                tail.pop_front();
            }
            tail.push_back(line);
        }
    }))
}

/// Re-lists a server's tools whenever it says they changed.
fn refresh_on_change(
    slot: Weak<Slot>,
    peer: Peer<RoleClient>,
    changed: Arc<Notify>,
) -> AbortOnDrop {
    AbortOnDrop::new(tokio::spawn(async move {
        loop {
            changed.notified().await;
            let Some(slot) = slot.upgrade() else { return };
            match list_tools(&slot, &peer).await {
                Ok(tools) => {
                    tracing::debug!(
                        "MCP server `{}` changed its tools: now {}",
                        slot.name(),
                        tools.len()
                    );
                    lock(&slot.state).tools = tools;
                }
                Err(error) => tracing::warn!(
                    "MCP server `{}` said its tools changed, but listing them failed: {error}",
                    slot.name()
                ),
            }
        }
    }))
}

/// Lists a server's tools as keel tools.
async fn list_tools(
    slot: &Arc<Slot>,
    peer: &Peer<RoleClient>,
) -> Result<Vec<Arc<dyn Tool>>, ServiceError> {
    let listed = peer.list_all_tools().await?;
    let mut tools: Vec<Arc<dyn Tool>> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for tool in listed {
        let value = serde_json::to_value(&tool).unwrap_or(Value::Null);
        let original = tool.name.to_string();
        let exposed = tool_name(slot.name(), &original);
        if !seen.insert(exposed.clone()) {
            tracing::warn!(
                "MCP server `{}`: tool `{original}` is offered as `{exposed}`, a name another of its tools already has; skipped",
                slot.name()
            );
            continue;
        }
        let mut schema = value
            .get("inputSchema")
            .cloned()
            .unwrap_or_else(|| json!({"type": "object"}));
        if !schema.is_object() {
            schema = json!({"type": "object"});
        }
        tools.push(Arc::new(McpTool {
            slot: Arc::downgrade(slot),
            server: slot.name().to_string(),
            name: exposed,
            original,
            description: value
                .get("description")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            schema,
            read_only: value
                .pointer("/annotations/readOnlyHint")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        }));
    }
    Ok(tools)
}

/// `[A-Za-z0-9_-]` only: anything else becomes `_`.
pub fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The name a server's tool is offered under: `mcp__<server>__<tool>`, sanitised and cut to
/// the length every model API accepts.
pub fn tool_name(server: &str, tool: &str) -> String {
    let mut name = format!("mcp__{}__{}", sanitize(server), sanitize(tool));
    name.truncate(MAX_TOOL_NAME);
    name
}

/// A remote tool, offered to the model as a keel tool.
struct McpTool {
    slot: Weak<Slot>,
    server: String,
    name: String,
    original: String,
    description: String,
    schema: Value,
    read_only: bool,
}

#[async_trait]
impl Tool for McpTool {
    fn name(&self) -> &str {
        &self.name
    }

    fn description(&self) -> &str {
        &self.description
    }

    fn input_schema(&self) -> Value {
        self.schema.clone()
    }

    fn is_read_only(&self) -> bool {
        self.read_only
    }

    async fn call(&self, input: Value, ctx: &ToolContext) -> Result<ToolOutput, ToolError> {
        let Some(slot) = self.slot.upgrade() else {
            return Err(ToolError::Failed(format!(
                "MCP server `{}` is no longer available in this session",
                self.server
            )));
        };
        let arguments = match input {
            Value::Object(map) => map,
            Value::Null => Map::new(),
            other => {
                return Err(ToolError::InvalidInput(format!(
                    "the input must be a JSON object, not {other}"
                )));
            }
        };
        let params = CallToolRequestParams::new(self.original.clone()).with_arguments(arguments);
        let what = format!("run {}", self.name);
        let call = slot.request(&what, Limit::Work, |peer| async move {
            peer.call_tool(params).await
        });
        let result = tokio::select! {
            result = call => result,
            () = ctx.cancel.cancelled() => {
                return Err(ToolError::Interrupted { partial: String::new() });
            }
        };
        let result = result.map_err(|error| ToolError::Failed(error.to_string()))?;
        let value = serde_json::to_value(&result).unwrap_or(Value::Null);
        let output = tool_output(&value, &ctx.spill_dir).await;
        if value.get("isError").and_then(Value::as_bool) == Some(true) {
            Err(ToolError::WithOutput(output))
        } else {
            Ok(output)
        }
    }
}

/// A `tools/call` result as keel output: text blocks become the text (cut to keel's limit
/// with the rest spilled to a file, as for built-in tools), images become image sources, and
/// `structuredContent` becomes the structured form (and the text, when there is no text).
async fn tool_output(result: &Value, spill_dir: &std::path::Path) -> ToolOutput {
    let blocks = result
        .get("content")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let Converted {
        mut text,
        has_text,
        images,
    } = convert_blocks(&blocks);
    let structured = result
        .get("structuredContent")
        .filter(|value| !value.is_null())
        .cloned();
    if !has_text {
        text = match &structured {
            Some(value) => serde_json::to_string_pretty(value).unwrap_or_default(),
            None if images.is_empty() => "(no content)".to_string(),
            None => String::new(),
        };
    }
    let content = if text.len() > keel_tools::output::MAX_OUTPUT_CHARS {
        let dir = spill_dir.to_path_buf();
        match tokio::task::spawn_blocking(move || keel_tools::output::limit(text, &dir)).await {
            Ok(text) => text,
            Err(error) => format!("internal error while shortening the MCP tool output: {error}"),
        }
    } else {
        text
    };
    ToolOutput {
        content,
        structured,
        images,
    }
}

/// The shared state behind a [`McpManager`].
struct Inner {
    slots: Vec<Arc<Slot>>,
}

/// The MCP servers of a session. Cheap to clone; clones share the servers.
#[derive(Clone)]
pub struct McpManager {
    inner: Arc<Inner>,
}

impl fmt::Debug for McpManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("McpManager")
            .field(
                "servers",
                &self
                    .inner
                    .slots
                    .iter()
                    .map(|s| s.name())
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl McpManager {
    /// A manager for `configs` with every server pending; nothing starts until
    /// [`connect_all`](Self::connect_all).
    pub fn new(configs: Vec<ServerConfig>, options: ManagerOptions) -> Self {
        let options = Arc::new(options);
        let slots = configs
            .into_iter()
            .map(|config| {
                Arc::new(Slot {
                    config,
                    options: options.clone(),
                    conn: tokio::sync::Mutex::new(None),
                    state: Mutex::new(SlotState {
                        status: ServerStatus::Pending,
                        tools: Vec::new(),
                        instructions: None,
                        server_info: None,
                        has_resources: false,
                        has_prompts: false,
                        pid: None,
                    }),
                })
            })
            .collect();
        Self {
            inner: Arc::new(Inner { slots }),
        }
    }

    /// Creates the manager and starts every server concurrently; returns when each one has
    /// connected, failed or hit its start timeout, so a broken server delays nothing beyond
    /// `start_timeout`.
    pub async fn start(configs: Vec<ServerConfig>, options: ManagerOptions) -> Self {
        let manager = Self::new(configs, options);
        manager.connect_all().await;
        manager
    }

    /// Starts every server that is not connected, all at once. A server that fails is marked
    /// failed with the reason; the others are unaffected.
    pub async fn connect_all(&self) {
        let starts = self.inner.slots.iter().map(|slot| async move {
            let _ = slot.connect().await;
        });
        futures::future::join_all(starts).await;
    }

    /// Restarts one server (`/mcp` reconnect), returning its new status.
    pub async fn reconnect(&self, name: &str) -> Result<ServerStatus, McpError> {
        let slot = self.slot(name)?;
        let old = slot.conn.lock().await.take();
        if let Some(conn) = old {
            close(conn).await;
        }
        let _ = slot.connect().await;
        Ok(lock(&slot.state).status.clone())
    }

    /// Every server's name and status, in configuration order.
    pub fn statuses(&self) -> Vec<(String, ServerStatus)> {
        self.servers()
            .into_iter()
            .map(|state| (state.name, state.status))
            .collect()
    }

    /// Every server's state, for `/mcp` and `keel mcp list`.
    pub fn servers(&self) -> Vec<ServerState> {
        self.inner
            .slots
            .iter()
            .map(|slot| {
                let closed = slot.conn.try_lock().ok().and_then(|guard| {
                    guard
                        .as_ref()
                        .filter(|c| c.is_closed())
                        .map(|c| c.stop_reason())
                });
                let state = lock(&slot.state);
                let status = match (&state.status, closed) {
                    (ServerStatus::Connected, Some(reason)) => ServerStatus::Failed(format!(
                        "stopped: {reason}; it will be restarted on its next use"
                    )),
                    (status, _) => status.clone(),
                };
                ServerState {
                    name: slot.name().to_string(),
                    tool_count: if status == ServerStatus::Connected {
                        state.tools.len()
                    } else {
                        0
                    },
                    status,
                    server_info: state.server_info.clone(),
                    config: slot.config.clone(),
                }
            })
            .collect()
    }

    /// The `instructions` each connected server gave in `initialize`, by server, for the system
    /// prompt.
    pub fn instructions(&self) -> Vec<(String, String)> {
        self.inner
            .slots
            .iter()
            .filter_map(|slot| {
                let state = lock(&slot.state);
                state
                    .instructions
                    .clone()
                    .map(|text| (slot.name().to_string(), text))
            })
            .collect()
    }

    /// The tools to offer the model now: every server's tools (kept while a stopped server
    /// waits for its restart on next use), plus `ListMcpResourcesTool` and
    /// `ReadMcpResourceTool` when a server has resources. Re-read before each model request:
    /// servers may change their tools at any time (`list_changed`).
    pub fn tools(&self) -> Vec<Arc<dyn Tool>> {
        let mut tools = Vec::new();
        let mut resources = false;
        for slot in &self.inner.slots {
            let state = lock(&slot.state);
            tools.extend(state.tools.iter().cloned());
            resources |= state.has_resources;
        }
        if resources {
            tools.push(Arc::new(crate::resources::ListResourcesTool::new(
                self.clone(),
            )));
            tools.push(Arc::new(crate::resources::ReadResourceTool::new(
                self.clone(),
            )));
        }
        tools
    }

    /// The process id of a stdio server, while it runs (for tests and diagnostics).
    pub fn pid(&self, name: &str) -> Option<u32> {
        let slot = self.slot(name).ok()?;
        lock(&slot.state).pid
    }

    /// The configured server names.
    pub fn names(&self) -> Vec<String> {
        self.inner
            .slots
            .iter()
            .map(|s| s.name().to_string())
            .collect()
    }

    fn slot(&self, name: &str) -> Result<Arc<Slot>, McpError> {
        self.inner
            .slots
            .iter()
            .find(|slot| slot.name() == name)
            .cloned()
            .ok_or_else(|| McpError::UnknownServer {
                name: name.to_string(),
                known: self.known(),
            })
    }

    fn known(&self) -> String {
        let names = self.names();
        if names.is_empty() {
            "none".to_string()
        } else {
            names.join(", ")
        }
    }

    /// The resources of one server, or of every server that has resources (asked
    /// concurrently). A server that answers `resources/list` with "method not found" has none.
    pub async fn list_resources(&self, server: Option<&str>) -> Result<Vec<McpResource>, McpError> {
        let slots = match server {
            Some(name) => vec![self.slot(name)?],
            None => self
                .inner
                .slots
                .iter()
                .filter(|slot| {
                    let state = lock(&slot.state);
                    state.has_resources
                })
                .cloned()
                .collect(),
        };
        let lists = slots.iter().map(|slot| async move {
            let listed = slot
                .request("list resources", Limit::Listing, |peer| async move {
                    peer.list_all_resources().await
                })
                .await;
            let listed = match listed {
                Ok(listed) => listed,
                Err(McpError::Server {
                    code: Some(-32601), ..
                }) => Vec::new(),
                Err(error) if server.is_some() => return Err(error),
                Err(error) => {
                    tracing::warn!("listing resources: {error}");
                    Vec::new()
                }
            };
            Ok(listed
                .into_iter()
                .map(|resource| {
                    let value = serde_json::to_value(&resource).unwrap_or(Value::Null);
                    let text =
                        |key: &str| value.get(key).and_then(Value::as_str).map(str::to_string);
                    McpResource {
                        server: slot.name().to_string(),
                        uri: text("uri").unwrap_or_default(),
                        name: text("name").unwrap_or_default(),
                        mime_type: text("mimeType"),
                        description: text("description"),
                    }
                })
                .collect::<Vec<_>>())
        });
        let mut out = Vec::new();
        for listed in futures::future::join_all(lists).await {
            out.extend(listed?);
        }
        Ok(out)
    }

    /// Reads one resource: text contents (and blobs of a textual type) as text; image blobs
    /// as image sources; other blobs saved under `save_dir` and described by path.
    pub async fn read_resource(
        &self,
        server: &str,
        uri: &str,
        save_dir: &std::path::Path,
    ) -> Result<ToolOutput, McpError> {
        let slot = self.slot(server)?;
        let params = ReadResourceRequestParams::new(uri);
        let result = slot
            .request("read a resource", Limit::Work, |peer| async move {
                peer.read_resource(params).await
            })
            .await?;
        let value = serde_json::to_value(&result).unwrap_or(Value::Null);
        let mut contents = Vec::new();
        let mut images = Vec::new();
        for item in value
            .get("contents")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let item_uri = item.get("uri").and_then(Value::as_str).unwrap_or(uri);
            let mime = item.get("mimeType").and_then(Value::as_str);
            let mut entry = json!({"uri": item_uri});
            if let Some(mime) = mime {
                entry["mimeType"] = json!(mime);
            }
            if let Some(text) = item.get("text").and_then(Value::as_str) {
                entry["text"] = json!(text);
            } else if let Some(blob) = item.get("blob").and_then(Value::as_str) {
                if let Some(text) = mime
                    .filter(|m| is_textual(m))
                    .and_then(|_| decode_text(blob))
                {
                    entry["text"] = json!(text);
                } else if let Some(source) = mime.and_then(|mime| image_source(mime, blob)) {
                    images.push(source);
                    entry["image"] = json!("sent to the model as an image");
                } else {
                    match save_blob(save_dir, item_uri, blob) {
                        Ok(path) => {
                            entry["blobSavedTo"] = json!(path.display().to_string());
                        }
                        Err(error) => entry["error"] = json!(error),
                    }
                }
            }
            contents.push(entry);
        }
        let structured = json!({"contents": contents});
        Ok(ToolOutput {
            content: serde_json::to_string_pretty(&structured).unwrap_or_default(),
            structured: Some(structured),
            images,
        })
    }

    /// The prompts of every connected server that has prompts, for slash commands (servers
    /// are asked concurrently).
    pub async fn list_prompts(&self) -> Vec<McpPrompt> {
        let lists = self.inner.slots.iter().map(prompts_of);
        futures::future::join_all(lists)
            .await
            .into_iter()
            .flatten()
            .collect()
    }

    /// Expands a prompt. Positional values fill the declared arguments in order; a required
    /// argument left out, or an extra value, is an error naming the arguments.
    pub async fn get_prompt(
        &self,
        server: &str,
        name: &str,
        args: PromptArgs,
    ) -> Result<Vec<McpPromptMessage>, McpError> {
        let slot = self.slot(server)?;
        let declared = self
            .list_prompts()
            .await
            .into_iter()
            .find(|prompt| prompt.server == server && prompt.name == name);
        let arguments = bind_arguments(server, name, declared.as_ref(), args)?;
        let mut params = GetPromptRequestParams::new(name);
        if !arguments.is_empty() {
            params = params.with_arguments(arguments);
        }
        let result = slot
            .request("get a prompt", Limit::Work, |peer| async move {
                peer.get_prompt(params).await
            })
            .await?;
        let value = serde_json::to_value(&result).unwrap_or(Value::Null);
        Ok(value
            .get("messages")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|message| {
                let blocks = match message.get("content") {
                    Some(Value::Array(blocks)) => blocks.clone(),
                    Some(block) => vec![block.clone()],
                    None => Vec::new(),
                };
                let converted = convert_blocks(&blocks);
                McpPromptMessage {
                    role: message
                        .get("role")
                        .and_then(Value::as_str)
                        .unwrap_or("user")
                        .to_string(),
                    text: converted.text,
                    images: converted.images,
                }
            })
            .collect())
    }

    /// The server and prompt a slash command (`mcp__<server>__<prompt>`, without `/`) names.
    pub async fn find_prompt_command(&self, command: &str) -> Option<McpPrompt> {
        self.list_prompts()
            .await
            .into_iter()
            .find(|prompt| prompt.command == command)
    }

    /// Closes every connection (stdio servers are asked to exit, then killed).
    pub async fn shutdown(&self) {
        let closing = self.inner.slots.iter().map(|slot| async move {
            let conn = slot.conn.lock().await.take();
            if let Some(conn) = conn {
                close(conn).await;
            }
            lock(&slot.state).pid = None;
        });
        futures::future::join_all(closing).await;
    }
}

/// One server's prompts (none when it is not connected or has no prompts).
async fn prompts_of(slot: &Arc<Slot>) -> Vec<McpPrompt> {
    let mut out = Vec::new();
    let wanted = {
        let state = lock(&slot.state);
        state.has_prompts && state.status == ServerStatus::Connected
    };
    if !wanted || slot.open_connection().await.is_none() {
        return out;
    }
    let listed = match slot
        .request("list prompts", Limit::Listing, |peer| async move {
            peer.list_all_prompts().await
        })
        .await
    {
        Ok(listed) => listed,
        Err(error) => {
            tracing::warn!("listing prompts: {error}");
            return out;
        }
    };
    for prompt in listed {
        let value = serde_json::to_value(&prompt).unwrap_or(Value::Null);
        let name = value
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let arguments = value
            .get("arguments")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|arg| McpPromptArgument {
                name: arg
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                description: arg
                    .get("description")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                required: arg
                    .get("required")
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
            })
            .collect();
        out.push(McpPrompt {
            server: slot.name().to_string(),
            command: tool_name(slot.name(), &name),
            name,
            description: value
                .get("description")
                .and_then(Value::as_str)
                .map(str::to_string),
            arguments,
        });
    }
    out
}

/// How long a stdio server gets to exit after its stdin closes before it is sent SIGTERM.
const EXIT_GRACE: Duration = Duration::from_millis(500);

/// Closes a connection if nobody else holds it (an in-flight call keeps it alive until done;
/// dropping the last handle closes it then). As the spec asks for stdio servers: close stdin,
/// wait briefly, then SIGTERM (rmcp itself would wait 3 s first, and kills what is left when
/// the transport is dropped).
async fn close(conn: Arc<Connection>) {
    if let Ok(mut conn) = Arc::try_unwrap(conn) {
        let pid = conn.pid;
        // Not rmcp's close_with_timeout, which logs a warning for every slow server.
        let closed = tokio::time::timeout(EXIT_GRACE, conn.service.close()).await;
        if closed.is_err()
            && let Some(pid) = pid
        {
            terminate(pid);
        }
    }
}

#[cfg(unix)]
fn terminate(pid: u32) {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    if let Ok(pid) = i32::try_from(pid) {
        let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
    }
}

#[cfg(not(unix))]
fn terminate(_pid: u32) {}

/// Media types whose bytes are text the model can read directly.
fn is_textual(mime: &str) -> bool {
    mime.starts_with("text/")
        || mime.ends_with("+json")
        || mime.ends_with("+xml")
        || matches!(
            mime,
            "application/json" | "application/xml" | "application/yaml"
        )
}

/// A base64 blob as UTF-8 text, if it is that.
fn decode_text(blob: &str) -> Option<String> {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(blob.trim())
        .ok()?;
    String::from_utf8(bytes).ok()
}

fn bind_arguments(
    server: &str,
    name: &str,
    declared: Option<&McpPrompt>,
    args: PromptArgs,
) -> Result<Map<String, Value>, McpError> {
    let declared_args = declared.map(|p| p.arguments.as_slice()).unwrap_or(&[]);
    let names = || {
        if declared_args.is_empty() {
            "none".to_string()
        } else {
            declared_args
                .iter()
                .map(|a| {
                    if a.required {
                        a.name.clone()
                    } else {
                        format!("[{}]", a.name)
                    }
                })
                .collect::<Vec<_>>()
                .join(" ")
        }
    };
    let mut bound = Map::new();
    match args {
        PromptArgs::Named(map) => {
            for (key, value) in map {
                bound.insert(key, Value::String(value));
            }
        }
        PromptArgs::Positional(values) => {
            if values.len() > declared_args.len() {
                return Err(McpError::Invalid(format!(
                    "/{} takes {} argument(s) ({}), but {} were given",
                    tool_name(server, name),
                    declared_args.len(),
                    names(),
                    values.len()
                )));
            }
            for (arg, value) in declared_args.iter().zip(values) {
                bound.insert(arg.name.clone(), Value::String(value));
            }
        }
    }
    for arg in declared_args.iter().filter(|a| a.required) {
        if !bound.contains_key(&arg.name) {
            return Err(McpError::Invalid(format!(
                "/{} needs the argument `{}`; usage: /{} {}",
                tool_name(server, name),
                arg.name,
                tool_name(server, name),
                names()
            )));
        }
    }
    Ok(bound)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_names_are_prefixed_sanitised_and_short() {
        assert_eq!(
            tool_name("everything", "get-sum"),
            "mcp__everything__get-sum"
        );
        assert_eq!(tool_name("my server", "a.b/c"), "mcp__my_server__a_b_c");
        let long = tool_name("s", &"x".repeat(100));
        assert_eq!(long.len(), 64);
        assert!(long.starts_with("mcp__s__xxx"));
    }

    #[test]
    fn command_lines_split_into_positional_values() {
        assert_eq!(
            PromptArgs::from_command_line(r#"  Paris "New York"  x "#),
            PromptArgs::Positional(vec!["Paris".into(), "New York".into(), "x".into()])
        );
        assert_eq!(
            PromptArgs::from_command_line(r#""""#),
            PromptArgs::Positional(vec![String::new()])
        );
        assert_eq!(
            PromptArgs::from_command_line(""),
            PromptArgs::Positional(vec![])
        );
    }

    #[test]
    fn prompt_arguments_bind_in_order_and_required_ones_are_checked() {
        let prompt = McpPrompt {
            server: "s".into(),
            name: "p".into(),
            command: "mcp__s__p".into(),
            description: None,
            arguments: vec![
                McpPromptArgument {
                    name: "city".into(),
                    description: None,
                    required: true,
                },
                McpPromptArgument {
                    name: "state".into(),
                    description: None,
                    required: false,
                },
            ],
        };
        let bound = bind_arguments(
            "s",
            "p",
            Some(&prompt),
            PromptArgs::Positional(vec!["Paris".into()]),
        )
        .unwrap();
        assert_eq!(Value::Object(bound), json!({"city": "Paris"}));
        let error =
            bind_arguments("s", "p", Some(&prompt), PromptArgs::Positional(vec![])).unwrap_err();
        assert_eq!(
            error.to_string(),
            "/mcp__s__p needs the argument `city`; usage: /mcp__s__p city [state]"
        );
        let error = bind_arguments(
            "s",
            "p",
            Some(&prompt),
            PromptArgs::Positional(vec!["a".into(), "b".into(), "c".into()]),
        )
        .unwrap_err();
        assert!(error.to_string().contains("takes 2 argument(s)"), "{error}");
        let named = BTreeMap::from([("city".to_string(), "Rome".to_string())]);
        let bound = bind_arguments("s", "p", Some(&prompt), PromptArgs::Named(named)).unwrap();
        assert_eq!(bound["city"], "Rome");
    }

    #[tokio::test]
    async fn structured_content_becomes_text_when_there_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let out = tool_output(
            &json!({"content": [], "structuredContent": {"t": 1}}),
            dir.path(),
        )
        .await;
        assert_eq!(out.content, "{\n  \"t\": 1\n}");
        assert_eq!(out.structured, Some(json!({"t": 1})));
        let out = tool_output(
            &json!({"content": [{"type": "text", "text": "hi"}], "structuredContent": {"t": 1}}),
            dir.path(),
        )
        .await;
        assert_eq!(out.content, "hi");
        let big = "y".repeat(keel_tools::output::MAX_OUTPUT_CHARS * 2);
        let out = tool_output(
            &json!({"content": [{"type": "text", "text": big}]}),
            dir.path(),
        )
        .await;
        assert!(out.content.len() < keel_tools::output::MAX_OUTPUT_CHARS + 500);
        assert!(out.content.contains("is saved to"), "spill marker missing");
    }
}
