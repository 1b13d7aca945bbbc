//! The built-in tools, with Claude Code's names and input schemas so models use them as trained.

use std::sync::Arc;

use crate::Tool;

mod bash;
mod common;
mod edit;
mod glob;
mod grep;
mod media;
mod notebook;
mod read;
mod web;
mod web_fetch;
mod web_search;
mod write;

pub use bash::{Bash, shell_command};
pub use edit::Edit;
pub use glob::Glob;
pub use grep::Grep;
pub use notebook::NotebookEdit;
pub use read::Read;
pub use web_fetch::{CACHE_TTL, WebFetch, WebFetchConfig, default_fetch_model};
pub use web_search::{BRAVE_ENDPOINT, SearchBackend, WebSearch};
pub use write::Write;

/// The built-ins that need no configuration, in the order they are offered: Read, Write,
/// Edit, Bash, Glob, Grep, NotebookEdit.
pub fn all() -> Vec<Arc<dyn Tool>> {
    vec![
        Arc::new(Read),
        Arc::new(Write),
        Arc::new(Edit),
        Arc::new(Bash),
        Arc::new(Glob),
        Arc::new(Grep),
        Arc::new(NotebookEdit),
    ]
}
