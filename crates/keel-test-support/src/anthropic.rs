//! The Anthropic Messages API wire format: SSE events as the real API sends them, the
//! non-streaming message object, and the error body.

use bytes::Bytes;
use serde_json::{Value, json};

use crate::reply::{Reply, ReplyBlock, json_pieces, text_pieces};

/// One SSE frame: `event: NAME`, `data: JSON`, blank line.
fn frame(name: &str, data: &Value) -> Bytes {
    Bytes::from(format!("event: {name}\ndata: {data}\n\n"))
}

/// The whole event sequence for a streamed reply, one frame per event.
pub(crate) fn stream_frames(reply: &Reply) -> Vec<Bytes> {
    let usage = &reply.usage;
    let mut frames = vec![
        frame(
            "message_start",
            &json!({
                "type": "message_start",
                "message": {
                    "id": reply.id,
                    "type": "message",
                    "role": "assistant",
                    "model": reply.model,
                    "content": [],
                    "stop_reason": null,
                    "stop_sequence": null,
                    "usage": {
                        "input_tokens": usage.input_tokens,
                        "cache_creation_input_tokens": usage.cache_creation_input_tokens,
                        "cache_read_input_tokens": usage.cache_read_input_tokens,
                        // The real API reports a small placeholder here; the final count comes
                        // in message_delta and replaces it.
                        "output_tokens": 1,
                    },
                },
            }),
        ),
        frame("ping", &json!({"type": "ping"})),
    ];
    for (index, block) in reply.blocks.iter().enumerate() {
        let delta = |delta: Value| {
            frame(
                "content_block_delta",
                &json!({"type": "content_block_delta", "index": index, "delta": delta}),
            )
        };
        let start = |block: Value| {
            frame(
                "content_block_start",
                &json!({"type": "content_block_start", "index": index, "content_block": block}),
            )
        };
        match block {
            ReplyBlock::Text(text) => {
                frames.push(start(json!({"type": "text", "text": ""})));
                for piece in text_pieces(text) {
                    frames.push(delta(json!({"type": "text_delta", "text": piece})));
                }
            }
            ReplyBlock::ToolUse {
                id,
                name,
                input_json,
            } => {
                frames.push(start(
                    json!({"type": "tool_use", "id": id, "name": name, "input": {}}),
                ));
                for piece in json_pieces(input_json) {
                    frames.push(delta(
                        json!({"type": "input_json_delta", "partial_json": piece}),
                    ));
                }
            }
            ReplyBlock::Thinking {
                thinking,
                signature,
            } => {
                frames.push(start(json!({"type": "thinking", "thinking": ""})));
                for piece in text_pieces(thinking) {
                    frames.push(delta(json!({"type": "thinking_delta", "thinking": piece})));
                }
                frames.push(delta(
                    json!({"type": "signature_delta", "signature": signature}),
                ));
            }
            ReplyBlock::Redacted(data) => {
                frames.push(start(json!({"type": "redacted_thinking", "data": data})));
            }
            ReplyBlock::Raw(block) if block["type"] == "text" => {
                frames.push(start(json!({"type": "text", "text": ""})));
                for piece in text_pieces(block["text"].as_str().unwrap_or_default()) {
                    frames.push(delta(json!({"type": "text_delta", "text": piece})));
                }
                for citation in block["citations"].as_array().into_iter().flatten() {
                    frames.push(delta(
                        json!({"type": "citations_delta", "citation": citation}),
                    ));
                }
            }
            ReplyBlock::Raw(block) if block["input"].is_object() => {
                // As the API streams a server tool's call: an empty input, then its JSON.
                let mut empty = block.clone();
                empty["input"] = json!({});
                frames.push(start(empty));
                for piece in json_pieces(&block["input"].to_string()) {
                    frames.push(delta(
                        json!({"type": "input_json_delta", "partial_json": piece}),
                    ));
                }
            }
            ReplyBlock::Raw(block) => frames.push(start(block.clone())),
        }
        frames.push(frame(
            "content_block_stop",
            &json!({"type": "content_block_stop", "index": index}),
        ));
    }
    if let Some(err) = &reply.stream_error {
        frames.push(frame("error", &error_body(&err.error_type, &err.message)));
        return frames;
    }
    frames.push(frame(
        "message_delta",
        &json!({
            "type": "message_delta",
            "delta": {"stop_reason": reply.stop_reason, "stop_sequence": null},
            "usage": {"output_tokens": usage.output_tokens},
        }),
    ));
    frames.push(frame("message_stop", &json!({"type": "message_stop"})));
    frames
}

/// The non-streaming answer: one complete message object.
pub(crate) fn message(reply: &Reply) -> Value {
    let content: Vec<Value> = reply
        .blocks
        .iter()
        .map(|block| match block {
            ReplyBlock::Text(text) => json!({"type": "text", "text": text}),
            ReplyBlock::ToolUse {
                id,
                name,
                input_json,
            } => {
                // Raw (possibly invalid) input cannot be an object here; hand it over as a
                // string so the client still sees exactly what was scripted.
                let input = serde_json::from_str::<Value>(input_json)
                    .unwrap_or_else(|_| Value::String(input_json.clone()));
                json!({"type": "tool_use", "id": id, "name": name, "input": input})
            }
            ReplyBlock::Thinking {
                thinking,
                signature,
            } => json!({"type": "thinking", "thinking": thinking, "signature": signature}),
            ReplyBlock::Redacted(data) => json!({"type": "redacted_thinking", "data": data}),
            ReplyBlock::Raw(block) => block.clone(),
        })
        .collect();
    let usage = &reply.usage;
    json!({
        "id": reply.id,
        "type": "message",
        "role": "assistant",
        "model": reply.model,
        "content": content,
        "stop_reason": reply.stop_reason,
        "stop_sequence": null,
        "usage": {
            "input_tokens": usage.input_tokens,
            "cache_creation_input_tokens": usage.cache_creation_input_tokens,
            "cache_read_input_tokens": usage.cache_read_input_tokens,
            "output_tokens": usage.output_tokens,
        },
    })
}

/// The API's error body.
pub(crate) fn error_body(error_type: &str, message: &str) -> Value {
    json!({"type": "error", "error": {"type": error_type, "message": message}})
}

/// A frame cut off mid-JSON, the way a broken proxy or server bug would deliver it.
pub(crate) fn malformed_frame() -> Bytes {
    Bytes::from_static(
        b"event: content_block_delta\ndata: {\"type\": \"content_block_delta\", \"ind\n\n",
    )
}

/// A non-streaming body cut off mid-JSON.
pub(crate) fn malformed_body() -> Bytes {
    Bytes::from_static(b"{\"id\": \"msg_broken\", \"type\": \"mess")
}
