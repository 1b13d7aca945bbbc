//! What a Bash command would actually run, found with a real shell parser (tree-sitter-bash),
//! never with regexes or whitespace splitting.
//!
//! [`analyze`] returns every simple command anywhere in the script — across `&&`, `||`, `;`,
//! pipes, `&`, newlines, subshells, groups, `if`/`while`/`for`/`case` bodies, `$(…)`,
//! backticks, process substitutions, arithmetic and unquoted heredoc bodies — plus the
//! commands those commands run (`env`, `timeout`, `xargs`, `find -exec`, `sh -c`, `eval`, …),
//! every redirection, and every shell variable the script sets. When the parser had to
//! recover from an error, or meets a construct keel does not know, the analysis is marked
//! uncertain and the decision can only be Ask (fail closed).

mod unwrap;
mod word;

use std::collections::HashMap;
use std::fmt;

use tree_sitter::{Node, Parser};

use crate::wildcard::Tok;

/// Longest command keel analyses; longer ones are uncertain (and so need approval).
pub const MAX_COMMAND_BYTES: usize = 64 * 1024;
/// How many levels of `sh -c '…'`/`eval` keel parses.
const MAX_SCRIPT_DEPTH: u8 = 6;
/// How many wrappers deep keel unwraps (`nice timeout 5 env …`).
const MAX_WRAPPER_DEPTH: u8 = 16;

/// Everything a command would run, as far as keel can tell.
#[derive(Clone, Debug, Default)]
pub struct Analysis {
    /// Every simple command, outer ones before the commands they run.
    pub commands: Vec<SimpleCommand>,
    /// Every redirection in the script.
    pub redirects: Vec<Redirect>,
    /// Shell variables the script sets for the commands after them (`X=1;`, `export X=1`,
    /// `for X in …`, `${X:=…}`), as opposed to `X=1 cmd` which belongs to `cmd`.
    pub assignments: Vec<Assignment>,
    /// Why keel cannot vouch for its own reading of the command, if it cannot.
    pub uncertain: Vec<String>,
    /// The script changes directory (`cd`, `pushd`, `popd`), so relative paths after that
    /// point cannot be resolved against the call's working directory.
    pub changes_directory: bool,
}

impl Analysis {
    /// The first reason the analysis is uncertain, if it is.
    pub fn uncertainty(&self) -> Option<&str> {
        self.uncertain.first().map(String::as_str)
    }

    fn mark_uncertain(&mut self, reason: impl Into<String>) {
        let reason = reason.into();
        if !self.uncertain.contains(&reason) {
            self.uncertain.push(reason);
        }
    }
}

/// One program invocation with its arguments.
#[derive(Clone, Debug)]
pub struct SimpleCommand {
    /// Source text (for a command run by a wrapper: its words, space-separated).
    pub text: String,
    /// `NAME=value` assignments that apply to this command only.
    pub assignments: Vec<Assignment>,
    /// The program and its arguments, quotes removed.
    pub words: Vec<Word>,
    /// The command that runs this one, if another command does.
    pub launched_by: Option<Launch>,
    /// Whether this command runs others and how that affects checking it.
    pub role: Role,
    /// Something about the command that keel cannot vouch for without an explicit rule.
    pub hazard: Option<Hazard>,
    /// The command gets arguments keel cannot see (`xargs`, `find -exec … {} +`), so only
    /// rules that accept any trailing arguments can allow it.
    pub extra_args: bool,
}

impl SimpleCommand {
    /// The program name as written, if it is known before the command runs.
    pub fn program(&self) -> Option<&str> {
        self.words.first().and_then(Word::as_literal)
    }

    /// The words as rule matching sees them.
    pub(crate) fn subject(&self) -> Vec<Tok> {
        subject_of(&self.words, self.extra_args)
    }

    /// The assignments and words as rule matching sees them.
    pub(crate) fn full_subject(&self) -> Vec<Tok> {
        let mut words: Vec<Word> = self.assignments.iter().map(Assignment::as_word).collect();
        words.extend(self.words.iter().cloned());
        subject_of(&words, self.extra_args)
    }
}

/// How one simple command is run by another.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Launch {
    /// Index of the outer command in [`Analysis::commands`].
    pub parent: usize,
    /// Index of the outer command's word where this command (or the script it is part of)
    /// starts, so a rule that spells out the outer command that far also covers this one.
    pub word: usize,
    /// This command comes from shell text the outer command runs (`sh -c`, `eval`, `trap`).
    pub via_script: bool,
}

/// Turns words into the token sequence rule patterns are matched against.
pub(crate) fn subject_of(words: &[Word], extra_args: bool) -> Vec<Tok> {
    let mut out = Vec::new();
    for (i, word) in words.iter().enumerate() {
        if i > 0 {
            out.push(Tok::Sep);
        }
        for part in &word.parts {
            match part {
                WordPart::Literal(s) => out.extend(s.chars().map(Tok::Char)),
                WordPart::Dynamic(s) => out.push(Tok::Opaque(Some(s.chars().collect()))),
            }
        }
    }
    if extra_args {
        out.push(Tok::Sep);
        out.push(Tok::Opaque(None));
    }
    out
}

/// How a command that runs other commands is checked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Role {
    /// Runs no other command.
    #[default]
    Plain,
    /// Only runs its inner command (`env`, `timeout`, `nice`, `xargs`, `sh -c`, …): it is
    /// allowed exactly when what it runs is.
    Wrapper,
    /// Does something itself and runs other commands (`find -exec`, `sudo`, `eval`,
    /// `trap`): it must be allowed itself, and so must what it runs.
    Launcher,
}

/// Something that makes a command unknowable or dangerous beyond what rules about its
/// program name can judge. Such a command is never allowed by the read-only list or by a
/// wrapper; only an allow rule matching its whole text (assignments included) allows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Hazard {
    /// `sudo`/`doas`: runs with someone else's privileges.
    Sudo,
    /// `eval`: runs text as shell code.
    Eval,
    /// `source`/`.`: runs a file's contents in this shell.
    Source,
    /// The program name is only known at run time (`$CMD`, `$(…)`, a glob).
    DynamicProgram(String),
    /// Sets an environment variable that can change what programs do (`PATH`, `LD_*`, …).
    Environment(String),
    /// A shell that runs code keel cannot see (stdin, a script file, a non-literal `-c`).
    ShellCode(String),
    /// Options of a wrapper keel does not know, so it cannot tell which command it runs.
    Options(String),
}

impl fmt::Display for Hazard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Hazard::Sudo => f.write_str("it runs a command with elevated privileges (sudo)"),
            Hazard::Eval => f.write_str("`eval` runs text as shell code"),
            Hazard::Source => f.write_str("it runs a file's contents in the shell (`source`/`.`)"),
            Hazard::DynamicProgram(p) => {
                write!(f, "the program `{p}` is only known when the command runs")
            }
            Hazard::Environment(name) => write!(
                f,
                "it sets the environment variable `{name}`, which can change what programs do"
            ),
            Hazard::ShellCode(why) => write!(f, "it starts a shell and {why}"),
            Hazard::Options(opt) => write!(
                f,
                "keel does not know the option `{opt}`, so it cannot tell which command runs"
            ),
        }
    }
}

/// One shell word: literal text and parts only known at run time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Word {
    parts: Vec<WordPart>,
    glob: bool,
}

/// A piece of a [`Word`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WordPart {
    /// Text known before the command runs (quotes and escapes already removed).
    Literal(String),
    /// An expansion or substitution, as source text.
    Dynamic(String),
}

impl Word {
    /// A word that is exactly `text`.
    pub fn literal(text: impl Into<String>) -> Self {
        Word {
            parts: vec![WordPart::Literal(text.into())],
            glob: false,
        }
    }

    /// A word only known at run time, shown as `source`.
    pub fn dynamic(source: impl Into<String>) -> Self {
        Word {
            parts: vec![WordPart::Dynamic(source.into())],
            glob: false,
        }
    }

    /// The parts of the word.
    pub fn parts(&self) -> &[WordPart] {
        &self.parts
    }

    /// The word's value when it has no run-time parts.
    pub fn as_literal(&self) -> Option<&str> {
        match self.parts.as_slice() {
            [] => Some(""),
            [WordPart::Literal(s)] => Some(s),
            _ => None,
        }
    }

    /// Whether the word's value is known before the command runs (globs aside).
    pub fn is_static(&self) -> bool {
        self.as_literal().is_some()
    }

    /// Whether the word contains unquoted glob characters (`*`, `?`, `[`).
    pub fn has_glob(&self) -> bool {
        self.glob
    }

    /// The word for display: literal text with run-time parts as their source.
    pub fn display(&self) -> String {
        self.parts
            .iter()
            .map(|p| match p {
                WordPart::Literal(s) | WordPart::Dynamic(s) => s.as_str(),
            })
            .collect()
    }

    fn push_literal(&mut self, text: &str) {
        self.parts.push(WordPart::Literal(text.to_string()));
    }

    fn merge_literals(&mut self) {
        let mut merged: Vec<WordPart> = Vec::with_capacity(self.parts.len());
        for part in self.parts.drain(..) {
            match (merged.last_mut(), part) {
                (Some(WordPart::Literal(prev)), WordPart::Literal(next)) => prev.push_str(&next),
                (_, part) => merged.push(part),
            }
        }
        self.parts = merged;
    }
}

/// `NAME=value`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assignment {
    /// The variable name.
    pub name: String,
    /// The value.
    pub value: Word,
}

impl Assignment {
    /// Reads `NAME=value` from a word (as `env NAME=value cmd` passes it).
    pub fn from_word(word: &Word) -> Option<Assignment> {
        let WordPart::Literal(first) = word.parts.first()? else {
            return None;
        };
        let (name, value_start) = first.split_once('=')?;
        if !is_var_name(name) {
            return None;
        }
        let mut value = Word {
            parts: Vec::new(),
            glob: word.glob,
        };
        value.push_literal(value_start);
        value.parts.extend(word.parts.iter().skip(1).cloned());
        value.merge_literals();
        Some(Assignment {
            name: name.to_string(),
            value,
        })
    }

    fn as_word(&self) -> Word {
        let mut word = Word::literal(format!("{}=", self.name));
        word.parts.extend(self.value.parts.iter().cloned());
        word.merge_literals();
        word
    }

    /// Whether setting this variable can change what programs do beyond their output style.
    pub fn is_harmless(&self) -> bool {
        harmless_variable(&self.name)
    }
}

fn is_var_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Environment variables that only change logging, colours, locale or similar. Everything
/// else counts as able to change which program runs or what it loads (`PATH`, `LD_*`,
/// `DYLD_*`, `BASH_ENV`, `ENV`, `PROMPT_COMMAND`, `IFS`, `NODE_OPTIONS`, `PYTHON*`,
/// `PERL5*`, `RUBY*`, `GIT_*`, `RUSTC_WRAPPER`, `RUSTFLAGS`, `GOFLAGS`, `npm_config_*`, …):
/// an allow-list because that list has no end.
const HARMLESS_VARIABLES: &[&str] = &[
    "RUST_LOG",
    "RUST_BACKTRACE",
    "RUST_LIB_BACKTRACE",
    "RUST_TEST_THREADS",
    "RUST_TEST_NOCAPTURE",
    "RUST_MIN_STACK",
    "CARGO_TERM_COLOR",
    "CARGO_TERM_VERBOSE",
    "CARGO_TERM_PROGRESS_WHEN",
    "CARGO_INCREMENTAL",
    "CARGO_BUILD_JOBS",
    "NO_COLOR",
    "FORCE_COLOR",
    "CLICOLOR",
    "CLICOLOR_FORCE",
    "COLORTERM",
    "TERM",
    "COLUMNS",
    "LINES",
    "LANG",
    "LANGUAGE",
    "TZ",
    "DEBUG",
    "VERBOSE",
    "CI",
    "NODE_ENV",
    "PYTHONUNBUFFERED",
    "PYTHONDONTWRITEBYTECODE",
    "GIT_PAGER_IN_USE",
];

fn harmless_variable(name: &str) -> bool {
    if HARMLESS_VARIABLES.contains(&name) || name.starts_with("LC_") {
        return true;
    }
    // Lower-case names are the script's own variables, except the few lower-case ones
    // programs read from the environment.
    let lower = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    lower
        && !name.starts_with("npm_config_")
        && !name.starts_with("yarn_")
        && !name.ends_with("_proxy")
}

/// What a redirection does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RedirectKind {
    /// Creates or changes the target file (`>`, `>>`, `&>`, `&>>`, `>|`, `>& file`).
    Write,
    /// Reads the target file (`<`).
    Read,
    /// Neither: descriptor duplication or closing, `/dev/null`, `/dev/stdout`, heredocs.
    Other,
}

/// One redirection.
#[derive(Clone, Debug)]
pub struct Redirect {
    /// What it does to its target.
    pub kind: RedirectKind,
    /// The file (or descriptor) it names.
    pub target: Word,
    /// Source text.
    pub text: String,
    /// The simple command it belongs to, when it belongs to one.
    pub command: Option<usize>,
}

/// Device files that are not files anyone's work lives in.
const HARMLESS_DEVICES: &[&str] = &[
    "/dev/null",
    "/dev/stdout",
    "/dev/stderr",
    "/dev/stdin",
    "/dev/tty",
];

/// Reads a command the way bash would and reports everything it would run.
pub fn analyze(command: &str) -> Analysis {
    let mut out = Analysis::default();
    analyze_into(command, &mut out, None, 0);
    out
}

fn analyze_into(src: &str, out: &mut Analysis, launched_by: Option<Launch>, depth: u8) {
    if src.len() > MAX_COMMAND_BYTES {
        out.mark_uncertain(format!(
            "the command is longer than {} KiB, more than keel analyses",
            MAX_COMMAND_BYTES / 1024
        ));
        return;
    }
    if src
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        out.mark_uncertain("the command contains control characters (other than tab and newline)");
    }
    if src.chars().any(is_invisible) {
        out.mark_uncertain(
            "the command contains invisible Unicode characters (zero-width or direction marks)",
        );
    }
    if trips_brace_scanner(src) {
        // Not parsed at all: the grammar's C scanner would read out of bounds.
        out.mark_uncertain(
            "the command has `{` followed by a non-ASCII character, which the shell parser \
             cannot read safely",
        );
        return;
    }
    let mut parser = Parser::new();
    if parser
        .set_language(&tree_sitter_bash::LANGUAGE.into())
        .is_err()
    {
        out.mark_uncertain("the shell grammar could not be loaded");
        return;
    }
    let Some(tree) = parser.parse(src, None) else {
        out.mark_uncertain("the shell parser gave up on the command");
        return;
    };
    let root = tree.root_node();
    if root.has_error() {
        out.mark_uncertain(
            "the shell parser could not fully understand the command (an unclosed quote, \
             bracket or heredoc, or syntax keel does not support)",
        );
    }
    let mut walker = Walker {
        src,
        out,
        launched_by,
        depth,
        by_node: HashMap::new(),
        quoted: Vec::new(),
        leaves: Vec::new(),
    };
    walker.walk(root);
    let leaves = std::mem::take(&mut walker.leaves);
    let quoted = std::mem::take(&mut walker.quoted);
    if let Some(at) = first_uncovered(src, leaves) {
        let snippet: String = src.get(at..).unwrap_or("").chars().take(12).collect();
        out.mark_uncertain(format!(
            "the parser skipped part of the command (at `{}`)",
            snippet.escape_debug()
        ));
    }
    if has_unquoted_escaped_blank(src, &quoted) {
        out.mark_uncertain(
            "the command has a backslash before a space or tab outside quotes, which the \
             parser reads differently from bash",
        );
    }
    if has_joining_continuation(src, &quoted) {
        out.mark_uncertain(
            "a backslash-newline joins two parts of a word, which the parser reads as two \
             words but bash as one",
        );
    }
}

/// Nodes whose `word` children are shell words, which never contain an unescaped blank
/// (unlike the pattern words inside `${x//a/ }`).
const WORD_PARENTS: &[&str] = &[
    "command",
    "command_name",
    "concatenation",
    "file_redirect",
    "variable_assignment",
    "declaration_command",
    "unset_command",
    "for_statement",
];

/// Statements whose keyword tokens (`then`, `done`, `{`, `!`, …) bash only recognises as
/// separate words.
const KEYWORD_PARENTS: &[&str] = &[
    "compound_statement",
    "negated_command",
    "if_statement",
    "elif_clause",
    "else_clause",
    "while_statement",
    "for_statement",
    "c_style_for_statement",
    "case_statement",
    "do_group",
    "function_definition",
    "declaration_command",
    "unset_command",
    "test_command",
];

/// One child of a node, with its field name, collected once per node: `Node::child(i)`
/// walks from the first child every time, and every check needs the children.
#[derive(Clone, Copy)]
struct Child<'t> {
    node: Node<'t>,
    field: Option<&'t str>,
}

fn children_of<'t>(node: Node<'t>) -> Vec<Child<'t>> {
    let mut out = Vec::with_capacity(node.child_count() as usize);
    let mut cursor = node.walk();
    let mut more = cursor.goto_first_child();
    while more {
        out.push(Child {
            node: cursor.node(),
            field: cursor.field_name(),
        });
        more = cursor.goto_next_sibling();
    }
    out
}

/// Whether one of a node's keyword tokens is glued to the text after it (`else#`, `{a`).
fn keyword_glued(children: &[Child<'_>], src: &str) -> bool {
    let bytes = src.as_bytes();
    children.iter().any(|c| {
        let kind = c.node.kind();
        let keyword = !c.node.is_named()
            && (kind.chars().all(|ch| ch.is_ascii_alphabetic())
                || matches!(kind, "{" | "}" | "!" | "[[" | "]]"));
        keyword
            && bytes.get(c.node.end_byte()).is_some_and(|b| {
                !(b.is_ascii_whitespace()
                    || matches!(b, b';' | b'&' | b'|' | b'(' | b')' | b'<' | b'>'))
            })
    })
}

/// Whether a bare newline (not a `\`-newline continuation) separates two parts of a node.
fn parts_span_lines(children: &[Child<'_>], src: &str) -> bool {
    let mut previous_end: Option<usize> = None;
    for c in children {
        if let Some(end) = previous_end
            && c.node.start_byte() > end
            && has_bare_newline(src.get(end..c.node.start_byte()).unwrap_or(""))
        {
            return true;
        }
        previous_end = Some(previous_end.map_or(c.node.end_byte(), |e| e.max(c.node.end_byte())));
    }
    false
}

/// Whether `text` has a newline not escaped by a backslash.
fn has_bare_newline(text: &str) -> bool {
    let mut backslashes = 0usize;
    for b in text.bytes() {
        if b == b'\n' && backslashes.is_multiple_of(2) {
            return true;
        }
        backslashes = if b == b'\\' { backslashes + 1 } else { 0 };
    }
    false
}

/// Whether a node's children follow one another with nothing between them.
fn children_contiguous(node: Node<'_>, children: &[Child<'_>]) -> bool {
    let mut expected = node.start_byte();
    for c in children {
        if c.node.start_byte() != expected {
            return false;
        }
        expected = c.node.end_byte();
    }
    expected == node.end_byte()
}

/// Whether the `{`, `!`, `[` or `[[` opening a node is glued to the text after it.
fn glued_opener(text: &str) -> bool {
    let rest = ["[[", "[", "{", "!"]
        .iter()
        .find_map(|opener| text.strip_prefix(opener))
        .unwrap_or(" ");
    !rest.starts_with(char::is_whitespace)
}

/// Whether an assignment node assigns to a valid identifier (or an element of one).
fn assigns_to_identifier(node: Node<'_>, src: &str) -> bool {
    let text = |n: Node<'_>| src.get(n.start_byte()..n.end_byte()).unwrap_or("");
    match node.child_by_field_name("name") {
        Some(name) if name.kind() == "subscript" => name
            .child_by_field_name("name")
            .is_some_and(|v| is_var_name(text(v))),
        Some(name) => is_var_name(text(name)),
        None => true,
    }
}

/// Whether a file descriptor is digits or `{name}`.
fn valid_descriptor(text: &str) -> bool {
    text.bytes().all(|b| b.is_ascii_digit())
        || text
            .strip_prefix('{')
            .and_then(|t| t.strip_suffix('}'))
            .is_some_and(is_var_name)
}

/// An unquoted `\` + newline with non-blank text on both sides: bash removes it and joins
/// the two parts into one word (`cu\⏎rl` is `curl`), tree-sitter-bash splits them.
fn has_joining_continuation(src: &str, quoted: &[(usize, usize)]) -> bool {
    let bytes = src.as_bytes();
    let mut backslashes = 0usize;
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'\n' && !backslashes.is_multiple_of(2) {
            let at = i - 1;
            let before = at.checked_sub(1).and_then(|j| bytes.get(j));
            let after = bytes.get(i + 1);
            let glued = before.is_some_and(|c| !c.is_ascii_whitespace())
                && after.is_some_and(|c| !c.is_ascii_whitespace());
            if glued && !quoted.iter().any(|&(start, end)| start <= at && at < end) {
                return true;
            }
        }
        backslashes = if b == b'\\' { backslashes + 1 } else { 0 };
    }
    false
}

/// Whether `text` has a space, tab or newline that is not escaped by a backslash.
fn has_bare_blank(text: &str) -> bool {
    let mut backslashes = 0usize;
    for b in text.bytes() {
        if matches!(b, b'\n' | b' ' | b'\t') && backslashes.is_multiple_of(2) {
            return true;
        }
        backslashes = if b == b'\\' { backslashes + 1 } else { 0 };
    }
    false
}

/// The first byte of `src` that is neither blank, nor a `\`-newline, nor inside one of the
/// leaf tokens the parser produced: input the parser silently skipped.
fn first_uncovered(src: &str, mut leaves: Vec<(usize, usize)>) -> Option<usize> {
    leaves.sort_unstable();
    let bytes = src.as_bytes();
    let mut covered_to = 0usize;
    let mut next_leaf = 0usize;
    let mut i = 0usize;
    while i < bytes.len() {
        while next_leaf < leaves.len() && leaves[next_leaf].0 <= i {
            covered_to = covered_to.max(leaves[next_leaf].1);
            next_leaf += 1;
        }
        if i < covered_to || bytes[i].is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if bytes[i] == b'\\' && bytes.get(i + 1) == Some(&b'\n') {
            i += 2;
            continue;
        }
        if bytes[i] == b'\\' && bytes.get(i + 1) == Some(&b'\r') && bytes.get(i + 2) == Some(&b'\n')
        {
            i += 3;
            continue;
        }
        return Some(i);
    }
    None
}

/// tree-sitter-bash treats an unquoted `\ ` as whitespace, while bash makes it part of a
/// word; finding one outside the `quoted` byte ranges means keel's reading may be wrong.
fn has_unquoted_escaped_blank(src: &str, quoted: &[(usize, usize)]) -> bool {
    let bytes = src.as_bytes();
    let mut backslashes = 0usize;
    for (i, &b) in bytes.iter().enumerate() {
        if (b == b' ' || b == b'\t') && !backslashes.is_multiple_of(2) {
            let at = i - 1;
            if !quoted.iter().any(|&(start, end)| start <= at && at < end) {
                return true;
            }
        }
        backslashes = if b == b'\\' { backslashes + 1 } else { 0 };
    }
    false
}

/// tree-sitter-bash 0.25.1's scanner passes the character after `{` (and after `{1..`) to
/// C's `isdigit`, which reads outside its table for code points above 255 and can crash the
/// process (tree-sitter-bash issue #337, fix not yet released). Such input is never parsed.
fn trips_brace_scanner(src: &str) -> bool {
    let bytes = src.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'{' {
            i += 1;
            continue;
        }
        let mut j = i + 1;
        while j < bytes.len() && bytes[j].is_ascii_digit() {
            j += 1;
        }
        if bytes.get(j) == Some(&b'.') && bytes.get(j + 1) == Some(&b'.') {
            j += 2;
            while j < bytes.len() && bytes[j].is_ascii_digit() {
                j += 1;
            }
        }
        if bytes.get(j).is_some_and(|b| !b.is_ascii()) {
            return true;
        }
        i += 1;
    }
    false
}

/// Zero-width and bidirectional-control characters, which make a command read differently
/// from what runs.
fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{200b}'..='\u{200f}'
        | '\u{202a}'..='\u{202e}'
        | '\u{2060}'..='\u{2064}'
        | '\u{2066}'..='\u{2069}'
        | '\u{feff}'
        | '\u{00ad}'
        | '\u{180e}')
}

/// Node kinds keel understands; anything else makes the analysis uncertain.
const KNOWN_KINDS: &[&str] = &[
    "program",
    "list",
    "pipeline",
    "redirected_statement",
    "command",
    "command_name",
    "subshell",
    "compound_statement",
    "if_statement",
    "elif_clause",
    "else_clause",
    "while_statement",
    "for_statement",
    "c_style_for_statement",
    "case_statement",
    "case_item",
    "do_group",
    "negated_command",
    "test_command",
    "declaration_command",
    "unset_command",
    "variable_assignment",
    "variable_assignments",
    "function_definition",
    "comment",
    "word",
    "string",
    "string_content",
    "raw_string",
    "ansi_c_string",
    "concatenation",
    "simple_expansion",
    "expansion",
    "command_substitution",
    "process_substitution",
    "arithmetic_expansion",
    "translated_string",
    "number",
    "variable_name",
    "special_variable_name",
    "subscript",
    "array",
    "brace_expression",
    "binary_expression",
    "unary_expression",
    "ternary_expression",
    "postfix_expression",
    "parenthesized_expression",
    "test_operator",
    "file_redirect",
    "file_descriptor",
    "heredoc_redirect",
    "heredoc_start",
    "heredoc_body",
    "heredoc_content",
    "heredoc_end",
    "herestring_redirect",
    "regex",
    "extglob_pattern",
    "ERROR",
];

/// Which simple command a node's direct children belong to, for attributing redirections.
#[derive(Clone, Copy)]
enum Owner {
    None,
    /// The node's children are the parts of this command.
    Command(usize),
    /// A `redirected_statement`: its redirections belong to its body, when that is a command.
    Body(usize),
}

struct Walker<'s, 'o> {
    src: &'s str,
    out: &'o mut Analysis,
    launched_by: Option<Launch>,
    depth: u8,
    /// Node id of each `command` node → index of its simple command.
    by_node: HashMap<usize, usize>,
    /// Byte ranges where a backslash is not an unquoted escape (quotes, heredocs, comments).
    quoted: Vec<(usize, usize)>,
    /// Byte ranges of every leaf token, to find input the parser skipped.
    leaves: Vec<(usize, usize)>,
}

impl Walker<'_, '_> {
    fn text(&self, node: Node<'_>) -> &str {
        self.src
            .get(node.start_byte()..node.end_byte())
            .unwrap_or("")
    }

    /// Visits every node, iteratively: a 3000-command `&&` chain nests 3000 deep, and the
    /// input is capped at [`MAX_COMMAND_BYTES`], so no depth limit is needed.
    fn walk(&mut self, root: Node<'_>) {
        let mut stack: Vec<(Node<'_>, Owner)> = vec![(root, Owner::None)];
        while let Some((node, owner)) = stack.pop() {
            let children = children_of(node);
            let mut child_owner = Owner::None;
            if children.is_empty() {
                self.check_token(node);
            }
            if node.is_named() || node.is_error() {
                let kind = node.kind();
                self.check_reading(node, kind, &children);
                match kind {
                    "command" => {
                        if let Some(idx) = self.command(node, &children) {
                            child_owner = Owner::Command(idx);
                        }
                    }
                    "redirected_statement" => {
                        if let Some(body) = node.child_by_field_name("body") {
                            child_owner = Owner::Body(body.id());
                        }
                    }
                    "variable_assignment" if !matches!(owner, Owner::Command(_)) => {
                        self.shell_assignment(node);
                    }
                    "for_statement" => {
                        if let Some(var) = node.child_by_field_name("variable") {
                            let name = self.text(var).to_string();
                            self.out.assignments.push(Assignment {
                                name,
                                value: Word::dynamic("(loop value)"),
                            });
                        }
                    }
                    "expansion" => self.expansion_assignment(&children),
                    "function_definition" => {
                        let name = node
                            .child_by_field_name("name")
                            .map(|n| self.text(n).to_string())
                            .unwrap_or_default();
                        self.out.mark_uncertain(format!(
                            "the command defines a shell function (`{name}`), and keel does not \
                             follow calls to it"
                        ));
                    }
                    "file_redirect" => self.redirect(node, &children, owner),
                    _ => {}
                }
            }
            for child in children.into_iter().rev() {
                stack.push((child.node, child_owner));
            }
        }
    }

    /// Checks a leaf token: records its range, and an operator or keyword token must be
    /// exactly its own text (tree-sitter-bash sometimes folds a neighbouring word into one,
    /// `-f<<` for `<<`).
    fn check_token(&mut self, node: Node<'_>) {
        self.leaves.push((node.start_byte(), node.end_byte()));
        if !node.is_named() && !node.is_error() && !node.is_missing() {
            let text = self.text(node);
            if text != node.kind() {
                self.out.mark_uncertain(format!(
                    "the parser read `{}` as the operator `{}`",
                    text.escape_debug(),
                    node.kind().escape_debug()
                ));
            }
        }
    }

    /// Checks that tree-sitter-bash read `node` the way bash would. Each check comes from a
    /// difference found by running generated commands through both (the
    /// `uncertain_on_parser_divergences` test lists them); a hit makes the analysis
    /// uncertain.
    fn check_reading(&mut self, node: Node<'_>, kind: &str, children: &[Child<'_>]) {
        if !KNOWN_KINDS.contains(&kind) {
            self.out.mark_uncertain(format!(
                "keel does not understand the shell construct `{kind}`"
            ));
        }
        let literal_text = matches!(
            kind,
            "string"
                | "raw_string"
                | "ansi_c_string"
                | "translated_string"
                | "heredoc_content"
                | "comment"
        ) || (kind == "heredoc_body"
            && !children.iter().any(|c| c.node.is_named()));
        if literal_text {
            self.quoted.push((node.start_byte(), node.end_byte()));
        }
        let text = self.text(node);
        let problem = match kind {
            // Bash only reads `{`, `!`, `[`, `[[` as keywords when a blank follows: `{}`,
            // `!rm`, `[r]m` are words (globs) to it.
            "compound_statement" | "negated_command" | "test_command" if glued_opener(text) => {
                Some("read a word as a keyword")
            }
            // Bash assigns only to identifiers; `?x=1` is a word (a glob) to it.
            "variable_assignment" if !assigns_to_identifier(node, self.src) => {
                Some("read a word as an assignment")
            }
            // Descriptors are digits (or `{name}`); `-2>&1` runs a program `-2`.
            "file_descriptor" if !valid_descriptor(text) => {
                Some("read part of a word as a file descriptor")
            }
            // The parts of one word touch; a gap means the parser merged words.
            "concatenation" if !children_contiguous(node, children) => {
                Some("merged separate words into one")
            }
            // The next word (to bash: the program) hung off a redirection as a second target.
            "file_redirect"
                if children
                    .iter()
                    .filter(|c| c.field == Some("destination"))
                    .count()
                    > 1 =>
            {
                Some("read a redirection with two targets")
            }
            // A newline ends a simple command in bash.
            "command" | "variable_assignment" if parts_span_lines(children, self.src) => {
                Some("read two lines as one command")
            }
            // Keywords glued to text (`else#`).
            k if KEYWORD_PARENTS.contains(&k) && keyword_glued(children, self.src) => {
                Some("read a keyword glued to text")
            }
            // Bash ends an unquoted word at a blank or newline (`git diff⏎\rm` is two
            // commands).
            k if WORD_PARENTS.contains(&k)
                && children
                    .iter()
                    .any(|c| c.node.kind() == "word" && has_bare_blank(self.text(c.node))) =>
            {
                Some("read a blank or line break as part of a word")
            }
            _ => None,
        };
        if let Some(problem) = problem {
            self.out.mark_uncertain(format!(
                "the parser {problem}, which bash would not, so keel cannot tell what runs"
            ));
        }
    }

    /// Records a `command` node as a simple command and unwraps what it runs.
    fn command(&mut self, node: Node<'_>, children: &[Child<'_>]) -> Option<usize> {
        let mut assignments = Vec::new();
        let mut words: Vec<Word> = Vec::new();
        let mut pending_dollar: Option<usize> = None;
        // Where the previous word, assignment or redirection ended: a word starting right
        // there is, to bash, the same word (`'r'\m` is `rm`; `>f"x"y` is one target), which
        // tree-sitter-bash sometimes splits.
        let mut previous_part_end: Option<usize> = None;
        for &Child { node: child, field } in children {
            match (field, child.kind()) {
                (Some("name" | "argument"), _) => {
                    if let Some(dollar_end) = pending_dollar.take()
                        && dollar_end == child.start_byte()
                    {
                        // `$"…"` (locale translation) reaches us as `$` plus a string.
                        if let Some(last) = words.last_mut() {
                            *last = Word::dynamic(format!("${}", self.text(child)));
                        }
                        previous_part_end = Some(child.end_byte());
                        continue;
                    }
                    if previous_part_end == Some(child.start_byte()) {
                        self.out.mark_uncertain(
                            "the parser split one word in two, so keel cannot tell which \
                             program runs",
                        );
                    }
                    previous_part_end = Some(child.end_byte());
                    if !child.is_named() && child.kind() == "$" {
                        pending_dollar = Some(child.end_byte());
                    }
                    words.push(word::resolve(child, self.src));
                }
                (None, "variable_assignment") => {
                    previous_part_end = Some(child.end_byte());
                    if let Some(a) = self.assignment(child) {
                        assignments.push(a);
                    }
                }
                _ => {
                    if child.is_named() {
                        previous_part_end = Some(child.end_byte());
                    }
                }
            }
        }
        if words.is_empty() {
            // Only assignments (and perhaps redirections): they set shell variables, which
            // the walk records when it reaches them.
            return None;
        }
        let idx = self.push_command(
            self.text(node).to_string(),
            assignments,
            words,
            self.launched_by,
            false,
        );
        self.by_node.insert(node.id(), idx);
        self.expand(idx, 0);
        Some(idx)
    }

    fn push_command(
        &mut self,
        text: String,
        assignments: Vec<Assignment>,
        words: Vec<Word>,
        launched_by: Option<Launch>,
        extra_args: bool,
    ) -> usize {
        let mut hazard = assignments
            .iter()
            .find(|a| !a.is_harmless())
            .map(|a| Hazard::Environment(a.name.clone()));
        if let Some(program) = words.first() {
            match program.as_literal() {
                Some(name) if program.has_glob() => {
                    hazard = Some(Hazard::DynamicProgram(name.to_string()));
                }
                Some("!") => {
                    // Bash reads a leading `!` as negation, even twice (`! ! rm x`).
                    self.out.mark_uncertain(
                        "`!` stands where the parser expected a program, but bash reads it as \
                         negation",
                    );
                }
                Some(name) => {
                    if name.chars().any(|c| !c.is_ascii() || c.is_ascii_control()) {
                        self.out.mark_uncertain(format!(
                            "the program name `{}` contains unusual characters (non-ASCII \
                             look-alikes or control characters)",
                            name.escape_debug()
                        ));
                    }
                }
                None => hazard = Some(Hazard::DynamicProgram(program.display())),
            }
        }
        self.out.commands.push(SimpleCommand {
            text,
            assignments,
            words,
            launched_by,
            role: Role::Plain,
            hazard,
            extra_args,
        });
        self.out.commands.len() - 1
    }

    /// Classifies command `idx` and records the commands and scripts it runs.
    fn expand(&mut self, idx: usize, wrapper_depth: u8) {
        if wrapper_depth > MAX_WRAPPER_DEPTH {
            self.out
                .mark_uncertain("the command nests more wrappers than keel unwraps");
            return;
        }
        let classification = unwrap::classify(&self.out.commands[idx].words);
        if classification.changes_directory {
            self.out.changes_directory = true;
        }
        {
            let cmd = &mut self.out.commands[idx];
            cmd.role = classification.role;
            if cmd.hazard.is_none() {
                cmd.hazard = classification.hazard;
            }
        }
        for inner in classification.inner {
            let text = inner
                .words
                .iter()
                .map(Word::display)
                .collect::<Vec<_>>()
                .join(" ");
            let launch = Launch {
                parent: idx,
                word: inner.offset,
                via_script: false,
            };
            let child =
                self.push_command(text, inner.env, inner.words, Some(launch), inner.extra_args);
            self.expand(child, wrapper_depth + 1);
        }
        for (script, word) in classification.scripts {
            if self.depth >= MAX_SCRIPT_DEPTH {
                self.out
                    .mark_uncertain("the command nests shells (`sh -c`, `eval`) too deeply");
                continue;
            }
            let launch = Launch {
                parent: idx,
                word,
                via_script: true,
            };
            analyze_into(&script, self.out, Some(launch), self.depth + 1);
        }
    }

    fn assignment(&self, node: Node<'_>) -> Option<Assignment> {
        let name_node = node.child_by_field_name("name")?;
        let name_node = if name_node.kind() == "subscript" {
            name_node.child_by_field_name("name").unwrap_or(name_node)
        } else {
            name_node
        };
        let value = node
            .child_by_field_name("value")
            .map(|v| word::resolve(v, self.src))
            .unwrap_or_else(|| Word::literal(""));
        Some(Assignment {
            name: self.text(name_node).to_string(),
            value,
        })
    }

    fn shell_assignment(&mut self, node: Node<'_>) {
        if let Some(a) = self.assignment(node) {
            self.out.assignments.push(a);
        }
    }

    /// `${NAME=value}` and `${NAME:=value}` assign as a side effect.
    fn expansion_assignment(&mut self, children: &[Child<'_>]) {
        let assigns = children
            .iter()
            .any(|c| !c.node.is_named() && matches!(c.node.kind(), "=" | ":="));
        if !assigns {
            return;
        }
        let name = children
            .iter()
            .find(|c| c.node.kind() == "variable_name")
            .map(|c| self.text(c.node).to_string());
        if let Some(name) = name {
            self.out.assignments.push(Assignment {
                name,
                value: Word::dynamic("(expansion default)"),
            });
        }
    }

    fn redirect(&mut self, node: Node<'_>, children: &[Child<'_>], owner: Owner) {
        let command = match owner {
            Owner::Command(idx) => Some(idx),
            Owner::Body(id) => self.by_node.get(&id).copied(),
            Owner::None => None,
        };
        let operator = children
            .iter()
            .find(|c| !c.node.is_named())
            .map(|c| c.node.kind())
            .unwrap_or("");
        let Some(destination) = children
            .iter()
            .find(|c| c.field == Some("destination"))
            .map(|c| c.node)
        else {
            return;
        };
        let target = word::resolve(destination, self.src);
        let literal = target.as_literal();
        let is_fd = literal.is_some_and(|t| t == "-" || t.chars().all(|c| c.is_ascii_digit()));
        let harmless_device = literal.is_some_and(|t| {
            HARMLESS_DEVICES.contains(&t)
                || t.strip_prefix("/dev/fd/")
                    .is_some_and(|n| n.chars().all(|c| c.is_ascii_digit()))
        });
        let kind = match operator {
            ">" | ">>" | "&>" | "&>>" | ">|" if !harmless_device => RedirectKind::Write,
            ">&" if !is_fd && !harmless_device => RedirectKind::Write,
            "<" if !harmless_device => RedirectKind::Read,
            _ => RedirectKind::Other,
        };
        self.out.redirects.push(Redirect {
            kind,
            target,
            text: self.text(node).to_string(),
            command,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn programs(cmd: &str) -> Vec<String> {
        analyze(cmd)
            .commands
            .iter()
            .map(|c| {
                c.words
                    .iter()
                    .map(Word::display)
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect()
    }

    #[test]
    fn finds_commands_everywhere() {
        assert_eq!(programs("git diff; rm -rf x"), ["git diff", "rm -rf x"]);
        assert_eq!(
            programs("a && b || c | d |& e & f"),
            ["a", "b", "c", "d", "e", "f"]
        );
        assert_eq!(programs("(a); { b; }"), ["a", "b"]);
        assert_eq!(programs("git diff $(rm x)"), ["git diff $(rm x)", "rm x"]);
        assert_eq!(programs("git diff `rm x`"), ["git diff `rm x`", "rm x"]);
        assert_eq!(programs("git diff <(rm x)"), ["git diff <(rm x)", "rm x"]);
        assert_eq!(programs("FOO=$(rm x) git diff"), ["git diff", "rm x"]);
        assert_eq!(programs("cat <<EOF\n$(rm x)\nEOF"), ["cat", "rm x"]);
        assert_eq!(programs("cat <<'EOF'\n$(rm x)\nEOF"), ["cat"]);
        assert_eq!(
            programs("if a; then b; elif c; then d; else e; fi"),
            ["a", "b", "c", "d", "e"]
        );
        assert_eq!(
            programs("for i in 1; do a; done; while b; do c; done"),
            ["a", "b", "c"]
        );
        assert_eq!(programs("case x in y) a;; esac"), ["a"]);
        assert_eq!(
            programs("echo $(( $(a) + 1 ))"),
            ["echo $(( $(a) + 1 ))", "a"]
        );
    }

    #[test]
    fn removes_quotes_and_escapes() {
        assert_eq!(programs("'r''m' x"), ["rm x"]);
        assert_eq!(programs("r\\m x"), ["rm x"]);
        assert_eq!(programs("$'\\x72m' x"), ["rm x"]);
        let a = analyze("echo \"a b\" c");
        assert_eq!(a.commands[0].words.len(), 3);
        assert_eq!(a.commands[0].words[1].as_literal(), Some("a b"));
    }

    #[test]
    fn unwraps_wrappers() {
        assert_eq!(programs("env -i A=1 rm x"), ["env -i A=1 rm x", "rm x"]);
        assert_eq!(
            programs("timeout -s KILL 5 rm x"),
            ["timeout -s KILL 5 rm x", "rm x"]
        );
        assert_eq!(
            programs("nice -n 5 nohup rm x"),
            ["nice -n 5 nohup rm x", "nohup rm x", "rm x"]
        );
        assert_eq!(programs("xargs -0 rm -f"), ["xargs -0 rm -f", "rm -f"]);
        assert_eq!(
            programs("find . -name x -exec rm {} \\;"),
            ["find . -name x -exec rm {} ;", "rm {}"]
        );
        assert_eq!(programs("bash -c 'a; b'"), ["bash -c a; b", "a", "b"]);
        assert_eq!(programs("eval 'a | b'"), ["eval a | b", "a", "b"]);
        let a = analyze("xargs rm");
        assert!(a.commands[1].extra_args);
    }

    #[test]
    fn redirects_are_classified() {
        let a = analyze("echo a > f 2>&1 >> g &> h < i 2>/dev/null >&2");
        let kinds: Vec<(RedirectKind, String)> = a
            .redirects
            .iter()
            .map(|r| (r.kind, r.target.display()))
            .collect();
        assert_eq!(
            kinds,
            [
                (RedirectKind::Write, "f".to_string()),
                (RedirectKind::Other, "1".to_string()),
                (RedirectKind::Write, "g".to_string()),
                (RedirectKind::Write, "h".to_string()),
                (RedirectKind::Read, "i".to_string()),
                (RedirectKind::Other, "/dev/null".to_string()),
                (RedirectKind::Other, "2".to_string()),
            ]
        );
        assert_eq!(a.redirects[0].command, Some(0));
    }

    #[test]
    fn uncertain_on_errors_and_odd_characters() {
        assert!(analyze("echo 'abc").uncertainty().is_some());
        assert!(analyze("g\u{456}t diff").uncertainty().is_some());
        assert!(analyze("git diff\u{200b}").uncertainty().is_some());
        assert!(analyze("echo \u{7}").uncertainty().is_some());
        assert!(analyze("f(){ rm x; }; f").uncertainty().is_some());
        assert!(analyze("git diff && echo ok").uncertainty().is_none());
        // Input that would crash tree-sitter-bash's scanner is not parsed.
        assert!(analyze("{\u{e01ee}").uncertainty().is_some());
        assert!(analyze("echo {1..\u{31860}").uncertainty().is_some());
        assert!(analyze("echo {a} é").uncertainty().is_none());
    }

    /// Each input here is read differently by tree-sitter-bash and by bash (found by running
    /// generated commands through both and comparing what bash executed); keel must notice.
    #[test]
    fn uncertain_on_parser_divergences() {
        let divergent = [
            "git diff\n\\ &",                // `\ ` is a blank to tree-sitter, a word to bash
            "echo a\\ b",                    // same
            "git diff\n\\rm -rf x",          // `\n\\rm` glued onto the word before
            "cu\\\nrl x",                    // bash joins `cu\⏎rl` into `curl`
            "[r]m -rf x",                    // a glob to bash, a test to tree-sitter
            "[[a ]]",                        // same
            "'r'\\m x",                      // split in two; bash runs `rm`
            "- 2>&1",                        // the program `-` is dropped
            "x=1\\\n  } {",                  // a word with a blank in it
            "> o >&2 ';' >&2 :^",            // the program hangs off a redirection
            "echo 2>&1 a",                   // an argument hangs off a redirection
            "{}",                            // a word to bash, a group to tree-sitter
            "?x=1",                          // a glob to bash, an assignment to tree-sitter
            "-2>&1",                         // a program to bash, a descriptor to tree-sitter
            "$'\\x6b' `` aa",                // separate words merged into one
            "x=1cc -f<<EOF\nzz\nEOF\n",      // `-f` folded into the `<<` token
            "! ! rm x",                      // a second negation read as a program `!`
            "x=1 >&2esac\"ff\"\\# $\"tt\"",  // one word split across a redirection
            "doneaa\n\\\n  }, x=1",          // two lines read as one command
            "else# c\n=$((1+2)) [[ -n a ]]", // a keyword glued to text
        ];
        for command in divergent {
            assert!(analyze(command).uncertainty().is_some(), "{command:?}");
        }
        let fine = [
            "git diff \\\nHEAD",
            "echo 'a\\\nb'",
            "[ -f a ] && [[ -d b ]]",
            "{ a; } && ! b",
            "a[1]=x; echo \"a\"'b'$c 2>&1",
            "echo hi>f; cat<f|wc",
            "echo \"${PATH//:/ }\" ${x// /_}",
            "if a; then b; else c; fi; for i in 1 2; do d; done",
            "cat <<EOF | grep x\nbody\nEOF\necho ${a}b ${!x}",
            "echo 'a\\ b' \"c\\ d\" \\\\ x",
        ];
        for command in fine {
            assert_eq!(analyze(command).uncertainty(), None, "{command:?}");
        }
    }
}
