//! Anthropic extras against the mock server: extended thinking (streamed, with signatures kept
//! and sent back verbatim), prompt-cache breakpoints, and cache token counts end to end.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{anthropic, complete, drain, request};
use keel_model::{ModelClient, Pricing, StreamEvent};
use keel_protocol::{ContentBlock, Message, Role, ToolResultContent};
use keel_test_support::{MockModelServer, Script, ScriptedBlock, ScriptedTurn, ScriptedUsage};
use serde_json::{Value, json};

fn breakpoints(body: &Value) -> Vec<String> {
    let mut found = Vec::new();
    let mut walk = |path: String, value: &Value| {
        if value.get("cache_control") == Some(&json!({"type": "ephemeral"})) {
            found.push(path);
        }
    };
    for (i, tool) in body["tools"].as_array().into_iter().flatten().enumerate() {
        walk(format!("tools[{i}]"), tool);
    }
    for (i, block) in body["system"].as_array().into_iter().flatten().enumerate() {
        walk(format!("system[{i}]"), block);
    }
    for (m, message) in body["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        for (b, block) in message["content"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            walk(format!("messages[{m}][{b}]"), block);
        }
    }
    found
}

fn thinking_conversation() -> Vec<Message> {
    vec![
        Message::user_text("fix the test"),
        Message {
            role: Role::Assistant,
            content: vec![
                ContentBlock::Thinking {
                    thinking: "add subtracts; read calc.py first.".into(),
                    signature: "EqQBCkYIARgCKkD-signature".into(),
                },
                ContentBlock::RedactedThinking {
                    data: "EmwKAhgBEgy-redacted".into(),
                },
                ContentBlock::Text {
                    text: "Reading calc.py.".into(),
                },
                ContentBlock::ToolUse {
                    id: "toolu_1".into(),
                    name: "Read".into(),
                    input: json!({"file_path": "calc.py"}),
                },
            ],
        },
        Message {
            role: Role::User,
            content: vec![
                ContentBlock::ToolResult {
                    tool_use_id: "toolu_1".into(),
                    content: ToolResultContent::Text(
                        "1\tdef add(a, b):\n2\t    return a - b".into(),
                    ),
                    is_error: false,
                },
                ContentBlock::Text {
                    text: String::new(),
                },
            ],
        },
    ]
}

#[tokio::test]
async fn thinking_is_requested_streamed_and_its_signature_kept() {
    let turn = ScriptedTurn {
        content: vec![
            ScriptedBlock::Thinking {
                thinking: "The test expects 5 from add(2, 3), so add must add.".into(),
                signature: Some("sig-from-the-api".into()),
            },
            ScriptedBlock::Text {
                text: "add() subtracts; fixing it.".into(),
            },
        ],
        ..ScriptedTurn::default()
    };
    let server = MockModelServer::start(Script::new(vec![turn]))
        .await
        .unwrap();
    let client = anthropic(&server);
    let mut req = request("claude-sonnet-4-5");
    req.thinking = Some(8_000);
    let (events, error) = drain(client.stream(&req).await.unwrap()).await;
    assert!(error.is_none());
    let thinking_deltas = events
        .iter()
        .filter(|e| matches!(e, StreamEvent::ThinkingDelta { index: 0, .. }))
        .count();
    assert!(
        thinking_deltas >= 2,
        "thinking streams as events: {events:?}"
    );
    assert!(events.contains(&StreamEvent::SignatureDelta {
        index: 0,
        signature: "sig-from-the-api".into()
    }));
    let message = common::assemble(&events);
    assert_eq!(
        message.content[0],
        ContentBlock::Thinking {
            thinking: "The test expects 5 from add(2, 3), so add must add.".into(),
            signature: "sig-from-the-api".into(),
        }
    );

    let sent = &server.requests()[0];
    assert_eq!(
        sent.body["thinking"],
        json!({"type": "enabled", "budget_tokens": 8000})
    );
    assert_eq!(
        sent.body["max_tokens"], 12_096,
        "max_tokens raised above the budget"
    );
    assert!(
        sent.body.get("temperature").is_none(),
        "thinking forbids temperature"
    );
    assert_eq!(
        sent.headers["anthropic-beta"],
        "interleaved-thinking-2025-05-14"
    );
}

#[tokio::test]
async fn without_thinking_or_caching_the_body_carries_neither() {
    let server = MockModelServer::start(Script::new(vec![ScriptedTurn::text("ok")]))
        .await
        .unwrap();
    complete(&anthropic(&server), &request("claude-sonnet-4-5")).await;
    let sent = &server.requests()[0];
    assert!(sent.body.get("thinking").is_none());
    assert_eq!(sent.body["max_tokens"], 4096);
    assert!(breakpoints(&sent.body).is_empty());
    assert!(!sent.headers.contains_key("anthropic-beta"));
}

#[tokio::test]
async fn a_thinking_conversation_is_sent_back_verbatim() {
    let server = MockModelServer::start(Script::new(vec![ScriptedTurn::text("Fixed.")]))
        .await
        .unwrap();
    let mut req = request("claude-sonnet-4-5");
    req.messages = thinking_conversation();
    req.thinking = Some(2_000);
    req.cache = true;
    complete(&anthropic(&server), &req).await;
    let body = &server.requests()[0].body;
    // Thinking first, signature and redacted data untouched, before the tool call it led to.
    assert_eq!(
        body["messages"][1],
        json!({"role": "assistant", "content": [
            {"type": "thinking", "thinking": "add subtracts; read calc.py first.", "signature": "EqQBCkYIARgCKkD-signature"},
            {"type": "redacted_thinking", "data": "EmwKAhgBEgy-redacted"},
            {"type": "text", "text": "Reading calc.py."},
            {"type": "tool_use", "id": "toolu_1", "name": "Read", "input": {"file_path": "calc.py"}},
        ]})
    );
}

#[tokio::test]
async fn cache_breakpoints_mark_tools_system_and_the_newest_user_messages() {
    let server = MockModelServer::start(Script::new(vec![ScriptedTurn::text("ok")]))
        .await
        .unwrap();
    let mut req = request("claude-sonnet-4-5");
    req.system = vec![
        "You are keel.".into(),
        "Project notes.".into(),
        String::new(),
    ];
    req.messages = thinking_conversation();
    req.cache = true;
    complete(&anthropic(&server), &req).await;
    let body = &server.requests()[0].body;
    assert_eq!(
        breakpoints(body),
        [
            "tools[1]",       // the last tool: caches the tool list
            "system[1]",      // the last non-empty system block: tools + system
            "messages[0][0]", // the previous user message
            "messages[2][0]", // the newest user message: its empty text is skipped
        ]
    );
    // At most four, never on thinking.
    assert_eq!(body.to_string().matches("cache_control").count(), 4);
}

#[tokio::test]
async fn cache_token_counts_arrive_and_are_priced() {
    let turn = ScriptedTurn {
        usage: Some(ScriptedUsage {
            input_tokens: 50,
            output_tokens: 200,
            cache_creation_input_tokens: 4_000,
            cache_read_input_tokens: 12_000,
        }),
        ..ScriptedTurn::text("cached")
    };
    let server = MockModelServer::start(Script::new(vec![turn]))
        .await
        .unwrap();
    let mut req = request("claude-sonnet-4-5");
    req.cache = true;
    let message = complete(&anthropic(&server), &req).await;
    assert_eq!(message.usage.cache_creation_input_tokens, 4_000);
    assert_eq!(message.usage.cache_read_input_tokens, 12_000);
    assert_eq!(message.usage.input_tokens, 50);
    assert_eq!(message.usage.output_tokens, 200);
    // 50*3 + 200*15 + 4000*3.75 + 12000*0.30 per million.
    let cost = Pricing::builtin()
        .cost("claude-sonnet-4-5", &message.usage)
        .unwrap();
    assert!((cost - 0.02175).abs() < 1e-9, "{cost}");
}

/// A web search as the API answers it: the server tool's call and results, then cited text.
fn search_blocks() -> (Value, Value, Value) {
    (
        json!({"type": "server_tool_use", "id": "srvtoolu_01", "name": "web_search", "input": {"query": "rust 2024 edition"}}),
        json!({"type": "web_search_tool_result", "tool_use_id": "srvtoolu_01", "content": [
            {"type": "web_search_result", "title": "Rust 2024", "url": "https://doc.rust-lang.org/edition-guide/rust-2024/", "encrypted_content": "EqgfCioIARgBIiQ3", "page_age": "February 20, 2025"}
        ]}),
        json!({"type": "text", "text": "The 2024 edition shipped with Rust 1.85.", "citations": [
            {"type": "web_search_result_location", "url": "https://doc.rust-lang.org/edition-guide/rust-2024/", "title": "Rust 2024", "encrypted_index": "Eo8BCioIAhgBIiQy", "cited_text": "The Rust 2024 Edition is now stable"}
        ]}),
    )
}

#[tokio::test]
async fn server_tools_are_sent_and_their_blocks_round_trip_unchanged() {
    let (call, results, cited) = search_blocks();
    let server = MockModelServer::start(Script::new(vec![
        ScriptedTurn {
            content: vec![
                ScriptedBlock::Text {
                    text: "Searching.".into(),
                },
                ScriptedBlock::Raw {
                    block: call.clone(),
                },
                ScriptedBlock::Raw {
                    block: results.clone(),
                },
                ScriptedBlock::Raw {
                    block: cited.clone(),
                },
            ],
            stop_reason: Some("pause_turn".into()),
            ..ScriptedTurn::default()
        },
        ScriptedTurn::text("Done."),
    ]))
    .await
    .unwrap();
    let client = anthropic(&server);
    let mut req = request("claude-sonnet-4-5");
    let web_search = json!({
        "type": "web_search_20250305", "name": "web_search", "max_uses": 5,
        "allowed_domains": ["rust-lang.org"]
    });
    req.server_tools = vec![web_search.clone()];
    let message = complete(&client, &req).await;
    assert_eq!(
        message.content,
        vec![
            ContentBlock::Text {
                text: "Searching.".into()
            },
            ContentBlock::Other(call.clone()),
            ContentBlock::Other(results.clone()),
            ContentBlock::Other(cited.clone()),
        ]
    );
    assert_eq!(
        message.text(),
        "Searching.The 2024 edition shipped with Rust 1.85."
    );

    // The paused turn goes back as it came, and the API picks up from there.
    req.messages.push(message.to_message());
    let done = complete(&client, &req).await;
    assert_eq!(done.text(), "Done.");

    let requests = server.requests();
    let first = &requests[0].body;
    let tools = first["tools"].as_array().unwrap();
    assert_eq!(tools.len(), 3, "two client tools, then the server tool");
    assert_eq!(tools[0]["name"], "Read");
    let mut sent_server_tool = tools[2].clone();
    sent_server_tool
        .as_object_mut()
        .unwrap()
        .remove("cache_control");
    assert_eq!(sent_server_tool, web_search);
    let second = &requests[1].body;
    let replayed = &second["messages"][1]["content"];
    assert_eq!(replayed[1], call);
    assert_eq!(replayed[2], results);
    assert_eq!(replayed[3], cited);
}
