//! The JSON a hook reads on stdin, with Claude Code's field names, one builder per event.

use std::fmt;
use std::path::PathBuf;

use serde_json::{Map, Value, json};

use super::HookEvent;
use crate::mode::PermissionMode;

/// The session facts every hook input carries (`session_id`, `transcript_path`, `cwd`,
/// `permission_mode`); its methods build each event's input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HookContext {
    /// The session's id.
    pub session_id: String,
    /// The session's JSONL transcript.
    pub transcript_path: PathBuf,
    /// The session's current working directory.
    pub cwd: PathBuf,
    /// The permission mode in force.
    pub permission_mode: PermissionMode,
}

/// An event's input: which event, and the JSON its hooks receive.
#[derive(Clone, Debug, PartialEq)]
pub struct HookInput {
    event: HookEvent,
    json: Value,
}

impl HookInput {
    /// Input built by the caller (for fields keel has no builder for yet). `json` should be an
    /// object; `hook_event_name` is set to `event`.
    pub fn custom(event: HookEvent, json: Value) -> Self {
        let mut json = json;
        if let Value::Object(map) = &mut json {
            map.insert("hook_event_name".into(), json!(event.as_str()));
        }
        Self { event, json }
    }

    /// The event this input is for.
    pub fn event(&self) -> HookEvent {
        self.event
    }

    /// The JSON written to each hook's stdin.
    pub fn json(&self) -> &Value {
        &self.json
    }

    /// The value matchers are compared with (tool name, source, trigger, …), if the event
    /// uses matchers.
    pub fn match_target(&self) -> Option<&str> {
        self.event
            .matcher_field()
            .and_then(|field| self.json.get(field))
            .and_then(Value::as_str)
    }
}

/// What started a session (`SessionStart`'s `source`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SessionStartSource {
    /// A new session.
    Startup,
    /// `--resume`, `--continue` or `/resume`.
    Resume,
    /// `/clear`.
    Clear,
    /// The conversation was just compacted.
    Compact,
}

impl SessionStartSource {
    /// Claude Code's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            SessionStartSource::Startup => "startup",
            SessionStartSource::Resume => "resume",
            SessionStartSource::Clear => "clear",
            SessionStartSource::Compact => "compact",
        }
    }
}

/// Why the conversation is compacted (`PreCompact`'s `trigger`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CompactTrigger {
    /// The user ran `/compact`.
    Manual,
    /// The context window filled up.
    Auto,
}

impl CompactTrigger {
    /// Claude Code's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            CompactTrigger::Manual => "manual",
            CompactTrigger::Auto => "auto",
        }
    }
}

/// Why a session ended (`SessionEnd`'s `reason`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SessionEndReason {
    /// `/clear`.
    Clear,
    /// The user logged out.
    Logout,
    /// The user left the prompt (Ctrl-D, `/exit`).
    PromptInputExit,
    /// Anything else (end of a print-mode run, a signal).
    Other,
}

impl SessionEndReason {
    /// Claude Code's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            SessionEndReason::Clear => "clear",
            SessionEndReason::Logout => "logout",
            SessionEndReason::PromptInputExit => "prompt_input_exit",
            SessionEndReason::Other => "other",
        }
    }
}

macro_rules! display_as_str {
    ($($t:ty),*) => {$(
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    )*};
}
display_as_str!(SessionStartSource, CompactTrigger, SessionEndReason);

impl HookContext {
    fn build(&self, event: HookEvent, fields: Value) -> HookInput {
        let mut map = Map::new();
        map.insert("session_id".into(), json!(self.session_id));
        map.insert(
            "transcript_path".into(),
            json!(self.transcript_path.to_string_lossy()),
        );
        map.insert("cwd".into(), json!(self.cwd.to_string_lossy()));
        map.insert(
            "permission_mode".into(),
            json!(self.permission_mode.as_str()),
        );
        map.insert("hook_event_name".into(), json!(event.as_str()));
        if let Value::Object(fields) = fields {
            map.extend(fields);
        }
        HookInput {
            event,
            json: Value::Object(map),
        }
    }

    /// `PreToolUse`: the tool call the model asked for, before it runs.
    pub fn pre_tool_use(
        &self,
        tool_name: &str,
        tool_input: &Value,
        tool_use_id: &str,
    ) -> HookInput {
        self.build(
            HookEvent::PreToolUse,
            json!({ "tool_name": tool_name, "tool_input": tool_input, "tool_use_id": tool_use_id }),
        )
    }

    /// `PostToolUse`: the tool call and what it returned (the structured result, as in
    /// stream-json's `tool_use_result`).
    pub fn post_tool_use(
        &self,
        tool_name: &str,
        tool_input: &Value,
        tool_response: &Value,
        tool_use_id: &str,
    ) -> HookInput {
        self.build(
            HookEvent::PostToolUse,
            json!({
                "tool_name": tool_name,
                "tool_input": tool_input,
                "tool_response": tool_response,
                "tool_use_id": tool_use_id,
            }),
        )
    }

    /// `UserPromptSubmit`: the prompt the user just submitted.
    pub fn user_prompt_submit(&self, prompt: &str) -> HookInput {
        self.build(HookEvent::UserPromptSubmit, json!({ "prompt": prompt }))
    }

    /// `Notification`: the message shown to the user and its kind (`permission_prompt`,
    /// `idle_prompt`, …), which matchers compare with.
    pub fn notification(&self, message: &str, notification_type: &str) -> HookInput {
        self.build(
            HookEvent::Notification,
            json!({ "message": message, "notification_type": notification_type }),
        )
    }

    /// `Stop`: the main agent is ending its turn. `stop_hook_active` is true when it is
    /// already continuing because a Stop hook blocked, so hooks can avoid endless loops.
    pub fn stop(&self, stop_hook_active: bool) -> HookInput {
        self.build(
            HookEvent::Stop,
            json!({ "stop_hook_active": stop_hook_active }),
        )
    }

    /// `SubagentStop`: like [`HookContext::stop`], for a subagent.
    pub fn subagent_stop(&self, stop_hook_active: bool) -> HookInput {
        self.build(
            HookEvent::SubagentStop,
            json!({ "stop_hook_active": stop_hook_active }),
        )
    }

    /// `PreCompact`: what triggered it and the user's `/compact` instructions (empty when
    /// none, as Claude Code sends).
    pub fn pre_compact(
        &self,
        trigger: CompactTrigger,
        custom_instructions: Option<&str>,
    ) -> HookInput {
        self.build(
            HookEvent::PreCompact,
            json!({
                "trigger": trigger.as_str(),
                "custom_instructions": custom_instructions.unwrap_or(""),
            }),
        )
    }

    /// `SessionStart`: how the session started.
    pub fn session_start(&self, source: SessionStartSource) -> HookInput {
        self.build(
            HookEvent::SessionStart,
            json!({ "source": source.as_str() }),
        )
    }

    /// `SessionEnd`: why the session ended.
    pub fn session_end(&self, reason: SessionEndReason) -> HookInput {
        self.build(HookEvent::SessionEnd, json!({ "reason": reason.as_str() }))
    }
}
