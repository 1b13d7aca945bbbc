//! End-to-end: the real `keel` binary in print mode against the mock model server.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{Harness, finish, process_alive, stderr, stdout_json, stdout_lines, wait_for};
use keel_test_support::{ScriptedBlock, ScriptedTurn};
use serde_json::{Value, json};

fn call(id: &str, name: &str, input: Value) -> ScriptedBlock {
    ScriptedBlock::ToolUse {
        id: Some(id.to_string()),
        name: name.to_string(),
        input,
    }
}

fn turn(content: Vec<ScriptedBlock>) -> ScriptedTurn {
    ScriptedTurn {
        content,
        ..Default::default()
    }
}

fn tool_names(request_body: &Value) -> Vec<String> {
    request_body["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect()
}

fn required_of(request_body: &Value, tool: &str) -> Vec<String> {
    let spec = request_body["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == tool)
        .unwrap_or_else(|| panic!("tool {tool} not sent"));
    let mut required: Vec<String> = spec["input_schema"]["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    required.sort();
    required
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_greps_edits_runs_bash_and_answers() {
    let h = Harness::new(vec![]).await;
    h.ws.write("src/lib.rs", "pub fn answer() -> u32 {\n    41\n}\n");
    let lib = h.path("src/lib.rs");
    let lib_str = lib.to_str().unwrap();
    h.server.push_turn(turn(vec![
        ScriptedBlock::Text {
            text: "Let me look.".into(),
        },
        call("toolu_read", "Read", json!({"file_path": lib_str})),
        call(
            "toolu_grep",
            "Grep",
            json!({"pattern": "answer", "output_mode": "content"}),
        ),
    ]));
    h.server.push_turn(turn(vec![call(
        "toolu_edit",
        "Edit",
        json!({"file_path": lib_str, "old_string": "    41", "new_string": "    42"}),
    )]));
    h.server.push_turn(turn(vec![call(
        "toolu_bash",
        "Bash",
        json!({"command": "cat src/lib.rs && echo bash-ran", "description": "show the file"}),
    )]));
    h.server
        .push_turn(ScriptedTurn::text("Fixed: answer() now returns 42."));

    let out = h
        .run(&[
            "-p",
            "make answer return 42",
            "--output-format",
            "json",
            "--dangerously-skip-permissions",
        ])
        .await;
    assert!(out.status.success(), "stderr: {}", stderr(&out));

    // The file on disk.
    assert_eq!(
        std::fs::read_to_string(&lib).unwrap(),
        "pub fn answer() -> u32 {\n    42\n}\n"
    );

    // The result object.
    let result = stdout_json(&out);
    assert_eq!(result["type"], "result");
    assert_eq!(result["subtype"], "success");
    assert_eq!(result["is_error"], false);
    assert_eq!(result["result"], "Fixed: answer() now returns 42.");
    assert_eq!(result["num_turns"], 4);
    assert_eq!(result["usage"]["input_tokens"], 400);
    assert_eq!(result["usage"]["output_tokens"], 80);
    assert!(result["total_cost_usd"].as_f64().unwrap() > 0.0);
    assert_eq!(result["permission_denials"], json!([]));
    assert!(uuid_like(result["session_id"].as_str().unwrap()));
    for field in ["duration_ms", "duration_api_ms"] {
        assert!(result[field].is_u64(), "{field} missing");
    }

    // What the model was sent.
    let requests = h.requests();
    assert_eq!(requests.len(), 4);
    let first = &requests[0];
    assert_eq!(first.path, "/v1/messages");
    assert_eq!(first.headers["x-api-key"], "sk-test-key");
    assert_eq!(first.headers["anthropic-version"], "2023-06-01");
    assert_eq!(first.body["stream"], true);
    assert_eq!(first.body["messages"][0]["role"], "user");
    assert_eq!(
        first.body["messages"][0]["content"][0]["text"],
        "make answer return 42"
    );
    let system = first.body["system"].to_string();
    assert!(system.contains(&format!("Working directory: {}", h.project().display())));
    assert_eq!(
        tool_names(&first.body),
        [
            "Read",
            "Write",
            "Edit",
            "Bash",
            "Glob",
            "Grep",
            "NotebookEdit",
            "WebFetch",
            "WebSearch",
            "TaskCreate",
            "TaskGet",
            "TaskUpdate",
            "TaskList",
            "TaskOutput",
            "TaskStop",
            "CronCreate",
            "CronDelete",
            "CronList",
            "ScheduleWakeup",
            "EnterWorktree",
            "ExitWorktree",
            "ExitPlanMode",
            "Agent"
        ]
    );
    assert_eq!(required_of(&first.body, "Read"), ["file_path"]);
    assert_eq!(required_of(&first.body, "Write"), ["content", "file_path"]);
    assert_eq!(
        required_of(&first.body, "Edit"),
        ["file_path", "new_string", "old_string"]
    );
    assert_eq!(required_of(&first.body, "Bash"), ["command"]);
    assert_eq!(required_of(&first.body, "Glob"), ["pattern"]);
    assert_eq!(required_of(&first.body, "Grep"), ["pattern"]);

    // Tool results came back in the order of the calls.
    let results = h.tool_results_sent(1);
    assert_eq!(results.len(), 2);
    assert_eq!(results[0]["tool_use_id"], "toolu_read");
    assert!(
        results[0]["content"]
            .as_str()
            .unwrap()
            .contains("     2\t    41")
    );
    assert_eq!(results[1]["tool_use_id"], "toolu_grep");
    assert!(results[1]["content"].as_str().unwrap().contains("answer()"));
    assert!(results.iter().all(|r| r.get("is_error").is_none()));
    // The assistant turn is replayed before the results.
    let messages = requests[1].body["messages"].as_array().unwrap();
    assert_eq!(messages[1]["role"], "assistant");
    assert_eq!(messages[1]["content"][1]["id"], "toolu_read");

    let edit = h.tool_results_sent(2);
    assert_eq!(edit[0]["tool_use_id"], "toolu_edit");
    assert!(edit[0].get("is_error").is_none(), "{edit:?}");
    let bash = h.tool_results_sent(3);
    let bash_out = bash[0]["content"].as_str().unwrap();
    assert!(
        bash_out.contains("42") && bash_out.contains("bash-ran"),
        "{bash_out}"
    );
}

fn uuid_like(s: &str) -> bool {
    s.len() == 36 && s.chars().filter(|c| *c == '-').count() == 4
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_json_is_one_object_per_line_with_claude_code_fields() {
    let h = Harness::new(vec![]).await;
    h.ws.write("notes.txt", "hello\n");
    let notes = h.path("notes.txt");
    h.server.push_turn(turn(vec![call(
        "toolu_1",
        "Read",
        json!({"file_path": notes.to_str().unwrap()}),
    )]));
    h.server.push_turn(ScriptedTurn::text("It says hello."));
    let out = h
        .run(&[
            "-p",
            "read notes",
            "--output-format",
            "stream-json",
            "--verbose",
        ])
        .await;
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    let lines = stdout_lines(&out);
    let kinds: Vec<&str> = lines.iter().map(|l| l["type"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["system", "assistant", "user", "assistant", "result"]
    );

    let init = &lines[0];
    assert_eq!(init["subtype"], "init");
    let session_id = init["session_id"].as_str().unwrap();
    assert_eq!(init["cwd"], h.project().to_str().unwrap());
    assert_eq!(init["model"], "claude-sonnet-4-5");
    assert_eq!(init["permissionMode"], "default");
    assert!(init["tools"].as_array().unwrap().contains(&json!("Bash")));

    let assistant = &lines[1];
    assert_eq!(assistant["session_id"], session_id);
    assert_eq!(assistant["parent_tool_use_id"], Value::Null);
    assert_eq!(assistant["message"]["type"], "message");
    assert_eq!(assistant["message"]["role"], "assistant");
    assert_eq!(assistant["message"]["stop_reason"], "tool_use");
    assert_eq!(assistant["message"]["content"][0]["type"], "tool_use");
    assert!(assistant["message"]["model"].is_string());

    let user = &lines[2];
    assert_eq!(user["message"]["role"], "user");
    assert_eq!(user["message"]["content"][0]["tool_use_id"], "toolu_1");
    assert_eq!(user["tool_use_result"]["type"], "text");
    assert_eq!(user["tool_use_result"]["file"]["numLines"], 1);

    let result = &lines[4];
    assert_eq!(result["subtype"], "success");
    assert_eq!(result["result"], "It says hello.");
    assert_eq!(result["session_id"], session_id);
    assert_eq!(result["num_turns"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_output_prints_only_the_final_answer() {
    let h = Harness::new(vec![ScriptedTurn::text("Just the answer.")]).await;
    let out = h.run(&["-p", "hi"]).await;
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "Just the answer.\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_json_without_verbose_is_refused() {
    let h = Harness::new(vec![ScriptedTurn::text("unused")]).await;
    let out = h.run(&["-p", "hi", "--output-format", "stream-json"]).await;
    assert!(!out.status.success());
    assert!(stderr(&out).contains("requires --verbose"));
    assert!(h.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthorized_key_is_one_clear_line() {
    let h = Harness::new(vec![ScriptedTurn::http_error(
        401,
        "authentication_error",
        "invalid x-api-key",
    )])
    .await;
    let out = h.run(&["-p", "hi"]).await;
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("401") && err.contains("invalid x-api-key"),
        "{err}"
    );
    assert!(err.contains("ANTHROPIC_API_KEY"), "{err}");
    assert!(
        !err.contains("panicked") && !err.contains("backtrace"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_request_shows_the_api_message_in_json() {
    let h = Harness::new(vec![ScriptedTurn::http_error(
        400,
        "invalid_request_error",
        "max_tokens: 99999999 > 64000, which is the maximum allowed",
    )])
    .await;
    let out = h.run(&["-p", "hi", "--output-format", "json"]).await;
    assert_eq!(out.status.code(), Some(1));
    let result = stdout_json(&out);
    assert_eq!(result["is_error"], true);
    assert_eq!(result["subtype"], "error_during_execution");
    assert!(
        result["errors"][0]
            .as_str()
            .unwrap()
            .contains("max_tokens: 99999999 > 64000")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_model_names_the_flag_to_fix() {
    let h = Harness::new(vec![ScriptedTurn::http_error(
        404,
        "not_found_error",
        "model: claude-nope",
    )])
    .await;
    let out = h.run(&["-p", "hi", "--model", "claude-nope"]).await;
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("model: claude-nope") && err.contains("--model"),
        "{err}"
    );
    assert_eq!(h.requests()[0].body["model"], "claude-nope");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_key_says_what_to_set_and_sends_nothing() {
    let h = Harness::new(vec![ScriptedTurn::text("unused")]).await;
    let out = finish(h.keel().env_remove("ANTHROPIC_API_KEY").args(["-p", "hi"])).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("ANTHROPIC_API_KEY"),
        "{}",
        stderr(&out)
    );
    assert!(h.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_token_is_sent_as_bearer_and_model_comes_from_env() {
    let h = Harness::new(vec![ScriptedTurn::text("ok")]).await;
    let out = finish(
        h.keel()
            .env_remove("ANTHROPIC_API_KEY")
            .env("ANTHROPIC_AUTH_TOKEN", "tok-123")
            .env("ANTHROPIC_MODEL", "claude-opus-4-1")
            .args(["-p", "hi"]),
    )
    .await;
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    let request = &h.requests()[0];
    assert_eq!(request.headers["authorization"], "Bearer tok-123");
    assert!(!request.headers.contains_key("x-api-key"));
    assert_eq!(request.body["model"], "claude-opus-4-1");
    assert_eq!(request.body["max_tokens"], 32000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_tool_input_becomes_an_error_result_and_the_loop_goes_on() {
    let h = Harness::new(vec![
        turn(vec![ScriptedBlock::ToolUseRaw {
            id: Some("toolu_bad".into()),
            name: "Read".into(),
            partial_json: "{\"file_path\": \"/etc/hos".into(),
        }]),
        ScriptedTurn::text("Sorry, retrying is not needed."),
    ])
    .await;
    let out = h.run(&["-p", "read it", "--output-format", "json"]).await;
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    let results = h.tool_results_sent(1);
    assert_eq!(results[0]["tool_use_id"], "toolu_bad");
    assert_eq!(results[0]["is_error"], true);
    let text = results[0]["content"].as_str().unwrap();
    assert!(text.contains("not a valid JSON object"), "{text}");
    // The call the model made is replayed with an object input, as the API requires.
    let replayed = &h.requests()[1].body["messages"][1]["content"][0];
    assert_eq!(replayed["type"], "tool_use");
    assert!(replayed["input"].is_object());
    assert_eq!(
        stdout_json(&out)["result"],
        "Sorry, retrying is not needed."
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_violation_and_unknown_tool_are_error_results() {
    let h = Harness::new(vec![
        turn(vec![
            call("toolu_schema", "Read", json!({"path": "x.txt"})),
            call("toolu_unknown", "Frobnicate", json!({})),
        ]),
        ScriptedTurn::text("done"),
    ])
    .await;
    let out = h.run(&["-p", "go"]).await;
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    let results = h.tool_results_sent(1);
    assert_eq!(results[0]["is_error"], true);
    let schema_err = results[0]["content"].as_str().unwrap();
    assert!(
        schema_err.contains("InputValidationError") && schema_err.contains("file_path"),
        "{schema_err}"
    );
    assert_eq!(results[1]["is_error"], true);
    assert!(
        results[1]["content"]
            .as_str()
            .unwrap()
            .contains("No such tool available: Frobnicate")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edit_with_a_non_unique_match_is_refused_and_the_file_kept() {
    let h = Harness::new(vec![]).await;
    h.ws.write("dup.txt", "x = 1\ny = 0\nx = 1\n");
    let file = h.path("dup.txt");
    let path = file.to_str().unwrap();
    h.server
        .push_turn(turn(vec![call("r", "Read", json!({"file_path": path}))]));
    h.server.push_turn(turn(vec![call(
        "e",
        "Edit",
        json!({"file_path": path, "old_string": "x = 1", "new_string": "x = 2"}),
    )]));
    h.server.push_turn(ScriptedTurn::text("It is ambiguous."));
    let out = h
        .run(&["-p", "edit", "--dangerously-skip-permissions"])
        .await;
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    let results = h.tool_results_sent(2);
    assert_eq!(results[0]["is_error"], true);
    let text = results[0]["content"].as_str().unwrap();
    assert!(
        text.contains("Found 2 matches") && text.contains("replace_all"),
        "{text}"
    );
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "x = 1\ny = 0\nx = 1\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutating_tools_are_denied_without_the_flag_and_listed() {
    let h = Harness::new(vec![]).await;
    h.ws.write("keep.txt", "original\n");
    let file = h.path("keep.txt");
    h.server.push_turn(turn(vec![call(
        "toolu_w",
        "Write",
        json!({"file_path": file.to_str().unwrap(), "content": "clobbered"}),
    )]));
    h.server.push_turn(turn(vec![call(
        "toolu_b",
        "Bash",
        json!({"command": "touch created-by-bash"}),
    )]));
    h.server.push_turn(ScriptedTurn::text("I was not allowed."));
    let out = h.run(&["-p", "write", "--output-format", "json"]).await;
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "original\n");
    assert!(!h.path("created-by-bash").exists());
    let result = stdout_json(&out);
    let denials = result["permission_denials"].as_array().unwrap();
    assert_eq!(denials.len(), 2);
    assert_eq!(denials[0]["tool_name"], "Write");
    assert_eq!(denials[0]["tool_use_id"], "toolu_w");
    assert_eq!(denials[0]["tool_input"]["content"], "clobbered");
    assert_eq!(denials[1]["tool_name"], "Bash");
    let sent = h.tool_results_sent(1);
    assert_eq!(sent[0]["is_error"], true);
    assert!(
        sent[0]["content"]
            .as_str()
            .unwrap()
            .contains("--dangerously-skip-permissions")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_turns_stops_with_error_max_turns() {
    let h = Harness::new(vec![
        turn(vec![call("g", "Glob", json!({"pattern": "*"}))]),
        ScriptedTurn::text("never sent"),
    ])
    .await;
    let out = h
        .run(&["-p", "go", "--max-turns", "1", "--output-format", "json"])
        .await;
    assert_eq!(out.status.code(), Some(1));
    let result = stdout_json(&out);
    assert_eq!(result["subtype"], "error_max_turns");
    assert_eq!(result["is_error"], true);
    assert_eq!(result["num_turns"], 1);
    assert_eq!(h.requests().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bash_timeout_leaves_no_child_or_grandchild_alive() {
    let h = Harness::new(vec![
        turn(vec![call(
            "toolu_t",
            "Bash",
            json!({
                "command": "sleep 60 & echo $! > pids; (sleep 60 & echo $! >> pids; wait) & echo $! >> pids; wait",
                "timeout": 1000
            }),
        )]),
        ScriptedTurn::text("It hung."),
    ])
    .await;
    let out = h
        .run(&["-p", "run", "--dangerously-skip-permissions"])
        .await;
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    let results = h.tool_results_sent(1);
    assert_eq!(results[0]["is_error"], true);
    assert!(
        results[0]["content"]
            .as_str()
            .unwrap()
            .contains("timed out"),
        "{:?}",
        results[0]
    );
    let pids: Vec<i32> = std::fs::read_to_string(h.path("pids"))
        .unwrap()
        .lines()
        .map(|l| l.trim().parse().unwrap())
        .collect();
    assert_eq!(pids.len(), 3);
    wait_for(
        "the timed-out processes to die",
        Duration::from_secs(5),
        || pids.iter().all(|pid| !process_alive(*pid)),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_during_bash_exits_130_and_keeps_partial_output() {
    let h = Harness::new(vec![
        turn(vec![call(
            "toolu_long",
            "Bash",
            json!({"command": "echo partial-output; sleep 60 & echo $! > sleep.pid; wait"}),
        )]),
        ScriptedTurn::text("never sent"),
    ])
    .await;
    let child = h
        .keel()
        .args([
            "-p",
            "run",
            "--output-format",
            "stream-json",
            "--verbose",
            "--dangerously-skip-permissions",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid_file = h.path("sleep.pid");
    wait_for("the Bash command to start", Duration::from_secs(30), || {
        std::fs::read_to_string(&pid_file).is_ok_and(|s| s.ends_with('\n'))
    })
    .await;
    let sleep_pid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let keel_pid = nix::unistd::Pid::from_raw(child.id().unwrap() as i32);
    nix::sys::signal::kill(keel_pid, nix::sys::signal::Signal::SIGINT).unwrap();
    let out = tokio::time::timeout(Duration::from_secs(20), child.wait_with_output())
        .await
        .expect("keel exits after SIGINT")
        .unwrap();
    assert_eq!(out.status.code(), Some(130), "stderr: {}", stderr(&out));
    let lines = stdout_lines(&out);
    let user = lines
        .iter()
        .find(|l| l["type"] == "user")
        .expect("the interrupted tool result is printed");
    let content = user["message"]["content"][0]["content"].as_str().unwrap();
    assert!(content.contains("partial-output"), "{content}");
    assert!(content.contains("interrupted"), "{content}");
    let result = lines.last().unwrap();
    assert_eq!(result["type"], "result");
    assert_eq!(result["subtype"], "error_during_execution");
    assert_eq!(result["is_error"], true);
    assert_eq!(h.requests().len(), 1);
    wait_for(
        "the interrupted command to die",
        Duration::from_secs(5),
        || !process_alive(sleep_pid),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bash_keeps_its_working_directory_between_calls() {
    let h = Harness::new(vec![
        turn(vec![call(
            "b1",
            "Bash",
            json!({"command": "mkdir -p sub/dir && cd sub/dir"}),
        )]),
        turn(vec![call("b2", "Bash", json!({"command": "pwd"}))]),
        ScriptedTurn::text("done"),
    ])
    .await;
    let out = h.run(&["-p", "go", "--dangerously-skip-permissions"]).await;
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    let pwd = h.tool_results_sent(2)[0]["content"]
        .as_str()
        .unwrap()
        .to_string();
    let expected = std::fs::canonicalize(h.path("sub/dir")).unwrap();
    assert_eq!(pwd.trim(), expected.to_str().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prompt_from_stdin_and_system_prompt_flags_reach_the_model() {
    use tokio::io::AsyncWriteExt;
    let h = Harness::new(vec![ScriptedTurn::text("ok"), ScriptedTurn::text("ok")]).await;
    let mut child = h
        .keel()
        .args(["-p", "--append-system-prompt", "Answer in French."])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"prompt from a pipe\n").await.unwrap();
    drop(stdin);
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("keel exits")
        .unwrap();
    assert!(out.status.success());
    let body = &h.requests()[0].body;
    assert_eq!(
        body["messages"][0]["content"][0]["text"],
        "prompt from a pipe\n"
    );
    let system = body["system"].as_array().unwrap();
    assert_eq!(system.last().unwrap()["text"], "Answer in French.");
    assert!(
        system[0]["text"]
            .as_str()
            .unwrap()
            .starts_with("You are keel")
    );

    // Piped input plus an argument: the input comes first, then the instruction.
    let mut child = h
        .keel()
        .args(["-p", "review this", "--system-prompt", "Be terse."])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"diff --git a b\n").await.unwrap();
    drop(stdin);
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("keel exits")
        .unwrap();
    assert!(out.status.success());
    let body = &h.requests()[1].body;
    assert_eq!(
        body["messages"][0]["content"][0]["text"],
        "diff --git a b\n\nreview this"
    );
    // Only the replacement is sent (prompt caching marks it as a cache breakpoint).
    assert_eq!(body["system"].as_array().unwrap().len(), 1);
    assert_eq!(body["system"][0]["text"], "Be terse.");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_and_help() {
    let h = Harness::new(vec![]).await;
    let out = h.run(&["--version"]).await;
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("keel {}", env!("CARGO_PKG_VERSION"))
    );
    let out = h.run(&["--help"]).await;
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("Examples:") && help.contains("--output-format"));
    assert!(help.contains("ANTHROPIC_API_KEY"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_prompt_is_refused_with_a_hint() {
    let h = Harness::new(vec![]).await;
    let out = h.run(&["-p"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no prompt"), "{}", stderr(&out));
}
