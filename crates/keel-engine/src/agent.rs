//! Subagents: the `Agent` tool starts a child agent with a fresh conversation, its own system
//! prompt, tool subset and model, under the parent's permission policy. It runs the same loop
//! as the main agent, concurrently with its siblings (Agent calls of one turn run together),
//! and its final answer (with its usage) is the tool result. Its events reach the frontend
//! wrapped in [`Event::Subagent`] with the parent's tool call id, except approval questions,
//! which go out as they are so every frontend answers them the way it answers its own; the
//! parent's `Op::Approval` reaches the child because both share one [`Permissions`] object.
//!
//! With `run_in_background`, the subagent becomes a background task of the session (through
//! [`keel_tools::BackgroundShell::spawn_job`]): the call answers at once with the task id,
//! `TaskOutput` reads the answer, `TaskStop` cancels it, and its completion notice enters the
//! conversation before the next request. Its events still reach the frontend as
//! [`Event::Subagent`] with the `Agent` call's id, through the session's event sink. With
//! `isolation: "worktree"`, it works in a fresh git worktree (through
//! [`keel_tools::WorktreeIsolation`]), which is removed if it ends clean and kept otherwise.
//!
//! Subagent events are not recorded in the transcript (only the `Agent` call and its result
//! are), so resuming a session resumes the main conversation.
//!
//! [`Permissions`]: crate::permission::Permissions

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use keel_config::AgentDefinition;
use keel_protocol::{Event, Message, ModelUsage, Outcome, PermissionDenial, Usage};
use keel_tools::{
    BackgroundJob, IsolatedTree, IsolationEnd, JobControl, JobEnd, Tool, ToolCallResult,
    ToolContext, ToolError, ToolOutput, ToolRegistry, WorktreeIsolation,
};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::emit::{Emitter, lock};
use crate::tools::PlannedCall;
use crate::{CostTotals, EventSink, RunTally, Session, Shared, plan_mode, skill};

/// The tool's name (Claude Code's; `Task` is its older name, accepted in rules).
pub(crate) const NAME: &str = "Agent";

/// How deep subagents may nest: a subagent this deep is not offered the `Agent` tool.
pub const MAX_DEPTH: u32 = 3;

/// The built-in agent with every tool.
pub const GENERAL_PURPOSE: &str = "general-purpose";

/// The built-in read-only agent for searching and reading code.
pub const EXPLORE: &str = "Explore";

/// What a subagent may not do beyond what its tool set allows.
#[derive(Debug, Clone)]
pub(crate) struct Restriction {
    /// The agent's name, for messages.
    agent: String,
    /// Shell commands must only read (Explore).
    read_only_shell: bool,
}

/// What a finished subagent used, added to its parent's run.
#[derive(Debug, Default)]
pub(crate) struct ChildUsage {
    usage: Usage,
    cost_usd: f64,
    per_model: Vec<ModelUsage>,
    api_time: Duration,
    denials: Vec<PermissionDenial>,
}

/// keel's built-in agents: `general-purpose` (every tool) and `Explore` (read-only).
pub fn builtin_agents() -> Vec<AgentDefinition> {
    vec![
        AgentDefinition {
            name: GENERAL_PURPOSE.to_string(),
            description: "A general agent for research and multi-step tasks: searching code, \
                          reading, running commands and making changes. Use it when a search \
                          may take several tries, or for a self-contained piece of work."
                .to_string(),
            tools: None,
            model: None,
            system_prompt: GENERAL_PURPOSE_PROMPT.to_string(),
            path: None,
            scope: None,
        },
        AgentDefinition {
            name: EXPLORE.to_string(),
            description: "A fast read-only agent for exploring a codebase: finding files by \
                          pattern, searching code, reading it and answering questions about \
                          it. It changes nothing. Say how thorough it should be."
                .to_string(),
            tools: Some(
                [
                    "Read",
                    "Glob",
                    "Grep",
                    "Bash",
                    "WebFetch",
                    "WebSearch",
                    "NotebookRead",
                ]
                .iter()
                .map(|t| t.to_string())
                .collect(),
            ),
            model: None,
            system_prompt: EXPLORE_PROMPT.to_string(),
            path: None,
            scope: None,
        },
    ]
}

const GENERAL_PURPOSE_PROMPT: &str = "\
You are a subagent of keel, a coding agent. The main agent started you to do one task: the \
user message below. Work on it with your tools until it is done. You cannot ask anyone \
questions; make reasonable choices and say which ones you made.

When you are done, answer with a final report for the main agent: what you found or did, \
concisely, with the file paths (`path:line`) and facts it needs. The main agent sees only that \
answer, not your tool calls, and the user sees neither.";

const EXPLORE_PROMPT: &str = "\
You are a read-only exploration subagent of keel, a coding agent. The main agent started you to \
answer one question about the code: the user message below. Find and read what answers it with \
Glob, Grep and Read, and shell commands that only read (ls, git log, git diff, git show, ...). \
You change nothing: no edits, no commands that write, install or delete. Search broadly first, \
then read what matters; make independent searches in one turn.

Answer with a final report for the main agent: the answer, the files and lines it rests on \
(`path:line`), and anything you could not determine. The main agent sees only that answer.";

/// Stands for the `Agent` tool in the registry (its schema, description, and that calls of
/// one turn run together); the engine runs the calls itself, since a subagent needs the
/// session.
pub(crate) struct AgentTool {
    description: String,
}

impl AgentTool {
    pub(crate) fn new(agents: &[AgentDefinition]) -> Self {
        let mut description = String::from(
            "Start a subagent: a separate agent with a fresh context and its own tools that \
             works on one task and returns its final answer to you. Use it for broad searches \
             and self-contained work whose details you do not need to keep in your context, \
             and to work on independent tasks in parallel: several Agent calls in one turn run \
             at the same time. The subagent sees only your prompt, so include everything it \
             needs and say what its answer should contain. Its answer is shown to you, not to \
             the user; tell the user what matters.\n\nAvailable agents (subagent_type):",
        );
        for agent in agents {
            let tools = match &agent.tools {
                None => "all tools".to_string(),
                Some(tools) if agent.name == EXPLORE => {
                    format!("{}; shell commands that only read", tools.join(", "))
                }
                Some(tools) => tools.join(", "),
            };
            description.push_str(&format!(
                "\n- {}: {} (Tools: {tools})",
                agent.name, agent.description
            ));
        }
        Self { description }
    }
}

#[async_trait]
impl Tool for AgentTool {
    fn name(&self) -> &str {
        NAME
    }

    fn description(&self) -> &str {
        &self.description
    }

    fn input_schema(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "description": {
                    "type": "string",
                    "description": "A short (3-5 word) description of the task."
                },
                "prompt": {
                    "type": "string",
                    "description": "The task for the subagent, with everything it needs to know."
                },
                "subagent_type": {
                    "type": "string",
                    "description": "Which agent to start (default general-purpose)."
                },
                "model": {
                    "type": "string",
                    "description": "A model for this subagent (sonnet, opus, haiku or a model \
                                    name); by default the agent's own or yours."
                },
                "run_in_background": {
                    "type": "boolean",
                    "description": "Set to true to run this agent in the background: you get \
                                    its task id at once, read its answer with TaskOutput, and \
                                    are notified when it completes."
                },
                "isolation": {
                    "type": "string",
                    "enum": ["worktree"],
                    "description": "Isolation mode. \"worktree\" creates a temporary git \
                                    worktree so that the agent works on an isolated copy of \
                                    the repo; it is removed if the agent makes no changes, \
                                    otherwise its path and branch are returned."
                }
            },
            "required": ["description", "prompt"],
            "additionalProperties": false
        })
    }

    /// Subagents only report back; what they do is decided call by call. Saying read-only
    /// lets the Agent calls of one turn run together.
    fn is_read_only(&self) -> bool {
        true
    }

    async fn call(&self, _input: Value, _ctx: &ToolContext) -> Result<ToolOutput, ToolError> {
        Err(ToolError::Failed(
            "The Agent tool runs only inside a keel session.".to_string(),
        ))
    }
}

/// Why a subagent's restriction refuses a call, if it does.
pub(crate) fn restricted(session: &Session, call: &PlannedCall) -> Option<String> {
    let restriction = session.restriction.as_ref()?;
    if restriction.read_only_shell && call.name == "Bash" {
        let command = call.input.get("command").and_then(Value::as_str)?;
        if !read_only_command(command) {
            return Some(format!(
                "The {} agent is read-only: it may only run shell commands that change nothing \
                 (ls, cat, grep, git status, git log, git diff, ...), and `{command}` is not one \
                 of them. Read files with Read, Glob and Grep instead.",
                restriction.agent
            ));
        }
    }
    None
}

/// Whether a shell command only reads, as far as keel can tell (anything it cannot vouch for
/// is not).
fn read_only_command(command: &str) -> bool {
    let analysis = keel_policy::analyze(command);
    if analysis.uncertainty().is_some() || analysis.commands.is_empty() {
        return false;
    }
    if analysis
        .redirects
        .iter()
        .any(|r| r.kind == keel_policy::shell::RedirectKind::Write)
    {
        return false;
    }
    analysis
        .commands
        .iter()
        .all(|c| keel_policy::safe_commands::is_read_only(&c.words, c.extra_args))
}

/// Adds the usage of subagents that finished to the run's tally.
pub(crate) fn collect_child_usage(session: &Session, tally: &mut RunTally) {
    let finished = std::mem::take(&mut *lock(&session.child_usage));
    for child in finished {
        tally.usage.add(&child.usage);
        tally.cost_usd += child.cost_usd;
        tally.api_time += child.api_time;
        tally.denials.extend(child.denials);
        for entry in child.per_model {
            match tally.per_model.iter_mut().find(|m| m.model == entry.model) {
                Some(mine) => {
                    mine.usage.add(&entry.usage);
                    mine.cost_usd = mine.cost_usd.zip(entry.cost_usd).map(|(a, b)| a + b);
                }
                None => tally.per_model.push(entry),
            }
        }
    }
}

/// The `Agent` tool's input.
#[derive(Debug, serde::Deserialize)]
struct AgentInput {
    #[serde(default)]
    description: String,
    prompt: String,
    #[serde(default)]
    subagent_type: Option<String>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    run_in_background: Option<bool>,
    #[serde(default)]
    isolation: Option<String>,
}

impl Session {
    /// Runs one tool call: the `Agent` tool here, every other tool through the registry.
    ///
    /// The future is boxed as `Send` by hand: a subagent runs this same loop, and the compiler
    /// cannot prove a recursive future `Send` by looking through itself, which a background
    /// subagent (sent to a task of its own) needs.
    pub(crate) fn call_tool<'a>(
        &'a self,
        id: &'a str,
        name: &'a str,
        input: Value,
        ctx: &'a ToolContext,
        emitter: &'a Emitter,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ToolCallResult> + Send + 'a>> {
        Box::pin(async move {
            if name == NAME {
                return self.run_subagent(id, input, ctx, emitter).await;
            }
            // Output a tool reports while it runs goes out as events, in order with the rest.
            let (progress_tx, mut progress) = tokio::sync::mpsc::unbounded_channel::<String>();
            let ctx = ctx.with_progress(keel_tools::Progress::new(move |text| {
                let _ = progress_tx.send(text.to_string());
            }));
            let call = self.tools.call(name, input, &ctx);
            tokio::pin!(call);
            loop {
                tokio::select! {
                    biased;
                    Some(text) = progress.recv() => emitter.emit(Event::ToolProgress {
                        tool_use_id: id.to_string(),
                        text,
                    }),
                    result = &mut call => return result,
                }
            }
        })
    }

    /// Every agent the `Agent` tool can start: the built-ins, then the user's (which may
    /// replace a built-in by name).
    pub(crate) fn agents(&self) -> Vec<AgentDefinition> {
        let mut agents = builtin_agents();
        for agent in &self.ext.agents {
            match agents.iter_mut().find(|a| a.name == agent.name) {
                Some(slot) => *slot = agent.clone(),
                None => agents.push(agent.clone()),
            }
        }
        agents
    }

    async fn run_subagent(
        &self,
        id: &str,
        input: Value,
        ctx: &ToolContext,
        emitter: &Emitter,
    ) -> ToolCallResult {
        let started = Instant::now();
        let input: AgentInput = match serde_json::from_value(input) {
            Ok(input) => input,
            Err(error) => return ToolCallResult::error(format!("Invalid Agent input: {error}")),
        };
        let agents = self.agents();
        let kind = input
            .subagent_type
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .unwrap_or(GENERAL_PURPOSE);
        let Some(definition) = agents.iter().find(|a| a.name == kind) else {
            let names: Vec<&str> = agents.iter().map(|a| a.name.as_str()).collect();
            return ToolCallResult::error(format!(
                "Agent type '{kind}' not found. Available agents: {}",
                names.join(", ")
            ));
        };
        let background = input.run_in_background == Some(true);
        let shell = match (&ctx.background, &self.sink) {
            (Some(shell), Some(sink)) if background => Some((shell.clone(), sink.clone())),
            _ if background => {
                return ToolCallResult::error(
                    "run_in_background is not available here: this session keeps no background \
                     tasks. Call Agent without run_in_background."
                        .to_string(),
                );
            }
            _ => None,
        };
        let tree = match input.isolation.as_deref().map(str::trim) {
            None | Some("") => None,
            Some("worktree") => {
                let Some(worktrees) = ctx.worktrees.clone() else {
                    return ToolCallResult::error(
                        "isolation \"worktree\" is not available in this session; call Agent \
                         without isolation."
                            .to_string(),
                    );
                };
                let task = if input.description.trim().is_empty() {
                    definition.name.as_str()
                } else {
                    input.description.as_str()
                };
                match worktrees.create(task, &ctx.current_dir()).await {
                    Ok(tree) => Some(Isolation { worktrees, tree }),
                    Err(error) => {
                        return ToolCallResult::error(format!(
                            "Could not create a worktree for the subagent: {error}"
                        ));
                    }
                }
            }
            Some(other) => {
                return ToolCallResult::error(format!(
                    "isolation must be \"worktree\" (or left out), not {other:?}"
                ));
            }
        };
        let mut child = self.child(definition, input.model.as_deref(), ctx);
        if let Some(isolation) = &tree {
            let path = isolation.tree.path.clone();
            child.tool_ctx.cwd = Arc::new(Mutex::new(path.clone()));
            child.tool_ctx.project_root = path.clone();
            // Files the parent read are other files than the worktree's copies.
            child.tool_ctx.read_files = Arc::new(Mutex::new(Default::default()));
            child.config.system.push(format!(
                "You work in an isolated git worktree at {} on branch {}: a checkout of its own \
                 where your changes stay apart from the main one. Work only inside it. Commit \
                 what you want to keep on that branch; the worktree is kept if it holds \
                 changes and removed if it does not.",
                path.display(),
                isolation.tree.branch
            ));
        }
        let prompt = Message::user_text(input.prompt.clone());
        let report = Report {
            agent_type: definition.name.clone(),
            description: input.description.clone(),
            prompt: input.prompt.clone(),
            started,
        };
        if let Some((shell, sink)) = shell {
            let host = Host {
                shell,
                sink,
                usage: self.child_usage.clone(),
            };
            return launch_in_background(id, child, prompt, report, tree, host).await;
        }
        let forward = |event: Event| emitter.emit(tag(id, event));
        let (outcome, tally, tool_uses) = drive(child, prompt, ctx.cancel.clone(), forward).await;
        let ending = match tree {
            Some(isolation) => Some(isolation.finish().await),
            None => None,
        };
        let (result, usage) = report.finish(outcome, tally, tool_uses, ending, &ctx.spill_dir);
        lock(&self.child_usage).push(usage);
        result
    }

    /// A child session for `definition`: fresh conversation, its system prompt, its tools,
    /// the parent's permissions, client, hooks and settings.
    fn child(
        &self,
        definition: &AgentDefinition,
        requested_model: Option<&str>,
        ctx: &ToolContext,
    ) -> Session {
        let depth = self.depth + 1;
        let parent_model = lock(&self.shared.model).clone();
        let model = requested_model
            .filter(|m| !m.trim().is_empty())
            .or(definition.model.as_deref())
            .map_or_else(
                || parent_model.clone(),
                |m| keel_model::models::resolve_alias(m, &parent_model),
            );
        let shared = Arc::new(Shared {
            permissions: self.shared.permissions.clone(),
            model: Mutex::new(model.clone()),
            grants: self.shared.grants.clone(),
            model_before: Mutex::new(None),
            hook_replies: self.shared.hook_replies.clone(),
            questions: self.shared.questions.clone(),
        });
        let mut config = self.config.clone();
        if model != parent_model {
            config.max_tokens = keel_model::default_max_tokens(&model);
            config.context_window = keel_model::models::context_window(&model);
        }
        config.model = model;
        // The API refuses empty system blocks; an agent file with no body gets keel's
        // general instructions.
        let own = if definition.system_prompt.trim().is_empty() {
            GENERAL_PURPOSE_PROMPT.to_string()
        } else {
            definition.system_prompt.clone()
        };
        config.system = std::iter::once(own)
            .chain(self.ext.subagent_context.iter().cloned())
            .filter(|block| !block.trim().is_empty())
            .collect();
        let mut tool_ctx = ctx.clone();
        // Its own shell directory; the files its parent read it may change, but what it reads
        // does not count for the parent.
        tool_ctx.cwd = Arc::new(Mutex::new(ctx.current_dir()));
        let read = lock(&ctx.read_files).clone();
        tool_ctx.read_files = Arc::new(Mutex::new(read));
        // Its own context management: a long task compacts its own conversation (with a
        // summary; session notes and nested memory files are the main agent's).
        let context =
            crate::compact::Context::new(config.context_window, crate::ContextSetup::default());
        Session {
            id: self.id.clone(),
            config,
            client: self.client.clone(),
            tools: self.child_tools(definition, depth, &shared),
            tool_ctx,
            messages: Vec::new(),
            shared,
            transcript: None,
            hooks: self.hooks.clone(),
            pending_context: Vec::new(),
            pending_images: Vec::new(),
            // Its MCP tools are in its tool set already; refreshing would add the rest.
            mcp: None,
            depth,
            ext: self.ext.clone(),
            restriction: (definition.name == EXPLORE && definition.path.is_none()).then(|| {
                Restriction {
                    agent: definition.name.clone(),
                    read_only_shell: true,
                }
            }),
            child_usage: Arc::new(Mutex::new(Vec::new())),
            totals: CostTotals::default(),
            context,
            // The parent's mailbox, reminders and background tasks stay the parent's: a child
            // must neither consume its messages nor stop its tasks when it ends.
            extensions: Vec::new(),
            // Its background subagents report to the main agent's frontend.
            sink: self.sink.clone(),
        }
    }

    /// The parent's tools the definition names (all when it names none), without plan mode's
    /// tool, and without `Agent` at the depth limit.
    fn child_tools(
        &self,
        definition: &AgentDefinition,
        depth: u32,
        shared: &Arc<Shared>,
    ) -> ToolRegistry {
        let wanted: Option<HashSet<String>> = definition.tools.as_ref().map(|tools| {
            tools
                .iter()
                .map(|t| {
                    let name = t.split('(').next().unwrap_or(t).trim();
                    if name == "Task" { NAME } else { name }.to_string()
                })
                .collect()
        });
        let mut registry = ToolRegistry::new();
        for name in self.tools.names() {
            if name == plan_mode::NAME || (name == NAME && depth >= MAX_DEPTH) {
                continue;
            }
            if let Some(wanted) = &wanted {
                let server_wide = name
                    .match_indices("__")
                    .nth(1)
                    .is_some_and(|(at, _)| wanted.contains(&name[..at]));
                if !wanted.contains(&name) && !server_wide {
                    continue;
                }
            }
            let tool: Option<Arc<dyn Tool>> = if name == skill::NAME {
                Some(Arc::new(skill::SkillTool::new(
                    self.ext.model_skills(),
                    shared.clone(),
                )))
            } else {
                self.tools.get(&name)
            };
            if let Some(tool) = tool
                && let Err(error) = registry.register(tool)
            {
                tracing::warn!(%name, %error, "tool left out of a subagent");
            }
        }
        registry
    }
}

/// A subagent's worktree and who tidies it up.
struct Isolation {
    worktrees: Arc<dyn WorktreeIsolation>,
    tree: IsolatedTree,
}

impl Isolation {
    /// Keeps the worktree if it holds changes, removes it otherwise; says which for the
    /// result.
    async fn finish(self) -> Ending {
        let ending = self.worktrees.finish(&self.tree).await;
        Ending {
            tree: self.tree,
            ending,
        }
    }
}

/// What became of a subagent's worktree.
struct Ending {
    tree: IsolatedTree,
    ending: Result<IsolationEnd, ToolError>,
}

impl Ending {
    /// The sentence the result ends with, and the worktree fields of the structured result.
    fn describe(&self) -> (String, Value) {
        let path = self.tree.path.display();
        let branch = &self.tree.branch;
        match &self.ending {
            Ok(IsolationEnd::Removed) => (
                format!("The subagent made no changes; its worktree {path} was removed."),
                json!({}),
            ),
            Ok(IsolationEnd::Kept { changes }) => (
                format!(
                    "The subagent's changes are in the worktree {path} on branch {branch} \
                     ({changes}). Review and merge them from there."
                ),
                json!({"worktreePath": self.tree.path, "worktreeBranch": branch}),
            ),
            Err(error) => (
                format!(
                    "The subagent's worktree {path} (branch {branch}) was left as it is: {error}"
                ),
                json!({"worktreePath": self.tree.path, "worktreeBranch": branch}),
            ),
        }
    }
}

/// What a subagent's result reports besides its answer.
struct Report {
    agent_type: String,
    description: String,
    prompt: String,
    started: Instant,
}

impl Report {
    /// The tool result of a finished subagent, and its usage for the parent's run.
    fn finish(
        &self,
        outcome: Outcome,
        tally: RunTally,
        tool_uses: u64,
        ending: Option<Ending>,
        spill_dir: &std::path::Path,
    ) -> (ToolCallResult, ChildUsage) {
        let answer = tally.last_text.clone();
        let total_tokens = tally.usage.input_tokens
            + tally.usage.output_tokens
            + tally.usage.cache_creation_input_tokens
            + tally.usage.cache_read_input_tokens;
        let duration_ms = crate::millis(self.started.elapsed());
        let status = match &outcome {
            Outcome::Success => "completed",
            Outcome::Interrupted => "interrupted",
            Outcome::MaxTurns { .. } | Outcome::Error { .. } => "error",
        };
        let mut structured = json!({
            "status": status,
            "agentType": self.agent_type,
            "description": self.description,
            "prompt": self.prompt,
            "content": [{"type": "text", "text": answer}],
            "totalDurationMs": duration_ms,
            "totalTokens": total_tokens,
            "totalToolUseCount": tool_uses,
            "usage": tally.usage,
        });
        let worktree_note = match &ending {
            Some(ending) => {
                let (note, fields) = ending.describe();
                if let (Some(into), Some(fields)) = (structured.as_object_mut(), fields.as_object())
                {
                    into.extend(fields.clone());
                }
                format!("\n\n{note}")
            }
            None => String::new(),
        };
        let usage = ChildUsage {
            usage: tally.usage,
            cost_usd: tally.cost_usd,
            per_model: tally.per_model,
            api_time: tally.api_time,
            denials: tally.denials,
        };
        let usage_note = format!(
            "<usage>total_tokens: {total_tokens}\ntool_uses: {tool_uses}\nduration_ms: {duration_ms}</usage>"
        );
        let (content, is_error) = match outcome {
            Outcome::Success => (format!("{answer}{worktree_note}\n\n{usage_note}"), false),
            Outcome::Interrupted => (
                format!(
                    "The subagent was interrupted.{}{worktree_note}\n\n{usage_note}",
                    partial(&answer)
                ),
                true,
            ),
            Outcome::MaxTurns { max_turns } => (
                format!(
                    "The subagent used its {max_turns} turns without finishing.{}{worktree_note}\n\n{usage_note}",
                    partial(&answer)
                ),
                true,
            ),
            Outcome::Error { message } => (
                format!(
                    "The subagent failed: {message}{}{worktree_note}\n\n{usage_note}",
                    partial(&answer)
                ),
                true,
            ),
        };
        let result = ToolCallResult {
            content: keel_tools::output::limit(content, spill_dir),
            is_error,
            structured: Some(structured),
            images: Vec::new(),
        };
        (result, usage)
    }
}

/// Tags a subagent's event for its parent's frontend. Questions go out as they are, so every
/// frontend can answer them; events of deeper subagents are already tagged with their own
/// parent.
fn tag(parent_tool_use_id: &str, event: Event) -> Event {
    match event {
        question @ (Event::ApprovalRequested { .. } | Event::Subagent { .. }) => question,
        other => Event::Subagent {
            parent_tool_use_id: parent_tool_use_id.to_string(),
            event: Box::new(other),
        },
    }
}

/// Runs a child session on `prompt` until it stops or `cancel` fires, handing each of its
/// events to `forward`; returns how it ended, its tally and how many tools it called.
async fn drive(
    mut child: Session,
    prompt: Message,
    cancel: CancellationToken,
    forward: impl Fn(Event),
) -> (Outcome, RunTally, u64) {
    let child_ctx = child.tool_ctx.with_cancel(cancel.clone());
    let (tx, mut rx) = mpsc::unbounded_channel();
    let work = async {
        let child_emitter = Emitter::new(tx, None);
        child_emitter.emit(Event::UserMessage {
            content: prompt.content.clone(),
        });
        child.messages.push(prompt);
        let mut tally = RunTally::default();
        let outcome = child
            .agent_loop(&child_ctx, &child_emitter, &cancel, &mut tally)
            .await;
        (outcome, tally)
    };
    let relay = async {
        let mut tool_uses = 0u64;
        while let Some(event) = rx.recv().await {
            if matches!(event, Event::ToolCallStarted { .. }) {
                tool_uses += 1;
            }
            forward(event);
        }
        tool_uses
    };
    let ((outcome, tally), tool_uses) = tokio::join!(work, relay);
    (outcome, tally, tool_uses)
}

/// What a background subagent reports to: the registry that runs it, the frontend's sink, and
/// the parent's usage box.
struct Host {
    shell: Arc<dyn keel_tools::BackgroundShell>,
    sink: EventSink,
    usage: Arc<Mutex<Vec<ChildUsage>>>,
}

/// Starts a subagent as a background task of the session and answers at once with its id,
/// in Claude Code's words. Its events reach the frontend through `sink`, tagged with the
/// `Agent` call's id; its answer goes to the task's output file and completion notice.
async fn launch_in_background(
    id: &str,
    child: Session,
    prompt: Message,
    report: Report,
    tree: Option<Isolation>,
    host: Host,
) -> ToolCallResult {
    let Host {
        shell,
        sink,
        usage: usage_box,
    } = host;
    let tool_use_id = id.to_string();
    let description = if report.description.trim().is_empty() {
        report.agent_type.clone()
    } else {
        report.description.clone()
    };
    let spill_dir = child.tool_ctx.spill_dir.clone();
    let prompt_text = report.prompt.clone();
    let name = description.clone();
    let tree_path = tree.as_ref().map(|t| t.tree.path.clone());
    let work = move |control: JobControl| -> keel_tools::JobFuture {
        Box::pin(async move {
            let write = control.write.clone();
            let forward = move |event: Event| {
                if let Event::ToolCallStarted { name, input, .. } = &event {
                    let what = input
                        .get("description")
                        .or_else(|| input.get("command"))
                        .or_else(|| input.get("file_path"))
                        .and_then(Value::as_str)
                        .unwrap_or("");
                    write(&format!("[{name}] {what}\n"));
                }
                sink(tag(&tool_use_id, event));
            };
            let (outcome, tally, tool_uses) = drive(child, prompt, control.cancel, forward).await;
            let ending = match tree {
                Some(isolation) => Some(isolation.finish().await),
                None => None,
            };
            let (result, usage) = report.finish(outcome, tally, tool_uses, ending, &spill_dir);
            // Counted in whichever run of the parent is going on (or comes next).
            lock(&usage_box).push(usage);
            let state = if result.is_error {
                "failed"
            } else {
                "completed"
            };
            JobEnd {
                success: !result.is_error,
                summary: format!("Agent \"{name}\" {state}"),
                result: result.content,
            }
        })
    };
    let job = BackgroundJob {
        prefix: "agent".to_string(),
        task_type: "local_agent".to_string(),
        description: description.clone(),
        work: Box::new(work),
    };
    match shell.spawn_job(job).await {
        Ok(started) => {
            let place = tree_path
                .map(|p| {
                    format!(
                        "\nThe agent works in its own git worktree at {}.",
                        p.display()
                    )
                })
                .unwrap_or_default();
            ToolCallResult {
                content: format!(
                    "Async agent launched successfully.\nagentId: {id} (use it with TaskOutput \
                     to read the agent's answer, or TaskStop to stop it)\nThe agent is working \
                     in the background. You will be notified automatically when it completes.{place}\n\
                     Do not duplicate this agent's work: work on something else, or briefly \
                     tell the user what you launched and end your response.\noutput_file: {file}",
                    id = started.id,
                    file = started.output_file.display()
                ),
                is_error: false,
                structured: Some(json!({
                    "status": "async_launched",
                    "agentId": started.id,
                    "description": description,
                    "prompt": prompt_text,
                    "outputFile": started.output_file,
                })),
                images: Vec::new(),
            }
        }
        Err(error) => ToolCallResult::error(format!(
            "Could not start the agent in the background: {error}"
        )),
    }
}

fn partial(answer: &str) -> String {
    if answer.trim().is_empty() {
        String::new()
    } else {
        format!(" What it had said so far:\n{answer}")
    }
}

/// Names for listings: every agent with where it comes from.
pub(crate) fn describe(agents: &[AgentDefinition]) -> Vec<String> {
    agents
        .iter()
        .map(|a| {
            let origin = match (&a.scope, &a.path) {
                (Some(scope), Some(path)) => format!("{scope}, {}", path.display()),
                _ => "built-in".to_string(),
            };
            let tools = a
                .tools
                .as_ref()
                .map_or_else(|| "all tools".to_string(), |t| t.join(", "));
            format!("{} ({origin}): {} [{tools}]", a.name, a.description)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_only_commands() {
        assert!(read_only_command("ls -la && git status"));
        assert!(read_only_command("grep -rn foo src | head -5"));
        assert!(!read_only_command("rm -rf target"));
        assert!(!read_only_command("echo hi > notes.txt"));
        assert!(!read_only_command("cargo build"));
        assert!(read_only_command("cat README.md 2>/dev/null"));
    }

    #[test]
    fn builtins_are_general_purpose_and_explore() {
        let names: Vec<String> = builtin_agents().into_iter().map(|a| a.name).collect();
        assert_eq!(names, [GENERAL_PURPOSE, EXPLORE]);
    }
}
