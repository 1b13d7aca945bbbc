//! Subagents: the `Agent` tool starts a child agent with a fresh conversation, its own system
//! prompt, tool subset and model, under the parent's permission policy. It runs the same loop
//! as the main agent, concurrently with its siblings (Agent calls of one turn run together),
//! and its final answer (with its usage) is the tool result. Its events reach the frontend
//! wrapped in [`Event::Subagent`] with the parent's tool call id, except approval questions,
//! which go out as they are so every frontend answers them the way it answers its own; the
//! parent's `Op::Approval` reaches the child because both share one [`Permissions`] object.
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
use keel_tools::{Tool, ToolCallResult, ToolContext, ToolError, ToolOutput, ToolRegistry};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::emit::{Emitter, lock};
use crate::tools::PlannedCall;
use crate::{CostTotals, RunTally, Session, Shared, plan_mode, skill};

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
                    "description": "Not supported yet: the subagent always runs until it answers."
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
}

impl Session {
    /// Runs one tool call: the `Agent` tool here, every other tool through the registry.
    pub(crate) async fn call_tool(
        &self,
        id: &str,
        name: &str,
        input: Value,
        ctx: &ToolContext,
        emitter: &Emitter,
    ) -> ToolCallResult {
        if name == NAME {
            return self.run_subagent(id, input, ctx, emitter).await;
        }
        self.tools.call(name, input, ctx).await
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
        let mut child = self.child(definition, input.model.as_deref(), ctx);
        let child_ctx = child.tool_ctx.clone();
        let prompt = Message::user_text(input.prompt.clone());
        let (tx, mut rx) = mpsc::unbounded_channel();
        let work = async {
            let child_emitter = Emitter::new(tx, None);
            child_emitter.emit(Event::UserMessage {
                content: prompt.content.clone(),
            });
            child.messages.push(prompt);
            let mut tally = RunTally::default();
            let outcome = child
                .agent_loop(&child_ctx, &child_emitter, &ctx.cancel, &mut tally)
                .await;
            (outcome, tally)
        };
        let forward = async {
            let mut tool_uses = 0u64;
            while let Some(event) = rx.recv().await {
                if matches!(event, Event::ToolCallStarted { .. }) {
                    tool_uses += 1;
                }
                match event {
                    // Questions go out as they are, so every frontend can answer them; events
                    // of deeper subagents are already tagged with their own parent.
                    question @ (Event::ApprovalRequested { .. } | Event::Subagent { .. }) => {
                        emitter.emit(question);
                    }
                    other => emitter.emit(Event::Subagent {
                        parent_tool_use_id: id.to_string(),
                        event: Box::new(other),
                    }),
                }
            }
            tool_uses
        };
        let ((outcome, tally), tool_uses) = tokio::join!(work, forward);
        let answer = tally.last_text.clone();
        let total_tokens = tally.usage.input_tokens
            + tally.usage.output_tokens
            + tally.usage.cache_creation_input_tokens
            + tally.usage.cache_read_input_tokens;
        let duration_ms = crate::millis(started.elapsed());
        let status = match &outcome {
            Outcome::Success => "completed",
            Outcome::Interrupted => "interrupted",
            Outcome::MaxTurns { .. } | Outcome::Error { .. } => "error",
        };
        let structured = json!({
            "status": status,
            "agentType": definition.name,
            "description": input.description,
            "prompt": input.prompt,
            "content": [{"type": "text", "text": answer}],
            "totalDurationMs": duration_ms,
            "totalTokens": total_tokens,
            "totalToolUseCount": tool_uses,
            "usage": tally.usage,
        });
        lock(&self.child_usage).push(ChildUsage {
            usage: tally.usage,
            cost_usd: tally.cost_usd,
            per_model: tally.per_model,
            api_time: tally.api_time,
            denials: tally.denials,
        });
        let usage_note = format!(
            "<usage>total_tokens: {total_tokens}\ntool_uses: {tool_uses}\nduration_ms: {duration_ms}</usage>"
        );
        let background_note = if input.run_in_background == Some(true) {
            "\n(run_in_background is not supported yet; the subagent ran until it answered.)"
        } else {
            ""
        };
        let (content, is_error) = match outcome {
            Outcome::Success => (format!("{answer}\n\n{usage_note}{background_note}"), false),
            Outcome::Interrupted => (
                format!(
                    "The user interrupted the subagent.{}\n\n{usage_note}",
                    partial(&answer)
                ),
                true,
            ),
            Outcome::MaxTurns { max_turns } => (
                format!(
                    "The subagent used its {max_turns} turns without finishing.{}\n\n{usage_note}",
                    partial(&answer)
                ),
                true,
            ),
            Outcome::Error { message } => (
                format!(
                    "The subagent failed: {message}{}\n\n{usage_note}",
                    partial(&answer)
                ),
                true,
            ),
        };
        ToolCallResult {
            content: keel_tools::output::limit(content, &ctx.spill_dir),
            is_error,
            structured: Some(structured),
            images: Vec::new(),
        }
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
            child_usage: Mutex::new(Vec::new()),
            totals: CostTotals::default(),
            context,
            // The parent's mailbox, reminders and background tasks stay the parent's: a child
            // must neither consume its messages nor stop its tasks when it ends.
            extensions: Vec::new(),
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
