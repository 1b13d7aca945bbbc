//! Claude Code's rule syntax: every form parses to what it means, prints back canonically,
//! and malformed rules say what is wrong.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::path::Path;

use keel_policy::rules::{CommandPatternKind, PathRoot, Specifier};
use keel_policy::{
    Decision, PermissionMode, Policy, Rule, RuleList, RuleProblem, RuleSource, ToolCall,
};
use serde_json::json;

fn parse(text: &str) -> Rule {
    Rule::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn problem(text: &str) -> RuleProblem {
    let err = Rule::parse(text).expect_err(text);
    assert!(
        err.to_string().contains(text.trim()),
        "error names the rule: {err}"
    );
    err.problem
}

fn command_kind(text: &str) -> CommandPatternKind {
    match parse(text).specifier() {
        Some(Specifier::Command(p)) => p.kind(),
        other => panic!("{text}: {other:?}"),
    }
}

#[test]
fn bash_forms() {
    assert!(parse("Bash").is_whole_tool());
    assert!(parse("Bash(*)").is_whole_tool());
    assert_eq!(
        command_kind("Bash(npm run build)"),
        CommandPatternKind::Exact
    );
    assert_eq!(
        command_kind("Bash(npm run test:*)"),
        CommandPatternKind::Prefix
    );
    assert_eq!(
        command_kind("Bash(git log *)"),
        CommandPatternKind::Wildcard
    );
    assert_eq!(
        command_kind("Bash(* --version)"),
        CommandPatternKind::Wildcard
    );
    assert_eq!(
        command_kind("Bash(git * main)"),
        CommandPatternKind::Wildcard
    );
    assert_eq!(command_kind("Bash(ls*)"), CommandPatternKind::Wildcard);
    // Quotes and escapes are the shell's: `*` inside them is literal.
    assert_eq!(command_kind("Bash(echo '*')"), CommandPatternKind::Exact);
    assert_eq!(command_kind("Bash(echo \\*)"), CommandPatternKind::Exact);
}

#[test]
fn file_forms_and_roots() {
    let root = |text: &str| match parse(text).specifier() {
        Some(Specifier::Path(p)) => p.root(),
        other => panic!("{text}: {other:?}"),
    };
    assert_eq!(root("Read(//etc/**)"), PathRoot::Absolute);
    assert_eq!(root("Read(~/.ssh/**)"), PathRoot::Home);
    assert_eq!(root("Edit(/docs/**)"), PathRoot::Project);
    assert_eq!(root("Edit(./src/**)"), PathRoot::Cwd);
    assert_eq!(root("Read(.env)"), PathRoot::Cwd);
    assert_eq!(root("Edit(src/)"), PathRoot::Cwd);
    for tool in [
        "Write",
        "MultiEdit",
        "NotebookEdit",
        "Glob",
        "Grep",
        "LS",
        "NotebookRead",
    ] {
        parse(&format!("{tool}(src/**)"));
    }
}

#[test]
fn other_tools() {
    assert!(matches!(
        parse("WebFetch(domain:example.com)").specifier(),
        Some(Specifier::Domain(_))
    ));
    assert!(matches!(
        parse("WebFetch(domain:*.example.com)").specifier(),
        Some(Specifier::Domain(_))
    ));
    assert!(parse("WebFetch").is_whole_tool());
    assert!(parse("WebSearch").is_whole_tool());
    assert!(parse("mcp__github").is_whole_tool());
    assert!(parse("mcp__github__*").is_whole_tool());
    assert!(parse("mcp__github__create_issue").is_whole_tool());
    assert!(
        matches!(parse("Agent(Explore)").specifier(), Some(Specifier::Agent(t)) if t == "Explore")
    );
    assert!(matches!(
        parse("Skill(review *)").specifier(),
        Some(Specifier::Skill(_))
    ));
    assert!(parse("TodoWrite").is_whole_tool());
}

#[test]
fn display_is_canonical_and_keeps_the_original() {
    let rule = parse("  Task( Explore )  ");
    assert_eq!(rule.to_string(), "Agent(Explore)");
    assert_eq!(rule.original(), "Task( Explore )");
    assert_eq!(rule, parse("Agent(Explore)"));
    assert_eq!(
        parse("Bash(npm run test:*)").to_string(),
        "Bash(npm run test:*)"
    );
    assert_eq!(parse("Bash").to_string(), "Bash");
    assert_eq!(
        parse("WebFetch(domain:Example.COM)").to_string(),
        "WebFetch(domain:example.com)"
    );
}

#[test]
fn tool_families() {
    let read = parse("Read(src/**)");
    for tool in ["Read", "Glob", "Grep", "LS", "NotebookRead"] {
        assert!(read.applies_to_tool(tool), "{tool}");
    }
    assert!(!read.applies_to_tool("Edit"));
    let edit = parse("Edit(src/**)");
    for tool in ["Edit", "Write", "MultiEdit", "NotebookEdit"] {
        assert!(edit.applies_to_tool(tool), "{tool}");
    }
    // keel honours tool-specific file rules (Claude Code ignores them).
    let write = parse("Write(src/**)");
    assert!(write.applies_to_tool("Write"));
    assert!(!write.applies_to_tool("Edit"));
    assert!(parse("Task").applies_to_tool("Agent"));
    assert!(parse("Agent").applies_to_tool("Task"));
    let server = parse("mcp__github");
    assert!(server.applies_to_tool("mcp__github__create_issue"));
    assert!(!server.applies_to_tool("mcp__githubx__create_issue"));
    assert!(!server.applies_to_tool("mcp__git__x"));
    assert!(parse("mcp__github__*").applies_to_tool("mcp__github__list"));
    let tool = parse("mcp__github__create_issue");
    assert!(tool.applies_to_tool("mcp__github__create_issue"));
    assert!(!tool.applies_to_tool("mcp__github__create_issues"));
}

#[test]
fn malformed_rules_say_what_is_wrong() {
    assert_eq!(problem("Bash("), RuleProblem::Unbalanced);
    assert_eq!(problem("Bash(ls))"), RuleProblem::Unbalanced);
    assert_eq!(problem("Bash)"), RuleProblem::Unbalanced);
    assert_eq!(problem("Bash(echo (x)"), RuleProblem::Unbalanced);
    assert!(matches!(problem("(ls)"), RuleProblem::BadToolName(_)));
    assert!(matches!(problem("Ba sh"), RuleProblem::BadToolName(_)));
    assert!(matches!(problem("mcp__*"), RuleProblem::BadToolName(_)));
    assert!(matches!(problem("Bash*"), RuleProblem::BadToolName(_)));
    assert_eq!(problem("   "), RuleProblem::Empty);
    assert!(matches!(problem("Bash()"), RuleProblem::EmptySpecifier(t) if t == "Bash"));
    assert_eq!(problem("WebFetch(example.com)"), RuleProblem::BadDomain);
    assert_eq!(problem("WebFetch(domain:)"), RuleProblem::BadDomain);
    assert_eq!(
        problem("WebFetch(domain:exa mple.com)"),
        RuleProblem::BadDomain
    );
    assert!(
        matches!(problem("Bash(make && make test)"), RuleProblem::ShellOperator(op) if op == "&&")
    );
    assert!(matches!(problem("Bash(git diff; rm x)"), RuleProblem::ShellOperator(op) if op == ";"));
    assert!(matches!(
        problem("Bash(cargo test 2>&1)"),
        RuleProblem::ShellOperator(_)
    ));
    assert_eq!(problem("Bash(echo 'oops)"), RuleProblem::UnterminatedQuote);
    assert_eq!(problem("Bash(:*)"), RuleProblem::EmptyPrefix);
    assert!(matches!(problem("Read([abc)"), RuleProblem::BadPath(_)));
    assert!(
        matches!(problem("TodoWrite(x)"), RuleProblem::SpecifierNotSupported(t) if t == "TodoWrite")
    );
    assert!(matches!(
        problem("mcp__github(x)"),
        RuleProblem::SpecifierNotSupported(_)
    ));
    // Quoted operators are just text.
    parse("Bash(grep 'a|b' file)");
}

#[test]
fn bad_rules_are_skipped_with_errors_and_good_ones_kept() {
    let mut policy = Policy::new(PermissionMode::Default, Path::new("/p"), Path::new("/h"));
    let errors = policy.add_rules(
        RuleList::Allow,
        ["Bash(make)", "Bash(", "Bash(make && make test)"],
        &RuleSource::new("settings.json", "/p"),
    );
    assert_eq!(errors.len(), 2);
    assert_eq!(policy.rules().count(), 1);
    assert!(
        errors[1].to_string().contains("one rule per command"),
        "{}",
        errors[1]
    );
}

/// Decides `command` under a single allow rule.
fn allowed(rule: &str, command: &str) -> bool {
    let mut policy = Policy::new(PermissionMode::Default, Path::new("/p"), Path::new("/h"));
    let errors = policy.add_rules(RuleList::Allow, [rule], &RuleSource::new("t", "/p"));
    assert!(errors.is_empty(), "{errors:?}");
    let input = json!({ "command": command });
    policy
        .decide(&ToolCall::new("Bash", &input, Path::new("/p")))
        .decision
        == Decision::Allow
}

#[test]
fn command_pattern_matching() {
    assert!(allowed("Bash(npm run build)", "npm run build"));
    assert!(allowed("Bash(npm run build)", "npm  run   'build'"));
    assert!(!allowed("Bash(npm run build)", "npm run build --prod"));
    assert!(allowed("Bash(npm run test:*)", "npm run test"));
    assert!(allowed("Bash(npm run test:*)", "npm run test -- --watch"));
    assert!(!allowed("Bash(npm run test:*)", "npm run testing"));
    assert!(allowed("Bash(ls *)", "ls -la"));
    assert!(allowed("Bash(ls *)", "ls /tmp"));
    assert!(allowed("Bash(ls *)", "ls"));
    assert!(!allowed("Bash(ls *)", "lsof"));
    assert!(allowed("Bash(ls*)", "lsof"));
    assert!(allowed("Bash(* --version)", "node --version"));
    assert!(!allowed("Bash(* --version)", "node --version --force"));
    assert!(allowed("Bash(git * main)", "git push origin main"));
    assert!(allowed("Bash(git * main)", "git checkout main"));
    assert!(!allowed("Bash(git * main)", "git checkout main2"));
    assert!(allowed("Bash(git commit -m \"wip\")", "git commit -m wip"));
    // A run-time part matches only a `*` or its own spelling.
    assert!(allowed("Bash(npm run $TARGET)", "npm run $TARGET"));
    assert!(!allowed("Bash(npm run build)", "npm run $TARGET"));
    assert!(allowed("Bash(npm run *)", "npm run $TARGET"));
    // A wildcard does not stretch to options that make a reader write, unless named.
    assert!(!allowed("Bash(git diff:*)", "git diff --output=/tmp/x"));
    assert!(allowed(
        "Bash(git diff --output=*)",
        "git diff --output=/tmp/x"
    ));
    assert!(!allowed("Bash(find *)", "find . -delete"));
    assert!(allowed(
        "Bash(find * -delete)",
        "find . -name '*.o' -delete"
    ));
    assert!(allowed(
        "Bash(git diff --output=/tmp/x)",
        "git diff --output=/tmp/x"
    ));
    assert!(allowed("Bash", "anything --at all"));
    assert!(allowed("Bash(*)", "anything --at all"));
}
