//! `keel sandbox status`: what the kernel offers for confining shell commands, and whether
//! the settings turn the sandbox on.

use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Subcommand};

use keel_setup::Workspace;

/// `keel sandbox ...`
#[derive(Debug, Args)]
pub struct SandboxArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: SandboxCommand,
}

/// The sandbox subcommands.
#[derive(Debug, Subcommand)]
pub enum SandboxCommand {
    /// The kernel's sandboxing features and this directory's sandbox settings.
    Status,
}

/// Runs `keel sandbox`.
#[allow(clippy::print_stdout)]
pub fn run(args: SandboxArgs, ws: &Workspace) -> Result<ExitCode> {
    match args.command {
        SandboxCommand::Status => {
            println!("{}", keel_policy::sandbox::status());
            let settings = &ws.settings.effective.sandbox;
            let enabled = settings.enabled == Some(true);
            let network = settings.network.as_ref().is_none_or(|n| n.allowed());
            if enabled {
                println!(
                    "this directory: sandbox on, network {}",
                    if network { "allowed" } else { "off" }
                );
            } else {
                println!(
                    "this directory: sandbox off (set \"sandbox\": {{\"enabled\": true}} in \
                     .keel/settings.json to confine Bash commands)"
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
