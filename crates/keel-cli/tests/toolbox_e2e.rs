//! The rest of the toolbox through the real binary: Read of an image reaches the model as an
//! image block, WebFetch reads a local page with the small model answering, WebSearch is
//! offered only with something to search with, and print mode offers no AskUserQuestion.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use common::{Harness, finish, stderr, stdout_json};
use keel_test_support::{ScriptedBlock, ScriptedTurn, TurnMatcher};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// A 1x1 PNG.
const PNG: [u8; 70] = [
    137, 80, 78, 71, 13, 10, 26, 10, 0, 0, 0, 13, 73, 72, 68, 82, 0, 0, 0, 1, 0, 0, 0, 1, 8, 6, 0,
    0, 0, 31, 21, 196, 137, 0, 0, 0, 13, 73, 68, 65, 84, 120, 218, 99, 100, 248, 207, 80, 15, 0, 3,
    134, 1, 128, 90, 52, 125, 107, 0, 0, 0, 0, 73, 69, 78, 68, 174, 66, 96, 130,
];
const PNG_BASE64: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==";

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

fn tool_names(body: &Value) -> Vec<String> {
    body["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect()
}

/// A tiny HTTP/1.1 server on 127.0.0.1 answering every request from `answer(path)` with
/// (status line, content type, body); it records the paths asked for.
async fn http_server(
    answer: fn(&str) -> (&'static str, &'static str, String),
) -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let log = log.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if socket.read(&mut byte).await.unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(byte[0]);
                }
                let head = String::from_utf8_lossy(&head).into_owned();
                let target = head.split_whitespace().nth(1).unwrap_or("/").to_string();
                log.lock().unwrap().push(target.clone());
                let path = target.split('?').next().unwrap_or("/").to_string();
                let (status, content_type, body) = answer(&path);
                let response = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    (addr, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reading_a_png_sends_the_model_an_image_block() {
    let h = Harness::new(vec![
        call("toolu_img", "Read", json!({"file_path": "screenshot.png"})),
        ScriptedTurn::text("A single pixel."),
    ])
    .await;
    std::fs::write(h.path("screenshot.png"), PNG).unwrap();
    let out = h
        .run(&[
            "-p",
            "what is in the screenshot?",
            "--output-format",
            "json",
        ])
        .await;
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    assert_eq!(stdout_json(&out)["result"], "A single pixel.");
    let results = h.tool_results_sent(1);
    let content = &results[0]["content"];
    assert_eq!(content[0]["type"], "text");
    assert!(content[0]["text"].as_str().unwrap().contains("1x1 pixels"));
    assert_eq!(
        content[1],
        json!({"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_BASE64}})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_fetch_reads_a_page_and_the_small_model_answers() {
    let (addr, seen) = http_server(|path| match path {
        "/docs" => (
            "200 OK",
            "text/html; charset=utf-8",
            "<html><body><h1>Widget API</h1><p>Call <code>widget.spin(speed)</code> to spin.</p></body></html>".into(),
        ),
        _ => ("404 Not Found", "text/plain", "no".into()),
    })
    .await;
    let url = format!("http://{addr}/docs");
    let h = Harness::new(vec![
        call(
            "toolu_fetch",
            "WebFetch",
            json!({"url": url, "prompt": "How do I spin a widget?"}),
        ),
        ScriptedTurn {
            when: Some(TurnMatcher {
                model: Some("claude-haiku-4-5".into()),
                ..TurnMatcher::default()
            }),
            ..ScriptedTurn::text("Call widget.spin(speed).")
        },
        ScriptedTurn::text("Use widget.spin(speed)."),
    ])
    .await;
    h.ws.write(
        ".keel/settings.json",
        r#"{"permissions": {"allow": ["WebFetch(domain:127.0.0.1)"]},
            "web": {"allowPrivateHosts": ["loopback"]}}"#,
    );
    let out = h
        .run(&["-p", "how do I spin a widget?", "--output-format", "json"])
        .await;
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    let result = stdout_json(&out);
    assert_eq!(result["result"], "Use widget.spin(speed).");
    assert_eq!(result["permission_denials"], json!([]));
    assert_eq!(*seen.lock().unwrap(), ["/docs"]);

    let requests = h.requests();
    assert_eq!(requests.len(), 3);
    let tools = tool_names(&requests[0].body);
    assert!(tools.contains(&"WebFetch".to_string()), "{tools:?}");
    // The page went to the small model as Markdown, with the prompt.
    let reader = &requests[1].body;
    assert_eq!(reader["model"], "claude-haiku-4-5");
    let text = reader["messages"][0]["content"][0]["text"]
        .as_str()
        .unwrap();
    assert!(text.contains("# Widget API"), "{text}");
    assert!(text.contains("`widget.spin(speed)`"), "{text}");
    assert!(text.contains("How do I spin a widget?"), "{text}");
    // Its answer is the tool result the main model read.
    let results = h.tool_results_sent(2);
    assert_eq!(results[0]["content"], "Call widget.spin(speed).");

    // Without the setting, the same fetch is refused before any connection.
    let h = Harness::new(vec![
        call(
            "toolu_fetch",
            "WebFetch",
            json!({"url": url, "prompt": "How do I spin a widget?"}),
        ),
        ScriptedTurn::text("Could not read it."),
    ])
    .await;
    h.ws.write(
        ".keel/settings.json",
        r#"{"permissions": {"allow": ["WebFetch(domain:127.0.0.1)"]}}"#,
    );
    let out = h.run(&["-p", "how?", "--output-format", "json"]).await;
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    let results = h.tool_results_sent(1);
    assert_eq!(results[0]["is_error"], true);
    assert!(
        results[0]["content"]
            .as_str()
            .unwrap()
            .contains("Refused to fetch from 127.0.0.1"),
        "{}",
        results[0]
    );
    assert_eq!(seen.lock().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_search_is_offered_only_with_a_backend() {
    let (addr, seen) = http_server(|path| match path {
        "/search" => (
            "200 OK",
            "application/json",
            json!({"results": [
                {"url": "https://crates.io/crates/htmd", "title": "htmd on crates.io", "content": "HTML to Markdown"},
                {"url": "https://docs.rs/htmd", "title": "htmd docs", "content": "API docs"}
            ]})
            .to_string(),
        ),
        _ => ("404 Not Found", "text/plain", "no".into()),
    })
    .await;
    let openai = |h: &Harness| -> Vec<String> {
        vec![
            "--provider".into(),
            "openai-compatible".into(),
            "--base-url".into(),
            format!("{}/v1", h.server.url()),
            "--model".into(),
            "mock-model".into(),
        ]
    };

    // An OpenAI-compatible provider has no search of its own: no WebSearch.
    let h = Harness::new(vec![ScriptedTurn::text("ok")]).await;
    let mut args = vec!["-p".to_string(), "hi".to_string()];
    args.extend(openai(&h));
    let out = finish(h.keel().args(&args)).await;
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    let names: Vec<String> = h.requests()[0].body["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap().to_string())
        .collect();
    assert!(!names.contains(&"WebSearch".to_string()), "{names:?}");
    assert!(names.contains(&"WebFetch".to_string()), "{names:?}");

    // With a SearXNG instance configured, it is offered and answers from there.
    let h = Harness::new(vec![
        call(
            "call_1",
            "WebSearch",
            json!({"query": "html to markdown crate"}),
        ),
        ScriptedTurn::text("Use htmd."),
    ])
    .await;
    h.ws.write(
        ".keel/settings.json",
        &json!({"permissions": {"allow": ["WebSearch"]}, "web": {"searxngUrl": format!("http://{addr}")}})
            .to_string(),
    );
    let mut args = vec![
        "-p".to_string(),
        "which crate?".to_string(),
        "--output-format".to_string(),
        "json".to_string(),
    ];
    args.extend(openai(&h));
    let out = finish(h.keel().args(&args)).await;
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    assert_eq!(stdout_json(&out)["result"], "Use htmd.");
    assert_eq!(
        *seen.lock().unwrap(),
        ["/search?q=html+to+markdown+crate&format=json"]
    );
    let messages = h.requests()[1].body["messages"].clone();
    let tool_message = messages
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["role"] == "tool")
        .unwrap()
        .clone();
    let content = tool_message["content"].as_str().unwrap();
    assert!(
        content.starts_with("Web search results for query: \"html to markdown crate\"\n\nLinks: [{\"title\":\"htmd on crates.io\",\"url\":\"https://crates.io/crates/htmd\"}"),
        "{content}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn print_mode_offers_the_web_tools_but_no_questions() {
    let h = Harness::new(vec![ScriptedTurn::text("ok")]).await;
    let out = h.run(&["-p", "hi"]).await;
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    let names = tool_names(&h.requests()[0].body);
    for tool in ["NotebookEdit", "WebFetch", "WebSearch"] {
        assert!(
            names.contains(&tool.to_string()),
            "{tool} missing: {names:?}"
        );
    }
    assert!(!names.contains(&"AskUserQuestion".to_string()), "{names:?}");
    // WebSearch is an ordinary tool for the main model; the server tool is only sent when
    // WebSearch runs its own request.
    assert!(
        !h.requests()[0].body["tools"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t.get("type").is_some()),
        "{}",
        h.requests()[0].body["tools"]
    );
}
