//! Slash commands and file references in prompts. Every frontend sends what the user typed as
//! [`Op::UserInput`](keel_protocol::Op); the engine decides here whether it is a command, so
//! print mode, the TUI, the SDK and the server behave the same.
//!
//! - Built-ins that report something (`/cost`, `/status`, `/help`, …) send nothing to the
//!   model: they emit [`Event::CommandOutput`] and end the run with that text as its result.
//! - `/init` and custom commands (`.keel/commands/`, `.claude/commands/`), user-invocable
//!   skills and MCP prompts (`/mcp__<server>__<prompt>`) expand to a prompt that runs as usual.
//!   A custom command's `` !`cmd` `` runs through the same permission check as a Bash call and
//!   its output is inlined; its `@file` references are attached; its `allowed-tools` and
//!   `model` apply until the run ends.
//! - An unknown `/name` is an error listing near matches, and nothing reaches the model.
//! - In an ordinary prompt, `@path` tokens that name readable files inside the working
//!   directories are attached after the prompt.
//!
//! Every input ends with exactly one `RunFinished`, so frontends need no special case.

use std::time::Instant;

use keel_config::{AgentDefinition, CustomCommand, Skill};
use keel_policy::Decision;
use keel_policy::hooks::{HookEvent, SessionStartSource};
use keel_protocol::{Event, ModelUsage, Outcome, PermissionDenial, PlanItem, Usage};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::emit::{Emitter, lock};
use crate::permission::Gate;
use crate::tools::PlannedCall;
use crate::{RunTally, Session, agent, millis, skill};

/// What the user configured beyond settings, and the facts slash commands report.
#[derive(Debug, Clone, Default)]
pub struct Extensions {
    /// Skills (`SKILL.md` folders).
    pub skills: Vec<Skill>,
    /// Custom slash commands.
    pub commands: Vec<CustomCommand>,
    /// The user's agent definitions (keel adds its built-in ones).
    pub agents: Vec<AgentDefinition>,
    /// The memory files in the system prompt, one line each, for `/memory`.
    pub memory_files: Vec<String>,
    /// System prompt blocks every subagent gets after its own (where it runs).
    pub subagent_context: Vec<String>,
    /// The plan of a resumed session, for `/todos` until the plan changes.
    pub plan: Vec<PlanItem>,
    /// Usage and cost of the session's earlier runs (when resumed), for `/cost`.
    pub prior: CostTotals,
}

impl Extensions {
    /// The skills the model may load (not those only the user may start).
    pub(crate) fn model_skills(&self) -> Vec<Skill> {
        self.skills
            .iter()
            .filter(|s| !s.disable_model_invocation)
            .cloned()
            .collect()
    }
}

/// Usage and cost over a session's runs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CostTotals {
    /// Prompts worked on (and local commands run).
    pub runs: u64,
    /// Model turns.
    pub turns: u64,
    /// Tokens.
    pub usage: Usage,
    /// Cost in US dollars (models without a known price add nothing).
    pub cost_usd: f64,
    /// Wall time of the runs.
    pub duration_ms: u64,
    /// Time spent waiting on the model API.
    pub duration_api_ms: u64,
    /// Tokens and cost per model.
    pub per_model: Vec<ModelUsage>,
}

impl CostTotals {
    /// Adds a finished run (`RunFinished`; other events are ignored).
    pub fn add_run(&mut self, event: &Event) {
        let Event::RunFinished {
            num_turns,
            usage,
            total_cost_usd,
            duration_ms,
            duration_api_ms,
            model_usage,
            ..
        } = event
        else {
            return;
        };
        self.runs += 1;
        self.turns += u64::from(*num_turns);
        self.usage.add(usage);
        self.cost_usd += total_cost_usd;
        self.duration_ms += duration_ms;
        self.duration_api_ms += duration_api_ms;
        for entry in model_usage {
            match self.per_model.iter_mut().find(|m| m.model == entry.model) {
                Some(mine) => {
                    mine.usage.add(&entry.usage);
                    mine.cost_usd = mine.cost_usd.zip(entry.cost_usd).map(|(a, b)| a + b);
                }
                None => self.per_model.push(entry.clone()),
            }
        }
    }

    /// The `/cost` report.
    pub fn render(&self) -> String {
        let seconds = |ms: u64| format!("{:.1}s", ms as f64 / 1000.0);
        let mut out = format!(
            "Total cost:            ${:.4}\nTotal duration (API):  {}\nTotal duration (wall): {}\n\
             Model turns:           {} (over {} prompts)\nUsage:                 {}",
            self.cost_usd,
            seconds(self.duration_api_ms),
            seconds(self.duration_ms),
            self.turns,
            self.runs,
            tokens(&self.usage)
        );
        if !self.per_model.is_empty() {
            out.push_str("\nUsage by model:");
            for entry in &self.per_model {
                let cost = entry
                    .cost_usd
                    .map_or_else(|| "cost unknown".to_string(), |c| format!("${c:.4}"));
                out.push_str(&format!(
                    "\n    {}: {} ({cost})",
                    entry.model,
                    tokens(&entry.usage)
                ));
            }
        }
        out
    }
}

fn tokens(usage: &Usage) -> String {
    format!(
        "{} input, {} output, {} cache read, {} cache write",
        usage.input_tokens,
        usage.output_tokens,
        usage.cache_read_input_tokens,
        usage.cache_creation_input_tokens
    )
}

/// The built-in commands and what they do, as `/help` lists them.
pub const BUILTIN_COMMANDS: &[(&str, &str)] = &[
    ("agents", "List the agents the Agent tool can start"),
    (
        "clear",
        "Start a fresh conversation (the transcript keeps the old one)",
    ),
    (
        "compact",
        "Summarise the conversation to free context [instructions]",
    ),
    ("cost", "Show the session's token usage and cost"),
    ("exit", "Leave keel (handled by the terminal UI)"),
    ("help", "List the commands"),
    ("hooks", "List the configured hooks"),
    (
        "init",
        "Ask the agent to write an AGENTS.md for this repository",
    ),
    ("mcp", "Show the MCP servers and their status"),
    ("memory", "List the memory files in the system prompt"),
    ("model", "Show or switch the model [name]"),
    ("permissions", "Show the permission mode and rules"),
    ("resume", "Resume another session (keel --resume <id>)"),
    ("status", "Show the session, model, mode and servers"),
    (
        "tasks",
        "List the background tasks (commands and agents) of the session",
    ),
    ("todos", "Show the current task list"),
];

/// The prompt `/init` sends.
const INIT_PROMPT: &str = "\
Please analyze this repository and create an AGENTS.md file at its root, for coding agents \
that will work in it later. Include:
1. The commands to build, lint and test the project, including how to run a single test.
2. The high-level architecture: how the code is organised and the parts that take reading \
several files to understand.
3. Conventions the code follows that are not obvious from one file.

Keep it short and specific to this repository: do not list every file or component, do not \
add generic advice, and do not invent sections such as tips for development. If AGENTS.md \
exists, improve it rather than starting over; read CLAUDE.md, README.md, .cursorrules, \
.cursor/rules/ and .github/copilot-instructions.md if they exist and keep what matters from \
them. Start the file with:

# AGENTS.md

This file guides coding agents working in this repository.";

/// How many lines of an `@file` are attached before it is cut.
const ATTACH_MAX_LINES: usize = 2000;
/// How many characters of an `@file` are attached before it is cut.
const ATTACH_MAX_CHARS: usize = 100_000;

/// A command as typed: `/name args`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Invocation {
    pub(crate) name: String,
    pub(crate) args: String,
}

/// Reads `text` as a slash command if it is one: `/` and a name of letters, digits, `-`, `_`,
/// `.` and `:`; a path such as `/usr/bin/env` is not a command.
pub(crate) fn parse(text: &str) -> Option<Invocation> {
    let rest = text.trim_start().strip_prefix('/')?;
    let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
    let name = &rest[..end];
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
    {
        return None;
    }
    Some(Invocation {
        name: name.to_string(),
        args: rest[end..].trim().to_string(),
    })
}

/// What handling a command came to.
enum Handled {
    /// Send this prompt to the model.
    Prompt(String),
    /// Show this and end the run.
    Output(String),
    /// The command failed; end the run with this error.
    Failed(String, Vec<PermissionDenial>),
}

impl Session {
    /// Adds skills, custom commands and agent definitions: offers the `Skill` and `Agent`
    /// tools (unless a deny rule hides them or a `--tools` list leaves them out) and keeps what
    /// slash commands report.
    pub fn with_extensions(mut self, ext: Extensions) -> Self {
        let skills = ext.model_skills();
        if !skills.is_empty() && self.may_add_tool(skill::NAME) {
            let tool = skill::SkillTool::new(skills, self.shared.clone());
            if let Err(error) = self.tools.register(std::sync::Arc::new(tool)) {
                tracing::error!(%error, "the Skill tool was not registered");
            }
        }
        self.totals = ext.prior.clone();
        self.ext = std::sync::Arc::new(ext);
        if self.may_add_tool(agent::NAME) {
            let tool = agent::AgentTool::new(&self.agents());
            if let Err(error) = self.tools.register(std::sync::Arc::new(tool)) {
                tracing::error!(%error, "the Agent tool was not registered");
            }
        }
        self
    }

    /// Whether the session may add its own tool `name` (see [`crate::SESSION_TOOLS`]).
    fn may_add_tool(&self, name: &str) -> bool {
        self.tools.get(name).is_none()
            && self.config.offers(name)
            && !self.shared.permissions.is_hidden(name)
    }

    /// The commands a user can type, without `/`: built-ins, custom commands and skills
    /// (Claude Code's `slash_commands` in the stream-json `init` line).
    pub fn slash_commands(&self) -> Vec<String> {
        let mut names: Vec<String> = BUILTIN_COMMANDS
            .iter()
            .map(|(n, _)| (*n).to_string())
            .collect();
        names.extend(self.ext.commands.iter().map(|c| c.name.clone()));
        names.extend(
            self.ext
                .skills
                .iter()
                .filter(|s| !names.contains(&s.name))
                .map(|s| s.name.clone())
                .collect::<Vec<_>>(),
        );
        names
    }

    /// The agents the `Agent` tool can start, by name.
    pub fn agent_names(&self) -> Vec<String> {
        self.agents().into_iter().map(|a| a.name).collect()
    }

    /// The skills, by name.
    pub fn skill_names(&self) -> Vec<String> {
        self.ext.skills.iter().map(|s| s.name.clone()).collect()
    }

    /// Handles one input: a slash command, or a prompt (with its `@file` references attached).
    /// Whatever a run granted (skills' and commands' `allowed-tools`, a model switch) is taken
    /// back when it ends.
    pub(crate) async fn handle_input(
        &mut self,
        text: String,
        emitter: &Emitter,
        cancel: CancellationToken,
    ) {
        let started = Instant::now();
        match parse(&text) {
            None => {
                let attached = self.attachments(&text).await;
                self.pending_context.extend(attached);
                self.run(text, emitter, cancel).await;
            }
            Some(invocation) => {
                let mut tally = RunTally::default();
                match self
                    .command(&invocation, emitter, &cancel, &mut tally)
                    .await
                {
                    Handled::Prompt(prompt) => self.run(prompt, emitter, cancel).await,
                    Handled::Output(output) => {
                        emitter.emit(Event::CommandOutput {
                            command: format!("/{}", invocation.name),
                            text: output.clone(),
                        });
                        tally.last_text = output;
                        self.finish_local(Outcome::Success, tally, started, emitter);
                    }
                    Handled::Failed(message, denials) => {
                        tally.denials.extend(denials);
                        self.finish_local(Outcome::Error { message }, tally, started, emitter);
                    }
                }
            }
        }
        skill::end_run(&self.shared);
        // Images of a prompt that turned out to be a local command go nowhere.
        self.pending_images.clear();
    }

    /// Ends a run that sent the model no prompt (a compaction's summary call may have used
    /// tokens, which `tally` holds).
    fn finish_local(
        &mut self,
        outcome: Outcome,
        tally: RunTally,
        started: Instant,
        emitter: &Emitter,
    ) {
        let result = if outcome == Outcome::Success {
            tally.last_text
        } else {
            String::new()
        };
        let finished = Event::RunFinished {
            outcome,
            result,
            num_turns: 0,
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

    /// Handles a command; model calls it makes itself (a compaction summary) count in `tally`.
    async fn command(
        &mut self,
        invocation: &Invocation,
        emitter: &Emitter,
        cancel: &CancellationToken,
        tally: &mut RunTally,
    ) -> Handled {
        let args = invocation.args.as_str();
        match invocation.name.as_str() {
            "help" => Handled::Output(self.help().await),
            "clear" => {
                self.clear(emitter, cancel).await;
                Handled::Output(
                    "Conversation cleared: the next prompt starts a fresh conversation."
                        .to_string(),
                )
            }
            "compact" => {
                let instructions = (!args.is_empty()).then_some(args);
                match self
                    .compact("manual", instructions, emitter, cancel, Some(tally))
                    .await
                {
                    Ok(()) => Handled::Output("Conversation compacted.".to_string()),
                    Err(problem) => Handled::Failed(
                        format!("/compact: could not compact the conversation: {problem}"),
                        Vec::new(),
                    ),
                }
            }
            "cost" => Handled::Output(self.totals.render()),
            "model" => Handled::Output(self.switch_model(args, emitter)),
            "status" => Handled::Output(self.status()),
            "tasks" => Handled::Output(self.tasks_report()),
            "permissions" | "allowed-tools" => Handled::Output(self.permissions_report()),
            "memory" => Handled::Output(self.memory_report()),
            "init" => Handled::Prompt(if args.is_empty() {
                INIT_PROMPT.to_string()
            } else {
                format!("{INIT_PROMPT}\n\nAlso: {args}")
            }),
            "agents" => Handled::Output(format!(
                "Agents the Agent tool can start:\n{}",
                agent::describe(&self.agents())
                    .iter()
                    .map(|l| format!("  {l}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            )),
            "mcp" => Handled::Output(self.mcp_report()),
            "hooks" => Handled::Output(self.hooks_report()),
            "todos" => {
                let plan = emitter.plan();
                Handled::Output(todos_report(if plan.is_empty() {
                    &self.ext.plan
                } else {
                    &plan
                }))
            }
            "resume" => Handled::Output(
                "A session is resumed when keel starts: keel --resume <session id> (or keel \
                 --continue for the latest one here); keel sessions lists them."
                    .to_string(),
            ),
            "exit" | "quit" => Handled::Output(
                "Nothing to leave here: the session ends when its frontend closes (Ctrl-D in \
                 the terminal UI)."
                    .to_string(),
            ),
            name => self.custom(name, args, emitter, cancel).await,
        }
    }

    /// A custom command, a user-invocable skill or an MCP prompt; else an unknown command.
    async fn custom(
        &mut self,
        name: &str,
        args: &str,
        emitter: &Emitter,
        cancel: &CancellationToken,
    ) -> Handled {
        if let Some(command) = self.find_command(name) {
            let label = format!("/{}", command.name);
            let problems = skill::grant_for_run(
                &self.shared,
                &command.allowed_tools,
                &format!("command {label}"),
            );
            for problem in problems {
                emitter.emit(Event::Notice {
                    level: keel_protocol::NoticeLevel::Warning,
                    message: format!("{}: {problem}", command.path.display()),
                });
            }
            if let Some(model) = &command.model {
                skill::switch_model_for_run(&self.shared, model);
            }
            let body = keel_config::substitute_arguments(&command.body, args);
            return self.expand(&label, body.trim(), emitter, cancel).await;
        }
        if let Some(skill) = skill::find(&self.ext.skills, name).cloned() {
            skill::grant_for_run(
                &self.shared,
                &skill.allowed_tools,
                &format!("skill {}", skill.name),
            );
            if let Some(model) = &skill.model {
                skill::switch_model_for_run(&self.shared, model);
            }
            return Handled::Prompt(skill.render(Some(args)));
        }
        if name.starts_with("mcp__")
            && let Some(manager) = self.mcp.clone()
            && let Some(prompt) = manager.find_prompt_command(name).await
        {
            let args = keel_mcp::PromptArgs::from_command_line(args);
            return match manager.get_prompt(&prompt.server, &prompt.name, args).await {
                Ok(messages) => {
                    let text: Vec<String> = messages
                        .into_iter()
                        .map(|m| m.text)
                        .filter(|t| !t.trim().is_empty())
                        .collect();
                    if text.is_empty() {
                        Handled::Failed(
                            format!("/{name}: the MCP server returned an empty prompt"),
                            Vec::new(),
                        )
                    } else {
                        Handled::Prompt(text.join("\n\n"))
                    }
                }
                Err(error) => Handled::Failed(format!("/{name}: {error}"), Vec::new()),
            };
        }
        Handled::Failed(self.unknown(name).await, Vec::new())
    }

    /// A custom command by its full name, or by its bare name when only one has it.
    fn find_command(&self, name: &str) -> Option<CustomCommand> {
        if let Some(exact) = self.ext.commands.iter().find(|c| c.name == name) {
            return Some(exact.clone());
        }
        let mut bare = self.ext.commands.iter().filter(|c| c.short_name() == name);
        match (bare.next(), bare.next()) {
            (Some(only), None) => Some(only.clone()),
            _ => None,
        }
    }

    /// Runs a command body's `` !`cmd` `` snippets (each through the Bash permission check)
    /// and attaches its `@file` references.
    async fn expand(
        &mut self,
        label: &str,
        body: &str,
        emitter: &Emitter,
        cancel: &CancellationToken,
    ) -> Handled {
        let attached = self.attachments(body).await;
        let ctx = self.tool_ctx.with_cancel(cancel.clone());
        let mut tally = RunTally::default();
        let mut out = String::with_capacity(body.len());
        let mut rest = body;
        while let Some(start) = rest.find("!`") {
            let Some(len) = rest[start + 2..].find('`') else {
                break;
            };
            out.push_str(&rest[..start]);
            let command = &rest[start + 2..start + 2 + len];
            rest = &rest[start + 2 + len + 1..];
            let call = PlannedCall {
                id: format!("toolu_cmd_{}", uuid::Uuid::new_v4().simple()),
                name: "Bash".to_string(),
                input: json!({ "command": command }),
                invalid_input: None,
            };
            let input = match self.gate(&call, &ctx, emitter, &mut tally).await {
                Gate::Run(input) => input,
                Gate::Refuse { reason } => {
                    return Handled::Failed(
                        format!("{label}: its command !`{command}` was not run: {reason}"),
                        tally.denials,
                    );
                }
            };
            let result = self.tools.call("Bash", input, &ctx).await;
            if result.is_error {
                return Handled::Failed(
                    format!(
                        "{label}: its command !`{command}` failed:\n{}",
                        result.content.trim_end()
                    ),
                    tally.denials,
                );
            }
            out.push_str(result.content.trim_end());
        }
        out.push_str(rest);
        for block in attached {
            out.push_str("\n\n");
            out.push_str(&block);
        }
        Handled::Prompt(out)
    }

    /// The `@path` references in `text` that name files the model may read, each as a text
    /// block with the file's contents.
    async fn attachments(&self, text: &str) -> Vec<String> {
        let mut blocks = Vec::new();
        for token in file_references(text) {
            if let Some(block) = self.attachment(&token).await {
                blocks.push(block);
            }
        }
        blocks
    }

    async fn attachment(&self, token: &str) -> Option<String> {
        let path = self.tool_ctx.resolve_path(token);
        let meta = tokio::fs::metadata(&path).await.ok()?;
        if !meta.is_file() {
            return None;
        }
        // Only what the Read tool could read without asking: deny rules and the working
        // directories apply to attachments too.
        let verdict = self.shared.permissions.decide(
            "Read",
            &json!({ "file_path": path }),
            &self.tool_ctx.current_dir(),
            true,
        );
        if verdict.decision != Decision::Allow {
            return None;
        }
        let bytes = tokio::fs::read(&path).await.ok()?;
        if bytes.contains(&0) {
            return Some(format!(
                "(@{token} is a binary file and was not attached; use the Read tool to look at it.)"
            ));
        }
        let text = String::from_utf8_lossy(&bytes);
        let (body, note) = clip(&text);
        if note.is_none() {
            self.tool_ctx.record_read(&path);
        }
        let fence = fence_for(&body);
        Some(format!(
            "Contents of {token} ({}):\n{fence}\n{}\n{fence}{}",
            path.display(),
            body.trim_end_matches('\n'),
            note.unwrap_or_default()
        ))
    }

    /// Starts a fresh conversation; SessionStart hooks run again with source `clear`.
    async fn clear(&mut self, emitter: &Emitter, cancel: &CancellationToken) {
        self.messages.clear();
        self.pending_context.clear();
        emitter.emit(Event::Compacted {
            trigger: "clear".to_string(),
            tokens_before: 0,
            tokens_after: 0,
            messages: Vec::new(),
        });
        if let Some(outcome) = self
            .run_hooks(
                HookEvent::SessionStart,
                |c| c.session_start(SessionStartSource::Clear),
                emitter,
                cancel,
            )
            .await
        {
            self.pending_context.extend(
                outcome
                    .additional_context
                    .iter()
                    .map(|text| crate::hooks::context_block(HookEvent::SessionStart, text)),
            );
        }
    }

    fn switch_model(&self, args: &str, emitter: &Emitter) -> String {
        let current = lock(&self.shared.model).clone();
        if args.is_empty() {
            return format!(
                "Model: {current}. Switch with /model <name>, e.g. /model claude-haiku-4-5 (or \
                 sonnet, opus, haiku)."
            );
        }
        let model = keel_model::models::resolve_alias(args, &current);
        lock(&self.shared.model).clone_from(&model);
        emitter.emit(Event::ModelChanged {
            model: model.clone(),
        });
        format!("Model set to {model}.")
    }

    async fn help(&self) -> String {
        let mut out = String::from("Commands:");
        for (name, what) in BUILTIN_COMMANDS {
            out.push_str(&format!("\n  /{name:<12} {what}"));
        }
        if !self.ext.commands.is_empty() {
            out.push_str("\n\nCustom commands:");
            for command in &self.ext.commands {
                let hint = command
                    .argument_hint
                    .as_deref()
                    .map(|h| format!(" {h}"))
                    .unwrap_or_default();
                out.push_str(&format!(
                    "\n  /{}{hint}  {} ({})",
                    command.name,
                    command.description,
                    command.origin()
                ));
            }
        }
        if !self.ext.skills.is_empty() {
            out.push_str("\n\nSkills (the model loads them when they fit; /name starts one):");
            for skill in &self.ext.skills {
                out.push_str(&format!(
                    "\n  /{}  {} ({})",
                    skill.name, skill.description, skill.scope
                ));
            }
        }
        if let Some(manager) = &self.mcp {
            let prompts = manager.list_prompts().await;
            if !prompts.is_empty() {
                out.push_str("\n\nMCP prompts:");
                for prompt in prompts {
                    let args: Vec<String> = prompt
                        .arguments
                        .iter()
                        .map(|a| {
                            if a.required {
                                format!("<{}>", a.name)
                            } else {
                                format!("[{}]", a.name)
                            }
                        })
                        .collect();
                    out.push_str(&format!(
                        "\n  /{} {}  {}",
                        prompt.command,
                        args.join(" "),
                        prompt.description.unwrap_or_default()
                    ));
                }
            }
        }
        out.push_str(
            "\n\nIn a prompt, @path attaches a file. Custom commands live in .keel/commands/ or \
             .claude/commands/, skills in .keel/skills/<name>/SKILL.md, agents in .keel/agents/.",
        );
        out
    }

    fn tasks_report(&self) -> String {
        let Some(shell) = &self.tool_ctx.background else {
            return "This session keeps no background tasks.".to_string();
        };
        let tasks = shell.list();
        if tasks.is_empty() {
            return "No background tasks in this session. They are started with Bash or Agent \
                    and run_in_background."
                .to_string();
        }
        let running = tasks.iter().filter(|t| t.status == "running").count();
        let mut out = format!("Background tasks ({} running):", running);
        let width = |f: fn(&keel_tools::BackgroundTaskSummary) -> usize| {
            tasks.iter().map(f).max().unwrap_or(0)
        };
        let (id_w, kind_w, status_w) = (
            width(|t| t.id.len()),
            width(|t| t.kind.len()),
            width(|t| t.status.len()),
        );
        for task in &tasks {
            out.push_str(&format!(
                "\n  {:<id_w$}  {:<kind_w$}  {:<status_w$}  {:>8}  {}",
                task.id,
                task.kind,
                task.status,
                runtime(task.runtime),
                task.description
            ));
        }
        out.push_str("\n\nRead one with TaskOutput, stop one with TaskStop.");
        out
    }

    fn status(&self) -> String {
        let servers = self.mcp_statuses();
        let servers = if servers.is_empty() {
            "none".to_string()
        } else {
            servers
                .iter()
                .map(|(name, status)| format!("{name} ({status})"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        format!(
            "keel {}\nSession: {}\nWorking directory: {}\nModel: {}\nPermission mode: {}\n\
             Tools: {}\nMCP servers: {servers}\nMemory files: {}\nSkills: {}, custom commands: \
             {}, agents: {}",
            env!("CARGO_PKG_VERSION"),
            self.id,
            self.tool_ctx.current_dir().display(),
            lock(&self.shared.model),
            self.shared.permissions.mode().as_str(),
            self.tools.names().join(", "),
            self.ext.memory_files.len(),
            self.ext.skills.len(),
            self.ext.commands.len(),
            self.agents().len(),
        )
    }

    fn permissions_report(&self) -> String {
        let mut out = format!(
            "Permission mode: {}\nWorking directories: {}",
            self.shared.permissions.mode().as_str(),
            self.shared
                .permissions
                .working_dirs()
                .iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
        let rules = self.shared.permissions.listing();
        if rules.is_empty() {
            out.push_str(
                "\nNo permission rules. Add them under permissions.allow/ask/deny in \
                 .keel/settings.json, or with --allowedTools/--disallowedTools.",
            );
        }
        for list in [
            keel_policy::RuleList::Allow,
            keel_policy::RuleList::Ask,
            keel_policy::RuleList::Deny,
        ] {
            let mine: Vec<&(keel_policy::RuleList, String, String)> =
                rules.iter().filter(|(l, _, _)| *l == list).collect();
            if mine.is_empty() {
                continue;
            }
            out.push_str(&format!("\n{}:", list.as_str()));
            for (_, rule, source) in mine {
                out.push_str(&format!("\n  {rule}  ({source})"));
            }
        }
        out
    }

    fn memory_report(&self) -> String {
        if self.ext.memory_files.is_empty() {
            return "No memory files are loaded. Write the project's instructions in AGENTS.md \
                    (or CLAUDE.md) at its root, or run /init to have one written."
                .to_string();
        }
        format!(
            "Memory files in the system prompt:\n{}",
            self.ext
                .memory_files
                .iter()
                .map(|f| format!("  {f}"))
                .collect::<Vec<_>>()
                .join("\n")
        )
    }

    fn mcp_report(&self) -> String {
        let Some(manager) = &self.mcp else {
            return "No MCP servers are configured. Add one with keel mcp add, in .mcp.json, or \
                    with --mcp-config."
                .to_string();
        };
        let tools = manager.tools();
        let mut out = String::from("MCP servers:");
        for (name, status) in manager.statuses() {
            let prefix = format!("mcp__{}__", keel_mcp::client::sanitize(&name));
            let count = tools
                .iter()
                .filter(|t| t.name().starts_with(&prefix))
                .count();
            out.push_str(&format!("\n  {name}: {status} ({count} tools)"));
        }
        out
    }

    fn hooks_report(&self) -> String {
        let listing = self
            .hooks
            .as_ref()
            .map(|h| h.set.list())
            .unwrap_or_default();
        if listing.is_empty() {
            return "No hooks are configured (see the hooks key of .keel/settings.json)."
                .to_string();
        }
        let mut out = String::from("Hooks:");
        for hook in listing {
            let matcher = if hook.matcher.is_empty() {
                String::new()
            } else {
                format!(" [{}]", hook.matcher)
            };
            let source = hook.source.map(|s| format!(" ({s})")).unwrap_or_default();
            out.push_str(&format!(
                "\n  {}{matcher}: {}{source}",
                hook.event.as_str(),
                hook.command
            ));
        }
        out
    }

    /// The error for an unknown command, with the nearest names.
    async fn unknown(&self, name: &str) -> String {
        let mut names: Vec<String> = self.slash_commands();
        if let Some(manager) = &self.mcp {
            names.extend(manager.list_prompts().await.into_iter().map(|p| p.command));
        }
        let near = near_matches(name, &names);
        let hint = if near.is_empty() {
            "/help lists the commands".to_string()
        } else {
            format!(
                "did you mean {}? (/help lists the commands)",
                near.iter()
                    .map(|n| format!("/{n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        format!(
            "Unknown command: /{name}; {hint}. Nothing was sent to the model (to send text \
             that starts with /, begin the prompt with another word)."
        )
    }
}

/// A task's runtime as a person reads it: `12s`, `3m04s`, `1h02m`.
fn runtime(duration: std::time::Duration) -> String {
    let secs = duration.as_secs();
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m{:02}s", secs / 60, secs % 60),
        _ => format!("{}h{:02}m", secs / 3600, (secs % 3600) / 60),
    }
}

fn todos_report(plan: &[PlanItem]) -> String {
    if plan.is_empty() {
        return "No tasks yet: the agent keeps a task list for work with several steps."
            .to_string();
    }
    let mut out = String::from("Tasks:");
    for item in plan {
        let mark = match item.status.as_str() {
            "completed" => "[x]",
            "in_progress" => "[~]",
            _ => "[ ]",
        };
        out.push_str(&format!("\n  {mark} {}", item.subject));
    }
    out
}

/// Names close to `name`: sharing a prefix, or within a small edit distance.
fn near_matches(name: &str, names: &[String]) -> Vec<String> {
    let mut scored: Vec<(usize, &String)> = names
        .iter()
        .filter_map(|candidate| {
            let distance = edit_distance(name, candidate);
            let close = distance <= (name.chars().count() / 3).max(2)
                || candidate.starts_with(name)
                || (name.len() >= 3 && candidate.contains(name));
            close.then_some((distance, candidate))
        })
        .collect();
    scored.sort();
    scored.into_iter().take(3).map(|(_, n)| n.clone()).collect()
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            current.push(
                (previous[j] + cost)
                    .min(previous[j + 1] + 1)
                    .min(current[j] + 1),
            );
        }
        previous = current;
    }
    previous[b.len()]
}

/// `@path` tokens outside code: at the start of a word, trailing punctuation dropped, each
/// once.
fn file_references(text: &str) -> Vec<String> {
    let mut refs: Vec<String> = Vec::new();
    let mut in_fence = false;
    for line in text.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
            in_fence = !in_fence;
            continue;
        }
        if in_fence {
            continue;
        }
        let chars: Vec<char> = line.chars().collect();
        let mut in_code = false;
        for (i, c) in chars.iter().enumerate() {
            if *c == '`' {
                in_code = !in_code;
                continue;
            }
            if in_code || *c != '@' {
                continue;
            }
            let starts_word = i == 0
                || chars[i - 1].is_whitespace()
                || matches!(chars[i - 1], '(' | '[' | '{' | '"' | '\'');
            if !starts_word {
                continue;
            }
            let token: String = chars[i + 1..]
                .iter()
                .take_while(|c| !c.is_whitespace() && **c != '`' && **c != '@')
                .collect();
            let token = token.trim_end_matches(|c: char| {
                matches!(
                    c,
                    '.' | ',' | ';' | ':' | '!' | '?' | ')' | ']' | '}' | '"' | '\''
                )
            });
            if !token.is_empty() && !refs.iter().any(|r| r == token) {
                refs.push(token.to_string());
            }
        }
    }
    refs
}

/// The text to attach and, when it was cut, a note saying so.
fn clip(text: &str) -> (String, Option<String>) {
    let total_lines = text.lines().count();
    let mut out = String::new();
    for (n, line) in text.lines().enumerate() {
        if n >= ATTACH_MAX_LINES || out.len() + line.len() > ATTACH_MAX_CHARS {
            return (
                out,
                Some(format!(
                    "\n(Cut after {n} of {total_lines} lines; read the rest with the Read tool \
                     using offset {}.)",
                    n + 1
                )),
            );
        }
        out.push_str(line);
        out.push('\n');
    }
    (out, None)
}

/// A backtick fence longer than any run of backticks in `text`.
fn fence_for(text: &str) -> String {
    let mut longest = 0;
    let mut run = 0;
    for c in text.chars() {
        if c == '`' {
            run += 1;
            longest = longest.max(run);
        } else {
            run = 0;
        }
    }
    "`".repeat((longest + 1).max(3))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_parsed_and_paths_are_not() {
        assert_eq!(
            parse("/review-pr 12 high"),
            Some(Invocation {
                name: "review-pr".into(),
                args: "12 high".into()
            })
        );
        assert_eq!(
            parse("  /frontend:build").map(|i| i.name),
            Some("frontend:build".into())
        );
        assert_eq!(parse("/usr/bin/env is broken"), None);
        assert_eq!(parse("/"), None);
        assert_eq!(parse("fix /etc/hosts"), None);
    }

    #[test]
    fn file_references_skip_code_and_emails() {
        let text = "Look at @src/main.rs, and @README.md.\nmail me@example.com\n`@not/this`\n```\n@nor/this\n```\n(@lib.rs)";
        assert_eq!(
            file_references(text),
            ["src/main.rs", "README.md", "lib.rs"]
        );
    }

    #[test]
    fn near_matches_are_close() {
        let names: Vec<String> = ["cost", "compact", "clear", "review-pr"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(near_matches("cots", &names), ["cost"]);
        assert_eq!(near_matches("review", &names), ["review-pr"]);
        assert!(near_matches("zzzzzz", &names).is_empty());
    }

    #[test]
    fn long_files_are_cut_with_a_note() {
        let text: String = (0..2500).map(|i| format!("line {i}\n")).collect();
        let (body, note) = clip(&text);
        assert_eq!(body.lines().count(), ATTACH_MAX_LINES);
        assert!(note.unwrap().contains("2500"));
        assert_eq!(fence_for("a ```` b"), "`````");
    }
}
