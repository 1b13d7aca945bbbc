//! The engine's two directions: `Op` in, `Event` out.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{AssistantMessage, SessionId, ToolResultContent, Usage};

/// What a frontend asks of a running session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Op {
    /// A new user prompt; the agent works on it until the model stops.
    UserInput {
        /// The prompt text.
        text: String,
    },
    /// Stop the running turn: cancel the model stream and any running tool, keep what exists.
    Interrupt,
}

/// A tool call that was refused, as listed in Claude Code's `permission_denials`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PermissionDenial {
    /// The tool that was refused.
    pub tool_name: String,
    /// The refused call's id.
    pub tool_use_id: String,
    /// The arguments it was called with.
    pub tool_input: Value,
}

/// How a run (one user prompt, worked on until the model stops) ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Outcome {
    /// The model finished its answer.
    Success,
    /// `max_turns` model turns were used before the model finished.
    MaxTurns {
        /// The limit that was reached.
        max_turns: u32,
    },
    /// The user interrupted the run.
    Interrupted,
    /// The run failed; `message` says what went wrong and what to do about it.
    Error {
        /// A one-line explanation for the user.
        message: String,
    },
}

impl Outcome {
    /// Claude Code's result `subtype` for this outcome.
    pub fn subtype(&self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::MaxTurns { .. } => "error_max_turns",
            Self::Interrupted | Self::Error { .. } => "error_during_execution",
        }
    }

    /// Whether the run ended in error, as the result's `is_error`.
    pub fn is_error(&self) -> bool {
        !matches!(self, Self::Success)
    }
}

/// Everything the engine reports, in order. Frontends render these; the transcript stores them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// The session is ready: what it runs with.
    SessionStarted {
        /// The session's id.
        session_id: SessionId,
        /// The model it talks to.
        model: String,
        /// Its working directory.
        cwd: String,
        /// Names of the tools offered to the model.
        tools: Vec<String>,
        /// The permission mode, in Claude Code's spelling.
        permission_mode: String,
    },
    /// A model request is about to be sent (1-based count within the run).
    TurnStarted {
        /// Which turn of the run this is.
        turn: u32,
    },
    /// A piece of the answer text as it streams in.
    TextDelta {
        /// The new text.
        text: String,
    },
    /// A piece of the model's reasoning as it streams in.
    ThinkingDelta {
        /// The new text.
        text: String,
    },
    /// A complete assistant message (the end of one model turn).
    AssistantMessage {
        /// The message, in the API's shape.
        message: AssistantMessage,
    },
    /// A tool call is starting.
    ToolCallStarted {
        /// The call's id.
        tool_use_id: String,
        /// The tool's name.
        name: String,
        /// The arguments.
        input: Value,
    },
    /// A tool call finished (or was refused or failed); this is what the model will see.
    ToolResult {
        /// The call's id.
        tool_use_id: String,
        /// The tool's name.
        tool_name: String,
        /// What the model is sent.
        content: ToolResultContent,
        /// True when the call failed.
        is_error: bool,
        /// A structured form of the result, as Claude Code's `tool_use_result`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        structured: Option<Value>,
    },
    /// A tool call was refused by the permission policy.
    PermissionDenied {
        /// What was refused.
        denial: PermissionDenial,
        /// Why, in words the user can act on.
        reason: String,
    },
    /// The run ended. Always the last event of a run.
    RunFinished {
        /// How it ended.
        outcome: Outcome,
        /// The final answer text (the last assistant text).
        result: String,
        /// Model turns used.
        num_turns: u32,
        /// Tokens used over the run.
        usage: Usage,
        /// Estimated cost of the run in US dollars.
        total_cost_usd: f64,
        /// Wall time of the run in milliseconds.
        duration_ms: u64,
        /// Time spent waiting on the model API in milliseconds.
        duration_api_ms: u64,
        /// Tool calls refused during the run.
        permission_denials: Vec<PermissionDenial>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcome_subtypes_match_claude_code() {
        assert_eq!(Outcome::Success.subtype(), "success");
        assert_eq!(
            Outcome::MaxTurns { max_turns: 2 }.subtype(),
            "error_max_turns"
        );
        assert_eq!(Outcome::Interrupted.subtype(), "error_during_execution");
        assert!(!Outcome::Success.is_error());
        assert!(Outcome::Interrupted.is_error());
    }
}
