//! Where skills, slash commands and agent definitions live, and the order they are read in:
//! user level (`~/.claude/<kind>/`, then `~/.keel/<kind>/`), then the project
//! (`<root>/.claude/<kind>/`, then `<root>/.keel/<kind>/`). A later definition with the same
//! name replaces an earlier one, so the project's wins over the user's and keel's folder over
//! Claude Code's, as with settings files.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::frontmatter::DefinitionWarning;
use crate::load::SourceSet;

/// Which level a definition comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DefinitionScope {
    /// The user's own, for every project (`~/.claude/`, `~/.keel/`).
    User,
    /// The project's, shared with the team (`.claude/`, `.keel/` in the project root).
    Project,
}

impl DefinitionScope {
    /// The name shown in listings (`/help`, `/agents`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Project => "project",
        }
    }
}

impl fmt::Display for DefinitionScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where to look for definitions.
#[derive(Debug, Clone)]
pub struct DefinitionSources {
    /// The user's home directory.
    pub home: PathBuf,
    /// The project root (see [`crate::project_root`]).
    pub project_root: PathBuf,
    /// `--setting-sources`: `user` reads the home folders, `project` the project's.
    pub sources: SourceSet,
}

impl DefinitionSources {
    /// Sources for a session in `project_root`, reading both levels.
    pub fn new(home: &Path, project_root: &Path) -> Self {
        Self {
            home: home.to_path_buf(),
            project_root: project_root.to_path_buf(),
            sources: SourceSet::default(),
        }
    }

    /// The folders holding definitions of one kind (`skills`, `commands`, `agents`), lowest
    /// precedence first. A project root that is the home folder is read once, as user level.
    pub fn dirs(&self, kind: &str) -> Vec<(DefinitionScope, PathBuf)> {
        let mut dirs = Vec::new();
        if self.sources.user {
            for base in [".claude", ".keel"] {
                dirs.push((DefinitionScope::User, self.home.join(base).join(kind)));
            }
        }
        if self.sources.project && self.project_root != self.home {
            for base in [".claude", ".keel"] {
                dirs.push((
                    DefinitionScope::Project,
                    self.project_root.join(base).join(kind),
                ));
            }
        }
        dirs
    }
}

/// Definitions of one kind, and the files that could not be used.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded<T> {
    /// The definitions, sorted by name; a later source's definition replaced an earlier one.
    pub items: Vec<T>,
    /// One warning per file that was skipped or partly understood.
    pub warnings: Vec<DefinitionWarning>,
}

impl<T> Default for Loaded<T> {
    fn default() -> Self {
        Self {
            items: Vec::new(),
            warnings: Vec::new(),
        }
    }
}

/// A definition with a name; a later one with the same name replaces an earlier one.
pub trait Named {
    /// The name it is called by.
    fn name(&self) -> &str;
}

impl<T: Named> Loaded<T> {
    /// Adds a definition, replacing one with the same name.
    pub(crate) fn put(&mut self, item: T) {
        match self.items.iter_mut().find(|i| i.name() == item.name()) {
            Some(slot) => *slot = item,
            None => self.items.push(item),
        }
    }

    pub(crate) fn sort(&mut self) {
        self.items.sort_by(|a, b| a.name().cmp(b.name()));
    }
}

/// Reads a definition file; a read error becomes a warning naming the file.
pub(crate) fn read(path: &Path, kind: &str) -> Result<String, DefinitionWarning> {
    std::fs::read_to_string(path).map_err(|e| {
        DefinitionWarning::new(
            path,
            1,
            format!("cannot read the {kind} file ({e}); fix its permissions or encoding ({kind} skipped)"),
        )
    })
}

/// Markdown files under `dir`, recursively, sorted, skipping hidden folders; each with its
/// path relative to `dir`.
pub(crate) fn markdown_files(dir: &Path) -> Vec<(PathBuf, PathBuf)> {
    let mut out = Vec::new();
    walk(dir, dir, 0, &mut out);
    out.sort();
    out
}

fn walk(root: &Path, dir: &Path, depth: usize, out: &mut Vec<(PathBuf, PathBuf)>) {
    // Deep enough for any namespace anyone writes; a symlink loop stops here.
    if depth > 8 {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') {
            continue;
        }
        if path.is_dir() {
            walk(root, &path, depth + 1, out);
        } else if name.ends_with(".md") && path.is_file() {
            let rel = path.strip_prefix(root).unwrap_or(&path).to_path_buf();
            out.push((path, rel));
        }
    }
}

/// Whether a name can be typed after `/` and named in a tool call: letters, digits, `-`, `_`,
/// `.` and `:` (namespaces), no spaces or slashes.
pub(crate) fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
}

/// The first paragraph line of a Markdown body that is not a heading, for a definition
/// without a `description`.
pub(crate) fn first_line(body: &str) -> Option<String> {
    body.lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with("```"))
        .map(|l| crate::definitions::shorten(l, 200))
}

/// Cuts text to `max` characters with an ellipsis.
pub(crate) fn shorten(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_folders_come_before_project_folders() {
        let sources = DefinitionSources::new(Path::new("/h"), Path::new("/p"));
        let dirs: Vec<String> = sources
            .dirs("skills")
            .into_iter()
            .map(|(s, p)| format!("{s} {}", p.display()))
            .collect();
        assert_eq!(
            dirs,
            [
                "user /h/.claude/skills",
                "user /h/.keel/skills",
                "project /p/.claude/skills",
                "project /p/.keel/skills"
            ]
        );
        let home_project = DefinitionSources::new(Path::new("/h"), Path::new("/h"));
        assert_eq!(home_project.dirs("agents").len(), 2);
        let mut project_only = sources.clone();
        project_only.sources = SourceSet::parse("project").unwrap();
        assert!(
            project_only
                .dirs("commands")
                .iter()
                .all(|(s, _)| *s == DefinitionScope::Project)
        );
    }

    #[test]
    fn names_and_first_lines() {
        assert!(valid_name("review-pr"));
        assert!(valid_name("frontend:build"));
        assert!(!valid_name("two words"));
        assert!(!valid_name("a/b"));
        assert_eq!(
            first_line("# Title\n\nDoes things.\nMore.").as_deref(),
            Some("Does things.")
        );
    }
}
