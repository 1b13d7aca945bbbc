//! End-to-end: EnterWorktree / ExitWorktree and `keel worktree list/remove` on a real git
//! repository: work lands on the worktree's branch, and removing unsaved work needs consent.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Harness, finish, stderr};
use keel_test_support::{ScriptedBlock, ScriptedTurn};
use serde_json::{Value, json};

fn call(id: &str, name: &str, input: Value) -> ScriptedTurn {
    ScriptedTurn {
        content: vec![ScriptedBlock::ToolUse {
            id: Some(id.to_string()),
            name: name.to_string(),
            input,
        }],
        ..Default::default()
    }
}

fn result(h: &Harness, id: &str) -> (String, bool) {
    for request in h.requests() {
        for message in request.body["messages"].as_array().unwrap() {
            for block in message["content"].as_array().into_iter().flatten() {
                if block["type"] == "tool_result" && block["tool_use_id"] == id {
                    return (
                        block["content"].as_str().unwrap_or_default().to_string(),
                        block["is_error"] == true,
                    );
                }
            }
        }
    }
    panic!("no result for {id}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_in_a_worktree_stays_on_its_branch_and_is_not_removed_by_accident() {
    let h = Harness::new(vec![
        call("enter", "EnterWorktree", json!({"name": "fix-login"})),
        call(
            "work",
            "Bash",
            json!({"command": "pwd && echo fixed > login.txt && git add login.txt && git commit -qm 'fix login' && echo draft > wip.txt"}),
        ),
        call("remove", "ExitWorktree", json!({"action": "remove"})),
        call("keep", "ExitWorktree", json!({"action": "keep"})),
        call("where", "Bash", json!({"command": "pwd"})),
        ScriptedTurn::text("done"),
    ])
    .await;
    h.ws.write("README.md", "hello\n");
    h.ws.git_init();
    let out = h
        .run(&["-p", "fix the login", "--dangerously-skip-permissions"])
        .await;
    assert!(out.status.success(), "stderr: {}", stderr(&out));

    let worktree = h.path(".keel/worktrees/fix-login");
    let (entered, _) = result(&h, "enter");
    assert!(entered.contains("on branch keel/fix-login"), "{entered}");
    let (pwd, _) = result(&h, "work");
    assert_eq!(pwd.lines().next().unwrap(), worktree.display().to_string());
    let (refused, is_error) = result(&h, "remove");
    assert!(is_error);
    assert!(
        refused.contains("1 uncommitted change(s): ?? wip.txt"),
        "{refused}"
    );
    assert!(
        refused.contains("1 commit(s) on no other branch"),
        "{refused}"
    );
    assert!(refused.contains("fix login"), "{refused}");
    assert!(refused.contains("discard_changes"), "{refused}");
    let (kept, _) = result(&h, "keep");
    assert!(
        kept.starts_with("Left worktree fix-login (kept at"),
        "{kept}"
    );
    let (back, _) = result(&h, "where");
    assert_eq!(back.trim(), h.project().display().to_string());

    // The commit is on the worktree's branch only; the main checkout is untouched and clean.
    assert_eq!(
        h.ws.git(&["log", "-1", "--format=%s", "keel/fix-login"])
            .trim(),
        "fix login"
    );
    assert!(!h.path("login.txt").exists());
    assert_eq!(h.ws.git(&["status", "--porcelain"]).trim(), "");

    let list = finish(h.keel().args(["worktree", "list"])).await;
    let text = String::from_utf8_lossy(&list.stdout).to_string();
    assert!(text.starts_with("fix-login  keel/fix-login"), "{text}");
    assert!(text.contains("1 uncommitted change(s)"), "{text}");

    let out = finish(h.keel().args(["worktree", "remove", "fix-login"])).await;
    assert!(!out.status.success());
    assert!(stderr(&out).contains("would be lost"), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("--discard-changes"),
        "{}",
        stderr(&out)
    );
    assert!(worktree.exists());

    let out = finish(
        h.keel()
            .args(["worktree", "remove", "fix-login", "--discard-changes"]),
    )
    .await;
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        said.contains("discarded 1 uncommitted change(s), 1 commit(s)"),
        "{said}"
    );
    assert!(!worktree.exists());
    assert_eq!(h.ws.git(&["branch", "--list", "keel/fix-login"]).trim(), "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worktrees_need_a_repository() {
    let h = Harness::new(vec![
        call("enter", "EnterWorktree", json!({"name": "x"})),
        ScriptedTurn::text("ok"),
    ])
    .await;
    let out = h.run(&["-p", "go", "--dangerously-skip-permissions"]).await;
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    let (text, is_error) = result(&h, "enter");
    assert!(is_error);
    assert!(text.contains("not inside a git repository"), "{text}");
}
