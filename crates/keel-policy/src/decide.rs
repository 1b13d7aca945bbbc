//! The decision: given the mode, the rules and the working directories, may this tool call
//! run (Allow), run after approval (Ask), or not at all (Deny) — and why.
//!
//! Order, for every tool: deny rules, then ask rules, then plan mode, then bypass mode, then
//! allow rules, then the mode's default. The first that decides wins; how specific a rule is
//! does not matter, so a broad deny beats a narrow allow. In `dontAsk` mode every Ask becomes
//! a Deny at the end.
//!
//! For Bash the command is analysed first ([`crate::shell::analyze`]) and rules are matched
//! against each simple command, never against the command string as a whole:
//! - a deny rule matching *any* simple command (after unwrapping `env`, `timeout`, `xargs`,
//!   `find -exec`, `sh -c`, …) denies the whole call; Edit deny rules apply to redirection
//!   targets and Read deny rules to `<` sources;
//! - the call is allowed only when *every* simple command is allowed (by an allow rule, the
//!   read-only list, or acceptEdits' `mkdir`/`touch`/`cp`/`mv` inside the working
//!   directories), every file a redirection writes is allowed as an edit, the analysis is
//!   certain, and no shell variable that changes later commands is set. A rule text
//!   containing `&&`, `;` or `|` is rejected when parsed, because it could only ever match
//!   the whole string — this is what Claude Code does too: it checks each sub-command;
//! - a rule allows the command it matches. When that command runs another one (a wrapper,
//!   `xargs`, `find -exec`, `sudo`, `sh -c`, `eval`), the inner command must be allowed too,
//!   unless the rule spells it out (`Bash(nohup npm run dev:*)` covers `npm run dev`;
//!   `Bash(find:*)` does not cover the `rm` in `find . -exec rm {} \;`);
//! - `sudo`, `eval`, `source`, a program only known at run time, or an environment variable
//!   outside a short harmless list (`RUST_LOG`, `NO_COLOR`, `LANG`, … and lower-case script
//!   variables) are allowed only by a rule matching the whole simple command, never by the
//!   read-only list; `eval 'text'` is still parsed so deny rules see what it runs;
//! - an allow rule with a wildcard does not extend to arguments in its wildcard part that
//!   make a read-only program write or run programs (`git diff --output=…` under
//!   `Bash(git diff:*)`, `find -delete` under `Bash(find:*)`, `sed -i`, `sort -o`,
//!   `rg --pre`), nor to run-time arguments of those programs that could be such options;
//! - only the rules `Bash` and `Bash(*)` allow commands keel cannot analyse, and only when no
//!   Bash deny or ask rule exists.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use globset::GlobSet;
use serde_json::json;

use crate::mode::PermissionMode;
use crate::paths::{self, is_protected, resolve, resolve_path, within};
use crate::rules::{self, Rule, RuleList, RuleParseError, RuleProblem, RuleSource, Specifier};
use crate::safe_commands::{is_read_only, side_effect_option};
use crate::shell::{self, Analysis, RedirectKind, Role, SimpleCommand, Word};
use crate::tool::{ToolCall, ToolKind};
use crate::verdict::{AllowedBy, AllowedPart, Decision, NotAllowed, Reason, RuleRef, Verdict};
use crate::wildcard::{Mode, Tok};

/// One rule with the list it is in and where it came from.
#[derive(Clone, Debug)]
struct PolicyRule {
    list: RuleList,
    rule: Rule,
    source: RuleSource,
}

/// Compiled file patterns for one working directory, indexed like `Policy::rules`.
type CompiledGlobs = Arc<Vec<Option<GlobSet>>>;

/// Everything that decides tool calls for one session: the mode, the rules from every
/// source, the working directories and the home directory `~` rules refer to.
#[derive(Debug)]
pub struct Policy {
    mode: PermissionMode,
    rules: Vec<PolicyRule>,
    working_dirs: Vec<PathBuf>,
    home: PathBuf,
    /// File patterns compiled for the last working directory seen; calls in a session
    /// nearly always share one, and compiling globs costs more than matching them.
    globs: Mutex<Option<(PathBuf, CompiledGlobs)>>,
}

impl Clone for Policy {
    fn clone(&self) -> Self {
        Self {
            mode: self.mode,
            rules: self.rules.clone(),
            working_dirs: self.working_dirs.clone(),
            home: self.home.clone(),
            globs: Mutex::new(None),
        }
    }
}

/// What a non-shell call's rules look at.
#[derive(Default)]
struct Facts {
    path: Option<PathBuf>,
    host: Option<String>,
    agent: Option<String>,
    skill: Option<Vec<Tok>>,
    missing: Option<&'static str>,
    bad_url: Option<String>,
}

/// The token forms of one simple command, computed once per decision.
struct Subjects {
    /// The words.
    words: Vec<Tok>,
    /// The assignments and the words.
    full: Vec<Tok>,
}

fn subjects(analysis: &Analysis) -> Vec<Subjects> {
    analysis
        .commands
        .iter()
        .map(|c| Subjects {
            words: c.subject(),
            full: c.full_subject(),
        })
        .collect()
}

/// A file a Bash command reads or writes, through a redirection or as an operand of a
/// program known to read or write its operands.
struct ShellTarget {
    kind: RedirectKind,
    shown: String,
    /// `None` when keel cannot resolve it before the command runs.
    path: Option<PathBuf>,
    /// From a redirection (which needs Edit permission) rather than an operand (which only
    /// deny and ask rules look at; the program itself needs allowing anyway).
    redirect: bool,
}

/// Programs whose operands are files they read: Read deny and ask rules apply to them, so
/// `cat .env` is stopped by `Read(.env)` like the Read tool is. (`grep`'s pattern is checked
/// as if it were a path too; a false match only means a denial or a question.)
const FILE_READERS: &[&str] = &[
    "cat",
    "head",
    "tail",
    "wc",
    "grep",
    "egrep",
    "fgrep",
    "rg",
    "diff",
    "cmp",
    "stat",
    "file",
    "sort",
    "uniq",
    "cut",
    "nl",
    "jq",
    "sed",
    "less",
    "more",
    "strings",
    "xxd",
    "od",
    "hexdump",
    "base64",
    "md5sum",
    "sha1sum",
    "sha256sum",
    "sha512sum",
    "tac",
    "column",
    "ls",
    "tree",
    "find",
    "awk",
    "source",
    ".",
    "bat",
];

/// Programs that change every file operand: Edit deny and ask rules apply to them.
const FILE_WRITERS: &[&str] = &[
    "rm", "rmdir", "touch", "mkdir", "mv", "tee", "truncate", "shred", "unlink", "chmod", "chown",
];

/// Programs that change their last operand.
const LAST_OPERAND_WRITERS: &[&str] = &["cp", "ln", "install", "rsync", "scp"];

/// The operands of `c` that are files it reads or writes, as words; `None` stands for the
/// arguments `xargs` or `find … {} +` add, which keel cannot see.
fn file_operands(c: &SimpleCommand) -> Vec<(RedirectKind, Option<&Word>)> {
    let Some(program) = c.program() else {
        return Vec::new();
    };
    let program = program.rsplit('/').next().unwrap_or(program);
    let mut operands: Vec<&Word> = Vec::new();
    let mut options_done = false;
    for word in c.words.iter().skip(1) {
        match word.as_literal() {
            Some("--") if !options_done => options_done = true,
            Some(arg) if !options_done && arg.starts_with('-') && arg.len() > 1 => {}
            _ => operands.push(word),
        }
    }
    let kind = if FILE_READERS.contains(&program) {
        RedirectKind::Read
    } else if FILE_WRITERS.contains(&program) {
        RedirectKind::Write
    } else if LAST_OPERAND_WRITERS.contains(&program) {
        if c.extra_args {
            return vec![(RedirectKind::Write, None)];
        }
        return operands
            .last()
            .map(|w| vec![(RedirectKind::Write, Some(*w))])
            .unwrap_or_default();
    } else {
        return Vec::new();
    };
    let mut out: Vec<(RedirectKind, Option<&Word>)> =
        operands.into_iter().map(|w| (kind, Some(w))).collect();
    if c.extra_args {
        out.push((kind, None));
    }
    out
}

impl Policy {
    /// A policy in `mode` for a session working in `working_dir`, with `home` as the
    /// directory `~` means (passed in so tests and sandboxes can use their own).
    pub fn new(mode: PermissionMode, working_dir: &Path, home: &Path) -> Self {
        let root = Path::new("/");
        let working_dir = resolve_path(working_dir, root);
        Self {
            mode,
            rules: Vec::new(),
            home: resolve_path(home, root),
            working_dirs: vec![working_dir],
            globs: Mutex::new(None),
        }
    }

    /// The current mode.
    pub fn mode(&self) -> PermissionMode {
        self.mode
    }

    /// Switches mode (Shift+Tab in the TUI, `set_permission_mode` from the SDK).
    pub fn set_mode(&mut self, mode: PermissionMode) {
        self.mode = mode;
    }

    /// Adds a directory where reads (and edits in acceptEdits mode) need no approval.
    pub fn add_working_dir(&mut self, dir: &Path) {
        let dir = resolve_path(dir, &self.working_dirs[0]);
        if !self.working_dirs.contains(&dir) {
            self.working_dirs.push(dir);
        }
    }

    /// The working directories, resolved; the first is the session's.
    pub fn working_dirs(&self) -> &[PathBuf] {
        &self.working_dirs
    }

    /// The home directory `~` refers to, resolved.
    pub fn home(&self) -> &Path {
        &self.home
    }

    /// Adds a parsed rule to `list`.
    pub fn add_rule(&mut self, list: RuleList, rule: Rule, source: RuleSource) {
        let base_dir = resolve_path(&source.base_dir, &self.working_dirs[0]);
        self.rules.push(PolicyRule {
            list,
            rule,
            source: RuleSource {
                name: source.name,
                base_dir,
            },
        });
        *self.globs.get_mut().unwrap_or_else(PoisonError::into_inner) = None;
    }

    /// Parses and adds rules from one source; returns the ones that failed to parse, which
    /// the caller reports as warnings (the rest are added).
    pub fn add_rules<'t>(
        &mut self,
        list: RuleList,
        texts: impl IntoIterator<Item = &'t str>,
        source: &RuleSource,
    ) -> Vec<RuleParseError> {
        let mut errors = Vec::new();
        for text in texts {
            match Rule::parse(text) {
                Ok(rule) => self.add_rule(list, rule, source.clone()),
                Err(e) => errors.push(e),
            }
        }
        errors
    }

    /// Removes every rule added from the source named `source_name` (rules granted for a
    /// while, such as a skill's `allowed-tools` during one run); returns how many went.
    pub fn remove_rules_from(&mut self, source_name: &str) -> usize {
        let before = self.rules.len();
        self.rules.retain(|r| r.source.name != source_name);
        let removed = before - self.rules.len();
        if removed > 0 {
            *self.globs.get_mut().unwrap_or_else(PoisonError::into_inner) = None;
        }
        removed
    }

    /// Every rule with its list and source, in the order added.
    pub fn rules(&self) -> impl Iterator<Item = (RuleList, &Rule, &RuleSource)> {
        self.rules.iter().map(|r| (r.list, &r.rule, &r.source))
    }

    /// Whether a deny rule names the whole tool (`Bash`, `WebFetch`, `mcp__server`), so the
    /// model should not be offered it at all.
    pub fn is_hidden(&self, tool_name: &str) -> bool {
        self.rules.iter().any(|r| {
            r.list == RuleList::Deny && r.rule.is_whole_tool() && r.rule.applies_to_tool(tool_name)
        })
    }

    /// The tools among `names` to hide from the model (see [`Policy::is_hidden`]).
    pub fn hidden_tools<'n>(&self, names: impl IntoIterator<Item = &'n str>) -> Vec<&'n str> {
        names.into_iter().filter(|n| self.is_hidden(n)).collect()
    }

    /// Decides one tool call.
    pub fn decide(&self, call: &ToolCall<'_>) -> Verdict {
        let cwd = resolve_path(call.cwd, &self.working_dirs[0]);
        let verdict = match call.kind() {
            ToolKind::Shell => self.decide_shell(call, &cwd),
            kind => self.decide_tool(call, kind, &cwd),
        };
        if self.mode == PermissionMode::DontAsk && verdict.decision == Decision::Ask {
            return Verdict::new(
                Decision::Deny,
                Reason::NotPreApproved(Box::new(verdict.reason)),
            );
        }
        verdict
    }

    /// For `keel permissions check`: reads `Tool(input)` — `Bash(git diff; rm x)`,
    /// `Read(~/.ssh/id_rsa)`, `WebFetch(https://example.com)`, `Agent(Explore)` — as a call
    /// of that tool with that input in `cwd`, and decides it.
    pub fn check_rule_text(&self, text: &str, cwd: &Path) -> Result<Verdict, RuleParseError> {
        let err = |problem| RuleParseError {
            rule: text.to_string(),
            problem,
        };
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(err(RuleProblem::Empty));
        }
        let (name, arg) = match trimmed.find('(') {
            Some(open) if trimmed.ends_with(')') => (
                trimmed[..open].trim(),
                Some(&trimmed[open + 1..trimmed.len() - 1]),
            ),
            Some(_) => return Err(err(RuleProblem::Unbalanced)),
            None => (trimmed, None),
        };
        let valid_name = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if !valid_name {
            return Err(err(RuleProblem::BadToolName(name.to_string())));
        }
        let arg = arg.unwrap_or("");
        let input = match name {
            "Bash" => json!({ "command": arg }),
            "Read" | "Edit" | "Write" | "MultiEdit" => json!({ "file_path": arg.trim() }),
            "NotebookRead" | "NotebookEdit" => json!({ "notebook_path": arg.trim() }),
            "Glob" | "Grep" | "LS" => json!({ "path": arg.trim(), "pattern": "*" }),
            "WebFetch" => {
                let url = match arg.trim().strip_prefix("domain:") {
                    Some(host) => format!("https://{host}/"),
                    None => arg.trim().to_string(),
                };
                json!({ "url": url, "prompt": "" })
            }
            "WebSearch" => json!({ "query": arg }),
            "Agent" | "Task" => json!({ "subagent_type": arg.trim() }),
            "Skill" => {
                let arg = arg.trim();
                let (skill, args) = arg.split_once(' ').unwrap_or((arg, ""));
                json!({ "skill": skill, "args": args.trim() })
            }
            _ => json!({}),
        };
        Ok(self.decide(&ToolCall::new(name, &input, cwd)))
    }

    fn has_rule(&self, list: RuleList, text: &str) -> bool {
        Rule::parse(text).is_ok_and(|rule| self.indexed(list).any(|(_, r)| r.rule == rule))
    }

    fn rule_ref(&self, index: usize) -> RuleRef {
        let r = &self.rules[index];
        RuleRef {
            rule: r.rule.original().to_string(),
            list: r.list,
            source: r.source.name.clone(),
        }
    }

    fn rule_verdict(&self, index: usize, matched: Option<String>) -> Verdict {
        let decision = match self.rules[index].list {
            RuleList::Allow => Decision::Allow,
            RuleList::Ask => Decision::Ask,
            RuleList::Deny => Decision::Deny,
        };
        Verdict::new(
            decision,
            Reason::Rule {
                rule: self.rule_ref(index),
                matched,
            },
        )
    }

    fn indexed(&self, list: RuleList) -> impl Iterator<Item = (usize, &PolicyRule)> {
        self.rules
            .iter()
            .enumerate()
            .filter(move |(_, r)| r.list == list)
    }

    fn globs_for(&self, cwd: &Path) -> CompiledGlobs {
        let mut cache = self.globs.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((cached_cwd, globs)) = cache.as_ref()
            && cached_cwd == cwd
        {
            return Arc::clone(globs);
        }
        let compiled: Vec<Option<GlobSet>> = self
            .rules
            .iter()
            .map(|r| match r.rule.specifier() {
                Some(Specifier::Path(pattern)) => {
                    let base = match pattern.root() {
                        rules::PathRoot::Absolute => Path::new("/"),
                        rules::PathRoot::Home => self.home.as_path(),
                        rules::PathRoot::Project => r.source.base_dir.as_path(),
                        rules::PathRoot::Cwd => cwd,
                    };
                    // The pattern compiled against `/` when it was parsed; escaping the base
                    // keeps it compiling, so an error here cannot happen in practice and the
                    // rule simply does not match.
                    pattern.compile(base).ok()
                }
                _ => None,
            })
            .collect();
        let compiled = Arc::new(compiled);
        *cache = Some((cwd.to_path_buf(), Arc::clone(&compiled)));
        compiled
    }

    /// Whether rule `index` (a file rule or a bare tool rule) matches a file access by
    /// `tool_name` to `path`.
    fn path_rule_matches(
        &self,
        index: usize,
        tool_name: &str,
        path: &Path,
        globs: &[Option<GlobSet>],
    ) -> bool {
        let r = &self.rules[index];
        if !r.rule.applies_to_tool(tool_name) {
            return false;
        }
        match r.rule.specifier() {
            None => true,
            Some(Specifier::Path(_)) => globs
                .get(index)
                .and_then(Option::as_ref)
                .is_some_and(|g| g.is_match(path)),
            Some(_) => false,
        }
    }

    // ----- tools other than Bash -------------------------------------------------------

    fn facts(&self, call: &ToolCall<'_>, kind: ToolKind, cwd: &Path) -> Facts {
        let mut facts = Facts::default();
        let resolve_here = |p: &str| resolve(p, cwd, &self.home);
        match kind {
            ToolKind::Read => {
                let field = match call.tool_name {
                    "Read" => Some("file_path"),
                    "NotebookRead" => Some("notebook_path"),
                    _ => None,
                };
                match field {
                    Some(field) => match call.str_field(field) {
                        Some(p) if !p.is_empty() => facts.path = Some(resolve_here(p)),
                        _ => facts.missing = Some(field),
                    },
                    None => {
                        let base = call
                            .str_field("path")
                            .filter(|p| !p.is_empty())
                            .map(resolve_here)
                            .unwrap_or_else(|| cwd.to_path_buf());
                        // A Glob pattern may itself be absolute (`/etc/**/*.conf`).
                        let from_pattern = (call.tool_name == "Glob")
                            .then(|| call.str_field("pattern"))
                            .flatten()
                            .filter(|p| p.starts_with('/') || p.starts_with('~'))
                            .map(|p| resolve_here(&glob_base(p)));
                        facts.path = Some(from_pattern.unwrap_or(base));
                    }
                }
            }
            ToolKind::Edit => {
                let field = if call.tool_name == "NotebookEdit" {
                    "notebook_path"
                } else {
                    "file_path"
                };
                match call.str_field(field) {
                    Some(p) if !p.is_empty() => facts.path = Some(resolve_here(p)),
                    _ => facts.missing = Some(field),
                }
            }
            ToolKind::Fetch => match call.str_field("url") {
                Some(url) => match rules::url_host(url) {
                    Some(host) => facts.host = Some(host),
                    None => facts.bad_url = Some(url.to_string()),
                },
                None => facts.missing = Some("url"),
            },
            ToolKind::Agent => {
                facts.agent = call.str_field("subagent_type").map(str::to_string);
            }
            ToolKind::Skill => match call.str_field("skill") {
                Some(skill) => {
                    let mut words = vec![Word::literal(skill.trim_start_matches('/'))];
                    if let Some(args) = call.str_field("args") {
                        words.extend(args.split_whitespace().map(Word::literal));
                    }
                    facts.skill = Some(shell::subject_of(&words, false));
                }
                None => facts.missing = Some("skill"),
            },
            _ => {}
        }
        facts
    }

    fn tool_rule_matches(
        &self,
        index: usize,
        call: &ToolCall<'_>,
        facts: &Facts,
        globs: &[Option<GlobSet>],
    ) -> bool {
        let r = &self.rules[index];
        if !r.rule.applies_to_tool(call.tool_name) {
            return false;
        }
        match r.rule.specifier() {
            None => true,
            Some(Specifier::Path(_)) => facts
                .path
                .as_deref()
                .is_some_and(|p| self.path_rule_matches(index, call.tool_name, p, globs)),
            Some(Specifier::Domain(d)) => facts.host.as_deref().is_some_and(|h| d.matches(h)),
            Some(Specifier::Agent(t)) => facts.agent.as_deref() == Some(t.as_str()),
            Some(Specifier::Skill(p)) => facts
                .skill
                .as_deref()
                .is_some_and(|s| p.matches(s, Mode::Strict)),
            Some(Specifier::Command(_)) => false,
        }
    }

    fn decide_tool(&self, call: &ToolCall<'_>, kind: ToolKind, cwd: &Path) -> Verdict {
        let globs = self.globs_for(cwd);
        let facts = self.facts(call, kind, cwd);
        let shown = facts.path.as_ref().map(|p| p.display().to_string());
        for list in [RuleList::Deny, RuleList::Ask] {
            if let Some((i, _)) = self
                .indexed(list)
                .find(|(i, _)| self.tool_rule_matches(*i, call, &facts, &globs))
            {
                return self.rule_verdict(i, shown);
            }
        }
        if let Some(field) = facts.missing {
            return Verdict::new(
                Decision::Ask,
                Reason::MissingInput {
                    tool: call.tool_name.to_string(),
                    field,
                },
            );
        }
        if let Some(url) = facts.bad_url {
            return Verdict::new(Decision::Ask, Reason::UnknownHost { url });
        }
        let allow_rule = self
            .indexed(RuleList::Allow)
            .find(|(i, _)| self.tool_rule_matches(*i, call, &facts, &globs))
            .map(|(i, _)| i);
        let plan_blocks = match kind {
            ToolKind::Edit => true,
            ToolKind::Mcp | ToolKind::Other => !call.read_only,
            _ => false,
        };
        match self.mode {
            PermissionMode::Plan if call.tool_name == "ExitPlanMode" => {
                return Verdict::new(Decision::Ask, Reason::ExitPlanMode);
            }
            PermissionMode::Plan if plan_blocks => {
                return Verdict::new(
                    Decision::Deny,
                    Reason::PlanMode {
                        tool: call.tool_name.to_string(),
                    },
                );
            }
            PermissionMode::BypassPermissions => {
                if kind == ToolKind::Edit
                    && let Some(path) = &facts.path
                    && is_protected(path)
                    && allow_rule.is_none()
                {
                    return Verdict::new(
                        Decision::Ask,
                        Reason::ProtectedPath { path: path.clone() },
                    );
                }
                return Verdict::new(Decision::Allow, Reason::Bypass);
            }
            _ => {}
        }
        if let Some(i) = allow_rule {
            return self.rule_verdict(i, shown);
        }
        let inside = facts.path.as_deref().map(|p| within(p, &self.working_dirs));
        match (kind, facts.path) {
            (ToolKind::Read, Some(path)) => {
                if inside == Some(true) {
                    Verdict::new(
                        Decision::Allow,
                        Reason::InsideWorkingDirs {
                            path,
                            action: "read",
                        },
                    )
                } else {
                    Verdict::new(
                        Decision::Ask,
                        Reason::OutsideWorkingDirs {
                            path,
                            action: "read",
                        },
                    )
                }
            }
            (ToolKind::Edit, Some(path)) if self.mode == PermissionMode::AcceptEdits => {
                if is_protected(&path) {
                    Verdict::new(Decision::Ask, Reason::ProtectedPath { path })
                } else if inside == Some(true) {
                    Verdict::new(
                        Decision::Allow,
                        Reason::InsideWorkingDirs {
                            path,
                            action: "edit",
                        },
                    )
                } else {
                    let mut v = Verdict::new(
                        Decision::Ask,
                        Reason::OutsideWorkingDirs {
                            path: path.clone(),
                            action: "edit",
                        },
                    );
                    v.suggestions.push(self.edit_suggestion(&path, cwd));
                    v
                }
            }
            (ToolKind::Internal, _) => Verdict::new(
                Decision::Allow,
                Reason::Internal {
                    tool: call.tool_name.to_string(),
                },
            ),
            // As in Claude Code, starting a subagent asks nothing (deny and ask rules still
            // apply above); what the subagent then does is decided call by call.
            (ToolKind::Agent, _) => Verdict::new(Decision::Allow, Reason::Subagent),
            (ToolKind::Mcp | ToolKind::Other | ToolKind::Skill, _) if call.read_only => {
                Verdict::new(
                    Decision::Allow,
                    Reason::ReadOnlyTool {
                        tool: call.tool_name.to_string(),
                    },
                )
            }
            (_, path) => {
                let mut v = Verdict::new(
                    Decision::Ask,
                    Reason::ModeDefault {
                        mode: self.mode,
                        tool: call.tool_name.to_string(),
                    },
                );
                if kind == ToolKind::Edit
                    && let Some(path) = path
                {
                    v.suggestions.push(self.edit_suggestion(&path, cwd));
                }
                v
            }
        }
    }

    /// The narrowest Edit rule allowing `path`: relative to `cwd` when inside it.
    fn edit_suggestion(&self, path: &Path, cwd: &Path) -> String {
        match path.strip_prefix(cwd) {
            Ok(rel) if !rel.as_os_str().is_empty() => {
                format!("Edit(./{})", globset::escape(&rel.to_string_lossy()))
            }
            _ => format!("Edit(/{})", globset::escape(&path.to_string_lossy())),
        }
    }

    // ----- Bash ------------------------------------------------------------------------

    fn decide_shell(&self, call: &ToolCall<'_>, cwd: &Path) -> Verdict {
        let Some(command) = call.str_field("command") else {
            return Verdict::new(
                Decision::Ask,
                Reason::MissingInput {
                    tool: call.tool_name.to_string(),
                    field: "command",
                },
            );
        };
        let analysis = shell::analyze(command);
        let subjects = subjects(&analysis);
        let globs = self.globs_for(cwd);
        let targets = self.shell_targets(&analysis, cwd);

        // 1. Deny, 2. ask: any simple command or redirection target.
        for list in [RuleList::Deny, RuleList::Ask] {
            if let Some(v) = self.shell_rule_hit(list, &analysis, &subjects, &targets, &globs) {
                return v;
            }
        }
        if let Some(v) = self.shell_possible_hit(&analysis, &subjects, &targets) {
            return v;
        }

        // 3. Plan mode: only read-only commands and no writes.
        if self.mode == PermissionMode::Plan {
            let allowances = self.allowances(&analysis, &subjects, cwd, &globs, false);
            let read_only = analysis.uncertain.is_empty()
                && analysis.assignments.iter().all(|a| a.is_harmless())
                && !targets
                    .iter()
                    .any(|t| t.redirect && t.kind == RedirectKind::Write)
                && allowances.iter().all(Result::is_ok);
            return if read_only {
                let parts = allowed_parts(&analysis, allowances);
                Verdict::new(Decision::Allow, Reason::ShellAllowed { parts })
            } else {
                Verdict::new(
                    Decision::Deny,
                    Reason::PlanMode {
                        tool: format!("{}({})", call.tool_name, shorten(command, 80)),
                    },
                )
            };
        }

        let has_bash_guards = self
            .rules
            .iter()
            .any(|r| r.list != RuleList::Allow && r.rule.applies_to_tool("Bash"));

        // 4. Bypass: everything but protected or unknown write targets — and, when Bash
        // deny or ask rules exist, commands keel could not fully read (they might hide one).
        if self.mode == PermissionMode::BypassPermissions {
            if has_bash_guards && let Some(why) = analysis.uncertainty() {
                return Verdict::new(
                    Decision::Ask,
                    Reason::Uncertain {
                        why: why.to_string(),
                    },
                );
            }
            for t in targets.iter().filter(|t| t.kind == RedirectKind::Write) {
                match &t.path {
                    None if t.redirect => {
                        return Verdict::new(
                            Decision::Ask,
                            Reason::UnknownTarget {
                                target: t.shown.clone(),
                            },
                        );
                    }
                    Some(path)
                        if is_protected(path) && !self.edit_allowed_by_rule(path, &globs) =>
                    {
                        return Verdict::new(
                            Decision::Ask,
                            Reason::ProtectedPath { path: path.clone() },
                        );
                    }
                    _ => {}
                }
            }
            return Verdict::new(Decision::Allow, Reason::Bypass);
        }

        // 5. Allow: every simple command and every write target.
        let allow_all = self
            .indexed(RuleList::Allow)
            .find(|(_, r)| r.rule.applies_to_tool("Bash") && r.rule.is_whole_tool())
            .map(|(i, _)| i);
        let trust_all = allow_all.is_some() && !has_bash_guards;
        if !trust_all {
            if let Some(why) = analysis.uncertainty() {
                return Verdict::new(
                    Decision::Ask,
                    Reason::Uncertain {
                        why: why.to_string(),
                    },
                );
            }
            if let Some(a) = analysis.assignments.iter().find(|a| !a.is_harmless()) {
                return Verdict::new(
                    Decision::Ask,
                    Reason::ShellVariable {
                        name: a.name.clone(),
                    },
                );
            }
        }
        let mut parts = Vec::new();
        if let Some(rule) = allow_all {
            parts.push(AllowedPart {
                command: command.to_string(),
                by: AllowedBy::Rule(self.rule_ref(rule)),
            });
        } else {
            let allowances = self.allowances(&analysis, &subjects, cwd, &globs, true);
            // Report the most telling failure: a hazard, then a command no rule covers, then
            // an option in a rule's wildcard part.
            let severity = |why: &NotAllowed| match why {
                NotAllowed::Hazard(_) => 0,
                NotAllowed::NoRule => 1,
                NotAllowed::SideEffect { .. } => 2,
            };
            let worst = allowances
                .iter()
                .enumerate()
                .filter_map(|(i, a)| a.as_ref().err().map(|why| (i, why.clone())))
                .min_by_key(|(i, why)| (severity(why), *i));
            if let Some((i, why)) = worst {
                let mut v = Verdict::new(
                    Decision::Ask,
                    Reason::CommandNotAllowed {
                        command: analysis.commands[i].text.clone(),
                        why,
                    },
                );
                for (c, a) in analysis.commands.iter().zip(&allowances) {
                    let suggestion = match a {
                        Err(NotAllowed::NoRule) => suggest_rule(c),
                        // The prefix rule already exists; only the exact command would do.
                        Err(NotAllowed::SideEffect { known: true, .. }) => exact_rule(c),
                        _ => None,
                    };
                    if let Some(s) = suggestion
                        && !v.suggestions.contains(&s)
                        && !self.has_rule(RuleList::Allow, &s)
                    {
                        v.suggestions.push(s);
                    }
                }
                return v;
            }
            parts = allowed_parts(&analysis, allowances);
        }
        for t in targets
            .iter()
            .filter(|t| t.redirect && t.kind == RedirectKind::Write)
        {
            let Some(path) = &t.path else {
                return Verdict::new(
                    Decision::Ask,
                    Reason::UnknownTarget {
                        target: t.shown.clone(),
                    },
                );
            };
            if self.edit_allowed_by_rule(path, &globs) {
                continue;
            }
            let inside = within(path, &self.working_dirs);
            if self.mode == PermissionMode::AcceptEdits && inside && !is_protected(path) {
                continue;
            }
            let reason = if is_protected(path) {
                Reason::ProtectedPath { path: path.clone() }
            } else {
                Reason::RedirectWrite {
                    path: path.clone(),
                    outside: !inside,
                }
            };
            let mut v = Verdict::new(Decision::Ask, reason);
            v.suggestions.push(self.edit_suggestion(path, cwd));
            return v;
        }
        Verdict::new(Decision::Allow, Reason::ShellAllowed { parts })
    }

    /// The files a word names: one resolved path, the matches of a glob, or `None` (one
    /// unknown target) when only the shell can tell.
    fn locate(&self, word: &Word, changes_directory: bool, cwd: &Path) -> Vec<Option<PathBuf>> {
        let Some(text) = word.as_literal() else {
            return vec![None];
        };
        if changes_directory && !text.starts_with('/') && !text.starts_with('~') {
            return vec![None];
        }
        if word.has_glob() {
            return match paths::expand_glob(text, cwd, &self.home) {
                Some(paths) => paths.into_iter().map(Some).collect(),
                None => vec![None],
            };
        }
        vec![Some(resolve(text, cwd, &self.home))]
    }

    fn shell_targets(&self, analysis: &Analysis, cwd: &Path) -> Vec<ShellTarget> {
        let mut targets: Vec<ShellTarget> = Vec::new();
        for r in analysis
            .redirects
            .iter()
            .filter(|r| r.kind != RedirectKind::Other)
        {
            // A redirect to a glob writes one file only if the glob matches exactly one
            // (bash refuses otherwise), so any match is a candidate.
            for path in self.locate(&r.target, analysis.changes_directory, cwd) {
                targets.push(ShellTarget {
                    kind: r.kind,
                    shown: r.target.display(),
                    path,
                    redirect: true,
                });
            }
        }
        // Operands only matter to deny and ask rules about files; skip the file-system
        // work when there are none.
        let file_guards = self.rules.iter().any(|r| {
            r.list != RuleList::Allow
                && (r.rule.applies_to_tool("Read") || r.rule.applies_to_tool("Write"))
        });
        if file_guards || self.mode == PermissionMode::BypassPermissions {
            for c in &analysis.commands {
                for (kind, word) in file_operands(c) {
                    let Some(word) = word else {
                        targets.push(ShellTarget {
                            kind,
                            shown: c.text.clone(),
                            path: None,
                            redirect: false,
                        });
                        continue;
                    };
                    for path in self.locate(word, analysis.changes_directory, cwd) {
                        targets.push(ShellTarget {
                            kind,
                            shown: word.display(),
                            path,
                            redirect: false,
                        });
                    }
                }
            }
        }
        targets
    }

    fn edit_allowed_by_rule(&self, path: &Path, globs: &[Option<GlobSet>]) -> bool {
        self.indexed(RuleList::Allow)
            .any(|(i, _)| self.path_rule_matches(i, "Write", path, globs))
    }

    /// The first deny (or ask) rule that definitely matches a simple command or a
    /// redirection target.
    fn shell_rule_hit(
        &self,
        list: RuleList,
        analysis: &Analysis,
        subjects: &[Subjects],
        targets: &[ShellTarget],
        globs: &[Option<GlobSet>],
    ) -> Option<Verdict> {
        for (i, r) in self.indexed(list) {
            if r.rule.applies_to_tool("Bash") {
                match r.rule.specifier() {
                    None => return Some(self.rule_verdict(i, None)),
                    Some(Specifier::Command(pattern)) => {
                        for (c, s) in analysis.commands.iter().zip(subjects) {
                            if pattern.matches(&s.words, Mode::Strict)
                                || pattern.matches(&s.full, Mode::Strict)
                            {
                                return Some(self.rule_verdict(i, Some(c.text.clone())));
                            }
                        }
                    }
                    Some(_) => {}
                }
            }
            for t in targets {
                let Some(path) = &t.path else { continue };
                let tool = match t.kind {
                    RedirectKind::Write => "Write",
                    _ => "Read",
                };
                if self.path_rule_matches(i, tool, path, globs) {
                    return Some(self.rule_verdict(i, Some(path.display().to_string())));
                }
            }
        }
        None
    }

    /// A deny or ask rule that a command might match once its run-time parts are known, or
    /// that an unresolvable redirection target might hit: the call then needs approval.
    fn shell_possible_hit(
        &self,
        analysis: &Analysis,
        subjects: &[Subjects],
        targets: &[ShellTarget],
    ) -> Option<Verdict> {
        for list in [RuleList::Deny, RuleList::Ask] {
            for (i, r) in self.indexed(list) {
                if let Some(Specifier::Command(pattern)) = r.rule.specifier()
                    && r.rule.applies_to_tool("Bash")
                {
                    for (c, s) in analysis.commands.iter().zip(subjects) {
                        if pattern.matches(&s.words, Mode::Lenient)
                            || pattern.matches(&s.full, Mode::Lenient)
                        {
                            return Some(Verdict::new(
                                Decision::Ask,
                                Reason::MightMatchRule {
                                    rule: self.rule_ref(i),
                                    command: c.text.clone(),
                                },
                            ));
                        }
                    }
                }
                let file_rule = matches!(r.rule.specifier(), None | Some(Specifier::Path(_)));
                for t in targets.iter().filter(|t| t.path.is_none()) {
                    let tool = match t.kind {
                        RedirectKind::Write => "Write",
                        _ => "Read",
                    };
                    if file_rule && r.rule.applies_to_tool(tool) {
                        return Some(Verdict::new(
                            Decision::Ask,
                            Reason::UnknownTarget {
                                target: t.shown.clone(),
                            },
                        ));
                    }
                }
            }
        }
        None
    }

    /// Why each simple command is allowed, or why not. With `use_rules` false (plan mode)
    /// only the read-only list and wrappers count.
    fn allowances(
        &self,
        analysis: &Analysis,
        subjects: &[Subjects],
        cwd: &Path,
        globs: &[Option<GlobSet>],
        use_rules: bool,
    ) -> Vec<Result<AllowedBy, NotAllowed>> {
        // For each command allowed by (or covered by) a rule: that rule, and how many of the
        // command's words the rule spells out.
        let mut coverage: Vec<Option<(usize, usize)>> = vec![None; analysis.commands.len()];
        let mut out = Vec::with_capacity(analysis.commands.len());
        for (idx, c) in analysis.commands.iter().enumerate() {
            if use_rules
                && let Some(launch) = c.launched_by
                && let Some(Some((rule, fixed))) = coverage.get(launch.parent).copied()
                && fixed > launch.word
            {
                coverage[idx] = Some((
                    rule,
                    if launch.via_script {
                        usize::MAX
                    } else {
                        fixed - launch.word
                    },
                ));
                out.push(Ok(AllowedBy::CoveredBy(self.rule_ref(rule))));
                continue;
            }
            let mut side_effect = None;
            if use_rules {
                let subject = &subjects[idx].words;
                let full = &subjects[idx].full;
                for (i, r) in self.indexed(RuleList::Allow) {
                    let Some(Specifier::Command(pattern)) = r.rule.specifier() else {
                        continue;
                    };
                    if !r.rule.applies_to_tool("Bash") {
                        continue;
                    }
                    let hit = pattern.matches(full, Mode::Strict)
                        || (c.hazard.is_none() && pattern.matches(subject, Mode::Strict));
                    if !hit {
                        continue;
                    }
                    if pattern.kind() != rules::CommandPatternKind::Exact
                        && let Some(effect) = side_effect_option(&c.words)
                        && !names_option(pattern.text(), &effect.text)
                    {
                        side_effect.get_or_insert(NotAllowed::SideEffect {
                            rule: self.rule_ref(i),
                            option: effect.text,
                            known: effect.known,
                        });
                        continue;
                    }
                    coverage[idx] = Some((i, pattern.fixed_words()));
                    break;
                }
                if let Some((rule, _)) = coverage[idx] {
                    out.push(Ok(AllowedBy::Rule(self.rule_ref(rule))));
                    continue;
                }
            }
            if let Some(hazard) = &c.hazard {
                out.push(Err(NotAllowed::Hazard(hazard.clone())));
                continue;
            }
            if c.role == Role::Wrapper {
                out.push(Ok(AllowedBy::Wrapper));
            } else if is_read_only(&c.words, c.extra_args) {
                out.push(Ok(AllowedBy::ReadOnly));
            } else if use_rules
                && self.mode == PermissionMode::AcceptEdits
                && self.fs_command_inside(c, cwd, analysis.changes_directory, globs)
            {
                out.push(Ok(AllowedBy::AcceptEdits));
            } else {
                out.push(Err(side_effect.unwrap_or(NotAllowed::NoRule)));
            }
        }
        out
    }

    /// acceptEdits: `mkdir`, `touch`, `cp`, `mv` with plain options and every path inside
    /// the working directories, outside protected locations and not named by an Edit deny
    /// or ask rule.
    fn fs_command_inside(
        &self,
        c: &SimpleCommand,
        cwd: &Path,
        changes_directory: bool,
        globs: &[Option<GlobSet>],
    ) -> bool {
        let Some(program) = c.program() else {
            return false;
        };
        let (short, long): (&str, &[&str]) = match program {
            "mkdir" => ("pv", &["--parents", "--verbose"]),
            "touch" => ("acm", &["--no-create"]),
            "cp" => (
                "rRapvfinuLPx",
                &[
                    "--recursive",
                    "--archive",
                    "--verbose",
                    "--force",
                    "--interactive",
                    "--no-clobber",
                    "--update",
                ],
            ),
            "mv" => (
                "finuv",
                &[
                    "--force",
                    "--interactive",
                    "--no-clobber",
                    "--update",
                    "--verbose",
                ],
            ),
            _ => return false,
        };
        if c.extra_args {
            return false;
        }
        let mut operands = 0;
        let mut options_done = false;
        for word in &c.words[1..] {
            let Some(arg) = word.as_literal() else {
                return false;
            };
            if word.has_glob() {
                return false;
            }
            if !options_done && arg == "--" {
                options_done = true;
                continue;
            }
            if !options_done && arg.starts_with('-') && arg.len() > 1 {
                let ok = if arg.starts_with("--") {
                    long.contains(&arg)
                } else {
                    arg[1..].chars().all(|f| short.contains(f))
                };
                if !ok {
                    return false;
                }
                continue;
            }
            if changes_directory && !arg.starts_with('/') && !arg.starts_with('~') {
                return false;
            }
            let path = resolve(arg, cwd, &self.home);
            if !within(&path, &self.working_dirs) || is_protected(&path) {
                return false;
            }
            let guarded = self.rules.iter().enumerate().any(|(i, r)| {
                r.list != RuleList::Allow && self.path_rule_matches(i, "Write", &path, globs)
            });
            if guarded {
                return false;
            }
            operands += 1;
        }
        operands > 0
    }
}

/// Whether a rule's text names `option` (`--output` for `--output=/tmp/x`) as a word of its
/// own, so the user chose to allow it.
fn names_option(rule_text: &str, option: &str) -> bool {
    let name = option.split('=').next().unwrap_or(option);
    rule_text
        .split_whitespace()
        .map(|w| w.trim_end_matches(":*"))
        .any(|w| w == name || w.starts_with(&format!("{name}=")))
}

/// The allowed parts of a command, for [`Reason::ShellAllowed`].
fn allowed_parts(
    analysis: &Analysis,
    allowances: Vec<Result<AllowedBy, NotAllowed>>,
) -> Vec<AllowedPart> {
    analysis
        .commands
        .iter()
        .zip(allowances)
        .filter_map(|(c, a)| {
            a.ok().map(|by| AllowedPart {
                command: c.text.clone(),
                by,
            })
        })
        .collect()
}

/// The non-glob leading directories of a glob pattern (`/etc/**/*.conf` → `/etc`).
fn glob_base(pattern: &str) -> String {
    let mut base = Vec::new();
    for part in pattern.split('/') {
        if part.contains(['*', '?', '[', '{']) {
            break;
        }
        base.push(part);
    }
    let joined = base.join("/");
    if joined.is_empty() {
        "/".to_string()
    } else {
        joined
    }
}

/// Programs whose second word is a subcommand worth keeping in a suggested rule.
const SUBCOMMAND_PROGRAMS: &[&str] = &[
    "git",
    "cargo",
    "npm",
    "pnpm",
    "yarn",
    "bun",
    "deno",
    "go",
    "docker",
    "podman",
    "kubectl",
    "helm",
    "pip",
    "pip3",
    "uv",
    "poetry",
    "rustup",
    "brew",
    "apt",
    "apt-get",
    "gh",
    "make",
    "just",
    "dotnet",
    "mvn",
    "gradle",
    "bundle",
    "rails",
    "rake",
    "mix",
    "terraform",
    "npx",
];

/// Subcommands after which the next word names what to run (`npm run test`).
const RUNNER_SUBCOMMANDS: &[&str] = &["run", "exec", "x", "compose", "run-script", "test"];

/// The narrowest sensible rule that would allow `c` next time: the exact command for
/// one-off programs, `program subcommand:*` for tools with subcommands (`cargo build:*`,
/// `npm run test:*`), the exact command when there is nothing after them (`Bash(make)`).
fn suggest_rule(c: &SimpleCommand) -> Option<String> {
    let words: Vec<&str> = c.words.iter().map_while(Word::as_literal).collect();
    let program = *words.first()?;
    let is_sub = |w: &str| {
        w.chars().next().is_some_and(|ch| ch.is_ascii_lowercase())
            && w.chars().all(|ch| {
                ch.is_ascii_lowercase() || ch.is_ascii_digit() || matches!(ch, '-' | '_' | ':')
            })
    };
    let all_static = words.len() == c.words.len() && !c.extra_args;
    let mut n = 1;
    if SUBCOMMAND_PROGRAMS.contains(&program) && words.get(1).is_some_and(|w| is_sub(w)) {
        n = 2;
        if RUNNER_SUBCOMMANDS.contains(&words[1]) && words.get(2).is_some_and(|w| is_sub(w)) {
            n = 3;
        }
    } else if all_static && c.text.len() <= 120 {
        n = words.len();
    } else if SUBCOMMAND_PROGRAMS.contains(&program) {
        // `git -c … diff`: allowing every git command is not a narrow suggestion.
        return None;
    }
    let text = words[..n]
        .iter()
        .map(|w| quote_for_rule(w))
        .collect::<Vec<_>>()
        .join(" ");
    if n == c.words.len() && !c.extra_args {
        Some(format!("Bash({text})"))
    } else {
        Some(format!("Bash({text}:*)"))
    }
}

/// The exact rule for `c`, when all of it is known before it runs.
fn exact_rule(c: &SimpleCommand) -> Option<String> {
    if c.extra_args {
        return None;
    }
    let words: Option<Vec<String>> = c
        .words
        .iter()
        .map(|w| w.as_literal().map(quote_for_rule))
        .collect();
    Some(format!("Bash({})", words?.join(" ")))
}

/// The first `max` characters of `text`, with `…` when cut.
fn shorten(text: &str, max: usize) -> String {
    let line = text.lines().next().unwrap_or("");
    if line.chars().count() <= max && line.len() == text.len() {
        line.to_string()
    } else {
        let cut: String = line.chars().take(max).collect();
        format!("{cut}…")
    }
}

/// Quotes a word for a rule so it parses back to the same word.
fn quote_for_rule(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_./:=@%+,-~^".contains(c));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}
