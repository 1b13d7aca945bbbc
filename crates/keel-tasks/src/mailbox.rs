//! Mailboxes of a team: one append-only JSONL inbox per member, plus a cursor saying how far
//! the member has read. Sending appends under the inbox's lock; taking reads from the cursor
//! and moves it under the same lock, so every message is delivered once, in the order sent,
//! even with senders and the reader in different processes.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::TasksError;
use crate::fsutil::{self, FileLock};

/// One message in an inbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// Who sent it (a member name, or `team-lead`).
    pub from: String,
    /// Who it is for.
    pub to: String,
    /// When it was sent (RFC 3339).
    pub ts: String,
    /// What it says.
    #[serde(flatten)]
    pub body: Body,
}

/// What a message says: text, or one of the team protocols' requests and answers. Requests
/// carry an id the answer repeats.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Body {
    /// Plain text between members.
    Message {
        /// The text.
        text: String,
        /// A few words for listings.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        summary: Option<String>,
    },
    /// The lead asks a member to finish its current step and stop.
    ShutdownRequest {
        /// The request's id.
        request_id: String,
        /// Why.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// A member answers a shutdown request.
    ShutdownResponse {
        /// The request answered.
        request_id: String,
        /// Whether it stops.
        approve: bool,
        /// Why not, or a last word.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// A member asks the lead to approve its plan before it may change anything.
    PlanApprovalRequest {
        /// The request's id.
        request_id: String,
        /// The plan, in Markdown.
        plan: String,
        /// The task it is for.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        task: Option<String>,
    },
    /// The lead approves or rejects a plan.
    PlanApprovalResponse {
        /// The request answered.
        request_id: String,
        /// Whether the member may go ahead.
        approve: bool,
        /// What to change, when rejected.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        feedback: Option<String>,
    },
    /// A member's state changed (it stopped, or gave a task back).
    Status {
        /// `working`, `idle` or `stopped`.
        status: String,
        /// More about it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        detail: Option<String>,
    },
}

impl Body {
    /// The protocol kind of a request (`shutdown`, `plan`), for its id.
    fn request_kind(&self) -> Option<&'static str> {
        match self {
            Self::ShutdownRequest { .. } => Some("shutdown"),
            Self::PlanApprovalRequest { .. } => Some("plan"),
            _ => None,
        }
    }

    fn set_request_id(&mut self, id: String) {
        if let Self::ShutdownRequest { request_id, .. }
        | Self::PlanApprovalRequest { request_id, .. } = self
        {
            *request_id = id;
        }
    }
}

/// The inboxes of one team: `<team>/inboxes/<member>.jsonl`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mailbox {
    dir: PathBuf,
}

impl Mailbox {
    /// The inboxes in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    fn inbox(&self, member: &str) -> PathBuf {
        self.dir.join(format!("{member}.jsonl"))
    }

    fn cursor(&self, member: &str) -> PathBuf {
        self.dir.join(format!("{member}.cursor"))
    }

    fn lock(&self, member: &str) -> Result<FileLock, TasksError> {
        FileLock::acquire(&self.dir.join(format!("{member}.lock")))
    }

    /// Puts `body` into `to`'s inbox. A request gets its id here (`shutdown-2@ana`: the
    /// recipient's second request of that kind), so ids are unique and predictable. Returns
    /// the envelope as sent.
    pub fn send(&self, from: &str, to: &str, mut body: Body) -> Result<Envelope, TasksError> {
        let _lock = self.lock(to)?;
        let inbox = self.inbox(to);
        if let Some(kind) = body.request_kind() {
            let (earlier, _) = fsutil::read_json_lines::<Envelope>(&inbox, 0)?;
            let n = earlier
                .iter()
                .filter(|e| {
                    e.body.request_kind() == Some(kind) && (kind != "plan" || e.from == from)
                })
                .count()
                + 1;
            let who = if kind == "plan" { from } else { to };
            body.set_request_id(format!("{kind}-{n}@{who}"));
        }
        let envelope = Envelope {
            from: from.to_string(),
            to: to.to_string(),
            ts: fsutil::now_rfc3339(),
            body,
        };
        fsutil::append_json_line(&inbox, &envelope)?;
        Ok(envelope)
    }

    /// Takes every message `member` has not read yet, in the order sent; each is returned by
    /// exactly one call.
    pub fn take(&self, member: &str) -> Result<Vec<Envelope>, TasksError> {
        let _lock = self.lock(member)?;
        let cursor_path = self.cursor(member);
        let offset = std::fs::read_to_string(&cursor_path)
            .ok()
            .and_then(|t| t.trim().parse::<u64>().ok())
            .unwrap_or(0);
        let (envelopes, end) = fsutil::read_json_lines(&self.inbox(member), offset)?;
        if end != offset {
            fsutil::write_atomic(&cursor_path, format!("{end}\n").as_bytes())?;
        }
        Ok(envelopes)
    }

    /// Whether `member` has unread messages (no lock: a hint for pollers).
    pub fn has_unread(&self, member: &str) -> bool {
        let offset = std::fs::read_to_string(self.cursor(member))
            .ok()
            .and_then(|t| t.trim().parse::<u64>().ok())
            .unwrap_or(0);
        std::fs::metadata(self.inbox(member)).is_ok_and(|m| m.len() > offset)
    }

    /// Every message ever sent to `member`, read or not (for inspection and tests).
    pub fn history(&self, member: &str) -> Result<Vec<Envelope>, TasksError> {
        Ok(fsutil::read_json_lines(&self.inbox(member), 0)?.0)
    }

    /// The inboxes' folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// How a message reads in the recipient's conversation.
pub fn render(envelope: &Envelope) -> String {
    let from = &envelope.from;
    match &envelope.body {
        Body::Message { text, summary } => {
            let summary = summary
                .as_deref()
                .map(|s| format!(" summary=\"{}\"", s.replace('"', "'")))
                .unwrap_or_default();
            format!(
                "<teammate-message teammate_id=\"{from}\"{summary}>\n{text}\n</teammate-message>"
            )
        }
        Body::ShutdownRequest { request_id, reason } => format!(
            "<shutdown-request from=\"{from}\" request_id=\"{request_id}\">{}</shutdown-request>\nFinish the step you are on, then stop.",
            reason.as_deref().unwrap_or("")
        ),
        Body::ShutdownResponse {
            request_id,
            approve,
            reason,
        } => {
            let verdict = if *approve { "approved" } else { "rejected" };
            format!(
                "<shutdown-response from=\"{from}\" request_id=\"{request_id}\">{from} {verdict} the shutdown request{}</shutdown-response>",
                reason
                    .as_deref()
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default()
            )
        }
        Body::PlanApprovalRequest {
            request_id,
            plan,
            task,
        } => format!(
            "<plan-approval-request from=\"{from}\" request_id=\"{request_id}\"{}>\n{plan}\n</plan-approval-request>\n{from} may not change anything until you answer. Approve or reject it with SendMessage to \"{from}\" and message {{\"type\": \"plan_approval_response\", \"request_id\": \"{request_id}\", \"approve\": true or false, \"feedback\": \"what to change\"}}.",
            task.as_deref()
                .map(|t| format!(" task=\"{t}\""))
                .unwrap_or_default()
        ),
        Body::PlanApprovalResponse {
            request_id,
            approve,
            feedback,
        } => {
            let verdict = if *approve { "approved" } else { "rejected" };
            format!(
                "<plan-approval-response from=\"{from}\" request_id=\"{request_id}\">{from} {verdict} your plan{}</plan-approval-response>",
                feedback
                    .as_deref()
                    .map(|f| format!(": {f}"))
                    .unwrap_or_default()
            )
        }
        Body::Status { status, detail } => format!(
            "<teammate-status teammate_id=\"{from}\" status=\"{status}\">{}</teammate-status>",
            detail.as_deref().unwrap_or("")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(t: &str) -> Body {
        Body::Message {
            text: t.into(),
            summary: None,
        }
    }

    #[test]
    fn messages_arrive_once_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let mailbox = Mailbox::new(dir.path());
        mailbox.send("ana", "lead", text("one")).unwrap();
        mailbox.send("ben", "lead", text("two")).unwrap();
        assert!(mailbox.has_unread("lead"));
        let got: Vec<_> = mailbox
            .take("lead")
            .unwrap()
            .into_iter()
            .map(|e| e.from)
            .collect();
        assert_eq!(got, ["ana", "ben"]);
        assert!(mailbox.take("lead").unwrap().is_empty());
        assert!(!mailbox.has_unread("lead"));
        mailbox.send("ana", "lead", text("three")).unwrap();
        assert_eq!(mailbox.take("lead").unwrap().len(), 1);
        assert_eq!(mailbox.history("lead").unwrap().len(), 3);
    }

    #[test]
    fn requests_get_predictable_ids() {
        let dir = tempfile::tempdir().unwrap();
        let mailbox = Mailbox::new(dir.path());
        let request = |to: &str| {
            mailbox
                .send(
                    "team-lead",
                    to,
                    Body::ShutdownRequest {
                        request_id: String::new(),
                        reason: None,
                    },
                )
                .unwrap()
        };
        let first = request("ana");
        let second = request("ana");
        let Body::ShutdownRequest { request_id, .. } = &first.body else {
            panic!()
        };
        assert_eq!(request_id, "shutdown-1@ana");
        let Body::ShutdownRequest { request_id, .. } = &second.body else {
            panic!()
        };
        assert_eq!(request_id, "shutdown-2@ana");
        let plan = mailbox
            .send(
                "ana",
                "team-lead",
                Body::PlanApprovalRequest {
                    request_id: String::new(),
                    plan: "do it".into(),
                    task: Some("3".into()),
                },
            )
            .unwrap();
        let Body::PlanApprovalRequest { request_id, .. } = &plan.body else {
            panic!()
        };
        assert_eq!(request_id, "plan-1@ana");
        assert!(render(&plan).contains("plan_approval_response"));
    }
}
