//! End-to-end: settings files and permission flags decide what the real `keel` binary lets the
//! model do. Print mode has nobody to ask, so "ask" is a denial listed in the result.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Harness, finish, stderr, stdout_json};
use keel_test_support::{ScriptedBlock, ScriptedTurn};
use serde_json::{Value, json};

fn call(id: &str, name: &str, input: Value) -> ScriptedTurn {
    ScriptedTurn {
        content: vec![ScriptedBlock::ToolUse {
            id: Some(id.into()),
            name: name.into(),
            input,
        }],
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deny_rule_stops_rm_inside_a_compound_command() {
    let h = Harness::new(vec![
        call(
            "b",
            "Bash",
            json!({"command": "git status --short; rm -f precious.txt"}),
        ),
        ScriptedTurn::text("I could not delete it."),
    ])
    .await;
    h.ws.write("precious.txt", "keep me\n");
    h.ws.write(
        ".keel/settings.json",
        r#"{"permissions": {"allow": ["Bash(git status:*)"], "deny": ["Bash(rm:*)"]}}"#,
    );
    // Even with everything else allowed, the deny rule holds.
    let out = h
        .run(&[
            "-p",
            "clean up",
            "--output-format",
            "json",
            "--dangerously-skip-permissions",
        ])
        .await;
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(h.path("precious.txt")).unwrap(),
        "keep me\n"
    );
    let result = stdout_json(&out);
    assert_eq!(result["permission_denials"][0]["tool_name"], "Bash");
    let sent = &h.tool_results_sent(1)[0];
    let text = sent["content"].as_str().unwrap();
    assert!(
        text.contains("rm -f precious.txt") && text.contains("Bash(rm:*)"),
        "{text}"
    );
    assert!(
        text.contains(".keel/settings.json"),
        "the reason names the rule's file: {text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accept_edits_allows_edits_but_not_bash() {
    let h = Harness::new(vec![]).await;
    h.ws.write("notes.md", "draft\n");
    let notes = h.path("notes.md");
    let notes = notes.to_str().unwrap();
    h.server
        .push_turn(call("r", "Read", json!({"file_path": notes})));
    h.server.push_turn(call(
        "e",
        "Edit",
        json!({"file_path": notes, "old_string": "draft", "new_string": "final"}),
    ));
    // Not a file edit: acceptEdits does not cover running a program.
    h.server.push_turn(call(
        "b",
        "Bash",
        json!({"command": "python3 -c \"open('made-by-bash', 'w')\""}),
    ));
    h.server
        .push_turn(ScriptedTurn::text("edited; bash was not allowed"));
    let out = h
        .run(&[
            "-p",
            "edit",
            "--output-format",
            "json",
            "--permission-mode",
            "acceptEdits",
        ])
        .await;
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(h.path("notes.md")).unwrap(),
        "final\n"
    );
    assert!(!h.path("made-by-bash").exists());
    let result = stdout_json(&out);
    let denials = result["permission_denials"].as_array().unwrap();
    assert_eq!(denials.len(), 1);
    assert_eq!(denials[0]["tool_name"], "Bash");
    let bash = &h.tool_results_sent(3)[0];
    assert!(
        bash["content"].as_str().unwrap().contains("--allowedTools"),
        "{bash}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowed_tools_flag_allows_exactly_that_command() {
    let h = Harness::new(vec![
        call("b1", "Bash", json!({"command": "touch allowed.txt"})),
        call(
            "b2",
            "Bash",
            json!({"command": "touch allowed.txt && touch sneaky.txt"}),
        ),
        ScriptedTurn::text("done"),
    ])
    .await;
    let out = h
        .run(&[
            "-p",
            "go",
            "--output-format",
            "json",
            "--allowedTools",
            "Bash(touch allowed.txt)",
        ])
        .await;
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    assert!(h.path("allowed.txt").exists());
    assert!(!h.path("sneaky.txt").exists());
    assert_eq!(
        stdout_json(&out)["permission_denials"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_symlink_to_a_denied_path_is_denied() {
    let h = Harness::new(vec![]).await;
    h.ws.write("secrets/key.pem", "PRIVATE\n");
    let secrets = h.path("secrets");
    std::os::unix::fs::symlink(&secrets, h.path("innocent")).unwrap();
    h.ws.write(
        ".keel/settings.json",
        &json!({"permissions": {"deny": [format!("Read(/{}/**)", secrets.display())]}}).to_string(),
    );
    let link = h.path("innocent/key.pem");
    h.server.push_turn(call(
        "r",
        "Read",
        json!({"file_path": link.to_str().unwrap()}),
    ));
    h.server.push_turn(ScriptedTurn::text("denied"));
    let out = h.run(&["-p", "read it", "--output-format", "json"]).await;
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    let sent = &h.tool_results_sent(1)[0];
    assert_eq!(sent["is_error"], true);
    assert!(!sent["content"].as_str().unwrap().contains("PRIVATE"));
    assert_eq!(
        stdout_json(&out)["permission_denials"][0]["tool_name"],
        "Read"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bare_deny_rule_removes_the_tool() {
    let h = Harness::new(vec![ScriptedTurn::text("ok")]).await;
    let out = h
        .run(&["-p", "hi", "--disallowedTools", "Bash,WebFetch"])
        .await;
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    let tools: Vec<String> = h.requests()[0].body["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect();
    assert!(!tools.contains(&"Bash".to_string()), "{tools:?}");
    assert!(tools.contains(&"Read".to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_settings_name_file_line_column_and_key() {
    let h = Harness::new(vec![ScriptedTurn::text("unused")]).await;
    h.ws.write(
        ".claude/settings.json",
        "{\n  \"permissions\": {\n    \"allow\": \"Bash\"\n  }\n}\n",
    );
    let out = h.run(&["-p", "hi"]).await;
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains(".claude/settings.json:3:"), "{err}");
    assert!(err.contains("`permissions.allow`"), "{err}");
    assert!(
        h.requests().is_empty(),
        "nothing is sent with broken settings"
    );

    h.ws.write(".claude/settings.json", "{\"model\": \"x\",}");
    let err = stderr(&h.run(&["-p", "hi"]).await);
    assert!(
        err.contains("settings.json:1:") && err.contains("invalid JSON"),
        "{err}"
    );

    h.ws.write(".claude/settings.json", r#"{"modle": "x"}"#);
    let out = h.run(&["-p", "hi"]).await;
    assert!(out.status.success(), "an unknown key is only a warning");
    assert!(stderr(&out).contains("unknown setting `modle`") && stderr(&out).contains("`model`"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permissions_check_explains_which_rule_decides() {
    let h = Harness::new(vec![]).await;
    h.ws.write(
        ".keel/settings.json",
        r#"{"permissions": {"allow": ["Bash(git diff:*)"], "deny": ["Bash(rm:*)"]}}"#,
    );
    let out = h
        .run(&["permissions", "check", "Bash(git diff; rm -rf x)"])
        .await;
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("deny:"), "{text}");
    assert!(
        text.contains("Bash(rm:*)") && text.contains(".keel/settings.json"),
        "{text}"
    );

    let out = h
        .run(&["permissions", "check", "Bash(npm run build)"])
        .await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("ask:"), "{text}");
    assert!(
        text.contains("Bash(npm run build:*)") || text.contains("Bash(npm run build)"),
        "{text}"
    );

    let out = h.run(&["permissions", "list"]).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("mode: default") && text.contains("deny  Bash(rm:*)"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_set_and_get_round_trip() {
    let h = Harness::new(vec![ScriptedTurn::text("ok")]).await;
    let out = h
        .run(&[
            "config",
            "set",
            "model",
            "claude-opus-4-5",
            "--scope",
            "project",
        ])
        .await;
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    let out = h
        .run(&["config", "add", "permissions.allow", "Bash(make:*)"])
        .await;
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    let out = h.run(&["config", "get", "model"]).await;
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "claude-opus-4-5"
    );
    let local: Value = serde_json::from_str(&h.ws.read(".keel/settings.local.json")).unwrap();
    assert_eq!(local["permissions"]["allow"], json!(["Bash(make:*)"]));
    let out = h.run(&["config", "list"]).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("model: from") && text.contains(".keel/settings.json (project)"),
        "{text}"
    );
    // The setting takes effect.
    let out = finish(h.keel().env_remove("ANTHROPIC_MODEL").args(["-p", "hi"])).await;
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    assert_eq!(h.requests()[0].body["model"], "claude-opus-4-5");
}
