//! Grep: searches file contents with ripgrep's own libraries, in parallel, honouring ignore
//! files, with ripgrep-style output.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use async_trait::async_trait;
use grep_regex::{RegexMatcher, RegexMatcherBuilder};
use grep_searcher::{BinaryDetection, Searcher, SearcherBuilder, Sink, SinkContext, SinkMatch};
use ignore::WalkState;
use ignore::overrides::OverrideBuilder;
use ignore::types::TypesBuilder;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::common::{blocking, optional_bool, optional_str, optional_u64, required_str};
use super::glob::{walk_entries, walker};
use crate::output::{MAX_OUTPUT_CHARS, clip};
use crate::{Tool, ToolContext, ToolError, ToolOutput};

/// Characters of a matching line shown in content mode (minified files have huge lines).
const MAX_LINE_CHARS: usize = 500;

/// Entries Grep visits on the calling thread before its walk goes parallel (see
/// `walk_entries`): searching is the expensive part, so only small trees stay on one thread.
const GREP_SEQUENTIAL_ENTRIES: usize = 64;

/// The Grep tool.
#[derive(Debug, Clone, Copy, Default)]
pub struct Grep;

#[async_trait]
impl Tool for Grep {
    fn name(&self) -> &str {
        "Grep"
    }

    fn description(&self) -> &str {
        "Searches file contents for a regular expression (ripgrep syntax, e.g. `fn \\w+_test`, \
         `log.*Error`; escape literal braces or parentheses) and is the right tool for any \
         content search: do not run grep or rg through Bash. Searches the current directory \
         unless `path` names a file or directory; files excluded by .gitignore are skipped, \
         hidden files are searched, binary files are not. Narrow the files with `glob` (e.g. \
         `*.rs`, `*.{ts,tsx}`) or `type` (ripgrep type names such as rs, py, js). \
         `output_mode` is `files_with_matches` (default: matching file paths, newest first), \
         `content` (matching lines as path:line:text, with -A/-B/-C context and -n line \
         numbers) or `count` (matches per file). Use -i for case-insensitive search, \
         `multiline` for patterns that span lines, and `head_limit`/`offset` to page through \
         long results."
    }

    fn input_schema(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "pattern": {
                    "type": "string",
                    "description": "The regular expression to search for"
                },
                "path": {
                    "type": "string",
                    "description": "The file or directory to search (default: the current directory)"
                },
                "glob": {
                    "type": "string",
                    "description": "Only search files matching this glob, e.g. \"*.js\" or \"*.{ts,tsx}\""
                },
                "output_mode": {
                    "type": "string",
                    "enum": ["content", "files_with_matches", "count"],
                    "description": "content: matching lines; files_with_matches: file paths (default); count: matches per file"
                },
                "-B": {
                    "type": "integer",
                    "minimum": 0,
                    "description": "Lines of context before each match (content mode)"
                },
                "-A": {
                    "type": "integer",
                    "minimum": 0,
                    "description": "Lines of context after each match (content mode)"
                },
                "-C": {
                    "type": "integer",
                    "minimum": 0,
                    "description": "Lines of context before and after each match (content mode)"
                },
                "context": {
                    "type": "integer",
                    "minimum": 0,
                    "description": "Same as -C"
                },
                "-n": {
                    "type": "boolean",
                    "description": "Show line numbers (content mode; default true)"
                },
                "-i": {
                    "type": "boolean",
                    "description": "Case-insensitive search"
                },
                "type": {
                    "type": "string",
                    "description": "Only search files of this ripgrep type, e.g. rs, py, js, go, java"
                },
                "head_limit": {
                    "type": "integer",
                    "minimum": 0,
                    "description": "Return at most this many lines or entries (0: no limit)"
                },
                "offset": {
                    "type": "integer",
                    "minimum": 0,
                    "description": "Skip this many lines or entries first (with head_limit, to page)"
                },
                "multiline": {
                    "type": "boolean",
                    "description": "Let the pattern span lines; `.` then matches newlines too"
                }
            },
            "required": ["pattern"],
            "additionalProperties": false
        })
    }

    fn is_read_only(&self) -> bool {
        true
    }

    async fn call(&self, input: Value, ctx: &ToolContext) -> Result<ToolOutput, ToolError> {
        let options = Options::from_input(&input, ctx)?;
        let cancel = ctx.cancel.clone();
        blocking(move || grep(&options, &cancel)).await
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Content,
    FilesWithMatches,
    Count,
}

#[derive(Debug, Clone)]
struct Options {
    pattern: String,
    root: PathBuf,
    globs: Vec<String>,
    mode: Mode,
    before: usize,
    after: usize,
    line_numbers: bool,
    case_insensitive: bool,
    file_type: Option<String>,
    head_limit: Option<usize>,
    offset: usize,
    multiline: bool,
}

impl Options {
    fn from_input(input: &Value, ctx: &ToolContext) -> Result<Self, ToolError> {
        let size = |key: &str| -> Result<Option<usize>, ToolError> {
            Ok(optional_u64(input, key)?.map(|n| usize::try_from(n).unwrap_or(usize::MAX)))
        };
        let mode = match optional_str(input, "output_mode")? {
            None | Some("files_with_matches") => Mode::FilesWithMatches,
            Some("content") => Mode::Content,
            Some("count") => Mode::Count,
            Some(other) => {
                return Err(ToolError::InvalidInput(format!(
                    "Unknown output_mode `{other}`; use content, files_with_matches or count."
                )));
            }
        };
        let around = size("-C")?.or(size("context")?).unwrap_or(0);
        let root = match optional_str(input, "path")? {
            Some(path) if !path.is_empty() => ctx.resolve_path(path),
            _ => ctx.current_dir(),
        };
        Ok(Self {
            pattern: required_str(input, "pattern")?.to_string(),
            root,
            globs: optional_str(input, "glob")?
                .map(split_globs)
                .unwrap_or_default(),
            mode,
            before: size("-B")?.unwrap_or(around),
            after: size("-A")?.unwrap_or(around),
            line_numbers: optional_bool(input, "-n")?.unwrap_or(true),
            case_insensitive: optional_bool(input, "-i")?.unwrap_or(false),
            file_type: optional_str(input, "type")?.map(str::to_string),
            head_limit: size("head_limit")?.filter(|&n| n > 0),
            offset: size("offset")?.unwrap_or(0),
            multiline: optional_bool(input, "multiline")?.unwrap_or(false),
        })
    }

    fn has_context(&self) -> bool {
        self.mode == Mode::Content && (self.before > 0 || self.after > 0)
    }
}

/// `*.ts *.tsx` or `*.ts,*.tsx` are two globs; `*.{ts,tsx}` is one.
fn split_globs(text: &str) -> Vec<String> {
    let mut globs = Vec::new();
    for word in text.split_whitespace() {
        let mut depth = 0usize;
        let mut current = String::new();
        for c in word.chars() {
            match c {
                '{' => depth += 1,
                '}' => depth = depth.saturating_sub(1),
                ',' if depth == 0 => {
                    if !current.is_empty() {
                        globs.push(std::mem::take(&mut current));
                    }
                    continue;
                }
                _ => {}
            }
            current.push(c);
        }
        if !current.is_empty() {
            globs.push(current);
        }
    }
    globs
}

/// What one file contributed.
struct FileHits {
    path: PathBuf,
    /// Formatted output (content mode): one `\n`-terminated line each, in one buffer because
    /// big searches produce hundreds of thousands of lines.
    text: String,
    /// Matches (matching lines; in multiline mode, matching regions).
    count: u64,
    modified: SystemTime,
}

fn grep(options: &Options, cancel: &CancellationToken) -> Result<ToolOutput, ToolError> {
    let matcher = build_matcher(options)?;
    let searcher = build_searcher(options);
    let meta = std::fs::metadata(&options.root).map_err(|e| {
        ToolError::InvalidInput(format!(
            "Path {} cannot be searched: {e}. Check the `path` parameter.",
            options.root.display()
        ))
    })?;

    let mut hits = if meta.is_dir() {
        search_tree(options, &matcher, &searcher, cancel)?
    } else {
        // A file named explicitly is searched whatever the ignore rules and filters say.
        let mut searcher = searcher;
        search_file(options, &matcher, &mut searcher, &options.root)
            .into_iter()
            .collect()
    };
    if cancel.is_cancelled() {
        return Err(ToolError::Interrupted {
            partial: String::new(),
        });
    }
    match options.mode {
        Mode::FilesWithMatches => hits.sort_by(|a, b| {
            b.modified
                .cmp(&a.modified)
                .then_with(|| a.path.cmp(&b.path))
        }),
        Mode::Content | Mode::Count => hits.sort_by(|a, b| a.path.cmp(&b.path)),
    }
    Ok(render(options, hits))
}

fn build_matcher(options: &Options) -> Result<RegexMatcher, ToolError> {
    let mut builder = RegexMatcherBuilder::new();
    builder
        .case_insensitive(options.case_insensitive)
        // `^` and `$` match at line boundaries, as in ripgrep.
        .multi_line(true);
    if options.multiline {
        builder.dot_matches_new_line(true);
    } else {
        // Lets the searcher use its fast line-oriented path.
        builder.line_terminator(Some(b'\n'));
    }
    builder.build(&options.pattern).map_err(|e| {
        let mut message = format!("Invalid regex `{}`: {e}", options.pattern);
        if !options.multiline && (options.pattern.contains("\\n") || options.pattern.contains('\n'))
        {
            message.push_str("\nTo match across lines, set multiline to true.");
        } else {
            message.push_str(
                "\nThe pattern uses ripgrep (Rust regex) syntax; escape special characters such \
                 as ( ) [ ] { } . * + ? with a backslash to match them literally.",
            );
        }
        ToolError::InvalidInput(message)
    })
}

fn build_searcher(options: &Options) -> Searcher {
    let context = options.mode == Mode::Content;
    SearcherBuilder::new()
        // Counting lines costs time; only content mode shows them.
        .line_number(context && options.line_numbers)
        .before_context(if context { options.before } else { 0 })
        .after_context(if context { options.after } else { 0 })
        .multi_line(options.multiline)
        .binary_detection(BinaryDetection::quit(b'\x00'))
        .build()
}

fn search_tree(
    options: &Options,
    matcher: &RegexMatcher,
    searcher: &Searcher,
    cancel: &CancellationToken,
) -> Result<Vec<FileHits>, ToolError> {
    let mut builder = walker(&options.root);
    if !options.globs.is_empty() {
        let mut overrides = OverrideBuilder::new(&options.root);
        for glob in &options.globs {
            overrides.add(glob).map_err(|e| {
                ToolError::InvalidInput(format!(
                    "Invalid glob `{glob}`: {e}. Use e.g. \"*.rs\" or \"*.{{ts,tsx}}\"."
                ))
            })?;
        }
        let overrides = overrides
            .build()
            .map_err(|e| ToolError::InvalidInput(format!("Invalid glob filter: {e}")))?;
        builder.overrides(overrides);
    }
    if let Some(name) = &options.file_type {
        let mut types = TypesBuilder::new();
        types.add_defaults().select(name);
        let types = types.build().map_err(|e| {
            ToolError::InvalidInput(format!(
                "Unknown file type `{name}` ({e}). Use a ripgrep type name such as rs, py, js, \
                 ts, go, java, c, cpp, md, json, or filter by name with `glob` instead."
            ))
        })?;
        builder.types(types);
    }

    let hits = Mutex::new(Vec::new());
    walk_entries(&builder, GREP_SEQUENTIAL_ENTRIES, || {
        let hits = &hits;
        let matcher = matcher.clone();
        let mut searcher = searcher.clone();
        Box::new(move |entry| {
            if cancel.is_cancelled() {
                return WalkState::Quit;
            }
            let Ok(entry) = entry else {
                return WalkState::Continue;
            };
            if !entry.file_type().is_some_and(|t| t.is_file()) {
                return WalkState::Continue;
            }
            if let Some(found) = search_file(options, &matcher, &mut searcher, entry.path()) {
                match hits.lock() {
                    Ok(mut hits) => hits.push(found),
                    Err(poisoned) => poisoned.into_inner().push(found),
                }
            }
            WalkState::Continue
        })
    });
    Ok(hits
        .into_inner()
        .unwrap_or_else(|poisoned| poisoned.into_inner()))
}

/// Searches one file; `None` if it has no match, is binary or cannot be read (a file that
/// vanished or is unreadable mid-walk is skipped, as ripgrep does).
fn search_file(
    options: &Options,
    matcher: &RegexMatcher,
    searcher: &mut Searcher,
    path: &Path,
) -> Option<FileHits> {
    let mut sink = Collect {
        options,
        path_text: None,
        path,
        text: String::new(),
        count: 0,
        binary: false,
    };
    if searcher.search_path(matcher, path, &mut sink).is_err() || sink.binary || sink.count == 0 {
        return None;
    }
    let modified = if options.mode == Mode::FilesWithMatches {
        std::fs::metadata(path)
            .and_then(|m| m.modified())
            .unwrap_or(SystemTime::UNIX_EPOCH)
    } else {
        SystemTime::UNIX_EPOCH
    };
    Some(FileHits {
        path: path.to_path_buf(),
        text: sink.text,
        count: sink.count,
        modified,
    })
}

/// Gathers one file's matches in the shape the mode needs.
struct Collect<'a> {
    options: &'a Options,
    path: &'a Path,
    /// The path as text, made on the first line that needs it.
    path_text: Option<String>,
    text: String,
    count: u64,
    binary: bool,
}

impl Collect<'_> {
    fn push_line(&mut self, separator: char, line_number: Option<u64>, bytes: &[u8]) {
        let path = self
            .path_text
            .get_or_insert_with(|| self.path.display().to_string());
        let out = &mut self.text;
        out.push_str(path);
        out.push(separator);
        if let (true, Some(n)) = (self.options.line_numbers, line_number) {
            out.push_str(&n.to_string());
            out.push(separator);
        }
        push_display_line(out, bytes);
        out.push('\n');
    }
}

impl Sink for Collect<'_> {
    type Error = std::io::Error;

    fn matched(&mut self, _searcher: &Searcher, mat: &SinkMatch<'_>) -> Result<bool, Self::Error> {
        self.count += 1;
        match self.options.mode {
            // One match settles the file.
            Mode::FilesWithMatches => Ok(false),
            Mode::Count => Ok(true),
            Mode::Content => {
                let mut number = mat.line_number();
                for line in mat.lines() {
                    self.push_line(':', number, line);
                    number = number.map(|n| n + 1);
                }
                Ok(true)
            }
        }
    }

    fn context(
        &mut self,
        _searcher: &Searcher,
        context: &SinkContext<'_>,
    ) -> Result<bool, Self::Error> {
        if self.options.mode == Mode::Content {
            self.push_line('-', context.line_number(), context.bytes());
        }
        Ok(true)
    }

    fn context_break(&mut self, _searcher: &Searcher) -> Result<bool, Self::Error> {
        if self.options.mode == Mode::Content {
            self.text.push_str("--\n");
        }
        Ok(true)
    }

    fn binary_data(&mut self, _searcher: &Searcher, _offset: u64) -> Result<bool, Self::Error> {
        self.binary = true;
        Ok(false)
    }
}

/// Appends a line without its terminator, invalid UTF-8 replaced, cut at
/// [`MAX_LINE_CHARS`].
fn push_display_line(out: &mut String, bytes: &[u8]) {
    let bytes = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
    let text = String::from_utf8_lossy(bytes);
    // Byte length bounds the character count, so most lines skip the count.
    if text.len() <= MAX_LINE_CHARS {
        out.push_str(&text);
        return;
    }
    let total = text.chars().count();
    if total <= MAX_LINE_CHARS {
        out.push_str(&text);
        return;
    }
    out.extend(text.chars().take(MAX_LINE_CHARS));
    out.push_str(&format!("... [{} more characters]", total - MAX_LINE_CHARS));
}

/// Applies offset and head_limit to `entries` and says what was left out.
fn page<T>(entries: Vec<T>, options: &Options, noun: &str) -> (Vec<T>, Option<String>) {
    let total = entries.len();
    let start = options.offset.min(total);
    let end = match options.head_limit {
        Some(limit) => start.saturating_add(limit).min(total),
        None => total,
    };
    let shown: Vec<T> = entries.into_iter().skip(start).take(end - start).collect();
    let note = (end < total).then(|| {
        format!(
            "(Showing {noun} {}-{end} of {total}. Use offset={end} to see more.)",
            start + 1
        )
    });
    (shown, note)
}

fn render(options: &Options, hits: Vec<FileHits>) -> ToolOutput {
    let num_files = hits.len();
    let mode_name = match options.mode {
        Mode::Content => "content",
        Mode::FilesWithMatches => "files_with_matches",
        Mode::Count => "count",
    };
    if hits.is_empty() {
        return ToolOutput {
            content: "No matches found".to_string(),
            structured: Some(json!({
                "mode": mode_name,
                "numFiles": 0,
                "filenames": [],
            })),
            images: Vec::new(),
        };
    }
    match options.mode {
        Mode::FilesWithMatches => {
            let paths: Vec<String> = hits.iter().map(|h| h.path.display().to_string()).collect();
            let (shown, note) = page(paths, options, "files");
            let mut content = format!(
                "Found {num_files} file{}\n{}",
                if num_files == 1 { "" } else { "s" },
                shown.join("\n")
            );
            if let Some(note) = note {
                content.push_str(&format!("\n{note}"));
            }
            ToolOutput {
                content,
                structured: Some(json!({
                    "mode": mode_name,
                    "numFiles": num_files,
                    "filenames": shown,
                })),
                images: Vec::new(),
            }
        }
        Mode::Content => {
            let filenames: Vec<String> =
                hits.iter().map(|h| h.path.display().to_string()).collect();
            let separate = options.has_context();
            let mut all = String::with_capacity(hits.iter().map(|h| h.text.len() + 3).sum());
            for (i, file) in hits.into_iter().enumerate() {
                if separate && i > 0 {
                    all.push_str("--\n");
                }
                all.push_str(&file.text);
            }
            let (content, num_lines) = if options.offset == 0 && options.head_limit.is_none() {
                let num_lines = all.bytes().filter(|&b| b == b'\n').count();
                all.pop();
                (all, num_lines)
            } else {
                let lines: Vec<&str> = all.lines().collect();
                let (shown, note) = page(lines, options, "lines");
                let mut content = shown.join("\n");
                if let Some(note) = note {
                    content.push_str(&format!("\n{note}"));
                }
                (content, shown.len())
            };
            ToolOutput {
                structured: Some(json!({
                    "mode": mode_name,
                    "numFiles": num_files,
                    "filenames": filenames,
                    // A copy for display; the model's copy is cut and spilled by the registry.
                    "content": clip(&content, MAX_OUTPUT_CHARS),
                    "numLines": num_lines,
                })),
                content,
                images: Vec::new(),
            }
        }
        Mode::Count => {
            let total: u64 = hits.iter().map(|h| h.count).sum();
            let entries: Vec<String> = hits
                .iter()
                .map(|h| format!("{}:{}", h.path.display(), h.count))
                .collect();
            let (shown, note) = page(entries, options, "files");
            let what = match (options.multiline, total == 1) {
                (true, true) => "match",
                (true, false) => "matches",
                (false, true) => "matching line",
                (false, false) => "matching lines",
            };
            let mut content = shown.join("\n");
            if let Some(note) = note {
                content.push_str(&format!("\n{note}"));
            }
            content.push_str(&format!(
                "\n\nFound {total} {what} in {num_files} file{}.",
                if num_files == 1 { "" } else { "s" }
            ));
            ToolOutput {
                content,
                structured: Some(json!({
                    "mode": mode_name,
                    "numFiles": num_files,
                    "filenames": hits.iter().map(|h| h.path.display().to_string()).collect::<Vec<_>>(),
                    "numMatches": total,
                })),
                images: Vec::new(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_split_on_spaces_and_top_level_commas() {
        assert_eq!(split_globs("*.rs"), ["*.rs"]);
        assert_eq!(split_globs("*.{ts,tsx}"), ["*.{ts,tsx}"]);
        assert_eq!(split_globs("*.ts, *.tsx"), ["*.ts", "*.tsx"]);
        assert_eq!(
            split_globs("*.ts,*.md !vendor/**"),
            ["*.ts", "*.md", "!vendor/**"]
        );
    }

    #[test]
    fn long_lines_are_cut() {
        let display_line = |bytes: &[u8]| {
            let mut out = String::new();
            push_display_line(&mut out, bytes);
            out
        };
        let line = format!("{}\n", "x".repeat(600));
        let shown = display_line(line.as_bytes());
        assert!(shown.starts_with(&"x".repeat(500)));
        assert!(shown.ends_with("... [100 more characters]"));
        assert_eq!(display_line(b"short\r\n"), "short");
    }
}
