//! Work that outlives a turn: background tasks, the task board, schedules, teams with
//! mailboxes, autonomous members and git worktrees. Everything durable lives in files (one JSON
//! file per task, append-only JSONL inboxes, a schedule file) written atomically under advisory
//! locks, so several keel processes can share them and a restart loses nothing.
//!
//! A session uses it through a [`TaskRuntime`], which plugs into the engine as an
//! `Extension` (notices, messages and reminders enter the conversation before each model
//! request; background tasks stop when the session ends) and backs the tools in [`tools`].

use std::path::{Path, PathBuf};

pub mod background;
pub mod cron;
pub mod fsutil;
pub mod mailbox;
mod runtime;
pub mod store;
pub mod team;
pub mod tools;
pub mod wiring;
pub mod worktree;

pub use runtime::{Entered, REMINDER_TURNS, RuntimeOptions, Seat, TaskRuntime};

/// Why an operation on tasks, schedules, teams or worktrees failed. Messages name the file or
/// item at fault and what to do.
#[derive(Debug, thiserror::Error)]
pub enum TasksError {
    /// A file operation failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file holds something that is not the JSON keel wrote.
    #[error("{}: not valid ({source}); fix or remove the file", path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        source: serde_json::Error,
    },
    /// The request is not usable as given.
    #[error("{0}")]
    Invalid(String),
    /// The thing asked for does not exist.
    #[error("{0}")]
    NotFound(String),
    /// Someone else holds it.
    #[error("{0}")]
    Conflict(String),
    /// A program could not be started.
    #[error("cannot start {what}: {source}")]
    Spawn {
        /// What was started.
        what: String,
        /// Why it failed.
        source: std::io::Error,
    },
    /// git refused.
    #[error("{command} failed in {}: {stderr}", dir.display())]
    Git {
        /// The command line.
        command: String,
        /// Where it ran.
        dir: PathBuf,
        /// What git said.
        stderr: String,
    },
    /// Removing a worktree would lose work.
    #[error(
        "worktree {name} holds work that would be lost: {lost}. Commit or merge it first, or \
         remove it anyway with discard_changes (keel worktree remove --discard-changes)"
    )]
    UnsavedWork {
        /// The worktree.
        name: String,
        /// What would be lost.
        lost: String,
    },
}

impl TasksError {
    /// An I/O error on `path`.
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}
