//! `keel hooks list`: the hooks the settings configure, and where each comes from.

use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Subcommand};
use keel_policy::hooks::HookSet;

use keel_setup::Workspace;

/// `keel hooks ...`
#[derive(Debug, Args)]
pub struct HooksArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: HooksCommand,
}

/// The hooks subcommands.
#[derive(Debug, Subcommand)]
pub enum HooksCommand {
    /// Every configured hook: event, matcher, command, timeout and settings file.
    List,
}

/// Runs `keel hooks`.
#[allow(clippy::print_stdout)]
pub fn run(args: HooksArgs, ws: &Workspace) -> Result<ExitCode> {
    match args.command {
        HooksCommand::List => {
            let (set, warnings) = HookSet::from_loaded(&ws.settings);
            for warning in warnings {
                eprintln!("keel: warning: {warning}");
            }
            if set.is_disabled() {
                println!("hooks are disabled (disableAllHooks is set)");
            }
            let hooks = set.list();
            if hooks.is_empty() {
                println!("no hooks configured (add them under \"hooks\" in .keel/settings.json)");
            }
            for hook in hooks {
                let matcher = if hook.matcher.is_empty() {
                    "*"
                } else {
                    hook.matcher.as_str()
                };
                println!(
                    "{:<16} {:<20} {}  (timeout {}s{})",
                    hook.event.as_str(),
                    matcher,
                    hook.command,
                    hook.timeout.as_secs(),
                    hook.source.map(|s| format!(", {s}")).unwrap_or_default()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
