//! Turning arguments, settings and the environment into a ready session: the one place where
//! keel's layers meet, so every frontend starts sessions the same way.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use keel_config::{LoadOptions, LoadedSettings, MemoryLoader, MemoryWarning, SourceSet};
use keel_context::{Environment, GitStatus, PromptInputs, PromptOptions, SystemPrompt};
use keel_engine::{Approver, HookSetup, Session, SessionConfig, SessionSetup};
use keel_model::{ModelClient, Pricing, ProviderKind, ProviderOptions, RecordingClient, Selected};
use keel_policy::hooks::HookSet;
use keel_policy::sandbox::SandboxPolicy;
use keel_policy::{PermissionMode, Policy, RuleList, RuleSource};
use keel_protocol::{Event, SessionId};
use keel_session::{SessionStore, Totals, Transcript, TranscriptWriter};
use keel_tools::{Sandbox, ToolContext, ToolRegistry};
use tokio_util::sync::CancellationToken;

use crate::args::{Args, split_rules};

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
}

/// How long start-up waits for `git status` before leaving it out of the prompt: a huge
/// repository must not hold up the first request.
const GIT_STATUS_WAIT: Duration = Duration::from_millis(15);

impl Workspace {
    /// Reads the settings for the current directory. Broken settings are an error naming file,
    /// line, column and key; warnings are printed to stderr.
    pub fn load(settings: Option<&str>, setting_sources: Option<&str>) -> Result<Self> {
        let cwd = std::env::current_dir().context("cannot determine the current directory")?;
        Self::load_in(cwd, settings, setting_sources)
    }

    /// Reads the settings for `cwd` (a team member works each task in its own worktree).
    pub fn load_in(
        cwd: PathBuf,
        settings: Option<&str>,
        setting_sources: Option<&str>,
    ) -> Result<Self> {
        let home = std::env::home_dir()
            .filter(|h| !h.as_os_str().is_empty())
            .context("cannot determine your home directory; set HOME")?;
        let sources = match setting_sources {
            Some(text) => SourceSet::parse(text).map_err(anyhow::Error::msg)?,
            None => SourceSet::default(),
        };
        let settings = keel_config::load(&LoadOptions {
            home: home.clone(),
            cwd: cwd.clone(),
            sources,
            flag_settings: settings.map(str::to_string),
        })?;
        for warning in &settings.warnings {
            eprintln!("keel: warning: {warning}");
        }
        let git = GitStatus::spawn(&cwd);
        let mut env: BTreeMap<String, String> = std::env::vars().collect();
        env.extend(settings.effective.env.clone());
        Ok(Self {
            cwd,
            home,
            settings,
            env,
            sources,
            git: Mutex::new(Some(git)),
        })
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
    pub fn policy(&self, args: &Args) -> Result<Policy> {
        let mode = self.permission_mode(args)?;
        let mut policy = Policy::new(mode, &self.cwd, &self.home);
        for dir in self.additional_dirs(&args.add_dir)? {
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
            ("--allowedTools", RuleList::Allow, &args.allowed_tools),
            ("--disallowedTools", RuleList::Deny, &args.disallowed_tools),
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
            eprintln!("keel: warning: {problem} (rule skipped)");
        }
        Ok(policy)
    }

    fn permission_mode(&self, args: &Args) -> Result<PermissionMode> {
        let mode = if let Some(mode) = &args.permission_mode {
            mode.parse::<PermissionMode>()
                .map_err(|e| anyhow::anyhow!("--permission-mode: {e}"))?
        } else if args.dangerously_skip_permissions {
            PermissionMode::BypassPermissions
        } else if let Some(mode) = &self.settings.effective.permissions.default_mode {
            mode.parse::<PermissionMode>()
                .map_err(|e| anyhow::anyhow!("permissions.defaultMode: {e}"))?
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
            bail!(
                "bypassPermissions mode is disabled by the setting \
                 permissions.disableBypassPermissionsMode; use --permission-mode acceptEdits or \
                 allow rules instead"
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
            let resolved = std::fs::canonicalize(&expanded).with_context(|| {
                format!(
                    "additional directory {}: no such directory; pass an existing directory",
                    dir.display()
                )
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
    pub fn system_prompt(&self, args: &Args) -> Result<(SystemPrompt, Vec<MemoryWarning>)> {
        let additional_dirs = self.additional_dirs(&args.add_dir)?;
        let git = self
            .git
            .lock()
            .map_err(|_| anyhow::anyhow!("internal error: git status lock poisoned"))?
            .take()
            .and_then(|git| git.join(GIT_STATUS_WAIT));
        let env = Environment::detect(&self.cwd, &additional_dirs).with_git_status(git);
        let memory = self.memory_loader().load();
        let prompt = SystemPrompt::assemble(&PromptInputs {
            env: &env,
            memory: &memory.files,
            skills: None,
            agents: None,
            options: &PromptOptions {
                replace: args.system_prompt.clone(),
                append: args.append_system_prompt.clone(),
            },
        });
        Ok((prompt, memory.warnings))
    }

    /// The loader of this directory's memory files (AGENTS.md, CLAUDE.md, ...).
    pub fn memory_loader(&self) -> MemoryLoader {
        MemoryLoader::new(&self.cwd, Some(&self.home)).with_sources(self.sources)
    }

    /// What the provider selection needs from the flags and settings.
    fn provider_options(&self, args: &Args) -> Result<ProviderOptions> {
        let settings = &self.settings.effective;
        let kind = match args.provider.as_deref().or(settings.provider.as_deref()) {
            Some(name) => Some(
                name.parse::<ProviderKind>()
                    .map_err(|e| anyhow::anyhow!("--provider: {e}"))?,
            ),
            None => None,
        };
        let thinking_budget = match args.thinking.as_deref() {
            Some("disabled" | "off" | "false") => None,
            Some("enabled" | "adaptive" | "on" | "true") => Some(DEFAULT_THINKING_BUDGET),
            Some(budget) => Some(budget.parse::<u32>().map_err(|_| {
                anyhow::anyhow!(
                    "--thinking {budget:?}: give a token budget (e.g. 8000), enabled or disabled"
                )
            })?),
            None => args.max_thinking_tokens.or_else(|| {
                settings.thinking_budget_tokens.or_else(|| {
                    (settings.always_thinking_enabled == Some(true))
                        .then_some(DEFAULT_THINKING_BUDGET)
                })
            }),
        };
        Ok(ProviderOptions {
            kind,
            base_url: args.base_url.clone().or_else(|| settings.base_url.clone()),
            api_key_env: args
                .api_key_env
                .clone()
                .or_else(|| settings.api_key_env.clone()),
            model: self.requested_model(args.model.as_deref(), kind),
            replay_file: args.replay.as_ref().map(|p| self.cwd.join(p)),
            max_retries: args.max_retries.or(settings.max_retries),
            thinking_budget,
            ..ProviderOptions::default()
        })
    }

    /// Prices: keel's table with the `pricing` setting on top.
    fn pricing(&self) -> Result<Pricing> {
        let overrides = self.settings.effective.pricing.iter().map(|(model, p)| {
            (
                model.clone(),
                keel_model::PriceOverride {
                    input: p.input,
                    output: p.output,
                    cache_write: p.cache_write,
                    cache_read: p.cache_read,
                },
            )
        });
        Pricing::with_overrides(overrides).map_err(|e| anyhow::anyhow!("pricing: {e}"))
    }
}

impl Workspace {
    /// The MCP servers configured for this directory: settings, `.mcp.json` and `--mcp-config`.
    pub fn mcp_servers(&self, args: &Args) -> Result<Vec<keel_mcp::ServerConfig>> {
        Ok(keel_mcp::load_servers(&keel_mcp::McpSources {
            project_root: Some(self.settings.project_root.clone()),
            settings_servers: self.settings.effective.mcp_servers.clone(),
            flag_configs: args.mcp_config.clone(),
            strict: args.strict_mcp_config,
            disabled_project_servers: self.settings.effective.disabled_mcpjson_servers.clone(),
            cwd: self.cwd.clone(),
        })?)
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
    /// The session's background tasks, task list, schedules and team seat.
    pub tasks: Arc<keel_tasks::TaskRuntime>,
}

/// Builds the session a run of `keel` works in: settings, policy, provider, tools, system
/// prompt, hooks, sandbox, and a new, continued, resumed or forked transcript.
pub async fn prepare(args: &Args, ws: &Workspace, approver: Approver) -> Result<Prepared> {
    prepare_seated(args, ws, approver, None).await
}

/// [`prepare`] for a session that has a seat in a team (a member working a task).
pub async fn prepare_seated(
    args: &Args,
    ws: &Workspace,
    approver: Approver,
    seat: Option<keel_tasks::Seat>,
) -> Result<Prepared> {
    let policy = ws.policy(args)?;
    let options = ws.provider_options(args)?;
    let lookup = |name: &str| ws.var(name);
    // MCP servers start while the provider is chosen: neither waits for the other.
    let servers = ws.mcp_servers(args)?;
    let (selected, mcp) = tokio::join!(keel_model::select(&options, &lookup), async {
        if servers.is_empty() {
            None
        } else {
            Some(keel_mcp::McpManager::start(servers, ws.mcp_options()).await)
        }
    });
    let selected: Selected = selected?;
    if let Some(manager) = &mcp {
        for (name, status) in manager.statuses() {
            if let keel_mcp::ServerStatus::Failed(reason) = status {
                eprintln!("keel: warning: MCP server {name} is not available: {reason}");
            }
        }
    }
    let client: Arc<dyn ModelClient> = match &args.record {
        Some(path) => Arc::new(
            RecordingClient::create(&ws.cwd.join(path), selected.client.clone())
                .await
                .with_context(|| format!("--record {}", path.display()))?,
        ),
        None => selected.client.clone(),
    };
    let (prompt, memory_warnings) = ws.system_prompt(args)?;
    for warning in &memory_warnings {
        eprintln!("keel: warning: {warning}");
    }
    let mut system = prompt.blocks();
    if let Some(section) = mcp.as_ref().and_then(mcp_instructions) {
        system.push(section);
    }
    let mut config = SessionConfig::new(selected.model.clone(), system);
    config.max_tokens = selected.max_output_tokens;
    config.max_turns = args.max_turns;
    config.retry = selected.retry;
    config.thinking = selected.thinking;
    config.cache = selected.cache;
    config.pricing = ws.pricing()?;
    config.context_window = ws
        .settings
        .effective
        .context_window
        .unwrap_or(selected.context_window);

    let store = SessionStore::new(&ws.home);
    let (id, history, transcript, transcript_path) =
        open_transcript(args, ws, &store, &selected.model, &policy)?;
    let session_dir = store.project_dir(&ws.cwd).join(id.as_str());
    let spill_dir = session_dir.join("tool-results");
    let mut tool_ctx = ToolContext::new(&ws.cwd, spill_dir, CancellationToken::new());
    let wiring = crate::work::wiring(args, ws, &policy, &selected.model, session_dir, seat)?;
    wiring.apply_to_context(&mut tool_ctx);
    let mut tools = ToolRegistry::builtin();
    wiring.register(&mut tools);
    tool_ctx.additional_dirs = ws.additional_dirs(&args.add_dir)?;
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
        let launcher = std::env::current_exe()
            .context("the sandbox needs keel's own executable path, which is unavailable")?;
        tool_ctx.sandbox = Some(Arc::new(Sandbox {
            policy: sandbox,
            launcher,
        }));
    }

    let (hook_set, hook_warnings) = HookSet::from_loaded(&ws.settings);
    for warning in hook_warnings {
        eprintln!("keel: warning: {warning}");
    }
    let hooks = (!hook_set.list().is_empty()).then(|| HookSetup {
        set: hook_set,
        transcript_path,
        project_dir: ws.settings.project_root.clone(),
        env: ws.settings.effective.env.clone(),
    });

    let max_output_tokens = config.max_tokens;
    let context_window = config.context_window;
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
        mcp,
    })
    .with_extension(wiring.runtime.clone());
    let mcp_servers = session.mcp_statuses();
    Ok(Prepared {
        session,
        model: selected.model,
        api_key_source: selected.api_key_source,
        max_output_tokens,
        context_window,
        mcp_servers,
        tasks: wiring.runtime,
    })
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

/// Opens the session's transcript: a new one, or the one `--continue`/`--resume` names (with
/// its history), or, with `--fork-session`, a new one that starts with that history.
fn open_transcript(
    args: &Args,
    ws: &Workspace,
    store: &SessionStore,
    model: &str,
    policy: &Policy,
) -> Result<(
    SessionId,
    Vec<keel_protocol::Message>,
    TranscriptWriter,
    PathBuf,
)> {
    let resumed: Option<PathBuf> = if args.continue_session {
        Some(store.latest(&ws.cwd)?.with_context(|| {
            format!(
                "no earlier session in {} to continue; start one with keel -p \"...\"",
                ws.cwd.display()
            )
        })?)
    } else {
        match args.resume.as_deref() {
            None => None,
            Some("") => bail!("{}", resume_hint(store, &ws.cwd)?),
            Some(id) => Some(store.find(&ws.cwd, id)?),
        }
    };
    let Some(path) = resumed else {
        let id = match &args.session_id {
            Some(id) => {
                keel_session::validate_id(id)?;
                let path = store.path_for(&ws.cwd, id);
                if path.exists() {
                    bail!("session {id} already exists; use --resume {id} to continue it");
                }
                SessionId::from_string(id.clone())
            }
            None => SessionId::new(),
        };
        let path = store.path_for(&ws.cwd, id.as_str());
        let writer = TranscriptWriter::open(&path, Totals::default())?;
        return Ok((id, Vec::new(), writer, path));
    };
    let transcript = Transcript::read(&path)?;
    for warning in &transcript.warnings {
        eprintln!("keel: warning: {warning}");
    }
    let history = transcript.conversation().messages();
    let old_id = path
        .file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_default();
    if !args.fork_session {
        let writer = TranscriptWriter::open(&path, transcript.totals())?;
        return Ok((SessionId::from_string(old_id), history, writer, path));
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
    Ok((id, history, writer, new_path))
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
