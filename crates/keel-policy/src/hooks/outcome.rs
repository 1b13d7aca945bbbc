//! What hooks answered, read with Claude Code's rules and merged across the hooks of one event.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use super::process::{RawRun, RunStatus};
use super::{CallbackHook, CallbackReply, HookEvent};
use crate::verdict::Decision;

/// The merged answer of every hook one event ran. Which fields an event can set, and what
/// the engine does with them, is documented per field.
#[derive(Clone, Debug, PartialEq)]
pub struct HookOutcome {
    /// The event the hooks ran for.
    pub event: HookEvent,
    /// How many hooks ran (after matching and removing duplicate commands).
    pub ran: usize,
    /// Set when a hook blocked (exit code 2 with stderr as the reason, or `decision: block`
    /// with its `reason`); reasons of several hooks are joined by newlines. PreToolUse: the
    /// call does not run and the reason goes to the model (always together with
    /// `permission` = Deny). PostToolUse: the reason goes to the model (the tool already ran).
    /// UserPromptSubmit: the prompt is dropped and the reason shown to the user only.
    /// Stop/SubagentStop: the agent does not stop; the reason goes to the model as the next
    /// instruction. Other events cannot block.
    pub blocked: Option<String>,
    /// PreToolUse only: the strongest decision any hook gave (deny > ask > allow).
    pub permission: Option<HookPermission>,
    /// PreToolUse only: a replacement for the tool's input. When several hooks give one, the
    /// last in settings order wins. Never set together with a Deny.
    pub updated_input: Option<Value>,
    /// Text for the model's context, in settings order: `additionalContext` from any event
    /// (used for UserPromptSubmit, SessionStart and PostToolUse), plus plain stdout for
    /// UserPromptSubmit and SessionStart.
    pub additional_context: Vec<String>,
    /// `systemMessage`s: shown to the user, never to the model.
    pub system_messages: Vec<String>,
    /// Set when a hook answered `continue: false`: the session stops after this event.
    pub stop: Option<StopSession>,
    /// A hook asked (`suppressOutput: true`) that its output stay out of the transcript view.
    pub suppress_output: bool,
    /// Plain stdout of hooks whose events do not feed it to the model: for verbose/debug
    /// display only.
    pub output: Vec<HookText>,
    /// Hooks that failed without blocking (could not start, exit code other than 0 and 2,
    /// killed, timed out, invalid JSON): show them to the user; the session goes on.
    pub errors: Vec<HookError>,
}

/// A PreToolUse hook's permission decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HookPermission {
    /// Allow (skip the permission prompt), Ask (prompt even if rules allow) or Deny.
    pub decision: Decision,
    /// `permissionDecisionReason` (or the block reason). For Deny it is for the model; for
    /// Allow and Ask it is shown to the user.
    pub reason: Option<String>,
}

/// A hook's request to end the session (`continue: false`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StopSession {
    /// `stopReason`, shown to the user (not the model).
    pub reason: Option<String>,
}

/// Plain output of one hook.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HookText {
    /// The hook's command.
    pub command: String,
    /// What it printed, trimmed.
    pub text: String,
}

/// A hook that failed without blocking anything.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HookError {
    /// The event it ran for.
    pub event: HookEvent,
    /// Its command.
    pub command: String,
    /// What went wrong.
    pub failure: HookFailure,
    /// What it printed on stderr, trimmed and shortened.
    pub stderr: String,
}

/// How a hook failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HookFailure {
    /// The shell could not be started.
    Spawn(String),
    /// Exit code other than 0 and 2 (or 2 on an event that cannot block).
    Exit(i32),
    /// Killed by a signal keel did not send.
    Signal(i32),
    /// Ran past its timeout; it was killed with its process group.
    TimedOut(Duration),
    /// The session was interrupted while it ran; it was killed with its process group.
    Cancelled,
    /// Exit code 0, but stdout was JSON keel could not use.
    InvalidOutput(String),
    /// A frontend callback failed, timed out or could not be reached.
    Callback(String),
}

impl fmt::Display for HookFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HookFailure::Spawn(why) => write!(f, "could not start: {why}"),
            HookFailure::Exit(code) => write!(f, "failed with exit code {code}"),
            HookFailure::Signal(signal) => write!(f, "was killed by signal {signal}"),
            HookFailure::TimedOut(limit) => write!(
                f,
                "timed out after {} s and was stopped (raise its \"timeout\" in settings if it \
                 needs longer)",
                limit.as_secs()
            ),
            HookFailure::Cancelled => f.write_str("was cancelled"),
            HookFailure::InvalidOutput(why) => write!(f, "printed output keel ignored: {why}"),
            HookFailure::Callback(why) => write!(f, "failed: {why}"),
        }
    }
}

impl fmt::Display for HookError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} hook `{}` {}", self.event, self.command, self.failure)?;
        if !self.stderr.is_empty() {
            write!(f, ": {}", self.stderr)?;
        }
        Ok(())
    }
}

impl HookOutcome {
    /// An outcome of no hooks.
    pub(crate) fn new(event: HookEvent) -> Self {
        Self {
            event,
            ran: 0,
            blocked: None,
            permission: None,
            updated_input: None,
            additional_context: Vec::new(),
            system_messages: Vec::new(),
            stop: None,
            suppress_output: false,
            output: Vec::new(),
            errors: Vec::new(),
        }
    }

    /// True when there is nothing to apply or show (no hook ran, or none said anything).
    pub fn is_noop(&self) -> bool {
        self.blocked.is_none()
            && self.permission.is_none()
            && self.updated_input.is_none()
            && self.additional_context.is_empty()
            && self.system_messages.is_empty()
            && self.stop.is_none()
            && self.output.is_empty()
            && self.errors.is_empty()
    }

    /// The outcome of one hook's JSON answer for `event` (what a command prints on stdout or
    /// a frontend callback returns), read with the same rules as [`super::HookSet::run`].
    pub fn from_output(event: HookEvent, label: &str, output: &Value) -> Self {
        let mut merger = Merger::new(event);
        merger.outcome.ran += 1;
        merger.value(label, output);
        merger.finish()
    }

    /// What to show the user as notices: system messages, then hook errors.
    pub fn notices(&self) -> Vec<String> {
        self.system_messages
            .iter()
            .cloned()
            .chain(self.errors.iter().map(ToString::to_string))
            .collect()
    }
}

/// Longest stderr kept in a [`HookError`].
const MAX_STDERR_CHARS: usize = 2000;

/// Folds each hook's result into the outcome, in settings order.
pub(crate) struct Merger {
    outcome: HookOutcome,
    block_reasons: Vec<String>,
    decisions: Vec<(Decision, Option<String>)>,
    updated_inputs: Vec<Value>,
    stop: bool,
    stop_reasons: Vec<String>,
}

/// The JSON object a hook may print, with Claude Code's field names.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct HookJson {
    #[serde(rename = "continue")]
    keep_going: Option<bool>,
    stop_reason: Option<String>,
    suppress_output: Option<bool>,
    system_message: Option<String>,
    decision: Option<String>,
    reason: Option<String>,
    hook_specific_output: Option<SpecificJson>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SpecificJson {
    hook_event_name: Option<String>,
    permission_decision: Option<String>,
    permission_decision_reason: Option<String>,
    updated_input: Option<Value>,
    additional_context: Option<String>,
}

impl Merger {
    pub(crate) fn new(event: HookEvent) -> Self {
        Self {
            outcome: HookOutcome::new(event),
            block_reasons: Vec::new(),
            decisions: Vec::new(),
            updated_inputs: Vec::new(),
            stop: false,
            stop_reasons: Vec::new(),
        }
    }

    fn event(&self) -> HookEvent {
        self.outcome.event
    }

    /// Reads one hook's result.
    pub(crate) fn absorb(&mut self, command: &str, timeout: Duration, run: RawRun) {
        self.outcome.ran += 1;
        let stderr = clip(run.stderr.trim(), MAX_STDERR_CHARS);
        let failure = match run.status {
            RunStatus::Exited(0) => {
                self.success(command, &run.stdout);
                return;
            }
            RunStatus::Exited(2) if self.event().can_block() => {
                let reason = if stderr.is_empty() {
                    format!("`{command}` blocked this (exit code 2) without giving a reason")
                } else {
                    stderr
                };
                self.block(reason);
                return;
            }
            RunStatus::Exited(code) => HookFailure::Exit(code),
            RunStatus::Signaled(signal) => HookFailure::Signal(signal),
            RunStatus::TimedOut => HookFailure::TimedOut(timeout),
            RunStatus::Cancelled => HookFailure::Cancelled,
            RunStatus::SpawnFailed(why) => HookFailure::Spawn(why),
        };
        self.error(command, failure, stderr);
    }

    /// Reads one frontend callback's answer (`None`: cancelled while it ran).
    pub(crate) fn absorb_callback(
        &mut self,
        callback: &CallbackHook,
        reply: Option<CallbackReply>,
    ) {
        self.outcome.ran += 1;
        let label = format!("callback {}", callback.id);
        let errors_before = self.outcome.errors.len();
        match reply {
            None => self.error(&label, HookFailure::Cancelled, String::new()),
            Some(CallbackReply::Failed(why)) => {
                self.error(&label, HookFailure::Callback(why), String::new());
            }
            Some(CallbackReply::Output(output)) => self.value(&label, &output),
        }
        // Stop hooks ignore onFailure (Claude Code's rule): blocking a stop would keep the
        // agent working because a callback broke.
        let stops = matches!(self.event(), HookEvent::Stop | HookEvent::SubagentStop);
        if callback.block_on_failure
            && self.event().can_block()
            && !stops
            && self.outcome.errors.len() > errors_before
        {
            let why = self.outcome.errors[errors_before..]
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ");
            self.block(format!("{why} (its matcher blocks on failure)"));
        }
    }

    /// Reads a JSON answer given as a value (a callback's output).
    fn value(&mut self, label: &str, output: &Value) {
        let Value::Object(object) = output else {
            self.invalid(
                label,
                format!("answered {output} instead of a JSON object; return {{}} for no decision"),
            );
            return;
        };
        if object.get("async").and_then(Value::as_bool) == Some(true) {
            // A callback that runs in the background has no say in this event.
            return;
        }
        match serde_json::from_value::<HookJson>(output.clone()) {
            Ok(json) => self.apply_json(label, json),
            Err(error) => self.invalid(
                label,
                format!(
                    "answered an object keel cannot use ({error}); use Claude Code's hook fields"
                ),
            ),
        }
    }

    fn error(&mut self, command: &str, failure: HookFailure, stderr: String) {
        self.outcome.errors.push(HookError {
            event: self.event(),
            command: command.to_string(),
            failure,
            stderr,
        });
    }

    fn invalid(&mut self, command: &str, why: String) {
        self.error(command, HookFailure::InvalidOutput(why), String::new());
    }

    fn block(&mut self, reason: String) {
        if self.event() == HookEvent::PreToolUse {
            self.decisions.push((Decision::Deny, Some(reason)));
        } else {
            self.block_reasons.push(reason);
        }
    }

    fn success(&mut self, command: &str, stdout: &str) {
        let text = stdout.trim();
        if text.is_empty() {
            return;
        }
        if !text.starts_with('{') {
            if self.event().stdout_is_context() {
                self.outcome.additional_context.push(text.to_string());
            } else {
                self.outcome.output.push(HookText {
                    command: command.to_string(),
                    text: text.to_string(),
                });
            }
            return;
        }
        match serde_json::from_str::<HookJson>(text) {
            Ok(json) => self.apply_json(command, json),
            Err(error) => self.invalid(
                command,
                format!(
                    "stdout starts with `{{` but is not a valid hook JSON object ({error}); \
                     print one JSON object with Claude Code's hook fields, or plain text"
                ),
            ),
        }
    }

    fn apply_json(&mut self, command: &str, json: HookJson) {
        let event = self.event();
        if json.suppress_output == Some(true) {
            self.outcome.suppress_output = true;
        }
        if json.keep_going == Some(false) {
            self.stop = true;
            if let Some(reason) = non_empty(json.stop_reason) {
                self.stop_reasons.push(reason);
            }
        }
        if let Some(message) = non_empty(json.system_message) {
            self.outcome.system_messages.push(message);
        }
        let reason = non_empty(json.reason);
        let mut decision = None;
        match json.decision.as_deref() {
            None => {}
            Some("block") if event == HookEvent::PreToolUse => {
                decision = Some((Decision::Deny, reason.clone()));
            }
            Some("block") if event.can_block() => {
                self.block(reason.clone().unwrap_or_else(|| {
                    format!("`{command}` blocked this without giving a reason")
                }));
            }
            // Claude Code ignores a block where nothing can be blocked; so does keel.
            Some("block") => {}
            // The older spelling of permissionDecision "allow".
            Some("approve") if event == HookEvent::PreToolUse => {
                decision = Some((Decision::Allow, reason.clone()));
            }
            Some("approve") => {}
            Some(other) => self.invalid(
                command,
                format!(
                    "`decision` must be \"block\" (or \"approve\" for PreToolUse), not {other:?}"
                ),
            ),
        }
        let mut updated = None;
        if let Some(specific) = json.hook_specific_output {
            if let Some(name) = specific.hook_event_name.as_deref()
                && name != event.as_str()
            {
                self.invalid(
                    command,
                    format!(
                        "hookSpecificOutput.hookEventName is {name:?} but the hook ran for \
                         {event}; its hookSpecificOutput was ignored"
                    ),
                );
            } else {
                if let Some(given) = specific.permission_decision
                    && event == HookEvent::PreToolUse
                {
                    match given.as_str() {
                        "allow" => decision = Some((Decision::Allow, None)),
                        "ask" => decision = Some((Decision::Ask, None)),
                        "deny" => decision = Some((Decision::Deny, None)),
                        other => self.invalid(
                            command,
                            format!(
                                "permissionDecision must be \"allow\", \"deny\" or \"ask\", \
                                 not {other:?}"
                            ),
                        ),
                    }
                    if let Some((_, reason)) = &mut decision {
                        *reason = non_empty(specific.permission_decision_reason);
                    }
                }
                if let Some(input) = specific.updated_input
                    && event == HookEvent::PreToolUse
                {
                    if input.is_object() {
                        updated = Some(input);
                    } else {
                        self.invalid(
                            command,
                            "updatedInput must be a JSON object with the tool's input fields"
                                .to_string(),
                        );
                    }
                }
                if let Some(context) = non_empty(specific.additional_context) {
                    self.outcome.additional_context.push(context);
                }
            }
        }
        let denied = matches!(decision, Some((Decision::Deny, _)));
        if let Some(decision) = decision {
            self.decisions.push(decision);
        }
        if let Some(input) = updated
            && !denied
        {
            self.updated_inputs.push(input);
        }
    }

    /// The merged outcome.
    pub(crate) fn finish(mut self) -> HookOutcome {
        let strongest = self
            .decisions
            .iter()
            .map(|(decision, _)| *decision)
            .max_by_key(|decision| severity(*decision));
        if let Some(decision) = strongest {
            let reasons: Vec<String> = self
                .decisions
                .iter()
                .filter(|(d, _)| *d == decision)
                .filter_map(|(_, reason)| reason.clone())
                .collect();
            let reason = (!reasons.is_empty()).then(|| reasons.join("\n"));
            if decision == Decision::Deny {
                self.outcome.blocked = Some(
                    reason
                        .clone()
                        .unwrap_or_else(|| "a PreToolUse hook denied this tool call".to_string()),
                );
            }
            self.outcome.permission = Some(HookPermission { decision, reason });
        }
        if !self.block_reasons.is_empty() {
            self.outcome.blocked = Some(self.block_reasons.join("\n"));
        }
        if self.outcome.permission.as_ref().map(|p| p.decision) != Some(Decision::Deny) {
            self.outcome.updated_input = self.updated_inputs.pop();
        }
        if self.stop {
            let reason = (!self.stop_reasons.is_empty()).then(|| self.stop_reasons.join("\n"));
            self.outcome.stop = Some(StopSession { reason });
        }
        self.outcome
    }
}

fn severity(decision: Decision) -> u8 {
    match decision {
        Decision::Allow => 0,
        Decision::Ask => 1,
        Decision::Deny => 2,
    }
}

fn non_empty(text: Option<String>) -> Option<String> {
    text.map(|t| t.trim().to_string()).filter(|t| !t.is_empty())
}

fn clip(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}
