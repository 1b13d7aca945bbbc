//! `keel cron` (durable schedules of this project) and `keel daemon` (runs them when due: each
//! due prompt starts `keel -p` in its directory; the outcome goes to `.keel/cron.log`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};
use keel_tasks::cron::{Clock, CronStore, Due, ManualClock, Schedule, SystemClock, Zone, show};
use serde_json::json;

use crate::args::Args as GlobalArgs;
use keel_setup::Workspace;

/// `keel cron ...`
#[derive(Debug, Args)]
pub struct CronArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: CronCommand,
}

/// The `keel cron` subcommands.
#[derive(Debug, Subcommand)]
pub enum CronCommand {
    /// Schedules a prompt: a 5-field cron expression in local time, then the prompt.
    Add {
        /// e.g. "*/30 * * * *" or "0 9 * * 1-5".
        cron: String,
        /// What to ask when it fires.
        prompt: String,
        /// Run it once, at the next match, then remove it.
        #[arg(long)]
        once: bool,
    },
    /// The project's schedules with their next run.
    List,
    /// Removes a schedule.
    Remove {
        /// The schedule's id.
        id: String,
    },
}

/// `keel daemon`
#[derive(Debug, Args)]
pub struct DaemonArgs {
    /// Run what is due now, wait for it, and exit (for a system cron or a test).
    #[arg(long)]
    pub once: bool,
    /// Pretend it is this time (RFC 3339), to try schedules out; implies --once.
    #[arg(long, value_name = "TIME", hide = true)]
    pub now: Option<String>,
}

/// Runs `keel cron`.
#[allow(clippy::print_stdout)]
pub fn run(args: CronArgs, ws: &Workspace) -> Result<ExitCode> {
    let store = CronStore::for_project(&ws.settings.project_root);
    let now = Utc::now();
    match args.command {
        CronCommand::Add { cron, prompt, once } => {
            let mut schedule = Schedule::new(&cron, &prompt, !once, true, now)?;
            schedule.cwd = Some(ws.cwd.clone());
            let next = schedule.next_run(now, Zone::Local);
            let schedule = store.add(schedule)?;
            println!(
                "{} scheduled ({}{}); next run {}",
                schedule.id,
                schedule.cron,
                if once { ", once" } else { "" },
                next.map(|t| show(t, Zone::Local))
                    .unwrap_or_else(|| "never".into())
            );
            if !daemon_hint_shown(ws) {
                println!(
                    "run `keel daemon` (e.g. from your init system) to start prompts when due"
                );
            }
        }
        CronCommand::List => {
            let schedules = store.list()?;
            if schedules.is_empty() {
                println!("No schedules in {}", store.path().display());
            }
            for s in schedules {
                println!(
                    "{}  {}  next {}  {}{}",
                    s.id,
                    s.cron,
                    s.next_run(now, Zone::Local)
                        .map(|t| show(t, Zone::Local))
                        .unwrap_or_else(|| "never".into()),
                    if s.recurring { "" } else { "(once) " },
                    s.prompt
                );
            }
        }
        CronCommand::Remove { id } => {
            if !store.remove(&id)? {
                bail!(
                    "no schedule {id} in {}; `keel cron list` shows them",
                    store.path().display()
                );
            }
            println!("removed {id}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn daemon_hint_shown(ws: &Workspace) -> bool {
    ws.settings
        .project_root
        .join(".keel")
        .join("cron.log")
        .exists()
}

/// Runs `keel daemon`.
pub fn daemon(args: DaemonArgs, global: &GlobalArgs, ws: &Workspace) -> Result<ExitCode> {
    let clock: Arc<dyn Clock> = match &args.now {
        Some(text) => {
            let now = DateTime::parse_from_rfc3339(text).with_context(|| {
                format!("--now {text:?}: give a time like 2026-03-02T10:15:00Z")
            })?;
            Arc::new(ManualClock::new(now.with_timezone(&Utc)))
        }
        None => Arc::new(SystemClock),
    };
    let once = args.once || args.now.is_some();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let scheduler = Scheduler {
        store: CronStore::for_project(&ws.settings.project_root),
        log: ws.settings.project_root.join(".keel").join("cron.log"),
        root: ws.settings.project_root.clone(),
        flags: forwarded_flags(global),
        zone: Zone::Local,
    };
    runtime.block_on(async move {
        if once {
            let runs = scheduler.tick(clock.now())?;
            for run in runs {
                run.await;
            }
            return Ok(ExitCode::SUCCESS);
        }
        eprintln!(
            "keel: daemon running schedules of {} (Ctrl-C stops it)",
            scheduler.root.display()
        );
        let mut running = tokio::task::JoinSet::new();
        loop {
            match scheduler.tick(clock.now()) {
                Ok(runs) => {
                    for run in runs {
                        running.spawn(run);
                    }
                }
                Err(error) => eprintln!("keel: daemon: {error:#}"),
            }
            while running.try_join_next().is_some() {}
            // Wake at the next second; schedules have minute resolution.
            tokio::select! {
                _ = tokio::signal::ctrl_c() => break,
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
        running.shutdown().await;
        Ok(ExitCode::SUCCESS)
    })
}

/// The flags a scheduled run gets from the daemon's own command line: the model and
/// permission mode when given, then what a team member gets (provider, settings, rules, ...).
fn forwarded_flags(args: &GlobalArgs) -> Vec<String> {
    let mut flags = Vec::new();
    if let Some(model) = &args.model {
        flags.push("--model".to_string());
        flags.push(model.clone());
    }
    if let Some(mode) = &args.permission_mode {
        flags.push("--permission-mode".to_string());
        flags.push(mode.clone());
    }
    if args.dangerously_skip_permissions {
        flags.push("--dangerously-skip-permissions".to_string());
    }
    flags.extend(crate::work::member_flags(args));
    flags
}

struct Scheduler {
    store: CronStore,
    log: PathBuf,
    root: PathBuf,
    flags: Vec<String>,
    zone: Zone,
}

type Run = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

impl Scheduler {
    /// Claims what is due at `now`: missed runs are reported (once, here), due runs are
    /// returned as futures that start `keel -p` and log the outcome.
    fn tick(&self, now: DateTime<Utc>) -> Result<Vec<Run>> {
        let mut runs: Vec<Run> = Vec::new();
        for due in self.store.claim_due(now, self.zone)? {
            if let Some(report) = due.missed_report(self.zone) {
                eprintln!("keel: {report}");
                let Due::Missed {
                    schedule,
                    count,
                    first,
                    last,
                } = &due
                else {
                    continue;
                };
                log(
                    &self.log,
                    json!({"event": "missed", "id": schedule.id, "count": count,
                           "first": first, "last": last, "prompt": schedule.prompt}),
                );
                continue;
            }
            let Due::Fire {
                schedule,
                scheduled_for,
            } = due
            else {
                continue;
            };
            eprintln!(
                "keel: running schedule {} ({}) due {}",
                schedule.id,
                schedule.cron,
                show(scheduled_for, self.zone)
            );
            log(
                &self.log,
                json!({"event": "fired", "id": schedule.id, "scheduled_for": scheduled_for,
                       "prompt": schedule.prompt}),
            );
            let cwd = schedule
                .cwd
                .clone()
                .filter(|d| d.is_dir())
                .unwrap_or_else(|| self.root.clone());
            let flags = self.flags.clone();
            let log_path = self.log.clone();
            runs.push(Box::pin(async move {
                let outcome = run_prompt(&cwd, &flags, &schedule.prompt).await;
                let entry = match outcome {
                    Ok((code, result)) => json!({
                        "event": "finished", "id": schedule.id, "scheduled_for": scheduled_for,
                        "exit_code": code,
                        "session_id": result.get("session_id"),
                        "is_error": result.get("is_error"),
                        "result": result.get("result"),
                    }),
                    Err(error) => json!({
                        "event": "failed", "id": schedule.id, "scheduled_for": scheduled_for,
                        "error": format!("{error:#}"),
                    }),
                };
                log(&log_path, entry);
            }));
        }
        Ok(runs)
    }
}

/// Starts `keel -p <prompt> --output-format json` in `cwd`; returns its exit code and result.
async fn run_prompt(
    cwd: &Path,
    flags: &[String],
    prompt: &str,
) -> Result<(Option<i32>, serde_json::Value)> {
    let exe = std::env::current_exe().context("cannot find keel's own executable")?;
    let output = tokio::process::Command::new(exe)
        .args(flags)
        .args(["-p", prompt, "--output-format", "json"])
        .current_dir(cwd)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .context("cannot start keel for a scheduled prompt")?;
    let result = serde_json::from_slice(&output.stdout).unwrap_or_else(
        |_| json!({"is_error": true, "result": String::from_utf8_lossy(&output.stderr).trim()}),
    );
    Ok((output.status.code(), result))
}

fn log(path: &Path, mut entry: serde_json::Value) {
    entry["ts"] = json!(keel_tasks::fsutil::now_rfc3339());
    if let Err(error) = keel_tasks::fsutil::append_json_line(path, &entry) {
        eprintln!("keel: cannot write {}: {error}", path.display());
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use clap::Parser as _;

    use super::*;

    /// A scheduled run is set up like the session that scheduled it: the daemon forwards
    /// the same flags a team member gets, MCP servers and turn limits included.
    #[test]
    fn scheduled_runs_get_the_daemons_session_flags() {
        let args = GlobalArgs::try_parse_from([
            "keel",
            "--model",
            "claude-x",
            "--permission-mode",
            "acceptEdits",
            "--mcp-config",
            "servers.json",
            "--max-turns",
            "3",
            "--api-key-env",
            "MY_KEY",
        ])
        .unwrap();
        let flags = forwarded_flags(&args);
        for pair in [
            ["--model", "claude-x"],
            ["--permission-mode", "acceptEdits"],
            ["--max-turns", "3"],
            ["--api-key-env", "MY_KEY"],
        ] {
            assert!(flags.windows(2).any(|w| w == pair), "{pair:?} in {flags:?}");
        }
        assert!(flags.iter().any(|f| f == "--mcp-config"), "{flags:?}");
    }
}
