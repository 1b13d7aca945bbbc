//! The flags team members inherit from a lead started on the command line.

use crate::args::Args;

/// The flags a team member gets from its lead besides model and permission mode (which the
/// session adds): the same provider, settings and rules, so members work as the lead does.
pub fn member_flags(args: &Args) -> Vec<String> {
    let mut flags = Vec::new();
    let mut pair = |flag: &str, value: &Option<String>| {
        if let Some(value) = value {
            flags.push(flag.to_string());
            flags.push(value.clone());
        }
    };
    pair("--provider", &args.provider);
    pair("--base-url", &args.base_url);
    pair("--api-key-env", &args.api_key_env);
    pair("--settings", &args.settings);
    pair("--setting-sources", &args.setting_sources);
    for (flag, values) in [
        ("--allowedTools", &args.allowed_tools),
        ("--disallowedTools", &args.disallowed_tools),
        ("--mcp-config", &args.mcp_config),
    ] {
        for value in values {
            flags.push(flag.to_string());
            flags.push(value.clone());
        }
    }
    for dir in &args.add_dir {
        flags.push("--add-dir".to_string());
        let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.clone());
        flags.push(dir.display().to_string());
    }
    if args.strict_mcp_config {
        flags.push("--strict-mcp-config".to_string());
    }
    if let Some(turns) = args.max_turns {
        flags.push("--max-turns".to_string());
        flags.push(turns.to_string());
    }
    flags
}
