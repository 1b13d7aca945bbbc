//! Automatic and manual compaction: the request that asks a model for a structured summary,
//! and the conversation that continues from it.
//!
//! The engine does the orchestration: it decides when ([`crate::ContextPolicy`]), runs the
//! PreCompact hook, picks the kept tail ([`choose_kept_tail`]), sends [`summary_request`] to
//! the model (or uses fresh session notes instead), re-reads the files from
//! [`recent_files`], and replaces the conversation with [`compacted_conversation`].

use std::collections::HashSet;
use std::path::PathBuf;

use keel_protocol::{ContentBlock, Message, PlanItem, Role};
use serde_json::Value;

use crate::tokens::estimate_message;
use crate::transcript::{self, TRANSCRIPT_CHARS};

/// How many characters of one re-read file go into the compacted conversation.
pub const REREAD_FILE_CHARS: usize = 16_000;

/// How many characters of re-read files go in altogether.
pub const REREAD_TOTAL_CHARS: usize = 48_000;

/// How many recently touched files the engine should re-read after compacting.
pub const REREAD_FILES: usize = 5;

/// The first line of every compacted conversation, so frontends and later compactions can
/// recognise it.
pub const COMPACTED_MARKER: &str = "[keel: the conversation above this point was compacted]";

/// The instructions for the summary call.
pub const SUMMARY_SYSTEM: &str = "\
You summarise a coding agent's session so that the agent can continue the work in a fresh \
context window with only your summary and the most recent messages. The summary replaces \
everything it covers, so anything you leave out is lost.

Write the summary in exactly these sections, as Markdown headings:

## Goal
What the user wants overall, in their terms, with every constraint and preference they stated.

## Latest request
The user's most recent request, quoted or closely paraphrased, and how far the work on it got.

## Decisions
Choices made and why, including approaches tried and rejected and errors met with how they \
were fixed.

## Files touched
Every file read, changed or created, with its full path and one line on what was done or \
learned there.

## Open work
What remains to be done, the immediate next step, and anything that is waiting on the user.

## Tasks
The state of each task on the task list (pending, in progress, completed), if there is one.

Be specific and brief: keep exact file paths, function and type names, commands, error \
messages and values; drop pleasantries and reasoning that led nowhere. Do not invent anything \
that is not in the conversation. Output only the summary.";

/// The request for a summary of `messages`: a system prompt and one user message carrying
/// the conversation as a transcript (long tool outputs cut), the task list and the user's
/// `/compact` instructions, if any. Send it without tools; the answer's text is the summary.
pub fn summary_request(
    messages: &[Message],
    plan: &[PlanItem],
    instructions: Option<&str>,
) -> (String, Vec<Message>) {
    summary_request_within(messages, plan, instructions, u64::MAX)
}

/// [`summary_request`] for a model with a small window: the transcript is cut (oldest middle
/// entries first, the first message kept) so the request takes about `max_tokens` estimated
/// tokens at most. Also the retry when a summary request itself was "prompt too long".
pub fn summary_request_within(
    messages: &[Message],
    plan: &[PlanItem],
    instructions: Option<&str>,
    max_tokens: u64,
) -> (String, Vec<Message>) {
    // Room for the instructions, the task list and the answer's framing, at 4 bytes a token.
    let chars = usize::try_from(max_tokens.saturating_sub(2_000).saturating_mul(4))
        .unwrap_or(usize::MAX)
        .min(TRANSCRIPT_CHARS);
    let mut text = String::from("Here is the conversation to summarise:\n\n<conversation>\n");
    text.push_str(&transcript::render(messages, chars));
    text.push_str("\n</conversation>\n");
    if !plan.is_empty() {
        text.push_str("\nThe task list as it stands:\n");
        text.push_str(&transcript::render_plan(plan));
        text.push('\n');
    }
    if let Some(instructions) = instructions.map(str::trim).filter(|i| !i.is_empty()) {
        text.push_str("\nThe user asked for this when compacting; follow it:\n");
        text.push_str(instructions);
        text.push('\n');
    }
    text.push_str("\nWrite the summary now, in the sections described.");
    (SUMMARY_SYSTEM.to_string(), vec![Message::user_text(text)])
}

/// The conversation after compaction: one user message with the summary, the task list and
/// the re-read files, followed by the kept `recent` messages.
///
/// `recent` should start where [`choose_kept_tail`] says. If it starts with a user prompt,
/// that prompt joins the first message so roles keep alternating; a leading user message of
/// tool results (whose calls were summarised away) is dropped, since the API rejects a result
/// without its call. `reread` holds (path, current contents) of files to show again, cut to
/// [`REREAD_FILE_CHARS`] each and [`REREAD_TOTAL_CHARS`] in all.
pub fn compacted_conversation(
    summary_text: &str,
    recent: &[Message],
    plan: &[PlanItem],
    reread: Vec<(PathBuf, String)>,
) -> Vec<Message> {
    let intro = format!(
        "{COMPACTED_MARKER}\nThe earlier part of this session was summarised to free context. \
         The summary below replaces those messages; the most recent messages follow it unchanged.\n\n\
         <summary>\n{}\n</summary>",
        summary_text.trim()
    );
    continuation(intro, recent, plan, reread)
}

/// Builds the continuation shared by summary- and notes-based compaction.
pub(crate) fn continuation(
    intro: String,
    recent: &[Message],
    plan: &[PlanItem],
    reread: Vec<(PathBuf, String)>,
) -> Vec<Message> {
    let mut first = vec![ContentBlock::Text { text: intro }];
    if !plan.is_empty() {
        first.push(ContentBlock::Text {
            text: format!(
                "The task list at the time of compaction:\n{}",
                transcript::render_plan(plan)
            ),
        });
    }
    let mut room = REREAD_TOTAL_CHARS;
    for (path, contents) in reread {
        if room == 0 {
            break;
        }
        let limit = REREAD_FILE_CHARS.min(room);
        let shown = transcript::cut(&contents, limit);
        room = room.saturating_sub(shown.chars().count().min(limit));
        first.push(ContentBlock::Text {
            text: format!(
                "Current contents of {} (re-read after compaction because it was worked on recently):\n<file>\n{}\n</file>",
                path.display(),
                shown
            ),
        });
    }

    let mut recent = recent;
    while let Some(head) = recent.first() {
        if head.role == Role::User && has_tool_result(head) {
            recent = &recent[1..];
        } else {
            break;
        }
    }
    let mut messages = Vec::with_capacity(recent.len() + 1);
    match recent.first() {
        Some(head) if head.role == Role::User => {
            first.extend(head.content.iter().cloned());
            messages.push(Message {
                role: Role::User,
                content: first,
            });
            messages.extend_from_slice(&recent[1..]);
        }
        Some(_) => {
            messages.push(Message {
                role: Role::User,
                content: first,
            });
            messages.extend_from_slice(recent);
        }
        None => {
            first.push(ContentBlock::Text {
                text: "Continue from here: if the work is unfinished, carry on with the open work \
                       without asking the user to repeat anything; otherwise answer the user's \
                       next message."
                    .into(),
            });
            messages.push(Message {
                role: Role::User,
                content: first,
            });
        }
    }
    messages
}

/// Where the kept tail of `messages` should start so it takes at most `token_budget`
/// estimated tokens: the earliest index that fits and is a valid place to cut.
///
/// A valid cut starts at an assistant message or at a user message without tool results, so
/// no tool result is ever separated from its call. The answer is at least 1 for a non-empty
/// conversation (something is always summarised) and `messages.len()` when not even the last
/// exchange fits (keep nothing verbatim).
pub fn choose_kept_tail(messages: &[Message], token_budget: u64) -> usize {
    let mut best = messages.len();
    let mut used = 0u64;
    for index in (1..messages.len()).rev() {
        used += estimate_message(&messages[index]);
        if used > token_budget {
            break;
        }
        if is_valid_start(&messages[index]) {
            best = index;
        }
    }
    best
}

/// Where the kept tail should start when compacting from session notes that cover
/// `messages[..notes_through]`: like [`choose_kept_tail`], but the tail must include every
/// message the notes do not cover. `None` when that does not fit the budget; then the notes
/// are too stale and a summary call (or a notes update first) is needed.
pub fn tail_for_notes(
    messages: &[Message],
    notes_through: usize,
    token_budget: u64,
) -> Option<usize> {
    let start = choose_kept_tail(messages, token_budget);
    (start <= notes_through.min(messages.len())).then_some(start)
}

/// The files most recently read, edited or written through tools (newest first, each once,
/// at most `n`), for re-reading after compaction. Calls whose result was an error are left
/// out: the file may not exist.
pub fn recent_files(messages: &[Message], n: usize) -> Vec<PathBuf> {
    let failed: HashSet<&str> = messages
        .iter()
        .flat_map(|m| &m.content)
        .filter_map(|b| match b {
            ContentBlock::ToolResult {
                tool_use_id,
                is_error: true,
                ..
            } => Some(tool_use_id.as_str()),
            _ => None,
        })
        .collect();
    let mut seen = HashSet::new();
    let mut files = Vec::new();
    for block in messages.iter().rev().flat_map(|m| m.content.iter().rev()) {
        if files.len() >= n {
            break;
        }
        let ContentBlock::ToolUse { id, name, input } = block else {
            continue;
        };
        if failed.contains(id.as_str()) {
            continue;
        }
        let field = match name.as_str() {
            "Read" | "Edit" | "MultiEdit" | "Write" => "file_path",
            "NotebookEdit" => "notebook_path",
            _ => continue,
        };
        let Some(path) = input.get(field).and_then(Value::as_str) else {
            continue;
        };
        if seen.insert(path.to_string()) {
            files.push(PathBuf::from(path));
        }
    }
    files
}

fn is_valid_start(message: &Message) -> bool {
    message.role == Role::Assistant || !has_tool_result(message)
}

fn has_tool_result(message: &Message) -> bool {
    message
        .content
        .iter()
        .any(|b| matches!(b, ContentBlock::ToolResult { .. }))
}
