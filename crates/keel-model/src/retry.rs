//! When and how long to wait before resending a failed model request. This is a policy, not a
//! loop: the engine owns the loop, because a retry in the middle of a stream must also discard
//! what the failed attempt already produced.

use std::time::Duration;

use crate::ModelError;

/// Exponential backoff with full jitter, honouring the server's `retry-after`.
///
/// The defaults follow Claude Code's (10 retries, 500 ms doubling to a 32 s cap), so a session
/// rides out an overloaded API for a couple of minutes (about 80 s of waiting on average, at
/// most 160 s) before the error reaches the user, rather than losing the turn to a brief spike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// How many times a request is resent after its first attempt.
    pub max_retries: u32,
    /// The backoff cap of the first retry; it doubles with each retry.
    pub base: Duration,
    /// The largest backoff cap.
    pub max: Duration,
    /// The longest `retry-after` keel honours; a longer request waits this long (the message
    /// says so) rather than leaving the session idle for an hour.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: DEFAULT_MAX_RETRIES,
            base: Duration::from_millis(500),
            max: Duration::from_secs(32),
            max_retry_after: Duration::from_secs(60),
        }
    }
}

/// The default number of retries (Claude Code's `CLAUDE_CODE_MAX_RETRIES` default).
pub const DEFAULT_MAX_RETRIES: u32 = 10;

/// A decision to retry: how long to wait, and what to tell the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retry {
    /// Which retry this is, 1-based.
    pub attempt: u32,
    /// The most retries that will be made.
    pub max_retries: u32,
    /// How long to wait before resending.
    pub delay: Duration,
    /// The error, with a note when the server's `retry-after` was capped; for
    /// `Event::Retrying.error`.
    pub message: String,
}

impl RetryPolicy {
    /// A policy with `max_retries` and the default timings.
    pub fn with_max_retries(max_retries: u32) -> Self {
        Self {
            max_retries,
            ..Self::default()
        }
    }

    /// How long to wait before retry number `attempt` (1-based) after `error`; `None` when the
    /// error is not worth retrying or the retries are used up.
    pub fn delay(&self, attempt: u32, error: &ModelError) -> Option<Duration> {
        self.decide(attempt, error).map(|retry| retry.delay)
    }

    /// Like [`Self::delay`], with the message to show while waiting.
    pub fn decide(&self, attempt: u32, error: &ModelError) -> Option<Retry> {
        self.decide_with_jitter(attempt, error, random_unit())
    }

    /// Like [`Self::decide`] with the jitter given: `unit` in `[0, 1)` picks the wait within
    /// the backoff cap (0 waits nothing, values near 1 wait the whole cap). For tests.
    pub fn decide_with_jitter(&self, attempt: u32, error: &ModelError, unit: f64) -> Option<Retry> {
        if attempt == 0 || attempt > self.max_retries || !error.is_retryable() {
            return None;
        }
        let mut message = error.to_string();
        let delay = match error.retry_after() {
            Some(asked) if asked > self.max_retry_after => {
                message.push_str(&format!(
                    " (the server asked to wait {}s; keel waits at most {}s)",
                    asked.as_secs(),
                    self.max_retry_after.as_secs()
                ));
                self.max_retry_after
            }
            Some(asked) => asked,
            None => self.cap(attempt).mul_f64(unit.clamp(0.0, 1.0)),
        };
        Some(Retry {
            attempt,
            max_retries: self.max_retries,
            delay,
            message,
        })
    }

    /// The backoff cap for retry `attempt`: `base * 2^(attempt-1)`, at most `max`.
    pub fn cap(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(31);
        self.base
            .checked_mul(1u32 << doublings)
            .map_or(self.max, |d| d.min(self.max))
    }
}

/// A random number in `[0, 1)`. Jitter only needs to spread clients apart, not resist
/// prediction, so std's randomly keyed hasher is enough (no extra dependency).
fn random_unit() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    hasher.write_u32(nanos);
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(status: u16, retry_after: Option<Duration>) -> ModelError {
        ModelError::Api {
            status,
            error_type: String::new(),
            message: "x".into(),
            help: None,
            retry_after,
        }
    }

    #[test]
    fn backoff_doubles_to_the_cap_and_jitter_spreads_within_it() {
        let policy = RetryPolicy::default();
        let error = api(529, None);
        let full = |attempt| {
            policy
                .decide_with_jitter(attempt, &error, 1.0)
                .unwrap()
                .delay
        };
        assert_eq!(full(1), Duration::from_millis(500));
        assert_eq!(full(2), Duration::from_secs(1));
        assert_eq!(full(4), Duration::from_secs(4));
        assert_eq!(full(7), Duration::from_secs(32));
        assert_eq!(full(10), Duration::from_secs(32));
        assert_eq!(
            policy.decide_with_jitter(3, &error, 0.5).unwrap().delay,
            Duration::from_secs(1)
        );
        assert_eq!(
            policy.decide_with_jitter(3, &error, 0.0).unwrap().delay,
            Duration::ZERO
        );
        // Real jitter stays within the cap.
        for attempt in 1..=10 {
            let delay = policy.delay(attempt, &error).unwrap();
            assert!(delay <= policy.cap(attempt), "{attempt}: {delay:?}");
        }
    }

    #[test]
    fn retries_stop_when_used_up_or_pointless() {
        let policy = RetryPolicy::with_max_retries(2);
        assert!(policy.delay(2, &api(503, None)).is_some());
        assert_eq!(policy.delay(3, &api(503, None)), None);
        assert_eq!(policy.delay(0, &api(503, None)), None);
        assert_eq!(policy.delay(1, &api(401, None)), None);
        assert_eq!(policy.delay(1, &api(400, None)), None);
        assert!(policy.delay(1, &ModelError::StreamEnded).is_some());
        assert_eq!(
            RetryPolicy::with_max_retries(0).delay(1, &api(529, None)),
            None
        );
    }

    #[test]
    fn retry_after_replaces_the_backoff_and_is_capped_with_a_note() {
        let policy = RetryPolicy::default();
        let retry = policy
            .decide_with_jitter(1, &api(429, Some(Duration::from_secs(7))), 0.1)
            .unwrap();
        assert_eq!(retry.delay, Duration::from_secs(7));
        assert_eq!(retry.message, api(429, None).to_string());
        let retry = policy
            .decide_with_jitter(1, &api(429, Some(Duration::from_secs(3600))), 0.1)
            .unwrap();
        assert_eq!(retry.delay, Duration::from_secs(60));
        assert!(
            retry
                .message
                .ends_with("(the server asked to wait 3600s; keel waits at most 60s)"),
            "{}",
            retry.message
        );
        assert_eq!((retry.attempt, retry.max_retries), (1, 10));
    }
}
