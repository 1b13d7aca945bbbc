//! File rules are checked against the real location: symlinks followed, `..` applied, `~`
//! expanded with the policy's home, and working directories deciding the default.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::path::{Path, PathBuf};

use keel_policy::paths::{expand_glob, resolve};
use keel_policy::{Decision, PermissionMode, Policy, Reason, RuleList, RuleSource, ToolCall};
use serde_json::json;

struct Setup {
    _tmp: tempfile::TempDir,
    project: PathBuf,
    home: PathBuf,
    elsewhere: PathBuf,
}

fn setup() -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    // Resolve the temp dir itself (it is a symlink on some systems) so expectations match.
    let root = std::fs::canonicalize(tmp.path()).unwrap();
    let project = root.join("project");
    let home = root.join("home");
    let elsewhere = root.join("elsewhere");
    for dir in [
        project.join("secret"),
        project.join("src"),
        home.join(".ssh"),
        elsewhere.clone(),
    ] {
        std::fs::create_dir_all(dir).unwrap();
    }
    std::fs::write(project.join("secret/key"), "k").unwrap();
    std::fs::write(home.join(".ssh/id_rsa"), "k").unwrap();
    Setup {
        _tmp: tmp,
        project,
        home,
        elsewhere,
    }
}

fn policy(s: &Setup, mode: PermissionMode, rules: &[(RuleList, &str)]) -> Policy {
    let mut policy = Policy::new(mode, &s.project, &s.home);
    let source = RuleSource::new("test settings", &s.project);
    for (list, rule) in rules {
        let errors = policy.add_rules(*list, [*rule], &source);
        assert!(errors.is_empty(), "{errors:?}");
    }
    policy
}

fn read(policy: &Policy, s: &Setup, path: &str) -> Decision {
    let input = json!({ "file_path": path });
    policy
        .decide(&ToolCall::new("Read", &input, &s.project))
        .decision
}

fn bash(policy: &Policy, s: &Setup, command: &str) -> Decision {
    let input = json!({ "command": command });
    policy
        .decide(&ToolCall::new("Bash", &input, &s.project))
        .decision
}

#[cfg(unix)]
#[test]
fn a_symlink_into_a_denied_directory_is_denied() {
    let s = setup();
    std::os::unix::fs::symlink(s.project.join("secret"), s.project.join("link")).unwrap();
    let deny = format!("Read(/{}/secret/**)", s.project.display());
    let policy = policy(&s, PermissionMode::Default, &[(RuleList::Deny, &deny)]);
    assert_eq!(read(&policy, &s, "secret/key"), Decision::Deny);
    assert_eq!(read(&policy, &s, "link/key"), Decision::Deny);
    assert_eq!(
        read(
            &policy,
            &s,
            &s.project.join("link/key").display().to_string()
        ),
        Decision::Deny
    );
    assert_eq!(bash(&policy, &s, "cat link/key"), Decision::Deny);
    assert_eq!(bash(&policy, &s, "head -1 < link/key"), Decision::Deny);
    // Not-yet-existing files under the link resolve through it too.
    assert_eq!(read(&policy, &s, "link/new/file"), Decision::Deny);
    assert_eq!(read(&policy, &s, "src/main.rs"), Decision::Allow);
}

#[cfg(unix)]
#[test]
fn a_symlink_out_of_the_project_is_outside() {
    let s = setup();
    std::os::unix::fs::symlink(s.home.join(".ssh"), s.project.join("keys")).unwrap();
    let policy = policy(
        &s,
        PermissionMode::Default,
        &[(RuleList::Deny, "Read(~/.ssh/**)")],
    );
    assert_eq!(read(&policy, &s, "keys/id_rsa"), Decision::Deny);
    let open = policy_without_rules(&s);
    let input = json!({ "file_path": "keys/id_rsa" });
    let verdict = open.decide(&ToolCall::new("Read", &input, &s.project));
    assert_eq!(verdict.decision, Decision::Ask);
    assert!(
        matches!(&verdict.reason, Reason::OutsideWorkingDirs { path, .. } if path == &s.home.join(".ssh/id_rsa")),
        "{:?}",
        verdict.reason
    );
}

fn policy_without_rules(s: &Setup) -> Policy {
    policy(s, PermissionMode::Default, &[])
}

#[cfg(unix)]
#[test]
fn dot_dot_after_a_symlink_follows_the_kernel() {
    let s = setup();
    std::fs::create_dir_all(s.elsewhere.join("a/b")).unwrap();
    std::os::unix::fs::symlink(s.elsewhere.join("a/b"), s.project.join("l")).unwrap();
    // `l/../c` is `elsewhere/a/c` to the kernel, not `project/c`.
    assert_eq!(
        resolve("l/../c", &s.project, &s.home),
        s.elsewhere.join("a/c")
    );
    let policy = policy_without_rules(&s);
    assert_eq!(read(&policy, &s, "l/../c"), Decision::Ask);
}

#[test]
fn dot_dot_is_normalised() {
    let s = setup();
    let policy = policy(
        &s,
        PermissionMode::Default,
        &[(RuleList::Deny, "Read(secret/**)")],
    );
    assert_eq!(read(&policy, &s, "src/../secret/key"), Decision::Deny);
    assert_eq!(read(&policy, &s, "./src/./../secret/./key"), Decision::Deny);
    assert_eq!(read(&policy, &s, "missing/../secret/key"), Decision::Deny);
    // Climbing out of the project lands outside the working directories.
    let open = policy_without_rules(&s);
    assert_eq!(read(&open, &s, "../elsewhere/x"), Decision::Ask);
}

#[test]
fn outside_the_working_directories_asks_until_added() {
    let s = setup();
    let outside = s.elsewhere.join("notes.txt").display().to_string();
    let mut policy = policy_without_rules(&s);
    assert_eq!(read(&policy, &s, &outside), Decision::Ask);
    assert_eq!(read(&policy, &s, "src/lib.rs"), Decision::Allow);
    policy.add_working_dir(&s.elsewhere);
    assert_eq!(read(&policy, &s, &outside), Decision::Allow);
    // Glob and Grep check their `path`; Glob also an absolute pattern.
    let grep = json!({ "pattern": "x", "path": "/" });
    assert_eq!(
        policy
            .decide(&ToolCall::new("Grep", &grep, &s.project))
            .decision,
        Decision::Ask
    );
    let glob = json!({ "pattern": "/etc/**/*.conf" });
    assert_eq!(
        policy
            .decide(&ToolCall::new("Glob", &glob, &s.project))
            .decision,
        Decision::Ask
    );
    let glob_here = json!({ "pattern": "**/*.rs" });
    assert_eq!(
        policy
            .decide(&ToolCall::new("Glob", &glob_here, &s.project))
            .decision,
        Decision::Allow
    );
}

#[test]
fn home_rules_use_the_policy_home() {
    let s = setup();
    let policy = policy(
        &s,
        PermissionMode::Default,
        &[(RuleList::Deny, "Read(~/.ssh/**)")],
    );
    assert_eq!(read(&policy, &s, "~/.ssh/id_rsa"), Decision::Deny);
    assert_eq!(
        read(
            &policy,
            &s,
            &s.home.join(".ssh/id_rsa").display().to_string()
        ),
        Decision::Deny
    );
    assert_eq!(bash(&policy, &s, "cat ~/.ssh/id_rsa"), Decision::Deny);
    assert_eq!(
        bash(&policy, &s, "cat ~/.ssh/id_*"),
        Decision::Deny,
        "globs are expanded"
    );
    // The real home of whoever runs the tests is not the policy's home.
    assert_eq!(read(&policy, &s, "~/.sshx/id_rsa"), Decision::Ask);
}

#[test]
fn project_root_and_cwd_relative_patterns() {
    let s = setup();
    let sub = s.project.join("src");
    let policy = policy(
        &s,
        PermissionMode::Default,
        &[
            (RuleList::Allow, "Edit(/src/**)"),
            (RuleList::Deny, "Read(.env)"),
            (RuleList::Deny, "Edit(**/*.lock)"),
        ],
    );
    let edit = |cwd: &Path, path: &str| {
        let input = json!({ "file_path": path, "old_string": "a", "new_string": "b" });
        policy.decide(&ToolCall::new("Edit", &input, cwd)).decision
    };
    // `/src/**` is relative to the settings' project root, wherever the call runs.
    assert_eq!(edit(&sub, "main.rs"), Decision::Allow);
    assert_eq!(edit(&s.project, "src/main.rs"), Decision::Allow);
    assert_eq!(edit(&s.project, "README.md"), Decision::Ask);
    // A pattern without a slash matches at any depth below the working directory.
    assert_eq!(read(&policy, &s, ".env"), Decision::Deny);
    assert_eq!(read(&policy, &s, "src/deep/.env"), Decision::Deny);
    assert_eq!(edit(&s.project, "Cargo.lock"), Decision::Deny);
    assert_eq!(edit(&s.project, "a/b/yarn.lock"), Decision::Deny);
}

#[test]
fn globs_expand_like_bash() {
    let s = setup();
    std::fs::write(s.project.join("src/a.rs"), "").unwrap();
    std::fs::write(s.project.join("src/b.rs"), "").unwrap();
    std::fs::write(s.project.join("src/.hidden.rs"), "").unwrap();
    let mut found = expand_glob("src/*.rs", &s.project, &s.home).unwrap();
    found.sort();
    assert_eq!(
        found,
        [s.project.join("src/a.rs"), s.project.join("src/b.rs")]
    );
    let dot = expand_glob("src/.*.rs", &s.project, &s.home).unwrap();
    assert_eq!(dot, [s.project.join("src/.hidden.rs")]);
    let none = expand_glob("src/*.py", &s.project, &s.home).unwrap();
    assert_eq!(none, [s.project.join("src/*.py")]);
}
