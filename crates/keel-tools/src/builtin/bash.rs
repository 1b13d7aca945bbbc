//! Bash: runs a shell command in the session's working directory, which persists from one
//! call to the next, with a timeout and interruption that take down every process the command
//! started.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt as _};

use super::common::{optional_u64, required_str};
use crate::output::{MAX_OUTPUT_CHARS, clip};
use crate::{Tool, ToolContext, ToolError, ToolOutput};

/// Timeout when the model gives none (Claude Code's default).
const DEFAULT_TIMEOUT_MS: u64 = 120_000;
/// The longest timeout a call may ask for.
const MAX_TIMEOUT_MS: u64 = 600_000;
/// Bytes kept from the start and from the end of each output stream; a command that prints
/// more has the middle dropped while it runs, so memory stays bounded.
const KEEP_HEAD_BYTES: usize = 4 * 1024 * 1024;
const KEEP_TAIL_BYTES: usize = 4 * 1024 * 1024;
/// How long the pipes may stay open after the shell exited and its process group was killed
/// (something that left the group with `setsid` may still hold them).
const PIPE_GRACE: Duration = Duration::from_secs(2);

/// The Bash tool.
#[derive(Debug, Clone, Copy, Default)]
pub struct Bash;

#[async_trait]
impl Tool for Bash {
    fn name(&self) -> &str {
        "Bash"
    }

    fn description(&self) -> &str {
        "Runs a command with bash and returns its output (stdout, then stderr). Use it for \
         builds, tests, git, package managers and other programs; prefer Read, Glob and Grep \
         for looking at files, and Edit or Write for changing them. The working directory \
         carries over between calls, so `cd` works as in a terminal. Commands get no input \
         (stdin is empty) and must not wait for a user. A non-zero exit is reported as an \
         error that starts with `Exit code N`. `timeout` is in milliseconds (default 120000, \
         at most 600000); on timeout the command and every process it started are stopped. \
         Background processes (`cmd &`) are stopped when the command finishes; for a process \
         that must keep running (a dev server, a watcher) set `run_in_background` instead, then \
         read its output with TaskOutput and stop it with TaskStop. Give a short `description` \
         of what the command does."
    }

    fn input_schema(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "command": {
                    "type": "string",
                    "description": "The command to run"
                },
                "timeout": {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": MAX_TIMEOUT_MS,
                    "description": "Timeout in milliseconds (default 120000, at most 600000)"
                },
                "description": {
                    "type": "string",
                    "description": "What the command does, in a few words (e.g. \"Run the unit tests\")"
                },
                "run_in_background": {
                    "type": "boolean",
                    "description": "Run the command in the background and return at once with a task id; read its output with TaskOutput and stop it with TaskStop (for dev servers, watchers, long builds)"
                },
                "dangerouslyDisableSandbox": {
                    "type": "boolean",
                    "description": "Run outside the OS sandbox (only when the sandbox is on and the command cannot work inside it; the user is asked)"
                }
            },
            "required": ["command"],
            "additionalProperties": false
        })
    }

    fn is_read_only(&self) -> bool {
        false
    }

    async fn call(&self, input: Value, ctx: &ToolContext) -> Result<ToolOutput, ToolError> {
        let command = required_str(&input, "command")?;
        let timeout_ms = optional_u64(&input, "timeout")?
            .unwrap_or(DEFAULT_TIMEOUT_MS)
            .clamp(1, MAX_TIMEOUT_MS);
        let unsandboxed = input
            .get("dangerouslyDisableSandbox")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let sandbox = if unsandboxed {
            None
        } else {
            ctx.sandbox.clone()
        };
        if input
            .get("run_in_background")
            .and_then(Value::as_bool)
            .unwrap_or(false)
        {
            let Some(background) = ctx.background.clone() else {
                return Err(ToolError::Failed(
                    "This session cannot run commands in the background; run the command in \
                     the foreground (without run_in_background)."
                        .to_string(),
                ));
            };
            return background
                .start(
                    crate::BackgroundCommand {
                        command: command.to_string(),
                        description: input
                            .get("description")
                            .and_then(Value::as_str)
                            .map(str::to_string),
                        sandbox,
                    },
                    ctx,
                )
                .await;
        }
        run(
            command,
            Duration::from_millis(timeout_ms),
            ctx,
            sandbox.as_deref(),
        )
        .await
    }
}

/// How a run ended.
enum Ending {
    Exited(std::io::Result<ExitStatus>),
    TimedOut,
    Interrupted,
}

async fn run(
    command: &str,
    timeout: Duration,
    ctx: &ToolContext,
    sandbox: Option<&crate::Sandbox>,
) -> Result<ToolOutput, ToolError> {
    let mut cwd = ctx.current_dir();
    let mut notes = String::new();
    if !cwd.is_dir() {
        notes = format!(
            "(The working directory {} no longer exists; the command ran in {} instead.)\n",
            cwd.display(),
            ctx.project_root.display()
        );
        cwd = ctx.project_root.clone();
        ctx.set_current_dir(cwd.clone());
    }
    let cwd_file = tempfile::Builder::new()
        .prefix("keel-cwd-")
        .suffix(".txt")
        .tempfile()
        .map_err(|source| ToolError::Io {
            path: std::env::temp_dir(),
            source,
        })?;
    // The command runs first and unchanged; then its exit status is saved, the directory it
    // ended in is recorded so the next call starts there, and the status is restored.
    let script = format!(
        "{command}\n__keel_status=$?\npwd -P >| {} 2>/dev/null\nexit $__keel_status\n",
        shell_quote(cwd_file.path())
    );

    let shell = shell_path();
    let mut cmd = shell_command(&script, &cwd, ctx, sandbox);
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|e| {
        ToolError::Failed(format!(
            "could not start {} in {}: {e}",
            shell.display(),
            cwd.display()
        ))
    })?;
    let mut group = keel_policy::process_group::GroupKiller::new(child.id());

    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(ToolError::Failed(
            "could not capture the command's output".to_string(),
        ));
    };
    let mut out = Capture::default();
    let mut err = Capture::default();
    let ending = {
        let (exited_tx, exited_rx) = tokio::sync::oneshot::channel::<()>();
        let wait = async {
            let status = child.wait().await;
            // The shell is done. Background jobs it left (`sleep 60 &`) would keep the pipes
            // open and the call hanging, and nothing would ever stop them: they belong to
            // this call, so the whole group goes now. Long-lived processes need a background
            // task instead (a later tool option), not a stray child.
            group.kill();
            let _ = exited_tx.send(());
            status
        };
        let read = async {
            let both = async {
                let progress = ctx.progress.as_ref().map(Throttle::new);
                tokio::join!(
                    read_into(stdout, &mut out, progress.clone()),
                    read_into(stderr, &mut err, progress)
                )
            };
            let grace = async {
                if exited_rx.await.is_ok() {
                    tokio::time::sleep(PIPE_GRACE).await;
                } else {
                    std::future::pending::<()>().await;
                }
            };
            tokio::select! {
                _ = both => {}
                _ = grace => {}
            }
        };
        tokio::select! {
            (status, ()) = async { tokio::join!(wait, read) } => Ending::Exited(status),
            _ = tokio::time::sleep(timeout) => Ending::TimedOut,
            _ = ctx.cancel.cancelled() => Ending::Interrupted,
        }
    };
    group.kill();
    group.disarm();
    if !matches!(ending, Ending::Exited(_)) {
        // Reap the shell; it was killed with its group, so this is immediate.
        let _ = tokio::time::timeout(Duration::from_secs(2), child.wait()).await;
    }

    let stdout = out.into_string();
    let stderr = err.into_string();
    let combined = format!("{notes}{}", combine(&stdout, &stderr));
    let structured = |interrupted: bool| {
        json!({
            "stdout": clip(&stdout, MAX_OUTPUT_CHARS),
            "stderr": clip(&stderr, MAX_OUTPUT_CHARS),
            "interrupted": interrupted,
            "isImage": false,
        })
    };
    match ending {
        Ending::Interrupted => Err(ToolError::Interrupted { partial: combined }),
        Ending::TimedOut => Err(ToolError::WithOutput(ToolOutput {
            content: format!(
                "Command timed out after {} and was stopped, together with every process it \
                 started. Output so far:\n{}",
                human_duration(timeout),
                if combined.is_empty() {
                    "(none)"
                } else {
                    &combined
                }
            ),
            structured: Some(structured(true)),
            images: Vec::new(),
        })),
        Ending::Exited(Err(e)) => Err(ToolError::Failed(format!(
            "lost track of the command while waiting for it: {e}"
        ))),
        Ending::Exited(Ok(status)) => {
            if let Some(dir) = recorded_dir(cwd_file.path()) {
                ctx.set_current_dir(dir);
            }
            match status.code() {
                Some(0) => Ok(ToolOutput {
                    content: if combined.is_empty() {
                        "(Command completed with no output)".to_string()
                    } else {
                        combined
                    },
                    structured: Some(structured(false)),
                    images: Vec::new(),
                }),
                code => {
                    let head = match code {
                        Some(code) => format!("Exit code {code}"),
                        None => killed_by(status),
                    };
                    let mut content = if combined.is_empty() {
                        head
                    } else {
                        format!("{head}\n{combined}")
                    };
                    // Say so when the sandbox is the likely cause, so the model does not retry
                    // blindly.
                    if let Some(note) =
                        sandbox.and_then(|s| s.policy.explain_failure(code, &stderr))
                    {
                        content.push('\n');
                        content.push_str(&note);
                    }
                    Err(ToolError::WithOutput(ToolOutput {
                        content,
                        structured: Some(structured(false)),
                        images: Vec::new(),
                    }))
                }
            }
        }
    }
}

/// The shell running `script` as the Bash tool runs commands: bash (or `/bin/sh`) with `-c`,
/// inside the sandbox launcher when one is given, with the session's environment, stdin empty,
/// in `cwd`, as the leader of its own process group (so the command and everything it starts
/// can be stopped at once). Output goes wherever the caller points it; background tasks use
/// this too, so the sandbox applies to them in the same way.
pub fn shell_command(
    script: &str,
    cwd: &Path,
    ctx: &ToolContext,
    sandbox: Option<&crate::Sandbox>,
) -> tokio::process::Command {
    let shell = shell_path();
    let mut cmd = match sandbox {
        // The launcher confines itself, then execs the shell: same pid, same process group.
        Some(sandbox) => tokio::process::Command::from(keel_policy::sandbox::launcher_command(
            &sandbox.launcher,
            &sandbox.policy,
            shell,
            ["-c", script],
        )),
        None => {
            let mut cmd = tokio::process::Command::new(shell);
            cmd.arg("-c").arg(script);
            cmd
        }
    };
    cmd.envs(ctx.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .current_dir(cwd)
        .env("GIT_TERMINAL_PROMPT", "0")
        .stdin(Stdio::null());
    #[cfg(unix)]
    cmd.process_group(0);
    cmd
}

/// stdout, then stderr on the following line, without trailing newlines.
fn combine(stdout: &str, stderr: &str) -> String {
    let out = stdout.trim_end_matches(['\n', '\r']);
    let err = stderr.trim_end_matches(['\n', '\r']);
    match (out.is_empty(), err.is_empty()) {
        (false, false) => format!("{out}\n{err}"),
        (false, true) => out.to_string(),
        (true, false) => err.to_string(),
        (true, true) => String::new(),
    }
}

fn killed_by(status: ExitStatus) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt as _;
        if let Some(signal) = status.signal() {
            return match nix::sys::signal::Signal::try_from(signal) {
                Ok(named) => format!("Command was killed by signal {signal} ({named})"),
                Err(_) => format!("Command was killed by signal {signal}"),
            };
        }
    }
    format!("Command ended abnormally ({status})")
}

fn human_duration(duration: Duration) -> String {
    let ms = duration.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms.is_multiple_of(60_000) {
        format!("{}m", ms / 60_000)
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{:.1}s", duration.as_secs_f64())
    }
}

/// The directory the wrapper recorded after the command, if it still exists.
fn recorded_dir(file: &Path) -> Option<PathBuf> {
    let text = std::fs::read_to_string(file).ok()?;
    let line = text.strip_suffix('\n').unwrap_or(&text);
    if line.is_empty() {
        return None;
    }
    let dir = PathBuf::from(line);
    dir.is_dir().then_some(dir)
}

/// bash from PATH, or `/bin/sh` where there is none.
fn shell_path() -> &'static Path {
    static SHELL: OnceLock<PathBuf> = OnceLock::new();
    SHELL.get_or_init(|| {
        std::env::var_os("PATH")
            .and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|dir| dir.join("bash"))
                    .find(|candidate| candidate.is_file())
            })
            .unwrap_or_else(|| PathBuf::from("/bin/sh"))
    })
}

/// Quotes a path for the shell: single quotes, with embedded ones closed and escaped.
fn shell_quote(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', r"'\''"))
}

/// One output stream as captured: its start and its most recent end, with the count of
/// bytes dropped between them.
#[derive(Default)]
struct Capture {
    head: Vec<u8>,
    tail: Vec<u8>,
    dropped: usize,
}

impl Capture {
    fn push(&mut self, mut bytes: &[u8]) {
        if self.head.len() < KEEP_HEAD_BYTES {
            let room = (KEEP_HEAD_BYTES - self.head.len()).min(bytes.len());
            self.head.extend_from_slice(&bytes[..room]);
            bytes = &bytes[room..];
        }
        self.tail.extend_from_slice(bytes);
        // Trim in batches so the cost is amortised over many pushes.
        if self.tail.len() > 2 * KEEP_TAIL_BYTES {
            let excess = self.tail.len() - KEEP_TAIL_BYTES;
            self.tail.drain(..excess);
            self.dropped += excess;
        }
    }

    fn into_string(mut self) -> String {
        if self.tail.len() > KEEP_TAIL_BYTES {
            let excess = self.tail.len() - KEEP_TAIL_BYTES;
            self.tail.drain(..excess);
            self.dropped += excess;
        }
        let mut text = String::from_utf8_lossy(&self.head).into_owned();
        if self.dropped > 0 {
            text.push_str(&format!(
                "\n[... {} bytes of output dropped while the command ran ...]\n",
                self.dropped
            ));
        }
        text.push_str(&String::from_utf8_lossy(&self.tail));
        text
    }
}

async fn read_into(
    mut pipe: impl AsyncRead + Unpin,
    capture: &mut Capture,
    progress: Option<Throttle>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let waiting = progress.as_ref().is_some_and(Throttle::has_pending);
        // Output held back by the throttle goes out once the command is quiet for a moment,
        // so the last lines before a pause are shown. (`read` is cancel-safe.)
        let read = tokio::select! {
            read = pipe.read(&mut buf) => read,
            () = tokio::time::sleep(PROGRESS_EVERY), if waiting => {
                if let Some(progress) = &progress {
                    progress.flush();
                }
                continue;
            }
        };
        match read {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                capture.push(&buf[..n]);
                if let Some(progress) = &progress {
                    progress.push(&buf[..n]);
                }
            }
        }
    }
}

/// How often live output is reported at most: a command printing in a tight loop must not
/// flood the frontend with events.
const PROGRESS_EVERY: Duration = Duration::from_millis(100);
/// The most live output kept between two reports (a live view shows the last lines only).
const PROGRESS_KEEP: usize = 4096;

/// Batches a command's output into progress reports (shared by its stdout and stderr readers).
#[derive(Clone)]
struct Throttle {
    progress: crate::Progress,
    state: std::sync::Arc<std::sync::Mutex<(std::time::Instant, Vec<u8>)>>,
}

impl Throttle {
    fn new(progress: &crate::Progress) -> Self {
        Self {
            progress: progress.clone(),
            state: std::sync::Arc::new(std::sync::Mutex::new((
                std::time::Instant::now() - PROGRESS_EVERY,
                Vec::new(),
            ))),
        }
    }

    fn has_pending(&self) -> bool {
        self.state.lock().is_ok_and(|state| !state.1.is_empty())
    }

    /// Reports what is held back now.
    fn flush(&self) {
        let text = {
            let Ok(mut state) = self.state.lock() else {
                return;
            };
            if state.1.is_empty() {
                return;
            }
            state.0 = std::time::Instant::now();
            String::from_utf8_lossy(&std::mem::take(&mut state.1)).into_owned()
        };
        self.progress.report(&text);
    }

    fn push(&self, bytes: &[u8]) {
        let text = {
            let Ok(mut state) = self.state.lock() else {
                return;
            };
            state.1.extend_from_slice(bytes);
            if state.1.len() > PROGRESS_KEEP {
                let excess = state.1.len() - PROGRESS_KEEP;
                state.1.drain(..excess);
            }
            if state.0.elapsed() < PROGRESS_EVERY {
                return;
            }
            state.0 = std::time::Instant::now();
            String::from_utf8_lossy(&std::mem::take(&mut state.1)).into_owned()
        };
        self.progress.report(&text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capture_keeps_head_and_tail_of_huge_output() {
        let mut capture = Capture::default();
        let chunk = vec![b'a'; 1024 * 1024];
        for _ in 0..20 {
            capture.push(&chunk);
        }
        capture.push(b"THE END");
        let text = capture.into_string();
        assert!(text.starts_with("aaaa"));
        assert!(text.ends_with("aaaaTHE END"));
        assert!(text.contains("bytes of output dropped"));
        assert!(text.len() < KEEP_HEAD_BYTES + KEEP_TAIL_BYTES + 200);
    }

    #[test]
    fn outputs_are_combined_without_trailing_newlines() {
        assert_eq!(combine("out\n", "err\n"), "out\nerr");
        assert_eq!(combine("", "err\n"), "err");
        assert_eq!(combine("out\n\n", ""), "out");
        assert_eq!(combine("", ""), "");
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(human_duration(Duration::from_millis(1000)), "1s");
        assert_eq!(human_duration(Duration::from_millis(120_000)), "2m");
        assert_eq!(human_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(human_duration(Duration::from_millis(250)), "250ms");
    }

    #[test]
    fn paths_are_quoted_for_the_shell() {
        assert_eq!(shell_quote(Path::new("/tmp/a b")), "'/tmp/a b'");
        assert_eq!(shell_quote(Path::new("/tmp/it's")), r"'/tmp/it'\''s'");
    }
}
