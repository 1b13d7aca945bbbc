//! One model turn: send the conversation, stream the answer into events, and retry the whole
//! request when it fails in a way that may pass (overload, rate limit, a dropped stream).

use std::time::Duration;

use futures::StreamExt;
use keel_model::{Assembled, MessageAccumulator, ModelError, ModelRequest, StreamEvent};
use keel_protocol::{ContentBlock, Event};
use tokio_util::sync::CancellationToken;

use crate::emit::{Emitter, lock};
use crate::{RunTally, Session, retryable};

/// How one model turn ended.
pub(crate) enum TurnEnd {
    /// The model's message arrived whole.
    Complete(Assembled),
    /// The user interrupted; whatever had arrived.
    Interrupted(Assembled),
    /// The request or the stream failed for good.
    Failed(ModelError, Assembled),
}

/// The first retry waits about this long; each later one twice as long, up to [`MAX_DELAY`].
const BASE_DELAY: Duration = Duration::from_millis(500);
/// The longest wait between two attempts, also the cap on a server's `retry-after`.
const MAX_DELAY: Duration = Duration::from_secs(60);

impl Session {
    /// Sends the conversation and streams the answer, retrying failed attempts as a whole: a
    /// retried attempt's partial output is dropped, so nothing is duplicated in the transcript.
    pub(crate) async fn model_turn(
        &self,
        emitter: &Emitter,
        cancel: &CancellationToken,
    ) -> TurnEnd {
        let mut attempt = 0;
        loop {
            match self.attempt(emitter, cancel).await {
                TurnEnd::Failed(error, partial)
                    if retryable(&error) && attempt < self.config.max_retries =>
                {
                    attempt += 1;
                    let delay = backoff(attempt, &error);
                    emitter.emit(Event::Retrying {
                        attempt,
                        max_retries: self.config.max_retries,
                        delay_ms: crate::millis(delay),
                        error: error.to_string(),
                    });
                    tokio::select! {
                        biased;
                        () = cancel.cancelled() => return TurnEnd::Interrupted(partial),
                        () = tokio::time::sleep(delay) => {}
                    }
                }
                other => return other,
            }
        }
    }

    async fn attempt(&self, emitter: &Emitter, cancel: &CancellationToken) -> TurnEnd {
        let request = ModelRequest {
            model: lock(&self.shared.model).clone(),
            system: self.config.system.clone(),
            messages: self.messages.clone(),
            tools: self.tools.specs(),
            max_tokens: self.config.max_tokens,
        };
        let mut accumulator = MessageAccumulator::new();
        let mut stream = tokio::select! {
            biased;
            () = cancel.cancelled() => return TurnEnd::Interrupted(accumulator.finish()),
            started = self.client.stream(&request) => match started {
                Ok(stream) => stream,
                Err(error) => return TurnEnd::Failed(error, accumulator.finish()),
            },
        };
        loop {
            let item = tokio::select! {
                biased;
                () = cancel.cancelled() => return TurnEnd::Interrupted(accumulator.finish()),
                item = stream.next() => item,
            };
            match item {
                None => break,
                Some(Ok(event)) => {
                    match &event {
                        StreamEvent::TextDelta { text, .. } => {
                            emitter.emit(Event::TextDelta { text: text.clone() });
                        }
                        StreamEvent::ThinkingDelta { thinking, .. } => {
                            emitter.emit(Event::ThinkingDelta {
                                text: thinking.clone(),
                            });
                        }
                        _ => {}
                    }
                    accumulator.push(&event);
                    if matches!(event, StreamEvent::MessageStop) {
                        break;
                    }
                }
                Some(Err(error)) => return TurnEnd::Failed(error, accumulator.finish()),
            }
        }
        if accumulator.is_complete() {
            TurnEnd::Complete(accumulator.finish())
        } else {
            TurnEnd::Failed(ModelError::StreamEnded, accumulator.finish())
        }
    }

    /// Keeps the text of a message cut short (interrupt or error) so nothing the user saw is lost.
    /// Tool calls in it are dropped: they were never run, and the API requires a result for each.
    pub(crate) fn keep_partial(
        &mut self,
        partial: Assembled,
        emitter: &Emitter,
        tally: &mut RunTally,
    ) {
        let mut message = partial.message;
        message
            .content
            .retain(|block| matches!(block, ContentBlock::Text { text } if !text.is_empty()));
        self.account(&message, tally);
        if message.content.is_empty() {
            return;
        }
        tally.last_text = message.text();
        emitter.emit(Event::AssistantMessage {
            message: message.clone(),
        });
        self.messages.push(message.to_message());
    }
}

/// The wait before retry number `attempt` (1-based): the server's `retry-after` when it gave
/// one, else exponential backoff with full jitter, both capped at [`MAX_DELAY`].
fn backoff(attempt: u32, error: &ModelError) -> Duration {
    if let Some(wait) = error.retry_after() {
        return wait.min(MAX_DELAY);
    }
    let ceiling = BASE_DELAY
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
        .min(MAX_DELAY);
    // Full jitter spreads retries of many clients; the low bits of a random UUID are
    // plenty random for that.
    let random = uuid::Uuid::new_v4().as_u128() as u64;
    let fraction = (random % 1_000) as f64 / 1_000.0;
    ceiling.mul_f64(0.5 + fraction / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn overloaded(retry_after: Option<Duration>) -> ModelError {
        ModelError::Api {
            status: 529,
            error_type: "overloaded_error".into(),
            message: "Overloaded".into(),
            help: None,
            retry_after,
        }
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        for attempt in 1..=12 {
            let ceiling = BASE_DELAY
                .saturating_mul(1u32 << (attempt - 1).min(16))
                .min(MAX_DELAY);
            let delay = backoff(attempt, &overloaded(None));
            assert!(
                delay <= ceiling && delay >= ceiling / 2,
                "{attempt}: {delay:?}"
            );
        }
    }

    #[test]
    fn retry_after_wins_but_is_capped() {
        assert_eq!(
            backoff(1, &overloaded(Some(Duration::from_millis(1200)))),
            Duration::from_millis(1200)
        );
        assert_eq!(
            backoff(1, &overloaded(Some(Duration::from_secs(3600)))),
            MAX_DELAY
        );
    }
}
