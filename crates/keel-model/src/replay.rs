//! Record and replay model responses, so keel runs with no key and no network, tests and demos
//! are exact, and a bug seen once can be replayed.
//!
//! A replay file is JSONL, one model response per line, in the order the session asked for them:
//!
//! ```json
//! {"keel_replay":1,"request":{"model":"m","messages":1,"last":"fix the test"},"response":{"type":"message","id":"msg_1","role":"assistant","model":"m","content":[{"type":"text","text":"Done."}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":100,"output_tokens":20,"cache_creation_input_tokens":0,"cache_read_input_tokens":0}}}
//! ```
//!
//! `response` is the complete assistant message in the Messages API's shape (what keel's
//! transcripts and stream-json also hold). `request` summarises what was asked (optional; used
//! to warn when a replayed session takes a different path). `raw_inputs` (optional) keeps the
//! exact text of tool inputs that were not valid JSON objects, keyed by tool-use id, so a
//! replay reproduces the model's mistake instead of a cleaned-up input.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use futures::StreamExt;
use keel_protocol::{AssistantMessage, ContentBlock, Role, Usage};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;

use crate::http::{json_pieces, text_pieces};
use crate::{
    BlockStart, EventStream, MessageAccumulator, ModelClient, ModelError, ModelRequest, StreamEvent,
};

/// The format version written in every record.
const FORMAT_VERSION: u32 = 1;

/// One line of a replay file: a complete model response and a summary of its request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplayRecord {
    /// The format version (1).
    #[serde(default = "format_version")]
    pub keel_replay: u32,
    /// What was asked, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<RequestSummary>,
    /// The model's complete answer.
    pub response: AssistantMessage,
    /// Raw tool input text that did not parse as a JSON object, by tool-use id.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub raw_inputs: BTreeMap<String, String>,
}

fn format_version() -> u32 {
    FORMAT_VERSION
}

/// A short description of a request, enough to tell whether a replay follows the recording.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestSummary {
    /// The model asked for.
    pub model: String,
    /// How many messages the conversation had.
    pub messages: usize,
    /// The last message in brief: its text (shortened), or how many tool results it carried.
    pub last: String,
}

impl RequestSummary {
    /// Summarises `request`.
    pub fn of(request: &ModelRequest) -> Self {
        let last = request.messages.last().map_or_else(String::new, |message| {
            let text: String = message
                .content
                .iter()
                .filter_map(|b| match b {
                    ContentBlock::Text { text } => Some(text.as_str()),
                    _ => None,
                })
                .collect::<Vec<_>>()
                .join("\n");
            let results = message
                .content
                .iter()
                .filter(|b| matches!(b, ContentBlock::ToolResult { .. }))
                .count();
            if !text.trim().is_empty() {
                shorten(text.trim(), 200)
            } else if message.role == Role::User && results > 0 {
                format!("{results} tool result(s)")
            } else {
                String::new()
            }
        });
        Self {
            model: request.model.clone(),
            messages: request.messages.len(),
            last,
        }
    }
}

fn shorten(text: &str, chars: usize) -> String {
    let mut out: String = text.chars().take(chars).collect();
    if out.len() < text.len() {
        out.push('…');
    }
    out
}

/// Answers the Nth request of a session with the Nth recorded response, streamed as the model
/// streamed it (text in few-word deltas, tool input in pieces).
#[derive(Debug)]
pub struct ReplayClient {
    source: String,
    records: Vec<ReplayRecord>,
    next: AtomicUsize,
}

impl ReplayClient {
    /// Reads a replay file.
    pub async fn open(path: &Path) -> Result<Self, ModelError> {
        let text = tokio::fs::read_to_string(path).await.map_err(|e| {
            ModelError::Replay(format!(
                "cannot read the replay file {}: {e}; pass a file written with --record \
                 (keel ships one: examples/quickstart.jsonl)",
                path.display()
            ))
        })?;
        let records = parse_records(&text, &path.display().to_string())?;
        Ok(Self::from_records(records, path.display().to_string()))
    }

    /// A client answering from `records`; `source` names them in messages (e.g. the file path).
    pub fn from_records(records: Vec<ReplayRecord>, source: impl Into<String>) -> Self {
        Self {
            source: source.into(),
            records,
            next: AtomicUsize::new(0),
        }
    }

    /// How many responses are recorded.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether no response is recorded.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The model of the first recorded response, to report as the session's model.
    pub fn model(&self) -> Option<&str> {
        self.records
            .iter()
            .map(|r| r.response.model.as_str())
            .find(|m| !m.is_empty())
    }

    /// How many responses have been served.
    pub fn served(&self) -> usize {
        self.next.load(Ordering::Relaxed).min(self.records.len())
    }
}

/// Parses replay JSONL. A torn last line (a recording cut off mid-write) is skipped with a
/// warning; a bad line anywhere else is an error naming it.
pub fn parse_records(text: &str, source: &str) -> Result<Vec<ReplayRecord>, ModelError> {
    let lines: Vec<(usize, &str)> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .collect();
    let mut records = Vec::with_capacity(lines.len());
    for (position, (number, line)) in lines.iter().enumerate() {
        match serde_json::from_str::<ReplayRecord>(line) {
            Ok(record) => records.push(record),
            Err(error) if position + 1 == lines.len() => {
                tracing::warn!(
                    file = source,
                    line = number + 1,
                    %error,
                    "skipping a torn last line of the replay file"
                );
            }
            Err(error) => {
                return Err(ModelError::Replay(format!(
                    "{source}:{}: not a keel replay record ({error}); each line must be \
                     {{\"response\": {{...assistant message...}}}}, as --record writes",
                    number + 1
                )));
            }
        }
    }
    if records.is_empty() {
        return Err(ModelError::Replay(format!(
            "the replay file {source} holds no responses; record one with --record FILE"
        )));
    }
    Ok(records)
}

#[async_trait]
impl ModelClient for ReplayClient {
    async fn stream(&self, request: &ModelRequest) -> Result<EventStream, ModelError> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let Some(record) = self.records.get(n) else {
            return Err(ModelError::Replay(format!(
                "the replay file {} has {} responses; the session asked for more (request {}) — \
                 the session went another way than the recording; record it again with --record",
                self.source,
                self.records.len(),
                n + 1
            )));
        };
        if let Some(recorded) = &record.request
            && recorded.messages != request.messages.len()
        {
            tracing::warn!(
                response = n + 1,
                recorded = recorded.messages,
                now = request.messages.len(),
                "the replayed session differs from the recording (message count); answering anyway"
            );
        }
        let events = replay_events(&record.response, &record.raw_inputs);
        Ok(Box::pin(futures::stream::iter(events.into_iter().map(Ok))))
    }
}

/// The stream events that deliver `message` the way a model would have streamed it.
pub fn replay_events(
    message: &AssistantMessage,
    raw_inputs: &BTreeMap<String, String>,
) -> Vec<StreamEvent> {
    let usage = message.usage;
    let mut events = vec![StreamEvent::MessageStart {
        id: message.id.clone(),
        model: message.model.clone(),
        usage: Usage {
            output_tokens: 0,
            ..usage
        },
    }];
    for (index, block) in message.content.iter().enumerate() {
        match block {
            ContentBlock::Text { text } => {
                events.push(StreamEvent::BlockStart {
                    index,
                    block: BlockStart::Text,
                });
                events.extend(
                    text_pieces(text)
                        .into_iter()
                        .map(|text| StreamEvent::TextDelta { index, text }),
                );
            }
            ContentBlock::ToolUse { id, name, input } => {
                events.push(StreamEvent::BlockStart {
                    index,
                    block: BlockStart::ToolUse {
                        id: id.clone(),
                        name: name.clone(),
                    },
                });
                let json = raw_inputs
                    .get(id)
                    .cloned()
                    .unwrap_or_else(|| input.to_string());
                events.extend(json_pieces(&json).into_iter().map(|partial_json| {
                    StreamEvent::InputJsonDelta {
                        index,
                        partial_json,
                    }
                }));
            }
            ContentBlock::Thinking {
                thinking,
                signature,
            } => {
                events.push(StreamEvent::BlockStart {
                    index,
                    block: BlockStart::Thinking,
                });
                events.extend(
                    text_pieces(thinking)
                        .into_iter()
                        .map(|thinking| StreamEvent::ThinkingDelta { index, thinking }),
                );
                if !signature.is_empty() {
                    events.push(StreamEvent::SignatureDelta {
                        index,
                        signature: signature.clone(),
                    });
                }
            }
            ContentBlock::RedactedThinking { data } => events.push(StreamEvent::BlockStart {
                index,
                block: BlockStart::RedactedThinking { data: data.clone() },
            }),
            ContentBlock::Other(raw) => match (block.text(), raw["citations"].as_array()) {
                (Some(text), Some(citations)) => {
                    events.push(StreamEvent::BlockStart {
                        index,
                        block: BlockStart::Text,
                    });
                    events.extend(
                        text_pieces(text)
                            .into_iter()
                            .map(|text| StreamEvent::TextDelta { index, text }),
                    );
                    events.extend(citations.iter().map(|citation| StreamEvent::CitationDelta {
                        index,
                        citation: citation.clone(),
                    }));
                }
                _ => events.push(StreamEvent::BlockStart {
                    index,
                    block: BlockStart::Raw { block: raw.clone() },
                }),
            },
            // Not something a model sends; kept out of the stream.
            ContentBlock::ToolResult { .. } => continue,
        }
        events.push(StreamEvent::BlockStop { index });
    }
    events.push(StreamEvent::MessageDelta {
        stop_reason: message.stop_reason,
        stop_sequence: message.stop_sequence.clone(),
        usage: Usage {
            output_tokens: usage.output_tokens,
            ..Usage::default()
        },
    });
    events.push(StreamEvent::MessageStop);
    events
}

/// Passes another client's streams through unchanged and appends each completed response to a
/// replay file (one flushed line per response). Failed or cut-off attempts are not recorded,
/// so a recording of a run that needed retries replays cleanly.
pub struct RecordingClient {
    inner: Arc<dyn ModelClient>,
    path: PathBuf,
    file: Arc<tokio::sync::Mutex<tokio::fs::File>>,
}

impl std::fmt::Debug for RecordingClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordingClient")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl RecordingClient {
    /// Records `inner`'s responses into `path`, which is created or emptied.
    pub async fn create(path: &Path, inner: Arc<dyn ModelClient>) -> Result<Self, ModelError> {
        let file = tokio::fs::File::create(path)
            .await
            .map_err(|e| record_error(path, &e))?;
        Ok(Self {
            inner,
            path: path.to_path_buf(),
            file: Arc::new(tokio::sync::Mutex::new(file)),
        })
    }

    /// The file being written.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn record_error(path: &Path, error: &std::io::Error) -> ModelError {
    ModelError::Replay(format!(
        "cannot write the record file {}: {error}; pick a writable path for --record",
        path.display()
    ))
}

#[async_trait]
impl ModelClient for RecordingClient {
    async fn stream(&self, request: &ModelRequest) -> Result<EventStream, ModelError> {
        struct State {
            inner: EventStream,
            accumulator: Option<MessageAccumulator>,
            summary: RequestSummary,
            file: Arc<tokio::sync::Mutex<tokio::fs::File>>,
            path: PathBuf,
        }
        let inner = self.inner.stream(request).await?;
        let state = State {
            inner,
            accumulator: Some(MessageAccumulator::new()),
            summary: RequestSummary::of(request),
            file: self.file.clone(),
            path: self.path.clone(),
        };
        Ok(Box::pin(futures::stream::unfold(
            state,
            |mut state| async move {
                let item = state.inner.next().await?;
                let Ok(event) = &item else {
                    return Some((item, state));
                };
                let Some(accumulator) = state.accumulator.as_mut() else {
                    return Some((item, state));
                };
                accumulator.push(event);
                if !matches!(event, StreamEvent::MessageStop) {
                    return Some((item, state));
                }
                let Some(accumulator) = state.accumulator.take() else {
                    return Some((item, state));
                };
                let assembled = accumulator.finish();
                let record = ReplayRecord {
                    keel_replay: FORMAT_VERSION,
                    request: Some(state.summary.clone()),
                    response: assembled.message,
                    raw_inputs: assembled
                        .invalid_tool_inputs
                        .into_iter()
                        .map(|invalid| (invalid.tool_use_id, invalid.raw))
                        .collect(),
                };
                if let Err(error) = append(&state.file, &record).await {
                    return Some((Err(record_error(&state.path, &error)), state));
                }
                Some((item, state))
            },
        )))
    }
}

async fn append(
    file: &tokio::sync::Mutex<tokio::fs::File>,
    record: &ReplayRecord,
) -> std::io::Result<()> {
    let mut line = serde_json::to_string(record)?;
    line.push('\n');
    let mut file = file.lock().await;
    file.write_all(line.as_bytes()).await?;
    file.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_protocol::StopReason;
    use serde_json::json;

    fn message() -> AssistantMessage {
        AssistantMessage {
            id: "msg_1".into(),
            role: Role::Assistant,
            model: "m".into(),
            content: vec![
                ContentBlock::Thinking {
                    thinking: "let me look at the file first".into(),
                    signature: "sig".into(),
                },
                ContentBlock::Text {
                    text: "I will read the file and then fix it.".into(),
                },
                ContentBlock::ToolUse {
                    id: "toolu_1".into(),
                    name: "Read".into(),
                    input: json!({"file_path": "calc.py", "limit": 20}),
                },
                ContentBlock::RedactedThinking { data: "xyz".into() },
            ],
            stop_reason: Some(StopReason::ToolUse),
            stop_sequence: None,
            usage: Usage {
                input_tokens: 10,
                output_tokens: 5,
                cache_creation_input_tokens: 2,
                cache_read_input_tokens: 3,
            },
        }
    }

    #[test]
    fn replayed_events_assemble_into_the_recorded_message() {
        let events = replay_events(&message(), &BTreeMap::new());
        let deltas = events
            .iter()
            .filter(|e| matches!(e, StreamEvent::TextDelta { .. }))
            .count();
        let pieces = events
            .iter()
            .filter(|e| matches!(e, StreamEvent::InputJsonDelta { .. }))
            .count();
        assert!(deltas >= 2 && pieces >= 2, "{deltas} {pieces}");
        let mut acc = MessageAccumulator::new();
        events.iter().for_each(|e| acc.push(e));
        assert!(acc.is_complete());
        assert_eq!(acc.finish().message, message());
    }

    #[test]
    fn raw_inputs_are_replayed_verbatim() {
        let raw = BTreeMap::from([("toolu_1".to_string(), "{\"file_path\": \"ca".to_string())]);
        let mut acc = MessageAccumulator::new();
        replay_events(&message(), &raw)
            .iter()
            .for_each(|e| acc.push(e));
        let assembled = acc.finish();
        assert_eq!(assembled.invalid_tool_inputs.len(), 1);
        assert_eq!(assembled.invalid_tool_inputs[0].raw, "{\"file_path\": \"ca");
    }

    #[test]
    fn torn_last_lines_are_skipped_and_bad_lines_named() {
        let record = ReplayRecord {
            keel_replay: 1,
            request: None,
            response: message(),
            raw_inputs: BTreeMap::new(),
        };
        let line = serde_json::to_string(&record).unwrap();
        let text = format!("{line}\n{}", &line[..line.len() / 2]);
        assert_eq!(
            parse_records(&text, "f.jsonl").unwrap(),
            vec![record.clone()]
        );
        let text = format!("{line}\nnot json\n{line}\n");
        let error = parse_records(&text, "f.jsonl").unwrap_err().to_string();
        assert!(
            error.starts_with("f.jsonl:2: not a keel replay record"),
            "{error}"
        );
        let error = parse_records("\n", "f.jsonl").unwrap_err().to_string();
        assert!(error.contains("holds no responses"), "{error}");
    }
}
