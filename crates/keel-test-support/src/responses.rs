//! The OpenAI Responses API wire format (`POST …/responses`), which Codex CLI speaks: the
//! `response.*` SSE events for text and function calls, the non-streaming response object and
//! the error body. A tool call whose scripted input is a JSON string becomes a freeform
//! `custom_tool_call` (Codex's `apply_patch` takes the patch as raw text); any other input
//! becomes a `function_call` with the input as its `arguments`.

use bytes::Bytes;
use serde_json::{Value, json};

use crate::reply::{Reply, ReplyBlock, json_pieces, random_id, text_pieces, unix_seconds};

/// One SSE frame: `event: TYPE`, `data: JSON` (which repeats the type), blank line.
fn frame(data: &Value) -> Bytes {
    let name = data
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("message");
    Bytes::from(format!("event: {name}\ndata: {data}\n\n"))
}

/// The Responses API's usage object.
fn usage(reply: &Reply) -> Value {
    let u = &reply.usage;
    let input = u.input_tokens + u.cache_read_input_tokens + u.cache_creation_input_tokens;
    json!({
        "input_tokens": input,
        "input_tokens_details": {"cached_tokens": u.cache_read_input_tokens},
        "output_tokens": u.output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": input + u.output_tokens,
    })
}

/// One output item in its finished form, with the id it is streamed under.
struct Item {
    id: String,
    done: Value,
    kind: ItemKind,
}

enum ItemKind {
    Message(String),
    Reasoning(String),
    Function(String),
    Custom(String),
}

fn items(reply: &Reply) -> Vec<Item> {
    reply
        .blocks
        .iter()
        .filter_map(|block| match block {
            ReplyBlock::Text(text) => Some(message(text)),
            // Server tools have no Responses equivalent here; cited text is still text.
            ReplyBlock::Raw(block) => block["text"].as_str().map(message),
            ReplyBlock::Thinking { thinking, .. } => {
                let id = random_id("rs_");
                Some(Item {
                    done: json!({
                        "type": "reasoning", "id": id,
                        "summary": [{"type": "summary_text", "text": thinking}],
                    }),
                    id,
                    kind: ItemKind::Reasoning(thinking.clone()),
                })
            }
            ReplyBlock::Redacted(_) => None,
            ReplyBlock::ToolUse {
                id: call_id,
                name,
                input_json,
            } => {
                let id = random_id("fc_");
                Some(match serde_json::from_str::<Value>(input_json) {
                    Ok(Value::String(input)) => Item {
                        done: json!({
                            "type": "custom_tool_call", "id": id, "status": "completed",
                            "call_id": call_id, "name": name, "input": input,
                        }),
                        id,
                        kind: ItemKind::Custom(input),
                    },
                    _ => Item {
                        done: json!({
                            "type": "function_call", "id": id, "status": "completed",
                            "call_id": call_id, "name": name, "arguments": input_json,
                        }),
                        id,
                        kind: ItemKind::Function(input_json.clone()),
                    },
                })
            }
        })
        .collect()
}

/// An assistant message item with one text part.
fn message(text: &str) -> Item {
    let id = random_id("msg_");
    Item {
        done: json!({
            "type": "message", "id": id, "status": "completed", "role": "assistant",
            "content": [{"type": "output_text", "text": text, "annotations": []}],
        }),
        id,
        kind: ItemKind::Message(text.to_string()),
    }
}

/// The response object; `output` empty and `status` in progress until it completes.
fn response_object(reply: &Reply, created: u64, status: &str, output: Vec<Value>) -> Value {
    let mut response = json!({
        "id": reply.id,
        "object": "response",
        "created_at": created,
        "status": status,
        "model": reply.model,
        "output": output,
    });
    if status == "completed" || status == "incomplete" {
        response["usage"] = usage(reply);
    }
    if status == "incomplete" {
        response["incomplete_details"] = json!({"reason": "max_output_tokens"});
    }
    response
}

/// The event sequence for a streamed reply, ending with `response.completed` (or
/// `response.incomplete` for a `max_tokens` stop, or `response.failed` for a stream error).
pub(crate) fn stream_frames(reply: &Reply) -> Vec<Bytes> {
    let created = unix_seconds();
    let mut seq = 0u64;
    let mut next = |mut event: Value| {
        event["sequence_number"] = json!(seq);
        seq += 1;
        frame(&event)
    };
    let mut frames = vec![next(json!({
        "type": "response.created",
        "response": response_object(reply, created, "in_progress", Vec::new()),
    }))];
    let items = items(reply);
    for (index, item) in items.iter().enumerate() {
        let mut added = item.done.clone();
        added["status"] = json!("in_progress");
        match &item.kind {
            ItemKind::Message(_) => added["content"] = json!([]),
            ItemKind::Function(_) => added["arguments"] = json!(""),
            ItemKind::Custom(_) => added["input"] = json!(""),
            ItemKind::Reasoning(_) => added["summary"] = json!([]),
        }
        frames.push(next(json!({
            "type": "response.output_item.added", "output_index": index, "item": added,
        })));
        let id = &item.id;
        match &item.kind {
            ItemKind::Message(text) => {
                let part =
                    |text: &str| json!({"type": "output_text", "text": text, "annotations": []});
                frames.push(next(json!({
                    "type": "response.content_part.added", "item_id": id,
                    "output_index": index, "content_index": 0, "part": part(""),
                })));
                for piece in text_pieces(text) {
                    frames.push(next(json!({
                        "type": "response.output_text.delta", "item_id": id,
                        "output_index": index, "content_index": 0, "delta": piece,
                    })));
                }
                frames.push(next(json!({
                    "type": "response.output_text.done", "item_id": id,
                    "output_index": index, "content_index": 0, "text": text,
                })));
                frames.push(next(json!({
                    "type": "response.content_part.done", "item_id": id,
                    "output_index": index, "content_index": 0, "part": part(text),
                })));
            }
            ItemKind::Reasoning(text) => {
                for piece in text_pieces(text) {
                    frames.push(next(json!({
                        "type": "response.reasoning_summary_text.delta", "item_id": id,
                        "output_index": index, "summary_index": 0, "delta": piece,
                    })));
                }
            }
            ItemKind::Function(arguments) => {
                for piece in json_pieces(arguments) {
                    frames.push(next(json!({
                        "type": "response.function_call_arguments.delta", "item_id": id,
                        "output_index": index, "delta": piece,
                    })));
                }
                frames.push(next(json!({
                    "type": "response.function_call_arguments.done", "item_id": id,
                    "output_index": index, "arguments": arguments,
                })));
            }
            ItemKind::Custom(input) => {
                for piece in text_pieces(input) {
                    frames.push(next(json!({
                        "type": "response.custom_tool_call_input.delta", "item_id": id,
                        "output_index": index, "delta": piece,
                    })));
                }
                frames.push(next(json!({
                    "type": "response.custom_tool_call_input.done", "item_id": id,
                    "output_index": index, "input": input,
                })));
            }
        }
        frames.push(next(json!({
            "type": "response.output_item.done", "output_index": index, "item": item.done,
        })));
    }
    if let Some(err) = &reply.stream_error {
        let mut failed = response_object(reply, created, "failed", Vec::new());
        failed["error"] = json!({"code": err.error_type, "message": err.message});
        frames.push(next(json!({"type": "response.failed", "response": failed})));
        return frames;
    }
    let output: Vec<Value> = items.into_iter().map(|item| item.done).collect();
    let (kind, status) = if reply.stop_reason == "max_tokens" {
        ("response.incomplete", "incomplete")
    } else {
        ("response.completed", "completed")
    };
    frames.push(next(json!({
        "type": kind,
        "response": response_object(reply, created, status, output),
    })));
    frames
}

/// The non-streaming answer: the finished response object.
pub(crate) fn response(reply: &Reply) -> Value {
    let status = if reply.stop_reason == "max_tokens" {
        "incomplete"
    } else {
        "completed"
    };
    let output = items(reply).into_iter().map(|item| item.done).collect();
    response_object(reply, unix_seconds(), status, output)
}

/// An event cut off mid-JSON.
pub(crate) fn malformed_frame() -> Bytes {
    Bytes::from_static(b"event: response.output_text.delta\ndata: {\"type\": \"response.outp\n\n")
}

/// A non-streaming body cut off mid-JSON.
pub(crate) fn malformed_body() -> Bytes {
    Bytes::from_static(b"{\"id\": \"resp_broken\", \"object\": \"resp")
}
