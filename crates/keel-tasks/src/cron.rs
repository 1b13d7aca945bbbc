//! Prompts on a schedule. A schedule is a standard 5-field cron expression (minute, hour, day
//! of month, month, day of week) read in the user's time zone, a prompt, and whether it repeats.
//! Durable schedules live in `.keel/scheduled_tasks.json` and survive restarts; session
//! schedules live as long as their session. Whoever runs schedules (`keel daemon`, or a
//! running session) claims each due run under the file's lock, so a run starts once even with
//! several schedulers. Runs missed while nothing was running are reported once and skipped,
//! never replayed in a burst.

use std::path::{Path, PathBuf};
use std::str::FromStr as _;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, FixedOffset, Local, Utc};
use croner::Cron;
use serde::{Deserialize, Serialize};

use crate::TasksError;
use crate::fsutil::{self, FileLock};

/// How late a run may start and still count as on time; later, it is reported as missed.
pub const ON_TIME_GRACE: Duration = Duration::from_secs(120);

/// Where the time comes from: the system clock, or one a test moves by hand.
pub trait Clock: Send + Sync {
    /// The current instant.
    fn now(&self) -> DateTime<Utc>;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that stays where it is set (tests, `keel daemon --now`).
#[derive(Debug)]
pub struct ManualClock(Mutex<DateTime<Utc>>);

impl ManualClock {
    /// A clock showing `now`.
    pub fn new(now: DateTime<Utc>) -> Self {
        Self(Mutex::new(now))
    }

    /// Moves the clock to `now`.
    pub fn set(&self, now: DateTime<Utc>) {
        *crate::runtime::lock(&self.0) = now;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *crate::runtime::lock(&self.0)
    }
}

/// The time zone cron expressions are read in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Zone {
    /// The user's zone (`TZ`, else the system's).
    #[default]
    Local,
    /// A fixed offset from UTC.
    Fixed(FixedOffset),
}

/// One schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Schedule {
    /// A short random id.
    pub id: String,
    /// The 5-field cron expression.
    pub cron: String,
    /// What to ask when it fires.
    pub prompt: String,
    /// Whether it fires again after the first time.
    pub recurring: bool,
    /// Whether it is kept on disk (and survives restarts).
    #[serde(default)]
    pub durable: bool,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// The last occurrence that fired or was reported missed; runs are counted from here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_fired_at: Option<DateTime<Utc>>,
    /// The directory the prompt runs in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<PathBuf>,
}

impl Schedule {
    /// A new schedule; the expression is checked.
    pub fn new(
        cron: &str,
        prompt: &str,
        recurring: bool,
        durable: bool,
        now: DateTime<Utc>,
    ) -> Result<Self, TasksError> {
        parse(cron)?;
        if prompt.trim().is_empty() {
            return Err(TasksError::Invalid(
                "a schedule needs a prompt to run".into(),
            ));
        }
        Ok(Self {
            id: short_id(),
            cron: cron.trim().to_string(),
            prompt: prompt.to_string(),
            recurring,
            durable,
            created_at: now,
            last_fired_at: None,
            cwd: None,
        })
    }

    /// The next time it fires after `now`, if ever.
    pub fn next_run(&self, now: DateTime<Utc>, zone: Zone) -> Option<DateTime<Utc>> {
        let cron = parse(&self.cron).ok()?;
        let base = self.last_fired_at.unwrap_or(self.created_at).max(now);
        next_after(&cron, base, zone)
    }
}

/// What a scheduler must do about a schedule now.
#[derive(Debug, Clone, PartialEq)]
pub enum Due {
    /// Run the prompt: this occurrence is due.
    Fire {
        /// The schedule.
        schedule: Schedule,
        /// The occurrence being run.
        scheduled_for: DateTime<Utc>,
    },
    /// Runs were missed (nothing was running, or too late to count); report them once.
    Missed {
        /// The schedule.
        schedule: Schedule,
        /// How many runs were missed.
        count: u32,
        /// The first missed occurrence.
        first: DateTime<Utc>,
        /// The last missed occurrence.
        last: DateTime<Utc>,
    },
}

impl Due {
    /// The schedule concerned.
    pub fn schedule(&self) -> &Schedule {
        match self {
            Self::Fire { schedule, .. } | Self::Missed { schedule, .. } => schedule,
        }
    }

    /// One line for the user about missed runs (None for a run to start).
    pub fn missed_report(&self, zone: Zone) -> Option<String> {
        let Self::Missed {
            schedule,
            count,
            first,
            last,
        } = self
        else {
            return None;
        };
        let runs = if *count == 1 { "run" } else { "runs" };
        let when = if count == &1 {
            format!("at {}", show(*first, zone))
        } else {
            format!("from {} to {}", show(*first, zone), show(*last, zone))
        };
        Some(format!(
            "schedule {} ({}) missed {count} {runs} {when} while no scheduler was running; \
             they were skipped, not replayed. Prompt: {}",
            schedule.id,
            schedule.cron,
            shorten(&schedule.prompt, 80)
        ))
    }
}

/// Parses a 5-field cron expression; the error says what a valid one looks like.
pub fn parse(expression: &str) -> Result<Cron, TasksError> {
    let fields = expression.split_whitespace().count();
    if fields != 5 {
        return Err(TasksError::Invalid(format!(
            "cron expression {expression:?} has {fields} fields; use the standard 5: minute hour \
             day-of-month month day-of-week, e.g. \"*/15 * * * *\" (every 15 minutes) or \
             \"0 9 * * 1-5\" (09:00 on weekdays)"
        )));
    }
    Cron::from_str(expression.trim()).map_err(|error| {
        TasksError::Invalid(format!(
            "cron expression {expression:?} is not valid ({error}); fields are minute (0-59), \
             hour (0-23), day of month (1-31), month (1-12), day of week (0-6, Sunday = 0)"
        ))
    })
}

/// The first occurrence strictly after `after`, read in `zone`.
pub fn next_after(cron: &Cron, after: DateTime<Utc>, zone: Zone) -> Option<DateTime<Utc>> {
    match zone {
        Zone::Local => cron
            .find_next_occurrence(&after.with_timezone(&Local), false)
            .ok()
            .map(|t| t.with_timezone(&Utc)),
        Zone::Fixed(offset) => cron
            .find_next_occurrence(&after.with_timezone(&offset), false)
            .ok()
            .map(|t| t.with_timezone(&Utc)),
    }
}

/// A description of the expression for people.
pub fn human_schedule(expression: &str) -> String {
    match parse(expression) {
        Ok(cron) => cron.describe(),
        Err(_) => expression.to_string(),
    }
}

/// A time as the user reads it: in `zone`, to the minute.
pub fn show(time: DateTime<Utc>, zone: Zone) -> String {
    match zone {
        Zone::Local => time
            .with_timezone(&Local)
            .format("%Y-%m-%d %H:%M %:z")
            .to_string(),
        Zone::Fixed(offset) => time
            .with_timezone(&offset)
            .format("%Y-%m-%d %H:%M %:z")
            .to_string(),
    }
}

/// Decides what is due for one schedule at `now`, and how the schedule changes: `None` when
/// nothing is due; otherwise the decision and the schedule to keep (`None` = remove it, a
/// one-shot that is done).
pub fn check(
    schedule: &Schedule,
    now: DateTime<Utc>,
    zone: Zone,
) -> Option<(Due, Option<Schedule>)> {
    let cron = parse(&schedule.cron).ok()?;
    let base = schedule.last_fired_at.unwrap_or(schedule.created_at);
    let first = next_after(&cron, base, zone)?;
    if first > now {
        return None;
    }
    // Count the occurrences between the last run and now (bounded: a schedule untouched for
    // years must not make this loop forever).
    let mut count = 1u32;
    let mut last = first;
    while count < 100_000 {
        match next_after(&cron, last, zone) {
            Some(next) if next <= now => {
                last = next;
                count += 1;
            }
            _ => break,
        }
    }
    let on_time = count == 1
        && (now - first)
            .to_std()
            .is_ok_and(|late| late <= ON_TIME_GRACE);
    let mut updated = schedule.clone();
    updated.last_fired_at = Some(last);
    let keep = schedule.recurring.then_some(updated.clone());
    let due = if on_time {
        Due::Fire {
            schedule: updated,
            scheduled_for: first,
        }
    } else {
        Due::Missed {
            schedule: updated,
            count,
            first,
            last,
        }
    };
    Some((due, keep))
}

/// The durable schedules of a project: `.keel/scheduled_tasks.json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronStore {
    path: PathBuf,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct CronFile {
    #[serde(default)]
    tasks: Vec<Schedule>,
}

impl CronStore {
    /// The store of the project rooted at `project_root`.
    pub fn for_project(project_root: &Path) -> Self {
        Self {
            path: project_root.join(".keel").join("scheduled_tasks.json"),
        }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> Result<FileLock, TasksError> {
        let mut lock = self.path.clone().into_os_string();
        lock.push(".lock");
        FileLock::acquire(Path::new(&lock))
    }

    fn read(&self) -> Result<CronFile, TasksError> {
        Ok(fsutil::read_json(&self.path)?.unwrap_or_default())
    }

    /// Every durable schedule.
    pub fn list(&self) -> Result<Vec<Schedule>, TasksError> {
        Ok(self.read()?.tasks)
    }

    /// Adds a schedule (made durable).
    pub fn add(&self, mut schedule: Schedule) -> Result<Schedule, TasksError> {
        schedule.durable = true;
        let _lock = self.lock()?;
        let mut file = self.read()?;
        file.tasks.push(schedule.clone());
        fsutil::write_json(&self.path, &file)?;
        Ok(schedule)
    }

    /// Removes a schedule; false when there is none with that id.
    pub fn remove(&self, id: &str) -> Result<bool, TasksError> {
        let _lock = self.lock()?;
        let mut file = self.read()?;
        let before = file.tasks.len();
        file.tasks.retain(|s| s.id != id);
        if file.tasks.len() == before {
            return Ok(false);
        }
        fsutil::write_json(&self.path, &file)?;
        Ok(true)
    }

    /// Claims everything due at `now`: the file is updated (last run recorded, finished
    /// one-shots removed) before this returns, so no other scheduler gets the same run.
    pub fn claim_due(&self, now: DateTime<Utc>, zone: Zone) -> Result<Vec<Due>, TasksError> {
        let _lock = self.lock()?;
        let mut file = self.read()?;
        let mut due = Vec::new();
        let mut kept = Vec::with_capacity(file.tasks.len());
        let mut changed = false;
        for schedule in file.tasks {
            match check(&schedule, now, zone) {
                Some((decision, keep)) => {
                    changed = true;
                    due.push(decision);
                    kept.extend(keep);
                }
                None => kept.push(schedule),
            }
        }
        if changed {
            file.tasks = kept;
            fsutil::write_json(&self.path, &file)?;
        }
        Ok(due)
    }
}

/// Schedules that live only as long as their session.
#[derive(Debug, Default)]
pub struct SessionSchedules {
    schedules: Mutex<Vec<Schedule>>,
}

impl SessionSchedules {
    fn guard(&self) -> std::sync::MutexGuard<'_, Vec<Schedule>> {
        crate::runtime::lock(&self.schedules)
    }

    /// Adds one.
    pub fn add(&self, schedule: Schedule) {
        self.guard().push(schedule);
    }

    /// All of them.
    pub fn list(&self) -> Vec<Schedule> {
        self.guard().clone()
    }

    /// Removes one; false when there is none with that id.
    pub fn remove(&self, id: &str) -> bool {
        let mut guard = self.guard();
        let before = guard.len();
        guard.retain(|s| s.id != id);
        guard.len() != before
    }

    /// Everything due at `now`, recorded as done.
    pub fn claim_due(&self, now: DateTime<Utc>, zone: Zone) -> Vec<Due> {
        let mut guard = self.guard();
        let mut due = Vec::new();
        let mut kept = Vec::with_capacity(guard.len());
        for schedule in guard.drain(..) {
            match check(&schedule, now, zone) {
                Some((decision, keep)) => {
                    due.push(decision);
                    kept.extend(keep);
                }
                None => kept.push(schedule),
            }
        }
        *guard = kept;
        due
    }
}

fn short_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..8].to_string()
}

fn shorten(text: &str, max: usize) -> String {
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match line.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn expressions_need_five_fields_and_say_how_to_fix_them() {
        assert!(parse("*/5 * * * *").is_ok());
        let err = parse("* * * *").unwrap_err().to_string();
        assert!(
            err.contains("4 fields") && err.contains("*/15 * * * *"),
            "{err}"
        );
        let err = parse("0 0 * * * *").unwrap_err().to_string();
        assert!(err.contains("6 fields"), "{err}");
        let err = parse("61 * * * *").unwrap_err().to_string();
        assert!(err.contains("not valid"), "{err}");
    }

    #[test]
    fn times_are_read_in_the_users_zone() {
        let cron = parse("0 9 * * *").unwrap();
        let plus_two = Zone::Fixed(FixedOffset::east_opt(2 * 3600).unwrap());
        let next = next_after(&cron, at("2026-03-02T00:00:00Z"), plus_two).unwrap();
        assert_eq!(next, at("2026-03-02T07:00:00Z"));
    }

    #[test]
    fn a_late_start_counts_as_missed_and_moves_on() {
        let now = at("2026-03-02T10:00:00Z");
        let s = Schedule::new("*/10 * * * *", "hi", true, true, now).unwrap();
        let utc = Zone::Fixed(FixedOffset::east_opt(0).unwrap());
        assert!(check(&s, at("2026-03-02T10:09:59Z"), utc).is_none());
        let (due, keep) = check(&s, at("2026-03-02T10:10:30Z"), utc).unwrap();
        assert!(
            matches!(due, Due::Fire { scheduled_for, .. } if scheduled_for == at("2026-03-02T10:10:00Z"))
        );
        let s = keep.unwrap();
        let (due, keep) = check(&s, at("2026-03-02T11:05:00Z"), utc).unwrap();
        let Due::Missed {
            count, first, last, ..
        } = due
        else {
            panic!("{due:?}")
        };
        assert_eq!(
            (count, first, last),
            (5, at("2026-03-02T10:20:00Z"), at("2026-03-02T11:00:00Z"))
        );
        assert!(check(&keep.unwrap(), at("2026-03-02T11:09:00Z"), utc).is_none());
    }

    #[test]
    fn a_one_shot_is_removed_after_it_fires() {
        let now = at("2026-03-02T10:00:00Z");
        let s = Schedule::new("30 10 * * *", "once", false, false, now).unwrap();
        let utc = Zone::Fixed(FixedOffset::east_opt(0).unwrap());
        let (due, keep) = check(&s, at("2026-03-02T10:30:05Z"), utc).unwrap();
        assert!(matches!(due, Due::Fire { .. }));
        assert!(keep.is_none());
    }
}
