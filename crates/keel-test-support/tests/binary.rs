//! The `keel-mock-model` binary: the listening line, serving, --repeat, errors, signals.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::post_text;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

fn mock() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_keel-mock-model"));
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(Stdio::null())
        .kill_on_drop(true);
    cmd
}

/// Starts the binary and returns it with the URL from its first stdout line.
async fn start(args: &[&str]) -> (Child, String) {
    let mut child = mock().args(args).spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    tokio::time::timeout(
        Duration::from_secs(20),
        BufReader::new(stdout).read_line(&mut line),
    )
    .await
    .expect("the listening line within 20 s")
    .unwrap();
    let url = line
        .strip_suffix('\n')
        .and_then(|l| l.strip_prefix("listening on "))
        .unwrap_or_else(|| panic!("first line was {line:?}"))
        .to_string();
    let port = url.strip_prefix("http://127.0.0.1:").unwrap();
    assert!(port.parse::<u16>().unwrap() > 0, "{url}");
    (child, url)
}

fn script_file(dir: &tempfile::TempDir, text: &str) -> String {
    let path = dir.path().join("script.json");
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

fn text_of(body: &str) -> String {
    let message: Value = serde_json::from_str(body).unwrap();
    message["content"][0]["text"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn prints_the_url_serves_the_script_and_exits_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let script = script_file(
        &dir,
        r#"{"turns": [{"content": [{"type": "text", "text": "from the binary"}]}]}"#,
    );
    let (mut child, url) = start(&["--script", &script]).await;
    let body = json!({"model": "m", "messages": []});
    let (status, text) = post_text(&url, "/v1/messages", &body).await;
    assert_eq!(status, 200);
    assert_eq!(text_of(&text), "from the binary");
    let (status, _) = post_text(&url, "/v1/messages", &body).await;
    assert_eq!(status, 500, "without --repeat the script runs out");

    let recorded: Value = common::client()
        .get(format!("{url}/_mock/requests"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(recorded.as_array().unwrap().len(), 2);
    assert!(recorded[0]["received_unix_us"].as_u64().unwrap() > 0);

    let pid = child.id().unwrap().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("exits after SIGTERM")
        .unwrap();
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn repeat_flag_loops_the_script_on_the_given_port() {
    let dir = tempfile::tempdir().unwrap();
    let script = script_file(
        &dir,
        r#"[{"content": [{"type": "text", "text": "again"}]}]"#,
    );
    // Find a free port, then ask the binary for it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (_child, url) =
        start(&["--script", &script, "--repeat", "--port", &port.to_string()]).await;
    assert_eq!(url, format!("http://127.0.0.1:{port}"));
    let body = json!({"model": "m", "messages": []});
    for _ in 0..3 {
        let (status, text) = post_text(&url, "/v1/messages", &body).await;
        assert_eq!(status, 200);
        assert_eq!(text_of(&text), "again");
    }
}

#[tokio::test]
async fn a_bad_script_is_one_line_naming_the_file_and_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let script = script_file(&dir, "{\"turns\": [\n  {\"conten\": []}\n]}");
    let out = tokio::time::timeout(
        Duration::from_secs(20),
        mock().args(["--script", &script]).output(),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains(&script) && err.contains("unknown field `conten`"),
        "{err}"
    );
    assert!(err.contains("line 2"), "{err}");

    let missing = dir.path().join("nope.json");
    let out = mock()
        .args(["--script", missing.to_str().unwrap()])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot read mock script") && err.contains("nope.json"),
        "{err}"
    );
}
