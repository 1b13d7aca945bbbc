//! The `keel` binary: parses arguments, wires the model, tools and engine together, and runs
//! print mode. Everything the user sees on failure is one line naming the problem and the fix.

use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::Parser;
use keel_context::{Environment, PromptOptions};
use keel_engine::{PermissionMode, Session, SessionConfig};
use keel_model::{AnthropicAuth, AnthropicClient, AnthropicConfig};
use keel_protocol::{Event, Op, Outcome};
use keel_tools::{ToolContext, ToolRegistry};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

mod args;
mod render;

use args::{Args, OutputFormat};
use render::{Renderer, RunInfo, outcome_message};

/// Exit status after an interrupt, as shells report death by SIGINT.
const EXIT_INTERRUPTED: u8 = 130;

fn main() -> ExitCode {
    let args = Args::parse();
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

fn run(args: Args) -> Result<ExitCode> {
    if !args.print {
        bail!(
            "the interactive terminal UI is not available in this version; use print mode: \
             keel -p \"your prompt\" (see keel --help)"
        );
    }
    if args.output_format == OutputFormat::StreamJson && !args.verbose {
        bail!("--output-format=stream-json requires --verbose (as with claude -p)");
    }
    let prompt = read_prompt(args.prompt.as_deref())?;
    let cwd = std::env::current_dir().context("cannot determine the current directory")?;
    let additional_dirs = args
        .add_dir
        .iter()
        .map(|dir| {
            let absolute = cwd.join(dir);
            std::fs::canonicalize(&absolute).with_context(|| {
                format!(
                    "--add-dir {}: no such directory; pass an existing directory",
                    dir.display()
                )
            })
        })
        .collect::<Result<Vec<PathBuf>>>()?;

    let anthropic = AnthropicConfig::from_env().map_err(anyhow::Error::msg)?;
    let api_key_source = match anthropic.auth {
        AnthropicAuth::ApiKey(_) => "ANTHROPIC_API_KEY",
        AnthropicAuth::Bearer(_) => "ANTHROPIC_AUTH_TOKEN",
    };
    let client = AnthropicClient::new(anthropic).map_err(anyhow::Error::msg)?;

    let model = args
        .model
        .clone()
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| keel_model::DEFAULT_MODEL.to_string());
    let max_tokens = keel_model::default_max_tokens(&model);
    let env = Environment::detect(&cwd, &additional_dirs);
    let system = keel_context::system_prompt(
        &env,
        &PromptOptions {
            replace: args.system_prompt.clone(),
            append: args.append_system_prompt.clone(),
        },
    );
    let permission_mode = if args.dangerously_skip_permissions {
        PermissionMode::BypassPermissions
    } else {
        PermissionMode::Default
    };
    let config = SessionConfig {
        model: model.clone(),
        max_tokens,
        system,
        max_turns: args.max_turns,
        permission_mode,
    };
    let spill_dir = std::env::temp_dir()
        .join("keel")
        .join(uuid::Uuid::new_v4().to_string());
    let mut tool_ctx = ToolContext::new(&cwd, spill_dir, CancellationToken::new());
    tool_ctx.additional_dirs = additional_dirs;
    let session = Session::new(config, Arc::new(client), ToolRegistry::builtin(), tool_ctx);
    let info = RunInfo {
        model,
        api_key_source,
        max_output_tokens: max_tokens,
    };

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let outcome = runtime.block_on(print_mode(session, prompt, args.output_format, info))?;
    // Tools may leave blocking work (a directory walk) behind after an interrupt: don't wait.
    runtime.shutdown_background();
    Ok(exit_code(&outcome))
}

/// Runs one prompt to completion, rendering events as they come; returns how the run ended.
async fn print_mode(
    session: Session,
    prompt: String,
    format: OutputFormat,
    info: RunInfo,
) -> Result<Outcome> {
    let (ops, ops_rx) = mpsc::unbounded_channel();
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let interrupts = watch_interrupts(ops.clone())?;
    let engine = tokio::spawn(session.serve(ops_rx, events_tx));
    ops.send(Op::UserInput { text: prompt })
        .context("the engine stopped before it received the prompt")?;
    // With no more ops to come, the engine ends after this run.
    drop(ops);

    let mut renderer = Renderer::new(format, std::io::stdout().lock(), info);
    let mut outcome = None;
    while let Some(event) = events.recv().await {
        if let Err(error) = renderer.event(&event) {
            if error.kind() == std::io::ErrorKind::BrokenPipe {
                // The reader went away (e.g. `| head`); nothing more can be shown.
                interrupts.abort();
                return Ok(Outcome::Interrupted);
            }
            return Err(error).context("cannot write to standard output");
        }
        if let Event::RunFinished { outcome: ended, .. } = event {
            outcome = Some(ended);
            // Print mode works on one prompt. The Ctrl-C watcher still holds a sender, so the
            // op channel stays open; stopping it lets the engine see the end of its input.
            break;
        }
    }
    interrupts.abort();
    let _ = interrupts.await;
    engine.await.context("the engine stopped unexpectedly")?;
    let outcome = outcome.context("the engine stopped without finishing the run")?;
    if format == OutputFormat::Text
        && let Some(message) = outcome_message(&outcome)
    {
        eprintln!("keel: {message}");
    }
    Ok(outcome)
}

/// The first Ctrl-C interrupts the run (which then ends with what it has); a second one exits
/// at once.
fn watch_interrupts(ops: mpsc::UnboundedSender<Op>) -> Result<tokio::task::JoinHandle<()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        // Registered now, before any work starts, so no SIGINT can hit the default handler.
        let mut sigint = signal(SignalKind::interrupt()).context("cannot watch for Ctrl-C")?;
        Ok(tokio::spawn(async move {
            if sigint.recv().await.is_some() {
                let _ = ops.send(Op::Interrupt);
            }
            if sigint.recv().await.is_some() {
                std::process::exit(i32::from(EXIT_INTERRUPTED));
            }
        }))
    }
    #[cfg(not(unix))]
    {
        Ok(tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                let _ = ops.send(Op::Interrupt);
            }
            if tokio::signal::ctrl_c().await.is_ok() {
                std::process::exit(i32::from(EXIT_INTERRUPTED));
            }
        }))
    }
}

fn exit_code(outcome: &Outcome) -> ExitCode {
    match outcome {
        Outcome::Success => ExitCode::SUCCESS,
        Outcome::Interrupted => ExitCode::from(EXIT_INTERRUPTED),
        Outcome::MaxTurns { .. } | Outcome::Error { .. } => ExitCode::FAILURE,
    }
}

/// The prompt from the argument and/or piped standard input (`git diff | keel -p "review"`).
fn read_prompt(argument: Option<&str>) -> Result<String> {
    let piped = stdin_is_piped();
    let stdin_text = if piped {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read the prompt from standard input")?;
        Some(text)
    } else {
        None
    };
    let prompt = match (argument, stdin_text) {
        (Some(arg), Some(input)) if !input.trim().is_empty() => {
            format!("{}\n\n{arg}", input.trim_end())
        }
        (Some(arg), _) => arg.to_string(),
        (None, Some(input)) => input,
        (None, None) => String::new(),
    };
    if prompt.trim().is_empty() {
        bail!(
            "no prompt: pass one as an argument (keel -p \"what to do\") or pipe it on standard input"
        );
    }
    Ok(prompt)
}

/// True when stdin is a pipe or a file that carries a prompt (not a terminal, not /dev/null).
fn stdin_is_piped() -> bool {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        return false;
    }
    match std::fs::metadata(Path::new("/dev/stdin")) {
        Ok(meta) => {
            #[cfg(unix)]
            {
                use std::os::unix::fs::FileTypeExt;
                let kind = meta.file_type();
                kind.is_fifo() || kind.is_file() || kind.is_socket()
            }
            #[cfg(not(unix))]
            {
                meta.is_file()
            }
        }
        Err(_) => false,
    }
}
