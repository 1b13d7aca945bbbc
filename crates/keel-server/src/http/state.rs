//! The sessions a server is serving. Each has its own engine, working directory, policy and
//! transcript; the server adds a prompt queue (so ending a session drops prompts that never
//! started), the approvals waiting for an answer, and a numbered, bounded event log that SSE
//! clients read from and resume in.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use keel_protocol::{Event, Op};
use serde::Serialize;
use serde_json::Value;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::launch::{Base, Launched};

/// How long ending a session waits for its engine to close the transcript.
const END_WAIT: Duration = Duration::from_secs(30);

/// Locks a mutex, recovering the data if a panicking thread poisoned it (every critical section
/// here leaves the data consistent).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The server's state, shared by every handler.
pub(crate) struct AppState {
    pub(crate) base: Base,
    pub(crate) sessions: Mutex<HashMap<String, Arc<Live>>>,
    /// Ids being resumed right now, so two requests cannot serve one transcript twice.
    pub(crate) starting: Mutex<HashSet<String>>,
    pub(crate) shutting_down: AtomicBool,
    pub(crate) token: Option<String>,
    /// Bound to a loopback address without a token: requests must name a local host.
    pub(crate) local_only: bool,
    pub(crate) event_buffer: usize,
}

impl AppState {
    pub(crate) fn live(&self, id: &str) -> Option<Arc<Live>> {
        lock(&self.sessions).get(id).cloned()
    }

    pub(crate) fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::SeqCst)
    }

    /// Ends every session (interrupting runs) and waits until their transcripts are closed.
    pub(crate) async fn end_all(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
        let all: Vec<Arc<Live>> = lock(&self.sessions).drain().map(|(_, l)| l).collect();
        futures::future::join_all(all.iter().map(|live| live.end())).await;
    }
}

/// An approval the engine is waiting for.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Pending {
    pub(crate) request_id: String,
    pub(crate) tool_use_id: String,
    pub(crate) tool_name: String,
    pub(crate) input: Value,
    pub(crate) reason: String,
    pub(crate) suggestions: Vec<String>,
}

/// What the op side of a session looks like.
struct Control {
    /// `None` once the session is ending: nothing more reaches the engine.
    ops: Option<mpsc::UnboundedSender<Op>>,
    /// A run is going (the engine got a prompt and has not finished it).
    running: bool,
    /// Prompts waiting for the current run to end.
    queue: VecDeque<String>,
    /// Approvals waiting for an answer, by request id.
    pending: BTreeMap<String, Pending>,
}

/// One numbered event, serialized once for every reader.
#[derive(Debug, Clone)]
pub(crate) struct Numbered {
    pub(crate) seq: u64,
    pub(crate) json: Arc<str>,
}

/// The last events of a session. Readers ask for everything after a sequence number.
struct EventLog {
    entries: VecDeque<Numbered>,
    /// The number the next event gets; numbers start at 1.
    next: u64,
    capacity: usize,
    closed: bool,
}

/// What a reader gets from the log.
pub(crate) struct Slice {
    pub(crate) events: Vec<Numbered>,
    /// Set when events after the reader's position were already dropped: the first kept one.
    pub(crate) gap_until: Option<u64>,
    /// The session ended and every event has been read.
    pub(crate) finished: bool,
}

/// A session being served.
pub(crate) struct Live {
    pub(crate) id: String,
    pub(crate) cwd: PathBuf,
    pub(crate) transcript_path: PathBuf,
    pub(crate) tools: Vec<String>,
    pub(crate) mcp_servers: Vec<(String, String)>,
    pub(crate) created: SystemTime,
    pub(crate) model: Mutex<String>,
    pub(crate) permission_mode: Mutex<String>,
    control: Mutex<Control>,
    log: Mutex<EventLog>,
    /// The number of the newest event (or a bump when the log closes), for waiting readers.
    published: watch::Sender<u64>,
    engine: Mutex<Option<JoinHandle<()>>>,
    forwarder: Mutex<Option<JoinHandle<()>>>,
}

/// A session as the API shows it.
#[derive(Debug, Serialize)]
pub(crate) struct LiveView {
    pub(crate) session_id: String,
    pub(crate) live: bool,
    pub(crate) cwd: String,
    pub(crate) model: String,
    pub(crate) permission_mode: String,
    pub(crate) status: &'static str,
    pub(crate) queued_prompts: usize,
    pub(crate) pending_approvals: Vec<Pending>,
    pub(crate) last_event_id: u64,
    pub(crate) transcript: String,
    pub(crate) tools: Vec<String>,
    pub(crate) mcp_servers: BTreeMap<String, String>,
    pub(crate) created_unix_ms: u64,
}

/// Where a prompt went.
pub(crate) enum Queued {
    /// The engine started on it.
    Started,
    /// It waits behind the running prompt (and this many others).
    Waiting(usize),
    /// The session is ending.
    Closed,
}

impl Live {
    /// Takes over a launched session: its events are numbered and logged from now on.
    pub(crate) fn start(launched: Launched, capacity: usize) -> Arc<Self> {
        let Launched {
            id,
            cwd,
            model,
            permission_mode,
            tools,
            mcp_servers,
            transcript_path,
            ops,
            mut events,
            engine,
            ..
        } = launched;
        let (published, _) = watch::channel(0);
        let live = Arc::new(Self {
            id,
            cwd,
            transcript_path,
            tools,
            mcp_servers,
            created: SystemTime::now(),
            model: Mutex::new(model),
            permission_mode: Mutex::new(permission_mode),
            control: Mutex::new(Control {
                ops: Some(ops),
                running: false,
                queue: VecDeque::new(),
                pending: BTreeMap::new(),
            }),
            log: Mutex::new(EventLog {
                entries: VecDeque::new(),
                next: 1,
                capacity: capacity.max(1),
                closed: false,
            }),
            published,
            engine: Mutex::new(Some(engine)),
            forwarder: Mutex::new(None),
        });
        let forwarding = live.clone();
        let forwarder = tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                forwarding.record(&event);
            }
            forwarding.close_log();
        });
        *lock(&live.forwarder) = Some(forwarder);
        live
    }

    /// Applies an engine event to the session's state and appends it to the log.
    fn record(&self, event: &Event) {
        {
            let mut control = lock(&self.control);
            match event {
                Event::ApprovalRequested {
                    request_id,
                    tool_use_id,
                    tool_name,
                    input,
                    reason,
                    suggestions,
                } => {
                    control.pending.insert(
                        request_id.clone(),
                        Pending {
                            request_id: request_id.clone(),
                            tool_use_id: tool_use_id.clone(),
                            tool_name: tool_name.clone(),
                            input: input.clone(),
                            reason: reason.clone(),
                            suggestions: suggestions.clone(),
                        },
                    );
                }
                Event::ToolCallStarted { tool_use_id, .. }
                | Event::ToolResult { tool_use_id, .. } => {
                    control.pending.retain(|_, p| &p.tool_use_id != tool_use_id);
                }
                Event::PermissionDenied { denial, .. } => {
                    control
                        .pending
                        .retain(|_, p| p.tool_use_id != denial.tool_use_id);
                }
                Event::RunFinished { .. } => {
                    control.pending.clear();
                    let next = control.queue.pop_front();
                    let started = match (next, control.ops.clone()) {
                        (Some(text), Some(ops)) => ops.send(Op::UserInput { text }).is_ok(),
                        _ => false,
                    };
                    control.running = started;
                }
                Event::PermissionModeChanged { mode } => {
                    lock(&self.permission_mode).clone_from(mode);
                }
                Event::ModelChanged { model } => lock(&self.model).clone_from(model),
                _ => {}
            }
        }
        let json: Arc<str> = match serde_json::to_string(event) {
            Ok(json) => json.into(),
            // Events are plain data; this cannot fail, but a reader must still see a number.
            Err(error) => format!(
                "{{\"type\":\"notice\",\"level\":\"warning\",\"message\":\"an event could not be encoded: {error}\"}}"
            )
            .into(),
        };
        let seq = {
            let mut log = lock(&self.log);
            let seq = log.next;
            log.next += 1;
            log.entries.push_back(Numbered { seq, json });
            while log.entries.len() > log.capacity {
                log.entries.pop_front();
            }
            seq
        };
        self.published.send_replace(seq);
    }

    fn close_log(&self) {
        lock(&self.log).closed = true;
        self.published.send_modify(|_| {});
    }

    /// A receiver that wakes when an event is logged or the log closes.
    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.published.subscribe()
    }

    /// The events after `after`, at most `max` of them.
    pub(crate) fn events_after(&self, after: u64, max: usize) -> Slice {
        let log = lock(&self.log);
        let first = log.entries.front().map_or(log.next, |e| e.seq);
        let gap_until = (after + 1 < first).then_some(first);
        let events: Vec<Numbered> = log
            .entries
            .iter()
            .filter(|e| e.seq > after)
            .take(max)
            .cloned()
            .collect();
        let read_all = events.last().map_or(after, |e| e.seq) + 1 >= log.next;
        Slice {
            finished: log.closed && read_all,
            events,
            gap_until,
        }
    }

    /// The newest event's number.
    pub(crate) fn last_event_id(&self) -> u64 {
        lock(&self.log).next - 1
    }

    /// Sends a prompt now, or queues it behind the running one.
    pub(crate) fn prompt(&self, text: String) -> Queued {
        let mut control = lock(&self.control);
        let Some(ops) = control.ops.clone() else {
            return Queued::Closed;
        };
        if control.running {
            control.queue.push_back(text);
            return Queued::Waiting(control.queue.len());
        }
        if ops.send(Op::UserInput { text }).is_err() {
            return Queued::Closed;
        }
        control.running = true;
        Queued::Started
    }

    /// Sends an op that takes effect at once; false when the session is ending.
    pub(crate) fn send(&self, op: Op) -> bool {
        lock(&self.control)
            .ops
            .as_ref()
            .is_some_and(|ops| ops.send(op).is_ok())
    }

    /// Removes a waiting approval, if it is waiting.
    pub(crate) fn take_pending(&self, request_id: &str) -> Option<Pending> {
        lock(&self.control).pending.remove(request_id)
    }

    /// Whether a run is going, and how many prompts wait.
    pub(crate) fn running(&self) -> (bool, usize) {
        let control = lock(&self.control);
        (control.running, control.queue.len())
    }

    /// Ends the session: queued prompts are dropped, the running one is interrupted, and the
    /// engine closes the transcript. Returns whether it finished within the wait.
    pub(crate) async fn end(&self) -> bool {
        {
            let mut control = lock(&self.control);
            control.queue.clear();
            if let Some(ops) = control.ops.take()
                && control.running
            {
                let _ = ops.send(Op::Interrupt);
            }
        }
        let engine = lock(&self.engine).take();
        let forwarder = lock(&self.forwarder).take();
        let wait = async {
            if let Some(engine) = engine {
                let _ = engine.await;
            }
            if let Some(forwarder) = forwarder {
                let _ = forwarder.await;
            }
        };
        tokio::time::timeout(END_WAIT, wait).await.is_ok()
    }

    pub(crate) fn view(&self) -> LiveView {
        let control = lock(&self.control);
        let status = if control.ops.is_none() {
            "ending"
        } else if control.running {
            "running"
        } else {
            "idle"
        };
        LiveView {
            session_id: self.id.clone(),
            live: true,
            cwd: self.cwd.display().to_string(),
            model: lock(&self.model).clone(),
            permission_mode: lock(&self.permission_mode).clone(),
            status,
            queued_prompts: control.queue.len(),
            pending_approvals: control.pending.values().cloned().collect(),
            last_event_id: self.last_event_id(),
            transcript: self.transcript_path.display().to_string(),
            tools: self.tools.clone(),
            mcp_servers: self.mcp_servers.iter().cloned().collect(),
            created_unix_ms: unix_ms(self.created),
        }
    }
}

/// Milliseconds since the Unix epoch.
pub(crate) fn unix_ms(time: SystemTime) -> u64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
