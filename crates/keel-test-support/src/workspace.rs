//! A throw-away workspace for end-to-end tests: a project directory and a separate HOME under
//! one temp dir, removed when dropped.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A temp dir holding `project/` (the working directory) and `home/` (the test's HOME).
#[derive(Debug)]
pub struct TestWorkspace {
    /// The temp dir; deleted on drop.
    pub root: tempfile::TempDir,
    /// `root/project`, canonicalized.
    pub project: PathBuf,
    /// `root/home`, canonicalized.
    pub home: PathBuf,
}

impl Default for TestWorkspace {
    fn default() -> Self {
        Self::new()
    }
}

impl TestWorkspace {
    /// Creates the workspace.
    ///
    /// # Panics
    /// When the temp dir cannot be created (a test helper: the panic is the test failure).
    pub fn new() -> Self {
        Self::try_new().unwrap_or_else(|e| panic!("cannot create a test workspace: {e}"))
    }

    /// Creates the workspace, reporting failure instead of panicking.
    pub fn try_new() -> std::io::Result<Self> {
        let root = tempfile::Builder::new().prefix("keel-test-").tempdir()?;
        let make = |name: &str| -> std::io::Result<PathBuf> {
            let dir = root.path().join(name);
            std::fs::create_dir_all(&dir)?;
            // Canonical, so paths compare equal to what a child process's getcwd reports
            // (macOS puts temp dirs behind the /var -> /private/var symlink).
            std::fs::canonicalize(&dir)
        };
        let project = make("project")?;
        let home = make("home")?;
        Ok(Self {
            root,
            project,
            home,
        })
    }

    /// The absolute path of `rel` inside the project.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.project.join(rel)
    }

    /// Writes `content` to `rel` inside the project, creating parent directories.
    ///
    /// # Panics
    /// When the file cannot be written.
    pub fn write(&self, rel: &str, content: &str) {
        let path = self.path(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .unwrap_or_else(|e| panic!("cannot create {}: {e}", parent.display()));
        }
        std::fs::write(&path, content)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    }

    /// Reads `rel` inside the project.
    ///
    /// # Panics
    /// When the file cannot be read as UTF-8.
    pub fn read(&self, rel: &str) -> String {
        let path = self.path(rel);
        std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
    }

    /// Makes the project a git repository with everything committed, isolated from the
    /// user's and the system's git configuration.
    ///
    /// # Panics
    /// When git is missing or a git command fails.
    pub fn git_init(&self) {
        self.git(&["-c", "init.defaultBranch=main", "init", "-q"]);
        self.git(&["config", "user.name", "keel test"]);
        self.git(&["config", "user.email", "keel-test@example.invalid"]);
        self.git(&["config", "commit.gpgsign", "false"]);
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "--allow-empty", "-m", "initial"]);
    }

    /// Runs git in the project with this workspace's HOME.
    ///
    /// # Panics
    /// When git is missing or exits unsuccessfully.
    pub fn git(&self, args: &[&str]) -> String {
        let out = Command::new("git")
            .args(args)
            .current_dir(&self.project)
            .env("HOME", &self.home)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env_remove("GIT_DIR")
            .env_remove("GIT_WORK_TREE")
            .output()
            .unwrap_or_else(|e| panic!("cannot run git (is it installed?): {e}"));
        assert!(
            out.status.success(),
            "git {} failed in {}: {}",
            args.join(" "),
            self.project.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// A temporary directory that is **not** under any temp directory (`/tmp`, `/var/tmp`,
/// `$TMPDIR`): for sandbox tests, which need a place the sandbox does not allow writing to,
/// while keel's sandbox keeps temp directories writable. Uses Cargo's per-target temp dir when
/// the checkout is not itself under a temp directory, else `~/.cache/keel-tests`. Removed on drop.
pub fn outside_temp_dir(prefix: &str) -> std::io::Result<tempfile::TempDir> {
    let temp_roots: Vec<PathBuf> = ["/tmp", "/var/tmp", "/dev/shm"]
        .iter()
        .map(PathBuf::from)
        .chain(std::env::var_os("TMPDIR").map(PathBuf::from))
        .filter_map(|p| p.canonicalize().ok())
        .collect();
    let is_temp = |path: &Path| {
        let path = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
        temp_roots.iter().any(|root| path.starts_with(root))
    };
    let target_tmp = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/tmp");
    std::fs::create_dir_all(&target_tmp)?;
    let base = if !is_temp(&target_tmp) {
        target_tmp
    } else {
        let home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .ok_or_else(|| std::io::Error::other("HOME is not set"))?;
        let cache = home.join(".cache").join("keel-tests");
        std::fs::create_dir_all(&cache)?;
        if is_temp(&cache) {
            return Err(std::io::Error::other(format!(
                "no directory outside the temp directories is available (HOME {} is under one)",
                home.display()
            )));
        }
        cache
    };
    tempfile::Builder::new().prefix(prefix).tempdir_in(base)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_reads_and_commits() {
        let ws = TestWorkspace::new();
        assert!(ws.project.is_absolute() && ws.project.ends_with("project"));
        assert_eq!(
            ws.home,
            std::fs::canonicalize(ws.root.path().join("home")).unwrap()
        );
        ws.write("a/b/c.txt", "hello\n");
        assert_eq!(ws.read("a/b/c.txt"), "hello\n");
        ws.git_init();
        let log = ws.git(&["log", "--format=%an %s"]);
        assert_eq!(log.trim(), "keel test initial");
        let files = ws.git(&["ls-files"]);
        assert_eq!(files.trim(), "a/b/c.txt");
    }

    #[test]
    fn is_removed_on_drop() {
        let ws = TestWorkspace::new();
        let root = ws.root.path().to_path_buf();
        drop(ws);
        assert!(!root.exists());
    }
}
