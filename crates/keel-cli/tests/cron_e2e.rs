//! End-to-end: `keel cron` and `keel daemon` with a pretend clock (`--now`): a due prompt runs
//! as `keel -p` against the mock model, a restarted daemon does not run it again, and runs
//! missed while no daemon ran are reported once.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use chrono::{DateTime, Duration as Span, Timelike, Utc};
use common::{Harness, finish, stderr};
use keel_test_support::ScriptedTurn;
use serde_json::Value;

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn log(h: &Harness) -> Vec<Value> {
    std::fs::read_to_string(h.path(".keel/cron.log"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_runs_due_prompts_once_and_reports_missed_runs_once() {
    let h = Harness::new(vec![ScriptedTurn::text("hi from the schedule")]).await;
    let daemon = |now: DateTime<Utc>| {
        let mut cmd = h.keel();
        cmd.env("TZ", "UTC")
            .args(["daemon", "--now", &now.to_rfc3339()]);
        cmd
    };
    let out = finish(
        h.keel()
            .env("TZ", "UTC")
            .args(["cron", "add", "*/15 * * * *", "say hi"]),
    )
    .await;
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    let id = stdout(&out).split_whitespace().next().unwrap().to_string();
    let listed = finish(h.keel().env("TZ", "UTC").args(["cron", "list"])).await;
    assert!(stdout(&listed).contains(&id), "{}", stdout(&listed));
    assert!(stdout(&listed).contains("say hi"));

    // The first quarter hour after the schedule was made.
    let store: Value = serde_json::from_str(
        &std::fs::read_to_string(h.path(".keel/scheduled_tasks.json")).unwrap(),
    )
    .unwrap();
    let created: DateTime<Utc> = store["tasks"][0]["createdAt"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let mut first = created.with_second(0).unwrap().with_nanosecond(0).unwrap();
    first += Span::minutes(15 - i64::from(first.minute() % 15));

    // Just before: nothing. At the minute: the prompt runs through the mock model.
    let out = finish(&mut daemon(first - Span::seconds(30))).await;
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    assert!(log(&h).is_empty());
    let out = finish(&mut daemon(first + Span::seconds(10))).await;
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    let entries = log(&h);
    assert_eq!(entries.len(), 2, "{entries:?}");
    assert_eq!(entries[0]["event"], "fired");
    assert_eq!(entries[1]["event"], "finished");
    assert_eq!(entries[1]["result"], "hi from the schedule");
    assert_eq!(entries[1]["exit_code"], 0);
    assert_eq!(h.requests().len(), 1);
    assert_eq!(
        h.requests()[0].body["messages"][0]["content"][0]["text"],
        "say hi"
    );

    // A restarted daemon in the same minute does not run it again.
    let out = finish(&mut daemon(first + Span::seconds(50))).await;
    assert!(out.status.success());
    assert_eq!(log(&h).len(), 2);

    // Two hours without a daemon: eight runs were missed; reported once, not replayed.
    let late = first + Span::minutes(2 * 60 + 5);
    let out = finish(&mut daemon(late)).await;
    assert!(out.status.success());
    assert!(stderr(&out).contains("missed 8 runs"), "{}", stderr(&out));
    let out = finish(&mut daemon(late + Span::minutes(1))).await;
    assert!(!stderr(&out).contains("missed"), "{}", stderr(&out));
    let entries = log(&h);
    assert_eq!(entries.len(), 3);
    assert_eq!(entries[2]["event"], "missed");
    assert_eq!(entries[2]["count"], 8);
    assert_eq!(h.requests().len(), 1, "missed runs were not replayed");

    let out = finish(h.keel().args(["cron", "remove", &id])).await;
    assert!(out.status.success());
    let out = finish(h.keel().args(["cron", "remove", &id])).await;
    assert!(!out.status.success());
    assert!(stderr(&out).contains("keel cron list"), "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_expression_is_refused_with_an_example() {
    let h = Harness::new(vec![]).await;
    let out = finish(h.keel().args(["cron", "add", "every hour", "x"])).await;
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("use the standard 5"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_that_schedules_a_wakeup_is_woken_with_its_prompt() {
    let h = Harness::new(vec![
        ScriptedTurn {
            content: vec![keel_test_support::ScriptedBlock::ToolUse {
                id: Some("wake".into()),
                name: "ScheduleWakeup".into(),
                input: serde_json::json!({"delaySeconds": 1, "reason": "deploy", "prompt": "check the deploy"}),
            }],
            ..Default::default()
        },
        ScriptedTurn::text("I will check back."),
        ScriptedTurn::text("The deploy is fine."),
    ])
    .await;
    let started = std::time::Instant::now();
    let out = finish(h.keel().env("KEEL_WAKEUP_MIN_SECONDS", "1").args([
        "-p",
        "deploy and check",
        "--output-format",
        "json",
    ]))
    .await;
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    let result: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(result["result"], "The deploy is fine.");
    assert!(started.elapsed() >= std::time::Duration::from_secs(1));
    let requests = h.requests();
    assert_eq!(requests.len(), 3);
    let woken = requests[2].body["messages"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .to_string();
    assert!(woken.contains("check the deploy"), "{woken}");
}
