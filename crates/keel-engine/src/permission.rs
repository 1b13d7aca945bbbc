//! Whether a tool call may run: the policy's decision, and for "ask" the user's answer, which
//! arrives as an [`Op::Approval`](keel_protocol::Op) through whichever frontend is attached.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Mutex, RwLock};

use keel_policy::{Decision, PermissionMode, Policy, RuleList, RuleSource, ToolCall};
use keel_protocol::ApprovalAnswer;
use serde_json::Value;
use tokio::sync::oneshot;

use crate::emit::lock;

/// Who answers permission questions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Approver {
    /// A frontend answers [`keel_protocol::Event::ApprovalRequested`] with an approval op.
    Interactive,
    /// Nobody can answer (print mode): a call that needs approval is denied, with a message
    /// saying how to allow it.
    Unattended,
    /// An MCP tool answers (`--permission-prompt-tool mcp__server__tool`, as in Claude Code):
    /// it is called with `{tool_name, input, tool_use_id}` and answers with the JSON text
    /// `{"behavior":"allow","updatedInput":{...}}` or `{"behavior":"deny","message":"..."}`.
    PromptTool(String),
}

/// The session's permission state, shared between the running turn and the op loop so a mode
/// switch or an answer takes effect at once.
pub(crate) struct Permissions {
    policy: RwLock<Policy>,
    pending: Mutex<HashMap<String, oneshot::Sender<ApprovalAnswer>>>,
    approver: Approver,
    /// Where "always allow" answers are saved (`.keel/settings.local.json`).
    local_settings: Option<PathBuf>,
}

/// What the gate decided for one call.
pub(crate) enum Gate {
    /// Run it, with this input (an approval may have replaced it).
    Run(Value),
    /// Do not run it; the model is told `reason`.
    Refuse {
        /// Why, for the model and the user.
        reason: String,
    },
}

impl Permissions {
    pub(crate) fn new(policy: Policy, approver: Approver, local_settings: Option<PathBuf>) -> Self {
        Self {
            policy: RwLock::new(policy),
            pending: Mutex::new(HashMap::new()),
            approver,
            local_settings,
        }
    }

    pub(crate) fn mode(&self) -> PermissionMode {
        self.read().mode()
    }

    pub(crate) fn set_mode(&self, mode: PermissionMode) {
        self.write().set_mode(mode);
    }

    pub(crate) fn is_hidden(&self, tool: &str) -> bool {
        self.read().is_hidden(tool)
    }

    pub(crate) fn decide(
        &self,
        tool: &str,
        input: &Value,
        cwd: &std::path::Path,
        read_only: bool,
    ) -> keel_policy::Verdict {
        let call = ToolCall::new(tool, input, cwd).with_read_only(read_only);
        self.read().decide(&call)
    }

    /// Registers a question and returns where its answer will arrive.
    pub(crate) fn ask(&self, request_id: &str) -> oneshot::Receiver<ApprovalAnswer> {
        let (tx, rx) = oneshot::channel();
        lock(&self.pending).insert(request_id.to_string(), tx);
        rx
    }

    /// Delivers an answer; false if nobody is waiting for that request.
    pub(crate) fn answer(&self, request_id: &str, answer: ApprovalAnswer) -> bool {
        match lock(&self.pending).remove(request_id) {
            Some(waiting) => waiting.send(answer).is_ok(),
            None => false,
        }
    }

    /// Forgets a question that will not be answered (the run was interrupted).
    pub(crate) fn withdraw(&self, request_id: &str) {
        lock(&self.pending).remove(request_id);
    }

    pub(crate) fn approver(&self) -> &Approver {
        &self.approver
    }

    /// Adds "always allow" rules to this session and saves them for the project.
    pub(crate) fn allow_always(&self, rules: &[String]) -> Result<(), String> {
        let source = RuleSource::new(
            self.local_settings
                .as_ref()
                .map_or_else(|| "this session".to_string(), |p| p.display().to_string()),
            self.read()
                .working_dirs()
                .first()
                .cloned()
                .unwrap_or_default(),
        );
        let errors =
            self.write()
                .add_rules(RuleList::Allow, rules.iter().map(String::as_str), &source);
        if let Some(error) = errors.first() {
            return Err(error.to_string());
        }
        let Some(path) = &self.local_settings else {
            return Ok(());
        };
        for rule in rules {
            keel_config::change_file(
                path,
                "permissions.allow",
                keel_config::Change::Add(Value::String(rule.clone())),
            )
            .map_err(|e| format!("the rule works for this session but was not saved: {e}"))?;
        }
        Ok(())
    }

    /// Adds allow rules that last until [`Self::remove_rules_from`] takes them back (a skill's
    /// or command's `allowed-tools` for one run); nothing is saved. Returns the rules that did
    /// not parse, as messages.
    pub(crate) fn allow_for_now(&self, rules: &[String], source_name: &str) -> Vec<String> {
        let base = self
            .read()
            .working_dirs()
            .first()
            .cloned()
            .unwrap_or_default();
        let source = RuleSource::new(source_name, base);
        self.write()
            .add_rules(RuleList::Allow, rules.iter().map(String::as_str), &source)
            .into_iter()
            .map(|e| e.to_string())
            .collect()
    }

    /// Takes back the rules added under `source_name`.
    pub(crate) fn remove_rules_from(&self, source_name: &str) {
        self.write().remove_rules_from(source_name);
    }

    /// Every rule as (list, rule, where it comes from), for `/permissions`.
    pub(crate) fn listing(&self) -> Vec<(RuleList, String, String)> {
        self.read()
            .rules()
            .map(|(list, rule, source)| (list, rule.to_string(), source.name.clone()))
            .collect()
    }

    /// The working directories, the session's first.
    pub(crate) fn working_dirs(&self) -> Vec<PathBuf> {
        self.read().working_dirs().to_vec()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Policy> {
        match self.policy.read() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Policy> {
        match self.policy.write() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

/// The message a model gets when a call needed approval and nobody could give it.
pub(crate) fn unattended_refusal(tool: &str, reason: &str, suggestions: &[String]) -> String {
    let allow = match suggestions.first() {
        Some(rule) => format!("--allowedTools \"{rule}\""),
        None => format!("--allowedTools \"{tool}\""),
    };
    format!(
        "Permission to use {tool} was not granted: {reason} Nobody can approve it in this \
         non-interactive run. Tell the user what you wanted to do; they can allow it with \
         {allow}, a rule in .keel/settings.json, --permission-mode acceptEdits for file edits, \
         or --dangerously-skip-permissions to allow everything."
    )
}

/// Whether a decision lets the call run without asking.
pub(crate) fn allows(decision: Decision) -> bool {
    decision == Decision::Allow
}
