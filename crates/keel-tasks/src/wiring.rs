//! Plugging keel-tasks into a session being built: a runtime for the session, its tools, the
//! background hook of the tool context, and the engine extension. Frontends call [`wire`] with
//! what they know (folders, the `todoTool` setting, the environment) and apply the result.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use keel_tools::{Tool, ToolContext, ToolRegistry};

use crate::TasksError;
use crate::runtime::{RuntimeOptions, Seat, TaskRuntime};
use crate::team::{SpawnConfig, Timing, board_for};
use crate::tools::{PlanningTool, ToolSet, for_session};

/// What a frontend knows when it builds a session.
pub struct WiringInput<'a> {
    /// The session's folder (`~/.keel/projects/<dir>/<session id>/`).
    pub session_dir: PathBuf,
    /// The project whose `.keel/` holds boards, teams, schedules and worktrees.
    pub project_root: PathBuf,
    /// The `todoTool` setting, if set.
    pub todo_tool: Option<&'a str>,
    /// Environment lookup (settings `env` first, then the process).
    pub env: &'a dyn Fn(&str) -> Option<String>,
    /// How to start team members (the keel executable and the flags they inherit).
    pub spawn: Option<SpawnConfig>,
    /// The seat of a team member's session.
    pub seat: Option<Seat>,
}

/// A session's runtime and the tools that go with it.
pub struct Wiring {
    /// The runtime (also the engine extension).
    pub runtime: Arc<TaskRuntime>,
    /// The tools to offer.
    pub tools: Vec<Arc<dyn Tool>>,
}

impl std::fmt::Debug for Wiring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wiring")
            .field("runtime", &self.runtime)
            .field(
                "tools",
                &self
                    .tools
                    .iter()
                    .map(|t| t.name().to_string())
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Wiring {
    /// Lets `Bash` start background commands through this session's registry.
    pub fn apply_to_context(&self, ctx: &mut ToolContext) {
        ctx.background = Some(Arc::new(self.runtime.background().clone()));
    }

    /// Adds the tools to a registry (a name already taken is skipped with a warning).
    pub fn register(&self, registry: &mut ToolRegistry) {
        for tool in &self.tools {
            if let Err(error) = registry.register(tool.clone()) {
                tracing::warn!(%error, "not offering a task tool");
            }
        }
    }
}

/// Whether `value` reads as "on".
fn truthy(value: Option<String>) -> bool {
    value.is_some_and(|v| matches!(v.trim(), "1" | "true" | "yes" | "on"))
}

fn millis(
    env: &dyn Fn(&str) -> Option<String>,
    name: &str,
    default: u64,
) -> Result<u64, TasksError> {
    match env(name) {
        None => Ok(default),
        Some(text) => text.trim().parse::<u64>().map_err(|_| {
            TasksError::Invalid(format!(
                "{name}={text:?} is not a number of milliseconds; set it to e.g. 60000"
            ))
        }),
    }
}

/// Builds the runtime and tools for a session. Environment knobs:
/// `CLAUDE_CODE_TASK_LIST_ID` (or `KEEL_TASK_LIST`) shares a named board in `.keel/tasks/`;
/// `CLAUDE_CODE_EXPERIMENTAL_AGENT_TEAMS=1` (or `KEEL_TEAMS=1`) offers the team tools;
/// `KEEL_KEEP_BACKGROUND_TASKS=1` leaves background tasks running when the session ends;
/// `KEEL_WAKEUP_MIN_SECONDS`, `KEEL_TASK_REMINDER_TURNS` and `KEEL_TEAM_LEASE_MS`,
/// `KEEL_TEAM_IDLE_TIMEOUT_MS`, `KEEL_TEAM_POLL_MS`, `KEEL_TEAM_PROTOCOL_TIMEOUT_MS` tune it.
pub fn wire(input: WiringInput<'_>) -> Result<Wiring, TasksError> {
    let env = input.env;
    let planning = match input.todo_tool {
        Some(name) => name.parse::<PlanningTool>()?,
        None => PlanningTool::Tasks,
    };
    let mut options = RuntimeOptions::new(input.session_dir, input.project_root.clone());
    if let Some(list) = env("CLAUDE_CODE_TASK_LIST_ID").or_else(|| env("KEEL_TASK_LIST")) {
        crate::team::validate_name("task list", list.trim())?;
        options.board = Some(board_for(&input.project_root, list.trim()));
    }
    options.keep_background = truthy(env("KEEL_KEEP_BACKGROUND_TASKS"));
    if let Some(turns) = env("KEEL_TASK_REMINDER_TURNS") {
        options.reminder_turns = turns.trim().parse().map_err(|_| {
            TasksError::Invalid(format!(
                "KEEL_TASK_REMINDER_TURNS={turns:?} is not a number of turns (0 turns reminders off)"
            ))
        })?;
    }
    if let Some(seconds) = env("KEEL_WAKEUP_MIN_SECONDS") {
        let seconds: u64 = seconds.trim().parse().map_err(|_| {
            TasksError::Invalid(format!(
                "KEEL_WAKEUP_MIN_SECONDS={seconds:?} is not a number of seconds"
            ))
        })?;
        options.wakeup_min = Duration::from_secs(seconds);
    }
    let defaults = Timing::default();
    options.timing = Timing {
        lease_ms: millis(env, "KEEL_TEAM_LEASE_MS", defaults.lease_ms)?,
        idle_timeout_ms: millis(env, "KEEL_TEAM_IDLE_TIMEOUT_MS", defaults.idle_timeout_ms)?,
        poll_ms: millis(env, "KEEL_TEAM_POLL_MS", defaults.poll_ms)?,
        protocol_timeout_ms: millis(
            env,
            "KEEL_TEAM_PROTOCOL_TIMEOUT_MS",
            defaults.protocol_timeout_ms,
        )?,
    };
    let teams = truthy(env("CLAUDE_CODE_EXPERIMENTAL_AGENT_TEAMS")) || truthy(env("KEEL_TEAMS"));
    let member = input.seat.is_some();
    options.spawn = input.spawn;
    options.seat = input.seat;
    let runtime = TaskRuntime::new(options);
    let set = ToolSet {
        planning,
        lead: teams && !member,
        messaging: member,
        worktrees: true,
    };
    let tools = for_session(&runtime, set);
    Ok(Wiring { runtime, tools })
}
