//! Pieces WebFetch and WebSearch share: a one-off model call whose answer becomes the tool's
//! result, domain matching, and the shape of a list of search results.

use futures::StreamExt as _;
use keel_model::{MessageAccumulator, ModelClient, ModelRequest};
use keel_protocol::AssistantMessage;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::ToolError;

/// Sends one request and returns the complete answer. The user's interrupt cancels it.
pub(crate) async fn ask_model(
    client: &dyn ModelClient,
    request: &ModelRequest,
    cancel: &CancellationToken,
) -> Result<AssistantMessage, ToolError> {
    let work = async {
        let mut stream = client
            .stream(request)
            .await
            .map_err(|e| ToolError::Failed(e.to_string()))?;
        let mut accumulator = MessageAccumulator::new();
        while let Some(item) = stream.next().await {
            let event = item.map_err(|e| ToolError::Failed(e.to_string()))?;
            accumulator.push(&event);
        }
        if !accumulator.is_complete() {
            return Err(ToolError::Failed(
                "the model's answer stopped before it was complete".into(),
            ));
        }
        Ok(accumulator.finish().message)
    };
    tokio::select! {
        () = cancel.cancelled() => Err(ToolError::Interrupted { partial: String::new() }),
        answer = work => answer,
    }
}

/// Whether `host` is `domain` or one of its subdomains (`docs.rs` matches `docs.rs` and
/// `www.docs.rs`, not `notdocs.rs`).
pub(crate) fn in_domain(host: &str, domain: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let domain = domain
        .trim()
        .trim_start_matches("*.")
        .trim_end_matches('.')
        .to_ascii_lowercase();
    !domain.is_empty()
        && (host == domain
            || host
                .strip_suffix(&domain)
                .is_some_and(|rest| rest.ends_with('.')))
}

/// One search hit.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Hit {
    pub(crate) title: String,
    pub(crate) url: String,
    /// A snippet of the page, when the backend gives one.
    pub(crate) snippet: String,
}

/// Whether a hit passes the call's domain filters.
pub(crate) fn passes(url: &str, allowed: &[String], blocked: &[String]) -> bool {
    let Some(host) = reqwest::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
    else {
        return false;
    };
    if blocked.iter().any(|d| in_domain(&host, d)) {
        return false;
    }
    allowed.is_empty() || allowed.iter().any(|d| in_domain(&host, d))
}

/// The result text every search backend produces: the links as JSON, then what was said
/// about them, then the reminder to cite.
pub(crate) fn results_text(query: &str, hits: &[Hit], commentary: &str) -> String {
    let links: Vec<Value> = hits
        .iter()
        .map(|h| json!({"title": h.title, "url": h.url}))
        .collect();
    let mut text = format!(
        "Web search results for query: {}\n\nLinks: {}",
        json!(query),
        Value::Array(links)
    );
    if !commentary.trim().is_empty() {
        text.push_str("\n\n");
        text.push_str(commentary.trim());
    }
    if hits.is_empty() {
        text.push_str("\n\nNo results. Try other words, or fewer domain restrictions.");
    } else {
        text.push_str(
            "\n\nWhen you use these results in your answer, cite the pages as Markdown links \
             ([title](url)).",
        );
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_match_themselves_and_subdomains_only() {
        assert!(in_domain("docs.rs", "docs.rs"));
        assert!(in_domain("www.docs.rs", "docs.rs"));
        assert!(in_domain("WWW.Docs.RS.", "*.docs.rs"));
        assert!(!in_domain("notdocs.rs", "docs.rs"));
        assert!(!in_domain("docs.rs", ""));
        let allowed = vec!["rust-lang.org".to_string()];
        assert!(passes("https://doc.rust-lang.org/std/", &allowed, &[]));
        assert!(!passes("https://example.com/", &allowed, &[]));
        assert!(!passes(
            "https://spam.example.com/x",
            &[],
            &["example.com".to_string()]
        ));
        assert!(passes(
            "https://example.org/x",
            &[],
            &["example.com".to_string()]
        ));
        assert!(!passes("not a url", &[], &[]));
    }
}
