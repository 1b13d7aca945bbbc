//! `git status --short` collected in the background for the environment part, against a real
//! repository.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use keel_context::{Environment, GitStatus, STATUS_LINES};

fn git(dir: &Path, args: &[&str]) {
    let status = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .status()
        .unwrap();
    assert!(status.success(), "git {args:?}");
}

#[test]
fn status_of_a_real_repository_is_cut_to_twenty_lines_with_a_count() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    git(root, &["init", "-q", "-b", "trunk"]);
    git(root, &["config", "user.email", "t@example.invalid"]);
    git(root, &["config", "user.name", "t"]);
    std::fs::write(root.join("tracked.txt"), "one\n").unwrap();
    git(root, &["add", "tracked.txt"]);
    git(root, &["commit", "-q", "-m", "init"]);
    std::fs::write(root.join("tracked.txt"), "two\n").unwrap();
    for i in 0..30 {
        std::fs::write(root.join(format!("new{i:02}.txt")), "x").unwrap();
    }

    let pending = GitStatus::spawn(root);
    let status = pending
        .join(Duration::from_secs(30))
        .expect("git status ran");
    assert_eq!(status.total, 31);
    assert_eq!(status.lines.len(), STATUS_LINES);
    assert_eq!(status.lines[0], " M tracked.txt");
    assert!(!status.capped);

    let env = Environment::detect(root, &[]).with_git_status(Some(status));
    let text = env.render();
    assert!(text.contains("Current branch: trunk\n"), "{text}");
    assert!(text.contains(" M tracked.txt\n?? new00.txt\n"), "{text}");
    assert!(text.contains("… and 11 more changed paths\n"), "{text}");
}

#[test]
fn a_clean_repository_says_clean_and_an_unjoined_status_is_cleaned_up() {
    let dir = tempfile::tempdir().unwrap();
    git(dir.path(), &["init", "-q"]);
    let status = GitStatus::spawn(dir.path())
        .join(Duration::from_secs(30))
        .unwrap();
    assert_eq!(status.total, 0);
    let text = Environment::detect(dir.path(), &[])
        .with_git_status(Some(status))
        .render();
    assert!(text.contains("Git status at session start: clean\n"));
    // Dropping a status that was never joined kills git and returns at once.
    drop(GitStatus::spawn(dir.path()));
}
