//! `keel-mock-model`: the mock model server as a process, for trying keel by hand, demos and
//! benchmarks. Prints `listening on http://127.0.0.1:PORT` first, then serves until killed.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use keel_test_support::{MockModelServer, Script};

/// Serve a scripted model over the Anthropic Messages, OpenAI Chat Completions and OpenAI
/// Responses APIs.
#[derive(Debug, Parser)]
#[command(name = "keel-mock-model", version, about)]
struct Args {
    /// The script: {"turns": [...], "repeat": false, "openai_stream_tool_calls": true}.
    #[arg(long, value_name = "FILE")]
    script: PathBuf,
    /// Port on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Start over from the first turn when the script runs out.
    #[arg(long)]
    repeat: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let script = match Script::from_file(&args.script) {
        Ok(script) => script,
        Err(err) => {
            eprintln!("keel-mock-model: {err}");
            return ExitCode::from(2);
        }
    };
    let script = if args.repeat {
        script.repeat(true)
    } else {
        script
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("keel-mock-model: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(serve(script, args.port))
}

async fn serve(script: Script, port: u16) -> ExitCode {
    let server = match MockModelServer::start_on(script, port).await {
        Ok(server) => server,
        Err(err) => {
            eprintln!("keel-mock-model: {err}");
            return ExitCode::FAILURE;
        }
    };
    // The first stdout line is the interface: scripts read the URL from it.
    let mut stdout = std::io::stdout().lock();
    if writeln!(stdout, "listening on {}", server.url())
        .and_then(|()| stdout.flush())
        .is_err()
    {
        eprintln!("keel-mock-model: cannot write to stdout");
        return ExitCode::FAILURE;
    }
    drop(stdout);
    match shutdown_signal().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("keel-mock-model: cannot wait for signals: {err}");
            ExitCode::FAILURE
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
#[cfg(unix)]
async fn shutdown_signal() -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r,
        _ = term.recv() => Ok(()),
    }
}

/// Resolves on Ctrl-C.
#[cfg(not(unix))]
async fn shutdown_signal() -> std::io::Result<()> {
    tokio::signal::ctrl_c().await
}
