//! The task board: one JSON file per task in a folder, written atomically under the folder's
//! lock, so several sessions and processes can share one board. Dependencies are kept on both
//! sides (`blocks` / `blockedBy`); a task is ready when every task it waits for is completed.
//! Claims are atomic and carry a lease: a member that dies without finishing leaves its task
//! to be released when the lease runs out. Every change is also appended to `log.jsonl`, the
//! board's history.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::TasksError;
use crate::fsutil::{self, FileLock};

/// Where a task stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    /// Not started.
    Pending,
    /// Someone works on it.
    InProgress,
    /// Done.
    Completed,
}

impl TaskStatus {
    /// The status as the tools spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::InProgress => "in_progress",
            Self::Completed => "completed",
        }
    }
}

impl std::str::FromStr for TaskStatus {
    type Err = TasksError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "pending" => Ok(Self::Pending),
            "in_progress" => Ok(Self::InProgress),
            "completed" => Ok(Self::Completed),
            other => Err(TasksError::Invalid(format!(
                "unknown task status {other:?}; use pending, in_progress or completed"
            ))),
        }
    }
}

/// One task, as stored in `<id>.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Task {
    /// A small number, as text (`"3"`), unique within the board and never reused.
    pub id: String,
    /// A short imperative title.
    pub subject: String,
    /// What needs doing.
    #[serde(default)]
    pub description: String,
    /// The present-continuous form shown while it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_form: Option<String>,
    /// Where it stands.
    pub status: TaskStatus,
    /// Who works on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Tasks that wait for this one.
    #[serde(default)]
    pub blocks: Vec<String>,
    /// Tasks this one waits for.
    #[serde(default)]
    pub blocked_by: Vec<String>,
    /// Free-form data the model or a tool attached.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub metadata: Map<String, Value>,
    /// When it was created (RFC 3339).
    pub created_at: String,
    /// When it last changed (RFC 3339).
    pub updated_at: String,
    /// Until when the owner's claim holds unless renewed (RFC 3339); absent when unleased.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_expires_at: Option<String>,
}

impl Task {
    /// The tasks this one still waits for: its blockers that are not completed.
    pub fn open_blockers(&self, board: &[Task]) -> Vec<String> {
        let done: HashMap<&str, TaskStatus> =
            board.iter().map(|t| (t.id.as_str(), t.status)).collect();
        self.blocked_by
            .iter()
            // A blocker that was deleted no longer holds anything up.
            .filter(|id| matches!(done.get(id.as_str()), Some(s) if *s != TaskStatus::Completed))
            .cloned()
            .collect()
    }

    /// The task as one line of a list: `#id [status] subject`, its owner, and the tasks it
    /// still waits for (`board` is the list it is on).
    pub fn list_line(&self, board: &[Task]) -> String {
        let mut line = format!("#{} [{}] {}", self.id, self.status.as_str(), self.subject);
        if let Some(owner) = &self.owner {
            line.push_str(&format!(" (owner: {owner})"));
        }
        let open = self.open_blockers(board);
        if !open.is_empty() && self.status != TaskStatus::Completed {
            line.push_str(&format!(" [blocked by #{}]", open.join(", #")));
        }
        line
    }

    /// Whether the owner's lease ran out before `now`.
    pub fn lease_expired(&self, now: DateTime<Utc>) -> bool {
        self.lease_expires_at
            .as_deref()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .is_some_and(|t| t.with_timezone(&Utc) <= now)
    }

    /// The entry frontends show in the plan.
    pub fn to_plan_item(&self) -> keel_protocol::PlanItem {
        keel_protocol::PlanItem {
            id: self.id.clone(),
            subject: self.subject.clone(),
            description: self.description.clone(),
            active_form: self.active_form.clone(),
            status: self.status.as_str().to_string(),
            owner: self.owner.clone(),
            blocks: self.blocks.clone(),
            blocked_by: self.blocked_by.clone(),
        }
    }
}

/// What a new task starts with.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NewTask {
    /// A short imperative title.
    pub subject: String,
    /// What needs doing.
    pub description: String,
    /// The present-continuous form.
    pub active_form: Option<String>,
    /// Free-form data.
    pub metadata: Map<String, Value>,
    /// The initial status (TodoWrite lists arrive with theirs).
    pub status: Option<TaskStatus>,
}

/// A change to a task; absent fields stay as they are.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaskPatch {
    /// A new title.
    pub subject: Option<String>,
    /// A new description.
    pub description: Option<String>,
    /// A new present-continuous form.
    pub active_form: Option<String>,
    /// A new status.
    pub status: Option<TaskStatus>,
    /// Tasks that from now on wait for this one.
    pub add_blocks: Vec<String>,
    /// Tasks this one from now on waits for.
    pub add_blocked_by: Vec<String>,
    /// A new owner; `Some("")` clears it.
    pub owner: Option<String>,
    /// Keys merged into the metadata; a `null` value removes the key.
    pub metadata: Option<Map<String, Value>>,
}

/// What an update changed.
#[derive(Debug, Clone, PartialEq)]
pub struct Updated {
    /// The task after the change.
    pub task: Task,
    /// The fields that changed, in Claude Code's spelling.
    pub fields: Vec<String>,
    /// The status before and after, when it changed.
    pub status_change: Option<(TaskStatus, TaskStatus)>,
}

/// One line of the board's history (`log.jsonl`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogEntry {
    /// When (RFC 3339).
    pub ts: String,
    /// The task.
    pub task: String,
    /// `created`, `updated`, `claimed`, `released`, `completed`, `reopened` or `deleted`.
    pub action: String,
    /// Who did it (a member name), if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// More about it (e.g. why a claim was released).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// A board in a folder. Cheap to clone: it is the folder's path and the claim lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskStore {
    dir: PathBuf,
    lease: Option<Duration>,
}

/// The board's files: tasks plus these.
const LOCK_FILE: &str = ".lock";
const HIGH_WATER_FILE: &str = ".highwatermark";
const LOG_FILE: &str = "log.jsonl";

impl TaskStore {
    /// The board in `dir` (created on the first write). Claims made without an explicit lease
    /// never expire.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            lease: None,
        }
    }

    /// The same board, with every claim leased for `lease` (team boards): an owner that stops
    /// renewing loses the task when the lease runs out.
    #[must_use]
    pub fn with_lease(mut self, lease: Duration) -> Self {
        self.lease = Some(lease);
        self
    }

    /// The board's folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn lock(&self) -> Result<FileLock, TasksError> {
        FileLock::acquire(&self.dir.join(LOCK_FILE))
    }

    fn task_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    fn write(&self, task: &Task) -> Result<(), TasksError> {
        fsutil::write_json(&self.task_path(&task.id), task)
    }

    fn log(&self, task: &str, action: &str, by: Option<&str>, detail: Option<String>) {
        let entry = LogEntry {
            ts: fsutil::now_rfc3339(),
            task: task.to_string(),
            action: action.to_string(),
            by: by.map(str::to_string),
            detail,
        };
        // The history is an aid, not the source of truth: a failed append must not undo a
        // change that is already on disk.
        if let Err(error) = fsutil::append_json_line(&self.dir.join(LOG_FILE), &entry) {
            tracing::warn!(%error, "cannot append to the task board's history");
        }
    }

    /// Every task, in id order. A file that does not parse is skipped with a warning.
    pub fn list(&self) -> Result<Vec<Task>, TasksError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(TasksError::io(&self.dir, source)),
        };
        let mut tasks = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            let is_task = path.extension().is_some_and(|e| e == "json")
                && path
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .is_some_and(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()));
            if !is_task {
                continue;
            }
            match fsutil::read_json::<Task>(&path) {
                Ok(Some(task)) => tasks.push(task),
                Ok(None) => {}
                Err(error) => tracing::warn!(%error, "skipping an unreadable task file"),
            }
        }
        tasks.sort_by_key(|t| t.id.parse::<u64>().unwrap_or(u64::MAX));
        Ok(tasks)
    }

    /// One task, if it exists.
    pub fn get(&self, id: &str) -> Result<Option<Task>, TasksError> {
        if !valid_id(id) {
            return Ok(None);
        }
        fsutil::read_json(&self.task_path(id))
    }

    /// The board's history, oldest first.
    pub fn history(&self) -> Result<Vec<LogEntry>, TasksError> {
        Ok(fsutil::read_json_lines(&self.dir.join(LOG_FILE), 0)?.0)
    }

    /// Adds a task with the next free id.
    pub fn create(&self, new: NewTask, by: Option<&str>) -> Result<Task, TasksError> {
        let _lock = self.lock()?;
        let task = self.create_locked(new)?;
        self.log(&task.id, "created", by, None);
        Ok(task)
    }

    fn create_locked(&self, new: NewTask) -> Result<Task, TasksError> {
        if new.subject.trim().is_empty() {
            return Err(TasksError::Invalid(
                "a task needs a subject (a short title)".into(),
            ));
        }
        let high_water_path = self.dir.join(HIGH_WATER_FILE);
        let stored = match std::fs::read_to_string(&high_water_path) {
            Ok(text) => text.trim().parse::<u64>().unwrap_or(0),
            Err(_) => 0,
        };
        // The folder may hold tasks from before the mark existed; never reuse their ids.
        let existing = self
            .list()?
            .iter()
            .filter_map(|t| t.id.parse::<u64>().ok())
            .max()
            .unwrap_or(0);
        let id = stored.max(existing) + 1;
        fsutil::write_atomic(&high_water_path, format!("{id}\n").as_bytes())?;
        let now = fsutil::now_rfc3339();
        let task = Task {
            id: id.to_string(),
            subject: new.subject,
            description: new.description,
            active_form: new.active_form,
            status: new.status.unwrap_or(TaskStatus::Pending),
            owner: None,
            blocks: Vec::new(),
            blocked_by: Vec::new(),
            metadata: new.metadata,
            created_at: now.clone(),
            updated_at: now,
            lease_expires_at: None,
        };
        self.write(&task)?;
        Ok(task)
    }

    /// Changes a task. `by` is the member making the change (None outside a team): a member
    /// cannot take over a task another member holds, and a member who sets a task in progress
    /// becomes its owner.
    pub fn update(
        &self,
        id: &str,
        patch: TaskPatch,
        by: Option<&str>,
    ) -> Result<Updated, TasksError> {
        let _lock = self.lock()?;
        let mut board = self.list()?;
        self.release_expired_locked(&mut board)?;
        let Some(index) = board.iter().position(|t| t.id == id) else {
            return Err(not_found(id, &board));
        };
        let mut task = board[index].clone();
        let before = task.clone();
        let mut fields = Vec::new();
        let now = Utc::now();

        // A member cannot take over a task another member is working on.
        if let (Some(me), Some(current)) = (by, task.owner.as_deref())
            && current != me
            && task.status == TaskStatus::InProgress
        {
            let takes_status = patch.status == Some(TaskStatus::InProgress);
            let takes_owner = patch
                .owner
                .as_deref()
                .is_some_and(|o| !o.trim().is_empty() && o.trim() != current);
            if takes_status || takes_owner {
                return Err(TasksError::Conflict(format!(
                    "task #{id} is being worked on by {current}; pick another task (TaskList shows what is free)"
                )));
            }
        }
        if let Some(owner) = &patch.owner {
            let owner = owner.trim();
            let new_owner = (!owner.is_empty()).then(|| owner.to_string());
            if new_owner != task.owner {
                task.owner = new_owner;
                fields.push("owner".to_string());
            }
        }
        if let Some(status) = patch.status
            && status != task.status
        {
            task.status = status;
            fields.push("status".to_string());
        }
        if task.status == TaskStatus::InProgress && task.owner.is_none() {
            // Starting a task in a team makes you its owner, so no one else claims it.
            if let Some(me) = by {
                task.owner = Some(me.to_string());
                if !fields.iter().any(|f| f == "owner") {
                    fields.push("owner".to_string());
                }
            }
        }
        if let Some(subject) = patch.subject
            && subject != task.subject
        {
            if subject.trim().is_empty() {
                return Err(TasksError::Invalid(
                    "a task's subject cannot be empty".into(),
                ));
            }
            task.subject = subject;
            fields.push("subject".to_string());
        }
        if let Some(description) = patch.description
            && description != task.description
        {
            task.description = description;
            fields.push("description".to_string());
        }
        if let Some(active_form) = patch.active_form
            && Some(&active_form) != task.active_form.as_ref()
        {
            task.active_form = Some(active_form);
            fields.push("activeForm".to_string());
        }
        if let Some(metadata) = patch.metadata {
            for (key, value) in metadata {
                if value.is_null() {
                    task.metadata.remove(&key);
                } else {
                    task.metadata.insert(key, value);
                }
            }
            fields.push("metadata".to_string());
        }
        board[index] = task.clone();

        // Dependencies: checked against the whole board, then written on both sides.
        let mut touched: BTreeSet<usize> = BTreeSet::new();
        for (list, blocker_side) in [(&patch.add_blocked_by, false), (&patch.add_blocks, true)] {
            for other in list {
                let other = other.trim_start_matches('#');
                if other == id {
                    return Err(TasksError::Invalid(format!(
                        "task #{id} cannot wait for itself"
                    )));
                }
                let Some(other_index) = board.iter().position(|t| t.id == other) else {
                    return Err(not_found(other, &board));
                };
                let (blocker, waiter) = if blocker_side {
                    (index, other_index)
                } else {
                    (other_index, index)
                };
                let blocker_id = board[blocker].id.clone();
                let waiter_id = board[waiter].id.clone();
                if board[blocker].blocked_by.contains(&waiter_id)
                    || depends_on(&board, &blocker_id, &waiter_id)
                {
                    return Err(TasksError::Invalid(format!(
                        "making #{waiter_id} wait for #{blocker_id} would create a cycle (#{blocker_id} already waits for #{waiter_id})"
                    )));
                }
                if !board[waiter].blocked_by.contains(&blocker_id) {
                    board[waiter].blocked_by.push(blocker_id.clone());
                    touched.insert(waiter);
                }
                if !board[blocker].blocks.contains(&waiter_id) {
                    board[blocker].blocks.push(waiter_id);
                    touched.insert(blocker);
                }
            }
        }
        if !patch.add_blocked_by.is_empty() {
            fields.push("blockedBy".to_string());
        }
        if !patch.add_blocks.is_empty() {
            fields.push("blocks".to_string());
        }
        let mut task = board[index].clone();

        // Leases follow ownership of running tasks.
        match (task.status, &task.owner, self.lease) {
            (TaskStatus::InProgress, Some(_), Some(lease)) => {
                task.lease_expires_at = Some(lease_until(now, lease));
            }
            (TaskStatus::InProgress, Some(_), None) => {}
            _ => task.lease_expires_at = None,
        }
        if fields.is_empty() && task == before {
            return Ok(Updated {
                task,
                fields,
                status_change: None,
            });
        }
        task.updated_at = fsutil::now_rfc3339();
        board[index] = task.clone();
        touched.insert(index);
        for i in touched {
            self.write(&board[i])?;
        }
        let status_change = (before.status != task.status).then_some((before.status, task.status));
        let action = match status_change {
            Some((_, TaskStatus::Completed)) => "completed",
            Some((TaskStatus::Completed, _)) => "reopened",
            Some((_, TaskStatus::InProgress)) if task.owner.is_some() => "claimed",
            _ => "updated",
        };
        self.log(id, action, by, Some(fields.join(",")));
        Ok(Updated {
            task,
            fields,
            status_change,
        })
    }

    /// Removes a task and every dependency on it.
    pub fn delete(&self, id: &str, by: Option<&str>) -> Result<bool, TasksError> {
        let _lock = self.lock()?;
        let board = self.list()?;
        if !board.iter().any(|t| t.id == id) {
            return Ok(false);
        }
        for mut other in board.into_iter().filter(|t| t.id != id) {
            let before = (other.blocks.len(), other.blocked_by.len());
            other.blocks.retain(|b| b != id);
            other.blocked_by.retain(|b| b != id);
            if before != (other.blocks.len(), other.blocked_by.len()) {
                self.write(&other)?;
            }
        }
        let path = self.task_path(id);
        std::fs::remove_file(&path).map_err(|source| TasksError::io(&path, source))?;
        self.log(id, "deleted", by, None);
        Ok(true)
    }

    /// Claims the first ready task for `owner`, atomically: pending, unowned and with every
    /// blocker completed. Expired leases are released first. Two callers, in one process or
    /// many, never get the same task.
    pub fn claim_next(&self, owner: &str) -> Result<Option<Task>, TasksError> {
        let _lock = self.lock()?;
        let mut board = self.list()?;
        self.release_expired_locked(&mut board)?;
        let ready = board.iter().position(|t| {
            t.status == TaskStatus::Pending
                && t.owner.is_none()
                && t.open_blockers(&board).is_empty()
        });
        let Some(index) = ready else {
            return Ok(None);
        };
        let now = Utc::now();
        let task = &mut board[index];
        task.owner = Some(owner.to_string());
        task.status = TaskStatus::InProgress;
        task.lease_expires_at = self.lease.map(|lease| lease_until(now, lease));
        task.updated_at = fsutil::now_rfc3339();
        let task = task.clone();
        self.write(&task)?;
        self.log(&task.id, "claimed", Some(owner), None);
        Ok(Some(task))
    }

    /// Extends the lease of every running task `owner` holds; returns how many there were.
    pub fn renew_leases(&self, owner: &str) -> Result<usize, TasksError> {
        let Some(lease) = self.lease else {
            return Ok(0);
        };
        let _lock = self.lock()?;
        let now = Utc::now();
        let mut renewed = 0;
        for mut task in self.list()? {
            if task.status == TaskStatus::InProgress && task.owner.as_deref() == Some(owner) {
                task.lease_expires_at = Some(lease_until(now, lease));
                self.write(&task)?;
                renewed += 1;
            }
        }
        Ok(renewed)
    }

    /// Gives a running task back to the board (pending, no owner) if `owner` still holds it.
    pub fn release(&self, id: &str, owner: &str, reason: &str) -> Result<bool, TasksError> {
        let _lock = self.lock()?;
        let Some(mut task) = self.get(id)? else {
            return Ok(false);
        };
        if task.status != TaskStatus::InProgress || task.owner.as_deref() != Some(owner) {
            return Ok(false);
        }
        task.status = TaskStatus::Pending;
        task.owner = None;
        task.lease_expires_at = None;
        task.updated_at = fsutil::now_rfc3339();
        self.write(&task)?;
        self.log(id, "released", Some(owner), Some(reason.to_string()));
        Ok(true)
    }

    /// Releases every running task whose lease ran out; returns them.
    pub fn release_expired(&self) -> Result<Vec<Task>, TasksError> {
        let _lock = self.lock()?;
        let mut board = self.list()?;
        self.release_expired_locked(&mut board)
    }

    fn release_expired_locked(&self, board: &mut [Task]) -> Result<Vec<Task>, TasksError> {
        let now = Utc::now();
        let mut released = Vec::new();
        for task in board.iter_mut() {
            if task.status == TaskStatus::InProgress && task.lease_expired(now) {
                let holder = task.owner.take();
                task.status = TaskStatus::Pending;
                task.lease_expires_at = None;
                task.updated_at = fsutil::now_rfc3339();
                self.write(task)?;
                self.log(
                    &task.id,
                    "released",
                    holder.as_deref(),
                    Some("the lease ran out (the owner stopped renewing it)".into()),
                );
                released.push(task.clone());
            }
        }
        Ok(released)
    }

    /// Replaces the whole board with `items` (TodoWrite sends the full list each time); ids
    /// restart at 1.
    pub fn replace_all(&self, items: Vec<NewTask>) -> Result<Vec<Task>, TasksError> {
        let _lock = self.lock()?;
        for task in self.list()? {
            let path = self.task_path(&task.id);
            std::fs::remove_file(&path).map_err(|source| TasksError::io(&path, source))?;
        }
        let high_water = self.dir.join(HIGH_WATER_FILE);
        fsutil::write_atomic(&high_water, b"0\n")?;
        items
            .into_iter()
            .map(|item| self.create_locked(item))
            .collect()
    }
}

/// Whether `from` waits, directly or through others, for `target`.
fn depends_on(board: &[Task], from: &str, target: &str) -> bool {
    let by_id: HashMap<&str, &Task> = board.iter().map(|t| (t.id.as_str(), t)).collect();
    let mut stack = vec![from];
    let mut seen = BTreeSet::new();
    while let Some(id) = stack.pop() {
        if !seen.insert(id) {
            continue;
        }
        let Some(task) = by_id.get(id) else { continue };
        for blocker in &task.blocked_by {
            if blocker == target {
                return true;
            }
            stack.push(blocker);
        }
    }
    false
}

fn lease_until(now: DateTime<Utc>, lease: Duration) -> String {
    let lease = chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::MAX);
    (now + lease).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() < 20 && id.bytes().all(|b| b.is_ascii_digit())
}

fn not_found(id: &str, board: &[Task]) -> TasksError {
    let known: Vec<String> = board.iter().map(|t| format!("#{}", t.id)).collect();
    TasksError::NotFound(if known.is_empty() {
        format!("no task #{id}: the list is empty (create tasks with TaskCreate)")
    } else {
        format!("no task #{id}; the tasks are {}", known.join(", "))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new(subject: &str) -> NewTask {
        NewTask {
            subject: subject.into(),
            ..NewTask::default()
        }
    }

    fn blocked_by(ids: &[&str]) -> TaskPatch {
        TaskPatch {
            add_blocked_by: ids.iter().map(|s| s.to_string()).collect(),
            ..TaskPatch::default()
        }
    }

    fn status(s: TaskStatus) -> TaskPatch {
        TaskPatch {
            status: Some(s),
            ..TaskPatch::default()
        }
    }

    #[test]
    fn ids_count_up_and_are_never_reused() {
        let dir = tempfile::tempdir().unwrap();
        let store = TaskStore::new(dir.path());
        assert_eq!(store.create(new("a"), None).unwrap().id, "1");
        assert_eq!(store.create(new("b"), None).unwrap().id, "2");
        assert!(store.delete("2", None).unwrap());
        assert_eq!(store.create(new("c"), None).unwrap().id, "3");
        let ids: Vec<_> = store.list().unwrap().into_iter().map(|t| t.id).collect();
        assert_eq!(ids, ["1", "3"]);
    }

    #[test]
    fn dependencies_are_kept_on_both_sides_and_completion_unblocks() {
        let dir = tempfile::tempdir().unwrap();
        let store = TaskStore::new(dir.path());
        for s in ["build", "test", "ship"] {
            store.create(new(s), None).unwrap();
        }
        store.update("2", blocked_by(&["1"]), None).unwrap();
        store.update("3", blocked_by(&["1", "2"]), None).unwrap();
        let board = store.list().unwrap();
        assert_eq!(board[0].blocks, ["2", "3"]);
        assert_eq!(board[2].open_blockers(&board), ["1", "2"]);
        // Only #1 is ready.
        assert_eq!(store.claim_next("ana").unwrap().unwrap().id, "1");
        assert!(store.claim_next("ben").unwrap().is_none());
        store
            .update("1", status(TaskStatus::Completed), Some("ana"))
            .unwrap();
        assert_eq!(store.claim_next("ben").unwrap().unwrap().id, "2");
        let board = store.list().unwrap();
        assert_eq!(board[2].open_blockers(&board), ["2"]);
    }

    #[test]
    fn cycles_and_unknown_ids_are_refused_with_a_reason() {
        let dir = tempfile::tempdir().unwrap();
        let store = TaskStore::new(dir.path());
        for s in ["a", "b", "c"] {
            store.create(new(s), None).unwrap();
        }
        store.update("2", blocked_by(&["1"]), None).unwrap();
        store.update("3", blocked_by(&["2"]), None).unwrap();
        let err = store.update("1", blocked_by(&["3"]), None).unwrap_err();
        assert!(err.to_string().contains("cycle"), "{err}");
        let err = store.update("1", blocked_by(&["1"]), None).unwrap_err();
        assert!(err.to_string().contains("itself"), "{err}");
        let err = store.update("1", blocked_by(&["9"]), None).unwrap_err();
        assert!(err.to_string().contains("no task #9"), "{err}");
        let err = store
            .update("7", status(TaskStatus::Completed), None)
            .unwrap_err();
        assert!(err.to_string().contains("#1, #2, #3"), "{err}");
    }

    #[test]
    fn a_member_cannot_take_a_task_another_member_works_on() {
        let dir = tempfile::tempdir().unwrap();
        let store = TaskStore::new(dir.path());
        store.create(new("a"), None).unwrap();
        let first = store
            .update("1", status(TaskStatus::InProgress), Some("ana"))
            .unwrap();
        assert_eq!(first.task.owner.as_deref(), Some("ana"));
        let err = store
            .update("1", status(TaskStatus::InProgress), Some("ben"))
            .unwrap_err();
        assert!(err.to_string().contains("being worked on by ana"), "{err}");
        let err = store
            .update(
                "1",
                TaskPatch {
                    owner: Some("ben".into()),
                    ..TaskPatch::default()
                },
                Some("ben"),
            )
            .unwrap_err();
        assert!(matches!(err, TasksError::Conflict(_)));
    }

    #[test]
    fn an_expired_lease_releases_the_task() {
        let dir = tempfile::tempdir().unwrap();
        let store = TaskStore::new(dir.path()).with_lease(Duration::from_millis(1));
        store.create(new("a"), None).unwrap();
        assert_eq!(
            store.claim_next("ana").unwrap().unwrap().owner.as_deref(),
            Some("ana")
        );
        std::thread::sleep(Duration::from_millis(5));
        let task = store.claim_next("ben").unwrap().unwrap();
        assert_eq!(task.owner.as_deref(), Some("ben"));
        let actions: Vec<_> = store
            .history()
            .unwrap()
            .into_iter()
            .map(|e| format!("{} {}", e.action, e.by.unwrap_or_default()))
            .collect();
        assert_eq!(
            actions,
            ["created ", "claimed ana", "released ana", "claimed ben"]
        );
    }

    #[test]
    fn replace_all_starts_over() {
        let dir = tempfile::tempdir().unwrap();
        let store = TaskStore::new(dir.path());
        store.create(new("old"), None).unwrap();
        let tasks = store.replace_all(vec![new("x"), new("y")]).unwrap();
        assert_eq!(
            tasks.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(),
            ["1", "2"]
        );
        assert_eq!(store.list().unwrap().len(), 2);
    }
}
