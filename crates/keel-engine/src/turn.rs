//! One model turn: send the conversation, stream the answer into events, and retry the whole
//! request when it fails in a way that may pass (overload, rate limit, a dropped stream).

use futures::StreamExt;
use keel_model::{Assembled, MessageAccumulator, ModelError, ModelRequest, StreamEvent};
use keel_protocol::{ContentBlock, Event};
use tokio_util::sync::CancellationToken;

use crate::emit::{Emitter, lock};
use crate::{RunTally, Session};

/// How one model turn ended.
pub(crate) enum TurnEnd {
    /// The model's message arrived whole.
    Complete(Assembled),
    /// The user interrupted; whatever had arrived.
    Interrupted(Assembled),
    /// The request or the stream failed for good.
    Failed(ModelError, Assembled),
}

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
                TurnEnd::Failed(error, partial) => {
                    let Some(retry) = self.config.retry.decide(attempt + 1, &error) else {
                        return TurnEnd::Failed(error, partial);
                    };
                    attempt += 1;
                    emitter.emit(Event::Retrying {
                        attempt: retry.attempt,
                        max_retries: retry.max_retries,
                        delay_ms: crate::millis(retry.delay),
                        error: retry.message,
                    });
                    tokio::select! {
                        biased;
                        () = cancel.cancelled() => return TurnEnd::Interrupted(partial),
                        () = tokio::time::sleep(retry.delay) => {}
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
            thinking: self.config.thinking,
            cache: self.config.cache,
            server_tools: Vec::new(),
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
                    if self.config.stream_events
                        && let Some(wire) = crate::partial::wire_event(&event)
                    {
                        emitter.emit(Event::StreamEvent { event: wire });
                    }
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
