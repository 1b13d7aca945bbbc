//! One session's share of work that outlives a turn: its task list (or the team's board), its
//! background tasks, wake-ups and session schedules, its seat in a team. It plugs into the
//! engine as an [`Extension`]: before each model request it hands over what finished, what
//! arrived and what needs a reminder; when the session ends it stops what must not outlive it.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use keel_engine::{EventSink, Extension};
use keel_protocol::{Event, NoticeLevel, PlanItem};
use tokio_util::sync::CancellationToken;

use crate::TasksError;
use crate::background::BackgroundTasks;
use crate::cron::{Due, SessionSchedules, Zone};
use crate::mailbox::{Body, Envelope, render};
use crate::store::{TaskStatus, TaskStore};
use crate::team::{LEAD, MemberConfig, MemberStatus, SpawnConfig, Team, Timing};
use crate::worktree::Worktree;

/// Model turns without a task-tool call after which an open task list earns a reminder.
pub const REMINDER_TURNS: u32 = 5;

/// What a runtime is set up with.
#[derive(Debug, Clone)]
pub struct RuntimeOptions {
    /// The session's folder (`~/.keel/projects/<dir>/<session id>/`): its task list and the
    /// output of its background tasks live here.
    pub session_dir: PathBuf,
    /// The project whose `.keel/` holds shared boards, teams, schedules and worktrees.
    pub project_root: PathBuf,
    /// A shared board to use instead of the session's own list (`CLAUDE_CODE_TASK_LIST_ID`).
    pub board: Option<TaskStore>,
    /// Leave background tasks running when the session ends.
    pub keep_background: bool,
    /// Model turns without a task-tool call before a reminder (0 = never).
    pub reminder_turns: u32,
    /// The shortest delay `ScheduleWakeup` accepts.
    pub wakeup_min: Duration,
    /// The longest delay `ScheduleWakeup` accepts.
    pub wakeup_max: Duration,
    /// How this session starts team members, if it may lead a team.
    pub spawn: Option<SpawnConfig>,
    /// The pace of teams this session creates.
    pub timing: Timing,
    /// The zone cron expressions are read in.
    pub zone: Zone,
    /// This session's seat in a team, when it is a member.
    pub seat: Option<Seat>,
}

impl RuntimeOptions {
    /// Options with keel's defaults for a session folder and a project.
    pub fn new(session_dir: impl Into<PathBuf>, project_root: impl Into<PathBuf>) -> Self {
        Self {
            session_dir: session_dir.into(),
            project_root: project_root.into(),
            board: None,
            keep_background: false,
            reminder_turns: REMINDER_TURNS,
            wakeup_min: Duration::from_secs(60),
            wakeup_max: Duration::from_secs(3600),
            spawn: None,
            timing: Timing::default(),
            zone: Zone::Local,
            seat: None,
        }
    }
}

/// A session's place in a team: the team, its own name, and the protocol messages that arrived
/// for whoever drives the session (a member's loop handles shutdown requests and plan answers).
#[derive(Debug, Clone)]
pub struct Seat {
    /// The team.
    pub team: Team,
    /// This session's name in it.
    pub me: String,
    /// Protocol messages waiting for the driver, shared by every session of the member.
    pub control: Arc<Mutex<VecDeque<Envelope>>>,
}

impl Seat {
    /// A seat for `me` in `team`.
    pub fn new(team: Team, me: impl Into<String>) -> Self {
        Self {
            team,
            me: me.into(),
            control: Arc::new(Mutex::new(VecDeque::new())),
        }
    }

    /// Whether this seat is the lead's.
    pub fn is_lead(&self) -> bool {
        self.me == LEAD
    }

    /// Queues a protocol message for the driver.
    pub fn push_control(&self, envelope: Envelope) {
        lock(&self.control).push_back(envelope);
    }

    /// Protocol messages that arrived for the driver, oldest first.
    pub fn take_control(&self) -> Vec<Envelope> {
        lock(&self.control).drain(..).collect()
    }
}

/// A prompt the agent asked to be woken with.
#[derive(Debug, Clone)]
struct Wakeup {
    due: Instant,
    prompt: String,
}

/// A request of the lead still waiting for its answer.
#[derive(Debug, Clone)]
struct PendingRequest {
    id: String,
    member: String,
    deadline: Instant,
}

/// The worktree `EnterWorktree` switched the session into.
#[derive(Debug, Clone)]
pub struct Entered {
    /// The main checkout.
    pub root: PathBuf,
    /// The worktree.
    pub worktree: Worktree,
    /// Where the session was before.
    pub original_cwd: PathBuf,
}

/// One session's background tasks, task list, schedules and team seat.
pub struct TaskRuntime {
    options: RuntimeOptions,
    board: Mutex<TaskStore>,
    seat: Mutex<Option<Seat>>,
    background: BackgroundTasks,
    sink: Mutex<Option<EventSink>>,
    turns_since_plan_tool: AtomicU32,
    wakeups: Mutex<Vec<Wakeup>>,
    schedules: SessionSchedules,
    children: Mutex<Vec<(String, tokio::process::Child)>>,
    pending: Mutex<Vec<PendingRequest>>,
    notes: Mutex<Vec<String>>,
    entered: Mutex<Option<Entered>>,
    last_plan: Mutex<Option<Vec<PlanItem>>>,
}

impl std::fmt::Debug for TaskRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskRuntime")
            .field("session_dir", &self.options.session_dir)
            .finish_non_exhaustive()
    }
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// Runs blocking file work (locks, small reads and writes) off the async runtime's threads.
pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, TasksError> + Send + 'static,
) -> Result<T, TasksError> {
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result,
        Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
        Err(_) => Err(TasksError::Invalid(
            "the operation was cancelled because keel is shutting down".into(),
        )),
    }
}

impl TaskRuntime {
    /// A runtime for one session.
    pub fn new(options: RuntimeOptions) -> Arc<Self> {
        let board = match (&options.board, &options.seat) {
            (_, Some(seat)) => seat.team.board().unwrap_or_else(|_| {
                crate::team::board_for(seat.team.project_root(), seat.team.name())
            }),
            (Some(board), None) => board.clone(),
            (None, None) => TaskStore::new(options.session_dir.join("tasks")),
        };
        let background = BackgroundTasks::new(options.session_dir.join("background"));
        Arc::new(Self {
            board: Mutex::new(board),
            seat: Mutex::new(options.seat.clone()),
            background,
            sink: Mutex::new(None),
            turns_since_plan_tool: AtomicU32::new(0),
            wakeups: Mutex::new(Vec::new()),
            schedules: SessionSchedules::default(),
            children: Mutex::new(Vec::new()),
            pending: Mutex::new(Vec::new()),
            notes: Mutex::new(Vec::new()),
            entered: Mutex::new(None),
            last_plan: Mutex::new(None),
            options,
        })
    }

    /// The options it was made with.
    pub fn options(&self) -> &RuntimeOptions {
        &self.options
    }

    /// The session's background tasks.
    pub fn background(&self) -> &BackgroundTasks {
        &self.background
    }

    /// The board the task tools work on.
    pub fn board(&self) -> TaskStore {
        lock(&self.board).clone()
    }

    /// The session's team seat, if it is in a team.
    pub fn seat(&self) -> Option<Seat> {
        lock(&self.seat).clone()
    }

    /// Who this session is on a shared board (None for a private list).
    pub fn me(&self) -> Option<String> {
        lock(&self.seat).as_ref().map(|s| s.me.clone())
    }

    /// The session's schedules that last only as long as it does.
    pub fn schedules(&self) -> &SessionSchedules {
        &self.schedules
    }

    /// The worktree `EnterWorktree` switched into, if any.
    pub fn entered(&self) -> Option<Entered> {
        lock(&self.entered).clone()
    }

    pub(crate) fn set_entered(&self, entered: Option<Entered>) {
        *lock(&self.entered) = entered;
    }

    /// Reports an event to the session's frontend and transcript (dropped before the session
    /// serves or after it ended).
    pub fn emit(&self, event: Event) {
        let sink = lock(&self.sink).clone();
        if let Some(sink) = sink {
            sink(event);
        }
    }

    /// The board as plan items.
    pub async fn plan(&self) -> Result<Vec<PlanItem>, TasksError> {
        let board = self.board();
        let tasks = blocking(move || board.list()).await?;
        Ok(tasks.iter().map(crate::store::Task::to_plan_item).collect())
    }

    /// Reports the current plan (after a change, or when the board changed elsewhere).
    pub async fn emit_plan(&self) {
        match self.plan().await {
            Ok(items) => {
                *lock(&self.last_plan) = Some(items.clone());
                self.emit(Event::PlanUpdated { items });
            }
            Err(error) => tracing::warn!(%error, "cannot read the task list"),
        }
    }

    /// Joins `team` as `me` (the lead after TeamCreate): the team's board becomes the task list.
    pub fn join_team(&self, team: Team, me: &str) -> Result<(), TasksError> {
        let board = team.board()?;
        *lock(&self.board) = board;
        *lock(&self.seat) = Some(Seat::new(team, me));
        Ok(())
    }

    /// Leaves the team (after TeamDelete): back to the session's own list.
    pub fn leave_team(&self) {
        *lock(&self.seat) = None;
        *lock(&self.board) = match &self.options.board {
            Some(board) => board.clone(),
            None => TaskStore::new(self.options.session_dir.join("tasks")),
        };
    }

    /// Starts team member `name` as a child process working the team's board.
    pub fn spawn_teammate(
        &self,
        name: &str,
        prompt: &str,
        plan_mode_required: bool,
    ) -> Result<String, TasksError> {
        let Some(seat) = self.seat() else {
            return Err(TasksError::Invalid(
                "there is no team yet; create one with TeamCreate first".into(),
            ));
        };
        if !seat.is_lead() {
            return Err(TasksError::Invalid(
                "only the team lead starts members".into(),
            ));
        }
        let Some(spawn) = &self.options.spawn else {
            return Err(TasksError::Invalid(
                "this session cannot start team members (no keel executable to run)".into(),
            ));
        };
        seat.team.add_member(MemberConfig {
            name: name.to_string(),
            prompt: prompt.to_string(),
            plan_mode_required,
            spawned_at: crate::fsutil::now_rfc3339(),
        })?;
        let child = seat.team.spawn(name, spawn)?;
        let pid = child.id();
        lock(&self.children).push((name.to_string(), child));
        Ok(format!(
            "{name} joined team {} (process {}) and starts on the board's open tasks. Messages \
             from members reach you at your next turn.",
            seat.team.name(),
            pid.map(|p| p.to_string()).unwrap_or_else(|| "?".into())
        ))
    }

    /// Records a request of the lead that must be answered in time.
    pub(crate) fn expect_answer(&self, id: &str, member: &str) {
        let timeout = self
            .seat()
            .and_then(|s| s.team.config().ok())
            .map(|c| c.timing.protocol_timeout())
            .unwrap_or(self.options.timing.protocol_timeout());
        lock(&self.pending).push(PendingRequest {
            id: id.to_string(),
            member: member.to_string(),
            deadline: Instant::now() + timeout,
        });
    }

    /// Reaps members this session started that have exited.
    fn reap(&self) {
        let mut children = lock(&self.children);
        children.retain_mut(|(_, child)| !matches!(child.try_wait(), Ok(Some(_)) | Err(_)));
    }

    /// Whether any member of this session's team is still running.
    pub fn team_live(&self) -> bool {
        self.reap();
        let Some(seat) = self.seat() else {
            return false;
        };
        seat.team
            .states()
            .map(|states| states.iter().any(|s| s.status != MemberStatus::Stopped))
            .unwrap_or(false)
    }

    /// Adds text for the model's next turn.
    pub fn push_notes(&self, notes: impl IntoIterator<Item = String>) {
        lock(&self.notes).extend(notes);
    }

    /// Takes this session's inbox and sorts it: protocol requests and answers for the driver go
    /// to the seat's control queue, everything else becomes text for the model. Answers to the
    /// lead's own requests settle them.
    pub fn poll_inbox(&self) -> Result<Vec<String>, TasksError> {
        let Some(seat) = self.seat() else {
            return Ok(Vec::new());
        };
        let envelopes = seat.team.mailbox().take(&seat.me)?;
        let mut notes = Vec::new();
        for envelope in envelopes {
            match &envelope.body {
                Body::ShutdownRequest { .. } | Body::PlanApprovalResponse { .. }
                    if !seat.is_lead() =>
                {
                    lock(&seat.control).push_back(envelope);
                }
                Body::ShutdownResponse { request_id, .. } => {
                    lock(&self.pending).retain(|p| &p.id != request_id);
                    notes.push(render(&envelope));
                }
                _ => notes.push(render(&envelope)),
            }
        }
        Ok(notes)
    }

    /// Requests whose time ran out: the member is stopped and the lead told.
    fn expired_requests(&self) -> Vec<String> {
        let now = Instant::now();
        let expired: Vec<PendingRequest> = {
            let mut pending = lock(&self.pending);
            let (gone, kept): (Vec<_>, Vec<_>) = pending.drain(..).partition(|p| p.deadline <= now);
            *pending = kept;
            gone
        };
        let mut notes = Vec::new();
        for request in expired {
            let stopped = self.stop_member(&request.member);
            notes.push(format!(
                "<teammate-status teammate_id=\"{}\" status=\"stopped\">{} did not answer {} in time{}</teammate-status>",
                request.member,
                request.member,
                request.id,
                if stopped { "; keel stopped its process" } else { "" }
            ));
        }
        notes
    }

    /// Stops a member's process (SIGTERM); true if there was one to stop.
    fn stop_member(&self, member: &str) -> bool {
        let mut children = lock(&self.children);
        if let Some((_, child)) = children.iter_mut().find(|(name, _)| name == member) {
            return child.start_kill().is_ok();
        }
        drop(children);
        let pid = self
            .seat()
            .and_then(|s| s.team.state(member).ok().flatten())
            .and_then(|s| s.pid);
        #[cfg(unix)]
        if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
            return nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            )
            .is_ok();
        }
        let _ = pid;
        false
    }

    /// The board changed since the plan was last reported (other members work on it too).
    async fn board_changed(&self) -> Option<Vec<PlanItem>> {
        self.seat()?;
        let items = self.plan().await.ok()?;
        let mut last = lock(&self.last_plan);
        if last.as_ref() == Some(&items) {
            return None;
        }
        *last = Some(items.clone());
        Some(items)
    }

    /// Everything that must reach the model now: finished background tasks, messages, expired
    /// requests, notes queued by the driver.
    async fn gather(&self) -> Vec<String> {
        let mut notes = self.background.take_notices();
        match self.poll_inbox() {
            Ok(messages) => notes.extend(messages),
            Err(error) => tracing::warn!(%error, "cannot read the team inbox"),
        }
        notes.extend(self.expired_requests());
        notes.extend(lock(&self.notes).drain(..));
        if let Some(items) = self.board_changed().await {
            self.emit(Event::PlanUpdated { items });
        }
        notes
    }

    /// A task-tool call happened: the reminder clock starts over.
    pub fn plan_tool_used(&self) {
        self.turns_since_plan_tool.store(0, Ordering::Relaxed);
    }

    async fn reminder(&self) -> Option<String> {
        let every = self.options.reminder_turns;
        if every == 0 {
            return None;
        }
        let turns = self.turns_since_plan_tool.fetch_add(1, Ordering::Relaxed) + 1;
        if turns <= every {
            return None;
        }
        let board = self.board();
        let tasks = blocking(move || board.list()).await.ok()?;
        let open: Vec<&crate::store::Task> = tasks
            .iter()
            .filter(|t| t.status != TaskStatus::Completed)
            .collect();
        if open.is_empty() {
            return None;
        }
        self.turns_since_plan_tool.store(0, Ordering::Relaxed);
        let list: Vec<String> = open
            .iter()
            .map(|t| format!("#{} [{}] {}", t.id, t.status.as_str(), t.subject))
            .collect();
        Some(format!(
            "<system-reminder>\nThe task list has not been updated for {every} turns. If you \
             finished a task, mark it completed with TaskUpdate; set the one you work on to \
             in_progress; add tasks you discovered. Open tasks:\n{}\nIgnore this if the list is \
             up to date, and do not mention this reminder to the user.\n</system-reminder>",
            list.join("\n")
        ))
    }

    /// Schedules a prompt to come back after `delay` (clamped to the allowed range); returns the
    /// delay used.
    pub fn schedule_wakeup(&self, delay: Duration, prompt: &str) -> Duration {
        let delay = delay.clamp(self.options.wakeup_min, self.options.wakeup_max);
        lock(&self.wakeups).push(Wakeup {
            due: Instant::now() + delay,
            prompt: prompt.to_string(),
        });
        delay
    }

    /// Drops every pending wake-up; returns how many there were.
    pub fn cancel_wakeups(&self) -> usize {
        std::mem::take(&mut *lock(&self.wakeups)).len()
    }

    fn due_wakeups(&self) -> Vec<String> {
        let now = Instant::now();
        let mut wakeups = lock(&self.wakeups);
        let (due, later): (Vec<_>, Vec<_>) = wakeups.drain(..).partition(|w| w.due <= now);
        *wakeups = later;
        due.into_iter().map(|w| w.prompt).collect()
    }

    fn next_wakeup(&self) -> Option<Instant> {
        lock(&self.wakeups).iter().map(|w| w.due).min()
    }

    /// Session schedules due now, as prompts; missed runs become notices.
    pub fn due_schedule_prompts(&self) -> Vec<String> {
        let now = chrono::Utc::now();
        let mut prompts = Vec::new();
        for due in self.schedules.claim_due(now, self.options.zone) {
            match &due {
                Due::Fire { schedule, .. } => prompts.push(schedule.prompt.clone()),
                Due::Missed { .. } => {
                    if let Some(report) = due.missed_report(self.options.zone) {
                        self.emit(Event::Notice {
                            level: NoticeLevel::Warning,
                            message: report,
                        });
                    }
                }
            }
        }
        prompts
    }

    /// Waits, between runs, for the next thing the session must work on: messages from the
    /// team, a wake-up the agent asked for, a due schedule, a request that timed out. `None`
    /// when nothing can come any more (no live team members and no pending wake-ups), or when
    /// `cancel` fires. Print mode uses this to keep a team lead answering its members.
    pub async fn next_prompt(&self, cancel: &CancellationToken) -> Option<String> {
        loop {
            let mut notes = self.gather().await;
            let wakeups = self.due_wakeups();
            let scheduled = self.due_schedule_prompts();
            let has_input = !wakeups.is_empty() || !scheduled.is_empty();
            if !notes.is_empty() || has_input {
                notes.extend(wakeups);
                notes.extend(scheduled);
                if let Some(seat) = self.seat()
                    && seat.is_lead()
                {
                    notes.push(self.team_summary(&seat).await);
                }
                return Some(notes.join("\n\n"));
            }
            let live = self.team_live();
            let next_wakeup = self.next_wakeup();
            if !live && next_wakeup.is_none() && lock(&self.pending).is_empty() {
                return None;
            }
            let poll = self
                .seat()
                .and_then(|s| s.team.config().ok())
                .map(|c| c.timing.poll())
                .unwrap_or(Duration::from_millis(500));
            let wait = match next_wakeup {
                Some(due) if !live => due.saturating_duration_since(Instant::now()),
                Some(due) => poll.min(due.saturating_duration_since(Instant::now())),
                None => poll,
            };
            tokio::select! {
                () = cancel.cancelled() => return None,
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// The lead's view of the team: who does what, and how far the board is.
    pub async fn team_summary(&self, seat: &Seat) -> String {
        let team = seat.team.clone();
        let board = self.board();
        let found = blocking(move || Ok((team.status_line()?, board.list()?))).await;
        match found {
            Ok((status, tasks)) => {
                let done = tasks
                    .iter()
                    .filter(|t| t.status == TaskStatus::Completed)
                    .count();
                let progress = if !tasks.is_empty() && done == tasks.len() {
                    format!("All {} tasks on the board are completed.", tasks.len())
                } else {
                    format!(
                        "{done} of {} tasks on the board are completed.",
                        tasks.len()
                    )
                };
                format!("{status} {progress}")
            }
            Err(error) => format!("(team status unavailable: {error})"),
        }
    }

    /// The working directory a member's task runs in, or the project root.
    pub fn project_root(&self) -> &Path {
        &self.options.project_root
    }
}

#[async_trait]
impl Extension for TaskRuntime {
    fn attach(&self, events: EventSink) {
        *lock(&self.sink) = Some(events);
        // A resumed session (or a shared board) shows its list from the start.
        let board = self.board();
        match board.list() {
            Ok(tasks) if !tasks.is_empty() => {
                let items: Vec<PlanItem> =
                    tasks.iter().map(crate::store::Task::to_plan_item).collect();
                *lock(&self.last_plan) = Some(items.clone());
                self.emit(Event::PlanUpdated { items });
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "cannot read the task list"),
        }
    }

    async fn before_request(&self) -> Vec<String> {
        let mut notes = self.gather().await;
        if let Some(reminder) = self.reminder().await {
            notes.push(reminder);
        }
        notes
    }

    fn tool_finished(&self, name: &str, _is_error: bool) {
        if matches!(name, "TaskCreate" | "TaskUpdate" | "TodoWrite") {
            self.plan_tool_used();
        }
    }

    async fn session_end(&self) {
        let kept = self.background.shutdown(self.options.keep_background).await;
        if !kept.is_empty() {
            let list: Vec<String> = kept
                .iter()
                .map(|i| {
                    format!(
                        "{} (pid {})",
                        i.id,
                        i.pid.map(|p| p.to_string()).unwrap_or_else(|| "?".into())
                    )
                })
                .collect();
            self.emit(Event::Notice {
                level: NoticeLevel::Info,
                message: format!(
                    "background tasks left running: {}; stop them with kill, or see `keel tasks background`",
                    list.join(", ")
                ),
            });
        }
        // Members started by this session stop with it (a print-mode lead waits for them first).
        let mut children = std::mem::take(&mut *lock(&self.children));
        for (_, child) in &mut children {
            let _ = child.start_kill();
        }
        for (_, mut child) in children {
            let _ = tokio::time::timeout(Duration::from_secs(2), child.wait()).await;
        }
        *lock(&self.sink) = None;
    }
}
