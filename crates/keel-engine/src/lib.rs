//! The agent loop. A `Session` takes `Op`s (prompts, interrupts), talks to a model, runs the
//! tools it asks for and reports everything it does as `Event`s. Frontends only translate.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use keel_model::{Assembled, MessageAccumulator, ModelClient, ModelRequest, StreamEvent};
use keel_protocol::{
    AssistantMessage, ContentBlock, Event, Message, Op, Outcome, PermissionDenial, Role, SessionId,
    StopReason, Usage,
};
use keel_tools::{ToolCallResult, ToolContext, ToolRegistry};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

mod permission;
pub use permission::PermissionMode;

/// How a session talks to its model and how far it may go.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// The model name sent with every request.
    pub model: String,
    /// `max_tokens` for every request.
    pub max_tokens: u32,
    /// System prompt blocks.
    pub system: Vec<String>,
    /// Stop a run after this many model turns (`--max-turns`).
    pub max_turns: Option<u32>,
    /// Which tool calls run without asking.
    pub permission_mode: PermissionMode,
}

/// Where events go. Sending never blocks; a frontend that went away just stops receiving.
pub type EventSender = mpsc::UnboundedSender<Event>;

/// One agent conversation: its history, tools and model.
pub struct Session {
    id: SessionId,
    config: SessionConfig,
    client: Arc<dyn ModelClient>,
    tools: ToolRegistry,
    tool_ctx: ToolContext,
    messages: Vec<Message>,
}

/// Totals of one run, gathered as it goes.
#[derive(Debug, Default)]
struct RunTally {
    turns: u32,
    usage: Usage,
    cost_usd: f64,
    api_time: Duration,
    denials: Vec<PermissionDenial>,
    last_text: String,
}

/// How one model turn ended.
enum TurnEnd {
    /// The model's message arrived whole.
    Complete(Assembled),
    /// The user interrupted; whatever had arrived.
    Interrupted(Assembled),
    /// The request or the stream failed.
    Failed(keel_model::ModelError, Assembled),
}

impl Session {
    /// A new session with an empty history.
    pub fn new(
        config: SessionConfig,
        client: Arc<dyn ModelClient>,
        tools: ToolRegistry,
        tool_ctx: ToolContext,
    ) -> Self {
        Self {
            id: SessionId::new(),
            config,
            client,
            tools,
            tool_ctx,
            messages: Vec::new(),
        }
    }

    /// The session's id.
    pub fn id(&self) -> &SessionId {
        &self.id
    }

    /// The conversation so far, as it would be sent to the model.
    pub fn messages(&self) -> &[Message] {
        &self.messages
    }

    /// The event that announces this session to a frontend.
    pub fn started_event(&self) -> Event {
        Event::SessionStarted {
            session_id: self.id.clone(),
            model: self.config.model.clone(),
            cwd: self.tool_ctx.project_root.display().to_string(),
            tools: self.tools.names(),
            permission_mode: self.config.permission_mode.as_str().to_string(),
        }
    }

    /// Serves `ops` until the sender is dropped: each prompt is worked on until the model stops;
    /// an interrupt stops the running one. Prompts that arrive during a run are queued.
    pub async fn serve(mut self, mut ops: mpsc::UnboundedReceiver<Op>, events: EventSender) {
        let _ = events.send(self.started_event());
        // Ops that arrive during a run wait until it ends, in arrival order.
        let mut queued: VecDeque<Op> = VecDeque::new();
        let mut ops_open = true;
        loop {
            let next = match queued.pop_front() {
                Some(op) => op,
                None if !ops_open => return,
                None => match ops.recv().await {
                    Some(op) => op,
                    None => return,
                },
            };
            let prompt = match next {
                Op::UserInput { text } => text,
                Op::Interrupt => continue,
                other => {
                    self.control(other, &events);
                    continue;
                }
            };
            let cancel = CancellationToken::new();
            let run = self.run(prompt, &events, cancel.clone());
            tokio::pin!(run);
            loop {
                tokio::select! {
                    () = &mut run => break,
                    op = ops.recv(), if ops_open => match op {
                        Some(Op::Interrupt) => cancel.cancel(),
                        Some(other) => queued.push_back(other),
                        None => ops_open = false,
                    },
                }
            }
        }
    }

    /// Handles an op that is not a prompt or an interrupt.
    fn control(&mut self, op: Op, events: &EventSender) {
        match op {
            Op::SetModel { model } => {
                self.config.model.clone_from(&model);
                let _ = events.send(Event::ModelChanged { model });
            }
            other => {
                let _ = events.send(Event::Notice {
                    level: keel_protocol::NoticeLevel::Warning,
                    message: format!("this session cannot handle {other:?} yet"),
                });
            }
        }
    }

    /// Works on one prompt until the model stops, the turn limit is hit, an error occurs or
    /// `cancel` fires. Always ends with exactly one `RunFinished` event.
    pub async fn run(&mut self, prompt: String, events: &EventSender, cancel: CancellationToken) {
        let started = Instant::now();
        let mut tally = RunTally::default();
        let message = Message::user_text(prompt);
        let _ = events.send(Event::UserMessage {
            content: message.content.clone(),
        });
        self.messages.push(message);
        let ctx = self.tool_ctx.with_cancel(cancel.clone());
        let outcome = self.agent_loop(&ctx, events, &cancel, &mut tally).await;
        let _ = events.send(Event::RunFinished {
            outcome,
            result: tally.last_text,
            num_turns: tally.turns,
            usage: tally.usage,
            total_cost_usd: tally.cost_usd,
            duration_ms: millis(started.elapsed()),
            duration_api_ms: millis(tally.api_time),
            permission_denials: tally.denials,
        });
    }

    async fn agent_loop(
        &mut self,
        ctx: &ToolContext,
        events: &EventSender,
        cancel: &CancellationToken,
        tally: &mut RunTally,
    ) -> Outcome {
        loop {
            if let Some(max_turns) = self.config.max_turns
                && tally.turns >= max_turns
            {
                return Outcome::MaxTurns { max_turns };
            }
            if cancel.is_cancelled() {
                return Outcome::Interrupted;
            }
            tally.turns += 1;
            let _ = events.send(Event::TurnStarted { turn: tally.turns });

            let api_started = Instant::now();
            let end = self.model_turn(events, cancel).await;
            tally.api_time += api_started.elapsed();

            let assembled = match end {
                TurnEnd::Complete(assembled) => assembled,
                TurnEnd::Interrupted(partial) => {
                    self.keep_partial(partial, events, tally);
                    return Outcome::Interrupted;
                }
                TurnEnd::Failed(error, partial) => {
                    self.keep_partial(partial, events, tally);
                    return Outcome::Error {
                        message: error.to_string(),
                    };
                }
            };
            let Assembled {
                message,
                invalid_tool_inputs,
            } = assembled;
            self.account(&message, tally);
            let _ = events.send(Event::AssistantMessage {
                message: message.clone(),
            });
            self.messages.push(message.to_message());
            let text = message.text();
            if !text.is_empty() {
                tally.last_text = text;
            }

            let invalid: HashMap<String, String> = invalid_tool_inputs
                .into_iter()
                .map(|bad| {
                    let explanation = format!(
                        "The input for {} was not a valid JSON object ({}), so the tool was not \
                         run. Raw input: {}\nCall the tool again with a JSON object that matches \
                         its input schema.",
                        bad.tool_name,
                        bad.error,
                        truncate_chars(&bad.raw, 2000)
                    );
                    (bad.tool_use_id, explanation)
                })
                .collect();
            let calls: Vec<PlannedCall> = message
                .tool_uses()
                .map(|call| PlannedCall {
                    id: call.id.to_string(),
                    name: call.name.to_string(),
                    input: call.input.clone(),
                    invalid_input: invalid.get(call.id).cloned(),
                })
                .collect();

            if calls.is_empty() {
                if message.stop_reason == Some(StopReason::PauseTurn) {
                    continue;
                }
                return Outcome::Success;
            }
            let results = self.run_tools(calls, ctx, events, tally).await;
            self.messages.push(Message {
                role: Role::User,
                content: results,
            });
            if cancel.is_cancelled() {
                return Outcome::Interrupted;
            }
        }
    }

    /// Sends the conversation and streams the answer, turning deltas into events.
    async fn model_turn(&self, events: &EventSender, cancel: &CancellationToken) -> TurnEnd {
        let request = ModelRequest {
            model: self.config.model.clone(),
            system: self.config.system.clone(),
            messages: self.messages.clone(),
            tools: self.tools.specs(),
            max_tokens: self.config.max_tokens,
        };
        let mut accumulator = MessageAccumulator::new();
        let mut stream = tokio::select! {
            biased;
            () = cancel.cancelled() => return TurnEnd::Interrupted(accumulator.finish()),
            started = self.client.stream(&request) => match started {
                Ok(stream) => stream,
                Err(error) => return TurnEnd::Failed(error, accumulator.finish()),
            },
        };
        loop {
            let item = tokio::select! {
                biased;
                () = cancel.cancelled() => return TurnEnd::Interrupted(accumulator.finish()),
                item = stream.next() => item,
            };
            match item {
                None => break,
                Some(Ok(event)) => {
                    match &event {
                        StreamEvent::TextDelta { text, .. } => {
                            let _ = events.send(Event::TextDelta { text: text.clone() });
                        }
                        StreamEvent::ThinkingDelta { thinking, .. } => {
                            let _ = events.send(Event::ThinkingDelta {
                                text: thinking.clone(),
                            });
                        }
                        _ => {}
                    }
                    accumulator.push(&event);
                    if matches!(event, StreamEvent::MessageStop) {
                        break;
                    }
                }
                Some(Err(error)) => return TurnEnd::Failed(error, accumulator.finish()),
            }
        }
        if accumulator.is_complete() {
            TurnEnd::Complete(accumulator.finish())
        } else {
            TurnEnd::Failed(keel_model::ModelError::StreamEnded, accumulator.finish())
        }
    }

    /// Keeps the text of a message cut short (interrupt or error) so nothing the user saw is lost.
    /// Tool calls in it are dropped: they were never run, and the API requires a result for each.
    fn keep_partial(&mut self, partial: Assembled, events: &EventSender, tally: &mut RunTally) {
        let mut message = partial.message;
        message
            .content
            .retain(|block| matches!(block, ContentBlock::Text { text } if !text.is_empty()));
        self.account(&message, tally);
        if message.content.is_empty() {
            return;
        }
        tally.last_text = message.text();
        let _ = events.send(Event::AssistantMessage {
            message: message.clone(),
        });
        self.messages.push(message.to_message());
    }

    fn account(&self, message: &AssistantMessage, tally: &mut RunTally) {
        tally.usage.add(&message.usage);
        let model = if message.model.is_empty() {
            &self.config.model
        } else {
            &message.model
        };
        // Unknown models have no price; the run reports their tokens and a zero cost.
        tally.cost_usd += keel_model::pricing::cost_usd(model, &message.usage).unwrap_or(0.0);
    }

    /// Runs one turn's tool calls: consecutive read-only calls together, others one by one, in
    /// the model's order. Returns one `tool_result` block per call, in that order.
    async fn run_tools(
        &self,
        calls: Vec<PlannedCall>,
        ctx: &ToolContext,
        events: &EventSender,
        tally: &mut RunTally,
    ) -> Vec<ContentBlock> {
        let mut results = Vec::with_capacity(calls.len());
        for batch in self.batches(calls) {
            if ctx.cancel.is_cancelled() {
                for call in batch {
                    let result = ToolCallResult {
                        content: "Not run: the user interrupted before this call started."
                            .to_string(),
                        is_error: true,
                        structured: None,
                        images: Vec::new(),
                    };
                    results.push(self.report(&call, result, events));
                }
                continue;
            }
            let mut runnable = Vec::new();
            let mut settled: Vec<Option<ToolCallResult>> = Vec::new();
            for call in &batch {
                let verdict = self.precheck(call, events, tally);
                if verdict.is_none() {
                    let _ = events.send(Event::ToolCallStarted {
                        tool_use_id: call.id.clone(),
                        name: call.name.clone(),
                        input: call.input.clone(),
                    });
                    runnable.push(call);
                }
                settled.push(verdict);
            }
            let mut ran = futures::future::join_all(
                runnable
                    .iter()
                    .map(|call| self.tools.call(&call.name, call.input.clone(), ctx)),
            )
            .await
            .into_iter();
            for (call, verdict) in batch.iter().zip(settled) {
                let result = match verdict {
                    Some(result) => result,
                    None => match ran.next() {
                        Some(result) => result,
                        // join_all yields one result per runnable call, and every call without
                        // a verdict was made runnable, so this arm cannot be reached.
                        None => ToolCallResult {
                            content: "internal error: tool result missing".to_string(),
                            is_error: true,
                            structured: None,
                            images: Vec::new(),
                        },
                    },
                };
                results.push(self.report(call, result, events));
            }
        }
        results
    }

    /// Splits calls into batches that may run together: a run of read-only calls, or one call.
    fn batches(&self, calls: Vec<PlannedCall>) -> Vec<Vec<PlannedCall>> {
        let mut batches: Vec<Vec<PlannedCall>> = Vec::new();
        let mut last_was_read_only = false;
        for call in calls {
            let read_only = self.tools.is_read_only(&call.name).unwrap_or(false);
            match batches.last_mut() {
                Some(batch) if read_only && last_was_read_only => batch.push(call),
                _ => batches.push(vec![call]),
            }
            last_was_read_only = read_only;
        }
        batches
    }

    /// Settles a call without running it when its input was unusable or policy refuses it.
    fn precheck(
        &self,
        call: &PlannedCall,
        events: &EventSender,
        tally: &mut RunTally,
    ) -> Option<ToolCallResult> {
        if let Some(explanation) = &call.invalid_input {
            return Some(ToolCallResult {
                content: explanation.clone(),
                is_error: true,
                structured: None,
                images: Vec::new(),
            });
        }
        let read_only = self.tools.is_read_only(&call.name)?;
        let reason = self.config.permission_mode.refuses(&call.name, read_only)?;
        let denial = PermissionDenial {
            tool_name: call.name.clone(),
            tool_use_id: call.id.clone(),
            tool_input: call.input.clone(),
        };
        tally.denials.push(denial.clone());
        let _ = events.send(Event::PermissionDenied {
            denial,
            reason: reason.clone(),
        });
        Some(ToolCallResult {
            content: reason,
            is_error: true,
            structured: None,
            images: Vec::new(),
        })
    }

    fn report(
        &self,
        call: &PlannedCall,
        result: ToolCallResult,
        events: &EventSender,
    ) -> ContentBlock {
        let content = result.to_content();
        let _ = events.send(Event::ToolResult {
            tool_use_id: call.id.clone(),
            tool_name: call.name.clone(),
            content: content.clone(),
            is_error: result.is_error,
            structured: result.structured,
        });
        ContentBlock::ToolResult {
            tool_use_id: call.id.clone(),
            content,
            is_error: result.is_error,
        }
    }
}

/// A tool call the model asked for, with the reason it cannot run if its input was unusable.
#[derive(Debug, Clone)]
struct PlannedCall {
    id: String,
    name: String,
    input: Value,
    invalid_input: Option<String>,
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

fn truncate_chars(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}
