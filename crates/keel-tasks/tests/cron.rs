//! Schedules with an injected clock: runs fire at the right minutes in the user's zone,
//! survive a restart of the scheduler, and missed runs are reported once.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::{DateTime, FixedOffset, Utc};
use keel_tasks::cron::{Clock, CronStore, Due, ManualClock, Schedule, Zone};

/// A time in the user's zone (+02:00).
fn local(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(&format!("{text}+02:00"))
        .unwrap()
        .with_timezone(&Utc)
}

fn zone() -> Zone {
    Zone::Fixed(FixedOffset::east_opt(2 * 3600).unwrap())
}

/// What a scheduler started at `now` does: (fired occurrences, missed reports).
fn tick(store: &CronStore, clock: &ManualClock) -> (Vec<DateTime<Utc>>, Vec<(u32, String)>) {
    let mut fired = Vec::new();
    let mut missed = Vec::new();
    for due in store.claim_due(clock.now(), zone()).unwrap() {
        match &due {
            Due::Fire { scheduled_for, .. } => fired.push(*scheduled_for),
            Due::Missed { count, .. } => missed.push((*count, due.missed_report(zone()).unwrap())),
        }
    }
    (fired, missed)
}

#[test]
fn a_schedule_fires_on_time_survives_a_restart_and_reports_missed_runs_once() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(local("2026-03-02T08:50:00"));
    let store = CronStore::for_project(dir.path());
    // Every 15 minutes from 09:00 to 10:45, local time.
    let schedule = Schedule::new(
        "*/15 9-10 * * *",
        "check the build",
        true,
        true,
        clock.now(),
    )
    .unwrap();
    let id = store.add(schedule).unwrap().id;

    clock.set(local("2026-03-02T08:59:59"));
    assert_eq!(tick(&store, &clock), (vec![], vec![]));
    clock.set(local("2026-03-02T09:00:01"));
    assert_eq!(
        tick(&store, &clock),
        (vec![local("2026-03-02T09:00:00")], vec![])
    );
    // A second tick in the same minute does not fire again.
    clock.set(local("2026-03-02T09:00:30"));
    assert_eq!(tick(&store, &clock), (vec![], vec![]));
    clock.set(local("2026-03-02T09:15:20"));
    assert_eq!(
        tick(&store, &clock),
        (vec![local("2026-03-02T09:15:00")], vec![])
    );

    // The scheduler restarts: a new store over the same file remembers what ran.
    drop(store);
    let store = CronStore::for_project(dir.path());
    assert_eq!(store.list().unwrap()[0].id, id);
    clock.set(local("2026-03-02T09:16:00"));
    assert_eq!(tick(&store, &clock), (vec![], vec![]));
    clock.set(local("2026-03-02T09:30:00"));
    assert_eq!(
        tick(&store, &clock),
        (vec![local("2026-03-02T09:30:00")], vec![])
    );

    // Nothing ran from 09:31 to 10:50: five runs (09:45 to 10:45) are reported once, not run.
    clock.set(local("2026-03-02T10:50:00"));
    let (fired, missed) = tick(&store, &clock);
    assert!(fired.is_empty());
    assert_eq!(missed.len(), 1);
    assert_eq!(missed[0].0, 5);
    assert!(
        missed[0]
            .1
            .contains("missed 5 runs from 2026-03-02 09:45 +02:00 to 2026-03-02 10:45 +02:00"),
        "{}",
        missed[0].1
    );
    clock.set(local("2026-03-02T10:55:00"));
    assert_eq!(tick(&store, &clock), (vec![], vec![]));
    // The next run is the next morning at 09:00, local time.
    clock.set(local("2026-03-03T09:00:05"));
    assert_eq!(
        tick(&store, &clock),
        (vec![local("2026-03-03T09:00:00")], vec![])
    );
}

#[test]
fn a_one_shot_fires_once_and_is_removed() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(local("2026-03-02T08:00:00"));
    let store = CronStore::for_project(dir.path());
    store
        .add(Schedule::new("30 8 * * *", "remind me", false, true, clock.now()).unwrap())
        .unwrap();
    clock.set(local("2026-03-02T08:30:10"));
    assert_eq!(tick(&store, &clock).0, vec![local("2026-03-02T08:30:00")]);
    assert!(store.list().unwrap().is_empty());
}

#[test]
fn two_schedulers_never_start_the_same_run() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(local("2026-03-02T08:00:00"));
    let first = CronStore::for_project(dir.path());
    first
        .add(Schedule::new("* * * * *", "tick", true, true, clock.now()).unwrap())
        .unwrap();
    clock.set(local("2026-03-02T08:01:00"));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let store = CronStore::for_project(dir.path());
            let now = clock.now();
            std::thread::spawn(move || store.claim_due(now, zone()).unwrap().len())
        })
        .collect();
    let total: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(total, 1);
}
