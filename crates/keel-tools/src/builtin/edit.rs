//! Edit: replaces an exact string in a file the model has read, keeping the file's line
//! endings, final newline and permissions.

use std::path::Path;

use async_trait::async_trait;
use serde_json::{Value, json};

use super::common::{
    blocking, not_found, numbered, optional_bool, read_file, required_str, write_file,
};
use crate::{Tool, ToolContext, ToolError, ToolOutput};

/// Lines of unchanged text shown around a change, in the snippet and in the patch hunks.
const CONTEXT_LINES: usize = 3;
/// The longest snippet of the edited file echoed back to the model.
const MAX_SNIPPET_LINES: usize = 40;

/// The Edit tool.
#[derive(Debug, Clone, Copy, Default)]
pub struct Edit;

#[async_trait]
impl Tool for Edit {
    fn name(&self) -> &str {
        "Edit"
    }

    fn description(&self) -> &str {
        "Changes a file by replacing `old_string` with `new_string`. The file must have been \
         read with Read in this session. `old_string` must match the file exactly, including \
         whitespace and indentation, and without the line-number prefix that Read shows; it \
         must occur exactly once unless `replace_all` is true, so include enough surrounding \
         lines to make it unique. Use `replace_all` to rename something throughout the file. \
         An empty `old_string` creates a file that does not exist yet. Line endings (LF or \
         CRLF) and file permissions are kept."
    }

    fn input_schema(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "file_path": {
                    "type": "string",
                    "description": "The file to change (absolute, or relative to the current directory)"
                },
                "old_string": {
                    "type": "string",
                    "description": "The exact text to replace"
                },
                "new_string": {
                    "type": "string",
                    "description": "The text to put in its place (must differ from old_string)"
                },
                "replace_all": {
                    "type": "boolean",
                    "default": false,
                    "description": "Replace every occurrence of old_string instead of exactly one"
                }
            },
            "required": ["file_path", "old_string", "new_string"],
            "additionalProperties": false
        })
    }

    fn is_read_only(&self) -> bool {
        false
    }

    async fn call(&self, input: Value, ctx: &ToolContext) -> Result<ToolOutput, ToolError> {
        let path = ctx.resolve_path(required_str(&input, "file_path")?);
        let old = required_str(&input, "old_string")?.to_string();
        let new = required_str(&input, "new_string")?.to_string();
        let replace_all = optional_bool(&input, "replace_all")?.unwrap_or(false);
        if old == new {
            return Err(ToolError::InvalidInput(
                "old_string and new_string are identical, so there is nothing to change. Give \
                 the new text in new_string."
                    .to_string(),
            ));
        }
        let ctx = ctx.clone();
        blocking(move || edit_file(&path, &old, &new, replace_all, &ctx)).await
    }
}

fn edit_file(
    path: &Path,
    old: &str,
    new: &str,
    replace_all: bool,
    ctx: &ToolContext,
) -> Result<ToolOutput, ToolError> {
    let display = path.display().to_string();
    let io_error = |source| ToolError::Io {
        path: path.to_path_buf(),
        source,
    };
    let original = match read_file(ctx, path) {
        Ok(bytes) => Some(bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) if path.is_dir() => {
            return Err(ToolError::InvalidInput(format!(
                "{display} is a directory, not a file ({e})."
            )));
        }
        Err(e) => return Err(io_error(e)),
    };
    let Some(original) = original else {
        if !old.is_empty() {
            return Err(not_found(path, &ctx.current_dir()));
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|source| ToolError::Io {
                path: parent.to_path_buf(),
                source,
            })?;
        }
        write_file(ctx, path, new)?;
        ctx.record_read(path);
        let change = Change {
            old_start: 0,
            old_len: 0,
            new_start: 0,
            new_len: new.len(),
        };
        return Ok(ToolOutput {
            content: format!("File created successfully at: {display}"),
            structured: Some(structured(
                &display,
                old,
                new,
                replace_all,
                "",
                new,
                &[change],
            )),
            images: Vec::new(),
        });
    };
    ctx.ensure_read_and_unchanged(path)?;
    let original = String::from_utf8(original).map_err(|_| {
        ToolError::Failed(format!(
            "{display} is not valid UTF-8 text, so Edit cannot change it safely. Use Bash \
             (e.g. sed or a script) for files in other encodings."
        ))
    })?;

    let (updated, changes) = if old.is_empty() {
        if !original.is_empty() {
            return Err(ToolError::InvalidInput(format!(
                "old_string is empty, but {display} is not. Give the exact text to replace, or \
                 use Write to replace the whole file."
            )));
        }
        let change = Change {
            old_start: 0,
            old_len: 0,
            new_start: 0,
            new_len: new.len(),
        };
        (new.to_string(), vec![change])
    } else {
        replace(&original, old, new, replace_all, &display)?
    };

    write_file(ctx, path, &updated)?;
    ctx.record_read(path);

    let mut content = if changes.len() > 1 {
        format!(
            "The file {display} has been updated: all {} occurrences were replaced. The first \
             edited region (`cat -n` style):\n",
            changes.len()
        )
    } else {
        format!("The file {display} has been updated. The edited region (`cat -n` style):\n")
    };
    if let Some(first) = changes.first() {
        content.push_str(&snippet(&updated, first));
    }
    Ok(ToolOutput {
        content,
        structured: Some(structured(
            &display,
            old,
            new,
            replace_all,
            &original,
            &updated,
            &changes,
        )),
        images: Vec::new(),
    })
}

/// One replacement: where the old text was in the original and where its replacement is in
/// the result (byte offsets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Change {
    old_start: usize,
    old_len: usize,
    new_start: usize,
    new_len: usize,
}

/// Applies the replacement to `original`, matching in the file's own line-ending style.
fn replace(
    original: &str,
    old: &str,
    new: &str,
    replace_all: bool,
    display: &str,
) -> Result<(String, Vec<Change>), ToolError> {
    let crlf = uses_crlf(original);
    let mut candidates = Vec::new();
    if crlf {
        // Models write `\n`; in a CRLF file the same text has `\r\n`.
        candidates.push((to_crlf(old), to_crlf(new)));
    }
    candidates.push((old.to_string(), new.to_string()));
    let mut chosen = None;
    for (old, new) in candidates {
        let starts: Vec<usize> = original.match_indices(&old).map(|(i, _)| i).collect();
        if !starts.is_empty() {
            chosen = Some((old, new, starts));
            break;
        }
    }
    let Some((old, new, starts)) = chosen else {
        let mut message = format!(
            "String to replace not found in {display}. Read the file again and copy the text \
             exactly as it appears there, matching whitespace and indentation."
        );
        if old.lines().any(looks_like_read_prefix) {
            message.push_str(
                " Leave out the line-number prefix (spaces, number, tab) that Read adds.",
            );
        }
        message.push_str(&format!("\nString: {old}"));
        return Err(ToolError::Failed(message));
    };
    if starts.len() > 1 && !replace_all {
        return Err(ToolError::Failed(format!(
            "Found {} matches of the string to replace in {display}, but replace_all is \
             false. To replace every occurrence set replace_all to true; to replace only one, \
             provide more context to uniquely identify the instance.\nString: {old}",
            starts.len()
        )));
    }
    let starts = if replace_all { starts } else { vec![starts[0]] };

    let mut updated = String::with_capacity(original.len() + starts.len() * new.len());
    let mut changes = Vec::with_capacity(starts.len());
    let mut copied_to = 0;
    for start in starts {
        updated.push_str(&original[copied_to..start]);
        changes.push(Change {
            old_start: start,
            old_len: old.len(),
            new_start: updated.len(),
            new_len: new.len(),
        });
        updated.push_str(&new);
        copied_to = start + old.len();
    }
    updated.push_str(&original[copied_to..]);

    // An edit that swallows the final newline (e.g. old "x\n", new "y") keeps it: files end
    // with a newline unless they did not before.
    let ending = if crlf { "\r\n" } else { "\n" };
    if original.ends_with('\n') && !updated.is_empty() && !updated.ends_with('\n') {
        updated.push_str(ending);
    }
    Ok((updated, changes))
}

/// Whether the file's first line ends in CRLF (its style for the rest, as editors assume).
fn uses_crlf(text: &str) -> bool {
    match text.find('\n') {
        Some(i) => i > 0 && text.as_bytes()[i - 1] == b'\r',
        None => false,
    }
}

fn to_crlf(text: &str) -> String {
    text.replace("\r\n", "\n").replace('\n', "\r\n")
}

/// `   12\tcode` — what a line copied from Read's output looks like.
fn looks_like_read_prefix(line: &str) -> bool {
    let trimmed = line.trim_start_matches(' ');
    let digits = trimmed.bytes().take_while(u8::is_ascii_digit).count();
    digits > 0 && trimmed[digits..].starts_with('\t')
}

/// The 0-based line holding byte `offset`.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
}

fn at_line_start(text: &str, offset: usize) -> bool {
    offset == 0 || text.as_bytes().get(offset - 1) == Some(&b'\n')
}

/// The lines of `text` without terminators (no phantom empty line after a final newline).
fn split_lines(text: &str) -> Vec<&str> {
    let body = text.strip_suffix('\n').unwrap_or(text);
    if text.is_empty() {
        return Vec::new();
    }
    body.split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .collect()
}

/// The numbered lines around a change in the edited text.
fn snippet(updated: &str, change: &Change) -> String {
    let lines = split_lines(updated);
    if lines.is_empty() {
        return "(the file is now empty)".to_string();
    }
    let first = line_of(updated, change.new_start);
    let last = line_of(updated, change.new_start + change.new_len.saturating_sub(1)).max(first);
    let from = first.saturating_sub(CONTEXT_LINES);
    let to = (last + CONTEXT_LINES + 1)
        .min(lines.len())
        .min(from + MAX_SNIPPET_LINES);
    (from..to)
        .map(|i| numbered(i + 1, lines[i]))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Line ranges (0-based, half-open as start + count) a change touches in the old and new text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct LineChange {
    old_first: usize,
    old_count: usize,
    new_first: usize,
    new_count: usize,
}

fn line_changes(original: &str, updated: &str, changes: &[Change]) -> Vec<LineChange> {
    let old_total = split_lines(original).len();
    let new_total = split_lines(updated).len();
    let mut out: Vec<LineChange> = Vec::new();
    for change in changes {
        let old_end = change.old_start + change.old_len;
        let new_end = change.new_start + change.new_len;
        let old_first = line_of(original, change.old_start);
        let new_first = line_of(updated, change.new_start);
        // The line where the change ends is touched too, unless both sides end exactly at a
        // line start (the change covered whole lines).
        let whole_lines = at_line_start(original, old_end) && at_line_start(updated, new_end);
        let mut old_last = line_of(original, old_end) + usize::from(!whole_lines);
        let mut new_last = line_of(updated, new_end) + usize::from(!whole_lines);
        old_last = old_last.min(old_total).max(old_first);
        new_last = new_last.min(new_total).max(new_first);
        let next = LineChange {
            old_first,
            old_count: old_last - old_first,
            new_first,
            new_count: new_last - new_first,
        };
        match out.last_mut() {
            // Two replacements on one line: one change covering both.
            Some(prev) if next.old_first < prev.old_first + prev.old_count => {
                let old_end = (prev.old_first + prev.old_count).max(old_last);
                let new_end = (prev.new_first + prev.new_count).max(new_last);
                prev.old_count = old_end - prev.old_first;
                prev.new_count = new_end - prev.new_first;
            }
            _ => out.push(next),
        }
    }
    out
}

/// Unified-diff hunks in the shape frontends expect (`oldStart`, `oldLines`, `newStart`,
/// `newLines`, `lines` prefixed with ` `, `-`, `+`), computed from the known replacements
/// rather than by diffing.
fn structured_patch(original: &str, updated: &str, changes: &[Change]) -> Vec<Value> {
    let old_lines = split_lines(original);
    let new_lines = split_lines(updated);
    let line_changes = line_changes(original, updated, changes);
    let mut groups: Vec<Vec<LineChange>> = Vec::new();
    for change in line_changes {
        match groups
            .last_mut()
            .and_then(|g| g.last().copied().map(|last| (g, last)))
        {
            Some((group, last))
                if change.old_first <= last.old_first + last.old_count + 2 * CONTEXT_LINES =>
            {
                group.push(change)
            }
            _ => groups.push(vec![change]),
        }
    }
    let mut hunks = Vec::new();
    for group in groups {
        let (Some(first), Some(last)) = (group.first(), group.last()) else {
            continue;
        };
        let old_start = first.old_first.saturating_sub(CONTEXT_LINES);
        let new_start = first.new_first - (first.old_first - old_start);
        let old_end = (last.old_first + last.old_count + CONTEXT_LINES).min(old_lines.len());
        let mut lines: Vec<String> = Vec::new();
        let mut cursor = old_start;
        for change in &group {
            for line in &old_lines[cursor..change.old_first] {
                lines.push(format!(" {line}"));
            }
            for line in &old_lines[change.old_first..change.old_first + change.old_count] {
                lines.push(format!("-{line}"));
            }
            for line in &new_lines[change.new_first..change.new_first + change.new_count] {
                lines.push(format!("+{line}"));
            }
            cursor = change.old_first + change.old_count;
        }
        for line in &old_lines[cursor..old_end] {
            lines.push(format!(" {line}"));
        }
        let old_count = old_end - old_start;
        let new_count = group
            .iter()
            .fold(old_count, |n, c| n - c.old_count + c.new_count);
        // Unified diff numbering: 1-based, and an empty side names the line before it.
        let number = |start: usize, count: usize| if count == 0 { start } else { start + 1 };
        hunks.push(json!({
            "oldStart": number(old_start, old_count),
            "oldLines": old_count,
            "newStart": number(new_start, new_count),
            "newLines": new_count,
            "lines": lines,
        }));
    }
    hunks
}

fn structured(
    display: &str,
    old: &str,
    new: &str,
    replace_all: bool,
    original: &str,
    updated: &str,
    changes: &[Change],
) -> Value {
    json!({
        "filePath": display,
        "oldString": old,
        "newString": new,
        "replaceAll": replace_all,
        "structuredPatch": structured_patch(original, updated, changes),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(original: &str, old: &str, new: &str, all: bool) -> (String, Vec<Value>) {
        let (updated, changes) = replace(original, old, new, all, "f").unwrap();
        let patch = structured_patch(original, &updated, &changes);
        (updated, patch)
    }

    #[test]
    fn a_one_line_change_gives_one_hunk_with_context() {
        let original = "a\nb\nc\nd\ne\nf\ng\nh\n";
        let (updated, patch) = apply(original, "e", "E", false);
        assert_eq!(updated, "a\nb\nc\nd\nE\nf\ng\nh\n");
        assert_eq!(
            patch,
            [json!({
                "oldStart": 2, "oldLines": 7, "newStart": 2, "newLines": 7,
                "lines": [" b", " c", " d", "-e", "+E", " f", " g", " h"]
            })]
        );
    }

    #[test]
    fn deleting_whole_lines_and_inserting_lines() {
        let original = "one\ntwo\nthree\n";
        let (updated, patch) = apply(original, "two\n", "", false);
        assert_eq!(updated, "one\nthree\n");
        assert_eq!(patch[0]["lines"], json!([" one", "-two", " three"]));
        assert_eq!(
            (patch[0]["oldLines"].as_u64(), patch[0]["newLines"].as_u64()),
            (Some(3), Some(2))
        );

        let (updated, patch) = apply(original, "two\n", "two\n2.5\n", false);
        assert_eq!(updated, "one\ntwo\n2.5\nthree\n");
        assert_eq!(
            patch[0]["lines"],
            json!([" one", "-two", "+two", "+2.5", " three"])
        );
    }

    #[test]
    fn joining_lines_marks_both_as_changed() {
        let (updated, patch) = apply("foo\nbar\nbaz\n", "foo\n", "x", false);
        assert_eq!(updated, "xbar\nbaz\n");
        assert_eq!(patch[0]["lines"], json!(["-foo", "-bar", "+xbar", " baz"]));
    }

    #[test]
    fn replace_all_on_one_line_and_far_apart() {
        let original = format!("x x\n{}x\n", "-\n".repeat(10));
        let (updated, patch) = apply(&original, "x", "y", true);
        assert_eq!(updated, format!("y y\n{}y\n", "-\n".repeat(10)));
        assert_eq!(patch.len(), 2, "{patch:?}");
        assert_eq!(patch[0]["lines"], json!(["-x x", "+y y", " -", " -", " -"]));
        assert_eq!(patch[1]["lines"], json!([" -", " -", " -", "-x", "+y"]));
        assert_eq!(patch[1]["oldStart"], 9);
    }

    #[test]
    fn crlf_files_are_matched_and_kept_crlf() {
        let (updated, _) = apply("a\r\nb\r\nc\r\n", "a\nb", "A\nB", false);
        assert_eq!(updated, "A\r\nB\r\nc\r\n");
    }

    #[test]
    fn the_final_newline_survives_an_edit_that_swallows_it() {
        let (updated, _) = apply("a\nb\n", "b\n", "c", false);
        assert_eq!(updated, "a\nc\n");
        let (updated, _) = apply("a\nb", "b", "c", false);
        assert_eq!(updated, "a\nc");
    }

    #[test]
    fn read_prefixes_are_recognised() {
        assert!(looks_like_read_prefix("     2\t    41"));
        assert!(!looks_like_read_prefix("    41"));
        assert!(!looks_like_read_prefix("x\ty"));
    }
}
