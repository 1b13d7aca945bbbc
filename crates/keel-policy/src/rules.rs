//! Claude Code's permission-rule syntax: `Tool` or `Tool(specifier)`, parsed once, matched
//! many times, and printed back in canonical form for explanations.

use std::fmt;
use std::path::{Path, PathBuf};

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

use crate::paths::normalize_lexically;
use crate::wildcard::{self, Mode, Pat, Tok};

/// Tools that read files; a `Read(…)` rule applies to all of them.
pub const READ_TOOLS: &[&str] = &["Read", "Glob", "Grep", "NotebookRead", "LS"];

/// Tools that change files; an `Edit(…)` rule applies to all of them.
pub const EDIT_TOOLS: &[&str] = &["Edit", "Write", "MultiEdit", "NotebookEdit"];

/// Which of the three lists a rule came from; decides what a match means.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RuleList {
    /// Calls matching the rule run without asking.
    Allow,
    /// Calls matching the rule always ask, even when an allow rule also matches.
    Ask,
    /// Calls matching the rule never run.
    Deny,
}

impl RuleList {
    /// The settings-file key for the list (`allow`, `ask`, `deny`).
    pub fn as_str(self) -> &'static str {
        match self {
            RuleList::Allow => "allow",
            RuleList::Ask => "ask",
            RuleList::Deny => "deny",
        }
    }
}

impl fmt::Display for RuleList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a rule came from, so an explanation can send the user to the right file, and the
/// directory its `/path` patterns are relative to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleSource {
    /// What to show the user: a settings file path, `--allowedTools`, `session`, ….
    pub name: String,
    /// The project root `/x` patterns are relative to: for a settings file, the directory
    /// holding its `.claude/`/`.keel/` folder; for command-line rules, the working directory.
    pub base_dir: PathBuf,
}

impl RuleSource {
    /// A source named `name` whose `/x` patterns are relative to `base_dir`.
    pub fn new(name: impl Into<String>, base_dir: impl Into<PathBuf>) -> Self {
        Self {
            name: name.into(),
            base_dir: base_dir.into(),
        }
    }
}

/// Why a rule could not be parsed; the caller shows it as a warning and skips the rule.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid permission rule `{rule}`: {problem}")]
pub struct RuleParseError {
    /// The rule text as written.
    pub rule: String,
    /// What is wrong with it and how to fix it.
    pub problem: RuleProblem,
}

/// What is wrong with a rule.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RuleProblem {
    /// Nothing but whitespace.
    #[error("it is empty; write a tool name such as `Read` or `Bash(git diff:*)`")]
    Empty,
    /// `(` without a `)` at the end, or the other way round.
    #[error("its parentheses do not balance; write it as `Tool` or `Tool(specifier)`")]
    Unbalanced,
    /// The part before `(` is not a tool name.
    #[error(
        "`{0}` is not a tool name (letters, digits, `_`, `-`, `.`; `*` only in `mcp__server__*`)"
    )]
    BadToolName(String),
    /// `Tool()`.
    #[error("the specifier in parentheses is empty; write `{0}` alone to match every call")]
    EmptySpecifier(String),
    /// A quote that never closes.
    #[error("a quote in the specifier is not closed")]
    UnterminatedQuote,
    /// `Bash(a && b)` and friends.
    #[error(
        "it contains the shell operator `{0}`; a Bash rule matches one simple command at a time \
         (each part of `a && b` is checked on its own, redirections to files need Edit \
         permission), so write one rule per command"
    )]
    ShellOperator(String),
    /// `Bash(:*)`.
    #[error("`:*` needs a command before it, as in `Bash(npm run test:*)`")]
    EmptyPrefix,
    /// `WebFetch(something-else)`.
    #[error(
        "WebFetch rules take `domain:<host>`, as in `WebFetch(domain:example.com)` or \
         `WebFetch(domain:*.example.com)`"
    )]
    BadDomain,
    /// A file pattern globset rejects.
    #[error("the file pattern is invalid: {0}")]
    BadPath(String),
    /// A specifier on a tool whose input keel does not know how to match.
    #[error(
        "keel does not know how to match the input of `{0}`; write `{0}` alone to match every call"
    )]
    SpecifierNotSupported(String),
}

/// A parsed permission rule. Equality and [`fmt::Display`] use the canonical form; the text
/// as written is kept for explanations ([`Rule::original`]).
#[derive(Clone, Debug)]
pub struct Rule {
    original: String,
    tool: String,
    spec: Option<Specifier>,
}

impl PartialEq for Rule {
    fn eq(&self, other: &Self) -> bool {
        self.to_string() == other.to_string()
    }
}

impl Eq for Rule {}

/// What a rule says about a tool's input.
#[derive(Clone, Debug)]
pub enum Specifier {
    /// `Bash(…)`: a command pattern.
    Command(CommandPattern),
    /// `Read(…)`, `Edit(…)`, …: a gitignore-style file pattern.
    Path(PathPattern),
    /// `WebFetch(domain:…)`.
    Domain(DomainPattern),
    /// `Agent(type)` / `Task(type)`: the subagent type.
    Agent(String),
    /// `Skill(name)` / `Skill(name *)`: the skill and its arguments, matched like a command.
    Skill(CommandPattern),
}

impl Rule {
    /// Parses one rule as written in a settings file or on the command line.
    pub fn parse(text: &str) -> Result<Rule, RuleParseError> {
        let err = |problem| RuleParseError {
            rule: text.to_string(),
            problem,
        };
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(err(RuleProblem::Empty));
        }
        let (name, spec) = match trimmed.find('(') {
            Some(open) => {
                if !trimmed.ends_with(')') {
                    return Err(err(RuleProblem::Unbalanced));
                }
                let inner = &trimmed[open + 1..trimmed.len() - 1];
                if !parens_balance(inner) {
                    return Err(err(RuleProblem::Unbalanced));
                }
                (trimmed[..open].trim(), Some(inner.trim()))
            }
            None => {
                if trimmed.contains(')') {
                    return Err(err(RuleProblem::Unbalanced));
                }
                (trimmed, None)
            }
        };
        let tool = canonical_tool_name(name).map_err(err)?;
        let spec = match spec {
            None => None,
            Some("") => return Err(err(RuleProblem::EmptySpecifier(tool.clone()))),
            Some(spec) => parse_specifier(&tool, spec).map_err(err)?,
        };
        Ok(Rule {
            original: trimmed.to_string(),
            tool,
            spec,
        })
    }

    /// The rule as the user wrote it (trimmed), for explanations that point back at settings.
    pub fn original(&self) -> &str {
        &self.original
    }

    /// The tool the rule names (`Task` is reported as `Agent`).
    pub fn tool(&self) -> &str {
        &self.tool
    }

    /// The parsed specifier, or `None` for a rule that matches every call of its tool.
    pub fn specifier(&self) -> Option<&Specifier> {
        self.spec.as_ref()
    }

    /// Whether the rule matches every call of its tool(s) whatever the input (`Bash`,
    /// `Bash(*)`, `mcp__server`): such a deny rule hides the tool from the model.
    pub fn is_whole_tool(&self) -> bool {
        self.spec.is_none()
    }

    /// Whether the rule is about calls of the tool named `tool_name`: `Read` rules cover every
    /// reading tool, `Edit` rules every editing tool, `Agent` and `Task` are one tool, and
    /// `mcp__server` covers every tool of that server.
    pub fn applies_to_tool(&self, tool_name: &str) -> bool {
        let tool_name = if tool_name == "Task" {
            "Agent"
        } else {
            tool_name
        };
        match self.tool.as_str() {
            "Read" => READ_TOOLS.contains(&tool_name),
            "Edit" => EDIT_TOOLS.contains(&tool_name),
            rule if rule.starts_with("mcp__") => mcp_rule_matches(rule, tool_name),
            rule => rule == tool_name,
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.spec {
            None => f.write_str(&self.tool),
            Some(spec) => write!(f, "{}({})", self.tool, spec),
        }
    }
}

impl fmt::Display for Specifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Specifier::Command(p) | Specifier::Skill(p) => f.write_str(&p.text),
            Specifier::Path(p) => f.write_str(&p.text),
            Specifier::Domain(d) => write!(f, "domain:{}", d.text),
            Specifier::Agent(a) => f.write_str(a),
        }
    }
}

impl std::str::FromStr for Rule {
    type Err = RuleParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Rule::parse(s)
    }
}

fn mcp_rule_matches(rule: &str, tool_name: &str) -> bool {
    if let Some(server_prefix) = rule.strip_suffix('*') {
        // `mcp__server__*`
        return tool_name.starts_with(server_prefix);
    }
    if rule == tool_name {
        return true;
    }
    // `mcp__server` (no tool part) covers `mcp__server__anything`.
    let Some(rest) = rule.strip_prefix("mcp__") else {
        return false;
    };
    !rest.contains("__")
        && tool_name
            .strip_prefix(rule)
            .is_some_and(|t| t.starts_with("__"))
}

fn canonical_tool_name(name: &str) -> Result<String, RuleProblem> {
    let bad = || RuleProblem::BadToolName(name.to_string());
    if name.is_empty() {
        return Err(bad());
    }
    let valid_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '*'));
    if !valid_chars {
        return Err(bad());
    }
    if name.contains('*') {
        // Only `mcp__<server>__*`, with a non-empty server and no other star.
        let server = name
            .strip_prefix("mcp__")
            .and_then(|rest| rest.strip_suffix("__*"));
        if server.is_none_or(|s| s.is_empty() || s.contains('*')) {
            return Err(bad());
        }
    }
    if name == "mcp__" || name == "mcp" {
        return Err(bad());
    }
    Ok(if name == "Task" {
        "Agent".to_string()
    } else {
        name.to_string()
    })
}

/// `(`/`)` balance outside quotes and backslash escapes.
fn parens_balance(s: &str) -> bool {
    let mut depth = 0i32;
    let mut chars = s.chars();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        match (quote, c) {
            (_, '\\') if quote != Some('\'') => {
                chars.next();
            }
            (None, '\'' | '"') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '(') => depth += 1,
            (None, ')') => {
                depth -= 1;
                if depth < 0 {
                    return false;
                }
            }
            _ => {}
        }
    }
    depth == 0
}

fn parse_specifier(tool: &str, spec: &str) -> Result<Option<Specifier>, RuleProblem> {
    let everything = spec == "*";
    match tool {
        "Bash" if everything => Ok(None),
        "Bash" => Ok(Some(Specifier::Command(CommandPattern::parse(spec)?))),
        "WebFetch" if everything => Ok(None),
        "WebFetch" => Ok(Some(Specifier::Domain(DomainPattern::parse(spec)?))),
        "Agent" if everything => Ok(None),
        "Agent" => Ok(Some(Specifier::Agent(spec.to_string()))),
        "Skill" if everything => Ok(None),
        "Skill" => Ok(Some(Specifier::Skill(CommandPattern::parse(spec)?))),
        t if READ_TOOLS.contains(&t) || EDIT_TOOLS.contains(&t) => {
            Ok(Some(Specifier::Path(PathPattern::parse(spec)?)))
        }
        t => Err(RuleProblem::SpecifierNotSupported(t.to_string())),
    }
}

/// How a command pattern matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommandPatternKind {
    /// No wildcard: the command must be exactly this (quotes aside).
    Exact,
    /// Legacy `prefix:*`: the command's words start with the prefix's words.
    Prefix,
    /// Contains `*`: matches any characters, with a space before `*` as a word boundary and a
    /// single trailing ` *` optional.
    Wildcard,
}

/// A parsed `Bash(…)` or `Skill(…)` specifier.
#[derive(Clone, Debug)]
pub struct CommandPattern {
    text: String,
    kind: CommandPatternKind,
    /// How many leading words the pattern spells out completely (before any `*`).
    fixed_words: usize,
    /// A command matches when any of these matches; two only when the tail is optional.
    alternatives: Vec<Vec<Pat>>,
}

impl CommandPattern {
    /// Parses a specifier such as `npm run test:*`, `git * main` or `make`.
    pub fn parse(spec: &str) -> Result<CommandPattern, RuleProblem> {
        let text = spec.trim().to_string();
        let (body, prefix) = match text.strip_suffix(":*") {
            Some(body) => (body.trim_end(), true),
            None => (text.as_str(), false),
        };
        if prefix && body.is_empty() {
            return Err(RuleProblem::EmptyPrefix);
        }
        let elems = tokenize_pattern(body)?;
        let has_star = elems.contains(&Pat::Star);
        let fixed_words = fixed_words(&elems);
        let (kind, alternatives) = if prefix {
            let mut with_tail = elems.clone();
            with_tail.extend([Pat::Sep, Pat::Star]);
            (CommandPatternKind::Prefix, vec![elems, with_tail])
        } else if has_star {
            let mut alternatives = vec![elems.clone()];
            if elems.ends_with(&[Pat::Sep, Pat::Star]) {
                alternatives.push(elems[..elems.len() - 2].to_vec());
            }
            (CommandPatternKind::Wildcard, alternatives)
        } else {
            (CommandPatternKind::Exact, vec![elems])
        };
        Ok(CommandPattern {
            text,
            kind,
            fixed_words,
            alternatives,
        })
    }

    /// How many leading words of a matching command the pattern spells out completely: a
    /// command run by one of those words (`nohup npm run dev` under
    /// `Bash(nohup npm run dev:*)`) is named by the rule and covered by it.
    pub fn fixed_words(&self) -> usize {
        self.fixed_words
    }

    /// The specifier as written (trimmed).
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Exact, prefix or wildcard.
    pub fn kind(&self) -> CommandPatternKind {
        self.kind
    }

    pub(crate) fn matches(&self, subject: &[Tok], mode: Mode) -> bool {
        self.alternatives
            .iter()
            .any(|alt| wildcard::matches(alt, subject, mode))
    }
}

fn fixed_words(elems: &[Pat]) -> usize {
    let mut words = 0;
    let mut in_word = false;
    for elem in elems {
        match elem {
            Pat::Lit(_) => in_word = true,
            Pat::Sep => {
                if in_word {
                    words += 1;
                }
                in_word = false;
            }
            // A word that ends in `*` is not spelled out.
            Pat::Star => return words,
        }
    }
    if in_word { words + 1 } else { words }
}

/// Splits a command pattern into literal characters, word boundaries and wildcards, removing
/// quotes the way the shell would so `Bash(git commit -m "wip")` matches `git commit -m wip`.
fn tokenize_pattern(body: &str) -> Result<Vec<Pat>, RuleProblem> {
    let mut out = Vec::new();
    let mut chars = body.chars().peekable();
    let mut subst_depth = 0usize;
    let push_sep = |out: &mut Vec<Pat>| {
        if !out.is_empty() && out.last() != Some(&Pat::Sep) {
            out.push(Pat::Sep);
        }
    };
    while let Some(c) = chars.next() {
        if subst_depth > 0 {
            // Inside `$(…)` the text is compared with the command's source text verbatim.
            match c {
                '(' => subst_depth += 1,
                ')' => subst_depth -= 1,
                _ => {}
            }
            out.push(Pat::Lit(c));
            continue;
        }
        match c {
            '\\' => match chars.next() {
                Some('\n') | None => {}
                Some(e) => out.push(Pat::Lit(e)),
            },
            '\'' => loop {
                match chars.next() {
                    Some('\'') => break,
                    Some(q) => out.push(Pat::Lit(q)),
                    None => return Err(RuleProblem::UnterminatedQuote),
                }
            },
            '"' => loop {
                match chars.next() {
                    Some('"') => break,
                    Some('\\') => match chars.next() {
                        Some(e @ ('"' | '\\' | '$' | '`')) => out.push(Pat::Lit(e)),
                        Some('\n') => {}
                        Some(e) => {
                            out.push(Pat::Lit('\\'));
                            out.push(Pat::Lit(e));
                        }
                        None => return Err(RuleProblem::UnterminatedQuote),
                    },
                    Some(q) => out.push(Pat::Lit(q)),
                    None => return Err(RuleProblem::UnterminatedQuote),
                }
            },
            '*' => out.push(Pat::Star),
            '$' if chars.peek() == Some(&'(') => {
                out.push(Pat::Lit('$'));
                if let Some(p) = chars.next() {
                    out.push(Pat::Lit(p));
                }
                subst_depth = 1;
            }
            c if c == ' ' || c == '\t' => push_sep(&mut out),
            ';' | '|' | '&' | '<' | '>' | '\n' | '(' | ')' | '`' => {
                let mut op = c.to_string();
                if let Some(&next) = chars.peek()
                    && matches!((c, next), ('&', '&') | ('|', '|') | ('>', '>') | ('<', '<'))
                {
                    op.push(next);
                }
                return Err(RuleProblem::ShellOperator(
                    op.replace('\n', "a newline").to_string(),
                ));
            }
            c => out.push(Pat::Lit(c)),
        }
    }
    while out.last() == Some(&Pat::Sep) {
        out.pop();
    }
    Ok(out)
}

/// Where a file pattern is anchored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathRoot {
    /// `//abs/path`: the file-system root.
    Absolute,
    /// `~/x`: the user's home directory.
    Home,
    /// `/x`: the rule source's project root ([`RuleSource::base_dir`]).
    Project,
    /// `x`, `./x`: the working directory of the call.
    Cwd,
}

/// A gitignore-style file pattern from `Read(…)`, `Edit(…)`, ….
#[derive(Clone, Debug)]
pub struct PathPattern {
    text: String,
    root: PathRoot,
    /// The pattern below its root, without leading `./` or trailing `/`.
    rest: String,
    /// gitignore: a pattern without a slash (other than a trailing one) matches at any depth.
    any_depth: bool,
}

impl PathPattern {
    /// Parses a file pattern; checks it compiles so a bad glob is reported once, up front.
    pub fn parse(spec: &str) -> Result<PathPattern, RuleProblem> {
        let text = spec.trim().to_string();
        let (root, rest) = if let Some(rest) = text.strip_prefix("//") {
            (PathRoot::Absolute, rest)
        } else if text == "~" {
            (PathRoot::Home, "")
        } else if let Some(rest) = text.strip_prefix("~/") {
            (PathRoot::Home, rest)
        } else if let Some(rest) = text.strip_prefix('/') {
            (PathRoot::Project, rest)
        } else if let Some(rest) = text.strip_prefix("./") {
            (PathRoot::Cwd, rest)
        } else {
            (PathRoot::Cwd, text.as_str())
        };
        let anchored_by_dot = text.starts_with("./");
        let rest = rest.trim_end_matches('/').to_string();
        let any_depth = root == PathRoot::Cwd && !anchored_by_dot && !rest.contains('/');
        let pattern = PathPattern {
            text,
            root,
            rest,
            any_depth,
        };
        pattern
            .compile(Path::new("/"))
            .map_err(|e| RuleProblem::BadPath(e.to_string()))?;
        Ok(pattern)
    }

    /// The pattern as written (trimmed).
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Where the pattern is anchored.
    pub fn root(&self) -> PathRoot {
        self.root
    }

    /// Compiles the pattern with its root at `base` (already resolved). Matches the path
    /// itself and everything under it, since a rule about a directory covers its contents.
    pub(crate) fn compile(&self, base: &Path) -> Result<GlobSet, globset::Error> {
        let base_text = globset::escape(&base.to_string_lossy());
        let base_text = base_text.trim_end_matches('/');
        let rest = if self.rest.contains("..") {
            normalize_lexically(Path::new(&format!("/{}", self.rest)))
                .to_string_lossy()
                .trim_start_matches('/')
                .to_string()
        } else {
            self.rest.clone()
        };
        let stem = match (rest.is_empty(), self.any_depth) {
            (true, _) => base_text.to_string(),
            (false, true) => format!("{base_text}/**/{rest}"),
            (false, false) => format!("{base_text}/{rest}"),
        };
        let stem = if stem.is_empty() {
            "/".to_string()
        } else {
            stem
        };
        let mut builder = GlobSetBuilder::new();
        for glob in [stem.clone(), format!("{}/**", stem.trim_end_matches('/'))] {
            builder.add(
                GlobBuilder::new(&glob)
                    .literal_separator(true)
                    .backslash_escape(true)
                    .build()?,
            );
        }
        builder.build()
    }
}

/// A `WebFetch(domain:…)` host: exact, or `*.example.com` for its subdomains.
#[derive(Clone, Debug)]
pub struct DomainPattern {
    text: String,
}

impl DomainPattern {
    /// Parses `domain:host` or `domain:*.host`.
    pub fn parse(spec: &str) -> Result<DomainPattern, RuleProblem> {
        let host = spec
            .trim()
            .strip_prefix("domain:")
            .ok_or(RuleProblem::BadDomain)?
            .trim()
            .to_ascii_lowercase();
        let bare = host.strip_prefix("*.").unwrap_or(&host);
        let valid = !bare.is_empty()
            && bare
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
            && !bare.starts_with('.')
            && !bare.contains("..");
        if !valid {
            return Err(RuleProblem::BadDomain);
        }
        Ok(DomainPattern { text: host })
    }

    /// Whether `host` (lower case) is the rule's host, or one of its subdomains for `*.`.
    pub fn matches(&self, host: &str) -> bool {
        match self.text.strip_prefix("*.") {
            Some(parent) => host
                .strip_suffix(parent)
                .is_some_and(|sub| sub.len() > 1 && sub.ends_with('.')),
            None => host == self.text,
        }
    }
}

/// The host of an `http(s)://` URL, lower-cased, without port, user info or trailing dot.
/// `None` when there is no recognisable host; callers then ask rather than guess.
pub fn url_host(url: &str) -> Option<String> {
    let (_, rest) = url.trim().split_once("://")?;
    // Browsers treat `\` like `/` in http(s) URLs, so `a.com\@b.com` is host `a.com`.
    let authority = rest.split(['/', '\\', '?', '#']).next()?;
    let host_port = authority.rsplit('@').next()?;
    let host = if let Some(v6) = host_port.strip_prefix('[') {
        v6.split(']').next()?
    } else {
        host_port.split(':').next()?
    };
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    if host.is_empty() { None } else { Some(host) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_hosts() {
        assert_eq!(url_host("https://Docs.Rs/x?y").as_deref(), Some("docs.rs"));
        assert_eq!(
            url_host("http://user@example.com:8080/").as_deref(),
            Some("example.com")
        );
        assert_eq!(
            url_host("http://evil.com\\@example.com/").as_deref(),
            Some("evil.com")
        );
        assert_eq!(url_host("not a url"), None);
    }

    #[test]
    fn domain_wildcards() {
        let d = DomainPattern::parse("domain:*.example.com").unwrap();
        assert!(d.matches("api.example.com"));
        assert!(!d.matches("example.com"));
        assert!(!d.matches("badexample.com"));
        let d = DomainPattern::parse("domain:example.com").unwrap();
        assert!(d.matches("example.com"));
        assert!(!d.matches("api.example.com"));
    }
}
