//! Commands besides running the agent, one module each.

pub mod acp;
pub mod config;
pub mod cron;
pub mod hooks;
pub mod mcp;
pub mod permissions;
pub mod prompt;
pub mod sandbox;
pub mod serve;
pub mod sessions;
pub mod tasks;
pub mod teammate;
pub mod worktree;

/// What every session of `keel serve` and `keel acp` starts from: this process's home,
/// environment and settings flags, the top-level flags as defaults, and the current directory.
pub fn server_base(args: &crate::args::Args, ws: &keel_setup::Workspace) -> keel_server::Base {
    keel_server::Base {
        home: ws.home.clone(),
        env: std::env::vars().collect(),
        settings: args.settings.clone(),
        setting_sources: args.setting_sources.clone(),
        default_cwd: ws.cwd.clone(),
        defaults: args.session_options(),
    }
}

/// Completes at the first SIGTERM or SIGINT (Ctrl-C), for servers that shut down gracefully.
pub fn termination() -> std::io::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        Ok(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async move {
            let _ = tokio::signal::ctrl_c().await;
        })
    }
}
