//! `AskUserQuestion`: the model asks the user multiple-choice questions. An allowed call is
//! held at the gate while the engine emits [`Event::QuestionAsked`] and waits for an
//! [`Op::AnswerQuestion`](keel_protocol::Op) from whichever frontend is attached; the answers
//! go into the call's input (`answers`, as Claude Code's SDK passes them), and the tool turns
//! them into the result the model reads. Only sessions someone can answer offer the tool.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;
use keel_protocol::{Event, Question};
use keel_tools::{Tool, ToolContext, ToolError, ToolOutput};
use serde_json::{Value, json};
use tokio::sync::oneshot;

use crate::Session;
use crate::emit::{Emitter, lock};
use crate::permission::Gate;
use crate::tools::PlannedCall;

/// The tool's name, as Claude Code names it.
pub(crate) const NAME: &str = "AskUserQuestion";

/// Questions waiting for the user's answers, by request id.
#[derive(Default)]
pub(crate) struct PendingQuestions {
    waiting: Mutex<HashMap<String, oneshot::Sender<BTreeMap<String, String>>>>,
}

impl PendingQuestions {
    /// Registers a question and returns where its answers will arrive.
    fn ask(&self, request_id: &str) -> oneshot::Receiver<BTreeMap<String, String>> {
        let (tx, rx) = oneshot::channel();
        lock(&self.waiting).insert(request_id.to_string(), tx);
        rx
    }

    /// Delivers answers; false if nobody is waiting for that request.
    pub(crate) fn answer(&self, request_id: &str, answers: BTreeMap<String, String>) -> bool {
        match lock(&self.waiting).remove(request_id) {
            Some(waiting) => waiting.send(answers).is_ok(),
            None => false,
        }
    }

    /// Forgets a question that will not be answered (the run was interrupted).
    fn withdraw(&self, request_id: &str) {
        lock(&self.waiting).remove(request_id);
    }
}

impl Session {
    /// For an `AskUserQuestion` call the gate lets run, asks the user and waits: the answers
    /// become the call's `answers` input. Calls that already carry answers (from an SDK
    /// callback or a hook) and every other tool pass through unchanged.
    pub(crate) async fn ask_user(
        &self,
        call: &PlannedCall,
        gate: Gate,
        ctx: &ToolContext,
        emitter: &Emitter,
    ) -> Gate {
        let Gate::Run(mut input) = gate else {
            return gate;
        };
        if call.name != NAME || input.get("answers").is_some_and(Value::is_object) {
            return Gate::Run(input);
        }
        let questions: Vec<Question> = match serde_json::from_value(input["questions"].clone()) {
            Ok(questions) => questions,
            Err(error) => {
                return Gate::Refuse {
                    reason: format!(
                        "The questions could not be read ({error}); check their shape."
                    ),
                };
            }
        };
        let request_id = uuid::Uuid::new_v4().to_string();
        let pending = &self.shared.questions;
        let answers = pending.ask(&request_id);
        emitter.emit(Event::QuestionAsked {
            request_id: request_id.clone(),
            tool_use_id: call.id.clone(),
            questions,
        });
        let message = "keel has a question for you";
        let notify = self.run_hooks(
            keel_policy::hooks::HookEvent::Notification,
            |c| c.notification(message, "question"),
            emitter,
            &ctx.cancel,
        );
        let wait = async {
            tokio::select! {
                () = ctx.cancel.cancelled() => None,
                answers = answers => answers.ok(),
            }
        };
        let (_, answers) = tokio::join!(notify, wait);
        match answers {
            None => {
                pending.withdraw(&request_id);
                Gate::Refuse {
                    reason: "Not answered: the user interrupted while your questions waited."
                        .into(),
                }
            }
            Some(answers) if answers.is_empty() => Gate::Refuse {
                reason: "The user declined to answer your questions. Go on with your best \
                         judgement, or ask in plain text what you need to know."
                    .into(),
            },
            Some(answers) => {
                if let Some(fields) = input.as_object_mut() {
                    fields.insert("answers".into(), json!(answers));
                }
                Gate::Run(input)
            }
        }
    }
}

/// Asks the user multiple-choice questions; the answers arrive through the engine (see
/// [`Session::ask_user`]) before the call runs.
pub struct AskUserQuestion;

#[async_trait]
impl Tool for AskUserQuestion {
    fn name(&self) -> &str {
        NAME
    }

    fn description(&self) -> &str {
        "Ask the user one to four multiple-choice questions and wait for the answers. Use it \
         when a decision is the user's to make and you cannot settle it from the code or the \
         conversation: which of several approaches to take, a preference, an ambiguous \
         requirement. Each question has a short `header` (a few words), 2-4 `options` (a \
         `label` of a few words and a `description` of what choosing it means) and \
         `multiSelect` when several may apply; put the option you recommend first. The user \
         may also answer in their own words. Do not use it to ask for approval of a plan \
         (ExitPlanMode does that) or for questions you can answer yourself."
    }

    fn input_schema(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "questions": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": 4,
                    "description": "The questions to ask (1-4)",
                    "items": {
                        "type": "object",
                        "properties": {
                            "question": {
                                "type": "string",
                                "description": "The complete question, ending with a question mark"
                            },
                            "header": {
                                "type": "string",
                                "description": "A very short label shown with the question (at most 12 characters), e.g. \"Auth method\""
                            },
                            "options": {
                                "type": "array",
                                "minItems": 2,
                                "maxItems": 4,
                                "description": "The choices (2-4); the user can always answer in their own words instead",
                                "items": {
                                    "type": "object",
                                    "properties": {
                                        "label": {
                                            "type": "string",
                                            "description": "What the user picks (1-5 words)"
                                        },
                                        "description": {
                                            "type": "string",
                                            "description": "What this choice means or implies"
                                        }
                                    },
                                    "required": ["label", "description"],
                                    "additionalProperties": false
                                }
                            },
                            "multiSelect": {
                                "type": "boolean",
                                "description": "Whether the user may choose several options"
                            }
                        },
                        "required": ["question", "header", "options", "multiSelect"],
                        "additionalProperties": false
                    }
                },
                "answers": {
                    "type": "object",
                    "additionalProperties": {"type": "string"},
                    "description": "Filled in by keel with the user's answers; do not set it"
                }
            },
            "required": ["questions"],
            "additionalProperties": false
        })
    }

    fn is_read_only(&self) -> bool {
        true
    }

    async fn call(&self, input: Value, _ctx: &ToolContext) -> Result<ToolOutput, ToolError> {
        let Some(answers) = input["answers"].as_object() else {
            return Err(ToolError::Failed(
                "Nobody could answer these questions in this session. Go on with your best \
                 judgement and say which assumptions you made."
                    .into(),
            ));
        };
        let questions: Vec<Question> = serde_json::from_value(input["questions"].clone())
            .map_err(|error| ToolError::InvalidInput(format!("unreadable questions: {error}")))?;
        // Answers in the order the questions were asked; answers to questions that were not
        // asked (a frontend's free-form extras) follow.
        let mut pairs: Vec<(String, String)> = Vec::new();
        for question in &questions {
            if let Some(answer) = answers.get(&question.question) {
                pairs.push((question.question.clone(), answer_text(answer)));
            }
        }
        for (question, answer) in answers {
            if !questions.iter().any(|q| &q.question == question) {
                pairs.push((question.clone(), answer_text(answer)));
            }
        }
        let listed = pairs
            .iter()
            .map(|(q, a)| format!("{}={}", json!(q), json!(a)))
            .collect::<Vec<_>>()
            .join(", ");
        Ok(ToolOutput {
            content: format!(
                "The user answered your questions: {listed}. Continue with these answers in mind."
            ),
            structured: Some(json!({
                "questions": input["questions"],
                "answers": input["answers"],
            })),
            images: Vec::new(),
        })
    }
}

fn answer_text(answer: &Value) -> String {
    match answer {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}
