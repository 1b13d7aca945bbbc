//! The engine's two directions: `Op` in, `Event` out.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{AssistantMessage, ContentBlock, SessionId, ToolResultContent, Usage};

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
    /// The user's answer to an [`Event::ApprovalRequested`].
    Approval {
        /// The request being answered.
        request_id: String,
        /// The answer.
        answer: ApprovalAnswer,
    },
    /// Switch the permission mode (Claude Code's spelling, e.g. `acceptEdits`).
    SetPermissionMode {
        /// The new mode.
        mode: String,
    },
    /// Use another model from the next request on.
    SetModel {
        /// The new model.
        model: String,
    },
    /// Compact the conversation now (`/compact [instructions]`).
    Compact {
        /// What the summary should focus on.
        instructions: Option<String>,
    },
    /// The frontend's answer to an [`Event::HookCallback`].
    HookResult {
        /// The callback request being answered.
        request_id: String,
        /// What the callback answered.
        reply: HookReply,
    },
    /// The user's answers to an [`Event::QuestionAsked`].
    AnswerQuestion {
        /// The request being answered.
        request_id: String,
        /// Question text → the chosen option's label (several labels joined with ", " for a
        /// multi-select question, or the user's own words). Empty when the user declined.
        answers: BTreeMap<String, String>,
    },
}

/// What a frontend-run hook callback (an Agent SDK hook) answered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum HookReply {
    /// The callback's output: a JSON object read like a command hook's JSON stdout.
    Output {
        /// The output object.
        output: Value,
    },
    /// The callback failed (raised, or its answer could not be delivered).
    Failed {
        /// What went wrong, for the user.
        error: String,
    },
}

/// One multiple-choice question of `AskUserQuestion`, in Claude Code's shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Question {
    /// The full question.
    pub question: String,
    /// A very short label for it (a chip or tab title).
    pub header: String,
    /// The choices offered.
    pub options: Vec<QuestionOption>,
    /// Whether several options may be chosen.
    #[serde(default)]
    pub multi_select: bool,
}

/// One choice of a [`Question`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuestionOption {
    /// What the user picks (a few words).
    pub label: String,
    /// What picking it means.
    #[serde(default)]
    pub description: String,
}

/// How the user answered a permission question.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum ApprovalAnswer {
    /// Run this call once.
    AllowOnce {
        /// A replacement input for the call (SDK callbacks may rewrite it).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        updated_input: Option<Value>,
    },
    /// Run it, and save these rules so similar calls run without asking.
    AllowAlways {
        /// Rules to save (e.g. `Bash(npm test:*)`).
        rules: Vec<String>,
    },
    /// Do not run it; `message` is what the model is told.
    Deny {
        /// The reason given to the model.
        message: String,
    },
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

/// One entry of the session's plan (the task list of `TaskCreate`/`TodoWrite`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanItem {
    /// The task's id.
    pub id: String,
    /// A short title, in the imperative ("Run the tests").
    pub subject: String,
    /// What needs doing.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// The present-continuous form shown while it runs ("Running the tests").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_form: Option<String>,
    /// `pending`, `in_progress` or `completed`.
    pub status: String,
    /// Who works on it (a team member's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Tasks that cannot start before this one is done.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blocks: Vec<String>,
    /// Tasks this one waits for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blocked_by: Vec<String>,
}

/// How important a notice is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoticeLevel {
    /// Worth showing.
    Info,
    /// Something is wrong but the session goes on.
    Warning,
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
    /// A user message entered the conversation (a prompt, or text keel adds on the user's side
    /// such as a reminder). Tool results are not reported here but as [`Event::ToolResult`].
    UserMessage {
        /// The message's content blocks.
        content: Vec<ContentBlock>,
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
    /// A tool call needs the user's approval; the engine waits for an [`Op::Approval`].
    ApprovalRequested {
        /// Echo this in the answer.
        request_id: String,
        /// The call's id.
        tool_use_id: String,
        /// The tool.
        tool_name: String,
        /// Its arguments.
        input: Value,
        /// Why it needs approval, in words the user can act on.
        reason: String,
        /// Rules that "always allow" would save.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        suggestions: Vec<String>,
    },
    /// The model asks the user multiple-choice questions (`AskUserQuestion`); the engine waits
    /// for an [`Op::AnswerQuestion`].
    QuestionAsked {
        /// Echo this in the answer.
        request_id: String,
        /// The `AskUserQuestion` call's id.
        tool_use_id: String,
        /// The questions, in order.
        questions: Vec<Question>,
    },
    /// A tool call was refused by the permission policy.
    PermissionDenied {
        /// What was refused.
        denial: PermissionDenial,
        /// Why, in words the user can act on.
        reason: String,
    },
    /// A model request failed in a way that may pass on a retry; keel waits, then resends.
    Retrying {
        /// Which retry this is (1-based).
        attempt: u32,
        /// The most retries that will be made.
        max_retries: u32,
        /// How long keel waits before it.
        delay_ms: u64,
        /// What went wrong.
        error: String,
    },
    /// How full the context window is, after a model turn.
    ContextUsage {
        /// Tokens the conversation takes.
        used_tokens: u64,
        /// The model's context window.
        window_tokens: u64,
    },
    /// The conversation was compacted; from here on it is `messages`.
    Compacted {
        /// `manual` (`/compact`) or `auto`.
        trigger: String,
        /// Tokens before compaction.
        tokens_before: u64,
        /// Tokens after.
        tokens_after: u64,
        /// The conversation that replaces the old one.
        messages: Vec<crate::Message>,
    },
    /// The session's plan changed.
    PlanUpdated {
        /// The whole list, in order.
        items: Vec<PlanItem>,
    },
    /// The permission mode changed.
    PermissionModeChanged {
        /// The new mode.
        mode: String,
    },
    /// The model changed.
    ModelChanged {
        /// The new model.
        model: String,
    },
    /// Something the user should know that is not part of the conversation.
    Notice {
        /// How important it is.
        level: NoticeLevel,
        /// One line.
        message: String,
    },
    /// What a slash command that runs locally (`/cost`, `/status`, `/help`, …) printed. Such a
    /// command sends nothing to the model; its run ends with this text as the result.
    CommandOutput {
        /// The command as typed, without arguments (`/cost`).
        command: String,
        /// Its output, plain text.
        text: String,
    },
    /// A hook the frontend registered (an Agent SDK callback) must run now; the engine waits
    /// for an [`Op::HookResult`] with the same `request_id` (or the hook's timeout).
    HookCallback {
        /// Echo this in the answer.
        request_id: String,
        /// The frontend's id for the callback.
        callback_id: String,
        /// The hook's input JSON, exactly as a command hook would read it on stdin.
        input: Value,
        /// The tool call the hook is about, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tool_use_id: Option<String>,
    },
    /// One raw event of the model's stream in the Anthropic Messages API's shape
    /// (`message_start`, `content_block_delta`, ...), for frontends that show partial messages;
    /// emitted only when the session asks for them.
    StreamEvent {
        /// The event, as the API would send it.
        event: Value,
    },
    /// An event of a subagent, tagged with the `Agent` tool call that runs it.
    Subagent {
        /// The parent's tool call id (`parent_tool_use_id` in stream-json).
        parent_tool_use_id: String,
        /// The subagent's event.
        event: Box<Event>,
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
        /// Tokens and cost per model used in the run.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        model_usage: Vec<ModelUsage>,
    },
}

/// One model's share of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelUsage {
    /// The model.
    pub model: String,
    /// Its tokens.
    pub usage: Usage,
    /// Its cost in US dollars, or `None` when keel knows no price for it.
    pub cost_usd: Option<f64>,
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
