//! The environment part of the system prompt: where keel runs, and the state of git there.
//!
//! Everything here except the git status is read without starting a process. The status needs
//! `git`, which costs a few milliseconds; [`GitStatus::spawn`] starts it at once so it runs
//! while keel does the rest of its start-up, and [`GitStatus::join`] collects it when the
//! prompt is built.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How many lines of `git status --short` the prompt shows; the rest are counted.
pub const STATUS_LINES: usize = 20;

/// How much of git's output is read at most; a huge untracked tree must not cost memory.
const STATUS_READ_LIMIT: u64 = 256 * 1024;

/// Facts about where keel runs, shown to the model so it need not ask.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Environment {
    /// The working directory.
    pub cwd: PathBuf,
    /// Extra directories the user granted.
    pub additional_dirs: Vec<PathBuf>,
    /// Operating system name (`linux`, `macos`, …).
    pub platform: String,
    /// Today's date, `YYYY-MM-DD`, in local time.
    pub date: String,
    /// The git repository the directory is in, if any.
    pub git: Option<GitInfo>,
}

/// What the environment part says about git.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitInfo {
    /// The repository's top directory.
    pub root: PathBuf,
    /// The checked-out branch, or `None` for a detached HEAD.
    pub branch: Option<String>,
    /// `git status --short` at start-up, when it was collected in time.
    pub status: Option<ShortStatus>,
}

/// The first lines of `git status --short` and how many there were in all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShortStatus {
    /// Up to [`STATUS_LINES`] lines, as git printed them.
    pub lines: Vec<String>,
    /// How many lines git printed (at least this many when `capped`).
    pub total: usize,
    /// True when git printed more than keel read, so `total` is a lower bound.
    pub capped: bool,
}

impl ShortStatus {
    /// Parses git's output.
    pub fn parse(output: &str, capped: bool) -> Self {
        let all: Vec<&str> = output.lines().filter(|l| !l.trim().is_empty()).collect();
        Self {
            lines: all
                .iter()
                .take(STATUS_LINES)
                .map(|l| (*l).to_string())
                .collect(),
            total: all.len(),
            capped,
        }
    }

    fn render(&self, out: &mut String) {
        if self.total == 0 {
            out.push_str("Git status at session start: clean\n");
            return;
        }
        out.push_str("Git status at session start (git status --short, paths relative to the working directory; it may have changed since):\n");
        for line in &self.lines {
            out.push_str(line);
            out.push('\n');
        }
        let more = self.total - self.lines.len();
        if more > 0 || self.capped {
            let plus = if self.capped { "+" } else { "" };
            out.push_str(&format!("… and {more}{plus} more changed paths\n"));
        }
    }
}

impl Environment {
    /// Detects the environment of `cwd` without running any process (start-up must stay fast);
    /// the git status is added later with [`Environment::with_git_status`].
    pub fn detect(cwd: &Path, additional_dirs: &[PathBuf]) -> Self {
        Self {
            cwd: cwd.to_path_buf(),
            additional_dirs: additional_dirs.to_vec(),
            platform: std::env::consts::OS.to_string(),
            date: chrono::Local::now().format("%Y-%m-%d").to_string(),
            git: detect_git(cwd),
        }
    }

    /// Adds the git status collected by [`GitStatus::join`] (nothing outside a repository).
    pub fn with_git_status(mut self, status: Option<ShortStatus>) -> Self {
        if let Some(git) = &mut self.git {
            git.status = status;
        }
        self
    }

    /// The environment part of the system prompt.
    pub fn render(&self) -> String {
        let mut out = String::from("<env>\n");
        out.push_str(&format!("Working directory: {}\n", self.cwd.display()));
        for dir in &self.additional_dirs {
            out.push_str(&format!(
                "Additional working directory: {}\n",
                dir.display()
            ));
        }
        match &self.git {
            Some(git) => {
                out.push_str(&format!(
                    "Is a git repository: yes (root {})\n",
                    git.root.display()
                ));
                match &git.branch {
                    Some(branch) => out.push_str(&format!("Current branch: {branch}\n")),
                    None => out.push_str("Current branch: (detached HEAD)\n"),
                }
                if let Some(status) = &git.status {
                    status.render(&mut out);
                }
            }
            None => out.push_str("Is a git repository: no\n"),
        }
        out.push_str(&format!("Platform: {}\n", self.platform));
        out.push_str(&format!("Today's date: {}\n", self.date));
        out.push_str("</env>");
        out
    }
}

/// Finds the enclosing git repository by looking for `.git` upwards and reading `HEAD`.
fn detect_git(cwd: &Path) -> Option<GitInfo> {
    let root = cwd.ancestors().find(|dir| dir.join(".git").exists())?;
    let dot_git = root.join(".git");
    // A worktree or submodule has a `.git` file pointing at the real git directory.
    let git_dir = if dot_git.is_file() {
        let text = std::fs::read_to_string(&dot_git).ok()?;
        let target = text.trim().strip_prefix("gitdir:")?.trim();
        let target = PathBuf::from(target);
        if target.is_absolute() {
            target
        } else {
            root.join(target)
        }
    } else {
        dot_git
    };
    let head = std::fs::read_to_string(git_dir.join("HEAD")).unwrap_or_default();
    let branch = head
        .trim()
        .strip_prefix("ref: refs/heads/")
        .map(str::to_string);
    Some(GitInfo {
        root: root.to_path_buf(),
        branch,
        status: None,
    })
}

/// A `git status --short` running in the background since start-up.
///
/// Dropping it without joining kills git, so an abandoned status never outlives keel's need.
#[derive(Debug)]
pub struct GitStatus {
    pending: Option<Pending>,
}

#[derive(Debug)]
struct Pending {
    child: Child,
    output: mpsc::Receiver<(Vec<u8>, bool)>,
}

impl GitStatus {
    /// Starts `git status --short` in `cwd` if it is inside a repository. Never fails: without
    /// a repository or a `git` binary, [`Self::join`] gives `None`.
    pub fn spawn(cwd: &Path) -> Self {
        if !cwd.ancestors().any(|dir| dir.join(".git").exists()) {
            return Self { pending: None };
        }
        let child = Command::new("git")
            // Optional locks would make a concurrent `git commit` of the user's fail.
            .args([
                "--no-optional-locks",
                "-c",
                "core.quotepath=false",
                "status",
                "--short",
            ])
            .current_dir(cwd)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn();
        let Ok(mut child) = child else {
            return Self { pending: None };
        };
        let Some(stdout) = child.stdout.take() else {
            let _ = child.kill();
            let _ = child.wait();
            return Self { pending: None };
        };
        let (tx, rx) = mpsc::channel();
        // A reader thread, so a slow git can be given up on without blocking start-up; it ends
        // when git's stdout closes (git exits or is killed).
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let mut limited = stdout.take(STATUS_READ_LIMIT + 1);
            let _ = limited.read_to_end(&mut buf);
            let capped = buf.len() as u64 > STATUS_READ_LIMIT;
            if capped {
                // Keep whole lines only.
                let cut = buf.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
                buf.truncate(cut);
            }
            let _ = tx.send((buf, capped));
        });
        Self {
            pending: Some(Pending { child, output: rx }),
        }
    }

    /// Waits up to `timeout` for the status; `None` if there is no repository, git failed or
    /// took too long (it is then killed).
    pub fn join(mut self, timeout: Duration) -> Option<ShortStatus> {
        let mut pending = self.pending.take()?;
        let deadline = Instant::now() + timeout;
        let received = pending
            .output
            .recv_timeout(deadline.saturating_duration_since(Instant::now()));
        let Ok((bytes, capped)) = received else {
            let _ = pending.child.kill();
            let _ = pending.child.wait();
            return None;
        };
        if capped {
            // keel stopped reading; git may be blocked writing the rest.
            let _ = pending.child.kill();
        }
        let status = pending.child.wait().ok()?;
        if !status.success() && !capped {
            return None;
        }
        Some(ShortStatus::parse(&String::from_utf8_lossy(&bytes), capped))
    }
}

impl Drop for GitStatus {
    fn drop(&mut self) {
        if let Some(mut pending) = self.pending.take() {
            let _ = pending.child.kill();
            let _ = pending.child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_at(dir: &Path) -> Environment {
        Environment {
            date: "2026-01-02".into(),
            ..Environment::detect(dir, &[])
        }
    }

    #[test]
    fn outside_git_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let text = env_at(dir.path()).render();
        assert!(text.contains(&format!("Working directory: {}", dir.path().display())));
        assert!(text.contains("Today's date: 2026-01-02"));
        assert!(text.contains("Is a git repository: no"));
    }

    #[test]
    fn git_branch_is_read_from_head() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join(".git")).unwrap();
        std::fs::write(dir.path().join(".git/HEAD"), "ref: refs/heads/feature-x\n").unwrap();
        let sub = dir.path().join("src");
        std::fs::create_dir_all(&sub).unwrap();
        let env = env_at(&sub);
        let git = env.git.clone().unwrap();
        assert_eq!(git.root, dir.path());
        assert_eq!(git.branch.as_deref(), Some("feature-x"));
        assert!(env.render().contains("Current branch: feature-x"));
    }

    #[test]
    fn detached_head_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join(".git")).unwrap();
        std::fs::write(dir.path().join(".git/HEAD"), "0123abcd\n").unwrap();
        assert!(env_at(dir.path()).render().contains("(detached HEAD)"));
    }

    #[test]
    fn long_status_is_cut_with_a_count() {
        let output: String = (0..25).map(|i| format!("?? file{i}.txt\n")).collect();
        let status = ShortStatus::parse(&output, false);
        assert_eq!(status.lines.len(), STATUS_LINES);
        assert_eq!(status.total, 25);
        let mut text = String::new();
        status.render(&mut text);
        assert!(text.contains("?? file19.txt\n"));
        assert!(!text.contains("file20"));
        assert!(text.ends_with("… and 5 more changed paths\n"), "{text}");
        let mut clean = String::new();
        ShortStatus::parse("", false).render(&mut clean);
        assert_eq!(clean, "Git status at session start: clean\n");
    }

    #[test]
    fn no_repository_means_no_status() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            GitStatus::spawn(dir.path()).join(Duration::from_secs(5)),
            None
        );
    }
}
