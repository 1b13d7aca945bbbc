//! What the engine's tests share: a session served on channels, ops sent in, and events
//! waited for with a deadline (never a sleep).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use keel_engine::Session;
use keel_protocol::{Event, Op};
use tokio::sync::mpsc;

/// A served session and every event seen so far.
pub struct Driver {
    pub ops: mpsc::UnboundedSender<Op>,
    pub events: mpsc::UnboundedReceiver<Event>,
    pub seen: Vec<Event>,
}

impl Driver {
    /// Serves `session` on a task of its own.
    pub fn serve(session: Session) -> Self {
        let (ops, ops_rx) = mpsc::unbounded_channel();
        let (events_tx, events) = mpsc::unbounded_channel();
        tokio::spawn(session.serve(ops_rx, events_tx));
        Self {
            ops,
            events,
            seen: Vec::new(),
        }
    }

    pub fn send(&self, op: Op) {
        self.ops.send(op).unwrap();
    }

    /// The next event matching `pick`, failing the test if none comes within 20 s.
    pub async fn next<T>(&mut self, what: &str, mut pick: impl FnMut(&Event) -> Option<T>) -> T {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let event = tokio::time::timeout_at(deadline, self.events.recv())
                .await
                .unwrap_or_else(|_| panic!("no {what} within 20 s; saw {:#?}", self.seen))
                .unwrap_or_else(|| panic!("the session ended before {what}"));
            self.seen.push(event.clone());
            if let Some(found) = pick(&event) {
                return found;
            }
        }
    }
}
