//! Property tests: allowed prefixes cannot smuggle anything in, rules print and parse back
//! to themselves, and deny rules win whatever else is allowed.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::path::Path;
use std::sync::OnceLock;

use keel_policy::{Decision, PermissionMode, Policy, Rule, RuleList, RuleSource, ToolCall};
use proptest::prelude::*;
use serde_json::json;

const PROJECT: &str = "/nonexistent-keel-project";
const HOME: &str = "/nonexistent-keel-home";

fn policy_with(mode: PermissionMode, rules: &[(RuleList, &str)]) -> Policy {
    let mut policy = Policy::new(mode, Path::new(PROJECT), Path::new(HOME));
    let source = RuleSource::new("prop", PROJECT);
    for (list, rule) in rules {
        assert!(
            policy.add_rules(*list, [*rule], &source).is_empty(),
            "{rule}"
        );
    }
    policy
}

fn base_policy() -> &'static Policy {
    static POLICY: OnceLock<Policy> = OnceLock::new();
    POLICY.get_or_init(|| {
        policy_with(
            PermissionMode::Default,
            &[
                (RuleList::Allow, "Bash(git diff:*)"),
                (RuleList::Allow, "Bash(npm run test:*)"),
                (RuleList::Allow, "Bash(echo *)"),
                (RuleList::Allow, "Bash(cargo build:*)"),
                (RuleList::Deny, "Bash(curl:*)"),
            ],
        )
    })
}

fn decide(policy: &Policy, command: &str) -> Decision {
    let input = json!({ "command": command });
    policy
        .decide(&ToolCall::new("Bash", &input, Path::new(PROJECT)))
        .decision
}

/// Shell-ish fragments, so random commands hit operators, quotes and substitutions often.
fn fragment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("rm -rf x".to_string()),
        Just("curl evil.sh".to_string()),
        Just("git status".to_string()),
        Just("git diff".to_string()),
        Just("echo hi".to_string()),
        Just("ls".to_string()),
        Just("sh".to_string()),
        Just("xargs rm".to_string()),
        Just("$X".to_string()),
        Just("$(rm x)".to_string()),
        Just("`rm x`".to_string()),
        Just("'".to_string()),
        Just("\"".to_string()),
        Just(";".to_string()),
        Just("&&".to_string()),
        Just("||".to_string()),
        Just("|".to_string()),
        Just("&".to_string()),
        Just("\n".to_string()),
        Just("(".to_string()),
        Just(")".to_string()),
        Just("{".to_string()),
        Just("}".to_string()),
        Just("> out".to_string()),
        Just("<<EOF\n$(rm x)\nEOF".to_string()),
        Just("#".to_string()),
        Just("\\".to_string()),
        Just("PATH=/tmp".to_string()),
        "[a-z]{1,6}",
        "[ -~]{0,12}",
    ]
}

fn script() -> impl Strategy<Value = String> {
    prop::collection::vec(fragment(), 0..6).prop_map(|parts| parts.join(" "))
}

fn prefix_command() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("git diff".to_string()),
        Just("git diff HEAD~1".to_string()),
        Just("npm run test -- --ci".to_string()),
        Just("cargo build --release".to_string()),
        Just("echo hi".to_string()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    /// `P; S`, `P && S`, `P | S`, `P\nS` and `echo $(S)` are allowed only if `S` alone is.
    #[test]
    fn allowed_prefixes_smuggle_nothing(p in prefix_command(), s in script()) {
        let policy = base_policy();
        prop_assume!(decide(policy, &p) == Decision::Allow);
        let alone = decide(policy, &s);
        let mut combined = vec![
            format!("{p}; {s}"),
            format!("{p} && {s}"),
            format!("{p} | {s}"),
            format!("{p}\n{s}"),
        ];
        // A `)` in S would close the substitution early and run something other than S.
        if !s.contains(')') {
            combined.push(format!("echo {p} $({s})"));
        }
        for combined in combined {
            let verdict = decide(policy, &combined);
            if verdict == Decision::Allow {
                prop_assert_eq!(alone, Decision::Allow, "{:?} allowed but {:?} alone is {}", combined, s, alone);
            }
        }
    }

    /// A deny rule that matches a command denies it whatever allow rules are added, in every
    /// mode.
    #[test]
    fn deny_always_wins(
        before in script(),
        wrapper in prop_oneof![
            Just(""), Just("env "), Just("timeout 5 "), Just("nice -n 1 "), Just("sudo "),
            Just("nohup "), Just("command "), Just("xargs "), Just("bash -c 'x; "), Just("$("),
        ],
        args in "[a-z ./-]{0,10}",
        allows in prop::collection::vec(prop_oneof![
            Just("Bash"), Just("Bash(*)"), Just("Bash(curl:*)"), Just("Bash(curl *)"),
            Just("Bash(* *)"), Just("Bash(env:*)"), Just("Bash(sudo:*)"), Just("Bash(xargs:*)"),
            Just("Bash(bash:*)"), Just("Bash(timeout 5 curl:*)"), Just("Edit"),
        ], 0..4),
        mode_index in 0usize..5,
    ) {
        let close = match wrapper {
            "bash -c 'x; " => "'",
            "$(" => ")",
            _ => "",
        };
        let command = format!("{before}\n{wrapper}curl {args}{close}");
        let deny_only = policy_with(PermissionMode::Default, &[(RuleList::Deny, "Bash(curl:*)")]);
        if decide(&deny_only, &command) != Decision::Deny {
            // Random text before it made the command unreadable: then it is never allowed
            // by anything but `Bash`/`Bash(*)` without deny rules, checked elsewhere.
            return Ok(());
        }
        let mut rules: Vec<(RuleList, &str)> = vec![(RuleList::Deny, "Bash(curl:*)")];
        rules.extend(allows.iter().map(|a| (RuleList::Allow, *a)));
        let mode = PermissionMode::ALL[mode_index];
        let policy = policy_with(mode, &rules);
        prop_assert_eq!(decide(&policy, &command), Decision::Deny, "{:?} in {}", command, mode);
    }

    /// Every rule that parses prints canonically and parses back to itself.
    #[test]
    fn rules_round_trip(
        tool in prop_oneof![
            Just("Bash"), Just("Read"), Just("Edit"), Just("Write"), Just("WebFetch"),
            Just("Agent"), Just("Task"), Just("Skill"), Just("Glob"), Just("mcp__srv"),
            Just("mcp__srv__*"), Just("mcp__srv__tool"), Just("TodoWrite"),
        ],
        spec in prop::option::of(prop_oneof![
            "[a-z *:./~-]{1,20}",
            "domain:[a-z]{1,8}\\.(com|rs)",
            "domain:\\*\\.[a-z]{1,8}\\.com",
            "//[a-z/]{1,10}\\*\\*",
            "[ -~]{1,16}",
        ]),
    ) {
        let text = match &spec {
            Some(spec) => format!("{tool}({spec})"),
            None => tool.to_string(),
        };
        if let Ok(rule) = Rule::parse(&text) {
            let printed = rule.to_string();
            let reparsed = Rule::parse(&printed);
            prop_assert!(reparsed.is_ok(), "{} printed as {} which fails: {:?}", text, printed, reparsed);
            let reparsed = reparsed.unwrap();
            prop_assert_eq!(&reparsed, &rule);
            prop_assert_eq!(reparsed.to_string(), printed);
        }
    }

    /// Analysis never panics and never allows what it could not parse, whatever the input.
    #[test]
    fn arbitrary_input_never_panics(command in "\\PC{0,80}") {
        let analysis = keel_policy::analyze(&command);
        if analysis.uncertainty().is_some() {
            prop_assert_ne!(decide(base_policy(), &command), Decision::Allow);
        }
    }
}
