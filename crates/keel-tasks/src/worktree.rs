//! Git worktrees that keep agents out of each other's files: each lives in
//! `.keel/worktrees/<name>` of the main checkout, on its own branch `keel/<name>`. Everything
//! goes through the `git` command, so the user's hooks, config and credentials apply. Removing
//! a worktree that holds work not saved anywhere else (uncommitted changes, commits on no other
//! branch) is refused unless the caller agrees to discard it, and the refusal lists that work.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::TasksError;
use crate::fsutil::{self, FileLock};

/// Prefix of the branches keel creates for worktrees.
pub const BRANCH_PREFIX: &str = "keel/";

/// One worktree keel manages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Worktree {
    /// Its name (the folder under `.keel/worktrees/`).
    pub name: String,
    /// Where it is checked out.
    pub path: PathBuf,
    /// Its branch, unless detached.
    pub branch: Option<String>,
    /// The commit checked out.
    pub head: String,
}

/// Work in a worktree that exists nowhere else.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Unsaved {
    /// Uncommitted changes, one `git status --porcelain` line each.
    pub files: Vec<String>,
    /// Commits on its branch that no other branch has, one `git log --oneline` line each.
    pub commits: Vec<String>,
}

impl Unsaved {
    /// Whether nothing would be lost.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty() && self.commits.is_empty()
    }

    /// What would be lost, for a refusal or a confirmation.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if !self.files.is_empty() {
            parts.push(format!(
                "{} uncommitted change(s): {}",
                self.files.len(),
                summarize(&self.files)
            ));
        }
        if !self.commits.is_empty() {
            parts.push(format!(
                "{} commit(s) on no other branch: {}",
                self.commits.len(),
                summarize(&self.commits)
            ));
        }
        parts.join("; ")
    }
}

fn summarize(lines: &[String]) -> String {
    let shown: Vec<&str> = lines.iter().take(10).map(|l| l.trim()).collect();
    let more = lines.len().saturating_sub(shown.len());
    if more > 0 {
        format!("{} and {more} more", shown.join(", "))
    } else {
        shown.join(", ")
    }
}

/// What a removal discarded.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Removed {
    /// The worktree that was removed.
    pub name: String,
    /// Uncommitted changes thrown away.
    pub discarded_files: usize,
    /// Commits thrown away with the branch.
    pub discarded_commits: usize,
    /// Whether the branch was deleted too.
    pub branch_deleted: bool,
}

/// Runs git in `dir` and returns its standard output.
pub async fn git(dir: &Path, args: &[&str]) -> Result<String, TasksError> {
    let output = tokio::process::Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_TERMINAL_PROMPT", "0")
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(|source| TasksError::Spawn {
            what: "git (is it installed and on PATH?)".into(),
            source,
        })?;
    if !output.status.success() {
        return Err(TasksError::Git {
            command: format!("git {}", args.join(" ")),
            dir: dir.to_path_buf(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// The main checkout of the repository `dir` is in (also from inside a linked worktree).
pub async fn main_root(dir: &Path) -> Result<PathBuf, TasksError> {
    let common = git(dir, &["rev-parse", "--path-format=absolute", "--git-common-dir"])
        .await
        .map_err(|error| match error {
            TasksError::Git { .. } => TasksError::Invalid(format!(
                "{} is not inside a git repository; worktrees need one (run `git init` and commit first)",
                dir.display()
            )),
            other => other,
        })?;
    let common = PathBuf::from(common.trim());
    // The common dir of a normal repository is `<root>/.git`.
    match common.file_name() {
        Some(name) if name == ".git" => Ok(common
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or(common.clone())),
        _ => Err(TasksError::Invalid(format!(
            "the repository at {} has no working tree (a bare repository); worktrees need a checkout",
            common.display()
        ))),
    }
}

/// The folder keel's worktrees of the checkout `root` live in.
pub fn worktrees_dir(root: &Path) -> PathBuf {
    root.join(".keel").join("worktrees")
}

/// Checks a worktree name: letters, digits, `-`, `_` and `.`, not starting with `.` or `-`.
pub fn validate_name(name: &str) -> Result<(), TasksError> {
    let ok = !name.is_empty()
        && name.len() <= 80
        && !name.starts_with(['.', '-'])
        && !name.contains("..")
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(TasksError::Invalid(format!(
            "{name:?} cannot name a worktree; use letters, digits, '-', '_' and '.' (e.g. fix-login)"
        )))
    }
}

/// A worktree name for a task: `task-<id>-<words of the subject>`.
pub fn name_for_task(id: &str, subject: &str) -> String {
    let mut slug = String::new();
    for c in subject.chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.ends_with('-') && !slug.is_empty() {
            slug.push('-');
        }
        if slug.len() >= 30 {
            break;
        }
    }
    let slug = slug.trim_matches('-');
    if slug.is_empty() {
        format!("task-{id}")
    } else {
        format!("task-{id}-{slug}")
    }
}

/// A worktree name for a subagent's task: `agent-<words of the task>`.
pub fn name_for_agent(task: &str) -> String {
    let mut slug = String::new();
    for c in task.chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.ends_with('-') && !slug.is_empty() {
            slug.push('-');
        }
        if slug.len() >= 40 {
            break;
        }
    }
    let slug = slug.trim_matches('-');
    if slug.is_empty() {
        "agent".to_string()
    } else {
        format!("agent-{slug}")
    }
}

/// Makes worktrees for subagents started with `isolation: "worktree"`: a fresh one per
/// subagent, removed when it ends clean, kept (with its branch) when it holds changes.
#[derive(Debug, Clone, Copy, Default)]
pub struct AgentWorktrees;

#[async_trait::async_trait]
impl keel_tools::WorktreeIsolation for AgentWorktrees {
    async fn create(
        &self,
        task: &str,
        from: &Path,
    ) -> Result<keel_tools::IsolatedTree, keel_tools::ToolError> {
        let failed = |e: TasksError| keel_tools::ToolError::Failed(e.to_string());
        let root = main_root(from).await.map_err(failed)?;
        let tree = create_fresh(&root, &name_for_agent(task))
            .await
            .map_err(failed)?;
        Ok(keel_tools::IsolatedTree {
            branch: tree
                .branch
                .unwrap_or_else(|| format!("{BRANCH_PREFIX}{}", tree.name)),
            name: tree.name,
            path: tree.path,
        })
    }

    async fn finish(
        &self,
        tree: &keel_tools::IsolatedTree,
    ) -> Result<keel_tools::IsolationEnd, keel_tools::ToolError> {
        let failed = |e: TasksError| keel_tools::ToolError::Failed(e.to_string());
        let root = main_root(&tree.path).await.map_err(failed)?;
        match remove(&root, &tree.name, true, false).await {
            Ok(_) => Ok(keel_tools::IsolationEnd::Removed),
            Err(TasksError::UnsavedWork { lost, .. }) => {
                Ok(keel_tools::IsolationEnd::Kept { changes: lost })
            }
            // Someone removed it already: nothing to keep.
            Err(TasksError::NotFound(_)) => Ok(keel_tools::IsolationEnd::Removed),
            Err(error) => Err(failed(error)),
        }
    }
}

/// Creates the worktree `name` (or returns it if it exists): branch `keel/<name>` from `base`
/// (default: the main checkout's HEAD), checked out in `.keel/worktrees/<name>`.
pub async fn create(root: &Path, name: &str, base: Option<&str>) -> Result<Worktree, TasksError> {
    validate_name(name)?;
    prepare_dir(root)?;
    let _lock = admin_lock(root).await?;
    if let Some(existing) = find_unlocked(root, name).await? {
        return Ok(existing);
    }
    add_unlocked(root, name, base).await
}

/// Creates a new worktree named `base`, or `base-2`, `base-3`, ... when that name or its
/// branch is taken, so two callers with the same name never share one.
pub async fn create_fresh(root: &Path, base: &str) -> Result<Worktree, TasksError> {
    validate_name(base)?;
    prepare_dir(root)?;
    let _lock = admin_lock(root).await?;
    let existing: Vec<String> = list_unlocked(root)
        .await?
        .into_iter()
        .map(|w| w.name)
        .collect();
    let mut name = base.to_string();
    for n in 2u32.. {
        let branch = format!("refs/heads/{BRANCH_PREFIX}{name}");
        let taken = existing.contains(&name)
            || worktrees_dir(root).join(&name).exists()
            || git(root, &["rev-parse", "--verify", "--quiet", &branch])
                .await
                .is_ok();
        if !taken {
            break;
        }
        name = format!("{base}-{n}");
    }
    add_unlocked(root, &name, None).await
}

/// Makes the worktrees folder, with a `*` ignore file that hides the worktrees (and itself)
/// from the main checkout's status.
fn prepare_dir(root: &Path) -> Result<(), TasksError> {
    let dir = worktrees_dir(root);
    fsutil::create_dir(&dir)?;
    fsutil::ensure_ignored(&dir)
}

/// Adds the worktree `name` (its branch is reused if it exists); the caller holds the lock.
async fn add_unlocked(root: &Path, name: &str, base: Option<&str>) -> Result<Worktree, TasksError> {
    let dir = worktrees_dir(root);
    let path = dir.join(name);
    let branch = format!("{BRANCH_PREFIX}{name}");
    let path_text = path.to_string_lossy().to_string();
    let branch_exists = git(
        root,
        &[
            "rev-parse",
            "--verify",
            "--quiet",
            &format!("refs/heads/{branch}"),
        ],
    )
    .await
    .is_ok();
    if branch_exists {
        git(root, &["worktree", "add", &path_text, &branch]).await?;
    } else {
        let base = base.unwrap_or("HEAD");
        git(root, &["worktree", "add", "-b", &branch, &path_text, base]).await?;
    }
    find_unlocked(root, name).await?.ok_or_else(|| {
        TasksError::Invalid(format!(
            "git created the worktree {name} but does not list it; check `git worktree list`"
        ))
    })
}

/// The worktrees keel made in the checkout `root`.
pub async fn list(root: &Path) -> Result<Vec<Worktree>, TasksError> {
    let _lock = admin_lock(root).await?;
    list_unlocked(root).await
}

/// Serialises git's worktree administration in one repository: an `add` running next to a
/// `list` or `remove` in another process lets those read a half-made entry and fail.
async fn admin_lock(root: &Path) -> Result<FileLock, TasksError> {
    let lock_path = worktrees_dir(root).join(".lock");
    tokio::task::spawn_blocking(move || FileLock::acquire(&lock_path))
        .await
        .map_err(|_| {
            TasksError::Invalid("interrupted while waiting for the worktree lock".into())
        })?
}

async fn list_unlocked(root: &Path) -> Result<Vec<Worktree>, TasksError> {
    let text = git(root, &["worktree", "list", "--porcelain"]).await?;
    let dir = worktrees_dir(root);
    let canonical_dir = std::fs::canonicalize(&dir).unwrap_or(dir.clone());
    let mut found = Vec::new();
    for block in text.split("\n\n") {
        let mut path = None;
        let mut head = String::new();
        let mut branch = None;
        for line in block.lines() {
            if let Some(p) = line.strip_prefix("worktree ") {
                path = Some(PathBuf::from(p));
            } else if let Some(h) = line.strip_prefix("HEAD ") {
                head = h.to_string();
            } else if let Some(b) = line.strip_prefix("branch ") {
                branch = Some(b.trim_start_matches("refs/heads/").to_string());
            }
        }
        let Some(path) = path else { continue };
        let Some(parent) = path.parent() else {
            continue;
        };
        if parent != dir && parent != canonical_dir {
            continue;
        }
        let Some(name) = path.file_name().map(|n| n.to_string_lossy().to_string()) else {
            continue;
        };
        found.push(Worktree {
            name,
            path,
            branch,
            head,
        });
    }
    Ok(found)
}

/// The worktree `name`, if it exists.
pub async fn find(root: &Path, name: &str) -> Result<Option<Worktree>, TasksError> {
    Ok(list(root).await?.into_iter().find(|w| w.name == name))
}

async fn find_unlocked(root: &Path, name: &str) -> Result<Option<Worktree>, TasksError> {
    Ok(list_unlocked(root)
        .await?
        .into_iter()
        .find(|w| w.name == name))
}

/// What removing `worktree` would lose: its uncommitted changes, and (when its branch goes
/// too) the commits no other branch has.
pub async fn unsaved(
    root: &Path,
    worktree: &Worktree,
    with_branch: bool,
) -> Result<Unsaved, TasksError> {
    let status = if worktree.path.is_dir() {
        git(&worktree.path, &["status", "--porcelain"]).await?
    } else {
        String::new()
    };
    let files: Vec<String> = status
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect();
    let mut commits = Vec::new();
    if with_branch && let Some(branch) = &worktree.branch {
        let refs = git(root, &["for-each-ref", "--format=%(refname)", "refs/heads"]).await?;
        let ours = format!("refs/heads/{branch}");
        let mut args = vec!["log", "--oneline", ours.as_str(), "--not"];
        let others: Vec<&str> = refs.lines().filter(|r| *r != ours).collect();
        args.extend(others);
        commits = git(root, &args)
            .await?
            .lines()
            .map(str::to_string)
            .collect();
    }
    Ok(Unsaved { files, commits })
}

/// Removes the worktree `name`, and its branch with `delete_branch`. Work that would be lost
/// makes this fail (listing it) unless `discard` is set.
pub async fn remove(
    root: &Path,
    name: &str,
    delete_branch: bool,
    discard: bool,
) -> Result<Removed, TasksError> {
    let _lock = admin_lock(root).await?;
    let Some(worktree) = find_unlocked(root, name).await? else {
        let names: Vec<String> = list_unlocked(root)
            .await?
            .into_iter()
            .map(|w| w.name)
            .collect();
        return Err(TasksError::NotFound(if names.is_empty() {
            format!(
                "no worktree named {name}; keel has none in {}",
                root.display()
            )
        } else {
            format!("no worktree named {name}; there are: {}", names.join(", "))
        }));
    };
    let lost = unsaved(root, &worktree, delete_branch).await?;
    if !lost.is_empty() && !discard {
        return Err(TasksError::UnsavedWork {
            name: name.to_string(),
            lost: lost.describe(),
        });
    }
    let path = worktree.path.to_string_lossy().to_string();
    git(root, &["worktree", "remove", "--force", &path]).await?;
    let mut branch_deleted = false;
    if delete_branch && let Some(branch) = &worktree.branch {
        git(root, &["branch", "-D", branch]).await?;
        branch_deleted = true;
    }
    Ok(Removed {
        name: name.to_string(),
        discarded_files: lost.files.len(),
        discarded_commits: if delete_branch { lost.commits.len() } else { 0 },
        branch_deleted,
    })
}
