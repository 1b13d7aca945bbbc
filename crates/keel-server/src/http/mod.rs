//! `keel serve`: sessions over HTTP. Clients create sessions, post prompts, read each
//! session's events as Server-Sent Events (numbered, resumable with `Last-Event-ID`), answer
//! approval requests, interrupt, and end sessions; stored sessions can be listed and resumed.
//! Errors are JSON. The server binds 127.0.0.1 unless told otherwise, and refuses to listen
//! beyond loopback without a bearer token.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};

mod error;
mod routes;
mod state;

pub use error::ApiError;

use crate::launch::Base;
use state::AppState;

/// Events each session keeps for readers that reconnect (`Last-Event-ID`).
pub const DEFAULT_EVENT_BUFFER: usize = 10_000;

/// How long shutdown waits for connections (SSE readers) to finish after every session ended.
const DRAIN_WAIT: Duration = Duration::from_secs(5);

/// How `keel serve` listens and what its sessions start from.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// The address to bind: an IP address or `localhost`.
    pub host: String,
    /// The port (0 picks a free one).
    pub port: u16,
    /// The bearer token clients must send; required beyond loopback.
    pub token: Option<String>,
    /// Events kept per session for reconnecting readers.
    pub event_buffer: usize,
    /// What sessions start from.
    pub base: Base,
}

/// Why the server could not run.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Listening beyond loopback was asked for without a token.
    #[error(
        "refusing to listen on {host} without a token: anyone who can reach this machine could \
         run commands through keel. Set one with --token or KEEL_SERVE_TOKEN (clients then send \
         `Authorization: Bearer <token>`), or listen on 127.0.0.1"
    )]
    TokenRequired {
        /// The host asked for.
        host: String,
    },
    /// The host is not an IP address or `localhost`.
    #[error("--host {0}: give an IP address (127.0.0.1, 0.0.0.0, ::1) or localhost")]
    BadHost(String),
    /// The token is empty or has characters a header cannot carry.
    #[error("the token must be non-empty visible ASCII without spaces")]
    BadToken,
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source} (pick another --port, or 0 for a free one)")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The server stopped with an I/O error.
    #[error("the server stopped: {0}")]
    Io(#[from] std::io::Error),
}

/// The address `host` names.
fn host_ip(host: &str) -> Result<IpAddr, ServeError> {
    if host.eq_ignore_ascii_case("localhost") {
        return Ok(IpAddr::from([127, 0, 0, 1]));
    }
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
        .map_err(|_| ServeError::BadHost(host.to_string()))
}

/// Checks the options, binds, calls `ready` with the bound address, and serves until
/// `shutdown` completes. Then it stops accepting connections, interrupts every run, ends every
/// session (each transcript is synced and closed) and returns.
pub async fn serve(
    options: HttpOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
    ready: impl FnOnce(SocketAddr),
) -> Result<(), ServeError> {
    let ip = host_ip(&options.host)?;
    let token = options.token.filter(|t| !t.is_empty());
    if let Some(token) = &token
        && !token.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(ServeError::BadToken);
    }
    if !ip.is_loopback() && token.is_none() {
        return Err(ServeError::TokenRequired { host: options.host });
    }
    let addr = SocketAddr::new(ip, options.port);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })?;
    let bound = listener.local_addr()?;
    let state = Arc::new(AppState {
        local_only: ip.is_loopback() && token.is_none(),
        token,
        base: options.base,
        sessions: std::sync::Mutex::new(HashMap::new()),
        starting: std::sync::Mutex::new(Default::default()),
        shutting_down: AtomicBool::new(false),
        event_buffer: options.event_buffer,
    });
    let app = router(state.clone());
    ready(bound);

    let (stop_accepting, accepting_stopped) = tokio::sync::oneshot::channel::<()>();
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        let _ = accepting_stopped.await;
    });
    let server = tokio::spawn(async move { server.await });
    shutdown.await;
    tracing::info!("shutting down: ending every session");
    let _ = stop_accepting.send(());
    // Runs are interrupted and transcripts closed; SSE streams end after their last event.
    state.end_all().await;
    match tokio::time::timeout(DRAIN_WAIT, server).await {
        Ok(Ok(result)) => result?,
        Ok(Err(join)) => tracing::warn!(error = %join, "the server task failed"),
        Err(_) => tracing::warn!("connections still open after shutdown; closing them"),
    }
    Ok(())
}

/// The API with its guards, for `serve` and for tests that call it in-process.
fn router(state: Arc<AppState>) -> Router {
    routes::routes(state.clone()).layer(middleware::from_fn_with_state(state, guard))
}

/// Refuses requests that lack the token, or (on loopback without a token) that come through a
/// foreign host name (DNS rebinding) or from a web page of another origin.
async fn guard(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    if let Some(token) = &state.token {
        if path != "/health" && !bearer_matches(request.headers(), token) {
            let mut response = ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "send the server's token: Authorization: Bearer <token>",
            )
            .into_response();
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
            return response;
        }
    } else if state.local_only
        && let Some(problem) = foreign(request.headers())
    {
        return ApiError::new(StatusCode::FORBIDDEN, "forbidden", problem).into_response();
    }
    next.run(request).await
}

/// Compares the bearer token in constant time (for equal lengths).
fn bearer_matches(headers: &HeaderMap, token: &str) -> bool {
    let Some(given) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return false;
    };
    let (a, b) = (given.trim().as_bytes(), token.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Why a request to a loopback-only server does not look local, if it does not.
fn foreign(headers: &HeaderMap) -> Option<String> {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !is_local_authority(host) {
        return Some(format!(
            "Host {host:?} is not a local name; this server only answers requests for localhost \
             (start it with a --token to serve other names)"
        ));
    }
    if let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        let authority = origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"));
        if !authority.is_some_and(is_local_authority) {
            return Some(format!(
                "requests from the web page {origin} are refused; only local pages may use \
                 this server"
            ));
        }
    }
    None
}

/// `localhost`, `127.x.x.x` or `[::1]`, with or without a port.
fn is_local_authority(authority: &str) -> bool {
    let host = if let Some(rest) = authority.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        authority.rsplit_once(':').map_or(authority, |(h, _)| h)
    };
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_authorities() {
        for ok in [
            "localhost",
            "localhost:8080",
            "127.0.0.1:1",
            "[::1]:9",
            "127.1.2.3",
        ] {
            assert!(is_local_authority(ok), "{ok}");
        }
        for bad in [
            "evil.com",
            "evil.com:80",
            "10.0.0.1:80",
            "",
            "localhost.evil.com",
        ] {
            assert!(!is_local_authority(bad), "{bad}");
        }
    }

    #[test]
    fn bearer_tokens_compare_exactly() {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, "Bearer s3cret".parse().unwrap());
        assert!(bearer_matches(&headers, "s3cret"));
        assert!(!bearer_matches(&headers, "s3cre"));
        assert!(!bearer_matches(&headers, "s3cret!"));
        assert!(!bearer_matches(&HeaderMap::new(), "s3cret"));
    }

    /// Every `.route("PATH", METHODS)` in routes.rs, with its methods.
    fn routes_in_source() -> Vec<(String, String)> {
        let source = include_str!("routes.rs");
        let mut found = Vec::new();
        for chunk in source.split(".route(").skip(1) {
            let Some(rest) = chunk.trim_start().strip_prefix('"') else {
                continue;
            };
            let Some((path, rest)) = rest.split_once('"') else {
                continue;
            };
            // The methods run until the call's closing parenthesis at depth zero.
            let mut depth = 1;
            let mut end = rest.len();
            for (i, c) in rest.char_indices() {
                match c {
                    '(' => depth += 1,
                    ')' => {
                        depth -= 1;
                        if depth == 0 {
                            end = i;
                            break;
                        }
                    }
                    _ => {}
                }
            }
            for method in ["get", "post", "patch", "delete", "put"] {
                let call = format!("{method}(");
                if rest[..end].match_indices(&call).any(|(i, _)| {
                    i == 0 || !rest[..end][..i].ends_with(|c: char| c.is_alphanumeric() || c == '_')
                }) {
                    found.push((path.to_string(), method.to_string()));
                }
            }
        }
        found.sort();
        found
    }

    #[test]
    fn every_route_is_in_the_openapi_description_and_nothing_else() {
        let doc: serde_json::Value = serde_json::from_str(routes::OPENAPI).unwrap();
        assert_eq!(doc["openapi"].as_str().map(|v| &v[..2]), Some("3."));
        let mut described = Vec::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                if ["get", "post", "patch", "delete", "put"].contains(&method.as_str()) {
                    described.push((path.clone(), method.clone()));
                }
            }
        }
        described.sort();
        let routes = routes_in_source();
        assert!(
            routes.len() >= 11,
            "the route scan found too little: {routes:?}"
        );
        assert_eq!(routes, described);
    }
}
