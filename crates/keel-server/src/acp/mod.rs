//! `keel acp`: keel as an Agent Client Protocol agent on stdio, for editors (Zed and others).
//! `session/new` and `session/load` build sessions with keel-setup (MCP servers from the
//! request included); `session/prompt` streams the run as `session/update`s and answers with
//! the stop reason; approvals become `session/request_permission`; `session/cancel` interrupts.
//! Logs go to stderr only: stdout is the protocol.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use agent_client_protocol::schema::ProtocolVersion;
use agent_client_protocol::v1::schema::{
    AgentCapabilities, AuthenticateRequest, AuthenticateResponse, CancelNotification,
    ClientCapabilities, ContentBlock, EmbeddedResourceResource, Implementation, InitializeRequest,
    InitializeResponse, LoadSessionRequest, LoadSessionResponse, McpCapabilities, McpServer,
    NewSessionRequest, NewSessionResponse, PermissionOption, PermissionOptionKind,
    PromptCapabilities, PromptRequest, PromptResponse, ReadTextFileRequest,
    RequestPermissionOutcome, RequestPermissionRequest, SessionMode, SessionModeState,
    SessionNotification, SetSessionModeRequest, SetSessionModeResponse, StopReason,
    WriteTextFileRequest,
};
use agent_client_protocol::v1::{ConnectionTo, Responder};
use agent_client_protocol::{Agent, Client, ConnectTo, Error, ErrorCode};
use keel_policy::PermissionMode;
use keel_protocol::{ApprovalAnswer, Event, Op, Outcome};
use keel_setup::SetupError;
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

mod convert;

use crate::launch::{Base, LaunchError, Launched, checked_cwd, launch};
use convert::Translator;

/// How long ending a session waits for its engine to close the transcript.
const END_WAIT: Duration = Duration::from_secs(30);

/// How long a tool waits for the client to read or write a file.
const FS_WAIT: Duration = Duration::from_secs(60);

/// Why `keel acp` stopped.
#[derive(Debug, thiserror::Error)]
pub enum AcpError {
    /// The connection failed (broken pipe, invalid framing).
    #[error("the ACP connection failed: {0}")]
    Connection(String),
}

/// Serves ACP on stdin/stdout until the client closes stdin; then ends every session (their
/// transcripts are synced and closed).
pub async fn serve_stdio(base: Base) -> Result<(), AcpError> {
    serve(base, agent_client_protocol::Stdio::new()).await
}

/// Serves ACP over `transport` (stdio in `keel acp`).
pub async fn serve(base: Base, transport: impl ConnectTo<Agent> + 'static) -> Result<(), AcpError> {
    let agent = Arc::new(KeelAgent {
        base,
        client: Mutex::new(ClientCapabilities::new()),
        sessions: Mutex::new(HashMap::new()),
    });
    let (a, b, c, d, e, f, g) = (
        agent.clone(),
        agent.clone(),
        agent.clone(),
        agent.clone(),
        agent.clone(),
        agent.clone(),
        agent.clone(),
    );
    let result = Agent
        .v1()
        .name("keel")
        .on_receive_request(
            async move |request: InitializeRequest,
                        responder: Responder<InitializeResponse>,
                        _cx: ConnectionTo<Client>| { a.initialize(request, responder) },
            agent_client_protocol::on_receive_request!(),
        )
        .on_receive_request(
            async move |_request: AuthenticateRequest,
                        responder: Responder<AuthenticateResponse>,
                        _cx: ConnectionTo<Client>| {
                // keel takes credentials from the environment and settings; there is nothing
                // to log in to, so any method succeeds.
                let _ = &b;
                responder.respond(AuthenticateResponse::new())
            },
            agent_client_protocol::on_receive_request!(),
        )
        .on_receive_request(
            async move |request: NewSessionRequest,
                        responder: Responder<NewSessionResponse>,
                        cx: ConnectionTo<Client>| {
                c.new_session(request, responder, cx)
            },
            agent_client_protocol::on_receive_request!(),
        )
        .on_receive_request(
            async move |request: LoadSessionRequest,
                        responder: Responder<LoadSessionResponse>,
                        cx: ConnectionTo<Client>| {
                d.load_session(request, responder, cx)
            },
            agent_client_protocol::on_receive_request!(),
        )
        .on_receive_request(
            async move |request: PromptRequest,
                        responder: Responder<PromptResponse>,
                        cx: ConnectionTo<Client>| { e.prompt(request, responder, cx) },
            agent_client_protocol::on_receive_request!(),
        )
        .on_receive_request(
            async move |request: SetSessionModeRequest,
                        responder: Responder<SetSessionModeResponse>,
                        _cx: ConnectionTo<Client>| { f.set_mode(request, responder) },
            agent_client_protocol::on_receive_request!(),
        )
        .on_receive_notification(
            async move |notification: CancelNotification, _cx: ConnectionTo<Client>| {
                g.cancel(&notification);
                Ok(())
            },
            agent_client_protocol::on_receive_notification!(),
        )
        .connect_to(transport)
        .await;
    agent.end_all().await;
    result.map_err(|e| AcpError::Connection(e.to_string()))
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The agent: the client's capabilities and the sessions it opened.
struct KeelAgent {
    base: Base,
    client: Mutex<ClientCapabilities>,
    sessions: Mutex<HashMap<String, Arc<AcpSession>>>,
}

/// One session served over ACP.
struct AcpSession {
    id: String,
    /// `None` once the session is ending.
    ops: Mutex<Option<mpsc::UnboundedSender<Op>>>,
    /// Where the running prompt's outcome goes.
    turn: Mutex<Option<oneshot::Sender<Outcome>>>,
    engine: Mutex<Option<JoinHandle<()>>>,
}

impl AcpSession {
    fn send(&self, op: Op) -> bool {
        lock(&self.ops)
            .as_ref()
            .is_some_and(|ops| ops.send(op).is_ok())
    }

    async fn end(&self) {
        if lock(&self.turn).is_some() {
            self.send(Op::Interrupt);
        }
        lock(&self.ops).take();
        let engine = lock(&self.engine).take();
        if let Some(engine) = engine
            && tokio::time::timeout(END_WAIT, engine).await.is_err()
        {
            tracing::warn!(session = %self.id, "the session did not end in time; its transcript may be incomplete");
        }
    }
}

/// An error the client sees, with keel's message.
fn error(code: ErrorCode, message: impl Into<String>) -> Error {
    Error::new(code, message.into())
}

/// A session that could not be built: a missing key is "authentication required" (the
/// message says which variable to set), the rest are bad parameters.
fn launch_error(failure: LaunchError) -> Error {
    let code = match &failure {
        LaunchError::Setup(SetupError::Provider(_)) => ErrorCode::AUTH_REQUIRED,
        LaunchError::Internal(_) => ErrorCode::INTERNAL_ERROR,
        _ => ErrorCode::INVALID_PARAMS,
    };
    error(code, failure.to_string())
}

/// The permission modes, offered as ACP session modes.
fn modes(current: &str) -> SessionModeState {
    let describe = |mode: PermissionMode| match mode {
        PermissionMode::Default => ("Default", "Ask before edits and commands"),
        PermissionMode::AcceptEdits => (
            "Accept Edits",
            "Edit files without asking; ask for commands",
        ),
        PermissionMode::Plan => ("Plan", "Explore and plan; change nothing"),
        PermissionMode::BypassPermissions => {
            ("Bypass Permissions", "Run everything without asking")
        }
        PermissionMode::DontAsk => ("Don't Ask", "Refuse whatever would need a question"),
    };
    SessionModeState::new(
        current.to_string(),
        PermissionMode::ALL
            .into_iter()
            .map(|mode| {
                let (name, description) = describe(mode);
                SessionMode::new(mode.as_str().to_string(), name)
                    .description(description.to_string())
            })
            .collect(),
    )
}

/// ACP's MCP server descriptions as keel's `.mcp.json` entries.
fn mcp_servers(servers: &[McpServer]) -> Vec<keel_mcp::ServerConfig> {
    let pairs =
        |items: Vec<(String, String)>| -> BTreeMap<String, String> { items.into_iter().collect() };
    servers
        .iter()
        .filter_map(|server| {
            let (name, value) = match server {
                McpServer::Stdio(stdio) => (
                    stdio.name.clone(),
                    json!({
                        "command": stdio.command.display().to_string(),
                        "args": stdio.args,
                        "env": pairs(stdio.env.iter().map(|v| (v.name.clone(), v.value.clone())).collect()),
                    }),
                ),
                McpServer::Http(http) => (
                    http.name.clone(),
                    json!({
                        "type": "http",
                        "url": http.url,
                        "headers": pairs(http.headers.iter().map(|h| (h.name.clone(), h.value.clone())).collect()),
                    }),
                ),
                McpServer::Sse(sse) => (
                    sse.name.clone(),
                    json!({
                        "type": "sse",
                        "url": sse.url,
                        "headers": pairs(sse.headers.iter().map(|h| (h.name.clone(), h.value.clone())).collect()),
                    }),
                ),
                other => {
                    tracing::warn!(server = ?other, "skipping an MCP server of a transport keel does not support");
                    return None;
                }
            };
            Some(keel_mcp::ServerConfig::new(
                name,
                keel_mcp::ConfigScope::Flag,
                "ACP session",
                &value,
            ))
        })
        .collect()
}

/// The prompt as text: text blocks as they are, links as references, embedded resources as
/// context blocks the model can read.
fn prompt_text(blocks: &[ContentBlock]) -> String {
    let mut text = String::new();
    let mut context = String::new();
    for block in blocks {
        match block {
            ContentBlock::Text(t) => text.push_str(&t.text),
            ContentBlock::ResourceLink(link) => {
                text.push_str(&format!("[@{}]({})", link.name, link.uri));
            }
            ContentBlock::Resource(resource) => match &resource.resource {
                EmbeddedResourceResource::TextResourceContents(contents) => {
                    text.push_str(&format!("[@{}]", contents.uri));
                    context.push_str(&format!(
                        "\n<context ref=\"{}\">\n{}\n</context>",
                        contents.uri, contents.text
                    ));
                }
                other => {
                    tracing::warn!(resource = ?other, "skipping a binary resource in the prompt")
                }
            },
            other => {
                tracing::warn!(block = ?other, "skipping prompt content keel cannot take over ACP")
            }
        }
    }
    text.push_str(&context);
    text
}

impl KeelAgent {
    fn initialize(
        &self,
        request: InitializeRequest,
        responder: Responder<InitializeResponse>,
    ) -> Result<(), Error> {
        *lock(&self.client) = request.client_capabilities.clone();
        // keel speaks protocol version 1; a client asking for another gets 1 and decides.
        let response = InitializeResponse::new(ProtocolVersion::V1)
            .agent_capabilities(
                AgentCapabilities::new()
                    .load_session(true)
                    .prompt_capabilities(PromptCapabilities::new().embedded_context(true))
                    .mcp_capabilities(McpCapabilities::new().http(true).sse(true)),
            )
            .agent_info(Implementation::new("keel", env!("CARGO_PKG_VERSION")));
        responder.respond(response)
    }

    fn session(&self, id: &str) -> Result<Arc<AcpSession>, Error> {
        lock(&self.sessions).get(id).cloned().ok_or_else(|| {
            error(
                ErrorCode::INVALID_PARAMS,
                format!(
                    "unknown session {id}; create one with session/new or load it with session/load"
                ),
            )
        })
    }

    /// Options for a session: the command line's, the request's extra directories and MCP
    /// servers, and the client's file access when it offers any (the session id is filled in
    /// once known).
    fn options(
        &self,
        additional: &[PathBuf],
        servers: &[McpServer],
        cx: &ConnectionTo<Client>,
        session: &Arc<OnceLock<String>>,
    ) -> keel_setup::SessionOptions {
        let mut options = self.base.defaults.clone();
        // Which session to open is the request's business, never the command line's.
        options.continue_session = false;
        options.resume = None;
        options.session_id = None;
        options.fork_session = false;
        options.add_dir.extend(additional.iter().cloned());
        options.mcp_servers.extend(mcp_servers(servers));
        let fs = lock(&self.client).fs.clone();
        if fs.read_text_file || fs.write_text_file {
            options.editor = Some(Arc::new(ClientFiles {
                cx: cx.clone(),
                session: session.clone(),
                read: fs.read_text_file,
                write: fs.write_text_file,
                runtime: tokio::runtime::Handle::current(),
            }));
        }
        options
    }

    fn new_session(
        self: &Arc<Self>,
        request: NewSessionRequest,
        responder: Responder<NewSessionResponse>,
        cx: ConnectionTo<Client>,
    ) -> Result<(), Error> {
        let cwd = match checked_cwd(&request.cwd) {
            Ok(cwd) => cwd,
            Err(e) => return responder.respond_with_error(launch_error(e)),
        };
        let session = Arc::new(OnceLock::new());
        let options = self.options(
            &request.additional_directories,
            &request.mcp_servers,
            &cx,
            &session,
        );
        let agent = self.clone();
        // Building a session reads settings and starts MCP servers: off the dispatch loop.
        cx.clone().spawn(async move {
            match launch(&agent.base, cwd, options).await {
                Ok(launched) => {
                    let mode = launched.permission_mode.clone();
                    let id = launched.id.clone();
                    let _ = session.set(id.clone());
                    let events = agent.register(launched);
                    responder.respond(NewSessionResponse::new(id.clone()).modes(modes(&mode)))?;
                    agent.start_pump(&id, events, cx);
                    Ok(())
                }
                Err(e) => responder.respond_with_error(launch_error(e)),
            }
        })
    }

    fn load_session(
        self: &Arc<Self>,
        request: LoadSessionRequest,
        responder: Responder<LoadSessionResponse>,
        cx: ConnectionTo<Client>,
    ) -> Result<(), Error> {
        let id = request.session_id.0.to_string();
        if lock(&self.sessions).contains_key(&id) {
            return responder.respond_with_error(error(
                ErrorCode::INVALID_PARAMS,
                format!("session {id} is already open on this connection"),
            ));
        }
        if let Err(e) = keel_session::validate_id(&id) {
            return responder.respond_with_error(error(ErrorCode::INVALID_PARAMS, e.to_string()));
        }
        let cwd = match checked_cwd(&request.cwd) {
            Ok(cwd) => cwd,
            Err(e) => return responder.respond_with_error(launch_error(e)),
        };
        let session = Arc::new(OnceLock::new());
        let _ = session.set(id.clone());
        let mut options = self.options(
            &request.additional_directories,
            &request.mcp_servers,
            &cx,
            &session,
        );
        options.resume = Some(id);
        let agent = self.clone();
        cx.clone().spawn(async move {
            match launch(&agent.base, cwd, options).await {
                Ok(launched) => {
                    let mode = launched.permission_mode.clone();
                    let id = launched.id.clone();
                    let history = launched.history.clone();
                    let events = agent.register(launched);
                    // The client rebuilds the conversation from these before the answer.
                    for update in convert::replay(&history) {
                        cx.send_notification(SessionNotification::new(id.clone(), update))?;
                    }
                    responder.respond(LoadSessionResponse::new().modes(modes(&mode)))?;
                    agent.start_pump(&id, events, cx);
                    Ok(())
                }
                Err(e) => responder.respond_with_error(launch_error(e)),
            }
        })
    }

    /// Keeps a launched session; returns its event stream for the pump.
    fn register(&self, launched: Launched) -> mpsc::UnboundedReceiver<Event> {
        let Launched {
            id,
            ops,
            events,
            engine,
            warnings,
            ..
        } = launched;
        for warning in warnings {
            tracing::warn!(session = %id, "{warning}");
        }
        let session = Arc::new(AcpSession {
            id: id.clone(),
            ops: Mutex::new(Some(ops)),
            turn: Mutex::new(None),
            engine: Mutex::new(Some(engine)),
        });
        lock(&self.sessions).insert(id, session);
        events
    }

    /// Forwards a session's events to the client as they happen.
    fn start_pump(
        self: &Arc<Self>,
        id: &str,
        mut events: mpsc::UnboundedReceiver<Event>,
        cx: ConnectionTo<Client>,
    ) {
        let Some(session) = lock(&self.sessions).get(id).cloned() else {
            return;
        };
        let spawner = cx.clone();
        let result = spawner.spawn(async move {
            let mut translator = Translator::default();
            while let Some(event) = events.recv().await {
                match &event {
                    Event::ApprovalRequested {
                        request_id,
                        tool_use_id,
                        tool_name,
                        input,
                        reason,
                        suggestions,
                    } => {
                        let subject = translator.permission_subject(tool_use_id, tool_name, input);
                        let mut options = vec![PermissionOption::new(
                            "allow_once",
                            "Allow",
                            PermissionOptionKind::AllowOnce,
                        )];
                        if !suggestions.is_empty() {
                            options.push(PermissionOption::new(
                                "allow_always",
                                format!("Always allow {}", suggestions.join(", ")),
                                PermissionOptionKind::AllowAlways,
                            ));
                        }
                        options.push(PermissionOption::new(
                            "reject_once",
                            "Reject",
                            PermissionOptionKind::RejectOnce,
                        ));
                        let request = RequestPermissionRequest::new(
                            session.id.clone(),
                            subject,
                            options,
                        )
                        .meta(Some(
                            [("reason".to_string(), Value::String(reason.clone()))]
                                .into_iter()
                                .collect(),
                        ));
                        let asking = cx.clone();
                        let session = session.clone();
                        let request_id = request_id.clone();
                        let suggestions = suggestions.clone();
                        cx.spawn(async move {
                            let answer = match asking.send_request(request).block_task().await {
                                Ok(response) => match response.outcome {
                                    RequestPermissionOutcome::Selected(selected) => {
                                        match &*selected.option_id.0 {
                                            "allow_once" => ApprovalAnswer::AllowOnce {
                                                updated_input: None,
                                            },
                                            "allow_always" => ApprovalAnswer::AllowAlways {
                                                rules: suggestions,
                                            },
                                            _ => ApprovalAnswer::Deny {
                                                message: String::new(),
                                            },
                                        }
                                    }
                                    _ => ApprovalAnswer::Deny {
                                        message: "The user cancelled the request.".into(),
                                    },
                                },
                                Err(error) => {
                                    tracing::warn!(%error, "the client could not answer a permission request");
                                    ApprovalAnswer::Deny {
                                        message: format!(
                                            "The editor could not ask the user for permission ({})",
                                            error.message
                                        ),
                                    }
                                }
                            };
                            session.send(Op::Approval { request_id, answer });
                            Ok(())
                        })?;
                    }
                    Event::RunFinished { outcome, .. } => {
                        if let Some(turn) = lock(&session.turn).take() {
                            let _ = turn.send(outcome.clone());
                        }
                    }
                    Event::Notice { level, message } => {
                        tracing::warn!(session = %session.id, ?level, "{message}");
                    }
                    Event::Retrying { error, attempt, .. } => {
                        tracing::warn!(session = %session.id, attempt, "model request failed, retrying: {error}");
                    }
                    other => {
                        translator.remember_before(convert::files_before(other).await);
                        for update in translator.updates(other) {
                            cx.send_notification(SessionNotification::new(
                                session.id.clone(),
                                update,
                            ))?;
                        }
                    }
                }
            }
            // The engine stopped: a prompt still waiting learns it ended.
            if let Some(turn) = lock(&session.turn).take() {
                let _ = turn.send(Outcome::Interrupted);
            }
            Ok(())
        });
        if let Err(error) = result {
            tracing::warn!(%error, "cannot forward the session's events");
        }
    }

    fn prompt(
        &self,
        request: PromptRequest,
        responder: Responder<PromptResponse>,
        cx: ConnectionTo<Client>,
    ) -> Result<(), Error> {
        let session = match self.session(&request.session_id.0) {
            Ok(session) => session,
            Err(e) => return responder.respond_with_error(e),
        };
        let text = prompt_text(&request.prompt);
        if text.trim().is_empty() {
            return responder.respond_with_error(error(
                ErrorCode::INVALID_PARAMS,
                "the prompt has no text keel can use",
            ));
        }
        let (done, outcome) = oneshot::channel();
        {
            let mut turn = lock(&session.turn);
            if turn.is_some() {
                return responder.respond_with_error(error(
                    ErrorCode::INVALID_REQUEST,
                    "a prompt is already running in this session; wait for its answer or send session/cancel",
                ));
            }
            *turn = Some(done);
        }
        if !session.send(Op::UserInput { text }) {
            lock(&session.turn).take();
            return responder
                .respond_with_error(error(ErrorCode::INVALID_REQUEST, "the session has ended"));
        }
        // The answer comes when the run ends; the dispatch loop must stay free meanwhile for
        // session/cancel and the client's answers to permission requests.
        cx.spawn(async move {
            match outcome.await {
                Ok(Outcome::Success) => responder.respond(PromptResponse::new(StopReason::EndTurn)),
                Ok(Outcome::Interrupted) | Err(_) => {
                    responder.respond(PromptResponse::new(StopReason::Cancelled))
                }
                Ok(Outcome::MaxTurns { .. }) => {
                    responder.respond(PromptResponse::new(StopReason::MaxTurnRequests))
                }
                Ok(Outcome::Error { message }) => {
                    responder.respond_with_error(error(ErrorCode::INTERNAL_ERROR, message))
                }
            }
        })
    }

    fn set_mode(
        &self,
        request: SetSessionModeRequest,
        responder: Responder<SetSessionModeResponse>,
    ) -> Result<(), Error> {
        let session = match self.session(&request.session_id.0) {
            Ok(session) => session,
            Err(e) => return responder.respond_with_error(e),
        };
        let mode = match request.mode_id.0.parse::<PermissionMode>() {
            Ok(mode) => mode,
            Err(e) => {
                return responder
                    .respond_with_error(error(ErrorCode::INVALID_PARAMS, e.to_string()));
            }
        };
        session.send(Op::SetPermissionMode {
            mode: mode.as_str().to_string(),
        });
        responder.respond(SetSessionModeResponse::new())
    }

    fn cancel(&self, notification: &CancelNotification) {
        match lock(&self.sessions).get(&*notification.session_id.0) {
            Some(session) => {
                if lock(&session.turn).is_some() {
                    session.send(Op::Interrupt);
                }
            }
            None => {
                tracing::warn!(session = %notification.session_id.0, "session/cancel for an unknown session")
            }
        }
    }

    /// Ends every session; their transcripts are closed when this returns.
    async fn end_all(&self) {
        let all: Vec<Arc<AcpSession>> = lock(&self.sessions).drain().map(|(_, s)| s).collect();
        futures::future::join_all(all.iter().map(|s| s.end())).await;
    }
}

/// The client's file access (`fs/read_text_file`, `fs/write_text_file`) for Read, Edit and
/// Write: the editor's buffers, unsaved changes included, are what the model reads and edits,
/// and edits land in the editor.
struct ClientFiles {
    cx: ConnectionTo<Client>,
    session: Arc<OnceLock<String>>,
    read: bool,
    write: bool,
    runtime: tokio::runtime::Handle,
}

impl std::fmt::Debug for ClientFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientFiles")
            .field("session", &self.session.get())
            .field("read", &self.read)
            .field("write", &self.write)
            .finish_non_exhaustive()
    }
}

impl ClientFiles {
    /// Sends a request to the client and waits for the answer; the tools call this from
    /// blocking threads, where waiting on the runtime is allowed.
    fn ask<T>(&self, sent: agent_client_protocol::v1::SentRequest<T>) -> Result<T, String>
    where
        T: Send + 'static,
    {
        self.runtime.block_on(async {
            match tokio::time::timeout(FS_WAIT, sent.block_task()).await {
                Ok(Ok(answer)) => Ok(answer),
                Ok(Err(error)) => Err(error.message),
                Err(_) => Err(format!("no answer within {} s", FS_WAIT.as_secs())),
            }
        })
    }
}

impl keel_tools::EditorFiles for ClientFiles {
    fn read_text(&self, path: &Path) -> Option<Result<String, String>> {
        let session = self.session.get().filter(|_| self.read)?;
        let sent = self.cx.send_request(ReadTextFileRequest::new(
            session.clone(),
            path.to_path_buf(),
        ));
        Some(self.ask(sent).map(|answer| answer.content))
    }

    fn write_text(&self, path: &Path, text: &str) -> Option<Result<(), String>> {
        let session = self.session.get().filter(|_| self.write)?;
        let sent = self.cx.send_request(WriteTextFileRequest::new(
            session.clone(),
            path.to_path_buf(),
            text.to_string(),
        ));
        Some(self.ask(sent).map(|_| ()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agent_client_protocol::v1::schema::{
        EmbeddedResource, EnvVariable, McpServerHttp, McpServerStdio, ResourceLink, TextContent,
        TextResourceContents,
    };

    #[test]
    fn prompts_keep_text_links_and_embedded_context() {
        let text = prompt_text(&[
            ContentBlock::Text(TextContent::new("explain ")),
            ContentBlock::ResourceLink(ResourceLink::new("main.rs", "file:///p/main.rs")),
            ContentBlock::Resource(EmbeddedResource::new(
                EmbeddedResourceResource::TextResourceContents(TextResourceContents::new(
                    "fn main() {}",
                    "file:///p/lib.rs",
                )),
            )),
        ]);
        assert_eq!(
            text,
            "explain [@main.rs](file:///p/main.rs)[@file:///p/lib.rs]\n<context ref=\"file:///p/lib.rs\">\nfn main() {}\n</context>"
        );
    }

    #[test]
    fn mcp_servers_from_the_request_become_keel_servers() {
        let servers = mcp_servers(&[
            McpServer::Stdio(
                McpServerStdio::new("files", "/usr/bin/server")
                    .args(vec!["--root".into(), "/p".into()])
                    .env(vec![EnvVariable::new("TOKEN", "t")]),
            ),
            McpServer::Http(McpServerHttp::new("web", "http://127.0.0.1:9/mcp")),
        ]);
        assert_eq!(servers.len(), 2);
        assert_eq!(servers[0].name, "files");
        let spec = servers[0].spec.as_ref().unwrap();
        assert_eq!(spec.command.as_deref(), Some("/usr/bin/server"));
        assert_eq!(spec.args, ["--root", "/p"]);
        assert_eq!(spec.env["TOKEN"], "t");
        let web = servers[1].spec.as_ref().unwrap();
        assert_eq!(web.transport, keel_mcp::TransportKind::Http);
        assert_eq!(web.url.as_deref(), Some("http://127.0.0.1:9/mcp"));
    }

    #[test]
    fn every_permission_mode_is_an_acp_mode() {
        let state = serde_json::to_value(modes("acceptEdits")).unwrap();
        assert_eq!(state["currentModeId"], "acceptEdits");
        let ids: Vec<&str> = state["availableModes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap())
            .collect();
        assert_eq!(
            ids,
            [
                "default",
                "acceptEdits",
                "plan",
                "bypassPermissions",
                "dontAsk"
            ]
        );
    }
}
