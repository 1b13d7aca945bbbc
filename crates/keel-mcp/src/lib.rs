//! MCP for keel, on the official Rust SDK (rmcp): a client manager that starts the configured
//! servers and offers their tools, resources and prompts to the session, and a server that
//! offers keel's own tools to other MCP clients.

use std::sync::{Mutex, MutexGuard};

pub mod cli;
pub mod client;
pub mod config;
pub mod content;
pub mod resources;
pub mod sdk;
pub mod server;
pub mod sse;

pub use client::{
    EnvLookup, ManagerOptions, McpError, McpManager, McpPrompt, McpPromptArgument,
    McpPromptMessage, McpResource, PromptArgs, ServerState, ServerStatus, tool_name,
};
pub use config::{
    ConfigError, ConfigScope, EditScope, Launch, McpSources, ServerConfig, ServerSpec,
    TransportKind, load_servers,
};
pub use sdk::{SdkAnswer, SdkBridge};
pub use server::{HttpServer, KeelServer, PermissionGate, ServeError, serve_http, serve_stdio};

/// Aborts the task it holds when dropped, so every background task of a connection (stderr
/// reader, tool-list refresher, SSE reader) ends with the connection.
pub(crate) struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl AbortOnDrop {
    pub(crate) fn new(handle: tokio::task::JoinHandle<()>) -> Self {
        Self(handle)
    }

    /// Waits up to `limit` for the task to end by itself.
    pub(crate) async fn finish_within(&mut self, limit: std::time::Duration) {
        let _ = tokio::time::timeout(limit, &mut self.0).await;
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Locks a mutex, taking the data even if a panicking thread poisoned it (the data here are
/// plain records that stay consistent between statements).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}
