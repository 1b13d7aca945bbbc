//! Appending to a transcript without blocking the engine: a dedicated thread owns the file,
//! writes one line per event as soon as it arrives and syncs it to disk at the end of each run.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use keel_protocol::Event;

use crate::SessionError;
use crate::record::{Record, Totals, is_persisted, now};

enum Message {
    Line { text: String, sync: bool },
    Close,
}

/// Appends events to one transcript file. Dropping it (or [`Self::close`]) waits until every
/// line is on disk.
pub struct TranscriptWriter {
    path: PathBuf,
    sender: mpsc::Sender<Message>,
    thread: Option<JoinHandle<()>>,
    /// The first write error, kept so the engine can report it (a full disk, a removed folder).
    error: Arc<Mutex<Option<String>>>,
    totals: Totals,
}

impl TranscriptWriter {
    /// Opens `path` for appending (creating it and its folder), continuing from `totals`.
    pub fn open(path: &Path, totals: Totals) -> Result<Self, SessionError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|source| SessionError::Io {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let io = |source| SessionError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(path)
            .map_err(io)?;
        // A crash can leave the last line without its newline; end it, or the next record would
        // be glued onto it and lost with it.
        if ends_without_newline(&mut file).map_err(io)? {
            file.write_all(b"\n").map_err(io)?;
        }
        let (sender, receiver) = mpsc::channel();
        let error = Arc::new(Mutex::new(None));
        let thread_error = error.clone();
        let thread_path = path.to_path_buf();
        let thread = std::thread::Builder::new()
            .name("keel-transcript".into())
            .spawn(move || write_loop(file, &thread_path, &receiver, &thread_error))
            .map_err(|source| SessionError::Io {
                path: path.to_path_buf(),
                source,
            })?;
        Ok(Self {
            path: path.to_path_buf(),
            sender,
            thread: Some(thread),
            error,
            totals,
        })
    }

    /// The transcript's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Queues `event` for writing if it belongs in the transcript. Returns the first write
    /// error seen so far, so the caller can tell the user the transcript is incomplete.
    pub fn append(&mut self, event: &Event) -> Result<(), SessionError> {
        if let Some(error) = self.take_error() {
            return Err(error);
        }
        if !is_persisted(event) {
            return Ok(());
        }
        let finished = matches!(event, Event::RunFinished { .. });
        if finished {
            self.totals.add_run(event);
        }
        let record = Record {
            ts: now(),
            event: event.clone(),
            totals: finished.then_some(self.totals),
        };
        let mut text = serde_json::to_string(&record).map_err(|e| SessionError::Io {
            path: self.path.clone(),
            source: std::io::Error::other(e),
        })?;
        text.push('\n');
        // The thread only stops after `Close`, so a send can fail only if it panicked; that is
        // reported like a write error.
        if self
            .sender
            .send(Message::Line {
                text,
                sync: finished,
            })
            .is_err()
        {
            return Err(SessionError::Io {
                path: self.path.clone(),
                source: std::io::Error::other("the transcript writer stopped"),
            });
        }
        Ok(())
    }

    /// Totals over the session so far.
    pub fn totals(&self) -> Totals {
        self.totals
    }

    fn take_error(&self) -> Option<SessionError> {
        let guard = match self.error.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        guard.as_ref().map(|message| SessionError::Io {
            path: self.path.clone(),
            source: std::io::Error::other(message.clone()),
        })
    }

    /// Writes everything queued, syncs the file and stops the writer thread.
    pub fn close(mut self) -> Result<(), SessionError> {
        self.shutdown();
        match self.take_error() {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }

    fn shutdown(&mut self) {
        if let Some(thread) = self.thread.take() {
            let _ = self.sender.send(Message::Close);
            let _ = thread.join();
        }
    }
}

impl Drop for TranscriptWriter {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Whether a non-empty file's last byte is not a newline.
fn ends_without_newline(file: &mut File) -> std::io::Result<bool> {
    use std::io::{Read, Seek, SeekFrom};
    let len = file.metadata()?.len();
    if len == 0 || !file.metadata()?.is_file() {
        return Ok(false);
    }
    file.seek(SeekFrom::Start(len - 1))?;
    let mut last = [0u8; 1];
    file.read_exact(&mut last)?;
    Ok(last[0] != b'\n')
}

fn write_loop(
    mut file: File,
    path: &Path,
    receiver: &mpsc::Receiver<Message>,
    error: &Mutex<Option<String>>,
) {
    let record_error = |e: std::io::Error| {
        tracing::warn!(path = %path.display(), error = %e, "cannot write the transcript");
        let mut guard = match error.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        guard.get_or_insert_with(|| e.to_string());
    };
    while let Ok(message) = receiver.recv() {
        match message {
            Message::Line { text, sync } => {
                // One write per line, so a crash leaves at most the last line torn.
                if let Err(e) = file.write_all(text.as_bytes()) {
                    record_error(e);
                    continue;
                }
                if sync && let Err(e) = file.sync_data() {
                    record_error(e);
                }
            }
            Message::Close => break,
        }
    }
    if let Err(e) = file.sync_all() {
        record_error(e);
    }
}
