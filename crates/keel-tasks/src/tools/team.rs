//! Team tools: `TeamCreate` and `TeamDelete` (Claude Code's names), `SpawnTeammate` (keel's:
//! starts a member process), and `SendMessage` (Claude Code's schema: `to` a member or `*`,
//! `message` as text or a protocol object, `summary`).

use std::sync::Arc;

use async_trait::async_trait;
use keel_tools::{Tool, ToolContext, ToolError, ToolOutput};
use serde_json::{Value, json};

use super::failed;
use crate::mailbox::Body;
use crate::runtime::{TaskRuntime, blocking};
use crate::team::{LEAD, Team};

/// `TeamCreate`: makes this session the lead of a new team with a shared board.
#[derive(Debug)]
pub struct TeamCreate(pub Arc<TaskRuntime>);

#[async_trait]
impl Tool for TeamCreate {
    fn name(&self) -> &str {
        "TeamCreate"
    }

    fn description(&self) -> &str {
        "Creates a team that you lead, for a job large enough to split between several agents \
         working at once. The team shares one task board (TaskCreate, TaskUpdate and TaskList \
         work on it from now on): put every piece of work on it with its dependencies, then \
         start members with SpawnTeammate. Members claim free tasks on their own, each in its \
         own git worktree, and report with SendMessage; their messages reach you at your next \
         turn."
    }

    fn input_schema(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "team_name": {"type": "string", "description": "A short name: letters, digits, '-' and '_'"},
                "description": {"type": "string", "description": "What the team is for"}
            },
            "required": ["team_name"],
            "additionalProperties": false
        })
    }

    fn is_read_only(&self) -> bool {
        false
    }

    async fn call(&self, input: Value, _ctx: &ToolContext) -> Result<ToolOutput, ToolError> {
        if self.0.seat().is_some() {
            return Err(ToolError::Failed(
                "This session is already in a team; finish with it (TeamDelete) first".into(),
            ));
        }
        let name = input["team_name"]
            .as_str()
            .unwrap_or_default()
            .trim()
            .to_string();
        let description = input["description"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let root = self.0.project_root().to_path_buf();
        let timing = self.0.options().timing;
        let team = blocking(move || Team::create(&root, &name, &description, timing))
            .await
            .map_err(failed)?;
        self.0.join_team(team.clone(), LEAD).map_err(failed)?;
        self.0.emit_plan().await;
        Ok(ToolOutput {
            content: format!(
                "Team {} created; you lead it as {LEAD}. Its board is {} (the task tools use it \
                 now). Add the work with TaskCreate and dependencies with TaskUpdate, then start \
                 members with SpawnTeammate.",
                team.name(),
                self.0.board().dir().display()
            ),
            structured: Some(json!({
                "team_name": team.name(),
                "team_file_path": team.dir().join("config.json"),
                "lead_agent_id": LEAD,
            })),
            images: Vec::new(),
        })
    }
}

/// `TeamDelete`: removes the team once its members stopped.
#[derive(Debug)]
pub struct TeamDelete(pub Arc<TaskRuntime>);

#[async_trait]
impl Tool for TeamDelete {
    fn name(&self) -> &str {
        "TeamDelete"
    }

    fn description(&self) -> &str {
        "Removes the team you lead and its board, once every member has stopped (ask them with \
         SendMessage and a shutdown_request first). The task tools go back to your own list."
    }

    fn input_schema(&self) -> Value {
        json!({"type": "object", "properties": {}, "additionalProperties": false})
    }

    fn is_read_only(&self) -> bool {
        false
    }

    async fn call(&self, _input: Value, _ctx: &ToolContext) -> Result<ToolOutput, ToolError> {
        let Some(seat) = self.0.seat() else {
            return Err(ToolError::Failed("This session is not in a team".into()));
        };
        if !seat.is_lead() {
            return Err(ToolError::Failed(
                "Only the team lead deletes the team".into(),
            ));
        }
        let team = seat.team.clone();
        blocking(move || team.delete()).await.map_err(failed)?;
        self.0.leave_team();
        self.0.emit_plan().await;
        Ok(ToolOutput {
            content: format!("Team {} deleted", seat.team.name()),
            structured: Some(json!({"success": true, "team_name": seat.team.name()})),
            images: Vec::new(),
        })
    }
}

/// `SpawnTeammate`: starts a named member (a keel process of its own).
#[derive(Debug)]
pub struct SpawnTeammate(pub Arc<TaskRuntime>);

#[async_trait]
impl Tool for SpawnTeammate {
    fn name(&self) -> &str {
        "SpawnTeammate"
    }

    fn description(&self) -> &str {
        "Starts a member of your team: a separate agent with its own context that claims free \
         tasks from the team board (pending, unowned, nothing left to wait for), works each in \
         its own git worktree on a branch named after the task, marks it completed and takes \
         the next; it stops after a while without work or when you send it a shutdown_request. \
         `prompt` gives it standing instructions (its role, conventions to follow). With \
         plan_mode_required it must send you its plan and wait for your approval before it \
         changes anything."
    }

    fn input_schema(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "name": {"type": "string", "description": "The member's name (letters, digits, '-', '_'); messages address it by this"},
                "prompt": {"type": "string", "description": "Standing instructions for the member"},
                "plan_mode_required": {"type": "boolean", "description": "The member must have its plan approved before changing anything"}
            },
            "required": ["name", "prompt"],
            "additionalProperties": false
        })
    }

    fn is_read_only(&self) -> bool {
        false
    }

    async fn call(&self, input: Value, _ctx: &ToolContext) -> Result<ToolOutput, ToolError> {
        let name = input["name"]
            .as_str()
            .unwrap_or_default()
            .trim()
            .to_string();
        let prompt = input["prompt"].as_str().unwrap_or_default().to_string();
        let plan = input["plan_mode_required"].as_bool().unwrap_or(false);
        let text = self
            .0
            .spawn_teammate(&name, &prompt, plan)
            .map_err(failed)?;
        Ok(ToolOutput {
            content: text,
            structured: Some(json!({"name": name, "plan_mode_required": plan})),
            images: Vec::new(),
        })
    }
}

/// `SendMessage`: a message (or a protocol request or answer) to a member, or to everyone.
#[derive(Debug)]
pub struct SendMessage(pub Arc<TaskRuntime>);

#[async_trait]
impl Tool for SendMessage {
    fn name(&self) -> &str {
        "SendMessage"
    }

    fn description(&self) -> &str {
        "Sends a message to a member of your team (`to`: its name, \"team-lead\" for the lead, \
         or \"*\" for everyone). Messages arrive at the recipient's next turn, once, in order. \
         `message` is text, or a protocol object: {\"type\": \"shutdown_request\", \"reason\"} \
         asks a member to finish its step and stop; {\"type\": \"shutdown_response\", \
         \"request_id\", \"approve\", \"reason\"} answers one; {\"type\": \
         \"plan_approval_response\", \"request_id\", \"approve\", \"feedback\"} approves or \
         rejects a member's plan. Give a few-word `summary` with text messages."
    }

    fn input_schema(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "to": {"type": "string", "description": "Recipient: a member's name, \"team-lead\", or \"*\" for everyone"},
                "message": {
                    "type": ["string", "object"],
                    "description": "Text, or a protocol object with a `type` (shutdown_request, shutdown_response, plan_approval_response)"
                },
                "summary": {"type": "string", "description": "A few words shown in listings"}
            },
            "required": ["to", "message"],
            "additionalProperties": false
        })
    }

    fn is_read_only(&self) -> bool {
        false
    }

    async fn call(&self, input: Value, _ctx: &ToolContext) -> Result<ToolOutput, ToolError> {
        let Some(seat) = self.0.seat() else {
            return Err(ToolError::Failed(
                "SendMessage works inside a team, and this session is in none (a lead creates \
                 one with TeamCreate)"
                    .into(),
            ));
        };
        let to = input["to"].as_str().unwrap_or_default().trim().to_string();
        let summary = input["summary"].as_str().map(str::to_string);
        let body = body_of(&input["message"], summary)?;
        let team = seat.team.clone();
        let me = seat.me.clone();
        let names = {
            let team = team.clone();
            blocking(move || team.names()).await.map_err(failed)?
        };
        let recipients: Vec<String> = if to == "*" {
            names.iter().filter(|n| **n != me).cloned().collect()
        } else if names.contains(&to) {
            vec![to.clone()]
        } else {
            return Err(ToolError::Failed(format!(
                "No member named {to:?} in team {}; the members are {}",
                team.name(),
                names.join(", ")
            )));
        };
        if recipients.is_empty() {
            return Err(ToolError::Failed(
                "The team has no one else to send to yet".into(),
            ));
        }
        let mailbox = team.mailbox();
        let sent = {
            let recipients = recipients.clone();
            let me = me.clone();
            blocking(move || {
                recipients
                    .iter()
                    .map(|r| mailbox.send(&me, r, body.clone()))
                    .collect::<Result<Vec<_>, _>>()
            })
            .await
            .map_err(failed)?
        };
        let mut request_ids = Vec::new();
        for envelope in &sent {
            if let Body::ShutdownRequest { request_id, .. } = &envelope.body {
                self.0.expect_answer(request_id, &envelope.to);
                request_ids.push(request_id.clone());
            }
        }
        let who = if to == "*" {
            format!("everyone ({})", recipients.join(", "))
        } else {
            to.clone()
        };
        let mut content = format!("Message sent to {who}");
        if !request_ids.is_empty() {
            content.push_str(&format!(
                "; request id(s) {}: the answers reach you at your next turn",
                request_ids.join(", ")
            ));
        }
        Ok(ToolOutput {
            content,
            structured: Some(json!({
                "success": true,
                "message": format!("Message sent to {who}"),
                "recipients": recipients,
                "request_ids": request_ids,
            })),
            images: Vec::new(),
        })
    }
}

/// The envelope body for a `message` argument.
fn body_of(message: &Value, summary: Option<String>) -> Result<Body, ToolError> {
    match message {
        Value::String(text) => {
            if text.trim().is_empty() {
                return Err(ToolError::InvalidInput("The message is empty".into()));
            }
            Ok(Body::Message {
                text: text.clone(),
                summary,
            })
        }
        Value::Object(object) => {
            let kind = object
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let text = |key: &str| object.get(key).and_then(Value::as_str).map(str::to_string);
            let request_id = || {
                text("request_id").ok_or_else(|| {
                    ToolError::InvalidInput(format!(
                        "A {kind} needs the request_id of the request it answers"
                    ))
                })
            };
            let approve = || {
                object
                    .get("approve")
                    .and_then(Value::as_bool)
                    .ok_or_else(|| {
                        ToolError::InvalidInput(format!("A {kind} needs approve: true or false"))
                    })
            };
            match kind {
                "shutdown_request" => Ok(Body::ShutdownRequest {
                    request_id: String::new(),
                    reason: text("reason"),
                }),
                "shutdown_response" => Ok(Body::ShutdownResponse {
                    request_id: request_id()?,
                    approve: approve()?,
                    reason: text("reason"),
                }),
                "plan_approval_response" => Ok(Body::PlanApprovalResponse {
                    request_id: request_id()?,
                    approve: approve()?,
                    feedback: text("feedback").or_else(|| text("reason")),
                }),
                "message" | "" => match text("text").or_else(|| text("content")) {
                    Some(t) => Ok(Body::Message { text: t, summary }),
                    None => Err(ToolError::InvalidInput(
                        "A message object needs its text; or send the text as a string".into(),
                    )),
                },
                other => Err(ToolError::InvalidInput(format!(
                    "Unknown message type {other:?}; use text, or an object with type \
                     shutdown_request, shutdown_response or plan_approval_response"
                ))),
            }
        }
        _ => Err(ToolError::InvalidInput(
            "message must be text or a protocol object".into(),
        )),
    }
}
