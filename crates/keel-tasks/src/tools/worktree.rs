//! `EnterWorktree` and `ExitWorktree` (Claude Code's names and schemas): move the session into
//! an isolated git worktree and back.

use std::sync::Arc;

use async_trait::async_trait;
use keel_tools::{Tool, ToolContext, ToolError, ToolOutput};
use serde_json::{Value, json};

use super::failed;
use crate::runtime::{Entered, TaskRuntime};
use crate::worktree;

/// `EnterWorktree`: creates (or opens) a worktree and makes it the working directory.
#[derive(Debug)]
pub struct EnterWorktree(pub Arc<TaskRuntime>);

#[async_trait]
impl Tool for EnterWorktree {
    fn name(&self) -> &str {
        "EnterWorktree"
    }

    fn description(&self) -> &str {
        "Moves this session into an isolated git worktree, so your changes stay apart from the \
         user's checkout until merged: a new one named `name` (in .keel/worktrees/, on branch \
         keel/<name>), or the existing worktree at `path`. Commands and file paths then start \
         there. Leave with ExitWorktree (keep it, or remove it)."
    }

    fn input_schema(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "name": {"type": "string", "description": "Name of a new worktree (letters, digits, '-', '_', '.'); random if omitted"},
                "path": {"type": "string", "description": "Path of an existing worktree to enter instead"}
            },
            "additionalProperties": false
        })
    }

    fn is_read_only(&self) -> bool {
        false
    }

    async fn call(&self, input: Value, ctx: &ToolContext) -> Result<ToolOutput, ToolError> {
        if let Some(entered) = self.0.entered() {
            return Err(ToolError::Failed(format!(
                "Already in worktree {} ({}); leave it with ExitWorktree first",
                entered.worktree.name,
                entered.worktree.path.display()
            )));
        }
        let cwd = ctx.current_dir();
        let root = worktree::main_root(&cwd).await.map_err(failed)?;
        let wt = if let Some(path) = input["path"].as_str().filter(|p| !p.trim().is_empty()) {
            let wanted = ctx.resolve_path(path);
            let wanted = std::fs::canonicalize(&wanted).unwrap_or(wanted);
            let all = worktree::list(&root).await.map_err(failed)?;
            all.into_iter()
                .find(|w| std::fs::canonicalize(&w.path).unwrap_or(w.path.clone()) == wanted)
                .ok_or_else(|| {
                    ToolError::Failed(format!(
                        "{} is not one of keel's worktrees (they live in {}); give a name to create one",
                        wanted.display(),
                        worktree::worktrees_dir(&root).display()
                    ))
                })?
        } else {
            let name = match input["name"]
                .as_str()
                .map(str::trim)
                .filter(|n| !n.is_empty())
            {
                Some(name) => name.to_string(),
                None => format!("wt-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]),
            };
            worktree::create(&root, &name, None).await.map_err(failed)?
        };
        ctx.set_current_dir(wt.path.clone());
        self.0.set_entered(Some(Entered {
            root,
            worktree: wt.clone(),
            original_cwd: cwd,
        }));
        let branch = wt.branch.clone().unwrap_or_else(|| "(detached)".into());
        Ok(ToolOutput {
            content: format!(
                "Now working in worktree {} at {} on branch {branch}. Leave it with ExitWorktree.",
                wt.name,
                wt.path.display()
            ),
            structured: Some(json!({
                "worktreePath": wt.path,
                "worktreeBranch": wt.branch,
                "message": format!("Entered worktree {}", wt.name),
            })),
            images: Vec::new(),
        })
    }
}

/// `ExitWorktree`: leaves the worktree, keeping or removing it.
#[derive(Debug)]
pub struct ExitWorktree(pub Arc<TaskRuntime>);

#[async_trait]
impl Tool for ExitWorktree {
    fn name(&self) -> &str {
        "ExitWorktree"
    }

    fn description(&self) -> &str {
        "Leaves the worktree entered with EnterWorktree and returns to the original directory. \
         action \"keep\" leaves the worktree and its branch for later; \"remove\" deletes both, \
         which is refused (listing what would be lost) when there are uncommitted changes or \
         commits on no other branch, unless discard_changes is true."
    }

    fn input_schema(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "action": {"type": "string", "enum": ["keep", "remove"], "description": "Keep the worktree, or remove it with its branch"},
                "discard_changes": {"type": "boolean", "description": "With remove: throw away uncommitted changes and unmerged commits"}
            },
            "required": ["action"],
            "additionalProperties": false
        })
    }

    fn is_read_only(&self) -> bool {
        false
    }

    async fn call(&self, input: Value, ctx: &ToolContext) -> Result<ToolOutput, ToolError> {
        let Some(entered) = self.0.entered() else {
            return Err(ToolError::Failed(
                "Not in a worktree entered with EnterWorktree; nothing to leave".into(),
            ));
        };
        let action = input["action"].as_str().unwrap_or("keep");
        let discard = input["discard_changes"].as_bool().unwrap_or(false);
        let wt = &entered.worktree;
        let mut removed = None;
        if action == "remove" {
            // Leave the folder before removing it, so nothing runs in a deleted directory.
            ctx.set_current_dir(entered.original_cwd.clone());
            match worktree::remove(&entered.root, &wt.name, true, discard).await {
                Ok(done) => removed = Some(done),
                Err(error) => {
                    ctx.set_current_dir(wt.path.clone());
                    return Err(ToolError::Failed(format!(
                        "{error}. You are still in the worktree."
                    )));
                }
            }
        }
        ctx.set_current_dir(entered.original_cwd.clone());
        self.0.set_entered(None);
        let (message, files, commits) = match &removed {
            Some(r) => (
                format!(
                    "Removed worktree {} and its branch{}; back in {}",
                    wt.name,
                    if r.discarded_files + r.discarded_commits > 0 {
                        format!(
                            " (discarded {} uncommitted change(s) and {} commit(s))",
                            r.discarded_files, r.discarded_commits
                        )
                    } else {
                        String::new()
                    },
                    entered.original_cwd.display()
                ),
                r.discarded_files,
                r.discarded_commits,
            ),
            None => (
                format!(
                    "Left worktree {} (kept at {} on branch {}); back in {}",
                    wt.name,
                    wt.path.display(),
                    wt.branch.clone().unwrap_or_default(),
                    entered.original_cwd.display()
                ),
                0,
                0,
            ),
        };
        Ok(ToolOutput {
            content: message.clone(),
            structured: Some(json!({
                "action": action,
                "originalCwd": entered.original_cwd,
                "worktreePath": wt.path,
                "worktreeBranch": wt.branch,
                "discardedFiles": files,
                "discardedCommits": commits,
                "message": message,
            })),
            images: Vec::new(),
        })
    }
}
