//! Print mode's output: the engine's events written as text, one JSON result, or Claude Code's
//! stream-json lines. Shapes follow `claude -p` so existing scripts and the Agent SDK parse them.

use std::io::{self, Write};

use keel_protocol::{Event, Outcome, StopReason, Usage};
use serde_json::{Value, json};

use crate::args::OutputFormat;

/// The Claude Code version keel's stream-json is compatible with; the Agent SDK reads it from
/// the `init` line and gates features on it.
pub const CLAUDE_CODE_COMPAT_VERSION: &str = "2.1.331";

/// Facts about the run that the events do not carry.
#[derive(Debug, Clone)]
pub struct RunInfo {
    /// The model requested (used as the `modelUsage` key).
    pub model: String,
    /// Where the API key came from, as Claude Code reports it.
    pub api_key_source: String,
    /// The request's `max_tokens`, for `modelUsage`.
    pub max_output_tokens: u32,
    /// The model's context window, for `modelUsage`.
    pub context_window: u64,
    /// MCP servers and their statuses, for the `init` line.
    pub mcp_servers: Vec<(String, String)>,
    /// Slash commands (without `/`), for the `init` line.
    pub slash_commands: Vec<String>,
    /// Agents the `Agent` tool can start, for the `init` line.
    pub agents: Vec<String>,
    /// Skills, for the `init` line.
    pub skills: Vec<String>,
}

impl RunInfo {
    /// What a prepared session tells the renderer; the session itself is left to be served.
    pub fn of(prepared: &mut keel_setup::Prepared) -> Self {
        Self {
            model: prepared.model.clone(),
            api_key_source: std::mem::take(&mut prepared.api_key_source),
            max_output_tokens: prepared.max_output_tokens,
            context_window: prepared.context_window,
            mcp_servers: std::mem::take(&mut prepared.mcp_servers),
            slash_commands: std::mem::take(&mut prepared.slash_commands),
            agents: std::mem::take(&mut prepared.agents),
            skills: std::mem::take(&mut prepared.skills),
        }
    }
}

/// Writes events in one output format and remembers what the final result needs.
pub struct Renderer<W: Write> {
    format: OutputFormat,
    out: W,
    info: RunInfo,
    session_id: String,
    last_stop_reason: Option<StopReason>,
    /// Print `stream_event` lines (`--include-partial-messages`).
    partial_messages: bool,
    /// Print `system`/`status` lines when the permission mode changes (the Agent SDK's
    /// control protocol).
    status_lines: bool,
}

impl<W: Write> Renderer<W> {
    /// A renderer writing to `out`.
    pub fn new(format: OutputFormat, out: W, info: RunInfo) -> Self {
        Self {
            format,
            out,
            info,
            session_id: String::new(),
            last_stop_reason: None,
            partial_messages: false,
            status_lines: false,
        }
    }

    /// Also prints the model's raw stream as `stream_event` lines (stream-json only).
    pub fn with_partial_messages(mut self, on: bool) -> Self {
        self.partial_messages = on;
        self
    }

    /// Also prints a `system` `status` line when the permission mode changes (stream-json
    /// only), as Claude Code does for the Agent SDK.
    pub fn with_status_lines(mut self, on: bool) -> Self {
        self.status_lines = on;
        self
    }

    /// The session's id, once its `init` line was rendered.
    pub fn session_id(&self) -> &str {
        &self.session_id
    }

    /// Renders one event. Errors are write errors (e.g. a closed pipe).
    pub fn event(&mut self, event: &Event) -> io::Result<()> {
        match event {
            Event::SessionStarted {
                session_id,
                model,
                cwd,
                tools,
                permission_mode,
            } => {
                self.session_id = session_id.to_string();
                if self.format == OutputFormat::StreamJson {
                    let line = json!({
                        "type": "system",
                        "subtype": "init",
                        "cwd": cwd,
                        "session_id": session_id,
                        // Claude Code lists the Agent tool under its old name here.
                        "tools": tools.iter().map(|t| if t == "Agent" { "Task" } else { t.as_str() }).collect::<Vec<_>>(),
                        "mcp_servers": self.info.mcp_servers.iter().map(|(name, status)| json!({"name": name, "status": status})).collect::<Vec<_>>(),
                        "model": model,
                        "permissionMode": permission_mode,
                        "slash_commands": self.info.slash_commands,
                        "apiKeySource": self.info.api_key_source,
                        "claude_code_version": CLAUDE_CODE_COMPAT_VERSION,
                        "keel_version": env!("CARGO_PKG_VERSION"),
                        "output_style": "default",
                        "agents": self.info.agents,
                        "skills": self.info.skills,
                        "plugins": [],
                        "uuid": new_uuid(),
                    });
                    self.line(&line)?;
                }
            }
            Event::AssistantMessage { message } => {
                if message.stop_reason.is_some() {
                    self.last_stop_reason = message.stop_reason;
                }
                self.assistant_line(event, None)?;
            }
            Event::ToolResult { .. } => self.user_line(event, None)?,
            Event::CommandOutput { text, .. } => {
                // As Claude Code reports a local command's output to SDK clients; text and
                // json print it as the result.
                if self.format == OutputFormat::StreamJson {
                    let line = json!({
                        "type": "user",
                        "message": {
                            "role": "user",
                            "content": format!("<local-command-stdout>{text}</local-command-stdout>"),
                        },
                        "parent_tool_use_id": null,
                        "session_id": self.session_id,
                        "uuid": new_uuid(),
                        "timestamp": now(),
                    });
                    self.line(&line)?;
                }
            }
            Event::Subagent {
                parent_tool_use_id,
                event: inner,
            } => match inner.as_ref() {
                Event::AssistantMessage { .. } => {
                    self.assistant_line(inner, Some(parent_tool_use_id))?;
                }
                Event::ToolResult { .. } | Event::UserMessage { .. } => {
                    self.user_line(inner, Some(parent_tool_use_id))?;
                }
                Event::Notice { level, message } => {
                    let tag = match level {
                        keel_protocol::NoticeLevel::Warning => "warning: ",
                        keel_protocol::NoticeLevel::Info => "",
                    };
                    eprintln!("keel: {tag}(subagent) {message}");
                }
                Event::Retrying { error, .. } => {
                    eprintln!("keel: (subagent) {error}; retrying");
                }
                _ => {}
            },
            Event::Retrying {
                attempt,
                max_retries,
                delay_ms,
                error,
            } => {
                eprintln!(
                    "keel: {error}; retrying in {:.1} s (attempt {attempt} of {max_retries})",
                    *delay_ms as f64 / 1000.0
                );
                if self.format == OutputFormat::StreamJson {
                    let line = json!({
                        "type": "system",
                        "subtype": "api_retry",
                        "attempt": attempt,
                        "max_retries": max_retries,
                        "retry_delay_ms": delay_ms,
                        "error": error,
                        "session_id": self.session_id,
                        "uuid": new_uuid(),
                    });
                    self.line(&line)?;
                }
            }
            Event::Notice { level, message } => {
                let tag = match level {
                    keel_protocol::NoticeLevel::Warning => "warning: ",
                    keel_protocol::NoticeLevel::Info => "",
                };
                eprintln!("keel: {tag}{message}");
            }
            Event::RunFinished { .. } => {
                let result = self.result_object(event);
                match self.format {
                    OutputFormat::Text => {
                        let text = result["result"].as_str().unwrap_or_default();
                        if !text.is_empty() {
                            writeln!(self.out, "{text}")?;
                        }
                    }
                    OutputFormat::Json | OutputFormat::StreamJson => self.line(&result)?,
                }
                self.out.flush()?;
            }
            Event::StreamEvent { event } => {
                if self.partial_messages && self.format == OutputFormat::StreamJson {
                    let line = json!({
                        "type": "stream_event",
                        "event": event,
                        "parent_tool_use_id": null,
                        "session_id": self.session_id,
                        "uuid": new_uuid(),
                    });
                    self.line(&line)?;
                }
            }
            Event::PermissionModeChanged { mode } => {
                if self.status_lines && self.format == OutputFormat::StreamJson {
                    let line = json!({
                        "type": "system",
                        "subtype": "status",
                        "status": null,
                        "permissionMode": mode,
                        "session_id": self.session_id,
                        "uuid": new_uuid(),
                    });
                    self.line(&line)?;
                }
            }
            Event::TurnStarted { .. }
            | Event::TextDelta { .. }
            | Event::ThinkingDelta { .. }
            | Event::ToolCallStarted { .. }
            | Event::PermissionDenied { .. }
            | Event::UserMessage { .. }
            | Event::ApprovalRequested { .. }
            | Event::HookCallback { .. }
            // Print mode never offers AskUserQuestion, so no question reaches this renderer.
            | Event::QuestionAsked { .. }
            | Event::ContextUsage { .. }
            | Event::Compacted { .. }
            | Event::Rewound { .. }
            // A live view of a running tool; the result carries the whole output.
            | Event::ToolProgress { .. }
            | Event::PlanUpdated { .. }
            | Event::ModelChanged { .. } => {}
        }
        Ok(())
    }

    /// An `assistant` line for an `AssistantMessage` event (of a subagent when `parent` is
    /// its `Agent` call).
    fn assistant_line(&mut self, event: &Event, parent: Option<&str>) -> io::Result<()> {
        let Event::AssistantMessage { message } = event else {
            return Ok(());
        };
        if self.format != OutputFormat::StreamJson {
            return Ok(());
        }
        let line = json!({
            "type": "assistant",
            "message": message,
            "parent_tool_use_id": parent,
            "session_id": self.session_id,
            "uuid": new_uuid(),
        });
        self.line(&line)
    }

    /// A `user` line for a `ToolResult` event, or for a subagent's prompt (`UserMessage`).
    fn user_line(&mut self, event: &Event, parent: Option<&str>) -> io::Result<()> {
        if self.format != OutputFormat::StreamJson {
            return Ok(());
        }
        let line = match event {
            Event::ToolResult {
                tool_use_id,
                content,
                is_error,
                structured,
                ..
            } => {
                let mut block = json!({
                    "type": "tool_result",
                    "tool_use_id": tool_use_id,
                    "content": content,
                });
                if *is_error {
                    block["is_error"] = Value::Bool(true);
                }
                let tool_use_result = match structured {
                    Some(value) => value.clone(),
                    None if *is_error => Value::String(format!("Error: {}", content.text())),
                    None => Value::String(content.text()),
                };
                json!({
                    "type": "user",
                    "message": {"role": "user", "content": [block]},
                    "parent_tool_use_id": parent,
                    "session_id": self.session_id,
                    "uuid": new_uuid(),
                    "timestamp": now(),
                    "tool_use_result": tool_use_result,
                })
            }
            Event::UserMessage { content } => json!({
                "type": "user",
                "message": {"role": "user", "content": content},
                "parent_tool_use_id": parent,
                "session_id": self.session_id,
                "uuid": new_uuid(),
                "timestamp": now(),
            }),
            _ => return Ok(()),
        };
        self.line(&line)
    }

    /// Claude Code's `result` object for a `RunFinished` event (Null for any other event).
    pub fn result_object(&self, event: &Event) -> Value {
        let Event::RunFinished {
            outcome,
            result,
            num_turns,
            usage,
            total_cost_usd,
            duration_ms,
            duration_api_ms,
            permission_denials,
            model_usage,
        } = event
        else {
            return Value::Null;
        };
        let mut object = json!({
            "type": "result",
            "subtype": outcome.subtype(),
            "is_error": outcome.is_error(),
            "duration_ms": duration_ms,
            "duration_api_ms": duration_api_ms,
            "num_turns": num_turns,
            "result": result,
            "stop_reason": self.last_stop_reason,
            "session_id": self.session_id,
            "total_cost_usd": total_cost_usd,
            "usage": usage,
            "modelUsage": self.model_usage(model_usage, usage, *total_cost_usd),
            "permission_denials": permission_denials,
            "uuid": new_uuid(),
        });
        if let Some(message) = outcome_message(outcome) {
            object["errors"] = json!([message]);
        }
        let unpriced: Vec<&str> = model_usage
            .iter()
            .filter(|m| m.cost_usd.is_none())
            .map(|m| m.model.as_str())
            .collect();
        if !unpriced.is_empty() {
            // total_cost_usd stays a number for scripts; this says which part is missing.
            object["cost_unknown_models"] = json!(unpriced);
        }
        object
    }

    /// Claude Code's `modelUsage`: tokens and cost per model (cost `null` when unknown).
    fn model_usage(
        &self,
        per_model: &[keel_protocol::ModelUsage],
        total: &Usage,
        total_cost: f64,
    ) -> Value {
        let mut map = serde_json::Map::new();
        if per_model.is_empty() {
            map.insert(
                self.info.model.clone(),
                self.model_entry(total, Some(total_cost)),
            );
        }
        for entry in per_model {
            map.insert(
                entry.model.clone(),
                self.model_entry(&entry.usage, entry.cost_usd),
            );
        }
        Value::Object(map)
    }

    fn model_entry(&self, usage: &Usage, cost: Option<f64>) -> Value {
        json!({
            "inputTokens": usage.input_tokens,
            "outputTokens": usage.output_tokens,
            "cacheReadInputTokens": usage.cache_read_input_tokens,
            "cacheCreationInputTokens": usage.cache_creation_input_tokens,
            "costUSD": cost,
            "contextWindow": self.info.context_window,
            "maxOutputTokens": self.info.max_output_tokens,
        })
    }

    fn line(&mut self, value: &Value) -> io::Result<()> {
        serde_json::to_writer(&mut self.out, value)?;
        self.out.write_all(b"\n")?;
        // Each line is flushed so a reader sees it as soon as it happens.
        self.out.flush()
    }
}

/// A one-line explanation of an unsuccessful outcome, for stderr and the result's `errors`.
pub fn outcome_message(outcome: &Outcome) -> Option<String> {
    match outcome {
        Outcome::Success => None,
        Outcome::MaxTurns { max_turns } => Some(format!(
            "Reached the maximum number of turns ({max_turns}); raise --max-turns to let it continue"
        )),
        Outcome::Interrupted => Some("Interrupted by the user".to_string()),
        Outcome::Error { message } => Some(message.clone()),
    }
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn new_uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_protocol::{AssistantMessage, ContentBlock, Role, SessionId, ToolResultContent};

    fn info() -> RunInfo {
        RunInfo {
            model: "m".into(),
            api_key_source: "ANTHROPIC_API_KEY".into(),
            max_output_tokens: 64000,
            context_window: 200_000,
            mcp_servers: vec![],
            slash_commands: vec!["help".into()],
            agents: vec!["general-purpose".into()],
            skills: vec![],
        }
    }

    fn render(format: OutputFormat, events: &[Event]) -> String {
        let mut out = Vec::new();
        let mut renderer = Renderer::new(format, &mut out, info());
        for event in events {
            renderer.event(event).unwrap();
        }
        String::from_utf8(out).unwrap()
    }

    fn session_events(outcome: Outcome) -> Vec<Event> {
        vec![
            Event::SessionStarted {
                session_id: SessionId::new(),
                model: "m".into(),
                cwd: "/w".into(),
                tools: vec!["Read".into()],
                permission_mode: "default".into(),
            },
            Event::AssistantMessage {
                message: AssistantMessage {
                    id: "msg_1".into(),
                    role: Role::Assistant,
                    model: "m".into(),
                    content: vec![ContentBlock::Text {
                        text: "done".into(),
                    }],
                    stop_reason: Some(StopReason::EndTurn),
                    stop_sequence: None,
                    usage: Usage::default(),
                },
            },
            Event::ToolResult {
                tool_use_id: "toolu_1".into(),
                tool_name: "Read".into(),
                content: ToolResultContent::Text("nope".into()),
                is_error: true,
                structured: None,
            },
            Event::RunFinished {
                outcome,
                result: "done".into(),
                num_turns: 1,
                usage: Usage::default(),
                total_cost_usd: 0.0,
                duration_ms: 5,
                duration_api_ms: 3,
                permission_denials: vec![],
                model_usage: vec![],
            },
        ]
    }

    #[test]
    fn text_prints_only_the_answer() {
        assert_eq!(
            render(OutputFormat::Text, &session_events(Outcome::Success)),
            "done\n"
        );
    }

    #[test]
    fn stream_json_lines_have_claude_code_shapes() {
        let out = render(
            OutputFormat::StreamJson,
            &session_events(Outcome::MaxTurns { max_turns: 1 }),
        );
        let lines: Vec<Value> = out
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[0]["type"], "system");
        assert_eq!(lines[0]["subtype"], "init");
        let session_id = lines[0]["session_id"].as_str().unwrap();
        assert_eq!(lines[1]["type"], "assistant");
        assert_eq!(lines[1]["message"]["content"][0]["text"], "done");
        assert_eq!(lines[1]["session_id"], session_id);
        assert_eq!(lines[2]["type"], "user");
        assert_eq!(lines[2]["message"]["content"][0]["is_error"], true);
        assert_eq!(lines[3]["type"], "result");
        assert_eq!(lines[3]["subtype"], "error_max_turns");
        assert_eq!(lines[3]["is_error"], true);
        assert_eq!(lines[3]["stop_reason"], "end_turn");
        assert_eq!(lines[3]["session_id"], session_id);
        assert!(
            lines[3]["errors"][0]
                .as_str()
                .unwrap()
                .contains("--max-turns")
        );
    }
}
