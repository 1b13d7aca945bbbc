//! The `keel` binary: parses arguments and hands them to the command they name. Everything the
//! user sees on failure is one line naming the problem and the fix.

use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use keel_setup::{Workspace, WorkspaceRequest};

mod args;
mod commands;
mod control;
mod print;
mod render;
mod stream_input;
mod work;

use args::{Args, Command, InputFormat};

fn main() -> ExitCode {
    // keel re-executes itself to confine a shell command: apply the sandbox, then exec the
    // command. This must happen before anything else (no runtime, no threads).
    if std::env::args_os().nth(1).as_deref()
        == Some(std::ffi::OsStr::new(
            keel_policy::sandbox::LAUNCHER_SUBCOMMAND,
        ))
    {
        let code = keel_policy::sandbox::run_launcher(std::env::args_os().skip(2));
        return ExitCode::from(u8::try_from(code).unwrap_or(1));
    }
    let args = args::parse_lenient();
    init_logging();
    match run(args) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("keel: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging() {
    // Logs never go to stdout: stdout carries the answer or the JSON protocol.
    let filter = tracing_subscriber::EnvFilter::try_from_env("KEEL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// The workspace of the current directory, with warnings printed to stderr.
fn load_workspace(args: &Args) -> Result<Workspace> {
    let cwd = std::env::current_dir().context("cannot determine the current directory")?;
    load_workspace_in(args, cwd)
}

/// The workspace of `cwd` (a team member works each task in its own worktree).
fn load_workspace_in(args: &Args, cwd: std::path::PathBuf) -> Result<Workspace> {
    let home = std::env::home_dir()
        .filter(|h| !h.as_os_str().is_empty())
        .context("cannot determine your home directory; set HOME")?;
    Ok(Workspace::load(WorkspaceRequest {
        cwd,
        home,
        env: std::env::vars().collect(),
        settings: args.settings.clone(),
        setting_sources: args.setting_sources.clone(),
        warn: std::sync::Arc::new(|warning| eprintln!("keel: warning: {warning}")),
    })?)
}

fn run(mut args: Args) -> Result<ExitCode> {
    let ws = load_workspace(&args)?;
    match args.command.take() {
        Some(Command::Config(command)) => commands::config::run(command, &ws),
        Some(Command::Permissions(command)) => commands::permissions::run(command, &args, &ws),
        Some(Command::Sessions(command)) => commands::sessions::run(command, &ws),
        Some(Command::Prompt(command)) => commands::prompt::run(command, &args, &ws),
        Some(Command::Mcp(command)) => commands::mcp::run(command, &args, &ws),
        Some(Command::Hooks(command)) => commands::hooks::run(command, &ws),
        Some(Command::Sandbox(command)) => commands::sandbox::run(command, &ws),
        Some(Command::Serve(command)) => commands::serve::run(command, &args, &ws),
        Some(Command::Acp(command)) => commands::acp::run(command, &args, &ws),
        Some(Command::Tasks(command)) => commands::tasks::run(command, &ws),
        Some(Command::Cron(command)) => commands::cron::run(command, &ws),
        Some(Command::Daemon(command)) => commands::cron::daemon(command, &args, &ws),
        Some(Command::Worktree(command)) => commands::worktree::run(command, &ws),
        Some(Command::Teammate(command)) => commands::teammate::run(command, &ws),
        None if args.print || args.input_format == InputFormat::StreamJson => {
            for (flag, instead) in args.unsupported.given() {
                eprintln!("keel: warning: {flag} is not supported yet; {instead}");
            }
            print::run(&args, &ws)
        }
        None => bail!(
            "the interactive terminal UI is not available in this version; use print mode: \
             keel -p \"your prompt\" (see keel --help)"
        ),
    }
}
