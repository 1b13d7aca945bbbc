//! What the model can do: the `Tool` trait, the registry that validates calls against each
//! tool's JSON Schema, and the built-in tools with Claude Code's names and input schemas.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use async_trait::async_trait;
use keel_protocol::ToolSpec;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

mod registry;
pub use registry::{ToolCallResult, ToolRegistry};

pub mod builtin;
pub mod output;

/// A capability offered to the model. Implementations validate nothing themselves: the registry
/// checks input against `input_schema` before `call` runs.
#[async_trait]
pub trait Tool: Send + Sync {
    /// The name the model calls it by (Claude Code's, e.g. `Read`).
    fn name(&self) -> &str;
    /// What it does and when to use it, written for the model.
    fn description(&self) -> &str;
    /// JSON Schema of the input object.
    fn input_schema(&self) -> Value;
    /// Whether the tool only observes. Read-only calls of one turn may run concurrently, and
    /// may run without the user's approval.
    fn is_read_only(&self) -> bool;
    /// Runs the tool on input that has passed schema validation.
    async fn call(&self, input: Value, ctx: &ToolContext) -> Result<ToolOutput, ToolError>;
}

/// What a successful call returns.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolOutput {
    /// The text the model is sent.
    pub content: String,
    /// A structured form for frontends (Claude Code's `tool_use_result`), if the tool has one.
    pub structured: Option<Value>,
}

impl ToolOutput {
    /// Output with text only.
    pub fn text(content: impl Into<String>) -> Self {
        Self {
            content: content.into(),
            structured: None,
        }
    }
}

/// Why a call failed. The message is sent to the model as an `is_error` result, so it says
/// what was wrong and how to call the tool correctly.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    /// The input was well-formed but not usable (e.g. a relative path, an unknown option).
    #[error("{0}")]
    InvalidInput(String),
    /// The tool ran and failed in a way the model can react to.
    #[error("{0}")]
    Failed(String),
    /// A file-system operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The user interrupted the call; `partial` holds the output produced before that.
    #[error("interrupted by the user{}", if partial.is_empty() { String::new() } else { format!("; output so far:\n{partial}") })]
    Interrupted {
        /// Output produced before the interrupt.
        partial: String,
    },
}

/// When and how a file was last read by the model, so Write and Edit can refuse to clobber a
/// file the model has not seen or that changed since.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStamp {
    /// The file's modification time when it was read.
    pub modified: Option<SystemTime>,
}

/// Per-session state shared by all tool calls.
#[derive(Debug, Clone)]
pub struct ToolContext {
    /// The shell's working directory; Bash updates it when a command changes directory.
    pub cwd: Arc<Mutex<PathBuf>>,
    /// The session's root directory (where keel was started).
    pub project_root: PathBuf,
    /// Extra directories the user granted (`--add-dir`).
    pub additional_dirs: Vec<PathBuf>,
    /// Files the model has read (canonical path -> stamp), checked by Write and Edit.
    pub read_files: Arc<Mutex<HashMap<PathBuf, FileStamp>>>,
    /// Where output too large for the model is written in full.
    pub spill_dir: PathBuf,
    /// Cancelled when the user interrupts; long-running tools must watch it.
    pub cancel: CancellationToken,
}

impl ToolContext {
    /// A context rooted at `root`, spilling large output into `spill_dir`.
    pub fn new(root: &Path, spill_dir: PathBuf, cancel: CancellationToken) -> Self {
        Self {
            cwd: Arc::new(Mutex::new(root.to_path_buf())),
            project_root: root.to_path_buf(),
            additional_dirs: Vec::new(),
            read_files: Arc::new(Mutex::new(HashMap::new())),
            spill_dir,
            cancel,
        }
    }

    /// The current working directory (a poisoned lock still yields the last value).
    pub fn current_dir(&self) -> PathBuf {
        match self.cwd.lock() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// A context for a new run that shares this one's files and directory but has its own
    /// cancellation token.
    pub fn with_cancel(&self, cancel: CancellationToken) -> Self {
        Self {
            cancel,
            ..self.clone()
        }
    }
}

/// Turns a tool into the spec sent to the model.
pub fn spec_of(tool: &dyn Tool) -> ToolSpec {
    ToolSpec {
        name: tool.name().to_string(),
        description: tool.description().to_string(),
        input_schema: tool.input_schema(),
    }
}
