//! Assembles streamed events into a complete assistant message.

use std::collections::BTreeMap;

use keel_protocol::{AssistantMessage, ContentBlock, Role, StopReason, Usage};
use serde_json::Value;

use crate::{BlockStart, StreamEvent};

/// A tool call whose streamed input was not a JSON object. The call is kept in the message with
/// an empty object as input (the API requires an object when the conversation is replayed), and
/// the engine answers it with an error result built from this record.
#[derive(Debug, Clone, PartialEq)]
pub struct InvalidToolInput {
    /// The call's id.
    pub tool_use_id: String,
    /// The tool the model tried to call.
    pub tool_name: String,
    /// Why the input could not be used.
    pub error: String,
    /// The raw text the model produced.
    pub raw: String,
}

/// The result of accumulating a stream: the message and the tool calls that had unusable input.
#[derive(Debug, Clone, PartialEq)]
pub struct Assembled {
    /// The assistant message, complete or (after an interrupt or error) as far as it got.
    pub message: AssistantMessage,
    /// Tool calls whose input did not parse as a JSON object.
    pub invalid_tool_inputs: Vec<InvalidToolInput>,
}

/// A block being streamed.
#[derive(Debug)]
enum Partial {
    Text {
        text: String,
        citations: Vec<Value>,
    },
    ToolUse {
        id: String,
        name: String,
        json: String,
    },
    Thinking {
        thinking: String,
        signature: String,
    },
    RedactedThinking(String),
    Raw {
        block: Value,
        json: String,
    },
}

/// Collects [`StreamEvent`]s into an [`AssistantMessage`]. Events may arrive for any block
/// index; blocks are ordered by index, as the API numbers them.
#[derive(Debug, Default)]
pub struct MessageAccumulator {
    id: String,
    model: String,
    usage: Usage,
    stop_reason: Option<StopReason>,
    stop_sequence: Option<String>,
    blocks: BTreeMap<usize, Partial>,
    stopped: bool,
}

impl MessageAccumulator {
    /// An empty accumulator, ready for a `MessageStart`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one event.
    pub fn push(&mut self, event: &StreamEvent) {
        match event {
            StreamEvent::MessageStart { id, model, usage } => {
                self.id.clone_from(id);
                self.model.clone_from(model);
                self.usage = *usage;
            }
            StreamEvent::BlockStart { index, block } => {
                let partial = match block {
                    BlockStart::Text => Partial::Text {
                        text: String::new(),
                        citations: Vec::new(),
                    },
                    BlockStart::ToolUse { id, name } => Partial::ToolUse {
                        id: id.clone(),
                        name: name.clone(),
                        json: String::new(),
                    },
                    BlockStart::Thinking => Partial::Thinking {
                        thinking: String::new(),
                        signature: String::new(),
                    },
                    BlockStart::RedactedThinking { data } => {
                        Partial::RedactedThinking(data.clone())
                    }
                    BlockStart::Raw { block } => Partial::Raw {
                        block: block.clone(),
                        json: String::new(),
                    },
                };
                self.blocks.insert(*index, partial);
            }
            StreamEvent::TextDelta { index, text } => {
                match self.blocks.entry(*index).or_insert_with(|| Partial::Text {
                    text: String::new(),
                    citations: Vec::new(),
                }) {
                    Partial::Text { text: buffer, .. } => buffer.push_str(text),
                    other => tracing::warn!(index, ?other, "text delta for a non-text block"),
                }
            }
            StreamEvent::CitationDelta { index, citation } => match self.blocks.get_mut(index) {
                Some(Partial::Text { citations, .. }) => citations.push(citation.clone()),
                _ => tracing::warn!(index, "citation for a block that is not text"),
            },
            StreamEvent::ThinkingDelta { index, thinking } => {
                if let Some(Partial::Thinking {
                    thinking: buffer, ..
                }) = self.blocks.get_mut(index)
                {
                    buffer.push_str(thinking);
                } else {
                    self.blocks.insert(
                        *index,
                        Partial::Thinking {
                            thinking: thinking.clone(),
                            signature: String::new(),
                        },
                    );
                }
            }
            StreamEvent::SignatureDelta { index, signature } => {
                if let Some(Partial::Thinking {
                    signature: buffer, ..
                }) = self.blocks.get_mut(index)
                {
                    buffer.push_str(signature);
                }
            }
            StreamEvent::InputJsonDelta {
                index,
                partial_json,
            } => {
                if let Some(Partial::ToolUse { json, .. } | Partial::Raw { json, .. }) =
                    self.blocks.get_mut(index)
                {
                    json.push_str(partial_json);
                } else {
                    tracing::warn!(
                        index,
                        "input_json_delta for a block that is not a tool call"
                    );
                }
            }
            StreamEvent::BlockStop { .. } | StreamEvent::Ping => {}
            StreamEvent::MessageDelta {
                stop_reason,
                stop_sequence,
                usage,
            } => {
                if stop_reason.is_some() {
                    self.stop_reason = *stop_reason;
                }
                if stop_sequence.is_some() {
                    self.stop_sequence.clone_from(stop_sequence);
                }
                // message_delta carries cumulative counts; a zero means "not reported here".
                merge_nonzero(&mut self.usage.input_tokens, usage.input_tokens);
                merge_nonzero(&mut self.usage.output_tokens, usage.output_tokens);
                merge_nonzero(
                    &mut self.usage.cache_creation_input_tokens,
                    usage.cache_creation_input_tokens,
                );
                merge_nonzero(
                    &mut self.usage.cache_read_input_tokens,
                    usage.cache_read_input_tokens,
                );
            }
            StreamEvent::MessageStop => self.stopped = true,
        }
    }

    /// Whether the whole message has arrived (`message_stop` seen).
    pub fn is_complete(&self) -> bool {
        self.stopped
    }

    /// The message as far as it arrived. Tool inputs are parsed here; those that are not JSON
    /// objects are reported in [`Assembled::invalid_tool_inputs`].
    pub fn finish(self) -> Assembled {
        let mut invalid_tool_inputs = Vec::new();
        let content = self
            .blocks
            .into_values()
            .map(|partial| match partial {
                Partial::Text { text, citations } if citations.is_empty() => {
                    ContentBlock::Text { text }
                }
                // Cited text goes back to the API as it came, citations included.
                Partial::Text { text, citations } => ContentBlock::Other(serde_json::json!({
                    "type": "text",
                    "text": text,
                    "citations": citations,
                })),
                Partial::Raw { mut block, json } => {
                    if !json.trim().is_empty() {
                        match serde_json::from_str::<Value>(&json) {
                            Ok(input) => {
                                if let Some(fields) = block.as_object_mut() {
                                    fields.insert("input".into(), input);
                                }
                            }
                            // A server tool's input is the server's business; keep what came.
                            Err(error) => tracing::warn!(%error, "unparsable server tool input"),
                        }
                    }
                    ContentBlock::Other(block)
                }
                Partial::ToolUse { id, name, json } => {
                    let input = match parse_tool_input(&json) {
                        Ok(input) => input,
                        Err(error) => {
                            invalid_tool_inputs.push(InvalidToolInput {
                                tool_use_id: id.clone(),
                                tool_name: name.clone(),
                                error,
                                raw: json,
                            });
                            Value::Object(serde_json::Map::new())
                        }
                    };
                    ContentBlock::ToolUse { id, name, input }
                }
                Partial::Thinking {
                    thinking,
                    signature,
                } => ContentBlock::Thinking {
                    thinking,
                    signature,
                },
                Partial::RedactedThinking(data) => ContentBlock::RedactedThinking { data },
            })
            .collect();
        Assembled {
            message: AssistantMessage {
                id: self.id,
                role: Role::Assistant,
                model: self.model,
                content,
                stop_reason: self.stop_reason,
                stop_sequence: self.stop_sequence,
                usage: self.usage,
            },
            invalid_tool_inputs,
        }
    }
}

fn merge_nonzero(target: &mut u64, value: u64) {
    if value != 0 {
        *target = value;
    }
}

/// Parses a tool call's streamed input. An empty input means "no arguments".
fn parse_tool_input(json: &str) -> Result<Value, String> {
    if json.trim().is_empty() {
        return Ok(Value::Object(serde_json::Map::new()));
    }
    match serde_json::from_str::<Value>(json) {
        Ok(value @ Value::Object(_)) => Ok(value),
        Ok(other) => Err(format!("expected a JSON object, got {}", json_kind(&other))),
        Err(error) => Err(error.to_string()),
    }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn start() -> StreamEvent {
        StreamEvent::MessageStart {
            id: "msg_1".into(),
            model: "m".into(),
            usage: Usage {
                input_tokens: 10,
                ..Usage::default()
            },
        }
    }

    #[test]
    fn assembles_text_and_tool_calls_in_index_order() {
        let mut acc = MessageAccumulator::new();
        for event in [
            start(),
            StreamEvent::BlockStart {
                index: 0,
                block: BlockStart::Text,
            },
            StreamEvent::TextDelta {
                index: 0,
                text: "Hel".into(),
            },
            StreamEvent::TextDelta {
                index: 0,
                text: "lo".into(),
            },
            StreamEvent::BlockStop { index: 0 },
            StreamEvent::BlockStart {
                index: 1,
                block: BlockStart::ToolUse {
                    id: "toolu_1".into(),
                    name: "Read".into(),
                },
            },
            StreamEvent::InputJsonDelta {
                index: 1,
                partial_json: "{\"file_".into(),
            },
            StreamEvent::InputJsonDelta {
                index: 1,
                partial_json: "path\": \"/a\"}".into(),
            },
            StreamEvent::BlockStop { index: 1 },
            StreamEvent::MessageDelta {
                stop_reason: Some(StopReason::ToolUse),
                stop_sequence: None,
                usage: Usage {
                    output_tokens: 7,
                    ..Usage::default()
                },
            },
            StreamEvent::MessageStop,
        ] {
            acc.push(&event);
        }
        assert!(acc.is_complete());
        let assembled = acc.finish();
        assert!(assembled.invalid_tool_inputs.is_empty());
        let message = assembled.message;
        assert_eq!(message.text(), "Hello");
        assert_eq!(message.stop_reason, Some(StopReason::ToolUse));
        assert_eq!(message.usage.input_tokens, 10);
        assert_eq!(message.usage.output_tokens, 7);
        assert_eq!(
            message.content[1],
            ContentBlock::ToolUse {
                id: "toolu_1".into(),
                name: "Read".into(),
                input: json!({"file_path": "/a"})
            }
        );
    }

    #[test]
    fn invalid_tool_input_is_reported_and_replaced_by_an_object() {
        let mut acc = MessageAccumulator::new();
        acc.push(&start());
        acc.push(&StreamEvent::BlockStart {
            index: 0,
            block: BlockStart::ToolUse {
                id: "t".into(),
                name: "Read".into(),
            },
        });
        acc.push(&StreamEvent::InputJsonDelta {
            index: 0,
            partial_json: "{\"file_path\": \"/etc/hos".into(),
        });
        let assembled = acc.finish();
        assert_eq!(assembled.invalid_tool_inputs.len(), 1);
        assert_eq!(
            assembled.invalid_tool_inputs[0].raw,
            "{\"file_path\": \"/etc/hos"
        );
        assert!(matches!(
            &assembled.message.content[0],
            ContentBlock::ToolUse { input, .. } if input == &json!({})
        ));
    }

    #[test]
    fn empty_tool_input_means_no_arguments_and_arrays_are_refused() {
        assert_eq!(parse_tool_input("  "), Ok(json!({})));
        assert!(parse_tool_input("[1]").unwrap_err().contains("an array"));
    }

    #[test]
    fn thinking_keeps_its_signature() {
        let mut acc = MessageAccumulator::new();
        acc.push(&start());
        acc.push(&StreamEvent::BlockStart {
            index: 0,
            block: BlockStart::Thinking,
        });
        acc.push(&StreamEvent::ThinkingDelta {
            index: 0,
            thinking: "hmm".into(),
        });
        acc.push(&StreamEvent::SignatureDelta {
            index: 0,
            signature: "sig".into(),
        });
        acc.push(&StreamEvent::BlockStart {
            index: 1,
            block: BlockStart::RedactedThinking { data: "xyz".into() },
        });
        let message = acc.finish().message;
        assert_eq!(
            message.content,
            vec![
                ContentBlock::Thinking {
                    thinking: "hmm".into(),
                    signature: "sig".into()
                },
                ContentBlock::RedactedThinking { data: "xyz".into() }
            ]
        );
    }
}
