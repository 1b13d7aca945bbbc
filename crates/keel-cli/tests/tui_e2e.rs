//! The interactive terminal UI, driven like a user would: the real `keel` binary runs in a tmux
//! pane against the mock model server; the tests send keys, capture the pane and assert on what
//! is on the screen (and in its scrollback).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::{Harness, wait_for};
use keel_test_support::ScriptedTurn;
use serde_json::json;

/// A keel running in its own tmux server (one socket per test, so tests run in parallel).
struct Pane {
    socket: String,
}

impl Pane {
    /// Starts `keel` in a 100x30 pane in the harness's project, with the harness's environment.
    fn start(h: &Harness, args: &str) -> Self {
        let socket = format!("keel-tui-{}", uuid::Uuid::new_v4().simple());
        let script = h.ws.root.path().join("tmp").join("run-keel.sh");
        let keel = PathBuf::from(env!("CARGO_BIN_EXE_keel"));
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\nexport HOME='{home}' ANTHROPIC_API_KEY=sk-test-key ANTHROPIC_BASE_URL='{url}' TMPDIR='{tmp}'\n\
                 cd '{project}'\n'{keel}' {args}\necho \"KEEL-EXITED $?\"\nexec sleep 600\n",
                home = h.ws.home.display(),
                url = h.server.url(),
                tmp = h.ws.root.path().join("tmp").display(),
                project = h.project().display(),
                keel = keel.display(),
            ),
        )
        .unwrap();
        let status = Command::new("tmux")
            .args([
                "-L",
                &socket,
                "-f",
                "/dev/null",
                "new-session",
                "-d",
                "-x",
                "100",
                "-y",
                "30",
            ])
            .arg(format!("sh '{}'", script.display()))
            .status()
            .expect("tmux runs (apt-get install tmux)");
        assert!(status.success());
        Self { socket }
    }

    fn tmux(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The visible screen.
    fn screen(&self) -> String {
        self.tmux(&["capture-pane", "-p"])
    }

    /// The screen and everything scrolled off it.
    fn scrollback(&self) -> String {
        self.tmux(&["capture-pane", "-p", "-S", "-"])
    }

    /// Types text literally.
    fn type_text(&self, text: &str) {
        self.tmux(&["send-keys", "-l", text]);
    }

    /// Presses keys by tmux name (`Enter`, `Escape`, `C-c`, ...).
    fn press(&self, keys: &[&str]) {
        let mut args = vec!["send-keys"];
        args.extend_from_slice(keys);
        self.tmux(&args);
    }

    async fn wait_screen(&self, what: &str, condition: impl Fn(&str) -> bool) -> String {
        let limit = Duration::from_secs(20);
        let start = std::time::Instant::now();
        loop {
            let last = self.screen();
            if condition(&last) {
                return last;
            }
            assert!(
                start.elapsed() < limit,
                "timed out waiting for {what}; the screen was:\n{last}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn wait_text(&self, text: &str) -> String {
        self.wait_screen(&format!("`{text}` on the screen"), |s| s.contains(text))
            .await
    }

    /// Types `text`, presses Enter and waits for `then` on the screen, which it returns.
    async fn enter(&self, text: &str, then: &str) -> String {
        self.type_text(text);
        self.press(&["Enter"]);
        self.wait_text(then).await
    }

    /// Waits until the UI is ready for input (the status line is drawn).
    async fn ready(&self) {
        self.wait_text("claude-sonnet-4-5 · default").await;
    }
}

impl Drop for Pane {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .status();
    }
}

fn slow_text(text: &str, delay_ms: u64) -> ScriptedTurn {
    let mut turn = ScriptedTurn::text(text);
    turn.event_delay_ms = Some(delay_ms);
    turn
}

#[tokio::test(flavor = "multi_thread")]
async fn a_prompt_streams_a_markdown_answer() {
    let h = Harness::new(vec![slow_text(
        "# Plan\n\nThe fix is **small**:\n\n- change `parse`\n- add a test\n\n```rust\nfn parse() -> u8 { 1 }\n```\nAll done.",
        15,
    )])
    .await;
    let pane = Pane::start(&h, "");
    pane.ready().await;
    let screen = pane.enter("what should change?", "All done.").await;
    assert!(screen.contains("> what should change?"), "{screen}");
    // Markdown is rendered, not shown as source.
    assert!(screen.contains("The fix is small:"), "{screen}");
    assert!(screen.contains("• change parse"), "{screen}");
    assert!(screen.contains("fn parse() -> u8 { 1 }"), "{screen}");
    assert!(
        !screen.contains("**") && !screen.contains("```"),
        "{screen}"
    );
    // The run is over: the spinner is gone and the cost is counted.
    let screen = pane
        .wait_screen("the spinner to stop", |s| !s.contains("esc to interrupt)"))
        .await;
    assert!(!screen.contains("$0.0000"), "{screen}");
    let sent = &h.requests()[0].body["messages"];
    assert_eq!(sent[0]["content"][0]["text"], "what should change?");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_write_waits_for_approval_and_allow_once_runs_it() {
    let h = Harness::new(vec![
        ScriptedTurn::tool_use(
            "Write",
            json!({"file_path": "hello.txt", "content": "hello\nworld\n"}),
        ),
        ScriptedTurn::text("Created hello.txt."),
    ])
    .await;
    let pane = Pane::start(&h, "");
    pane.ready().await;
    let screen = pane
        .enter("create hello.txt", "Allow Write(hello.txt)?")
        .await;
    assert!(screen.contains("1. Yes, once"), "{screen}");
    assert!(
        !h.path("hello.txt").exists(),
        "nothing is written before the answer"
    );
    pane.press(&["1"]);
    wait_for("hello.txt to be written", Duration::from_secs(20), || {
        h.path("hello.txt").exists()
    })
    .await;
    assert_eq!(
        std::fs::read_to_string(h.path("hello.txt")).unwrap(),
        "hello\nworld\n"
    );
    let screen = pane.wait_text("Created hello.txt.").await;
    assert!(screen.contains("● Write(hello.txt)"), "{screen}");
    assert!(screen.contains("Wrote 2 lines to hello.txt"), "{screen}");
    assert!(
        screen.contains("+ hello") && screen.contains("+ world"),
        "{screen}"
    );
    assert!(
        !screen.contains("Allow Write"),
        "the question is gone: {screen}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn esc_interrupts_a_long_stream_and_the_partial_answer_stays() {
    let words: Vec<String> = (1..=400).map(|i| format!("word{i}")).collect();
    let h = Harness::new(vec![
        slow_text(&format!("Beginning. {}", words.join(" ")), 40),
        ScriptedTurn::text("Second answer."),
    ])
    .await;
    let pane = Pane::start(&h, "");
    pane.ready().await;
    pane.enter("tell me a long story", "word12").await;
    pane.press(&["Escape"]);
    let screen = pane.wait_text("Interrupted").await;
    assert!(screen.contains("Beginning."), "{screen}");
    assert!(!screen.contains("word400"), "the stream stopped: {screen}");
    // keel is ready for the next prompt, and the partial answer is still there.
    pane.wait_screen("the spinner to stop", |s| !s.contains("esc to interrupt)"))
        .await;
    let screen = pane.enter("go on", "Second answer.").await;
    let all = pane.scrollback();
    assert!(
        all.contains("Beginning. word1 word2"),
        "{all}\n---\n{screen}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn slash_shows_the_command_list_with_descriptions() {
    let h = Harness::new(vec![]).await;
    let pane = Pane::start(&h, "");
    pane.ready().await;
    pane.type_text("/");
    let screen = pane.wait_text("/compact").await;
    assert!(screen.contains("Summarise the conversation"), "{screen}");
    pane.type_text("co");
    let screen = pane
        .wait_screen("the list to narrow", |s| !s.contains("/help"))
        .await;
    assert!(
        screen.contains("/cost") && screen.contains("/commit"),
        "{screen}"
    );
    pane.press(&["Escape"]);
    pane.wait_screen("the list to close", |s| !s.contains("/cost"))
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_40_column_resize_keeps_the_layout_intact() {
    let h = Harness::new(vec![ScriptedTurn::text(
        "A fairly long answer line that certainly needs wrapping once the terminal is only forty columns wide.",
    )])
    .await;
    let pane = Pane::start(&h, "");
    pane.ready().await;
    pane.enter("hi", "wide.").await;
    pane.tmux(&["resize-window", "-x", "40", "-y", "30"]);
    let screen = pane
        .wait_screen("the input box redrawn at 40 columns", |s| {
            s.lines().filter(|l| *l == "─".repeat(40)).count() == 2
        })
        .await;
    // Exactly one input box: two rules of the new width, the prompt between them, the status
    // line under it; no pieces of the old 100-column frame are left.
    let lines: Vec<&str> = screen.lines().collect();
    let first_rule = lines.iter().position(|l| *l == "─".repeat(40)).unwrap();
    assert!(lines[first_rule + 1].starts_with('>'), "{screen}");
    assert_eq!(lines[first_rule + 2], "─".repeat(40), "{screen}");
    assert!(lines[first_rule + 3].contains("claude-sonnet"), "{screen}");
    let rule_bits = lines.iter().filter(|l| l.contains('─')).count();
    assert_eq!(rule_bits, 2, "stray pieces of the old frame:\n{screen}");
    // Still usable: typing shows up in the box.
    pane.type_text("still works");
    pane.wait_text("> still works").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn after_exit_the_conversation_is_in_the_scrollback() {
    let h = Harness::new(vec![
        ScriptedTurn::text("First answer."),
        ScriptedTurn::text("Second answer."),
    ])
    .await;
    let pane = Pane::start(&h, "");
    pane.ready().await;
    pane.enter("first question", "First answer.").await;
    pane.enter("second question", "Second answer.").await;
    pane.press(&["C-c"]);
    pane.wait_text("Press Ctrl-C again to exit").await;
    pane.press(&["C-c"]);
    pane.wait_text("KEEL-EXITED 0").await;
    let all = pane.scrollback();
    for text in [
        "> first question",
        "First answer.",
        "> second question",
        "Second answer.",
    ] {
        assert!(
            all.contains(text),
            "`{text}` is not in the scrollback:\n{all}"
        );
    }
    // The input box and status line are cleared away; the shell continues below the answer.
    assert!(!all.contains("claude-sonnet-4-5 · default"), "{all}");
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_terminal_keel_runs_in_print_mode_and_says_so() {
    let h = Harness::new(vec![ScriptedTurn::text("Printed answer.")]).await;
    let out = h.run(&["what is this?"]).await;
    assert!(out.status.success(), "{}", common::stderr(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "Printed answer."
    );
    assert!(
        common::stderr(&out).contains("running in print mode"),
        "{}",
        common::stderr(&out)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_model_asks_a_question_and_a_number_key_answers_it() {
    let h = Harness::new(vec![
        ScriptedTurn::tool_use(
            "AskUserQuestion",
            json!({"questions": [{
                "question": "Which database should the service use?",
                "header": "Database",
                "options": [
                    {"label": "Postgres", "description": "relational, already deployed"},
                    {"label": "SQLite", "description": "a file, no server"}
                ],
                "multiSelect": false
            }]}),
        ),
        ScriptedTurn::text("Going with SQLite."),
    ])
    .await;
    let pane = Pane::start(&h, "");
    pane.ready().await;
    pane.type_text("set up storage");
    pane.press(&["Enter"]);
    let screen = pane
        .wait_text("Which database should the service use?")
        .await;
    assert!(
        screen.contains("1. Postgres") && screen.contains("2. SQLite"),
        "{screen}"
    );
    assert!(screen.contains("3. Other"), "{screen}");
    pane.press(&["2"]);
    let screen = pane.wait_text("Going with SQLite.").await;
    assert!(
        screen.contains("Which database should the service use? → SQLite"),
        "{screen}"
    );
    // The model was sent the answer.
    let results = h.tool_results_sent(1);
    let text = results[0]["content"].to_string();
    assert!(text.contains("SQLite"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_model_picker_switches_the_model_for_the_next_request() {
    let h = Harness::new(vec![ScriptedTurn::text("Answered by opus.")]).await;
    let pane = Pane::start(&h, "");
    pane.ready().await;
    pane.type_text("/model");
    pane.wait_text("Pick the model from a list").await;
    pane.press(&["Enter"]);
    let screen = pane.wait_text("Switch the model").await;
    assert!(screen.contains("1. claude-sonnet-4-5"), "{screen}");
    assert!(screen.contains("opus (claude-opus-4-1)"), "{screen}");
    assert!(screen.contains("haiku (claude-haiku-4-5)"), "{screen}");
    pane.press(&["Down"]);
    pane.press(&["Enter"]);
    pane.wait_text("claude-opus-4-1 · default").await;
    pane.enter("hello", "Answered by opus.").await;
    assert_eq!(h.requests()[0].body["model"], "claude-opus-4-1");
}

#[tokio::test(flavor = "multi_thread")]
async fn rewind_drops_an_earlier_prompt_and_brings_it_back_to_edit() {
    let h = Harness::new(vec![
        ScriptedTurn::text("First answer."),
        ScriptedTurn::text("Second answer."),
        ScriptedTurn::text("Answer to the edited prompt."),
    ])
    .await;
    let pane = Pane::start(&h, "");
    pane.ready().await;
    pane.enter("first question", "First answer.").await;
    pane.enter("second question", "Second answer.").await;
    pane.wait_screen("the spinner to stop", |s| !s.contains("esc to interrupt)"))
        .await;
    // `/rewind` (like Esc Esc, whose timing a loaded machine makes unreliable to drive
    // through tmux; the widget tests press it) lists this conversation's prompts, newest first.
    let screen = pane
        .enter("/rewind", "Rewind to before which prompt?")
        .await;
    assert!(screen.contains("1. second question"), "{screen}");
    assert!(screen.contains("2. first question"), "{screen}");
    pane.press(&["1"]);
    pane.wait_text("> second question").await;
    pane.wait_text("rewound the conversation").await;
    pane.press(&["C-u"]);
    pane.enter("edited question", "Answer to the edited prompt.")
        .await;
    // The model saw the first exchange and the edited prompt, not the dropped one.
    let sent = &h.requests()[2].body["messages"];
    let texts: Vec<String> = sent
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            m["content"][0]["text"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    assert_eq!(
        texts,
        ["first question", "First answer.", "edited question"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_running_bash_command_shows_its_latest_output() {
    let h = Harness::new(vec![
        ScriptedTurn::tool_use(
            "Bash",
            json!({"command": "echo step-one; echo step-two; while [ ! -e go ]; do sleep 0.05; done; echo step-three"}),
        ),
        ScriptedTurn::text("The command finished."),
    ])
    .await;
    let pane = Pane::start(&h, "--allowedTools Bash");
    pane.ready().await;
    pane.type_text("run the steps");
    pane.press(&["Enter"]);
    // While the command waits, its output so far is under its entry.
    let screen = pane
        .wait_screen("the running command's output", |s| {
            s.contains("step-two") && s.contains("esc to interrupt)")
        })
        .await;
    assert!(screen.contains("⎿  step-one"), "{screen}");
    assert!(!screen.contains("step-three"), "{screen}");
    std::fs::write(h.path("go"), "").unwrap();
    pane.wait_text("The command finished.").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_resume_picker_continues_an_earlier_session() {
    let h = Harness::new(vec![
        ScriptedTurn::text("Earlier answer."),
        ScriptedTurn::text("Continued answer."),
    ])
    .await;
    let out = h.run(&["-p", "earlier question"]).await;
    assert!(out.status.success(), "{}", common::stderr(&out));
    let pane = Pane::start(&h, "");
    pane.ready().await;
    let screen = pane.enter("/resume", "Resume a session").await;
    assert!(screen.contains("earlier question"), "{screen}");
    pane.press(&["Enter"]);
    let screen = pane.wait_text("resumed the session").await;
    assert!(screen.contains("> earlier question"), "{screen}");
    assert!(screen.contains("Earlier answer."), "{screen}");
    pane.enter("and then?", "Continued answer.").await;
    let sent = &h.requests()[1].body["messages"];
    assert_eq!(sent[0]["content"][0]["text"], "earlier question");
    assert_eq!(sent[2]["content"][0]["text"], "and then?");
}

#[tokio::test(flavor = "multi_thread")]
async fn doctor_reports_provider_reachability_and_mcp_servers() {
    let h = Harness::new(vec![]).await;
    let pane = Pane::start(&h, "");
    pane.ready().await;
    let screen = pane.enter("/doctor", "is reachable (HTTP").await;
    assert!(
        screen.contains(&format!("provider: anthropic at {}", h.server.url())),
        "{screen}"
    );
    assert!(screen.contains("MCP servers: none configured"), "{screen}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pasted_image_path_is_sent_as_an_image_block() {
    let h = Harness::new(vec![ScriptedTurn::text("It is a tiny picture.")]).await;
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend_from_slice(b"not really pixels");
    std::fs::write(h.path("shot.png"), &png).unwrap();
    let pane = Pane::start(&h, "");
    pane.ready().await;
    // Ctrl+V reads the clipboard; this machine has no clipboard, and keel says what to do.
    pane.press(&["C-v"]);
    pane.wait_text("file's path instead").await;
    // A dragged file arrives as a bracketed paste of its path.
    pane.tmux(&[
        "set-buffer",
        "-b",
        "img",
        "--",
        &h.path("shot.png").display().to_string(),
    ]);
    pane.tmux(&["paste-buffer", "-p", "-b", "img"]);
    pane.wait_text("> [Image #1]").await;
    pane.enter(" what is this?", "It is a tiny picture.").await;
    let content = &h.requests()[0].body["messages"][0]["content"];
    assert_eq!(content[0]["text"], "[Image #1] what is this?");
    assert_eq!(content[1]["type"], "image");
    assert_eq!(content[1]["source"]["media_type"], "image/png");
    assert_eq!(
        content[1]["source"]["data"],
        "iVBORw0KGgpub3QgcmVhbGx5IHBpeGVscw=="
    );
}

/// Files under `dir` whose name ends with `suffix`, at any depth.
/// Waits until a file under the harness's HOME whose name ends in `suffix` contains `text`.
async fn wait_for_home_file(h: &Harness, suffix: &str, text: &str, limit: Duration) {
    wait_for(
        &format!("{text:?} in a file ending {suffix:?}"),
        limit,
        || {
            files_ending(&h.ws.home, suffix)
                .iter()
                .any(|file| std::fs::read_to_string(file).is_ok_and(|t| t.contains(text)))
        },
    )
    .await;
}

fn files_ending(dir: &std::path::Path, suffix: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(files_ending(&path, suffix));
        } else if path.to_string_lossy().ends_with(suffix) {
            found.push(path);
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread")]
async fn ctrl_b_runs_the_prompt_as_a_background_task() {
    let h = Harness::new(vec![ScriptedTurn::text("Background answer.")]).await;
    let pane = Pane::start(&h, "");
    pane.ready().await;
    pane.type_text("summarise the repository");
    pane.press(&["C-b"]);
    let screen = pane.wait_text("running in the background as task").await;
    assert!(
        screen.contains("> summarise the repository  (background)"),
        "{screen}"
    );
    // The prompt left the editor and the UI is free: no turn runs in this conversation.
    assert!(!screen.contains("esc to interrupt)"), "{screen}");
    // The background keel finishes its answer.
    wait_for_home_file(&h, ".output", "Background answer.", Duration::from_secs(30)).await;
    assert_eq!(
        h.requests()[0].body["messages"][0]["content"][0]["text"],
        "summarise the repository"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn vim_mode_edits_the_prompt_with_normal_mode_keys() {
    let h = Harness::new(vec![ScriptedTurn::text("Edited by vi.")]).await;
    let pane = Pane::start(&h, "");
    pane.ready().await;
    pane.enter("/vim", "-- INSERT --").await;
    pane.type_text("fix the bug now");
    pane.wait_text("> fix the bug now").await;
    pane.press(&["Escape"]);
    pane.wait_text("-- NORMAL --").await;
    // 0 to the start, w to "the", x deletes its "t"; A appends at the end.
    pane.type_text("0wx");
    pane.wait_text("> fix he bug now").await;
    pane.type_text("A");
    pane.wait_text("-- INSERT --").await;
    pane.type_text(" please");
    pane.wait_text("> fix he bug now please").await;
    // dd empties the line; i types again.
    pane.press(&["Escape"]);
    pane.wait_text("-- NORMAL --").await;
    pane.type_text("dd");
    pane.wait_screen("the line deleted", |s| {
        s.lines().any(|l| l.trim_end() == ">")
    })
    .await;
    pane.enter("ihello vi", "Edited by vi.").await;
    assert_eq!(
        h.requests()[0].body["messages"][0]["content"][0]["text"],
        "hello vi"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn notes_history_export_and_diff_reach_their_files() {
    let h = Harness::new(vec![ScriptedTurn::text("Hi there.")]).await;
    let project = h.project();
    let git = |args: &[&str]| {
        let status = Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@localhost"])
            .args(args)
            .current_dir(project)
            .status()
            .unwrap();
        assert!(status.success(), "git {args:?}");
    };
    std::fs::write(project.join("notes.txt"), "first line\n").unwrap();
    git(&["init", "-q"]);
    git(&["add", "notes.txt"]);
    git(&["commit", "-q", "-m", "start"]);
    std::fs::write(
        project.join("notes.txt"),
        "first line\nan uncommitted line\n",
    )
    .unwrap();

    let pane = Pane::start(&h, "");
    pane.ready().await;
    pane.enter("# always run the tests", "noted in").await;
    let memory = std::fs::read_to_string(project.join("AGENTS.md")).unwrap();
    assert_eq!(memory, "- always run the tests\n");

    pane.enter("hello", "Hi there.").await;
    wait_for_home_file(
        &h,
        "prompt-history.jsonl",
        "\"hello\"",
        Duration::from_secs(10),
    )
    .await;

    pane.enter("/export talk.md ", "wrote").await;
    let exported = std::fs::read_to_string(project.join("talk.md")).unwrap();
    assert!(
        exported.contains("hello") && exported.contains("Hi there."),
        "{exported}"
    );

    pane.enter("/diff ", "+an uncommitted line").await;
}
