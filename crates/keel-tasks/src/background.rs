//! Background tasks of a session: shell commands started with `run_in_background` (and jobs
//! such as background agents) that keep running while the conversation goes on. Each writes
//! its output to a file in the session's folder; `TaskOutput` reads what is new since the last
//! read, `TaskStop` stops one, and a finished task leaves a notice that enters the
//! conversation at the next turn. When the session ends every task still running is stopped
//! (the whole process group), unless the user asked to keep them.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read as _, Seek as _, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use keel_policy::process_group::GroupKiller;
use keel_tools::{
    BackgroundCommand, BackgroundJob, BackgroundShell, BackgroundTaskSummary, JobControl,
    JobStarted, JobWriter, ToolContext, ToolError, ToolOutput,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::TasksError;
use crate::fsutil;

/// The most output one `TaskOutput` call returns; older output is skipped (the file has it all).
pub const MAX_READ_CHARS: usize = 30_000;

/// How long jobs get to wind down after being cancelled at the end of the session.
const JOB_GRACE: Duration = Duration::from_secs(3);

/// How long a stopped command gets to exit after SIGTERM before its group is killed.
const STOP_GRACE: Duration = Duration::from_millis(1500);

/// Where a background task stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Still going.
    Running,
    /// Ended with exit code 0 (or a job that succeeded).
    Completed,
    /// Ended with another exit code, a signal, or an error.
    Failed,
    /// Stopped by `TaskStop` or at the end of the session.
    Killed,
}

impl JobState {
    /// The state as the tools spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Killed => "killed",
        }
    }
}

/// What a listing shows of one task (also its `<id>.json` beside the output file).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobInfo {
    /// `bash_1`, `agent_2`, ...
    pub id: String,
    /// `local_bash` or another job kind (`local_agent`).
    pub task_type: String,
    /// The command line, for shell tasks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// What it does, in a few words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Where its output goes.
    pub output_file: PathBuf,
    /// The process id of a shell task (its process group id too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// Where it stands.
    pub status: JobState,
    /// The exit code, once a shell task ended on its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// When it started (RFC 3339).
    pub started_at: String,
    /// When it ended (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<String>,
}

struct Entry {
    info: JobInfo,
    /// Bytes of the output file already returned by `TaskOutput`.
    read_offset: u64,
    /// Cancels a job (non-shell task); shells are stopped through their process group.
    cancel: CancellationToken,
    /// Set when the user or the model stopped it, so no "finished" notice is sent.
    stopped: bool,
}

struct Inner {
    next: u32,
    tasks: BTreeMap<String, Entry>,
    notices: Vec<String>,
    waiters: Vec<tokio::task::JoinHandle<()>>,
    /// Jobs run in this process (background agents): they cannot outlive it, and they hold
    /// the session's event sink, so they are always ended with the session.
    jobs: Vec<tokio::task::JoinHandle<()>>,
}

struct Shared {
    dir: PathBuf,
    inner: Mutex<Inner>,
    /// Bumped whenever a task ends, so blocked readers wake up.
    changed: tokio::sync::watch::Sender<u64>,
}

/// The background tasks of one session. Cheap to clone (shared).
#[derive(Clone)]
pub struct BackgroundTasks {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for BackgroundTasks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackgroundTasks")
            .field("dir", &self.shared.dir)
            .finish_non_exhaustive()
    }
}

/// What `TaskOutput` returns.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputRead {
    /// The task as it is now.
    pub info: JobInfo,
    /// Output written since the previous read (the newest part if there was a lot).
    pub output: String,
    /// Whether a blocking read gave up before the task ended.
    pub timed_out: bool,
}

/// A job started by other code (a background agent): it writes its output through this and
/// says when it is done; `TaskStop` cancels [`JobHandle::cancel`].
#[derive(Debug, Clone)]
pub struct JobHandle {
    /// The task id (`agent_3`).
    pub id: String,
    /// The file its output goes to.
    pub output_file: PathBuf,
    /// Cancelled when the job must stop (TaskStop, end of session).
    pub cancel: CancellationToken,
    tasks: BackgroundTasks,
}

impl JobHandle {
    /// Appends text to the job's output.
    pub fn write(&self, text: &str) -> Result<(), TasksError> {
        use std::io::Write as _;
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(&self.output_file)
            .map_err(|source| TasksError::io(&self.output_file, source))?;
        file.write_all(text.as_bytes())
            .map_err(|source| TasksError::io(&self.output_file, source))
    }

    /// Records that the job ended; `summary` goes into the notice the model gets.
    pub fn finish(&self, success: bool, summary: &str) {
        self.finish_with_result(success, summary, None);
    }

    /// Records that the job ended with an answer (a background agent's), which the notice
    /// quotes so the model need not read it separately.
    pub fn finish_with_result(&self, success: bool, summary: &str, result: Option<&str>) {
        let state = if success {
            JobState::Completed
        } else {
            JobState::Failed
        };
        self.tasks
            .ended(&self.id, state, None, Some(summary), result);
    }
}

impl BackgroundTasks {
    /// A registry whose output files go into `dir` (the session's `background/` folder).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        let dir = dir.into();
        // Ids continue after the files a resumed session left, so no output file is reused.
        let next = std::fs::read_dir(&dir)
            .map(|entries| {
                entries
                    .flatten()
                    .filter_map(|e| {
                        let name = e.file_name().to_string_lossy().to_string();
                        let stem = name.strip_suffix(".output")?;
                        stem.rsplit('_').next()?.parse::<u32>().ok()
                    })
                    .max()
                    .unwrap_or(0)
            })
            .unwrap_or(0);
        let (changed, _) = tokio::sync::watch::channel(0);
        Self {
            shared: Arc::new(Shared {
                dir,
                inner: Mutex::new(Inner {
                    next,
                    tasks: BTreeMap::new(),
                    notices: Vec::new(),
                    waiters: Vec::new(),
                    jobs: Vec::new(),
                }),
                changed,
            }),
        }
    }

    /// The folder output files go to.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        crate::runtime::lock(&self.shared.inner)
    }

    fn allocate(&self, prefix: &str) -> Result<(String, PathBuf), TasksError> {
        fsutil::create_dir(&self.shared.dir)?;
        let mut inner = self.inner();
        inner.next += 1;
        let id = format!("{prefix}_{}", inner.next);
        let path = self.shared.dir.join(format!("{id}.output"));
        Ok((id, path))
    }

    fn save(&self, info: &JobInfo) {
        let path = self.shared.dir.join(format!("{}.json", info.id));
        if let Err(error) = fsutil::write_json(&path, info) {
            tracing::warn!(%error, "cannot record a background task's status");
        }
    }

    /// Starts `command` in `cwd` in the background: its own process group, stdout and stderr
    /// into the task's output file, the sandbox applied as for foreground commands.
    pub async fn start_shell(
        &self,
        command: &BackgroundCommand,
        ctx: &ToolContext,
    ) -> Result<JobInfo, TasksError> {
        let (id, output_file) = self.allocate("bash")?;
        let out =
            File::create(&output_file).map_err(|source| TasksError::io(&output_file, source))?;
        let err = out
            .try_clone()
            .map_err(|source| TasksError::io(&output_file, source))?;
        let cwd = ctx.current_dir();
        let mut cmd = keel_tools::builtin::shell_command(
            &command.command,
            &cwd,
            ctx,
            command.sandbox.as_deref(),
        );
        cmd.stdout(out).stderr(err).kill_on_drop(false);
        let mut child = cmd.spawn().map_err(|source| TasksError::Spawn {
            what: format!("the background command in {}", cwd.display()),
            source,
        })?;
        let info = JobInfo {
            id: id.clone(),
            task_type: "local_bash".into(),
            command: Some(command.command.clone()),
            description: command.description.clone(),
            output_file,
            pid: child.id(),
            status: JobState::Running,
            exit_code: None,
            started_at: fsutil::now_rfc3339(),
            ended_at: None,
        };
        self.save(&info);
        let this = self.clone();
        let waiter_id = id.clone();
        let pid = child.id();
        let waiter = tokio::spawn(async move {
            let status = child.wait().await;
            // The shell is gone; whatever it left running in its group goes with it, as for
            // foreground commands.
            GroupKiller::new(pid).kill();
            let (state, code) = match status {
                Ok(status) if status.success() => (JobState::Completed, Some(0)),
                Ok(status) => (JobState::Failed, status.code()),
                Err(_) => (JobState::Failed, None),
            };
            this.ended(&waiter_id, state, code, None, None);
        });
        let mut inner = self.inner();
        inner.waiters.push(waiter);
        inner.tasks.insert(
            id,
            Entry {
                info: info.clone(),
                read_offset: 0,
                cancel: CancellationToken::new(),
                stopped: false,
            },
        );
        Ok(info)
    }

    /// Registers a job that other code runs (e.g. a background agent, kind `local_agent`);
    /// its id starts with `prefix`.
    pub fn start_job(
        &self,
        prefix: &str,
        task_type: &str,
        description: &str,
    ) -> Result<JobHandle, TasksError> {
        let (id, output_file) = self.allocate(prefix)?;
        File::create(&output_file).map_err(|source| TasksError::io(&output_file, source))?;
        let cancel = CancellationToken::new();
        let info = JobInfo {
            id: id.clone(),
            task_type: task_type.to_string(),
            command: None,
            description: Some(description.to_string()),
            output_file: output_file.clone(),
            pid: None,
            status: JobState::Running,
            exit_code: None,
            started_at: fsutil::now_rfc3339(),
            ended_at: None,
        };
        self.save(&info);
        self.inner().tasks.insert(
            id.clone(),
            Entry {
                info,
                read_offset: 0,
                cancel: cancel.clone(),
                stopped: false,
            },
        );
        Ok(JobHandle {
            id,
            output_file,
            cancel,
            tasks: self.clone(),
        })
    }

    /// Records the end of a task and, unless it was stopped on purpose, leaves a notice.
    fn ended(
        &self,
        id: &str,
        state: JobState,
        code: Option<i32>,
        summary: Option<&str>,
        result: Option<&str>,
    ) {
        let info = {
            let mut inner = self.inner();
            let Some(entry) = inner.tasks.get_mut(id) else {
                return;
            };
            if entry.info.status != JobState::Running {
                return;
            }
            let state = if entry.stopped {
                JobState::Killed
            } else {
                state
            };
            entry.info.status = state;
            entry.info.exit_code = code;
            entry.info.ended_at = Some(fsutil::now_rfc3339());
            let info = entry.info.clone();
            if !entry.stopped {
                let notice = completion_notice(&info, summary, result);
                inner.notices.push(notice);
            }
            info
        };
        self.save(&info);
        self.shared.changed.send_modify(|n| *n += 1);
    }

    /// Notices of tasks that finished since the last call, oldest first.
    pub fn take_notices(&self) -> Vec<String> {
        std::mem::take(&mut self.inner().notices)
    }

    /// Every task of the session, oldest first (what `/tasks` lists).
    pub fn list(&self) -> Vec<JobInfo> {
        let inner = self.inner();
        let mut infos: Vec<JobInfo> = inner.tasks.values().map(|e| e.info.clone()).collect();
        infos.sort_by_key(|i| {
            i.id.rsplit('_')
                .next()
                .and_then(|n| n.parse::<u32>().ok())
                .unwrap_or(u32::MAX)
        });
        infos
    }

    /// The state of one task.
    pub fn get(&self, id: &str) -> Option<JobInfo> {
        self.inner().tasks.get(id).map(|e| e.info.clone())
    }

    fn unknown(&self, id: &str) -> TasksError {
        let ids: Vec<String> = self.list().into_iter().map(|i| i.id).collect();
        TasksError::NotFound(if ids.is_empty() {
            format!("no background task {id}: none was started in this session")
        } else {
            format!(
                "no background task {id}; this session has {}",
                ids.join(", ")
            )
        })
    }

    /// Output written since the previous read. With `block`, first waits until the task ends
    /// or `timeout` passes.
    pub async fn read(
        &self,
        id: &str,
        block: bool,
        timeout: Duration,
    ) -> Result<OutputRead, TasksError> {
        let mut timed_out = false;
        if block {
            match self.wait_until_ended(id, Instant::now() + timeout).await {
                Waited::Ended => {}
                Waited::TimedOut => timed_out = true,
                Waited::Gone => return Err(self.unknown(id)),
            }
        }
        let (path, offset) = {
            let inner = self.inner();
            let Some(entry) = inner.tasks.get(id) else {
                return Err(self.unknown(id));
            };
            (entry.info.output_file.clone(), entry.read_offset)
        };
        let (output, end) = tokio::task::spawn_blocking(move || read_from(&path, offset))
            .await
            .map_err(|_| TasksError::Invalid("reading the output was cancelled".into()))??;
        let mut inner = self.inner();
        let Some(entry) = inner.tasks.get_mut(id) else {
            return Err(self.unknown(id));
        };
        entry.read_offset = end;
        Ok(OutputRead {
            info: entry.info.clone(),
            output,
            timed_out,
        })
    }

    /// Waits until the task `id` is no longer running, or `deadline` passes, or the task is
    /// unknown.
    async fn wait_until_ended(&self, id: &str, deadline: Instant) -> Waited {
        let mut changes = self.shared.changed.subscribe();
        loop {
            let Some(info) = self.get(id) else {
                return Waited::Gone;
            };
            if info.status != JobState::Running {
                return Waited::Ended;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || tokio::time::timeout(left, changes.changed()).await.is_err() {
                return Waited::TimedOut;
            }
        }
    }

    /// Stops a task: SIGTERM to its process group, SIGKILL after a short grace; a job is
    /// cancelled. Returns the task as it was when stopped.
    pub async fn stop(&self, id: &str) -> Result<JobInfo, TasksError> {
        let (pid, cancel, running) = {
            let mut inner = self.inner();
            let Some(entry) = inner.tasks.get_mut(id) else {
                return Err(self.unknown(id));
            };
            let running = entry.info.status == JobState::Running;
            if running {
                entry.stopped = true;
            }
            (entry.info.pid, entry.cancel.clone(), running)
        };
        if !running {
            return Err(TasksError::Invalid(format!(
                "background task {id} is not running (it is {}); nothing to stop",
                self.get(id).map(|i| i.status.as_str()).unwrap_or("gone")
            )));
        }
        cancel.cancel();
        match pid {
            Some(pid) => {
                let group = GroupKiller::new(Some(pid));
                group.terminate();
                self.wait_until_ended(id, Instant::now() + STOP_GRACE).await;
                group.kill();
            }
            None => self.ended(id, JobState::Killed, None, None, None),
        }
        // The waiter records the end once the process is reaped; wait for it briefly so the
        // answer says "killed".
        self.wait_until_ended(id, Instant::now() + STOP_GRACE).await;
        self.get(id).ok_or_else(|| self.unknown(id))
    }

    /// Stops every running task (the session is ending), or with `keep` leaves them running
    /// and returns them so the user can be told their process ids.
    pub async fn shutdown(&self, keep: bool) -> Vec<JobInfo> {
        let (running, jobs): (Vec<JobInfo>, Vec<JobInfo>) = self
            .list()
            .into_iter()
            .filter(|i| i.status == JobState::Running)
            .partition(|i| i.pid.is_some());
        // Jobs live in this process: they end with it whatever `keep` says.
        for info in &jobs {
            if let Err(error) = self.stop(&info.id).await {
                tracing::debug!(%error, "stopping a background job at the end of the session");
            }
        }
        // A stopped job winds down (a subagent removes its clean worktree) for a moment
        // before it is dropped: it holds the session's event sink, which must close.
        let jobs = std::mem::take(&mut self.inner().jobs);
        let deadline = tokio::time::Instant::now() + JOB_GRACE;
        for mut job in jobs {
            if tokio::time::timeout_at(deadline, &mut job).await.is_err() {
                job.abort();
            }
        }
        if keep {
            return running;
        }
        for info in &running {
            if let Err(error) = self.stop(&info.id).await {
                tracing::debug!(%error, "stopping a background task at the end of the session");
            }
        }
        let waiters = std::mem::take(&mut self.inner().waiters);
        for waiter in waiters {
            waiter.abort();
        }
        Vec::new()
    }
}

impl BackgroundTasks {
    /// Starts `job` (a background agent) as a task of this session: registers it, runs its
    /// work on the runtime, and records its end and answer when the work resolves.
    pub fn run_job(&self, job: BackgroundJob) -> Result<JobStarted, TasksError> {
        let handle = self.start_job(&job.prefix, &job.task_type, &job.description)?;
        let writer = handle.clone();
        let write: JobWriter = Arc::new(move |text: &str| {
            if let Err(error) = writer.write(text) {
                tracing::warn!(%error, "cannot write a background job's output");
            }
        });
        let control = JobControl {
            id: handle.id.clone(),
            cancel: handle.cancel.clone(),
            write,
        };
        let work = (job.work)(control);
        let started = JobStarted {
            id: handle.id.clone(),
            output_file: handle.output_file.clone(),
        };
        let task = tokio::spawn(async move {
            let end = work.await;
            if !end.result.is_empty()
                && let Err(error) = handle.write(&format!("{}\n", end.result.trim_end()))
            {
                tracing::warn!(%error, "cannot write a background job's answer");
            }
            handle.finish_with_result(end.success, &end.summary, Some(&end.result));
        });
        self.inner().jobs.push(task);
        Ok(started)
    }

    /// The tasks as `/tasks` shows them.
    pub fn summaries(&self) -> Vec<BackgroundTaskSummary> {
        let now = chrono::Utc::now();
        self.list()
            .into_iter()
            .map(|info| {
                let parse = |t: &str| {
                    chrono::DateTime::parse_from_rfc3339(t)
                        .ok()
                        .map(|d| d.with_timezone(&chrono::Utc))
                };
                let start = parse(&info.started_at);
                let end = info.ended_at.as_deref().and_then(parse).unwrap_or(now);
                let runtime = start
                    .and_then(|s| (end - s).to_std().ok())
                    .unwrap_or_default();
                BackgroundTaskSummary {
                    description: info
                        .description
                        .clone()
                        .or(info.command.clone())
                        .unwrap_or_default(),
                    id: info.id,
                    kind: info.task_type,
                    status: info.status.as_str().to_string(),
                    runtime,
                }
            })
            .collect()
    }
}

#[async_trait]
impl BackgroundShell for BackgroundTasks {
    async fn spawn_job(&self, job: BackgroundJob) -> Result<JobStarted, ToolError> {
        self.run_job(job)
            .map_err(|e| ToolError::Failed(e.to_string()))
    }

    fn list(&self) -> Vec<BackgroundTaskSummary> {
        self.summaries()
    }

    async fn start(
        &self,
        command: BackgroundCommand,
        ctx: &ToolContext,
    ) -> Result<ToolOutput, ToolError> {
        let info = self
            .start_shell(&command, ctx)
            .await
            .map_err(|e| ToolError::Failed(e.to_string()))?;
        Ok(ToolOutput {
            content: format!(
                "Command running in background with ID: {}. Output is being written to: {}",
                info.id,
                info.output_file.display()
            ),
            structured: Some(json!({
                "stdout": "",
                "stderr": "",
                "interrupted": false,
                "isImage": false,
                "backgroundTaskId": info.id,
            })),
            images: Vec::new(),
        })
    }
}

/// The notice a finished task leaves for the model, in Claude Code's shape.
fn completion_notice(info: &JobInfo, summary: Option<&str>, result: Option<&str>) -> String {
    let what = match (&info.description, &info.command) {
        (Some(d), _) => d.clone(),
        (None, Some(c)) => c.clone(),
        (None, None) => info.id.clone(),
    };
    let summary = match summary {
        Some(summary) => summary.to_string(),
        None => {
            let kind = if info.task_type == "local_bash" {
                "Background command"
            } else {
                "Background task"
            };
            let ending = match (info.status, info.exit_code) {
                (JobState::Completed, _) => "completed (exit code 0)".to_string(),
                (_, Some(code)) => format!("failed (exit code {code})"),
                _ => "failed".to_string(),
            };
            format!("{kind} \"{what}\" {ending}")
        }
    };
    let result = match result.map(str::trim).filter(|r| !r.is_empty()) {
        Some(result) => format!("\n<result>{result}</result>"),
        None => String::new(),
    };
    format!(
        "<task-notification>\n<task-id>{}</task-id>\n<output-file>{}</output-file>\n<status>{}</status>\n<summary>{summary}</summary>{result}\n</task-notification>\nRead the output with TaskOutput (task_id {}) or from the file: {}",
        info.id,
        info.output_file.display(),
        info.status.as_str(),
        info.id,
        info.output_file.display()
    )
}

/// How waiting for a task to end came out.
enum Waited {
    /// It is no longer running.
    Ended,
    /// The deadline passed first.
    TimedOut,
    /// No task has that id.
    Gone,
}

/// Reads `path` from `offset` to its end; returns the text (the newest [`MAX_READ_CHARS`] if
/// there is more) and the new offset.
fn read_from(path: &Path, offset: u64) -> Result<(String, u64), TasksError> {
    let mut file = File::open(path).map_err(|source| TasksError::io(path, source))?;
    let len = file
        .metadata()
        .map_err(|source| TasksError::io(path, source))?
        .len();
    if len <= offset {
        return Ok((String::new(), len.max(offset)));
    }
    // Read at most a bounded tail: a chatty server can write gigabytes between reads.
    let max_bytes = (MAX_READ_CHARS as u64) * 4;
    let start = offset.max(len.saturating_sub(max_bytes));
    file.seek(SeekFrom::Start(start))
        .map_err(|source| TasksError::io(path, source))?;
    let mut bytes = Vec::new();
    file.take(len - start)
        .read_to_end(&mut bytes)
        .map_err(|source| TasksError::io(path, source))?;
    let text = String::from_utf8_lossy(&bytes);
    let skipped_bytes = start - offset;
    let chars = text.chars().count();
    let text = if chars > MAX_READ_CHARS || skipped_bytes > 0 {
        let tail: String = text
            .chars()
            .skip(chars.saturating_sub(MAX_READ_CHARS))
            .collect();
        format!(
            "[... earlier output skipped; the whole output is in {} ...]\n{tail}",
            path.display()
        )
    } else {
        text.into_owned()
    };
    Ok((text, len))
}

/// Whether a process is alive (for listings of tasks a previous session left running).
pub fn process_alive(pid: u32) -> bool {
    #[cfg(unix)]
    {
        // A zombie (ended, not yet reaped by its parent) still answers signal 0 but is gone.
        if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            let state = stat.rsplit(')').next().unwrap_or("").trim_start();
            return !state.starts_with(['Z', 'X']);
        }
        let Ok(pid) = i32::try_from(pid) else {
            return false;
        };
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
    }
    #[cfg(not(unix))]
    {
        let _ = pid;
        false
    }
}

/// The background tasks recorded in a session folder's `background/` (running ones included,
/// e.g. kept after their session ended), for `keel tasks background`.
pub fn recorded(dir: &Path) -> Vec<JobInfo> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut infos: Vec<JobInfo> = entries
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .filter_map(|e| fsutil::read_json::<JobInfo>(&e.path()).ok().flatten())
        .collect();
    infos.sort_by(|a, b| a.started_at.cmp(&b.started_at));
    infos
}
