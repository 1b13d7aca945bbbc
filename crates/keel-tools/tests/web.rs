//! WebFetch and WebSearch end to end: real HTTP servers on 127.0.0.1 play the web (pages,
//! redirects, a 20 MB body, a slow server, a SearXNG instance), and the mock model server
//! plays the small model that reads pages and the API that runs server-side searches.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use common::Workspace;
use keel_model::{AnthropicAuth, AnthropicClient, AnthropicConfig, ModelClient};
use keel_test_support::{MockModelServer, Script, ScriptedBlock, ScriptedTurn, TurnMatcher};
use keel_tools::builtin::{SearchBackend, WebFetch, WebFetchConfig, WebSearch};
use serde_json::{Value, json};

const PAGE: &str = "<!doctype html><html><head><title>Keel notes</title>\
    <style>body { color: red }</style><script>trackVisitor()</script></head>\
    <body><h1>Keel notes</h1><p>Keel is a <strong>Rust</strong> harness. See the \
    <a href=\"https://docs.example/guide\">guide</a>.</p><ul><li>fast</li><li>small</li></ul>\
    </body></html>";

/// Twenty megabytes, sent in 64 KB chunks.
const HUGE_BYTES: usize = 20 * 1024 * 1024;
const CHUNK: usize = 64 * 1024;
/// Where the huge body stops coming until the client disconnects.
const STALL_AFTER: usize = 12 * 1024 * 1024;

/// The pretend web site, and what it saw.
#[derive(Default)]
struct Site {
    hits: Mutex<HashMap<String, usize>>,
    huge_sent: AtomicUsize,
    /// Set when the server dropped the huge body (the client went away, or it was all sent).
    huge_done: AtomicBool,
    port: AtomicUsize,
}

/// Sets the site's `huge_done` when the body stream holding it is dropped.
struct DoneOnDrop(Arc<Site>);

impl Drop for DoneOnDrop {
    fn drop(&mut self) {
        self.0.huge_done.store(true, Ordering::SeqCst);
    }
}

impl Site {
    fn hits(&self, path: &str) -> usize {
        self.hits.lock().unwrap().get(path).copied().unwrap_or(0)
    }
}

async fn serve_site() -> (SocketAddr, Arc<Site>) {
    let site = Arc::new(Site::default());
    async fn page(State(site): State<Arc<Site>>, uri: Uri) -> Response {
        *site
            .hits
            .lock()
            .unwrap()
            .entry(uri.path().to_string())
            .or_default() += 1;
        let port = site.port.load(Ordering::SeqCst);
        match uri.path() {
            "/page" => ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], PAGE).into_response(),
            "/moved" => (StatusCode::FOUND, [(header::LOCATION, "/page")]).into_response(),
            "/away" => (
                StatusCode::MOVED_PERMANENTLY,
                [(header::LOCATION, format!("http://localhost:{port}/page"))],
            )
                .into_response(),
            "/huge" => {
                // 20 MB announced; after 12 MB the server holds back the rest until the client
                // goes away, so a client that wanted the whole body would wait in vain.
                let done = DoneOnDrop(site.clone());
                let chunks = futures::stream::unfold((0usize, done), |(i, done)| async move {
                    if i * CHUNK >= STALL_AFTER {
                        std::future::pending::<()>().await;
                    }
                    if i * CHUNK >= HUGE_BYTES {
                        return None;
                    }
                    done.0.huge_sent.fetch_add(CHUNK, Ordering::SeqCst);
                    let mut chunk = vec![b'a' + (i % 26) as u8; CHUNK];
                    chunk[CHUNK - 1] = b'\n';
                    Some((Ok::<_, std::io::Error>(chunk), (i + 1, done)))
                });
                (
                    [
                        (header::CONTENT_TYPE, "text/plain".to_string()),
                        (header::CONTENT_LENGTH, HUGE_BYTES.to_string()),
                    ],
                    Body::from_stream(chunks),
                )
                    .into_response()
            }
            "/slow" => {
                tokio::time::sleep(Duration::from_secs(5)).await;
                "too late".into_response()
            }
            "/logo.png" => (
                [(header::CONTENT_TYPE, "image/png")],
                b"\x89PNG\r\n\x1a\n....".to_vec(),
            )
                .into_response(),
            _ => (StatusCode::NOT_FOUND, "<h1>No such page</h1>").into_response(),
        }
    }
    let app = Router::new().fallback(get(page)).with_state(site.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    site.port.store(addr.port() as usize, Ordering::SeqCst);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, site)
}

fn anthropic(server: &MockModelServer) -> Arc<dyn ModelClient> {
    Arc::new(
        AnthropicClient::new(AnthropicConfig::new(
            server.url(),
            AnthropicAuth::ApiKey("test".into()),
        ))
        .unwrap(),
    )
}

/// A reply of the page-reading model, served only for prompts that carry `needle`.
fn reader_turn(needle: &str, answer: &str) -> ScriptedTurn {
    ScriptedTurn {
        when: Some(TurnMatcher {
            model: Some("claude-haiku-4-5".into()),
            messages_contain: Some(needle.into()),
            ..TurnMatcher::default()
        }),
        ..ScriptedTurn::text(answer)
    }
}

fn fetch_tool(model: &MockModelServer, allow: &[&str]) -> WebFetch {
    let mut config = WebFetchConfig::new(anthropic(model), "claude-haiku-4-5");
    config.allow_private_hosts = allow.iter().map(|s| s.to_string()).collect();
    config.timeout = Duration::from_secs(2);
    WebFetch::new(config)
}

fn workspace_with(tool: impl keel_tools::Tool + 'static) -> Workspace {
    let mut ws = Workspace::new();
    ws.tools = keel_tools::ToolRegistry::new();
    ws.tools.register(Arc::new(tool)).unwrap();
    ws
}

fn user_text(request: &Value) -> String {
    request["messages"][0]["content"][0]["text"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_is_converted_and_the_small_model_answers_the_prompt() {
    let (addr, site) = serve_site().await;
    let model = MockModelServer::start(Script::new(vec![
        reader_turn("What is keel written in?", "Keel is written in Rust."),
        reader_turn("What is keel written in?", "Still Rust."),
    ]))
    .await
    .unwrap();
    let ws = workspace_with(fetch_tool(&model, &["loopback"]));
    let url = format!("http://{addr}/page");
    let result = ws
        .ok(
            "WebFetch",
            json!({"url": url, "prompt": "What is keel written in?"}),
        )
        .await;
    assert_eq!(result.content, "Keel is written in Rust.");
    let structured = result.structured.unwrap();
    assert_eq!(structured["code"], 200);
    assert_eq!(
        structured["url"], url,
        "an allowed loopback host keeps http"
    );
    assert_eq!(structured["bytes"], PAGE.len());

    let requests = model.requests();
    assert_eq!(requests.len(), 1);
    let body = &requests[0].body;
    assert_eq!(body["model"], "claude-haiku-4-5");
    let prompt = user_text(body);
    assert!(prompt.contains("# Keel notes"), "{prompt}");
    assert!(
        prompt.contains("[guide](https://docs.example/guide)"),
        "{prompt}"
    );
    assert!(prompt.contains("**Rust**"), "{prompt}");
    assert!(prompt.contains("What is keel written in?"), "{prompt}");
    assert!(
        !prompt.contains("<h1>")
            && !prompt.contains("trackVisitor")
            && !prompt.contains("color: red"),
        "{prompt}"
    );

    // Within 15 minutes the page comes from the cache: no second HTTP request, but the new
    // prompt is still answered.
    let again = ws
        .ok(
            "WebFetch",
            json!({"url": url, "prompt": "What is keel written in?"}),
        )
        .await;
    assert_eq!(again.content, "Still Rust.");
    assert_eq!(site.hits("/page"), 1);
    assert_eq!(model.requests().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_are_followed_on_the_same_host_and_reported_across_hosts() {
    let (addr, site) = serve_site().await;
    let model = MockModelServer::start(Script::new(vec![reader_turn(
        "Summarise",
        "A page about keel.",
    )]))
    .await
    .unwrap();
    let ws = workspace_with(fetch_tool(&model, &["loopback"]));

    let result = ws
        .ok(
            "WebFetch",
            json!({"url": format!("http://{addr}/moved"), "prompt": "Summarise"}),
        )
        .await;
    assert_eq!(result.content, "A page about keel.");
    assert_eq!(
        result.structured.unwrap()["url"],
        format!("http://{addr}/page")
    );
    assert_eq!(site.hits("/moved"), 1);
    assert_eq!(site.hits("/page"), 1);

    let result = ws
        .ok(
            "WebFetch",
            json!({"url": format!("http://{addr}/away"), "prompt": "Summarise"}),
        )
        .await;
    let target = format!("http://localhost:{}/page", addr.port());
    assert!(
        result.content.contains("redirected to another host"),
        "{}",
        result.content
    );
    assert!(
        result.content.contains(&format!("Redirect URL: {target}")),
        "{}",
        result.content
    );
    assert!(result.content.contains("Status: 301"), "{}", result.content);
    assert_eq!(result.structured.unwrap()["redirectUrl"], target);
    // The other host was not contacted, and no model was asked.
    assert_eq!(site.hits("/page"), 1);
    assert_eq!(model.requests().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_20_mb_body_is_cut_at_the_limit_without_being_downloaded_whole() {
    let (addr, site) = serve_site().await;
    let model = MockModelServer::start(Script::new(vec![reader_turn(
        "How long is it?",
        "Very long.",
    )]))
    .await
    .unwrap();
    let ws = workspace_with(fetch_tool(&model, &["loopback"]));
    let started = Instant::now();
    let result = ws
        .ok(
            "WebFetch",
            json!({"url": format!("http://{addr}/huge"), "prompt": "How long is it?"}),
        )
        .await;
    // Well within the 2 s limit: keel did not wait for the rest of the body.
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
    assert!(result.content.starts_with("Very long."));
    assert!(
        result
            .content
            .contains("Only the first 10 MB of the page were read"),
        "{}",
        result.content
    );
    assert_eq!(result.structured.unwrap()["bytes"], 10 * 1024 * 1024);
    // The model got a bounded excerpt, not ten megabytes.
    let prompt = user_text(&model.requests()[0].body);
    assert!(
        prompt.len() < 110_000,
        "{} bytes sent to the model",
        prompt.len()
    );
    // The connection was closed once the limit was hit: the server saw the client go away
    // while the rest of the body was still unsent.
    keel_test_support::wait::wait_for("the client to hang up", Duration::from_secs(5), || {
        site.huge_done.load(Ordering::SeqCst)
    })
    .await;
    assert!(site.huge_sent.load(Ordering::SeqCst) <= STALL_AFTER);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_server_is_given_up_on() {
    let (addr, _site) = serve_site().await;
    let model = MockModelServer::start(Script::new(vec![])).await.unwrap();
    let ws = workspace_with(fetch_tool(&model, &["loopback"]));
    let started = Instant::now();
    let error = ws
        .err(
            "WebFetch",
            json!({"url": format!("http://{addr}/slow"), "prompt": "anything"}),
        )
        .await;
    assert!(error.contains("took longer than 2 s"), "{error}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert!(model.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopback_and_private_hosts_are_refused_unless_allowed() {
    let (addr, site) = serve_site().await;
    let model = MockModelServer::start(Script::new(vec![])).await.unwrap();
    let ws = workspace_with(fetch_tool(&model, &[]));
    // An IP address is refused before any connection.
    let error = ws
        .err(
            "WebFetch",
            json!({"url": format!("http://{addr}/page"), "prompt": "x"}),
        )
        .await;
    assert!(error.contains("Refused to fetch from 127.0.0.1"), "{error}");
    assert!(error.contains("web.allowPrivateHosts"), "{error}");
    // A name is checked after it is resolved.
    let error = ws
        .err(
            "WebFetch",
            json!({"url": format!("http://localhost:{}/page", addr.port()), "prompt": "x"}),
        )
        .await;
    assert!(error.contains("Refused to fetch from localhost"), "{error}");
    assert!(error.contains("loopback"), "{error}");
    let error = ws
        .err(
            "WebFetch",
            json!({"url": "http://169.254.169.254/latest/meta-data/", "prompt": "x"}),
        )
        .await;
    assert!(
        error.contains("private or local network address"),
        "{error}"
    );
    assert_eq!(site.hits("/page"), 0);
    assert!(model.requests().is_empty());

    // Not a web page, not http(s), not found: each says what to do.
    let ws = workspace_with(fetch_tool(&model, &["loopback"]));
    let error = ws
        .err(
            "WebFetch",
            json!({"url": format!("http://{addr}/logo.png"), "prompt": "x"}),
        )
        .await;
    assert!(
        error.contains("image/png") && error.contains("curl"),
        "{error}"
    );
    let error = ws
        .err(
            "WebFetch",
            json!({"url": "file:///etc/passwd", "prompt": "x"}),
        )
        .await;
    assert!(error.contains("use Read for local files"), "{error}");
    let error = ws
        .err(
            "WebFetch",
            json!({"url": format!("http://{addr}/missing"), "prompt": "x"}),
        )
        .await;
    assert!(
        error.contains("HTTP 404") && error.contains("No such page"),
        "{error}"
    );
}

// ---------- WebSearch ----------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anthropic_search_runs_the_server_tool_and_reports_links() {
    let call = json!({"type": "server_tool_use", "id": "srvtoolu_01", "name": "web_search", "input": {"query": "keel agent harness"}});
    let results = json!({"type": "web_search_tool_result", "tool_use_id": "srvtoolu_01", "content": [
        {"type": "web_search_result", "title": "Keel docs", "url": "https://keel.example/docs", "encrypted_content": "E1", "page_age": "2 days ago"},
        {"type": "web_search_result", "title": "Keel on GitHub", "url": "https://github.example/keel", "encrypted_content": "E2"}
    ]});
    let cited = json!({"type": "text", "text": "Keel is a Rust harness for coding agents.", "citations": [
        {"type": "web_search_result_location", "url": "https://keel.example/docs", "title": "Keel docs", "encrypted_index": "I1", "cited_text": "Keel is a harness"}
    ]});
    let model = MockModelServer::start(Script::new(vec![
        // A long server-side turn pauses; keel sends it back to be continued.
        ScriptedTurn {
            content: vec![
                ScriptedBlock::Raw {
                    block: call.clone(),
                },
                ScriptedBlock::Raw {
                    block: results.clone(),
                },
            ],
            stop_reason: Some("pause_turn".into()),
            ..ScriptedTurn::default()
        },
        ScriptedTurn {
            content: vec![ScriptedBlock::Raw {
                block: cited.clone(),
            }],
            ..ScriptedTurn::default()
        },
    ]))
    .await
    .unwrap();
    let ws = workspace_with(WebSearch::new(SearchBackend::Anthropic {
        client: anthropic(&model),
        model: "claude-sonnet-4-5".into(),
    }));
    let result = ws
        .ok(
            "WebSearch",
            json!({"query": "keel agent harness", "allowed_domains": ["keel.example", "github.example"]}),
        )
        .await;
    assert!(
        result.content.starts_with("Web search results for query: \"keel agent harness\"\n\nLinks: [{\"title\":\"Keel docs\",\"url\":\"https://keel.example/docs\"},{\"title\":\"Keel on GitHub\",\"url\":\"https://github.example/keel\"}]"),
        "{}",
        result.content
    );
    assert!(
        result
            .content
            .contains("Keel is a Rust harness for coding agents.")
    );
    assert!(result.content.contains("Markdown links"));
    let structured = result.structured.unwrap();
    assert_eq!(structured["query"], "keel agent harness");
    assert_eq!(structured["results"][0]["tool_use_id"], "srvtoolu_01");
    assert_eq!(
        structured["results"][0]["content"][1]["url"],
        "https://github.example/keel"
    );

    let requests = model.requests();
    assert_eq!(requests.len(), 2);
    let first = &requests[0].body;
    assert_eq!(first["model"], "claude-sonnet-4-5");
    assert_eq!(
        first["tools"],
        json!([{
            "type": "web_search_20250305",
            "name": "web_search",
            "max_uses": 8,
            "allowed_domains": ["keel.example", "github.example"]
        }])
    );
    assert!(user_text(first).contains("keel agent harness"));
    // The paused turn went back unchanged, server blocks and all.
    let second = &requests[1].body;
    assert_eq!(second["messages"][1]["role"], "assistant");
    assert_eq!(second["messages"][1]["content"], json!([call, results]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_server_search_says_why() {
    let model = MockModelServer::start(Script::new(vec![ScriptedTurn {
        content: vec![
            ScriptedBlock::Raw {
                block: json!({"type": "server_tool_use", "id": "srvtoolu_9", "name": "web_search", "input": {"query": "x"}}),
            },
            ScriptedBlock::Raw {
                block: json!({"type": "web_search_tool_result", "tool_use_id": "srvtoolu_9", "content": {"type": "web_search_tool_result_error", "error_code": "too_many_requests"}}),
            },
        ],
        ..ScriptedTurn::default()
    }]))
    .await
    .unwrap();
    let ws = workspace_with(WebSearch::new(SearchBackend::Anthropic {
        client: anthropic(&model),
        model: "claude-sonnet-4-5".into(),
    }));
    let error = ws.err("WebSearch", json!({"query": "anything"})).await;
    assert!(
        error.contains("too_many_requests") && error.contains("rate limited"),
        "{error}"
    );
    let error = ws
        .err(
            "WebSearch",
            json!({"query": "anything", "allowed_domains": ["a.example"], "blocked_domains": ["b.example"]}),
        )
        .await;
    assert!(error.contains("not both"), "{error}");
}

/// The query parameters of each request a fake SearXNG got.
type Seen = Arc<Mutex<Vec<HashMap<String, String>>>>;

/// A SearXNG instance's JSON API, recording the queries it was asked.
async fn fake_searxng() -> (SocketAddr, Seen) {
    let seen: Seen = Arc::default();
    async fn search(
        State(seen): State<Seen>,
        Query(params): Query<HashMap<String, String>>,
        _headers: HeaderMap,
    ) -> Response {
        seen.lock().unwrap().push(params.clone());
        if params.get("format").map(String::as_str) != Some("json") {
            return (StatusCode::FORBIDDEN, "json not enabled").into_response();
        }
        axum::Json(json!({
            "query": params["q"],
            "number_of_results": 3,
            "results": [
                {"url": "https://doc.rust-lang.org/book/", "title": "The Rust Book", "content": "The <strong>Rust</strong> Programming Language", "engine": "duckduckgo"},
                {"url": "https://spam.example/rust", "title": "Cheap Rust", "content": "buy now", "engine": "bing"},
                {"url": "https://www.rust-lang.org/learn", "title": "Learn Rust", "content": "Get started with Rust", "engine": "google"},
                {"url": "https://doc.rust-lang.org/book/", "title": "The Rust Book (again)", "content": "dup", "engine": "bing"}
            ]
        }))
        .into_response()
    }
    let app = Router::new()
        .route("/search", get(search))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn searxng_answers_when_there_is_no_server_tool() {
    let (addr, seen) = fake_searxng().await;
    let ws = workspace_with(WebSearch::new(SearchBackend::Searxng {
        base_url: format!("http://{addr}/"),
    }));
    let result = ws
        .ok(
            "WebSearch",
            json!({"query": "rust book", "blocked_domains": ["spam.example"]}),
        )
        .await;
    assert_eq!(seen.lock().unwrap()[0]["q"], "rust book");
    assert_eq!(seen.lock().unwrap()[0]["format"], "json");
    let text = &result.content;
    assert!(
        text.starts_with("Web search results for query: \"rust book\"\n\nLinks: [{\"title\":\"The Rust Book\",\"url\":\"https://doc.rust-lang.org/book/\"},{\"title\":\"Learn Rust\",\"url\":\"https://www.rust-lang.org/learn\"}]"),
        "{text}"
    );
    assert!(
        text.contains(
            "1. [The Rust Book](https://doc.rust-lang.org/book/)\n   The Rust Programming Language"
        ),
        "{text}"
    );
    assert!(
        !text.contains("spam.example") && !text.contains("(again)"),
        "{text}"
    );

    let result = ws
        .ok(
            "WebSearch",
            json!({"query": "rust book", "allowed_domains": ["www.rust-lang.org"]}),
        )
        .await;
    let links = result.structured.unwrap()["results"][0]["content"].clone();
    assert_eq!(
        links,
        json!([{"title": "Learn Rust", "url": "https://www.rust-lang.org/learn"}])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_search_backend_is_explained() {
    // A port nothing listens on.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let ws = workspace_with(WebSearch::new(SearchBackend::Searxng {
        base_url: format!("http://{addr}"),
    }));
    let error = ws.err("WebSearch", json!({"query": "anything"})).await;
    assert!(error.contains("Could not reach SearXNG"), "{error}");
}
