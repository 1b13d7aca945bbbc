//! `keel prompt show`: the system prompt the model would receive here.

use std::process::ExitCode;

use anyhow::Result;
use clap::{Args as ClapArgs, Subcommand};

use crate::args::Args;
use keel_setup::Workspace;

/// `keel prompt ...`
#[derive(Debug, ClapArgs)]
pub struct PromptArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: PromptCommand,
}

/// The prompt subcommands.
#[derive(Debug, Subcommand)]
pub enum PromptCommand {
    /// Print the system prompt for this directory, part by part.
    Show,
}

/// Runs `keel prompt`.
#[allow(clippy::print_stdout)]
pub fn run(command: PromptArgs, args: &Args, ws: &Workspace) -> Result<ExitCode> {
    match command.command {
        PromptCommand::Show => {
            let (prompt, warnings) = ws.system_prompt(&args.session_options())?;
            if prompt.blocks().is_empty() {
                println!("(no system prompt: --system-prompt \"\" sends none)");
            } else {
                println!("{}", prompt.render_text());
            }
            for warning in warnings {
                eprintln!("keel: warning: {warning}");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
