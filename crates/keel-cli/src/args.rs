//! Command-line arguments, named as Claude Code names them so `claude -p` scripts work unchanged.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{CommandFactory, Parser, Subcommand, ValueEnum};

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
#[command(
    name = "keel",
    version,
    about = "keel: a coding agent that works in your repository through tools",
    after_help = EXAMPLES
)]
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

    /// Input format in print mode: `text` (the prompt) or `stream-json` (one JSON message per
    /// line on standard input, for a multi-turn session and the Agent SDK's control protocol;
    /// needs --output-format stream-json).
    #[arg(long = "input-format", value_enum, default_value_t = InputFormat::Text)]
    pub input_format: InputFormat,

    /// Who answers permission questions: `stdio` (the Agent SDK's can_use_tool callback, with
    /// --input-format stream-json) or an MCP tool `mcp__<server>__<tool>`.
    #[arg(long = "permission-prompt-tool", value_name = "TOOL")]
    pub permission_prompt_tool: Option<String>,

    /// With stream-json output: also print the model's stream as `stream_event` lines.
    #[arg(long = "include-partial-messages")]
    pub include_partial_messages: bool,

    /// Replace keel's system prompt with the contents of FILE.
    #[arg(long = "system-prompt-file", value_name = "FILE")]
    pub system_prompt_file: Option<PathBuf>,

    /// Append the contents of FILE to the system prompt.
    #[arg(long = "append-system-prompt-file", value_name = "FILE")]
    pub append_system_prompt_file: Option<PathBuf>,

    /// The built-in tools offered: a comma-separated list (e.g. "Bash,Read"), `default` for all,
    /// or "" for none. MCP tools are not affected.
    #[arg(long = "tools", value_name = "TOOLS", allow_hyphen_values = true)]
    pub tools: Option<String>,

    /// Options Claude Code has that keel accepts but does not honour yet (each one given is
    /// named in a warning).
    #[command(flatten)]
    pub unsupported: Unsupported,
}

/// Claude Code options keel accepts so that programs passing them (the Agent SDK) keep
/// working, but cannot honour yet; [`Unsupported::given`] names the ones used.
#[derive(Debug, Default, clap::Args)]
pub struct Unsupported {
    #[arg(long = "max-budget-usd", hide = true)]
    max_budget_usd: Option<String>,
    #[arg(long = "task-budget", hide = true)]
    task_budget: Option<String>,
    #[arg(long = "fallback-model", hide = true)]
    fallback_model: Option<String>,
    #[arg(long = "betas", hide = true, allow_hyphen_values = true)]
    betas: Option<String>,
    #[arg(long = "include-hook-events", hide = true)]
    include_hook_events: bool,
    #[arg(long = "resume-session-at", hide = true)]
    resume_session_at: Option<String>,
    #[arg(long = "resume-drops-turn", hide = true)]
    resume_drops_turn: Option<String>,
    #[arg(long = "session-mirror", hide = true)]
    session_mirror: bool,
    #[arg(long = "plugin-dir", hide = true)]
    plugin_dir: Vec<String>,
    #[arg(long = "thinking-display", hide = true)]
    thinking_display: Option<String>,
    #[arg(long = "effort", hide = true)]
    effort: Option<String>,
    #[arg(long = "json-schema", hide = true, allow_hyphen_values = true)]
    json_schema: Option<String>,
    #[arg(long = "replay-user-messages", hide = true)]
    replay_user_messages: bool,
    #[arg(long = "agents", hide = true, allow_hyphen_values = true)]
    agents: Option<String>,
}

impl Unsupported {
    /// The options given, each with what keel does instead.
    pub fn given(&self) -> Vec<(&'static str, &'static str)> {
        let mut given = Vec::new();
        let mut check = |present: bool, flag: &'static str, instead: &'static str| {
            if present {
                given.push((flag, instead));
            }
        };
        check(
            self.max_budget_usd.is_some(),
            "--max-budget-usd",
            "no spending limit is enforced; use --max-turns to bound a run",
        );
        check(
            self.task_budget.is_some(),
            "--task-budget",
            "no task budget is enforced",
        );
        check(
            self.fallback_model.is_some(),
            "--fallback-model",
            "failed requests are retried with the same model",
        );
        check(
            self.betas.is_some(),
            "--betas",
            "no extra beta headers are sent",
        );
        check(
            self.include_hook_events,
            "--include-hook-events",
            "hook runs are not reported as stream-json lines",
        );
        check(
            self.resume_session_at.is_some(),
            "--resume-session-at",
            "the whole session is resumed",
        );
        check(
            self.resume_drops_turn.is_some(),
            "--resume-drops-turn",
            "the whole session is resumed",
        );
        check(
            self.session_mirror,
            "--session-mirror",
            "the transcript is written only to keel's own session folder",
        );
        check(
            !self.plugin_dir.is_empty(),
            "--plugin-dir",
            "no plugins are loaded",
        );
        check(
            self.thinking_display.is_some(),
            "--thinking-display",
            "thinking is shown as the model sends it",
        );
        check(
            self.effort.is_some(),
            "--effort",
            "the model's default effort is used",
        );
        check(
            self.json_schema.is_some(),
            "--json-schema",
            "the answer is not checked against the schema and the result has no structured_output",
        );
        check(
            self.replay_user_messages,
            "--replay-user-messages",
            "user messages read on stdin are not echoed",
        );
        check(
            self.agents.is_some(),
            "--agents",
            "no agents are defined from the command line",
        );
        given
    }
}

/// How print mode reads its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum InputFormat {
    /// The prompt, as an argument or piped text.
    Text,
    /// JSON messages, one per line, for a multi-turn session (and the Agent SDK).
    #[value(name = "stream-json")]
    StreamJson,
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
    /// Serve sessions over HTTP with Server-Sent Events (`keel serve --port 8642`).
    Serve(crate::commands::serve::ServeArgs),
    /// Speak the Agent Client Protocol on stdin/stdout, for editors such as Zed (`keel acp`).
    Acp(crate::commands::acp::AcpArgs),
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

impl Args {
    /// The per-session choices these flags make, for the session factory.
    pub fn session_options(&self) -> keel_setup::SessionOptions {
        keel_setup::SessionOptions {
            model: self.model.clone(),
            provider: self.provider.clone(),
            base_url: self.base_url.clone(),
            api_key_env: self.api_key_env.clone(),
            replay: self.replay.clone(),
            record: self.record.clone(),
            thinking: self.thinking.clone(),
            max_thinking_tokens: self.max_thinking_tokens,
            max_turns: self.max_turns,
            max_retries: self.max_retries,
            system_prompt: self.system_prompt.clone(),
            system_prompt_file: self.system_prompt_file.clone(),
            append_system_prompt: self.append_system_prompt.clone(),
            append_system_prompt_file: self.append_system_prompt_file.clone(),
            tools: self.tools.clone(),
            add_dir: self.add_dir.clone(),
            permission_mode: self.permission_mode.clone(),
            dangerously_skip_permissions: self.dangerously_skip_permissions,
            allowed_tools: self.allowed_tools.clone(),
            disallowed_tools: self.disallowed_tools.clone(),
            mcp_config: self.mcp_config.clone(),
            strict_mcp_config: self.strict_mcp_config,
            mcp_servers: Vec::new(),
            continue_session: self.continue_session,
            resume: self.resume.clone(),
            session_id: self.session_id.clone(),
            fork_session: self.fork_session,
            editor: None,
        }
    }
}

/// Who answers permission questions, from `--permission-prompt-tool`: `stdio` is the frontend
/// (the Agent SDK's can_use_tool, with stream-json input), `mcp__<server>__<tool>` an MCP
/// tool; without it nobody (print mode), and calls that need approval are denied.
pub fn approver_for(args: &Args) -> anyhow::Result<keel_engine::Approver> {
    match args.permission_prompt_tool.as_deref() {
        None => Ok(keel_engine::Approver::Unattended),
        Some("stdio") if args.input_format == InputFormat::StreamJson => {
            Ok(keel_engine::Approver::Interactive)
        }
        Some("stdio") => anyhow::bail!(
            "--permission-prompt-tool stdio asks the program on the other end of standard input, \
             which needs --input-format stream-json (as the Agent SDK uses it); for print mode \
             name an MCP tool (mcp__<server>__<tool>) instead"
        ),
        Some(tool) if tool.starts_with("mcp__") => {
            Ok(keel_engine::Approver::PromptTool(tool.to_string()))
        }
        Some(other) => anyhow::bail!(
            "--permission-prompt-tool {other:?}: name an MCP tool as mcp__<server>__<tool> (its \
             server configured with --mcp-config or .mcp.json), or stdio for the Agent SDK"
        ),
    }
}

/// Parses the command line. Options keel does not know are dropped with a warning on stderr,
/// never a usage error: programs written for Claude Code (the Agent SDK's `extra_args`) pass
/// options keel has not heard of.
pub fn parse_lenient() -> Args {
    let argv: Vec<OsString> = std::env::args_os().collect();
    // The usual command line parses as it is; only one clap rejects (or one asking for help
    // or the version, which clap also reports as an error) is scanned for unknown options.
    if let Ok(args) = Args::try_parse_from(&argv) {
        return args;
    }
    let (kept, dropped) = drop_unknown_options(argv);
    for option in dropped {
        eprintln!("keel: warning: ignoring unknown option {option} (keel does not have it)");
    }
    Args::parse_from(kept)
}

/// How many values a known option takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Arity {
    Flag,
    One,
    Optional,
    Many,
}

/// Removes the top-level options `Args` does not declare (`--x`, `--x=v`, and in stream-json
/// input mode `--x v`), returning the remaining argv and the options removed. Arguments after
/// a subcommand's name or `--` are left to clap.
fn drop_unknown_options(argv: Vec<OsString>) -> (Vec<OsString>, Vec<String>) {
    let mut command = Args::command();
    command.build();
    let mut known: std::collections::HashMap<String, Arity> = std::collections::HashMap::new();
    for arg in command.get_arguments() {
        let arity = if !arg.get_action().takes_values() {
            Arity::Flag
        } else {
            match arg.get_num_args() {
                Some(range) if range.max_values() == 0 => Arity::Flag,
                Some(range) if range.min_values() == 0 => Arity::Optional,
                Some(range) if range.max_values() > 1 => Arity::Many,
                _ => Arity::One,
            }
        };
        for long in arg.get_long_and_visible_aliases().into_iter().flatten() {
            known.insert(long.to_string(), arity);
        }
        for alias in arg.get_all_aliases().into_iter().flatten() {
            known.insert(alias.to_string(), arity);
        }
    }
    let subcommands: Vec<String> = command
        .get_subcommands()
        .flat_map(|sub| {
            std::iter::once(sub.get_name().to_string())
                .chain(sub.get_all_aliases().map(str::to_string))
        })
        .collect();
    // Without a positional prompt (stream-json input), a word after an unknown option is its
    // value; in text mode it is more likely the prompt, so it stays.
    let stream_input = argv
        .windows(2)
        .any(|pair| pair[0] == "--input-format" && pair[1] == "stream-json")
        || argv.iter().any(|arg| arg == "--input-format=stream-json");
    let is_option = |arg: &OsString| arg.to_str().is_some_and(|text| text.starts_with('-'));
    let mut kept = Vec::with_capacity(argv.len());
    let mut dropped = Vec::new();
    let mut args = argv.into_iter();
    if let Some(program) = args.next() {
        kept.push(program);
    }
    let mut args = args.peekable();
    let mut seen_positional = false;
    while let Some(arg) = args.next() {
        let Some(text) = arg.to_str().map(str::to_string) else {
            kept.push(arg);
            continue;
        };
        if text == "--" {
            kept.push(arg);
            kept.extend(args);
            break;
        }
        if let Some(long) = text.strip_prefix("--") {
            let (name, inline_value) = match long.split_once('=') {
                Some((name, _)) => (name, true),
                None => (long, false),
            };
            match known.get(name).copied() {
                Some(arity) => {
                    kept.push(arg);
                    if inline_value {
                        continue;
                    }
                    match arity {
                        Arity::Flag => {}
                        // The value may itself start with a dash (`--system-prompt "-x"`).
                        Arity::One => kept.extend(args.next()),
                        Arity::Optional => {
                            if args.peek().is_some_and(|next| !is_option(next)) {
                                kept.extend(args.next());
                            }
                        }
                        Arity::Many => {
                            while args.peek().is_some_and(|next| !is_option(next)) {
                                kept.extend(args.next());
                            }
                        }
                    }
                }
                None => {
                    let mut shown = text.clone();
                    if !inline_value
                        && stream_input
                        && args.peek().is_some_and(|next| !is_option(next))
                        && let Some(value) = args.next()
                    {
                        shown.push(' ');
                        shown.push_str(&value.to_string_lossy());
                    }
                    dropped.push(shown);
                }
            }
            continue;
        }
        if !text.starts_with('-') && !seen_positional {
            seen_positional = true;
            if subcommands.contains(&text) {
                // A subcommand parses its own options.
                kept.push(arg);
                kept.extend(args);
                break;
            }
        }
        kept.push(arg);
    }
    (kept, dropped)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(args: &[&str]) -> (Vec<String>, Vec<String>) {
        let argv = std::iter::once("keel")
            .chain(args.iter().copied())
            .map(OsString::from)
            .collect();
        let (kept, dropped) = drop_unknown_options(argv);
        (
            kept.into_iter()
                .skip(1)
                .map(|a| a.to_string_lossy().into_owned())
                .collect(),
            dropped,
        )
    }

    #[test]
    fn unknown_options_are_dropped_known_ones_kept_with_their_values() {
        let (kept, dropped) = scan(&[
            "--output-format",
            "stream-json",
            "--verbose",
            "--system-prompt",
            "",
            "--debug-to-stderr",
            "--frobnicate=3",
            "--max-turns",
            "2",
            "--wibble",
            "value",
            "--resume=abc",
            "--input-format",
            "stream-json",
        ]);
        assert_eq!(
            kept,
            [
                "--output-format",
                "stream-json",
                "--verbose",
                "--system-prompt",
                "",
                "--max-turns",
                "2",
                "--resume=abc",
                "--input-format",
                "stream-json"
            ]
        );
        assert_eq!(
            dropped,
            ["--debug-to-stderr", "--frobnicate=3", "--wibble value"]
        );
    }

    #[test]
    fn in_text_mode_a_word_after_an_unknown_option_stays_the_prompt() {
        let (kept, dropped) = scan(&["-p", "--wibble", "fix it"]);
        assert_eq!(kept, ["-p", "fix it"]);
        assert_eq!(dropped, ["--wibble"]);
    }

    #[test]
    fn dash_values_of_known_options_and_subcommands_are_left_alone() {
        let (kept, dropped) = scan(&["--system-prompt", "--not-an-option", "-p", "hi"]);
        assert_eq!(kept, ["--system-prompt", "--not-an-option", "-p", "hi"]);
        assert!(dropped.is_empty());
        let (kept, dropped) = scan(&["mcp", "list", "--weird"]);
        assert_eq!(kept, ["mcp", "list", "--weird"]);
        assert!(dropped.is_empty());
    }

    #[test]
    fn every_flag_the_agent_sdk_passes_parses() {
        let argv = [
            "keel",
            "--output-format",
            "stream-json",
            "--verbose",
            "--system-prompt",
            "",
            "--tools",
            "Bash,Read",
            "--allowedTools",
            "Read,Bash(git:*)",
            "--max-turns",
            "3",
            "--max-budget-usd",
            "1.5",
            "--disallowedTools",
            "Write",
            "--task-budget",
            "1000",
            "--model",
            "m",
            "--fallback-model",
            "n",
            "--betas",
            "x,y",
            "--permission-prompt-tool",
            "stdio",
            "--permission-mode",
            "acceptEdits",
            "--continue",
            "--resume=abc",
            "--session-id=1234",
            "--settings",
            "{}",
            "--add-dir",
            "/tmp",
            "--mcp-config",
            "{\"mcpServers\":{}}",
            "--include-partial-messages",
            "--include-hook-events",
            "--strict-mcp-config",
            "--fork-session",
            "--resume-session-at=u1",
            "--resume-drops-turn=u2",
            "--session-mirror",
            "--setting-sources=",
            "--plugin-dir",
            "/p",
            "--thinking",
            "adaptive",
            "--thinking-display",
            "summarized",
            "--max-thinking-tokens",
            "2000",
            "--effort",
            "high",
            "--json-schema",
            "{}",
            "--input-format",
            "stream-json",
        ];
        let args = Args::try_parse_from(argv).unwrap();
        assert_eq!(args.input_format, InputFormat::StreamJson);
        assert_eq!(args.system_prompt.as_deref(), Some(""));
        assert_eq!(args.resume.as_deref(), Some("abc"));
        assert_eq!(args.setting_sources.as_deref(), Some(""));
        assert_eq!(args.permission_prompt_tool.as_deref(), Some("stdio"));
        let named: Vec<&str> = args.unsupported.given().iter().map(|(f, _)| *f).collect();
        assert!(named.contains(&"--effort") && named.contains(&"--json-schema"));
        assert!(!named.contains(&"--model"));
    }
}
