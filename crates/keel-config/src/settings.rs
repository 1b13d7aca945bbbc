//! The settings file's shape. Keys are spelled as Claude Code spells them (camelCase), so a
//! `.claude/settings.json` works unchanged; keel's own additions use the same style.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One settings file, or the merge of several. Every key is optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Settings {
    /// Permission rules and mode.
    #[serde(default, skip_serializing_if = "Permissions::is_empty")]
    pub permissions: Permissions,
    /// Hook commands per event name (`PreToolUse`, `Stop`, ...), in Claude Code's format.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub hooks: BTreeMap<String, Vec<HookMatcher>>,
    /// Turns every hook off (Claude Code's `disableAllHooks`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disable_all_hooks: Option<bool>,
    /// Environment variables set for the session (and the commands it runs).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// The model to use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The model provider (`anthropic`, `openai`, `ollama`, `openrouter`, `openai-compatible`, `replay`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// The provider's API base URL (e.g. a vLLM or llama.cpp server's `/v1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// The environment variable that holds the provider's API key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_env: Option<String>,
    /// How often a failed model request is retried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<u32>,
    /// Extended thinking on by default (Claude Code's `alwaysThinkingEnabled`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub always_thinking_enabled: Option<bool>,
    /// Token budget for extended thinking.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking_budget_tokens: Option<u32>,
    /// Price overrides per model name, in US dollars per million tokens.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pricing: BTreeMap<String, keel_protocol::PriceOverride>,
    /// The model's context window in tokens, when keel's table does not know it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_window: Option<u64>,
    /// Fraction of the context window at which the conversation is compacted (0.5 to 0.98).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_compact_threshold: Option<f64>,
    /// The planning tool offered to the model: `tasks` (TaskCreate and friends) or `TodoWrite`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub todo_tool: Option<String>,
    /// The OS sandbox for shell commands.
    #[serde(default, skip_serializing_if = "SandboxSettings::is_empty")]
    pub sandbox: SandboxSettings,
    /// MCP servers configured in settings (user level), in `.mcp.json`'s format.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub mcp_servers: BTreeMap<String, Value>,
    /// Approve every server of a project's `.mcp.json` without asking.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_all_project_mcp_servers: Option<bool>,
    /// Servers of `.mcp.json` that are approved.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub enabled_mcpjson_servers: Vec<String>,
    /// Servers of `.mcp.json` that are refused.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub disabled_mcpjson_servers: Vec<String>,
    /// Web tools: the model that answers WebFetch prompts, private-address access, search backend.
    #[serde(default, skip_serializing_if = "WebSettings::is_empty")]
    pub web: WebSettings,
}

/// The `permissions` object.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Permissions {
    /// Rules for calls that run without asking.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<String>,
    /// Rules for calls that always ask.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ask: Vec<String>,
    /// Rules for calls that are refused.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deny: Vec<String>,
    /// The permission mode a session starts in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_mode: Option<String>,
    /// More directories the agent may work in.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub additional_directories: Vec<String>,
    /// `"disable"` forbids `bypassPermissions` mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disable_bypass_permissions_mode: Option<String>,
}

impl Permissions {
    fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}

/// Hooks of one event that apply to tools matching `matcher`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HookMatcher {
    /// A regular expression on the tool name (`Edit|Write`, `mcp__.*`); empty or `*` = all.
    #[serde(default)]
    pub matcher: String,
    /// The hooks to run.
    pub hooks: Vec<HookCommand>,
}

/// One hook.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HookCommand {
    /// The hook kind; keel runs `command` hooks.
    #[serde(rename = "type")]
    pub kind: String,
    /// The shell command to run.
    #[serde(default)]
    pub command: String,
    /// Seconds before the hook is killed (default 60).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u64>,
}

/// The `sandbox` object.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SandboxSettings {
    /// Run shell commands in the OS sandbox.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Whether sandboxed commands may use the network: `true`/`false`, or Claude Code's
    /// network object (which keel reads as "allowed").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<SandboxNetwork>,
    /// More directories sandboxed commands may write to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub writable_paths: Vec<String>,
}

impl SandboxSettings {
    fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}

/// `sandbox.network`: a switch, or Claude Code's object of network options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SandboxNetwork {
    /// Allowed (`true`) or cut off (`false`).
    Allowed(bool),
    /// Claude Code's network options; keel treats the network as allowed.
    Options(serde_json::Map<String, Value>),
}

impl SandboxNetwork {
    /// Whether sandboxed commands may use the network.
    pub fn allowed(&self) -> bool {
        match self {
            Self::Allowed(allowed) => *allowed,
            Self::Options(_) => true,
        }
    }
}

/// The `web` object: settings of WebFetch and WebSearch.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebSettings {
    /// The model that answers WebFetch's prompt over a page (default: a small, fast model).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fetch_model: Option<String>,
    /// Hosts (or `loopback`, `private`) WebFetch may reach although they are not public.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_private_hosts: Vec<String>,
    /// A SearXNG instance WebSearch asks (its JSON API enabled); preferred over the others.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub searxng_url: Option<String>,
    /// A Brave Search API key WebSearch uses when no SearXNG instance is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub brave_api_key: Option<String>,
    /// Where Brave Search requests go (default: the public API), for a gateway in between.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub brave_api_url: Option<String>,
}

impl WebSettings {
    fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}

/// Top-level keys keel understands (its own and the Claude Code keys it implements).
pub const KNOWN_KEYS: &[&str] = &[
    "permissions",
    "hooks",
    "disableAllHooks",
    "env",
    "model",
    "provider",
    "baseUrl",
    "apiKeyEnv",
    "maxRetries",
    "alwaysThinkingEnabled",
    "thinkingBudgetTokens",
    "pricing",
    "contextWindow",
    "autoCompactThreshold",
    "todoTool",
    "sandbox",
    "mcpServers",
    "enableAllProjectMcpServers",
    "enabledMcpjsonServers",
    "disabledMcpjsonServers",
    "web",
];

/// Claude Code keys that keel accepts without warning but does not act on, so a user's
/// existing settings load quietly.
pub const CLAUDE_CODE_KEYS_IGNORED: &[&str] = &[
    "$schema",
    "apiKeyHelper",
    "attribution",
    "autoUpdates",
    "autoUpdatesChannel",
    "awsAuthRefresh",
    "awsCredentialExport",
    "cleanupPeriodDays",
    "companyAnnouncements",
    "enabledPlugins",
    "extraKnownMarketplaces",
    "feedbackSurveyState",
    "forceLoginMethod",
    "forceLoginOrgUUID",
    "includeCoAuthoredBy",
    "language",
    "outputStyle",
    "plansDirectory",
    "respectGitignore",
    "spinnerTipsEnabled",
    "statusLine",
    "theme",
];

/// Keys of the `web` object.
pub const WEB_KEYS: &[&str] = &[
    "fetchModel",
    "allowPrivateHosts",
    "searxngUrl",
    "braveApiKey",
    "braveApiUrl",
];

/// Keys of the `permissions` object.
pub const PERMISSION_KEYS: &[&str] = &[
    "allow",
    "ask",
    "deny",
    "defaultMode",
    "additionalDirectories",
    "disableBypassPermissionsMode",
];

/// Hook events keel fires.
pub const HOOK_EVENTS: &[&str] = &[
    "PreToolUse",
    "PostToolUse",
    "UserPromptSubmit",
    "Notification",
    "Stop",
    "SubagentStop",
    "PreCompact",
    "SessionStart",
    "SessionEnd",
];

/// Permission modes, spelled as Claude Code spells them.
pub const PERMISSION_MODES: &[&str] = &[
    "default",
    "acceptEdits",
    "plan",
    "bypassPermissions",
    "dontAsk",
];
