//! The Agent SDK's control protocol, keel's side: JSON lines on stdout shared by everything that
//! writes them, requests keel sends to the SDK (`can_use_tool`, `hook_callback`, `mcp_message`)
//! and their answers, the `initialize` handshake, and the conversions between the protocol's
//! shapes and the engine's.

use std::collections::HashMap;
use std::future::Future;
use std::io::{self, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use keel_policy::hooks::{CallbackHook, HookEvent, HookSet};
use keel_protocol::ApprovalAnswer;
use serde_json::{Value, json};
use tokio::sync::oneshot;

/// Seconds an SDK hook callback may take when its matcher gives no `timeout` (Claude Code's
/// default).
const DEFAULT_CALLBACK_TIMEOUT_SECS: f64 = 60.0;

/// Standard output, shared: every JSON line is written whole, so lines from the renderer and
/// from control requests never interleave.
#[derive(Clone)]
pub struct Output(Arc<Mutex<io::Stdout>>);

impl Output {
    /// The process's standard output.
    pub fn stdout() -> Self {
        Self(Arc::new(Mutex::new(io::stdout())))
    }

    /// Writes `value` as one line and flushes it.
    pub fn line(&self, value: &Value) -> io::Result<()> {
        let mut bytes = serde_json::to_vec(value)?;
        bytes.push(b'\n');
        self.write_whole(&bytes)
    }

    fn write_whole(&self, bytes: &[u8]) -> io::Result<()> {
        let stdout = match self.0.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        let mut stdout = stdout.lock();
        stdout.write_all(bytes)?;
        stdout.flush()
    }

    /// A writer for the renderer: it collects what is written and puts it out whole at
    /// each flush (the renderer flushes after every line).
    pub fn writer(&self) -> LineWriter {
        LineWriter {
            out: self.clone(),
            buf: Vec::new(),
        }
    }
}

/// See [`Output::writer`].
pub struct LineWriter {
    out: Output,
    buf: Vec<u8>,
}

impl Write for LineWriter {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let result = self.out.write_whole(&self.buf);
        self.buf.clear();
        result
    }
}

/// Why a request to the SDK got no usable answer.
#[derive(Debug, Clone, PartialEq)]
pub enum AskError {
    /// keel withdrew it (the turn it belonged to ended); nobody waits for it any more.
    Withdrawn,
    /// The SDK answered with an error, or could not answer; the text says why.
    Failed(String),
}

/// Requests keel sent to the SDK that wait for a `control_response`.
pub struct Control {
    out: Output,
    pending: Mutex<Pending>,
}

#[derive(Default)]
struct Pending {
    waiting: HashMap<String, oneshot::Sender<Result<Value, AskError>>>,
    /// Standard input is closed: no answer can come any more.
    closed: bool,
}

impl Control {
    /// A control channel writing to `out`.
    pub fn new(out: Output) -> Arc<Self> {
        Arc::new(Self {
            out,
            pending: Mutex::new(Pending::default()),
        })
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, Pending> {
        match self.pending.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Sends the control request `request` under `request_id`; the future resolves with the
    /// SDK's `response` object.
    pub fn ask(
        &self,
        request_id: String,
        request: Value,
    ) -> impl Future<Output = Result<Value, AskError>> + Send + 'static {
        let (tx, rx) = oneshot::channel();
        let refused = {
            let mut pending = self.pending();
            if pending.closed {
                Some(AskError::Failed(
                    "standard input is closed, so the SDK cannot answer".into(),
                ))
            } else {
                pending.waiting.insert(request_id.clone(), tx);
                None
            }
        };
        let written = match refused {
            Some(_) => Ok(()),
            None => self.out.line(&json!({
                "type": "control_request",
                "request_id": request_id,
                "request": request,
            })),
        };
        if written.is_err() {
            self.pending().waiting.remove(&request_id);
        }
        async move {
            if let Some(error) = refused {
                return Err(error);
            }
            written
                .map_err(|e| AskError::Failed(format!("cannot write to standard output: {e}")))?;
            rx.await.unwrap_or_else(|_| {
                Err(AskError::Failed(
                    "standard input closed before the SDK answered".into(),
                ))
            })
        }
    }

    /// Delivers a `control_response` line's `response` object to the request it answers.
    pub fn resolve(&self, response: &Value) -> Result<(), String> {
        let Some(request_id) = response.get("request_id").and_then(Value::as_str) else {
            return Err("a control_response without response.request_id".into());
        };
        let Some(waiting) = self.pending().waiting.remove(request_id) else {
            // An answer to a request keel withdrew (its turn ended) is expected and harmless.
            tracing::debug!(%request_id, "control_response for a request nobody waits for");
            return Ok(());
        };
        let answer = match response.get("subtype").and_then(Value::as_str) {
            Some("success") => Ok(response.get("response").cloned().unwrap_or(Value::Null)),
            Some("error") => Err(AskError::Failed(
                response
                    .get("error")
                    .and_then(Value::as_str)
                    .unwrap_or("the SDK reported an error without a message")
                    .to_string(),
            )),
            other => Err(AskError::Failed(format!(
                "control_response with subtype {other:?}; expected \"success\" or \"error\""
            ))),
        };
        let _ = waiting.send(answer);
        Ok(())
    }

    /// Withdraws a request still waiting (its turn ended) and tells the SDK, so a callback
    /// still running can stop.
    pub fn withdraw(&self, request_id: &str) {
        let Some(waiting) = self.pending().waiting.remove(request_id) else {
            return;
        };
        let _ = waiting.send(Err(AskError::Withdrawn));
        let _ = self.out.line(&json!({
            "type": "control_cancel_request",
            "request_id": request_id,
        }));
    }

    /// Standard input closed: every waiting request fails, and new ones fail at once.
    pub fn close(&self) {
        let waiting: Vec<_> = {
            let mut pending = self.pending();
            pending.closed = true;
            pending.waiting.drain().collect()
        };
        for (_, tx) in waiting {
            let _ = tx.send(Err(AskError::Failed(
                "standard input closed before the SDK answered".into(),
            )));
        }
    }

    /// Answers an SDK request with success.
    pub fn succeed(&self, request_id: &str, response: Value) -> io::Result<()> {
        self.out.line(&json!({
            "type": "control_response",
            "response": {"subtype": "success", "request_id": request_id, "response": response},
        }))
    }

    /// Answers an SDK request with an error the SDK raises to its caller.
    pub fn fail(&self, request_id: &str, error: &str) -> io::Result<()> {
        self.out.line(&json!({
            "type": "control_response",
            "response": {"subtype": "error", "request_id": request_id, "error": error},
        }))
    }
}

/// A fresh id for a request keel sends.
pub fn new_request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Carries JSON-RPC messages to the SDK program's in-process MCP servers as `mcp_message`
/// control requests.
pub struct SdkMcp(pub Arc<Control>);

impl keel_mcp::SdkBridge for SdkMcp {
    fn send(&self, server: &str, message: Value) -> keel_mcp::SdkAnswer {
        let answer = self.0.ask(
            new_request_id(),
            json!({"subtype": "mcp_message", "server_name": server, "message": message}),
        );
        Box::pin(async move {
            match answer.await {
                Ok(response) => Ok(response.get("mcp_response").cloned().unwrap_or(Value::Null)),
                Err(AskError::Withdrawn) => Err("the request was withdrawn".into()),
                Err(AskError::Failed(why)) => Err(why),
            }
        })
    }
}

/// What the SDK registered in `initialize`.
#[derive(Debug, Default)]
pub struct Registration {
    /// Hook callbacks by event and matcher.
    pub hook_callbacks: Vec<(HookEvent, String, Vec<CallbackHook>)>,
    /// Things registered that keel will not use, for stderr.
    pub warnings: Vec<String>,
}

/// Reads an `initialize` request's hooks (`{EVENT: [{matcher, hookCallbackIds, timeout?,
/// onFailure?}]}`) and agents. An unusable registration is an error the SDK raises at connect.
pub fn read_initialize(request: &Value) -> Result<Registration, String> {
    let mut registration = Registration::default();
    if let Some(agents) = request.get("agents").and_then(Value::as_object)
        && !agents.is_empty()
    {
        let names: Vec<&str> = agents.keys().map(String::as_str).collect();
        registration.warnings.push(format!(
            "the SDK defined agents ({}), which keel cannot run yet; they are not available to \
             the model",
            names.join(", ")
        ));
    }
    let hooks = match request.get("hooks") {
        None | Some(Value::Null) => return Ok(registration),
        Some(Value::Object(hooks)) => hooks,
        Some(other) => {
            return Err(format!(
                "initialize: `hooks` must be an object, not {other}"
            ));
        }
    };
    // Checks the matchers the way the session will compile them.
    let mut scratch = HookSet::default();
    for (name, matchers) in hooks {
        let event = match name.parse::<HookEvent>() {
            Ok(HookEvent::SessionStart | HookEvent::SessionEnd) => {
                registration.warnings.push(format!(
                    "keel calls SDK hook callbacks only while it works on a prompt; the {name} \
                     callbacks are never called"
                ));
                continue;
            }
            Ok(event) => event,
            Err(_) => {
                registration.warnings.push(format!(
                    "keel has no {name} hook event yet; the callbacks registered for it are \
                     never called"
                ));
                continue;
            }
        };
        let Some(matchers) = matchers.as_array() else {
            return Err(format!(
                "initialize: hooks.{name} must be a list of {{matcher, hookCallbackIds}}"
            ));
        };
        for (i, entry) in matchers.iter().enumerate() {
            let at = format!("initialize: hooks.{name}[{i}]");
            let matcher = match entry.get("matcher") {
                None | Some(Value::Null) => String::new(),
                Some(Value::String(text)) => text.clone(),
                Some(other) => return Err(format!("{at}.matcher must be a string, not {other}")),
            };
            let ids = entry
                .get("hookCallbackIds")
                .and_then(Value::as_array)
                .ok_or_else(|| format!("{at}.hookCallbackIds must be a list of callback ids"))?;
            let timeout = match entry.get("timeout") {
                None | Some(Value::Null) => DEFAULT_CALLBACK_TIMEOUT_SECS,
                Some(value) => value
                    .as_f64()
                    .filter(|secs| secs.is_finite() && *secs > 0.0)
                    .ok_or_else(|| format!("{at}.timeout must be a positive number of seconds"))?,
            };
            // As Claude Code reads it: anything but "continue" blocks.
            let block_on_failure = match entry.get("onFailure") {
                None | Some(Value::Null) => false,
                Some(value) => value.as_str() != Some("continue"),
            };
            let callbacks = ids
                .iter()
                .map(|id| {
                    id.as_str()
                        .map(|id| CallbackHook {
                            id: id.to_string(),
                            timeout: Duration::from_secs_f64(timeout),
                            block_on_failure,
                        })
                        .ok_or_else(|| format!("{at}.hookCallbackIds must hold strings"))
                })
                .collect::<Result<Vec<_>, _>>()?;
            scratch
                .add_callbacks(event, &matcher, callbacks.clone())
                .map_err(|problem| format!("{at}: {problem}"))?;
            registration
                .hook_callbacks
                .push((event, matcher, callbacks));
        }
    }
    Ok(registration)
}

/// The answer to `initialize`: what Claude Code reports (commands, agents, output style,
/// models, pid) and that hook `onFailure` is honoured.
pub fn initialize_response(model: &str) -> Value {
    json!({
        "commands": [],
        "agents": [],
        "output_style": "default",
        "available_output_styles": ["default"],
        "models": [{
            "value": model,
            "displayName": model,
            "description": "the model this keel session started with",
        }],
        "account": {},
        "pid": std::process::id(),
        "hook_on_failure_supported": true,
        "hooks_applied": true,
    })
}

/// A rule like `Bash(npm test:*)` as the SDK's permission update
/// (`{"type":"addRules","rules":[{"toolName","ruleContent"}],"behavior":"allow",...}`).
pub fn rule_update(rule: &str) -> Value {
    let rule_value = match rule.split_once('(') {
        Some((tool, rest)) if rest.ends_with(')') => {
            json!({"toolName": tool, "ruleContent": &rest[..rest.len() - 1]})
        }
        _ => json!({"toolName": rule}),
    };
    json!({
        "type": "addRules",
        "rules": [rule_value],
        "behavior": "allow",
        "destination": "localSettings",
    })
}

/// The `can_use_tool` request for an approval the engine asked for.
pub fn permission_request(
    tool_name: &str,
    input: &Value,
    tool_use_id: &str,
    reason: &str,
    suggestions: &[String],
) -> Value {
    json!({
        "subtype": "can_use_tool",
        "tool_name": tool_name,
        "input": input,
        "tool_use_id": tool_use_id,
        "permission_suggestions": suggestions.iter().map(|rule| rule_update(rule)).collect::<Vec<_>>(),
        "blocked_path": null,
        "decision_reason": reason,
    })
}

/// The user's answers to `AskUserQuestion`, from the SDK's `can_use_tool` answer: an allow
/// carries them in `updatedInput.answers` (question text → chosen label), as Claude Code reads
/// them; a deny, a failure or an answer without them means the user declined (no answers).
pub fn read_question_answers(
    answer: Result<Value, String>,
) -> std::collections::BTreeMap<String, String> {
    let Ok(response) = answer else {
        return Default::default();
    };
    if response.get("behavior").and_then(Value::as_str) != Some("allow") {
        return Default::default();
    }
    response
        .pointer("/updatedInput/answers")
        .and_then(Value::as_object)
        .map(|answers| {
            answers
                .iter()
                .map(|(question, answer)| {
                    let text = match answer {
                        Value::String(text) => text.clone(),
                        Value::Array(labels) => labels
                            .iter()
                            .filter_map(Value::as_str)
                            .collect::<Vec<_>>()
                            .join(", "),
                        other => other.to_string(),
                    };
                    (question.clone(), text)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// How keel acts on the SDK's `can_use_tool` answer.
#[derive(Debug, PartialEq)]
pub struct PermissionAnswer {
    /// The engine's answer.
    pub answer: ApprovalAnswer,
    /// The callback asked to stop the turn too (`interrupt: true` with a deny).
    pub interrupt: bool,
    /// A permission mode the callback switched to (`setMode` update).
    pub set_mode: Option<String>,
    /// Parts of the answer keel did not apply, for stderr.
    pub notes: Vec<String>,
}

/// Reads the SDK's answer (`{"behavior":"allow","updatedInput"}` / `{"behavior":"deny",
/// "message"}`); an error or an unreadable answer denies, saying why.
pub fn read_permission_answer(answer: Result<Value, String>, tool: &str) -> PermissionAnswer {
    let deny = |message: String| PermissionAnswer {
        answer: ApprovalAnswer::Deny { message },
        interrupt: false,
        set_mode: None,
        notes: Vec::new(),
    };
    let response = match answer {
        Ok(response) => response,
        Err(why) => return deny(format!("the can_use_tool callback failed: {why}")),
    };
    match response.get("behavior").and_then(Value::as_str) {
        Some("allow") => {
            let updated_input = match response.get("updatedInput") {
                Some(value @ Value::Object(_)) => Some(value.clone()),
                _ => None,
            };
            let mut rules = Vec::new();
            let mut set_mode = None;
            let mut notes = Vec::new();
            for update in response
                .get("updatedPermissions")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let kind = update.get("type").and_then(Value::as_str).unwrap_or("");
                let destination = update
                    .get("destination")
                    .and_then(Value::as_str)
                    .unwrap_or("session");
                match kind {
                    "addRules"
                        if update.get("behavior").and_then(Value::as_str) == Some("allow")
                            && destination == "localSettings" =>
                    {
                        rules.extend(
                            update
                                .get("rules")
                                .and_then(Value::as_array)
                                .into_iter()
                                .flatten()
                                .filter_map(rule_text),
                        );
                    }
                    "setMode" => {
                        set_mode = update
                            .get("mode")
                            .and_then(Value::as_str)
                            .map(str::to_string);
                    }
                    _ => notes.push(format!(
                        "the can_use_tool answer for {tool} asked for a permission update keel \
                         does not apply yet ({kind} to {destination}; keel keeps allow rules in \
                         localSettings, .keel/settings.local.json); the call runs once"
                    )),
                }
            }
            let answer = if rules.is_empty() {
                ApprovalAnswer::AllowOnce { updated_input }
            } else {
                if updated_input.is_some() {
                    notes.push(format!(
                        "the can_use_tool answer for {tool} both saved rules and rewrote the \
                         input; keel saved the rules and ran the call as the model asked"
                    ));
                }
                ApprovalAnswer::AllowAlways { rules }
            };
            PermissionAnswer {
                answer,
                interrupt: false,
                set_mode,
                notes,
            }
        }
        Some("deny") => {
            let message = response
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            PermissionAnswer {
                interrupt: response.get("interrupt").and_then(Value::as_bool) == Some(true),
                ..deny(message)
            }
        }
        _ => deny(format!(
            "the can_use_tool callback answered {response}, which is neither an allow nor a deny"
        )),
    }
}

/// A `{toolName, ruleContent?}` rule value as rule text.
fn rule_text(rule: &Value) -> Option<String> {
    let tool = rule.get("toolName").and_then(Value::as_str)?;
    Some(match rule.get("ruleContent").and_then(Value::as_str) {
        Some(content) => format!("{tool}({content})"),
        None => tool.to_string(),
    })
}

/// The text of a user message's `content`: a string, or the text blocks of a list (other
/// blocks are named in the second value, since keel cannot pass them on yet).
pub fn user_text(content: &Value) -> Result<(String, Vec<String>), String> {
    match content {
        Value::String(text) => Ok((text.clone(), Vec::new())),
        Value::Array(blocks) => {
            let mut texts = Vec::new();
            let mut skipped = Vec::new();
            for block in blocks {
                match block.get("type").and_then(Value::as_str) {
                    Some("text") => {
                        if let Some(text) = block.get("text").and_then(Value::as_str) {
                            texts.push(text.to_string());
                        }
                    }
                    Some(other) => skipped.push(other.to_string()),
                    None => skipped.push("untyped".to_string()),
                }
            }
            Ok((texts.join("\n\n"), skipped))
        }
        other => Err(format!(
            "message.content must be a string or a list of content blocks, not {other}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initialize_hooks_become_callbacks() {
        let registration = read_initialize(&json!({
            "subtype": "initialize",
            "hooks": {
                "PreToolUse": [
                    {"matcher": "Bash", "hookCallbackIds": ["hook_0", "hook_1"], "timeout": 5},
                    {"matcher": null, "hookCallbackIds": ["hook_2"], "onFailure": "block"},
                ],
                "PostToolUseFailure": [{"matcher": null, "hookCallbackIds": ["hook_3"]}],
            },
            "agents": {"reviewer": {"description": "d", "prompt": "p"}},
        }))
        .unwrap();
        assert_eq!(registration.hook_callbacks.len(), 2);
        let (event, matcher, callbacks) = &registration.hook_callbacks[0];
        assert_eq!(*event, HookEvent::PreToolUse);
        assert_eq!(matcher, "Bash");
        assert_eq!(callbacks[1].id, "hook_1");
        assert_eq!(callbacks[1].timeout, Duration::from_secs(5));
        assert!(!callbacks[0].block_on_failure);
        assert!(registration.hook_callbacks[1].2[0].block_on_failure);
        assert_eq!(registration.warnings.len(), 2);
        assert!(
            registration
                .warnings
                .iter()
                .any(|w| w.contains("PostToolUseFailure"))
        );
        assert!(registration.warnings.iter().any(|w| w.contains("reviewer")));
    }

    #[test]
    fn a_broken_matcher_fails_initialize() {
        let problem = read_initialize(&json!({
            "hooks": {"PreToolUse": [{"matcher": "Edit(", "hookCallbackIds": ["hook_0"]}]}
        }))
        .unwrap_err();
        assert!(problem.contains("hooks.PreToolUse[0]"), "{problem}");
    }

    #[test]
    fn suggestions_use_the_sdks_update_shape() {
        assert_eq!(
            rule_update("Bash(npm test:*)"),
            json!({"type": "addRules", "rules": [{"toolName": "Bash", "ruleContent": "npm test:*"}],
                   "behavior": "allow", "destination": "localSettings"})
        );
        assert_eq!(rule_update("Edit")["rules"][0], json!({"toolName": "Edit"}));
    }

    #[test]
    fn permission_answers_map_to_approvals() {
        let allow = read_permission_answer(
            Ok(json!({"behavior": "allow", "updatedInput": {"command": "ls"}})),
            "Bash",
        );
        assert_eq!(
            allow.answer,
            ApprovalAnswer::AllowOnce {
                updated_input: Some(json!({"command": "ls"}))
            }
        );
        let deny = read_permission_answer(
            Ok(json!({"behavior": "deny", "message": "not here", "interrupt": true})),
            "Bash",
        );
        assert_eq!(
            deny.answer,
            ApprovalAnswer::Deny {
                message: "not here".into()
            }
        );
        assert!(deny.interrupt);
        let always = read_permission_answer(
            Ok(
                json!({"behavior": "allow", "updatedInput": null, "updatedPermissions": [
                    {"type": "addRules", "rules": [{"toolName": "Bash", "ruleContent": "ls:*"}],
                     "behavior": "allow", "destination": "localSettings"},
                    {"type": "setMode", "mode": "acceptEdits", "destination": "session"},
                ]}),
            ),
            "Bash",
        );
        assert_eq!(
            always.answer,
            ApprovalAnswer::AllowAlways {
                rules: vec!["Bash(ls:*)".into()]
            }
        );
        assert_eq!(always.set_mode.as_deref(), Some("acceptEdits"));
        let failed = read_permission_answer(Err("boom".into()), "Bash");
        assert!(
            matches!(failed.answer, ApprovalAnswer::Deny { message } if message.contains("boom"))
        );
    }

    #[test]
    fn user_content_keeps_text_and_names_the_rest() {
        assert_eq!(user_text(&json!("hi")).unwrap().0, "hi");
        let (text, skipped) = user_text(&json!([
            {"type": "text", "text": "a"},
            {"type": "image", "source": {}},
            {"type": "text", "text": "b"},
        ]))
        .unwrap();
        assert_eq!(text, "a\n\nb");
        assert_eq!(skipped, ["image"]);
        assert!(user_text(&json!(3)).is_err());
    }

    #[test]
    fn question_answers_come_from_an_allow_and_a_deny_declines() {
        let allow = json!({
            "behavior": "allow",
            "updatedInput": {
                "questions": [],
                "answers": {"Which database?": "Postgres", "Which features?": ["Search", "Export"]}
            }
        });
        let answers = read_question_answers(Ok(allow));
        assert_eq!(answers["Which database?"], "Postgres");
        assert_eq!(answers["Which features?"], "Search, Export");
        let deny = json!({"behavior": "deny", "message": "not now"});
        assert!(read_question_answers(Ok(deny)).is_empty());
        assert!(read_question_answers(Err("the SDK went away".into())).is_empty());
    }
}
