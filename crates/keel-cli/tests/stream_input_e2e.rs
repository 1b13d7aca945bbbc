//! `--input-format stream-json` through the real binary, speaking the control protocol by hand:
//! prompts on stdin, requests and answers in both directions, bad lines, the end of input.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::Harness;
use keel_test_support::{ScriptedBlock, ScriptedTurn};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _};

const SDK_ARGS: &[&str] = &[
    "--output-format",
    "stream-json",
    "--verbose",
    "--input-format",
    "stream-json",
];

/// A running `keel` in stream-json mode: lines go in on stdin, come out on stdout.
struct Session {
    child: tokio::process::Child,
    stdin: Option<tokio::process::ChildStdin>,
    stdout: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
    /// Every stdout line read so far.
    seen: Vec<Value>,
}

impl Session {
    fn start(h: &Harness, extra: &[&str], env: &[(&str, &str)]) -> Self {
        let mut cmd = h.keel();
        cmd.args(SDK_ARGS)
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (key, value) in env {
            cmd.env(key, value);
        }
        let mut child = cmd.spawn().unwrap();
        let stdin = child.stdin.take();
        let stdout = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        Self {
            child,
            stdin,
            stdout,
            seen: Vec::new(),
        }
    }

    async fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        stdin.write_all(line.as_bytes()).await.unwrap();
        stdin.write_all(b"\n").await.unwrap();
        stdin.flush().await.unwrap();
    }

    async fn send_json(&mut self, value: Value) {
        self.send(&value.to_string()).await;
    }

    async fn prompt(&mut self, text: &str) {
        self.send_json(json!({
            "type": "user",
            "message": {"role": "user", "content": text},
            "parent_tool_use_id": null,
            "session_id": "default",
        }))
        .await;
    }

    async fn request(&mut self, id: &str, request: Value) {
        self.send_json(json!({"type": "control_request", "request_id": id, "request": request}))
            .await;
    }

    fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Reads stdout until a line satisfies `wanted`; fails the test after 30 s or at EOF.
    async fn until(&mut self, what: &str, wanted: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let line = tokio::time::timeout_at(deadline, self.stdout.next_line())
                .await
                .unwrap_or_else(|_| panic!("timed out waiting for {what}; saw {:#?}", self.seen))
                .unwrap()
                .unwrap_or_else(|| panic!("stdout ended before {what}; saw {:#?}", self.seen));
            let value: Value = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {line}"));
            self.seen.push(value.clone());
            if wanted(&value) {
                return value;
            }
        }
    }

    async fn result(&mut self) -> Value {
        self.until("a result", |v| v["type"] == "result").await
    }

    async fn response_to(&mut self, id: &str) -> Value {
        let id = id.to_string();
        self.until(&format!("the control_response to {id}"), move |v| {
            v["type"] == "control_response" && v["response"]["request_id"] == id.as_str()
        })
        .await["response"]
            .clone()
    }

    /// Closes stdin and waits for the exit; returns the exit code, stderr and every stdout
    /// line.
    async fn finish(mut self) -> (i32, String, Vec<Value>) {
        self.close_stdin();
        while let Ok(Some(line)) = self.stdout.next_line().await {
            if let Ok(value) = serde_json::from_str(&line) {
                self.seen.push(value);
            }
        }
        let output = tokio::time::timeout(Duration::from_secs(30), self.child.wait_with_output())
            .await
            .expect("keel exits after its input ends")
            .unwrap();
        (
            output.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&output.stderr).into_owned(),
            self.seen,
        )
    }
}

#[tokio::test]
async fn prompts_run_in_order_and_the_end_of_input_ends_after_the_last_result() {
    let h = Harness::new(vec![
        ScriptedTurn::text("first answer"),
        ScriptedTurn::text("second answer"),
    ])
    .await;
    let mut s = Session::start(&h, &[], &[("CLAUDE_CODE_EMIT_SESSION_STATE_EVENTS", "1")]);
    // Both prompts and the end of input arrive before the first answer.
    s.prompt("one").await;
    s.prompt("two").await;
    s.close_stdin();
    let first = s.result().await;
    let second = s.result().await;
    assert_eq!(first["result"], "first answer");
    assert_eq!(second["result"], "second answer");
    assert_eq!(first["session_id"], second["session_id"]);
    let (code, stderr, seen) = s.finish().await;
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(seen[0]["subtype"], "init");
    // One init for the session, state lines around the work.
    let states: Vec<&str> = seen
        .iter()
        .filter(|v| v["subtype"] == "session_state_changed")
        .map(|v| v["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["running", "idle"]);
    assert_eq!(seen.iter().filter(|v| v["subtype"] == "init").count(), 1);
    let second_request = h.requests()[1].body["messages"].to_string();
    assert!(second_request.contains("first answer") && second_request.contains("two"));
}

#[tokio::test]
async fn initialize_is_answered_first_and_a_prompt_followed_by_eof_still_gets_its_result() {
    let h = Harness::new(vec![ScriptedTurn::text("done")]).await;
    let mut s = Session::start(&h, &[], &[]);
    // The plain query() shape: initialize, wait for the answer, one prompt, stdin closed.
    s.request(
        "req_1_abcd",
        json!({"subtype": "initialize", "hooks": null}),
    )
    .await;
    let response = s.response_to("req_1_abcd").await;
    assert_eq!(response["subtype"], "success");
    assert!(response["response"]["pid"].as_u64().unwrap() > 0);
    assert_eq!(response["response"]["hook_on_failure_supported"], true);
    s.prompt("go").await;
    s.close_stdin();
    let result = s.result().await;
    assert_eq!(result["subtype"], "success");
    assert_eq!(result["result"], "done");
    let (code, stderr, _) = s.finish().await;
    assert_eq!(code, 0, "{stderr}");
}

#[tokio::test]
async fn an_interrupt_request_stops_the_running_turn_and_the_session_goes_on() {
    let h = Harness::new(vec![
        ScriptedTurn {
            content: vec![ScriptedBlock::Text {
                text: "a story that never ends".into(),
            }],
            stall_after_events: Some(4),
            ..ScriptedTurn::default()
        },
        ScriptedTurn::text("still here"),
    ])
    .await;
    let mut s = Session::start(&h, &["--include-partial-messages"], &[]);
    s.prompt("tell a story").await;
    let delta = s
        .until("a partial text delta", |v| {
            v["type"] == "stream_event" && v["event"]["type"] == "content_block_delta"
        })
        .await;
    assert_eq!(delta["event"]["delta"]["type"], "text_delta");
    assert!(delta["uuid"].is_string() && delta["session_id"].is_string());
    s.request("int_1", json!({"subtype": "interrupt"})).await;
    assert_eq!(s.response_to("int_1").await["subtype"], "success");
    let interrupted = s.result().await;
    assert_eq!(interrupted["subtype"], "error_during_execution");
    s.prompt("are you there?").await;
    let next = s.result().await;
    assert_eq!(next["result"], "still here");
    let (code, stderr, _) = s.finish().await;
    assert_eq!(code, 0, "{stderr}");
}

#[tokio::test]
async fn set_permission_mode_is_answered_reported_and_applied() {
    let h = Harness::new(vec![
        ScriptedTurn::tool_use(
            "Write",
            json!({"file_path": "made.txt", "content": "written\n"}),
        ),
        ScriptedTurn::text("wrote it"),
    ])
    .await;
    let mut s = Session::start(&h, &[], &[]);
    s.request("init", json!({"subtype": "initialize"})).await;
    s.response_to("init").await;
    s.request(
        "bad",
        json!({"subtype": "set_permission_mode", "mode": "sideways"}),
    )
    .await;
    let refused = s.response_to("bad").await;
    assert_eq!(refused["subtype"], "error");
    assert!(refused["error"].as_str().unwrap().contains("sideways"));
    s.request(
        "mode",
        json!({"subtype": "set_permission_mode", "mode": "acceptEdits"}),
    )
    .await;
    assert_eq!(s.response_to("mode").await["subtype"], "success");
    let status = s.until("a status line", |v| v["subtype"] == "status").await;
    assert_eq!(status["type"], "system");
    assert_eq!(status["permissionMode"], "acceptEdits");
    // acceptEdits lets the Write run without asking.
    s.prompt("write the file").await;
    let result = s.result().await;
    assert_eq!(result["permission_denials"], json!([]));
    assert_eq!(
        std::fs::read_to_string(h.path("made.txt")).unwrap(),
        "written\n"
    );
    let (code, stderr, _) = s.finish().await;
    assert_eq!(code, 0, "{stderr}");
}

#[tokio::test]
async fn a_bad_line_is_reported_on_stderr_and_the_session_goes_on() {
    let h = Harness::new(vec![ScriptedTurn::text("fine")]).await;
    let mut s = Session::start(&h, &[], &[]);
    s.send("{this is not json").await;
    s.send_json(json!({"type": "telegram"})).await;
    s.request("q", json!({"subtype": "frobnicate"})).await;
    let unknown = s.response_to("q").await;
    assert_eq!(unknown["subtype"], "error");
    assert!(unknown["error"].as_str().unwrap().contains("frobnicate"));
    s.prompt("hello").await;
    assert_eq!(s.result().await["result"], "fine");
    let (code, stderr, _) = s.finish().await;
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("stdin line 1") && stderr.contains("not valid JSON"),
        "{stderr}"
    );
    assert!(
        stderr.contains("unknown message type \"telegram\""),
        "{stderr}"
    );
}

#[tokio::test]
async fn can_use_tool_goes_to_stdio_and_an_allow_can_rewrite_the_input() {
    let h = Harness::new(vec![
        ScriptedTurn::tool_use("Bash", json!({"command": "touch asked.txt"})),
        ScriptedTurn::text("ok"),
    ])
    .await;
    let mut s = Session::start(&h, &["--permission-prompt-tool", "stdio"], &[]);
    s.prompt("make a file").await;
    let ask = s
        .until("a can_use_tool request", |v| {
            v["type"] == "control_request" && v["request"]["subtype"] == "can_use_tool"
        })
        .await;
    assert_eq!(ask["request"]["tool_name"], "Bash");
    assert_eq!(ask["request"]["input"]["command"], "touch asked.txt");
    assert!(ask["request"]["tool_use_id"].is_string());
    let id = ask["request_id"].as_str().unwrap().to_string();
    s.send_json(json!({
        "type": "control_response",
        "response": {
            "subtype": "success",
            "request_id": id,
            "response": {"behavior": "allow", "updatedInput": {"command": "touch rewritten.txt"}},
        },
    }))
    .await;
    let result = s.result().await;
    assert_eq!(result["subtype"], "success");
    assert!(h.path("rewritten.txt").exists());
    assert!(!h.path("asked.txt").exists());
    let (code, stderr, _) = s.finish().await;
    assert_eq!(code, 0, "{stderr}");
}

#[tokio::test]
async fn ask_user_question_goes_to_can_use_tool_and_the_answers_reach_the_model() {
    let questions = json!([{
        "question": "Which database?",
        "header": "Database",
        "multiSelect": false,
        "options": [
            {"label": "Postgres", "description": "relational"},
            {"label": "SQLite", "description": "a file"}
        ]
    }]);
    let h = Harness::new(vec![
        ScriptedTurn::tool_use("AskUserQuestion", json!({ "questions": questions })),
        ScriptedTurn::text("ok"),
    ])
    .await;
    let mut s = Session::start(&h, &["--permission-prompt-tool", "stdio"], &[]);
    s.prompt("set up storage").await;
    let ask = s
        .until("a can_use_tool request", |v| {
            v["type"] == "control_request" && v["request"]["subtype"] == "can_use_tool"
        })
        .await;
    assert_eq!(ask["request"]["tool_name"], "AskUserQuestion");
    assert_eq!(ask["request"]["input"]["questions"], questions);
    let id = ask["request_id"].as_str().unwrap().to_string();
    s.send_json(json!({
        "type": "control_response",
        "response": {
            "subtype": "success",
            "request_id": id,
            "response": {
                "behavior": "allow",
                "updatedInput": {"questions": questions, "answers": {"Which database?": "SQLite"}}
            },
        },
    }))
    .await;
    let result = s.result().await;
    assert_eq!(result["subtype"], "success");
    let second = &h.requests()[1].body;
    let sent = second.to_string();
    assert!(
        sent.contains("Which database?") && sent.contains("SQLite"),
        "{sent}"
    );
    let (code, stderr, _) = s.finish().await;
    assert_eq!(code, 0, "{stderr}");
}

#[tokio::test]
async fn options_keel_lacks_warn_instead_of_failing() {
    let h = Harness::new(vec![ScriptedTurn::text("ok")]).await;
    let output = h
        .run(&[
            "-p",
            "hi",
            "--effort",
            "high",
            "--frobnicate=3",
            "--debug-to-stderr",
        ])
        .await;
    let stderr = common::stderr(&output);
    assert!(output.status.success(), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "ok");
    assert!(stderr.contains("--effort is not supported yet"), "{stderr}");
    assert!(
        stderr.contains("ignoring unknown option --frobnicate=3"),
        "{stderr}"
    );
    assert!(
        stderr.contains("ignoring unknown option --debug-to-stderr"),
        "{stderr}"
    );
}

#[tokio::test]
async fn partial_messages_stream_in_print_mode_too() {
    let h = Harness::new(vec![ScriptedTurn::text("streamed answer")]).await;
    let output = h
        .run(&[
            "-p",
            "hi",
            "--output-format",
            "stream-json",
            "--verbose",
            "--include-partial-messages",
        ])
        .await;
    assert!(output.status.success(), "{}", common::stderr(&output));
    let lines = common::stdout_lines(&output);
    let events: Vec<&str> = lines
        .iter()
        .filter(|l| l["type"] == "stream_event")
        .map(|l| l["event"]["type"].as_str().unwrap())
        .collect();
    assert_eq!(events.first(), Some(&"message_start"));
    assert_eq!(events.last(), Some(&"message_stop"));
    assert!(events.contains(&"content_block_delta"));
    let text: String = lines
        .iter()
        .filter(|l| l["event"]["delta"]["type"] == "text_delta")
        .map(|l| l["event"]["delta"]["text"].as_str().unwrap())
        .collect();
    assert_eq!(text, "streamed answer");
    // The whole message still follows, then the result.
    let kinds: Vec<&str> = lines.iter().map(|l| l["type"].as_str().unwrap()).collect();
    let last_event = kinds.iter().rposition(|k| *k == "stream_event").unwrap();
    assert_eq!(&kinds[last_event + 1..], ["assistant", "result"]);
}

#[tokio::test]
async fn tools_names_the_built_in_tools_offered() {
    let h = Harness::new(vec![ScriptedTurn::text("ok"); 4]).await;
    assert_eq!(offered_with(&h, "Read,Grep").await, ["Read", "Grep"]);
    assert!(offered_with(&h, "").await.is_empty());
    // Tools the session adds by itself (Agent, ExitPlanMode) are offered only when named.
    assert_eq!(offered_with(&h, "Read,Agent").await, ["Read", "Agent"]);
    assert_eq!(
        offered_with(&h, "ExitPlanMode Read").await,
        ["Read", "ExitPlanMode"]
    );
    let output = h.run(&["-p", "hi", "--tools", "Reed"]).await;
    assert_eq!(output.status.code(), Some(1));
    assert!(common::stderr(&output).contains("no built-in tool \"Reed\""));
}

/// The names of the tools a `keel -p --tools TOOLS` run offered the model ([] for none).
async fn offered_with(h: &Harness, tools: &str) -> Vec<String> {
    let output = h.run(&["-p", "hi", "--tools", tools]).await;
    assert!(output.status.success(), "{}", common::stderr(&output));
    let request = h.requests().pop().unwrap();
    request.body["tools"]
        .as_array()
        .map(|tools| {
            tools
                .iter()
                .map(|t| t["name"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}
