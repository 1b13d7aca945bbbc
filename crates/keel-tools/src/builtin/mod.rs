//! The built-in tools, with Claude Code's names and input schemas so models use them as trained.

use std::sync::Arc;

use crate::Tool;

mod bash;
mod common;
mod edit;
mod glob;
mod grep;
mod read;
mod write;

pub use bash::{Bash, shell_command};
pub use edit::Edit;
pub use glob::Glob;
pub use grep::Grep;
pub use read::Read;
pub use write::Write;

/// The six built-ins in the order they are offered: Read, Write, Edit, Bash, Glob, Grep.
pub fn all() -> Vec<Arc<dyn Tool>> {
    vec![
        Arc::new(Read),
        Arc::new(Write),
        Arc::new(Edit),
        Arc::new(Bash),
        Arc::new(Glob),
        Arc::new(Grep),
    ]
}
