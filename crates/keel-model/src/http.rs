//! What every HTTP provider shares: the timeouts, sending a request under a first-byte deadline,
//! reading error bodies and `retry-after`, and turning an SSE body into [`StreamEvent`]s under an
//! idle deadline. Each provider only supplies a [`Translate`] for its own event shapes.

use std::collections::VecDeque;
use std::time::Duration;

use eventsource_stream::{EventStreamError, Eventsource};
use futures::StreamExt;
use futures::future::{BoxFuture, FutureExt, Shared};
use serde::Deserialize;
use serde_json::Value;

use crate::{EventStream, ModelError, StreamEvent};

/// How long to wait at each stage of a request before giving up on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Establishing the TCP/TLS connection.
    pub connect: Duration,
    /// From sending the request to the response headers (for a non-streaming request: to the
    /// whole answer's headers, which arrive when the model has finished).
    pub first_byte: Duration,
    /// Between two pieces of the body once the answer is arriving.
    pub idle: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(10),
            first_byte: Duration::from_secs(300),
            idle: Duration::from_secs(300),
        }
    }
}

/// The connection pool a provider client sends with, ready by its first request.
///
/// Building a client that can speak TLS reads every certificate the system trusts (about 13 ms
/// on a small VM, most of keel's start-up), so for an `https` base URL it is built on a helper
/// thread while the session is still being assembled. A plain `http` base URL (a local model
/// server) gets a client with no certificate roots at all: nothing to read, and no `https` to
/// reach through it.
#[derive(Clone)]
pub(crate) struct HttpClient {
    ready: Shared<BoxFuture<'static, Result<reqwest::Client, String>>>,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient").finish_non_exhaustive()
    }
}

impl HttpClient {
    /// Starts building the client for requests to `base_url` with `timeouts`.
    pub(crate) fn new(base_url: &str, timeouts: &Timeouts) -> Self {
        let plain_http = base_url
            .get(..7)
            .is_some_and(|scheme| scheme.eq_ignore_ascii_case("http://"));
        let timeouts = *timeouts;
        let build = move || build_client(&timeouts, plain_http).map_err(|e| e.to_string());
        let ready = if plain_http {
            futures::future::ready(build()).boxed()
        } else {
            let (sender, receiver) = tokio::sync::oneshot::channel();
            let spawned = std::thread::Builder::new()
                .name("keel-http-init".into())
                .spawn(move || sender.send(build()));
            match spawned {
                Ok(_) => receiver
                    .map(|built| {
                        built.unwrap_or_else(|_| Err("the set-up thread stopped".to_string()))
                    })
                    .boxed(),
                // No thread to spare: build it on the first request instead.
                Err(_) => futures::future::lazy(move |_| {
                    build_client(&timeouts, false).map_err(|e| e.to_string())
                })
                .boxed(),
            }
        };
        Self {
            ready: ready.shared(),
        }
    }

    /// The client, once built (at once after the first call).
    pub(crate) async fn get(&self) -> Result<reqwest::Client, ModelError> {
        self.ready
            .clone()
            .await
            .map_err(|e| ModelError::Request(format!("cannot initialise HTTP: {e}")))
    }
}

fn build_client(timeouts: &Timeouts, plain_http: bool) -> reqwest::Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder()
        .connect_timeout(timeouts.connect)
        .user_agent(concat!("keel/", env!("CARGO_PKG_VERSION")));
    if plain_http {
        builder = builder.tls_certs_only(std::iter::empty());
    }
    builder.build()
}

/// Sends `builder`, waiting at most the first-byte timeout for the response headers.
pub(crate) async fn send(
    builder: reqwest::RequestBuilder,
    endpoint: &str,
    timeouts: &Timeouts,
) -> Result<reqwest::Response, ModelError> {
    match tokio::time::timeout(timeouts.first_byte, builder.send()).await {
        Err(_) => Err(ModelError::Timeout {
            phase: "waiting for the response to start",
            after: timeouts.first_byte,
        }),
        Ok(Err(error)) => Err(connect_error(endpoint, &error)),
        Ok(Ok(response)) => Ok(response),
    }
}

/// An error response, read: status, `retry-after`, and the body's error type and message.
pub(crate) struct ErrorResponse {
    /// The HTTP status.
    pub status: u16,
    /// The server's requested wait, if any.
    pub retry_after: Option<Duration>,
    /// The error type (`type`, else `code`), possibly empty.
    pub error_type: String,
    /// The server's explanation.
    pub message: String,
}

/// Reads an error response's body (under the idle timeout, so a stalled error page cannot hang).
pub(crate) async fn read_error(response: reqwest::Response, idle: Duration) -> ErrorResponse {
    let status = response.status().as_u16();
    let retry_after = retry_after(response.headers());
    let text = match tokio::time::timeout(idle, response.text()).await {
        Ok(Ok(text)) => text,
        _ => String::new(),
    };
    let (error_type, message) = parse_error_body(&text);
    ErrorResponse {
        status,
        retry_after,
        error_type,
        message,
    }
}

/// The error type and message from an API error body. Understands Anthropic's and OpenAI's
/// `{"error": {"type", "message", "code"}}`, Ollama's `{"error": "text"}` and a bare
/// `{"message"}`; other bodies (a proxy's HTML page) are shortened to their first line.
pub(crate) fn parse_error_body(text: &str) -> (String, String) {
    #[derive(Deserialize)]
    struct Body {
        error: Option<Value>,
        message: Option<String>,
    }
    if let Ok(body) = serde_json::from_str::<Body>(text) {
        match body.error {
            Some(Value::Object(error)) => {
                let field = |name: &str| match error.get(name) {
                    Some(Value::String(s)) => s.clone(),
                    Some(Value::Number(n)) => n.to_string(),
                    _ => String::new(),
                };
                let mut error_type = field("type");
                if error_type.is_empty() {
                    error_type = field("code");
                }
                let message = field("message");
                if !message.is_empty() || !error_type.is_empty() {
                    return (error_type, message);
                }
            }
            Some(Value::String(message)) => return (String::new(), message),
            _ => {}
        }
        if let Some(message) = body.message {
            return (String::new(), message);
        }
    }
    let first = text.trim().lines().next().unwrap_or("").trim();
    let message = if first.is_empty() {
        "(empty response body)".to_string()
    } else {
        first.chars().take(300).collect()
    };
    (String::new(), message)
}

/// The server's `retry-after` (seconds or an HTTP date) or `retry-after-ms` header.
pub(crate) fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    if let Some(ms) = headers
        .get("retry-after-ms")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|ms| ms.is_finite() && *ms >= 0.0)
    {
        return Some(Duration::from_secs_f64(ms / 1000.0));
    }
    let value = headers
        .get("retry-after")?
        .to_str()
        .ok()?
        .trim()
        .to_string();
    if let Ok(seconds) = value.parse::<f64>() {
        // Absurd values (years) would overflow Duration; they are capped by the retry policy
        // anyway, so a day is as good as infinity here.
        return (seconds.is_finite() && seconds >= 0.0)
            .then(|| Duration::from_secs_f64(seconds.min(86_400.0)));
    }
    let when = chrono::DateTime::parse_from_rfc2822(&value).ok()?;
    let wait = when.signed_duration_since(chrono::Utc::now());
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

/// A send error as the user should read it: the deepest cause, which names the real problem
/// (connection refused, DNS failure, certificate).
pub(crate) fn connect_error(url: &str, error: &reqwest::Error) -> ModelError {
    ModelError::Connect {
        url: url.to_string(),
        reason: deepest_cause(error),
    }
}

/// The innermost cause of an error, which for a failed connection names what actually went
/// wrong ("connection refused") where the outer errors only say that a request failed.
pub fn deepest_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut reason = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        reason = cause.to_string();
        source = cause.source();
    }
    reason
}

/// What one SSE event means: the stream events it produces, and whether the message is complete.
pub(crate) struct Translated {
    /// Events to hand on, in order.
    pub events: Vec<StreamEvent>,
    /// True when this event ended the message (nothing after it is read).
    pub done: bool,
}

impl Translated {
    /// Events that do not end the message.
    pub fn more(events: Vec<StreamEvent>) -> Self {
        Self {
            events,
            done: false,
        }
    }
}

/// A provider's reading of its SSE events; may keep state across events.
pub(crate) trait Translate: Send + 'static {
    /// Translates one SSE event (`name` is empty when the server sends none).
    fn event(&mut self, name: &str, data: &str) -> Result<Translated, ModelError>;

    /// The body ended before an event said the message was complete: the events that still
    /// complete it, or an error (by default: the stream ended early).
    fn end_of_body(&mut self) -> Result<Vec<StreamEvent>, ModelError> {
        Err(ModelError::StreamEnded)
    }
}

/// Turns an SSE response into stream events, enforcing the idle timeout between events. The
/// stream always ends with `MessageStop` or an error: a body that ends early yields
/// [`ModelError::StreamEnded`] (unless the translator can complete the message).
pub(crate) fn sse_events<T: Translate>(
    response: reqwest::Response,
    idle: Duration,
    translator: T,
) -> EventStream {
    struct State<S, T> {
        sse: S,
        translator: T,
        pending: VecDeque<StreamEvent>,
        done: bool,
    }
    let state = State {
        sse: Box::pin(response.bytes_stream().eventsource()),
        translator,
        pending: VecDeque::new(),
        done: false,
    };
    Box::pin(futures::stream::unfold(
        state,
        move |mut state| async move {
            loop {
                if let Some(event) = state.pending.pop_front() {
                    return Some((Ok(event), state));
                }
                if state.done {
                    return None;
                }
                let fail = |mut state: State<_, T>, error| {
                    state.done = true;
                    Some((Err(error), state))
                };
                let next = match tokio::time::timeout(idle, state.sse.next()).await {
                    Err(_) => {
                        let error = ModelError::Timeout {
                            phase: "the stream went silent",
                            after: idle,
                        };
                        return fail(state, error);
                    }
                    Ok(next) => next,
                };
                let event = match next {
                    None => {
                        state.done = true;
                        match state.translator.end_of_body() {
                            Ok(events) => {
                                state.pending.extend(events);
                                continue;
                            }
                            Err(error) => return fail(state, error),
                        }
                    }
                    Some(Err(EventStreamError::Transport(error))) => {
                        let error = ModelError::StreamBroken(deepest_cause(&error));
                        return fail(state, error);
                    }
                    Some(Err(error)) => {
                        let error = ModelError::MalformedEvent {
                            event: "stream".into(),
                            reason: error.to_string(),
                        };
                        return fail(state, error);
                    }
                    Some(Ok(event)) => event,
                };
                match state.translator.event(&event.event, &event.data) {
                    Ok(translated) => {
                        state.pending.extend(translated.events);
                        state.done = translated.done;
                    }
                    Err(error) => return fail(state, error),
                }
            }
        },
    ))
}

/// Reads a whole (non-streaming) body, allowing at most `idle` between its pieces.
pub(crate) async fn read_body(
    response: reqwest::Response,
    idle: Duration,
) -> Result<Vec<u8>, ModelError> {
    let mut body = Vec::new();
    let mut chunks = response.bytes_stream();
    loop {
        match tokio::time::timeout(idle, chunks.next()).await {
            Err(_) => {
                return Err(ModelError::Timeout {
                    phase: "the response body went silent",
                    after: idle,
                });
            }
            Ok(None) => return Ok(body),
            Ok(Some(Err(error))) => return Err(ModelError::StreamBroken(deepest_cause(&error))),
            Ok(Some(Ok(bytes))) => body.extend_from_slice(&bytes),
        }
    }
}

/// Splits text into pieces of a few words (whitespace stays with the word before it), the way
/// a model streams it; used to replay complete messages as realistic deltas.
pub(crate) fn text_pieces(text: &str) -> Vec<String> {
    const WORDS_PER_PIECE: usize = 4;
    let mut pieces = Vec::new();
    let mut start = 0;
    let mut words = 0;
    let mut in_space = false;
    for (i, c) in text.char_indices() {
        if c.is_whitespace() {
            in_space = true;
        } else if in_space {
            in_space = false;
            words += 1;
            if words == WORDS_PER_PIECE {
                pieces.push(text[start..i].to_string());
                start = i;
                words = 0;
            }
        }
    }
    if start < text.len() {
        pieces.push(text[start..].to_string());
    }
    pieces
}

/// Splits JSON text into pieces of a few bytes on char boundaries, cutting through keys and
/// values as streamed tool input does.
pub(crate) fn json_pieces(json: &str) -> Vec<String> {
    const PIECE_BYTES: usize = 16;
    let mut pieces = Vec::new();
    let mut start = 0;
    while start < json.len() {
        let mut end = (start + PIECE_BYTES).min(json.len());
        while !json.is_char_boundary(end) {
            end += 1;
        }
        pieces.push(json[start..end].to_string());
        start = end;
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `https` client is built on a helper thread; what comes back must be a working TLS
    /// client (its first bytes on the wire are a TLS handshake record), shared by every caller.
    #[tokio::test]
    async fn an_https_client_built_in_the_background_speaks_tls() {
        use tokio::io::AsyncReadExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let base = format!("https://127.0.0.1:{port}");
        let http = HttpClient::new(&base, &Timeouts::default());
        let client = http.get().await.unwrap();
        let _again = http.clone().get().await.unwrap();
        let request =
            tokio::spawn(async move { client.get(format!("{base}/v1/models")).send().await });
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut first = [0u8; 2];
        socket.read_exact(&mut first).await.unwrap();
        assert_eq!(first, [0x16, 0x03], "a TLS handshake record");
        drop(socket);
        assert!(request.await.unwrap().is_err());
    }

    /// A plain `http` base URL (a local server) gets a client without certificate roots, which
    /// still talks plain HTTP to it.
    #[tokio::test]
    async fn a_plain_http_client_sends_plain_http() {
        use tokio::io::AsyncReadExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("HTTP://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let client = HttpClient::new(&base, &Timeouts::default())
            .get()
            .await
            .unwrap();
        let request =
            tokio::spawn(async move { client.post(format!("{base}/v1/messages")).send().await });
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut first = [0u8; 5];
        socket.read_exact(&mut first).await.unwrap();
        assert_eq!(&first, b"POST ");
        drop(socket);
        assert!(request.await.unwrap().is_err());
    }

    #[test]
    fn error_bodies_of_every_provider_are_parsed_or_shortened() {
        assert_eq!(
            parse_error_body(
                r#"{"type":"error","error":{"type":"not_found_error","message":"model: x"}}"#
            ),
            ("not_found_error".into(), "model: x".into())
        );
        assert_eq!(
            parse_error_body(
                r#"{"error":{"message":"Incorrect API key","type":"invalid_request_error","code":"invalid_api_key"}}"#
            ),
            ("invalid_request_error".into(), "Incorrect API key".into())
        );
        // OpenRouter: numeric code, no type.
        assert_eq!(
            parse_error_body(r#"{"error":{"message":"No endpoints found","code":404}}"#),
            ("404".into(), "No endpoints found".into())
        );
        // Ollama's native shape.
        assert_eq!(
            parse_error_body(r#"{"error":"llama2 does not support tools"}"#),
            (String::new(), "llama2 does not support tools".into())
        );
        assert_eq!(
            parse_error_body("<html>\n<body>Bad Gateway</body>"),
            (String::new(), "<html>".into())
        );
        assert_eq!(
            parse_error_body(""),
            (String::new(), "(empty response body)".into())
        );
    }

    #[test]
    fn retry_after_reads_seconds_milliseconds_and_caps_absurd_values() {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert("retry-after", "2".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(2)));
        headers.insert("retry-after", "1e300".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(86_400)));
        headers.insert("retry-after-ms", "1500".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_millis(1500)));
    }

    #[test]
    fn pieces_rejoin_to_the_original() {
        let text = "The first part of a long answer that gets cut";
        let pieces = text_pieces(text);
        assert!(pieces.len() >= 2);
        assert_eq!(pieces.concat(), text);
        assert!(text_pieces("").is_empty());
        let json = r#"{"file_path":"/tmp/é日本語/x","limit":20}"#;
        let pieces = json_pieces(json);
        assert!(pieces.len() >= 3);
        assert_eq!(pieces.concat(), json);
    }
}
