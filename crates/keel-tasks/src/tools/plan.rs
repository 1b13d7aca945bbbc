//! Planning tools with Claude Code's names and schemas: `TaskCreate`, `TaskGet`, `TaskUpdate`,
//! `TaskList`, and the older `TodoWrite`. They work on the session's list, or on the team's
//! board when the session is in a team; every change is reported as a `PlanUpdated` event.

use std::sync::Arc;

use async_trait::async_trait;
use keel_tools::{Tool, ToolContext, ToolError, ToolOutput};
use serde_json::{Map, Value, json};

use super::{failed, optional_string, string_list};
use crate::runtime::{TaskRuntime, blocking};
use crate::store::{NewTask, TaskPatch, TaskStatus};

/// `TaskCreate`: adds a task to the list.
#[derive(Debug)]
pub struct TaskCreate(pub Arc<TaskRuntime>);

#[async_trait]
impl Tool for TaskCreate {
    fn name(&self) -> &str {
        "TaskCreate"
    }

    fn description(&self) -> &str {
        "Adds a task to the task list. Use the list for work with several steps (three or more), \
         or when the user gives you a list of things to do: one task per step, created before \
         you start, so progress stays visible. `subject` is a short imperative title (\"Fix the \
         login redirect\"), `description` says what done means, `activeForm` is the \
         present-continuous form shown while it runs (\"Fixing the login redirect\"). New tasks \
         are pending; use TaskUpdate to start them, finish them and set dependencies. Skip the \
         list for a single simple step."
    }

    fn input_schema(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "subject": {"type": "string", "description": "A short imperative title"},
                "description": {"type": "string", "description": "What needs doing and what done means"},
                "activeForm": {"type": "string", "description": "Present-continuous form shown while in progress (e.g. \"Running the tests\")"},
                "metadata": {"type": "object", "description": "Extra data to keep with the task"}
            },
            "required": ["subject", "description"],
            "additionalProperties": false
        })
    }

    fn is_read_only(&self) -> bool {
        false
    }

    async fn call(&self, input: Value, _ctx: &ToolContext) -> Result<ToolOutput, ToolError> {
        let new = NewTask {
            subject: input["subject"].as_str().unwrap_or_default().to_string(),
            description: input["description"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            active_form: optional_string(&input, "activeForm"),
            metadata: input["metadata"].as_object().cloned().unwrap_or_default(),
            status: None,
        };
        let board = self.0.board();
        let me = self.0.me();
        let task = blocking(move || board.create(new, me.as_deref()))
            .await
            .map_err(failed)?;
        self.0.emit_plan().await;
        Ok(ToolOutput {
            content: format!("Task #{} created successfully: {}", task.id, task.subject),
            structured: Some(json!({"task": {"id": task.id, "subject": task.subject}})),
            images: Vec::new(),
        })
    }
}

/// `TaskGet`: one task in full.
#[derive(Debug)]
pub struct TaskGet(pub Arc<TaskRuntime>);

#[async_trait]
impl Tool for TaskGet {
    fn name(&self) -> &str {
        "TaskGet"
    }

    fn description(&self) -> &str {
        "Shows one task of the task list in full: subject, description, status, owner, and the \
         tasks it waits for and blocks. Use it before starting a task to read what it asks for."
    }

    fn input_schema(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "taskId": {"type": "string", "description": "The task's id"}
            },
            "required": ["taskId"],
            "additionalProperties": false
        })
    }

    fn is_read_only(&self) -> bool {
        true
    }

    async fn call(&self, input: Value, _ctx: &ToolContext) -> Result<ToolOutput, ToolError> {
        let id = task_id(&input);
        let board = self.0.board();
        let (task, all) = blocking(move || Ok((board.get(&id)?, board.list()?)))
            .await
            .map_err(failed)?;
        let Some(task) = task else {
            let ids: Vec<String> = all.iter().map(|t| format!("#{}", t.id)).collect();
            return Err(ToolError::Failed(if ids.is_empty() {
                format!(
                    "Task #{} not found: the task list is empty",
                    task_id(&input)
                )
            } else {
                format!(
                    "Task #{} not found; the tasks are {}",
                    task_id(&input),
                    ids.join(", ")
                )
            }));
        };
        let open = task.open_blockers(&all);
        let mut text = format!(
            "Task #{}: {}\nStatus: {}",
            task.id,
            task.subject,
            task.status.as_str()
        );
        if let Some(owner) = &task.owner {
            text.push_str(&format!("\nOwner: {owner}"));
        }
        if !task.description.is_empty() {
            text.push_str(&format!("\nDescription: {}", task.description));
        }
        if !open.is_empty() {
            text.push_str(&format!("\nBlocked by: {}", hashes(&open)));
        }
        if !task.blocks.is_empty() {
            text.push_str(&format!("\nBlocks: {}", hashes(&task.blocks)));
        }
        if !task.metadata.is_empty() {
            text.push_str(&format!(
                "\nMetadata: {}",
                Value::Object(task.metadata.clone())
            ));
        }
        Ok(ToolOutput {
            content: text,
            structured: Some(json!({"task": {
                "id": task.id,
                "subject": task.subject,
                "description": task.description,
                "status": task.status.as_str(),
                "blocks": task.blocks,
                "blockedBy": task.blocked_by,
            }})),
            images: Vec::new(),
        })
    }
}

/// `TaskUpdate`: changes a task (status, text, owner, dependencies, metadata) or deletes it.
#[derive(Debug)]
pub struct TaskUpdate(pub Arc<TaskRuntime>);

#[async_trait]
impl Tool for TaskUpdate {
    fn name(&self) -> &str {
        "TaskUpdate"
    }

    fn description(&self) -> &str {
        "Changes a task of the task list. Set `status` to in_progress when you start a task \
         (one at a time) and to completed as soon as it is done, not in batches later; \
         `deleted` removes a task that is no longer relevant. `addBlockedBy` lists tasks that \
         must be completed before this one can start, `addBlocks` the tasks that wait for this \
         one. In a team, setting a task in progress makes you its owner, and a task another \
         member works on cannot be taken. Only mark a task completed when it is really done \
         (tests pass, nothing left open)."
    }

    fn input_schema(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "taskId": {"type": "string", "description": "The task's id"},
                "subject": {"type": "string", "description": "A new title"},
                "description": {"type": "string", "description": "A new description"},
                "activeForm": {"type": "string", "description": "A new present-continuous form"},
                "status": {"type": "string", "enum": ["pending", "in_progress", "completed", "deleted"], "description": "The new status; deleted removes the task"},
                "addBlocks": {"type": "array", "items": {"type": "string"}, "description": "Ids of tasks that cannot start before this one is completed"},
                "addBlockedBy": {"type": "array", "items": {"type": "string"}, "description": "Ids of tasks that must be completed before this one can start"},
                "owner": {"type": "string", "description": "Who works on it (a team member's name; empty to clear)"},
                "metadata": {"type": "object", "description": "Keys to merge into the task's metadata; a null value removes the key"}
            },
            "required": ["taskId"],
            "additionalProperties": false
        })
    }

    fn is_read_only(&self) -> bool {
        false
    }

    async fn call(&self, input: Value, _ctx: &ToolContext) -> Result<ToolOutput, ToolError> {
        let id = task_id(&input);
        let board = self.0.board();
        let me = self.0.me();
        if input["status"].as_str() == Some("deleted") {
            let target = id.clone();
            let deleted = blocking(move || board.delete(&target, me.as_deref()))
                .await
                .map_err(failed)?;
            if !deleted {
                return Err(ToolError::Failed(format!(
                    "Task #{id} not found; nothing to delete"
                )));
            }
            self.0.emit_plan().await;
            return Ok(ToolOutput {
                content: format!("Task #{id} deleted"),
                structured: Some(
                    json!({"success": true, "taskId": id, "updatedFields": ["deleted"]}),
                ),
                images: Vec::new(),
            });
        }
        let status = match input["status"].as_str() {
            Some(s) => Some(s.parse::<TaskStatus>().map_err(failed)?),
            None => None,
        };
        let patch = TaskPatch {
            subject: optional_string(&input, "subject"),
            description: optional_string(&input, "description"),
            active_form: optional_string(&input, "activeForm"),
            status,
            add_blocks: string_list(&input, "addBlocks"),
            add_blocked_by: string_list(&input, "addBlockedBy"),
            owner: optional_string(&input, "owner"),
            metadata: input["metadata"].as_object().cloned(),
        };
        let target = id.clone();
        let updated = blocking(move || board.update(&target, patch, me.as_deref()))
            .await
            .map_err(failed)?;
        if updated.fields.is_empty() {
            return Ok(ToolOutput {
                content: format!("Task #{id} unchanged (it already looked like that)"),
                structured: Some(json!({"success": true, "taskId": id, "updatedFields": []})),
                images: Vec::new(),
            });
        }
        self.0.emit_plan().await;
        let mut structured = json!({
            "success": true,
            "taskId": id,
            "updatedFields": updated.fields,
        });
        if let Some((from, to)) = updated.status_change {
            structured["statusChange"] = json!({"from": from.as_str(), "to": to.as_str()});
        }
        let mut content = format!("Updated task #{id} {}", updated.fields.join(", "));
        if updated
            .status_change
            .is_some_and(|(_, to)| to == TaskStatus::Completed)
            && !updated.task.blocks.is_empty()
        {
            content.push_str(&format!(
                "; tasks waiting for it: {}",
                hashes(&updated.task.blocks)
            ));
        }
        Ok(ToolOutput {
            content,
            structured: Some(structured),
            images: Vec::new(),
        })
    }
}

/// `TaskList`: the whole list, briefly.
#[derive(Debug)]
pub struct TaskList(pub Arc<TaskRuntime>);

#[async_trait]
impl Tool for TaskList {
    fn name(&self) -> &str {
        "TaskList"
    }

    fn description(&self) -> &str {
        "Lists the task list: each task's id, status, subject, owner and the unfinished tasks it \
         waits for. Use it to see what is left, what is free to start (pending, no owner, \
         nothing to wait for), and after finishing a task to pick the next."
    }

    fn input_schema(&self) -> Value {
        json!({"type": "object", "properties": {}, "additionalProperties": false})
    }

    fn is_read_only(&self) -> bool {
        true
    }

    async fn call(&self, _input: Value, _ctx: &ToolContext) -> Result<ToolOutput, ToolError> {
        let board = self.0.board();
        let tasks = blocking(move || board.list()).await.map_err(failed)?;
        let mut lines: Vec<String> = tasks.iter().map(|t| t.list_line(&tasks)).collect();
        if lines.is_empty() {
            lines.push("No tasks found".to_string());
        }
        if let Some(seat) = self.0.seat() {
            let team = seat.team.clone();
            if let Ok(status) = blocking(move || team.status_line()).await {
                lines.push(String::new());
                lines.push(status);
            }
        }
        let structured: Vec<Value> = tasks
            .iter()
            .map(|t| {
                let mut entry = json!({
                    "id": t.id,
                    "subject": t.subject,
                    "status": t.status.as_str(),
                    "blockedBy": t.open_blockers(&tasks),
                });
                if let Some(owner) = &t.owner {
                    entry["owner"] = json!(owner);
                }
                entry
            })
            .collect();
        Ok(ToolOutput {
            content: lines.join("\n"),
            structured: Some(json!({"tasks": structured})),
            images: Vec::new(),
        })
    }
}

/// `TodoWrite`: the older planning tool; the model sends the whole list every time.
#[derive(Debug)]
pub struct TodoWrite(pub Arc<TaskRuntime>);

#[async_trait]
impl Tool for TodoWrite {
    fn name(&self) -> &str {
        "TodoWrite"
    }

    fn description(&self) -> &str {
        "Writes the todo list, whole: send every item each time, with its status (pending, \
         in_progress, completed) and `activeForm` (the present-continuous form shown while it \
         runs). Use it for work with several steps: write the list before you start, keep \
         exactly one item in_progress, and mark items completed as soon as they are done."
    }

    fn input_schema(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "todos": {
                    "type": "array",
                    "description": "The updated todo list",
                    "items": {
                        "type": "object",
                        "properties": {
                            "content": {"type": "string", "minLength": 1},
                            "status": {"type": "string", "enum": ["pending", "in_progress", "completed"]},
                            "activeForm": {"type": "string", "minLength": 1}
                        },
                        "required": ["content", "status", "activeForm"],
                        "additionalProperties": false
                    }
                }
            },
            "required": ["todos"],
            "additionalProperties": false
        })
    }

    fn is_read_only(&self) -> bool {
        false
    }

    async fn call(&self, input: Value, _ctx: &ToolContext) -> Result<ToolOutput, ToolError> {
        let todos = input["todos"].as_array().cloned().unwrap_or_default();
        let mut items = Vec::new();
        for todo in &todos {
            items.push(NewTask {
                subject: todo["content"].as_str().unwrap_or_default().to_string(),
                description: String::new(),
                active_form: optional_string(todo, "activeForm"),
                metadata: Map::new(),
                status: Some(
                    todo["status"]
                        .as_str()
                        .unwrap_or("pending")
                        .parse::<TaskStatus>()
                        .map_err(failed)?,
                ),
            });
        }
        let board = self.0.board();
        let (old, _) = blocking(move || {
            let old = board.list()?;
            let new = board.replace_all(items)?;
            Ok((old, new))
        })
        .await
        .map_err(failed)?;
        self.0.emit_plan().await;
        let old_todos: Vec<Value> = old
            .iter()
            .map(|t| json!({"content": t.subject, "status": t.status.as_str(), "activeForm": t.active_form.clone().unwrap_or_default()}))
            .collect();
        Ok(ToolOutput {
            content: "The todo list is saved. Keep it current as you work: one item in_progress, \
                      each marked completed as soon as it is done."
                .to_string(),
            structured: Some(json!({"oldTodos": old_todos, "newTodos": todos})),
            images: Vec::new(),
        })
    }
}

fn task_id(input: &Value) -> String {
    input["taskId"]
        .as_str()
        .unwrap_or_default()
        .trim()
        .trim_start_matches('#')
        .to_string()
}

fn hashes(ids: &[String]) -> String {
    ids.iter()
        .map(|id| format!("#{id}"))
        .collect::<Vec<_>>()
        .join(", ")
}
