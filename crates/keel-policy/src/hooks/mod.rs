//! Hooks: the user's shell commands that run at fixed points of a session, in Claude Code's
//! format and with its semantics, so a `.claude/settings.json` with hooks works unchanged.
//!
//! Settings name an event (`PreToolUse`, `Stop`, …), a matcher and commands. When the event
//! fires, every matching command runs at the same time, each in its own process group with
//! the event's JSON on stdin ([`HookContext`] builds it with Claude Code's field names). What
//! the commands answer — exit code 2, or a JSON object on stdout — is merged into one typed
//! [`HookOutcome`] that the engine applies.
//!
//! Matchers: for `PreToolUse`/`PostToolUse` the matcher is compared with the tool name, for
//! `SessionStart` with the `source`, for `PreCompact` with the `trigger`, for `SessionEnd`
//! with the `reason` and for `Notification` with the `notification_type`; the other events
//! ignore it. Empty or `*` matches everything; a matcher made only of letters, digits, `_`,
//! `-` and `|` is a list of exact names (`Edit|Write` does not match `NotebookEdit`);
//! anything else is an unanchored regular expression (`mcp__.*`, `^Notebook`). These are
//! Claude Code's rules.
//!
//! A hook never takes the session down: one that cannot start, crashes, hangs past its
//! timeout (it is killed with its whole process group) or prints malformed JSON becomes a
//! non-blocking [`HookError`] the user is told about.
//!
//! Besides commands, a set can hold [`CallbackHook`]s: hooks whose code lives in the
//! frontend (the Agent SDK's hook callbacks). They are matched, timed and merged exactly like
//! commands; [`HookSet::run_with`] is told how to reach them, and their JSON answer means
//! what a command's JSON stdout means.

mod input;
mod matcher;
mod outcome;
mod process;

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use keel_config::{HookMatcher, LoadedSettings};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

pub use input::{CompactTrigger, HookContext, HookInput, SessionEndReason, SessionStartSource};
pub use outcome::{HookError, HookFailure, HookOutcome, HookPermission, HookText, StopSession};

use matcher::Matcher;
use outcome::Merger;

/// Seconds a hook may run when its settings give no `timeout` (Claude Code's default).
pub const DEFAULT_TIMEOUT_SECS: u64 = 60;

/// The points in a session where hooks run, named as Claude Code names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HookEvent {
    /// Before a tool call runs (after the model asked for it); can deny, ask, allow or
    /// rewrite the call.
    PreToolUse,
    /// After a tool call returned; can feed a reason back to the model.
    PostToolUse,
    /// When the user submits a prompt, before the model sees it; can block it or add context.
    UserPromptSubmit,
    /// When keel notifies the user (it needs a permission answer, or has been idle).
    Notification,
    /// When the main agent is about to end its turn; can make it continue.
    Stop,
    /// When a subagent is about to finish; can make it continue.
    SubagentStop,
    /// Before the conversation is compacted.
    PreCompact,
    /// When a session starts, resumes, is cleared or was compacted; can add context.
    SessionStart,
    /// When a session ends.
    SessionEnd,
}

impl HookEvent {
    /// Every event, in the order Claude Code documents them.
    pub const ALL: [HookEvent; 9] = [
        HookEvent::PreToolUse,
        HookEvent::PostToolUse,
        HookEvent::UserPromptSubmit,
        HookEvent::Notification,
        HookEvent::Stop,
        HookEvent::SubagentStop,
        HookEvent::PreCompact,
        HookEvent::SessionStart,
        HookEvent::SessionEnd,
    ];

    /// The name used in settings and in `hook_event_name`.
    pub fn as_str(self) -> &'static str {
        match self {
            HookEvent::PreToolUse => "PreToolUse",
            HookEvent::PostToolUse => "PostToolUse",
            HookEvent::UserPromptSubmit => "UserPromptSubmit",
            HookEvent::Notification => "Notification",
            HookEvent::Stop => "Stop",
            HookEvent::SubagentStop => "SubagentStop",
            HookEvent::PreCompact => "PreCompact",
            HookEvent::SessionStart => "SessionStart",
            HookEvent::SessionEnd => "SessionEnd",
        }
    }

    /// The input field a matcher is compared with, or `None` when the event ignores matchers.
    pub fn matcher_field(self) -> Option<&'static str> {
        match self {
            HookEvent::PreToolUse | HookEvent::PostToolUse => Some("tool_name"),
            HookEvent::SessionStart => Some("source"),
            HookEvent::PreCompact => Some("trigger"),
            HookEvent::SessionEnd => Some("reason"),
            HookEvent::Notification => Some("notification_type"),
            HookEvent::UserPromptSubmit | HookEvent::Stop | HookEvent::SubagentStop => None,
        }
    }

    /// Whether a hook can block what the event is about (exit code 2 or `decision: block`);
    /// for the others exit code 2 is an error shown to the user.
    pub fn can_block(self) -> bool {
        matches!(
            self,
            HookEvent::PreToolUse
                | HookEvent::PostToolUse
                | HookEvent::UserPromptSubmit
                | HookEvent::Stop
                | HookEvent::SubagentStop
        )
    }

    /// Whether plain (non-JSON) stdout of a successful hook is added to the model's context
    /// (Claude Code does this for these two events; elsewhere it is only shown in verbose mode).
    pub fn stdout_is_context(self) -> bool {
        matches!(self, HookEvent::UserPromptSubmit | HookEvent::SessionStart)
    }
}

impl fmt::Display for HookEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A hook event name that is not one of Claude Code's.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown hook event `{0}`; valid events are PreToolUse, PostToolUse, UserPromptSubmit, \
     Notification, Stop, SubagentStop, PreCompact, SessionStart and SessionEnd"
)]
pub struct UnknownHookEvent(pub String);

impl FromStr for HookEvent {
    type Err = UnknownHookEvent;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        HookEvent::ALL
            .into_iter()
            .find(|event| event.as_str() == name)
            .ok_or_else(|| UnknownHookEvent(name.to_string()))
    }
}

/// Where hooks run and what they see besides their JSON input.
#[derive(Clone, Debug)]
pub struct HookEnv {
    /// The directory hooks run in: the session's working directory, as in Claude Code
    /// (the project directory is used when it no longer exists).
    pub cwd: PathBuf,
    /// The project root, exported as `CLAUDE_PROJECT_DIR` and `KEEL_PROJECT_DIR`.
    pub project_dir: PathBuf,
    /// Extra environment variables (the settings' `env`), on top of keel's own environment.
    pub env: BTreeMap<String, String>,
    /// Cancelling it kills every running hook (their outcome reports them as cancelled).
    pub cancel: CancellationToken,
}

impl HookEnv {
    /// Hooks running in `project_dir`, with no extra variables and a fresh cancellation token.
    pub fn new(project_dir: impl Into<PathBuf>) -> Self {
        let project_dir = project_dir.into();
        Self {
            cwd: project_dir.clone(),
            project_dir,
            env: BTreeMap::new(),
            cancel: CancellationToken::new(),
        }
    }
}

/// One configured hook as `keel hooks list` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HookListing {
    /// The event it runs on.
    pub event: HookEvent,
    /// The matcher as written (empty = all).
    pub matcher: String,
    /// The shell command.
    pub command: String,
    /// How long it may run before it is killed.
    pub timeout: Duration,
    /// The settings file it came from, when known.
    pub source: Option<String>,
}

/// One command of a matcher group.
#[derive(Clone, Debug)]
struct HookSpec {
    command: String,
    timeout: Duration,
}

/// A hook the frontend runs (an Agent SDK callback registered in `initialize`): keel decides
/// when it runs and what its answer means, the frontend runs the code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallbackHook {
    /// The frontend's id for it (`hook_0`), echoed when keel asks for it to run.
    pub id: String,
    /// How long keel waits for its answer before counting it as failed.
    pub timeout: Duration,
    /// Whether a failure (an error, a timeout, an answer keel cannot use) blocks what the
    /// event is about, as exit code 2 would (`onFailure: "block"`); otherwise a failure is
    /// reported and counts as no decision.
    pub block_on_failure: bool,
}

/// What a [`CallbackHook`] answered.
#[derive(Clone, Debug, PartialEq)]
pub enum CallbackReply {
    /// Its output: a JSON object read like a command hook's JSON stdout.
    Output(Value),
    /// It failed, or its answer could not be delivered; the text says why.
    Failed(String),
}

/// A matcher with its commands (and callbacks), in settings order.
#[derive(Clone, Debug)]
struct Group {
    event: HookEvent,
    matcher: Matcher,
    matcher_text: String,
    source: Option<String>,
    hooks: Vec<HookSpec>,
    callbacks: Vec<CallbackHook>,
}

/// Every hook of a session, compiled from settings; runs the ones an event selects.
#[derive(Clone, Debug, Default)]
pub struct HookSet {
    groups: Vec<Group>,
    disabled: bool,
}

impl HookSet {
    /// Compiles the merged `hooks` settings (no file names in listings). Returns the set and
    /// warnings for hooks that will never run (invalid matcher, non-command type, empty
    /// command). Unknown event names are skipped without a warning: loading settings already
    /// warns about them with the file name. With `disable_all` (`disableAllHooks`) nothing
    /// runs, but [`HookSet::list`] still shows what is configured.
    pub fn from_settings(
        hooks: &BTreeMap<String, Vec<HookMatcher>>,
        disable_all: bool,
    ) -> (HookSet, Vec<String>) {
        Self::from_sources([(None, hooks)], disable_all)
    }

    /// Like [`HookSet::from_settings`], from several settings files in precedence order (lowest
    /// first), so listings and warnings name the file each hook came from.
    pub fn from_sources<'a>(
        sources: impl IntoIterator<Item = (Option<&'a str>, &'a BTreeMap<String, Vec<HookMatcher>>)>,
        disable_all: bool,
    ) -> (HookSet, Vec<String>) {
        let mut set = HookSet {
            groups: Vec::new(),
            disabled: disable_all,
        };
        let mut warnings = Vec::new();
        for (source, hooks) in sources {
            for (name, matchers) in hooks {
                let Ok(event) = name.parse::<HookEvent>() else {
                    continue;
                };
                for (i, entry) in matchers.iter().enumerate() {
                    let at = match source {
                        Some(source) => format!("{source}: hooks.{event}[{i}]"),
                        None => format!("hooks.{event}[{i}]"),
                    };
                    if let Some(group) = compile_group(event, entry, source, &at, &mut warnings) {
                        set.groups.push(group);
                    }
                }
            }
        }
        (set, warnings)
    }

    /// Compiles the hooks of every loaded settings layer, naming each file in listings and
    /// warnings; `disableAllHooks` comes from the merged settings.
    pub fn from_loaded(settings: &LoadedSettings) -> (HookSet, Vec<String>) {
        let origins: Vec<String> = settings.layers.iter().map(|l| l.origin()).collect();
        let sources = settings
            .layers
            .iter()
            .zip(&origins)
            .map(|(layer, origin)| (Some(origin.as_str()), &layer.settings.hooks));
        Self::from_sources(
            sources,
            settings.effective.disable_all_hooks.unwrap_or(false),
        )
    }

    /// Whether `disableAllHooks` turned every hook off.
    pub fn is_disabled(&self) -> bool {
        self.disabled
    }

    /// Adds frontend callbacks for `event` under `matcher` (Claude Code's matcher syntax; empty
    /// matches everything). `disableAllHooks` does not turn these off: the program that
    /// registered them is running the session. Fails, naming the matcher, when it is not a
    /// valid regular expression.
    pub fn add_callbacks(
        &mut self,
        event: HookEvent,
        matcher: &str,
        callbacks: Vec<CallbackHook>,
    ) -> Result<(), String> {
        let compiled = if event.matcher_field().is_some() {
            Matcher::compile(matcher).map_err(|error| {
                format!(
                    "{event} hook matcher `{matcher}` is not a valid regular expression ({error}); \
                     use tool names like `Edit|Write`, a pattern like `mcp__.*`, or none for all"
                )
            })?
        } else {
            Matcher::All
        };
        if callbacks.is_empty() {
            return Ok(());
        }
        self.groups.push(Group {
            event,
            matcher: compiled,
            matcher_text: matcher.to_string(),
            source: Some("Agent SDK (initialize)".to_string()),
            hooks: Vec::new(),
            callbacks,
        });
        Ok(())
    }

    /// Whether any hook would run for `event` (whatever its matcher), so callers can skip
    /// building the input when none would.
    pub fn has(&self, event: HookEvent) -> bool {
        self.groups.iter().any(|g| {
            g.event == event && ((!self.disabled && !g.hooks.is_empty()) || !g.callbacks.is_empty())
        })
    }

    /// Every configured hook, in settings order, for `keel hooks list`; frontend callbacks
    /// are listed as `callback <id>`.
    pub fn list(&self) -> Vec<HookListing> {
        self.groups
            .iter()
            .flat_map(|group| {
                let commands = group.hooks.iter().map(|hook| HookListing {
                    event: group.event,
                    matcher: group.matcher_text.clone(),
                    command: hook.command.clone(),
                    timeout: hook.timeout,
                    source: group.source.clone(),
                });
                let callbacks = group.callbacks.iter().map(|callback| HookListing {
                    event: group.event,
                    matcher: group.matcher_text.clone(),
                    command: format!("callback {}", callback.id),
                    timeout: callback.timeout,
                    source: group.source.clone(),
                });
                commands.chain(callbacks)
            })
            .collect()
    }

    /// Runs every command hook that `input`'s event and matcher value select, all at once, and
    /// merges what they answer. Identical commands run once (as in Claude Code). Dropping the
    /// returned future kills every hook still running. Callback hooks are left out; use
    /// [`HookSet::run_with`] to run them too.
    pub async fn run(&self, input: &HookInput, env: &HookEnv) -> HookOutcome {
        self.run_with(input, env, |_, _| async {
            CallbackReply::Failed("nobody can run callback hooks here".to_string())
        })
        .await
    }

    /// Like [`HookSet::run`], and also asks `call` to run every selected callback hook (with
    /// the hook and the input JSON), at the same time as the commands. A callback that does
    /// not answer within its timeout, or is still running when `env.cancel` fires, counts as
    /// failed or cancelled. Commands' answers are merged first, then callbacks', each in the
    /// order they were configured.
    pub async fn run_with<F, Fut>(&self, input: &HookInput, env: &HookEnv, call: F) -> HookOutcome
    where
        F: Fn(CallbackHook, Value) -> Fut,
        Fut: Future<Output = CallbackReply>,
    {
        let event = input.event();
        let target = input.match_target();
        let matching = || {
            self.groups
                .iter()
                .filter(move |g| g.event == event && g.matcher.matches(target))
        };
        let mut seen = HashSet::new();
        let selected: Vec<&HookSpec> = if self.disabled {
            Vec::new()
        } else {
            matching()
                .flat_map(|g| g.hooks.iter())
                .filter(|hook| seen.insert(hook.command.as_str()))
                .collect()
        };
        let mut seen_callbacks = HashSet::new();
        let callbacks: Vec<&CallbackHook> = matching()
            .flat_map(|g| g.callbacks.iter())
            .filter(|callback| seen_callbacks.insert(callback.id.as_str()))
            .collect();
        if selected.is_empty() && callbacks.is_empty() {
            return HookOutcome::new(event);
        }
        let stdin = input.json().to_string().into_bytes();
        let commands = futures::future::join_all(
            selected
                .iter()
                .map(|hook| process::run_one(&hook.command, hook.timeout, &stdin, env)),
        );
        let answers = futures::future::join_all(callbacks.iter().map(|callback| {
            let answer = call((*callback).clone(), input.json().clone());
            let limit = callback.timeout;
            async move {
                tokio::select! {
                    () = env.cancel.cancelled() => None,
                    answer = tokio::time::timeout(limit, answer) => Some(answer.unwrap_or_else(|_| {
                        CallbackReply::Failed(format!(
                            "did not answer within {} s (raise the matcher's timeout if it needs \
                             longer)",
                            limit.as_secs_f64()
                        ))
                    })),
                }
            }
        }));
        let (runs, answers) = futures::future::join(commands, answers).await;
        let mut merger = Merger::new(event);
        for (hook, run) in selected.iter().zip(runs) {
            tracing::debug!(
                event = event.as_str(),
                command = %hook.command,
                status = ?run.status,
                elapsed_ms = run.elapsed.as_millis() as u64,
                "hook finished"
            );
            merger.absorb(&hook.command, hook.timeout, run);
        }
        for (callback, answer) in callbacks.iter().zip(answers) {
            merger.absorb_callback(callback, answer);
        }
        merger.finish()
    }
}

/// Compiles one matcher entry of the settings, or explains (in `warnings`) why it never runs.
fn compile_group(
    event: HookEvent,
    entry: &HookMatcher,
    source: Option<&str>,
    at: &str,
    warnings: &mut Vec<String>,
) -> Option<Group> {
    let matcher = if event.matcher_field().is_some() {
        match Matcher::compile(&entry.matcher) {
            Ok(matcher) => matcher,
            Err(error) => {
                warnings.push(format!(
                    "{at}: matcher `{}` is not a valid regular expression ({error}); the \
                     {event} hooks under it never run. Fix the pattern (e.g. `Edit|Write`, \
                     `mcp__.*`, or `*` for all)",
                    entry.matcher
                ));
                return None;
            }
        }
    } else {
        Matcher::All
    };
    let mut hooks = Vec::new();
    for (j, hook) in entry.hooks.iter().enumerate() {
        if hook.kind != "command" {
            warnings.push(format!(
                "{at}.hooks[{j}]: hook type {:?} is not supported (keel runs \"command\" \
                 hooks); it never runs",
                hook.kind
            ));
            continue;
        }
        if hook.command.trim().is_empty() {
            warnings.push(format!(
                "{at}.hooks[{j}]: the command is empty; it never runs"
            ));
            continue;
        }
        let seconds = match hook.timeout {
            Some(0) => {
                warnings.push(format!(
                    "{at}.hooks[{j}]: timeout 0 would kill the hook at once; using the \
                     default of {DEFAULT_TIMEOUT_SECS} seconds"
                ));
                DEFAULT_TIMEOUT_SECS
            }
            Some(seconds) => seconds,
            None => DEFAULT_TIMEOUT_SECS,
        };
        hooks.push(HookSpec {
            command: hook.command.clone(),
            timeout: Duration::from_secs(seconds),
        });
    }
    if hooks.is_empty() {
        return None;
    }
    Some(Group {
        event,
        matcher,
        matcher_text: entry.matcher.clone(),
        source: source.map(str::to_string),
        hooks,
        callbacks: Vec::new(),
    })
}
