//! End-to-end: the providers through the real binary — OpenAI-compatible servers, record and
//! replay, retries visible in stream-json, thinking, costs that say when they are unknown.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Harness, finish, stderr, stdout_json, stdout_lines};
use keel_test_support::{HttpError, ScriptedBlock, ScriptedTurn};
use serde_json::{Value, json};

fn calls(blocks: Vec<(&str, &str, Value)>) -> ScriptedTurn {
    ScriptedTurn {
        content: blocks
            .into_iter()
            .map(|(id, name, input)| ScriptedBlock::ToolUse {
                id: Some(id.into()),
                name: name.into(),
                input,
            })
            .collect(),
        ..Default::default()
    }
}

/// The demo's broken project: add() subtracts.
fn write_calc(h: &Harness) {
    h.ws.write("calc.py", "def add(a, b):\n    return a - b\n");
    h.ws.write(
        "test_calc.py",
        "from calc import add\nassert add(2, 3) == 5, f\"add(2, 3) returned {add(2, 3)}\"\n",
    );
}

/// The scripted fix: read and grep in one turn, edit, run the test, answer.
fn fix_turns() -> Vec<ScriptedTurn> {
    vec![
        calls(vec![
            (
                "c1",
                "Grep",
                json!({"pattern": "def add", "output_mode": "content"}),
            ),
            ("c2", "Read", json!({"file_path": "calc.py"})),
        ]),
        calls(vec![(
            "c3",
            "Edit",
            json!({"file_path": "calc.py", "old_string": "return a - b", "new_string": "return a + b"}),
        )]),
        calls(vec![(
            "c4",
            "Bash",
            json!({"command": "python3 test_calc.py && echo 'all tests pass'"}),
        )]),
        ScriptedTurn::text("Fixed: add() now adds."),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scripted_session_works_against_an_openai_compatible_server() {
    let h = Harness::new(fix_turns()).await;
    write_calc(&h);
    let base = format!("{}/v1", h.server.url());
    let out = finish(
        h.keel()
            .env_remove("ANTHROPIC_API_KEY")
            .env("LOCAL_KEY", "local-secret")
            .args([
                "-p",
                "fix the test",
                "--output-format",
                "json",
                "--dangerously-skip-permissions",
                "--provider",
                "openai-compatible",
                "--base-url",
                &base,
                "--api-key-env",
                "LOCAL_KEY",
                "--model",
                "mock-model",
            ]),
    )
    .await;
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    assert_eq!(h.ws.read("calc.py"), "def add(a, b):\n    return a + b\n");
    let result = stdout_json(&out);
    assert_eq!(result["result"], "Fixed: add() now adds.");
    assert_eq!(result["num_turns"], 4);
    // No price is known for mock-model: the result says so instead of guessing.
    assert_eq!(result["cost_unknown_models"], json!(["mock-model"]));
    assert_eq!(result["modelUsage"]["mock-model"]["costUSD"], Value::Null);

    let requests = h.requests();
    assert_eq!(requests[0].path, "/v1/chat/completions");
    assert_eq!(requests[0].headers["authorization"], "Bearer local-secret");
    assert_eq!(requests[0].body["stream"], true);
    let tool = &requests[0].body["tools"][0];
    assert_eq!(tool["type"], "function");
    assert_eq!(tool["function"]["name"], "Read");
    // Both calls of the first turn came back as tool messages, in order.
    let messages = requests[1].body["messages"].as_array().unwrap();
    let tool_messages: Vec<&Value> = messages.iter().filter(|m| m["role"] == "tool").collect();
    assert_eq!(tool_messages.len(), 2);
    assert_eq!(tool_messages[0]["tool_call_id"], "c1");
    assert_eq!(tool_messages[1]["tool_call_id"], "c2");
    assert!(
        tool_messages[1]["content"]
            .as_str()
            .unwrap()
            .contains("return a - b")
    );
    let bash = requests[3].body["messages"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert!(
        bash["content"].as_str().unwrap().contains("all tests pass"),
        "{bash}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_then_replay_reproduces_the_result_and_the_file_changes() {
    let h = Harness::new(fix_turns()).await;
    write_calc(&h);
    let record = h.ws.root.path().join("run.jsonl");
    let out = h
        .run(&[
            "-p",
            "fix the test",
            "--output-format",
            "json",
            "--dangerously-skip-permissions",
            "--record",
            record.to_str().unwrap(),
        ])
        .await;
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    let recorded = stdout_json(&out);
    let fixed = h.ws.read("calc.py");

    // A fresh copy of the project, no key, no server: the replay does the same work.
    write_calc(&h);
    let out = finish(h.keel().env_remove("ANTHROPIC_API_KEY").args([
        "-p",
        "fix the test",
        "--output-format",
        "json",
        "--dangerously-skip-permissions",
        "--provider",
        "replay",
        "--replay",
        record.to_str().unwrap(),
    ]))
    .await;
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    let replayed = stdout_json(&out);
    assert_eq!(replayed["result"], recorded["result"]);
    assert_eq!(replayed["num_turns"], recorded["num_turns"]);
    assert_eq!(h.ws.read("calc.py"), fixed);
    assert_eq!(
        h.requests().len(),
        4,
        "the replay sent nothing to the server"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipped_quickstart_replay_fixes_the_demo_project() {
    let h = Harness::new(vec![]).await;
    write_calc(&h);
    let quickstart = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/quickstart.jsonl"
    );
    let out = finish(h.keel().env_remove("ANTHROPIC_API_KEY").args([
        "--provider",
        "replay",
        "--replay",
        quickstart,
        "-p",
        "the add test fails; fix it",
        "--dangerously-skip-permissions",
    ]))
    .await;
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    assert_eq!(h.ws.read("calc.py"), "def add(a, b):\n    return a + b\n");
    assert!(String::from_utf8_lossy(&out.stdout).contains("calc.py"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_show_in_stream_json_and_the_answer_appears_once() {
    let overloaded = || ScriptedTurn {
        http_error: Some(HttpError {
            status: 529,
            error_type: "overloaded_error".into(),
            message: "Overloaded".into(),
            retry_after: Some("0".into()),
        }),
        ..Default::default()
    };
    let h = Harness::new(vec![
        overloaded(),
        overloaded(),
        ScriptedTurn::text("made it"),
    ])
    .await;
    let out = h
        .run(&["-p", "hi", "--output-format", "stream-json", "--verbose"])
        .await;
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    let lines = stdout_lines(&out);
    let retries: Vec<&Value> = lines
        .iter()
        .filter(|l| l["subtype"] == "api_retry")
        .collect();
    assert_eq!(retries.len(), 2);
    assert_eq!(retries[0]["attempt"], 1);
    assert!(retries[0]["error"].as_str().unwrap().contains("overloaded"));
    let assistants: Vec<&Value> = lines.iter().filter(|l| l["type"] == "assistant").collect();
    assert_eq!(assistants.len(), 1);
    assert_eq!(lines.last().unwrap()["result"], "made it");
    assert!(stderr(&out).contains("retrying"), "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_exhausted_end_with_a_clear_error() {
    let failing = ScriptedTurn {
        http_error: Some(HttpError {
            status: 503,
            error_type: "api_error".into(),
            message: "upstream unavailable".into(),
            retry_after: Some("0".into()),
        }),
        ..Default::default()
    };
    let h = Harness::new(vec![failing.clone(), failing.clone(), failing]).await;
    let out = h.run(&["-p", "hi", "--max-retries", "2"]).await;
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.lines().last().unwrap().contains("upstream unavailable"),
        "{err}"
    );
    assert_eq!(h.requests().len(), 3);
    // The transcript is intact: the prompt can be continued.
    h.server.push_turn(ScriptedTurn::text("back"));
    let out = h.run(&["-c", "-p", "again"]).await;
    assert!(out.status.success(), "stderr: {}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thinking_is_requested_and_sent_back_with_its_signature() {
    let h = Harness::new(vec![
        ScriptedTurn {
            content: vec![
                ScriptedBlock::Thinking {
                    thinking: "I should list files.".into(),
                    signature: Some("sig-123".into()),
                },
                ScriptedBlock::ToolUse {
                    id: Some("g".into()),
                    name: "Glob".into(),
                    input: json!({"pattern": "*"}),
                },
            ],
            ..Default::default()
        },
        ScriptedTurn::text("done"),
    ])
    .await;
    let out = h.run(&["-p", "list", "--thinking", "5000"]).await;
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    let first = &h.requests()[0].body;
    assert_eq!(
        first["thinking"],
        json!({"type": "enabled", "budget_tokens": 5000})
    );
    assert!(first["max_tokens"].as_u64().unwrap() > 5000);
    let echoed = &h.requests()[1].body["messages"][1]["content"][0];
    assert_eq!(echoed["type"], "thinking");
    assert_eq!(echoed["signature"], "sig-123");
    // Prompt caching: breakpoints on the system prompt, tools and the conversation tail.
    let system = first["system"].as_array().unwrap();
    assert!(system.last().unwrap().get("cache_control").is_some());
    assert!(
        first["tools"]
            .as_array()
            .unwrap()
            .last()
            .unwrap()
            .get("cache_control")
            .is_some()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_provider_the_message_lists_what_to_set() {
    let h = Harness::new(vec![ScriptedTurn::text("unused")]).await;
    let out = finish(
        h.keel()
            .env_remove("ANTHROPIC_API_KEY")
            // Nothing listens here, so no local Ollama is found.
            .env("OLLAMA_HOST", "http://127.0.0.1:9")
            .args(["-p", "hi"]),
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    for needle in [
        "ANTHROPIC_API_KEY",
        "OPENAI_API_KEY",
        "ollama",
        "--provider replay",
    ] {
        assert!(err.contains(needle), "missing {needle}: {err}");
    }
    assert!(h.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_cut_by_max_tokens_inside_a_tool_call_is_explained_to_the_model() {
    let h = Harness::new(vec![
        ScriptedTurn {
            content: vec![ScriptedBlock::ToolUseRaw {
                id: Some("w1".into()),
                name: "Write".into(),
                partial_json: "{\"file_path\": \"big.txt\", \"content\": \"line 1\\nline 2\\nli"
                    .into(),
            }],
            stop_reason: Some("max_tokens".into()),
            ..Default::default()
        },
        ScriptedTurn::text("I'll write it in smaller pieces."),
    ])
    .await;
    let out = h
        .run(&["-p", "write a big file", "--dangerously-skip-permissions"])
        .await;
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    assert!(!h.path("big.txt").exists(), "a truncated call is not run");
    let sent = &h.tool_results_sent(1)[0];
    assert_eq!(sent["is_error"], true);
    let text = sent["content"].as_str().unwrap();
    assert!(
        text.contains("max_tokens") && text.contains("less content"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_is_reported() {
    let h = Harness::new(vec![ScriptedTurn {
        stop_reason: Some("refusal".into()),
        ..ScriptedTurn::text("I can't help with that.")
    }])
    .await;
    let out = h.run(&["-p", "something", "--output-format", "json"]).await;
    assert_eq!(out.status.code(), Some(1));
    let result = stdout_json(&out);
    assert_eq!(result["is_error"], true);
    assert!(
        result["errors"][0].as_str().unwrap().contains("refusal"),
        "{result}"
    );
}
