//! Turning the paths tools and commands name into the real locations they touch.
//!
//! Rules and working-directory checks compare *resolved* paths: absolute, `~` expanded, `.` and
//! `..` applied, and symlinks followed the way the kernel follows them, so a link from the
//! project into `~/.ssh` is checked as `~/.ssh/…` and `link/../x` lands where the kernel would
//! put it. Parts of the path that do not exist yet (a file about to be written) are kept
//! lexically.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};

/// How many symlinks one resolution may follow before giving up, like the kernel's `ELOOP`.
const MAX_SYMLINK_HOPS: usize = 40;

/// Expands a leading `~` or `~/` to `home`; other paths are returned unchanged.
pub fn expand_tilde(path: &str, home: &Path) -> PathBuf {
    if path == "~" {
        home.to_path_buf()
    } else if let Some(rest) = path.strip_prefix("~/") {
        home.join(rest)
    } else {
        PathBuf::from(path)
    }
}

/// Resolves `path` (as a tool or command named it) against `cwd`: expands `~` with `home`,
/// makes it absolute, applies `.`/`..` and follows every symlink on the way, kernel-style.
pub fn resolve(path: &str, cwd: &Path, home: &Path) -> PathBuf {
    let expanded = expand_tilde(path, home);
    let absolute = if expanded.is_absolute() {
        expanded
    } else {
        cwd.join(expanded)
    };
    resolve_absolute(&absolute)
}

/// Like [`resolve`] for a path that is already a `Path`; relative paths are taken against
/// `cwd`. Used for working directories and rule base directories.
pub fn resolve_path(path: &Path, cwd: &Path) -> PathBuf {
    if path.is_absolute() {
        resolve_absolute(path)
    } else {
        resolve_absolute(&cwd.join(path))
    }
}

/// One step of a path walk.
enum Part {
    /// Restart at a root (`/`, or a Windows prefix plus root).
    Root(PathBuf),
    /// Go to a child.
    Name(OsString),
    /// Go to the parent.
    Parent,
}

fn parts_of(path: &Path) -> Vec<Part> {
    let mut parts = Vec::new();
    let mut root = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Prefix(p) => root.push(p.as_os_str()),
            Component::RootDir => {
                root.push(Component::RootDir.as_os_str());
                parts.push(Part::Root(std::mem::take(&mut root)));
            }
            Component::CurDir => {}
            Component::ParentDir => parts.push(Part::Parent),
            Component::Normal(name) => parts.push(Part::Name(name.to_os_string())),
        }
    }
    if !root.as_os_str().is_empty() {
        // A prefix without a root (`C:foo`): treat the prefix as the root.
        parts.insert(0, Part::Root(root));
    }
    parts
}

fn resolve_absolute(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    let mut queue: VecDeque<Part> = parts_of(path).into();
    let mut hops = 0usize;
    while let Some(part) = queue.pop_front() {
        let name = match part {
            Part::Root(root) => {
                out = root;
                continue;
            }
            Part::Parent => {
                // `out` never ends in a symlink (each one was replaced by its target when it
                // was reached), so popping here is what the kernel does for `..`.
                out.pop();
                continue;
            }
            Part::Name(name) => name,
        };
        out.push(&name);
        if hops >= MAX_SYMLINK_HOPS {
            continue;
        }
        let is_link = std::fs::symlink_metadata(&out)
            .map(|m| m.file_type().is_symlink())
            .unwrap_or(false);
        if !is_link {
            continue;
        }
        let Ok(target) = std::fs::read_link(&out) else {
            continue;
        };
        hops += 1;
        out.pop();
        for part in parts_of(&target).into_iter().rev() {
            queue.push_front(part);
        }
    }
    if out.as_os_str().is_empty() {
        out.push(Component::RootDir.as_os_str());
    }
    out
}

/// Normalises `.` and `..` without touching the file system.
pub fn normalize_lexically(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// Most paths a glob may expand to before keel gives up and treats it as unknown.
const MAX_GLOB_MATCHES: usize = 4096;

/// Expands an unquoted shell glob (`src/*.rs`, `~/.ssh/id_*`) the way bash does by default
/// — no `**`, no dot-files unless the pattern component starts with `.` — and resolves each
/// match. `None` when there are too many matches to check or a component is not a valid
/// glob; a pattern matching nothing stays itself, as in bash.
pub fn expand_glob(pattern: &str, cwd: &Path, home: &Path) -> Option<Vec<PathBuf>> {
    let expanded = expand_tilde(pattern, home);
    let absolute = if expanded.is_absolute() {
        expanded
    } else {
        cwd.join(expanded)
    };
    let mut candidates = vec![PathBuf::new()];
    for component in absolute.components() {
        let text = component.as_os_str().to_string_lossy();
        let is_glob = matches!(component, Component::Normal(_)) && text.contains(['*', '?', '[']);
        if !is_glob {
            for c in &mut candidates {
                c.push(component.as_os_str());
            }
            continue;
        }
        let matcher = globset::GlobBuilder::new(&text)
            .literal_separator(true)
            .backslash_escape(true)
            .build()
            .ok()?
            .compile_matcher();
        let dot_ok = text.starts_with('.');
        let mut next = Vec::new();
        for dir in &candidates {
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name();
                let name_text = name.to_string_lossy();
                if (!dot_ok && name_text.starts_with('.')) || !matcher.is_match(name_text.as_ref())
                {
                    continue;
                }
                next.push(dir.join(&name));
                if next.len() > MAX_GLOB_MATCHES {
                    return None;
                }
            }
        }
        if next.is_empty() {
            // No match: bash passes the pattern on unchanged.
            return Some(vec![resolve_absolute(&absolute)]);
        }
        candidates = next;
    }
    Some(candidates.iter().map(|p| resolve_absolute(p)).collect())
}

/// Whether `path` is one of `dirs` or inside one of them (whole components, both resolved).
pub fn within(path: &Path, dirs: &[PathBuf]) -> bool {
    dirs.iter().any(|dir| path.starts_with(dir))
}

/// Directories whose contents configure tools that run code later (git hooks, editor and
/// agent settings), so even modes that skip prompts ask before writing there.
const PROTECTED_DIRS: &[&str] = &[".git", ".vscode", ".idea", ".claude", ".keel"];

/// Sub-directories of `.claude`/`.keel` that hold the user's own commands, agents and skills,
/// which agents are expected to edit, and `worktrees`, the git worktrees agents work in (a
/// worktree's own `.git`, `.keel` and `.claude` stay protected).
const EDITABLE_AGENT_DIRS: &[&str] = &["commands", "agents", "skills", "worktrees"];

/// Shell start-up files and other files that run code at the next login or shell: keel adds
/// these to Claude Code's protected directories because a write there outlives the session.
const PROTECTED_FILES: &[&str] = &[
    ".bashrc",
    ".bash_profile",
    ".bash_login",
    ".bash_logout",
    ".profile",
    ".zshrc",
    ".zshenv",
    ".zprofile",
    ".zlogin",
    ".gitconfig",
    ".gitmodules",
];

/// Whether writing `path` must be confirmed even in `bypassPermissions`/`acceptEdits`: it is
/// inside `.git/`, `.vscode/`, `.idea/`, `.claude/` or `.keel/` (except their `commands/`,
/// `agents/`, `skills/` and `worktrees/`), or it is a shell start-up file or git config.
pub fn is_protected(path: &Path) -> bool {
    let names: Vec<&std::ffi::OsStr> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n),
            _ => None,
        })
        .collect();
    for (i, name) in names.iter().enumerate() {
        let Some(name) = name.to_str() else { continue };
        if PROTECTED_DIRS.contains(&name) {
            let agent_dir = name == ".claude" || name == ".keel";
            let next = names.get(i + 1).and_then(|n| n.to_str());
            match next {
                Some(sub) if agent_dir && EDITABLE_AGENT_DIRS.contains(&sub) => continue,
                _ => return true,
            }
        }
    }
    names
        .last()
        .and_then(|n| n.to_str())
        .is_some_and(|n| PROTECTED_FILES.contains(&n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tilde_and_dots_resolve() {
        let home = Path::new("/nonexistent-home");
        let cwd = Path::new("/nonexistent-cwd/a");
        assert_eq!(
            resolve("~/x/../y", cwd, home),
            PathBuf::from("/nonexistent-home/y")
        );
        assert_eq!(
            resolve("b/./c/../d", cwd, home),
            PathBuf::from("/nonexistent-cwd/a/b/d")
        );
        assert_eq!(resolve("/../..", cwd, home), PathBuf::from("/"));
    }

    #[test]
    fn protected_paths() {
        assert!(is_protected(Path::new("/p/.git/config")));
        assert!(is_protected(Path::new("/p/.git")));
        assert!(is_protected(Path::new("/p/.claude/settings.json")));
        assert!(!is_protected(Path::new("/p/.claude/skills/x/SKILL.md")));
        assert!(!is_protected(Path::new("/p/.keel/commands/a.md")));
        assert!(!is_protected(Path::new("/p/.keel/worktrees/fix/src/a.rs")));
        assert!(is_protected(Path::new("/p/.keel/worktrees/fix/.git")));
        assert!(is_protected(Path::new(
            "/p/.keel/worktrees/fix/.keel/settings.json"
        )));
        assert!(is_protected(Path::new("/home/u/.bashrc")));
        assert!(!is_protected(Path::new("/p/src/main.rs")));
        assert!(!is_protected(Path::new("/p/.gitignore")));
    }
}
