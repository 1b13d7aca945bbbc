//! Command-line arguments, named as Claude Code names them so `claude -p` scripts work unchanged.

use std::path::PathBuf;

use clap::{Parser, ValueEnum};

const EXAMPLES: &str = "\
Examples:
  keel -p \"why does the build fail?\"                 answer, then exit
  keel -p \"make the failing test pass\" --dangerously-skip-permissions
                                                    let it edit files and run commands
  git diff | keel -p \"review this change\"            piped input is added to the prompt
  keel -p \"list the TODOs\" --output-format json      one JSON result object
  keel -p \"fix it\" --output-format stream-json --verbose
                                                    one JSON object per line, as it works

Model: set ANTHROPIC_API_KEY (or ANTHROPIC_AUTH_TOKEN); ANTHROPIC_BASE_URL points keel at a
proxy or compatible gateway; --model or ANTHROPIC_MODEL picks the model.";

/// keel: a coding agent that works in your repository through tools.
#[derive(Debug, Parser)]
#[command(name = "keel", version, about, after_help = EXAMPLES)]
pub struct Args {
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

    /// The model to use (default: ANTHROPIC_MODEL, else keel's default).
    #[arg(long, env = "ANTHROPIC_MODEL")]
    pub model: Option<String>,

    /// Stop after this many model turns (the result's subtype is then `error_max_turns`).
    #[arg(long = "max-turns", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_turns: Option<u32>,

    /// Replace keel's system prompt with this text.
    #[arg(long = "system-prompt", allow_hyphen_values = true)]
    pub system_prompt: Option<String>,

    /// Append this text to the system prompt.
    #[arg(long = "append-system-prompt", allow_hyphen_values = true)]
    pub append_system_prompt: Option<String>,

    /// Give the agent access to another directory as well (repeatable).
    #[arg(long = "add-dir", value_name = "DIR", num_args = 1..)]
    pub add_dir: Vec<PathBuf>,

    /// Run every tool without asking, including file edits and shell commands.
    #[arg(long = "dangerously-skip-permissions")]
    pub dangerously_skip_permissions: bool,
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
