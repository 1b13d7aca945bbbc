//! Memory files: the user's and the project's standing instructions (`CLAUDE.md`, `AGENTS.md`,
//! `CLAUDE.local.md`), found on disk, with their `@path` imports resolved.
//!
//! Which files, in this order (later files are more specific and win where they disagree):
//! 1. user level: `~/.claude/CLAUDE.md`, `~/.keel/CLAUDE.md`, `~/.keel/AGENTS.md`;
//! 2. every directory from the project root down to the working directory, and in each:
//!    `CLAUDE.md`, `.claude/CLAUDE.md`, `AGENTS.md`, `.keel/AGENTS.md`, `CLAUDE.local.md`
//!    (Claude Code's files before keel's, as with settings; the personal local file last);
//! 3. on demand, the same five names in directories below the project root that a tool
//!    touches later ([`MemoryLoader::files_for_path`]), each directory once.
//!
//! The project root is the nearest ancestor holding `.git`; outside a repository only the
//! working directory itself is read, so a stray `CLAUDE.md` in `/tmp` or `$HOME` is not picked
//! up by every project below it.
//!
//! Imports: a token `@path` that starts a word (start of line, after whitespace or an opening
//! bracket or quote) outside code spans and fenced code blocks. Tokens starting with `./`,
//! `../`, `~/` or `/`, and tokens ending in `.md`/`.mdc`/`.markdown`/`.txt`, are imports, and a
//! missing one is reported. Other tokens containing `/` or ending in a file extension
//! (`@src/main.rs`, `@types/node`) are imported when the file exists and ignored otherwise, so
//! npm scopes and `@mentions` never produce warnings. Relative paths are relative to the
//! importing file's directory. An imported file is not pasted into its importer: it follows it
//! as its own entry labelled with its path and its importer, so the importing sentence stays
//! readable and the model can tell where each instruction came from. Each file is included
//! once; imports nest at most [`MAX_IMPORT_DEPTH`] deep; cycles are reported and cut.

use std::collections::HashSet;
use std::fmt;
use std::path::{Component, Path, PathBuf};

use crate::load::SourceSet;

/// How many imports deep a chain may go (a memory file's imports are depth 1).
pub const MAX_IMPORT_DEPTH: usize = 5;

/// Above this many characters a memory file is reported as too large (it costs context on
/// every request); Claude Code warns at the same size.
pub const WARN_CHARS: usize = 40_000;

/// Above this many characters a memory file is cut, so one accidental import of a log or a
/// generated file cannot fill a quarter of the context window.
pub const MAX_CHARS: usize = 200_000;

/// The files read in every directory from the project root down, in order.
const DIR_FILES: [(&str, MemoryScope); 5] = [
    ("CLAUDE.md", MemoryScope::Project),
    (".claude/CLAUDE.md", MemoryScope::Project),
    ("AGENTS.md", MemoryScope::Project),
    (".keel/AGENTS.md", MemoryScope::Project),
    ("CLAUDE.local.md", MemoryScope::Local),
];

/// The user-level files, relative to the home directory, in order.
const USER_FILES: [&str; 3] = [".claude/CLAUDE.md", ".keel/CLAUDE.md", ".keel/AGENTS.md"];

/// Directories whose memory files are never read on demand: dependencies and git internals
/// are not the user's instructions, and a vendored package's AGENTS.md must not steer keel.
const SKIPPED_DIRS: [&str; 2] = ["node_modules", ".git"];

/// Where a memory file comes from, which tells the model how widely it applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MemoryScope {
    /// The user's own instructions for every project (`~/.claude/CLAUDE.md`, ...).
    User,
    /// The project's shared instructions, from the root down to the working directory.
    Project,
    /// The user's private instructions for this project (`CLAUDE.local.md`).
    Local,
    /// A subdirectory's instructions, loaded when a tool first touched that directory.
    Nested,
}

impl MemoryScope {
    /// A short name for headings and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Project => "project",
            Self::Local => "local",
            Self::Nested => "nested",
        }
    }
}

impl fmt::Display for MemoryScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One memory file as it goes into the prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryFile {
    /// Where it is on disk (as found, not canonicalised, so it reads like the user's path).
    pub path: PathBuf,
    /// Which level it belongs to; an imported file inherits its importer's scope.
    pub scope: MemoryScope,
    /// The file that imported it with `@path`, if any.
    pub imported_by: Option<PathBuf>,
    /// Its text, cut at [`MAX_CHARS`] with a marker saying so.
    pub content: String,
}

/// Something about the memory files the user should fix; loading goes on regardless.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemoryWarning {
    /// An `@path` import names a file that does not exist.
    MissingImport {
        /// The importing file.
        file: PathBuf,
        /// The 1-based line of the import.
        line: usize,
        /// The path as written after `@`.
        target: String,
        /// Where keel looked.
        resolved: PathBuf,
    },
    /// An import would include a file that is already being imported further up the chain.
    ImportCycle {
        /// The importing file.
        file: PathBuf,
        /// The 1-based line of the import.
        line: usize,
        /// The path as written after `@`.
        target: String,
        /// The chain of files, from the first importer to the file imported again.
        chain: Vec<PathBuf>,
    },
    /// An import is nested deeper than [`MAX_IMPORT_DEPTH`].
    TooDeep {
        /// The importing file.
        file: PathBuf,
        /// The 1-based line of the import.
        line: usize,
        /// The path as written after `@`.
        target: String,
    },
    /// A file is larger than [`WARN_CHARS`] (and was cut if larger than [`MAX_CHARS`]).
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size in characters.
        chars: usize,
        /// True when only the first [`MAX_CHARS`] characters were kept.
        truncated: bool,
    },
    /// A file exists but could not be read.
    Unreadable {
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        error: String,
    },
}

impl MemoryWarning {
    /// The file the warning is about (the importer, for import problems).
    pub fn path(&self) -> &Path {
        match self {
            Self::MissingImport { file, .. }
            | Self::ImportCycle { file, .. }
            | Self::TooDeep { file, .. } => file,
            Self::TooLarge { path, .. } | Self::Unreadable { path, .. } => path,
        }
    }
}

impl fmt::Display for MemoryWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MissingImport {
                file,
                line,
                target,
                resolved,
            } => write!(
                f,
                "{}:{line}: import @{target} not found (looked for {}); fix the path or remove the import",
                file.display(),
                resolved.display()
            ),
            Self::ImportCycle {
                file,
                line,
                target,
                chain,
            } => {
                let chain: Vec<String> = chain.iter().map(|p| p.display().to_string()).collect();
                write!(
                    f,
                    "{}:{line}: import @{target} was skipped because it forms a cycle ({}); remove one of the imports",
                    file.display(),
                    chain.join(" -> ")
                )
            }
            Self::TooDeep { file, line, target } => write!(
                f,
                "{}:{line}: import @{target} was skipped: imports nest at most {MAX_IMPORT_DEPTH} deep; import the file from one closer to CLAUDE.md/AGENTS.md",
                file.display()
            ),
            Self::TooLarge {
                path,
                chars,
                truncated,
            } => {
                write!(
                    f,
                    "{} is {chars} characters; memory files over {WARN_CHARS} characters take context on every request, so move detail into files the agent reads when needed",
                    path.display()
                )?;
                if *truncated {
                    write!(f, " (only the first {MAX_CHARS} characters were used)")?;
                }
                Ok(())
            }
            Self::Unreadable { path, error } => write!(
                f,
                "{}: cannot read the memory file ({error}); fix its permissions or encoding",
                path.display()
            ),
        }
    }
}

/// Memory files found by one load, with what went wrong on the way.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Memory {
    /// The files, in prompt order.
    pub files: Vec<MemoryFile>,
    /// Problems to show the user.
    pub warnings: Vec<MemoryWarning>,
}

/// One `@path` reference found in a memory file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportRef {
    /// 1-based line number.
    pub line: usize,
    /// The path as written after `@`.
    pub target: String,
    /// True when a missing file should be reported (the token is unmistakably a path).
    pub required: bool,
}

/// Finds memory files for a session and, later, those of directories tools touch.
///
/// Keeps track of what it has loaded so that each file enters the conversation once.
#[derive(Debug, Clone)]
pub struct MemoryLoader {
    cwd: PathBuf,
    root: PathBuf,
    home: Option<PathBuf>,
    sources: SourceSet,
    loaded_files: HashSet<PathBuf>,
    seen_dirs: HashSet<PathBuf>,
}

impl MemoryLoader {
    /// A loader for a session in `cwd`; the project root is the enclosing git repository's
    /// top directory, or `cwd` itself outside a repository.
    pub fn new(cwd: &Path, home: Option<&Path>) -> Self {
        let cwd = normalize(cwd);
        let root = repo_root(&cwd).unwrap_or_else(|| cwd.clone());
        Self {
            cwd,
            root,
            home: home.map(Path::to_path_buf),
            sources: SourceSet::default(),
            loaded_files: HashSet::new(),
            seen_dirs: HashSet::new(),
        }
    }

    /// Uses `root` as the project root instead (ignored unless it contains the working
    /// directory, in which case only the working directory is read).
    pub fn with_root(mut self, root: &Path) -> Self {
        let root = normalize(root);
        self.root = if self.cwd.starts_with(&root) {
            root
        } else {
            self.cwd.clone()
        };
        self
    }

    /// Reads only the scopes `--setting-sources` names: `user` for the user-level files,
    /// `project` for shared project and subdirectory files, `local` for `CLAUDE.local.md`.
    pub fn with_sources(mut self, sources: SourceSet) -> Self {
        self.sources = sources;
        self
    }

    /// The project root the loader walks down from.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Loads the user-level files and every project directory's files from the root down to
    /// the working directory. Call it once at start-up, before [`Self::files_for_path`].
    pub fn load(&mut self) -> Memory {
        let mut memory = Memory::default();
        if self.sources.user
            && let Some(home) = self.home.clone()
        {
            for name in USER_FILES {
                self.load_candidate(&home.join(name), MemoryScope::User, &mut memory);
            }
        }
        let dirs: Vec<PathBuf> = dirs_between(&self.root, &self.cwd);
        for dir in dirs {
            self.load_dir(&dir, false, &mut memory);
        }
        memory
    }

    /// The memory files of directories between the project root and `touched` (a file or
    /// directory a tool used) that have not been loaded yet, outermost first. Paths outside
    /// the project root, and inside `node_modules` or `.git`, give nothing.
    pub fn files_for_path(&mut self, touched: &Path) -> Memory {
        let mut memory = Memory::default();
        let touched = normalize(&self.cwd.join(touched));
        let dir = if touched.is_dir() {
            touched
        } else {
            match touched.parent() {
                Some(parent) => parent.to_path_buf(),
                None => return memory,
            }
        };
        let dir = if dir.starts_with(&self.root) {
            dir
        } else {
            // The tool may have used a path through a symlink; compare real paths.
            match (
                std::fs::canonicalize(&dir),
                std::fs::canonicalize(&self.root),
            ) {
                (Ok(real_dir), Ok(real_root)) if real_dir.starts_with(&real_root) => {
                    let Ok(rest) = real_dir.strip_prefix(&real_root) else {
                        return memory;
                    };
                    self.root.join(rest)
                }
                _ => return memory,
            }
        };
        let Ok(below_root) = dir.strip_prefix(&self.root) else {
            return memory;
        };
        if below_root
            .components()
            .any(|c| SKIPPED_DIRS.iter().any(|s| c.as_os_str() == *s))
        {
            return memory;
        }
        for dir in dirs_between(&self.root, &dir) {
            self.load_dir(&dir, true, &mut memory);
        }
        memory
    }

    fn load_dir(&mut self, dir: &Path, nested: bool, memory: &mut Memory) {
        if !self.seen_dirs.insert(dir.to_path_buf()) {
            return;
        }
        for (name, scope) in DIR_FILES {
            let wanted = match scope {
                MemoryScope::Local => self.sources.local,
                _ => self.sources.project,
            };
            if !wanted {
                continue;
            }
            let scope = if nested { MemoryScope::Nested } else { scope };
            self.load_candidate(&dir.join(name), scope, memory);
        }
    }

    /// Loads a file that may or may not exist (a missing candidate is not a problem).
    fn load_candidate(&mut self, path: &Path, scope: MemoryScope, memory: &mut Memory) {
        if !path.is_file() {
            return;
        }
        let mut chain = Vec::new();
        self.load_file(path, scope, None, &mut chain, memory);
    }

    /// Loads `path` and, after it, what it imports. `chain` holds the canonical paths of the
    /// files currently being imported, outermost first, for cycle detection.
    fn load_file(
        &mut self,
        path: &Path,
        scope: MemoryScope,
        imported_by: Option<&Path>,
        chain: &mut Vec<(PathBuf, PathBuf)>,
        memory: &mut Memory,
    ) {
        let key = canonical(path);
        if !self.loaded_files.insert(key.clone()) {
            return;
        }
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(error) => {
                memory.warnings.push(MemoryWarning::Unreadable {
                    path: path.to_path_buf(),
                    error: error.to_string(),
                });
                return;
            }
        };
        let text = match String::from_utf8(bytes) {
            Ok(text) => text,
            Err(error) => {
                memory.warnings.push(MemoryWarning::Unreadable {
                    path: path.to_path_buf(),
                    error: "not UTF-8 text; invalid bytes were replaced".into(),
                });
                String::from_utf8_lossy(error.as_bytes()).into_owned()
            }
        };
        let imports = find_imports(&text);
        let content = limit_size(path, text, &mut memory.warnings);
        memory.files.push(MemoryFile {
            path: path.to_path_buf(),
            scope,
            imported_by: imported_by.map(Path::to_path_buf),
            content,
        });

        chain.push((key, path.to_path_buf()));
        let base = path.parent().unwrap_or(Path::new("/")).to_path_buf();
        for import in imports {
            let resolved = match self.resolve(&base, &import.target) {
                Some(resolved) => resolved,
                None => {
                    if import.required {
                        memory.warnings.push(MemoryWarning::MissingImport {
                            file: path.to_path_buf(),
                            line: import.line,
                            target: import.target.clone(),
                            resolved: PathBuf::from(&import.target),
                        });
                    }
                    continue;
                }
            };
            if !resolved.is_file() {
                if import.required {
                    memory.warnings.push(MemoryWarning::MissingImport {
                        file: path.to_path_buf(),
                        line: import.line,
                        target: import.target.clone(),
                        resolved,
                    });
                }
                continue;
            }
            let target_key = canonical(&resolved);
            if let Some(pos) = chain.iter().position(|(k, _)| *k == target_key) {
                let mut cycle: Vec<PathBuf> = chain[pos..].iter().map(|(_, p)| p.clone()).collect();
                cycle.push(resolved.clone());
                memory.warnings.push(MemoryWarning::ImportCycle {
                    file: path.to_path_buf(),
                    line: import.line,
                    target: import.target.clone(),
                    chain: cycle,
                });
                continue;
            }
            if self.loaded_files.contains(&target_key) {
                // Already in the prompt (imported elsewhere, or a memory file of its own).
                continue;
            }
            if chain.len() > MAX_IMPORT_DEPTH {
                memory.warnings.push(MemoryWarning::TooDeep {
                    file: path.to_path_buf(),
                    line: import.line,
                    target: import.target.clone(),
                });
                continue;
            }
            self.load_file(&resolved, scope, Some(path), chain, memory);
        }
        chain.pop();
    }

    fn resolve(&self, base: &Path, target: &str) -> Option<PathBuf> {
        if let Some(rest) = target.strip_prefix("~/") {
            return self.home.as_ref().map(|home| home.join(rest));
        }
        Some(normalize(&base.join(target)))
    }
}

/// The nearest ancestor of `cwd` (itself included) that holds `.git`: the repository's top
/// directory, or `None` outside a repository.
pub fn repo_root(cwd: &Path) -> Option<PathBuf> {
    cwd.ancestors()
        .find(|dir| dir.join(".git").exists())
        .map(Path::to_path_buf)
}

/// Finds the `@path` imports in a memory file's text (see the module documentation for the
/// rules), in order.
pub fn find_imports(text: &str) -> Vec<ImportRef> {
    let mut imports = Vec::new();
    let mut fence: Option<(char, usize)> = None;
    for (index, line) in text.lines().enumerate() {
        if let Some(marker) = fence_marker(line) {
            match fence {
                None => fence = Some(marker),
                Some((ch, len)) if marker.0 == ch && marker.1 >= len && is_fence_close(line) => {
                    fence = None;
                }
                Some(_) => {}
            }
            continue;
        }
        if fence.is_some() {
            continue;
        }
        let masked = mask_code_spans(line);
        let chars: Vec<char> = masked.chars().collect();
        for (i, ch) in chars.iter().enumerate() {
            if *ch != '@' {
                continue;
            }
            let starts_word = i == 0
                || chars[i - 1].is_whitespace()
                || matches!(chars[i - 1], '(' | '[' | '{' | '"' | '\'' | '*');
            if !starts_word {
                continue;
            }
            let token: String = chars[i + 1..]
                .iter()
                .take_while(|c| !c.is_whitespace() && **c != '@')
                .collect();
            let token = token.trim_end_matches(|c: char| {
                matches!(
                    c,
                    '.' | ',' | ';' | ':' | '!' | '?' | ')' | ']' | '}' | '"' | '\'' | '*'
                )
            });
            if let Some(required) = classify(token) {
                imports.push(ImportRef {
                    line: index + 1,
                    target: token.to_string(),
                    required,
                });
            }
        }
    }
    imports
}

/// Whether a token after `@` is an import: `Some(true)` when it is clearly a path (a missing
/// file is reported), `Some(false)` when it only may be one, `None` when it is not.
fn classify(token: &str) -> Option<bool> {
    if token.is_empty() || token.contains("://") {
        return None;
    }
    if ["./", "../", "~/", "/"]
        .iter()
        .any(|p| token.starts_with(p))
    {
        return Some(true);
    }
    let name = token.rsplit('/').next().unwrap_or(token);
    let extension = name
        .rsplit_once('.')
        .filter(|(stem, _)| !stem.is_empty())
        .map(|(_, ext)| ext);
    if let Some(ext) = extension {
        let lower = ext.to_ascii_lowercase();
        if ["md", "mdc", "markdown", "txt"].contains(&lower.as_str()) {
            return Some(true);
        }
        let looks_like_extension = (1..=10).contains(&ext.len())
            && ext.chars().all(|c| c.is_ascii_alphanumeric())
            && ext.chars().any(|c| c.is_ascii_alphabetic());
        if looks_like_extension {
            return Some(false);
        }
    }
    token.contains('/').then_some(false)
}

/// The fence character and length if `line` opens or closes a fenced code block.
fn fence_marker(line: &str) -> Option<(char, usize)> {
    let indent = line.len() - line.trim_start_matches(' ').len();
    if indent > 3 {
        return None;
    }
    let rest = &line[indent..];
    let ch = rest.chars().next()?;
    if ch != '`' && ch != '~' {
        return None;
    }
    let len = rest.chars().take_while(|c| *c == ch).count();
    // A backtick fence's info string may not contain backticks (that would be a code span).
    if len < 3 || (ch == '`' && rest[len..].contains('`')) {
        return None;
    }
    Some((ch, len))
}

/// A closing fence has nothing after its marker but spaces.
fn is_fence_close(line: &str) -> bool {
    let trimmed = line.trim();
    let ch = trimmed.chars().next().unwrap_or(' ');
    trimmed.chars().all(|c| c == ch)
}

/// `line` with the contents of inline code spans replaced by spaces.
fn mask_code_spans(line: &str) -> String {
    let chars: Vec<char> = line.chars().collect();
    let mut out: Vec<char> = chars.clone();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] != '`' {
            i += 1;
            continue;
        }
        let run = chars[i..].iter().take_while(|c| **c == '`').count();
        // Find a closing run of exactly the same length.
        let mut j = i + run;
        let mut close = None;
        while j < chars.len() {
            if chars[j] == '`' {
                let other = chars[j..].iter().take_while(|c| **c == '`').count();
                if other == run {
                    close = Some(j);
                    break;
                }
                j += other;
            } else {
                j += 1;
            }
        }
        match close {
            Some(j) => {
                for c in &mut out[i..j + run] {
                    *c = ' ';
                }
                i = j + run;
            }
            None => i += run,
        }
    }
    out.into_iter().collect()
}

/// Warns about and cuts an oversized file.
fn limit_size(path: &Path, text: String, warnings: &mut Vec<MemoryWarning>) -> String {
    let chars = text.chars().count();
    if chars <= WARN_CHARS {
        return text;
    }
    let truncated = chars > MAX_CHARS;
    warnings.push(MemoryWarning::TooLarge {
        path: path.to_path_buf(),
        chars,
        truncated,
    });
    if !truncated {
        return text;
    }
    let cut = text
        .char_indices()
        .nth(MAX_CHARS)
        .map_or(text.len(), |(i, _)| i);
    format!(
        "{}\n\n[keel: the rest of this file was left out; it has {chars} characters and memory files are cut at {MAX_CHARS}]",
        &text[..cut]
    )
}

/// Every directory from `root` down to `dir`, both included (just `dir` if it is not below
/// `root`).
fn dirs_between(root: &Path, dir: &Path) -> Vec<PathBuf> {
    let Ok(rest) = dir.strip_prefix(root) else {
        return vec![dir.to_path_buf()];
    };
    let mut dirs = vec![root.to_path_buf()];
    let mut current = root.to_path_buf();
    for component in rest.components() {
        current.push(component);
        dirs.push(current.clone());
    }
    dirs
}

/// Removes `.` and resolves `..` lexically, so `a/./b/../c` and `a/c` compare equal without
/// touching the file system.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push(component);
                }
            }
            other => out.push(other),
        }
    }
    out
}

/// The real path, for recognising one file reached by two routes (symlinks, `..`).
fn canonical(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| normalize(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn targets(text: &str) -> Vec<(String, bool)> {
        find_imports(text)
            .into_iter()
            .map(|i| (i.target, i.required))
            .collect()
    }

    #[test]
    fn path_like_tokens_are_imports() {
        assert_eq!(
            targets("See @./a.md, @docs/b.md and @~/c.md.\n(@/abs/d.md)"),
            vec![
                ("./a.md".to_string(), true),
                ("docs/b.md".to_string(), true),
                ("~/c.md".to_string(), true),
                ("/abs/d.md".to_string(), true),
            ]
        );
    }

    #[test]
    fn emails_mentions_and_scopes_are_not_required_imports() {
        assert_eq!(
            targets("Mail me@example.com or ping @alice; use @types/node and @v1.2"),
            vec![("types/node".to_string(), false)]
        );
        assert_eq!(targets("see @https://example.com/x.md"), vec![]);
    }

    #[test]
    fn code_is_not_scanned() {
        let text = "`@a.md` and ``x @b.md`` but @c.md\n```\n@d.md\n```\n~~~~\n@e.md\n```\n@f.md\n~~~~\n@g.md";
        assert_eq!(
            targets(text),
            vec![("c.md".to_string(), true), ("g.md".to_string(), true)]
        );
    }

    #[test]
    fn line_numbers_are_one_based() {
        let imports = find_imports("first\n\n@x.md");
        assert_eq!(imports[0].line, 3);
    }

    #[test]
    fn normalize_resolves_dots() {
        assert_eq!(normalize(Path::new("/a/./b/../c")), PathBuf::from("/a/c"));
    }
}
