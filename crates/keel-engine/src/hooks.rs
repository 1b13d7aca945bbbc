//! Hooks at Claude Code's points of the loop. The hook runner (keel-policy) executes the
//! commands; this module decides when, with what input, and what the outcome changes.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use keel_policy::hooks::{HookContext, HookEnv, HookEvent, HookInput, HookOutcome, HookSet};
use keel_protocol::{Event, NoticeLevel};
use tokio_util::sync::CancellationToken;

use crate::Session;
use crate::emit::Emitter;

/// The user's hooks and what their commands need to know about the session.
pub struct HookSetup {
    /// The configured hooks.
    pub set: HookSet,
    /// The transcript file, passed to hooks as `transcript_path`.
    pub transcript_path: PathBuf,
    /// The project directory (`CLAUDE_PROJECT_DIR`).
    pub project_dir: PathBuf,
    /// Extra environment for hook commands (settings `env`).
    pub env: BTreeMap<String, String>,
}

/// A session's hooks, ready to run (cloned into subagents, whose calls they also see).
#[derive(Clone)]
pub(crate) struct Hooks {
    pub(crate) set: Arc<HookSet>,
    transcript_path: PathBuf,
    project_dir: PathBuf,
    env: BTreeMap<String, String>,
}

impl Hooks {
    pub(crate) fn new(setup: HookSetup) -> Self {
        Self {
            set: Arc::new(setup.set),
            transcript_path: setup.transcript_path,
            project_dir: setup.project_dir,
            env: setup.env,
        }
    }
}

impl Session {
    /// The context hook inputs are built from, as of now.
    pub(crate) fn hook_context(&self) -> Option<HookContext> {
        let hooks = self.hooks.as_ref()?;
        Some(HookContext {
            session_id: self.id.to_string(),
            transcript_path: hooks.transcript_path.clone(),
            cwd: self.tool_ctx.current_dir(),
            permission_mode: self.shared.permissions.mode(),
        })
    }

    /// Runs the hooks of one event (built by `input` from the session's context) and reports
    /// what they print for the user. `None` when no hook listens.
    pub(crate) async fn run_hooks(
        &self,
        event: HookEvent,
        input: impl FnOnce(&HookContext) -> HookInput,
        emitter: &Emitter,
        cancel: &CancellationToken,
    ) -> Option<HookOutcome> {
        let hooks = self.hooks.as_ref()?;
        if !hooks.set.has(event) {
            return None;
        }
        let context = self.hook_context()?;
        let env = HookEnv {
            cwd: self.tool_ctx.current_dir(),
            project_dir: hooks.project_dir.clone(),
            env: hooks.env.clone(),
            cancel: cancel.child_token(),
        };
        let shared = &self.shared;
        let outcome = hooks
            .set
            .run_with(&input(&context), &env, |callback, json| {
                shared.hook_replies.call(emitter, callback, json)
            })
            .await;
        for notice in outcome.notices() {
            emitter.emit(Event::Notice {
                level: if outcome.errors.is_empty() {
                    NoticeLevel::Info
                } else {
                    NoticeLevel::Warning
                },
                message: notice,
            });
        }
        Some(outcome)
    }
}

/// Text a hook adds to the model's context, marked so the model knows where it came from.
pub(crate) fn context_block(event: HookEvent, text: &str) -> String {
    format!(
        "<system-reminder>\n{} hook additional context:\n{}\n</system-reminder>",
        event.as_str(),
        text.trim_end()
    )
}
