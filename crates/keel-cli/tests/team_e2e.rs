//! End-to-end: a team lead (`keel -p`) creates a team and a board of six tasks with
//! dependencies, starts three members (each a `keel` process of its own), and the members
//! claim, work (each task in its own git worktree) and complete the tasks, reporting to the
//! lead through mailboxes; the lead then asks them to stop. Also: a member killed mid-task
//! leaves its task to another once its lease runs out, and a member whose plan needs approval
//! waits for the lead's answer.
//!
//! `KEEL_STRESS=1` runs the team test 20 times.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{Harness, process_alive, stderr, wait_for};
use keel_tasks::store::{NewTask, TaskStatus};
use keel_tasks::team::{MemberConfig, Team, Timing};
use keel_test_support::{ScriptedBlock, ScriptedTurn, TurnMatcher};
use serde_json::{Value, json};

const LEAD_PROMPT: &str = "Build the six files with a team";

fn call(id: &str, name: &str, input: Value) -> ScriptedBlock {
    ScriptedBlock::ToolUse {
        id: Some(id.to_string()),
        name: name.to_string(),
        input,
    }
}

fn when(needle: &str, content: Vec<ScriptedBlock>) -> ScriptedTurn {
    ScriptedTurn {
        content,
        when: Some(TurnMatcher {
            messages_contain: Some(needle.to_string()),
            ..TurnMatcher::default()
        }),
        ..Default::default()
    }
}

fn text(t: &str) -> ScriptedBlock {
    ScriptedBlock::Text { text: t.into() }
}

/// The turns one member needs to work task `n`: commit a file in its worktree, complete the
/// task and tell the lead, then finish.
fn member_turns(n: u32) -> Vec<ScriptedTurn> {
    vec![
        when(
            &format!("Work on task #{n}:"),
            vec![call(
                &format!("work-{n}"),
                "Bash",
                json!({"command": format!(
                    "pwd && printf '{n}\\n' > file-{n}.txt && git add file-{n}.txt && git commit -qm 'task {n}' && echo committed-{n}"
                )}),
            )],
        ),
        when(
            &format!("committed-{n}"),
            vec![
                call(
                    &format!("done-{n}"),
                    "TaskUpdate",
                    json!({"taskId": n.to_string(), "status": "completed"}),
                ),
                call(
                    &format!("tell-{n}"),
                    "SendMessage",
                    json!({"to": "team-lead", "message": format!("finished task {n}"), "summary": format!("task {n} done")}),
                ),
            ],
        ),
        when(
            &format!("finished task {n}"),
            vec![text(&format!("Task {n} is done."))],
        ),
    ]
}

/// Dependencies: 3 waits for 1; 4 for 1 and 2; 5 for 3; 6 for 4 and 5.
const DEPENDENCIES: &[(u32, &[u32])] = &[(3, &[1]), (4, &[1, 2]), (5, &[3]), (6, &[4, 5])];

fn lead_script() -> Vec<ScriptedTurn> {
    let mut turns = vec![
        when(LEAD_PROMPT, vec![call("team", "TeamCreate", json!({"team_name": "alpha", "description": "six files"}))]),
        when(
            LEAD_PROMPT,
            (1..=6)
                .map(|n| {
                    call(
                        &format!("create-{n}"),
                        "TaskCreate",
                        json!({"subject": format!("Write file {n}"), "description": format!("Create file-{n}.txt")}),
                    )
                })
                .collect(),
        ),
        when(
            LEAD_PROMPT,
            DEPENDENCIES
                .iter()
                .map(|(task, blockers)| {
                    call(
                        &format!("dep-{task}"),
                        "TaskUpdate",
                        json!({"taskId": task.to_string(), "addBlockedBy": blockers.iter().map(|b| b.to_string()).collect::<Vec<_>>()}),
                    )
                })
                .collect(),
        ),
        when(
            LEAD_PROMPT,
            ["ana", "ben", "cy"]
                .iter()
                .map(|name| {
                    call(
                        &format!("spawn-{name}"),
                        "SpawnTeammate",
                        json!({"name": name, "prompt": "Work carefully; one file per task."}),
                    )
                })
                .collect(),
        ),
        when(LEAD_PROMPT, vec![text("The team is at work.")]),
        // Once the board is done, everyone is asked to stop.
        when(
            "All 6 tasks on the board are completed",
            vec![call("shutdown", "SendMessage", json!({"to": "*", "message": {"type": "shutdown_request", "reason": "all tasks are done"}}))],
        ),
        when("shutdown-1@", vec![text("Asked everyone to stop.")]),
    ];
    for _ in 0..16 {
        turns.push(when(LEAD_PROMPT, vec![text("Noted.")]));
    }
    turns
}

fn team_env(cmd: &mut tokio::process::Command) {
    cmd.env("CLAUDE_CODE_EXPERIMENTAL_AGENT_TEAMS", "1")
        .env("KEEL_TEAM_POLL_MS", "100")
        .env("KEEL_TEAM_LEASE_MS", "30000")
        .env("KEEL_TEAM_IDLE_TIMEOUT_MS", "60000")
        .env("KEEL_TEAM_PROTOCOL_TIMEOUT_MS", "60000");
}

fn history(h: &Harness, list: &str) -> Vec<Value> {
    std::fs::read_to_string(h.path(&format!(".keel/tasks/{list}/log.jsonl")))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn inbox(h: &Harness, team: &str, member: &str) -> Vec<Value> {
    std::fs::read_to_string(h.path(&format!(".keel/teams/{team}/inboxes/{member}.jsonl")))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn lead_transcript(h: &Harness, session: &str) -> Vec<Value> {
    let dir =
        h.ws.home
            .join(".keel/projects")
            .join(keel_session::escape_path(h.project()));
    std::fs::read_to_string(dir.join(format!("{session}.jsonl")))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn tool_result(h: &Harness, id: &str) -> String {
    for request in h.requests() {
        for message in request.body["messages"].as_array().unwrap() {
            for block in message["content"].as_array().into_iter().flatten() {
                if block["type"] == "tool_result" && block["tool_use_id"] == id {
                    return block["content"].as_str().unwrap_or_default().to_string();
                }
            }
        }
    }
    panic!("no result for {id}")
}

async fn a_team_run() {
    let mut script = lead_script();
    for n in 1..=6 {
        script.extend(member_turns(n));
    }
    let h = Harness::new(script).await;
    h.ws.write("README.md", "six files\n");
    h.ws.git_init();
    let mut cmd = h.keel();
    cmd.args([
        "-p",
        LEAD_PROMPT,
        "--dangerously-skip-permissions",
        "--output-format",
        "json",
    ]);
    team_env(&mut cmd);
    let out = tokio::time::timeout(Duration::from_secs(180), cmd.output())
        .await
        .expect("the team finishes within 3 minutes")
        .unwrap();
    let logs: String = ["ana", "ben", "cy"]
        .iter()
        .map(|m| {
            std::fs::read_to_string(h.path(&format!(".keel/teams/alpha/logs/{m}.log")))
                .unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        out.status.success(),
        "lead stderr: {}\nmember logs:\n{logs}",
        stderr(&out)
    );
    let result: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(result["type"], "result", "one JSON result: {result}");

    // Every task done exactly once, claimed once, in dependency order.
    let log = history(&h, "alpha");
    let mut by_action: BTreeMap<(String, String), Vec<(String, String)>> = BTreeMap::new();
    for entry in &log {
        by_action
            .entry((
                entry["task"].as_str().unwrap().into(),
                entry["action"].as_str().unwrap().into(),
            ))
            .or_default()
            .push((
                entry["ts"].as_str().unwrap().into(),
                entry["by"].as_str().unwrap_or("").into(),
            ));
    }
    for n in 1..=6u32 {
        let id = n.to_string();
        let debug = || {
            format!(
                "board history:\n{}\nlead stderr:\n{}\nmember logs:\n{logs}",
                log.iter()
                    .map(Value::to_string)
                    .collect::<Vec<_>>()
                    .join("\n"),
                stderr(&out)
            )
        };
        let claimed = by_action
            .get(&(id.clone(), "claimed".into()))
            .unwrap_or_else(|| panic!("task {n} was never claimed; {}", debug()));
        let completed = by_action
            .get(&(id.clone(), "completed".into()))
            .unwrap_or_else(|| panic!("task {n} was never completed; {}", debug()));
        assert_eq!(
            claimed.len(),
            1,
            "task {n} claimed once: {claimed:?}\n{logs}"
        );
        assert_eq!(completed.len(), 1, "task {n} completed once: {completed:?}");
        assert_eq!(
            claimed[0].1, completed[0].1,
            "task {n} completed by its claimer"
        );
        assert!(
            !by_action.contains_key(&(id.clone(), "released".into())),
            "task {n} was never given back"
        );
    }
    for (task, blockers) in DEPENDENCIES {
        let claimed = &by_action[&(task.to_string(), "claimed".into())][0].0;
        for blocker in *blockers {
            let done = &by_action[&(blocker.to_string(), "completed".into())][0].0;
            assert!(
                done < claimed,
                "#{task} was claimed ({claimed}) before #{blocker} was completed ({done})"
            );
        }
    }

    // Each task ran in its own worktree, and its branch holds exactly its commit.
    for n in 1..=6u32 {
        let branch = format!("keel/task-{n}-write-file-{n}");
        let pwd = tool_result(&h, &format!("work-{n}"));
        assert_eq!(
            pwd.lines().next().unwrap(),
            h.path(&format!(".keel/worktrees/task-{n}-write-file-{n}"))
                .display()
                .to_string()
        );
        let subjects =
            h.ws.git(&["log", "--format=%s", &format!("main..{branch}")]);
        assert_eq!(subjects.trim(), format!("task {n}"), "branch {branch}");
        let files = h.ws.git(&["show", "--name-only", "--format=", &branch]);
        assert_eq!(files.trim(), format!("file-{n}.txt"));
        // Finished and clean: the checkout is gone, the branch stays.
        assert!(
            !h.path(&format!(".keel/worktrees/task-{n}-write-file-{n}"))
                .exists(),
            "the worktree of task {n} is left; member logs:\n{logs}"
        );
    }
    assert!(
        !h.path("file-1.txt").exists(),
        "the main checkout is untouched"
    );

    // Messages: each report reached the lead once; each member got one shutdown request and
    // answered it once.
    let lead_inbox = inbox(&h, "alpha", "team-lead");
    let session = result["session_id"].as_str().unwrap();
    let transcript = lead_transcript(&h, session);
    let delivered: Vec<String> = transcript
        .iter()
        .filter(|r| r["event"]["type"] == "user_message")
        .map(|r| r["event"]["content"].to_string())
        .collect();
    for n in 1..=6 {
        let needle = format!("finished task {n}");
        let sent = lead_inbox
            .iter()
            .filter(|e| e["text"] == needle.as_str())
            .count();
        assert_eq!(sent, 1, "report {n} sent once");
        let seen: usize = delivered.iter().map(|d| d.matches(&needle).count()).sum();
        assert_eq!(
            seen, 1,
            "report {n} delivered once to the lead's conversation"
        );
    }
    for member in ["ana", "ben", "cy"] {
        let member_inbox = inbox(&h, "alpha", member);
        let requests: Vec<&Value> = member_inbox
            .iter()
            .filter(|e| e["type"] == "shutdown_request")
            .collect();
        assert_eq!(requests.len(), 1, "{member} got one shutdown request");
        let id = requests[0]["request_id"].as_str().unwrap();
        assert_eq!(id, format!("shutdown-1@{member}"));
        let answers = lead_inbox
            .iter()
            .filter(|e| e["type"] == "shutdown_response" && e["request_id"] == id)
            .count();
        assert_eq!(answers, 1, "{member} answered once");
        let seen: usize = delivered.iter().map(|d| d.matches(id).count()).sum();
        assert_eq!(seen, 1, "{member}'s answer reached the lead once");
        let state: Value = serde_json::from_str(
            &std::fs::read_to_string(h.path(&format!(".keel/teams/alpha/members/{member}.json")))
                .unwrap(),
        )
        .unwrap();
        assert_eq!(state["status"], "stopped");
        assert_eq!(state["detail"], "stopped at the lead's request");
        let pid = i32::try_from(state["pid"].as_u64().unwrap()).unwrap();
        assert!(!process_alive(pid), "{member}'s process is gone");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_complete_a_board_of_six_dependent_tasks() {
    let rounds = if std::env::var_os("KEEL_STRESS").is_some() {
        20
    } else {
        1
    };
    for round in 0..rounds {
        eprintln!("team round {}", round + 1);
        a_team_run().await;
    }
}

/// A team made directly on disk, for tests that start members by hand.
fn team_on_disk(h: &Harness, name: &str, members: &[&str], timing: Timing, plan: bool) -> Team {
    let team = Team::create(h.project(), name, "test team", timing).unwrap();
    for member in members {
        team.add_member(MemberConfig {
            name: member.to_string(),
            prompt: String::new(),
            plan_mode_required: plan,
            spawned_at: "2026-01-01T00:00:00Z".into(),
        })
        .unwrap();
    }
    team
}

fn member(h: &Harness, team: &str, name: &str, mode: &str) -> tokio::process::Child {
    let log = std::fs::File::create(h.ws.root.path().join(format!("{name}.log"))).unwrap();
    h.keel()
        .args([
            "--permission-mode",
            mode,
            "__teammate",
            "--team",
            team,
            "--name",
            name,
        ])
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_members_task_is_released_after_its_lease_and_done_by_another() {
    let mut script = vec![when(
        "Work on task #1:",
        vec![call(
            "hang",
            "Bash",
            json!({"command": "echo $$ > ../../../sleeper.pid; exec sleep 60"}),
        )],
    )];
    script.extend(member_turns(1));
    let h = Harness::new(script).await;
    h.ws.write("README.md", "x\n");
    h.ws.git_init();
    let timing = Timing {
        lease_ms: 1500,
        idle_timeout_ms: 1500,
        poll_ms: 100,
        protocol_timeout_ms: 10_000,
    };
    let team = team_on_disk(&h, "beta", &["ana", "ben"], timing, false);
    let board = team.board().unwrap();
    board
        .create(
            NewTask {
                subject: "Write file 1".into(),
                ..NewTask::default()
            },
            None,
        )
        .unwrap();

    let mut ana = member(&h, "beta", "ana", "bypassPermissions");
    let sleeper = h.path("sleeper.pid");
    wait_for("ana to start the task", Duration::from_secs(30), || {
        sleeper.exists()
    })
    .await;
    assert_eq!(
        board.get("1").unwrap().unwrap().owner.as_deref(),
        Some("ana")
    );
    let mut ben = member(&h, "beta", "ben", "bypassPermissions");
    // ana dies mid-task, holding the claim.
    ana.start_kill().unwrap();
    ana.wait().await.unwrap();

    let done = tokio::time::timeout(Duration::from_secs(60), ben.wait()).await;
    let ben_log = std::fs::read_to_string(h.ws.root.path().join("ben.log")).unwrap_or_default();
    assert!(done.is_ok(), "ben stops after finishing; log:\n{ben_log}");
    let task = board.get("1").unwrap().unwrap();
    assert_eq!(task.status, TaskStatus::Completed, "ben log:\n{ben_log}");
    assert_eq!(task.owner.as_deref(), Some("ben"));
    let actions: Vec<String> = history(&h, "beta")
        .iter()
        .map(|e| {
            format!(
                "{} {}",
                e["action"].as_str().unwrap(),
                e["by"].as_str().unwrap_or("")
            )
        })
        .collect();
    assert_eq!(
        actions,
        [
            "created ",
            "claimed ana",
            "released ana",
            "claimed ben",
            "completed ben"
        ],
        "ben log:\n{ben_log}"
    );
    assert_eq!(
        h.ws.git(&["log", "--format=%s", "main..keel/task-1-write-file-1"])
            .trim(),
        "task 1"
    );
    let state = team.state("ana").unwrap().unwrap();
    assert_eq!(state.status, keel_tasks::team::MemberStatus::Stopped);
    // ben stopped after a while without work and said so.
    let said = inbox(&h, "beta", "team-lead");
    assert!(
        said.iter()
            .any(|e| e["type"] == "status" && e["from"] == "ben"),
        "{said:?}"
    );
    if let Some(pid) = std::fs::read_to_string(&sleeper)
        .ok()
        .and_then(|p| p.trim().parse::<i32>().ok())
    {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_waits_for_the_lead_to_approve_its_plan() {
    let h = Harness::new(vec![
        when("Work on task #1:", vec![call("plan-a", "ExitPlanMode", json!({"plan": "1. write file-1.txt"}))]),
        when("rejected your plan", vec![call("plan-b", "ExitPlanMode", json!({"plan": "1. write file-1.txt with a newline"}))]),
        when("The user approved your plan", vec![call("write", "Bash", json!({"command": "printf '1\\n' > file-1.txt && git add file-1.txt && git commit -qm 'task 1' && echo committed-1"}))]),
        when("committed-1", vec![call("done-1", "TaskUpdate", json!({"taskId": "1", "status": "completed"}))]),
        when("Updated task #1", vec![text("done")]),
    ])
    .await;
    h.ws.write("README.md", "x\n");
    h.ws.git_init();
    let timing = Timing {
        lease_ms: 30_000,
        idle_timeout_ms: 1000,
        poll_ms: 100,
        protocol_timeout_ms: 30_000,
    };
    let team = team_on_disk(&h, "gamma", &["ana"], timing, true);
    let board = team.board().unwrap();
    board
        .create(
            NewTask {
                subject: "Write file 1".into(),
                ..NewTask::default()
            },
            None,
        )
        .unwrap();
    let mut ana = member(&h, "gamma", "ana", "bypassPermissions");
    let mailbox = team.mailbox();

    // The lead rejects the first plan, then approves the second.
    let mut answered = 0;
    let mut requests = Vec::new();
    wait_for("two plans, both answered", Duration::from_secs(60), || {
        for envelope in mailbox.take("team-lead").unwrap() {
            if let keel_tasks::mailbox::Body::PlanApprovalRequest {
                request_id, plan, ..
            } = &envelope.body
            {
                requests.push((request_id.clone(), plan.clone()));
                let approve = answered > 0;
                mailbox
                    .send(
                        "team-lead",
                        "ana",
                        keel_tasks::mailbox::Body::PlanApprovalResponse {
                            request_id: request_id.clone(),
                            approve,
                            feedback: (!approve).then(|| "end the file with a newline".to_string()),
                        },
                    )
                    .unwrap();
                answered += 1;
            }
        }
        answered == 2
    })
    .await;
    assert_eq!(requests[0].0, "plan-1@ana");
    assert_eq!(requests[1].0, "plan-2@ana");
    assert!(requests[1].1.contains("with a newline"));
    let finished = tokio::time::timeout(Duration::from_secs(60), ana.wait()).await;
    let log = std::fs::read_to_string(h.ws.root.path().join("ana.log")).unwrap_or_default();
    assert!(finished.is_ok(), "ana stops; log:\n{log}");
    assert_eq!(
        board.get("1").unwrap().unwrap().status,
        TaskStatus::Completed,
        "log:\n{log}"
    );
    // The rejection's feedback reached the model before its second plan.
    let rejected = tool_result(&h, "plan-a");
    assert!(
        rejected.contains("The lead rejected your plan: end the file with a newline"),
        "{rejected}"
    );
    // Nothing was written before the approval: the only commit came after it.
    assert_eq!(
        h.ws.git(&["log", "--format=%s", "main..keel/task-1-write-file-1"])
            .trim(),
        "task 1"
    );
}
