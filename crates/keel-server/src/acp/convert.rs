//! keel's events in ACP's words: text and thinking chunks, tool calls with a title, kind,
//! locations and (for file edits) a diff, their status updates, plans and mode changes; and
//! a stored conversation replayed as the updates a client would have seen.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use agent_client_protocol::v1::schema::{
    ContentBlock, ContentChunk, CurrentModeUpdate, Diff, Plan, PlanEntry, PlanEntryPriority,
    PlanEntryStatus, SessionUpdate, TextContent, ToolCall, ToolCallContent, ToolCallLocation,
    ToolCallStatus, ToolCallUpdate, ToolCallUpdateFields, ToolKind, UsageUpdate,
};
use keel_protocol::{ContentBlock as KeelBlock, Event, Message, PlanItem, Role, ToolResultContent};
use serde_json::Value;

/// Files larger than this are not read to show what an edit replaces.
const MAX_DIFF_SOURCE: u64 = 1024 * 1024;

/// A tool call the client has been told about.
#[derive(Debug, Clone)]
struct Call {
    name: String,
    input: Value,
    /// The file as it was before a Write, for the diff.
    before: Option<String>,
}

/// Turns one session's events into `session/update`s, remembering the tool calls it announced.
#[derive(Debug, Default)]
pub(crate) struct Translator {
    calls: HashMap<String, Call>,
    /// Files as they were before the Writes about to be announced, by call id.
    before: HashMap<String, String>,
}

/// The current text of every file the Write calls of `event` would replace, by call id, read
/// on a blocking thread (the diff shows what the Write replaces).
pub(crate) async fn files_before(event: &Event) -> HashMap<String, String> {
    let Event::AssistantMessage { message } = event else {
        return HashMap::new();
    };
    let writes: Vec<(String, Value)> = message
        .tool_uses()
        .filter(|call| call.name == "Write")
        .map(|call| (call.id.to_string(), call.input.clone()))
        .collect();
    if writes.is_empty() {
        return HashMap::new();
    }
    tokio::task::spawn_blocking(move || {
        writes
            .into_iter()
            .filter_map(|(id, input)| file_text(&input).map(|text| (id, text)))
            .collect()
    })
    .await
    .unwrap_or_default()
}

impl Translator {
    /// Files as they were before the coming Writes (from [`files_before`]).
    pub(crate) fn remember_before(&mut self, before: HashMap<String, String>) {
        self.before.extend(before);
    }

    /// The updates that show `event` to the client (none for events a client has no use for).
    pub(crate) fn updates(&mut self, event: &Event) -> Vec<SessionUpdate> {
        match event {
            Event::TextDelta { text } => vec![SessionUpdate::AgentMessageChunk(chunk(text))],
            Event::ThinkingDelta { text } => vec![SessionUpdate::AgentThoughtChunk(chunk(text))],
            Event::AssistantMessage { message } => message
                .tool_uses()
                .map(|call| {
                    let before = self.before.remove(call.id);
                    self.calls.insert(
                        call.id.to_string(),
                        Call {
                            name: call.name.to_string(),
                            input: call.input.clone(),
                            before,
                        },
                    );
                    SessionUpdate::ToolCall(self.tool_call(call.id, ToolCallStatus::Pending))
                })
                .collect(),
            Event::ToolCallStarted {
                tool_use_id, input, ..
            } => {
                let mut fields = ToolCallUpdateFields::new().status(ToolCallStatus::InProgress);
                if let Some(call) = self.calls.get_mut(tool_use_id)
                    && &call.input != input
                {
                    // An approval (or a hook) changed the input: show what really runs.
                    call.input = input.clone();
                    fields = fields
                        .raw_input(input.clone())
                        .content(self.proposed_content(tool_use_id));
                }
                vec![SessionUpdate::ToolCallUpdate(ToolCallUpdate::new(
                    tool_use_id.clone(),
                    fields,
                ))]
            }
            Event::ToolResult {
                tool_use_id,
                content,
                is_error,
                structured,
                ..
            } => {
                let status = if *is_error {
                    ToolCallStatus::Failed
                } else {
                    ToolCallStatus::Completed
                };
                let diff = (!*is_error)
                    .then(|| self.result_diff(tool_use_id, structured.as_ref()))
                    .flatten();
                let shown = match diff {
                    Some(diff) => vec![ToolCallContent::Diff(diff)],
                    None => vec![text_content(&content.text())],
                };
                let raw = structured
                    .clone()
                    .unwrap_or_else(|| Value::String(content.text()));
                self.calls.remove(tool_use_id);
                vec![SessionUpdate::ToolCallUpdate(ToolCallUpdate::new(
                    tool_use_id.clone(),
                    ToolCallUpdateFields::new()
                        .status(status)
                        .content(shown)
                        .raw_output(raw),
                ))]
            }
            Event::PlanUpdated { items } => vec![SessionUpdate::Plan(plan(items))],
            Event::PermissionModeChanged { mode } => {
                vec![SessionUpdate::CurrentModeUpdate(CurrentModeUpdate::new(
                    mode.clone(),
                ))]
            }
            Event::ContextUsage {
                used_tokens,
                window_tokens,
            } => vec![SessionUpdate::UsageUpdate(UsageUpdate::new(
                *used_tokens,
                *window_tokens,
            ))],
            _ => Vec::new(),
        }
    }

    /// The tool call as a permission request shows it: title, kind, input, locations and, for
    /// file edits, the diff the call would make.
    pub(crate) fn permission_subject(
        &self,
        tool_use_id: &str,
        name: &str,
        input: &Value,
    ) -> ToolCallUpdate {
        let (title, kind, locations) = describe(name, input);
        let mut fields = ToolCallUpdateFields::new()
            .title(title)
            .kind(kind)
            .status(ToolCallStatus::Pending)
            .raw_input(input.clone())
            .locations(locations);
        let content = self.proposed_content_for(name, input, self.before(tool_use_id));
        if !content.is_empty() {
            fields = fields.content(content);
        }
        ToolCallUpdate::new(tool_use_id.to_string(), fields)
    }

    fn before(&self, tool_use_id: &str) -> Option<String> {
        self.calls.get(tool_use_id).and_then(|c| c.before.clone())
    }

    fn tool_call(&self, tool_use_id: &str, status: ToolCallStatus) -> ToolCall {
        let Some(call) = self.calls.get(tool_use_id) else {
            return ToolCall::new(tool_use_id.to_string(), "tool call").status(status);
        };
        let (title, kind, locations) = describe(&call.name, &call.input);
        ToolCall::new(tool_use_id.to_string(), title)
            .kind(kind)
            .status(status)
            .raw_input(call.input.clone())
            .locations(locations)
            .content(self.proposed_content(tool_use_id))
    }

    fn proposed_content(&self, tool_use_id: &str) -> Vec<ToolCallContent> {
        match self.calls.get(tool_use_id) {
            Some(call) => self.proposed_content_for(&call.name, &call.input, call.before.clone()),
            None => Vec::new(),
        }
    }

    /// The diff an Edit or Write would make, from its input.
    fn proposed_content_for(
        &self,
        name: &str,
        input: &Value,
        before: Option<String>,
    ) -> Vec<ToolCallContent> {
        let path = input["file_path"].as_str().map(PathBuf::from);
        match (name, path) {
            ("Edit", Some(path)) => {
                let old = input["old_string"].as_str().unwrap_or_default();
                let new = input["new_string"].as_str().unwrap_or_default();
                vec![ToolCallContent::Diff(
                    Diff::new(path, new).old_text((!old.is_empty()).then(|| old.to_string())),
                )]
            }
            ("Write", Some(path)) => {
                let content = input["content"].as_str().unwrap_or_default();
                vec![ToolCallContent::Diff(
                    Diff::new(path, content).old_text(before),
                )]
            }
            _ => Vec::new(),
        }
    }

    /// The diff a finished Edit or Write made, from its structured result.
    fn result_diff(&self, tool_use_id: &str, structured: Option<&Value>) -> Option<Diff> {
        let structured = structured?;
        let call = self.calls.get(tool_use_id)?;
        let path = PathBuf::from(structured["filePath"].as_str()?);
        match call.name.as_str() {
            "Edit" => {
                let old = structured["oldString"].as_str().unwrap_or_default();
                let new = structured["newString"].as_str()?;
                Some(Diff::new(path, new).old_text((!old.is_empty()).then(|| old.to_string())))
            }
            "Write" => {
                let content = structured["content"].as_str()?;
                Some(Diff::new(path, content).old_text(call.before.clone()))
            }
            _ => None,
        }
    }
}

/// The current text of the file a call names, if it is a readable, reasonably small file.
fn file_text(input: &Value) -> Option<String> {
    let path = Path::new(input["file_path"].as_str()?);
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_file() || meta.len() > MAX_DIFF_SOURCE {
        return None;
    }
    std::fs::read_to_string(path).ok()
}

fn chunk(text: &str) -> ContentChunk {
    ContentChunk::new(ContentBlock::Text(TextContent::new(text)))
}

fn text_content(text: &str) -> ToolCallContent {
    ToolCallContent::Content(agent_client_protocol::v1::schema::Content::new(
        ContentBlock::Text(TextContent::new(text)),
    ))
}

/// A title a person can read at a glance, the ACP kind (which picks the icon), and the files
/// the call touches (so an editor can follow along).
pub(crate) fn describe(name: &str, input: &Value) -> (String, ToolKind, Vec<ToolCallLocation>) {
    let text = |key: &str| input[key].as_str().unwrap_or_default().to_string();
    let file = || {
        input["file_path"]
            .as_str()
            .map(|p| vec![ToolCallLocation::new(PathBuf::from(p))])
            .unwrap_or_default()
    };
    match name {
        "Read" => {
            let mut locations = file();
            if let (Some(location), Some(line)) = (
                locations.first_mut(),
                input["offset"].as_u64().and_then(|l| u32::try_from(l).ok()),
            ) {
                *location = location.clone().line(line);
            }
            (
                format!("Read {}", text("file_path")),
                ToolKind::Read,
                locations,
            )
        }
        "Edit" | "MultiEdit" => (
            format!("Edit {}", text("file_path")),
            ToolKind::Edit,
            file(),
        ),
        "Write" => (
            format!("Write {}", text("file_path")),
            ToolKind::Edit,
            file(),
        ),
        "NotebookEdit" => (
            format!("Edit {}", text("notebook_path")),
            ToolKind::Edit,
            Vec::new(),
        ),
        "Bash" => {
            let title = match input["description"].as_str() {
                Some(description) if !description.is_empty() => description.to_string(),
                _ => format!("`{}`", text("command")),
            };
            (title, ToolKind::Execute, Vec::new())
        }
        "Glob" => (
            format!("Find {}", text("pattern")),
            ToolKind::Search,
            Vec::new(),
        ),
        "Grep" => (
            format!("Search for {}", text("pattern")),
            ToolKind::Search,
            Vec::new(),
        ),
        "WebFetch" => (
            format!("Fetch {}", text("url")),
            ToolKind::Fetch,
            Vec::new(),
        ),
        "WebSearch" => (
            format!("Search the web for {}", text("query")),
            ToolKind::Fetch,
            Vec::new(),
        ),
        "ExitPlanMode" => (
            "Ready to code?".to_string(),
            ToolKind::SwitchMode,
            Vec::new(),
        ),
        "TodoWrite" | "TaskCreate" | "TaskUpdate" => {
            ("Update the plan".to_string(), ToolKind::Think, Vec::new())
        }
        other => (other.to_string(), ToolKind::Other, Vec::new()),
    }
}

/// The session's plan as ACP plan entries.
fn plan(items: &[PlanItem]) -> Plan {
    Plan::new(
        items
            .iter()
            .map(|item| {
                let status = match item.status.as_str() {
                    "completed" => PlanEntryStatus::Completed,
                    "in_progress" => PlanEntryStatus::InProgress,
                    _ => PlanEntryStatus::Pending,
                };
                let content = match (&item.active_form, &status) {
                    (Some(active), PlanEntryStatus::InProgress) => active.clone(),
                    _ => item.subject.clone(),
                };
                PlanEntry::new(content, PlanEntryPriority::Medium, status)
            })
            .collect(),
    )
}

/// A stored conversation as the updates a client would have seen: the user's prompts, the
/// agent's text and thinking, and every tool call with its result.
pub(crate) fn replay(messages: &[Message]) -> Vec<SessionUpdate> {
    let mut translator = Translator::default();
    let mut updates = Vec::new();
    for message in messages {
        for block in &message.content {
            match (message.role, block) {
                (Role::User, KeelBlock::Text { text }) => {
                    updates.push(SessionUpdate::UserMessageChunk(chunk(text)));
                }
                (Role::Assistant, KeelBlock::Text { text }) => {
                    updates.push(SessionUpdate::AgentMessageChunk(chunk(text)));
                }
                (Role::Assistant, KeelBlock::Thinking { thinking, .. }) => {
                    updates.push(SessionUpdate::AgentThoughtChunk(chunk(thinking)));
                }
                (_, KeelBlock::ToolUse { id, name, input }) => {
                    translator.calls.insert(
                        id.clone(),
                        Call {
                            name: name.clone(),
                            input: input.clone(),
                            before: None,
                        },
                    );
                    updates.push(SessionUpdate::ToolCall(
                        translator.tool_call(id, ToolCallStatus::Pending),
                    ));
                }
                (
                    _,
                    KeelBlock::ToolResult {
                        tool_use_id,
                        content,
                        is_error,
                    },
                ) => {
                    let status = if *is_error {
                        ToolCallStatus::Failed
                    } else {
                        ToolCallStatus::Completed
                    };
                    let text = match content {
                        ToolResultContent::Text(text) => text.clone(),
                        blocks => blocks.text(),
                    };
                    updates.push(SessionUpdate::ToolCallUpdate(ToolCallUpdate::new(
                        tool_use_id.clone(),
                        ToolCallUpdateFields::new()
                            .status(status)
                            .content(vec![text_content(&text)]),
                    )));
                }
                _ => {}
            }
        }
    }
    updates
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_edit_is_announced_with_its_diff_and_finishes_with_the_result_diff() {
        let mut translator = Translator::default();
        let message = keel_protocol::AssistantMessage {
            id: "m".into(),
            role: Role::Assistant,
            model: "x".into(),
            content: vec![KeelBlock::ToolUse {
                id: "t1".into(),
                name: "Edit".into(),
                input: json!({"file_path": "/p/a.rs", "old_string": "1", "new_string": "2"}),
            }],
            stop_reason: None,
            stop_sequence: None,
            usage: Default::default(),
        };
        let updates = translator.updates(&Event::AssistantMessage { message });
        let announced = serde_json::to_value(&updates[0]).unwrap();
        assert_eq!(announced["sessionUpdate"], "tool_call");
        assert_eq!(announced["kind"], "edit");
        assert_eq!(announced["title"], "Edit /p/a.rs");
        assert_eq!(announced["locations"][0]["path"], "/p/a.rs");
        assert_eq!(
            announced["content"][0],
            json!({"type": "diff", "path": "/p/a.rs", "oldText": "1", "newText": "2"})
        );
        let done = translator.updates(&Event::ToolResult {
            tool_use_id: "t1".into(),
            tool_name: "Edit".into(),
            content: ToolResultContent::Text("updated".into()),
            is_error: false,
            structured: Some(json!({"filePath": "/p/a.rs", "oldString": "1", "newString": "2"})),
        });
        let done = serde_json::to_value(&done[0]).unwrap();
        assert_eq!(done["sessionUpdate"], "tool_call_update");
        assert_eq!(done["status"], "completed");
        assert_eq!(done["content"][0]["type"], "diff");
    }

    #[test]
    fn plans_use_the_active_form_while_running() {
        let items = vec![
            PlanItem {
                id: "1".into(),
                subject: "Run the tests".into(),
                description: String::new(),
                active_form: Some("Running the tests".into()),
                status: "in_progress".into(),
                owner: None,
                blocks: vec![],
                blocked_by: vec![],
            },
            PlanItem {
                id: "2".into(),
                subject: "Fix the bug".into(),
                description: String::new(),
                active_form: None,
                status: "pending".into(),
                owner: None,
                blocks: vec![],
                blocked_by: vec![],
            },
        ];
        let value = serde_json::to_value(SessionUpdate::Plan(plan(&items))).unwrap();
        assert_eq!(value["entries"][0]["content"], "Running the tests");
        assert_eq!(value["entries"][0]["status"], "in_progress");
        assert_eq!(value["entries"][1]["status"], "pending");
    }
}
