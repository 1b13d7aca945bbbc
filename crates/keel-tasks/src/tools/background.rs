//! `TaskOutput` and `TaskStop`: reading and stopping the session's background tasks.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use keel_tools::{Tool, ToolContext, ToolError, ToolOutput};
use serde_json::{Value, json};

use super::failed;
use crate::background::JobState;
use crate::runtime::TaskRuntime;

/// How long a blocking read waits when the call gives no timeout.
const DEFAULT_TIMEOUT_MS: u64 = 30_000;
/// The longest a blocking read may wait.
const MAX_TIMEOUT_MS: u64 = 600_000;

/// `TaskOutput`: new output of a background task since the last read.
#[derive(Debug)]
pub struct TaskOutput(pub Arc<TaskRuntime>);

#[async_trait]
impl Tool for TaskOutput {
    fn name(&self) -> &str {
        "TaskOutput"
    }

    fn description(&self) -> &str {
        "Reads the output of a background task (a command started with Bash run_in_background, \
         or a background agent) written since your last read, with its status and exit code. \
         With block=true (the default) it first waits until the task ends or `timeout` \
         milliseconds pass (default 30000, at most 600000); with block=false it returns at once. \
         A dev server never ends, so read it with block=false or a short timeout."
    }

    fn input_schema(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "task_id": {"type": "string", "description": "The task ID to get output from"},
                "block": {"type": "boolean", "description": "Whether to wait for completion (default true)"},
                "timeout": {"type": "number", "minimum": 0, "maximum": MAX_TIMEOUT_MS, "description": "Max wait time in ms (default 30000)"}
            },
            "required": ["task_id"],
            "additionalProperties": false
        })
    }

    fn is_read_only(&self) -> bool {
        true
    }

    async fn call(&self, input: Value, ctx: &ToolContext) -> Result<ToolOutput, ToolError> {
        let id = input["task_id"]
            .as_str()
            .unwrap_or_default()
            .trim()
            .to_string();
        let block = input["block"].as_bool().unwrap_or(true);
        let timeout = input["timeout"]
            .as_f64()
            .map(|t| t.clamp(0.0, MAX_TIMEOUT_MS as f64) as u64)
            .unwrap_or(DEFAULT_TIMEOUT_MS);
        let read = self
            .0
            .background()
            .read(&id, block, Duration::from_millis(timeout));
        let read = tokio::select! {
            read = read => read.map_err(failed)?,
            () = ctx.cancel.cancelled() => return Err(ToolError::Interrupted { partial: String::new() }),
        };
        let retrieval = if read.timed_out {
            "timeout"
        } else if read.info.status == JobState::Running && block {
            "not_ready"
        } else {
            "success"
        };
        let mut content = format!(
            "<retrieval_status>{retrieval}</retrieval_status>\n\n<task_id>{}</task_id>\n\n<task_type>{}</task_type>\n\n<status>{}</status>",
            read.info.id,
            read.info.task_type,
            read.info.status.as_str()
        );
        if let Some(code) = read.info.exit_code {
            content.push_str(&format!("\n\n<exit_code>{code}</exit_code>"));
        }
        let output = read.output.trim_end_matches('\n');
        if output.is_empty() {
            content.push_str("\n\n(no new output since the last read)");
        } else {
            content.push_str(&format!("\n\n<output>\n{output}\n</output>"));
        }
        Ok(ToolOutput {
            content,
            structured: Some(json!({
                "retrieval_status": retrieval,
                "task": {
                    "task_id": read.info.id,
                    "task_type": read.info.task_type,
                    "status": read.info.status.as_str(),
                    "description": read.info.description,
                    "output": read.output,
                    "exitCode": read.info.exit_code,
                }
            })),
            images: Vec::new(),
        })
    }
}

/// `TaskStop`: stops a background task.
#[derive(Debug)]
pub struct TaskStop(pub Arc<TaskRuntime>);

#[async_trait]
impl Tool for TaskStop {
    fn name(&self) -> &str {
        "TaskStop"
    }

    fn description(&self) -> &str {
        "Stops a background task (a command started with Bash run_in_background, or a \
         background agent) by its id: the command and every process it started are ended. Use \
         it when a dev server or watcher is no longer needed."
    }

    fn input_schema(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "task_id": {"type": "string", "description": "The ID of the background task to stop"},
                "shell_id": {"type": "string", "description": "Deprecated: use task_id instead"}
            },
            "additionalProperties": false
        })
    }

    fn is_read_only(&self) -> bool {
        false
    }

    async fn call(&self, input: Value, _ctx: &ToolContext) -> Result<ToolOutput, ToolError> {
        let Some(id) = input["task_id"]
            .as_str()
            .or_else(|| input["shell_id"].as_str())
            .map(str::trim)
            .filter(|s| !s.is_empty())
        else {
            return Err(ToolError::InvalidInput(
                "Give the id of the task to stop as task_id (e.g. \"bash_1\")".into(),
            ));
        };
        let info = self.0.background().stop(id).await.map_err(failed)?;
        let what = info
            .command
            .clone()
            .or(info.description.clone())
            .unwrap_or_default();
        Ok(ToolOutput {
            content: format!("Successfully stopped task: {} ({what})", info.id),
            structured: Some(json!({
                "message": format!("Successfully stopped task: {} ({what})", info.id),
                "task_id": info.id,
                "task_type": info.task_type,
                "command": info.command,
            })),
            images: Vec::new(),
        })
    }
}
