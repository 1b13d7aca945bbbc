//! The agent loop. A `Session` takes `Op`s (prompts, interrupts, approvals, mode and model
//! switches), talks to a model, runs the tools it asks for under the permission policy, and
//! reports everything it does as `Event`s, which are also its transcript. Frontends only
//! translate.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use keel_model::{ModelClient, Pricing, RetryPolicy};
use keel_policy::hooks::{HookEvent, HookOutcome, SessionEndReason, SessionStartSource};
use keel_policy::{PermissionMode, Policy};
use keel_protocol::{
    ApprovalAnswer, Event, Message, ModelUsage, NoticeLevel, Op, Outcome, PermissionDenial,
    SessionId, Usage,
};
use keel_session::TranscriptWriter;
use keel_tools::{ToolContext, ToolRegistry};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

mod agent;
mod compact;
mod emit;
mod extension;
mod frontend_hooks;
mod hooks;
mod partial;
mod permission;
mod plan_mode;
mod prompt_tool;
mod question;
mod skill;
mod slash;
mod tools;
mod turn;

pub use compact::ContextSetup;
pub use emit::EventSender;
pub use extension::{EventSink, Extension};
pub use hooks::HookSetup;
pub use permission::Approver;
pub use plan_mode::ExitPlanMode;
pub use question::AskUserQuestion;
pub use slash::{BUILTIN_COMMANDS, CostTotals, Extensions};

use emit::{Emitter, lock};
use permission::Permissions;

/// How a session talks to its model and how far it may go.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// The model name sent with every request (until changed by an op).
    pub model: String,
    /// `max_tokens` for every request.
    pub max_tokens: u32,
    /// System prompt blocks.
    pub system: Vec<String>,
    /// Stop a run after this many model turns (`--max-turns`).
    pub max_turns: Option<u32>,
    /// When and how often a failed model request is retried before the run fails.
    pub retry: RetryPolicy,
    /// Extended thinking budget in tokens, if on.
    pub thinking: Option<u32>,
    /// Ask the provider to cache the prompt prefix.
    pub cache: bool,
    /// Prices, with the user's overrides.
    pub pricing: Pricing,
    /// The model's context window in tokens.
    pub context_window: u64,
    /// Report the model's raw stream as [`Event::StreamEvent`]s (`--include-partial-messages`).
    pub stream_events: bool,
    /// The frontend answers [`Event::QuestionAsked`] (a terminal UI does; print mode, the
    /// HTTP server and ACP clients have no way to), so the model is offered `AskUserQuestion`.
    pub answers_questions: bool,
    /// The tools `--tools` names, when it lists them: of the tools the session adds by itself
    /// ([`SESSION_TOOLS`]) only these are offered. `None` (no list) offers each that applies.
    pub offered_tools: Option<Vec<String>>,
}

/// The tools a session adds by itself rather than taking from its [`ToolRegistry`]:
/// `ExitPlanMode`, `AskUserQuestion` (when the frontend answers questions), `Skill` (when there
/// are skills) and `Agent`. A `--tools` list may name them like any built-in tool.
pub const SESSION_TOOLS: [&str; 4] = [plan_mode::NAME, question::NAME, skill::NAME, agent::NAME];

impl SessionConfig {
    /// Whether the session may add its own tool `name`: named by the `--tools` list, if any.
    pub(crate) fn offers(&self, name: &str) -> bool {
        self.offered_tools
            .as_ref()
            .is_none_or(|named| named.iter().any(|n| n == name))
    }

    /// A configuration with keel's defaults for everything but the model and system prompt.
    pub fn new(model: impl Into<String>, system: Vec<String>) -> Self {
        let model = model.into();
        Self {
            max_tokens: keel_model::default_max_tokens(&model),
            context_window: keel_model::models::context_window(&model),
            model,
            system,
            max_turns: None,
            retry: RetryPolicy::default(),
            thinking: None,
            cache: true,
            pricing: Pricing::builtin(),
            stream_events: false,
            answers_questions: false,
            offered_tools: None,
        }
    }
}

/// Everything a session is made of.
pub struct SessionSetup {
    /// The session's id (new, or the resumed session's).
    pub id: SessionId,
    /// Model and limits.
    pub config: SessionConfig,
    /// The model provider.
    pub client: Arc<dyn ModelClient>,
    /// The tools offered to the model.
    pub tools: ToolRegistry,
    /// Per-session tool state (working directory, files read, spill folder).
    pub tool_ctx: ToolContext,
    /// The permission policy (mode, rules, working directories).
    pub policy: Policy,
    /// Who answers permission questions.
    pub approver: Approver,
    /// Where "always allow" answers are saved, if anywhere.
    pub local_settings: Option<PathBuf>,
    /// The conversation so far (empty for a new session).
    pub history: Vec<Message>,
    /// The transcript to append events to, if the session is recorded.
    pub transcript: Option<TranscriptWriter>,
    /// The user's hooks, if any are configured.
    pub hooks: Option<HookSetup>,
    /// The MCP servers whose tools the model may use, if any are configured.
    pub mcp: Option<keel_mcp::McpManager>,
    /// Compaction threshold, session notes and nested memory files.
    pub context: ContextSetup,
}

/// One agent conversation: its history, tools, model and permissions.
pub struct Session {
    id: SessionId,
    config: SessionConfig,
    client: Arc<dyn ModelClient>,
    tools: ToolRegistry,
    tool_ctx: ToolContext,
    messages: Vec<Message>,
    shared: Arc<Shared>,
    transcript: Option<TranscriptWriter>,
    hooks: Option<hooks::Hooks>,
    /// Context hooks added (SessionStart), given to the model with the next prompt.
    pending_context: Vec<String>,
    /// Images sent with the prompt being handled, for its user message.
    pending_images: Vec<keel_protocol::ContentBlock>,
    mcp: Option<keel_mcp::McpManager>,
    /// How deep in subagents this session runs (0 for the main agent).
    depth: u32,
    /// Skills, custom commands, agent definitions and what slash commands report.
    ext: Arc<Extensions>,
    /// What a subagent may not do beyond its tool set (e.g. Explore's read-only shell).
    restriction: Option<agent::Restriction>,
    /// Usage of subagents that finished during the current tool batch, for the run's totals.
    /// Background subagents add theirs when they finish, to be counted in the run going on then.
    child_usage: Arc<Mutex<Vec<agent::ChildUsage>>>,
    /// Usage and cost over the session's runs, for `/cost`.
    totals: CostTotals,
    context: compact::Context,
    /// Work that outlives a turn, plugged in by the frontend.
    extensions: Vec<Arc<dyn Extension>>,
    /// Reaches the frontend and transcript from work that outlives the turn that started it
    /// (a background subagent's events); set while the session serves.
    sink: Option<EventSink>,
}

/// State the op loop changes while a run is going on.
pub(crate) struct Shared {
    /// Shared with subagents, so their questions reach the same frontend and one answer fits.
    pub(crate) permissions: Arc<Permissions>,
    pub(crate) model: Mutex<String>,
    /// Rules granted until the run ends (skills' and commands' `allowed-tools`), shared with
    /// subagents so everything granted during a run is taken back at its end.
    pub(crate) grants: Arc<skill::Grants>,
    /// The model to go back to when the run ends, if a skill or command switched it.
    pub(crate) model_before: Mutex<Option<String>>,
    /// Hook callbacks waiting for the frontend, shared with subagents (whose events reach the
    /// frontend through the parent).
    pub(crate) hook_replies: Arc<frontend_hooks::HookReplies>,
    /// Questions waiting for the user, shared with subagents like `hook_replies`.
    pub(crate) questions: Arc<question::PendingQuestions>,
}

/// Totals of one run, gathered as it goes.
#[derive(Debug, Default)]
pub(crate) struct RunTally {
    pub(crate) turns: u32,
    pub(crate) usage: Usage,
    pub(crate) cost_usd: f64,
    pub(crate) api_time: Duration,
    pub(crate) denials: Vec<PermissionDenial>,
    pub(crate) last_text: String,
    /// Tokens and cost per model, in order of first use.
    pub(crate) per_model: Vec<ModelUsage>,
}

impl Session {
    /// A session ready to serve.
    pub fn new(setup: SessionSetup) -> Self {
        let mut tools = setup.tools;
        let shared = Arc::new(Shared {
            permissions: Arc::new(Permissions::new(
                setup.policy,
                setup.approver,
                setup.local_settings,
            )),
            model: Mutex::new(setup.config.model.clone()),
            grants: Arc::new(skill::Grants::default()),
            model_before: Mutex::new(None),
            hook_replies: Arc::new(frontend_hooks::HookReplies::default()),
            questions: Arc::new(question::PendingQuestions::default()),
        });
        // Tools a bare deny rule names are not offered at all, as Claude Code does.
        tools.retain(|name| !shared.permissions.is_hidden(name));
        let may_add = |tools: &ToolRegistry, name: &str| {
            tools.get(name).is_none()
                && setup.config.offers(name)
                && !shared.permissions.is_hidden(name)
        };
        if may_add(&tools, plan_mode::NAME) {
            // Registering cannot fail: the name is free (checked above) and the schema is fixed.
            let _ = tools.register(Arc::new(ExitPlanMode::new(shared.clone())));
        }
        // Questions need someone to answer them: only frontends that do are offered the tool.
        if setup.config.answers_questions
            && *shared.permissions.approver() == Approver::Interactive
            && may_add(&tools, question::NAME)
        {
            let _ = tools.register(Arc::new(AskUserQuestion));
        }
        let mut session = Self {
            id: setup.id,
            config: setup.config.clone(),
            client: setup.client,
            tools,
            tool_ctx: setup.tool_ctx,
            messages: setup.history,
            shared,
            transcript: setup.transcript,
            hooks: setup.hooks.map(hooks::Hooks::new),
            pending_context: Vec::new(),
            pending_images: Vec::new(),
            mcp: setup.mcp,
            depth: 0,
            ext: Arc::new(Extensions::default()),
            restriction: None,
            child_usage: Arc::new(Mutex::new(Vec::new())),
            totals: CostTotals::default(),
            context: compact::Context::new(setup.config.context_window, setup.context),
            extensions: Vec::new(),
            sink: None,
        };
        session.refresh_mcp_tools();
        session
    }

    /// Puts the MCP servers' current tools into the registry. Servers change their tool lists
    /// at any time (`list_changed`), so this runs before every model request.
    fn refresh_mcp_tools(&mut self) {
        let Some(manager) = &self.mcp else {
            return;
        };
        let current = manager.tools();
        let wanted: std::collections::HashSet<String> =
            current.iter().map(|t| t.name().to_string()).collect();
        self.tools
            .retain(|name| !is_mcp_tool(name) || wanted.contains(name));
        for tool in current {
            if self.tools.get(tool.name()).is_some()
                || self.shared.permissions.is_hidden(tool.name())
            {
                continue;
            }
            let name = tool.name().to_string();
            if let Err(error) = self.tools.register(tool) {
                tracing::warn!(%name, %error, "skipping an MCP tool whose schema keel cannot use");
            }
        }
    }

    /// Plugs in work that outlives a turn (see [`Extension`]).
    #[must_use]
    pub fn with_extension(mut self, extension: Arc<dyn Extension>) -> Self {
        self.extensions.push(extension);
        self
    }

    /// Offers one more tool to the model (a frontend adding tools after setup); fails on a
    /// duplicate name. A tool a bare deny rule names is not offered.
    pub fn add_tool(
        &mut self,
        tool: Arc<dyn keel_tools::Tool>,
    ) -> Result<(), keel_tools::RegistryError> {
        if self.shared.permissions.is_hidden(tool.name()) {
            return Ok(());
        }
        self.tools.register(tool)
    }

    /// The session's id.
    pub fn id(&self) -> &SessionId {
        &self.id
    }

    /// The conversation so far, as it would be sent to the model.
    pub fn messages(&self) -> &[Message] {
        &self.messages
    }

    /// Statuses of the session's MCP servers, for frontends (`mcp_servers` in stream-json).
    pub fn mcp_statuses(&self) -> Vec<(String, String)> {
        self.mcp
            .as_ref()
            .map(|m| {
                m.statuses()
                    .into_iter()
                    .map(|(name, status)| (name, status.to_string()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Names of the tools offered to the model.
    pub fn tool_names(&self) -> Vec<String> {
        self.tools.names()
    }

    /// The event that announces this session to a frontend.
    fn started_event(&self) -> Event {
        Event::SessionStarted {
            session_id: self.id.clone(),
            model: lock(&self.shared.model).clone(),
            cwd: self.tool_ctx.project_root.display().to_string(),
            tools: self.tools.names(),
            permission_mode: self.shared.permissions.mode().as_str().to_string(),
        }
    }

    /// Serves `ops` until the sender is dropped: each prompt is worked on until the model stops;
    /// an interrupt stops the running one; approvals, mode and model switches apply at once.
    /// Prompts that arrive during a run are queued. Every event goes to `events` and, when the
    /// session is recorded, to its transcript, which is closed (synced) before this returns.
    pub async fn serve(mut self, mut ops: mpsc::UnboundedReceiver<Op>, events: EventSender) {
        let emitter = Arc::new(Emitter::new(events, self.transcript.take()));
        emitter.emit(self.started_event());
        let sink_emitter = emitter.clone();
        let sink: EventSink = Arc::new(move |event| sink_emitter.emit(event));
        for extension in &self.extensions {
            extension.attach(sink.clone());
        }
        self.sink = Some(sink);
        let source = if self.messages.is_empty() {
            SessionStartSource::Startup
        } else {
            SessionStartSource::Resume
        };
        let startup = CancellationToken::new();
        if let Some(outcome) = self
            .run_hooks(
                HookEvent::SessionStart,
                |c| c.session_start(source),
                &emitter,
                &startup,
            )
            .await
        {
            self.pending_context.extend(
                outcome
                    .additional_context
                    .iter()
                    .map(|text| hooks::context_block(HookEvent::SessionStart, text)),
            );
        }
        let mut queued: VecDeque<Op> = VecDeque::new();
        let mut ops_open = true;
        loop {
            let next = match queued.pop_front() {
                Some(op) => op,
                None if !ops_open => break,
                None => match ops.recv().await {
                    Some(op) => op,
                    None => break,
                },
            };
            let prompt = match next {
                Op::UserInput { text } => text,
                Op::UserInputWithImages { text, images } => {
                    self.pending_images = images.iter().map(|i| i.to_block()).collect();
                    text
                }
                Op::Compact { instructions } => {
                    let cancel = CancellationToken::new();
                    let message = match self
                        .compact("manual", instructions.as_deref(), &emitter, &cancel, None)
                        .await
                    {
                        Ok(()) => (NoticeLevel::Info, "conversation compacted".to_string()),
                        Err(problem) => (
                            NoticeLevel::Warning,
                            format!("could not compact the conversation: {problem}"),
                        ),
                    };
                    emitter.emit(Event::Notice {
                        level: message.0,
                        message: message.1,
                    });
                    continue;
                }
                Op::Rewind { user_turns_back } => {
                    self.rewind(user_turns_back, &emitter);
                    continue;
                }
                other => {
                    if let Some(op) = control(&self.shared, &emitter, other) {
                        queued.push_back(op);
                    }
                    continue;
                }
            };
            let cancel = CancellationToken::new();
            let shared = self.shared.clone();
            let run = self.handle_input(prompt, &emitter, cancel.clone());
            tokio::pin!(run);
            loop {
                tokio::select! {
                    () = &mut run => break,
                    op = ops.recv(), if ops_open => match op {
                        Some(Op::Interrupt) => cancel.cancel(),
                        Some(other) => {
                            if let Some(op) = control(&shared, &emitter, other) {
                                queued.push_back(op);
                            }
                        }
                        None => ops_open = false,
                    },
                }
            }
        }
        let end = CancellationToken::new();
        self.run_hooks(
            HookEvent::SessionEnd,
            |c| c.session_end(SessionEndReason::Other),
            &emitter,
            &end,
        )
        .await;
        if let Some(manager) = &self.mcp {
            manager.shutdown().await;
        }
        for extension in &self.extensions {
            extension.session_end().await;
        }
        // Background subagents hold clones of the sink; the extensions ended them above.
        self.sink = None;
        emitter.close();
    }

    /// Works on one prompt until the model stops, the turn limit is hit, an error occurs or
    /// `cancel` fires. Always ends with exactly one `RunFinished` event.
    async fn run(&mut self, prompt: String, emitter: &Emitter, cancel: CancellationToken) {
        let started = Instant::now();
        let mut tally = RunTally::default();
        let mut context = std::mem::take(&mut self.pending_context);
        let outcome = match self
            .run_hooks(
                HookEvent::UserPromptSubmit,
                |c| c.user_prompt_submit(&prompt),
                emitter,
                &cancel,
            )
            .await
        {
            Some(HookOutcome {
                blocked: Some(reason),
                ..
            }) => {
                // The prompt is dropped: it never reaches the model or the transcript.
                Some(Outcome::Error {
                    message: format!("a UserPromptSubmit hook blocked the prompt: {reason}"),
                })
            }
            Some(HookOutcome {
                stop: Some(stop), ..
            }) => Some(Outcome::Error {
                message: format!(
                    "a hook stopped the session{}",
                    stop.reason.map(|r| format!(": {r}")).unwrap_or_default()
                ),
            }),
            Some(outcome) => {
                context.extend(
                    outcome
                        .additional_context
                        .iter()
                        .map(|text| hooks::context_block(HookEvent::UserPromptSubmit, text)),
                );
                None
            }
            None => None,
        };
        let outcome = match outcome {
            Some(refused) => refused,
            None => {
                let mut message = Message::user_text(prompt);
                message
                    .content
                    .extend(std::mem::take(&mut self.pending_images));
                message.content.extend(
                    context
                        .into_iter()
                        .map(|text| keel_protocol::ContentBlock::Text { text }),
                );
                emitter.emit(Event::UserMessage {
                    content: message.content.clone(),
                });
                self.messages.push(message);
                let ctx = self.tool_ctx.with_cancel(cancel.clone());
                self.agent_loop(&ctx, emitter, &cancel, &mut tally).await
            }
        };
        // Background subagents that finished since the last tool batch.
        agent::collect_child_usage(self, &mut tally);
        let finished = Event::RunFinished {
            outcome,
            result: tally.last_text,
            num_turns: tally.turns,
            usage: tally.usage,
            total_cost_usd: tally.cost_usd,
            duration_ms: millis(started.elapsed()),
            duration_api_ms: millis(tally.api_time),
            permission_denials: tally.denials,
            model_usage: tally.per_model,
        };
        self.totals.add_run(&finished);
        emitter.emit(finished);
    }

    async fn agent_loop(
        &mut self,
        ctx: &ToolContext,
        emitter: &Emitter,
        cancel: &CancellationToken,
        tally: &mut RunTally,
    ) -> Outcome {
        let mut stop_hook_active = false;
        let mut compacted_for_length = false;
        loop {
            if let Some(max_turns) = self.config.max_turns
                && tally.turns >= max_turns
            {
                return Outcome::MaxTurns { max_turns };
            }
            if cancel.is_cancelled() {
                return Outcome::Interrupted;
            }
            self.extension_notes(emitter).await;
            tally.turns += 1;
            self.refresh_mcp_tools();
            self.manage_context(emitter, cancel, tally).await;
            emitter.emit(Event::TurnStarted { turn: tally.turns });

            let api_started = Instant::now();
            let end = self.model_turn(emitter, cancel).await;
            tally.api_time += api_started.elapsed();
            // A conversation the API finds too long is compacted and the turn tried again, once.
            let end = match end {
                turn::TurnEnd::Failed(error, partial)
                    if error.is_prompt_too_long() && !compacted_for_length =>
                {
                    compacted_for_length = true;
                    match self
                        .compact("auto", None, emitter, cancel, Some(tally))
                        .await
                    {
                        Ok(()) => {
                            tally.turns -= 1;
                            continue;
                        }
                        Err(problem) => {
                            emitter.emit(Event::Notice {
                                level: NoticeLevel::Warning,
                                message: format!("could not compact the conversation: {problem}"),
                            });
                            turn::TurnEnd::Failed(error, partial)
                        }
                    }
                }
                other => other,
            };

            let assembled = match end {
                turn::TurnEnd::Complete(assembled) => assembled,
                turn::TurnEnd::Interrupted(partial) => {
                    self.keep_partial(partial, emitter, tally);
                    return Outcome::Interrupted;
                }
                turn::TurnEnd::Failed(error, partial) => {
                    self.keep_partial(partial, emitter, tally);
                    return Outcome::Error {
                        message: error.to_string(),
                    };
                }
            };
            let message = assembled.message.clone();
            self.account(&message, tally);
            self.context.observe(&message.usage);
            emitter.emit(Event::AssistantMessage {
                message: message.clone(),
            });
            emitter.emit(Event::ContextUsage {
                used_tokens: message.usage.input_tokens
                    + message.usage.cache_creation_input_tokens
                    + message.usage.cache_read_input_tokens
                    + message.usage.output_tokens,
                window_tokens: self.config.context_window,
            });
            self.messages.push(message.to_message());
            self.maybe_update_notes(emitter);
            let text = message.text();
            if !text.is_empty() {
                tally.last_text = text;
            }

            let calls = tools::planned_calls(&assembled);
            if calls.is_empty() {
                match message.stop_reason {
                    Some(keel_protocol::StopReason::PauseTurn) => continue,
                    Some(keel_protocol::StopReason::Refusal) => {
                        return Outcome::Error {
                            message: "the model declined to continue (stop reason: refusal); \
                                      rephrase the request or try another model"
                                .into(),
                        };
                    }
                    Some(keel_protocol::StopReason::MaxTokens) => {
                        emitter.emit(Event::Notice {
                            level: NoticeLevel::Warning,
                            message: format!(
                                "the answer was cut off at the output limit ({} tokens)",
                                self.config.max_tokens
                            ),
                        });
                        return Outcome::Success;
                    }
                    _ => {}
                }
                // The model is done; a Stop hook (SubagentStop for a subagent) may send it back
                // to work.
                let active = stop_hook_active;
                let subagent = self.depth > 0;
                let stop_event = if subagent {
                    HookEvent::SubagentStop
                } else {
                    HookEvent::Stop
                };
                let stop_input = |c: &keel_policy::hooks::HookContext| {
                    if subagent {
                        c.subagent_stop(active)
                    } else {
                        c.stop(active)
                    }
                };
                match self
                    .run_hooks(stop_event, stop_input, emitter, cancel)
                    .await
                {
                    Some(HookOutcome {
                        stop: Some(stop), ..
                    }) => {
                        return Outcome::Error {
                            message: format!(
                                "a hook stopped the session{}",
                                stop.reason.map(|r| format!(": {r}")).unwrap_or_default()
                            ),
                        };
                    }
                    Some(HookOutcome {
                        blocked: Some(reason),
                        ..
                    }) => {
                        stop_hook_active = true;
                        let message = Message::user_text(format!(
                            "Stop hook feedback (you were about to stop; keep working):\n{reason}"
                        ));
                        emitter.emit(Event::UserMessage {
                            content: message.content.clone(),
                        });
                        self.messages.push(message);
                        continue;
                    }
                    _ => return Outcome::Success,
                }
            }
            let mode_before = self.shared.permissions.mode();
            let results = self.run_tools(calls, ctx, emitter, tally).await;
            self.messages.push(Message {
                role: keel_protocol::Role::User,
                content: results,
            });
            let mode_after = self.shared.permissions.mode();
            if mode_after != mode_before {
                emitter.emit(Event::PermissionModeChanged {
                    mode: mode_after.as_str().to_string(),
                });
            }
            if cancel.is_cancelled() {
                return Outcome::Interrupted;
            }
        }
    }

    /// What the extensions want the model to know before this request, as one user message.
    async fn extension_notes(&mut self, emitter: &Emitter) {
        let mut notes = Vec::new();
        for extension in &self.extensions {
            notes.extend(extension.before_request().await);
        }
        if notes.is_empty() {
            return;
        }
        let message = Message {
            role: keel_protocol::Role::User,
            content: notes
                .into_iter()
                .map(|text| keel_protocol::ContentBlock::Text { text })
                .collect(),
        };
        emitter.emit(Event::UserMessage {
            content: message.content.clone(),
        });
        self.messages.push(message);
    }

    /// Drops the `back`-th prompt from the end and everything after it, and records the
    /// shorter conversation (a resume replays the same one).
    fn rewind(&mut self, back: usize, emitter: &Emitter) {
        let prompts: Vec<usize> = self
            .messages
            .iter()
            .enumerate()
            .filter(|(_, m)| m.is_prompt())
            .map(|(i, _)| i)
            .collect();
        let Some(&at) = back
            .checked_sub(1)
            .and_then(|k| prompts.len().checked_sub(k + 1))
            .and_then(|i| prompts.get(i))
        else {
            emitter.emit(Event::Notice {
                level: NoticeLevel::Warning,
                message: format!(
                    "cannot rewind {back} prompt(s): the conversation has {} (use a number from 1 to {})",
                    prompts.len(),
                    prompts.len()
                ),
            });
            return;
        };
        let prompt = self.messages[at]
            .content
            .iter()
            .filter_map(|b| b.text())
            .next()
            .unwrap_or_default()
            .to_string();
        self.messages.truncate(at);
        emitter.emit(Event::Rewound {
            user_turns_back: back,
            prompt,
            messages: self.messages.clone(),
        });
    }

    fn account(&self, message: &keel_protocol::AssistantMessage, tally: &mut RunTally) {
        tally.usage.add(&message.usage);
        let model = if message.model.is_empty() {
            lock(&self.shared.model).clone()
        } else {
            message.model.clone()
        };
        let cost = self.config.pricing.cost(&model, &message.usage);
        // A model without a known price adds nothing to the total; the result says its cost is
        // unknown rather than guessing.
        tally.cost_usd += cost.unwrap_or(0.0);
        match tally.per_model.iter_mut().find(|m| m.model == model) {
            Some(entry) => {
                entry.usage.add(&message.usage);
                entry.cost_usd = entry.cost_usd.zip(cost).map(|(a, b)| a + b);
            }
            None => tally.per_model.push(ModelUsage {
                model,
                usage: message.usage,
                cost_usd: cost,
            }),
        }
    }
}

/// Applies an op that is not a prompt or an interrupt; returns it if it must wait for the
/// current run to end.
fn control(shared: &Shared, emitter: &Emitter, op: Op) -> Option<Op> {
    match op {
        Op::Approval { request_id, answer } => {
            if !shared.permissions.answer(&request_id, answer) {
                emitter.emit(Event::Notice {
                    level: NoticeLevel::Warning,
                    message: format!(
                        "no question is waiting for approval {request_id}; the answer was ignored"
                    ),
                });
            }
            None
        }
        Op::AnswerQuestion {
            request_id,
            answers,
        } => {
            if !shared.questions.answer(&request_id, answers) {
                emitter.emit(Event::Notice {
                    level: NoticeLevel::Warning,
                    message: format!(
                        "no question is waiting for answers to {request_id}; the answers were ignored"
                    ),
                });
            }
            None
        }
        Op::SetPermissionMode { mode } => {
            match mode.parse::<PermissionMode>() {
                Ok(mode) => {
                    shared.permissions.set_mode(mode);
                    emitter.emit(Event::PermissionModeChanged {
                        mode: mode.as_str().to_string(),
                    });
                }
                Err(error) => emitter.emit(Event::Notice {
                    level: NoticeLevel::Warning,
                    message: error.to_string(),
                }),
            }
            None
        }
        Op::SetModel { model } => {
            lock(&shared.model).clone_from(&model);
            emitter.emit(Event::ModelChanged { model });
            None
        }
        Op::HookResult { request_id, reply } => {
            // A late answer (after the hook's timeout or an interrupt) has nobody to go to.
            if !shared.hook_replies.answer(&request_id, reply) {
                tracing::debug!(%request_id, "hook answer arrived after the hook was given up");
            }
            None
        }
        Op::Interrupt => None,
        queued @ (Op::UserInput { .. }
        | Op::UserInputWithImages { .. }
        | Op::Compact { .. }
        | Op::Rewind { .. }) => Some(queued),
    }
}

/// An answer that lets a call run once, for frontends and tests.
pub fn allow_once() -> ApprovalAnswer {
    ApprovalAnswer::AllowOnce {
        updated_input: None,
    }
}

pub(crate) fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

pub(crate) fn truncate_chars(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

/// Whether a tool comes from an MCP server (Claude Code's `mcp__<server>__<tool>` names).
pub(crate) fn is_mcp_tool(name: &str) -> bool {
    name.starts_with("mcp__")
}
