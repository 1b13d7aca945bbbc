//! What the model can do: the `Tool` trait, the registry that validates calls against each
//! tool's JSON Schema, and the built-in tools with Claude Code's names and input schemas.

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use async_trait::async_trait;
use keel_protocol::ToolSpec;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

mod registry;
pub use registry::{RegistryError, ToolCallResult, ToolRegistry};

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
    /// Images sent to the model after the text, each an API image `source` object
    /// (`{"type":"base64","media_type":"image/png","data":"..."}`).
    pub images: Vec<Value>,
}

impl ToolOutput {
    /// Output with text only.
    pub fn text(content: impl Into<String>) -> Self {
        Self {
            content: content.into(),
            structured: None,
            images: Vec::new(),
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
    /// The tool ran and reports failure together with its output, e.g. a shell command that
    /// exited non-zero: the text goes to the model as an error, the structured form is kept.
    #[error("{}", .0.content)]
    WithOutput(ToolOutput),
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
    /// The OS sandbox shell commands run in, when the user turned it on.
    pub sandbox: Option<Arc<Sandbox>>,
    /// Environment variables for the commands tools start (settings `env`), on top of keel's own.
    pub env: Arc<Vec<(String, String)>>,
    /// The editor that holds the files, when the frontend is one (ACP): Read, Edit and Write
    /// then go through it.
    pub editor: Option<Arc<dyn EditorFiles>>,
    /// Where `Bash` with `run_in_background` starts its commands; `None` when the session keeps
    /// no background tasks (the option then fails with an explanation).
    pub background: Option<Arc<dyn BackgroundShell>>,
    /// Makes git worktrees for subagents started with `isolation: "worktree"`; `None` when the
    /// session has no way to (the option then fails with an explanation).
    pub worktrees: Option<Arc<dyn WorktreeIsolation>>,
    /// Where a running tool reports output as it comes (Bash), for a frontend's live view;
    /// `None` when nobody watches.
    pub progress: Option<Progress>,
}

/// A callback that receives a running tool's output as it comes. Cheap to clone.
#[derive(Clone)]
pub struct Progress(Arc<dyn Fn(&str) + Send + Sync>);

impl Progress {
    /// A progress sink calling `report` with each new piece of output.
    pub fn new(report: impl Fn(&str) + Send + Sync + 'static) -> Self {
        Self(Arc::new(report))
    }

    /// Reports new output.
    pub fn report(&self, text: &str) {
        (self.0)(text);
    }
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Progress")
    }
}

/// File text an editor holds: its buffers may have changes not yet saved, and it wants to show
/// edits as they happen rather than find the files changed on disk. Offered by ACP clients
/// (`fs/read_text_file`, `fs/write_text_file`). The tools call these from blocking threads.
pub trait EditorFiles: Send + Sync + std::fmt::Debug {
    /// The file's text as the editor has it; `None` when the editor does not read files for
    /// keel (the disk is read instead).
    fn read_text(&self, path: &Path) -> Option<Result<String, String>>;
    /// Gives the editor the file's new text to write; `None` when it does not write files for
    /// keel (the file is written on disk instead).
    fn write_text(&self, path: &Path, text: &str) -> Option<Result<(), String>>;
}

/// A shell command to start in the background.
#[derive(Debug, Clone)]
pub struct BackgroundCommand {
    /// The command line.
    pub command: String,
    /// What it does, in a few words (shown in listings and notices).
    pub description: Option<String>,
    /// The sandbox it runs in, unless the call asked to run outside it.
    pub sandbox: Option<Arc<Sandbox>>,
}

/// Runs commands that outlive the tool call (implemented by keel-tasks' registry), so the Bash
/// tool can offer `run_in_background` without owning long-lived processes itself.
#[async_trait]
pub trait BackgroundShell: Send + Sync + std::fmt::Debug {
    /// Starts `command` in the session's current directory and returns at once with what the
    /// model is told (the task id and where its output goes).
    async fn start(
        &self,
        command: BackgroundCommand,
        ctx: &ToolContext,
    ) -> Result<ToolOutput, ToolError>;

    /// Runs `job` as a background task of the session and returns at once with its id.
    async fn spawn_job(&self, job: BackgroundJob) -> Result<JobStarted, ToolError> {
        Err(ToolError::Failed(format!(
            "this session cannot run \"{}\" in the background",
            job.description
        )))
    }

    /// The session's background tasks, oldest first (what `/tasks` shows).
    fn list(&self) -> Vec<BackgroundTaskSummary> {
        Vec::new()
    }
}

/// The future a background job runs; it resolves to how the job ended.
pub type JobFuture = Pin<Box<dyn Future<Output = JobEnd> + Send + 'static>>;

/// Appends text to a background job's output file (what `TaskOutput` reads).
pub type JobWriter = Arc<dyn Fn(&str) + Send + Sync>;

/// Work other than a shell command to run in the background (a background subagent): the
/// registry gives it an id, an output file and a cancellation token, then runs it.
pub struct BackgroundJob {
    /// The id's prefix (`agent` gives `agent_3`).
    pub prefix: String,
    /// The kind shown in listings (`local_agent`).
    pub task_type: String,
    /// What it does, in a few words.
    pub description: String,
    /// Builds the work once the registry has set up the job.
    pub work: Box<dyn FnOnce(JobControl) -> JobFuture + Send>,
}

impl std::fmt::Debug for BackgroundJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackgroundJob")
            .field("prefix", &self.prefix)
            .field("task_type", &self.task_type)
            .field("description", &self.description)
            .finish_non_exhaustive()
    }
}

/// What a background job gets from the registry that runs it.
#[derive(Clone)]
pub struct JobControl {
    /// The job's task id (`agent_3`).
    pub id: String,
    /// Cancelled when the job must stop (`TaskStop`, the end of the session).
    pub cancel: CancellationToken,
    /// Writes progress to the job's output file.
    pub write: JobWriter,
}

/// How a background job ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobEnd {
    /// Whether it did what it was started for.
    pub success: bool,
    /// Its final answer, appended to its output file and quoted in the completion notice.
    pub result: String,
    /// One line for the completion notice (`Agent "Fix the tests" completed`).
    pub summary: String,
}

/// A background job that has been started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobStarted {
    /// Its task id, for `TaskOutput` and `TaskStop`.
    pub id: String,
    /// Where its output goes.
    pub output_file: PathBuf,
}

/// One background task as `/tasks` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackgroundTaskSummary {
    /// Its id (`bash_1`, `agent_2`).
    pub id: String,
    /// Its kind (`local_bash`, `local_agent`).
    pub kind: String,
    /// `running`, `completed`, `failed` or `killed`.
    pub status: String,
    /// Its description, or its command line.
    pub description: String,
    /// How long it ran (or has been running).
    pub runtime: std::time::Duration,
}

/// A git worktree made for one subagent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsolatedTree {
    /// The worktree's name.
    pub name: String,
    /// Where it is checked out (the subagent's working directory).
    pub path: PathBuf,
    /// Its branch.
    pub branch: String,
}

/// What became of a subagent's worktree when the subagent ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IsolationEnd {
    /// It held no changes and was removed with its branch.
    Removed,
    /// It holds changes and was kept; `changes` says which.
    Kept {
        /// What it holds that the main checkout does not.
        changes: String,
    },
}

/// Makes and tidies up git worktrees for isolated subagents (implemented by keel-tasks'
/// worktree module), so the engine can offer `isolation: "worktree"` without knowing git.
#[async_trait]
pub trait WorktreeIsolation: Send + Sync + std::fmt::Debug {
    /// Creates a fresh worktree on a new branch named after `task` (a few words) for the
    /// repository `from` is in.
    async fn create(&self, task: &str, from: &Path) -> Result<IsolatedTree, ToolError>;
    /// Removes `tree` and its branch if it holds no changes; keeps it otherwise.
    async fn finish(&self, tree: &IsolatedTree) -> Result<IsolationEnd, ToolError>;
}

/// How shell commands are confined: the policy, and the program that applies it (keel itself,
/// re-executed as `keel __sandbox-exec`).
#[derive(Debug, Clone)]
pub struct Sandbox {
    /// What sandboxed commands may write and whether they may use the network.
    pub policy: keel_policy::sandbox::SandboxPolicy,
    /// The launcher executable.
    pub launcher: PathBuf,
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
            sandbox: None,
            env: Arc::new(Vec::new()),
            editor: None,
            background: None,
            worktrees: None,
            progress: None,
        }
    }

    /// The current working directory (a poisoned lock still yields the last value).
    pub fn current_dir(&self) -> PathBuf {
        match self.cwd.lock() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Moves the session's working directory (a `cd` in Bash, entering a worktree); later tool
    /// calls start there. A poisoned lock is still written.
    pub fn set_current_dir(&self, dir: PathBuf) {
        match self.cwd.lock() {
            Ok(mut cwd) => *cwd = dir,
            Err(poisoned) => *poisoned.into_inner() = dir,
        }
    }

    /// Where a path the model gave points: `~/` expands to the home directory, a relative path
    /// is taken from the current directory (friendlier than requiring absolute paths), and `.`
    /// and `..` are folded away without following symlinks.
    pub fn resolve_path(&self, raw: &str) -> PathBuf {
        let expanded = match raw.strip_prefix("~/") {
            Some(rest) => match std::env::var_os("HOME") {
                Some(home) => PathBuf::from(home).join(rest),
                None => PathBuf::from(raw),
            },
            None if raw == "~" => std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(raw)),
            None => PathBuf::from(raw),
        };
        let joined = if expanded.is_absolute() {
            expanded
        } else {
            self.current_dir().join(expanded)
        };
        normalize_lexically(&joined)
    }

    /// Remembers that the model has seen `path` as it is now, so Write and Edit may change it.
    pub fn record_read(&self, path: &Path) {
        let stamp = FileStamp {
            modified: std::fs::metadata(path).and_then(|m| m.modified()).ok(),
        };
        self.record_read_as(path, stamp);
    }

    /// Remembers that the model has seen `path` as it was at `stamp`: a reader takes the
    /// stamp before reading, so a change made while it read makes the stamp stale, not the
    /// model's view.
    pub fn record_read_as(&self, path: &Path, stamp: FileStamp) {
        let key = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        match self.read_files.lock() {
            Ok(mut files) => files.insert(key, stamp),
            Err(poisoned) => poisoned.into_inner().insert(key, stamp),
        };
    }

    /// Refuses to change an existing file the model has not read, or that changed on disk
    /// since it did (by the user, a formatter, another tool), so nothing is clobbered unseen.
    pub fn ensure_read_and_unchanged(&self, path: &Path) -> Result<(), ToolError> {
        let key = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        let stamp = match self.read_files.lock() {
            Ok(files) => files.get(&key).copied(),
            Err(poisoned) => poisoned.into_inner().get(&key).copied(),
        };
        let Some(stamp) = stamp else {
            return Err(ToolError::Failed(format!(
                "File has not been read yet. Read it first before writing to it. Path: {}",
                path.display()
            )));
        };
        let now = std::fs::metadata(&key)
            .and_then(|m| m.modified())
            .map_err(|source| ToolError::Io {
                path: path.to_path_buf(),
                source,
            })?;
        if stamp.modified != Some(now) {
            return Err(ToolError::Failed(format!(
                "File {} has been modified since it was last read (by the user or another \
                 program). Read it again before changing it.",
                path.display()
            )));
        }
        Ok(())
    }

    /// A context for a new run that shares this one's files and directory but has its own
    /// cancellation token.
    pub fn with_cancel(&self, cancel: CancellationToken) -> Self {
        Self {
            cancel,
            ..self.clone()
        }
    }

    /// The same context, reporting output as it comes to `progress`.
    pub fn with_progress(&self, progress: Progress) -> Self {
        Self {
            progress: Some(progress),
            ..self.clone()
        }
    }
}

/// Folds `.` and `..` out of an absolute path without touching the file system (`..` at the
/// root stays at the root, as the kernel does).
fn normalize_lexically(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                if !matches!(
                    out.components().next_back(),
                    None | Some(Component::RootDir | Component::Prefix(_))
                ) {
                    out.pop();
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// Turns a tool into the spec sent to the model.
pub fn spec_of(tool: &dyn Tool) -> ToolSpec {
    ToolSpec {
        name: tool.name().to_string(),
        description: tool.description().to_string(),
        input_schema: tool.input_schema(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_resolve_against_the_current_directory_and_fold_dots() {
        let ctx = ToolContext::new(
            Path::new("/work/project"),
            PathBuf::from("/tmp/spill"),
            CancellationToken::new(),
        );
        assert_eq!(
            ctx.resolve_path("src/lib.rs"),
            PathBuf::from("/work/project/src/lib.rs")
        );
        assert_eq!(
            ctx.resolve_path("./a/../b/./c.txt"),
            PathBuf::from("/work/project/b/c.txt")
        );
        assert_eq!(ctx.resolve_path("/etc/hosts"), PathBuf::from("/etc/hosts"));
        assert_eq!(ctx.resolve_path("/../../x"), PathBuf::from("/x"));
        *ctx.cwd.lock().unwrap() = PathBuf::from("/work/project/sub");
        assert_eq!(
            ctx.resolve_path("../top.txt"),
            PathBuf::from("/work/project/top.txt")
        );
        if let Some(home) = std::env::var_os("HOME") {
            assert_eq!(
                ctx.resolve_path("~/notes.md"),
                PathBuf::from(home).join("notes.md")
            );
        }
    }

    #[test]
    fn a_read_stamp_is_needed_and_must_be_current() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f.txt");
        std::fs::write(&file, "x").unwrap();
        let ctx = ToolContext::new(
            dir.path(),
            dir.path().join("spill"),
            CancellationToken::new(),
        );
        let err = ctx.ensure_read_and_unchanged(&file).unwrap_err();
        assert!(err.to_string().contains("has not been read yet"), "{err}");
        ctx.record_read(&file);
        ctx.ensure_read_and_unchanged(&file).unwrap();
        // A stamp taken before a change is stale.
        ctx.record_read_as(
            &file,
            FileStamp {
                modified: Some(SystemTime::UNIX_EPOCH),
            },
        );
        let err = ctx.ensure_read_and_unchanged(&file).unwrap_err();
        assert!(err.to_string().contains("modified since"), "{err}");
    }
}
