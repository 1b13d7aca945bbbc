//! keel-tasks in a CLI session: the runtime and tools a session gets, and the flags team
//! members inherit from the lead.

use std::path::PathBuf;

use anyhow::Result;
use keel_policy::Policy;
use keel_tasks::team::SpawnConfig;
use keel_tasks::wiring::{Wiring, WiringInput, wire};

use crate::args::Args;
use crate::setup::Workspace;

/// The task runtime and tools for a session in `ws`.
pub fn wiring(
    args: &Args,
    ws: &Workspace,
    policy: &Policy,
    model: &str,
    session_dir: PathBuf,
    seat: Option<keel_tasks::Seat>,
) -> Result<Wiring> {
    let lookup = |name: &str| ws.var(name);
    let spawn = std::env::current_exe().ok().map(|program| SpawnConfig {
        program,
        args: member_flags(args, policy, model),
        env: Vec::new(),
    });
    // A member's tasks run in worktrees; its project is the team's, not the worktree.
    let project_root = match &seat {
        Some(seat) => seat.team.project_root().to_path_buf(),
        None => ws.settings.project_root.clone(),
    };
    Ok(wire(WiringInput {
        session_dir,
        project_root,
        todo_tool: ws.settings.effective.todo_tool.as_deref(),
        env: &lookup,
        spawn,
        seat,
    })?)
}

/// The flags a team member gets from its lead: the same model, provider, permissions and
/// settings, so members work as the lead does.
pub fn member_flags(args: &Args, policy: &Policy, model: &str) -> Vec<String> {
    let mut flags = vec![
        "--model".to_string(),
        model.to_string(),
        "--permission-mode".to_string(),
        policy.mode().as_str().to_string(),
    ];
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
