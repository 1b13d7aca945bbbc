//! Commands that run other commands: wrappers (`env`, `timeout`, `nice`, …), `xargs`,
//! `find -exec`, `sudo`, shells with `-c`, `eval`, `trap`. Each is recognised from its argv
//! so the command it runs is checked as well.

use super::{Assignment, Hazard, Role, Word, WordPart};

/// What a simple command runs besides itself.
#[derive(Debug, Default)]
pub(super) struct Classification {
    pub role: Role,
    pub hazard: Option<Hazard>,
    pub inner: Vec<Inner>,
    /// Shell text the command runs (`sh -c`, `eval`, `trap`), to be parsed recursively, with
    /// the index of the word it came from.
    pub scripts: Vec<(String, usize)>,
    /// `cd`, `pushd`, `popd`: later relative paths are no longer relative to the call's cwd.
    pub changes_directory: bool,
}

/// A command run by another one.
#[derive(Debug)]
pub(super) struct Inner {
    pub words: Vec<Word>,
    pub env: Vec<Assignment>,
    /// Receives arguments keel cannot see (`xargs`, `find -exec … {} +`).
    pub extra_args: bool,
    /// Index of the outer command's word where this command starts.
    pub offset: usize,
}

/// Directories whose programs are the real thing: `/usr/bin/env` is unwrapped like `env`,
/// but `./env` is somebody's script and is not.
const SYSTEM_BIN_DIRS: &[&str] = &[
    "/bin/",
    "/usr/bin/",
    "/usr/local/bin/",
    "/sbin/",
    "/usr/sbin/",
    "/opt/homebrew/bin/",
];

/// The name a program is known by, when keel can trust it is that program: a bare name, or
/// a path in a system bin directory.
pub(super) fn program_name(word: &Word) -> Option<&str> {
    let name = word.as_literal()?;
    if !name.contains('/') {
        return Some(name);
    }
    SYSTEM_BIN_DIRS
        .iter()
        .find_map(|dir| name.strip_prefix(dir))
        .filter(|rest| !rest.is_empty() && !rest.contains('/'))
}

/// Shells whose `-c` argument is bash-compatible enough to parse with the bash grammar.
const SHELLS: &[&str] = &["sh", "bash", "zsh", "dash", "ksh", "mksh", "ash"];

pub(super) fn classify(words: &[Word]) -> Classification {
    let Some(name) = words.first().and_then(program_name) else {
        return Classification::default();
    };
    match name {
        "cd" | "pushd" | "popd" => Classification {
            changes_directory: true,
            ..Classification::default()
        },
        "env" => env(words),
        "command" => {
            let spec = Opts::new("pvV", "", &[], &[]);
            match spec.parse(words) {
                Ok(parsed) if parsed.has_any("vV") => Classification::default(),
                Ok(parsed) => wrapper(words, parsed.operands, false),
                Err(bad) => hazard_only(Hazard::Options(bad)),
            }
        }
        "builtin" | "nohup" | "coproc" => match Opts::new("", "", &[], &[]).parse(words) {
            Ok(parsed) => wrapper(words, parsed.operands, false),
            Err(bad) => hazard_only(Hazard::Options(bad)),
        },
        "exec" => simple_wrapper(words, Opts::new("cl", "a", &[], &[])),
        "time" => simple_wrapper(words, Opts::new("p", "", &[], &[])),
        "nice" => simple_wrapper(words, Opts::new("", "n", &[], &["adjustment"]).numeric()),
        "stdbuf" => simple_wrapper(
            words,
            Opts::new("", "ioe", &[], &["input", "output", "error"]),
        ),
        "ionice" => {
            let spec = Opts::new(
                "t",
                "cnpPu",
                &["ignore"],
                &["class", "classdata", "pid", "pgid", "uid"],
            );
            match spec.parse(words) {
                Ok(parsed) if parsed.has_any("pPu") => Classification::default(),
                Ok(parsed) => wrapper(words, parsed.operands, false),
                Err(bad) => hazard_only(Hazard::Options(bad)),
            }
        }
        "timeout" => {
            let spec = Opts::new(
                "v",
                "sk",
                &["preserve-status", "foreground", "verbose"],
                &["signal", "kill-after"],
            );
            match spec.parse(words) {
                // The first operand is the duration.
                Ok(parsed) => wrapper(words, parsed.operands + 1, false),
                Err(bad) => hazard_only(Hazard::Options(bad)),
            }
        }
        "xargs" => xargs(words),
        "sudo" | "doas" => sudo(words),
        "find" => find(words),
        "eval" => {
            let mut c = Classification {
                role: Role::Launcher,
                hazard: Some(Hazard::Eval),
                ..Classification::default()
            };
            let args: Option<Vec<&str>> = words[1..].iter().map(Word::as_literal).collect();
            if let Some(args) = args
                && !args.is_empty()
            {
                c.scripts.push((args.join(" "), 1));
            }
            c
        }
        "source" | "." => hazard_only(Hazard::Source),
        "trap" => {
            let mut c = Classification {
                role: Role::Launcher,
                ..Classification::default()
            };
            if let Some(action) = words.get(1).and_then(Word::as_literal)
                && !action.starts_with('-')
            {
                c.scripts.push((action.to_string(), 1));
            }
            c
        }
        shell if SHELLS.contains(&shell) => shell_c(words),
        _ => Classification::default(),
    }
}

fn hazard_only(hazard: Hazard) -> Classification {
    Classification {
        hazard: Some(hazard),
        ..Classification::default()
    }
}

fn simple_wrapper(words: &[Word], spec: Opts) -> Classification {
    match spec.parse(words) {
        Ok(parsed) => wrapper(words, parsed.operands, false),
        Err(bad) => hazard_only(Hazard::Options(bad)),
    }
}

/// A transparent wrapper whose command starts at `start`; with no command it is a plain
/// command of its own.
fn wrapper(words: &[Word], start: usize, extra_args: bool) -> Classification {
    if start >= words.len() {
        return Classification::default();
    }
    Classification {
        role: Role::Wrapper,
        inner: vec![Inner {
            words: words[start..].to_vec(),
            env: Vec::new(),
            extra_args,
            offset: start,
        }],
        ..Classification::default()
    }
}

fn env(words: &[Word]) -> Classification {
    let spec = Opts::new(
        "i0v",
        "u",
        &["ignore-environment", "null", "debug"],
        &["unset"],
    );
    let parsed = match spec.parse(words) {
        Ok(parsed) => parsed,
        Err(bad) => return hazard_only(Hazard::Options(bad)),
    };
    let mut i = parsed.operands;
    // `env -` is the old spelling of `env -i`.
    if words.get(i).and_then(Word::as_literal) == Some("-") {
        i += 1;
    }
    let mut env = Vec::new();
    while let Some(assignment) = words.get(i).and_then(Assignment::from_word) {
        env.push(assignment);
        i += 1;
    }
    let mut c = wrapper(words, i, false);
    match c.inner.first_mut() {
        Some(inner) => inner.env = env,
        None => {
            // `env FOO=bar` with no command just prints the environment.
        }
    }
    c
}

fn xargs(words: &[Word]) -> Classification {
    let mut i = 1;
    let mut replace: Option<String> = None;
    while let Some(word) = words.get(i) {
        let Some(arg) = word.as_literal() else {
            return hazard_only(Hazard::Options(word.display()));
        };
        if arg == "--" {
            i += 1;
            break;
        }
        if !arg.starts_with('-') || arg == "-" {
            break;
        }
        i += 1;
        if let Some(long) = arg.strip_prefix("--") {
            let (name, value) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (long, None),
            };
            match name {
                "null" | "no-run-if-empty" | "verbose" | "interactive" | "exit" | "open-tty"
                | "show-limits" => {}
                "arg-file" | "delimiter" | "eof" | "max-lines" | "max-args" | "max-procs"
                | "max-chars" | "process-slot-var" => {
                    if value.is_none() {
                        i += 1;
                    }
                }
                "replace" => replace = Some(value.unwrap_or("{}").to_string()),
                _ => return hazard_only(Hazard::Options(arg.to_string())),
            }
            continue;
        }
        let cluster: Vec<char> = arg.chars().skip(1).collect();
        let mut k = 0;
        while k < cluster.len() {
            let flag = cluster[k];
            let attached: String = cluster[k + 1..].iter().collect();
            match flag {
                '0' | 'r' | 't' | 'p' | 'x' | 'o' => k += 1,
                'a' | 'd' | 'E' | 'L' | 'n' | 'P' | 's' | 'I' => {
                    let value = if attached.is_empty() {
                        let v = words.get(i).and_then(Word::as_literal).map(str::to_string);
                        i += 1;
                        v
                    } else {
                        Some(attached)
                    };
                    if flag == 'I' {
                        match value {
                            Some(v) => replace = Some(v),
                            None => return hazard_only(Hazard::Options(arg.to_string())),
                        }
                    }
                    k = cluster.len();
                }
                // Old forms whose argument is optional and only ever attached.
                'i' => {
                    replace = Some(if attached.is_empty() {
                        "{}".to_string()
                    } else {
                        attached
                    });
                    k = cluster.len();
                }
                'e' | 'l' => k = cluster.len(),
                _ => return hazard_only(Hazard::Options(arg.to_string())),
            }
        }
    }
    let offset = i;
    let mut inner_words: Vec<Word> = if i < words.len() {
        words[i..].to_vec()
    } else {
        // With no command, xargs runs `echo`.
        vec![Word::literal("echo")]
    };
    let extra_args = match &replace {
        Some(marker) => {
            for w in inner_words.iter_mut().skip(1) {
                if w.display().contains(marker.as_str()) {
                    *w = Word::dynamic(w.display());
                }
            }
            false
        }
        None => true,
    };
    Classification {
        role: Role::Wrapper,
        inner: vec![Inner {
            words: std::mem::take(&mut inner_words),
            env: Vec::new(),
            extra_args,
            offset,
        }],
        ..Classification::default()
    }
}

fn sudo(words: &[Word]) -> Classification {
    let spec = Opts::new(
        "AbEHnPSkKBNiselvV",
        "CDghpRrtTuU",
        &[
            "askpass",
            "background",
            "preserve-env",
            "set-home",
            "non-interactive",
            "preserve-groups",
            "stdin",
            "reset-timestamp",
            "remove-timestamp",
            "login",
            "shell",
            "edit",
            "list",
            "validate",
            "version",
        ],
        &[
            "close-from",
            "chdir",
            "group",
            "host",
            "prompt",
            "chroot",
            "role",
            "type",
            "command-timeout",
            "other-user",
            "user",
        ],
    );
    let mut c = Classification {
        role: Role::Launcher,
        hazard: Some(Hazard::Sudo),
        ..Classification::default()
    };
    if let Ok(parsed) = spec.parse(words)
        && !parsed.has_any("iselvVK")
        && parsed.operands < words.len()
    {
        c.inner.push(Inner {
            words: words[parsed.operands..].to_vec(),
            env: Vec::new(),
            extra_args: false,
            offset: parsed.operands,
        });
    }
    c
}

fn find(words: &[Word]) -> Classification {
    let mut c = Classification::default();
    let mut i = 1;
    while i < words.len() {
        let action = words[i].as_literal();
        if !matches!(action, Some("-exec" | "-execdir" | "-ok" | "-okdir")) {
            i += 1;
            continue;
        }
        let start = i + 1;
        let mut end = None;
        let mut plus = false;
        for (j, w) in words.iter().enumerate().skip(start) {
            match w.as_literal() {
                Some(";") => {
                    end = Some(j);
                    break;
                }
                Some("+") if j > start && words[j - 1].as_literal() == Some("{}") => {
                    end = Some(j);
                    plus = true;
                    break;
                }
                _ => {}
            }
        }
        let Some(end) = end else {
            c.hazard = Some(Hazard::Options(format!(
                "{} without a closing `;` or `+`",
                words[i].display()
            )));
            return c;
        };
        // With `+` the final `{}` becomes many file names; keel treats them as unseen
        // trailing arguments. Elsewhere `{}` (even inside a word) is one unknown file name.
        let last = if plus { end - 1 } else { end };
        let inner: Vec<Word> = words[start..last]
            .iter()
            .map(|w| {
                if w.display().contains("{}") {
                    Word::dynamic(w.display())
                } else {
                    w.clone()
                }
            })
            .collect();
        if inner.is_empty() {
            c.hazard = Some(Hazard::Options(format!(
                "{} with no command",
                words[i].display()
            )));
            return c;
        }
        c.role = Role::Launcher;
        c.inner.push(Inner {
            words: inner,
            env: Vec::new(),
            extra_args: plus,
            offset: start,
        });
        i = end + 1;
    }
    c
}

fn shell_c(words: &[Word]) -> Classification {
    let mut i = 1;
    let mut dash_c = false;
    while let Some(word) = words.get(i) {
        let Some(arg) = word.as_literal() else {
            if dash_c {
                // The script itself; reported below.
                break;
            }
            return hazard_only(Hazard::ShellCode(
                "its options are not known before it runs".to_string(),
            ));
        };
        if arg == "--" || arg == "-" {
            i += 1;
            break;
        }
        let Some(flags) = arg.strip_prefix('-').or_else(|| arg.strip_prefix('+')) else {
            break;
        };
        i += 1;
        if arg.starts_with("--") {
            match arg {
                "--norc" | "--noprofile" | "--login" | "--posix" | "--noediting"
                | "--restricted" | "--verbose" => continue,
                _ => return hazard_only(Hazard::Options(arg.to_string())),
            }
        }
        for flag in flags.chars() {
            match flag {
                'c' => dash_c = true,
                'o' | 'O' => i += 1,
                'e' | 'i' | 'l' | 'n' | 'u' | 'v' | 'x' | 'a' | 'b' | 'f' | 'h' | 'k' | 'm'
                | 'p' | 't' | 'B' | 'C' | 'E' | 'H' | 'P' | 'T' | 'r' => {}
                's' => {
                    return hazard_only(Hazard::ShellCode(
                        "it reads commands from standard input".to_string(),
                    ));
                }
                _ => return hazard_only(Hazard::Options(arg.to_string())),
            }
        }
    }
    if !dash_c {
        return hazard_only(Hazard::ShellCode(match words.get(i) {
            Some(script) => format!("it runs the script file `{}`", script.display()),
            None => "it reads commands from standard input".to_string(),
        }));
    }
    match words.get(i).map(Word::as_literal) {
        Some(Some(script)) => Classification {
            role: Role::Wrapper,
            scripts: vec![(script.to_string(), i)],
            ..Classification::default()
        },
        Some(None) => hazard_only(Hazard::ShellCode(
            "the script after -c is only known when it runs".to_string(),
        )),
        None => hazard_only(Hazard::ShellCode("-c has no script".to_string())),
    }
}

/// A getopt-style option grammar for one wrapper.
struct Opts {
    short_flags: &'static str,
    short_args: &'static str,
    long_flags: &'static [&'static str],
    long_args: &'static [&'static str],
    /// `nice -5`: a dash followed by digits is an option.
    numeric: bool,
}

struct Parsed {
    /// Index of the first operand (the wrapped command for most wrappers).
    operands: usize,
    seen: String,
}

impl Parsed {
    fn has_any(&self, flags: &str) -> bool {
        self.seen.chars().any(|c| flags.contains(c))
    }
}

impl Opts {
    fn new(
        short_flags: &'static str,
        short_args: &'static str,
        long_flags: &'static [&'static str],
        long_args: &'static [&'static str],
    ) -> Self {
        Self {
            short_flags,
            short_args,
            long_flags,
            long_args,
            numeric: false,
        }
    }

    fn numeric(mut self) -> Self {
        self.numeric = true;
        self
    }

    /// Walks the options after `words[0]`; an option keel does not know is returned as the
    /// error, because guessing where the command starts could check the wrong command.
    fn parse(&self, words: &[Word]) -> Result<Parsed, String> {
        let mut seen = String::new();
        let mut i = 1;
        while let Some(word) = words.get(i) {
            let Some(arg) = word.as_literal() else {
                if word
                    .parts
                    .first()
                    .is_some_and(|p| matches!(p, WordPart::Literal(l) if l.starts_with('-')))
                {
                    return Err(word.display());
                }
                break;
            };
            if arg == "--" {
                i += 1;
                break;
            }
            if !arg.starts_with('-') || arg == "-" {
                break;
            }
            i += 1;
            if let Some(long) = arg.strip_prefix("--") {
                let (name, has_value) = match long.split_once('=') {
                    Some((n, _)) => (n, true),
                    None => (long, false),
                };
                if self.long_flags.contains(&name) {
                    continue;
                }
                if self.long_args.contains(&name) {
                    if !has_value {
                        i += 1;
                    }
                    continue;
                }
                return Err(arg.to_string());
            }
            let body = &arg[1..];
            if self.numeric && body.chars().all(|c| c.is_ascii_digit()) {
                continue;
            }
            for (k, flag) in body.char_indices() {
                if self.short_flags.contains(flag) {
                    seen.push(flag);
                } else if self.short_args.contains(flag) {
                    seen.push(flag);
                    if k + flag.len_utf8() == body.len() {
                        i += 1;
                    }
                    break;
                } else {
                    return Err(arg.to_string());
                }
            }
        }
        Ok(Parsed { operands: i, seen })
    }
}
