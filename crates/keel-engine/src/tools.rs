//! Running one turn's tool calls: the permission gate (policy, then the user for "ask"),
//! consecutive read-only calls together, everything else one by one, results in call order.

use std::collections::HashMap;

use keel_model::Assembled;
use keel_policy::Decision;
use keel_policy::hooks::{HookEvent, HookPermission};
use keel_protocol::{ApprovalAnswer, ContentBlock, Event, PermissionDenial};
use keel_tools::{ToolCallResult, ToolContext};
use serde_json::Value;

use crate::emit::Emitter;
use crate::permission::{Approver, Gate, allows, unattended_refusal};
use crate::{RunTally, Session, truncate_chars};

/// A tool call the model asked for, with the reason it cannot run if its input was unusable.
#[derive(Debug, Clone)]
pub(crate) struct PlannedCall {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) input: Value,
    pub(crate) invalid_input: Option<String>,
}

/// The calls of an assembled message, with explanations for inputs that were not JSON objects.
pub(crate) fn planned_calls(assembled: &Assembled) -> Vec<PlannedCall> {
    let truncated = assembled.message.stop_reason == Some(keel_protocol::StopReason::MaxTokens);
    let invalid: HashMap<&str, String> = assembled
        .invalid_tool_inputs
        .iter()
        .map(|bad| {
            let explanation = if truncated {
                format!(
                    "Your output hit the max_tokens limit in the middle of this {} call, so its \
                     input was cut short and the tool was not run. Make the call again with \
                     less content at once (e.g. write a large file in several Edit calls).",
                    bad.tool_name
                )
            } else {
                format!(
                    "The input for {} was not a valid JSON object ({}), so the tool was not \
                     run. Raw input: {}\nCall the tool again with a JSON object that matches \
                     its input schema.",
                    bad.tool_name,
                    bad.error,
                    truncate_chars(&bad.raw, 2000)
                )
            };
            (bad.tool_use_id.as_str(), explanation)
        })
        .collect();
    assembled
        .message
        .tool_uses()
        .map(|call| PlannedCall {
            id: call.id.to_string(),
            name: call.name.to_string(),
            input: call.input.clone(),
            invalid_input: invalid.get(call.id).cloned(),
        })
        .collect()
}

impl Session {
    /// Runs one turn's tool calls: consecutive read-only calls together, others one by one, in
    /// the model's order. Returns one `tool_result` block per call, in that order.
    pub(crate) async fn run_tools(
        &self,
        calls: Vec<PlannedCall>,
        ctx: &ToolContext,
        emitter: &Emitter,
        tally: &mut RunTally,
    ) -> Vec<ContentBlock> {
        let mut results = Vec::with_capacity(calls.len());
        for batch in self.batches(calls) {
            let mut runnable: Vec<(usize, String, Value)> = Vec::new();
            let mut settled: Vec<Option<ToolCallResult>> = Vec::with_capacity(batch.len());
            for (position, call) in batch.iter().enumerate() {
                if ctx.cancel.is_cancelled() {
                    settled.push(Some(ToolCallResult::error(
                        "Not run: the user interrupted before this call started.",
                    )));
                    continue;
                }
                let gate = self.gate(call, ctx, emitter, tally).await;
                match self.ask_user(call, gate, ctx, emitter).await {
                    Gate::Run(input) => {
                        emitter.emit(Event::ToolCallStarted {
                            tool_use_id: call.id.clone(),
                            name: call.name.clone(),
                            input: input.clone(),
                        });
                        runnable.push((position, call.name.clone(), input));
                        settled.push(None);
                    }
                    Gate::Refuse { reason } => settled.push(Some(ToolCallResult::error(reason))),
                }
            }
            let ran = futures::future::join_all(runnable.iter().map(|(position, name, input)| {
                self.call_tool(&batch[*position].id, name, input.clone(), ctx, emitter)
            }))
            .await;
            crate::agent::collect_child_usage(self, tally);
            let batch_ref = &batch;
            let post = futures::future::join_all(runnable.iter().zip(ran).map(
                |((position, name, input), result)| async move {
                    let id = &batch_ref[*position].id;
                    let result = self
                        .post_tool_use(id, name, input, result, ctx, emitter)
                        .await;
                    (*position, result)
                },
            ))
            .await;
            for (position, result) in post {
                settled[position] = Some(result);
            }
            for (call, result) in batch.iter().zip(settled) {
                // Every call got a verdict or was made runnable and then run, so each slot is
                // filled; the fallback only guards against a future edit breaking that.
                let result = result.unwrap_or_else(|| {
                    ToolCallResult::error("internal error: tool result missing")
                });
                for extension in &self.extensions {
                    extension.tool_finished(&call.name, result.is_error);
                }
                results.push(report(call, result, emitter));
            }
        }
        results
    }

    /// Runs the PostToolUse hooks of a finished call; their feedback goes to the model with
    /// the result.
    async fn post_tool_use(
        &self,
        id: &str,
        name: &str,
        input: &Value,
        mut result: ToolCallResult,
        ctx: &ToolContext,
        emitter: &Emitter,
    ) -> ToolCallResult {
        let response = result
            .structured
            .clone()
            .unwrap_or_else(|| Value::String(result.content.clone()));
        if let Some(memory) = self.nested_memory(name, input) {
            result.content.push_str("\n\n");
            result.content.push_str(&memory);
        }
        let Some(outcome) = self
            .run_hooks(
                HookEvent::PostToolUse,
                |c| c.post_tool_use(name, input, &response, id),
                emitter,
                &ctx.cancel,
            )
            .await
        else {
            return result;
        };
        if let Some(reason) = outcome.blocked {
            result
                .content
                .push_str(&format!("\n\nPostToolUse hook feedback:\n{reason}"));
        }
        for text in &outcome.additional_context {
            result.content.push_str("\n\n");
            result
                .content
                .push_str(&crate::hooks::context_block(HookEvent::PostToolUse, text));
        }
        result
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

    /// Decides whether a call runs: unusable input and unknown tools are settled by the
    /// registry's own errors; then the policy; then, for "ask", whoever can answer.
    pub(crate) async fn gate(
        &self,
        call: &PlannedCall,
        ctx: &ToolContext,
        emitter: &Emitter,
        tally: &mut RunTally,
    ) -> Gate {
        if let Some(explanation) = &call.invalid_input {
            return Gate::Refuse {
                reason: explanation.clone(),
            };
        }
        // A malformed call or an unknown tool is answered with the registry's explanation,
        // before anyone is asked to approve it.
        if let Err(problem) = self.tools.check(&call.name, &call.input) {
            return Gate::Refuse { reason: problem };
        }
        if let Some(reason) = crate::agent::restricted(self, call) {
            return deny(call, reason, emitter, tally);
        }
        let mut input = call.input.clone();
        let mut hook_allows = false;
        let mut hook_asks: Option<String> = None;
        if let Some(outcome) = self
            .run_hooks(
                HookEvent::PreToolUse,
                |c| c.pre_tool_use(&call.name, &call.input, &call.id),
                emitter,
                &ctx.cancel,
            )
            .await
        {
            if let Some(reason) = outcome.blocked {
                let reason = format!(
                    "A PreToolUse hook blocked this {} call: {reason}",
                    call.name
                );
                return deny(call, reason, emitter, tally);
            }
            if let Some(updated) = outcome.updated_input {
                if let Err(problem) = self.tools.check(&call.name, &updated) {
                    return Gate::Refuse {
                        reason: format!("A PreToolUse hook rewrote the input badly: {problem}"),
                    };
                }
                input = updated;
            }
            match outcome.permission {
                Some(HookPermission {
                    decision: Decision::Allow,
                    ..
                }) => hook_allows = true,
                Some(HookPermission {
                    decision: Decision::Ask,
                    reason,
                }) => {
                    hook_asks =
                        Some(reason.unwrap_or_else(|| {
                            "a PreToolUse hook asks for your approval".to_string()
                        }));
                }
                _ => {}
            }
        }
        // An MCP server's read-only hint is the untrusted server's claim: it lets calls run
        // together, but not without the user's permission.
        // A skill that grants nothing is only text for the model, like a file it reads.
        let read_only = (self.tools.is_read_only(&call.name).unwrap_or(false)
            && !crate::is_mcp_tool(&call.name))
            || crate::skill::grants_nothing(self, &call.name, &call.input);
        let permissions = &self.shared.permissions;
        let verdict = permissions.decide(&call.name, &input, &ctx.current_dir(), read_only);
        // A hook's allow skips the question but not a deny rule; a hook's ask always asks.
        let decision = match (&hook_asks, verdict.decision) {
            (_, Decision::Deny) => Decision::Deny,
            (Some(_), _) => Decision::Ask,
            (None, _) if hook_allows => Decision::Allow,
            (None, decision) => decision,
        };
        let reason = hook_asks.unwrap_or_else(|| verdict.reason.to_string());
        match decision {
            decision if allows(decision) => Gate::Run(input),
            Decision::Deny => {
                let reason = format!("Permission to use {} was denied: {reason}", call.name);
                deny(call, reason, emitter, tally)
            }
            _ => match permissions.approver() {
                Approver::PromptTool(tool) => {
                    self.ask_prompt_tool(tool, call, input, ctx, emitter, tally)
                        .await
                }
                Approver::Unattended => {
                    let reason = unattended_refusal(&call.name, &reason, &verdict.suggestions);
                    deny(call, reason, emitter, tally)
                }
                Approver::Interactive => {
                    let request_id = uuid::Uuid::new_v4().to_string();
                    let answer = permissions.ask(&request_id);
                    emitter.emit(Event::ApprovalRequested {
                        request_id: request_id.clone(),
                        tool_use_id: call.id.clone(),
                        tool_name: call.name.clone(),
                        input: input.clone(),
                        reason,
                        suggestions: verdict.suggestions.clone(),
                    });
                    let message = format!("keel needs your permission to use {}", call.name);
                    let notify = self.run_hooks(
                        HookEvent::Notification,
                        |c| c.notification(&message, "permission_prompt"),
                        emitter,
                        &ctx.cancel,
                    );
                    let wait = async {
                        tokio::select! {
                            () = ctx.cancel.cancelled() => None,
                            answer = answer => answer.ok(),
                        }
                    };
                    let (_, answer) = tokio::join!(notify, wait);
                    match answer {
                        None => {
                            permissions.withdraw(&request_id);
                            Gate::Refuse {
                                reason: "Not run: the user interrupted while this call waited for \
                                         approval."
                                    .into(),
                            }
                        }
                        Some(ApprovalAnswer::AllowOnce { updated_input }) => {
                            Gate::Run(updated_input.unwrap_or(input))
                        }
                        Some(ApprovalAnswer::AllowAlways { rules }) => {
                            if let Err(problem) = permissions.allow_always(&rules) {
                                emitter.emit(Event::Notice {
                                    level: keel_protocol::NoticeLevel::Warning,
                                    message: problem,
                                });
                            }
                            Gate::Run(input)
                        }
                        Some(ApprovalAnswer::Deny { message }) => {
                            let reason = if message.trim().is_empty() {
                                format!("The user did not allow this {} call.", call.name)
                            } else {
                                format!(
                                    "The user did not allow this {} call and said: {message}",
                                    call.name
                                )
                            };
                            deny(call, reason, emitter, tally)
                        }
                    }
                }
            },
        }
    }
}

/// Refuses a call: recorded in `permission_denials` and reported as an event.
pub(crate) fn deny(
    call: &PlannedCall,
    reason: String,
    emitter: &Emitter,
    tally: &mut RunTally,
) -> Gate {
    let denial = PermissionDenial {
        tool_name: call.name.clone(),
        tool_use_id: call.id.clone(),
        tool_input: call.input.clone(),
    };
    tally.denials.push(denial.clone());
    emitter.emit(Event::PermissionDenied {
        denial,
        reason: reason.clone(),
    });
    Gate::Refuse { reason }
}

/// Reports a finished call and returns its `tool_result` block.
fn report(call: &PlannedCall, result: ToolCallResult, emitter: &Emitter) -> ContentBlock {
    let content = result.to_content();
    emitter.emit(Event::ToolResult {
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
