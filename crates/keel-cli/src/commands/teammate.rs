//! `keel __teammate --team T --name M`: one member of a team, started by the lead as a child
//! process. It loops: answer protocol requests (a shutdown request stops it after the step it
//! is on), claim the next ready task from the team board (atomically, with a lease it renews
//! while it works), work it in a session of its own rooted in the task's git worktree, and
//! give the task back if that session ends without completing it; messages that arrive
//! between tasks are answered in a session in the project root. After a configured time
//! without work it stops.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Parser as _;
use keel_engine::Approver;
use keel_protocol::{ApprovalAnswer, Event, Op, Outcome};
use keel_tasks::mailbox::{Body, Envelope, render};
use keel_tasks::store::{Task, TaskStatus, TaskStore};
use keel_tasks::team::{LEAD, MemberConfig, MemberStatus, Team, Timing};
use keel_tasks::{Seat, TaskRuntime, worktree};
use serde_json::Value;
use tokio::sync::mpsc;

use crate::args::Args;
use keel_setup::{Extras, Workspace, prepare_with};

/// `keel __teammate`
#[derive(Debug, clap::Args)]
pub struct TeammateArgs {
    /// The team.
    #[arg(long)]
    pub team: String,
    /// This member's name.
    #[arg(long)]
    pub name: String,
}

/// Runs a member until it stops.
pub fn run(cmd: TeammateArgs, ws: &Workspace) -> Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let result = runtime.block_on(async {
        let member = Member::open(cmd, ws)?;
        member.run().await
    });
    runtime.shutdown_background();
    result
}

struct Member<'a> {
    ws: &'a Workspace,
    root: PathBuf,
    team: Team,
    me: String,
    config: MemberConfig,
    timing: Timing,
    board: TaskStore,
    seat: Seat,
    base_mode: String,
    home: Option<Driven>,
}

/// Logs a line to the member's log (its stderr).
fn say(me: &str, line: &str) {
    eprintln!(
        "[{}] keel teammate {me}: {line}",
        keel_tasks::fsutil::now_rfc3339()
    );
}

/// This process's global flags, parsed again: each session of the member starts from them.
fn global_args() -> Args {
    let mut args = Args::parse_from(std::env::args_os());
    args.command = None;
    args
}

impl<'a> Member<'a> {
    fn open(cmd: TeammateArgs, ws: &'a Workspace) -> Result<Self> {
        let root = ws.settings.project_root.clone();
        let team = Team::open(&root, &cmd.team)?;
        let team_config = team.config()?;
        let Some(config) = team_config
            .members
            .iter()
            .find(|m| m.name == cmd.name)
            .cloned()
        else {
            bail!(
                "team {} has no member named {}; the lead adds members with SpawnTeammate",
                cmd.team,
                cmd.name
            );
        };
        let args = global_args();
        let base_mode = match (&args.permission_mode, args.dangerously_skip_permissions) {
            (Some(mode), _) => mode.clone(),
            (None, true) => "bypassPermissions".to_string(),
            (None, false) => "default".to_string(),
        };
        Ok(Self {
            ws,
            board: team.board()?,
            seat: Seat::new(team.clone(), &cmd.name),
            timing: team_config.timing,
            root,
            team,
            me: cmd.name,
            config,
            base_mode,
            home: None,
        })
    }

    fn set_state(&self, status: MemberStatus, task: Option<&str>, detail: Option<&str>) {
        if let Err(error) = self.team.set_state(&self.me, status, task, detail) {
            say(&self.me, &format!("cannot record my state: {error}"));
        }
    }

    fn tell_lead(&self, body: Body) {
        if let Err(error) = self.team.mailbox().send(&self.me, LEAD, body) {
            say(&self.me, &format!("cannot write to the lead: {error}"));
        }
    }

    async fn run(mut self) -> Result<ExitCode> {
        self.set_state(MemberStatus::Idle, None, Some("ready"));
        say(&self.me, &format!("joined team {}", self.team.name()));
        let mut idle_since = Instant::now();
        let mut messages: Vec<String> = Vec::new();
        loop {
            for envelope in self.team.mailbox().take(&self.me)? {
                match &envelope.body {
                    Body::ShutdownRequest { .. } => self.seat.push_control(envelope),
                    // An answer nobody waits for any more (the wait timed out).
                    Body::PlanApprovalResponse { .. } => {}
                    _ => messages.push(render(&envelope)),
                }
            }
            if let Some(request) = self.shutdown_request() {
                self.stop_for(&request).await;
                return Ok(ExitCode::SUCCESS);
            }
            let board = self.board.clone();
            let me = self.me.clone();
            let claimed = tokio::task::spawn_blocking(move || board.claim_next(&me))
                .await
                .context("the board claim was cancelled")??;
            if let Some(task) = claimed {
                say(&self.me, &format!("claimed #{} {}", task.id, task.subject));
                self.work(task, std::mem::take(&mut messages)).await;
                idle_since = Instant::now();
                continue;
            }
            if !messages.is_empty() {
                self.answer_messages(std::mem::take(&mut messages)).await;
                idle_since = Instant::now();
                continue;
            }
            if idle_since.elapsed() >= self.timing.idle_timeout() {
                let detail = format!(
                    "no work for {} s; stopped",
                    self.timing.idle_timeout().as_secs()
                );
                say(&self.me, &detail);
                self.tell_lead(Body::Status {
                    status: "stopped".into(),
                    detail: Some(detail.clone()),
                });
                self.set_state(MemberStatus::Stopped, None, Some(&detail));
                if let Some(home) = self.home.take() {
                    home.close().await;
                }
                return Ok(ExitCode::SUCCESS);
            }
            tokio::time::sleep(self.timing.poll()).await;
        }
    }

    fn shutdown_request(&self) -> Option<Envelope> {
        let control = self.seat.take_control();
        let mut found = None;
        for envelope in control {
            if matches!(envelope.body, Body::ShutdownRequest { .. }) && found.is_none() {
                found = Some(envelope);
            }
        }
        found
    }

    /// Approves a shutdown request (the step it was on is finished) and stops.
    async fn stop_for(&mut self, request: &Envelope) {
        let Body::ShutdownRequest { request_id, .. } = &request.body else {
            return;
        };
        say(
            &self.me,
            &format!("stopping: {request_id} from {}", request.from),
        );
        if let Some(home) = self.home.take() {
            home.close().await;
        }
        // The answer goes out before the state says stopped, so a lead that sees the member
        // stopped finds its answer already in the inbox.
        if let Err(error) = self.team.mailbox().send(
            &self.me,
            &request.from,
            Body::ShutdownResponse {
                request_id: request_id.clone(),
                approve: true,
                reason: Some("finished my current step".into()),
            },
        ) {
            say(
                &self.me,
                &format!("cannot answer the shutdown request: {error}"),
            );
        }
        self.set_state(
            MemberStatus::Stopped,
            None,
            Some("stopped at the lead's request"),
        );
    }

    /// Works one claimed task, then completes the bookkeeping: a finished task's clean worktree
    /// is removed (its branch stays), an unfinished task goes back to the board.
    async fn work(&mut self, task: Task, messages: Vec<String>) {
        self.set_state(MemberStatus::Working, Some(&task.id), Some(&task.subject));
        let heartbeat = {
            let board = self.board.clone();
            let me = self.me.clone();
            let every = self.timing.lease() / 3;
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(every).await;
                    let board = board.clone();
                    let me = me.clone();
                    let _ = tokio::task::spawn_blocking(move || board.renew_leases(&me)).await;
                }
            })
        };
        let worked = self.work_in_worktree(&task, messages).await;
        heartbeat.abort();
        let board = self.board.clone();
        let id = task.id.clone();
        let now = tokio::task::spawn_blocking(move || board.get(&id))
            .await
            .ok()
            .and_then(Result::ok)
            .flatten();
        let completed = now
            .as_ref()
            .is_some_and(|t| t.status == TaskStatus::Completed);
        match (&worked, completed) {
            (Ok((_, Some(wt))), true) => {
                say(&self.me, &format!("completed #{}", task.id));
                // The branch keeps the work; a clean checkout is not needed any more.
                // Uncommitted changes keep it (remove refuses, and that is fine).
                match worktree::remove(&self.root, &wt.name, false, false).await {
                    Ok(_) | Err(keel_tasks::TasksError::UnsavedWork { .. }) => {}
                    Err(error) => say(
                        &self.me,
                        &format!("cannot remove worktree {}: {error}", wt.name),
                    ),
                }
            }
            (_, true) => say(&self.me, &format!("completed #{}", task.id)),
            (outcome, false) => {
                let why = match outcome {
                    Ok((text, _)) => format!("the session ended without completing it: {text}"),
                    Err(error) => format!("it failed: {error:#}"),
                };
                say(&self.me, &format!("giving back #{}: {why}", task.id));
                let board = self.board.clone();
                let (id, me, reason) = (task.id.clone(), self.me.clone(), why.clone());
                let _ = tokio::task::spawn_blocking(move || board.release(&id, &me, &reason)).await;
                self.tell_lead(Body::Status {
                    status: "idle".into(),
                    detail: Some(format!("{} gave task #{} back: {why}", self.me, task.id)),
                });
            }
        }
        self.set_state(MemberStatus::Idle, None, None);
    }

    async fn work_in_worktree(
        &mut self,
        task: &Task,
        messages: Vec<String>,
    ) -> Result<(String, Option<worktree::Worktree>)> {
        let (dir, wt) = match worktree::main_root(&self.root).await {
            Ok(repo) => {
                let name = worktree::name_for_task(&task.id, &task.subject);
                let wt = worktree::create(&repo, &name, None).await?;
                (wt.path.clone(), Some(wt))
            }
            Err(error) => {
                say(&self.me, &format!("working without a worktree: {error}"));
                (self.root.clone(), None)
            }
        };
        let mut args = global_args();
        args.append_system_prompt = Some(self.identity());
        if self.config.plan_mode_required {
            args.permission_mode = Some("plan".into());
            args.dangerously_skip_permissions = false;
        }
        let ws = crate::load_workspace_in(&args, dir.clone())?;
        let mut session = Driven::start(&args, &ws, self.seat.clone()).await?;
        let prompt = task_prompt(task, &dir, wt.as_ref(), &messages);
        let ran = session.run(prompt, self, Some(task)).await;
        session.close().await;
        let (outcome, result) = ran?;
        let text = match outcome {
            Outcome::Success => result,
            other => format!("{} ({result})", other.subtype()),
        };
        Ok((text, wt))
    }

    /// Messages that arrived while there was no task: answered in the member's home session
    /// (in the project root), which lives until the member stops.
    async fn answer_messages(&mut self, messages: Vec<String>) {
        self.set_state(MemberStatus::Working, None, Some("answering messages"));
        if self.home.is_none() {
            let mut args = global_args();
            args.append_system_prompt = Some(self.identity());
            match Driven::start(&args, self.ws, self.seat.clone()).await {
                Ok(home) => self.home = Some(home),
                Err(error) => {
                    say(
                        &self.me,
                        &format!("cannot start a session for messages: {error:#}"),
                    );
                    self.set_state(MemberStatus::Idle, None, None);
                    return;
                }
            }
        }
        if let Some(mut home) = self.home.take() {
            if let Err(error) = home.run(messages.join("\n\n"), self, None).await {
                say(&self.me, &format!("answering messages failed: {error:#}"));
            }
            self.home = Some(home);
        }
        self.set_state(MemberStatus::Idle, None, None);
    }

    fn identity(&self) -> String {
        let mut text = format!(
            "You are {me}, a member of team {team}, led by {LEAD}. You work tasks from the \
             team's board, each in its own git worktree; mark a task completed with TaskUpdate \
             when it is done, and report to the lead with SendMessage (to \"{LEAD}\") when you \
             finish a task or are stuck.",
            me = self.me,
            team = self.team.name()
        );
        if !self.config.prompt.trim().is_empty() {
            text.push_str("\n\nYour instructions from the lead:\n");
            text.push_str(&self.config.prompt);
        }
        text
    }

    /// The answer to a permission question of a member's session: a plan goes to the lead
    /// for approval; anything else the configured mode did not allow is refused (members run
    /// unattended).
    async fn answer(
        &self,
        tool: &str,
        input: &Value,
        task: Option<&Task>,
        runtime: &Arc<TaskRuntime>,
        plan_approved: bool,
    ) -> ApprovalAnswer {
        let may_write = !self.config.plan_mode_required || plan_approved;
        if tool != "ExitPlanMode" && may_write && self.base_mode == "bypassPermissions" {
            // Asked only because plan mode just ended; the member runs with the lead's
            // permissions.
            return ApprovalAnswer::AllowOnce {
                updated_input: None,
            };
        }
        if tool != "ExitPlanMode" {
            return ApprovalAnswer::Deny {
                message: format!(
                    "Team members run unattended and this {tool} call needs approval; do without \
                     it, or ask the lead with SendMessage"
                ),
            };
        }
        let plan = input["plan"].as_str().unwrap_or_default().to_string();
        let sent = self.team.mailbox().send(
            &self.me,
            LEAD,
            Body::PlanApprovalRequest {
                request_id: String::new(),
                plan,
                task: task.map(|t| t.id.clone()),
            },
        );
        let request_id = match sent {
            Ok(Envelope {
                body: Body::PlanApprovalRequest { request_id, .. },
                ..
            }) => request_id,
            Ok(_) | Err(_) => {
                return ApprovalAnswer::Deny {
                    message: "Could not send your plan to the lead; try ExitPlanMode again".into(),
                };
            }
        };
        self.set_state(
            MemberStatus::Working,
            task.map(|t| t.id.as_str()),
            Some("waiting for plan approval"),
        );
        say(
            &self.me,
            &format!("waiting for the lead to approve {request_id}"),
        );
        let deadline = Instant::now() + self.timing.protocol_timeout();
        loop {
            let envelopes = self.team.mailbox().take(&self.me).unwrap_or_default();
            let mut verdict = None;
            for envelope in envelopes {
                match &envelope.body {
                    Body::PlanApprovalResponse {
                        request_id: answered,
                        approve,
                        feedback,
                    } if *answered == request_id => verdict = Some((*approve, feedback.clone())),
                    Body::PlanApprovalResponse { .. } => {}
                    Body::ShutdownRequest { .. } => self.seat.push_control(envelope),
                    _ => runtime.push_notes([render(&envelope)]),
                }
            }
            if let Some((approve, feedback)) = verdict {
                say(&self.me, &format!("{request_id}: approved={approve}"));
                return if approve {
                    ApprovalAnswer::AllowOnce {
                        updated_input: None,
                    }
                } else {
                    ApprovalAnswer::Deny {
                        message: format!(
                            "The lead rejected your plan{}. Revise it and present it again with \
                             ExitPlanMode; do not change anything before it is approved.",
                            feedback.map(|f| format!(": {f}")).unwrap_or_default()
                        ),
                    }
                };
            }
            if Instant::now() >= deadline {
                return ApprovalAnswer::Deny {
                    message: format!(
                        "The lead did not answer your plan ({request_id}) within {} s. Do not \
                         change anything; end your turn and say the plan is waiting for approval.",
                        self.timing.protocol_timeout().as_secs()
                    ),
                };
            }
            tokio::time::sleep(self.timing.poll()).await;
        }
    }
}

fn task_prompt(
    task: &Task,
    dir: &Path,
    wt: Option<&worktree::Worktree>,
    messages: &[String],
) -> String {
    let mut text = format!("Work on task #{}: {}\n", task.id, task.subject);
    if !task.description.trim().is_empty() {
        text.push_str(&format!("\n{}\n", task.description.trim()));
    }
    match wt {
        Some(wt) => text.push_str(&format!(
            "\nYou are in your own git worktree at {} on branch {}; commit your work there.",
            dir.display(),
            wt.branch.as_deref().unwrap_or("(detached)")
        )),
        None => text.push_str(&format!("\nYou work in {}.", dir.display())),
    }
    text.push_str(&format!(
        " When the task is done, mark it completed with TaskUpdate (taskId \"{}\", status \
         \"completed\") and tell the lead with SendMessage.",
        task.id
    ));
    if !messages.is_empty() {
        text.push_str("\n\nMessages that arrived for you:\n\n");
        text.push_str(&messages.join("\n\n"));
    }
    text
}

/// A session the member drives: prompts in, events out, permission questions answered.
struct Driven {
    ops: mpsc::UnboundedSender<Op>,
    events: mpsc::UnboundedReceiver<Event>,
    engine: tokio::task::JoinHandle<()>,
    tasks: Arc<TaskRuntime>,
}

impl Driven {
    async fn start(args: &Args, ws: &Workspace, seat: Seat) -> Result<Self> {
        let extras = Extras {
            seat: Some(seat),
            member_flags: Some(crate::work::member_flags(args)),
            ..Extras::default()
        };
        let prepared =
            prepare_with(&args.session_options(), ws, Approver::Interactive, extras).await?;
        let (ops, ops_rx) = mpsc::unbounded_channel();
        let (events_tx, events) = mpsc::unbounded_channel();
        let engine = tokio::spawn(prepared.session.serve(ops_rx, events_tx));
        Ok(Self {
            ops,
            events,
            engine,
            tasks: prepared.tasks,
        })
    }

    /// Works one prompt; returns how the run ended and its answer.
    async fn run(
        &mut self,
        prompt: String,
        member: &Member<'_>,
        task: Option<&Task>,
    ) -> Result<(Outcome, String)> {
        self.ops
            .send(Op::UserInput { text: prompt })
            .context("the member's session stopped")?;
        let mut restore_mode = false;
        let mut plan_approved = false;
        while let Some(event) = self.events.recv().await {
            match event {
                Event::ApprovalRequested {
                    request_id,
                    tool_name,
                    input,
                    ..
                } => {
                    let answer = member
                        .answer(&tool_name, &input, task, &self.tasks, plan_approved)
                        .await;
                    if tool_name == "ExitPlanMode"
                        && matches!(answer, ApprovalAnswer::AllowOnce { .. })
                    {
                        restore_mode = true;
                        plan_approved = true;
                    }
                    let _ = self.ops.send(Op::Approval { request_id, answer });
                }
                Event::ToolResult { tool_name, .. }
                    if tool_name == "ExitPlanMode" && restore_mode =>
                {
                    // Plan approved: the member works with the permissions it was started with.
                    restore_mode = false;
                    let _ = self.ops.send(Op::SetPermissionMode {
                        mode: member.base_mode.clone(),
                    });
                }
                Event::RunFinished {
                    outcome, result, ..
                } => return Ok((outcome, result)),
                _ => {}
            }
        }
        bail!("the member's session ended before its run finished")
    }

    async fn close(self) {
        drop(self.ops);
        let _ = self.engine.await;
    }
}
