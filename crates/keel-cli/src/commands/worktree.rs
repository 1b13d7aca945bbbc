//! `keel worktree`: the git worktrees keel made for agents (`.keel/worktrees/<name>`, branch
//! `keel/<name>`): list them with what each holds, remove them without losing work by accident.

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use keel_tasks::worktree;

use keel_setup::Workspace;

/// `keel worktree ...`
#[derive(Debug, Args)]
pub struct WorktreeArgs {
    /// What to do (default: list).
    #[command(subcommand)]
    pub command: Option<WorktreeCommand>,
}

/// The `keel worktree` subcommands.
#[derive(Debug, Subcommand)]
pub enum WorktreeCommand {
    /// keel's worktrees, with their branch and unsaved work.
    List,
    /// Removes a worktree and its branch; refused when that would lose work, unless
    /// --discard-changes.
    Remove {
        /// The worktree's name.
        name: String,
        /// Throw away uncommitted changes and commits no other branch has.
        #[arg(long = "discard-changes")]
        discard_changes: bool,
        /// Keep the branch (and its commits); remove only the checkout.
        #[arg(long = "keep-branch")]
        keep_branch: bool,
    },
}

/// Runs `keel worktree`.
#[allow(clippy::print_stdout)]
pub fn run(args: WorktreeArgs, ws: &Workspace) -> Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let root = worktree::main_root(&ws.cwd).await?;
        match args.command.unwrap_or(WorktreeCommand::List) {
            WorktreeCommand::List => {
                let all = worktree::list(&root).await?;
                if all.is_empty() {
                    println!("No keel worktrees in {}", root.display());
                }
                for wt in all {
                    let unsaved = worktree::unsaved(&root, &wt, true).await?;
                    let state = if unsaved.is_empty() {
                        "clean".to_string()
                    } else {
                        unsaved.describe()
                    };
                    println!(
                        "{}  {}  {}  {}",
                        wt.name,
                        wt.branch.as_deref().unwrap_or("(detached)"),
                        wt.path.display(),
                        state
                    );
                }
            }
            WorktreeCommand::Remove {
                name,
                discard_changes,
                keep_branch,
            } => {
                let removed = worktree::remove(&root, &name, !keep_branch, discard_changes).await?;
                let mut line = format!("removed worktree {}", removed.name);
                if removed.branch_deleted {
                    line.push_str(" and its branch");
                }
                if removed.discarded_files + removed.discarded_commits > 0 {
                    line.push_str(&format!(
                        " (discarded {} uncommitted change(s), {} commit(s))",
                        removed.discarded_files, removed.discarded_commits
                    ));
                }
                println!("{line}");
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}
