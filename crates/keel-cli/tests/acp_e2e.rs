//! End-to-end: an ACP client built on the official `agent-client-protocol` crate spawns the real
//! `keel acp` and speaks ACP over its stdio, against the mock model server: a session whose
//! model edits a file after the client grants permission (with the diff shown), cancellation,
//! loading a stored session, and MCP servers passed in `session/new`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agent_client_protocol::schema::ProtocolVersion;
use agent_client_protocol::v1::schema::{
    CancelNotification, ClientCapabilities, ContentBlock, FileSystemCapabilities,
    InitializeRequest, LoadSessionRequest, McpServer, McpServerStdio, NewSessionRequest,
    PromptRequest, ReadTextFileRequest, ReadTextFileResponse, RequestPermissionOutcome,
    RequestPermissionRequest, RequestPermissionResponse, SelectedPermissionOutcome,
    SessionNotification, StopReason, TextContent, WriteTextFileRequest, WriteTextFileResponse,
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
    /// Files the agent read through the client (`fs/read_text_file`).
    reads: Vec<String>,
    /// Files the agent wrote through the client, with their text.
    writes: Vec<(String, String)>,
}

/// An editor's open buffers: path -> text, which may differ from the disk (unsaved changes).
type Buffers = Arc<Mutex<HashMap<String, String>>>;

fn text(prompt: &str) -> Vec<ContentBlock> {
    vec![ContentBlock::Text(TextContent::new(prompt))]
}

/// Runs `keel acp` in the harness's project and a client session against it; `body` drives
/// the connection. Returns what the agent sent and keel's stderr.
async fn with_agent<F>(h: &Harness, answer: Answer, body: F) -> (Arc<Mutex<Seen>>, String)
where
    F: AsyncFnOnce(ConnectionTo<Agent>) -> Result<(), agent_client_protocol::Error>,
{
    with_editor(h, answer, None, body).await
}

/// Like `with_agent`, with a client that offers file access backed by `buffers` (reads fall
/// back to the disk; writes update the buffer and save it to disk, as an editor does).
async fn with_editor<F>(
    h: &Harness,
    answer: Answer,
    buffers: Option<Buffers>,
    body: F,
) -> (Arc<Mutex<Seen>>, String)
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
    let (on_update, on_permission, on_read, on_write) =
        (seen.clone(), seen.clone(), seen.clone(), seen.clone());
    let offers_files = buffers.is_some();
    let buffers = buffers.unwrap_or_default();
    let (read_buffers, write_buffers) = (buffers.clone(), buffers);
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
        .on_receive_request(
            async move |request: ReadTextFileRequest,
                        responder: Responder<ReadTextFileResponse>,
                        _cx: ConnectionTo<Agent>| {
                let path = request.path.display().to_string();
                on_read.lock().unwrap().reads.push(path.clone());
                let buffered = read_buffers.lock().unwrap().get(&path).cloned();
                let text = buffered
                    .or_else(|| std::fs::read_to_string(&request.path).ok())
                    .unwrap_or_default();
                responder.respond(ReadTextFileResponse::new(text))
            },
            agent_client_protocol::on_receive_request!(),
        )
        .on_receive_request(
            async move |request: WriteTextFileRequest,
                        responder: Responder<WriteTextFileResponse>,
                        _cx: ConnectionTo<Agent>| {
                let path = request.path.display().to_string();
                on_write
                    .lock()
                    .unwrap()
                    .writes
                    .push((path.clone(), request.content.clone()));
                write_buffers
                    .lock()
                    .unwrap()
                    .insert(path, request.content.clone());
                std::fs::write(&request.path, &request.content).unwrap();
                responder.respond(WriteTextFileResponse::new())
            },
            agent_client_protocol::on_receive_request!(),
        )
        .connect_with(transport, async move |cx: ConnectionTo<Agent>| {
            let capabilities = ClientCapabilities::new().fs(FileSystemCapabilities::new()
                .read_text_file(offers_files)
                .write_text_file(offers_files));
            let init = cx
                .send_request(
                    InitializeRequest::new(ProtocolVersion::V1).client_capabilities(capabilities),
                )
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
    assert!(
        seen.reads.is_empty() && seen.writes.is_empty(),
        "no fs offered, none used"
    );

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
async fn with_client_file_access_the_model_works_on_the_editors_buffer() {
    let h = Harness::new(vec![]).await;
    h.ws.write("notes.md", "status: draft\n");
    let notes = h.path("notes.md");
    let key = notes.display().to_string();
    // The editor has unsaved changes the disk does not have.
    let buffers: Buffers = Arc::new(Mutex::new(HashMap::from([(
        key.clone(),
        "status: draft (unsaved)\n".to_string(),
    )])));
    h.server.push_turn(read_turn(&notes));
    h.server.push_turn(ScriptedTurn::tool_use(
        "Edit",
        json!({"file_path": notes, "old_string": "draft (unsaved)", "new_string": "final"}),
    ));
    h.server.push_turn(ScriptedTurn::text("Done."));
    let project = h.project().to_path_buf();
    let (seen, _) = with_editor(
        &h,
        Answer::Option("allow_once"),
        Some(buffers.clone()),
        async |cx| {
            let session = cx
                .send_request(NewSessionRequest::new(project))
                .block_task()
                .await?;
            let done = cx
                .send_request(PromptRequest::new(session.session_id, text("finalise")))
                .block_task()
                .await?;
            assert_eq!(done.stop_reason, StopReason::EndTurn);
            Ok(())
        },
    )
    .await;
    // The model read the editor's text, not the disk's.
    let read_result = &h.tool_results_sent(1)[0];
    assert!(
        read_result["content"]
            .as_str()
            .unwrap()
            .contains("status: draft (unsaved)"),
        "{read_result}"
    );
    let seen = seen.lock().unwrap();
    assert_eq!(
        seen.reads,
        [key.clone(), key.clone()],
        "Read, then Edit's original"
    );
    // The edit went to the editor, which saved it.
    assert_eq!(seen.writes, [(key.clone(), "status: final\n".to_string())]);
    assert_eq!(buffers.lock().unwrap()[&key], "status: final\n");
    assert_eq!(std::fs::read_to_string(&notes).unwrap(), "status: final\n");
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_acp_sdk_runs_an_edit_session() {
    // A client keel did not write: the Python ACP SDK from PyPI.
    let peers = keel_test_support::peers::ensure();
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
                id: Some("toolu_py".into()),
                name: "Edit".into(),
                input: json!({"file_path": notes, "old_string": "draft", "new_string": "final"}),
            },
        ],
        ..ScriptedTurn::default()
    });
    h.server.push_turn(ScriptedTurn::text("Done."));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/acp_python_client.py");
    let mut cmd = tokio::process::Command::new(peers.join("venv/bin/python"));
    cmd.arg(script)
        .arg(env!("CARGO_BIN_EXE_keel"))
        .arg(h.project())
        .arg("finalise the notes")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", &h.ws.home)
        .env("ANTHROPIC_API_KEY", "sk-test-key")
        .env("ANTHROPIC_BASE_URL", h.server.url())
        .current_dir(h.project())
        .kill_on_drop(true);
    let out = common::finish(&mut cmd).await;
    assert!(out.status.success(), "stderr: {}", common::stderr(&out));
    let report = common::stdout_json(&out);
    assert_eq!(report["protocol_version"], 1);
    assert_eq!(report["agent"], "keel");
    assert_eq!(report["stop_reason"], "end_turn");
    assert_eq!(std::fs::read_to_string(&notes).unwrap(), "status: final\n");
    let asked = &report["permissions"][0];
    assert_eq!(asked["tool_call"]["toolCallId"], "toolu_py");
    assert_eq!(asked["tool_call"]["content"][0]["type"], "diff");
    let updates = report["updates"].as_array().unwrap();
    let kinds: Vec<&str> = updates
        .iter()
        .map(|u| u["sessionUpdate"].as_str().unwrap())
        .collect();
    for kind in [
        "agent_message_chunk",
        "tool_call",
        "tool_call_update",
        "usage_update",
    ] {
        assert!(kinds.contains(&kind), "{kind} missing from {kinds:?}");
    }
    let finished = updates
        .iter()
        .rfind(|u| u["toolCallId"] == "toolu_py")
        .unwrap();
    assert_eq!(finished["status"], "completed");
    assert_eq!(finished["content"][0]["newText"], "final");
}
