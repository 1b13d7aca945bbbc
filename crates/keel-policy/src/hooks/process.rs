//! Running one hook command: its own process group, JSON on stdin, bounded output, a
//! timeout that kills the whole group.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use super::HookEnv;

/// Output kept per stream; the rest is read and dropped so the hook never blocks on a full
/// pipe.
const MAX_CAPTURE: usize = 1024 * 1024;

/// How long the pipes may stay open after the shell exited (a background job it left holds
/// them) before keel stops waiting and kills the group.
const PIPE_GRACE: Duration = Duration::from_millis(200);

/// How a hook process ended.
#[derive(Debug)]
pub(crate) enum RunStatus {
    /// Exited with this code.
    Exited(i32),
    /// Killed by this signal (not by keel).
    Signaled(i32),
    /// Ran past its timeout and was killed.
    TimedOut,
    /// The session cancelled it.
    Cancelled,
    /// Could not be started.
    SpawnFailed(String),
}

/// What one hook did.
#[derive(Debug)]
pub(crate) struct RawRun {
    pub(crate) status: RunStatus,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
    pub(crate) elapsed: Duration,
}

/// Runs `command` with `bash -c` (`sh -c` where there is no bash).
pub(crate) async fn run_one(
    command: &str,
    timeout: Duration,
    stdin: &[u8],
    env: &HookEnv,
) -> RawRun {
    let started = Instant::now();
    let dir = if env.cwd.is_dir() {
        env.cwd.as_path()
    } else {
        env.project_dir.as_path()
    };
    let spawned = match spawn("bash", command, dir, env) {
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            spawn("sh", command, dir, env)
        }
        other => other,
    };
    let mut child = match spawned {
        Ok(child) => child,
        Err(error) => {
            return RawRun {
                status: RunStatus::SpawnFailed(format!(
                    "could not start a shell in {}: {error}",
                    dir.display()
                )),
                stdout: String::new(),
                stderr: String::new(),
                elapsed: started.elapsed(),
            };
        }
    };
    let mut group = crate::process_group::GroupKiller::new(child.id());

    let (Some(mut input), Some(out_pipe), Some(err_pipe)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        group.kill();
        return RawRun {
            status: RunStatus::SpawnFailed("could not connect to the hook's stdio".into()),
            stdout: String::new(),
            stderr: String::new(),
            elapsed: started.elapsed(),
        };
    };

    let mut out = Vec::new();
    let mut err = Vec::new();
    let ending = {
        let (exited_tx, exited_rx) = tokio::sync::oneshot::channel::<()>();
        let wait = async {
            let status = child.wait().await;
            let _ = exited_tx.send(());
            status
        };
        let io = async {
            // A hook that does not read its input makes this fail with EPIPE; that is fine.
            let write = async {
                let _ = input.write_all(stdin).await;
                drop(input);
            };
            let all = async {
                tokio::join!(
                    write,
                    read_capped(out_pipe, &mut out),
                    read_capped(err_pipe, &mut err)
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
                _ = all => true,
                () = grace => false,
            }
        };
        tokio::select! {
            (status, drained) = async { tokio::join!(wait, io) } => Ending::Exited(status, drained),
            () = tokio::time::sleep(timeout) => Ending::TimedOut,
            () = env.cancel.cancelled() => Ending::Cancelled,
        }
    };

    let status = match ending {
        Ending::Exited(status, drained) => {
            if drained {
                // Background jobs that let go of the pipes may keep running (`notify-send &`).
                group.disarm();
            } else {
                group.kill();
            }
            match status {
                Ok(status) => exit_status(status),
                Err(error) => RunStatus::SpawnFailed(format!("lost track of the hook: {error}")),
            }
        }
        Ending::TimedOut => {
            group.kill();
            reap(&mut child).await;
            RunStatus::TimedOut
        }
        Ending::Cancelled => {
            group.kill();
            reap(&mut child).await;
            RunStatus::Cancelled
        }
    };
    RawRun {
        status,
        stdout: String::from_utf8_lossy(&out).into_owned(),
        stderr: String::from_utf8_lossy(&err).into_owned(),
        elapsed: started.elapsed(),
    }
}

enum Ending {
    Exited(std::io::Result<std::process::ExitStatus>, bool),
    TimedOut,
    Cancelled,
}

fn spawn(
    shell: &str,
    command: &str,
    dir: &Path,
    env: &HookEnv,
) -> std::io::Result<tokio::process::Child> {
    let mut cmd = tokio::process::Command::new(shell);
    cmd.arg("-c")
        .arg(command)
        .current_dir(dir)
        .envs(&env.env)
        .env("CLAUDE_PROJECT_DIR", &env.project_dir)
        .env("KEEL_PROJECT_DIR", &env.project_dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    // Its own process group, so the hook and everything it starts can be killed at once.
    #[cfg(unix)]
    cmd.process_group(0);
    cmd.spawn()
}

/// Reaps a killed hook so it does not linger as a zombie; bounded in case it is stuck in
/// the kernel.
async fn reap(child: &mut tokio::process::Child) {
    let _ = tokio::time::timeout(Duration::from_secs(2), child.wait()).await;
}

fn exit_status(status: std::process::ExitStatus) -> RunStatus {
    if let Some(code) = status.code() {
        return RunStatus::Exited(code);
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt as _;
        if let Some(signal) = status.signal() {
            return RunStatus::Signaled(signal);
        }
    }
    RunStatus::Exited(-1)
}

async fn read_capped(mut pipe: impl AsyncRead + Unpin, into: &mut Vec<u8>) {
    let mut buf = [0u8; 8192];
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                let room = MAX_CAPTURE.saturating_sub(into.len());
                into.extend_from_slice(&buf[..n.min(room)]);
            }
        }
    }
}
