//! `keel sessions`: the sessions that can be resumed, newest first.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use keel_session::SessionStore;

use keel_setup::Workspace;

/// `keel sessions`
#[derive(Debug, Args)]
pub struct SessionsArgs {
    /// Sessions of every directory, not just this one.
    #[arg(long)]
    pub all: bool,
    /// One JSON object per line instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Runs `keel sessions`.
#[allow(clippy::print_stdout)]
pub fn run(args: SessionsArgs, ws: &Workspace) -> Result<ExitCode> {
    let store = SessionStore::new(&ws.home);
    let sessions = store.list((!args.all).then_some(ws.cwd.as_path()))?;
    if args.json {
        for s in &sessions {
            let line = serde_json::json!({
                "session_id": s.id,
                "cwd": s.cwd,
                "started": s.started,
                "modified": chrono::DateTime::<chrono::Utc>::from(s.modified).to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                "first_prompt": s.first_prompt,
                "num_turns": s.totals.turns,
                "total_cost_usd": s.totals.cost_usd,
                "path": s.path,
            });
            println!("{line}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    if sessions.is_empty() {
        println!(
            "no sessions in {}{}",
            ws.cwd.display(),
            if args.all {
                " or anywhere"
            } else {
                " (keel sessions --all lists every directory)"
            }
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<17} {:>5} {:>8}  {:<36}  first prompt",
        "modified", "turns", "cost", "session id"
    );
    for s in &sessions {
        let when = chrono::DateTime::<chrono::Local>::from(s.modified).format("%Y-%m-%d %H:%M");
        let place = if args.all {
            format!("  [{}]", s.cwd)
        } else {
            String::new()
        };
        println!(
            "{:<17} {:>5} {:>8}  {:<36}  {}{}",
            when,
            s.totals.turns,
            format!("${:.4}", s.totals.cost_usd),
            s.id,
            s.first_prompt,
            place
        );
    }
    println!("\nresume with: keel --resume <session id> -p \"...\"   (or keel -c for the newest)");
    Ok(ExitCode::SUCCESS)
}
