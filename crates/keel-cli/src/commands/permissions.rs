//! `keel permissions`: what the permission rules decide for a call, and why.

use std::process::ExitCode;

use anyhow::Result;
use clap::{Args as ClapArgs, Subcommand};

use crate::args::Args;
use keel_setup::Workspace;

/// `keel permissions ...`
#[derive(Debug, ClapArgs)]
pub struct PermissionsArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: PermissionsCommand,
}

/// The permissions subcommands.
#[derive(Debug, Subcommand)]
pub enum PermissionsCommand {
    /// Decide a call written like a rule, e.g. 'Bash(git diff; rm -rf x)' or 'Read(~/.ssh/id_rsa)',
    /// under this directory's settings and the given flags.
    Check {
        /// The call, as `Tool(argument)`: a command for Bash, a path for Read/Edit/Write, a
        /// URL for WebFetch.
        call: String,
    },
    /// The mode and every rule in effect, with the file it comes from.
    List,
}

/// Runs `keel permissions`.
#[allow(clippy::print_stdout)]
pub fn run(command: PermissionsArgs, args: &Args, ws: &Workspace) -> Result<ExitCode> {
    let policy = ws.policy(&args.session_options())?;
    match command.command {
        PermissionsCommand::Check { call } => {
            let verdict = policy
                .check_rule_text(&call, &ws.cwd)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("{}: {}", verdict.decision, verdict.reason);
            if !verdict.suggestions.is_empty() {
                println!(
                    "to allow it without asking: {}",
                    verdict.suggestions.join(", ")
                );
            }
            println!("(mode: {})", policy.mode());
            Ok(ExitCode::SUCCESS)
        }
        PermissionsCommand::List => {
            println!("mode: {}", policy.mode());
            for dir in policy.working_dirs() {
                println!("working directory: {}", dir.display());
            }
            let mut any = false;
            for (list, rule, source) in policy.rules() {
                any = true;
                println!("{:<5} {rule}    ({})", list.to_string(), source.name);
            }
            if !any {
                println!("no rules: read-only tools and commands run, everything else asks");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
