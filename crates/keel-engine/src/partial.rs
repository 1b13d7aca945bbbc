//! The model's stream as the Anthropic Messages API sends it, whatever the provider, for
//! frontends that show partial messages (Claude Code's `stream_event` lines).

use keel_model::{BlockStart, StreamEvent};
use serde_json::{Value, json};

/// One stream event in the API's SSE `data` shape; `None` for keep-alives, which carry nothing
/// a frontend could show.
pub(crate) fn wire_event(event: &StreamEvent) -> Option<Value> {
    Some(match event {
        StreamEvent::MessageStart { id, model, usage } => json!({
            "type": "message_start",
            "message": {
                "id": id,
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": [],
                "stop_reason": null,
                "stop_sequence": null,
                "usage": usage,
            },
        }),
        StreamEvent::BlockStart { index, block } => {
            let content_block = match block {
                BlockStart::Text => json!({"type": "text", "text": ""}),
                BlockStart::ToolUse { id, name } => {
                    json!({"type": "tool_use", "id": id, "name": name, "input": {}})
                }
                BlockStart::Thinking => {
                    json!({"type": "thinking", "thinking": "", "signature": ""})
                }
                BlockStart::RedactedThinking { data } => {
                    json!({"type": "redacted_thinking", "data": data})
                }
                BlockStart::Raw { block } => block.clone(),
            };
            json!({"type": "content_block_start", "index": index, "content_block": content_block})
        }
        StreamEvent::TextDelta { index, text } => delta(*index, "text_delta", "text", text),
        StreamEvent::ThinkingDelta { index, thinking } => {
            delta(*index, "thinking_delta", "thinking", thinking)
        }
        StreamEvent::SignatureDelta { index, signature } => {
            delta(*index, "signature_delta", "signature", signature)
        }
        StreamEvent::CitationDelta { index, citation } => json!({
            "type": "content_block_delta",
            "index": index,
            "delta": {"type": "citations_delta", "citation": citation},
        }),
        StreamEvent::InputJsonDelta {
            index,
            partial_json,
        } => delta(*index, "input_json_delta", "partial_json", partial_json),
        StreamEvent::BlockStop { index } => json!({"type": "content_block_stop", "index": index}),
        StreamEvent::MessageDelta {
            stop_reason,
            stop_sequence,
            usage,
        } => json!({
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason, "stop_sequence": stop_sequence},
            "usage": usage,
        }),
        StreamEvent::MessageStop => json!({"type": "message_stop"}),
        StreamEvent::Ping => return None,
    })
}

fn delta(index: usize, kind: &str, field: &str, value: &str) -> Value {
    json!({
        "type": "content_block_delta",
        "index": index,
        "delta": {"type": kind, field: value},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_have_the_api_shapes() {
        let start = wire_event(&StreamEvent::MessageStart {
            id: "msg_1".into(),
            model: "m".into(),
            usage: keel_protocol::Usage::default(),
        })
        .unwrap();
        assert_eq!(start["type"], "message_start");
        assert_eq!(start["message"]["role"], "assistant");
        assert_eq!(start["message"]["content"], json!([]));
        let text = wire_event(&StreamEvent::TextDelta {
            index: 0,
            text: "hi".into(),
        })
        .unwrap();
        assert_eq!(
            text,
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "hi"}})
        );
        let tool = wire_event(&StreamEvent::BlockStart {
            index: 1,
            block: BlockStart::ToolUse {
                id: "toolu_1".into(),
                name: "Bash".into(),
            },
        })
        .unwrap();
        assert_eq!(tool["content_block"]["name"], "Bash");
        assert_eq!(tool["content_block"]["input"], json!({}));
        assert!(wire_event(&StreamEvent::Ping).is_none());
    }
}
