//! `keel acp`: keel as an Agent Client Protocol agent on stdin/stdout, for editors such as
//! Zed (see keel-server). Top-level flags (`keel --model M acp`) are every session's defaults.
//! stdout carries only the protocol; logs go to stderr.

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args as ClapArgs;
use keel_setup::Workspace;

use crate::args::Args;

/// `keel acp`
#[derive(Debug, ClapArgs)]
pub struct AcpArgs {}

/// Runs `keel acp` until the client closes stdin (or SIGTERM / Ctrl-C), then ends every session
/// with its transcript closed.
pub fn run(_acp: AcpArgs, args: &Args, ws: &Workspace) -> Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let base = super::server_base(args, ws);
    let result = runtime.block_on(async {
        let stop = super::termination().context("cannot watch for SIGTERM and Ctrl-C")?;
        tokio::select! {
            result = keel_server::acp::serve_stdio(base) => result.map_err(anyhow::Error::from),
            () = stop => Ok(()),
        }
    });
    // The stdin reader is a blocking thread that may still wait for input: don't wait for it.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    result?;
    Ok(ExitCode::SUCCESS)
}
