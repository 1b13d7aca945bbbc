//! Durable files shared by several processes: atomic replacement (temp file and rename, so a
//! reader sees the old or the new content, never half), advisory locks that serialise writers
//! across processes, and appends of whole JSON lines.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::TasksError;

/// An exclusive advisory lock on a file, held until dropped. Every writer of a shared folder
/// takes the folder's lock first, so read-modify-write cycles of several processes never
/// interleave. The kernel releases the lock if the process dies, so a crash cannot wedge it.
#[derive(Debug)]
pub struct FileLock {
    file: File,
    path: PathBuf,
}

impl FileLock {
    /// Blocks until the lock on `path` (created if missing) is ours.
    pub fn acquire(path: &Path) -> Result<Self, TasksError> {
        if let Some(dir) = path.parent() {
            create_dir(dir)?;
        }
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(path)
            .map_err(|source| TasksError::io(path, source))?;
        file.lock().map_err(|source| TasksError::io(path, source))?;
        Ok(Self {
            file,
            path: path.to_path_buf(),
        })
    }

    /// The lock file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        // Closing the file releases the lock anyway; unlocking first makes it prompt.
        let _ = self.file.unlock();
    }
}

/// Creates a folder and its parents.
pub fn create_dir(dir: &Path) -> Result<(), TasksError> {
    std::fs::create_dir_all(dir).map_err(|source| TasksError::io(dir, source))
}

/// Writes a `*` `.gitignore` into `dir` (making `dir` if needed) unless it has one, so git
/// ignores everything in it (the ignore file too).
pub fn ensure_ignored(dir: &Path) -> Result<(), TasksError> {
    let ignore = dir.join(".gitignore");
    if !ignore.exists() {
        write_atomic(&ignore, b"*\n")?;
    }
    Ok(())
}

/// Replaces `path` with `bytes` atomically: written to a temp file in the same folder, synced,
/// then renamed over the old file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), TasksError> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    create_dir(dir)?;
    let mut temp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .map_err(|source| TasksError::io(dir, source))?;
    temp.write_all(bytes)
        .and_then(|()| temp.as_file().sync_all())
        .map_err(|source| TasksError::io(temp.path(), source))?;
    temp.persist(path)
        .map_err(|error| TasksError::io(path, error.error))?;
    Ok(())
}

/// Writes `value` as pretty JSON, atomically.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), TasksError> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(|source| TasksError::Json {
        path: path.to_path_buf(),
        source,
    })?;
    bytes.push(b'\n');
    write_atomic(path, &bytes)
}

/// Reads a JSON file; `Ok(None)` when it does not exist.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, TasksError> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(TasksError::io(path, source)),
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|source| TasksError::Json {
            path: path.to_path_buf(),
            source,
        })
}

/// Appends one JSON line to `path` (created if missing) and syncs it. Callers hold the
/// folder's lock, so lines of concurrent writers never interleave.
pub fn append_json_line<T: Serialize>(path: &Path, value: &T) -> Result<(), TasksError> {
    if let Some(dir) = path.parent() {
        create_dir(dir)?;
    }
    let mut line = serde_json::to_vec(value).map_err(|source| TasksError::Json {
        path: path.to_path_buf(),
        source,
    })?;
    line.push(b'\n');
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|source| TasksError::io(path, source))?;
    file.write_all(&line)
        .and_then(|()| file.sync_data())
        .map_err(|source| TasksError::io(path, source))
}

/// Reads a JSONL file's records from byte `offset` on; a line that does not parse (a torn last
/// line after a crash) is skipped. Returns the records and the offset after the last whole line.
pub fn read_json_lines<T: DeserializeOwned>(
    path: &Path,
    offset: u64,
) -> Result<(Vec<T>, u64), TasksError> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
        Err(source) => return Err(TasksError::io(path, source)),
    };
    let start = usize::try_from(offset)
        .unwrap_or(usize::MAX)
        .min(bytes.len());
    let mut records = Vec::new();
    let mut consumed = start;
    let rest = &bytes[start..];
    let mut line_start = 0;
    for (index, byte) in rest.iter().enumerate() {
        if *byte != b'\n' {
            continue;
        }
        let line = &rest[line_start..index];
        line_start = index + 1;
        consumed = start + line_start;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match serde_json::from_slice(line) {
            Ok(record) => records.push(record),
            Err(error) => tracing::warn!(
                path = %path.display(),
                %error,
                "skipping an unreadable line"
            ),
        }
    }
    Ok((records, u64::try_from(consumed).unwrap_or(u64::MAX)))
}

/// The current time as RFC 3339 with milliseconds, UTC: what every record on disk carries.
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_writes_replace_and_json_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b.json");
        write_json(&path, &serde_json::json!({"x": 1})).unwrap();
        write_json(&path, &serde_json::json!({"x": 2})).unwrap();
        let back: serde_json::Value = read_json(&path).unwrap().unwrap();
        assert_eq!(back["x"], 2);
        assert!(
            read_json::<serde_json::Value>(&dir.path().join("none"))
                .unwrap()
                .is_none()
        );
        // No temp files are left behind.
        let names: Vec<_> = std::fs::read_dir(dir.path().join("a"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }

    #[test]
    fn json_lines_skip_a_torn_tail_and_resume_from_an_offset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.jsonl");
        append_json_line(&path, &serde_json::json!({"n": 1})).unwrap();
        append_json_line(&path, &serde_json::json!({"n": 2})).unwrap();
        let (all, offset) = read_json_lines::<serde_json::Value>(&path, 0).unwrap();
        assert_eq!(all.len(), 2);
        // A torn line without its newline is not consumed.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"{\"n\":")
            .unwrap();
        let (more, again) = read_json_lines::<serde_json::Value>(&path, offset).unwrap();
        assert!(more.is_empty());
        assert_eq!(again, offset);
    }

    #[test]
    fn a_lock_excludes_a_second_holder_until_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".lock");
        let first = FileLock::acquire(&path).unwrap();
        let other = OpenOptions::new().write(true).open(&path).unwrap();
        assert!(other.try_lock().is_err());
        drop(first);
        assert!(other.try_lock().is_ok());
    }
}
