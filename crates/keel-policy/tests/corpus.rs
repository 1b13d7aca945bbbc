//! Runs every command in `tests/corpus/bash.json` through `Policy::decide` under the corpus's
//! fixed rule set and reports every mismatch at once, with the verdict's reason.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::path::Path;

use keel_policy::{Decision, PermissionMode, Policy, RuleList, RuleSource, ToolCall};
use serde_json::{Value, json};

fn policy(mode: PermissionMode, rules: &Value, project: &Path, home: &Path) -> Policy {
    let mut policy = Policy::new(mode, project, home);
    let source = RuleSource::new("corpus settings", project);
    for (key, list) in [
        ("allow", RuleList::Allow),
        ("ask", RuleList::Ask),
        ("deny", RuleList::Deny),
    ] {
        let texts: Vec<&str> = rules[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        let errors = policy.add_rules(list, texts, &source);
        assert!(errors.is_empty(), "corpus rules must parse: {errors:?}");
    }
    policy
}

fn decision(s: &str) -> Decision {
    match s {
        "allow" => Decision::Allow,
        "ask" => Decision::Ask,
        "deny" => Decision::Deny,
        other => panic!("bad expectation {other}"),
    }
}

#[test]
fn bash_corpus() {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/bash.json"),
    )
    .unwrap();
    let corpus: Value = serde_json::from_str(&text).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let project = tmp.path().join("project");
    let home = tmp.path().join("home");
    std::fs::create_dir_all(project.join("src")).unwrap();
    std::fs::create_dir_all(project.join("secrets")).unwrap();
    std::fs::create_dir_all(&home).unwrap();

    let cases = corpus["cases"].as_array().unwrap();
    assert!(
        cases.len() >= 150,
        "the corpus must keep at least 150 commands"
    );
    let mut failures = Vec::new();
    let mut counts = [0usize; 3];
    for case in cases {
        let cmd = case["cmd"].as_str().unwrap();
        let expect = decision(case["expect"].as_str().unwrap());
        let mode: PermissionMode = case
            .get("mode")
            .and_then(Value::as_str)
            .unwrap_or("default")
            .parse()
            .unwrap();
        let policy = policy(mode, &corpus["rules"], &project, &home);
        let input = json!({ "command": cmd });
        let verdict = policy.decide(&ToolCall::new("Bash", &input, &project));
        counts[expect as usize] += 1;
        if verdict.decision != expect {
            failures.push(format!(
                "  [{mode}] {cmd:?}\n      expected {expect}, got {}: {}{}",
                verdict.decision,
                verdict.reason,
                case.get("note")
                    .and_then(Value::as_str)
                    .map(|n| format!("\n      note: {n}"))
                    .unwrap_or_default()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} corpus commands decided differently:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    // The corpus must exercise every outcome.
    assert!(counts.iter().all(|&n| n >= 20), "{counts:?}");
}
