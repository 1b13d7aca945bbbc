//! Modes, non-Bash tools, protected paths, explanations, suggestions and the
//! `keel permissions check` helper.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::path::PathBuf;

use keel_policy::{
    Decision, PermissionMode, Policy, Reason, RuleList, RuleSource, ToolCall, ToolKind,
};
use serde_json::{Value, json};

struct Env {
    _tmp: tempfile::TempDir,
    project: PathBuf,
    home: PathBuf,
}

fn env() -> Env {
    let tmp = tempfile::tempdir().unwrap();
    let root = std::fs::canonicalize(tmp.path()).unwrap();
    let project = root.join("project");
    let home = root.join("home");
    std::fs::create_dir_all(&project).unwrap();
    std::fs::create_dir_all(&home).unwrap();
    Env {
        _tmp: tmp,
        project,
        home,
    }
}

impl Env {
    fn policy(&self, mode: PermissionMode, rules: &[(RuleList, &str)]) -> Policy {
        let mut policy = Policy::new(mode, &self.project, &self.home);
        let source = RuleSource::new("/etc/keel/settings.json", &self.project);
        for (list, rule) in rules {
            assert!(
                policy.add_rules(*list, [*rule], &source).is_empty(),
                "{rule}"
            );
        }
        policy
    }

    fn outside(&self) -> String {
        self.home.join("notes.txt").display().to_string()
    }
}

fn decide(policy: &Policy, env: &Env, tool: &str, input: Value) -> Decision {
    policy
        .decide(&ToolCall::new(tool, &input, &env.project))
        .decision
}

#[test]
fn tool_kinds() {
    assert_eq!(ToolKind::of("Read"), ToolKind::Read);
    assert_eq!(ToolKind::of("LS"), ToolKind::Read);
    assert_eq!(ToolKind::of("NotebookEdit"), ToolKind::Edit);
    assert_eq!(ToolKind::of("Bash"), ToolKind::Shell);
    assert_eq!(ToolKind::of("Task"), ToolKind::Agent);
    assert_eq!(ToolKind::of("mcp__gh__issue"), ToolKind::Mcp);
    assert_eq!(ToolKind::of("TodoWrite"), ToolKind::Internal);
    assert_eq!(ToolKind::of("ExitPlanMode"), ToolKind::Internal);
    assert_eq!(ToolKind::of("Frobnicate"), ToolKind::Other);
}

/// One row of the mode table: a call and its decision in default, acceptEdits, plan,
/// bypassPermissions and dontAsk.
struct Row {
    name: &'static str,
    tool: &'static str,
    input: Value,
    read_only: bool,
    expect: [Decision; 5],
}

#[test]
fn mode_table() {
    use Decision::{Allow as A, Ask as Q, Deny as D};
    let e = env();
    let rows = [
        Row {
            name: "read inside",
            tool: "Read",
            input: json!({"file_path": "src/lib.rs"}),
            read_only: false,
            expect: [A, A, A, A, A],
        },
        Row {
            name: "read outside",
            tool: "Read",
            input: json!({"file_path": e.outside()}),
            read_only: false,
            expect: [Q, Q, Q, A, D],
        },
        Row {
            name: "edit inside",
            tool: "Edit",
            input: json!({"file_path": "src/lib.rs"}),
            read_only: false,
            expect: [Q, A, D, A, D],
        },
        Row {
            name: "write outside",
            tool: "Write",
            input: json!({"file_path": e.outside()}),
            read_only: false,
            expect: [Q, Q, D, A, D],
        },
        Row {
            name: "edit .git",
            tool: "Edit",
            input: json!({"file_path": ".git/config"}),
            read_only: false,
            expect: [Q, Q, D, Q, D],
        },
        Row {
            name: "bash unknown",
            tool: "Bash",
            input: json!({"command": "cargo test"}),
            read_only: false,
            expect: [Q, Q, D, A, D],
        },
        Row {
            name: "bash read-only",
            tool: "Bash",
            input: json!({"command": "git status && ls"}),
            read_only: false,
            expect: [A, A, A, A, A],
        },
        Row {
            name: "bash mkdir",
            tool: "Bash",
            input: json!({"command": "mkdir -p out"}),
            read_only: false,
            expect: [Q, A, D, A, D],
        },
        Row {
            name: "fetch",
            tool: "WebFetch",
            input: json!({"url": "https://example.com/", "prompt": "x"}),
            read_only: false,
            expect: [Q, Q, Q, A, D],
        },
        Row {
            name: "search",
            tool: "WebSearch",
            input: json!({"query": "x"}),
            read_only: false,
            expect: [Q, Q, Q, A, D],
        },
        Row {
            name: "mcp",
            tool: "mcp__db__drop",
            input: json!({}),
            read_only: false,
            expect: [Q, Q, D, A, D],
        },
        Row {
            name: "mcp read-only",
            tool: "mcp__db__query",
            input: json!({}),
            read_only: true,
            expect: [A, A, A, A, A],
        },
        Row {
            name: "agent",
            tool: "Agent",
            input: json!({"subagent_type": "Explore", "prompt": "x"}),
            read_only: false,
            expect: [A, A, A, A, A],
        },
        Row {
            name: "skill that grants nothing",
            tool: "Skill",
            input: json!({"skill": "notes"}),
            read_only: true,
            expect: [A, A, A, A, A],
        },
        Row {
            name: "skill",
            tool: "Skill",
            input: json!({"skill": "commit"}),
            read_only: false,
            expect: [Q, Q, Q, A, D],
        },
        Row {
            name: "todo",
            tool: "TodoWrite",
            input: json!({"todos": []}),
            read_only: false,
            expect: [A, A, A, A, A],
        },
        Row {
            name: "exit plan",
            tool: "ExitPlanMode",
            input: json!({"plan": "x"}),
            read_only: false,
            expect: [A, A, Q, A, A],
        },
        Row {
            name: "other",
            tool: "Frobnicate",
            input: json!({}),
            read_only: false,
            expect: [Q, Q, D, A, D],
        },
        Row {
            name: "other read-only",
            tool: "Frobnicate",
            input: json!({}),
            read_only: true,
            expect: [A, A, A, A, A],
        },
    ];
    let mut failures = Vec::new();
    for row in &rows {
        for (mode, expect) in PermissionMode::ALL.into_iter().zip(row.expect) {
            let policy = e.policy(mode, &[]);
            let call =
                ToolCall::new(row.tool, &row.input, &e.project).with_read_only(row.read_only);
            let verdict = policy.decide(&call);
            if verdict.decision != expect {
                failures.push(format!(
                    "{} in {mode}: expected {expect}, got {} ({})",
                    row.name, verdict.decision, verdict.reason
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn deny_and_ask_rules_hold_in_every_mode() {
    let e = env();
    for mode in PermissionMode::ALL {
        let policy = e.policy(
            mode,
            &[
                (RuleList::Deny, "Read(secrets/**)"),
                (RuleList::Ask, "WebFetch(domain:example.com)"),
                (RuleList::Allow, "WebFetch"),
            ],
        );
        assert_eq!(
            decide(&policy, &e, "Read", json!({"file_path": "secrets/a"})),
            Decision::Deny,
            "{mode}"
        );
        let fetch = decide(
            &policy,
            &e,
            "WebFetch",
            json!({"url": "https://example.com/x"}),
        );
        let expect = if mode == PermissionMode::DontAsk {
            Decision::Deny
        } else {
            Decision::Ask
        };
        assert_eq!(fetch, expect, "{mode}");
    }
}

#[test]
fn protected_paths_under_bypass() {
    let e = env();
    let policy = e.policy(PermissionMode::BypassPermissions, &[]);
    let edit = |path: &str| {
        decide(
            &policy,
            &e,
            "Write",
            json!({"file_path": path, "content": ""}),
        )
    };
    assert_eq!(edit(".git/hooks/pre-commit"), Decision::Ask);
    assert_eq!(edit(".claude/settings.json"), Decision::Ask);
    assert_eq!(edit(".keel/settings.json"), Decision::Ask);
    assert_eq!(edit(".vscode/settings.json"), Decision::Ask);
    assert_eq!(edit(".idea/workspace.xml"), Decision::Ask);
    assert_eq!(edit("~/.bashrc"), Decision::Ask);
    assert_eq!(edit(".claude/skills/x/SKILL.md"), Decision::Allow);
    assert_eq!(edit(".claude/agents/a.md"), Decision::Allow);
    assert_eq!(edit(".keel/commands/c.md"), Decision::Allow);
    assert_eq!(edit("src/main.rs"), Decision::Allow);
    let bash = |command: &str| decide(&policy, &e, "Bash", json!({"command": command}));
    assert_eq!(bash("echo x > .git/config"), Decision::Ask);
    assert_eq!(bash("rm -rf .git"), Decision::Ask);
    assert_eq!(bash("rm -rf target"), Decision::Allow);
    // A rule naming the protected file is the targeted grant that lets it through.
    let granted = e.policy(
        PermissionMode::BypassPermissions,
        &[(RuleList::Allow, "Edit(.claude/**)")],
    );
    assert_eq!(
        decide(
            &granted,
            &e,
            "Edit",
            json!({"file_path": ".claude/settings.json"})
        ),
        Decision::Allow
    );
}

#[test]
fn plan_mode_tells_the_model_what_to_do() {
    let e = env();
    let policy = e.policy(PermissionMode::Plan, &[(RuleList::Allow, "Edit")]);
    let verdict = policy.decide(&ToolCall::new(
        "Edit",
        &json!({"file_path": "a.rs"}),
        &e.project,
    ));
    assert_eq!(verdict.decision, Decision::Deny);
    let text = verdict.reason.to_string();
    assert!(
        text.contains("Plan mode") && text.contains("ExitPlanMode"),
        "{text}"
    );
    let bash = policy.decide(&ToolCall::new(
        "Bash",
        &json!({"command": "cargo build"}),
        &e.project,
    ));
    assert!(
        bash.reason.to_string().contains("Bash(cargo build)"),
        "{}",
        bash.reason
    );
}

#[test]
fn dont_ask_explains_the_denial() {
    let e = env();
    let policy = e.policy(PermissionMode::DontAsk, &[]);
    let verdict = policy.decide(&ToolCall::new(
        "Bash",
        &json!({"command": "rm x"}),
        &e.project,
    ));
    assert_eq!(verdict.decision, Decision::Deny);
    assert!(matches!(verdict.reason, Reason::NotPreApproved(_)));
    let text = verdict.reason.to_string();
    assert!(text.contains("dontAsk") && text.contains("rm x"), "{text}");
}

#[test]
fn web_agent_skill_and_mcp_rules() {
    let e = env();
    let policy = e.policy(
        PermissionMode::Default,
        &[
            (RuleList::Allow, "WebFetch(domain:docs.rs)"),
            (RuleList::Allow, "WebFetch(domain:*.github.io)"),
            (RuleList::Allow, "Task(Explore)"),
            (RuleList::Allow, "Skill(commit)"),
            (RuleList::Allow, "Skill(review *)"),
            (RuleList::Allow, "mcp__github"),
            (RuleList::Deny, "mcp__github__delete_repo"),
        ],
    );
    let fetch = |url: &str| decide(&policy, &e, "WebFetch", json!({"url": url, "prompt": ""}));
    assert_eq!(fetch("https://docs.rs/serde"), Decision::Allow);
    assert_eq!(fetch("https://DOCS.RS:443/x"), Decision::Allow);
    assert_eq!(fetch("https://evil.docs.rs/"), Decision::Ask);
    assert_eq!(fetch("https://docs.rs.evil.com/"), Decision::Ask);
    assert_eq!(fetch("https://user.github.io/x"), Decision::Allow);
    assert_eq!(fetch("https://github.io/x"), Decision::Ask);
    assert_eq!(fetch("not a url"), Decision::Ask);
    let agent = |ty: &str| {
        decide(
            &policy,
            &e,
            "Agent",
            json!({"subagent_type": ty, "prompt": ""}),
        )
    };
    assert_eq!(agent("Explore"), Decision::Allow);
    // Starting a subagent needs no rule (its own calls are decided one by one)...
    assert_eq!(agent("general-purpose"), Decision::Allow);
    assert_eq!(
        decide(&policy, &e, "Task", json!({"subagent_type": "Explore"})),
        Decision::Allow
    );
    let skill =
        |name: &str, args: &str| decide(&policy, &e, "Skill", json!({"skill": name, "args": args}));
    assert_eq!(skill("commit", ""), Decision::Allow);
    assert_eq!(skill("commit", "--amend"), Decision::Ask);
    assert_eq!(skill("review", "pr 12"), Decision::Allow);
    assert_eq!(skill("review", ""), Decision::Allow);
    assert_eq!(skill("reviewer", ""), Decision::Ask);
    assert_eq!(
        decide(&policy, &e, "mcp__github__list_issues", json!({})),
        Decision::Allow
    );
    assert_eq!(
        decide(&policy, &e, "mcp__github__delete_repo", json!({})),
        Decision::Deny
    );
    assert_eq!(
        decide(&policy, &e, "mcp__gitlab__list", json!({})),
        Decision::Ask
    );
}

#[test]
fn hidden_tools_come_from_whole_tool_denies() {
    let e = env();
    let policy = e.policy(
        PermissionMode::Default,
        &[
            (RuleList::Deny, "Bash"),
            (RuleList::Deny, "WebFetch(domain:evil.com)"),
            (RuleList::Deny, "mcp__db"),
            (RuleList::Deny, "Edit"),
        ],
    );
    let hidden = policy.hidden_tools([
        "Bash",
        "WebFetch",
        "Read",
        "Edit",
        "Write",
        "mcp__db__query",
        "mcp__gh__x",
    ]);
    assert_eq!(hidden, ["Bash", "Edit", "Write", "mcp__db__query"]);
    assert_eq!(
        decide(&policy, &e, "Bash", json!({"command": "ls"})),
        Decision::Deny,
        "a bare Bash deny denies even read-only commands"
    );
}

#[test]
fn reasons_name_the_rule_and_its_source() {
    let e = env();
    let policy = e.policy(PermissionMode::Default, &[(RuleList::Deny, "Bash(rm:*)")]);
    let verdict = policy.decide(&ToolCall::new(
        "Bash",
        &json!({"command": "git status && rm -rf build"}),
        &e.project,
    ));
    assert_eq!(verdict.decision, Decision::Deny);
    let text = verdict.to_string();
    assert!(text.starts_with("deny: "), "{text}");
    assert!(text.contains("`Bash(rm:*)`"), "{text}");
    assert!(text.contains("/etc/keel/settings.json"), "{text}");
    assert!(text.contains("`rm -rf build`"), "{text}");
}

#[test]
fn suggestions_are_narrow() {
    let e = env();
    let policy = e.policy(PermissionMode::Default, &[]);
    let suggest = |command: &str| {
        policy
            .decide(&ToolCall::new(
                "Bash",
                &json!({"command": command}),
                &e.project,
            ))
            .suggestions
    };
    assert_eq!(suggest("npm run test -- -x"), ["Bash(npm run test:*)"]);
    assert_eq!(suggest("cargo build --release"), ["Bash(cargo build:*)"]);
    assert_eq!(suggest("make"), ["Bash(make)"]);
    assert_eq!(
        suggest("cargo fmt && cargo clippy --all"),
        ["Bash(cargo fmt)", "Bash(cargo clippy:*)"]
    );
    assert_eq!(suggest("./run.sh 'a b'"), ["Bash(./run.sh 'a b')"]);
    assert!(suggest("sudo rm -rf /").iter().all(|s| !s.contains("sudo")));
    // A suggested rule parses and allows what it was suggested for.
    for command in [
        "npm run test -- -x",
        "./run.sh 'a b'",
        "cargo build --release",
    ] {
        let s = suggest(command);
        let allowed = e.policy(PermissionMode::Default, &[(RuleList::Allow, s[0].as_str())]);
        assert_eq!(
            decide(&allowed, &e, "Bash", json!({"command": command})),
            Decision::Allow,
            "{command} with {s:?}"
        );
    }
}

#[test]
fn check_rule_text_reads_a_call() {
    let e = env();
    let policy = e.policy(
        PermissionMode::Default,
        &[
            (RuleList::Allow, "Bash(git diff:*)"),
            (RuleList::Deny, "Read(~/.ssh/**)"),
            (RuleList::Allow, "WebFetch(domain:docs.rs)"),
        ],
    );
    let check = |text: &str| policy.check_rule_text(text, &e.project).unwrap().decision;
    assert_eq!(check("Bash(git diff HEAD)"), Decision::Allow);
    assert_eq!(check("Bash(git diff; rm x)"), Decision::Ask);
    assert_eq!(
        check("Bash(echo (hi))"),
        Decision::Ask,
        "parens inside are the command's"
    );
    assert_eq!(check("Read(~/.ssh/id_rsa)"), Decision::Deny);
    assert_eq!(check("Read(src/main.rs)"), Decision::Allow);
    assert_eq!(check("WebFetch(https://docs.rs/x)"), Decision::Allow);
    assert_eq!(check("WebFetch(domain:docs.rs)"), Decision::Allow);
    assert_eq!(check("Task(Explore)"), Decision::Allow);
    assert_eq!(check("TodoWrite"), Decision::Allow);
    assert!(policy.check_rule_text("Bash(git diff", &e.project).is_err());
    assert!(policy.check_rule_text("(x)", &e.project).is_err());
    let explained = policy
        .check_rule_text("Bash(git diff && rm -rf x)", &e.project)
        .unwrap();
    assert!(explained.to_string().contains("`rm -rf x`"), "{explained}");
}

#[test]
fn missing_input_asks() {
    let e = env();
    let policy = e.policy(PermissionMode::BypassPermissions, &[]);
    assert_eq!(decide(&policy, &e, "Read", json!({})), Decision::Ask);
    assert_eq!(
        decide(&policy, &e, "Bash", json!({"cmd": "ls"})),
        Decision::Ask
    );
}

#[test]
fn allow_everything_rules() {
    let e = env();
    let open = e.policy(PermissionMode::Default, &[(RuleList::Allow, "Bash")]);
    let bash =
        |policy: &Policy, command: &str| decide(policy, &e, "Bash", json!({"command": command}));
    assert_eq!(bash(&open, "sudo make install"), Decision::Allow);
    assert_eq!(bash(&open, "echo 'unbalanced"), Decision::Allow);
    // Redirections still need Edit permission.
    assert_eq!(bash(&open, "echo x > out.txt"), Decision::Ask);
    // With any Bash deny rule, keel will not vouch for commands it cannot analyse.
    let guarded = e.policy(
        PermissionMode::Default,
        &[
            (RuleList::Allow, "Bash(*)"),
            (RuleList::Deny, "Bash(curl:*)"),
        ],
    );
    assert_eq!(bash(&guarded, "echo 'unbalanced"), Decision::Ask);
    assert_eq!(bash(&guarded, "make && curl x"), Decision::Deny);
    assert_eq!(bash(&guarded, "make"), Decision::Allow);
    // Parser/bash divergences cannot be used to slip past a deny rule under `Bash(*)`.
    let rm_denied = e.policy(
        PermissionMode::Default,
        &[(RuleList::Allow, "Bash(*)"), (RuleList::Deny, "Bash(rm:*)")],
    );
    for sneaky in [
        "'r'\\m -rf x",
        "r\\\nm -rf x",
        "$\"rm\" -rf x",
        "! ! rm -rf x",
        "git diff\n\\rm -rf x",
        "$'\\x72m' -rf x",
        "r''m -rf x",
        "\"$(echo rm)\" -rf x",
    ] {
        assert_ne!(bash(&rm_denied, sneaky), Decision::Allow, "{sneaky:?}");
    }
    for mode in [
        PermissionMode::BypassPermissions,
        PermissionMode::AcceptEdits,
    ] {
        let policy = e.policy(mode, &[(RuleList::Deny, "Bash(rm:*)")]);
        assert_ne!(bash(&policy, "'r'\\m -rf x"), Decision::Allow, "{mode}");
    }
}

#[test]
fn a_rule_allows_what_it_spells_out_of_a_wrapped_command() {
    let e = env();
    let policy = e.policy(
        PermissionMode::Default,
        &[
            (RuleList::Allow, "Bash(sudo apt update)"),
            (RuleList::Allow, "Bash(find . -name x -exec rm {} \\;)"),
            (RuleList::Allow, "Bash(timeout:*)"),
            (RuleList::Allow, "Bash(bash -c 'make test')"),
        ],
    );
    let bash = |command: &str| decide(&policy, &e, "Bash", json!({"command": command}));
    assert_eq!(bash("sudo apt update"), Decision::Allow);
    assert_eq!(bash("sudo apt upgrade"), Decision::Ask);
    assert_eq!(bash("find . -name x -exec rm {} \\;"), Decision::Allow);
    assert_eq!(bash("find . -name y -exec rm {} \\;"), Decision::Ask);
    assert_eq!(
        bash("timeout 5 rm x"),
        Decision::Ask,
        "timeout:* does not name rm"
    );
    assert_eq!(bash("bash -c 'make test'"), Decision::Allow);
    assert_eq!(bash("bash -c 'make test; rm x'"), Decision::Ask);
}

/// Rules granted for a while (a skill's `allowed-tools` during one run) are taken back by
/// their source's name, and only those.
#[test]
fn rules_granted_for_a_while_are_removed_by_source() {
    let e = env();
    let mut policy = e.policy(
        PermissionMode::Default,
        &[(RuleList::Allow, "Bash(make:*)")],
    );
    let grant = RuleSource::new("skill deploy (this run)", &e.project);
    assert!(
        policy
            .add_rules(RuleList::Allow, ["Bash(npm run deploy)"], &grant)
            .is_empty()
    );
    let deploy = |p: &Policy| decide(p, &e, "Bash", json!({"command": "npm run deploy"}));
    assert_eq!(deploy(&policy), Decision::Allow);
    assert_eq!(policy.remove_rules_from("skill deploy (this run)"), 1);
    assert_eq!(deploy(&policy), Decision::Ask);
    assert_eq!(
        decide(&policy, &e, "Bash", json!({"command": "make all"})),
        Decision::Allow
    );
    assert_eq!(policy.remove_rules_from("nothing by that name"), 0);
}

/// An ask or deny rule still stops a subagent from starting.
#[test]
fn agent_rules_still_ask_and_deny() {
    let e = env();
    let policy = e.policy(
        PermissionMode::Default,
        &[
            (RuleList::Ask, "Agent(risky)"),
            (RuleList::Deny, "Task(Explore)"),
        ],
    );
    let agent = |ty: &str| {
        decide(
            &policy,
            &e,
            "Agent",
            json!({"subagent_type": ty, "prompt": ""}),
        )
    };
    assert_eq!(agent("risky"), Decision::Ask);
    assert_eq!(agent("Explore"), Decision::Deny);
    assert_eq!(agent("general-purpose"), Decision::Allow);
}
