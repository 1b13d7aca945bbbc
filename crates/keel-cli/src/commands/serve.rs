//! `keel serve`: keel's sessions over HTTP with Server-Sent Events, for programs that drive
//! keel over the network (see keel-server). Top-level flags (`keel --model M serve`) are the
//! defaults of every session; each request may override them.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args as ClapArgs;
use keel_server::http::{DEFAULT_EVENT_BUFFER, HttpOptions};
use keel_setup::Workspace;

use crate::args::Args;

/// `keel serve`
#[derive(Debug, ClapArgs)]
pub struct ServeArgs {
    /// The address to listen on. Anything beyond loopback (e.g. 0.0.0.0) needs --token.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,

    /// The port to listen on (0 picks a free one; the address is printed first).
    #[arg(long, default_value_t = 8642)]
    pub port: u16,

    /// The bearer token clients must send (`Authorization: Bearer <token>`); optional on
    /// loopback, required beyond it.
    #[arg(long, env = "KEEL_SERVE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,

    /// Events each session keeps for clients that reconnect with Last-Event-ID.
    #[arg(long = "event-buffer", default_value_t = DEFAULT_EVENT_BUFFER)]
    pub event_buffer: usize,
}

/// Runs `keel serve` until SIGTERM or Ctrl-C, then ends every session (transcripts closed).
#[allow(clippy::print_stdout)]
pub fn run(serve: ServeArgs, args: &Args, ws: &Workspace) -> Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let options = HttpOptions {
        host: serve.host,
        port: serve.port,
        token: serve.token,
        event_buffer: serve.event_buffer,
        base: super::server_base(args, ws),
    };
    runtime.block_on(async {
        let shutdown = super::termination().context("cannot watch for SIGTERM and Ctrl-C")?;
        keel_server::http::serve(options, shutdown, |addr| {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "keel serve: listening on http://{addr}");
            let _ = out.flush();
            eprintln!("keel serve: sessions start in {}", ws.cwd.display());
        })
        .await
        .map_err(anyhow::Error::from)
    })?;
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    Ok(ExitCode::SUCCESS)
}
