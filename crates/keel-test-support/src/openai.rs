//! The OpenAI Chat Completions wire format: streamed chunks (with the reasoning and tool-call
//! deltas OpenAI-compatible servers send), the non-streaming completion, and the error body.

use bytes::Bytes;
use serde_json::{Value, json};

use crate::reply::{Reply, ReplyBlock, json_pieces, text_pieces, unix_seconds};

/// One SSE data line carrying a JSON chunk.
fn frame(data: &Value) -> Bytes {
    Bytes::from(format!("data: {data}\n\n"))
}

/// Anthropic stop reasons in OpenAI terms; unknown ones pass through so a script can send
/// e.g. `content_filter` verbatim.
fn finish_reason(stop_reason: &str) -> &str {
    match stop_reason {
        "tool_use" => "tool_calls",
        "end_turn" | "stop_sequence" => "stop",
        "max_tokens" => "length",
        other => other,
    }
}

/// OpenAI's `prompt_tokens` counts cached tokens too; `cached_tokens` says how many of them.
fn usage(reply: &Reply) -> Value {
    let u = &reply.usage;
    let prompt = u.input_tokens + u.cache_read_input_tokens + u.cache_creation_input_tokens;
    json!({
        "prompt_tokens": prompt,
        "completion_tokens": u.output_tokens,
        "total_tokens": prompt + u.output_tokens,
        "prompt_tokens_details": {"cached_tokens": u.cache_read_input_tokens},
    })
}

/// The chunk sequence for a streamed reply, ending with `[DONE]` (or with an error chunk).
pub(crate) fn stream_frames(reply: &Reply, include_usage: bool) -> Vec<Bytes> {
    let created = unix_seconds();
    let chunk = |choices: Value| {
        frame(&json!({
            "id": reply.id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": reply.model,
            "choices": choices,
        }))
    };
    let delta = |delta: Value| chunk(json!([{"index": 0, "delta": delta, "finish_reason": null}]));

    let mut frames = vec![delta(json!({"role": "assistant", "content": ""}))];
    let mut tool_index = 0usize;
    for block in &reply.blocks {
        match block {
            ReplyBlock::Text(text) => {
                for piece in text_pieces(text) {
                    frames.push(delta(json!({"content": piece})));
                }
            }
            ReplyBlock::Thinking { thinking, .. } => {
                for piece in text_pieces(thinking) {
                    frames.push(delta(json!({"reasoning_content": piece})));
                }
            }
            // OpenAI-compatible servers have nothing like redacted thinking.
            ReplyBlock::Redacted(_) => {}
            ReplyBlock::Raw(block) => {
                for piece in text_pieces(block["text"].as_str().unwrap_or_default()) {
                    frames.push(delta(json!({"content": piece})));
                }
            }
            ReplyBlock::ToolUse {
                id,
                name,
                input_json,
            } => {
                frames.push(delta(json!({"tool_calls": [{
                    "index": tool_index,
                    "id": id,
                    "type": "function",
                    "function": {"name": name, "arguments": ""},
                }]})));
                for piece in json_pieces(input_json) {
                    frames.push(delta(json!({"tool_calls": [{
                        "index": tool_index,
                        "function": {"arguments": piece},
                    }]})));
                }
                tool_index += 1;
            }
        }
    }
    if let Some(err) = &reply.stream_error {
        frames.push(frame(&error_body(&err.error_type, &err.message)));
        return frames;
    }
    frames.push(chunk(json!([{
        "index": 0,
        "delta": {},
        "finish_reason": finish_reason(&reply.stop_reason),
    }])));
    if include_usage {
        frames.push(frame(&json!({
            "id": reply.id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": reply.model,
            "choices": [],
            "usage": usage(reply),
        })));
    }
    frames.push(Bytes::from_static(b"data: [DONE]\n\n"));
    frames
}

/// The non-streaming answer: one `chat.completion` object.
pub(crate) fn completion(reply: &Reply) -> Value {
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut tool_calls = Vec::new();
    for block in &reply.blocks {
        match block {
            ReplyBlock::Text(t) => text.push_str(t),
            ReplyBlock::Thinking { thinking, .. } => reasoning.push_str(thinking),
            ReplyBlock::Redacted(_) => {}
            ReplyBlock::Raw(block) => text.push_str(block["text"].as_str().unwrap_or_default()),
            ReplyBlock::ToolUse {
                id,
                name,
                input_json,
            } => tool_calls.push(json!({
                "id": id,
                "type": "function",
                "function": {"name": name, "arguments": input_json},
            })),
        }
    }
    let mut message = json!({
        "role": "assistant",
        "content": if text.is_empty() && !tool_calls.is_empty() { Value::Null } else { Value::String(text) },
    });
    if !tool_calls.is_empty() {
        message["tool_calls"] = Value::Array(tool_calls);
    }
    if !reasoning.is_empty() {
        message["reasoning_content"] = Value::String(reasoning);
    }
    json!({
        "id": reply.id,
        "object": "chat.completion",
        "created": unix_seconds(),
        "model": reply.model,
        "choices": [{
            "index": 0,
            "message": message,
            "finish_reason": finish_reason(&reply.stop_reason),
        }],
        "usage": usage(reply),
    })
}

/// The API's error body.
pub(crate) fn error_body(error_type: &str, message: &str) -> Value {
    json!({"error": {"message": message, "type": error_type, "code": null}})
}

/// A chunk cut off mid-JSON.
pub(crate) fn malformed_frame() -> Bytes {
    Bytes::from_static(b"data: {\"id\": \"chatcmpl-broken\", \"object\": \"chat.comp\n\n")
}

/// A non-streaming body cut off mid-JSON.
pub(crate) fn malformed_body() -> Bytes {
    Bytes::from_static(b"{\"id\": \"chatcmpl-broken\", \"object\": \"chat.comp")
}
