//! What a frontend may choose for one session. The CLI fills this from its flags, the HTTP
//! server from a request body, ACP from `session/new`; the names follow Claude Code's flags,
//! which is also what error messages call them.

use std::path::PathBuf;

/// Per-session choices on top of the settings files. `Default` is "as configured".
#[derive(Debug, Clone, Default)]
pub struct SessionOptions {
    /// `--model`: the model (else `ANTHROPIC_MODEL`, then the `model` setting).
    pub model: Option<String>,
    /// `--provider`: anthropic, openai, ollama, openrouter, openai-compatible or replay.
    pub provider: Option<String>,
    /// `--base-url`: the provider's API base URL.
    pub base_url: Option<String>,
    /// `--api-key-env`: the variable holding the provider's key.
    pub api_key_env: Option<String>,
    /// `--replay`: the recorded conversation the replay provider answers from.
    pub replay: Option<PathBuf>,
    /// `--record`: where to record every model response.
    pub record: Option<PathBuf>,
    /// `--thinking`: a budget, `enabled` or `disabled`.
    pub thinking: Option<String>,
    /// `--max-thinking-tokens`.
    pub max_thinking_tokens: Option<u32>,
    /// `--max-turns`: model turns per run.
    pub max_turns: Option<u32>,
    /// `--max-retries`: retries of a failed model request.
    pub max_retries: Option<u32>,
    /// `--system-prompt`: replaces keel's system prompt.
    pub system_prompt: Option<String>,
    /// `--system-prompt-file`: a file whose text replaces keel's system prompt.
    pub system_prompt_file: Option<PathBuf>,
    /// `--append-system-prompt`: added to the system prompt.
    pub append_system_prompt: Option<String>,
    /// `--append-system-prompt-file`: a file whose text is added to the system prompt.
    pub append_system_prompt_file: Option<PathBuf>,
    /// `--tools`: the built-in tools the model gets (`default` all, empty none, else names).
    pub tools: Option<String>,
    /// `--add-dir`: more directories the agent may work in.
    pub add_dir: Vec<PathBuf>,
    /// `--permission-mode`, in Claude Code's spelling.
    pub permission_mode: Option<String>,
    /// `--dangerously-skip-permissions`.
    pub dangerously_skip_permissions: bool,
    /// `--allowedTools` values (each may hold several rules).
    pub allowed_tools: Vec<String>,
    /// `--disallowedTools` values.
    pub disallowed_tools: Vec<String>,
    /// `--mcp-config` values: files or JSON text.
    pub mcp_config: Vec<String>,
    /// `--strict-mcp-config`: only the servers of `mcp_config` (and `mcp_servers`).
    pub strict_mcp_config: bool,
    /// Servers the frontend itself defines (ACP's `session/new`), added to the configured ones.
    pub mcp_servers: Vec<keel_mcp::ServerConfig>,
    /// `--continue`: continue the most recent session of the directory.
    pub continue_session: bool,
    /// `--resume`: the session to continue (empty: list the choices in the error).
    pub resume: Option<String>,
    /// `--session-id`: the id of a new session.
    pub session_id: Option<String>,
    /// `--fork-session`: a continued session gets a new id and transcript.
    pub fork_session: bool,
    /// The editor that holds the files (ACP clients that offer file access).
    pub editor: Option<std::sync::Arc<dyn keel_tools::EditorFiles>>,
}

/// Splits `--allowedTools` values: each occurrence may hold several rules separated by commas
/// or spaces (the Agent SDK joins them with commas), but a comma or space inside a rule's
/// parentheses belongs to the rule.
pub fn split_rules(values: &[String]) -> Vec<String> {
    values
        .iter()
        .flat_map(|value| keel_config::frontmatter::split_tool_list(value))
        .collect()
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
