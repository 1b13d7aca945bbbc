//! The terminal UI's state: what the engine reported, what the user is typing, and what the
//! viewport shows. Keys become [`Op`]s (sent through [`App::ops`]); [`Event`]s become lines in
//! the scrollback or the live area. No agent logic lives here.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use keel_protocol::{
    ApprovalAnswer, ContentBlock, Event, ImageInput, Message, NoticeLevel, Op, Outcome, PlanItem,
    Question, Role,
};
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Widget};
use serde_json::Value;

use crate::cells::{self, DIM};
use crate::commands::{self, Command};
use crate::input::Editor;
use crate::markdown;

/// The permission modes Shift+Tab cycles through, in order.
const MODE_CYCLE: &[&str] = &["default", "acceptEdits", "plan"];
/// Pasted text longer than this many characters (or lines) is shown as a placeholder.
const PASTE_COLLAPSE_CHARS: usize = 800;
const PASTE_COLLAPSE_LINES: usize = 10;
/// How long a first Ctrl+C waits for a second one.
const EXIT_WINDOW: Duration = Duration::from_secs(2);
/// Most completion entries shown at once.
const POPUP_ROWS: usize = 8;
/// Most picker entries shown at once.
const PICKER_ROWS: usize = 10;
/// Lines of a running command's output shown under it.
const TAIL_LINES: usize = 3;
/// The most live output kept per running tool.
const TAIL_KEEP: usize = 4096;

/// An earlier session of this directory, offered by `/resume`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionChoice {
    /// The session's id.
    pub id: String,
    /// When it started, as shown.
    pub when: String,
    /// Its first prompt, shortened.
    pub first_prompt: String,
}

/// What a picker chooses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PickerKind {
    /// `/resume`: a session id.
    Resume,
    /// `/model`: a model name.
    Model,
    /// `Esc Esc` / `/rewind`: how many prompts back.
    Rewind,
}

/// The vi editing mode's state (`/vim`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Vim {
    /// Keys type text.
    Insert,
    /// Keys move and edit; `pending_d` waits for the second `d` of `dd`.
    Normal { pending_d: bool },
}

/// A list the user picks one entry of with the arrows and Enter.
#[derive(Debug, Clone)]
struct Picker {
    kind: PickerKind,
    title: String,
    /// (shown label, dim detail, value)
    items: Vec<(String, String, String)>,
    selected: usize,
}

/// What the UI knows at start that the events do not say.
#[derive(Debug, Clone, Default)]
pub struct Startup {
    /// The working directory.
    pub cwd: PathBuf,
    /// The model.
    pub model: String,
    /// The permission mode.
    pub permission_mode: String,
    /// The git branch, if in a repository.
    pub branch: Option<String>,
    /// Slash commands of the engine, with descriptions.
    pub commands: Vec<(String, String)>,
    /// Whether the session continues an earlier one.
    pub resumed: bool,
    /// keel's version.
    pub version: String,
    /// Prompts entered before, oldest first (for Up/Down and Ctrl+R).
    pub history: Vec<String>,
}

/// A permission question waiting for the user's key.
#[derive(Debug, Clone)]
struct Approval {
    request_id: String,
    tool_name: String,
    input: Value,
    reason: String,
    suggestions: Vec<String>,
    selected: usize,
    /// Typing the message that goes to the model with a denial.
    deny_message: Option<Editor>,
}

/// The model's multiple-choice questions (`AskUserQuestion`), answered one after another.
#[derive(Debug, Clone)]
struct Asking {
    request_id: String,
    questions: Vec<Question>,
    /// Which question is shown.
    index: usize,
    /// The highlighted option (the last one, past the list, is "Other").
    selected: usize,
    /// Options ticked so far (multi-select questions).
    ticked: Vec<bool>,
    /// The user's own answer, while typing it.
    other: Option<Editor>,
    answers: std::collections::BTreeMap<String, String>,
}

/// A tool call that has started and not finished.
#[derive(Debug, Clone)]
/// A Markdown rendering kept for as long as its source and width stay the same.
#[derive(Default)]
struct RenderMemo {
    source: String,
    width: u16,
    lines: Vec<Line<'static>>,
}

impl RenderMemo {
    /// `source` rendered at `width`, rendered again only when either changed.
    fn get(&mut self, source: &str, width: u16) -> &[Line<'static>] {
        if self.width != width || self.source != source {
            self.lines = markdown::render(source, width);
            self.source.clear();
            self.source.push_str(source);
            self.width = width;
        }
        &self.lines
    }
}

struct Running {
    id: String,
    name: String,
    input: Value,
    started: Instant,
    /// The latest thing a subagent under this call did.
    activity: Option<String>,
    /// The file's text before a Write, for its diff.
    before: Option<String>,
    /// The newest output of a running command (Bash), for a live tail.
    tail: String,
}

/// What the user asked for that the frontend (not the engine) must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Leave keel.
    Exit,
    /// Run a shell command for `!` and show its output.
    Shell(String),
    /// Append a line to the project memory file (`#`).
    Remember(String),
    /// Copy text to the clipboard.
    Copy(String),
    /// Write the conversation as Markdown to this path.
    Export(PathBuf),
    /// Show `git diff` (or, with a prompt, send it to the model with that request).
    GitDiff(Option<String>),
    /// Run the configuration checks.
    Doctor,
    /// List this directory's earlier sessions for the `/resume` picker.
    ListSessions,
    /// Continue this earlier session instead of the current one.
    Resume(String),
    /// Read an image from the clipboard and attach it ([`App::attach_image`]).
    PasteImage,
    /// Work on this prompt in the background (a `keel -p` background task) in this
    /// permission mode.
    Background {
        /// The prompt.
        prompt: String,
        /// The permission mode it runs in.
        mode: String,
    },
}

/// The whole UI state.
pub struct App {
    info: Startup,
    width: u16,
    height: u16,
    /// Lines waiting to be printed above the viewport.
    pending: Vec<Line<'static>>,
    /// The answer being streamed, its Markdown source, and how many rendered lines of it are
    /// already in the scrollback.
    answer: String,
    committed: usize,
    /// The last renderings of the answer's finished lines and of all of it: every frame
    /// (keystrokes, spinner ticks) would otherwise parse and highlight the same text again.
    rendered_done: RenderMemo,
    rendered_live: RenderMemo,
    /// Whether lines of the current message were printed already (its bullet is shown).
    answer_started: bool,
    thinking: bool,
    running: Option<Instant>,
    output_chars: usize,
    tools: Vec<Running>,
    /// Files as they were before the Write calls of the last message.
    before: HashMap<String, Option<String>>,
    approval: Option<Approval>,
    asking: Option<Asking>,
    picker: Option<Picker>,
    vim: Option<Vim>,
    /// The prompts of this session's conversation, oldest first, as the engine counts them
    /// for a rewind.
    prompts: Vec<String>,
    session_id: String,
    plan: Vec<PlanItem>,
    editor: Editor,
    history: Vec<String>,
    history_pos: Option<usize>,
    history_draft: String,
    search: Option<String>,
    stash: Option<String>,
    pastes: Vec<String>,
    /// Images attached to the prompt being written, by their placeholder's number.
    images: Vec<(usize, ImageInput)>,
    image_count: usize,
    popup_selected: usize,
    popup_dismissed: bool,
    commands: Vec<Command>,
    files: Vec<String>,
    pinned: Vec<String>,
    expanded: bool,
    ctrl_c_at: Option<Instant>,
    esc_at: Option<Instant>,
    hint: Option<(String, Instant)>,
    mode: String,
    context: Option<(u64, u64)>,
    cost: f64,
    conversation: Vec<(String, String)>,
    last_answer: String,
    pending_context: Vec<String>,
    think_next: bool,
    ops: Vec<Op>,
    actions: Vec<Action>,
    tick: u64,
}

impl App {
    /// A fresh UI for a terminal of this size.
    pub fn new(info: Startup, width: u16, height: u16) -> Self {
        let mode = info.permission_mode.clone();
        let commands = commands::all(&info.commands);
        let history = info.history.clone();
        let mut app = Self {
            info,
            width,
            height,
            pending: Vec::new(),
            answer: String::new(),
            committed: 0,
            rendered_done: RenderMemo::default(),
            rendered_live: RenderMemo::default(),
            answer_started: false,
            thinking: false,
            running: None,
            output_chars: 0,
            tools: Vec::new(),
            before: HashMap::new(),
            approval: None,
            asking: None,
            picker: None,
            vim: None,
            prompts: Vec::new(),
            session_id: String::new(),
            plan: Vec::new(),
            editor: Editor::default(),
            history,
            history_pos: None,
            history_draft: String::new(),
            search: None,
            stash: None,
            pastes: Vec::new(),
            images: Vec::new(),
            image_count: 0,
            popup_selected: 0,
            popup_dismissed: false,
            commands,
            files: Vec::new(),
            pinned: Vec::new(),
            expanded: false,
            ctrl_c_at: None,
            esc_at: None,
            hint: None,
            mode,
            context: None,
            cost: 0.0,
            conversation: Vec::new(),
            last_answer: String::new(),
            pending_context: Vec::new(),
            think_next: false,
            ops: Vec::new(),
            actions: Vec::new(),
            tick: 0,
        };
        app.banner();
        app
    }

    fn banner(&mut self) {
        let line = Line::from(vec![
            Span::styled(
                "✻ keel ",
                Style::new().fg(Color::Magenta).add_modifier(Modifier::BOLD),
            ),
            Span::styled(
                format!(
                    "{} · {} · {}",
                    self.info.version,
                    self.info.model,
                    self.info.cwd.display()
                ),
                DIM,
            ),
        ]);
        self.pending.push(line);
        let tip = if self.info.resumed {
            "Resumed the session. / for commands, esc to interrupt, ctrl+c twice to exit"
        } else {
            "/ for commands, @ for files, ! for shell, # to remember, esc to interrupt"
        };
        self.pending.push(Line::styled(tip, DIM));
    }

    /// The files `@` completes, found by a gitignore-aware walk.
    pub fn set_files(&mut self, files: Vec<String>) {
        self.files = files;
    }

    /// Ops produced since the last call, to send to the engine.
    pub fn take_ops(&mut self) -> Vec<Op> {
        std::mem::take(&mut self.ops)
    }

    /// Frontend actions produced since the last call.
    pub fn take_actions(&mut self) -> Vec<Action> {
        std::mem::take(&mut self.actions)
    }

    /// Lines to print above the viewport (the stream's finished lines are moved there first).
    pub fn take_scrollback(&mut self) -> Vec<Line<'static>> {
        self.commit_answer(false);
        std::mem::take(&mut self.pending)
    }

    /// The running session's id (empty before it started).
    pub fn session_id(&self) -> &str {
        &self.session_id
    }

    /// Opens the `/resume` picker on these sessions (newest first).
    pub fn open_sessions(&mut self, sessions: Vec<SessionChoice>) {
        if sessions.is_empty() {
            self.say("no earlier sessions in this directory");
            return;
        }
        let items = sessions
            .into_iter()
            .map(|s| (s.when, s.first_prompt, s.id))
            .collect();
        self.picker = Some(Picker {
            kind: PickerKind::Resume,
            title: "Resume a session".into(),
            items,
            selected: 0,
        });
    }

    /// A session was resumed: its conversation is shown again, briefly, and becomes the one
    /// the UI works on.
    pub fn replay(&mut self, messages: &[Message], model: &str) {
        self.commit_answer(true);
        self.info.model = model.to_string();
        self.prompts.clear();
        self.conversation.clear();
        self.context = None;
        self.plan.clear();
        for message in messages {
            match message.role {
                Role::User if message.is_prompt() => {
                    let text = first_text(message);
                    self.pending.extend(cells::user_prompt(&text, self.width));
                    self.prompts.push(text.clone());
                    self.conversation.push(("user".into(), text));
                }
                Role::User => {}
                Role::Assistant => {
                    let text: String = message
                        .content
                        .iter()
                        .filter_map(ContentBlock::text)
                        .collect::<Vec<_>>()
                        .join("\n");
                    if !text.trim().is_empty() {
                        self.answer = text.clone();
                        self.commit_answer(true);
                        self.last_answer = text.clone();
                        self.conversation.push(("assistant".into(), text));
                    }
                    for block in &message.content {
                        if let ContentBlock::ToolUse { name, input, .. } = block {
                            let arg = cells::tool_argument(name, input, &self.info.cwd);
                            self.pending.push(cells::tool_header(name, &arg, DIM));
                        }
                    }
                }
            }
        }
        let prompts = self.prompts.len();
        self.say(&format!(
            "resumed the session ({prompts} prompt{}); go on where it left off",
            if prompts == 1 { "" } else { "s" }
        ));
    }

    /// Whether a run is in progress.
    pub fn is_running(&self) -> bool {
        self.running.is_some()
    }

    /// The prompts entered, oldest first.
    pub fn history(&self) -> &[String] {
        &self.history
    }

    /// The terminal changed size.
    pub fn resize(&mut self, width: u16, height: u16) {
        self.width = width;
        self.height = height;
    }

    /// Advances the spinner.
    pub fn on_tick(&mut self) {
        self.tick = self.tick.wrapping_add(1);
    }

    /// Prints lines (output of a frontend action) into the conversation.
    pub fn print(&mut self, lines: Vec<Line<'static>>) {
        self.pending.extend(lines);
    }

    /// Prints a dim message.
    pub fn say(&mut self, text: &str) {
        let lines = cells::notice(text, false, self.width);
        self.pending.extend(lines);
    }

    /// Output of a `!` command: shown, and sent to the model with the next prompt.
    pub fn shell_output(&mut self, command: &str, output: &str) {
        let shown = cells::notice(output.trim_end(), false, self.width);
        self.pending.extend(shown);
        self.pending_context.push(format!(
            "<bash-input>{command}</bash-input>\n<bash-stdout>{}</bash-stdout>",
            output.trim_end()
        ));
    }

    // ----- events -----

    /// Takes in one engine event.
    pub fn on_event(&mut self, event: Event) {
        match event {
            Event::SessionStarted {
                session_id,
                model,
                permission_mode,
                ..
            } => {
                self.session_id = session_id.to_string();
                self.info.model = model;
                self.mode = permission_mode;
            }
            Event::UserMessage { content } => {
                let message = Message {
                    role: Role::User,
                    content,
                };
                if message.is_prompt() {
                    self.prompts.push(first_text(&message));
                }
            }
            Event::ToolProgress { tool_use_id, text } => {
                if let Some(tool) = self.tools.iter_mut().find(|t| t.id == tool_use_id) {
                    tool.tail.push_str(&text);
                    if tool.tail.len() > TAIL_KEEP {
                        let mut cut = tool.tail.len() - TAIL_KEEP;
                        while !tool.tail.is_char_boundary(cut) {
                            cut += 1;
                        }
                        tool.tail.drain(..cut);
                    }
                }
            }
            Event::Rewound {
                user_turns_back,
                prompt,
                messages,
            } => {
                self.commit_answer(true);
                self.prompts = messages
                    .iter()
                    .filter(|m| m.is_prompt())
                    .map(first_text)
                    .collect();
                // The exported conversation loses the same prompts and what followed them.
                let mut left = user_turns_back;
                while left > 0 {
                    match self.conversation.pop() {
                        Some((who, _)) if who == "user" => left -= 1,
                        Some(_) => {}
                        None => break,
                    }
                }
                let shown = cells::truncate(prompt.lines().next().unwrap_or_default(), 60);
                self.say(&format!(
                    "rewound the conversation to before “{shown}”; edit the prompt and send it again"
                ));
                self.editor.set(prompt);
            }
            // The UI registers no frontend hooks and does not ask for raw stream events.
            Event::TurnStarted { .. } | Event::HookCallback { .. } | Event::StreamEvent { .. } => {}
            Event::TextDelta { text } => {
                self.thinking = false;
                self.output_chars += text.len();
                self.answer.push_str(&text);
            }
            Event::ThinkingDelta { text } => {
                self.thinking = true;
                self.output_chars += text.len();
            }
            Event::AssistantMessage { message } => {
                self.commit_answer(true);
                // The file a Write replaces, read now: the call has not been approved or run
                // yet, so this is the text before it.
                for call in message.tool_uses() {
                    if call.name == "Write"
                        && let Some(path) = call.input["file_path"].as_str()
                    {
                        let before = read_small(&self.info.cwd.join(path));
                        self.before.insert(call.id.to_string(), before);
                    }
                }
                let text = message.text();
                if !text.trim().is_empty() {
                    self.last_answer = text.clone();
                    self.conversation.push(("assistant".into(), text));
                }
            }
            Event::ToolCallStarted {
                tool_use_id,
                name,
                input,
            } => {
                self.commit_answer(true);
                let before = self.before.remove(&tool_use_id).flatten();
                self.tools.push(Running {
                    id: tool_use_id,
                    name,
                    input,
                    started: Instant::now(),
                    activity: None,
                    before,
                    tail: String::new(),
                });
            }
            Event::ToolResult {
                tool_use_id,
                tool_name,
                content,
                is_error,
                structured,
            } => {
                let running = self
                    .tools
                    .iter()
                    .position(|t| t.id == tool_use_id)
                    .map(|i| self.tools.remove(i));
                let (input, before) = running
                    .map(|r| (r.input, r.before))
                    .unwrap_or((Value::Null, None));
                let output = content.text();
                let created = structured.as_ref().is_some_and(|s| s["type"] == "create");
                let before = if created { None } else { before };
                let entry = cells::ToolEntry {
                    name: &tool_name,
                    input: &input,
                    output: &output,
                    is_error,
                    structured: structured.as_ref(),
                    before: before.as_deref(),
                };
                let lines = cells::tool_entry(&entry, &self.info.cwd, self.expanded, self.width);
                self.pending.extend(lines);
                self.pending.push(Line::default());
            }
            Event::ApprovalRequested {
                request_id,
                tool_name,
                input,
                reason,
                suggestions,
                ..
            } => {
                self.commit_answer(true);
                self.approval = Some(Approval {
                    request_id,
                    tool_name,
                    input,
                    reason,
                    suggestions,
                    selected: 0,
                    deny_message: None,
                });
            }
            Event::QuestionAsked {
                request_id,
                questions,
                ..
            } => {
                self.commit_answer(true);
                let ticked = vec![false; questions.first().map_or(0, |q| q.options.len())];
                self.asking = Some(Asking {
                    request_id,
                    questions,
                    index: 0,
                    selected: 0,
                    ticked,
                    other: None,
                    answers: std::collections::BTreeMap::new(),
                });
            }
            Event::PermissionDenied { reason, .. } => {
                let lines = cells::notice(&format!("  ⎿  {reason}"), true, self.width);
                self.pending.extend(lines);
            }
            Event::Retrying {
                attempt,
                max_retries,
                delay_ms,
                error,
            } => {
                let text = format!(
                    "retrying ({attempt}/{max_retries}) in {:.1}s: {error}",
                    delay_ms as f64 / 1000.0
                );
                let lines = cells::notice(&text, true, self.width);
                self.pending.extend(lines);
            }
            Event::ContextUsage {
                used_tokens,
                window_tokens,
            } => self.context = Some((used_tokens, window_tokens)),
            Event::Compacted {
                tokens_before,
                tokens_after,
                messages,
                ..
            } => {
                self.prompts = messages
                    .iter()
                    .filter(|m| m.is_prompt())
                    .map(first_text)
                    .collect();
                self.say(&format!(
                    "conversation compacted ({tokens_before} → {tokens_after} tokens)"
                ));
            }
            Event::PlanUpdated { items } => self.plan = items,
            Event::PermissionModeChanged { mode } => self.mode = mode,
            Event::ModelChanged { model } => self.info.model = model,
            Event::Notice { level, message } => {
                let lines = cells::notice(&message, level == NoticeLevel::Warning, self.width);
                self.pending.extend(lines);
            }
            Event::CommandOutput { text, .. } => {
                let lines = cells::notice(text.trim_end(), false, self.width);
                self.pending.extend(lines);
            }
            Event::Subagent {
                parent_tool_use_id,
                event,
            } => {
                let activity = match *event {
                    Event::ToolCallStarted { name, input, .. } => Some(format!(
                        "{name}({})",
                        cells::tool_argument(&name, &input, &self.info.cwd)
                    )),
                    Event::TextDelta { .. } => Some("writing…".to_string()),
                    _ => None,
                };
                if let Some(activity) = activity
                    && let Some(tool) = self.tools.iter_mut().find(|t| t.id == parent_tool_use_id)
                {
                    tool.activity = Some(activity);
                }
            }
            Event::RunFinished {
                outcome,
                total_cost_usd,
                ..
            } => {
                self.commit_answer(true);
                self.cost += total_cost_usd;
                self.tools.clear();
                self.approval = None;
                self.asking = None;
                self.running = None;
                self.thinking = false;
                match outcome {
                    Outcome::Success => {}
                    Outcome::Interrupted => {
                        let lines = cells::notice(
                            "  ⎿  Interrupted · what should keel do instead?",
                            true,
                            self.width,
                        );
                        self.pending.extend(lines);
                    }
                    Outcome::MaxTurns { max_turns } => {
                        let lines = cells::error(
                            &format!("stopped after {max_turns} turns (--max-turns)"),
                            self.width,
                        );
                        self.pending.extend(lines);
                    }
                    Outcome::Error { message } => {
                        let lines = cells::error(&message, self.width);
                        self.pending.extend(lines);
                    }
                }
            }
        }
    }

    /// Moves the finished lines of the streamed answer to the scrollback; `all` moves the rest
    /// too (the message ended).
    fn commit_answer(&mut self, all: bool) {
        if self.answer.is_empty() {
            return;
        }
        let width = self.width.saturating_sub(2).max(10);
        let done = if all {
            self.answer.len()
        } else {
            match self.answer.rfind('\n') {
                Some(i) => i + 1,
                None => return,
            }
        };
        let lines = self.rendered_done.get(&self.answer[..done], width);
        if lines.len() > self.committed {
            for line in &lines[self.committed..] {
                let lead = if self.answer_started { "  " } else { "● " };
                self.answer_started = true;
                let mut spans = vec![Span::raw(lead)];
                spans.extend(line.spans.iter().cloned());
                self.pending.push(Line::from(spans));
            }
            self.committed = lines.len();
        }
        if all {
            self.answer.clear();
            self.committed = 0;
            self.answer_started = false;
            self.pending.push(Line::default());
        } else if ends_block(&self.answer[..done]) {
            // A finished block is never rendered again: drop its source so each frame renders
            // only the block that is still streaming, however long the answer grows.
            self.answer.drain(..done);
            self.committed = 0;
            self.pending.push(Line::default());
        }
    }

    // ----- keys -----

    /// Attaches an image to the prompt being written, shown as `[Image #N]` in it; bytes that
    /// are not a PNG, JPEG, GIF or WebP image are refused with a message.
    pub fn attach_image(&mut self, bytes: &[u8]) {
        let Some(media_type) = image_type(bytes) else {
            self.say("that is not an image keel can send (PNG, JPEG, GIF or WebP)");
            return;
        };
        if bytes.len() > MAX_IMAGE_BYTES {
            self.say(&format!(
                "the image is too large to send ({} MB; the limit is {} MB)",
                bytes.len() / 1_000_000,
                MAX_IMAGE_BYTES / 1_000_000
            ));
            return;
        }
        self.image_count += 1;
        let n = self.image_count;
        self.images.push((
            n,
            ImageInput {
                media_type: media_type.to_string(),
                data: crate::base64_encode(bytes),
            },
        ));
        self.editor.insert(&format!("[Image #{n}]"));
        self.popup_dismissed = false;
    }

    /// Text pasted into the terminal (bracketed paste).
    pub fn on_paste(&mut self, text: &str) {
        let text = text.replace("\r\n", "\n").replace('\r', "\n");
        if let Some(approval) = self.approval.as_mut()
            && let Some(message) = approval.deny_message.as_mut()
        {
            message.insert(&text);
            return;
        }
        // A dragged or pasted image file's path attaches the image.
        if let Some(path) = image_path(&text, &self.info.cwd) {
            match std::fs::read(&path) {
                Ok(bytes) => self.attach_image(&bytes),
                Err(e) => self.say(&format!("could not read {}: {e}", path.display())),
            }
            return;
        }
        let lines = text.lines().count();
        if text.len() > PASTE_COLLAPSE_CHARS || lines > PASTE_COLLAPSE_LINES {
            self.pastes.push(text);
            let n = self.pastes.len();
            self.editor
                .insert(&format!("[Pasted text #{n} +{lines} lines]"));
        } else {
            self.editor.insert(&text);
        }
        self.popup_dismissed = false;
    }

    /// One key press.
    pub fn on_key(&mut self, key: KeyEvent) {
        if key.kind == KeyEventKind::Release {
            return;
        }
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        if ctrl && key.code == KeyCode::Char('c') {
            self.ctrl_c();
            return;
        }
        if self.approval.is_some() {
            self.approval_key(key);
            return;
        }
        if self.asking.is_some() {
            self.question_key(key);
            return;
        }
        if self.search.is_some() {
            self.search_key(key);
            return;
        }
        if self.picker.is_some() {
            self.picker_key(key);
            return;
        }
        let alt = key.modifiers.contains(KeyModifiers::ALT);
        if matches!(self.vim, Some(Vim::Normal { .. })) && !ctrl && !alt && self.vim_key(key) {
            return;
        }
        let shift = key.modifiers.contains(KeyModifiers::SHIFT);
        let popup = self.popup();
        match key.code {
            KeyCode::Esc => {
                if !popup.is_empty() && !self.popup_dismissed {
                    self.popup_dismissed = true;
                } else if self.vim == Some(Vim::Insert) {
                    self.vim = Some(Vim::Normal { pending_d: false });
                    if self.running.is_some() {
                        self.ops.push(Op::Interrupt);
                    }
                } else if self.running.is_some() {
                    self.ops.push(Op::Interrupt);
                } else if self
                    .esc_at
                    .is_some_and(|t| t.elapsed() < Duration::from_millis(800))
                {
                    self.esc_at = None;
                    // Esc Esc: pick an earlier prompt of this conversation to go back to;
                    // without one, the previous prompt comes back to edit and send again.
                    if self.prompts.is_empty() {
                        if let Some(last) = self.history.last() {
                            self.editor.set(last.clone());
                        }
                    } else {
                        self.open_rewind();
                    }
                } else {
                    self.esc_at = Some(Instant::now());
                }
            }
            KeyCode::Enter if shift || alt => self.editor.insert("\n"),
            KeyCode::Char('j') if ctrl => self.editor.insert("\n"),
            KeyCode::Enter => {
                if !popup.is_empty() && !self.popup_dismissed {
                    let submit = self.accept_completion(&popup);
                    if !submit {
                        return;
                    }
                }
                if self.editor.text().ends_with('\\') {
                    self.editor.backspace();
                    self.editor.insert("\n");
                    return;
                }
                self.submit();
            }
            KeyCode::Tab if !popup.is_empty() => {
                self.accept_completion(&popup);
            }
            KeyCode::BackTab => self.cycle_mode(),
            KeyCode::Up if !popup.is_empty() && !self.popup_dismissed => {
                self.popup_selected = self.popup_selected.saturating_sub(1);
            }
            KeyCode::Down if !popup.is_empty() && !self.popup_dismissed => {
                self.popup_selected = (self.popup_selected + 1).min(popup.len() - 1);
            }
            KeyCode::Up => {
                if self.editor.on_first_line() {
                    self.history_prev();
                } else {
                    self.editor.up();
                }
            }
            KeyCode::Down => {
                if self.editor.on_last_line() {
                    self.history_next();
                } else {
                    self.editor.down();
                }
            }
            KeyCode::Left if ctrl || alt => self.editor.word_left(),
            KeyCode::Right if ctrl || alt => self.editor.word_right(),
            KeyCode::Left => self.editor.left(),
            KeyCode::Right => self.editor.right(),
            KeyCode::Home => self.editor.home(),
            KeyCode::End => self.editor.end(),
            KeyCode::Backspace if alt => self.editor.delete_word(),
            KeyCode::Backspace => self.editor.backspace(),
            KeyCode::Delete => self.editor.delete(),
            KeyCode::Char(c) if ctrl => match c {
                'a' => self.editor.home(),
                'e' => self.editor.end(),
                'f' => self.editor.right(),
                'u' => self.editor.kill_to_start(),
                'k' => self.editor.kill_to_end(),
                'w' => self.editor.delete_word(),
                'd' => {
                    if self.editor.is_empty() {
                        self.actions.push(Action::Exit);
                    } else {
                        self.editor.delete();
                    }
                }
                'o' => {
                    self.expanded = !self.expanded;
                    self.hint(if self.expanded {
                        "tool calls expanded (ctrl+o to collapse)"
                    } else {
                        "tool calls collapsed"
                    });
                }
                's' => self.toggle_stash(),
                'v' => self.actions.push(Action::PasteImage),
                'b' => self.background(),
                'r' => self.search = Some(String::new()),
                'l' => {}
                _ => {}
            },
            KeyCode::Char('b') if alt => self.editor.word_left(),
            KeyCode::Char('f') if alt => self.editor.word_right(),
            KeyCode::Char(c) => {
                self.editor.insert(c.encode_utf8(&mut [0; 4]));
                self.popup_selected = 0;
                self.popup_dismissed = false;
                self.history_pos = None;
            }
            _ => {}
        }
    }

    /// A key in vi's normal mode; false lets the usual handling take it (Enter, arrows, Esc).
    fn vim_key(&mut self, key: KeyEvent) -> bool {
        let KeyCode::Char(c) = key.code else {
            return false;
        };
        let pending_d = matches!(self.vim, Some(Vim::Normal { pending_d: true }));
        self.vim = Some(Vim::Normal { pending_d: false });
        let insert = Some(Vim::Insert);
        match c {
            'h' => self.editor.left(),
            'l' => self.editor.right(),
            'j' => {
                if self.editor.on_last_line() {
                    self.history_next();
                } else {
                    self.editor.down();
                }
            }
            'k' => {
                if self.editor.on_first_line() {
                    self.history_prev();
                } else {
                    self.editor.up();
                }
            }
            'w' => self.editor.word_forward(),
            'b' => self.editor.word_left(),
            '0' => self.editor.home(),
            '$' => self.editor.end(),
            'x' => self.editor.delete(),
            'd' if pending_d => self.editor.delete_line(),
            'd' => self.vim = Some(Vim::Normal { pending_d: true }),
            'i' => self.vim = insert,
            'a' => {
                self.editor.right();
                self.vim = insert;
            }
            'A' => {
                self.editor.end();
                self.vim = insert;
            }
            'I' => {
                self.editor.home();
                self.vim = insert;
            }
            'o' => {
                self.editor.end();
                self.editor.insert("\n");
                self.vim = insert;
            }
            // Other keys do nothing in normal mode rather than type.
            _ => {}
        }
        true
    }

    fn picker_key(&mut self, key: KeyEvent) {
        let Some(picker) = self.picker.as_mut() else {
            return;
        };
        let count = picker.items.len();
        let pick = match key.code {
            KeyCode::Esc => {
                self.picker = None;
                return;
            }
            KeyCode::Up => {
                picker.selected = picker.selected.saturating_sub(1);
                None
            }
            KeyCode::Down | KeyCode::Tab => {
                picker.selected = (picker.selected + 1).min(count.saturating_sub(1));
                None
            }
            KeyCode::Char(c) if c.is_ascii_digit() => {
                let n = c.to_digit(10).unwrap_or(0) as usize;
                (1..=count).contains(&n).then(|| n - 1)
            }
            KeyCode::Enter => Some(picker.selected),
            _ => None,
        };
        let Some(pick) = pick else { return };
        let Some(picker) = self.picker.take() else {
            return;
        };
        let Some((_, _, value)) = picker.items.get(pick).cloned() else {
            return;
        };
        match picker.kind {
            PickerKind::Model => {
                self.ops.push(Op::SetModel { model: value });
            }
            PickerKind::Resume => self.actions.push(Action::Resume(value)),
            PickerKind::Rewind => {
                let back = value.parse::<usize>().unwrap_or(1);
                self.ops.push(Op::Rewind {
                    user_turns_back: back,
                });
            }
        }
    }

    /// The rewind picker: this conversation's prompts, newest first.
    fn open_rewind(&mut self) {
        if self.prompts.is_empty() {
            self.say("nothing to rewind: no prompt was sent in this conversation yet");
            return;
        }
        let items = self
            .prompts
            .iter()
            .rev()
            .enumerate()
            .map(|(i, p)| {
                let first = p.lines().next().unwrap_or_default().to_string();
                let back = i + 1;
                let detail = if back == 1 {
                    "the last prompt".to_string()
                } else {
                    format!("{back} prompts back")
                };
                (first, detail, back.to_string())
            })
            .collect();
        self.picker = Some(Picker {
            kind: PickerKind::Rewind,
            title: "Rewind to before which prompt? (it comes back to edit)".into(),
            items,
            selected: 0,
        });
    }

    /// The `/model` picker: the model in use, Claude Code's aliases and the providers'
    /// defaults.
    fn open_models(&mut self) {
        let current = self.info.model.clone();
        let mut items: Vec<(String, String, String)> =
            vec![(current.clone(), "in use".into(), current.clone())];
        let mut add = |label: &str, detail: &str, model: &str| {
            if !items.iter().any(|(_, _, m)| m == model) {
                items.push((label.to_string(), detail.to_string(), model.to_string()));
            }
        };
        if current.to_ascii_lowercase().starts_with("claude") {
            for (alias, what) in [
                ("sonnet", "balanced, the default"),
                ("opus", "most capable"),
                ("haiku", "fastest"),
            ] {
                let model = keel_model::models::resolve_alias(alias, &current);
                add(&format!("{alias} ({model})"), what, &model);
            }
        } else {
            add(
                keel_model::models::DEFAULT_OPENAI_MODEL,
                "OpenAI's default",
                keel_model::models::DEFAULT_OPENAI_MODEL,
            );
            add(
                keel_model::models::DEFAULT_OPENROUTER_MODEL,
                "OpenRouter's default",
                keel_model::models::DEFAULT_OPENROUTER_MODEL,
            );
        }
        self.picker = Some(Picker {
            kind: PickerKind::Model,
            title: "Switch the model (/model <name> sets any other)".into(),
            items,
            selected: 0,
        });
    }

    /// Ctrl+B: the prompt runs as a background task instead of in this conversation.
    fn background(&mut self) {
        let text = self.editor.text().trim().to_string();
        if text.is_empty() {
            self.hint("type a prompt first; ctrl+b runs it as a background task");
            return;
        }
        if text.starts_with(['/', '!', '#']) {
            self.hint("ctrl+b runs prompts, not commands");
            return;
        }
        self.editor.take();
        let mut prompt = text.clone();
        for (i, paste) in self.pastes.iter().enumerate() {
            let lines = paste.lines().count();
            prompt = prompt.replace(&format!("[Pasted text #{} +{lines} lines]", i + 1), paste);
        }
        if self.history.last() != Some(&text) {
            self.history.push(text.clone());
        }
        let lines = cells::user_prompt(&format!("{text}  (background)"), self.width);
        self.pending.extend(lines);
        self.actions.push(Action::Background {
            prompt,
            mode: self.mode.clone(),
        });
    }

    fn hint(&mut self, text: &str) {
        self.hint = Some((text.to_string(), Instant::now()));
    }

    fn ctrl_c(&mut self) {
        if self.running.is_some() {
            if let Some(approval) = self.approval.take() {
                self.ops.push(Op::Approval {
                    request_id: approval.request_id,
                    answer: ApprovalAnswer::Deny {
                        message: "The user interrupted.".into(),
                    },
                });
            }
            self.ops.push(Op::Interrupt);
            self.ctrl_c_at = Some(Instant::now());
            return;
        }
        if !self.editor.is_empty() {
            self.editor.take();
            return;
        }
        if self.ctrl_c_at.is_some_and(|t| t.elapsed() < EXIT_WINDOW) {
            self.actions.push(Action::Exit);
        } else {
            self.ctrl_c_at = Some(Instant::now());
            self.hint("Press Ctrl-C again to exit");
        }
    }

    fn cycle_mode(&mut self) {
        let i = MODE_CYCLE.iter().position(|m| *m == self.mode);
        let next = match i {
            Some(i) => MODE_CYCLE[(i + 1) % MODE_CYCLE.len()],
            None => MODE_CYCLE[0],
        };
        self.ops.push(Op::SetPermissionMode { mode: next.into() });
        self.mode = next.to_string();
    }

    fn toggle_stash(&mut self) {
        if self.editor.is_empty() {
            if let Some(text) = self.stash.take() {
                self.editor.set(text);
            }
        } else {
            self.stash = Some(self.editor.take());
            self.hint("input stashed (ctrl+s on an empty prompt restores it)");
        }
    }

    fn history_prev(&mut self) {
        if self.history.is_empty() {
            return;
        }
        let pos = match self.history_pos {
            None => {
                self.history_draft = self.editor.text().to_string();
                self.history.len() - 1
            }
            Some(0) => 0,
            Some(p) => p - 1,
        };
        self.history_pos = Some(pos);
        self.editor.set(self.history[pos].clone());
    }

    fn history_next(&mut self) {
        match self.history_pos {
            None => {}
            Some(p) if p + 1 < self.history.len() => {
                self.history_pos = Some(p + 1);
                self.editor.set(self.history[p + 1].clone());
            }
            Some(_) => {
                self.history_pos = None;
                let draft = std::mem::take(&mut self.history_draft);
                self.editor.set(draft);
            }
        }
    }

    fn search_match(&self) -> Option<&String> {
        let query = self.search.as_deref()?;
        self.history
            .iter()
            .rev()
            .find(|h| !query.is_empty() && h.contains(query))
    }

    fn search_key(&mut self, key: KeyEvent) {
        let Some(query) = self.search.as_mut() else {
            return;
        };
        match key.code {
            KeyCode::Esc => self.search = None,
            KeyCode::Enter | KeyCode::Tab => {
                if let Some(found) = self.search_match().cloned() {
                    self.editor.set(found);
                }
                self.search = None;
            }
            KeyCode::Backspace => {
                query.pop();
            }
            KeyCode::Char(c) if !key.modifiers.contains(KeyModifiers::CONTROL) => query.push(c),
            _ => {}
        }
    }

    fn approval_key(&mut self, key: KeyEvent) {
        let Some(approval) = self.approval.as_mut() else {
            return;
        };
        if let Some(message) = approval.deny_message.as_mut() {
            match key.code {
                KeyCode::Enter => {
                    let text = message.take();
                    let text = if text.trim().is_empty() {
                        "The user denied this.".to_string()
                    } else {
                        text
                    };
                    self.answer_approval(ApprovalAnswer::Deny { message: text });
                }
                KeyCode::Esc => approval.deny_message = None,
                KeyCode::Backspace => message.backspace(),
                KeyCode::Left => message.left(),
                KeyCode::Right => message.right(),
                KeyCode::Char(c) => message.insert(c.encode_utf8(&mut [0; 4])),
                _ => {}
            }
            return;
        }
        let choice = match key.code {
            KeyCode::Char('1' | 'y') => Some(0),
            KeyCode::Char('2' | 'a') => Some(1),
            KeyCode::Char('3' | 'n') => Some(2),
            KeyCode::Up => {
                approval.selected = approval.selected.saturating_sub(1);
                None
            }
            KeyCode::Down => {
                approval.selected = (approval.selected + 1).min(2);
                None
            }
            KeyCode::Enter => Some(approval.selected),
            KeyCode::Esc => {
                self.answer_approval(ApprovalAnswer::Deny {
                    message: "The user denied this.".into(),
                });
                return;
            }
            _ => None,
        };
        match choice {
            Some(0) => self.answer_approval(ApprovalAnswer::AllowOnce {
                updated_input: None,
            }),
            Some(1) => {
                let rules = approval_rules(approval);
                self.answer_approval(ApprovalAnswer::AllowAlways { rules });
            }
            Some(_) => approval.deny_message = Some(Editor::default()),
            None => {}
        }
    }

    fn question_key(&mut self, key: KeyEvent) {
        let Some(asking) = self.asking.as_mut() else {
            return;
        };
        let Some(question) = asking.questions.get(asking.index).cloned() else {
            return;
        };
        let options = question.options.len();
        if let Some(other) = asking.other.as_mut() {
            match key.code {
                KeyCode::Enter => {
                    let text = other.take();
                    asking.other = None;
                    if !text.trim().is_empty() {
                        self.answer_question(&question.question, text.trim().to_string());
                    }
                }
                KeyCode::Esc => asking.other = None,
                KeyCode::Backspace => other.backspace(),
                KeyCode::Left => other.left(),
                KeyCode::Right => other.right(),
                KeyCode::Char(c) => other.insert(c.encode_utf8(&mut [0; 4])),
                _ => {}
            }
            return;
        }
        let pick = match key.code {
            KeyCode::Up => {
                asking.selected = asking.selected.saturating_sub(1);
                None
            }
            KeyCode::Down | KeyCode::Tab => {
                asking.selected = (asking.selected + 1).min(options);
                None
            }
            KeyCode::Char(' ') if question.multi_select && asking.selected < options => {
                if let Some(t) = asking.ticked.get_mut(asking.selected) {
                    *t = !*t;
                }
                None
            }
            KeyCode::Char(c) if c.is_ascii_digit() => {
                let n = c.to_digit(10).unwrap_or(0) as usize;
                (1..=options + 1).contains(&n).then(|| n - 1)
            }
            KeyCode::Enter => Some(asking.selected),
            KeyCode::Esc => {
                // Declining answers nothing; the model is told the user chose not to answer.
                if let Some(asking) = self.asking.take() {
                    self.say("  ⎿  declined to answer");
                    self.ops.push(Op::AnswerQuestion {
                        request_id: asking.request_id,
                        answers: std::collections::BTreeMap::new(),
                    });
                }
                return;
            }
            _ => None,
        };
        let Some(pick) = pick else { return };
        if pick == options {
            asking.other = Some(Editor::default());
            return;
        }
        let answer = if question.multi_select && key.code == KeyCode::Enter {
            let labels: Vec<String> = question
                .options
                .iter()
                .zip(&asking.ticked)
                .filter(|(_, t)| **t)
                .map(|(o, _)| o.label.clone())
                .collect();
            if labels.is_empty() {
                question
                    .options
                    .get(pick)
                    .map(|o| o.label.clone())
                    .unwrap_or_default()
            } else {
                labels.join(", ")
            }
        } else {
            question
                .options
                .get(pick)
                .map(|o| o.label.clone())
                .unwrap_or_default()
        };
        self.answer_question(&question.question, answer);
    }

    /// Records the answer to the current question and moves on (sending all answers after
    /// the last one).
    fn answer_question(&mut self, question: &str, answer: String) {
        let Some(asking) = self.asking.as_mut() else {
            return;
        };
        let lines = cells::notice(&format!("  ⎿  {question} → {answer}"), false, self.width);
        self.pending.extend(lines);
        asking.answers.insert(question.to_string(), answer);
        asking.index += 1;
        asking.selected = 0;
        asking.ticked = vec![
            false;
            asking
                .questions
                .get(asking.index)
                .map_or(0, |q| q.options.len())
        ];
        if asking.index >= asking.questions.len()
            && let Some(asking) = self.asking.take()
        {
            self.ops.push(Op::AnswerQuestion {
                request_id: asking.request_id,
                answers: asking.answers,
            });
        }
    }

    fn answer_approval(&mut self, answer: ApprovalAnswer) {
        if let Some(approval) = self.approval.take() {
            if let ApprovalAnswer::Deny { message } = &answer {
                let lines = cells::notice(&format!("  ⎿  Denied: {message}"), true, self.width);
                self.pending.extend(lines);
            }
            self.ops.push(Op::Approval {
                request_id: approval.request_id,
                answer,
            });
        }
    }

    // ----- completion -----

    /// The completion list for what is being typed: commands after a leading `/`, files after
    /// `@`.
    fn popup(&self) -> Vec<(String, String)> {
        let text = self.editor.text();
        if text.starts_with('/') && !text.contains(char::is_whitespace) {
            return commands::matching(&self.commands, &text[1..])
                .into_iter()
                .map(|c| (format!("/{}", c.name), c.description.clone()))
                .collect();
        }
        let (_, word) = self.editor.current_word();
        if let Some(query) = word.strip_prefix('@') {
            return fuzzy_files(&self.files, query)
                .into_iter()
                .map(|f| (format!("@{f}"), String::new()))
                .collect();
        }
        Vec::new()
    }

    /// Puts the selected completion in the editor; returns whether Enter should also submit.
    fn accept_completion(&mut self, popup: &[(String, String)]) -> bool {
        let Some((choice, _)) = popup.get(self.popup_selected.min(popup.len().saturating_sub(1)))
        else {
            return true;
        };
        if choice.starts_with('/') {
            let exact = self.editor.text() == choice;
            self.editor.set(format!("{choice} "));
            self.popup_selected = 0;
            // Enter on a command runs it, as in Claude Code; Tab only completes.
            return exact || !self.editor.text().is_empty();
        }
        let (start, _) = self.editor.current_word();
        self.editor
            .replace_before_cursor(start, &format!("{choice} "));
        self.popup_selected = 0;
        false
    }

    // ----- submitting -----

    /// Submits text as if typed and sent with Enter (a prompt given on the command line).
    pub fn submit_text(&mut self, text: &str) {
        self.editor.set(text);
        self.submit();
    }

    fn submit(&mut self) {
        let raw = self.editor.take();
        let text = raw.trim().to_string();
        self.popup_dismissed = false;
        self.history_pos = None;
        if text.is_empty() {
            return;
        }
        if self.history.last() != Some(&text) {
            self.history.push(text.clone());
        }
        // Placeholders of collapsed pastes become the text again.
        let mut expanded = text.clone();
        for (i, paste) in self.pastes.iter().enumerate() {
            let lines = paste.lines().count();
            expanded = expanded.replace(&format!("[Pasted text #{} +{lines} lines]", i + 1), paste);
        }
        if let Some(command) = text.strip_prefix('!') {
            let lines = cells::user_prompt(&text, self.width);
            self.pending.extend(lines);
            self.actions.push(Action::Shell(command.trim().to_string()));
            return;
        }
        if let Some(note) = text.strip_prefix('#') {
            self.actions.push(Action::Remember(note.trim().to_string()));
            return;
        }
        if let Some(rest) = text.strip_prefix('/')
            && self.local_command(rest)
        {
            return;
        }
        let lines = cells::user_prompt(&text, self.width);
        self.pending.extend(lines);
        self.send_prompt(expanded);
    }

    fn send_prompt(&mut self, text: String) {
        let mut prompt = String::new();
        for context in self.pending_context.drain(..) {
            prompt.push_str(&context);
            prompt.push_str("\n\n");
        }
        prompt.push_str(&text);
        if !self.pinned.is_empty() && !text.starts_with('/') {
            prompt.push_str("\n\n");
            let mentions: Vec<String> = self.pinned.iter().map(|p| format!("@{p}")).collect();
            prompt.push_str(&mentions.join(" "));
        }
        if std::mem::take(&mut self.think_next) && !text.starts_with('/') {
            prompt.push_str("\n\nThink hard about this.");
        }
        let images: Vec<ImageInput> = std::mem::take(&mut self.images)
            .into_iter()
            .filter(|(n, _)| text.contains(&format!("[Image #{n}]")))
            .map(|(_, image)| image)
            .collect();
        self.conversation.push(("user".into(), text));
        if images.is_empty() {
            self.ops.push(Op::UserInput { text: prompt });
        } else {
            self.ops.push(Op::UserInputWithImages {
                text: prompt,
                images,
            });
        }
        if self.running.is_none() {
            self.running = Some(Instant::now());
            self.output_chars = 0;
        }
    }

    /// Commands the UI handles itself; false hands the text to the engine.
    fn local_command(&mut self, line: &str) -> bool {
        let (name, args) = match line.split_once(char::is_whitespace) {
            Some((n, a)) => (n, a.trim()),
            None => (line, ""),
        };
        let echo = |app: &mut Self| {
            let lines = cells::user_prompt(&format!("/{line}"), app.width);
            app.pending.extend(lines);
        };
        match name {
            "exit" | "quit" => self.actions.push(Action::Exit),
            "version" => {
                echo(self);
                self.say(&format!("keel {}", self.info.version));
            }
            "mode" if !args.is_empty() => {
                echo(self);
                self.ops.push(Op::SetPermissionMode { mode: args.into() });
            }
            "mode" => {
                echo(self);
                self.say(&format!(
                    "permission mode: {} (shift+tab cycles {}; /mode <mode> sets one)",
                    self.mode,
                    MODE_CYCLE.join(" → ")
                ));
            }
            "plan" => {
                echo(self);
                self.ops.push(Op::SetPermissionMode {
                    mode: "plan".into(),
                });
            }
            "think" => {
                echo(self);
                self.think_next = true;
                self.say("the next prompt asks the model to think hard");
            }
            "effort" => {
                echo(self);
                let effort = if args.is_empty() { "medium" } else { args };
                self.think_next = effort == "high";
                self.say(&format!("reasoning effort: {effort}"));
            }
            "add" if !args.is_empty() => {
                echo(self);
                for path in args.split_whitespace() {
                    let path = path.trim_start_matches('@').to_string();
                    if !self.pinned.contains(&path) {
                        self.pinned.push(path);
                    }
                }
                self.say(&format!("pinned: {}", self.pinned.join(", ")));
            }
            "files" | "add" => {
                echo(self);
                if self.pinned.is_empty() {
                    self.say("no files pinned (/add <path> pins one to every message)");
                } else {
                    self.say(&format!("pinned: {}", self.pinned.join(", ")));
                }
            }
            "copy" => {
                echo(self);
                self.actions.push(Action::Copy(self.last_answer.clone()));
            }
            "export" => {
                echo(self);
                let path = if args.is_empty() {
                    "keel-conversation.md"
                } else {
                    args
                };
                self.actions.push(Action::Export(self.info.cwd.join(path)));
            }
            "diff" => {
                echo(self);
                self.actions.push(Action::GitDiff(None));
            }
            "review" => {
                echo(self);
                self.actions.push(Action::GitDiff(Some(format!(
                    "Review these uncommitted changes: point out bugs, risks and missing tests, most important first.{}",
                    if args.is_empty() { String::new() } else { format!(" Focus: {args}") }
                ))));
            }
            "commit" => {
                echo(self);
                self.send_prompt(
                    "Commit the uncommitted changes: look at git status and git diff, then run git add and git commit with a concise message that says why."
                        .to_string(),
                );
            }
            "doctor" => {
                echo(self);
                self.actions.push(Action::Doctor);
            }
            "vim" => {
                echo(self);
                if self.vim.is_some() {
                    self.vim = None;
                    self.say("vi editing off");
                } else {
                    self.vim = Some(Vim::Insert);
                    self.say("vi editing on: esc for normal mode (h j k l w b 0 $ x dd i a A o); /vim again turns it off");
                }
            }
            "model" if args.is_empty() => {
                echo(self);
                self.open_models();
            }
            "resume" | "continue" => {
                echo(self);
                if args.is_empty() {
                    self.actions.push(Action::ListSessions);
                } else {
                    self.actions.push(Action::Resume(args.to_string()));
                }
            }
            "rewind" => {
                echo(self);
                if args.is_empty() {
                    self.open_rewind();
                } else {
                    match args.parse::<usize>() {
                        Ok(back) if back > 0 => self.ops.push(Op::Rewind {
                            user_turns_back: back,
                        }),
                        _ => self.say("/rewind takes how many prompts back, e.g. /rewind 2"),
                    }
                }
            }
            _ => return false,
        }
        true
    }

    /// The conversation as Markdown, for `/export`.
    pub fn export_markdown(&self) -> String {
        let mut out = String::from("# keel conversation\n\n");
        for (who, text) in &self.conversation {
            let heading = if who == "user" { "## You" } else { "## keel" };
            out.push_str(&format!("{heading}\n\n{text}\n\n"));
        }
        out
    }

    /// Sends a prompt on behalf of a frontend action (`/review`).
    pub fn prompt(&mut self, text: String) {
        self.send_prompt(text);
    }

    // ----- drawing -----

    /// Renders the viewport: the live answer, running tools, the plan, the spinner, the
    /// permission question or the prompt, completions and the status line.
    pub fn render(&mut self) -> Buffer {
        let width = self.width.max(10);
        let mut rows: Vec<Line<'static>> = Vec::new();

        // The part of the answer that is still streaming.
        if !self.answer.is_empty() {
            let lines = self
                .rendered_live
                .get(&self.answer, width.saturating_sub(2).max(10));
            for (i, line) in lines.iter().enumerate().skip(self.committed) {
                let lead = if i == 0 && !self.answer_started {
                    "● "
                } else {
                    "  "
                };
                let mut spans = vec![Span::raw(lead)];
                spans.extend(line.spans.iter().cloned());
                rows.push(Line::from(spans));
            }
        }
        for tool in &self.tools {
            let arg = cells::tool_argument(&tool.name, &tool.input, &self.info.cwd);
            let blink = if self.tick.is_multiple_of(2) {
                Color::Gray
            } else {
                Color::DarkGray
            };
            rows.push(cells::tool_header(&tool.name, &arg, Style::new().fg(blink)));
            let tail = tail_lines(&tool.tail, TAIL_LINES);
            if tool.activity.is_none() && !tail.is_empty() {
                for (i, line) in tail.iter().enumerate() {
                    let lead = if i == 0 { "  ⎿  " } else { "     " };
                    let text = cells::truncate(
                        &format!("{lead}{line}"),
                        usize::from(width).saturating_sub(1),
                    );
                    rows.push(Line::styled(text, DIM));
                }
                continue;
            }
            let detail = match &tool.activity {
                Some(a) => format!("  ⎿  {a}"),
                None => format!("  ⎿  running… {}s", tool.started.elapsed().as_secs()),
            };
            rows.push(Line::styled(detail, DIM));
        }
        if self.plan.iter().any(|p| p.status != "completed") {
            rows.extend(cells::plan(&self.plan));
        }
        if let Some(started) = self.running {
            const FRAMES: [&str; 6] = ["·", "✢", "✳", "✶", "✻", "✽"];
            let frame = FRAMES[(self.tick as usize) % FRAMES.len()];
            let word = if self.thinking { "Thinking" } else { "Working" };
            let tokens = self.output_chars / 4;
            rows.push(Line::from(vec![
                Span::styled(format!("{frame} {word}… "), Style::new().fg(Color::Magenta)),
                Span::styled(
                    format!(
                        "({}s · ↓ {tokens} tokens · esc to interrupt)",
                        started.elapsed().as_secs()
                    ),
                    DIM,
                ),
            ]));
        }
        // Long live output must not push the prompt off the screen: keep its newest rows.
        let reserved = 8usize;
        let room = usize::from(self.height).saturating_sub(reserved).max(1);
        if rows.len() > room {
            rows.drain(..rows.len() - room);
        }

        let rule = Line::styled("─".repeat(usize::from(width)), DIM);
        if let Some(approval) = &self.approval {
            rows.extend(approval_rows(approval, &self.info.cwd, width));
        } else if let Some(asking) = &self.asking {
            rows.extend(question_rows(asking, width));
        } else if let Some(picker) = &self.picker {
            rows.extend(picker_rows(picker, width));
        } else if let Some(query) = &self.search {
            rows.push(rule.clone());
            let found = self.search_match().cloned().unwrap_or_default();
            rows.push(Line::from(vec![
                Span::styled(format!("(reverse-i-search)`{query}': "), DIM),
                Span::raw(found),
            ]));
            rows.push(rule.clone());
        } else {
            rows.push(rule.clone());
            let prompt = if self.editor.text().starts_with('!') {
                "! "
            } else {
                "> "
            };
            rows.extend(self.editor.render(prompt, width, true));
            rows.push(rule.clone());
            let popup = if self.popup_dismissed {
                Vec::new()
            } else {
                self.popup()
            };
            let selected = self.popup_selected.min(popup.len().saturating_sub(1));
            let start = selected.saturating_sub(POPUP_ROWS - 1);
            for (i, (name, description)) in popup.iter().enumerate().skip(start).take(POPUP_ROWS) {
                let style = if i == selected {
                    Style::new().fg(Color::Magenta).add_modifier(Modifier::BOLD)
                } else {
                    Style::new()
                };
                let name_width = 18usize;
                let mut line = vec![Span::styled(format!("  {name:<name_width$}"), style)];
                if !description.is_empty() {
                    line.push(Span::styled(
                        cells::truncate(
                            description,
                            usize::from(width).saturating_sub(name_width + 4),
                        ),
                        DIM,
                    ));
                }
                rows.push(Line::from(line));
            }
        }
        rows.push(self.status_line(width));

        let rows = crate::wrap::wrap_lines(&rows, width);
        let height = u16::try_from(rows.len())
            .unwrap_or(u16::MAX)
            .min(self.height.max(1));
        let skip = rows.len().saturating_sub(usize::from(height));
        let area = Rect::new(0, 0, width, height);
        let mut buffer = Buffer::empty(area);
        Paragraph::new(rows[skip..].to_vec()).render(area, &mut buffer);
        buffer
    }

    fn status_line(&self, width: u16) -> Line<'static> {
        if let Some((hint, at)) = &self.hint
            && at.elapsed() < Duration::from_secs(3)
        {
            return Line::styled(format!("  {hint}"), Style::new().fg(Color::Yellow));
        }
        let mut parts = vec![self.info.model.clone()];
        let mode = match self.mode.as_str() {
            "acceptEdits" => "⏵⏵ accept edits",
            "plan" => "⏸ plan mode",
            "bypassPermissions" => "bypass permissions",
            other => other,
        };
        parts.push(mode.to_string());
        if let Some((used, window)) = self.context
            && window > 0
        {
            parts.push(format!("ctx {}%", used * 100 / window));
        }
        parts.push(format!("${:.4}", self.cost));
        if let Some(branch) = &self.info.branch {
            parts.push(format!("⎇ {branch}"));
        }
        if self.expanded {
            parts.push("expanded".into());
        }
        match self.vim {
            Some(Vim::Insert) => parts.push("-- INSERT --".into()),
            Some(Vim::Normal { .. }) => parts.push("-- NORMAL --".into()),
            None => {}
        }
        let text = cells::truncate(&format!("  {}", parts.join(" · ")), usize::from(width));
        Line::styled(text, DIM)
    }
}

/// The rules "always allow" saves: the engine's suggestions, else the tool's name.
fn approval_rules(approval: &Approval) -> Vec<String> {
    if approval.suggestions.is_empty() {
        vec![approval.tool_name.clone()]
    } else {
        approval.suggestions.clone()
    }
}

fn approval_rows(approval: &Approval, cwd: &std::path::Path, width: u16) -> Vec<Line<'static>> {
    let accent = Style::new().fg(Color::Yellow);
    let rule = Line::styled("─".repeat(usize::from(width)), accent);
    let mut rows = vec![rule.clone()];
    let arg = cells::tool_argument(&approval.tool_name, &approval.input, cwd);
    rows.push(Line::from(vec![
        Span::styled("Allow ", accent.add_modifier(Modifier::BOLD)),
        Span::styled(
            format!("{}({arg})", approval.tool_name),
            Style::new().add_modifier(Modifier::BOLD),
        ),
        Span::styled("?", accent.add_modifier(Modifier::BOLD)),
    ]));
    if !approval.reason.is_empty() {
        rows.push(Line::styled(approval.reason.clone(), DIM));
    }
    let always = format!(
        "Yes, and always allow {}",
        approval_rules(approval).join(", ")
    );
    let options = [
        "Yes, once".to_string(),
        always,
        "No, and tell keel what to do instead".to_string(),
    ];
    for (i, option) in options.iter().enumerate() {
        let selected = i == approval.selected;
        let marker = if selected { "❯" } else { " " };
        let style = if selected {
            Style::new().fg(Color::Cyan).add_modifier(Modifier::BOLD)
        } else {
            Style::new()
        };
        rows.push(Line::styled(format!("{marker} {}. {option}", i + 1), style));
    }
    if let Some(message) = &approval.deny_message {
        rows.extend(message.render("  message: ", width, true));
        rows.push(Line::styled(
            "  enter sends the denial · esc goes back",
            DIM,
        ));
    } else {
        rows.push(Line::styled(
            "  1/y once · 2/a always · 3/n deny · esc deny",
            DIM,
        ));
    }
    rows.push(rule);
    rows
}

fn picker_rows(picker: &Picker, width: u16) -> Vec<Line<'static>> {
    let accent = Style::new().fg(Color::Cyan);
    let rule = Line::styled("─".repeat(usize::from(width)), accent);
    let mut rows = vec![
        rule.clone(),
        Line::styled(picker.title.clone(), accent.add_modifier(Modifier::BOLD)),
    ];
    let start = picker.selected.saturating_sub(PICKER_ROWS - 1);
    for (i, (label, detail, _)) in picker
        .items
        .iter()
        .enumerate()
        .skip(start)
        .take(PICKER_ROWS)
    {
        let selected = i == picker.selected;
        let marker = if selected { "❯" } else { " " };
        let style = if selected {
            accent.add_modifier(Modifier::BOLD)
        } else {
            Style::new()
        };
        let head = cells::truncate(
            &format!("{marker} {}. {label}", i + 1),
            usize::from(width).saturating_sub(2),
        );
        let room = usize::from(width).saturating_sub(head.chars().count() + 2);
        let mut spans = vec![Span::styled(head, style)];
        if !detail.is_empty() && room > 8 {
            spans.push(Span::styled(
                format!("  {}", cells::truncate(detail, room)),
                DIM,
            ));
        }
        rows.push(Line::from(spans));
    }
    rows.push(Line::styled(
        "  ↑/↓ or number · enter picks · esc closes",
        DIM,
    ));
    rows.push(rule);
    rows
}

/// The last `count` lines of a command's output as a terminal would show them: a carriage
/// return starts the line over (progress bars), control characters are dropped.
fn tail_lines(tail: &str, count: usize) -> Vec<String> {
    let mut lines: Vec<String> = tail
        .lines()
        .map(|l| {
            let l = l.rsplit('\r').find(|p| !p.is_empty()).unwrap_or_default();
            l.chars()
                .map(|c| if c == '\t' { ' ' } else { c })
                .filter(|c| !c.is_control())
                .collect::<String>()
        })
        .filter(|l| !l.trim().is_empty())
        .collect();
    let skip = lines.len().saturating_sub(count);
    lines.drain(..skip);
    lines
}

/// The largest image sent (the API refuses images over 5 MB).
const MAX_IMAGE_BYTES: usize = 5 * 1024 * 1024;

/// The media type of image bytes, from their signature.
fn image_type(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if bytes.starts_with(&[0xff, 0xd8, 0xff]) {
        Some("image/jpeg")
    } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        Some("image/gif")
    } else if bytes.len() > 12 && bytes.starts_with(b"RIFF") && &bytes[8..12] == b"WEBP" {
        Some("image/webp")
    } else {
        None
    }
}

/// The image file pasted text names, if it is one: a single path (as terminals paste a
/// dragged file: maybe quoted, maybe `file://`, spaces maybe escaped) to an existing file with
/// an image extension.
fn image_path(text: &str, cwd: &std::path::Path) -> Option<PathBuf> {
    let text = text.trim();
    if text.is_empty() || text.contains('\n') {
        return None;
    }
    let unquoted = text
        .strip_prefix('\'')
        .and_then(|t| t.strip_suffix('\''))
        .or_else(|| text.strip_prefix('"').and_then(|t| t.strip_suffix('"')))
        .unwrap_or(text);
    let raw = unquoted.strip_prefix("file://").unwrap_or(unquoted);
    let raw = raw.replace("\\ ", " ");
    let lower = raw.to_ascii_lowercase();
    if ![".png", ".jpg", ".jpeg", ".gif", ".webp"]
        .iter()
        .any(|ext| lower.ends_with(ext))
    {
        return None;
    }
    let path = cwd.join(raw);
    path.is_file().then_some(path)
}

/// A message's first text block.
fn first_text(message: &Message) -> String {
    message
        .content
        .iter()
        .find_map(ContentBlock::text)
        .unwrap_or_default()
        .to_string()
}

fn question_rows(asking: &Asking, width: u16) -> Vec<Line<'static>> {
    let accent = Style::new().fg(Color::Cyan);
    let rule = Line::styled("─".repeat(usize::from(width)), accent);
    let mut rows = vec![rule.clone()];
    let Some(question) = asking.questions.get(asking.index) else {
        return rows;
    };
    let counter = if asking.questions.len() > 1 {
        format!(" ({}/{})", asking.index + 1, asking.questions.len())
    } else {
        String::new()
    };
    rows.push(Line::from(vec![
        Span::styled(
            format!("? {}{counter} ", question.header),
            accent.add_modifier(Modifier::BOLD),
        ),
        Span::styled(
            question.question.clone(),
            Style::new().add_modifier(Modifier::BOLD),
        ),
    ]));
    for (i, option) in question.options.iter().enumerate() {
        let selected = i == asking.selected;
        let marker = if selected { "❯" } else { " " };
        let tick = if question.multi_select {
            if asking.ticked.get(i).copied().unwrap_or(false) {
                "[x] "
            } else {
                "[ ] "
            }
        } else {
            ""
        };
        let style = if selected {
            accent.add_modifier(Modifier::BOLD)
        } else {
            Style::new()
        };
        let mut spans = vec![Span::styled(
            format!("{marker} {}. {tick}{}", i + 1, option.label),
            style,
        )];
        if !option.description.is_empty() {
            spans.push(Span::styled(format!("  {}", option.description), DIM));
        }
        rows.push(Line::from(spans));
    }
    let other = question.options.len();
    let marker = if asking.selected == other { "❯" } else { " " };
    rows.push(Line::styled(
        format!("{marker} {}. Other (type your own answer)", other + 1),
        if asking.selected == other {
            accent.add_modifier(Modifier::BOLD)
        } else {
            Style::new()
        },
    ));
    if let Some(editor) = &asking.other {
        rows.extend(editor.render("  answer: ", width, true));
    }
    let help = if question.multi_select {
        "  space ticks · enter confirms · esc declines"
    } else {
        "  number or enter picks · esc declines"
    };
    rows.push(Line::styled(help, DIM));
    rows.push(rule);
    rows
}

/// Files whose path contains the query's characters in order, best matches first (shorter
/// paths and matches in the file name rank higher).
pub fn fuzzy_files(files: &[String], query: &str) -> Vec<String> {
    let query = query.to_lowercase();
    let mut scored: Vec<(usize, &String)> = files
        .iter()
        .filter_map(|f| {
            let lower = f.to_lowercase();
            let mut chars = lower.chars();
            if !query.chars().all(|q| chars.any(|c| c == q)) {
                return None;
            }
            let name = lower.rsplit('/').next().unwrap_or(&lower);
            let bonus = if name.contains(&query) {
                0
            } else if lower.contains(&query) {
                50
            } else {
                100
            };
            Some((bonus + f.len(), f))
        })
        .collect();
    scored.sort();
    scored
        .into_iter()
        .take(50)
        .map(|(_, f)| f.clone())
        .collect()
}

/// Whether Markdown source ends at a block boundary (a blank line outside a code fence), so
/// what follows renders the same without it.
fn ends_block(source: &str) -> bool {
    if !source.ends_with("\n\n") {
        return false;
    }
    let fences = source
        .lines()
        .filter(|l| {
            let t = l.trim_start();
            t.starts_with("```") || t.starts_with("~~~")
        })
        .count();
    fences % 2 == 0
}

/// A small file's text (for the "before" side of a Write's diff).
fn read_small(path: &std::path::Path) -> Option<String> {
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_file() || meta.len() > 256 * 1024 {
        return None;
    }
    std::fs::read_to_string(path).ok()
}
