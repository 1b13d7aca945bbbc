//! keel-policy: whether something may happen.
//!
//! Claude Code's permission rules (`Bash(git diff:*)`, `Read(./secrets/**)`,
//! `WebFetch(domain:docs.rs)`, `mcp__github`), its five permission modes, a real shell parser
//! that finds every command a Bash call would run, path resolution that follows symlinks, and
//! [`Policy::decide`], which answers Allow, Ask or Deny with a [`Reason`] a user can act on.
//!
//! ```
//! use std::path::Path;
//! use keel_policy::{Decision, PermissionMode, Policy, RuleList, RuleSource, ToolCall};
//!
//! let mut policy = Policy::new(PermissionMode::Default, Path::new("/work"), Path::new("/home/me"));
//! let source = RuleSource::new("--allowedTools", "/work");
//! assert!(policy.add_rules(RuleList::Allow, ["Bash(git diff:*)"], &source).is_empty());
//!
//! let input = serde_json::json!({ "command": "git diff; rm -rf ~" });
//! let verdict = policy.decide(&ToolCall::new("Bash", &input, Path::new("/work")));
//! assert_eq!(verdict.decision, Decision::Ask);
//! // What `keel permissions check` prints and the model sees:
//! assert!(verdict.reason.to_string().starts_with("No allow rule matches `rm -rf ~`"));
//! ```
//!
//! [`hooks`] runs the user's Claude Code-compatible hook commands and merges their answers;
//! [`sandbox`] confines shell commands with the kernel's Landlock and seccomp.

mod decide;
pub mod hooks;
mod mode;
pub mod paths;
pub mod process_group;
pub mod rules;
pub mod safe_commands;
pub mod sandbox;
pub mod shell;
mod tool;
mod verdict;
mod wildcard;

pub use decide::Policy;
pub use mode::{ModeParseError, PermissionMode};
pub use rules::{Rule, RuleList, RuleParseError, RuleProblem, RuleSource};
pub use shell::{Analysis, analyze};
pub use tool::{ToolCall, ToolKind};
pub use verdict::{AllowedBy, AllowedPart, Decision, NotAllowed, Reason, RuleRef, Verdict};
