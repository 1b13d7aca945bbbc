//! Command-line arguments, named as Claude Code names them so `claude -p` scripts work unchanged.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

const EXAMPLES: &str = "\
Examples:
  keel -p \"why does the build fail?\"                 answer, then exit
  keel -p \"make the failing test pass\" --permission-mode acceptEdits
                                                    let it edit files without asking
  keel -p \"run the tests\" --allowedTools \"Bash(cargo test:*)\" \"Edit\"
                                                    allow exactly these
  git diff | keel -p \"review this change\"            piped input is added to the prompt
  keel -p \"list the TODOs\" --output-format json      one JSON result object
  keel -p \"fix it\" --output-format stream-json --verbose
                                                    one JSON object per line, as it works
  keel -c -p \"and now the docs\"                      continue the last session here
  keel sessions                                     sessions you can resume
  keel permissions check 'Bash(git push)'           which rule decides, and why

Model: set ANTHROPIC_API_KEY (or ANTHROPIC_AUTH_TOKEN); ANTHROPIC_BASE_URL points keel at a
proxy or compatible gateway; --model or ANTHROPIC_MODEL picks the model.";

/// keel: a coding agent that works in your repository through tools.
#[derive(Debug, Parser)]
#[command(name = "keel", version, about, after_help = EXAMPLES)]
pub struct Args {
    /// A command other than running the agent.
    #[command(subcommand)]
    pub command: Option<Command>,

    /// The prompt. With -p and no prompt, the prompt is read from standard input.
    pub prompt: Option<String>,

    /// Print mode: work on the prompt without interaction, print the result and exit.
    #[arg(short = 'p', long = "print")]
    pub print: bool,

    /// Output format in print mode.
    #[arg(long = "output-format", value_enum, default_value_t = OutputFormat::Text)]
    pub output_format: OutputFormat,

    /// With stream-json: print every message as it happens (required by stream-json, as in Claude Code).
    #[arg(long)]
    pub verbose: bool,

    /// The model to use (default: ANTHROPIC_MODEL, then the `model` setting, else keel's default).
    #[arg(long)]
    pub model: Option<String>,

    /// The model provider: anthropic, openai, ollama, openrouter, openai-compatible or replay
    /// (default: whichever has a key set, else a local Ollama).
    #[arg(long, value_name = "PROVIDER")]
    pub provider: Option<String>,

    /// The provider's API base URL (for openai-compatible servers, gateways).
    #[arg(long = "base-url", value_name = "URL")]
    pub base_url: Option<String>,

    /// The environment variable holding the provider's API key (openai-compatible).
    #[arg(long = "api-key-env", value_name = "VAR")]
    pub api_key_env: Option<String>,

    /// With --provider replay: the recorded conversation to answer from.
    #[arg(long, value_name = "FILE")]
    pub replay: Option<std::path::PathBuf>,

    /// Record every model response of this run to FILE, for --provider replay.
    #[arg(long, value_name = "FILE")]
    pub record: Option<std::path::PathBuf>,

    /// Extended thinking: a token budget, `enabled`/`adaptive` (default budget) or `disabled`.
    #[arg(long, value_name = "BUDGET", num_args = 0..=1, default_missing_value = "enabled")]
    pub thinking: Option<String>,

    /// Extended thinking with this token budget (Claude Code's flag).
    #[arg(long = "max-thinking-tokens", value_name = "N")]
    pub max_thinking_tokens: Option<u32>,

    /// Stop after this many model turns (the result's subtype is then `error_max_turns`).
    #[arg(long = "max-turns", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_turns: Option<u32>,

    /// Retries of a failed model request (overload, rate limit, dropped stream) before giving up.
    #[arg(long = "max-retries")]
    pub max_retries: Option<u32>,

    /// Replace keel's system prompt with this text.
    #[arg(long = "system-prompt", allow_hyphen_values = true)]
    pub system_prompt: Option<String>,

    /// Append this text to the system prompt.
    #[arg(long = "append-system-prompt", allow_hyphen_values = true)]
    pub append_system_prompt: Option<String>,

    /// Give the agent access to another directory as well (repeatable).
    #[arg(long = "add-dir", value_name = "DIR", num_args = 1..)]
    pub add_dir: Vec<PathBuf>,

    /// How tool calls that no rule decides are handled: default, acceptEdits, plan,
    /// bypassPermissions or dontAsk.
    #[arg(long = "permission-mode", value_name = "MODE")]
    pub permission_mode: Option<String>,

    /// Run every tool without asking (permission mode bypassPermissions). Deny rules still apply.
    #[arg(long = "dangerously-skip-permissions")]
    pub dangerously_skip_permissions: bool,

    /// Rules for tool calls that run without asking, e.g. "Bash(npm test:*)" Edit (repeatable,
    /// comma- or space-separated).
    #[arg(long = "allowedTools", alias = "allowed-tools", value_name = "RULES", num_args = 1..)]
    pub allowed_tools: Vec<String>,

    /// Rules for tool calls that are refused; a bare tool name removes the tool.
    #[arg(long = "disallowedTools", alias = "disallowed-tools", value_name = "RULES", num_args = 1..)]
    pub disallowed_tools: Vec<String>,

    /// Extra settings: a JSON file, or JSON text starting with `{`.
    #[arg(long, value_name = "FILE_OR_JSON")]
    pub settings: Option<String>,

    /// Which settings files to read: a comma-separated list of user, project, local.
    #[arg(long = "setting-sources", value_name = "SOURCES")]
    pub setting_sources: Option<String>,

    /// Continue the most recent session in this directory.
    #[arg(short = 'c', long = "continue")]
    pub continue_session: bool,

    /// Resume a session by id (see `keel sessions`).
    #[arg(short = 'r', long = "resume", value_name = "SESSION_ID", num_args = 0..=1, default_missing_value = "")]
    pub resume: Option<String>,

    /// Use this id (a UUID) for the new session.
    #[arg(long = "session-id", value_name = "UUID")]
    pub session_id: Option<String>,

    /// With --continue or --resume: start a new session that begins with the old one's history.
    #[arg(long = "fork-session")]
    pub fork_session: bool,

    /// MCP servers to use: a `.mcp.json`-style file, or the JSON itself (repeatable).
    #[arg(long = "mcp-config", value_name = "FILE_OR_JSON", global = true)]
    pub mcp_config: Vec<String>,

    /// Use only the servers given with --mcp-config.
    #[arg(long = "strict-mcp-config", global = true)]
    pub strict_mcp_config: bool,
}

/// Commands besides running the agent.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show or change settings (`keel config list`, `get`, `set`, `add`, `remove`).
    Config(crate::commands::config::ConfigArgs),
    /// Explain permission decisions (`keel permissions check 'Bash(git push)'`, `list`).
    Permissions(crate::commands::permissions::PermissionsArgs),
    /// List the sessions you can resume.
    Sessions(crate::commands::sessions::SessionsArgs),
    /// Show what the model would receive (`keel prompt show`).
    Prompt(crate::commands::prompt::PromptArgs),
    /// Manage MCP servers, or offer keel's tools over MCP (`keel mcp serve`).
    Mcp(crate::commands::mcp::McpArgs),
    /// List the configured hooks (`keel hooks list`).
    Hooks(crate::commands::hooks::HooksArgs),
    /// What the OS sandbox for shell commands can do here (`keel sandbox status`).
    Sandbox(crate::commands::sandbox::SandboxArgs),
    /// Task boards and background tasks (`keel tasks list`, `show`, `create`, `claim`, ...).
    Tasks(crate::commands::tasks::TasksArgs),
    /// Prompts on a schedule (`keel cron add "0 9 * * 1-5" "prompt"`, `list`, `remove`).
    Cron(crate::commands::cron::CronArgs),
    /// Runs this project's scheduled prompts when they are due.
    Daemon(crate::commands::cron::DaemonArgs),
    /// keel's git worktrees (`keel worktree list`, `remove`).
    Worktree(crate::commands::worktree::WorktreeArgs),
    /// A team member's loop, started by the team lead.
    #[command(name = "__teammate", hide = true)]
    Teammate(crate::commands::teammate::TeammateArgs),
}

/// How print mode writes its output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// The final answer as plain text.
    Text,
    /// One JSON result object at the end.
    Json,
    /// One JSON object per line as the session runs.
    #[value(name = "stream-json")]
    StreamJson,
}

/// Splits `--allowedTools` values: each occurrence may hold several rules separated by commas
/// or spaces (the Agent SDK joins them with commas), but a comma or space inside a rule's
/// parentheses belongs to the rule.
pub fn split_rules(values: &[String]) -> Vec<String> {
    let mut rules = Vec::new();
    for value in values {
        let mut depth = 0usize;
        let mut current = String::new();
        for c in value.chars() {
            match c {
                '(' => {
                    depth += 1;
                    current.push(c);
                }
                ')' => {
                    depth = depth.saturating_sub(1);
                    current.push(c);
                }
                ',' | ' ' if depth == 0 => {
                    if !current.trim().is_empty() {
                        rules.push(current.trim().to_string());
                    }
                    current.clear();
                }
                _ => current.push(c),
            }
        }
        if !current.trim().is_empty() {
            rules.push(current.trim().to_string());
        }
    }
    rules
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_split_outside_parentheses_only() {
        assert_eq!(
            split_rules(&[
                "Read,Bash(git diff:*),Edit".into(),
                "Bash(npm run test *) Glob".into()
            ]),
            [
                "Read",
                "Bash(git diff:*)",
                "Edit",
                "Bash(npm run test *)",
                "Glob"
            ]
        );
    }
}
