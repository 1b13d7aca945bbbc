//! Network frontends for keel: sessions served over an HTTP/SSE API (`keel serve`) and over the
//! Agent Client Protocol on stdio (`keel acp`). Both are thin adapters: sessions are built by
//! keel-setup exactly as print mode builds them, with an interactive approver whose questions
//! go to the client.

pub mod acp;
pub mod http;
mod launch;

pub use launch::{Base, LaunchError};
