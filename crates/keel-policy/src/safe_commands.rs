//! Commands that only read, allowed without a rule in every mode (unless a deny or ask rule
//! matches), like Codex's "known safe commands" and Claude Code's read-only auto-allow.
//!
//! The list is deliberately short and each entry is checked against the options that would
//! make it write or run something else (`sort -o`, `git diff --output`, `sed -i`, `find
//! -delete`, `rg --pre`, …). When in doubt a command is not on the list, which only means
//! the user is asked.
//!
//! Reads by these commands are not checked against `Read(…)` deny rules (their arguments are
//! not reliably paths); redirections are (`< file` is a read, `> file` is an edit).

use crate::shell::Word;

/// Programs that are read-only whatever their arguments, even arguments keel cannot see.
const ANY_ARGS: &[&str] = &[
    "ls", "pwd", "cat", "head", "tail", "wc", "echo", "true", "false", "which", "type", "stat",
    "du", "df", "whoami", "id", "basename", "dirname", "realpath", "readlink", "diff", "cmp",
    "grep", "egrep", "fgrep", "cut", "tr", "nl", "seq", "column", "jq", "uname", ":", "test", "[",
    "printenv", "cd", "pushd", "popd",
];

/// Whether `words` (a simple command's argv) only reads. `extra_args` means the command gets
/// arguments keel cannot see (from `xargs`), which only the [`ANY_ARGS`] programs tolerate.
pub fn is_read_only(words: &[Word], extra_args: bool) -> bool {
    let Some(program) = words.first().and_then(Word::as_literal) else {
        return false;
    };
    // `./cat` or `/tmp/cat` is whatever file that is, not the system tool.
    if program.contains('/') {
        return false;
    }
    if ANY_ARGS.contains(&program) {
        return true;
    }
    if extra_args {
        return false;
    }
    let Some(args) = words[1..]
        .iter()
        .map(Word::as_literal)
        .collect::<Option<Vec<&str>>>()
    else {
        return false;
    };
    match program {
        "printf" => !args
            .iter()
            .take_while(|a| **a != "--")
            .any(|a| a.starts_with("-v")),
        "date" => date_read_only(&args),
        "file" => !args
            .iter()
            .any(|a| *a == "-C" || a.starts_with("--compile")),
        "tree" => !args.iter().any(|a| a.starts_with("-o") || *a == "-R"),
        "sort" => !args.iter().any(|a| sort_writes(a)),
        "uniq" => uniq_operands(&args) <= 1,
        "env" => args.is_empty(),
        "command" => matches!(args.first(), Some(&("-v" | "-V"))),
        "rg" => !args.iter().any(|a| a.starts_with("--pre")),
        "sed" => sed_read_only(&args) == SedCheck::ReadOnly,
        "find" => find_read_only(&args),
        "git" => git_read_only(&args),
        _ => false,
    }
}

/// `date` prints unless it is told to set the clock (`-s`, `--set`, or a bare
/// `MMDDhhmm` operand).
fn date_read_only(args: &[&str]) -> bool {
    let mut i = 0;
    while let Some(arg) = args.get(i) {
        i += 1;
        match *arg {
            "-d" | "--date" | "-r" | "--reference" | "-f" | "--file" => i += 1,
            a if a.starts_with('+') => {}
            a if a == "-s" || a.starts_with("--set") => return false,
            a if a.starts_with("--") => {}
            // A short cluster with `s` in it sets the date (`-us 12:00`).
            a if a.starts_with('-') => {
                if a.contains('s') && !a.starts_with("-I") {
                    return false;
                }
            }
            _ => return false,
        }
    }
    true
}

fn sort_writes(arg: &str) -> bool {
    if arg.starts_with("--output") || arg.starts_with("--compress-program") {
        return true;
    }
    // `-o FILE`, `-oFILE`, `-ro FILE`: an `o` in a short-option cluster.
    arg.starts_with('-') && !arg.starts_with("--") && arg.contains('o')
}

fn uniq_operands(args: &[&str]) -> usize {
    let mut count = 0;
    let mut skip = false;
    for arg in args {
        if skip {
            skip = false;
            continue;
        }
        match *arg {
            "-f" | "-s" | "-w" => skip = true,
            a if a.starts_with('-') && a.len() > 1 => {}
            _ => count += 1,
        }
    }
    count
}

/// `find` actions that write files; `-exec` and friends are checked as separate commands.
const FIND_WRITES: &[&str] = &["-delete", "-fprint", "-fprint0", "-fprintf", "-fls"];

fn find_read_only(args: &[&str]) -> bool {
    !args.iter().any(|a| FIND_WRITES.contains(a))
}

/// Global git options that change nothing about what the subcommand does. `-C`, `-c`,
/// `--git-dir`, `--work-tree`, `--exec-path` and `--config-env` are not here: they point git
/// at other repositories or configuration that can run programs (`core.pager`,
/// `core.fsmonitor`), so a command using them needs a rule.
const GIT_HARMLESS_GLOBALS: &[&str] = &[
    "--no-pager",
    "-P",
    "--no-optional-locks",
    "--literal-pathspecs",
    "--glob-pathspecs",
    "--noglob-pathspecs",
    "--icase-pathspecs",
    "--no-replace-objects",
];

fn git_read_only(args: &[&str]) -> bool {
    let mut i = 0;
    while let Some(arg) = args.get(i) {
        if !arg.starts_with('-') {
            break;
        }
        if !GIT_HARMLESS_GLOBALS.contains(arg) {
            return false;
        }
        i += 1;
    }
    let Some(sub) = args.get(i) else {
        return false;
    };
    let rest = &args[i + 1..];
    if rest.iter().any(|a| a.starts_with("--output")) {
        return false;
    }
    match *sub {
        "status" | "diff" | "log" | "show" | "rev-parse" | "ls-files" | "ls-tree" | "blame"
        | "describe" | "cat-file" | "merge-base" | "rev-list" | "shortlog" | "show-ref"
        | "count-objects" | "check-ignore" | "name-rev" | "whatchanged" | "version" => true,
        "grep" => !rest
            .iter()
            .any(|a| *a == "-O" || a.starts_with("--open-files-in-pager")),
        "branch" => git_branch_read_only(rest),
        "remote" => matches!(rest, [] | ["-v"] | ["--verbose"]),
        "tag" => matches!(rest.first(), None | Some(&("-l" | "--list"))),
        "stash" => matches!(rest.first(), Some(&("list" | "show"))),
        "worktree" => matches!(rest.first(), Some(&"list")),
        "reflog" => match rest.first() {
            None => true,
            Some(&"show") => true,
            Some(first) => first.starts_with('-'),
        },
        "config" => {
            matches!(
                rest.first(),
                Some(&("--get" | "--get-all" | "--get-regexp" | "--list" | "-l"))
            ) && rest.iter().skip(1).all(|a| {
                !a.starts_with('-')
                    || matches!(
                        *a,
                        "--global"
                            | "--local"
                            | "--system"
                            | "--show-origin"
                            | "--show-scope"
                            | "--name-only"
                            | "--null"
                            | "-z"
                            | "--includes"
                    )
            })
        }
        _ => false,
    }
}

fn git_branch_read_only(rest: &[&str]) -> bool {
    const LIST_FLAGS: &[&str] = &[
        "-a",
        "--all",
        "-r",
        "--remotes",
        "-v",
        "-vv",
        "--verbose",
        "--list",
        "-l",
        "--show-current",
        "--color",
        "--no-color",
        "--column",
        "--no-column",
        "-i",
        "--ignore-case",
        "--omit-empty",
    ];
    const WITH_VALUE: &[&str] = &[
        "--contains",
        "--no-contains",
        "--merged",
        "--no-merged",
        "--points-at",
        "--sort",
        "--format",
        "--abbrev",
    ];
    let mut listing = false;
    let mut operands = 0;
    let mut i = 0;
    while let Some(arg) = rest.get(i) {
        i += 1;
        if LIST_FLAGS.contains(arg) {
            listing |= matches!(*arg, "-l" | "--list");
            continue;
        }
        if let Some(flag) = WITH_VALUE.iter().find(|f| arg.starts_with(*f)) {
            if *arg == *flag && rest.get(i).is_some_and(|v| !v.starts_with('-')) {
                i += 1;
            }
            continue;
        }
        if arg.starts_with('-') {
            return false;
        }
        operands += 1;
    }
    // `git branch name` creates a branch; with `--list` operands are patterns.
    operands == 0 || listing
}

/// What keel can say about a `sed` invocation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum SedCheck {
    /// Only prints.
    ReadOnly,
    /// Writes files or runs commands: the text says which option or command.
    Writes(String),
    /// keel's small sed parser does not follow it.
    Unknown,
}

/// Checks `sed`'s arguments: no `-i`, no script file, and every script made only of
/// commands that print or edit the stream (no `w`, `W`, `e`, `r`, `R`, no `s///w`/`e`).
pub(crate) fn sed_read_only(args: &[&str]) -> SedCheck {
    let mut scripts: Vec<&str> = Vec::new();
    let mut operands: Vec<&str> = Vec::new();
    let mut i = 0;
    while let Some(arg) = args.get(i) {
        i += 1;
        if *arg == "--" {
            operands.extend(&args[i..]);
            break;
        }
        if arg.starts_with("-i") || arg.starts_with("--in-place") {
            return SedCheck::Writes((*arg).to_string());
        }
        if let Some(long) = arg.strip_prefix("--") {
            match long.split_once('=') {
                Some(("expression", script)) => scripts.push(script),
                None if long == "expression" => match args.get(i) {
                    Some(script) => {
                        scripts.push(script);
                        i += 1;
                    }
                    None => return SedCheck::Unknown,
                },
                None if matches!(
                    long,
                    "quiet"
                        | "silent"
                        | "regexp-extended"
                        | "separate"
                        | "unbuffered"
                        | "null-data"
                        | "posix"
                        | "debug"
                        | "sandbox"
                ) => {}
                _ => return SedCheck::Unknown,
            }
            continue;
        }
        if let Some(cluster) = arg.strip_prefix('-').filter(|c| !c.is_empty()) {
            for (k, flag) in cluster.char_indices() {
                match flag {
                    'n' | 'E' | 'r' | 's' | 'u' | 'z' => {}
                    'e' => {
                        let attached = &cluster[k + 1..];
                        if attached.is_empty() {
                            match args.get(i) {
                                Some(script) => {
                                    scripts.push(script);
                                    i += 1;
                                }
                                None => return SedCheck::Unknown,
                            }
                        } else {
                            scripts.push(attached);
                        }
                        break;
                    }
                    _ => return SedCheck::Unknown,
                }
            }
            continue;
        }
        operands.push(arg);
    }
    if scripts.is_empty() {
        match operands.first() {
            Some(script) => scripts.push(script),
            None => return SedCheck::Unknown,
        }
    }
    for script in scripts {
        match sed_script(script) {
            SedCheck::ReadOnly => {}
            other => return other,
        }
    }
    SedCheck::ReadOnly
}

/// A small parser for GNU sed scripts, enough to find the commands that write or execute.
fn sed_script(script: &str) -> SedCheck {
    let chars: Vec<char> = script.chars().collect();
    let mut i = 0;
    let n = chars.len();
    // Reads a `/regex/`-style delimited part starting after its opening delimiter; returns
    // the index after the closing one.
    let delimited = |mut j: usize, delim: char| -> Option<usize> {
        while j < n {
            match chars[j] {
                '\\' => j += 2,
                c if c == delim => return Some(j + 1),
                '\n' => return None,
                _ => j += 1,
            }
        }
        None
    };
    loop {
        while i < n && (chars[i].is_whitespace() || chars[i] == ';') {
            i += 1;
        }
        if i >= n {
            return SedCheck::ReadOnly;
        }
        // Addresses: up to two, separated by `,`, then optional `!`.
        for _ in 0..2 {
            match chars[i] {
                c if c.is_ascii_digit() => {
                    while i < n && (chars[i].is_ascii_digit() || chars[i] == '~') {
                        i += 1;
                    }
                }
                '$' => i += 1,
                '/' => match delimited(i + 1, '/') {
                    Some(j) => {
                        i = j;
                        while i < n && matches!(chars[i], 'I' | 'M') {
                            i += 1;
                        }
                    }
                    None => return SedCheck::Unknown,
                },
                '+' | '~' if i > 0 => {
                    i += 1;
                    while i < n && chars[i].is_ascii_digit() {
                        i += 1;
                    }
                }
                _ => {}
            }
            if i < n && chars[i] == ',' {
                i += 1;
                continue;
            }
            break;
        }
        while i < n && (chars[i] == '!' || chars[i] == ' ') {
            i += 1;
        }
        let Some(&cmd) = chars.get(i) else {
            return SedCheck::Unknown;
        };
        i += 1;
        match cmd {
            '{' | '}' | '=' | 'd' | 'D' | 'g' | 'G' | 'h' | 'H' | 'n' | 'N' | 'p' | 'P' | 'x'
            | 'z' | 'F' => {}
            'l' | 'q' | 'Q' | 'L' => {
                while i < n && (chars[i].is_ascii_digit() || chars[i] == ' ') {
                    i += 1;
                }
            }
            ':' | 'b' | 't' | 'T' => {
                while i < n && chars[i] != ';' && chars[i] != '\n' {
                    i += 1;
                }
            }
            'a' | 'i' | 'c' => {
                // Text to print, up to the end of the line.
                while i < n && chars[i] != '\n' {
                    if chars[i] == '\\' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            's' | 'y' => {
                let Some(&delim) = chars.get(i) else {
                    return SedCheck::Unknown;
                };
                if delim == '\\' || delim == '\n' {
                    return SedCheck::Unknown;
                }
                let Some(j) = delimited(i + 1, delim) else {
                    return SedCheck::Unknown;
                };
                let Some(j) = delimited(j, delim) else {
                    return SedCheck::Unknown;
                };
                i = j;
                if cmd == 's' {
                    while i < n && !matches!(chars[i], ';' | '\n' | '}') {
                        match chars[i] {
                            'g' | 'p' | 'i' | 'I' | 'm' | 'M' | ' ' => {}
                            c if c.is_ascii_digit() => {}
                            'w' | 'e' => {
                                return SedCheck::Writes(format!("the s///{} flag", chars[i]));
                            }
                            _ => return SedCheck::Unknown,
                        }
                        i += 1;
                    }
                }
            }
            'w' | 'W' | 'e' | 'r' | 'R' | 'v' => {
                return SedCheck::Writes(format!("the `{cmd}` command"));
            }
            _ => return SedCheck::Unknown,
        }
    }
}

/// An argument that makes a program write or run something, or might.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SideEffect {
    /// The argument (or `sed` command) as written.
    pub text: String,
    /// `false` for a run-time argument that could turn out to be such an option.
    pub known: bool,
}

/// For a command allowed by a prefix or wildcard rule: an argument in the part the wildcard
/// matched that turns a usually read-only program into one that writes files or runs other
/// programs (`git diff --output=…`, `find -delete`, `sort -o`, `sed -i`, `rg --pre`,
/// `tree -o`), or a run-time argument that could be one. Such a command is only allowed by a
/// rule that names the option itself (or an exact rule).
pub(crate) fn side_effect_option(words: &[Word]) -> Option<SideEffect> {
    let program = words.first()?.as_literal()?;
    let program = program.rsplit('/').next().unwrap_or(program);
    if !matches!(program, "git" | "find" | "sort" | "rg" | "sed" | "tree") {
        return None;
    }
    let mut args: Vec<&str> = Vec::with_capacity(words.len());
    for word in &words[1..] {
        match word.as_literal() {
            Some(a) => args.push(a),
            None => {
                return Some(SideEffect {
                    text: word.display(),
                    known: false,
                });
            }
        }
    }
    let found = match program {
        "git" => {
            let mut found = None;
            let mut in_globals = true;
            let mut sub = None;
            for arg in &args {
                if in_globals && !arg.starts_with('-') {
                    in_globals = false;
                    sub = Some(*arg);
                    continue;
                }
                let global_risk = in_globals
                    && (*arg == "-c"
                        || arg.starts_with("--config-env")
                        || arg.starts_with("--exec-path"));
                let any_risk = arg.starts_with("--output")
                    || arg.starts_with("--upload-pack")
                    || arg.starts_with("--receive-pack")
                    || arg.starts_with("--exec=")
                    || (sub == Some("grep")
                        && (*arg == "-O" || arg.starts_with("--open-files-in-pager")));
                if global_risk || any_risk {
                    found = Some(*arg);
                    break;
                }
            }
            found
        }
        "find" => args.iter().copied().find(|a| FIND_WRITES.contains(a)),
        "sort" => args.iter().copied().find(|a| sort_writes(a)),
        "rg" => args.iter().copied().find(|a| a.starts_with("--pre")),
        "tree" => args
            .iter()
            .copied()
            .find(|a| a.starts_with("-o") || *a == "-R"),
        "sed" => {
            return match sed_read_only(&args) {
                SedCheck::Writes(text) => Some(SideEffect { text, known: true }),
                _ => None,
            };
        }
        _ => None,
    };
    found.map(|text| SideEffect {
        text: text.to_string(),
        known: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<Word> {
        s.split(' ').map(Word::literal).collect()
    }

    #[test]
    fn sed_scripts() {
        assert_eq!(sed_read_only(&["-n", "1,10p", "f"]), SedCheck::ReadOnly);
        assert_eq!(sed_read_only(&["s/a/b/g"]), SedCheck::ReadOnly);
        assert_eq!(
            sed_read_only(&["-e", "s|x|y|", "-e", "/re/d"]),
            SedCheck::ReadOnly
        );
        assert_eq!(sed_read_only(&["$!N;P;D"]), SedCheck::ReadOnly);
        assert!(matches!(
            sed_read_only(&["-i", "s/a/b/", "f"]),
            SedCheck::Writes(_)
        ));
        assert!(matches!(
            sed_read_only(&["s/a/b/w out"]),
            SedCheck::Writes(_)
        ));
        assert!(matches!(sed_read_only(&["1e rm x"]), SedCheck::Writes(_)));
        assert!(matches!(sed_read_only(&["w out"]), SedCheck::Writes(_)));
        assert_eq!(sed_read_only(&["-f", "script.sed"]), SedCheck::Unknown);
    }

    #[test]
    fn read_only_table() {
        for ok in [
            "ls -la",
            "git status",
            "git log --oneline -5",
            "git branch -a",
            "git branch --list feat*",
            "sort -n f",
            "uniq -c f",
            "find . -name x",
            "date +%s",
            "command -v cargo",
            "env",
        ] {
            assert!(is_read_only(&words(ok), false), "{ok}");
        }
        for bad in [
            "git branch new",
            "git branch -D x",
            "git -C /tmp status",
            "git -c core.pager=x log",
            "git diff --output=/tmp/x",
            "git push",
            "git difftool",
            "sort -o out f",
            "sort -ro out f",
            "uniq in out",
            "find . -delete",
            "rg --pre cat x",
            "tree -o out",
            "date -s 12:00",
            "env FOO=1 ls",
            "./ls",
            "awk 1 f",
        ] {
            assert!(!is_read_only(&words(bad), false), "{bad}");
        }
        assert!(is_read_only(&words("grep x"), true));
        assert!(!is_read_only(&words("sort"), true));
    }

    #[test]
    fn side_effect_options() {
        let text = |s: &str| side_effect_option(&words(s)).map(|e| e.text);
        assert_eq!(
            text("git diff --output=/tmp/x").as_deref(),
            Some("--output=/tmp/x")
        );
        assert_eq!(text("git diff -c"), None);
        assert_eq!(text("git -c a=b diff").as_deref(), Some("-c"));
        assert_eq!(text("find . -delete").as_deref(), Some("-delete"));
        assert_eq!(text("npm run test"), None);
        let dynamic = vec![
            Word::literal("git"),
            Word::literal("diff"),
            Word::dynamic("$x"),
        ];
        assert_eq!(
            side_effect_option(&dynamic),
            Some(SideEffect {
                text: "$x".to_string(),
                known: false
            })
        );
    }
}
