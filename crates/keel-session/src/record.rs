//! One line of a transcript.

use keel_protocol::Event;
use serde::{Deserialize, Serialize};

/// A transcript line: when it happened, the event, and for `run_finished` lines the session's
/// running totals, so a listing can read them from the file's tail alone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// RFC 3339 time with milliseconds.
    pub ts: String,
    /// The event.
    pub event: Event,
    /// Totals over the whole session so far (only on `run_finished` lines).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub totals: Option<Totals>,
}

/// Running totals of a session, over every run and resume.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Totals {
    /// Model turns.
    pub turns: u64,
    /// Cost in US dollars.
    pub cost_usd: f64,
    /// Runs (prompts worked on).
    pub runs: u64,
}

impl Totals {
    /// Adds a finished run.
    pub fn add_run(&mut self, event: &Event) {
        if let Event::RunFinished {
            num_turns,
            total_cost_usd,
            ..
        } = event
        {
            self.turns += u64::from(*num_turns);
            self.cost_usd += total_cost_usd;
            self.runs += 1;
        }
    }
}

/// Whether an event belongs in the transcript. Streaming deltas and transient notices are
/// left out: the complete messages carry the same content.
pub fn is_persisted(event: &Event) -> bool {
    match event {
        Event::SessionStarted { .. }
        | Event::UserMessage { .. }
        | Event::AssistantMessage { .. }
        | Event::ToolResult { .. }
        | Event::Compacted { .. }
        | Event::PlanUpdated { .. }
        | Event::PermissionModeChanged { .. }
        | Event::ModelChanged { .. }
        | Event::CommandOutput { .. }
        | Event::RunFinished { .. } => true,
        Event::TurnStarted { .. }
        | Event::TextDelta { .. }
        | Event::ThinkingDelta { .. }
        | Event::ToolCallStarted { .. }
        | Event::ApprovalRequested { .. }
        | Event::QuestionAsked { .. }
        | Event::PermissionDenied { .. }
        | Event::Retrying { .. }
        | Event::ContextUsage { .. }
        | Event::Notice { .. }
        | Event::HookCallback { .. }
        | Event::StreamEvent { .. }
        | Event::Subagent { .. } => false,
    }
}

/// The current time as a transcript timestamp.
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
