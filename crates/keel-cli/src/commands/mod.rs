//! Commands besides running the agent, one module each.

pub mod config;
pub mod cron;
pub mod hooks;
pub mod mcp;
pub mod permissions;
pub mod prompt;
pub mod sandbox;
pub mod sessions;
pub mod tasks;
pub mod teammate;
pub mod worktree;
