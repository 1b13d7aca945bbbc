//! `--input-format stream-json`: a multi-turn session in one process, driven by JSON lines on
//! stdin, as the Claude Agent SDK drives Claude Code. User lines become prompts (worked on in
//! order, one `result` each); `control_request` lines are answered with `control_response`s;
//! the engine's approval questions and SDK hook callbacks go out as `control_request`s and
//! their answers come back as ops. At the end of input the queued prompts are finished, then
//! keel exits.

use std::collections::{HashSet, VecDeque};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use keel_engine::Approver;
use keel_policy::PermissionMode;
use keel_protocol::{Event, HookReply, Op, Outcome};
use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt as _;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::args::{Args, OutputFormat};
use crate::control::{
    AskError, Control, Output, SdkMcp, initialize_response, permission_request, read_initialize,
    read_permission_answer, read_question_answers, user_text,
};
use crate::render::{Renderer, RunInfo};
use keel_setup::{Extras, Workspace, prepare_with};

use crate::args::approver_for;

/// A message read from stdin that the session loop acts on.
#[derive(Debug)]
enum Inbound {
    /// A prompt.
    User(String),
    /// A request from the SDK, to answer with a `control_response`.
    Control { request_id: String, request: Value },
}

/// Runs `keel --input-format stream-json --output-format stream-json --verbose`.
pub fn run(args: &Args, ws: &Workspace) -> Result<ExitCode> {
    if args.output_format != OutputFormat::StreamJson {
        bail!(
            "--input-format stream-json needs --output-format stream-json (and --verbose), as \
             with claude"
        );
    }
    let approver = approver_for(args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let code = runtime.block_on(session(args, ws, approver));
    // The stdin reader may still be blocked in a read: don't wait for it.
    runtime.shutdown_background();
    code
}

async fn session(args: &Args, ws: &Workspace, approver: Approver) -> Result<ExitCode> {
    let out = Output::stdout();
    let control = Control::new(out.clone());
    let (inbound_tx, mut inbound) = mpsc::unbounded_channel();
    let mut reader = JoinSet::new();
    reader.spawn(read_stdin(control.clone(), inbound_tx));

    // The SDK's first message is `initialize`; its hooks must be known before the session is
    // built. A plain stream-json client may start with a prompt instead.
    let mut early = VecDeque::new();
    let mut extras = Extras {
        sdk_bridge: Some(Arc::new(SdkMcp(control.clone()))),
        stream_events: args.include_partial_messages,
        // Questions reach the SDK's can_use_tool, when it answers permissions.
        answers_questions: approver == Approver::Interactive,
        member_flags: Some(crate::work::member_flags(args)),
        ..Extras::default()
    };
    match inbound.recv().await {
        None => return Ok(ExitCode::SUCCESS),
        Some(Inbound::Control {
            request_id,
            request,
        }) if subtype(&request) == "initialize" => match read_initialize(&request) {
            Ok(registration) => {
                for warning in &registration.warnings {
                    eprintln!("keel: warning: {warning}");
                }
                extras.hook_callbacks = registration.hook_callbacks;
                let model = ws
                    .requested_model(args.model.as_deref(), None)
                    .unwrap_or_else(|| keel_model::DEFAULT_MODEL.to_string());
                control.succeed(&request_id, initialize_response(&model))?;
            }
            Err(problem) => {
                control.fail(&request_id, &problem)?;
                bail!("{problem}");
            }
        },
        Some(first) => early.push_back(first),
    }

    let mut prepared = prepare_with(&args.session_options(), ws, approver.clone(), extras).await?;
    let info = RunInfo::of(&mut prepared);
    let (ops_tx, ops_rx) = mpsc::unbounded_channel();
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let interrupts =
        crate::print::watch_interrupts(ops_tx.clone(), tokio_util::sync::CancellationToken::new())?;
    let engine = tokio::spawn(prepared.session.serve(ops_rx, events_tx));
    let session_state = match (
        ws.var("CLAUDE_CODE_SDK_READS_SESSION_STATE"),
        ws.var("CLAUDE_CODE_EMIT_SESSION_STATE_EVENTS"),
    ) {
        (Some(v), _) if truthy(&v) => Some(true),
        (_, Some(v)) if truthy(&v) => Some(false),
        _ => None,
    };
    let mut state = Loop {
        renderer: Renderer::new(OutputFormat::StreamJson, out.writer(), info.clone())
            .with_partial_messages(args.include_partial_messages)
            .with_status_lines(true),
        out,
        control: control.clone(),
        ops: Some(ops_tx),
        interrupts: Some(interrupts),
        approver,
        asks: JoinSet::new(),
        outstanding: HashSet::new(),
        pending_runs: 0,
        input_open: true,
        last_outcome: None,
        default_model: info.model.clone(),
        context: None,
        mcp: prepared.mcp,
        session_state,
        current_state: "idle",
    };
    // The session's first event announces it (the `init` line); prompts are taken after it,
    // so every line about them carries the session's id.
    if let Some(first) = events.recv().await {
        state
            .event(first)
            .context("cannot write to standard output")?;
    }
    for message in early {
        state.inbound(message);
    }
    loop {
        if !state.input_open && state.pending_runs == 0 {
            state.close_ops();
        }
        tokio::select! {
            event = events.recv() => match event {
                Some(event) => {
                    if let Err(error) = state.event(event) {
                        if error.kind() == std::io::ErrorKind::BrokenPipe {
                            // The reader went away; nothing more can be said.
                            break;
                        }
                        return Err(error).context("cannot write to standard output");
                    }
                }
                None => break,
            },
            message = inbound.recv(), if state.input_open => match message {
                Some(message) => state.inbound(message),
                None => {
                    state.input_open = false;
                    control.close();
                }
            },
            Some(_) = state.asks.join_next(), if !state.asks.is_empty() => {}
        }
    }
    state.close_ops();
    state.asks.abort_all();
    reader.abort_all();
    engine.await.context("the engine stopped unexpectedly")?;
    Ok(match state.last_outcome {
        Some(Outcome::MaxTurns { .. } | Outcome::Error { .. }) => ExitCode::FAILURE,
        _ => ExitCode::SUCCESS,
    })
}

/// The session loop's state.
struct Loop {
    renderer: Renderer<crate::control::LineWriter>,
    out: Output,
    control: Arc<Control>,
    /// Dropped when input has ended and every prompt is answered, so the engine ends.
    ops: Option<mpsc::UnboundedSender<Op>>,
    interrupts: Option<tokio::task::JoinHandle<()>>,
    approver: Approver,
    /// Tasks waiting for the SDK's answers (approvals, hooks, reconnects).
    asks: JoinSet<()>,
    /// Requests sent for the running turn, withdrawn when it ends.
    outstanding: HashSet<String>,
    /// Prompts sent to the engine whose result has not come yet.
    pending_runs: usize,
    input_open: bool,
    last_outcome: Option<Outcome>,
    default_model: String,
    /// The last context usage seen: (used, window).
    context: Option<(u64, u64)>,
    mcp: Option<keel_mcp::McpManager>,
    /// `session_state_changed` lines: `None` off, `Some(host_only)` on.
    session_state: Option<bool>,
    current_state: &'static str,
}

impl Loop {
    fn send(&self, op: Op) {
        if let Some(ops) = &self.ops {
            let _ = ops.send(op);
        }
    }

    fn close_ops(&mut self) {
        self.ops = None;
        if let Some(interrupts) = self.interrupts.take() {
            interrupts.abort();
        }
    }

    fn set_state(&mut self, state: &'static str) {
        let Some(host_only) = self.session_state else {
            return;
        };
        if self.current_state == state {
            return;
        }
        self.current_state = state;
        let mut line = json!({
            "type": "system",
            "subtype": "session_state_changed",
            "state": state,
            "session_id": self.renderer.session_id(),
            "uuid": uuid::Uuid::new_v4().to_string(),
        });
        if host_only {
            line["sdk_host_only"] = Value::Bool(true);
        }
        let _ = self.out.line(&line);
    }

    fn inbound(&mut self, message: Inbound) {
        match message {
            Inbound::User(text) => {
                if self.ops.is_none() {
                    return;
                }
                self.send(Op::UserInput { text });
                self.pending_runs += 1;
                self.set_state("running");
            }
            Inbound::Control {
                request_id,
                request,
            } => self.control_request(&request_id, &request),
        }
    }

    /// Sends a control request to the SDK for the running turn and, when it answers, the ops
    /// `reply` makes of the answer (`Err` when the request failed). A request withdrawn when the
    /// turn ends sends nothing.
    fn ask_sdk(
        &mut self,
        request_id: &str,
        request: Value,
        reply: impl FnOnce(Result<Value, String>) -> Vec<Op> + Send + 'static,
    ) {
        let answer = self.control.ask(request_id.to_string(), request);
        self.outstanding.insert(request_id.to_string());
        let ops = self.ops.clone();
        self.asks.spawn(async move {
            let answer = match answer.await {
                Ok(response) => Ok(response),
                Err(AskError::Withdrawn) => return,
                Err(AskError::Failed(why)) => Err(why),
            };
            let replies = reply(answer);
            let Some(ops) = ops else { return };
            for op in replies {
                let _ = ops.send(op);
            }
        });
    }

    /// Renders an engine event, and sends out the requests it stands for.
    fn event(&mut self, event: Event) -> std::io::Result<()> {
        match &event {
            Event::ApprovalRequested {
                request_id,
                tool_use_id,
                tool_name,
                input,
                reason,
                suggestions,
            } if self.approver == Approver::Interactive => {
                self.set_state("requires_action");
                let request =
                    permission_request(tool_name, input, tool_use_id, reason, suggestions);
                let answered = request_id.clone();
                let tool = tool_name.clone();
                self.ask_sdk(request_id, request, move |answer| {
                    let read = read_permission_answer(answer, &tool);
                    for note in &read.notes {
                        eprintln!("keel: warning: {note}");
                    }
                    let mut ops = Vec::new();
                    if let Some(mode) = read.set_mode {
                        ops.push(Op::SetPermissionMode { mode });
                    }
                    ops.push(Op::Approval {
                        request_id: answered,
                        answer: read.answer,
                    });
                    if read.interrupt {
                        ops.push(Op::Interrupt);
                    }
                    ops
                });
            }
            Event::QuestionAsked {
                request_id,
                tool_use_id,
                questions,
            } => {
                // As Claude Code does: the SDK's can_use_tool sees AskUserQuestion and answers
                // with the user's choices in `updatedInput.answers`.
                self.set_state("requires_action");
                let input = json!({ "questions": questions });
                let request = permission_request(
                    "AskUserQuestion",
                    &input,
                    tool_use_id,
                    "the model asks you to choose",
                    &[],
                );
                let answered = request_id.clone();
                self.ask_sdk(request_id, request, move |answer| {
                    vec![Op::AnswerQuestion {
                        request_id: answered,
                        answers: read_question_answers(answer),
                    }]
                });
            }
            Event::HookCallback {
                request_id,
                callback_id,
                input,
                tool_use_id,
            } => {
                let request = json!({
                    "subtype": "hook_callback",
                    "callback_id": callback_id,
                    "input": input,
                    "tool_use_id": tool_use_id,
                });
                let answered = request_id.clone();
                self.ask_sdk(request_id, request, move |answer| {
                    let reply = match answer {
                        Ok(output) => HookReply::Output { output },
                        Err(error) => HookReply::Failed { error },
                    };
                    vec![Op::HookResult {
                        request_id: answered,
                        reply,
                    }]
                });
            }
            Event::ToolCallStarted { .. } | Event::PermissionDenied { .. }
                if self.current_state == "requires_action" =>
            {
                self.set_state("running");
            }
            Event::ContextUsage {
                used_tokens,
                window_tokens,
            } => self.context = Some((*used_tokens, *window_tokens)),
            Event::RunFinished { outcome, .. } => {
                self.pending_runs = self.pending_runs.saturating_sub(1);
                self.last_outcome = Some(outcome.clone());
                for request_id in self.outstanding.drain() {
                    self.control.withdraw(&request_id);
                }
            }
            _ => {}
        }
        self.renderer.event(&event)?;
        if matches!(event, Event::RunFinished { .. }) && self.pending_runs == 0 {
            self.set_state("idle");
        }
        Ok(())
    }

    /// Answers one request from the SDK.
    fn control_request(&mut self, request_id: &str, request: &Value) {
        let answer: Result<Value, String> = match subtype(request) {
            "interrupt" => {
                self.send(Op::Interrupt);
                Ok(json!({}))
            }
            "set_permission_mode" => match request.get("mode").and_then(Value::as_str) {
                Some(mode) => match mode.parse::<PermissionMode>() {
                    Ok(_) => {
                        self.send(Op::SetPermissionMode {
                            mode: mode.to_string(),
                        });
                        Ok(json!({}))
                    }
                    Err(error) => Err(error.to_string()),
                },
                None => Err("set_permission_mode needs a `mode`".into()),
            },
            "set_model" => {
                let model = match request.get("model") {
                    Some(Value::String(model)) if !model.trim().is_empty() => model.clone(),
                    _ => self.default_model.clone(),
                };
                self.send(Op::SetModel { model });
                Ok(json!({}))
            }
            "mcp_status" => Ok(self.mcp_status()),
            "get_context_usage" => Ok(self.context_usage()),
            "mcp_reconnect" => {
                let name = request
                    .get("serverName")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                let Some(manager) = self.mcp.clone() else {
                    self.answer(
                        request_id,
                        Err(format!("no MCP server named {name:?} is configured")),
                    );
                    return;
                };
                let control = self.control.clone();
                let request_id = request_id.to_string();
                self.asks.spawn(async move {
                    let result = match manager.reconnect(&name).await {
                        Ok(keel_mcp::ServerStatus::Connected) => {
                            control.succeed(&request_id, json!({}))
                        }
                        Ok(status) => {
                            control.fail(&request_id, &format!("MCP server {name}: {status}"))
                        }
                        Err(error) => control.fail(&request_id, &error.to_string()),
                    };
                    if let Err(error) = result {
                        tracing::debug!(%error, "cannot answer mcp_reconnect");
                    }
                });
                return;
            }
            "initialize" => {
                Err("the session is already initialized; initialize comes once, first".into())
            }
            "mcp_toggle" => Err(
                "keel cannot enable or disable MCP servers during a session yet; \
                                 configure them before it starts"
                    .into(),
            ),
            "rewind_files" => {
                Err("keel keeps no file checkpoints, so it cannot rewind files".into())
            }
            "stop_task" => Err(format!(
                "no background task {} runs in this keel session",
                request
                    .get("task_id")
                    .and_then(Value::as_str)
                    .unwrap_or("?")
            )),
            other => Err(format!("keel does not know the control request {other:?}")),
        };
        self.answer(request_id, answer);
    }

    fn answer(&self, request_id: &str, answer: Result<Value, String>) {
        let written = match answer {
            Ok(response) => self.control.succeed(request_id, response),
            Err(problem) => self.control.fail(request_id, &problem),
        };
        if let Err(error) = written {
            tracing::debug!(%error, "cannot answer a control request");
        }
    }

    /// `mcp_status`: the servers and their statuses, in the SDK's shape.
    fn mcp_status(&self) -> Value {
        let servers: Vec<Value> = self
            .mcp
            .as_ref()
            .map(|manager| {
                manager
                    .servers()
                    .into_iter()
                    .map(|server| {
                        let mut entry = json!({"name": server.name});
                        match &server.status {
                            keel_mcp::ServerStatus::Connected => {
                                entry["status"] = json!("connected")
                            }
                            keel_mcp::ServerStatus::Pending => entry["status"] = json!("pending"),
                            keel_mcp::ServerStatus::Failed(reason) => {
                                entry["status"] = json!("failed");
                                entry["error"] = json!(reason);
                            }
                        }
                        if let Some((name, version)) = &server.server_info {
                            entry["serverInfo"] = json!({"name": name, "version": version});
                        }
                        entry
                    })
                    .collect()
            })
            .unwrap_or_default();
        json!({"mcpServers": servers})
    }

    /// `get_context_usage`: how full the context window was after the last model turn.
    fn context_usage(&self) -> Value {
        let (used, window) = self.context.unwrap_or((0, self.renderer_window()));
        let percentage = if window == 0 {
            0.0
        } else {
            used as f64 * 100.0 / window as f64
        };
        json!({
            "categories": [{"name": "Messages", "tokens": used, "color": "default"}],
            "totalTokens": used,
            "maxTokens": window,
            "rawMaxTokens": window,
            "percentage": percentage,
            "model": self.default_model,
            "isAutoCompactEnabled": false,
            "memoryFiles": [],
            "mcpTools": [],
            "agents": [],
        })
    }

    fn renderer_window(&self) -> u64 {
        keel_model::models::context_window(&self.default_model)
    }
}

fn subtype(request: &Value) -> &str {
    request
        .get("subtype")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn truthy(value: &str) -> bool {
    !matches!(
        value.trim().to_ascii_lowercase().as_str(),
        "" | "0" | "false" | "no" | "off"
    )
}

/// Reads stdin line by line: answers to keel's requests go straight to the waiting request
/// (so in-process MCP servers work while the session is still being built); prompts and the
/// SDK's requests go to the session loop. A line that cannot be used is reported on stderr and
/// skipped; the session goes on. The channel closes at end of input.
async fn read_stdin(control: Arc<Control>, inbound: mpsc::UnboundedSender<Inbound>) {
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let mut number = 0usize;
    loop {
        let line = match lines.next_line().await {
            Ok(Some(line)) => line,
            Ok(None) => break,
            Err(error) => {
                eprintln!("keel: cannot read standard input ({error}); treating it as ended");
                break;
            }
        };
        number += 1;
        if line.trim().is_empty() {
            continue;
        }
        match read_line(&line, &control) {
            Ok(Some(message)) => {
                if inbound.send(message).is_err() {
                    break;
                }
            }
            Ok(None) => {}
            Err(problem) => eprintln!("keel: stdin line {number}: {problem}; the line was skipped"),
        }
    }
}

/// One stdin line: a prompt or an SDK request for the loop, an answer delivered here (`None`),
/// or what is wrong with it.
fn read_line(line: &str, control: &Control) -> Result<Option<Inbound>, String> {
    let value: Value = serde_json::from_str(line).map_err(|error| {
        format!(
            "not valid JSON ({error}); send one JSON object per line, e.g. \
             {{\"type\":\"user\",\"message\":{{\"role\":\"user\",\"content\":\"...\"}}}}"
        )
    })?;
    match value.get("type").and_then(Value::as_str) {
        Some("user") => {
            let content = value
                .get("message")
                .and_then(|m| m.get("content"))
                .ok_or("a user message needs message.content (a string or a list of blocks)")?;
            let (text, skipped) = user_text(content)?;
            if !skipped.is_empty() {
                eprintln!(
                    "keel: warning: the prompt's {} blocks were left out: keel passes only text \
                     blocks of stream-json prompts to the model yet",
                    skipped.join(", ")
                );
            }
            if text.trim().is_empty() {
                return Err("the user message has no text".into());
            }
            Ok(Some(Inbound::User(text)))
        }
        Some("control_request") => {
            let request_id = value
                .get("request_id")
                .and_then(Value::as_str)
                .ok_or("a control_request needs a request_id")?
                .to_string();
            let request = value
                .get("request")
                .filter(|r| r.is_object())
                .cloned()
                .ok_or("a control_request needs a request object with a subtype")?;
            Ok(Some(Inbound::Control {
                request_id,
                request,
            }))
        }
        Some("control_response") => {
            let response = value
                .get("response")
                .ok_or("a control_response needs a response object")?;
            control.resolve(response)?;
            Ok(None)
        }
        // Withdrawals of SDK requests and keep-alives need nothing from keel.
        Some("control_cancel_request" | "keep_alive") => Ok(None),
        Some(other) => Err(format!(
            "unknown message type {other:?}; expected user, control_request or control_response"
        )),
        None => Err("a message needs a `type` (user, control_request or control_response)".into()),
    }
}
