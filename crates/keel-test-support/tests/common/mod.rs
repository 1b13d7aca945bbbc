//! Helpers shared by the mock server's integration tests: a plain HTTP client and an SSE
//! parser independent of the server's code.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use futures::StreamExt;
use serde_json::Value;

/// One SSE event as a client sees it.
#[derive(Debug, Clone)]
pub struct Sse {
    pub event: Option<String>,
    pub data: String,
}

impl Sse {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data)
            .unwrap_or_else(|e| panic!("event data is not JSON ({e}): {}", self.data))
    }
}

/// Splits an SSE body into events (blank-line separated `event:`/`data:` fields).
pub fn parse_sse(text: &str) -> Vec<Sse> {
    text.split("\n\n")
        .filter(|block| !block.trim().is_empty())
        .map(|block| {
            let mut event = None;
            let mut data = Vec::new();
            for line in block.lines() {
                if let Some(name) = line.strip_prefix("event: ") {
                    event = Some(name.to_string());
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data.push(d);
                } else {
                    panic!("unexpected SSE line {line:?} in {block:?}");
                }
            }
            Sse {
                event,
                data: data.join("\n"),
            }
        })
        .collect()
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

pub async fn post(url: &str, path: &str, body: &Value) -> reqwest::Response {
    client()
        .post(format!("{url}{path}"))
        .json(body)
        .send()
        .await
        .unwrap()
}

/// Posts and returns the status and the whole body as text.
pub async fn post_text(url: &str, path: &str, body: &Value) -> (u16, String) {
    let res = post(url, path, body).await;
    let status = res.status().as_u16();
    (status, res.text().await.unwrap())
}

/// Reads a streamed body until it ends or fails; returns what arrived and whether it failed.
pub async fn read_until_end(res: reqwest::Response) -> (String, bool) {
    let mut stream = res.bytes_stream();
    let mut text = Vec::new();
    let mut failed = false;
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(bytes) => text.extend_from_slice(&bytes),
            Err(_) => {
                failed = true;
                break;
            }
        }
    }
    (String::from_utf8(text).unwrap(), failed)
}

pub fn names(events: &[Sse]) -> Vec<&str> {
    events
        .iter()
        .map(|e| e.event.as_deref().unwrap_or(""))
        .collect()
}
