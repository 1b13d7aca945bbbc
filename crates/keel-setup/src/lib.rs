//! Turning options, settings and the environment into a ready session: the one place where
//! keel's layers meet, so every frontend (print mode, the HTTP server, ACP) starts sessions the
//! same way.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use std::sync::Mutex;
use std::time::Duration;

use keel_config::{LoadOptions, LoadedSettings, MemoryLoader, MemoryWarning, SourceSet};
use keel_context::{Environment, GitStatus, PartKind, PromptInputs, PromptOptions, SystemPrompt};
use keel_engine::{Approver, ContextSetup, HookSetup, Session, SessionConfig, SessionSetup};
use keel_model::{ModelClient, Pricing, ProviderKind, ProviderOptions, RecordingClient, Selected};
use keel_policy::hooks::{CallbackHook, HookEvent, HookSet};
use keel_policy::sandbox::SandboxPolicy;
use keel_policy::{PermissionMode, Policy, RuleList, RuleSource};
use keel_protocol::{Event, SessionId};
use keel_session::{SessionStore, Totals, Transcript, TranscriptWriter};
use keel_tools::{Sandbox, ToolContext, ToolRegistry};
use tokio_util::sync::CancellationToken;

mod options;
pub use options::{SessionOptions, split_rules};

/// Why a session could not be set up. Every message names the flag, setting or file at fault
/// and what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// A settings file is unreadable or invalid.
    #[error(transparent)]
    Settings(#[from] keel_config::SettingsError),
    /// An option or setting has a value keel cannot use.
    #[error("{0}")]
    Invalid(String),
    /// No model provider could be set up.
    #[error(transparent)]
    Provider(#[from] keel_model::SelectionError),
    /// The MCP server configuration is invalid.
    #[error(transparent)]
    Mcp(#[from] keel_mcp::ConfigError),
    /// A transcript could not be found, read or written.
    #[error(transparent)]
    Session(#[from] keel_session::SessionError),
}

/// Shorthand for results of this crate.
pub type Result<T, E = SetupError> = std::result::Result<T, E>;

/// Where warnings go (settings, rules, memory files, hooks, MCP servers): stderr for the CLI,
/// the log and the client for the server.
pub type WarningSink = Arc<dyn Fn(&str) + Send + Sync>;

/// What a workspace is loaded from: the directory, home, environment and settings flags.
#[derive(Clone)]
pub struct WorkspaceRequest {
    /// The working directory (absolute).
    pub cwd: PathBuf,
    /// The user's home directory.
    pub home: PathBuf,
    /// The process environment (the settings' `env` is added on top).
    pub env: BTreeMap<String, String>,
    /// `--settings`: a JSON file or JSON text.
    pub settings: Option<String>,
    /// `--setting-sources`: which settings files to read.
    pub setting_sources: Option<String>,
    /// Where warnings go.
    pub warn: WarningSink,
}

fn bail<T>(message: impl Into<String>) -> Result<T> {
    Err(SetupError::Invalid(message.into()))
}

/// Where keel runs: the working directory, home, and the settings read for it.
pub struct Workspace {
    /// The working directory.
    pub cwd: PathBuf,
    /// The user's home directory.
    pub home: PathBuf,
    /// Settings from every layer.
    pub settings: LoadedSettings,
    /// Process environment with the settings' `env` on top.
    pub env: BTreeMap<String, String>,
    /// Which settings (and memory) files were asked for.
    pub sources: SourceSet,
    /// `git status`, started at load so it overlaps with the rest of start-up.
    git: Mutex<Option<GitStatus>>,
    /// Skills, custom commands and agent definitions, read on first use.
    definitions: std::sync::OnceLock<Definitions>,
    /// Where warnings go.
    warn: WarningSink,
}

/// What the user defined in Markdown files: skills, custom slash commands, agents.
#[derive(Debug, Clone, Default)]
pub struct Definitions {
    /// Skills (`.keel/skills/<name>/SKILL.md`, `.claude/skills/…`, user level too).
    pub skills: Vec<keel_config::Skill>,
    /// Custom slash commands (`.keel/commands/`, `.claude/commands/`).
    pub commands: Vec<keel_config::CustomCommand>,
    /// Agent definitions (`.keel/agents/`, `.claude/agents/`).
    pub agents: Vec<keel_config::AgentDefinition>,
}

/// How long start-up waits for `git status` before leaving it out of the prompt: a huge
/// repository must not hold up the first request.
const GIT_STATUS_WAIT: Duration = Duration::from_millis(15);

impl Workspace {
    /// Reads the settings for a directory. Broken settings are an error naming file, line,
    /// column and key; warnings go to the request's sink.
    pub fn load(request: WorkspaceRequest) -> Result<Self> {
        let WorkspaceRequest {
            cwd,
            home,
            env: process_env,
            settings,
            setting_sources,
            warn,
        } = request;
        let sources = match setting_sources.as_deref() {
            Some(text) => SourceSet::parse(text).map_err(SetupError::Invalid)?,
            None => SourceSet::default(),
        };
        let settings = keel_config::load(&LoadOptions {
            home: home.clone(),
            cwd: cwd.clone(),
            sources,
            flag_settings: settings,
        })?;
        for warning in &settings.warnings {
            warn(&warning.to_string());
        }
        let git = GitStatus::spawn(&cwd);
        let mut env = process_env;
        env.extend(settings.effective.env.clone());
        Ok(Self {
            cwd,
            home,
            settings,
            env,
            sources,
            git: Mutex::new(Some(git)),
            definitions: std::sync::OnceLock::new(),
            warn,
        })
    }

    /// Skills, custom commands and agent definitions for this directory, read once; files
    /// that cannot be used are warnings on stderr naming file and line.
    pub fn definitions(&self) -> &Definitions {
        self.definitions.get_or_init(|| {
            let sources = keel_config::DefinitionSources {
                home: self.home.clone(),
                project_root: self.settings.project_root.clone(),
                sources: self.sources,
            };
            let skills = keel_config::load_skills(&sources);
            let commands = keel_config::load_commands(&sources);
            let agents = keel_config::load_agents(&sources);
            for warning in skills
                .warnings
                .iter()
                .chain(&commands.warnings)
                .chain(&agents.warnings)
            {
                self.warn(&warning.to_string());
            }
            Definitions {
                skills: skills.items,
                commands: commands.items,
                agents: agents.items,
            }
        })
    }

    /// Reports a warning to whoever started this workspace.
    pub fn warn(&self, warning: &str) {
        (self.warn)(warning);
    }

    /// An environment variable, settings' `env` first.
    pub fn var(&self, name: &str) -> Option<String> {
        self.env.get(name).cloned()
    }

    /// The file "always allow" answers and `keel config set` (local scope) write to.
    pub fn local_settings_path(&self) -> PathBuf {
        self.settings
            .project_root
            .join(".keel")
            .join("settings.local.json")
    }

    /// The permission policy: mode from the flags or settings, rules from every settings file
    /// and `--allowedTools`/`--disallowedTools`, working directories from `--add-dir` and
    /// `permissions.additionalDirectories`. Rules that do not parse are warnings.
    pub fn policy(&self, opts: &SessionOptions) -> Result<Policy> {
        let mode = self.permission_mode(opts)?;
        let mut policy = Policy::new(mode, &self.cwd, &self.home);
        for dir in self.additional_dirs(&opts.add_dir)? {
            policy.add_working_dir(&dir);
        }
        let mut problems = Vec::new();
        for origin in self.settings.rules() {
            let list = match origin.list {
                "allow" => RuleList::Allow,
                "ask" => RuleList::Ask,
                _ => RuleList::Deny,
            };
            let source = RuleSource::new(origin.origin.clone(), origin.base_dir.clone());
            problems.extend(
                policy
                    .add_rules(list, [origin.rule.as_str()], &source)
                    .into_iter()
                    .map(|e| format!("{}: {e}", origin.origin)),
            );
        }
        for (flag, list, values) in [
            ("--allowedTools", RuleList::Allow, &opts.allowed_tools),
            ("--disallowedTools", RuleList::Deny, &opts.disallowed_tools),
        ] {
            let source = RuleSource::new(flag, self.cwd.clone());
            let rules = split_rules(values);
            problems.extend(
                policy
                    .add_rules(list, rules.iter().map(String::as_str), &source)
                    .into_iter()
                    .map(|e| format!("{flag}: {e}")),
            );
        }
        for problem in problems {
            self.warn(&format!("{problem} (rule skipped)"));
        }
        Ok(policy)
    }

    fn permission_mode(&self, opts: &SessionOptions) -> Result<PermissionMode> {
        let mode = if let Some(mode) = &opts.permission_mode {
            mode.parse::<PermissionMode>()
                .map_err(|e| SetupError::Invalid(format!("--permission-mode: {e}")))?
        } else if opts.dangerously_skip_permissions {
            PermissionMode::BypassPermissions
        } else if let Some(mode) = &self.settings.effective.permissions.default_mode {
            mode.parse::<PermissionMode>()
                .map_err(|e| SetupError::Invalid(format!("permissions.defaultMode: {e}")))?
        } else {
            PermissionMode::Default
        };
        if mode == PermissionMode::BypassPermissions
            && self
                .settings
                .effective
                .permissions
                .disable_bypass_permissions_mode
                .as_deref()
                == Some("disable")
        {
            return bail(
                "bypassPermissions mode is disabled by the setting \
                 permissions.disableBypassPermissionsMode; use --permission-mode acceptEdits or \
                 allow rules instead",
            );
        }
        Ok(mode)
    }

    /// `--add-dir` and `permissions.additionalDirectories`, each checked to exist.
    pub fn additional_dirs(&self, flags: &[PathBuf]) -> Result<Vec<PathBuf>> {
        let from_settings = self
            .settings
            .effective
            .permissions
            .additional_directories
            .iter()
            .map(PathBuf::from);
        let mut dirs = Vec::new();
        for dir in flags.iter().cloned().chain(from_settings) {
            let expanded = match dir.strip_prefix("~") {
                Ok(rest) => self.home.join(rest),
                Err(_) => self.cwd.join(&dir),
            };
            let resolved = std::fs::canonicalize(&expanded).map_err(|e| {
                SetupError::Invalid(format!(
                    "additional directory {}: no such directory; pass an existing directory: {e}",
                    dir.display()
                ))
            })?;
            if !dirs.contains(&resolved) {
                dirs.push(resolved);
            }
        }
        Ok(dirs)
    }

    /// The model asked for: `--model`, then `ANTHROPIC_MODEL` (for Anthropic), then the `model`
    /// setting; `None` lets the provider choose its default.
    pub fn requested_model(
        &self,
        flag: Option<&str>,
        provider: Option<ProviderKind>,
    ) -> Option<String> {
        let from_env = match provider {
            None | Some(ProviderKind::Anthropic) => self.var("ANTHROPIC_MODEL"),
            Some(_) => None,
        };
        flag.map(str::to_string)
            .or(from_env)
            .or_else(|| self.settings.effective.model.clone())
            .filter(|m| !m.trim().is_empty())
    }

    /// The system prompt for this directory: keel's instructions, the environment, memory
    /// files and the user's additions; plus warnings about the memory files.
    pub fn system_prompt(
        &self,
        opts: &SessionOptions,
    ) -> Result<(SystemPrompt, Vec<MemoryWarning>)> {
        let (prompt, warnings, _) = self.system_prompt_and_memory(opts)?;
        Ok((prompt, warnings))
    }

    /// [`Self::system_prompt`], and the memory files in it (for `/memory`).
    pub fn system_prompt_and_memory(
        &self,
        opts: &SessionOptions,
    ) -> Result<(
        SystemPrompt,
        Vec<MemoryWarning>,
        Vec<keel_config::MemoryFile>,
    )> {
        let additional_dirs = self.additional_dirs(&opts.add_dir)?;
        // A poisoned lock only means another thread panicked while taking the status; the
        // Option inside is still valid.
        let git = self
            .git
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
            .and_then(|git| git.join(GIT_STATUS_WAIT));
        let env = Environment::detect(&self.cwd, &additional_dirs).with_git_status(git);
        let memory = self.memory_loader().load();
        let (replace, append) = self.prompt_flags(opts)?;
        let skills = keel_context::render_skills(&self.definitions().skills);
        let prompt = SystemPrompt::assemble(&PromptInputs {
            env: &env,
            memory: &memory.files,
            skills: skills.as_deref(),
            agents: None,
            options: &PromptOptions { replace, append },
        });
        Ok((prompt, memory.warnings, memory.files))
    }

    /// `--system-prompt`/`--system-prompt-file` and `--append-system-prompt`(`-file`), the
    /// files read.
    fn prompt_flags(&self, opts: &SessionOptions) -> Result<(Option<String>, Option<String>)> {
        let read = |flag: &str, path: &Path| {
            std::fs::read_to_string(self.cwd.join(path)).map_err(|error| {
                SetupError::Invalid(format!(
                    "{flag} {}: cannot read the file ({error})",
                    path.display()
                ))
            })
        };
        let replace = match (&opts.system_prompt, &opts.system_prompt_file) {
            (Some(_), Some(_)) => {
                return bail("give --system-prompt or --system-prompt-file, not both");
            }
            (Some(text), None) => Some(text.clone()),
            (None, Some(path)) => Some(read("--system-prompt-file", path)?),
            (None, None) => None,
        };
        let mut append: Vec<String> = opts.append_system_prompt.iter().cloned().collect();
        if let Some(path) = &opts.append_system_prompt_file {
            append.push(read("--append-system-prompt-file", path)?);
        }
        let append = (!append.is_empty()).then(|| append.join("\n\n"));
        Ok((replace, append))
    }

    /// The loader of this directory's memory files (AGENTS.md, CLAUDE.md, ...).
    pub fn memory_loader(&self) -> MemoryLoader {
        MemoryLoader::new(&self.cwd, Some(&self.home)).with_sources(self.sources)
    }

    /// What the provider selection needs from the flags and settings.
    fn provider_options(&self, opts: &SessionOptions) -> Result<ProviderOptions> {
        let settings = &self.settings.effective;
        let kind = match opts.provider.as_deref().or(settings.provider.as_deref()) {
            Some(name) => Some(
                name.parse::<ProviderKind>()
                    .map_err(|e| SetupError::Invalid(format!("--provider: {e}")))?,
            ),
            None => None,
        };
        let thinking_budget = match opts.thinking.as_deref() {
            Some("disabled" | "off" | "false") => None,
            Some("enabled" | "adaptive" | "on" | "true") => Some(DEFAULT_THINKING_BUDGET),
            Some(budget) => Some(budget.parse::<u32>().map_err(|_| {
                SetupError::Invalid(format!(
                    "--thinking {budget:?}: give a token budget (e.g. 8000), enabled or disabled"
                ))
            })?),
            None => opts.max_thinking_tokens.or_else(|| {
                settings.thinking_budget_tokens.or_else(|| {
                    (settings.always_thinking_enabled == Some(true))
                        .then_some(DEFAULT_THINKING_BUDGET)
                })
            }),
        };
        Ok(ProviderOptions {
            kind,
            base_url: opts.base_url.clone().or_else(|| settings.base_url.clone()),
            api_key_env: opts
                .api_key_env
                .clone()
                .or_else(|| settings.api_key_env.clone()),
            model: self.requested_model(opts.model.as_deref(), kind),
            replay_file: opts.replay.as_ref().map(|p| self.cwd.join(p)),
            max_retries: opts.max_retries.or(settings.max_retries),
            thinking_budget,
            ..ProviderOptions::default()
        })
    }

    /// Prices: keel's table with the `pricing` setting on top.
    fn pricing(&self) -> Result<Pricing> {
        let overrides = self.settings.effective.pricing.clone().into_iter();
        Pricing::with_overrides(overrides).map_err(|e| SetupError::Invalid(format!("pricing: {e}")))
    }
}

impl Workspace {
    /// The MCP servers configured for this directory: settings, `.mcp.json` and `--mcp-config`,
    /// then the servers the frontend defined (ACP's `session/new`), which win on a name clash.
    pub fn mcp_servers(&self, opts: &SessionOptions) -> Result<Vec<keel_mcp::ServerConfig>> {
        let mut servers = keel_mcp::load_servers(&keel_mcp::McpSources {
            project_root: Some(self.settings.project_root.clone()),
            settings_servers: self.settings.effective.mcp_servers.clone(),
            flag_configs: opts.mcp_config.clone(),
            strict: opts.strict_mcp_config,
            disabled_project_servers: self.settings.effective.disabled_mcpjson_servers.clone(),
            cwd: self.cwd.clone(),
        })?;
        for extra in &opts.mcp_servers {
            servers.retain(|s| s.name != extra.name);
            servers.push(extra.clone());
        }
        Ok(servers)
    }

    /// How MCP servers are started: the settings' `env` visible to `${VAR}` expansion.
    pub fn mcp_options(&self) -> keel_mcp::ManagerOptions {
        let mut options = keel_mcp::ManagerOptions::new(self.settings.project_root.clone());
        let env = self.env.clone();
        options.env = Arc::new(move |name| env.get(name).cloned());
        options
    }
}

/// The thinking budget `--thinking` without a number (and `alwaysThinkingEnabled`) asks for.
const DEFAULT_THINKING_BUDGET: u32 = 10_000;

/// What a frontend adds to a session beyond the flags and settings.
#[derive(Default)]
pub struct Extras {
    /// Hooks the frontend runs itself (Agent SDK callbacks): event, matcher and callbacks.
    pub hook_callbacks: Vec<(HookEvent, String, Vec<CallbackHook>)>,
    /// How to reach MCP servers of type `sdk` (in the Agent SDK program's process).
    pub sdk_bridge: Option<Arc<dyn keel_mcp::SdkBridge>>,
    /// Report the model's raw stream as events (`--include-partial-messages`).
    pub stream_events: bool,
    /// The frontend answers the model's questions (`AskUserQuestion`).
    pub answers_questions: bool,
    /// The flags a team member started by this session inherits (beyond model and permission
    /// mode, which the session decides); `None`: this frontend cannot start team members.
    pub member_flags: Option<Vec<String>>,
    /// The seat of a team member's session (it works the team's tasks).
    pub seat: Option<keel_tasks::Seat>,
}

/// A session ready to serve, and what the renderer needs to know that the events do not say.
pub struct Prepared {
    /// The session, ready to serve.
    pub session: Session,
    /// The model requested.
    pub model: String,
    /// Where the credentials came from, as Claude Code reports it.
    pub api_key_source: String,
    /// The request's `max_tokens`.
    pub max_output_tokens: u32,
    /// The model's context window.
    pub context_window: u64,
    /// The MCP servers and their statuses.
    pub mcp_servers: Vec<(String, String)>,
    /// The slash commands the session understands (without `/`), MCP prompts included.
    pub slash_commands: Vec<String>,
    /// The agents the `Agent` tool can start.
    pub agents: Vec<String>,
    /// The skills.
    pub skills: Vec<String>,
    /// The session's transcript file.
    pub transcript_path: PathBuf,
    /// Whether the session continues an earlier one (its history was loaded).
    pub resumed: bool,
    /// The permission mode the session starts in.
    pub permission_mode: PermissionMode,
    /// The session's background tasks, task list, schedules and team seat.
    pub tasks: Arc<keel_tasks::TaskRuntime>,
    /// The session's MCP servers (a handle shared with the session), if any are configured.
    pub mcp: Option<keel_mcp::McpManager>,
    /// The provider's name (`anthropic`, `openai`, `replay`, ...), for diagnostics.
    pub provider: String,
    /// Where the provider's requests go (the replay file for `replay`), for diagnostics.
    pub base_url: String,
}

/// Builds the session a run of `keel` works in: settings, policy, provider, tools, system
/// prompt, hooks, sandbox, and a new, continued, resumed or forked transcript.
/// Builds the session a frontend that adds nothing of its own works in.
pub async fn prepare(
    opts: &SessionOptions,
    ws: &Workspace,
    approver: Approver,
) -> Result<Prepared> {
    prepare_with(opts, ws, approver, Extras::default()).await
}

/// [`prepare`], with what a frontend adds (SDK hook callbacks and in-process MCP servers).
pub async fn prepare_with(
    opts: &SessionOptions,
    ws: &Workspace,
    approver: Approver,
    extras: Extras,
) -> Result<Prepared> {
    let policy = ws.policy(opts)?;
    let named_tools = named_tools(opts.tools.as_deref());
    let options = ws.provider_options(opts)?;
    let lookup = |name: &str| ws.var(name);
    // MCP servers start while the provider is chosen: neither waits for the other.
    let servers = ws.mcp_servers(opts)?;
    let (selected, mcp) = tokio::join!(keel_model::select(&options, &lookup), async {
        if servers.is_empty() {
            None
        } else {
            let mut options = ws.mcp_options();
            options.sdk_bridge = extras.sdk_bridge.clone();
            Some(keel_mcp::McpManager::start(servers, options).await)
        }
    });
    let selected: Selected = selected?;
    if let Some(manager) = &mcp {
        for (name, status) in manager.statuses() {
            if let keel_mcp::ServerStatus::Failed(reason) = status {
                ws.warn(&format!("MCP server {name} is not available: {reason}"));
            }
        }
    }
    if let Approver::PromptTool(tool) = &approver {
        check_prompt_tool(tool, mcp.as_ref())?;
    }
    let client: Arc<dyn ModelClient> = match &opts.record {
        Some(path) => Arc::new(
            RecordingClient::create(&ws.cwd.join(path), selected.client.clone())
                .await
                .map_err(|e| SetupError::Invalid(format!("--record {}: {e}", path.display())))?,
        ),
        None => selected.client.clone(),
    };
    let (prompt, memory_warnings, memory_files) = ws.system_prompt_and_memory(opts)?;
    for warning in &memory_warnings {
        ws.warn(&warning.to_string());
    }
    // Skills are only worth listing when the model may load them.
    let skills_hidden = policy.is_hidden("Skill");
    let mut system: Vec<String> = prompt
        .parts()
        .iter()
        .filter(|p| !(skills_hidden && p.kind == PartKind::Skills))
        .map(|p| p.text.clone())
        .collect();
    if let Some(section) = mcp.as_ref().and_then(mcp_instructions) {
        system.push(section);
    }
    let mut config = SessionConfig::new(selected.model.clone(), system);
    config.max_tokens = selected.max_output_tokens;
    config.max_turns = opts.max_turns;
    config.retry = selected.retry;
    config.thinking = selected.thinking;
    config.cache = selected.cache;
    config.pricing = ws.pricing()?;
    config.context_window = ws
        .settings
        .effective
        .context_window
        .unwrap_or(selected.context_window);
    config.stream_events = extras.stream_events;
    config.answers_questions = extras.answers_questions;
    config.offered_tools = named_tools.clone();

    let store = SessionStore::new(&ws.home);
    let (id, history, transcript, transcript_path, earlier) =
        open_transcript(opts, ws, &store, &selected.model, &policy)?;
    let resumed = !history.is_empty();
    let permission_mode = policy.mode();
    let session_dir = store.project_dir(&ws.cwd).join(id.as_str());
    let spill_dir = session_dir.join("tool-results");
    let mut tool_ctx = ToolContext::new(&ws.cwd, spill_dir, CancellationToken::new());
    let wiring = task_wiring(
        ws,
        &policy,
        &selected.model,
        session_dir.clone(),
        extras.member_flags,
        extras.seat,
    )?;
    wiring.apply_to_context(&mut tool_ctx);
    tool_ctx.additional_dirs = ws.additional_dirs(&opts.add_dir)?;
    tool_ctx.editor = opts.editor.clone();
    tool_ctx.env = Arc::new(
        ws.settings
            .effective
            .env
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    );
    if let Some(sandbox) = SandboxPolicy::from_settings(
        &ws.settings.effective.sandbox,
        policy.working_dirs(),
        &ws.home,
    ) {
        let launcher = std::env::current_exe().map_err(|e| {
            SetupError::Invalid(format!(
                "the sandbox needs keel's own executable path, which is unavailable: {e}"
            ))
        })?;
        tool_ctx.sandbox = Some(Arc::new(Sandbox {
            policy: sandbox,
            launcher,
        }));
    }

    let (mut hook_set, hook_warnings) = HookSet::from_loaded(&ws.settings);
    for warning in hook_warnings {
        ws.warn(&warning.to_string());
    }
    for (event, matcher, callbacks) in extras.hook_callbacks {
        hook_set
            .add_callbacks(event, &matcher, callbacks)
            .map_err(SetupError::Invalid)?;
    }
    let hooks = (!hook_set.list().is_empty()).then(|| HookSetup {
        set: hook_set,
        transcript_path: transcript_path.clone(),
        project_dir: ws.settings.project_root.clone(),
        env: ws.settings.effective.env.clone(),
    });

    let mut tools = tools_for(ws, &selected, &client);
    wiring.register(&mut tools);
    let tools = offered_tools(tools, named_tools.as_deref())?;
    let max_output_tokens = config.max_tokens;
    let context_window = config.context_window;
    let prompt_servers = mcp.clone();
    let session = Session::new(SessionSetup {
        id,
        config,
        client,
        tools,
        tool_ctx,
        policy,
        approver,
        local_settings: Some(ws.local_settings_path()),
        history,
        transcript: Some(transcript),
        hooks,
        mcp: mcp.clone(),
        context: ContextSetup {
            auto_threshold: ws.settings.effective.auto_compact_threshold,
            notes_path: Some(session_dir.join("notes.md")),
            memory: Some(ws.memory_loader()),
        },
    });
    let definitions = ws.definitions().clone();
    let extensions = keel_engine::Extensions {
        skills: definitions.skills,
        commands: definitions.commands,
        agents: definitions.agents,
        memory_files: memory_files
            .iter()
            .map(|f| match &f.imported_by {
                Some(importer) => format!(
                    "{} ({}, imported by {})",
                    f.path.display(),
                    f.scope,
                    importer.display()
                ),
                None => format!("{} ({})", f.path.display(), f.scope),
            })
            .collect(),
        // Subagents work in the same place under the same instructions: they get the
        // environment and memory parts after their own system prompt.
        subagent_context: prompt
            .parts()
            .iter()
            .filter(|p| matches!(p.kind, PartKind::Environment | PartKind::Memory))
            .map(|p| p.text.clone())
            .collect(),
        plan: earlier.plan,
        prior: earlier.totals,
    };
    let session = session
        .with_extensions(extensions)
        .with_extension(wiring.runtime.clone());
    let mcp_servers = session.mcp_statuses();
    let mut slash_commands = session.slash_commands();
    if let Some(manager) = &prompt_servers {
        slash_commands.extend(manager.list_prompts().await.into_iter().map(|p| p.command));
    }
    Ok(Prepared {
        agents: session.agent_names(),
        skills: session.skill_names(),
        slash_commands,
        session,
        provider: selected.kind.name().to_string(),
        base_url: selected.base_url,
        model: selected.model,
        api_key_source: selected.api_key_source,
        max_output_tokens,
        context_window,
        mcp_servers,
        transcript_path,
        resumed,
        permission_mode,
        mcp,
        tasks: wiring.runtime,
    })
}

/// The session's background tasks, task list, schedules and team seat (keel-tasks).
fn task_wiring(
    ws: &Workspace,
    policy: &Policy,
    model: &str,
    session_dir: PathBuf,
    member_flags: Option<Vec<String>>,
    seat: Option<keel_tasks::Seat>,
) -> Result<keel_tasks::wiring::Wiring> {
    let lookup = |name: &str| ws.var(name);
    // Members work as the lead does: the same model and permission mode, then the frontend's
    // flags (provider, settings, rules, ...).
    let spawn = member_flags.and_then(|flags| {
        let program = std::env::current_exe().ok()?;
        let mut args = vec![
            "--model".to_string(),
            model.to_string(),
            "--permission-mode".to_string(),
            policy.mode().as_str().to_string(),
        ];
        args.extend(flags);
        Some(keel_tasks::team::SpawnConfig {
            program,
            args,
            env: Vec::new(),
        })
    });
    // A member's tasks run in worktrees; its project is the team's, not the worktree.
    let project_root = match &seat {
        Some(seat) => seat.team.project_root().to_path_buf(),
        None => ws.settings.project_root.clone(),
    };
    keel_tasks::wiring::wire(keel_tasks::wiring::WiringInput {
        session_dir,
        project_root,
        todo_tool: ws.settings.effective.todo_tool.as_deref(),
        env: &lookup,
        spawn,
        seat,
    })
    .map_err(|error| SetupError::Invalid(error.to_string()))
}

/// The built-in tools, plus WebFetch (its prompts answered by a small model of the provider,
/// or `web.fetchModel`) and WebSearch when there is something to search with: SearXNG
/// (`web.searxngUrl`), else Brave (`web.braveApiKey` / `BRAVE_API_KEY`), else Anthropic's
/// server-side search. Without any, WebSearch is not offered rather than failing when called.
fn tools_for(ws: &Workspace, selected: &Selected, client: &Arc<dyn ModelClient>) -> ToolRegistry {
    use keel_tools::builtin::{
        BRAVE_ENDPOINT, SearchBackend, WebFetch, WebFetchConfig, WebSearch, default_fetch_model,
    };
    let mut tools = ToolRegistry::builtin();
    let web = &ws.settings.effective.web;
    let fetch_model = web
        .fetch_model
        .clone()
        .filter(|m| !m.trim().is_empty())
        .unwrap_or_else(|| default_fetch_model(selected.kind, &selected.model));
    let mut fetch = WebFetchConfig::new(client.clone(), fetch_model);
    fetch.allow_private_hosts = web.allow_private_hosts.clone();
    register(ws, &mut tools, Arc::new(WebFetch::new(fetch)));
    let brave_key = web
        .brave_api_key
        .clone()
        .or_else(|| ws.var("BRAVE_API_KEY"))
        .filter(|k| !k.trim().is_empty());
    let backend = if let Some(url) = web.searxng_url.clone() {
        Some(SearchBackend::Searxng { base_url: url })
    } else if let Some(api_key) = brave_key {
        Some(SearchBackend::Brave {
            api_key,
            endpoint: web
                .brave_api_url
                .clone()
                .unwrap_or_else(|| BRAVE_ENDPOINT.to_string()),
        })
    } else if selected.kind == ProviderKind::Anthropic {
        Some(SearchBackend::Anthropic {
            client: client.clone(),
            model: selected.model.clone(),
        })
    } else {
        None
    };
    if let Some(backend) = backend {
        register(ws, &mut tools, Arc::new(WebSearch::new(backend)));
    }
    tools
}

fn register(ws: &Workspace, tools: &mut ToolRegistry, tool: Arc<dyn keel_tools::Tool>) {
    let name = tool.name().to_string();
    if let Err(error) = tools.register(tool) {
        ws.warn(&format!("{name} is not available: {error}"));
    }
}

/// The tools a `--tools` list names: `None` for all of them (no flag, or `default`), else the
/// named ones (none for `""`).
fn named_tools(wanted: Option<&str>) -> Option<Vec<String>> {
    let wanted = wanted?.trim();
    if wanted == "default" {
        return None;
    }
    Some(keel_config::frontmatter::split_tool_list(wanted))
}

/// The registry cut down to the tools `--tools` names (all of them for `None`); an unknown name
/// is an error listing the known ones. The tools the session adds by itself are left to it
/// ([`SessionConfig::offered_tools`]).
fn offered_tools(mut registry: ToolRegistry, named: Option<&[String]>) -> Result<ToolRegistry> {
    let Some(names) = named else {
        return Ok(registry);
    };
    let mut known = registry.names();
    known.extend(
        keel_engine::SESSION_TOOLS
            .iter()
            .map(|tool| tool.to_string()),
    );
    for name in names {
        if !known.iter().any(|k| k == name) {
            return bail(format!(
                "--tools: keel has no built-in tool {name:?}; known tools: {} (or \"default\" for \
                 all, \"\" for none)",
                known.join(", ")
            ));
        }
    }
    registry.retain(|name| names.iter().any(|n| n == name));
    Ok(registry)
}

/// Checks that the `--permission-prompt-tool` MCP tool exists, so a typo fails at start rather
/// than refusing every call that needs approval.
fn check_prompt_tool(tool: &str, mcp: Option<&keel_mcp::McpManager>) -> Result<()> {
    let available: Vec<String> = mcp
        .map(|m| m.tools().iter().map(|t| t.name().to_string()).collect())
        .unwrap_or_default();
    if available.iter().any(|name| name == tool) {
        return Ok(());
    }
    let listed = if available.is_empty() {
        "none (configure its server with --mcp-config or .mcp.json)".to_string()
    } else {
        available.join(", ")
    };
    bail(format!(
        "--permission-prompt-tool {tool}: no such MCP tool is available; MCP tools here: {listed}"
    ))
}

/// The servers' own instructions (from `initialize`), as one system prompt section.
fn mcp_instructions(manager: &keel_mcp::McpManager) -> Option<String> {
    let instructions = manager.instructions();
    if instructions.is_empty() {
        return None;
    }
    let mut text = String::from(
        "# MCP server instructions\nThe connected MCP servers describe how to use their tools \
         (named mcp__<server>__<tool>):",
    );
    for (server, body) in instructions {
        text.push_str(&format!("\n\n## {server}\n{}", body.trim()));
    }
    Some(text)
}

/// What a resumed session's transcript says about its earlier runs.
#[derive(Default)]
struct Earlier {
    /// Usage and cost of its runs, for `/cost`.
    totals: keel_engine::CostTotals,
    /// Its latest plan, for `/todos`.
    plan: Vec<keel_protocol::PlanItem>,
}

/// Opens the session's transcript: a new one, or the one `--continue`/`--resume` names (with
/// its history), or, with `--fork-session`, a new one that starts with that history.
fn open_transcript(
    opts: &SessionOptions,
    ws: &Workspace,
    store: &SessionStore,
    model: &str,
    policy: &Policy,
) -> Result<(
    SessionId,
    Vec<keel_protocol::Message>,
    TranscriptWriter,
    PathBuf,
    Earlier,
)> {
    let resumed: Option<PathBuf> = if opts.continue_session {
        Some(store.latest(&ws.cwd)?.ok_or_else(|| {
            SetupError::Invalid(format!(
                "no earlier session in {} to continue; start one with keel -p \"...\"",
                ws.cwd.display()
            ))
        })?)
    } else {
        match opts.resume.as_deref() {
            None => None,
            Some("") => return bail(resume_hint(store, &ws.cwd)?),
            Some(id) => Some(store.find(&ws.cwd, id)?),
        }
    };
    let Some(path) = resumed else {
        let id = match &opts.session_id {
            Some(id) => {
                keel_session::validate_id(id)?;
                let path = store.path_for(&ws.cwd, id);
                if path.exists() {
                    return bail(format!(
                        "session {id} already exists; use --resume {id} to continue it"
                    ));
                }
                SessionId::from_string(id.clone())
            }
            None => SessionId::new(),
        };
        let path = store.path_for(&ws.cwd, id.as_str());
        let writer = TranscriptWriter::open(&path, Totals::default())?;
        return Ok((id, Vec::new(), writer, path, Earlier::default()));
    };
    let transcript = Transcript::read(&path)?;
    for warning in &transcript.warnings {
        ws.warn(warning);
    }
    let conversation = transcript.conversation();
    let history = conversation.messages();
    let mut earlier = Earlier {
        plan: conversation.plan.clone(),
        ..Earlier::default()
    };
    for record in &transcript.records {
        earlier.totals.add_run(&record.event);
    }
    let old_id = path
        .file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_default();
    if !opts.fork_session {
        let writer = TranscriptWriter::open(&path, transcript.totals())?;
        return Ok((
            SessionId::from_string(old_id),
            history,
            writer,
            path,
            earlier,
        ));
    }
    let id = SessionId::new();
    let new_path = store.path_for(&ws.cwd, id.as_str());
    let mut writer = TranscriptWriter::open(&new_path, Totals::default())?;
    // The fork's transcript must stand on its own: it starts with the history it inherited.
    writer.append(&Event::SessionStarted {
        session_id: id.clone(),
        model: model.to_string(),
        cwd: ws.cwd.display().to_string(),
        tools: Vec::new(),
        permission_mode: policy.mode().as_str().to_string(),
    })?;
    writer.append(&Event::Compacted {
        trigger: format!("fork of {old_id}"),
        tokens_before: 0,
        tokens_after: 0,
        messages: history.clone(),
    })?;
    // A fork starts its own accounting; it keeps the plan it inherited.
    earlier.totals = keel_engine::CostTotals::default();
    Ok((id, history, writer, new_path, earlier))
}

/// The message for `--resume` without an id in print mode: the sessions to choose from.
fn resume_hint(store: &SessionStore, cwd: &Path) -> Result<String> {
    let sessions = store.list(Some(cwd))?;
    if sessions.is_empty() {
        return Ok(format!(
            "no sessions to resume in {}; start one with keel -p \"...\"",
            cwd.display()
        ));
    }
    let mut text = String::from("--resume needs a session id in print mode; recent sessions here:");
    for summary in sessions.iter().take(10) {
        text.push_str(&format!("\n  {}  {}", summary.id, summary.first_prompt));
    }
    text.push_str("\nrun: keel --resume <id> -p \"...\" (all of them: keel sessions)");
    Ok(text)
}
