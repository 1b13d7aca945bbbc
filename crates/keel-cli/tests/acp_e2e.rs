//! End-to-end: an ACP client built on the official `agent-client-protocol` crate spawns the real
//! `keel acp` and speaks ACP over its stdio, against the mock model server: a session whose
//! model edits a file after the client grants permission (with the diff shown), cancellation,
//! loading a stored session, and MCP servers passed in `session/new`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agent_client_protocol::schema::ProtocolVersion;
use agent_client_protocol::v1::schema::{
    CancelNotification, ContentBlock, InitializeRequest, LoadSessionRequest, McpServer,
    McpServerStdio, NewSessionRequest, PermissionOptionKind, PromptRequest,
    RequestPermissionOutcome, RequestPermissionRequest, RequestPermissionResponse,
    SelectedPermissionOutcome, SessionNotification, StopReason, TextContent,
};
use agent_client_protocol::v1::{ConnectionTo, Responder};
use agent_client_protocol::{Agent, ByteStreams, Client};
use common::Harness;
use keel_test_support::{ScriptedBlock, ScriptedTurn};
use serde_json::{Value, json};
use tokio_util::compat::{TokioAsyncReadCompatExt, TokioAsyncWriteCompatExt};

/// What the client answers to `session/request_permission`.
#[derive(Clone, Copy)]
enum Answer {
    Option(&'static str),
    /// Send `session/cancel` first, then answer `cancelled`, as the protocol asks.
    CancelTurn,
}

/// Everything the agent sent, as JSON, in arrival order.
#[derive(Default)]
struct Seen {
    updates: Vec<Value>,
    permissions: Vec<Value>,
}

fn text(prompt: &str) -> Vec<ContentBlock> {
    vec![ContentBlock::Text(TextContent::new(prompt))]
}

/// Runs `keel acp` in the harness's project and a client session against it; `body` drives
/// the connection. Returns what the agent sent and keel's stderr.
async fn with_agent<F>(h: &Harness, answer: Answer, body: F) -> (Arc<Mutex<Seen>>, String)
where
    F: AsyncFnOnce(ConnectionTo<Agent>) -> Result<(), agent_client_protocol::Error>,
{
    let mut child = h
        .keel()
        .arg("acp")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("keel acp starts");
    let transport = ByteStreams::new(
        child.stdin.take().unwrap().compat_write(),
        child.stdout.take().unwrap().compat(),
    );
    let mut stderr = child.stderr.take().unwrap();
    let stderr = tokio::spawn(async move {
        let mut text = String::new();
        let _ = tokio::io::AsyncReadExt::read_to_string(&mut stderr, &mut text).await;
        text
    });
    let seen = Arc::new(Mutex::new(Seen::default()));
    let (on_update, on_permission) = (seen.clone(), seen.clone());
    let client = Client
        .v1()
        .name("keel-acp-test")
        .on_receive_notification(
            async move |notification: SessionNotification, _cx: ConnectionTo<Agent>| {
                on_update
                    .lock()
                    .unwrap()
                    .updates
                    .push(serde_json::to_value(&notification.update).unwrap());
                Ok(())
            },
            agent_client_protocol::on_receive_notification!(),
        )
        .on_receive_request(
            async move |request: RequestPermissionRequest,
                        responder: Responder<RequestPermissionResponse>,
                        cx: ConnectionTo<Agent>| {
                on_permission
                    .lock()
                    .unwrap()
                    .permissions
                    .push(serde_json::to_value(&request).unwrap());
                let outcome = match answer {
                    Answer::Option(id) => {
                        RequestPermissionOutcome::Selected(SelectedPermissionOutcome::new(id))
                    }
                    Answer::CancelTurn => {
                        cx.send_notification(CancelNotification::new(request.session_id.clone()))?;
                        RequestPermissionOutcome::Cancelled
                    }
                };
                responder.respond(RequestPermissionResponse::new(outcome))
            },
            agent_client_protocol::on_receive_request!(),
        )
        .connect_with(transport, async move |cx: ConnectionTo<Agent>| {
            let init = cx
                .send_request(InitializeRequest::new(ProtocolVersion::V1))
                .block_task()
                .await?;
            assert_eq!(init.protocol_version, ProtocolVersion::V1);
            assert!(init.agent_capabilities.load_session);
            body(cx).await
        });
    tokio::time::timeout(Duration::from_secs(60), client)
        .await
        .expect("the ACP session finishes within 60 s")
        .expect("the ACP connection works");
    // Closing stdin ends keel acp; it closes its transcripts and exits cleanly.
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("keel acp exits after stdin closes")
        .unwrap();
    let stderr = stderr.await.unwrap();
    assert!(status.success(), "keel acp failed: {stderr}");
    (seen, stderr)
}

fn read_turn(path: &Path) -> ScriptedTurn {
    ScriptedTurn::tool_use("Read", json!({"file_path": path}))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_allows_an_edit_and_sees_its_diff() {
    let h = Harness::new(vec![]).await;
    h.ws.write("notes.md", "status: draft\n");
    let notes = h.path("notes.md");
    h.server.push_turn(read_turn(&notes));
    h.server.push_turn(ScriptedTurn {
        content: vec![
            ScriptedBlock::Text {
                text: "Marking it final.".into(),
            },
            ScriptedBlock::ToolUse {
                id: Some("toolu_edit".into()),
                name: "Edit".into(),
                input: json!({"file_path": notes, "old_string": "draft", "new_string": "final"}),
            },
        ],
        ..ScriptedTurn::default()
    });
    h.server
        .push_turn(ScriptedTurn::text("The notes now say final."));
    let project = h.project().to_path_buf();
    let (seen, _) = with_agent(&h, Answer::Option("allow_once"), async |cx| {
        let session = cx
            .send_request(NewSessionRequest::new(project))
            .block_task()
            .await?;
        let modes = session.modes.expect("modes are offered");
        assert_eq!(&*modes.current_mode_id.0, "default");
        let done = cx
            .send_request(PromptRequest::new(
                session.session_id.clone(),
                text("finalise the notes"),
            ))
            .block_task()
            .await?;
        assert_eq!(done.stop_reason, StopReason::EndTurn);
        Ok(())
    })
    .await;
    assert_eq!(std::fs::read_to_string(&notes).unwrap(), "status: final\n");

    let seen = seen.lock().unwrap();
    // One question, for the Edit (Read needs none), showing the change it would make.
    assert_eq!(seen.permissions.len(), 1, "{:?}", seen.permissions);
    let asked = &seen.permissions[0];
    assert_eq!(asked["toolCall"]["toolCallId"], "toolu_edit");
    assert_eq!(asked["toolCall"]["kind"], "edit");
    assert_eq!(
        asked["toolCall"]["content"][0],
        json!({"type": "diff", "path": notes, "oldText": "draft", "newText": "final"})
    );
    let kinds: Vec<&str> = asked["options"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["allow_once", "allow_always", "reject_once"]);
    let _ = PermissionOptionKind::AllowOnce;

    // The run as the client saw it: text chunks, the tool calls and their progress.
    let updates = &seen.updates;
    let text: String = updates
        .iter()
        .filter(|u| u["sessionUpdate"] == "agent_message_chunk")
        .map(|u| u["content"]["text"].as_str().unwrap())
        .collect();
    assert_eq!(text, "Marking it final.The notes now say final.");
    let edit: Vec<&Value> = updates
        .iter()
        .filter(|u| u["toolCallId"] == "toolu_edit")
        .collect();
    let shape: Vec<(&str, &str)> = edit
        .iter()
        .map(|u| {
            (
                u["sessionUpdate"].as_str().unwrap(),
                // ACP leaves out the default status, pending.
                u["status"].as_str().unwrap_or("pending"),
            )
        })
        .collect();
    assert_eq!(
        shape,
        [
            ("tool_call", "pending"),
            ("tool_call_update", "in_progress"),
            ("tool_call_update", "completed"),
        ]
    );
    assert_eq!(edit[0]["title"], format!("Edit {}", notes.display()));
    assert_eq!(edit[0]["locations"][0]["path"], json!(notes));
    assert_eq!(edit[2]["content"][0]["type"], "diff");
    assert_eq!(edit[2]["content"][0]["newText"], "final");
    let read = updates
        .iter()
        .find(|u| u["sessionUpdate"] == "tool_call" && u["kind"] == "read")
        .expect("the Read is shown");
    assert_eq!(read["rawInput"]["file_path"], json!(notes));
    assert!(updates.iter().any(|u| u["sessionUpdate"] == "usage_update"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_ends_the_prompt_as_cancelled_and_the_session_goes_on() {
    let h = Harness::new(vec![]).await;
    h.ws.write("notes.md", "status: draft\n");
    let notes = h.path("notes.md");
    // A model answer that would take longer than the test: only session/cancel ends it.
    let mut slow = ScriptedTurn::text("too late");
    slow.delay_ms = Some(60_000);
    h.server.push_turn(slow);
    h.server.push_turn(ScriptedTurn::text("Back again."));
    // The second prompt's Edit waits for permission; the client cancels instead of answering.
    h.server.push_turn(read_turn(&notes));
    h.server.push_turn(ScriptedTurn::tool_use(
        "Edit",
        json!({"file_path": notes, "old_string": "draft", "new_string": "final"}),
    ));
    let project = h.project().to_path_buf();
    let server = &h.server;
    let (seen, _) = with_agent(&h, Answer::CancelTurn, async |cx| {
        let session = cx
            .send_request(NewSessionRequest::new(project))
            .block_task()
            .await?;
        let id = session.session_id.clone();
        let pending = cx.send_request(PromptRequest::new(id.clone(), text("take your time")));
        server
            .wait_for_requests(1, Duration::from_secs(20))
            .await
            .unwrap();
        cx.send_notification(CancelNotification::new(id.clone()))?;
        let cancelled = pending.block_task().await?;
        assert_eq!(cancelled.stop_reason, StopReason::Cancelled);

        let again = cx
            .send_request(PromptRequest::new(id.clone(), text("are you there?")))
            .block_task()
            .await?;
        assert_eq!(again.stop_reason, StopReason::EndTurn);

        let refused = cx
            .send_request(PromptRequest::new(id.clone(), text("finalise the notes")))
            .block_task()
            .await?;
        assert_eq!(refused.stop_reason, StopReason::Cancelled);
        Ok(())
    })
    .await;
    assert_eq!(
        std::fs::read_to_string(&notes).unwrap(),
        "status: draft\n",
        "a cancelled permission request runs nothing"
    );
    let seen = seen.lock().unwrap();
    assert_eq!(seen.permissions.len(), 1);
    let text: String = seen
        .updates
        .iter()
        .filter(|u| u["sessionUpdate"] == "agent_message_chunk")
        .map(|u| u["content"]["text"].as_str().unwrap())
        .collect();
    assert_eq!(text, "Back again.");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_session_loads_with_its_history_replayed() {
    let h = Harness::new(vec![
        ScriptedTurn::text("I will remember kumquat."),
        ScriptedTurn::text("It was kumquat."),
    ])
    .await;
    let project = h.project().to_path_buf();
    let id = Arc::new(Mutex::new(String::new()));
    let keep = id.clone();
    let first_project = project.clone();
    with_agent(&h, Answer::Option("allow_once"), async |cx| {
        let session = cx
            .send_request(NewSessionRequest::new(first_project))
            .block_task()
            .await?;
        cx.send_request(PromptRequest::new(
            session.session_id.clone(),
            text("remember the word kumquat"),
        ))
        .block_task()
        .await?;
        *keep.lock().unwrap() = session.session_id.0.to_string();
        Ok(())
    })
    .await;

    let id = id.lock().unwrap().clone();
    let load_id = id.clone();
    let (seen, _) = with_agent(&h, Answer::Option("allow_once"), async |cx| {
        cx.send_request(LoadSessionRequest::new(load_id.clone(), project))
            .block_task()
            .await?;
        let done = cx
            .send_request(PromptRequest::new(load_id, text("which word was it?")))
            .block_task()
            .await?;
        assert_eq!(done.stop_reason, StopReason::EndTurn);
        Ok(())
    })
    .await;
    let seen = seen.lock().unwrap();
    // The history came first, before anything of the new prompt.
    let first: Vec<(&str, &str)> = seen
        .updates
        .iter()
        .take(2)
        .map(|u| {
            (
                u["sessionUpdate"].as_str().unwrap(),
                u["content"]["text"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        first,
        [
            ("user_message_chunk", "remember the word kumquat"),
            ("agent_message_chunk", "I will remember kumquat."),
        ]
    );
    let sent = h.requests().last().unwrap().body["messages"].to_string();
    assert!(sent.contains("remember the word kumquat"), "{sent}");
    assert!(sent.contains("I will remember kumquat."), "{sent}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_servers_from_session_new_give_the_model_their_tools() {
    let h = Harness::new(vec![ScriptedTurn::text("I see the tools.")]).await;
    let project = h.project().to_path_buf();
    let keel = env!("CARGO_BIN_EXE_keel");
    with_agent(&h, Answer::Option("allow_once"), async |cx| {
        let server = McpServer::Stdio(
            McpServerStdio::new("workspace", keel).args(vec!["mcp".into(), "serve".into()]),
        );
        let session = cx
            .send_request(NewSessionRequest::new(project).mcp_servers(vec![server]))
            .block_task()
            .await?;
        cx.send_request(PromptRequest::new(
            session.session_id.clone(),
            text("what tools do you have?"),
        ))
        .block_task()
        .await?;
        Ok(())
    })
    .await;
    let requests = h.requests();
    let tools: Vec<&str> = requests[0].body["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(tools.contains(&"mcp__workspace__Read"), "{tools:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_protocol_errors_not_a_crash() {
    let h = Harness::new(vec![ScriptedTurn::text("still here")]).await;
    let project = h.project().to_path_buf();
    let (_, stderr) = with_agent(&h, Answer::Option("allow_once"), async |cx| {
        let relative = cx
            .send_request(NewSessionRequest::new("relative/dir"))
            .block_task()
            .await
            .expect_err("a relative cwd is refused");
        assert!(relative.message.contains("absolute"), "{relative:?}");
        let unknown = cx
            .send_request(PromptRequest::new(
                "4b1d6a4e-0000-4000-8000-000000000000",
                text("hello?"),
            ))
            .block_task()
            .await
            .expect_err("an unknown session is refused");
        assert!(unknown.message.contains("unknown session"), "{unknown:?}");
        let missing = cx
            .send_request(LoadSessionRequest::new(
                "4b1d6a4e-0000-4000-8000-000000000000",
                project.clone(),
            ))
            .block_task()
            .await
            .expect_err("a session that was never stored cannot be loaded");
        assert!(missing.message.contains("no session"), "{missing:?}");
        // The agent still works.
        let session = cx
            .send_request(NewSessionRequest::new(project))
            .block_task()
            .await?;
        let done = cx
            .send_request(PromptRequest::new(session.session_id, text("still there?")))
            .block_task()
            .await?;
        assert_eq!(done.stop_reason, StopReason::EndTurn);
        Ok(())
    })
    .await;
    assert!(!stderr.contains("panicked"), "{stderr}");
}
