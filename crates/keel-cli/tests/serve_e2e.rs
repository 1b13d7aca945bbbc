//! End-to-end: the real `keel serve` on a free loopback port against the mock model server,
//! driven over HTTP with reqwest and an SSE reader: concurrent sessions, approvals answered
//! over HTTP, restart and resume, resumable event streams, JSON errors for bad requests, the
//! token rule, and a load test.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::Harness;
use eventsource_stream::Eventsource;
use futures::StreamExt;
use keel_test_support::{ScriptedBlock, ScriptedTurn, TurnMatcher};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

/// A running `keel serve`.
struct Server {
    child: tokio::process::Child,
    url: String,
    token: Option<String>,
    http: reqwest::Client,
    stderr: tokio::task::JoinHandle<String>,
}

impl Server {
    async fn start(h: &Harness, extra: &[&str]) -> Self {
        Self::start_with(h, extra, None).await
    }

    async fn start_with(h: &Harness, extra: &[&str], token: Option<&str>) -> Self {
        let mut cmd = h.keel();
        cmd.args(["serve", "--port", "0"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(token) = token {
            cmd.env("KEEL_SERVE_TOKEN", token);
        }
        let mut child = cmd.spawn().expect("keel serve starts");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("keel serve prints its address within 30 s")
            .unwrap()
            .unwrap_or_default();
        let url = first
            .split_once("listening on ")
            .map(|(_, url)| url.trim().to_string())
            .unwrap_or_else(|| panic!("unexpected first line: {first:?}"));
        let mut stderr = child.stderr.take().unwrap();
        let stderr = tokio::spawn(async move {
            let mut text = String::new();
            let _ = tokio::io::AsyncReadExt::read_to_string(&mut stderr, &mut text).await;
            text
        });
        Self {
            child,
            url,
            token: token.map(str::to_string),
            http: reqwest::Client::new(),
            stderr,
        }
    }

    fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let builder = self.http.request(method, format!("{}{path}", self.url));
        match &self.token {
            Some(token) => builder.bearer_auth(token),
            None => builder,
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut builder = self.req(method, path);
        if let Some(body) = body {
            builder = builder.json(&body);
        }
        let response = builder.send().await.expect("the server answers");
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        let value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("not JSON ({e}) with status {status}: {text}"));
        (status, value)
    }

    async fn create(&self, body: Value) -> String {
        let (status, session) = self
            .call(reqwest::Method::POST, "/sessions", Some(body))
            .await;
        assert_eq!(status, 201, "{session}");
        session["session_id"].as_str().unwrap().to_string()
    }

    async fn prompt(&self, id: &str, text: &str) -> Value {
        let (status, body) = self
            .call(
                reqwest::Method::POST,
                &format!("/sessions/{id}/messages"),
                Some(json!({ "text": text })),
            )
            .await;
        assert_eq!(status, 202, "{body}");
        body
    }

    async fn events(&self, id: &str, last_event_id: Option<u64>) -> Events {
        let mut builder = self.req(reqwest::Method::GET, &format!("/sessions/{id}/events"));
        if let Some(last) = last_event_id {
            builder = builder.header("Last-Event-ID", last.to_string());
        }
        let response = builder.send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.headers()["content-type"].to_str().unwrap(),
            "text/event-stream"
        );
        Events {
            stream: Box::pin(response.bytes_stream().eventsource()),
            seen: Vec::new(),
        }
    }

    /// SIGTERM, then the exit status and stderr.
    async fn stop(mut self) -> (std::process::ExitStatus, String) {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id().unwrap()).unwrap());
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
        let status = tokio::time::timeout(Duration::from_secs(40), self.child.wait())
            .await
            .expect("keel serve exits within 40 s of SIGTERM")
            .unwrap();
        let stderr = self.stderr.await.unwrap();
        (status, stderr)
    }
}

type SseStream = std::pin::Pin<
    Box<
        dyn futures::Stream<
                Item = Result<
                    eventsource_stream::Event,
                    eventsource_stream::EventStreamError<reqwest::Error>,
                >,
            > + Send,
    >,
>;

/// One SSE reader: every event with its id (0 for the server's own markers).
struct Events {
    stream: SseStream,
    seen: Vec<(u64, Value)>,
}

impl Events {
    /// The next event, or None when the stream ended.
    async fn next(&mut self) -> Option<(u64, Value)> {
        let event = tokio::time::timeout(Duration::from_secs(30), self.stream.next())
            .await
            .expect("an event within 30 s")?
            .expect("a well-formed event");
        let id = if event.id.is_empty() {
            0
        } else {
            event.id.parse().unwrap()
        };
        let data: Value = serde_json::from_str(&event.data).unwrap();
        self.seen.push((id, data.clone()));
        Some((id, data))
    }

    /// Reads until an event of this type; returns it.
    async fn until(&mut self, kind: &str) -> Value {
        loop {
            let (_, event) = self
                .next()
                .await
                .unwrap_or_else(|| panic!("the stream ended before a {kind} event"));
            if event["type"] == kind {
                return event;
            }
        }
    }

    fn numbered(&self) -> Vec<u64> {
        self.seen
            .iter()
            .map(|(id, _)| *id)
            .filter(|id| *id > 0)
            .collect()
    }
}

fn when(needle: &str) -> Option<TurnMatcher> {
    Some(TurnMatcher {
        messages_contain: Some(needle.into()),
        ..TurnMatcher::default()
    })
}

fn turn_when(needle: &str, mut turn: ScriptedTurn) -> ScriptedTurn {
    turn.when = when(needle);
    turn
}

fn dir(h: &Harness, name: &str) -> PathBuf {
    let path = h.ws.root.path().join(name);
    std::fs::create_dir_all(&path).unwrap();
    std::fs::canonicalize(path).unwrap()
}

fn assert_gapless(ids: &[u64], from: u64) {
    let expected: Vec<u64> = (from..from + ids.len() as u64).collect();
    assert_eq!(ids, expected, "event numbers must run without gaps");
}

fn transcript_events(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap()["event"].clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sessions_stream_at_once_and_an_approval_is_answered_over_http() {
    let h = Harness::new(vec![]).await;
    let alpha = dir(&h, "alpha");
    let beta = dir(&h, "beta");
    let target = alpha.join("from-alpha.txt");
    // Alpha's second request carries the Write's result; listed first so it is not taken by
    // alpha's first request.
    h.server.push_turn(turn_when(
        "File created successfully",
        ScriptedTurn::text("alpha wrote the file"),
    ));
    h.server.push_turn(turn_when(
        "alpha task",
        ScriptedTurn::tool_use(
            "Write",
            json!({"file_path": target.to_str().unwrap(), "content": "written over HTTP\n"}),
        ),
    ));
    let mut beta_turn = ScriptedTurn::text("beta streams while alpha waits for approval");
    beta_turn.event_delay_ms = Some(20);
    h.server.push_turn(turn_when("beta task", beta_turn));

    let server = Server::start(&h, &[]).await;
    let a = server.create(json!({"cwd": alpha})).await;
    let b = server.create(json!({"cwd": beta})).await;
    assert_ne!(a, b);
    let mut a_events = server.events(&a, None).await;
    let mut b_events = server.events(&b, None).await;
    let (posted_a, posted_b) = tokio::join!(
        server.prompt(&a, "alpha task: write the file"),
        server.prompt(&b, "beta task: just talk")
    );
    assert_eq!(posted_a["queued"], false);
    assert_eq!(posted_b["queued"], false);

    // Alpha (default mode) must ask before writing; nothing is written yet.
    let asked = a_events.until("approval_requested").await;
    assert_eq!(asked["tool_name"], "Write");
    assert!(!target.exists());
    let (status, view) = server
        .call(reqwest::Method::GET, &format!("/sessions/{a}"), None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(view["status"], "running");
    assert_eq!(
        view["pending_approvals"][0]["request_id"],
        asked["request_id"]
    );

    // Beta finishes its run while alpha is still waiting: the sessions are independent.
    let beta_done = b_events.until("run_finished").await;
    assert_eq!(beta_done["outcome"]["kind"], "success");
    assert_eq!(
        beta_done["result"],
        "beta streams while alpha waits for approval"
    );
    let beta_text: String = b_events
        .seen
        .iter()
        .filter(|(_, e)| e["type"] == "text_delta")
        .map(|(_, e)| e["text"].as_str().unwrap())
        .collect();
    assert_eq!(beta_text, "beta streams while alpha waits for approval");
    assert!(!target.exists(), "alpha still waits for its answer");

    let request_id = asked["request_id"].as_str().unwrap();
    let (status, answered) = server
        .call(
            reqwest::Method::POST,
            &format!("/sessions/{a}/approvals/{request_id}"),
            Some(json!({"decision": "allow_once"})),
        )
        .await;
    assert_eq!(status, 200, "{answered}");
    let alpha_done = a_events.until("run_finished").await;
    assert_eq!(alpha_done["outcome"]["kind"], "success");
    assert_eq!(alpha_done["result"], "alpha wrote the file");
    assert_eq!(
        std::fs::read_to_string(&target).unwrap(),
        "written over HTTP\n"
    );
    // The same answer again: nobody waits for it any more.
    let (status, error) = server
        .call(
            reqwest::Method::POST,
            &format!("/sessions/{a}/approvals/{request_id}"),
            Some(json!({"decision": "allow_once"})),
        )
        .await;
    assert_eq!(status, 404);
    assert_eq!(error["error"]["type"], "not_found");

    for events in [&a_events, &b_events] {
        assert_gapless(&events.numbered(), 1);
        assert_eq!(events.seen[0].1["type"], "session_started");
    }
    // Each session has its own working directory and transcript.
    let (_, a_view) = server
        .call(reqwest::Method::GET, &format!("/sessions/{a}"), None)
        .await;
    let (_, b_view) = server
        .call(reqwest::Method::GET, &format!("/sessions/{b}"), None)
        .await;
    assert_eq!(a_view["cwd"], alpha.to_str().unwrap());
    assert_eq!(b_view["cwd"], beta.to_str().unwrap());
    assert_ne!(a_view["transcript"], b_view["transcript"]);

    let (status, stderr) = server.stop().await;
    assert!(status.success(), "stderr: {stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_restart_a_stored_session_resumes_with_its_conversation() {
    let h = Harness::new(vec![
        turn_when("remember", ScriptedTurn::text("I will remember kumquat.")),
        turn_when("which word", ScriptedTurn::text("The word was kumquat.")),
    ])
    .await;
    let server = Server::start(&h, &[]).await;
    let id = server.create(json!({})).await;
    let mut events = server.events(&id, None).await;
    server
        .prompt(&id, "remember the word kumquat for later")
        .await;
    events.until("run_finished").await;
    let (status, stderr) = server.stop().await;
    assert!(status.success(), "stderr: {stderr}");
    // The stream ended with the session, and said so.
    assert_eq!(events.next().await.unwrap().1["type"], "session_ended");

    let server = Server::start(&h, &[]).await;
    let (status, listed) = server.call(reqwest::Method::GET, "/sessions", None).await;
    assert_eq!(status, 200);
    let stored = listed["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["session_id"] == id.as_str())
        .unwrap_or_else(|| panic!("the stored session is listed: {listed}"));
    assert_eq!(stored["live"], false);
    assert_eq!(
        stored["first_prompt"],
        "remember the word kumquat for later"
    );
    let (status, resumed) = server
        .call(
            reqwest::Method::POST,
            "/sessions",
            Some(json!({"resume": id})),
        )
        .await;
    assert_eq!(status, 201, "{resumed}");
    assert_eq!(resumed["session_id"], id.as_str());
    assert_eq!(resumed["resumed"], true);
    // Resuming it twice at once would serve one transcript twice.
    let (status, conflict) = server
        .call(
            reqwest::Method::POST,
            "/sessions",
            Some(json!({"resume": id})),
        )
        .await;
    assert_eq!(status, 409, "{conflict}");

    let mut events = server.events(&id, None).await;
    server
        .prompt(&id, "which word did I ask you to remember?")
        .await;
    let done = events.until("run_finished").await;
    assert_eq!(done["result"], "The word was kumquat.");
    let requests = h.requests();
    let last = requests.last().unwrap();
    let sent = last.body["messages"].to_string();
    assert!(
        sent.contains("remember the word kumquat") && sent.contains("I will remember kumquat."),
        "the resumed session sends the earlier conversation: {sent}"
    );
    let (status, _) = server.stop().await;
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_and_delete_interrupt_runs_and_close_transcripts() {
    let h = Harness::new(vec![]).await;
    // Model answers that would take far longer than the test: only an interrupt ends them.
    let mut slow = ScriptedTurn::text("too late");
    slow.delay_ms = Some(60_000);
    h.server.push_turn(turn_when("slow one", slow.clone()));
    h.server.push_turn(turn_when("slow two", slow));
    let server = Server::start(&h, &[]).await;

    // DELETE: the running prompt is interrupted, the queued one never reaches the model.
    let first = server.create(json!({})).await;
    let mut events = server.events(&first, None).await;
    server.prompt(&first, "slow one").await;
    events.until("turn_started").await;
    let queued = server.prompt(&first, "never sent").await;
    assert_eq!(queued, json!({"queued": true, "position": 1}));
    let (status, ended) = server
        .call(reqwest::Method::DELETE, &format!("/sessions/{first}"), None)
        .await;
    assert_eq!(status, 200, "{ended}");
    assert_eq!(ended["transcript_closed"], true);
    let finished = events.until("run_finished").await;
    assert_eq!(finished["outcome"]["kind"], "interrupted");
    assert_eq!(events.next().await.unwrap().1["type"], "session_ended");
    assert!(events.next().await.is_none());
    let recorded = transcript_events(Path::new(ended["transcript"].as_str().unwrap()));
    assert_eq!(recorded.last().unwrap()["type"], "run_finished");
    assert!(
        !recorded
            .iter()
            .any(|e| e.to_string().contains("never sent"))
    );
    let (status, gone) = server
        .call(reqwest::Method::GET, &format!("/sessions/{first}"), None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(gone["live"], false);

    // SIGTERM: the same for every live session, then the server exits cleanly.
    let second = server.create(json!({})).await;
    let mut events = server.events(&second, None).await;
    server.prompt(&second, "slow two").await;
    events.until("turn_started").await;
    let transcript = {
        let (_, view) = server
            .call(reqwest::Method::GET, &format!("/sessions/{second}"), None)
            .await;
        PathBuf::from(view["transcript"].as_str().unwrap())
    };
    let started = Instant::now();
    let (status, stderr) = server.stop().await;
    assert!(status.success(), "stderr: {stderr}");
    assert!(started.elapsed() < Duration::from_secs(20));
    let recorded = transcript_events(&transcript);
    let last = recorded.last().unwrap();
    assert_eq!(last["type"], "run_finished");
    assert_eq!(last["outcome"]["kind"], "interrupted");
    assert_eq!(
        h.requests().len(),
        2,
        "the queued prompt never reached the model"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnecting_reader_misses_nothing_and_a_lapped_one_is_told() {
    let h = Harness::new(vec![ScriptedTurn::text(
        "a fairly long answer that streams as several deltas so there is a lot to read",
    )])
    .await;
    let server = Server::start(&h, &[]).await;
    let id = server.create(json!({})).await;
    let mut full = server.events(&id, None).await;
    server.prompt(&id, "talk").await;
    full.until("run_finished").await;
    assert!(full.seen.len() > 6);

    // Read a few, drop the connection, come back with the last id seen.
    let mut first = server.events(&id, None).await;
    for _ in 0..4 {
        first.next().await.unwrap();
    }
    let last_seen = first.seen.last().unwrap().0;
    drop(first);
    let mut rest = server.events(&id, Some(last_seen)).await;
    rest.until("run_finished").await;
    let resumed: Vec<(u64, Value)> = rest.seen.clone();
    assert_eq!(resumed[0].0, last_seen + 1);
    assert_eq!(
        resumed[..],
        full.seen[usize::try_from(last_seen).unwrap()..]
    );
    // A malformed Last-Event-ID is a 400, not a silent restart from 0.
    let response = server
        .req(reqwest::Method::GET, &format!("/sessions/{id}/events"))
        .header("Last-Event-ID", "yesterday")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let (status, _) = server.stop().await;
    assert!(status.success());

    // With a tiny buffer, a reader from the start learns which events it can no longer get.
    let h = Harness::new(vec![ScriptedTurn::text(
        "a fairly long answer that streams as several deltas so there is a lot to read",
    )])
    .await;
    let server = Server::start(&h, &["--event-buffer", "3"]).await;
    let id = server.create(json!({})).await;
    let mut live = server.events(&id, None).await;
    server.prompt(&id, "talk").await;
    let done = live.until("run_finished").await;
    let total = live.seen.last().unwrap().0;
    let mut late = server.events(&id, None).await;
    let (gap_id, gap) = late.next().await.unwrap();
    assert_eq!(gap_id, 0);
    assert_eq!(gap["type"], "stream_gap");
    assert_eq!(gap["missed_from"], 1);
    assert_eq!(gap["missed_to"], total - 3);
    let mut tail = Vec::new();
    for _ in 0..3 {
        tail.push(late.next().await.unwrap());
    }
    assert_eq!(tail.last().unwrap().1, done);
    assert_eq!(
        tail.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
        vec![total - 2, total - 1, total]
    );
    let (status, _) = server.stop().await;
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_get_json_errors_and_the_server_keeps_working() {
    let h = Harness::new(vec![
        ScriptedTurn::text("still fine"),
        ScriptedTurn::text("Summary: the user checked that keel answers."),
    ])
    .await;
    let server = Server::start(&h, &[]).await;
    let id = server.create(json!({})).await;
    let post = reqwest::Method::POST;
    let raw = |method: reqwest::Method, path: &str, content_type: Option<&str>, body: &str| {
        let mut builder = server.req(method, path).body(body.to_string());
        if let Some(content_type) = content_type {
            builder = builder.header("content-type", content_type);
        }
        builder
    };
    let json_type = Some("application/json");
    let messages = format!("/sessions/{id}/messages");
    let cases = vec![
        (
            raw(post.clone(), &messages, json_type, "{\"text\": "),
            400,
            "invalid_json",
        ),
        (
            raw(
                post.clone(),
                &messages,
                Some("text/plain"),
                "{\"text\":\"hi\"}",
            ),
            415,
            "unsupported_media_type",
        ),
        (
            raw(post.clone(), &messages, json_type, "{\"prompt\":\"hi\"}"),
            400,
            "invalid_request",
        ),
        (
            raw(post.clone(), &messages, json_type, "{\"text\":\"   \"}"),
            400,
            "invalid_request",
        ),
        (
            raw(post.clone(), &messages, json_type, "[1,2]"),
            400,
            "invalid_request",
        ),
        (
            raw(
                post.clone(),
                "/sessions/4b1d6a4e-0000-4000-8000-000000000000/messages",
                json_type,
                "{\"text\":\"hi\"}",
            ),
            404,
            "not_found",
        ),
        (
            raw(
                post.clone(),
                &format!("/sessions/{id}/approvals/no-such-request"),
                json_type,
                "{\"decision\":\"allow_once\"}",
            ),
            404,
            "not_found",
        ),
        (
            raw(
                post.clone(),
                &format!("/sessions/{id}/approvals/x"),
                json_type,
                "{\"decision\":\"maybe\"}",
            ),
            400,
            "invalid_request",
        ),
        (
            raw(
                post.clone(),
                "/sessions",
                json_type,
                "{\"permission_mode\":\"yolo\"}",
            ),
            400,
            "invalid_request",
        ),
        (
            raw(
                post.clone(),
                "/sessions",
                json_type,
                "{\"cwd\":\"relative/dir\"}",
            ),
            400,
            "invalid_request",
        ),
        (
            raw(
                post.clone(),
                "/sessions",
                json_type,
                "{\"cwd\":\"/no/such/dir/anywhere\"}",
            ),
            400,
            "invalid_request",
        ),
        (
            raw(
                post.clone(),
                "/sessions",
                json_type,
                "{\"resume\":\"not-a-uuid\"}",
            ),
            400,
            "invalid_request",
        ),
        (
            raw(
                post.clone(),
                "/sessions",
                json_type,
                "{\"resume\":\"4b1d6a4e-0000-4000-8000-000000000000\"}",
            ),
            404,
            "not_found",
        ),
        (
            raw(post.clone(), "/sessions", json_type, "{\"modle\":\"x\"}"),
            400,
            "invalid_request",
        ),
        (
            raw(
                reqwest::Method::PATCH,
                &format!("/sessions/{id}"),
                json_type,
                "{\"permission_mode\":\"sometimes\"}",
            ),
            400,
            "invalid_request",
        ),
        (
            raw(reqwest::Method::GET, "/no/such/route", None, ""),
            404,
            "not_found",
        ),
        (
            raw(reqwest::Method::PUT, "/sessions", None, ""),
            405,
            "method_not_allowed",
        ),
        (
            raw(
                reqwest::Method::DELETE,
                "/sessions/4b1d6a4e-0000-4000-8000-000000000000",
                None,
                "",
            ),
            404,
            "not_found",
        ),
        (
            raw(reqwest::Method::GET, "/sessions?cwd=relative", None, ""),
            400,
            "invalid_request",
        ),
        (
            raw(reqwest::Method::GET, "/sessions/whatever", None, ""),
            404,
            "not_found",
        ),
    ];
    for (request, status, kind) in cases {
        let request = request.build().unwrap();
        let what = format!("{} {}", request.method(), request.url());
        let response = server.http.execute(request).await.unwrap();
        assert_eq!(response.status().as_u16(), status, "{what}");
        let body: Value = response
            .json()
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(body["error"]["type"], kind, "{what}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{what}: {body}"
        );
    }
    // A request through a foreign host name (DNS rebinding) is refused on a tokenless server.
    let response = server
        .req(reqwest::Method::GET, "/sessions")
        .header("host", "attacker.example")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    let response = server
        .req(reqwest::Method::POST, "/sessions")
        .header("origin", "https://attacker.example")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);

    // Still serving: health, the API description, and the session works.
    let (status, health) = server.call(reqwest::Method::GET, "/health", None).await;
    assert_eq!((status, health["status"].as_str()), (200, Some("ok")));
    let (status, doc) = server
        .call(reqwest::Method::GET, "/openapi.json", None)
        .await;
    assert_eq!(status, 200);
    assert!(doc["paths"]["/sessions/{id}/events"]["get"].is_object());
    let mut events = server.events(&id, None).await;
    server.prompt(&id, "are you there?").await;
    assert_eq!(events.until("run_finished").await["result"], "still fine");
    // Compaction is reachable too, and the session reports how it went.
    let (status, body) = server
        .call(
            reqwest::Method::POST,
            &format!("/sessions/{id}/compact"),
            Some(json!({"instructions": 5})),
        )
        .await;
    assert_eq!(
        (status, body["error"]["type"].as_str()),
        (400, Some("invalid_request"))
    );
    let (status, _) = server
        .call(
            reqwest::Method::POST,
            &format!("/sessions/{id}/compact"),
            None,
        )
        .await;
    assert_eq!(status, 202);
    let notice = events.until("notice").await;
    assert!(
        notice["message"].as_str().unwrap().contains("compact"),
        "{notice}"
    );
    let (status, stderr) = server.stop().await;
    assert!(status.success(), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_loopback_a_token_is_required_and_checked() {
    let h = Harness::new(vec![]).await;
    let out = h.run(&["serve", "--host", "0.0.0.0", "--port", "0"]).await;
    assert!(!out.status.success());
    let stderr = common::stderr(&out);
    assert!(
        stderr.contains("--token") && stderr.contains("KEEL_SERVE_TOKEN"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty(), "it never listened");

    // With a token it listens on every interface; the test talks to it over loopback only.
    let server = Server::start_with(&h, &["--host", "0.0.0.0"], Some("s3cret-token")).await;
    let port = server.url.rsplit(':').next().unwrap().to_string();
    let local = format!("http://127.0.0.1:{port}");
    let anonymous = reqwest::Client::new();
    for (auth, expected) in [
        (None, 401),
        (Some("Bearer wrong-token"), 401),
        (Some("s3cret-token"), 401),
        (Some("Bearer s3cret-token"), 200),
    ] {
        let mut request = anonymous.get(format!("{local}/sessions"));
        if let Some(auth) = auth {
            request = request.header("authorization", auth);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status().as_u16(), expected, "{auth:?}");
        if expected == 401 {
            assert_eq!(response.headers()["www-authenticate"], "Bearer");
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["error"]["type"], "unauthorized");
        }
    }
    // Health stays open for probes.
    let response = anonymous
        .get(format!("{local}/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let (status, _) = server.stop().await;
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_50_concurrent_sessions_lose_no_events() {
    const SESSIONS: usize = 50;
    let h = Harness::new(vec![]).await;
    // Each session: a Read of its own file, then an answer that quotes what it read. The
    // matchers tie every request to its session and step, however requests interleave.
    for n in 0..SESSIONS {
        h.server.push_turn(turn_when(
            &format!("content-{n:02}."),
            ScriptedTurn::text(format!("session {n:02} is done")),
        ));
        h.server.push_turn(ScriptedTurn {
            content: vec![
                ScriptedBlock::Text {
                    text: format!("reading for {n:02}"),
                },
                ScriptedBlock::ToolUse {
                    id: None,
                    name: "Read".into(),
                    input: json!({"file_path": dir(&h, &format!("load-{n:02}")).join("note.txt")}),
                },
            ],
            when: when(&format!("task-{n:02}:")),
            ..ScriptedTurn::default()
        });
    }
    let server = Server::start(&h, &[]).await;
    let started = Instant::now();
    let runs = (0..SESSIONS).map(|n| {
        let server = &server;
        let cwd = dir(&h, &format!("load-{n:02}"));
        std::fs::write(cwd.join("note.txt"), format!("content-{n:02}.\n")).unwrap();
        async move {
            let id = server.create(json!({"cwd": cwd})).await;
            let mut events = server.events(&id, None).await;
            server
                .prompt(&id, &format!("task-{n:02}: read the note"))
                .await;
            let done = events.until("run_finished").await;
            (n, id, done, events)
        }
    });
    let results = futures::future::join_all(runs).await;
    let elapsed = started.elapsed();
    let mut ids = HashSet::new();
    for (n, id, done, events) in results {
        assert!(ids.insert(id.clone()));
        assert_eq!(done["outcome"]["kind"], "success", "session {n}: {done}");
        assert_eq!(done["result"], format!("session {n:02} is done"));
        assert_eq!(done["num_turns"], 2);
        let numbers = events.numbered();
        assert_gapless(&numbers, 1);
        let kinds: Vec<&str> = events
            .seen
            .iter()
            .map(|(_, e)| e["type"].as_str().unwrap())
            .collect();
        for kind in [
            "session_started",
            "user_message",
            "tool_call_started",
            "tool_result",
            "run_finished",
        ] {
            assert!(
                kinds.contains(&kind),
                "session {n} missed {kind}: {kinds:?}"
            );
        }
        let result = events
            .seen
            .iter()
            .find(|(_, e)| e["type"] == "tool_result")
            .unwrap();
        assert!(
            result.1["content"]
                .as_str()
                .unwrap()
                .contains(&format!("content-{n:02}.")),
            "session {n} read its own file"
        );
        // Everything the stream showed up to the end of the run is also in the server's count.
        let (_, view) = server
            .call(reqwest::Method::GET, &format!("/sessions/{id}"), None)
            .await;
        assert_eq!(view["last_event_id"], *numbers.last().unwrap());
    }
    assert_eq!(h.requests().len(), SESSIONS * 2);
    eprintln!("{SESSIONS} sessions, 2 model turns each, finished in {elapsed:?}");
    assert!(elapsed < Duration::from_secs(60), "took {elapsed:?}");
    let (status, stderr) = server.stop().await;
    assert!(status.success(), "{stderr}");
}
