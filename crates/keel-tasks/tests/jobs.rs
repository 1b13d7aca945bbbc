//! Background jobs run in the session's process (background agents) and worktrees made for
//! isolated subagents, through the seams the engine uses (`BackgroundShell::spawn_job`,
//! `WorktreeIsolation`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Duration;

use keel_tasks::background::{BackgroundTasks, JobState};
use keel_tasks::worktree::AgentWorktrees;
use keel_tools::{BackgroundJob, BackgroundShell, IsolationEnd, JobEnd, WorktreeIsolation};

fn job(description: &str, answer: &'static str, wait_for_cancel: bool) -> BackgroundJob {
    BackgroundJob {
        prefix: "agent".into(),
        task_type: "local_agent".into(),
        description: description.into(),
        work: Box::new(move |control| {
            Box::pin(async move {
                (control.write)("[Bash] looking\n");
                if wait_for_cancel {
                    control.cancel.cancelled().await;
                }
                JobEnd {
                    success: true,
                    result: answer.into(),
                    summary: "Agent \"x\" completed".into(),
                }
            })
        }),
    }
}

#[tokio::test]
async fn a_job_reports_progress_and_its_answer_and_leaves_a_notice() {
    let dir = tempfile::tempdir().unwrap();
    let tasks = BackgroundTasks::new(dir.path().join("background"));
    let started = tasks
        .spawn_job(job("Count things", "THE ANSWER", false))
        .await
        .unwrap();
    assert_eq!(started.id, "agent_1");
    let read = tasks
        .read(&started.id, true, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(read.info.status, JobState::Completed);
    assert_eq!(read.output, "[Bash] looking\nTHE ANSWER\n");
    let notices = tasks.take_notices();
    assert_eq!(notices.len(), 1);
    assert!(
        notices[0].contains("<task-id>agent_1</task-id>")
            && notices[0].contains("<status>completed</status>")
            && notices[0].contains("<result>THE ANSWER</result>"),
        "{}",
        notices[0]
    );
    let listed = BackgroundShell::list(&tasks);
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].kind.as_str(), listed[0].status.as_str()),
        ("local_agent", "completed")
    );
    assert_eq!(listed[0].description, "Count things");
}

#[tokio::test]
async fn a_stopped_job_is_cancelled_without_a_notice_and_jobs_end_with_the_session() {
    let dir = tempfile::tempdir().unwrap();
    let tasks = BackgroundTasks::new(dir.path().join("background"));
    let first = tasks.spawn_job(job("First", "one", true)).await.unwrap();
    let stopped = tasks.stop(&first.id).await.unwrap();
    assert_eq!(stopped.status, JobState::Killed);
    assert!(tasks.take_notices().is_empty());

    // Keeping background tasks past the session keeps processes, never in-process jobs.
    let second = tasks.spawn_job(job("Second", "two", true)).await.unwrap();
    let kept = tasks.shutdown(true).await;
    assert!(kept.is_empty(), "{kept:?}");
    assert_eq!(tasks.get(&second.id).unwrap().status, JobState::Killed);
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    git(dir.path(), &["init", "-q", "-b", "main"]);
    git(dir.path(), &["config", "user.email", "t@example.com"]);
    git(dir.path(), &["config", "user.name", "T"]);
    std::fs::write(dir.path().join("a.txt"), "a\n").unwrap();
    git(dir.path(), &["add", "a.txt"]);
    git(dir.path(), &["commit", "-qm", "first"]);
    dir
}

#[tokio::test]
async fn agent_worktrees_are_fresh_removed_when_clean_and_kept_with_changes() {
    let repo = repo();
    let root = repo.path();
    let worktrees = AgentWorktrees;
    let clean = worktrees.create("Look around", root).await.unwrap();
    assert_eq!(clean.name, "agent-look-around");
    assert_eq!(clean.branch, "keel/agent-look-around");
    assert!(clean.path.join("a.txt").exists());
    // A second subagent with the same task gets a worktree of its own.
    let busy = worktrees.create("Look around", root).await.unwrap();
    assert_eq!(busy.name, "agent-look-around-2");
    std::fs::write(busy.path.join("b.txt"), "b\n").unwrap();

    assert_eq!(
        worktrees.finish(&clean).await.unwrap(),
        IsolationEnd::Removed
    );
    assert!(!clean.path.exists());
    assert_eq!(
        git(root, &["branch", "--list", "keel/agent-look-around"]),
        ""
    );

    match worktrees.finish(&busy).await.unwrap() {
        IsolationEnd::Kept { changes } => assert!(changes.contains("b.txt"), "{changes}"),
        other => panic!("kept expected, got {other:?}"),
    }
    assert!(busy.path.join("b.txt").exists());
}

#[tokio::test]
async fn agent_worktrees_need_a_repository() {
    let dir = tempfile::tempdir().unwrap();
    let error = AgentWorktrees
        .create("Look around", dir.path())
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("not inside a git repository"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subagents_started_together_with_one_task_never_share_a_worktree() {
    let repo = repo();
    let root = repo.path().to_path_buf();
    let starts = (0..3).map(|_| {
        let root = root.clone();
        tokio::spawn(async move { AgentWorktrees.create("Fix it", &root).await.unwrap() })
    });
    let mut names: Vec<String> = futures_names(starts).await;
    names.sort();
    assert_eq!(names, ["agent-fix-it", "agent-fix-it-2", "agent-fix-it-3"]);
}

async fn futures_names(
    starts: impl Iterator<Item = tokio::task::JoinHandle<keel_tools::IsolatedTree>>,
) -> Vec<String> {
    let mut names = Vec::new();
    for start in starts.collect::<Vec<_>>() {
        names.push(start.await.unwrap().name);
    }
    names
}
