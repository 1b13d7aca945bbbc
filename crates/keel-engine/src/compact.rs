//! Keeping the conversation inside the context window, in layers: old tool outputs are
//! cleared once the conversation passes half the window (micro-compaction); near the limit the
//! conversation is replaced by a summary (or by the session notes kept current in the
//! background) plus the recent turns; `/compact` does the same on demand, and a "prompt too
//! long" error triggers it and a retry. The transformations live in keel-context; this module
//! decides when, makes the model calls and reports what happened.

use std::path::{Path, PathBuf};

use futures::StreamExt;
use keel_config::MemoryLoader;
use keel_context::{
    ContextAction, ContextPolicy, MicroOptions, REREAD_FILES, SessionNotes, TokenCounter,
    choose_kept_tail, compacted_conversation, compacted_from_notes, estimate_messages,
    estimate_request, micro_compact, recent_files, render_nested_memory, summary_request,
    summary_request_within, tail_for_notes, update_request,
};
use keel_model::{MessageAccumulator, ModelClient, ModelError, ModelRequest};
use keel_policy::hooks::{CompactTrigger, HookEvent};
use keel_protocol::{Event, Message, NoticeLevel, PlanItem, Usage};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::emit::{Emitter, lock};
use crate::{RunTally, Session};

/// What a session needs to manage its context.
#[derive(Default)]
pub struct ContextSetup {
    /// Fraction of the window at which to compact (settings `autoCompactThreshold`).
    pub auto_threshold: Option<f64>,
    /// Where the session's running notes are kept (in the session's folder), if anywhere.
    pub notes_path: Option<PathBuf>,
    /// Finds memory files in subdirectories the tools touch.
    pub memory: Option<MemoryLoader>,
}

/// The longest summary the summary call may write.
const SUMMARY_MAX_TOKENS: u32 = 8_192;

/// The result of a background notes update: the notes, how many messages they cover, and the
/// call's usage.
type NotesUpdate = Result<(SessionNotes, usize, Usage), String>;

/// A session's context state.
pub(crate) struct Context {
    counter: TokenCounter,
    policy: ContextPolicy,
    /// The raw estimate of the last request sent, to calibrate against its usage.
    last_estimate: u64,
    notes_path: Option<PathBuf>,
    notes: Option<SessionNotes>,
    /// How many messages the notes cover.
    notes_through: usize,
    notes_task: Option<JoinHandle<NotesUpdate>>,
    /// Set after a notes update failed: the session stops trying (and warning) rather than
    /// paying for a failing call at every turn; compaction falls back to a summary.
    notes_failed: bool,
    /// Set once the user was told that instructions and tool definitions alone fill the window.
    warned_fixed_overhead: bool,
    pub(crate) memory: Option<std::sync::Mutex<MemoryLoader>>,
}

impl Context {
    pub(crate) fn new(window: u64, setup: ContextSetup) -> Self {
        let notes = setup
            .notes_path
            .as_deref()
            .and_then(|p| SessionNotes::load(p).ok().flatten());
        Self {
            counter: TokenCounter::new(),
            policy: ContextPolicy::new(window, setup.auto_threshold),
            last_estimate: 0,
            notes_path: setup.notes_path,
            notes,
            notes_through: 0,
            notes_task: None,
            notes_failed: false,
            warned_fixed_overhead: false,
            memory: setup.memory.map(std::sync::Mutex::new),
        }
    }

    /// Calibrates the token estimate with the usage the API reported for the last request.
    pub(crate) fn observe(&mut self, usage: &Usage) {
        if self.last_estimate > 0 {
            self.counter.observe(self.last_estimate, usage);
        }
    }
}

impl Drop for Context {
    fn drop(&mut self) {
        // The notes call has no one to report to once the session is gone.
        if let Some(task) = self.notes_task.take() {
            task.abort();
        }
    }
}

impl Session {
    /// Before a model request: clears old tool outputs or compacts the conversation when it
    /// has grown past the policy's limits.
    pub(crate) async fn manage_context(
        &mut self,
        emitter: &Emitter,
        cancel: &CancellationToken,
        tally: &mut RunTally,
    ) {
        self.collect_notes(emitter);
        let tools = self.tools.specs();
        let raw = estimate_request(&self.config.system, &tools, &self.messages);
        let used = self.context.counter.calibrate(raw);
        let action = self.context.policy.action(used);
        if matches!(action, ContextAction::Nothing) {
            // The usual case: nothing changes, so the estimate just made is the request's.
            self.context.last_estimate = raw;
            return;
        }
        let fixed = estimate_request(&self.config.system, &tools, &[]);
        let conversation = used.saturating_sub(self.context.counter.calibrate(fixed));
        match action {
            ContextAction::Nothing => {}
            // The instructions and tool definitions fill the window by themselves: summarising a
            // conversation this short cannot make room, so say what can instead (once).
            ContextAction::MicroCompact | ContextAction::Compact
                if self.messages.len() < 3 || conversation < used / 4 =>
            {
                if !self.context.warned_fixed_overhead {
                    self.context.warned_fixed_overhead = true;
                    emitter.emit(Event::Notice {
                        level: NoticeLevel::Warning,
                        message: format!(
                            "the system prompt and tool definitions alone take about {} of the \
                             model's {}-token context window, so compaction cannot make room; \
                             use a model with a larger window (or set contextWindow if the \
                             window is larger than keel assumes), offer fewer tools with \
                             --tools, or start fewer MCP servers",
                            self.context.counter.calibrate(fixed),
                            self.context.policy.window
                        ),
                    });
                }
            }
            ContextAction::MicroCompact => {
                let budget = self
                    .context
                    .counter
                    .to_raw(self.context.policy.micro_limit())
                    .saturating_sub(fixed);
                let result = micro_compact(&self.messages, budget, &MicroOptions::default());
                if result.cleared > 0 {
                    self.messages = result.messages;
                    emitter.emit(Event::Notice {
                        level: NoticeLevel::Info,
                        message: format!(
                            "cleared {} old tool output(s) to save context (~{} tokens)",
                            result.cleared,
                            self.context.counter.calibrate(result.tokens_saved)
                        ),
                    });
                }
            }
            ContextAction::Compact => {
                if let Err(problem) = self
                    .compact("auto", None, emitter, cancel, Some(tally))
                    .await
                {
                    emitter.emit(Event::Notice {
                        level: NoticeLevel::Warning,
                        message: format!("could not compact the conversation: {problem}"),
                    });
                }
            }
        }
        self.context.last_estimate = estimate_request(&self.config.system, &tools, &self.messages);
    }

    /// Replaces the older part of the conversation by a summary (or the session notes, when
    /// they are current and no instructions were given), keeping the recent turns, the plan and
    /// the most recently touched files. `trigger` is `auto` or `manual`.
    pub(crate) async fn compact(
        &mut self,
        trigger: &str,
        instructions: Option<&str>,
        emitter: &Emitter,
        cancel: &CancellationToken,
        tally: Option<&mut RunTally>,
    ) -> Result<(), String> {
        let hook_trigger = if trigger == "manual" {
            CompactTrigger::Manual
        } else {
            CompactTrigger::Auto
        };
        self.run_hooks(
            HookEvent::PreCompact,
            |c| c.pre_compact(hook_trigger, instructions),
            emitter,
            cancel,
        )
        .await;
        // An update of the notes already under way is closer to done than a new summary call.
        if let Some(mut task) = self.context.notes_task.take() {
            tokio::select! {
                biased;
                () = cancel.cancelled() => self.context.notes_task = Some(task),
                joined = &mut task => self.apply_notes(joined, emitter),
            }
        }
        let tools = self.tools.specs();
        let tokens_before = self.context.counter.calibrate(estimate_request(
            &self.config.system,
            &tools,
            &self.messages,
        ));
        let budget = self
            .context
            .counter
            .to_raw(self.context.policy.kept_tail_budget());
        let plan = emitter.plan();
        tracing::debug!(
            notes_through = self.context.notes_through,
            messages = self.messages.len(),
            budget,
            "compacting"
        );
        // With notes, compaction continues from them; notes that fell behind are brought up to
        // date first (an incremental update, cheaper than summarising everything again).
        let usable_notes = instructions.is_none()
            && !self.context.notes_failed
            && self.context.notes.as_ref().is_some_and(|n| !n.is_empty());
        if usable_notes
            && tail_for_notes(&self.messages, self.context.notes_through, budget).is_none()
            && let Err(problem) = self.refresh_notes_now(cancel).await
        {
            self.context.notes_failed = true;
            emitter.emit(Event::Notice {
                level: NoticeLevel::Warning,
                message: format!(
                    "the session notes could not be updated ({problem}); summarising instead"
                ),
            });
        }
        let from_notes = match &self.context.notes {
            Some(notes) if usable_notes && !self.context.notes_failed => {
                tail_for_notes(&self.messages, self.context.notes_through, budget)
                    .map(|start| (notes.clone(), start))
            }
            _ => None,
        };
        // Re-read files get the same share of the window as the kept turns.
        let reread_chars = usize::try_from(budget.saturating_mul(4)).unwrap_or(usize::MAX);
        let new = if let Some((notes, start)) = from_notes {
            let reread = reread(&self.messages[..start], reread_chars);
            compacted_from_notes(&notes, &self.messages[start..], &plan, reread)
        } else {
            let start = choose_kept_tail(&self.messages, budget);
            if start == 0 {
                return Err("the conversation has nothing old enough to summarise".into());
            }
            let summary = self
                .summarize(&self.messages[..start], &plan, instructions, cancel, tally)
                .await?;
            let reread = reread(&self.messages[..start], reread_chars);
            compacted_conversation(&summary, &self.messages[start..], &plan, reread)
        };
        // A kept tail of large tool outputs can still be over the line: clear those too, so
        // the next request does not ask for another summary at once.
        let fixed = estimate_request(&self.config.system, &tools, &[]);
        let micro_budget = self
            .context
            .counter
            .to_raw(self.context.policy.micro_limit())
            .saturating_sub(fixed);
        let new = if estimate_messages(&new) > micro_budget {
            micro_compact(&new, micro_budget, &MicroOptions::default()).messages
        } else {
            new
        };
        let tokens_after =
            self.context
                .counter
                .calibrate(estimate_request(&self.config.system, &tools, &new));
        self.messages = new.clone();
        self.context.notes_through = self.messages.len().min(1);
        emitter.emit(Event::Compacted {
            trigger: trigger.to_string(),
            tokens_before,
            tokens_after,
            messages: new,
        });
        Ok(())
    }

    /// Brings the session notes up to date now, covering every message.
    async fn refresh_notes_now(&mut self, cancel: &CancellationToken) -> Result<(), String> {
        let (system, messages) = update_request(
            self.context.notes.as_ref(),
            &self.messages[self.context.notes_through.min(self.messages.len())..],
        );
        let (text, _usage) = self
            .complete_text(system, messages, cancel)
            .await
            .map_err(|e| e.to_string())?;
        let notes = SessionNotes::parse(&text);
        if notes.is_empty() {
            return Err("the notes update came back empty".into());
        }
        if let Some(path) = &self.context.notes_path {
            notes.save(path).map_err(|e| e.to_string())?;
        }
        self.context.notes = Some(notes);
        self.context.notes_through = self.messages.len();
        Ok(())
    }

    /// Asks the model for a summary of `messages`; a summary request that is itself too long
    /// is retried with the transcript cut to half the window.
    async fn summarize(
        &self,
        messages: &[Message],
        plan: &[PlanItem],
        instructions: Option<&str>,
        cancel: &CancellationToken,
        tally: Option<&mut RunTally>,
    ) -> Result<String, String> {
        let (system, request) = summary_request(messages, plan, instructions);
        let first = self.complete_text(system, request, cancel).await;
        let (text, usage) = match first {
            Err(error) if error.is_prompt_too_long() => {
                let (system, request) = summary_request_within(
                    messages,
                    plan,
                    instructions,
                    self.context.policy.window / 2,
                );
                self.complete_text(system, request, cancel)
                    .await
                    .map_err(|e| e.to_string())?
            }
            other => other.map_err(|e| e.to_string())?,
        };
        if let Some(tally) = tally {
            tally.usage.add(&usage);
            let model = lock(&self.shared.model).clone();
            tally.cost_usd += self.config.pricing.cost(&model, &usage).unwrap_or(0.0);
        }
        if text.trim().is_empty() {
            return Err("the model returned an empty summary".into());
        }
        Ok(text)
    }

    /// One tool-less model call, with the session's retry policy; returns the answer's text.
    async fn complete_text(
        &self,
        system: String,
        messages: Vec<Message>,
        cancel: &CancellationToken,
    ) -> Result<(String, Usage), ModelError> {
        let request = ModelRequest {
            model: lock(&self.shared.model).clone(),
            system: vec![system],
            messages,
            tools: Vec::new(),
            max_tokens: SUMMARY_MAX_TOKENS.min(self.config.max_tokens),
            thinking: None,
            cache: false,
            server_tools: Vec::new(),
        };
        let mut attempt = 0;
        loop {
            let result = tokio::select! {
                biased;
                () = cancel.cancelled() => return Err(ModelError::Request("interrupted".into())),
                result = text_of(self.client.as_ref(), &request) => result,
            };
            match result {
                Err(error) => {
                    let Some(retry) = self.config.retry.decide(attempt + 1, &error) else {
                        return Err(error);
                    };
                    attempt += 1;
                    tokio::select! {
                        biased;
                        () = cancel.cancelled() => return Err(error),
                        () = tokio::time::sleep(retry.delay) => {}
                    }
                }
                ok => return ok,
            }
        }
    }

    /// After a model turn: starts a background update of the session notes when enough has
    /// happened since they were written.
    pub(crate) fn maybe_update_notes(&mut self, emitter: &Emitter) {
        self.collect_notes(emitter);
        let Some(path) = self.context.notes_path.clone() else {
            return;
        };
        if self.context.notes_failed
            || self.context.notes_task.is_some()
            || self.context.notes_through > self.messages.len()
        {
            return;
        }
        let added = estimate_messages(&self.messages[self.context.notes_through..]);
        // Compacting from the notes needs what they do not cover to fit in the kept tail (a
        // tenth of the window), so they are refreshed at half that.
        let threshold = (self.context.policy.kept_tail_budget() / 2).max(500);
        if self.context.counter.calibrate(added) < threshold {
            return;
        }
        let (system, messages) = update_request(
            self.context.notes.as_ref(),
            &self.messages[self.context.notes_through..],
        );
        let through = self.messages.len();
        let client = self.client.clone();
        let request = ModelRequest {
            model: lock(&self.shared.model).clone(),
            system: vec![system],
            messages,
            tools: Vec::new(),
            max_tokens: SUMMARY_MAX_TOKENS.min(self.config.max_tokens),
            thinking: None,
            cache: false,
            server_tools: Vec::new(),
        };
        self.context.notes_task = Some(tokio::spawn(async move {
            let (text, usage) = text_of(client.as_ref(), &request)
                .await
                .map_err(|e| e.to_string())?;
            let notes = SessionNotes::parse(&text);
            if notes.is_empty() {
                return Err("the notes update came back empty".into());
            }
            notes.save(&path).map_err(|e| e.to_string())?;
            Ok((notes, through, usage))
        }));
    }

    /// Takes the result of a finished notes update, if there is one.
    fn collect_notes(&mut self, emitter: &Emitter) {
        let finished = self
            .context
            .notes_task
            .as_ref()
            .is_some_and(|task| task.is_finished());
        if !finished {
            return;
        }
        let Some(task) = self.context.notes_task.take() else {
            return;
        };
        // A finished task's output is ready; polling it once cannot block.
        if let Some(joined) = futures::FutureExt::now_or_never(task) {
            self.apply_notes(joined, emitter);
        }
    }

    /// Takes in the outcome of a notes update.
    fn apply_notes(
        &mut self,
        joined: Result<NotesUpdate, tokio::task::JoinError>,
        emitter: &Emitter,
    ) {
        match joined {
            Ok(Ok((notes, through, _usage))) => {
                self.context.notes = Some(notes);
                // A compaction since the request started makes `through` meaningless.
                if through <= self.messages.len() {
                    self.context.notes_through = through;
                }
            }
            Ok(Err(problem)) => {
                self.context.notes_failed = true;
                emitter.emit(Event::Notice {
                    level: NoticeLevel::Warning,
                    message: format!(
                        "the session notes could not be updated ({problem}); compaction will \
                         summarise instead"
                    ),
                });
            }
            Err(_) => {}
        }
    }

    /// Memory files of subdirectories a tool call touched for the first time, as text to add
    /// to its result (the system prompt stays as it is, so its cache holds).
    pub(crate) fn nested_memory(&self, tool: &str, input: &serde_json::Value) -> Option<String> {
        let loader = self.context.memory.as_ref()?;
        let key = match tool {
            "Read" | "Edit" | "Write" | "MultiEdit" => "file_path",
            "NotebookEdit" => "notebook_path",
            "Glob" | "Grep" | "LS" => "path",
            _ => return None,
        };
        let path = input.get(key)?.as_str()?;
        let path = self.tool_ctx.resolve_path(path);
        let found = lock(loader).files_for_path(&path);
        render_nested_memory(&found.files)
    }
}

/// The current contents of the files most recently touched in `messages`, for the model to
/// see again after a compaction, within `budget` characters in all (a file that does not fit
/// is cut to what is left).
fn reread(messages: &[Message], budget: usize) -> Vec<(PathBuf, String)> {
    let mut left = budget;
    let mut files = Vec::new();
    for path in recent_files(messages, REREAD_FILES) {
        if left < 200 {
            break;
        }
        let Some(mut text) = read_small(&path) else {
            continue;
        };
        if text.len() > left {
            let cut = (0..=left)
                .rev()
                .find(|i| text.is_char_boundary(*i))
                .unwrap_or(0);
            text.truncate(cut);
            text.push_str("\n[... cut; Read the file for the rest]");
        }
        left = left.saturating_sub(text.len());
        files.push((path, text));
    }
    files
}

fn read_small(path: &Path) -> Option<String> {
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_file() || meta.len() > 1_000_000 {
        return None;
    }
    std::fs::read_to_string(path).ok()
}

/// Streams one request and returns the answer's text and usage.
async fn text_of(
    client: &dyn ModelClient,
    request: &ModelRequest,
) -> Result<(String, Usage), ModelError> {
    let mut stream = client.stream(request).await?;
    let mut accumulator = MessageAccumulator::new();
    while let Some(event) = stream.next().await {
        let event = event?;
        let stop = matches!(event, keel_model::StreamEvent::MessageStop);
        accumulator.push(&event);
        if stop {
            break;
        }
    }
    if !accumulator.is_complete() {
        return Err(ModelError::StreamEnded);
    }
    let message = accumulator.finish().message;
    Ok((message.text(), message.usage))
}
