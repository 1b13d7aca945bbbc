//! keel's interactive terminal UI. It is a frontend like print mode: it builds the session with
//! keel-setup (with an interactive approver), turns keys into `Op`s and renders `Event`s inline
//! in the terminal, so the conversation stays in the scrollback after keel exits.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crossterm::event::{Event as TermEvent, EventStream};
use futures::StreamExt;
use keel_engine::Approver;
use keel_protocol::{Event, Op};
use keel_setup::{Extras, SessionOptions, Workspace, prepare_with};
use tokio::sync::mpsc;

pub mod app;
pub mod cells;
pub mod commands;
pub mod diff;
pub mod input;
pub mod markdown;
pub mod term;
pub mod wrap;

pub use app::{Action, App, SessionChoice, Startup};

/// Why the terminal UI could not run.
#[derive(Debug, thiserror::Error)]
pub enum TuiError {
    /// The session could not be set up (settings, provider, transcript...).
    #[error(transparent)]
    Setup(#[from] keel_setup::SetupError),
    /// The terminal could not be read or written.
    #[error("terminal error: {0}")]
    Terminal(#[from] std::io::Error),
}

/// The shortest time between two frames while output streams in: about 60 frames a second,
/// so a fast stream costs little and keystrokes are drawn at once (they skip the wait).
const FRAME: Duration = Duration::from_millis(16);
/// How often the spinner moves.
const TICK: Duration = Duration::from_millis(120);

/// Runs the interactive UI until the user leaves.
pub async fn run(
    ws: &Workspace,
    options: SessionOptions,
    initial_prompt: Option<String>,
    version: &str,
) -> Result<(), TuiError> {
    markdown::warm_up();
    let extras = Extras {
        answers_questions: true,
        ..Extras::default()
    };
    let prepared = prepare_with(&options, ws, Approver::Interactive, extras).await?;
    let mut engine_commands: Vec<(String, String)> = keel_engine::BUILTIN_COMMANDS
        .iter()
        .map(|(n, d)| ((*n).to_string(), (*d).to_string()))
        .collect();
    let defs = ws.definitions();
    for command in &defs.commands {
        engine_commands.push((command.name.clone(), command.description.clone()));
    }
    for name in &prepared.slash_commands {
        if !engine_commands.iter().any(|(n, _)| n == name) {
            engine_commands.push((name.clone(), String::new()));
        }
    }
    let history_path = history_file(ws);
    let startup = Startup {
        cwd: ws.cwd.clone(),
        model: prepared.model.clone(),
        permission_mode: prepared.permission_mode.as_str().to_string(),
        branch: git_branch(&ws.cwd),
        commands: engine_commands,
        resumed: prepared.resumed,
        version: version.to_string(),
        history: load_history(&history_path),
    };
    let mut provider = Provider::of(&prepared);
    let mut live = Live::serve(prepared);

    let mut screen = term::Screen::start()?;
    let mut app = App::new(startup, screen.width(), screen.height());
    let files = list_files(ws.cwd.clone());
    let mut keys = EventStream::new();
    let mut tick = tokio::time::interval(TICK);
    let (shell_tx, mut shell_rx) = mpsc::unbounded_channel::<(String, String)>();
    let (say_tx, mut say_rx) = mpsc::unbounded_channel::<String>();
    let (image_tx, mut image_rx) = mpsc::unbounded_channel::<Result<Vec<u8>, String>>();
    let mut files = Some(files);
    let mut last_draw = Instant::now() - FRAME;
    let mut dirty = true;
    let mut history_len = app.history().len();
    if let Some(prompt) = initial_prompt.filter(|p| !p.trim().is_empty()) {
        app.submit_text(&prompt);
    }
    let result: Result<(), TuiError> = async {
        loop {
            if dirty && last_draw.elapsed() >= FRAME {
                draw(&mut screen, &mut app)?;
                last_draw = Instant::now();
                dirty = false;
            }
            let wait = if dirty {
                FRAME.saturating_sub(last_draw.elapsed())
            } else {
                Duration::from_secs(3600)
            };
            tokio::select! {
                biased;
                key = keys.next() => {
                    let Some(key) = key else { break };
                    match key? {
                        TermEvent::Key(key) => app.on_key(key),
                        TermEvent::Paste(text) => app.on_paste(&text),
                        TermEvent::Resize(w, h) => {
                            let row = term::cursor_row();
                            screen.resized(w, h, row)?;
                            app.resize(w, h);
                        }
                        _ => {}
                    }
                    // Keystrokes are drawn at once: typing must never wait for the stream.
                    dirty = true;
                    last_draw = Instant::now() - FRAME;
                }
                event = live.events.recv() => {
                    let Some(event) = event else { break };
                    app.on_event(event);
                    // Take whatever else has arrived before drawing once.
                    while let Ok(event) = live.events.try_recv() {
                        app.on_event(event);
                    }
                    dirty = true;
                }
                Some((command, output)) = shell_rx.recv() => {
                    app.shell_output(&command, &output);
                    dirty = true;
                }
                Some(text) = say_rx.recv() => {
                    app.say(&text);
                    dirty = true;
                }
                Some(image) = image_rx.recv() => {
                    match image {
                        Ok(bytes) => app.attach_image(&bytes),
                        Err(problem) => app.say(&problem),
                    }
                    dirty = true;
                }
                found = async {
                    match files.as_mut() {
                        Some(walk) => walk.await,
                        None => std::future::pending().await,
                    }
                }, if files.is_some() => {
                    files = None;
                    app.set_files(found.unwrap_or_default());
                }
                _ = tick.tick() => {
                    if app.is_running() {
                        app.on_tick();
                        dirty = true;
                    }
                }
                () = tokio::time::sleep(wait) => {}
            }
            for op in app.take_ops() {
                if live.ops.send(op).is_err() {
                    return Ok(());
                }
            }
            if app.history().len() != history_len {
                history_len = app.history().len();
                if let Some(last) = app.history().last() {
                    save_history(&history_path, last).await;
                }
            }
            let mut exit = false;
            for action in app.take_actions() {
                match action {
                    Action::Exit => exit = true,
                    Action::Resume(id) => {
                        if let Some(next) = resume(&id, &options, ws, &mut app).await {
                            provider = Provider::of(&next);
                            let messages = next.session.messages().to_vec();
                            let model = next.model.clone();
                            let old = std::mem::replace(&mut live, Live::serve(next));
                            old.close().await;
                            app.replay(&messages, &model);
                        }
                    }
                    Action::Background { prompt, mode } => {
                        let text = match background(&live.tasks, ws, &prompt, &mode).await {
                            Ok(info) => format!(
                                "running in the background as task {} (keel -p); its output goes to {}",
                                info.id,
                                info.output_file.display()
                            ),
                            Err(e) => format!("could not start the background task: {e}"),
                        };
                        app.say(&text);
                    }
                    Action::PasteImage => {
                        let images = image_tx.clone();
                        tokio::spawn(async move {
                            let _ = images.send(clipboard_image().await);
                        });
                    }
                    Action::Doctor => {
                        let checks = Checks {
                            local: doctor(ws),
                            provider: provider.clone(),
                            mcp: live.mcp.clone(),
                        };
                        let say = say_tx.clone();
                        tokio::spawn(async move {
                            let _ = say.send(checks.run().await);
                        });
                    }
                    other => perform(other, &mut app, ws, &shell_tx).await,
                }
                dirty = true;
            }
            if exit {
                break;
            }
        }
        Ok(())
    }
    .await;
    // What is left of the conversation goes to the scrollback before the terminal is handed back.
    let rest = app.take_scrollback();
    let _ = screen.insert(&rest);
    screen.finish()?;
    live.close().await;
    result
}

/// The session being served: its ops in, its events out, and its MCP servers.
struct Live {
    ops: mpsc::UnboundedSender<Op>,
    events: mpsc::UnboundedReceiver<Event>,
    engine: tokio::task::JoinHandle<()>,
    mcp: Option<keel_mcp::McpManager>,
    /// The session's background tasks (Ctrl+B adds to them, so the agent sees them too).
    tasks: std::sync::Arc<keel_tasks::TaskRuntime>,
}

impl Live {
    fn serve(prepared: keel_setup::Prepared) -> Self {
        let (ops, ops_rx) = mpsc::unbounded_channel::<Op>();
        let (events_tx, events) = mpsc::unbounded_channel::<Event>();
        let mcp = prepared.mcp.clone();
        let tasks = prepared.tasks.clone();
        let engine = tokio::spawn(prepared.session.serve(ops_rx, events_tx));
        Self {
            ops,
            events,
            engine,
            mcp,
            tasks,
        }
    }

    /// Ends the session: the engine closes its transcript once it sees no more ops will come.
    async fn close(self) {
        drop(self.ops);
        let _ = tokio::time::timeout(Duration::from_secs(5), self.engine).await;
    }
}

/// Starts `keel -p <prompt>` as a background task of the session, in `mode`, so it shows with
/// the agent's own background tasks.
async fn background(
    tasks: &keel_tasks::TaskRuntime,
    ws: &Workspace,
    prompt: &str,
    mode: &str,
) -> Result<keel_tasks::background::JobInfo, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find keel's own binary: {e}"))?;
    let quote = |s: &str| format!("'{}'", s.replace('\'', "'\\''"));
    let command = format!(
        "{} -p --permission-mode {} -- {}",
        quote(&exe.display().to_string()),
        quote(mode),
        quote(prompt)
    );
    let ctx = keel_tools::ToolContext::new(
        &ws.cwd,
        std::env::temp_dir(),
        tokio_util::sync::CancellationToken::new(),
    );
    let first = prompt.lines().next().unwrap_or_default();
    let description: String = first.chars().take(60).collect();
    tasks
        .background()
        .start_shell(
            &keel_tools::BackgroundCommand {
                command,
                description: Some(format!("keel -p: {description}")),
                sandbox: None,
            },
            &ctx,
        )
        .await
        .map_err(|e| e.to_string())
}

/// Builds the session `/resume` continues, or says why it cannot.
async fn resume(
    id: &str,
    options: &SessionOptions,
    ws: &Workspace,
    app: &mut App,
) -> Option<keel_setup::Prepared> {
    if app.is_running() {
        app.say("a turn is running: interrupt it (esc) before resuming another session");
        return None;
    }
    if id == app.session_id() {
        app.say("that is the session already open");
        return None;
    }
    let mut next = options.clone();
    next.resume = Some(id.to_string());
    next.continue_session = false;
    next.session_id = None;
    next.fork_session = false;
    let extras = Extras {
        answers_questions: true,
        ..Extras::default()
    };
    match prepare_with(&next, ws, Approver::Interactive, extras).await {
        Ok(prepared) => Some(prepared),
        Err(e) => {
            app.say(&format!("could not resume {id}: {e}"));
            None
        }
    }
}

/// The clipboard's image, read with the desktop's clipboard tool (`wl-paste` on Wayland,
/// `xclip` on X11): keel links no windowing-system library of its own.
async fn clipboard_image() -> Result<Vec<u8>, String> {
    let tools: [(&str, &[&str]); 2] = [
        ("wl-paste", &["--no-newline", "--type", "image/png"]),
        (
            "xclip",
            &["-selection", "clipboard", "-target", "image/png", "-out"],
        ),
    ];
    let mut tried = Vec::new();
    for (tool, args) in tools {
        match tokio::process::Command::new(tool)
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .await
        {
            Ok(out) if out.status.success() && !out.stdout.is_empty() => return Ok(out.stdout),
            Ok(out) => tried.push(format!(
                "{tool}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tried.push(format!("{tool}: {e}")),
        }
    }
    if tried.is_empty() {
        Err(
            "no clipboard tool found to read an image (install wl-clipboard or xclip), \
             or paste or drag the image file's path instead"
                .to_string(),
        )
    } else {
        Err(format!(
            "no image on the clipboard ({}); paste or drag the image file's path instead",
            tried.join("; ")
        ))
    }
}

/// Where the session's model requests go, for `/doctor`.
#[derive(Debug, Clone)]
struct Provider {
    name: String,
    base_url: String,
}

impl Provider {
    fn of(prepared: &keel_setup::Prepared) -> Self {
        Self {
            name: prepared.provider.clone(),
            base_url: prepared.base_url.clone(),
        }
    }
}

/// The `/doctor` checks that need the network or the session, run off the UI's loop.
struct Checks {
    local: String,
    provider: Provider,
    mcp: Option<keel_mcp::McpManager>,
}

/// How long `/doctor` waits for the provider to answer.
const REACH_TIMEOUT: Duration = Duration::from_secs(5);

impl Checks {
    async fn run(self) -> String {
        let mut lines = vec![self.local];
        lines.push(reachability(&self.provider).await);
        match &self.mcp {
            None => lines.push("MCP servers: none configured".to_string()),
            Some(manager) => {
                let statuses = manager.statuses();
                if statuses.is_empty() {
                    lines.push("MCP servers: none configured".to_string());
                }
                for (name, status) in statuses {
                    lines.push(format!("MCP server {name}: {status}"));
                }
            }
        }
        lines.join("\n")
    }
}

/// Whether the provider's base URL answers: any HTTP status means it is reachable (keel sends
/// no key here, so 401 and 404 are normal); a connection error or timeout is reported as is.
async fn reachability(provider: &Provider) -> String {
    let url = &provider.base_url;
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return format!(
            "provider: {} ({url}), nothing to reach over the network",
            provider.name
        );
    }
    let client = match reqwest::Client::builder().timeout(REACH_TIMEOUT).build() {
        Ok(client) => client,
        Err(e) => {
            return format!(
                "provider: {} at {url}: cannot make a client: {e}",
                provider.name
            );
        }
    };
    match client.get(url).send().await {
        Ok(response) => format!(
            "provider: {} at {url} is reachable (HTTP {})",
            provider.name,
            response.status().as_u16()
        ),
        Err(e) if e.is_timeout() => format!(
            "provider: {} at {url} did not answer within {}s: check the network or the base URL",
            provider.name,
            REACH_TIMEOUT.as_secs()
        ),
        Err(e) => format!(
            "provider: {} at {url} is NOT reachable: {}",
            provider.name,
            error_chain(&e)
        ),
    }
}

/// An error with its causes, which for a connection failure say what actually went wrong.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn draw<W: Write>(screen: &mut term::Screen<W>, app: &mut App) -> std::io::Result<()> {
    let lines = app.take_scrollback();
    screen.insert(&lines)?;
    let buffer = app.render();
    screen.draw(&buffer)
}

/// Carries out an action that needs neither the live session nor a restart. File and process
/// work is asynchronous (or on a blocking thread): the runtime thread keeps serving the session.
async fn perform(
    action: Action,
    app: &mut App,
    ws: &Workspace,
    shell: &mpsc::UnboundedSender<(String, String)>,
) {
    match action {
        Action::Exit | Action::Resume(_) | Action::Doctor | Action::PasteImage => {}
        Action::Background { .. } => {}
        Action::ListSessions => {
            let store = keel_session::SessionStore::new(&ws.home);
            let cwd = ws.cwd.clone();
            let listed = match tokio::task::spawn_blocking(move || store.list(Some(&cwd))).await {
                Ok(listed) => listed.map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            match listed {
                Ok(sessions) => {
                    let current = app.session_id().to_string();
                    let choices = sessions
                        .into_iter()
                        .filter(|s| s.id != current)
                        .take(50)
                        .map(|s| SessionChoice {
                            when: s.started.get(..16).unwrap_or(&s.started).replace('T', " "),
                            first_prompt: s.first_prompt,
                            id: s.id,
                        })
                        .collect();
                    app.open_sessions(choices);
                }
                Err(e) => app.say(&format!("could not list the sessions: {e}")),
            }
        }
        Action::Shell(command) => {
            let cwd = ws.cwd.clone();
            let shell = shell.clone();
            tokio::spawn(async move {
                let output = tokio::process::Command::new("sh")
                    .arg("-c")
                    .arg(&command)
                    .current_dir(cwd)
                    .stdin(std::process::Stdio::null())
                    .output()
                    .await;
                let text = match output {
                    Ok(out) => {
                        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
                        text.push_str(&String::from_utf8_lossy(&out.stderr));
                        if !out.status.success() {
                            text.push_str(&format!(
                                "\n(exit status {})",
                                out.status.code().unwrap_or(-1)
                            ));
                        }
                        text
                    }
                    Err(e) => format!("cannot run the command: {e}"),
                };
                let _ = shell.send((command, text));
            });
        }
        Action::Remember(note) => match remember(&ws.cwd, &note).await {
            Ok(path) => app.say(&format!("noted in {}", path.display())),
            Err(e) => app.say(&format!("could not write the memory file: {e}")),
        },
        Action::Copy(text) => {
            if text.is_empty() {
                app.say("nothing to copy yet");
            } else {
                // OSC 52: the terminal (and tmux, over ssh too) puts it on the clipboard.
                let encoded = base64_encode(text.as_bytes());
                let mut out = std::io::stdout();
                let _ = write!(out, "\x1b]52;c;{encoded}\x07");
                let _ = out.flush();
                app.say("copied the last answer to the clipboard");
            }
        }
        Action::Export(path) => match tokio::fs::write(&path, app.export_markdown()).await {
            Ok(()) => app.say(&format!("wrote {}", path.display())),
            Err(e) => app.say(&format!("could not write {}: {e}", path.display())),
        },
        Action::GitDiff(prompt) => {
            let output = tokio::process::Command::new("git")
                .args(["diff", "HEAD"])
                .current_dir(&ws.cwd)
                .stdin(std::process::Stdio::null())
                .output()
                .await;
            let diff = match output {
                Ok(out) if out.status.success() => {
                    String::from_utf8_lossy(&out.stdout).into_owned()
                }
                Ok(out) => {
                    app.say(&format!(
                        "git diff failed: {}",
                        String::from_utf8_lossy(&out.stderr).trim()
                    ));
                    return;
                }
                Err(e) => {
                    app.say(&format!("cannot run git: {e}"));
                    return;
                }
            };
            if diff.trim().is_empty() {
                app.say("no uncommitted changes");
                return;
            }
            match prompt {
                Some(request) => app.prompt(format!("{request}\n\n```diff\n{diff}\n```")),
                None => app.print(color_diff(&diff)),
            }
        }
    }
}

fn color_diff(diff: &str) -> Vec<ratatui::text::Line<'static>> {
    use ratatui::style::{Color, Style};
    diff.lines()
        .map(|l| {
            let style = if l.starts_with('+') && !l.starts_with("+++") {
                Style::new().fg(Color::Green)
            } else if l.starts_with('-') && !l.starts_with("---") {
                Style::new().fg(Color::Red)
            } else if l.starts_with("@@") {
                Style::new().fg(Color::Cyan)
            } else {
                Style::new()
            };
            ratatui::text::Line::styled(l.to_string(), style)
        })
        .collect()
}

fn doctor(ws: &Workspace) -> String {
    let mut lines = Vec::new();
    lines.push(format!(
        "settings: {} layer(s) read",
        ws.settings.layers.len()
    ));
    let key = [
        "ANTHROPIC_API_KEY",
        "ANTHROPIC_AUTH_TOKEN",
        "OPENAI_API_KEY",
        "OPENROUTER_API_KEY",
    ]
    .iter()
    .find(|k| ws.var(k).is_some());
    lines.push(match key {
        Some(k) => format!("provider key: {k} is set"),
        None => "provider key: none set (Ollama or --provider replay only)".to_string(),
    });
    let sandbox = &ws.settings.effective.sandbox;
    lines.push(format!(
        "sandbox: {}",
        if sandbox.enabled.unwrap_or(false) {
            "enabled"
        } else {
            "off"
        }
    ));
    lines.push(format!(
        "git: {}",
        git_branch(&ws.cwd).map_or("not a repository".into(), |b| format!("on {b}"))
    ));
    lines.join("\n")
}

/// Where `#` notes go: the project's existing memory file, else AGENTS.md at the root.
async fn remember(cwd: &Path, note: &str) -> std::io::Result<PathBuf> {
    use tokio::io::AsyncWriteExt as _;
    let mut path = cwd.join("AGENTS.md");
    for name in ["CLAUDE.md", "AGENTS.md"] {
        let candidate = cwd.join(name);
        if tokio::fs::metadata(&candidate)
            .await
            .is_ok_and(|m| m.is_file())
        {
            path = candidate;
            break;
        }
    }
    let existing = tokio::fs::read_to_string(&path).await.unwrap_or_default();
    let lead = if existing.is_empty() || existing.ends_with('\n') {
        ""
    } else {
        "\n"
    };
    let mut file = tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .await?;
    file.write_all(format!("{lead}- {note}\n").as_bytes())
        .await?;
    Ok(path)
}

/// Standard base64, for OSC 52 and image blocks.
pub(crate) fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The current git branch, read from `.git/HEAD` (no process needed).
fn git_branch(cwd: &Path) -> Option<String> {
    let mut dir = Some(cwd);
    while let Some(d) = dir {
        let git = d.join(".git");
        let head_path = if git.is_dir() {
            git.join("HEAD")
        } else if git.is_file() {
            // A worktree: `.git` names the real git directory.
            let text = std::fs::read_to_string(&git).ok()?;
            PathBuf::from(text.strip_prefix("gitdir:")?.trim()).join("HEAD")
        } else {
            dir = d.parent();
            continue;
        };
        let head = std::fs::read_to_string(head_path).ok()?;
        return Some(match head.trim().strip_prefix("ref: refs/heads/") {
            Some(branch) => branch.to_string(),
            None => head.trim().chars().take(8).collect(),
        });
    }
    None
}

/// Files of the project for `@` completion: a gitignore-aware walk on a blocking thread.
fn list_files(root: PathBuf) -> tokio::task::JoinHandle<Vec<String>> {
    tokio::task::spawn_blocking(move || {
        let mut files = Vec::new();
        for entry in ignore::WalkBuilder::new(&root).build().flatten() {
            if entry.file_type().is_some_and(|t| t.is_file())
                && let Ok(rel) = entry.path().strip_prefix(&root)
            {
                files.push(rel.display().to_string());
                if files.len() >= 20_000 {
                    break;
                }
            }
        }
        files
    })
}

/// The prompt history file of this project (next to its transcripts).
fn history_file(ws: &Workspace) -> PathBuf {
    keel_session::SessionStore::new(&ws.home)
        .project_dir(&ws.cwd)
        .join("prompt-history.jsonl")
}

fn load_history(path: &Path) -> Vec<String> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|l| serde_json::from_str::<String>(l).ok())
        .collect()
}

async fn save_history(path: &Path, prompt: &str) {
    use tokio::io::AsyncWriteExt as _;
    let Ok(line) = serde_json::to_string(prompt) else {
        return;
    };
    if let Some(dir) = path.parent() {
        let _ = tokio::fs::create_dir_all(dir).await;
    }
    if let Ok(mut file) = tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .await
    {
        let _ = file.write_all(format!("{line}\n").as_bytes()).await;
    }
}
