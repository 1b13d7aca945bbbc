//! The answer to "may this run?" and the explanation a user (or the model) can act on.

use std::fmt;
use std::path::PathBuf;

use crate::mode::PermissionMode;
use crate::rules::RuleList;
use crate::shell::Hazard;

/// Whether a tool call runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Decision {
    /// Runs without asking.
    Allow,
    /// Runs only if the user approves.
    Ask,
    /// Does not run.
    Deny,
}

impl Decision {
    /// `allow`, `ask` or `deny`, as the rule lists are named.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allow => "allow",
            Decision::Ask => "ask",
            Decision::Deny => "deny",
        }
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A decision with its reason and, for Ask, rules that would allow the call next time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// Allow, Ask or Deny.
    pub decision: Decision,
    /// Why, in terms the user can act on.
    pub reason: Reason,
    /// Narrow allow rules that would let this call run without asking ("always allow").
    pub suggestions: Vec<String>,
}

impl Verdict {
    pub(crate) fn new(decision: Decision, reason: Reason) -> Self {
        Self {
            decision,
            reason,
            suggestions: Vec::new(),
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.decision, self.reason)
    }
}

/// A rule as it appears in an explanation: its text as written, its list and its source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleRef {
    /// The rule as the user wrote it.
    pub rule: String,
    /// allow, ask or deny.
    pub list: RuleList,
    /// Where it came from (settings file, command-line flag, …).
    pub source: String,
}

impl fmt::Display for RuleRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the {} rule `{}` (from {})",
            self.list, self.rule, self.source
        )
    }
}

/// Why one part of a compound command is allowed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AllowedBy {
    /// An allow rule matches it.
    Rule(RuleRef),
    /// An allow rule matching the command that runs it spells it out.
    CoveredBy(RuleRef),
    /// It is on keel's list of read-only commands.
    ReadOnly,
    /// It only runs another command, which is allowed.
    Wrapper,
    /// acceptEdits mode: `mkdir`/`touch`/`cp`/`mv` inside the working directories.
    AcceptEdits,
}

/// One allowed part of a command, for [`Reason::ShellAllowed`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AllowedPart {
    /// The simple command.
    pub command: String,
    /// Why it is allowed.
    pub by: AllowedBy,
}

/// Why a part of a command is not allowed, beyond "no rule matches it".
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NotAllowed {
    /// No allow rule matches and it is not a known read-only command.
    NoRule,
    /// Something about the command only an explicit rule can vouch for.
    Hazard(Hazard),
    /// An allow rule matches, but an argument in the part its wildcard matched makes the
    /// program write files or run other programs.
    SideEffect {
        /// The allow rule.
        rule: RuleRef,
        /// The argument.
        option: String,
        /// `false` when the argument is only known at run time and merely could be such an
        /// option.
        known: bool,
    },
}

/// Why a decision was made. `Display` gives one or two plain sentences: what
/// `keel permissions check` prints and what the model sees on a denial.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reason {
    /// A rule decided. `matched` is the sub-command or path it matched, when that is
    /// narrower than the whole call.
    Rule {
        /// The rule.
        rule: RuleRef,
        /// What it matched.
        matched: Option<String>,
    },
    /// Part of the command is only known at run time and could match a deny or ask rule.
    MightMatchRule {
        /// The rule.
        rule: RuleRef,
        /// The simple command or path.
        command: String,
    },
    /// No rule decided; this is what the mode does with this kind of tool.
    ModeDefault {
        /// The mode.
        mode: PermissionMode,
        /// The tool.
        tool: String,
    },
    /// A read inside the working directories, or an edit there in acceptEdits mode.
    InsideWorkingDirs {
        /// The resolved path.
        path: PathBuf,
        /// `read` or `edit`.
        action: &'static str,
    },
    /// The path is outside every working directory.
    OutsideWorkingDirs {
        /// The resolved path.
        path: PathBuf,
        /// `read` or `edit`.
        action: &'static str,
    },
    /// The tool only changes keel's own state.
    Internal {
        /// The tool.
        tool: String,
    },
    /// The caller declared the tool free of side effects.
    ReadOnlyTool {
        /// The tool.
        tool: String,
    },
    /// Starting a subagent changes nothing by itself; each of its own calls is decided.
    Subagent,
    /// Every part of a shell command is allowed.
    ShellAllowed {
        /// Each part and why.
        parts: Vec<AllowedPart>,
    },
    /// A part of a shell command is not allowed.
    CommandNotAllowed {
        /// The simple command.
        command: String,
        /// Why.
        why: NotAllowed,
    },
    /// The command writes a file through a redirection that is not allowed as an edit.
    RedirectWrite {
        /// The resolved path.
        path: PathBuf,
        /// The path is outside the working directories.
        outside: bool,
    },
    /// A redirection target keel cannot resolve.
    UnknownTarget {
        /// The target as written.
        target: String,
    },
    /// keel cannot fully analyse the command.
    Uncertain {
        /// Why.
        why: String,
    },
    /// The command sets a shell variable that changes what later commands do.
    ShellVariable {
        /// The variable.
        name: String,
    },
    /// Plan mode and the call would change something.
    PlanMode {
        /// The tool.
        tool: String,
    },
    /// ExitPlanMode in plan mode: the user approves the plan.
    ExitPlanMode,
    /// A write to a protected location.
    ProtectedPath {
        /// The resolved path.
        path: PathBuf,
    },
    /// bypassPermissions mode.
    Bypass,
    /// dontAsk mode turned an Ask into a Deny.
    NotPreApproved(Box<Reason>),
    /// The input lacks the field keel checks.
    MissingInput {
        /// The tool.
        tool: String,
        /// The field.
        field: &'static str,
    },
    /// A WebFetch URL without a recognisable host.
    UnknownHost {
        /// The URL.
        url: String,
    },
}

impl fmt::Display for AllowedPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.by {
            AllowedBy::Rule(rule) => write!(f, "`{}` by {}", self.command, rule),
            AllowedBy::CoveredBy(rule) => {
                write!(f, "`{}` as part of what {} spells out", self.command, rule)
            }
            AllowedBy::ReadOnly => write!(f, "`{}` as a read-only command", self.command),
            AllowedBy::Wrapper => write!(
                f,
                "`{}` because it only runs a command that is allowed",
                self.command
            ),
            AllowedBy::AcceptEdits => write!(
                f,
                "`{}` by acceptEdits mode (its paths are inside the working directories)",
                self.command
            ),
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Rule { rule, matched } => {
                let what = match rule.list {
                    RuleList::Deny => "Denied by",
                    RuleList::Ask => "Approval required by",
                    RuleList::Allow => "Allowed by",
                };
                write!(f, "{what} {rule}")?;
                if let Some(matched) = matched {
                    write!(f, ", which matches `{matched}`")?;
                }
                f.write_str(".")
            }
            Reason::MightMatchRule { rule, command } => write!(
                f,
                "`{command}` has parts only known when it runs, so it might match {rule}; it \
                 needs approval."
            ),
            Reason::ModeDefault { mode, tool } => write!(
                f,
                "No rule allows `{tool}`, and in {mode} mode it needs approval. Approve it, or \
                 add an allow rule for it."
            ),
            Reason::InsideWorkingDirs { path, action } => write!(
                f,
                "`{}` is inside the working directories, where {action}s are allowed.",
                path.display()
            ),
            Reason::OutsideWorkingDirs { path, action } => write!(
                f,
                "`{}` is outside the working directories, so this {action} needs approval. Add \
                 its directory as a working directory or add an allow rule for it.",
                path.display()
            ),
            Reason::Internal { tool } => {
                write!(
                    f,
                    "`{tool}` only changes keel's own state, so it needs no approval."
                )
            }
            Reason::ReadOnlyTool { tool } => {
                write!(f, "`{tool}` is declared free of side effects.")
            }
            Reason::Subagent => f.write_str(
                "Starting a subagent needs no approval: each of its own tool calls is checked \
                 against the same rules.",
            ),
            Reason::ShellAllowed { parts } => {
                f.write_str("Every part of the command is allowed: ")?;
                for (i, part) in parts.iter().enumerate() {
                    if i > 0 {
                        f.write_str("; ")?;
                    }
                    write!(f, "{part}")?;
                }
                f.write_str(".")
            }
            Reason::CommandNotAllowed { command, why } => match why {
                NotAllowed::NoRule => write!(
                    f,
                    "No allow rule matches `{command}` and it is not a known read-only command, \
                     so it needs approval."
                ),
                NotAllowed::Hazard(hazard) => write!(
                    f,
                    "`{command}` needs approval: {hazard}. Only an allow rule naming the whole \
                     command allows it."
                ),
                NotAllowed::SideEffect {
                    rule,
                    option,
                    known: true,
                } => write!(
                    f,
                    "{rule} matches `{command}`, but `{option}` makes the program write files or \
                     run other programs, so it needs approval (a rule that names `{option}` \
                     allows it)."
                ),
                NotAllowed::SideEffect {
                    rule,
                    option,
                    known: false,
                } => write!(
                    f,
                    "{rule} matches `{command}`, but `{option}` is only known when it runs and \
                     could be an option that makes the program write files or run other \
                     programs, so it needs approval."
                ),
            },
            Reason::RedirectWrite { path, outside } => {
                write!(
                    f,
                    "The command writes to `{}` through a redirection, which needs Edit \
                     permission for that file",
                    path.display()
                )?;
                if *outside {
                    f.write_str(" (it is outside the working directories)")?;
                }
                f.write_str(".")
            }
            Reason::UnknownTarget { target } => write!(
                f,
                "The command reads or writes `{target}`, which keel cannot resolve before it \
                 runs (a variable, a substitution, file names from xargs or find, or a relative \
                 path after `cd`), so it cannot be checked against file rules; it needs approval."
            ),
            Reason::Uncertain { why } => {
                write!(
                    f,
                    "keel cannot fully analyse this command: {why}. It needs approval."
                )
            }
            Reason::ShellVariable { name } => write!(
                f,
                "The command sets the shell variable `{name}`, which can change what the \
                 commands after it do, so it needs approval."
            ),
            Reason::PlanMode { tool } => write!(
                f,
                "Plan mode is on, so `{tool}` is not run: it could change something. Keep \
                 exploring with read-only tools, then present your plan with ExitPlanMode."
            ),
            Reason::ExitPlanMode => {
                f.write_str("Leaving plan mode needs the user's approval of the plan.")
            }
            Reason::ProtectedPath { path } => write!(
                f,
                "`{}` is in a protected location (.git, .claude, .keel, .vscode, .idea, or a \
                 shell start-up or git config file), so writing it needs approval in every mode.",
                path.display()
            ),
            Reason::Bypass => {
                f.write_str("bypassPermissions mode allows everything no deny or ask rule stops.")
            }
            Reason::NotPreApproved(inner) => write!(
                f,
                "Not pre-approved, and dontAsk mode denies anything that would need approval. \
                 ({inner})"
            ),
            Reason::MissingInput { tool, field } => write!(
                f,
                "`{tool}` was called without `{field}`, so keel cannot check it; it needs \
                 approval."
            ),
            Reason::UnknownHost { url } => write!(
                f,
                "keel cannot find a host name in `{url}`, so it cannot check it against \
                 WebFetch rules; it needs approval."
            ),
        }
    }
}
