//! What is remembered. Each session is one append-only JSONL file under
//! `~/.keel/projects/<escaped working directory>/<session id>.jsonl`, one event per line,
//! written as it happens. Loading folds the events back into a conversation; a line torn by a
//! crash is skipped with a warning, never fatal.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use keel_protocol::{ContentBlock, Event};

mod conversation;
mod record;
mod writer;

pub use conversation::{Conversation, INTERRUPTED_RESULT};
pub use record::{Record, Totals, is_persisted};
pub use writer::TranscriptWriter;

/// A transcript could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// A file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// No session with that id exists.
    #[error(
        "no session {id} found under {root}; run `keel sessions` to list the sessions you can resume"
    )]
    NotFound {
        /// The id asked for.
        id: String,
        /// Where keel looked.
        root: PathBuf,
    },
    /// The id is not a UUID.
    #[error("{0:?} is not a session id (a UUID such as 123e4567-e89b-12d3-a456-426614174000)")]
    BadId(String),
}

/// A transcript as read back: its records in order, and what was skipped.
#[derive(Debug, Clone, Default)]
pub struct Transcript {
    /// Every readable record.
    pub records: Vec<Record>,
    /// Lines that could not be read (a torn last line after a crash), as warnings.
    pub warnings: Vec<String>,
}

impl Transcript {
    /// Reads a transcript. A line that is not a record is skipped with a warning.
    pub fn read(path: &Path) -> Result<Self, SessionError> {
        let file = File::open(path).map_err(|source| SessionError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let mut transcript = Self::default();
        for (number, line) in BufReader::new(file).split(b'\n').enumerate() {
            let line = line.map_err(|source| SessionError::Io {
                path: path.to_path_buf(),
                source,
            })?;
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match serde_json::from_slice::<Record>(&line) {
                Ok(record) => transcript.records.push(record),
                Err(error) => transcript.warnings.push(format!(
                    "{}:{}: skipped an unreadable transcript line ({error}); it was probably cut short by a crash",
                    path.display(),
                    number + 1
                )),
            }
        }
        Ok(transcript)
    }

    /// The conversation the transcript describes.
    pub fn conversation(&self) -> Conversation {
        let mut conversation = Conversation::new();
        for record in &self.records {
            conversation.apply(&record.event);
        }
        conversation
    }

    /// The session's totals up to the last finished run.
    pub fn totals(&self) -> Totals {
        self.records
            .iter()
            .rev()
            .find_map(|r| r.totals)
            .unwrap_or_default()
    }
}

/// A session as `keel sessions` lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionSummary {
    /// The session id.
    pub id: String,
    /// The transcript file.
    pub path: PathBuf,
    /// The working directory it ran in.
    pub cwd: String,
    /// When it started (RFC 3339).
    pub started: String,
    /// When it last changed.
    pub modified: std::time::SystemTime,
    /// The first prompt, shortened.
    pub first_prompt: String,
    /// Totals up to the last finished run.
    pub totals: Totals,
}

/// Where sessions live: `<home>/.keel/projects`.
#[derive(Debug, Clone)]
pub struct SessionStore {
    root: PathBuf,
}

impl SessionStore {
    /// The store under `home`.
    pub fn new(home: &Path) -> Self {
        Self {
            root: home.join(".keel").join("projects"),
        }
    }

    /// The folder of one working directory's sessions.
    pub fn project_dir(&self, cwd: &Path) -> PathBuf {
        self.root.join(escape_path(cwd))
    }

    /// The transcript path of session `id` started in `cwd`.
    pub fn path_for(&self, cwd: &Path, id: &str) -> PathBuf {
        self.project_dir(cwd).join(format!("{id}.jsonl"))
    }

    /// The most recently changed session of `cwd`, if any.
    pub fn latest(&self, cwd: &Path) -> Result<Option<PathBuf>, SessionError> {
        let mut newest: Option<(std::time::SystemTime, PathBuf)> = None;
        for path in self.transcripts_in(&self.project_dir(cwd))? {
            let modified = modified_time(&path);
            if newest.as_ref().is_none_or(|(time, _)| modified > *time) {
                newest = Some((modified, path));
            }
        }
        Ok(newest.map(|(_, path)| path))
    }

    /// The transcript of session `id`: in `cwd`'s folder first, then anywhere in the store.
    pub fn find(&self, cwd: &Path, id: &str) -> Result<PathBuf, SessionError> {
        validate_id(id)?;
        let local = self.path_for(cwd, id);
        if local.is_file() {
            return Ok(local);
        }
        let name = format!("{id}.jsonl");
        if let Ok(dirs) = std::fs::read_dir(&self.root) {
            for dir in dirs.flatten() {
                let candidate = dir.path().join(&name);
                if candidate.is_file() {
                    return Ok(candidate);
                }
            }
        }
        Err(SessionError::NotFound {
            id: id.to_string(),
            root: self.root.clone(),
        })
    }

    /// Sessions of `cwd` (or of every directory), newest first. Only each file's head and tail
    /// are read, so listing stays fast with many long sessions.
    pub fn list(&self, cwd: Option<&Path>) -> Result<Vec<SessionSummary>, SessionError> {
        let dirs = match cwd {
            Some(cwd) => vec![self.project_dir(cwd)],
            None => match std::fs::read_dir(&self.root) {
                Ok(entries) => entries.flatten().map(|e| e.path()).collect(),
                Err(_) => Vec::new(),
            },
        };
        let mut sessions = Vec::new();
        for dir in dirs {
            for path in self.transcripts_in(&dir)? {
                match summarize(&path) {
                    Ok(Some(summary)) => sessions.push(summary),
                    Ok(None) => {}
                    Err(error) => tracing::warn!(%error, "skipping an unreadable session"),
                }
            }
        }
        sessions.sort_by_key(|s| std::cmp::Reverse(s.modified));
        Ok(sessions)
    }

    fn transcripts_in(&self, dir: &Path) -> Result<Vec<PathBuf>, SessionError> {
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(SessionError::Io {
                    path: dir.to_path_buf(),
                    source,
                });
            }
        };
        Ok(entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|ext| ext == "jsonl"))
            .collect())
    }
}

/// Checks that `id` is a UUID, so it is safe as a file name.
pub fn validate_id(id: &str) -> Result<(), SessionError> {
    uuid::Uuid::parse_str(id)
        .map(|_| ())
        .map_err(|_| SessionError::BadId(id.to_string()))
}

/// A directory as a folder name: every character that is not a letter or digit becomes `-`,
/// as Claude Code names its project folders.
pub fn escape_path(path: &Path) -> String {
    path.to_string_lossy()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect()
}

fn modified_time(path: &Path) -> std::time::SystemTime {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .unwrap_or(std::time::UNIX_EPOCH)
}

/// How much of a transcript's head and tail a listing reads.
const PEEK_BYTES: u64 = 64 * 1024;

fn summarize(path: &Path) -> Result<Option<SessionSummary>, SessionError> {
    let io = |source| SessionError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = File::open(path).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    let mut head = Vec::new();
    (&mut file)
        .take(PEEK_BYTES)
        .read_to_end(&mut head)
        .map_err(io)?;
    let mut id = None;
    let mut cwd = String::new();
    let mut started = String::new();
    let mut first_prompt = None;
    for line in head.split(|b| *b == b'\n') {
        let Ok(record) = serde_json::from_slice::<Record>(line) else {
            continue;
        };
        match &record.event {
            Event::SessionStarted {
                session_id,
                cwd: dir,
                ..
            } if id.is_none() => {
                id = Some(session_id.to_string());
                cwd.clone_from(dir);
                started.clone_from(&record.ts);
            }
            Event::UserMessage { content } if first_prompt.is_none() => {
                first_prompt = Some(first_text(content));
            }
            // A fork starts with its inherited history; its first prompt is the original's.
            Event::Compacted { messages, .. } if first_prompt.is_none() => {
                first_prompt = messages
                    .iter()
                    .find(|m| m.role == keel_protocol::Role::User)
                    .map(|m| first_text(&m.content));
            }
            _ => {}
        }
        if id.is_some() && first_prompt.is_some() {
            break;
        }
    }
    let Some(id) = id else {
        return Ok(None);
    };
    let tail_start = len.saturating_sub(PEEK_BYTES);
    let mut tail = Vec::new();
    file.seek(SeekFrom::Start(tail_start)).map_err(io)?;
    file.read_to_end(&mut tail).map_err(io)?;
    let totals = tail
        .split(|b| *b == b'\n')
        .rev()
        .filter(|line| line.windows(9).any(|w| w == b"\"totals\":"))
        .find_map(|line| serde_json::from_slice::<Record>(line).ok()?.totals)
        .unwrap_or_default();
    Ok(Some(SessionSummary {
        id,
        path: path.to_path_buf(),
        cwd,
        started,
        modified: modified_time(path),
        first_prompt: first_prompt.unwrap_or_default(),
        totals,
    }))
}

fn first_text(content: &[ContentBlock]) -> String {
    let text = content
        .iter()
        .find_map(|block| match block {
            ContentBlock::Text { text } => Some(text.as_str()),
            _ => None,
        })
        .unwrap_or("");
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match line.char_indices().nth(80) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line,
    }
}
