//! Test-only support for keel: a mock model server that speaks the Anthropic Messages and
//! OpenAI Chat Completions and Responses wire formats from a script (with fault injection and request
//! capture), temp workspaces, and small helpers.
//!
//! ```no_run
//! # async fn demo() -> Result<(), keel_test_support::MockError> {
//! use keel_test_support::{MockModelServer, Script, ScriptedTurn};
//! let server = MockModelServer::start(Script::new(vec![ScriptedTurn::text("hi")])).await?;
//! // point the client under test at server.url(), then:
//! assert_eq!(server.requests().len(), 1);
//! # Ok(()) }
//! ```

use std::path::PathBuf;
use std::time::Duration;

mod anthropic;
mod openai;
pub mod peers;
mod reply;
mod responses;
mod script;
mod server;
pub mod wait;
pub mod workspace;

pub use script::{
    HttpError, Script, ScriptedBlock, ScriptedTurn, ScriptedUsage, StreamError, TurnMatcher,
};
pub use server::{MockModelServer, RecordedRequest};

/// Why the mock server could not start or a script could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum MockError {
    /// The listening socket could not be opened.
    #[error(
        "mock server cannot listen on 127.0.0.1:{port}: {source} (pick another port, or 0 for a free one)"
    )]
    Bind {
        /// The port asked for (0 = any).
        port: u16,
        /// The OS error.
        source: std::io::Error,
    },
    /// A script given as a string is not valid.
    #[error(
        "invalid mock script: {0} (a script looks like {{\"turns\": [{{\"content\": [{{\"type\": \"text\", \"text\": \"hi\"}}]}}]}})"
    )]
    ScriptJson(#[source] serde_json::Error),
    /// A script file is not valid.
    #[error(
        "invalid mock script {}: {source} (a script looks like {{\"turns\": [{{\"content\": [{{\"type\": \"text\", \"text\": \"hi\"}}]}}]}})",
        path.display()
    )]
    ScriptFile {
        /// The file.
        path: PathBuf,
        /// What is wrong, with line and column.
        source: serde_json::Error,
    },
    /// A script file could not be read.
    #[error("cannot read mock script {}: {source}", path.display())]
    ScriptRead {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A turn parses but cannot be served.
    #[error("mock script turn {index}: {problem}")]
    InvalidTurn {
        /// The 0-based turn index.
        index: usize,
        /// What is wrong and how to fix it.
        problem: String,
    },
    /// Fewer requests arrived than a test waited for.
    #[error("waited {limit:?} for {wanted} requests to the mock server, but only {got} arrived")]
    WaitTimeout {
        /// Requests waited for.
        wanted: usize,
        /// Requests that arrived.
        got: usize,
        /// How long we waited.
        limit: Duration,
    },
}
