//! Pieces the built-in tools share: reading their inputs, running blocking work off the async
//! runtime, atomic file replacement and "did you mean" hints.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::{ToolContext, ToolError};

/// Runs blocking file work on tokio's blocking pool so the runtime threads stay free. A panic
/// in `work` is re-raised here, where the registry turns it into an error result.
pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ToolError> + Send + 'static,
) -> Result<T, ToolError> {
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result,
        Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
        Err(_) => Err(ToolError::Failed(
            "the operation was cancelled because keel is shutting down".to_string(),
        )),
    }
}

/// A required string parameter (the registry has checked the schema; direct callers may not).
pub(crate) fn required_str<'a>(input: &'a Value, key: &str) -> Result<&'a str, ToolError> {
    input[key].as_str().ok_or_else(|| {
        ToolError::InvalidInput(format!("The required parameter `{key}` is missing"))
    })
}

/// An optional string parameter.
pub(crate) fn optional_str<'a>(input: &'a Value, key: &str) -> Result<Option<&'a str>, ToolError> {
    match &input[key] {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s)),
        other => Err(ToolError::InvalidInput(format!(
            "The parameter `{key}` must be a string, got {other}"
        ))),
    }
}

/// An optional non-negative integer parameter (`5.0` counts as an integer, as in JSON Schema).
pub(crate) fn optional_u64(input: &Value, key: &str) -> Result<Option<u64>, ToolError> {
    match &input[key] {
        Value::Null => Ok(None),
        Value::Number(n) => {
            if let Some(v) = n.as_u64() {
                return Ok(Some(v));
            }
            match n.as_f64() {
                Some(f) if f >= 0.0 && f.fract() == 0.0 && f <= u64::MAX as f64 => {
                    Ok(Some(f as u64))
                }
                _ => Err(ToolError::InvalidInput(format!(
                    "The parameter `{key}` must be a non-negative integer, got {n}"
                ))),
            }
        }
        other => Err(ToolError::InvalidInput(format!(
            "The parameter `{key}` must be a non-negative integer, got {other}"
        ))),
    }
}

/// An optional boolean parameter.
pub(crate) fn optional_bool(input: &Value, key: &str) -> Result<Option<bool>, ToolError> {
    match &input[key] {
        Value::Null => Ok(None),
        Value::Bool(b) => Ok(Some(*b)),
        other => Err(ToolError::InvalidInput(format!(
            "The parameter `{key}` must be true or false, got {other}"
        ))),
    }
}

/// `cat -n` style: the line number right-aligned in six columns, a tab, the text.
pub(crate) fn numbered(line_number: usize, text: &str) -> String {
    format!("{line_number:>6}\t{text}")
}

/// The error for a path that does not exist, with close matches from its directory (or the
/// current one) so a typo is one step from fixed.
pub(crate) fn not_found(path: &Path, cwd: &Path) -> ToolError {
    let mut message = format!("File does not exist: {}", path.display());
    let mut candidates = similar_names(path);
    if candidates.is_empty()
        && let Some(name) = path.file_name()
    {
        candidates = similar_names(&cwd.join(name));
    }
    if !candidates.is_empty() {
        let listed: Vec<String> = candidates.iter().map(|c| c.display().to_string()).collect();
        message.push_str(&format!("\nDid you mean {}?", listed.join(" or ")));
    }
    message.push_str(&format!(
        "\n(Relative paths are resolved against the current directory, {}.)",
        cwd.display()
    ));
    ToolError::Failed(message)
}

/// Entries next to `path` whose names look like a typo of its name: same name in another case,
/// the same stem with another extension, or a small edit distance.
pub(crate) fn similar_names(path: &Path) -> Vec<PathBuf> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name().and_then(|n| n.to_str())) else {
        return Vec::new();
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let wanted = name.to_lowercase();
    let wanted_stem = stem(&wanted);
    let budget = (wanted.chars().count() / 4).clamp(1, 3);
    let mut scored: Vec<(usize, PathBuf)> = entries
        .flatten()
        .filter_map(|entry| {
            let candidate = entry.file_name().to_str()?.to_string();
            let lower = candidate.to_lowercase();
            let score = if lower == wanted {
                0
            } else if stem(&lower) == wanted_stem && !wanted_stem.is_empty() {
                1
            } else {
                let distance = edit_distance(&lower, &wanted);
                if distance > budget {
                    return None;
                }
                distance + 1
            };
            Some((score, entry.path()))
        })
        .collect();
    scored.sort();
    scored.into_iter().take(3).map(|(_, p)| p).collect()
}

fn stem(name: &str) -> &str {
    match name.rfind('.') {
        Some(0) | None => name,
        Some(dot) => &name[..dot],
    }
}

/// Levenshtein distance over characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = Vec::with_capacity(b.len() + 1);
        current.push(i + 1);
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            let insertion = current[j] + 1;
            let deletion = previous[j + 1] + 1;
            current.push(substitution.min(insertion).min(deletion));
        }
        previous = current;
    }
    previous[b.len()]
}

/// A file's bytes: from the editor when it reads files for keel (its buffer may hold unsaved
/// changes) and the file exists, else from disk.
pub(crate) fn read_file(ctx: &ToolContext, path: &Path) -> std::io::Result<Vec<u8>> {
    if let Some(editor) = &ctx.editor
        && path.is_file()
        && let Some(text) = editor.read_text(path)
    {
        return text
            .map(String::into_bytes)
            .map_err(|e| std::io::Error::other(format!("the editor could not read it: {e}")));
    }
    std::fs::read(path)
}

/// Writes a file: through the editor when it writes files for keel, else atomically on disk.
pub(crate) fn write_file(ctx: &ToolContext, path: &Path, contents: &str) -> Result<(), ToolError> {
    if let Some(editor) = &ctx.editor
        && let Some(written) = editor.write_text(path, contents)
    {
        return written.map_err(|e| {
            ToolError::Failed(format!(
                "the editor could not write {}: {e}",
                path.display()
            ))
        });
    }
    atomic_write(path, contents.as_bytes())
}

/// Replaces the file at `path` with `contents` atomically: a temp file in the same directory
/// is written, synced and renamed over the target, so a crash leaves the old file or the new
/// one, never half of either. An existing file keeps its permissions; a symlink is written
/// through (its target is replaced, the link kept).
pub(crate) fn atomic_write(path: &Path, contents: &[u8]) -> Result<(), ToolError> {
    let io_error = |source| ToolError::Io {
        path: path.to_path_buf(),
        source,
    };
    let target = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let dir = match target.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let existing = std::fs::metadata(&target).ok();
    let mut builder = tempfile::Builder::new();
    builder.prefix(".keel-write-").suffix(".tmp");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        // New files get what `open(O_CREAT, 0666)` would give after the umask, like an
        // editor; the existing file's mode is reapplied below without the umask.
        let mode = existing
            .as_ref()
            .map_or(0o666, |m| m.permissions().mode() & 0o7777);
        builder.permissions(std::fs::Permissions::from_mode(mode));
    }
    let mut temp = builder.tempfile_in(&dir).map_err(io_error)?;
    temp.write_all(contents).map_err(io_error)?;
    if let Some(meta) = &existing {
        temp.as_file()
            .set_permissions(meta.permissions())
            .map_err(io_error)?;
    }
    temp.as_file().sync_all().map_err(io_error)?;
    temp.persist(&target).map_err(|e| io_error(e.error))?;
    // Make the rename itself durable; a failure here does not undo the write, so it is only
    // worth a log line.
    if let Err(error) = std::fs::File::open(&dir).and_then(|d| d.sync_all()) {
        tracing::debug!("could not sync directory {}: {error}", dir.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_counts_single_changes() {
        assert_eq!(edit_distance("main.rs", "main.rs"), 0);
        assert_eq!(edit_distance("mian.rs", "main.rs"), 2);
        assert_eq!(edit_distance("main.r", "main.rs"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
    }

    #[test]
    fn similar_names_finds_typos_and_other_extensions() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["config.toml", "README.md", "unrelated.txt"] {
            std::fs::write(dir.path().join(name), "").unwrap();
        }
        let found = similar_names(&dir.path().join("config.yaml"));
        assert_eq!(found, [dir.path().join("config.toml")]);
        let found = similar_names(&dir.path().join("readme.md"));
        assert_eq!(found, [dir.path().join("README.md")]);
        assert!(similar_names(&dir.path().join("zzzz.rs")).is_empty());
    }

    #[test]
    fn optional_integers_accept_whole_floats_only() {
        let input = serde_json::json!({"a": 5, "b": 5.0, "c": 5.5, "d": "5"});
        assert_eq!(optional_u64(&input, "a").unwrap(), Some(5));
        assert_eq!(optional_u64(&input, "b").unwrap(), Some(5));
        assert!(optional_u64(&input, "c").is_err());
        assert!(optional_u64(&input, "d").is_err());
        assert_eq!(optional_u64(&input, "missing").unwrap(), None);
    }
}
