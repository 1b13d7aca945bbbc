//! Read: shows a text file with line numbers, a window at a time, streaming so that a huge
//! file is never loaded whole; images, PDFs and Jupyter notebooks are shown in their own way
//! (see `media` and `notebook`).

use std::fs::File;
use std::io::{BufRead, BufReader, Cursor, Read as _};
use std::path::Path;

use async_trait::async_trait;
use serde_json::{Value, json};

use super::common::{blocking, not_found, numbered, optional_str, optional_u64, required_str};
use super::media::{self, Kind};
use super::notebook;
use crate::{FileStamp, Tool, ToolContext, ToolError, ToolOutput};

/// Lines shown when the model gives no `limit`.
const DEFAULT_LIMIT: usize = 2000;
/// Characters of one line shown before it is cut.
const MAX_LINE_CHARS: usize = 2000;
/// How much of the start of a file is inspected to tell text from binary.
const SNIFF_BYTES: usize = 8192;

/// The Read tool.
#[derive(Debug, Clone, Copy, Default)]
pub struct Read;

#[async_trait]
impl Tool for Read {
    fn name(&self) -> &str {
        "Read"
    }

    fn description(&self) -> &str {
        "Reads a file. Text comes back with its lines numbered like `cat -n` (number, tab, \
         text). Use it to look at a file before changing it: Write and Edit refuse to touch an \
         existing file that has not been read in this session. `file_path` may be absolute or \
         relative to the current directory. By default up to 2000 lines are returned from the \
         start; for long files pass `offset` (1-based first line) and `limit` (number of \
         lines) to read a window. Lines longer than 2000 characters are cut. Images (PNG, \
         JPEG, GIF, WebP) are shown to you as images, so you can look at screenshots and \
         diagrams. PDFs come back as text page by page, 20 pages at a time; pass `pages` (e.g. \
         \"1-5\", \"3\", \"2,7-9\") to choose. Jupyter notebooks (.ipynb) come back as their \
         cells with ids, sources and outputs. Directories cannot be read (use Glob, or `ls` \
         through Bash), nor can other binary files. Reading several files at once in parallel \
         calls is fine."
    }

    fn input_schema(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "file_path": {
                    "type": "string",
                    "description": "The file to read (absolute, or relative to the current directory)"
                },
                "offset": {
                    "type": "integer",
                    "minimum": 0,
                    "description": "The line number to start at (1-based). Use it with limit for files too long to read at once"
                },
                "limit": {
                    "type": "integer",
                    "minimum": 1,
                    "description": "How many lines to read (default 2000)"
                },
                "pages": {
                    "type": "string",
                    "description": "For PDFs: the pages to read, e.g. \"1-5\", \"3\" or \"2,7-9\" (default: the first 20)"
                }
            },
            "required": ["file_path"],
            "additionalProperties": false
        })
    }

    fn is_read_only(&self) -> bool {
        true
    }

    async fn call(&self, input: Value, ctx: &ToolContext) -> Result<ToolOutput, ToolError> {
        let path = ctx.resolve_path(required_str(&input, "file_path")?);
        let offset = optional_u64(&input, "offset")?.unwrap_or(1).max(1);
        let limit = optional_u64(&input, "limit")?.map_or(DEFAULT_LIMIT as u64, |l| l.max(1));
        let offset = usize::try_from(offset).unwrap_or(usize::MAX);
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let pages = optional_str(&input, "pages")?.map(str::to_string);
        let ctx = ctx.clone();
        blocking(move || {
            if let Some((output, stamp)) = read_special(&path, pages.as_deref())? {
                ctx.record_read_as(&path, stamp);
                return Ok(output);
            }
            if pages.is_some() {
                return Err(ToolError::InvalidInput(format!(
                    "`pages` is for PDF files, and {} is not one; use offset and limit to read \
                     part of a text file.",
                    path.display()
                )));
            }
            let (output, stamp) = read_window(&path, &ctx, offset, limit)?;
            ctx.record_read_as(&path, stamp);
            Ok(output)
        })
        .await
    }
}

/// Reads an image, a PDF or a notebook, told by its first bytes (notebooks by their name);
/// `None` for anything else, including paths that do not exist (the text reader explains).
fn read_special(
    path: &Path,
    pages: Option<&str>,
) -> Result<Option<(ToolOutput, FileStamp)>, ToolError> {
    let Ok(meta) = std::fs::metadata(path) else {
        return Ok(None);
    };
    if !meta.is_file() {
        return Ok(None);
    }
    let stamp = FileStamp {
        modified: meta.modified().ok(),
    };
    let mut head = Vec::with_capacity(16);
    File::open(path)
        .and_then(|f| f.take(16).read_to_end(&mut head))
        .map_err(|source| ToolError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    let output = match media::sniff(&head) {
        Some(Kind::Image(kind)) => media::read_image(path, kind, meta.len())?,
        Some(Kind::Pdf) => media::read_pdf(path, meta.len(), pages)?,
        None if notebook::is_notebook(path) && pages.is_none() => {
            notebook::read_notebook(path, meta.len())?
        }
        None => return Ok(None),
    };
    Ok(Some((output, stamp)))
}

/// Reads lines `offset..offset+limit` (1-based) of `path` and formats them for the model;
/// also returns the file's stamp from before the read.
fn read_window(
    path: &Path,
    ctx: &ToolContext,
    offset: usize,
    limit: usize,
) -> Result<(ToolOutput, FileStamp), ToolError> {
    let cwd = &ctx.current_dir();
    let io_error = |source| ToolError::Io {
        path: path.to_path_buf(),
        source,
    };
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(not_found(path, cwd)),
        Err(e) => return Err(io_error(e)),
    };
    if meta.is_dir() {
        return Err(ToolError::InvalidInput(format!(
            "{} is a directory, not a file. To see what it contains use Glob (e.g. pattern \
             \"*\" with this path) or Bash `ls`.",
            path.display()
        )));
    }
    if !meta.is_file() {
        // Opening a FIFO would block forever; devices and sockets are not files to show.
        return Err(ToolError::InvalidInput(format!(
            "{} is not a regular file (it is a device, pipe or socket), so Read cannot show \
             it. Use Bash if you need to inspect it.",
            path.display()
        )));
    }
    let stamp = FileStamp {
        modified: meta.modified().ok(),
    };
    let mut file = File::open(path).map_err(io_error)?;
    let mut sniff = Vec::with_capacity(SNIFF_BYTES);
    file.by_ref()
        .take(SNIFF_BYTES as u64)
        .read_to_end(&mut sniff)
        .map_err(io_error)?;
    if looks_binary(&sniff) {
        return Err(ToolError::Failed(format!(
            "{} is a binary file ({} bytes) and cannot be shown as text. Inspect it with a \
             suitable command through Bash instead (e.g. `file`, `xxd | head`).",
            path.display(),
            meta.len()
        )));
    }
    // An editor's text (with its unsaved changes) replaces the disk's, once the disk has shown
    // it is a text file.
    let source: Box<dyn std::io::Read> = match ctx.editor.as_ref().and_then(|e| e.read_text(path)) {
        Some(Ok(text)) => Box::new(Cursor::new(text.into_bytes())),
        Some(Err(e)) => {
            return Err(ToolError::Failed(format!(
                "the editor could not read {}: {e}",
                path.display()
            )));
        }
        None => Box::new(Cursor::new(sniff).chain(file)),
    };
    let mut reader = BufReader::with_capacity(64 * 1024, source);

    let mut shown: Vec<String> = Vec::new();
    let mut line = Vec::new();
    let mut line_number = 0usize;
    let last_wanted = offset.saturating_add(limit - 1);
    loop {
        let keep = line_number + 1 >= offset && line_number < last_wanted;
        let Some(overflow_chars) = next_line(&mut reader, &mut line, keep).map_err(io_error)?
        else {
            break;
        };
        line_number += 1;
        if keep {
            shown.push(render_line(&line, overflow_chars));
        }
        if line_number >= last_wanted {
            line_number += count_remaining_lines(&mut reader).map_err(io_error)?;
            break;
        }
    }
    let total_lines = line_number;

    let display = path.display().to_string();
    if total_lines == 0 {
        let output = ToolOutput {
            content: format!("(The file {display} exists but is empty.)"),
            structured: Some(file_json(&display, "", 0, 1, 0)),
            images: Vec::new(),
        };
        return Ok((output, stamp));
    }
    if offset > total_lines {
        return Err(ToolError::InvalidInput(format!(
            "{display} has {total_lines} line{}, so offset {offset} is past its end. Use an \
             offset between 1 and {total_lines}.",
            if total_lines == 1 { "" } else { "s" }
        )));
    }
    let end = offset + shown.len() - 1;
    let mut content = shown
        .iter()
        .enumerate()
        .map(|(i, text)| numbered(offset + i, text))
        .collect::<Vec<_>>()
        .join("\n");
    if end < total_lines {
        content.push_str(&format!(
            "\n\n(Showing lines {offset}-{end} of {total_lines}. To read more, call Read again \
             with offset={} and a limit.)",
            end + 1
        ));
    }
    let structured = file_json(
        &display,
        &shown.join("\n"),
        shown.len(),
        offset,
        total_lines,
    );
    let output = ToolOutput {
        content,
        structured: Some(structured),
        images: Vec::new(),
    };
    Ok((output, stamp))
}

fn file_json(
    path: &str,
    content: &str,
    num_lines: usize,
    start_line: usize,
    total_lines: usize,
) -> Value {
    json!({
        "type": "text",
        "file": {
            "filePath": path,
            "content": content,
            "numLines": num_lines,
            "startLine": start_line,
            "totalLines": total_lines,
        }
    })
}

/// Reads one line. With `keep`, its first bytes (enough for [`MAX_LINE_CHARS`] characters)
/// go into `buf` and the characters beyond are only counted, so a gigabyte-long line costs no
/// memory. Returns `None` at end of file, else the number of characters not kept.
fn next_line(
    reader: &mut impl BufRead,
    buf: &mut Vec<u8>,
    keep: bool,
) -> std::io::Result<Option<usize>> {
    // Four bytes per character at most, plus room for a trailing "\r\n".
    const CAP: usize = MAX_LINE_CHARS * 4 + 2;
    buf.clear();
    let mut any = false;
    let mut overflow_chars = 0usize;
    loop {
        let chunk = reader.fill_buf()?;
        if chunk.is_empty() {
            return Ok(any.then_some(overflow_chars));
        }
        any = true;
        let (part, done) = match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => (&chunk[..=i], true),
            None => (chunk, false),
        };
        if keep {
            let room = CAP.saturating_sub(buf.len()).min(part.len());
            buf.extend_from_slice(&part[..room]);
            overflow_chars += part[room..]
                .iter()
                .filter(|&&b| (b & 0xC0) != 0x80 && b != b'\n' && b != b'\r')
                .count();
        }
        let used = part.len();
        reader.consume(used);
        if done {
            return Ok(Some(overflow_chars));
        }
    }
}

/// Counts the lines left in `reader` (a last line without a newline counts).
fn count_remaining_lines(reader: &mut impl BufRead) -> std::io::Result<usize> {
    let mut lines = 0;
    let mut last = b'\n';
    loop {
        let chunk = reader.fill_buf()?;
        if chunk.is_empty() {
            break;
        }
        lines += chunk.iter().filter(|&&b| b == b'\n').count();
        if let Some(&b) = chunk.last() {
            last = b;
        }
        let used = chunk.len();
        reader.consume(used);
    }
    Ok(lines + usize::from(last != b'\n'))
}

/// The text of a line for display: no line terminator, invalid UTF-8 replaced, cut at
/// [`MAX_LINE_CHARS`] with a marker saying how much is hidden.
fn render_line(raw: &[u8], overflow_chars: usize) -> String {
    let raw = raw.strip_suffix(b"\n").unwrap_or(raw);
    let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
    let text = String::from_utf8_lossy(raw);
    let total_chars = text.chars().count() + overflow_chars;
    if total_chars <= MAX_LINE_CHARS {
        return text.into_owned();
    }
    let cut: String = text.chars().take(MAX_LINE_CHARS).collect();
    format!(
        "{cut}... [line truncated: {} more characters]",
        total_chars - MAX_LINE_CHARS
    )
}

/// Whether the start of a file says "binary": a NUL byte, or bytes that are neither UTF-8
/// nor plausible in a legacy-encoded text file.
fn looks_binary(sniff: &[u8]) -> bool {
    if sniff.contains(&0) {
        return true;
    }
    let invalid_utf8 = match std::str::from_utf8(sniff) {
        Ok(_) => false,
        // A character cut by the end of the sniff window is not evidence.
        Err(e) => e.error_len().is_some(),
    };
    if !invalid_utf8 {
        return false;
    }
    let control = sniff
        .iter()
        .filter(|&&b| b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r' | 0x0c | 0x1b))
        .count();
    let high = sniff.iter().filter(|&&b| b >= 0x80).count();
    control * 10 > sniff.len() || high * 10 > sniff.len() * 3
}

#[cfg(test)]
fn read(path: &Path, offset: usize, limit: usize) -> Result<ToolOutput, ToolError> {
    let ctx = ToolContext::new(
        Path::new("/"),
        std::env::temp_dir(),
        tokio_util::sync::CancellationToken::new(),
    );
    read_window(path, &ctx, offset, limit).map(|(output, _)| output)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_numbered_and_terminators_stripped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.txt");
        std::fs::write(&path, "one\r\ntwo\n\nfour").unwrap();
        let out = read(&path, 1, 10).unwrap();
        assert_eq!(
            out.content,
            "     1\tone\n     2\ttwo\n     3\t\n     4\tfour"
        );
        let file = &out.structured.unwrap()["file"];
        assert_eq!(file["numLines"], 4);
        assert_eq!(file["totalLines"], 4);
        assert_eq!(file["content"], "one\ntwo\n\nfour");
    }

    #[test]
    fn a_huge_line_is_cut_without_being_kept_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("long.txt");
        let long = "é".repeat(100_000);
        std::fs::write(&path, format!("{long}\nshort\n")).unwrap();
        let out = read(&path, 1, 10).unwrap();
        let first = out.content.lines().next().unwrap();
        assert!(first.starts_with(&format!("     1\t{}", "é".repeat(2000))));
        assert!(
            first.ends_with("... [line truncated: 98000 more characters]"),
            "{}",
            &first[first.len() - 80..]
        );
        assert!(out.content.ends_with("     2\tshort"));
    }

    #[test]
    fn binary_detection() {
        assert!(looks_binary(b"abc\0def"));
        assert!(!looks_binary("plain text ✓\n".as_bytes()));
        // Latin-1 text: invalid UTF-8 but clearly text.
        assert!(!looks_binary(b"caf\xe9 cr\xe8me br\xfbl\xe9e, a dessert\n"));
        assert!(looks_binary(&[
            0xff, 0xfe, 0x01, 0x02, 0x90, 0x80, 0x03, 0x04
        ]));
        // A multibyte character cut at the end of the window is still text.
        let mut cut = "x".repeat(10).into_bytes();
        cut.extend_from_slice(&"é".as_bytes()[..1]);
        assert!(!looks_binary(&cut));
    }
}
