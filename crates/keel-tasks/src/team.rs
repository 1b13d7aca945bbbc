//! Teams: a lead and named members, each member a keel process of its own, working one shared
//! board (`.keel/tasks/<team>/`) and talking through mailboxes. Everything lives under
//! `.keel/teams/<team>/`: `config.json` (who is in the team and its timings), `members/` (each
//! member's state: working, idle, stopped), `inboxes/` and `logs/` (each member's stderr).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::TasksError;
use crate::background::process_alive;
use crate::fsutil::{self, FileLock};
use crate::mailbox::Mailbox;
use crate::store::TaskStore;

/// The lead's name in every team, as Claude Code names it.
pub const LEAD: &str = "team-lead";

/// The hidden subcommand a member process runs (`keel __teammate --team T --name M`).
pub const TEAMMATE_SUBCOMMAND: &str = "__teammate";

/// How a team paces itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Timing {
    /// How long a claim holds without being renewed (members renew while they work).
    pub lease_ms: u64,
    /// How long a member waits without work before it stops.
    pub idle_timeout_ms: u64,
    /// How often an idle member looks at the board and its inbox.
    pub poll_ms: u64,
    /// How long a request (shutdown, plan approval) waits for its answer.
    pub protocol_timeout_ms: u64,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            lease_ms: 60_000,
            idle_timeout_ms: 300_000,
            poll_ms: 500,
            protocol_timeout_ms: 120_000,
        }
    }
}

impl Timing {
    /// The lease as a duration.
    pub fn lease(&self) -> Duration {
        Duration::from_millis(self.lease_ms.max(1))
    }

    /// The idle period as a duration.
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_millis(self.idle_timeout_ms)
    }

    /// The poll interval as a duration.
    pub fn poll(&self) -> Duration {
        Duration::from_millis(self.poll_ms.max(10))
    }

    /// The protocol timeout as a duration.
    pub fn protocol_timeout(&self) -> Duration {
        Duration::from_millis(self.protocol_timeout_ms)
    }
}

/// A member as the lead configured it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberConfig {
    /// Its name (how SendMessage addresses it).
    pub name: String,
    /// Its standing instructions.
    #[serde(default)]
    pub prompt: String,
    /// Whether it must have its plan approved by the lead before it changes anything.
    #[serde(default)]
    pub plan_mode_required: bool,
    /// When it was started (RFC 3339).
    pub spawned_at: String,
}

/// `config.json` of a team.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TeamConfig {
    /// The team's name.
    pub name: String,
    /// What it is for.
    #[serde(default)]
    pub description: String,
    /// The lead's name.
    pub lead: String,
    /// When it was made (RFC 3339).
    pub created_at: String,
    /// How it paces itself.
    pub timing: Timing,
    /// Its members, in the order they joined.
    #[serde(default)]
    pub members: Vec<MemberConfig>,
}

/// What a member is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemberStatus {
    /// Working on a task (or a message).
    Working,
    /// Waiting for work.
    Idle,
    /// Gone: it stopped, or its process ended.
    Stopped,
}

impl MemberStatus {
    /// The status as shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Working => "working",
            Self::Idle => "idle",
            Self::Stopped => "stopped",
        }
    }
}

/// `members/<name>.json`: a member's current state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberState {
    /// The member.
    pub name: String,
    /// What it is doing.
    pub status: MemberStatus,
    /// Its process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// The task it works on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    /// Why it stopped, or what it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// When this was written (RFC 3339).
    pub updated_at: String,
}

/// How the lead starts member processes: the keel executable and the flags every member gets
/// (model, permission mode, provider...), before the teammate subcommand.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpawnConfig {
    /// The keel executable.
    pub program: PathBuf,
    /// Flags placed before the subcommand.
    pub args: Vec<String>,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
}

/// A team on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Team {
    name: String,
    project_root: PathBuf,
    dir: PathBuf,
}

/// Checks a team or member name: letters, digits, `-` and `_`.
pub fn validate_name(what: &str, name: &str) -> Result<(), TasksError> {
    let ok = !name.is_empty()
        && name.len() <= 40
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'));
    if ok {
        Ok(())
    } else {
        Err(TasksError::Invalid(format!(
            "{name:?} cannot name a {what}; use up to 40 letters, digits, '-' and '_'"
        )))
    }
}

impl Team {
    fn at(project_root: &Path, name: &str) -> Self {
        Self {
            name: name.to_string(),
            project_root: project_root.to_path_buf(),
            dir: project_root.join(".keel").join("teams").join(name),
        }
    }

    /// Creates team `name` in the project, with the lead as its only member so far.
    pub fn create(
        project_root: &Path,
        name: &str,
        description: &str,
        timing: Timing,
    ) -> Result<Self, TasksError> {
        validate_name("team", name)?;
        let team = Self::at(project_root, name);
        let _lock = team.lock()?;
        if let Some(existing) = fsutil::read_json::<TeamConfig>(&team.config_path())? {
            let live = team.running_members()?;
            if !live.is_empty() {
                return Err(TasksError::Conflict(format!(
                    "team {name} already exists and {} still running; pick another name, or stop \
                     them first",
                    live.join(", ") + if live.len() == 1 { " is" } else { " are" }
                )));
            }
            tracing::debug!(team = %existing.name, "re-creating a team whose members all stopped");
        }
        fsutil::ensure_ignored(&project_root.join(".keel").join("teams"))?;
        let config = TeamConfig {
            name: name.to_string(),
            description: description.to_string(),
            lead: LEAD.to_string(),
            created_at: fsutil::now_rfc3339(),
            timing,
            members: Vec::new(),
        };
        fsutil::write_json(&team.config_path(), &config)?;
        Ok(team)
    }

    /// Opens an existing team.
    pub fn open(project_root: &Path, name: &str) -> Result<Self, TasksError> {
        validate_name("team", name)?;
        let team = Self::at(project_root, name);
        if !team.config_path().is_file() {
            return Err(TasksError::NotFound(format!(
                "no team {name} in {} (teams live in .keel/teams/; the lead creates one with TeamCreate)",
                project_root.display()
            )));
        }
        Ok(team)
    }

    /// The team's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The project the team works in.
    pub fn project_root(&self) -> &Path {
        &self.project_root
    }

    /// The team's folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn config_path(&self) -> PathBuf {
        self.dir.join("config.json")
    }

    fn lock(&self) -> Result<FileLock, TasksError> {
        FileLock::acquire(&self.dir.join(".lock"))
    }

    /// The team's configuration.
    pub fn config(&self) -> Result<TeamConfig, TasksError> {
        fsutil::read_json(&self.config_path())?.ok_or_else(|| {
            TasksError::NotFound(format!(
                "team {} has no config.json any more (was it deleted?)",
                self.name
            ))
        })
    }

    /// The shared board, with the team's lease on claims.
    pub fn board(&self) -> Result<TaskStore, TasksError> {
        let timing = self.config()?.timing;
        Ok(board_for(&self.project_root, &self.name).with_lease(timing.lease()))
    }

    /// The team's inboxes.
    pub fn mailbox(&self) -> Mailbox {
        Mailbox::new(self.dir.join("inboxes"))
    }

    /// Adds a member to the configuration (its name must be new).
    pub fn add_member(&self, member: MemberConfig) -> Result<(), TasksError> {
        validate_name("team member", &member.name)?;
        if member.name == LEAD || member.name == "*" {
            return Err(TasksError::Invalid(format!(
                "{} is reserved; give the member another name",
                member.name
            )));
        }
        let _lock = self.lock()?;
        let mut config = self.config()?;
        if config.members.iter().any(|m| m.name == member.name) {
            let state = self.state(&member.name)?;
            if state.is_some_and(|s| s.status != MemberStatus::Stopped) {
                return Err(TasksError::Conflict(format!(
                    "team {} already has a member named {} and it is still running; pick another name",
                    self.name, member.name
                )));
            }
            config.members.retain(|m| m.name != member.name);
        }
        config.members.push(member);
        fsutil::write_json(&self.config_path(), &config)
    }

    /// Names everyone in the team can be addressed by: the lead and the members.
    pub fn names(&self) -> Result<Vec<String>, TasksError> {
        let config = self.config()?;
        let mut names = vec![config.lead];
        names.extend(config.members.into_iter().map(|m| m.name));
        Ok(names)
    }

    fn state_path(&self, member: &str) -> PathBuf {
        self.dir.join("members").join(format!("{member}.json"))
    }

    /// Records a member's state.
    pub fn set_state(
        &self,
        member: &str,
        status: MemberStatus,
        task: Option<&str>,
        detail: Option<&str>,
    ) -> Result<(), TasksError> {
        let state = MemberState {
            name: member.to_string(),
            status,
            pid: Some(std::process::id()),
            task: task.map(str::to_string),
            detail: detail.map(str::to_string),
            updated_at: fsutil::now_rfc3339(),
        };
        fsutil::write_json(&self.state_path(member), &state)
    }

    /// A member's last recorded state; a member whose process is gone reads as stopped.
    pub fn state(&self, member: &str) -> Result<Option<MemberState>, TasksError> {
        let Some(mut state) = fsutil::read_json::<MemberState>(&self.state_path(member))? else {
            return Ok(None);
        };
        if state.status != MemberStatus::Stopped && !state.pid.is_some_and(process_alive) {
            state.status = MemberStatus::Stopped;
            state.detail = Some("its process ended".into());
        }
        Ok(Some(state))
    }

    /// Every member's state, in the order they joined (members that never started read as
    /// stopped).
    pub fn states(&self) -> Result<Vec<MemberState>, TasksError> {
        let config = self.config()?;
        let mut states = Vec::new();
        for member in config.members {
            states.push(self.state(&member.name)?.unwrap_or(MemberState {
                name: member.name.clone(),
                status: MemberStatus::Stopped,
                pid: None,
                task: None,
                detail: Some("it never started".into()),
                updated_at: member.spawned_at.clone(),
            }));
        }
        Ok(states)
    }

    /// The names of the members that have not stopped (a team with any is not replaced or
    /// deleted).
    fn running_members(&self) -> Result<Vec<String>, TasksError> {
        Ok(self
            .states()?
            .into_iter()
            .filter(|s| s.status != MemberStatus::Stopped)
            .map(|s| s.name)
            .collect())
    }

    /// One line per member: what each is doing, for the lead.
    pub fn status_line(&self) -> Result<String, TasksError> {
        let parts: Vec<String> = self
            .states()?
            .into_iter()
            .map(|s| match (&s.status, &s.task) {
                (MemberStatus::Working, Some(task)) => format!("{} working on #{task}", s.name),
                (status, _) => format!("{} {}", s.name, status.as_str()),
            })
            .collect();
        Ok(if parts.is_empty() {
            format!("Team {} has no members yet.", self.name)
        } else {
            format!("Team {}: {}.", self.name, parts.join(", "))
        })
    }

    /// Starts member `name` as a child process: `keel <flags> __teammate --team T --name M`
    /// in the project root, its stderr and stdout in `logs/<name>.log`.
    pub fn spawn(
        &self,
        name: &str,
        launcher: &SpawnConfig,
    ) -> Result<tokio::process::Child, TasksError> {
        let logs = self.dir.join("logs");
        fsutil::create_dir(&logs)?;
        let log_path = logs.join(format!("{name}.log"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|source| TasksError::io(&log_path, source))?;
        let log_err = log
            .try_clone()
            .map_err(|source| TasksError::io(&log_path, source))?;
        let mut cmd = tokio::process::Command::new(&launcher.program);
        cmd.args(&launcher.args)
            .args([TEAMMATE_SUBCOMMAND, "--team", &self.name, "--name", name])
            .envs(launcher.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .current_dir(&self.project_root)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .kill_on_drop(false);
        let child = cmd.spawn().map_err(|source| TasksError::Spawn {
            what: format!("team member {name} ({})", launcher.program.display()),
            source,
        })?;
        // Recorded at once so the lead sees the member as live before it reports in.
        let state = MemberState {
            name: name.to_string(),
            status: MemberStatus::Idle,
            pid: child.id(),
            task: None,
            detail: Some("starting".into()),
            updated_at: fsutil::now_rfc3339(),
        };
        fsutil::write_json(&self.state_path(name), &state)?;
        Ok(child)
    }

    /// Removes the team's folder and its board. Refused while members run.
    pub fn delete(&self) -> Result<(), TasksError> {
        let live = self.running_members()?;
        if !live.is_empty() {
            return Err(TasksError::Conflict(format!(
                "{} of team {} still running; ask them to stop first (SendMessage with a \
                 shutdown_request), then delete the team",
                live.join(", ") + if live.len() == 1 { " is" } else { " are" },
                self.name
            )));
        }
        let board = board_for(&self.project_root, &self.name);
        for dir in [board.dir(), self.dir.as_path()] {
            match std::fs::remove_dir_all(dir) {
                Ok(()) => {}
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => return Err(TasksError::io(dir, source)),
            }
        }
        Ok(())
    }
}

/// The shared board named `list` in the project: `.keel/tasks/<list>/`.
pub fn board_for(project_root: &Path, list: &str) -> TaskStore {
    let tasks = project_root.join(".keel").join("tasks");
    // Boards are working state, not source; keep them out of `git status`.
    let _ = fsutil::ensure_ignored(&tasks);
    TaskStore::new(tasks.join(list))
}
