//! Rewinding the conversation (`Op::Rewind`) and live tool output (`Event::ToolProgress`),
//! against the mock model server, the real Anthropic client and the real Bash tool.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use keel_engine::{Approver, Session, SessionConfig, SessionSetup};
use keel_model::{AnthropicAuth, AnthropicClient, AnthropicConfig};
use keel_policy::{PermissionMode, Policy};
use keel_protocol::{Event, NoticeLevel, Op};
use keel_session::{Totals, Transcript, TranscriptWriter};
use keel_test_support::{MockModelServer, Script, ScriptedTurn};
use keel_tools::{ToolContext, ToolRegistry};
use serde_json::json;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Serves `ops` in a session with the built-in tools (all allowed) and returns its events.
async fn serve(
    server: &MockModelServer,
    dir: &std::path::Path,
    transcript: Option<TranscriptWriter>,
    ops: Vec<Op>,
) -> Vec<Event> {
    let client = AnthropicClient::new(AnthropicConfig::new(
        server.url(),
        AnthropicAuth::ApiKey("k".into()),
    ))
    .unwrap();
    let mut config = SessionConfig::new("claude-sonnet-4-5", vec![]);
    config.max_tokens = 1000;
    let mut tools = ToolRegistry::new();
    for tool in keel_tools::builtin::all() {
        tools.register(tool).unwrap();
    }
    let session = Session::new(SessionSetup {
        id: keel_protocol::SessionId::new(),
        config,
        client: Arc::new(client),
        tools,
        tool_ctx: ToolContext::new(dir, dir.join("spill"), CancellationToken::new()),
        policy: Policy::new(PermissionMode::BypassPermissions, dir, dir),
        approver: Approver::Unattended,
        local_settings: None,
        history: vec![],
        transcript,
        hooks: None,
        mcp: None,
        context: Default::default(),
    });
    let (ops_tx, ops_rx) = mpsc::unbounded_channel();
    let (events_tx, mut events_rx) = mpsc::unbounded_channel();
    let engine = tokio::spawn(session.serve(ops_rx, events_tx));
    for op in ops {
        ops_tx.send(op).unwrap();
    }
    drop(ops_tx);
    let mut events = Vec::new();
    while let Some(event) = tokio::time::timeout(Duration::from_secs(20), events_rx.recv())
        .await
        .expect("the engine keeps reporting")
    {
        events.push(event);
    }
    engine.await.unwrap();
    events
}

fn prompt(text: &str) -> Op {
    Op::UserInput { text: text.into() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rewind_drops_the_prompt_and_what_followed_and_resume_sees_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.jsonl");
    let server = MockModelServer::start(Script::new(vec![
        ScriptedTurn::text("one done"),
        ScriptedTurn::text("two done"),
        ScriptedTurn::text("three done"),
    ]))
    .await
    .unwrap();
    let writer = TranscriptWriter::open(&path, Totals::default()).unwrap();
    let events = serve(
        &server,
        dir.path(),
        Some(writer),
        vec![
            prompt("one"),
            prompt("two"),
            Op::Rewind { user_turns_back: 1 },
            prompt("three"),
        ],
    )
    .await;
    let rewound = events
        .iter()
        .find_map(|e| match e {
            Event::Rewound {
                user_turns_back,
                prompt,
                messages,
            } => Some((*user_turns_back, prompt.clone(), messages.len())),
            _ => None,
        })
        .expect("a Rewound event");
    // "two" and its answer are gone; "one" and its answer stay.
    assert_eq!(rewound, (1, "two".to_string(), 2));
    let sent = &server.requests()[2].body["messages"];
    let texts: Vec<&str> = sent
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"][0]["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["one", "one done", "three"]);
    // A resumed session continues from the same conversation.
    let replayed = Transcript::read(&path).unwrap().conversation().messages();
    let replayed: Vec<String> = replayed
        .iter()
        .map(|m| m.content[0].text().unwrap().to_string())
        .collect();
    assert_eq!(replayed, ["one", "one done", "three", "three done"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rewinding_further_than_the_conversation_goes_is_refused_with_a_notice() {
    let dir = tempfile::tempdir().unwrap();
    let server = MockModelServer::start(Script::new(vec![ScriptedTurn::text("one done")]))
        .await
        .unwrap();
    let events = serve(
        &server,
        dir.path(),
        None,
        vec![prompt("one"), Op::Rewind { user_turns_back: 3 }],
    )
    .await;
    assert!(!events.iter().any(|e| matches!(e, Event::Rewound { .. })));
    assert!(events.iter().any(|e| matches!(
        e,
        Event::Notice { level: NoticeLevel::Warning, message } if message.contains("cannot rewind 3")
    )));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_bash_command_reports_its_output_before_it_finishes() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("go");
    // The command prints, then waits for a file the test creates only after it saw the
    // output as progress: the output must arrive while the command still runs.
    let command = format!(
        "echo first-line; sleep 0.02; echo second-line; while [ ! -e '{}' ]; do sleep 0.05; done; echo last-line",
        marker.display()
    );
    let server = MockModelServer::start(Script::new(vec![
        ScriptedTurn::tool_use("Bash", json!({"command": command})),
        ScriptedTurn::text("ran it"),
    ]))
    .await
    .unwrap();
    let client = AnthropicClient::new(AnthropicConfig::new(
        server.url(),
        AnthropicAuth::ApiKey("k".into()),
    ))
    .unwrap();
    let mut tools = ToolRegistry::new();
    for tool in keel_tools::builtin::all() {
        tools.register(tool).unwrap();
    }
    let session = Session::new(SessionSetup {
        id: keel_protocol::SessionId::new(),
        config: SessionConfig::new("claude-sonnet-4-5", vec![]),
        client: Arc::new(client),
        tools,
        tool_ctx: ToolContext::new(
            dir.path(),
            dir.path().join("spill"),
            CancellationToken::new(),
        ),
        policy: Policy::new(PermissionMode::BypassPermissions, dir.path(), dir.path()),
        approver: Approver::Unattended,
        local_settings: None,
        history: vec![],
        transcript: None,
        hooks: None,
        mcp: None,
        context: Default::default(),
    });
    let (ops_tx, ops_rx) = mpsc::unbounded_channel();
    let (events_tx, mut events_rx) = mpsc::unbounded_channel();
    let engine = tokio::spawn(session.serve(ops_rx, events_tx));
    ops_tx.send(prompt("run it")).unwrap();
    drop(ops_tx);
    let mut progress = String::new();
    let mut finished = false;
    while let Some(event) = tokio::time::timeout(Duration::from_secs(20), events_rx.recv())
        .await
        .expect("the engine keeps reporting")
    {
        match event {
            Event::ToolProgress { text, .. } => {
                progress.push_str(&text);
                // The second line comes within the throttle's interval; held back, it must
                // still arrive while the command waits.
                if progress.contains("second-line") {
                    std::fs::write(&marker, "").unwrap();
                }
            }
            Event::ToolResult { content, .. } => {
                assert!(
                    progress.contains("first-line") && progress.contains("second-line"),
                    "no progress before the result"
                );
                assert_eq!(content.text(), "first-line\nsecond-line\nlast-line");
            }
            Event::RunFinished { .. } => finished = true,
            _ => {}
        }
    }
    engine.await.unwrap();
    assert!(finished);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_sent_with_a_prompt_go_into_its_user_message_after_the_text() {
    let dir = tempfile::tempdir().unwrap();
    let server = MockModelServer::start(Script::new(vec![ScriptedTurn::text("a red dot")]))
        .await
        .unwrap();
    let events = serve(
        &server,
        dir.path(),
        None,
        vec![Op::UserInputWithImages {
            text: "what is in [Image #1]?".into(),
            images: vec![keel_protocol::ImageInput {
                media_type: "image/png".into(),
                data: "iVBORw0KGgo=".into(),
            }],
        }],
    )
    .await;
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::RunFinished { .. }))
    );
    let content = &server.requests()[0].body["messages"][0]["content"];
    assert_eq!(content[0]["text"], "what is in [Image #1]?");
    assert_eq!(content[1]["type"], "image");
    assert_eq!(
        content[1]["source"],
        json!({"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="})
    );
}
