//! WebSearch: finds pages for a query, with Claude Code's input (`query`, `allowed_domains`,
//! `blocked_domains`). With the Anthropic provider it runs one request of its own carrying
//! the API's server-side web search tool (as Claude Code does), and reports the links found
//! and what the model said about them; otherwise it asks a search backend the user
//! configured: a SearXNG instance or the Brave Search API. Without any, the tool is not
//! offered at all.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use keel_model::{ModelClient, ModelRequest};
use keel_protocol::{ContentBlock, Message, Role, StopReason};
use serde_json::{Value, json};

use super::common::required_str;
use super::web::{Hit, ask_model, passes, results_text};
use crate::{Tool, ToolContext, ToolError, ToolOutput};

/// How many searches the server tool may run for one call.
const MAX_SERVER_SEARCHES: u32 = 8;
/// How often a paused server-side turn is resumed before giving up.
const MAX_CONTINUATIONS: usize = 4;
/// Results asked of a search API (more than shown, so domain filters leave enough).
const API_RESULTS: usize = 20;
/// Results shown to the model.
const SHOWN_RESULTS: usize = 10;
/// How long a search backend may take.
const API_TIMEOUT: Duration = Duration::from_secs(30);

/// Where searches go.
#[derive(Clone)]
pub enum SearchBackend {
    /// Anthropic's server-side web search, run in a request of its own.
    Anthropic {
        /// The provider.
        client: Arc<dyn ModelClient>,
        /// The model that runs the search.
        model: String,
    },
    /// A SearXNG instance (its JSON API must be enabled: `search.formats` with `json`).
    Searxng {
        /// The instance's base URL, e.g. `http://localhost:8888`.
        base_url: String,
    },
    /// The Brave Search API.
    Brave {
        /// The subscription token.
        api_key: String,
        /// The endpoint (the public API's, unless a gateway stands in between).
        endpoint: String,
    },
}

impl std::fmt::Debug for SearchBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Anthropic { model, .. } => write!(f, "Anthropic web search ({model})"),
            Self::Searxng { base_url } => write!(f, "SearXNG at {base_url}"),
            // The key never reaches logs.
            Self::Brave { endpoint, .. } => write!(f, "Brave Search at {endpoint}"),
        }
    }
}

/// The Brave Search API's web search endpoint.
pub const BRAVE_ENDPOINT: &str = "https://api.search.brave.com/res/v1/web/search";

/// The WebSearch tool.
#[derive(Debug)]
pub struct WebSearch {
    backend: SearchBackend,
    /// Built on first use (only the search APIs need it), keeping TLS set-up off start-up.
    http: tokio::sync::OnceCell<reqwest::Client>,
}

impl WebSearch {
    /// A WebSearch tool using `backend`.
    pub fn new(backend: SearchBackend) -> Self {
        Self {
            backend,
            http: tokio::sync::OnceCell::new(),
        }
    }

    async fn http(&self) -> Result<&reqwest::Client, ToolError> {
        self.http
            .get_or_try_init(|| async {
                reqwest::Client::builder()
                    .timeout(API_TIMEOUT)
                    .user_agent(concat!("keel/", env!("CARGO_PKG_VERSION"), " (WebSearch)"))
                    .build()
                    .map_err(|e| {
                        ToolError::Failed(format!("cannot set up HTTP for WebSearch: {e}"))
                    })
            })
            .await
    }

    /// Runs the server-side search and collects the links and the model's summary.
    async fn anthropic(
        &self,
        client: &dyn ModelClient,
        model: &str,
        query: &Query,
        ctx: &ToolContext,
    ) -> Result<Found, ToolError> {
        let mut server_tool = json!({
            "type": "web_search_20250305",
            "name": "web_search",
            "max_uses": MAX_SERVER_SEARCHES,
        });
        if !query.allowed.is_empty() {
            server_tool["allowed_domains"] = json!(query.allowed);
        }
        if !query.blocked.is_empty() {
            server_tool["blocked_domains"] = json!(query.blocked);
        }
        let mut request = ModelRequest::new(
            model,
            vec![Message::user_text(format!(
                "Search the web for: {}",
                query.text
            ))],
        );
        request.system = vec![
            "You run web searches for another assistant. Search for what the user message \
             asks, then say in a few sentences what the results say about it."
                .to_string(),
        ];
        request.server_tools = vec![server_tool];
        request.max_tokens = request.max_tokens.min(8192);
        let mut found = Found::default();
        for _ in 0..=MAX_CONTINUATIONS {
            let answer = ask_model(client, &request, &ctx.cancel).await?;
            for block in &answer.content {
                collect_block(block, &mut found);
            }
            if answer.stop_reason != Some(StopReason::PauseTurn) {
                break;
            }
            // A long server-side turn paused: send it back as it is, and the API goes on.
            request.messages.push(Message {
                role: Role::Assistant,
                content: answer.content.clone(),
            });
        }
        if found.hits.is_empty()
            && let Some(code) = &found.error
        {
            return Err(ToolError::Failed(format!(
                "The web search failed ({code}). {}",
                match code.as_str() {
                    "max_uses_exceeded" => "Too many searches in one call; try a narrower query.",
                    "too_many_requests" => "The search service is rate limited; try again shortly.",
                    "query_too_long" => "Shorten the query.",
                    _ => "Try again, or rephrase the query.",
                }
            )));
        }
        Ok(found)
    }

    async fn searxng(&self, base_url: &str, query: &Query) -> Result<Found, ToolError> {
        let endpoint = format!("{}/search", base_url.trim_end_matches('/'));
        let url = with_query(&endpoint, &[("q", &query.text), ("format", "json")])?;
        let response = self
            .http()
            .await?
            .get(url)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| backend_error("SearXNG", &endpoint, &e))?;
        let status = response.status();
        if status == reqwest::StatusCode::FORBIDDEN {
            return Err(ToolError::Failed(format!(
                "SearXNG at {base_url} refused JSON results (403). Enable them in the \
                 instance's settings.yml (search: formats: [html, json])."
            )));
        }
        if !status.is_success() {
            return Err(ToolError::Failed(format!(
                "SearXNG at {base_url} answered HTTP {status}"
            )));
        }
        let body: Value = response.json().await.map_err(|e| {
            ToolError::Failed(format!(
                "SearXNG at {base_url} sent unreadable results: {e}"
            ))
        })?;
        let hits = body["results"]
            .as_array()
            .into_iter()
            .flatten()
            .take(API_RESULTS * 2)
            .filter_map(|r| hit(r, "title", "url", "content"))
            .collect();
        Ok(Found::from_hits(hits))
    }

    async fn brave(
        &self,
        api_key: &str,
        endpoint: &str,
        query: &Query,
    ) -> Result<Found, ToolError> {
        let count = API_RESULTS.to_string();
        let url = with_query(endpoint, &[("q", &query.text), ("count", &count)])?;
        let response = self
            .http()
            .await?
            .get(url)
            .header(reqwest::header::ACCEPT, "application/json")
            .header("X-Subscription-Token", api_key)
            .send()
            .await
            .map_err(|e| backend_error("Brave Search", endpoint, &e))?;
        let status = response.status();
        if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
            return Err(ToolError::Failed(format!(
                "Brave Search refused the API key ({status}); check web.braveApiKey in the settings"
            )));
        }
        if !status.is_success() {
            return Err(ToolError::Failed(format!(
                "Brave Search answered HTTP {status}"
            )));
        }
        let body: Value = response
            .json()
            .await
            .map_err(|e| ToolError::Failed(format!("Brave Search sent unreadable results: {e}")))?;
        let hits = body["web"]["results"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| hit(r, "title", "url", "description"))
            .collect();
        Ok(Found::from_hits(hits))
    }
}

/// `endpoint` with `pairs` added to its query string, properly escaped.
fn with_query(endpoint: &str, pairs: &[(&str, &str)]) -> Result<reqwest::Url, ToolError> {
    let mut url = reqwest::Url::parse(endpoint).map_err(|e| {
        ToolError::Failed(format!(
            "the search backend URL {endpoint:?} is not valid ({e}); fix it in the web settings"
        ))
    })?;
    url.query_pairs_mut().extend_pairs(pairs);
    Ok(url)
}

fn backend_error(name: &str, endpoint: &str, error: &reqwest::Error) -> ToolError {
    if error.is_timeout() {
        ToolError::Failed(format!(
            "{name} at {endpoint} did not answer within {} s",
            API_TIMEOUT.as_secs()
        ))
    } else {
        ToolError::Failed(format!("Could not reach {name} at {endpoint}: {error}"))
    }
}

fn hit(result: &Value, title: &str, url: &str, snippet: &str) -> Option<Hit> {
    let url = result[url].as_str()?.to_string();
    Some(Hit {
        title: result[title].as_str().unwrap_or(&url).to_string(),
        snippet: strip_tags(result[snippet].as_str().unwrap_or_default()),
        url,
    })
}

/// Snippets may carry `<strong>` highlights; the model needs the words only.
fn strip_tags(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_tag = false;
    for c in text.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.trim().to_string()
}

/// A call's input.
struct Query {
    text: String,
    allowed: Vec<String>,
    blocked: Vec<String>,
}

/// What a search found.
#[derive(Debug, Default)]
struct Found {
    hits: Vec<Hit>,
    /// Per server-side search: its id and the links it returned (Claude Code's structure).
    groups: Vec<(String, Vec<Hit>)>,
    commentary: String,
    error: Option<String>,
}

impl Found {
    fn from_hits(hits: Vec<Hit>) -> Self {
        Self {
            hits,
            ..Self::default()
        }
    }
}

/// Takes the links out of a server tool's results, and the model's words out of its text.
fn collect_block(block: &ContentBlock, found: &mut Found) {
    match block {
        ContentBlock::Other(raw) if raw["type"] == "web_search_tool_result" => {
            match &raw["content"] {
                Value::Array(results) => {
                    let hits: Vec<Hit> = results
                        .iter()
                        .filter(|r| r["type"] == "web_search_result")
                        .filter_map(|r| hit(r, "title", "url", "snippet"))
                        .collect();
                    found.hits.extend(hits.iter().cloned());
                    found.groups.push((
                        raw["tool_use_id"].as_str().unwrap_or_default().to_string(),
                        hits,
                    ));
                }
                error => {
                    found.error = Some(
                        error["error_code"]
                            .as_str()
                            .unwrap_or("unknown_error")
                            .to_string(),
                    );
                }
            }
        }
        other => {
            if let Some(text) = other.text() {
                found.commentary.push_str(text);
            }
        }
    }
}

#[async_trait]
impl Tool for WebSearch {
    fn name(&self) -> &str {
        "WebSearch"
    }

    fn description(&self) -> &str {
        "Searches the web and returns the pages found (title and URL) with a short summary. \
         Use it for anything newer than your knowledge or outside the repository: current \
         library versions, error messages, documentation you need to locate. Then read a page \
         with WebFetch. `allowed_domains` keeps only results from those sites, \
         `blocked_domains` drops results from them (use one or the other). Use the current \
         year in queries about recent things. When you answer from the results, cite the \
         pages you used as Markdown links."
    }

    fn input_schema(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "query": {
                    "type": "string",
                    "minLength": 2,
                    "description": "The search query"
                },
                "allowed_domains": {
                    "type": "array",
                    "items": {"type": "string"},
                    "description": "Only include results from these domains"
                },
                "blocked_domains": {
                    "type": "array",
                    "items": {"type": "string"},
                    "description": "Never include results from these domains"
                }
            },
            "required": ["query"],
            "additionalProperties": false
        })
    }

    fn is_read_only(&self) -> bool {
        true
    }

    async fn call(&self, input: Value, ctx: &ToolContext) -> Result<ToolOutput, ToolError> {
        let started = Instant::now();
        let strings = |key: &str| -> Vec<String> {
            input[key]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        };
        let query = Query {
            text: required_str(&input, "query")?.trim().to_string(),
            allowed: strings("allowed_domains"),
            blocked: strings("blocked_domains"),
        };
        if !query.allowed.is_empty() && !query.blocked.is_empty() {
            return Err(ToolError::InvalidInput(
                "give allowed_domains or blocked_domains, not both".into(),
            ));
        }
        let mut found = match &self.backend {
            SearchBackend::Anthropic { client, model } => {
                self.anthropic(client.as_ref(), model, &query, ctx).await?
            }
            SearchBackend::Searxng { base_url } => {
                tokio::select! {
                    () = ctx.cancel.cancelled() => return Err(ToolError::Interrupted { partial: String::new() }),
                    found = self.searxng(base_url, &query) => found?,
                }
            }
            SearchBackend::Brave { api_key, endpoint } => {
                tokio::select! {
                    () = ctx.cancel.cancelled() => return Err(ToolError::Interrupted { partial: String::new() }),
                    found = self.brave(api_key, endpoint, &query) => found?,
                }
            }
        };
        // The server tool filters by itself; the APIs are filtered here.
        found
            .hits
            .retain(|h| passes(&h.url, &query.allowed, &query.blocked));
        let mut seen = std::collections::HashSet::new();
        found.hits.retain(|h| seen.insert(h.url.clone()));
        if found.groups.is_empty() {
            found.hits.truncate(SHOWN_RESULTS);
        }
        if found.groups.is_empty() && !found.hits.is_empty() {
            // A backend without a summary: the snippets are the summary.
            found.commentary = found
                .hits
                .iter()
                .enumerate()
                .map(|(i, h)| {
                    if h.snippet.is_empty() {
                        format!("{}. [{}]({})", i + 1, h.title, h.url)
                    } else {
                        format!("{}. [{}]({})\n   {}", i + 1, h.title, h.url, h.snippet)
                    }
                })
                .collect::<Vec<_>>()
                .join("\n");
        }
        let content = results_text(&query.text, &found.hits, &found.commentary);
        let mut results: Vec<Value> = if found.groups.is_empty() {
            vec![json!({
                "tool_use_id": "",
                "content": found.hits.iter().map(|h| json!({"title": h.title, "url": h.url})).collect::<Vec<_>>(),
            })]
        } else {
            found
                .groups
                .iter()
                .map(|(id, hits)| {
                    json!({
                        "tool_use_id": id,
                        "content": hits.iter().map(|h| json!({"title": h.title, "url": h.url})).collect::<Vec<_>>(),
                    })
                })
                .collect()
        };
        if !found.commentary.trim().is_empty() {
            results.push(Value::String(found.commentary.trim().to_string()));
        }
        Ok(ToolOutput {
            content,
            structured: Some(json!({
                "query": query.text,
                "results": results,
                "durationSeconds": started.elapsed().as_secs_f64(),
            })),
            images: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_tool_results_become_links_and_errors_are_kept() {
        let mut found = Found::default();
        collect_block(
            &ContentBlock::Other(json!({
                "type": "web_search_tool_result", "tool_use_id": "srvtoolu_1",
                "content": [
                    {"type": "web_search_result", "title": "A", "url": "https://a.example/", "encrypted_content": "x"},
                    {"type": "web_search_result", "url": "https://b.example/"}
                ]
            })),
            &mut found,
        );
        collect_block(
            &ContentBlock::Other(json!({
                "type": "text", "text": "A says so.", "citations": []
            })),
            &mut found,
        );
        collect_block(
            &ContentBlock::Other(json!({
                "type": "web_search_tool_result", "tool_use_id": "srvtoolu_2",
                "content": {"type": "web_search_tool_result_error", "error_code": "max_uses_exceeded"}
            })),
            &mut found,
        );
        assert_eq!(found.hits.len(), 2);
        assert_eq!(found.hits[1].title, "https://b.example/");
        assert_eq!(found.groups[0].0, "srvtoolu_1");
        assert_eq!(found.commentary, "A says so.");
        assert_eq!(found.error.as_deref(), Some("max_uses_exceeded"));
    }

    #[test]
    fn snippet_markup_is_dropped() {
        assert_eq!(
            strip_tags("The <strong>Rust</strong> book &amp; more"),
            "The Rust book &amp; more"
        );
    }
}
