//! Print mode: one prompt, worked on until the model stops, rendered as text, one JSON result
//! or Claude Code's stream-json, then exit with a status that says how it ended.

use std::io::{IsTerminal, Read};
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use keel_engine::Session;
use keel_protocol::{Event, Op, Outcome};
use tokio::sync::mpsc;

use crate::args::{Args, InputFormat, OutputFormat};
use crate::render::{Renderer, RunInfo, outcome_message};
use keel_setup::{Extras, Workspace, prepare_with};

use crate::args::approver_for;

/// Exit status after an interrupt, as shells report death by SIGINT.
pub const EXIT_INTERRUPTED: u8 = 130;

/// Runs `keel -p`.
pub fn run(args: &Args, ws: &Workspace) -> Result<ExitCode> {
    if args.output_format == OutputFormat::StreamJson && !args.verbose {
        bail!("--output-format=stream-json requires --verbose (as with claude -p)");
    }
    if args.input_format == InputFormat::StreamJson {
        return crate::stream_input::run(args, ws);
    }
    let approver = approver_for(args)?;
    let prompt = read_prompt(args.prompt.as_deref())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let outcome = runtime.block_on(async {
        let extras = Extras {
            stream_events: args.include_partial_messages
                && args.output_format == OutputFormat::StreamJson,
            member_flags: Some(crate::work::member_flags(args)),
            ..Extras::default()
        };
        let mut prepared = prepare_with(&args.session_options(), ws, approver, extras).await?;
        let info = RunInfo::of(&mut prepared);
        print_mode(
            prepared.session,
            prompt,
            args.output_format,
            info,
            args.include_partial_messages,
            Some(prepared.tasks),
        )
        .await
    })?;
    // Tools may leave blocking work (a directory walk) behind after an interrupt: don't wait.
    runtime.shutdown_background();
    Ok(exit_code(&outcome))
}

/// Runs one prompt to completion, rendering events as they come; returns how the run ended.
/// With a task runtime, a run that leaves work behind (team members still working, a wake-up
/// the agent scheduled) is followed by the next prompt that work produces, until none can come.
pub async fn print_mode(
    session: Session,
    prompt: String,
    format: OutputFormat,
    info: RunInfo,
    partial_messages: bool,
    tasks: Option<std::sync::Arc<keel_tasks::TaskRuntime>>,
) -> Result<Outcome> {
    let (ops, ops_rx) = mpsc::unbounded_channel();
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let stop_waiting = tokio_util::sync::CancellationToken::new();
    let interrupts = watch_interrupts(ops.clone(), stop_waiting.clone())?;
    let engine = tokio::spawn(session.serve(ops_rx, events_tx));
    ops.send(Op::UserInput { text: prompt })
        .context("the engine stopped before it received the prompt")?;
    // With no more ops to come, the engine ends after this run.
    let mut ops = tasks.is_some().then_some(ops);

    let mut renderer = Renderer::new(format, std::io::stdout().lock(), info)
        .with_partial_messages(partial_messages);
    let mut outcome = None;
    while let Some(event) = events.recv().await {
        if let Event::RunFinished { outcome: ended, .. } = &event
            && *ended != Outcome::Interrupted
            && let (Some(tasks), Some(sender)) = (&tasks, &ops)
            && let Some(next) = tasks.next_prompt(&stop_waiting).await
        {
            // More work came in (a teammate's message, a wake-up): this run's answer is not
            // the last one, so json prints only the final result.
            if format != OutputFormat::Json
                && let Err(error) = renderer.event(&event)
            {
                if error.kind() == std::io::ErrorKind::BrokenPipe {
                    interrupts.abort();
                    return Ok(Outcome::Interrupted);
                }
                return Err(error).context("cannot write to standard output");
            }
            if sender.send(Op::UserInput { text: next }).is_err() {
                break;
            }
            continue;
        }
        if matches!(event, Event::RunFinished { .. }) {
            ops = None;
        }
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
    // The engine ends once it sees no more ops will come; it closes the transcript first.
    engine.await.context("the engine stopped unexpectedly")?;
    // What the session said while ending (e.g. background tasks it left running).
    while let Ok(event) = events.try_recv() {
        if matches!(event, Event::Notice { .. }) {
            let _ = renderer.event(&event);
        }
    }
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
pub(crate) fn watch_interrupts(
    ops: mpsc::UnboundedSender<Op>,
    stop_waiting: tokio_util::sync::CancellationToken,
) -> Result<tokio::task::JoinHandle<()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        // Registered now, before any work starts, so no SIGINT can hit the default handler.
        let mut sigint = signal(SignalKind::interrupt()).context("cannot watch for Ctrl-C")?;
        Ok(tokio::spawn(async move {
            if sigint.recv().await.is_some() {
                let _ = ops.send(Op::Interrupt);
                stop_waiting.cancel();
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
                stop_waiting.cancel();
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
