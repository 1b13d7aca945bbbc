//! Scheduling tools with Claude Code's names and schemas: `CronCreate`, `CronList`,
//! `CronDelete` and `ScheduleWakeup`.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use keel_tools::{Tool, ToolContext, ToolError, ToolOutput};
use serde_json::{Value, json};

use super::failed;
use crate::cron::{CronStore, Schedule, human_schedule, show};
use crate::runtime::{TaskRuntime, blocking};

/// `CronCreate`: runs a prompt on a schedule.
#[derive(Debug)]
pub struct CronCreate(pub Arc<TaskRuntime>);

#[async_trait]
impl Tool for CronCreate {
    fn name(&self) -> &str {
        "CronCreate"
    }

    fn description(&self) -> &str {
        "Schedules a prompt to run on a standard 5-field cron expression (minute hour \
         day-of-month month day-of-week, in the user's local time zone), e.g. \"*/30 * * * *\" \
         or \"0 9 * * 1-5\". recurring=false runs it once at the next match, then removes it. \
         durable=true keeps it in .keel/scheduled_tasks.json, where `keel daemon` (or any \
         running session) starts it even after restarts; otherwise it lives only as long as \
         this session. Runs missed while nothing was running are reported, not replayed."
    }

    fn input_schema(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "cron": {"type": "string", "description": "Standard 5-field cron expression in local time: \"M H DoM Mon DoW\""},
                "prompt": {"type": "string", "description": "The prompt to run when it fires"},
                "recurring": {"type": "boolean", "description": "true (default): fire on every match; false: fire once, then delete"},
                "durable": {"type": "boolean", "description": "true: keep on disk so it survives restarts; false (default): only for this session"}
            },
            "required": ["cron", "prompt"],
            "additionalProperties": false
        })
    }

    fn is_read_only(&self) -> bool {
        false
    }

    async fn call(&self, input: Value, ctx: &ToolContext) -> Result<ToolOutput, ToolError> {
        let expression = input["cron"].as_str().unwrap_or_default();
        let prompt = input["prompt"].as_str().unwrap_or_default();
        let recurring = input["recurring"].as_bool().unwrap_or(true);
        let durable = input["durable"].as_bool().unwrap_or(false);
        let now = chrono::Utc::now();
        let mut schedule =
            Schedule::new(expression, prompt, recurring, durable, now).map_err(failed)?;
        schedule.cwd = Some(ctx.current_dir());
        let zone = self.0.options().zone;
        let next = schedule.next_run(now, zone);
        let schedule = if durable {
            let store = CronStore::for_project(self.0.project_root());
            blocking(move || store.add(schedule))
                .await
                .map_err(failed)?
        } else {
            self.0.schedules().add(schedule.clone());
            schedule
        };
        let human = human_schedule(&schedule.cron);
        let next = next
            .map(|t| format!(" Next run: {}.", show(t, zone)))
            .unwrap_or_default();
        let lifetime = if durable {
            "It is saved in .keel/scheduled_tasks.json; `keel daemon` runs it even when no session is open."
        } else {
            "It lasts as long as this session."
        };
        Ok(ToolOutput {
            content: format!(
                "Scheduled {} ({}{}).{next} {lifetime}",
                schedule.id,
                schedule.cron,
                if recurring { ", recurring" } else { ", once" }
            ),
            structured: Some(json!({
                "id": schedule.id,
                "humanSchedule": human,
                "recurring": recurring,
                "durable": durable,
            })),
            images: Vec::new(),
        })
    }
}

/// `CronList`: the schedules of the session and the project.
#[derive(Debug)]
pub struct CronList(pub Arc<TaskRuntime>);

#[async_trait]
impl Tool for CronList {
    fn name(&self) -> &str {
        "CronList"
    }

    fn description(&self) -> &str {
        "Lists scheduled prompts: this session's and the project's durable ones, with their \
         cron expression, next run and prompt."
    }

    fn input_schema(&self) -> Value {
        json!({"type": "object", "properties": {}, "additionalProperties": false})
    }

    fn is_read_only(&self) -> bool {
        true
    }

    async fn call(&self, _input: Value, _ctx: &ToolContext) -> Result<ToolOutput, ToolError> {
        let store = CronStore::for_project(self.0.project_root());
        let mut all = blocking(move || store.list()).await.map_err(failed)?;
        all.extend(self.0.schedules().list());
        let zone = self.0.options().zone;
        let now = chrono::Utc::now();
        if all.is_empty() {
            return Ok(ToolOutput {
                content: "No scheduled prompts".into(),
                structured: Some(json!({"jobs": []})),
                images: Vec::new(),
            });
        }
        let lines: Vec<String> = all
            .iter()
            .map(|s| {
                format!(
                    "{} {} ({}, {}) next {}: {}",
                    s.id,
                    s.cron,
                    if s.recurring { "recurring" } else { "once" },
                    if s.durable { "durable" } else { "session" },
                    s.next_run(now, zone)
                        .map(|t| show(t, zone))
                        .unwrap_or_else(|| "never".into()),
                    s.prompt
                )
            })
            .collect();
        let jobs: Vec<Value> = all
            .iter()
            .map(|s| {
                json!({
                    "id": s.id,
                    "cron": s.cron,
                    "humanSchedule": human_schedule(&s.cron),
                    "prompt": s.prompt,
                    "recurring": s.recurring,
                    "durable": s.durable,
                })
            })
            .collect();
        Ok(ToolOutput {
            content: lines.join("\n"),
            structured: Some(json!({"jobs": jobs})),
            images: Vec::new(),
        })
    }
}

/// `CronDelete`: removes a schedule.
#[derive(Debug)]
pub struct CronDelete(pub Arc<TaskRuntime>);

#[async_trait]
impl Tool for CronDelete {
    fn name(&self) -> &str {
        "CronDelete"
    }

    fn description(&self) -> &str {
        "Removes a scheduled prompt by its id (see CronList)."
    }

    fn input_schema(&self) -> Value {
        json!({
            "type": "object",
            "properties": {"id": {"type": "string", "description": "The schedule's id"}},
            "required": ["id"],
            "additionalProperties": false
        })
    }

    fn is_read_only(&self) -> bool {
        false
    }

    async fn call(&self, input: Value, _ctx: &ToolContext) -> Result<ToolOutput, ToolError> {
        let id = input["id"].as_str().unwrap_or_default().trim().to_string();
        let removed = if self.0.schedules().remove(&id) {
            true
        } else {
            let store = CronStore::for_project(self.0.project_root());
            let target = id.clone();
            blocking(move || store.remove(&target))
                .await
                .map_err(failed)?
        };
        if !removed {
            return Err(ToolError::Failed(format!(
                "No scheduled prompt {id}; CronList shows the ids"
            )));
        }
        Ok(ToolOutput {
            content: format!("Deleted scheduled prompt {id}"),
            structured: Some(json!({"id": id})),
            images: Vec::new(),
        })
    }
}

/// `ScheduleWakeup`: the agent asks to be woken with a prompt after a delay.
#[derive(Debug)]
pub struct ScheduleWakeup(pub Arc<TaskRuntime>);

#[async_trait]
impl Tool for ScheduleWakeup {
    fn name(&self) -> &str {
        "ScheduleWakeup"
    }

    fn description(&self) -> &str {
        "Schedules your own next turn: after `delaySeconds` this session receives `prompt` as \
         if the user had sent it. Use it to check back on something slow (a deploy, a long \
         build) instead of waiting. `reason` says why, for the user. stop=true cancels pending \
         wake-ups. Delays are clamped to the allowed range (by default 60 to 3600 seconds)."
    }

    fn input_schema(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "delaySeconds": {"type": "number", "minimum": 0, "description": "How long to wait before waking"},
                "reason": {"type": "string", "description": "Why you want to be woken, in a few words"},
                "prompt": {"type": "string", "description": "The prompt you receive when woken"},
                "stop": {"type": "boolean", "description": "Cancel pending wake-ups instead"},
                "noop": {"type": "boolean", "description": "Do nothing (a deliberate no-op)"}
            },
            "additionalProperties": false
        })
    }

    fn is_read_only(&self) -> bool {
        false
    }

    async fn call(&self, input: Value, _ctx: &ToolContext) -> Result<ToolOutput, ToolError> {
        if input["noop"].as_bool() == Some(true) {
            return Ok(ToolOutput::text("Nothing scheduled (noop)."));
        }
        if input["stop"].as_bool() == Some(true) {
            let cancelled = self.0.cancel_wakeups();
            return Ok(ToolOutput {
                content: format!("Cancelled {cancelled} pending wake-up(s)."),
                structured: Some(json!({
                    "scheduledFor": 0, "clampedDelaySeconds": 0, "wasClamped": false,
                    "stopped": true, "cancelledWakeups": cancelled,
                })),
                images: Vec::new(),
            });
        }
        let Some(delay) = input["delaySeconds"].as_f64() else {
            return Err(ToolError::InvalidInput(
                "Give delaySeconds (how long to wait) and prompt (what to wake up with)".into(),
            ));
        };
        let prompt = input["prompt"].as_str().unwrap_or_default();
        if prompt.trim().is_empty() {
            return Err(ToolError::InvalidInput(
                "Give the prompt you want to be woken with".into(),
            ));
        }
        let asked = Duration::from_secs_f64(delay.max(0.0));
        let used = self.0.schedule_wakeup(asked, prompt);
        let clamped = used.as_secs();
        let due = chrono::Utc::now() + chrono::Duration::from_std(used).unwrap_or_default();
        let zone = self.0.options().zone;
        Ok(ToolOutput {
            content: format!(
                "You will be woken at {} ({} s from now){} with: {prompt}",
                show(due, zone),
                clamped,
                if used == asked {
                    ""
                } else {
                    ", the delay was clamped to the allowed range"
                }
            ),
            structured: Some(json!({
                "scheduledFor": due.timestamp_millis(),
                "clampedDelaySeconds": clamped,
                "wasClamped": used != asked,
            })),
            images: Vec::new(),
        })
    }
}
