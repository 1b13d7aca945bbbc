//! The API's routes and their handlers. Every route is listed in `openapi.json`; a test reads
//! the `.route(` calls below and checks the two agree.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequest, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::Stream;
use keel_policy::PermissionMode;
use keel_protocol::{ApprovalAnswer, Op};
use keel_setup::SessionOptions;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::error::ApiError;
use super::state::{AppState, Live, Queued, lock, unix_ms};
use crate::launch::{checked_cwd, launch, stored_cwd};

/// The description of this API.
pub(crate) const OPENAPI: &str = include_str!("openapi.json");

/// How many events one SSE read takes from the log before yielding them.
const SSE_BATCH: usize = 256;

/// Every route of the API.
pub(crate) fn routes(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/openapi.json", get(openapi))
        .route("/sessions", get(list_sessions).post(create_session))
        .route(
            "/sessions/{id}",
            get(get_session).patch(update_session).delete(end_session),
        )
        .route("/sessions/{id}/messages", post(post_message))
        .route("/sessions/{id}/events", get(events))
        .route("/sessions/{id}/interrupt", post(interrupt))
        .route("/sessions/{id}/compact", post(compact))
        .route(
            "/sessions/{id}/approvals/{request_id}",
            post(answer_approval),
        )
        .fallback(no_route)
        .method_not_allowed_fallback(wrong_method)
        .with_state(state)
}

/// A JSON body; malformed JSON, a wrong content type or an unknown field is a 4xx JSON error.
/// An empty body is the type's default, so `POST /sessions` needs no body at all.
pub(crate) struct Body<T>(pub(crate) T);

impl<S, T> FromRequest<S> for Body<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Default,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let empty = request
            .headers()
            .get(header::CONTENT_LENGTH)
            .is_some_and(|len| len == "0");
        if empty {
            return Ok(Self(T::default()));
        }
        let (parts, body) = request.into_parts();
        let bytes = Bytes::from_request(Request::from_parts(parts.clone(), body), state)
            .await
            .map_err(|e| ApiError::new(e.status(), "invalid_body", e.body_text()))?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self(T::default()));
        }
        let request = Request::from_parts(parts, axum::body::Body::from(bytes));
        let Json(value) = Json::<T>::from_request(request, state).await?;
        Ok(Self(value))
    }
}

async fn no_route() -> ApiError {
    ApiError::not_found("no such route; GET /openapi.json lists them")
}

async fn wrong_method() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not take that method; GET /openapi.json lists the methods of each route",
    )
}

async fn health(State(state): State<Arc<AppState>>) -> Json<Value> {
    let sessions = lock(&state.sessions).len();
    Json(json!({
        "status": if state.is_shutting_down() { "shutting_down" } else { "ok" },
        "version": env!("CARGO_PKG_VERSION"),
        "sessions": sessions,
    }))
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

/// `POST /sessions`.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct CreateSession {
    cwd: Option<PathBuf>,
    model: Option<String>,
    permission_mode: Option<String>,
    system_prompt: Option<String>,
    append_system_prompt: Option<String>,
    resume: Option<String>,
    fork: bool,
    session_id: Option<String>,
    allowed_tools: Vec<String>,
    disallowed_tools: Vec<String>,
    add_dirs: Vec<PathBuf>,
    max_turns: Option<u32>,
}

async fn create_session(
    State(state): State<Arc<AppState>>,
    Body(request): Body<CreateSession>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    if state.is_shutting_down() {
        return Err(shutting_down());
    }
    if let Some(mode) = &request.permission_mode {
        mode.parse::<PermissionMode>()
            .map_err(|e| ApiError::bad_request(format!("permission_mode: {e}")))?;
    }
    if request.max_turns == Some(0) {
        return Err(ApiError::bad_request(
            "max_turns must be at least 1 (leave it out for no limit)",
        ));
    }
    if request.fork && request.resume.is_none() {
        return Err(ApiError::bad_request(
            "fork needs resume: the id of the session to fork",
        ));
    }
    if let Some(id) = &request.resume {
        keel_session::validate_id(id).map_err(|e| ApiError::bad_request(format!("resume: {e}")))?;
        if !request.fork && state.live(id).is_some() {
            return Err(ApiError::conflict(format!(
                "session {id} is already live; use it at /sessions/{id}, or pass \"fork\": true \
                 to continue it as a new session"
            )));
        }
    }
    let cwd = match (&request.cwd, &request.resume) {
        (Some(cwd), _) => checked_cwd(cwd)?,
        (None, Some(id)) => {
            // A resumed session runs where it ran before; finding that reads its transcript.
            let (home, hint, id) = (
                state.base.home.clone(),
                state.base.default_cwd.clone(),
                id.clone(),
            );
            tokio::task::spawn_blocking(move || stored_cwd(&home, &hint, &id))
                .await
                .ok()
                .flatten()
                .filter(|dir| dir.is_dir())
                .unwrap_or_else(|| state.base.default_cwd.clone())
        }
        (None, None) => state.base.default_cwd.clone(),
    };
    let mut options: SessionOptions = state.base.defaults.clone();
    // Which session to open is the request's business, never the command line's.
    options.continue_session = false;
    if request.model.is_some() {
        options.model = request.model;
    }
    if request.permission_mode.is_some() {
        options.permission_mode = request.permission_mode;
        options.dangerously_skip_permissions = false;
    }
    if request.system_prompt.is_some() {
        options.system_prompt = request.system_prompt;
    }
    if request.append_system_prompt.is_some() {
        options.append_system_prompt = request.append_system_prompt;
    }
    if request.max_turns.is_some() {
        options.max_turns = request.max_turns;
    }
    options.allowed_tools.extend(request.allowed_tools);
    options.disallowed_tools.extend(request.disallowed_tools);
    options.add_dir.extend(request.add_dirs);
    options.resume = request.resume.clone();
    options.fork_session = request.fork;
    options.session_id = request.session_id;

    // Reserve a resumed id so a second request cannot serve the same transcript at once.
    let reserved = match (&request.resume, request.fork) {
        (Some(id), false) => {
            if !lock(&state.starting).insert(id.clone()) {
                return Err(ApiError::conflict(format!(
                    "session {id} is being resumed by another request"
                )));
            }
            Some(id.clone())
        }
        _ => None,
    };
    let launched = launch(&state.base, cwd, options).await;
    if let Some(id) = &reserved {
        lock(&state.starting).remove(id);
    }
    let launched = launched?;
    let resumed = launched.resumed;
    let warnings = launched.warnings.clone();
    let live = Live::start(launched, state.event_buffer);
    if state.is_shutting_down() {
        live.end().await;
        return Err(shutting_down());
    }
    lock(&state.sessions).insert(live.id.clone(), live.clone());
    let mut body = serde_json::to_value(live.view()).unwrap_or(Value::Null);
    body["resumed"] = json!(resumed);
    body["warnings"] = json!(warnings);
    Ok((StatusCode::CREATED, Json(body)))
}

fn shutting_down() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "shutting_down",
        "the server is shutting down; start it again and resume the session",
    )
}

/// `GET /sessions?cwd=DIR`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    cwd: Option<PathBuf>,
}

async fn list_sessions(
    State(state): State<Arc<AppState>>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(query) =
        query.map_err(|e| ApiError::bad_request(format!("query string: {}", e.body_text())))?;
    let cwd = match &query.cwd {
        Some(cwd) => Some(checked_cwd(cwd)?),
        None => None,
    };
    let live: Vec<Arc<Live>> = lock(&state.sessions).values().cloned().collect();
    let mut sessions: Vec<Value> = live
        .iter()
        .filter(|l| cwd.as_ref().is_none_or(|dir| &l.cwd == dir))
        .map(|l| serde_json::to_value(l.view()).unwrap_or(Value::Null))
        .collect();
    let home = state.base.home.clone();
    let stored = tokio::task::spawn_blocking(move || {
        keel_session::SessionStore::new(&home).list(cwd.as_deref())
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?;
    for summary in stored {
        if let Some(entry) = sessions
            .iter_mut()
            .find(|s| s["session_id"] == summary.id.as_str())
        {
            entry["first_prompt"] = json!(summary.first_prompt);
            continue;
        }
        sessions.push(stored_view(&summary));
    }
    Ok(Json(json!({ "sessions": sessions })))
}

fn stored_view(summary: &keel_session::SessionSummary) -> Value {
    json!({
        "session_id": summary.id,
        "live": false,
        "cwd": summary.cwd,
        "started": summary.started,
        "modified_unix_ms": unix_ms(summary.modified),
        "first_prompt": summary.first_prompt,
        "transcript": summary.path.display().to_string(),
        "totals": summary.totals,
    })
}

async fn get_session(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    if let Some(live) = state.live(&id) {
        return Ok(Json(
            serde_json::to_value(live.view()).unwrap_or(Value::Null),
        ));
    }
    if keel_session::validate_id(&id).is_err() {
        return Err(ApiError::not_found(format!(
            "no session {id}: session ids are UUIDs (GET /sessions lists them)"
        )));
    }
    let home = state.base.home.clone();
    let hint = state.base.default_cwd.clone();
    let found = tokio::task::spawn_blocking(move || {
        let store = keel_session::SessionStore::new(&home);
        let path = store.find(&hint, &id).ok()?;
        store.list(None).ok()?.into_iter().find(|s| s.path == path)
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?;
    match found {
        Some(summary) => Ok(Json(stored_view(&summary))),
        None => Err(ApiError::not_found(
            "no such session, live or stored; GET /sessions lists them",
        )),
    }
}

/// `PATCH /sessions/{id}`.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct UpdateSession {
    permission_mode: Option<String>,
    model: Option<String>,
}

async fn update_session(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    Body(update): Body<UpdateSession>,
) -> Result<Json<Value>, ApiError> {
    let live = state
        .live(&id)
        .ok_or_else(|| ApiError::no_live_session(&id))?;
    if let Some(mode) = &update.permission_mode {
        let mode = mode
            .parse::<PermissionMode>()
            .map_err(|e| ApiError::bad_request(format!("permission_mode: {e}")))?;
        live.send(Op::SetPermissionMode {
            mode: mode.as_str().to_string(),
        });
        // The engine confirms with an event; the view shows the new mode right away.
        lock(&live.permission_mode).clone_from(&mode.as_str().to_string());
    }
    if let Some(model) = update.model {
        if model.trim().is_empty() {
            return Err(ApiError::bad_request("model must not be empty"));
        }
        lock(&live.model).clone_from(&model);
        live.send(Op::SetModel { model });
    }
    Ok(Json(
        serde_json::to_value(live.view()).unwrap_or(Value::Null),
    ))
}

async fn end_session(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let live = lock(&state.sessions)
        .remove(&id)
        .ok_or_else(|| ApiError::no_live_session(&id))?;
    let closed = live.end().await;
    Ok(Json(json!({
        "session_id": live.id,
        "ended": true,
        "transcript_closed": closed,
        "transcript": live.transcript_path.display().to_string(),
    })))
}

/// `POST /sessions/{id}/messages`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PostMessage {
    text: Option<String>,
}

async fn post_message(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    Body(message): Body<PostMessage>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let live = state
        .live(&id)
        .ok_or_else(|| ApiError::no_live_session(&id))?;
    let text = message.text.unwrap_or_default();
    if text.trim().is_empty() {
        return Err(ApiError::bad_request(
            "the prompt is empty: send {\"text\": \"what to do\"}",
        ));
    }
    let queued = match live.prompt(text) {
        Queued::Started => json!({"queued": false, "position": 0}),
        Queued::Waiting(position) => json!({"queued": true, "position": position}),
        Queued::Closed => return Err(ApiError::no_live_session(&id)),
    };
    Ok((StatusCode::ACCEPTED, Json(queued)))
}

async fn interrupt(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let live = state
        .live(&id)
        .ok_or_else(|| ApiError::no_live_session(&id))?;
    let (running, _) = live.running();
    if running {
        live.send(Op::Interrupt);
    }
    Ok((StatusCode::ACCEPTED, Json(json!({"interrupted": running}))))
}

/// `POST /sessions/{id}/compact`.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Compact {
    instructions: Option<String>,
}

async fn compact(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    Body(request): Body<Compact>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let live = state
        .live(&id)
        .ok_or_else(|| ApiError::no_live_session(&id))?;
    let (running, _) = live.running();
    if !live.send(Op::Compact {
        instructions: request.instructions,
    }) {
        return Err(ApiError::no_live_session(&id));
    }
    // The engine compacts at once when idle, else after the running prompt.
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"after_current_run": running})),
    ))
}

/// `POST /sessions/{id}/approvals/{request_id}`.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Answer {
    decision: String,
    updated_input: Option<Value>,
    rules: Option<Vec<String>>,
    message: Option<String>,
}

async fn answer_approval(
    State(state): State<Arc<AppState>>,
    Path((id, request_id)): Path<(String, String)>,
    Body(answer): Body<Answer>,
) -> Result<Json<Value>, ApiError> {
    let live = state
        .live(&id)
        .ok_or_else(|| ApiError::no_live_session(&id))?;
    if !matches!(
        answer.decision.as_str(),
        "allow_once" | "allow_always" | "deny"
    ) {
        return Err(ApiError::bad_request(format!(
            "decision {:?}: answer with allow_once, allow_always or deny",
            answer.decision
        )));
    }
    if answer
        .updated_input
        .as_ref()
        .is_some_and(|v| !v.is_object())
    {
        return Err(ApiError::bad_request(
            "updated_input must be a JSON object: the tool's whole input",
        ));
    }
    let pending = live.take_pending(&request_id).ok_or_else(|| {
        ApiError::not_found(format!(
            "no approval {request_id} is waiting in session {id}; it was answered already, or \
             the run ended (GET /sessions/{id} lists the waiting ones)"
        ))
    })?;
    let decision = match answer.decision.as_str() {
        "allow_once" => ApprovalAnswer::AllowOnce {
            updated_input: answer.updated_input,
        },
        "allow_always" => ApprovalAnswer::AllowAlways {
            rules: answer.rules.unwrap_or_else(|| pending.suggestions.clone()),
        },
        _ => ApprovalAnswer::Deny {
            message: answer.message.unwrap_or_default(),
        },
    };
    live.send(Op::Approval {
        request_id: request_id.clone(),
        answer: decision.clone(),
    });
    Ok(Json(json!({
        "request_id": request_id,
        "tool_use_id": pending.tool_use_id,
        "answer": decision,
    })))
}

/// `GET /sessions/{id}/events?after=N`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventsQuery {
    after: Option<u64>,
}

async fn events(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    query: Result<Query<EventsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let Query(query) =
        query.map_err(|e| ApiError::bad_request(format!("query string: {}", e.body_text())))?;
    let live = state
        .live(&id)
        .ok_or_else(|| ApiError::no_live_session(&id))?;
    let from_header = match headers.get("last-event-id") {
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .ok_or_else(|| {
                    ApiError::bad_request(
                        "Last-Event-ID must be the number of the last event you received",
                    )
                })?,
        ),
        None => None,
    };
    let after = from_header.or(query.after).unwrap_or(0);
    Ok(Sse::new(event_stream(live, after)).keep_alive(
        KeepAlive::new()
            .interval(Duration::from_secs(15))
            .text("keep-alive"),
    ))
}

/// Where one SSE reader is.
struct Reader {
    live: Arc<Live>,
    after: u64,
    wake: tokio::sync::watch::Receiver<u64>,
    ready: VecDeque<SseEvent>,
    done: bool,
}

/// The session's events after `after`, then each new one as it is logged; ends after the
/// session's last event. Numbers are the SSE ids; a reader that fell behind the buffer gets a
/// `stream_gap` event saying which numbers it missed.
fn event_stream(live: Arc<Live>, after: u64) -> impl Stream<Item = Result<SseEvent, Infallible>> {
    let wake = live.subscribe();
    let reader = Reader {
        live,
        after,
        wake,
        ready: VecDeque::new(),
        done: false,
    };
    futures::stream::unfold(reader, |mut reader| async move {
        loop {
            if let Some(event) = reader.ready.pop_front() {
                return Some((Ok(event), reader));
            }
            if reader.done {
                return None;
            }
            // Marked seen before reading, so an event logged after the read wakes us.
            reader.wake.borrow_and_update();
            let slice = reader.live.events_after(reader.after, SSE_BATCH);
            if let Some(first) = slice.gap_until {
                let gap = json!({"type": "stream_gap", "missed_from": reader.after + 1, "missed_to": first - 1});
                reader
                    .ready
                    .push_back(SseEvent::default().data(gap.to_string()));
                reader.after = first - 1;
            }
            if let Some(last) = slice.events.last() {
                reader.after = last.seq;
            }
            for event in slice.events {
                reader.ready.push_back(
                    SseEvent::default()
                        .id(event.seq.to_string())
                        .data(&*event.json),
                );
            }
            if !reader.ready.is_empty() {
                continue;
            }
            if slice.finished {
                let end = json!({"type": "session_ended", "session_id": reader.live.id});
                reader
                    .ready
                    .push_back(SseEvent::default().data(end.to_string()));
                reader.done = true;
                continue;
            }
            if reader.wake.changed().await.is_err() {
                // The log is gone with its session: one last read picks up what is left.
                let slice = reader.live.events_after(reader.after, usize::MAX);
                for event in slice.events {
                    reader.ready.push_back(
                        SseEvent::default()
                            .id(event.seq.to_string())
                            .data(&*event.json),
                    );
                }
                reader.done = true;
            }
        }
    })
}
