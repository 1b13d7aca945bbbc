//! Where events go: the frontend's channel and, when the session is recorded, its transcript.
//! One place, so nothing a frontend sees is missing from the transcript and resume is replay.

use std::sync::Mutex;

use keel_protocol::{Event, NoticeLevel, PlanItem};
use keel_session::TranscriptWriter;
use tokio::sync::mpsc;

/// Where events go. Sending never blocks; a frontend that went away just stops receiving.
pub type EventSender = mpsc::UnboundedSender<Event>;

/// Sends every event to the frontend and records the persistent ones.
pub(crate) struct Emitter {
    events: EventSender,
    transcript: Mutex<Option<TranscriptWriter>>,
    /// Set once the transcript failed, so the user is told once, not at every event.
    transcript_failed: Mutex<bool>,
    /// The latest plan reported, kept for compaction (which must carry it over).
    plan: Mutex<Vec<PlanItem>>,
}

impl Emitter {
    pub(crate) fn new(events: EventSender, transcript: Option<TranscriptWriter>) -> Self {
        Self {
            events,
            transcript: Mutex::new(transcript),
            transcript_failed: Mutex::new(false),
            plan: Mutex::new(Vec::new()),
        }
    }

    /// The latest plan reported in this session.
    pub(crate) fn plan(&self) -> Vec<PlanItem> {
        lock(&self.plan).clone()
    }

    /// Records `event` (if it belongs in the transcript) and sends it to the frontend.
    pub(crate) fn emit(&self, event: Event) {
        if let Event::PlanUpdated { items } = &event {
            lock(&self.plan).clone_from(items);
        }
        let failure = {
            let mut guard = lock(&self.transcript);
            match guard.as_mut() {
                Some(writer) => writer.append(&event).err(),
                None => None,
            }
        };
        if let Some(error) = failure {
            let mut failed = lock(&self.transcript_failed);
            if !*failed {
                *failed = true;
                let _ = self.events.send(Event::Notice {
                    level: NoticeLevel::Warning,
                    message: format!(
                        "cannot write the session transcript ({error}); the session goes on, \
                         but what follows may not be resumable. Free some disk space or check \
                         the folder's permissions."
                    ),
                });
            }
        }
        let _ = self.events.send(event);
    }

    /// Writes everything queued to disk and closes the transcript.
    pub(crate) fn close(&self) {
        if let Some(writer) = lock(&self.transcript).take()
            && let Err(error) = writer.close()
        {
            let _ = self.events.send(Event::Notice {
                level: NoticeLevel::Warning,
                message: format!("the session transcript may be incomplete: {error}"),
            });
        }
    }
}

/// Locks a mutex, recovering the data if a panicking thread poisoned it (the data here is
/// always in a consistent state between statements).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}
