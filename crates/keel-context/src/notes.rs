//! Session notes: a running Markdown file (goal, decisions, files, open work) that a
//! background model call keeps current after turns, so compaction can start from the notes at
//! once instead of waiting for a summary call.
//!
//! The engine owns the schedule: after a turn it sends [`update_request`] with the messages
//! added since the last update, parses the answer with [`SessionNotes::parse`], saves it with
//! [`SessionNotes::save`] and remembers how many messages the notes now cover. When compaction
//! is due and [`crate::tail_for_notes`] finds a tail that covers the rest, it uses
//! [`compacted_from_notes`]; otherwise it falls back to [`crate::summary_request`].

use std::io::Write;
use std::path::{Path, PathBuf};

use keel_protocol::{Message, PlanItem};

use crate::compact::{COMPACTED_MARKER, continuation};
use crate::transcript::{self, TRANSCRIPT_CHARS};

/// The notes' sections in file order: heading and field.
const SECTIONS: [&str; 4] = ["Goal", "Decisions", "Files", "Open work"];

/// What an empty section says in the file.
const EMPTY_SECTION: &str = "(none yet)";

/// The instructions for the background call that rewrites the notes.
pub const NOTES_SYSTEM: &str = "\
You keep the working notes of a coding agent's session. The notes are what survives when the \
conversation is compacted, so they must let the agent carry on without the old messages.

You get the current notes and the messages added since they were last written. Rewrite the \
notes so they are true now: add what the new messages establish, update what changed, and \
remove what is no longer relevant. Keep them short (a few hundred words) and specific: exact \
file paths, names, commands and error messages. Record only what the conversation shows; do \
not invent.

Answer with the notes only, in exactly this format:

# Session notes

## Goal
What the user wants, with their constraints and preferences, and their latest request.

## Decisions
Choices made and why; approaches rejected; problems met and how they were solved.

## Files
Files read, changed or created, each with its full path and one line on what and why.

## Open work
What remains, the next step, and anything waiting on the user.";

/// A problem reading or writing the notes file.
#[derive(Debug, thiserror::Error)]
pub enum NotesError {
    /// The file could not be read or written.
    #[error("session notes {path}: {source}; check that the session folder is writable")]
    Io {
        /// The notes file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
}

/// The session's running notes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionNotes {
    /// What the user wants, including the latest request.
    pub goal: String,
    /// Choices made and why.
    pub decisions: String,
    /// Files worked on.
    pub files: String,
    /// What remains to be done.
    pub open_work: String,
    /// Sections the model added that are not one of the four, kept with their headings so
    /// nothing it wrote is lost.
    pub other: String,
}

impl SessionNotes {
    /// Reads notes from Markdown: `## Goal`, `## Decisions`, `## Files` (or `## Files
    /// touched`), `## Open work`, in any order and any heading level from `#` to `###`.
    /// Text before the first known heading (a title, a preamble) is ignored.
    pub fn parse(text: &str) -> Self {
        let mut notes = Self::default();
        let mut current: Option<usize> = None;
        let mut other_heading: Option<String> = None;
        let mut buffers: [String; 4] = Default::default();
        for line in text.lines() {
            if let Some(heading) = heading(line) {
                let key = heading.to_ascii_lowercase();
                let index = match key.as_str() {
                    "goal" => Some(0),
                    "decisions" => Some(1),
                    "files" | "files touched" => Some(2),
                    "open work" => Some(3),
                    _ => None,
                };
                match index {
                    Some(i) => {
                        current = Some(i);
                        other_heading = None;
                    }
                    None if line.starts_with("# ") && key == "session notes" => {
                        current = None;
                        other_heading = None;
                    }
                    None => {
                        current = None;
                        other_heading = Some(line.trim().to_string());
                        notes.other.push_str(line.trim());
                        notes.other.push('\n');
                    }
                }
                continue;
            }
            match (current, &other_heading) {
                (Some(i), _) => {
                    buffers[i].push_str(line);
                    buffers[i].push('\n');
                }
                (None, Some(_)) => {
                    notes.other.push_str(line);
                    notes.other.push('\n');
                }
                (None, None) => {}
            }
        }
        // The placeholder `render` writes for an empty section is not content.
        let clean = |s: String| {
            let s = s.trim();
            if s == EMPTY_SECTION {
                String::new()
            } else {
                s.to_string()
            }
        };
        let [goal, decisions, files, open_work] = buffers;
        notes.goal = clean(goal);
        notes.decisions = clean(decisions);
        notes.files = clean(files);
        notes.open_work = clean(open_work);
        notes.other = notes.other.trim().to_string();
        notes
    }

    /// The notes as the Markdown file's text.
    pub fn render(&self) -> String {
        let mut out = String::from("# Session notes\n");
        for (heading, body) in
            SECTIONS
                .iter()
                .zip([&self.goal, &self.decisions, &self.files, &self.open_work])
        {
            out.push_str(&format!("\n## {heading}\n"));
            if body.is_empty() {
                out.push_str(EMPTY_SECTION);
                out.push('\n');
            } else {
                out.push_str(body);
                out.push('\n');
            }
        }
        if !self.other.is_empty() {
            out.push('\n');
            out.push_str(&self.other);
            out.push('\n');
        }
        out
    }

    /// True when no section has content (nothing worth compacting from).
    pub fn is_empty(&self) -> bool {
        [
            &self.goal,
            &self.decisions,
            &self.files,
            &self.open_work,
            &self.other,
        ]
        .iter()
        .all(|s| s.is_empty())
    }

    /// Reads the notes file; `None` if it does not exist yet.
    pub fn load(path: &Path) -> Result<Option<Self>, NotesError> {
        match std::fs::read(path) {
            Ok(bytes) => Ok(Some(Self::parse(&String::from_utf8_lossy(&bytes)))),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(NotesError::Io {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    /// Writes the notes file atomically (a temporary file renamed over it), creating its
    /// folder if needed, so a crash never leaves half-written notes.
    pub fn save(&self, path: &Path) -> Result<(), NotesError> {
        let io = |source| NotesError::Io {
            path: path.to_path_buf(),
            source,
        };
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let mut file = tempfile::NamedTempFile::new_in(dir).map_err(io)?;
        file.write_all(self.render().as_bytes()).map_err(io)?;
        file.as_file().sync_all().map_err(io)?;
        file.persist(path).map_err(|e| io(e.error))?;
        Ok(())
    }
}

/// The request for the background call that rewrites the notes: a system prompt and one user
/// message with the current notes (if any) and the messages added since they were written.
/// Send it without tools and parse the answer's text with [`SessionNotes::parse`].
pub fn update_request(
    current: Option<&SessionNotes>,
    new_messages: &[Message],
) -> (String, Vec<Message>) {
    let mut text = String::new();
    match current.filter(|n| !n.is_empty()) {
        Some(notes) => {
            text.push_str("The current notes:\n\n<notes>\n");
            text.push_str(notes.render().trim());
            text.push_str("\n</notes>\n\n");
        }
        None => text.push_str("There are no notes yet; write the first version.\n\n"),
    }
    text.push_str("The messages added since:\n\n<conversation>\n");
    text.push_str(&transcript::render(new_messages, TRANSCRIPT_CHARS));
    text.push_str("\n</conversation>\n\nWrite the updated notes now.");
    (NOTES_SYSTEM.to_string(), vec![Message::user_text(text)])
}

/// The conversation after compacting from the notes instead of a fresh summary: the notes,
/// the task list and the re-read files in the first user message, then the kept `recent`
/// messages (same rules as [`crate::compacted_conversation`]).
pub fn compacted_from_notes(
    notes: &SessionNotes,
    recent: &[Message],
    plan: &[PlanItem],
    reread: Vec<(PathBuf, String)>,
) -> Vec<Message> {
    let intro = format!(
        "{COMPACTED_MARKER}\nThe earlier part of this session was compacted to free context. \
         These are the session's working notes, kept up to date during the session; they \
         replace the earlier messages, and the most recent messages follow unchanged.\n\n\
         <session_notes>\n{}\n</session_notes>",
        notes.render().trim()
    );
    continuation(intro, recent, plan, reread)
}

/// The heading text of a Markdown heading line (`#` to `###`).
fn heading(line: &str) -> Option<&str> {
    let trimmed = line.trim_start();
    let hashes = trimmed.chars().take_while(|c| *c == '#').count();
    if !(1..=3).contains(&hashes) {
        return None;
    }
    let rest = &trimmed[hashes..];
    rest.starts_with(' ')
        .then(|| rest.trim().trim_end_matches(':').trim())
}
