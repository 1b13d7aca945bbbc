//! Waiting for a condition with a deadline, the house rule's replacement for sleeps in tests.

use std::time::{Duration, Instant};

/// How often a condition is polled: quick enough not to slow tests, slow enough not to spin.
const POLL_EVERY: Duration = Duration::from_millis(10);

/// Polls `condition` until it holds.
///
/// # Panics
/// When it still does not hold after `limit`, naming `what` (this is a test helper: the panic
/// is the test failure).
pub async fn wait_for(what: &str, limit: Duration, mut condition: impl FnMut() -> bool) {
    let start = Instant::now();
    while !condition() {
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(POLL_EVERY).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn returns_once_the_condition_holds() {
        let mut calls = 0;
        wait_for("three polls", Duration::from_secs(5), || {
            calls += 1;
            calls == 3
        })
        .await;
        assert_eq!(calls, 3);
    }

    #[tokio::test]
    #[should_panic(expected = "timed out after 50ms waiting for never")]
    async fn fails_with_the_name_of_what_never_happened() {
        wait_for("never", Duration::from_millis(50), || false).await;
    }
}
