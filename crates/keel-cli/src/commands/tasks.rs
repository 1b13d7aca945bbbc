//! `keel tasks`: the task boards of this project (`.keel/tasks/<list>/`) from the command line,
//! and the background tasks sessions started here.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use keel_tasks::store::{NewTask, Task, TaskPatch, TaskStatus, TaskStore};
use keel_tasks::team::board_for;

use keel_setup::Workspace;

/// `keel tasks ...`
#[derive(Debug, Args)]
pub struct TasksArgs {
    /// The board (`.keel/tasks/<LIST>/`; a team's board is named after the team). Default:
    /// CLAUDE_CODE_TASK_LIST_ID, else the only board there is.
    #[arg(long, global = true, value_name = "LIST")]
    pub list: Option<String>,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// What to do (default: list).
    #[command(subcommand)]
    pub command: Option<TasksCommand>,
}

/// The `keel tasks` subcommands.
#[derive(Debug, Subcommand)]
pub enum TasksCommand {
    /// The tasks of a board, with status, owner and what each waits for.
    List,
    /// The boards of this project.
    Boards,
    /// One task in full.
    Show {
        /// The task's id.
        id: String,
    },
    /// Adds a task.
    Create {
        /// A short imperative title.
        subject: String,
        /// What needs doing.
        #[arg(long, default_value = "")]
        description: String,
        /// Ids of tasks it waits for (comma-separated).
        #[arg(long = "blocked-by", value_delimiter = ',')]
        blocked_by: Vec<String>,
    },
    /// Changes a task.
    Update {
        /// The task's id.
        id: String,
        /// pending, in_progress or completed.
        #[arg(long)]
        status: Option<String>,
        /// Who works on it (empty to clear).
        #[arg(long)]
        owner: Option<String>,
        /// A new title.
        #[arg(long)]
        subject: Option<String>,
        /// More tasks it waits for (comma-separated).
        #[arg(long = "blocked-by", value_delimiter = ',')]
        blocked_by: Vec<String>,
        /// Act as this member (a member cannot take a task another one works on).
        #[arg(long = "as", value_name = "MEMBER")]
        actor: Option<String>,
    },
    /// Claims the first ready task (pending, unowned, nothing to wait for) for OWNER; prints
    /// its id, or nothing when none is ready.
    Claim {
        /// Who claims it.
        #[arg(long)]
        owner: String,
        /// How long the claim holds without renewal, in milliseconds (default: no expiry).
        #[arg(long = "lease-ms")]
        lease_ms: Option<u64>,
    },
    /// Removes a task.
    Delete {
        /// The task's id.
        id: String,
    },
    /// The board's history: every creation, claim, release and completion.
    Log,
    /// Background commands started by sessions in this directory (running ones first).
    Background,
}

/// Runs `keel tasks`.
#[allow(clippy::print_stdout)]
pub fn run(args: TasksArgs, ws: &Workspace) -> Result<ExitCode> {
    let root = ws.settings.project_root.clone();
    let command = args.command.unwrap_or(TasksCommand::List);
    match command {
        TasksCommand::Boards => {
            let boards = boards(&root);
            if args.json {
                println!("{}", serde_json::to_string_pretty(&boards)?);
            } else if boards.is_empty() {
                println!("No task boards in {}", root.join(".keel/tasks").display());
            } else {
                for name in boards {
                    let tasks = board_for(&root, &name).list()?;
                    let done = tasks
                        .iter()
                        .filter(|t| t.status == TaskStatus::Completed)
                        .count();
                    println!("{name}: {done} of {} completed", tasks.len());
                }
            }
            return Ok(ExitCode::SUCCESS);
        }
        TasksCommand::Background => return background(ws, args.json),
        _ => {}
    }
    let store = board(ws, args.list.as_deref())?;
    match command {
        TasksCommand::List => {
            let tasks = store.list()?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&tasks)?);
            } else if tasks.is_empty() {
                println!("No tasks in {}", store.dir().display());
            } else {
                for task in &tasks {
                    println!("{}", task.list_line(&tasks));
                }
            }
        }
        TasksCommand::Show { id } => {
            let Some(task) = store.get(id.trim_start_matches('#'))? else {
                bail!(
                    "no task #{id} in {}; `keel tasks list` shows them",
                    store.dir().display()
                );
            };
            if args.json {
                println!("{}", serde_json::to_string_pretty(&task)?);
            } else {
                let all = store.list()?;
                println!("{}", task.list_line(&all));
                if !task.description.is_empty() {
                    println!("\n{}", task.description);
                }
                if !task.blocks.is_empty() {
                    println!("\nblocks: #{}", task.blocks.join(", #"));
                }
                if let Some(lease) = &task.lease_expires_at {
                    println!("lease until {lease}");
                }
            }
        }
        TasksCommand::Create {
            subject,
            description,
            blocked_by,
        } => {
            let task = store.create(
                NewTask {
                    subject,
                    description,
                    ..NewTask::default()
                },
                None,
            )?;
            let task = if blocked_by.is_empty() {
                task
            } else {
                store
                    .update(
                        &task.id,
                        TaskPatch {
                            add_blocked_by: blocked_by,
                            ..TaskPatch::default()
                        },
                        None,
                    )?
                    .task
            };
            print_task(&task, args.json)?;
        }
        TasksCommand::Update {
            id,
            status,
            owner,
            subject,
            blocked_by,
            actor,
        } => {
            let status = status.map(|s| s.parse::<TaskStatus>()).transpose()?;
            let updated = store.update(
                id.trim_start_matches('#'),
                TaskPatch {
                    status,
                    owner,
                    subject,
                    add_blocked_by: blocked_by,
                    ..TaskPatch::default()
                },
                actor.as_deref(),
            )?;
            print_task(&updated.task, args.json)?;
        }
        TasksCommand::Claim { owner, lease_ms } => {
            let store = match lease_ms {
                Some(ms) => store.with_lease(std::time::Duration::from_millis(ms)),
                None => store,
            };
            if let Some(task) = store.claim_next(&owner)? {
                print_task(&task, args.json)?;
            } else if args.json {
                println!("null");
            }
        }
        TasksCommand::Delete { id } => {
            if !store.delete(id.trim_start_matches('#'), None)? {
                bail!("no task #{id} in {}", store.dir().display());
            }
        }
        TasksCommand::Log => {
            let history = store.history()?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&history)?);
            } else {
                for entry in history {
                    println!(
                        "{} #{} {}{}{}",
                        entry.ts,
                        entry.task,
                        entry.action,
                        entry.by.map(|b| format!(" by {b}")).unwrap_or_default(),
                        entry.detail.map(|d| format!(" ({d})")).unwrap_or_default()
                    );
                }
            }
        }
        TasksCommand::Boards | TasksCommand::Background => {}
    }
    Ok(ExitCode::SUCCESS)
}

#[allow(clippy::print_stdout)]
fn print_task(task: &Task, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string(task)?);
    } else {
        println!("#{} [{}] {}", task.id, task.status.as_str(), task.subject);
    }
    Ok(())
}

fn boards(root: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(root.join(".keel").join("tasks"))
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.path().is_dir())
                .map(|e| e.file_name().to_string_lossy().to_string())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// The board a command works on.
fn board(ws: &Workspace, list: Option<&str>) -> Result<TaskStore> {
    let root = &ws.settings.project_root;
    let chosen = list
        .map(str::to_string)
        .or_else(|| ws.var("CLAUDE_CODE_TASK_LIST_ID"))
        .or_else(|| ws.var("KEEL_TASK_LIST"));
    if let Some(name) = chosen {
        keel_tasks::team::validate_name("task list", &name)?;
        return Ok(board_for(root, &name));
    }
    let all = boards(root);
    match all.as_slice() {
        [only] => Ok(board_for(root, only)),
        [] => bail!(
            "no task boards in {}; name one with --list NAME (it is created on first use)",
            root.join(".keel/tasks").display()
        ),
        many => bail!(
            "this project has several task boards ({}); pick one with --list NAME",
            many.join(", ")
        ),
    }
}

#[allow(clippy::print_stdout)]
fn background(ws: &Workspace, json: bool) -> Result<ExitCode> {
    let store = keel_session::SessionStore::new(&ws.home);
    let dir = store.project_dir(&ws.cwd);
    let mut all = Vec::new();
    for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        let background: PathBuf = entry.path().join("background");
        for mut info in keel_tasks::background::recorded(&background) {
            // A task recorded as running whose process is gone ended with its session.
            if info.status == keel_tasks::background::JobState::Running
                && !info.pid.is_some_and(keel_tasks::background::process_alive)
            {
                info.status = keel_tasks::background::JobState::Killed;
            }
            all.push(info);
        }
    }
    all.sort_by(|a, b| {
        let running = |i: &keel_tasks::background::JobInfo| {
            i.status != keel_tasks::background::JobState::Running
        };
        running(a)
            .cmp(&running(b))
            .then(a.started_at.cmp(&b.started_at))
    });
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&all).context("cannot print JSON")?
        );
    } else if all.is_empty() {
        println!("No background tasks were started in {}", ws.cwd.display());
    } else {
        for info in all {
            println!(
                "{} [{}] pid {} {} -> {}",
                info.id,
                info.status.as_str(),
                info.pid
                    .map(|p| p.to_string())
                    .unwrap_or_else(|| "-".into()),
                info.command.or(info.description).unwrap_or_default(),
                info.output_file.display()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
