//! End-to-end: subagents as background tasks (`Agent` with `run_in_background`, read with
//! `TaskOutput`, stopped with `TaskStop`, announced when done), subagents in a git worktree of
//! their own (`isolation: "worktree"`), and `/tasks`, through the real binary.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::{Harness, process_alive, stderr, stdout_lines, wait_for};
use keel_test_support::{ScriptedBlock, ScriptedTurn, TurnMatcher};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _};

/// Words only the main agent's system prompt has.
const MAIN: &str = "You are keel, a coding agent";
/// Words only the helper agent's system prompt has.
const HELPER: &str = "HELPER-AGENT";

fn call(id: &str, name: &str, input: Value) -> ScriptedBlock {
    ScriptedBlock::ToolUse {
        id: Some(id.to_string()),
        name: name.to_string(),
        input,
    }
}

/// A turn served only to requests whose system prompt contains `marker`.
fn for_system(marker: &str, turn: ScriptedTurn) -> ScriptedTurn {
    ScriptedTurn {
        when: Some(TurnMatcher {
            system_contains: Some(marker.into()),
            ..Default::default()
        }),
        ..turn
    }
}

fn tool_turn(marker: &str, blocks: Vec<ScriptedBlock>) -> ScriptedTurn {
    for_system(
        marker,
        ScriptedTurn {
            content: blocks,
            ..Default::default()
        },
    )
}

/// The helper agent: a shell and nothing else.
fn write_helper(h: &Harness) {
    let dir = h.path(".keel/agents");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("helper.md"),
        format!("---\nname: helper\ndescription: does chores\ntools: Bash\n---\n{HELPER}\n"),
    )
    .unwrap();
}

/// The text of the tool result answering `id` in any captured request.
fn result_text(h: &Harness, id: &str) -> String {
    for request in h.requests() {
        for message in request.body["messages"].as_array().unwrap() {
            for block in message["content"].as_array().into_iter().flatten() {
                if block["type"] == "tool_result" && block["tool_use_id"] == id {
                    return match &block["content"] {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                }
            }
        }
    }
    panic!("no result for {id}")
}

fn system_text(body: &Value) -> String {
    body["system"].to_string()
}

/// Requests of the main agent, in order.
fn main_requests(h: &Harness) -> Vec<Value> {
    h.requests()
        .into_iter()
        .map(|r| r.body)
        .filter(|b| system_text(b).contains(MAIN))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_background_agent_answers_through_task_output_and_a_notice() {
    let h = Harness::new(vec![
        tool_turn(
            MAIN,
            vec![call(
                "a1",
                "Agent",
                json!({
                    "description": "Count the lines",
                    "prompt": "Count the lines of notes.txt",
                    "subagent_type": "helper",
                    "run_in_background": true
                }),
            )],
        ),
        tool_turn(
            MAIN,
            vec![call(
                "out",
                "TaskOutput",
                json!({"task_id": "agent_1", "block": true, "timeout": 30000}),
            )],
        ),
        for_system(MAIN, ScriptedTurn::text("the helper counted 3 lines")),
        tool_turn(
            HELPER,
            vec![call(
                "h1",
                "Bash",
                json!({"command": "wc -l < notes.txt", "description": "Count lines"}),
            )],
        ),
        for_system(HELPER, ScriptedTurn::text("HELPER ANSWER: 3 lines")),
        // The resumed session below.
        for_system(MAIN, ScriptedTurn::text("still here")),
    ])
    .await;
    write_helper(&h);
    std::fs::write(h.path("notes.txt"), "a\nb\nc\n").unwrap();
    let out = h
        .run(&[
            "-p",
            "count in the background",
            "--output-format",
            "stream-json",
            "--verbose",
            "--dangerously-skip-permissions",
        ])
        .await;
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    let lines = stdout_lines(&out);
    assert_eq!(
        lines.last().unwrap()["result"],
        "the helper counted 3 lines",
        "{lines:#?}"
    );

    // The helper's tokens count in the run's usage: 3 main turns and 2 helper turns of 20
    // output tokens each.
    assert_eq!(lines.last().unwrap()["usage"]["output_tokens"], 100);

    // The Agent call returned at once with the task id, before the helper had answered.
    let launched = result_text(&h, "a1");
    assert!(
        launched.contains("Async agent launched successfully") && launched.contains("agent_1"),
        "{launched}"
    );
    assert!(!launched.contains("HELPER ANSWER"), "{launched}");
    // TaskOutput waited for the answer.
    let read = result_text(&h, "out");
    assert!(
        read.contains("<task_type>local_agent</task_type>"),
        "{read}"
    );
    assert!(read.contains("<status>completed</status>"), "{read}");
    assert!(read.contains("HELPER ANSWER: 3 lines"), "{read}");
    // The helper really ran its command (its second request carries the output).
    let helper_saw = h
        .requests()
        .into_iter()
        .filter(|r| system_text(&r.body).contains(HELPER))
        .map(|r| r.body["messages"].to_string())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(helper_saw.contains("3"), "{helper_saw}");

    // A completion notice entered the main conversation exactly once, with the answer.
    let mains = main_requests(&h);
    let notices: Vec<String> = mains
        .iter()
        .flat_map(|b| b["messages"].as_array().unwrap().clone())
        .map(|m| m.to_string())
        .filter(|m| m.contains("<task-notification>"))
        .collect();
    let last = mains.last().unwrap()["messages"].to_string();
    assert_eq!(
        last.matches("<task-notification>").count(),
        1,
        "one notice in the conversation: {last}"
    );
    assert!(!notices.is_empty());
    assert!(
        last.contains("<task-id>agent_1</task-id>")
            && last.contains("Agent \\\"Count the lines\\\" completed")
            && last.contains("HELPER ANSWER: 3 lines"),
        "{last}"
    );

    // The frontend saw the helper's messages tagged with the Agent call's id.
    assert!(
        lines
            .iter()
            .any(|l| l["type"] == "assistant" && l["parent_tool_use_id"] == "a1"),
        "subagent messages carry the parent's tool id: {lines:#?}"
    );

    // The transcript is whole: the session resumes, and its conversation is valid.
    let again = h
        .run(&[
            "-p",
            "are you there",
            "--continue",
            "--output-format",
            "json",
        ])
        .await;
    assert!(again.status.success(), "stderr: {}", stderr(&again));
    let resumed = main_requests(&h).last().unwrap()["messages"].to_string();
    assert!(
        resumed.contains("Async agent launched successfully"),
        "{resumed}"
    );
    assert!(resumed.contains("HELPER ANSWER: 3 lines"), "{resumed}");
    assert!(
        !resumed.contains("wc -l"),
        "subagent turns stay out: {resumed}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_stop_ends_a_background_agent_and_its_command() {
    let h = Harness::new(vec![
        tool_turn(
            MAIN,
            vec![call(
                "a1",
                "Agent",
                json!({
                    "description": "Wait a long time",
                    "prompt": "wait",
                    "subagent_type": "helper",
                    "run_in_background": true
                }),
            )],
        ),
        tool_turn(
            MAIN,
            vec![call(
                "stop",
                "Bash",
                // Stop only once the helper's command is running.
                json!({"command": "for i in $(seq 200); do [ -s sub.pid ] && break; sleep 0.05; done; cat sub.pid"}),
            )],
        ),
        tool_turn(MAIN, vec![call("kill", "TaskStop", json!({"task_id": "agent_1"}))]),
        tool_turn(
            MAIN,
            vec![call(
                "out",
                "TaskOutput",
                json!({"task_id": "agent_1", "block": false}),
            )],
        ),
        for_system(MAIN, ScriptedTurn::text("stopped it")),
        tool_turn(
            HELPER,
            vec![call(
                "h1",
                "Bash",
                json!({"command": "echo $$ > sub.pid; exec sleep 60", "timeout": 120000}),
            )],
        ),
        for_system(HELPER, ScriptedTurn::text("HELPER should never get here")),
    ])
    .await;
    write_helper(&h);
    let started = std::time::Instant::now();
    let out = h
        .run(&["-p", "start and stop", "--dangerously-skip-permissions"])
        .await;
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "stopped it");
    assert!(
        started.elapsed() < Duration::from_secs(45),
        "the session did not wait for the helper's command"
    );
    let stopped = result_text(&h, "kill");
    assert!(
        stopped.contains("Successfully stopped task: agent_1"),
        "{stopped}"
    );
    let read = result_text(&h, "out");
    assert!(read.contains("<status>killed</status>"), "{read}");
    // The helper's command went with it.
    let pid: i32 = std::fs::read_to_string(h.path("sub.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    wait_for(
        "the helper's command to end",
        Duration::from_secs(10),
        || !process_alive(pid),
    )
    .await;
    // A stopped task leaves no completion notice, and the helper never asked again.
    let everything: String = h
        .requests()
        .iter()
        .map(|r| r.body["messages"].to_string())
        .collect();
    assert!(!everything.contains("<task-notification>"), "{everything}");
    assert!(!everything.contains("should never get here"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worktree_isolation_keeps_changed_worktrees_and_removes_clean_ones() {
    let h = Harness::new(vec![
        tool_turn(
            MAIN,
            vec![call(
                "a1",
                "Agent",
                json!({
                    "description": "Add a note",
                    "prompt": "add a note and commit it",
                    "subagent_type": "helper",
                    "isolation": "worktree"
                }),
            )],
        ),
        tool_turn(
            MAIN,
            vec![call(
                "a2",
                "Agent",
                json!({
                    "description": "Look around",
                    "prompt": "where are you?",
                    "subagent_type": "helper",
                    "isolation": "worktree"
                }),
            )],
        ),
        for_system(MAIN, ScriptedTurn::text("both helpers done")),
        tool_turn(
            "keel/agent-add-a-note",
            vec![call(
                "w1",
                "Bash",
                json!({"command": "pwd && echo remember > note.txt && git add note.txt && git commit -qm 'add a note' && echo draft > wip.txt"}),
            )],
        ),
        for_system("keel/agent-add-a-note", ScriptedTurn::text("note added")),
        tool_turn(
            "keel/agent-look-around",
            vec![call("w2", "Bash", json!({"command": "pwd && git status --short"}))],
        ),
        for_system("keel/agent-look-around", ScriptedTurn::text("nothing to do")),
    ])
    .await;
    h.ws.git_init();
    write_helper(&h);
    let out = h
        .run(&["-p", "isolate them", "--dangerously-skip-permissions"])
        .await;
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "both helpers done"
    );
    let worktrees = h.path(".keel/worktrees");
    let kept = worktrees.join("agent-add-a-note");
    let gone = worktrees.join("agent-look-around");

    // The first helper worked in its worktree: its shell started there, its commit is on the
    // worktree's branch, and the main checkout has neither file.
    let first = result_text(&h, "w1");
    assert!(first.contains(&kept.display().to_string()), "{first}");
    assert_eq!(
        std::fs::read_to_string(kept.join("note.txt")).unwrap(),
        "remember\n"
    );
    assert!(!h.path("note.txt").exists() && !h.path("wip.txt").exists());
    assert_eq!(
        h.ws.git(&["log", "-1", "--format=%s", "keel/agent-add-a-note"])
            .trim(),
        "add a note"
    );
    // It holds changes, so it was kept and the result says where and on which branch.
    let kept_text = result_text(&h, "a1");
    assert!(kept_text.starts_with("note added"), "{kept_text}");
    assert!(
        kept_text.contains(&kept.display().to_string())
            && kept_text.contains("branch keel/agent-add-a-note"),
        "{kept_text}"
    );
    assert!(kept.join("wip.txt").exists());

    // The second made no changes: its worktree and branch are gone.
    let second = result_text(&h, "w2");
    assert!(second.contains(&gone.display().to_string()), "{second}");
    let removed_text = result_text(&h, "a2");
    assert!(
        removed_text.contains("made no changes") && removed_text.contains("was removed"),
        "{removed_text}"
    );
    assert!(!gone.exists());
    assert_eq!(
        h.ws.git(&["branch", "--list", "keel/agent-look-around"])
            .trim(),
        ""
    );
    let listed = h.ws.git(&["worktree", "list"]);
    assert!(listed.contains("agent-add-a-note"), "{listed}");
    assert!(!listed.contains("agent-look-around"), "{listed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolation_outside_a_repository_is_refused_with_the_reason() {
    let h = Harness::new(vec![
        tool_turn(
            MAIN,
            vec![call(
                "a1",
                "Agent",
                json!({
                    "description": "Add a note",
                    "prompt": "add a note",
                    "subagent_type": "helper",
                    "isolation": "worktree"
                }),
            )],
        ),
        for_system(MAIN, ScriptedTurn::text("could not isolate")),
    ])
    .await;
    write_helper(&h);
    let out = h
        .run(&["-p", "isolate", "--dangerously-skip-permissions"])
        .await;
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    let text = result_text(&h, "a1");
    assert!(
        text.contains("Could not create a worktree for the subagent")
            && text.contains("not inside a git repository"),
        "{text}"
    );
}

/// `/tasks` in a session fed prompts on stdin: it lists a background command and a
/// background agent with their kind, status, description and runtime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slash_tasks_lists_background_commands_and_agents() {
    let h = Harness::new(vec![
        tool_turn(
            MAIN,
            vec![call(
                "b1",
                "Bash",
                json!({
                    "command": "sleep 60",
                    "description": "Wait for a minute",
                    "run_in_background": true
                }),
            )],
        ),
        tool_turn(
            MAIN,
            vec![call(
                "a1",
                "Agent",
                json!({
                    "description": "Say hello",
                    "prompt": "say hello",
                    "subagent_type": "helper",
                    "run_in_background": true
                }),
            )],
        ),
        tool_turn(
            MAIN,
            vec![call(
                "out",
                "TaskOutput",
                json!({"task_id": "agent_2", "block": true, "timeout": 30000}),
            )],
        ),
        for_system(MAIN, ScriptedTurn::text("started both")),
        for_system(HELPER, ScriptedTurn::text("hello")),
    ])
    .await;
    write_helper(&h);
    let mut child = h
        .keel()
        .args([
            "--output-format",
            "stream-json",
            "--verbose",
            "--input-format",
            "stream-json",
            "--dangerously-skip-permissions",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let prompt = |text: &str| {
        format!(
            "{}\n",
            json!({
                "type": "user",
                "message": {"role": "user", "content": text},
                "parent_tool_use_id": null,
                "session_id": "default",
            })
        )
    };
    let mut results = Vec::new();
    for text in ["start two tasks", "/tasks"] {
        stdin.write_all(prompt(text).as_bytes()).await.unwrap();
        stdin.flush().await.unwrap();
        loop {
            let line = tokio::time::timeout(Duration::from_secs(30), stdout.next_line())
                .await
                .expect("a result within 30 s")
                .unwrap()
                .expect("stdout open");
            let value: Value = serde_json::from_str(&line).unwrap();
            if value["type"] == "result" {
                results.push(value);
                break;
            }
        }
    }
    drop(stdin);
    let output = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("keel exits after its input ends")
        .unwrap();
    assert!(output.status.success());
    assert_eq!(results[0]["result"], "started both");
    let listing = results[1]["result"].as_str().unwrap().to_string();
    assert!(listing.contains("(1 running)"), "{listing}");
    let row = |id: &str| {
        listing
            .lines()
            .find(|l| l.trim_start().starts_with(id))
            .unwrap_or_else(|| panic!("no row for {id}: {listing}"))
            .to_string()
    };
    let bash = row("bash_1");
    assert!(
        bash.contains("local_bash")
            && bash.contains("running")
            && bash.contains("Wait for a minute"),
        "{bash}"
    );
    assert!(
        bash.split_whitespace()
            .any(|w| w.ends_with('s') && w[..w.len() - 1].parse::<u64>().is_ok()),
        "a runtime: {bash}"
    );
    let agent = row("agent_2");
    assert!(
        agent.contains("local_agent") && agent.contains("completed") && agent.contains("Say hello"),
        "{agent}"
    );
    // /tasks is answered by keel, not the model.
    assert_eq!(main_requests(&h).len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_background_agent_in_a_worktree_says_where_its_work_is() {
    let h = Harness::new(vec![
        tool_turn(
            MAIN,
            vec![call(
                "a1",
                "Agent",
                json!({
                    "description": "Write docs",
                    "prompt": "write the docs",
                    "subagent_type": "helper",
                    "run_in_background": true,
                    "isolation": "worktree"
                }),
            )],
        ),
        tool_turn(
            MAIN,
            vec![call(
                "out",
                "TaskOutput",
                json!({"task_id": "agent_1", "block": true, "timeout": 30000}),
            )],
        ),
        for_system(MAIN, ScriptedTurn::text("docs are on a branch")),
        tool_turn(
            "keel/agent-write-docs",
            vec![call(
                "w1",
                "Bash",
                json!({"command": "echo docs > DOCS.md && git add DOCS.md && git commit -qm 'write docs'"}),
            )],
        ),
        for_system("keel/agent-write-docs", ScriptedTurn::text("docs written")),
    ])
    .await;
    h.ws.git_init();
    write_helper(&h);
    let out = h
        .run(&["-p", "docs please", "--dangerously-skip-permissions"])
        .await;
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    let tree = h.path(".keel/worktrees/agent-write-docs");
    let launched = result_text(&h, "a1");
    assert!(
        launched.contains(&format!("own git worktree at {}", tree.display())),
        "{launched}"
    );
    let read = result_text(&h, "out");
    assert!(
        read.contains("docs written") && read.contains("on branch keel/agent-write-docs"),
        "{read}"
    );
    assert_eq!(
        h.ws.git(&["log", "-1", "--format=%s", "keel/agent-write-docs"])
            .trim(),
        "write docs"
    );
    assert!(!h.path("DOCS.md").exists());
}
