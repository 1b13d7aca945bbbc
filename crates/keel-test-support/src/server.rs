//! The HTTP server: routes requests, records them, picks the scripted turn and writes the
//! response in the requested wire format, with the turn's faults applied.

use std::collections::{BTreeMap, VecDeque};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::Response;
use axum::serve::ListenerExt;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use crate::reply::{Reply, random_id};
use crate::script::{HttpError, Script, ScriptedTurn};
use crate::{MockError, anthropic, openai, responses};

/// One request as the server received it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedRequest {
    /// HTTP method, e.g. `POST`.
    pub method: String,
    /// The path, without the query string.
    pub path: String,
    /// Headers with lowercased names; repeated headers are joined with `, `.
    pub headers: BTreeMap<String, String>,
    /// The body as JSON; `null` when empty, a JSON string when it is not JSON.
    pub body: Value,
    /// When the request arrived (before any scripted delay), in microseconds since the Unix epoch.
    pub received_unix_us: u64,
}

/// A mock model server on 127.0.0.1 answering from a script; stops when dropped.
#[derive(Debug)]
pub struct MockModelServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
    /// Dropping this ends stalled and delayed responses, which outlive the accept loop.
    _shutdown: watch::Sender<()>,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<ScriptState>,
    arrived: Notify,
    shutdown: watch::Receiver<()>,
}

#[derive(Debug)]
struct ScriptState {
    slots: Vec<Slot>,
    repeat: bool,
    openai_stream_tool_calls: bool,
    estimate_usage: bool,
    served: usize,
    requests: Vec<RecordedRequest>,
}

#[derive(Debug)]
struct Slot {
    turn: ScriptedTurn,
    served: bool,
}

impl Shared {
    /// The state; a panic elsewhere while holding the lock leaves data that is still usable.
    fn lock(&self) -> MutexGuard<'_, ScriptState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn record(&self, request: RecordedRequest) {
        self.lock().requests.push(request);
        self.arrived.notify_waiters();
    }

    /// The first unserved turn whose matcher accepts `body`, marked served; `Err(served)` when
    /// none is left.
    fn take_turn(&self, body: &Value) -> Result<ScriptedTurn, usize> {
        let mut state = self.lock();
        let pick = |slots: &[Slot]| {
            slots.iter().position(|slot| {
                !slot.served && slot.turn.when.as_ref().is_none_or(|m| m.matches(body))
            })
        };
        let mut found = pick(&state.slots);
        if found.is_none() && state.repeat && !state.slots.is_empty() {
            state.slots.iter_mut().for_each(|slot| slot.served = false);
            found = pick(&state.slots);
        }
        match found {
            Some(index) => {
                state.served += 1;
                let slot = &mut state.slots[index];
                slot.served = true;
                Ok(slot.turn.clone())
            }
            None => Err(state.served),
        }
    }

    /// Sleeps unless the server shuts down first; false on shutdown.
    async fn sleep(&self, duration: Duration) -> bool {
        let mut shutdown = self.shutdown.clone();
        tokio::select! {
            () = tokio::time::sleep(duration) => true,
            _ = shutdown.changed() => false,
        }
    }
}

impl MockModelServer {
    /// Starts a server on a random port of 127.0.0.1.
    pub async fn start(script: Script) -> Result<Self, MockError> {
        Self::start_on(script, 0).await
    }

    /// Starts a server on the given port of 127.0.0.1 (0 picks a free one).
    pub async fn start_on(script: Script, port: u16) -> Result<Self, MockError> {
        script.validate()?;
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port))
            .await
            .map_err(|source| MockError::Bind { port, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| MockError::Bind { port, source })?;
        let (shutdown_tx, shutdown_rx) = watch::channel(());
        let shared = Arc::new(Shared {
            state: Mutex::new(ScriptState {
                slots: script
                    .turns
                    .into_iter()
                    .map(|turn| Slot {
                        turn,
                        served: false,
                    })
                    .collect(),
                repeat: script.repeat,
                openai_stream_tool_calls: script.openai_stream_tool_calls,
                estimate_usage: script.estimate_usage,
                served: 0,
                requests: Vec::new(),
            }),
            arrived: Notify::new(),
            shutdown: shutdown_rx,
        });
        let app = Router::new()
            .fallback(handle)
            // Long conversations exceed axum's 2 MB default; a test should see them all.
            .layer(DefaultBodyLimit::disable())
            .with_state(shared.clone());
        let task = tokio::spawn(async move {
            // serve only returns on a listener error, and there is nobody left to tell then.
            // Streams are many small writes; without TCP_NODELAY, Nagle's algorithm and the
            // client's delayed ACK stall each response by ~40 ms, which would be measured as
            // harness overhead.
            let listener = listener.tap_io(|tcp| {
                if let Err(error) = tcp.set_nodelay(true) {
                    tracing::debug!(%error, "cannot set TCP_NODELAY");
                }
            });
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            addr,
            shared,
            task,
            _shutdown: shutdown_tx,
        })
    }

    /// The base URL, `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every request received so far (control endpoints under `/_mock/` excepted), in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.lock().requests.clone()
    }

    /// Appends a turn to the script while the server runs.
    pub fn push_turn(&self, turn: ScriptedTurn) {
        self.shared.lock().slots.push(Slot {
            turn,
            served: false,
        });
    }

    /// Turns usage estimation from the request size on or off (see [`Script::estimate_usage`]).
    pub fn set_estimate_usage(&self, estimate: bool) {
        self.shared.lock().estimate_usage = estimate;
    }

    /// How many turns have not been served yet (in the current round, for a repeating script).
    pub fn remaining(&self) -> usize {
        self.shared
            .lock()
            .slots
            .iter()
            .filter(|slot| !slot.served)
            .count()
    }

    /// Waits until at least `count` requests have arrived, for tests of concurrent clients.
    pub async fn wait_for_requests(
        &self,
        count: usize,
        limit: Duration,
    ) -> Result<Vec<RecordedRequest>, MockError> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let notified = self.shared.arrived.notified();
            tokio::pin!(notified);
            // Registered before the check, so a request recorded in between still wakes us.
            notified.as_mut().enable();
            let requests = self.requests();
            if requests.len() >= count {
                return Ok(requests);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Err(MockError::WaitTimeout {
                    wanted: count,
                    got: self.requests().len(),
                    limit,
                });
            }
        }
    }
}

impl Drop for MockModelServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The two wire formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Provider {
    Anthropic,
    OpenAi,
    /// The OpenAI Responses API (Codex CLI).
    Responses,
}

impl Provider {
    fn error_body(self, error_type: &str, message: &str) -> Value {
        match self {
            Provider::Anthropic => anthropic::error_body(error_type, message),
            // The Responses API answers errors in the chat completions shape.
            Provider::OpenAi | Provider::Responses => openai::error_body(error_type, message),
        }
    }

    fn error(self, status: StatusCode, error_type: &str, message: &str) -> Response {
        json_response(status, &self.error_body(error_type, message))
    }
}

/// Every request lands here, so prefixed base URLs (`/proxy/v1/messages`) route like plain ones.
async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    if let Some(control) = path.strip_prefix("/_mock/") {
        return match (control, &method) {
            ("requests", &Method::GET) => {
                let requests = shared.lock().requests.clone();
                json_response(StatusCode::OK, &json!(requests))
            }
            ("health", &Method::GET) => json_response(StatusCode::OK, &json!({"ok": true})),
            _ => not_found(&method, &path),
        };
    }

    let parsed = parse_body(&body);
    shared.record(RecordedRequest {
        method: method.to_string(),
        path: path.clone(),
        headers: header_map(&headers),
        body: match &parsed {
            Ok(value) => value.clone(),
            Err(_) => Value::String(String::from_utf8_lossy(&body).into_owned()),
        },
        received_unix_us: unix_micros(),
    });

    let route = if path.ends_with("/v1/messages/count_tokens") {
        Route::CountTokens
    } else if path.ends_with("/v1/messages") {
        Route::Model(Provider::Anthropic)
    } else if path.ends_with("/chat/completions") {
        Route::Model(Provider::OpenAi)
    } else if path.ends_with("/responses") {
        Route::Model(Provider::Responses)
    } else if path.ends_with("/v1/models") || path == "/models" {
        Route::Models
    } else if path.ends_with("/api/tags") {
        Route::Tags
    } else {
        return not_found(&method, &path);
    };
    let wanted = match route {
        Route::CountTokens | Route::Model(_) => Method::POST,
        Route::Models | Route::Tags => Method::GET,
    };
    if method != wanted {
        return json_response(
            StatusCode::METHOD_NOT_ALLOWED,
            &anthropic::error_body(
                "invalid_request_error",
                &format!("mock server: {path} takes {wanted}, not {method}"),
            ),
        );
    }
    match route {
        Route::CountTokens => {
            json_response(StatusCode::OK, &json!({"input_tokens": body.len() / 4}))
        }
        Route::Models => json_response(
            StatusCode::OK,
            &json!({"object": "list", "data": [{"id": "mock-model", "object": "model"}]}),
        ),
        Route::Tags => json_response(StatusCode::OK, &json!({"models": [{"name": "mock-model"}]})),
        Route::Model(provider) => match parsed {
            Ok(Value::Object(map)) => model_request(&shared, provider, Value::Object(map)).await,
            Ok(_) => provider.error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "mock server: the request body must be a JSON object",
            ),
            Err(err) => provider.error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                &format!("mock server: the request body is not valid JSON: {err}"),
            ),
        },
    }
}

enum Route {
    CountTokens,
    Model(Provider),
    Models,
    Tags,
}

async fn model_request(shared: &Shared, provider: Provider, body: Value) -> Response {
    let stream = body.get("stream") == Some(&Value::Bool(true));
    if provider == Provider::OpenAi
        && stream
        && !shared.lock().openai_stream_tool_calls
        && body
            .get("tools")
            .and_then(Value::as_array)
            .is_some_and(|tools| !tools.is_empty())
    {
        return provider.error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "tools are not supported in streaming mode",
        );
    }

    let turn = match shared.take_turn(&body) {
        Ok(turn) => turn,
        Err(served) => {
            return provider.error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "api_error",
                &format!(
                    "mock script exhausted: no scripted turn left for this request ({served} served)"
                ),
            );
        }
    };

    if let Some(ms) = turn.delay_ms
        && !shared.sleep(Duration::from_millis(ms)).await
    {
        return provider.error(
            StatusCode::SERVICE_UNAVAILABLE,
            "api_error",
            "mock server shutting down",
        );
    }
    if let Some(err) = &turn.http_error {
        return http_error(provider, err);
    }

    let mut reply = match provider {
        Provider::Anthropic => Reply::resolve(&turn, &body, "msg_", "toolu_"),
        Provider::OpenAi => Reply::resolve(&turn, &body, "chatcmpl-", "call_"),
        Provider::Responses => Reply::resolve(&turn, &body, "resp_", "call_"),
    };
    if turn.usage.is_none() && shared.lock().estimate_usage {
        reply.usage.input_tokens = (body.to_string().len() / 4) as u64;
    }
    let request_id = random_id("req_");
    let shutdown = shared.shutdown.clone();

    if stream {
        let (frames, malformed) = match provider {
            Provider::Anthropic => (
                anthropic::stream_frames(&reply),
                anthropic::malformed_frame(),
            ),
            Provider::OpenAi => {
                let include_usage = body
                    .pointer("/stream_options/include_usage")
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                (
                    openai::stream_frames(&reply, include_usage),
                    openai::malformed_frame(),
                )
            }
            Provider::Responses => (
                responses::stream_frames(&reply),
                responses::malformed_frame(),
            ),
        };
        let steps = plan(frames, malformed, &turn);
        let delay = turn.event_delay_ms.map(Duration::from_millis);
        return streamed_response(
            StatusCode::OK,
            "text/event-stream",
            &request_id,
            steps,
            delay,
            shutdown,
        );
    }

    // A non-streaming answer is a single piece: the stream faults apply to it as a whole.
    if let Some(err) = &turn.stream_error {
        let status = match err.error_type.as_str() {
            "overloaded_error" => 529,
            "rate_limit_error" => 429,
            _ => 500,
        };
        return json_response(
            status_code(status),
            &provider.error_body(&err.error_type, &err.message),
        );
    }
    let broken = if turn.cut_after_events.is_some() {
        Some(Step::Cut)
    } else if turn.abort_after_events.is_some() {
        Some(Step::Abort(0))
    } else {
        None
    };
    if let Some(step) = broken {
        return streamed_response(
            StatusCode::OK,
            "application/json",
            &request_id,
            vec![step],
            None,
            shutdown,
        );
    }
    if turn.stall_after_events.is_some() {
        return streamed_response(
            StatusCode::OK,
            "application/json",
            &request_id,
            vec![Step::Stall],
            None,
            shutdown,
        );
    }
    if turn.malformed_after_events.is_some() {
        let broken = match provider {
            Provider::Anthropic => anthropic::malformed_body(),
            Provider::OpenAi => openai::malformed_body(),
            Provider::Responses => responses::malformed_body(),
        };
        return response(StatusCode::OK, "application/json", Body::from(broken));
    }
    let answer = match provider {
        Provider::Anthropic => anthropic::message(&reply),
        Provider::OpenAi => openai::completion(&reply),
        Provider::Responses => responses::response(&reply),
    };
    let mut res = json_response(StatusCode::OK, &answer);
    insert_header(&mut res, "request-id", &request_id);
    res
}

/// What the response body does next.
#[derive(Debug)]
enum Step {
    /// Write these bytes.
    Send(Bytes),
    /// End the body cleanly (the client sees the stream end) and close the connection.
    Cut,
    /// Break the connection mid-body (no terminating chunk), after this many events.
    Abort(usize),
    /// Write nothing more and keep the connection open.
    Stall,
}

/// Lays the turn's faults over the event sequence. Counts refer to the scripted events (the
/// malformed one is extra); a count past the end applies after the last event.
fn plan(frames: Vec<Bytes>, malformed: Bytes, turn: &ScriptedTurn) -> Vec<Step> {
    let total = frames.len();
    let at = |n: Option<usize>| n.map(|n| n.min(total));
    let (malformed_at, cut_at, abort_at, stall_at) = (
        at(turn.malformed_after_events),
        at(turn.cut_after_events),
        at(turn.abort_after_events),
        at(turn.stall_after_events),
    );
    let mut steps = Vec::with_capacity(total + 2);
    let mut frames = frames.into_iter();
    for sent in 0..=total {
        if malformed_at == Some(sent) {
            steps.push(Step::Send(malformed.clone()));
        }
        if cut_at == Some(sent) {
            steps.push(Step::Cut);
            break;
        }
        if abort_at == Some(sent) {
            steps.push(Step::Abort(sent));
            break;
        }
        if stall_at == Some(sent) {
            steps.push(Step::Stall);
            break;
        }
        if let Some(frame) = frames.next() {
            steps.push(Step::Send(frame));
        }
    }
    steps
}

struct Streaming {
    steps: VecDeque<Step>,
    delay: Option<Duration>,
    shutdown: watch::Receiver<()>,
    started: bool,
}

fn streamed_response(
    status: StatusCode,
    content_type: &'static str,
    request_id: &str,
    steps: Vec<Step>,
    delay: Option<Duration>,
    shutdown: watch::Receiver<()>,
) -> Response {
    let cut = steps.iter().any(|step| matches!(step, Step::Cut));
    let state = Streaming {
        steps: steps.into(),
        delay,
        shutdown,
        started: false,
    };
    // The stream itself does the waiting, so nothing is spawned: when the client goes away,
    // hyper drops the body and with it any pending delay or stall.
    let stream = futures::stream::unfold(state, |mut st| async move {
        let step = st.steps.pop_front()?;
        match step {
            Step::Send(bytes) => {
                if st.started {
                    match st.delay {
                        Some(delay) => {
                            let mut shutdown = st.shutdown.clone();
                            let finished = tokio::select! {
                                () = tokio::time::sleep(delay) => true,
                                _ = shutdown.changed() => false,
                            };
                            if !finished {
                                st.steps.clear();
                                return Some((Err(aborted("mock server shutting down")), st));
                            }
                        }
                        // Returning Pending once makes hyper flush, so events leave one by one.
                        None => tokio::task::yield_now().await,
                    }
                }
                st.started = true;
                Some((Ok(bytes), st))
            }
            Step::Cut => None,
            Step::Abort(sent) => {
                // Pending once first, so hyper flushes what was sent before the connection dies.
                tokio::task::yield_now().await;
                st.steps.clear();
                let why = format!("mock: connection cut after {sent} events");
                Some((Err(aborted(&why)), st))
            }
            Step::Stall => {
                // Resolves only when the server is dropped (the sender goes away).
                let _ = st.shutdown.changed().await;
                st.steps.clear();
                Some((Err(aborted("mock server shutting down")), st))
            }
        }
    });
    let mut res = response(status, content_type, Body::from_stream(stream));
    if cut {
        // hyper closes the connection after this response, as a server that gave up would.
        insert_header(&mut res, "connection", "close");
    }
    insert_header(&mut res, "cache-control", "no-cache");
    insert_header(&mut res, "request-id", request_id);
    res
}

fn aborted(why: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::ConnectionAborted, why.to_string())
}

fn http_error(provider: Provider, err: &HttpError) -> Response {
    let error_type = if err.error_type.is_empty() {
        default_error_type(err.status)
    } else {
        err.error_type.as_str()
    };
    let message = if err.message.is_empty() {
        format!("mock http_error {}", err.status)
    } else {
        err.message.clone()
    };
    let mut res = json_response(
        status_code(err.status),
        &provider.error_body(error_type, &message),
    );
    if let Some(retry_after) = &err.retry_after {
        insert_header(&mut res, "retry-after", retry_after);
    }
    res
}

/// The error type the Anthropic API uses for a status.
fn default_error_type(status: u16) -> &'static str {
    match status {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        529 => "overloaded_error",
        400..=499 => "invalid_request_error",
        _ => "api_error",
    }
}

/// A status from a script; turns appended with `push_turn` skip validation, so fall back to 500.
fn status_code(status: u16) -> StatusCode {
    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

fn not_found(method: &Method, path: &str) -> Response {
    json_response(
        StatusCode::NOT_FOUND,
        &anthropic::error_body(
            "not_found_error",
            &format!(
                "mock server: no route for {method} {path} (it serves POST .../v1/messages, \
                 POST .../chat/completions, POST .../responses, GET /v1/models, GET /api/tags, GET /_mock/requests)"
            ),
        ),
    )
}

fn json_response(status: StatusCode, value: &Value) -> Response {
    response(status, "application/json", Body::from(value.to_string()))
}

fn response(status: StatusCode, content_type: &'static str, body: Body) -> Response {
    let mut res = Response::new(body);
    *res.status_mut() = status;
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    res
}

fn insert_header(res: &mut Response, name: &'static str, value: &str) {
    // A scripted value that is not a legal header value is dropped rather than failing the
    // response; the status and body still tell the story.
    if let Ok(value) = HeaderValue::from_str(value) {
        res.headers_mut().insert(name, value);
    }
}

fn parse_body(body: &Bytes) -> Result<Value, serde_json::Error> {
    if body.is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_slice(body)
}

fn header_map(headers: &HeaderMap) -> BTreeMap<String, String> {
    let mut map: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        map.entry(name.as_str().to_ascii_lowercase())
            .and_modify(|existing| {
                existing.push_str(", ");
                existing.push_str(&value);
            })
            .or_insert(value);
    }
    map
}

fn unix_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(n: usize) -> Vec<Bytes> {
        (0..n).map(|i| Bytes::from(format!("e{i}"))).collect()
    }

    fn show(steps: &[Step]) -> Vec<String> {
        steps
            .iter()
            .map(|s| match s {
                Step::Send(b) => String::from_utf8_lossy(b).into_owned(),
                Step::Cut => "cut".into(),
                Step::Abort(n) => format!("abort{n}"),
                Step::Stall => "stall".into(),
            })
            .collect()
    }

    #[test]
    fn faults_land_after_the_counted_events() {
        let turn = |f: fn(&mut ScriptedTurn)| {
            let mut t = ScriptedTurn::default();
            f(&mut t);
            t
        };
        let bad = Bytes::from_static(b"bad");
        let plain = plan(frames(3), bad.clone(), &ScriptedTurn::default());
        assert_eq!(show(&plain), ["e0", "e1", "e2"]);
        let cut = plan(
            frames(3),
            bad.clone(),
            &turn(|t| t.cut_after_events = Some(2)),
        );
        assert_eq!(show(&cut), ["e0", "e1", "cut"]);
        let abort = plan(
            frames(3),
            bad.clone(),
            &turn(|t| t.abort_after_events = Some(1)),
        );
        assert_eq!(show(&abort), ["e0", "abort1"]);
        let stall = plan(
            frames(3),
            bad.clone(),
            &turn(|t| t.stall_after_events = Some(0)),
        );
        assert_eq!(show(&stall), ["stall"]);
        let late = plan(
            frames(3),
            bad.clone(),
            &turn(|t| t.stall_after_events = Some(9)),
        );
        assert_eq!(show(&late), ["e0", "e1", "e2", "stall"]);
        let broken = plan(
            frames(3),
            bad,
            &turn(|t| t.malformed_after_events = Some(1)),
        );
        assert_eq!(show(&broken), ["e0", "bad", "e1", "e2"]);
    }

    #[test]
    fn repeated_headers_are_joined_and_names_lowercased() {
        let mut headers = HeaderMap::new();
        headers.append("X-Api-Key", HeaderValue::from_static("k"));
        headers.append("accept", HeaderValue::from_static("a"));
        headers.append("accept", HeaderValue::from_static("b"));
        let map = header_map(&headers);
        assert_eq!(map["x-api-key"], "k");
        assert_eq!(map["accept"], "a, b");
    }
}
