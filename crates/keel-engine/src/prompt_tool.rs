//! Permission questions answered by an MCP tool (`--permission-prompt-tool`), with Claude
//! Code's contract: the tool gets `{tool_name, input, tool_use_id}` and answers with JSON text,
//! `{"behavior":"allow","updatedInput":{...}}` or `{"behavior":"deny","message":"..."}`.

use keel_protocol::Event;
use keel_tools::ToolContext;
use serde_json::{Value, json};

use crate::emit::Emitter;
use crate::permission::Gate;
use crate::tools::{PlannedCall, deny};
use crate::{RunTally, Session, truncate_chars};

/// What the prompt tool decided.
#[derive(Debug, PartialEq)]
pub(crate) enum PromptAnswer {
    /// Run the call with this input.
    Allow(Value),
    /// Do not run it; the model is told this.
    Deny(String),
}

impl Session {
    /// Asks the MCP tool `tool` whether `call` may run with `input`.
    pub(crate) async fn ask_prompt_tool(
        &self,
        tool: &str,
        call: &PlannedCall,
        input: Value,
        ctx: &ToolContext,
        emitter: &Emitter,
        tally: &mut RunTally,
    ) -> Gate {
        let question = json!({
            "tool_name": call.name,
            "input": input,
            "tool_use_id": call.id,
        });
        let answer = self.tools.call(tool, question, ctx).await;
        if ctx.cancel.is_cancelled() {
            return Gate::Refuse {
                reason: "Not run: the user interrupted while this call waited for approval.".into(),
            };
        }
        let decision = if answer.is_error {
            Err(format!(
                "the permission prompt tool {tool} failed: {}",
                truncate_chars(answer.content.trim(), 500)
            ))
        } else {
            read_answer(&answer.content, &input).map_err(|problem| {
                format!(
                    "the permission prompt tool {tool} gave an answer keel cannot use: {problem}"
                )
            })
        };
        match decision {
            Ok(PromptAnswer::Allow(updated)) => {
                if let Err(problem) = self.tools.check(&call.name, &updated) {
                    return Gate::Refuse {
                        reason: format!(
                            "The permission prompt tool {tool} rewrote the input badly: {problem}"
                        ),
                    };
                }
                Gate::Run(updated)
            }
            Ok(PromptAnswer::Deny(message)) => {
                let reason = if message.trim().is_empty() {
                    format!("Permission to use {} was denied.", call.name)
                } else {
                    format!("Permission to use {} was denied: {message}", call.name)
                };
                deny(call, reason, emitter, tally)
            }
            Err(problem) => {
                // Failing closed: a broken approver must not let calls through.
                emitter.emit(Event::Notice {
                    level: keel_protocol::NoticeLevel::Warning,
                    message: problem.clone(),
                });
                let reason = format!(
                    "Permission to use {} was not granted: {problem}.",
                    call.name
                );
                deny(call, reason, emitter, tally)
            }
        }
    }
}

/// Reads the tool's text answer; `input` is kept when an allow gives no `updatedInput`.
pub(crate) fn read_answer(text: &str, input: &Value) -> Result<PromptAnswer, String> {
    let value: Value = serde_json::from_str(text.trim()).map_err(|error| {
        format!(
            "expected JSON like {{\"behavior\":\"allow\",\"updatedInput\":{{...}}}} ({error}); it \
             said: {}",
            truncate_chars(text.trim(), 200)
        )
    })?;
    match value.get("behavior").and_then(Value::as_str) {
        Some("allow") => match value.get("updatedInput") {
            None | Some(Value::Null) => Ok(PromptAnswer::Allow(input.clone())),
            Some(updated @ Value::Object(_)) => Ok(PromptAnswer::Allow(updated.clone())),
            Some(other) => Err(format!("updatedInput must be an object, not {other}")),
        },
        Some("deny") => Ok(PromptAnswer::Deny(
            value
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
        )),
        _ => Err(format!(
            "`behavior` must be \"allow\" or \"deny\"; it said: {}",
            truncate_chars(&value.to_string(), 200)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_follow_claude_codes_contract() {
        let input = json!({"command": "ls"});
        assert_eq!(
            read_answer(
                r#"{"behavior":"allow","updatedInput":{"command":"ls -a"}}"#,
                &input
            ),
            Ok(PromptAnswer::Allow(json!({"command": "ls -a"})))
        );
        assert_eq!(
            read_answer(r#"{"behavior":"allow"}"#, &input),
            Ok(PromptAnswer::Allow(input.clone()))
        );
        assert_eq!(
            read_answer(r#" {"behavior":"deny","message":"no"} "#, &input),
            Ok(PromptAnswer::Deny("no".into()))
        );
        assert!(
            read_answer("yes", &input)
                .unwrap_err()
                .contains("expected JSON")
        );
        assert!(
            read_answer(r#"{"behavior":"maybe"}"#, &input)
                .unwrap_err()
                .contains("behavior")
        );
    }
}
