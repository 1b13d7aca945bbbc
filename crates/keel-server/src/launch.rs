//! Starting a session for a network client: the same factory print mode uses (keel-setup),
//! with an interactive approver, run on a blocking thread because loading settings, memory
//! files and `git status` reads the disk.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use keel_engine::Approver;
use keel_protocol::{Event, Message, Op};
use keel_setup::{SessionOptions, SetupError, Workspace, WorkspaceRequest, prepare};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// What every session a server starts shares: the user's home, the environment, the settings
/// flags, and the options given on the command line (each request may override them).
#[derive(Debug, Clone)]
pub struct Base {
    /// The user's home directory (settings, transcripts).
    pub home: PathBuf,
    /// The process environment.
    pub env: BTreeMap<String, String>,
    /// `--settings`.
    pub settings: Option<String>,
    /// `--setting-sources`.
    pub setting_sources: Option<String>,
    /// The directory sessions run in when the client names none.
    pub default_cwd: PathBuf,
    /// Options from the command line, the defaults for every session.
    pub defaults: SessionOptions,
}

/// Why a session could not be started.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// The working directory is unusable.
    #[error("{0}")]
    BadCwd(String),
    /// The factory refused (bad option, missing key, unknown session, ...).
    #[error(transparent)]
    Setup(#[from] SetupError),
    /// The blocking task that builds the session died.
    #[error("internal error: the session could not be built ({0})")]
    Internal(String),
}

/// A session that is being served: its channels and what the client is told about it.
#[derive(Debug)]
pub struct Launched {
    /// The session id.
    pub id: String,
    /// Its working directory.
    pub cwd: PathBuf,
    /// The model.
    pub model: String,
    /// The permission mode it starts in.
    pub permission_mode: String,
    /// The tools offered to the model.
    pub tools: Vec<String>,
    /// MCP servers and their statuses.
    pub mcp_servers: Vec<(String, String)>,
    /// The transcript file.
    pub transcript_path: PathBuf,
    /// Whether it continues a stored session.
    pub resumed: bool,
    /// The conversation so far (for a resumed session).
    pub history: Vec<Message>,
    /// Warnings from settings, rules, memory files, hooks and MCP servers.
    pub warnings: Vec<String>,
    /// Where ops go; dropping every sender ends the session (its transcript is closed first).
    pub ops: mpsc::UnboundedSender<Op>,
    /// The session's events.
    pub events: mpsc::UnboundedReceiver<Event>,
    /// The engine; it returns once the op channel closed and the transcript is synced.
    pub engine: JoinHandle<()>,
}

/// A working directory a client asked for, checked: absolute and an existing directory.
pub fn checked_cwd(cwd: &Path) -> Result<PathBuf, LaunchError> {
    if !cwd.is_absolute() {
        return Err(LaunchError::BadCwd(format!(
            "cwd {} is not an absolute path; give the full path of the project directory",
            cwd.display()
        )));
    }
    match std::fs::canonicalize(cwd) {
        Ok(dir) if dir.is_dir() => Ok(dir),
        Ok(_) => Err(LaunchError::BadCwd(format!(
            "cwd {} is not a directory",
            cwd.display()
        ))),
        Err(error) => Err(LaunchError::BadCwd(format!(
            "cwd {}: {error}; give an existing directory",
            cwd.display()
        ))),
    }
}

/// The working directory a stored session ran in, read from its transcript; `hint` is where
/// to look first.
pub fn stored_cwd(home: &Path, hint: &Path, id: &str) -> Option<PathBuf> {
    let store = keel_session::SessionStore::new(home);
    let path = store.find(hint, id).ok()?;
    let transcript = keel_session::Transcript::read(&path).ok()?;
    transcript.records.iter().find_map(|r| match &r.event {
        Event::SessionStarted { cwd, .. } => Some(PathBuf::from(cwd)),
        _ => None,
    })
}

/// Builds a session in `cwd` with `options` and starts serving it.
pub async fn launch(
    base: &Base,
    cwd: PathBuf,
    options: SessionOptions,
) -> Result<Launched, LaunchError> {
    let warnings = Arc::new(Mutex::new(Vec::<String>::new()));
    let sink = warnings.clone();
    let request = WorkspaceRequest {
        cwd: cwd.clone(),
        home: base.home.clone(),
        env: base.env.clone(),
        settings: base.settings.clone(),
        setting_sources: base.setting_sources.clone(),
        warn: Arc::new(move |warning: &str| {
            tracing::warn!(%warning, "session setup");
            sink.lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(warning.to_string());
        }),
    };
    let runtime = tokio::runtime::Handle::current();
    let prepared = tokio::task::spawn_blocking(move || {
        let ws = Workspace::load(request)?;
        runtime.block_on(prepare(&options, &ws, Approver::Interactive))
    })
    .await
    .map_err(|e| LaunchError::Internal(e.to_string()))??;
    let session = prepared.session;
    let (ops, ops_rx) = mpsc::unbounded_channel();
    let (events_tx, events) = mpsc::unbounded_channel();
    let id = session.id().to_string();
    let tools = session.tool_names();
    let history = session.messages().to_vec();
    let engine = tokio::spawn(session.serve(ops_rx, events_tx));
    let warnings = std::mem::take(
        &mut *warnings
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    );
    Ok(Launched {
        id,
        cwd,
        model: prepared.model,
        permission_mode: prepared.permission_mode.as_str().to_string(),
        tools,
        mcp_servers: prepared.mcp_servers,
        transcript_path: prepared.transcript_path,
        resumed: prepared.resumed,
        history,
        warnings,
        ops,
        events,
        engine,
    })
}
