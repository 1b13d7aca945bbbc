//! End-to-end: several `keel tasks` processes create, claim and complete tasks on one board at
//! the same time; every task exists once, is claimed once and ends completed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::Harness;
use serde_json::Value;

const WORKERS: usize = 4;
const PER_WORKER: usize = 12;

async fn run_workers(h: &Harness, script: &str) {
    let mut children = Vec::new();
    for worker in 0..WORKERS {
        let child = tokio::process::Command::new("bash")
            .args(["-c", script])
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &h.ws.home)
            .env("KEEL", env!("CARGO_BIN_EXE_keel"))
            .env("WORKER", format!("w{worker}"))
            .env("COUNT", PER_WORKER.to_string())
            .current_dir(h.project())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        children.push(child);
    }
    for child in children {
        let out = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
            .await
            .expect("workers finish")
            .unwrap();
        assert!(
            out.status.success(),
            "a worker failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_processes_share_one_board_without_losing_or_doubling_anything() {
    let h = Harness::new(vec![]).await;
    // Phase 1: every worker creates tasks at the same time.
    run_workers(
        &h,
        r#"for i in $(seq 1 $COUNT); do "$KEEL" tasks --list shared create "$WORKER task $i" >/dev/null || exit 1; done"#,
    )
    .await;
    // Phase 2: every worker claims until the board is empty, completing what it claimed.
    run_workers(
        &h,
        r#"while true; do
             out=$("$KEEL" tasks --list shared claim --owner "$WORKER" --json) || exit 1
             [ "$out" = null ] && break
             id=$(printf '%s' "$out" | sed 's/.*"id":"\([0-9]*\)".*/\1/')
             "$KEEL" tasks --list shared update "$id" --status completed --as "$WORKER" >/dev/null || exit 1
           done"#,
    )
    .await;

    let board = h.path(".keel/tasks/shared");
    let mut ids = BTreeSet::new();
    let mut subjects = BTreeSet::new();
    for entry in std::fs::read_dir(&board).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        assert!(
            !name.starts_with(".tmp-"),
            "a temp file was left behind: {name}"
        );
        if !name.ends_with(".json") {
            continue;
        }
        let task: Value = serde_json::from_str(&std::fs::read_to_string(entry.path()).unwrap())
            .unwrap_or_else(|e| panic!("{name} is not whole JSON: {e}"));
        assert_eq!(task["status"], "completed", "{task}");
        ids.insert(task["id"].as_str().unwrap().parse::<usize>().unwrap());
        subjects.insert(task["subject"].as_str().unwrap().to_string());
    }
    let total = WORKERS * PER_WORKER;
    assert_eq!(
        ids,
        (1..=total).collect::<BTreeSet<_>>(),
        "ids are 1..{total}, each once"
    );
    assert_eq!(subjects.len(), total, "no creation was lost");

    // The history: each task created once, claimed once, completed once, by its claimer.
    let history: Vec<Value> = std::fs::read_to_string(board.join("log.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut seen: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for entry in &history {
        seen.entry((
            entry["task"].as_str().unwrap().to_string(),
            entry["action"].as_str().unwrap().to_string(),
        ))
        .or_default()
        .push(entry["by"].as_str().unwrap_or_default().to_string());
    }
    for id in 1..=total {
        let id = id.to_string();
        for action in ["created", "claimed", "completed"] {
            let by = seen.get(&(id.clone(), action.to_string()));
            assert_eq!(by.map(Vec::len), Some(1), "task {id} {action}: {by:?}");
        }
        assert_eq!(
            seen[&(id.clone(), "claimed".to_string())],
            seen[&(id.clone(), "completed".to_string())],
            "task {id} was completed by whoever claimed it"
        );
    }
    let claimers: BTreeSet<&String> = seen
        .iter()
        .filter(|((_, action), _)| action == "claimed")
        .flat_map(|(_, by)| by)
        .collect();
    assert!(claimers.len() > 1, "the work was shared: {claimers:?}");
}
