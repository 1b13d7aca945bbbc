//! What kind of thing a tool call does, which decides how rules and modes apply to it.

use std::path::Path;

use serde_json::Value;

use crate::rules::{EDIT_TOOLS, READ_TOOLS};

/// Tools that only change keel's own state (task lists, plans, questions to the user,
/// schedules, messages between agents), never the user's machine.
const INTERNAL_TOOLS: &[&str] = &[
    "TodoWrite",
    "TaskCreate",
    "TaskUpdate",
    "TaskGet",
    "TaskList",
    "TaskOutput",
    "TaskStop",
    "ExitPlanMode",
    "EnterPlanMode",
    "AskUserQuestion",
    "ListMcpResourcesTool",
    "ReadMcpResourceTool",
    "CronCreate",
    "CronList",
    "CronDelete",
    "ScheduleWakeup",
    "SendMessage",
];

/// The kind of a tool, from its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ToolKind {
    /// Reads files: Read, Glob, Grep, LS, NotebookRead.
    Read,
    /// Changes files: Edit, Write, MultiEdit, NotebookEdit.
    Edit,
    /// Runs shell commands: Bash.
    Shell,
    /// Fetches a URL: WebFetch.
    Fetch,
    /// Searches the web: WebSearch.
    WebSearch,
    /// A tool of an MCP server (`mcp__server__tool`).
    Mcp,
    /// Starts a subagent: Agent (formerly Task).
    Agent,
    /// Loads a skill: Skill.
    Skill,
    /// Only changes keel's own state: TodoWrite, Task*, ExitPlanMode, AskUserQuestion, ….
    Internal,
    /// Anything else.
    Other,
}

impl ToolKind {
    /// Classifies a tool by name. `Task` is the old name of `Agent`.
    pub fn of(tool_name: &str) -> ToolKind {
        match tool_name {
            "Bash" => ToolKind::Shell,
            "WebFetch" => ToolKind::Fetch,
            "WebSearch" => ToolKind::WebSearch,
            "Agent" | "Task" => ToolKind::Agent,
            "Skill" => ToolKind::Skill,
            name if READ_TOOLS.contains(&name) => ToolKind::Read,
            name if EDIT_TOOLS.contains(&name) => ToolKind::Edit,
            name if INTERNAL_TOOLS.contains(&name) => ToolKind::Internal,
            name if name.starts_with("mcp__") => ToolKind::Mcp,
            _ => ToolKind::Other,
        }
    }

    /// Lower-case name for messages.
    pub fn as_str(self) -> &'static str {
        match self {
            ToolKind::Read => "read",
            ToolKind::Edit => "edit",
            ToolKind::Shell => "shell",
            ToolKind::Fetch => "fetch",
            ToolKind::WebSearch => "web search",
            ToolKind::Mcp => "MCP",
            ToolKind::Agent => "agent",
            ToolKind::Skill => "skill",
            ToolKind::Internal => "internal",
            ToolKind::Other => "other",
        }
    }
}

/// One tool call to decide on.
#[derive(Clone, Copy, Debug)]
pub struct ToolCall<'a> {
    /// The tool's name as the model called it.
    pub tool_name: &'a str,
    /// The tool's input, as the model sent it.
    pub input: &'a Value,
    /// The directory the call runs in (relative paths in the input are relative to it).
    pub cwd: &'a Path,
    /// Set by the caller for MCP and other tools known to have no side effects (an MCP
    /// tool's `readOnlyHint`, a keel tool's own declaration, a skill that grants no
    /// permissions): they then run without asking and are allowed in plan mode.
    pub read_only: bool,
}

impl<'a> ToolCall<'a> {
    /// A call of `tool_name` with `input`, running in `cwd`.
    pub fn new(tool_name: &'a str, input: &'a Value, cwd: &'a Path) -> Self {
        Self {
            tool_name,
            input,
            cwd,
            read_only: false,
        }
    }

    /// Marks an MCP or other tool as free of side effects (see [`ToolCall::read_only`]).
    pub fn with_read_only(mut self, read_only: bool) -> Self {
        self.read_only = read_only;
        self
    }

    /// The kind of the called tool.
    pub fn kind(&self) -> ToolKind {
        ToolKind::of(self.tool_name)
    }

    pub(crate) fn str_field(&self, name: &str) -> Option<&'a str> {
        self.input.get(name).and_then(Value::as_str)
    }
}
