//! A seam for work that outlives a turn (background tasks, the task list, mailboxes): it adds
//! text to the conversation before a model request, learns which tools ran, reports events of
//! its own and tidies up when the session ends. The engine knows nothing about tasks; a crate
//! further down the list implements this and the frontend plugs it in.

use std::sync::Arc;

use async_trait::async_trait;
use keel_protocol::Event;

/// Reports an event as if the engine had (frontends see it, the transcript records it).
pub type EventSink = Arc<dyn Fn(Event) + Send + Sync>;

/// Something that lives beside the agent loop. Every method has a default that does nothing.
#[async_trait]
pub trait Extension: Send + Sync {
    /// The session started serving; `events` reaches its frontend and transcript until
    /// [`Extension::session_end`].
    fn attach(&self, _events: EventSink) {}

    /// Text the model must see before the next request (a finished background command,
    /// messages from teammates, a reminder). Each string becomes a text block of one user
    /// message that enters the conversation, and the transcript, before the request.
    async fn before_request(&self) -> Vec<String> {
        Vec::new()
    }

    /// A tool call finished (or was refused).
    fn tool_finished(&self, _name: &str, _is_error: bool) {}

    /// The session is ending: stop what must not outlive it. The event sink handed to
    /// [`Extension::attach`] must be dropped here, or the frontend's channel stays open.
    async fn session_end(&self) {}
}
