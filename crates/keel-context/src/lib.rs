//! What the model sees: the system prompt, assembled from parts that can each be tested alone.
//!
//! The parts are keel's base instructions, a description of the environment (directory,
//! platform, date, git state) and whatever the user appends. `--system-prompt` replaces the base
//! and environment parts; `--append-system-prompt` adds a last part either way.

use std::path::{Path, PathBuf};

/// keel's own instructions to the model: how to work in a repository with the tools.
pub const BASE_INSTRUCTIONS: &str = "\
You are keel, a coding agent working inside the user's repository through tools. You read, \
search and change files and run commands to get the user's task done, then answer briefly.

How to work:
- Look before you change: use Glob and Grep to find code, Read to see it. Read a file before \
you Edit or Write it; edits must match the file exactly, including indentation.
- Prefer Edit for changes to existing files and Write for new files. Keep changes focused on \
the task; follow the style and conventions already in the code.
- Use Bash to build, test and inspect. Commands run in the user's machine, in a shell whose \
working directory persists between calls. Avoid interactive commands; add flags that make \
them non-interactive.
- Independent read-only lookups can be requested together in one turn; they run in parallel.
- Verify your work: run the relevant tests or commands after changing code, and say plainly \
if something could not be verified.
- When a tool returns an error, read it and adjust; do not repeat the same failing call.
- Be concise. Answer in plain text that reads well in a terminal. Refer to code as \
`path:line`. Do not invent files, APIs or results.";

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
}

impl Environment {
    /// Detects the environment of `cwd` without running any process (start-up must stay fast).
    pub fn detect(cwd: &Path, additional_dirs: &[PathBuf]) -> Self {
        Self {
            cwd: cwd.to_path_buf(),
            additional_dirs: additional_dirs.to_vec(),
            platform: std::env::consts::OS.to_string(),
            date: chrono::Local::now().format("%Y-%m-%d").to_string(),
            git: detect_git(cwd),
        }
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
    })
}

/// What the user asked for about the system prompt.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PromptOptions {
    /// Replaces keel's base instructions and environment part (`--system-prompt`).
    pub replace: Option<String>,
    /// Appended as a last part (`--append-system-prompt`).
    pub append: Option<String>,
}

/// Assembles the system prompt as a list of text blocks, in order.
pub fn system_prompt(env: &Environment, options: &PromptOptions) -> Vec<String> {
    let mut parts = match &options.replace {
        Some(replacement) if replacement.is_empty() => Vec::new(),
        Some(replacement) => vec![replacement.clone()],
        None => vec![BASE_INSTRUCTIONS.to_string(), env.render()],
    };
    if let Some(append) = options.append.as_ref().filter(|a| !a.is_empty()) {
        parts.push(append.clone());
    }
    parts
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
    fn default_prompt_has_base_and_environment() {
        let dir = tempfile::tempdir().unwrap();
        let parts = system_prompt(&env_at(dir.path()), &PromptOptions::default());
        assert_eq!(parts.len(), 2);
        assert!(parts[0].starts_with("You are keel"));
        assert!(parts[1].contains(&format!("Working directory: {}", dir.path().display())));
        assert!(parts[1].contains("Today's date: 2026-01-02"));
        assert!(parts[1].contains("Is a git repository: no"));
    }

    #[test]
    fn replace_and_append() {
        let dir = tempfile::tempdir().unwrap();
        let options = PromptOptions {
            replace: Some("Only say hi.".into()),
            append: Some("Be brief.".into()),
        };
        assert_eq!(
            system_prompt(&env_at(dir.path()), &options),
            vec!["Only say hi.".to_string(), "Be brief.".to_string()]
        );
        // The SDK passes `--system-prompt ""` for "no system prompt at all".
        let empty = PromptOptions {
            replace: Some(String::new()),
            append: None,
        };
        assert!(system_prompt(&env_at(dir.path()), &empty).is_empty());
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
}
