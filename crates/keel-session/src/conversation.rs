//! Rebuilding a conversation from its events. The engine and resume share this fold, so what
//! a resumed session sends the model is what the original session would have sent.

use std::collections::HashSet;

use keel_protocol::{ContentBlock, Event, Message, PlanItem, Role, ToolResultContent};

/// The text a tool call gets when the session ended before it finished.
pub const INTERRUPTED_RESULT: &str = "The session was interrupted before this tool call finished; its result is unknown. \
     Check the state it may have changed before relying on it.";

/// A conversation rebuilt from events, plus the session state that travels with it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Conversation {
    messages: Vec<Message>,
    pending_results: Vec<ContentBlock>,
    /// The latest plan.
    pub plan: Vec<PlanItem>,
    /// The model last in use, if the transcript says.
    pub model: Option<String>,
    /// The permission mode last in use, if the transcript says.
    pub permission_mode: Option<String>,
}

impl Conversation {
    /// An empty conversation.
    pub fn new() -> Self {
        Self::default()
    }

    /// Folds one event in.
    pub fn apply(&mut self, event: &Event) {
        match event {
            Event::SessionStarted {
                model,
                permission_mode,
                ..
            } => {
                self.model.get_or_insert_with(|| model.clone());
                self.permission_mode
                    .get_or_insert_with(|| permission_mode.clone());
            }
            Event::UserMessage { content } => {
                self.close_turn();
                self.messages.push(Message {
                    role: Role::User,
                    content: content.clone(),
                });
            }
            Event::AssistantMessage { message } => {
                self.close_turn();
                if !message.content.is_empty() {
                    self.messages.push(message.to_message());
                }
            }
            Event::ToolResult {
                tool_use_id,
                content,
                is_error,
                ..
            } => self.pending_results.push(ContentBlock::ToolResult {
                tool_use_id: tool_use_id.clone(),
                content: content.clone(),
                is_error: *is_error,
            }),
            Event::Compacted { messages, .. } | Event::Rewound { messages, .. } => {
                self.pending_results.clear();
                self.messages.clone_from(messages);
            }
            Event::PlanUpdated { items } => self.plan.clone_from(items),
            Event::PermissionModeChanged { mode } => self.permission_mode = Some(mode.clone()),
            Event::ModelChanged { model } => self.model = Some(model.clone()),
            Event::RunFinished { .. } => self.close_turn(),
            _ => {}
        }
    }

    /// The conversation as it would be sent now: pending tool results attached, and every
    /// tool call that never got a result answered as interrupted, because the API rejects a
    /// `tool_use` without its `tool_result`.
    pub fn messages(&self) -> Vec<Message> {
        let mut copy = self.clone();
        copy.close_turn();
        copy.messages
    }

    /// Ends the current assistant turn: its tool results become one user message, with a
    /// result for every call that has none.
    fn close_turn(&mut self) {
        let answered: HashSet<String> = self
            .pending_results
            .iter()
            .filter_map(|block| match block {
                ContentBlock::ToolResult { tool_use_id, .. } => Some(tool_use_id.clone()),
                _ => None,
            })
            .collect();
        let unanswered: Vec<String> = match self.messages.last() {
            Some(last) if last.role == Role::Assistant => last
                .content
                .iter()
                .filter_map(|block| match block {
                    ContentBlock::ToolUse { id, .. } if !answered.contains(id) => Some(id.clone()),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        };
        if self.pending_results.is_empty() && unanswered.is_empty() {
            return;
        }
        let mut content = std::mem::take(&mut self.pending_results);
        content.extend(unanswered.into_iter().map(|id| ContentBlock::ToolResult {
            tool_use_id: id,
            content: ToolResultContent::Text(INTERRUPTED_RESULT.to_string()),
            is_error: true,
        }));
        self.messages.push(Message {
            role: Role::User,
            content,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_protocol::{AssistantMessage, StopReason, Usage};
    use serde_json::json;

    fn assistant(content: Vec<ContentBlock>) -> Event {
        Event::AssistantMessage {
            message: AssistantMessage {
                id: "m".into(),
                role: Role::Assistant,
                model: "x".into(),
                content,
                stop_reason: Some(StopReason::ToolUse),
                stop_sequence: None,
                usage: Usage::default(),
            },
        }
    }

    fn tool_use(id: &str) -> ContentBlock {
        ContentBlock::ToolUse {
            id: id.into(),
            name: "Bash".into(),
            input: json!({"command": "sleep 60"}),
        }
    }

    fn result(id: &str) -> Event {
        Event::ToolResult {
            tool_use_id: id.into(),
            tool_name: "Bash".into(),
            content: ToolResultContent::Text("ok".into()),
            is_error: false,
            structured: None,
        }
    }

    fn prompt(text: &str) -> Event {
        Event::UserMessage {
            content: vec![ContentBlock::Text { text: text.into() }],
        }
    }

    #[test]
    fn tool_results_follow_their_assistant_turn() {
        let mut c = Conversation::new();
        for e in [
            prompt("go"),
            assistant(vec![tool_use("a"), tool_use("b")]),
            result("a"),
            result("b"),
        ] {
            c.apply(&e);
        }
        let messages = c.messages();
        assert_eq!(messages.len(), 3);
        assert_eq!(messages[2].role, Role::User);
        assert_eq!(messages[2].content.len(), 2);
    }

    #[test]
    fn a_crash_mid_tool_call_leaves_a_well_formed_conversation() {
        let mut c = Conversation::new();
        for e in [
            prompt("go"),
            assistant(vec![tool_use("a"), tool_use("b")]),
            result("a"),
        ] {
            c.apply(&e);
        }
        // The session was killed here; a resumed session adds a new prompt.
        c.apply(&prompt("continue"));
        let messages = c.messages();
        assert_eq!(messages.len(), 4);
        let ContentBlock::ToolResult {
            tool_use_id,
            is_error,
            ..
        } = &messages[2].content[1]
        else {
            panic!("{:?}", messages[2]);
        };
        assert_eq!(tool_use_id, "b");
        assert!(is_error);
        assert_eq!(
            messages[3].content,
            vec![ContentBlock::Text {
                text: "continue".into()
            }]
        );
    }

    #[test]
    fn compaction_replaces_the_history() {
        let mut c = Conversation::new();
        c.apply(&prompt("old"));
        c.apply(&Event::Compacted {
            trigger: "auto".into(),
            tokens_before: 10,
            tokens_after: 2,
            messages: vec![Message::user_text("summary")],
        });
        c.apply(&prompt("new"));
        let messages = c.messages();
        assert_eq!(messages.len(), 2);
        assert_eq!(messages[0], Message::user_text("summary"));
    }

    #[test]
    fn a_rewind_replaces_the_history_as_resume_sees_it() {
        let mut c = Conversation::new();
        c.apply(&prompt("first"));
        c.apply(&prompt("second"));
        c.apply(&Event::Rewound {
            user_turns_back: 1,
            prompt: "second".into(),
            messages: vec![Message::user_text("first")],
        });
        c.apply(&prompt("other"));
        assert_eq!(
            c.messages(),
            vec![Message::user_text("first"), Message::user_text("other")]
        );
    }
}
