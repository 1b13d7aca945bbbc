//! The tools of work that outlives a turn, with Claude Code's names and input schemas.

use std::sync::Arc;

use keel_tools::{Tool, ToolError};
use serde_json::Value;

use crate::TasksError;
use crate::runtime::TaskRuntime;

mod background;
mod plan;
mod schedule;
mod team;
mod worktree;

pub use background::{TaskOutput, TaskStop};
pub use plan::{TaskCreate, TaskGet, TaskList, TaskUpdate, TodoWrite};
pub use schedule::{CronCreate, CronDelete, CronList, ScheduleWakeup};
pub use team::{SendMessage, SpawnTeammate, TeamCreate, TeamDelete};
pub use worktree::{EnterWorktree, ExitWorktree};

/// Which planning tool the model gets (the `todoTool` setting).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PlanningTool {
    /// `TaskCreate`, `TaskGet`, `TaskUpdate`, `TaskList` (the default).
    #[default]
    Tasks,
    /// The older `TodoWrite`, which SDK clients may still expect.
    TodoWrite,
}

impl std::str::FromStr for PlanningTool {
    type Err = TasksError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "tasks" | "Tasks" | "TaskCreate" => Ok(Self::Tasks),
            "TodoWrite" | "todowrite" | "todos" => Ok(Self::TodoWrite),
            other => Err(TasksError::Invalid(format!(
                "todoTool {other:?} is not known; use \"tasks\" (TaskCreate and friends) or \"TodoWrite\""
            ))),
        }
    }
}

/// Which groups of tools a session offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ToolSet {
    /// The planning tools.
    pub planning: PlanningTool,
    /// Team tools for a lead (TeamCreate, TeamDelete, SpawnTeammate).
    pub lead: bool,
    /// SendMessage (members, and leads).
    pub messaging: bool,
    /// EnterWorktree and ExitWorktree.
    pub worktrees: bool,
}

impl Default for ToolSet {
    fn default() -> Self {
        Self {
            planning: PlanningTool::Tasks,
            lead: false,
            messaging: false,
            worktrees: true,
        }
    }
}

/// The tools for a session, in the order they are offered.
pub fn for_session(runtime: &Arc<TaskRuntime>, set: ToolSet) -> Vec<Arc<dyn Tool>> {
    let r = runtime;
    let mut tools: Vec<Arc<dyn Tool>> = Vec::new();
    match set.planning {
        PlanningTool::Tasks => {
            tools.push(Arc::new(TaskCreate(r.clone())));
            tools.push(Arc::new(TaskGet(r.clone())));
            tools.push(Arc::new(TaskUpdate(r.clone())));
            tools.push(Arc::new(TaskList(r.clone())));
        }
        PlanningTool::TodoWrite => tools.push(Arc::new(TodoWrite(r.clone()))),
    }
    tools.push(Arc::new(TaskOutput(r.clone())));
    tools.push(Arc::new(TaskStop(r.clone())));
    tools.push(Arc::new(CronCreate(r.clone())));
    tools.push(Arc::new(CronDelete(r.clone())));
    tools.push(Arc::new(CronList(r.clone())));
    tools.push(Arc::new(ScheduleWakeup(r.clone())));
    if set.worktrees {
        tools.push(Arc::new(EnterWorktree(r.clone())));
        tools.push(Arc::new(ExitWorktree(r.clone())));
    }
    if set.lead {
        tools.push(Arc::new(TeamCreate(r.clone())));
        tools.push(Arc::new(TeamDelete(r.clone())));
        tools.push(Arc::new(SpawnTeammate(r.clone())));
    }
    if set.messaging || set.lead {
        tools.push(Arc::new(SendMessage(r.clone())));
    }
    tools
}

pub(crate) fn failed(error: impl std::fmt::Display) -> ToolError {
    ToolError::Failed(error.to_string())
}

pub(crate) fn optional_string(input: &Value, key: &str) -> Option<String> {
    input.get(key).and_then(Value::as_str).map(str::to_string)
}

pub(crate) fn string_list(input: &Value, key: &str) -> Vec<String> {
    input
        .get(key)
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(|v| match v {
                    Value::String(s) => Some(s.trim().trim_start_matches('#').to_string()),
                    Value::Number(n) => Some(n.to_string()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default()
}
