//! Custom slash commands: Markdown files in `.keel/commands/` and `.claude/commands/` (and the
//! user-level folders) whose text becomes the prompt. Frontmatter (all optional):
//! `description`, `argument-hint`, `allowed-tools`, `model`. A file in a subfolder is
//! namespaced: `commands/frontend/build.md` is `/frontend:build` (and `/build` while no other
//! command has that name).
//!
//! Arguments: `$ARGUMENTS` is everything after the command name; `$1`, `$2`, … and
//! `$ARGUMENTS[0]`, … are single words ("quoted phrases" stay whole). A body that uses none of
//! them gets the arguments appended as `ARGUMENTS: …`, as Claude Code does, so nothing typed
//! is lost.

use std::path::{Component, Path};

use serde::Deserialize;

use crate::definitions::{
    DefinitionScope, DefinitionSources, Loaded, Named, first_line, markdown_files, read, valid_name,
};
use crate::frontmatter::{self, DefinitionWarning, ToolList};

/// One custom slash command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomCommand {
    /// The name typed after `/`, with its namespace (`frontend:build`).
    pub name: String,
    /// The subfolder path it came from (`frontend`), if any.
    pub namespace: Option<String>,
    /// What it does, for `/help` (frontmatter, else the body's first line).
    pub description: String,
    /// What arguments it takes, for `/help`.
    pub argument_hint: Option<String>,
    /// Permission rules that apply without asking while its prompt runs.
    pub allowed_tools: Vec<String>,
    /// The model its prompt runs with, if not the session's.
    pub model: Option<String>,
    /// The prompt text, before arguments are filled in.
    pub body: String,
    /// The file.
    pub path: std::path::PathBuf,
    /// User or project level.
    pub scope: DefinitionScope,
}

impl Named for CustomCommand {
    fn name(&self) -> &str {
        &self.name
    }
}

impl CustomCommand {
    /// The name without its namespace (`build` for `frontend:build`).
    pub fn short_name(&self) -> &str {
        self.name.rsplit(':').next().unwrap_or(&self.name)
    }

    /// Where it comes from, as `/help` shows it: `project`, `user:frontend`.
    pub fn origin(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{}:{ns}", self.scope),
            None => self.scope.to_string(),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct CommandFrontmatter {
    description: Option<String>,
    #[serde(rename = "argument-hint")]
    argument_hint: Option<serde_yaml_any::Any>,
    #[serde(rename = "allowed-tools", alias = "allowed_tools")]
    allowed_tools: ToolList,
    model: Option<String>,
}

/// `argument-hint` is often written unquoted as `[file] [message]`, which YAML reads as a
/// list; accept whatever it is and show it as written.
mod serde_yaml_any {
    /// Any YAML value, kept for display.
    #[derive(Debug, Default)]
    pub struct Any(pub String);

    impl<'de> serde::Deserialize<'de> for Any {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            let value = yaml_serde::Value::deserialize(d)?;
            Ok(Any(render(&value)))
        }
    }

    fn render(value: &yaml_serde::Value) -> String {
        match value {
            yaml_serde::Value::String(s) => s.clone(),
            yaml_serde::Value::Sequence(items) => items
                .iter()
                .map(|item| format!("[{}]", render(item)))
                .collect::<Vec<_>>()
                .join(" "),
            yaml_serde::Value::Null => String::new(),
            other => yaml_serde::to_string(other)
                .map(|s| s.trim().to_string())
                .unwrap_or_default(),
        }
    }
}

/// Reads every custom command the sources name. Bad files are warnings; the rest load.
pub fn load_commands(sources: &DefinitionSources) -> Loaded<CustomCommand> {
    let mut loaded = Loaded::default();
    for (scope, dir) in sources.dirs("commands") {
        for (path, rel) in markdown_files(&dir) {
            match read(&path, "command").and_then(|text| parse_command(&path, &rel, &text, scope)) {
                Ok(command) => loaded.put(command),
                Err(warning) => loaded.warnings.push(warning),
            }
        }
    }
    loaded.sort();
    loaded
}

/// Parses one command file; `rel` is its path inside the commands folder (it names it).
pub fn parse_command(
    path: &Path,
    rel: &Path,
    text: &str,
    scope: DefinitionScope,
) -> Result<CustomCommand, DefinitionWarning> {
    let skipped = |line, message: String| {
        DefinitionWarning::new(path, line, format!("{message} (command skipped)"))
    };
    let parts: Vec<String> = rel
        .with_extension("")
        .components()
        .filter_map(|c| match c {
            Component::Normal(part) => Some(part.to_string_lossy().to_string()),
            _ => None,
        })
        .collect();
    let name = parts.join(":");
    if !valid_name(&name) {
        return Err(skipped(
            1,
            format!(
                "the file name gives the command name {name:?}, which cannot be typed after /; \
                 rename the file using letters, digits and hyphens"
            ),
        ));
    }
    let namespace = (parts.len() > 1).then(|| parts[..parts.len() - 1].join(":"));
    let doc = frontmatter::split(text).map_err(|m| skipped(1, m))?;
    let fields: CommandFrontmatter = frontmatter::parse(doc.frontmatter.unwrap_or(""), path)
        .map_err(|mut w| {
            w.message.push_str(" (command skipped)");
            w
        })?;
    let description = fields
        .description
        .map(|d| d.trim().to_string())
        .filter(|d| !d.is_empty())
        .or_else(|| first_line(doc.body))
        .unwrap_or_else(|| "(no description)".to_string());
    Ok(CustomCommand {
        name,
        namespace,
        description,
        argument_hint: fields
            .argument_hint
            .map(|a| a.0)
            .filter(|a| !a.trim().is_empty()),
        allowed_tools: fields.allowed_tools.0,
        model: fields
            .model
            .filter(|m| !m.trim().is_empty() && m != "inherit"),
        body: doc.body.to_string(),
        path: path.to_path_buf(),
        scope,
    })
}

/// Splits command arguments on whitespace, keeping "double" or 'single' quoted phrases whole.
pub fn split_arguments(text: &str) -> Vec<String> {
    let mut values = Vec::new();
    let mut current = String::new();
    let mut quote: Option<char> = None;
    let mut started = false;
    for c in text.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => current.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                started = true;
            }
            (None, c) if c.is_whitespace() => {
                if started {
                    values.push(std::mem::take(&mut current));
                    started = false;
                }
            }
            (None, c) => {
                current.push(c);
                started = true;
            }
        }
    }
    if started {
        values.push(current);
    }
    values
}

/// Fills `$ARGUMENTS`, `$ARGUMENTS[n]` and `$1`… into a command or skill body. A body that
/// uses none of them gets non-empty arguments appended as `ARGUMENTS: …`.
pub fn substitute_arguments(body: &str, args: &str) -> String {
    let args = args.trim();
    let words = split_arguments(args);
    let mut out = String::with_capacity(body.len() + args.len());
    let mut used = false;
    let mut rest = body;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix("ARGUMENTS") {
            used = true;
            if let Some((index, len)) = bracket_index(tail) {
                out.push_str(words.get(index).map_or("", String::as_str));
                rest = &tail[len..];
            } else {
                out.push_str(args);
                rest = tail;
            }
            continue;
        }
        let digits = after.chars().take_while(char::is_ascii_digit).count();
        if digits > 0
            && let Ok(n) = after[..digits].parse::<usize>()
            && n > 0
        {
            used = true;
            out.push_str(words.get(n - 1).map_or("", String::as_str));
            rest = &after[digits..];
            continue;
        }
        out.push('$');
        rest = after;
    }
    out.push_str(rest);
    if !used && !args.is_empty() {
        let trimmed = out.trim_end().len();
        out.truncate(trimmed);
        out.push_str(&format!("\n\nARGUMENTS: {args}"));
    }
    out
}

/// `[n]` at the start of `text`: the index and the length of the brackets.
fn bracket_index(text: &str) -> Option<(usize, usize)> {
    let inner = text.strip_prefix('[')?;
    let close = inner.find(']')?;
    let index = inner[..close].trim().parse().ok()?;
    Some((index, close + 2))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(rel: &str, text: &str) -> Result<CustomCommand, DefinitionWarning> {
        parse_command(
            &Path::new("/p/.claude/commands").join(rel),
            Path::new(rel),
            text,
            DefinitionScope::Project,
        )
    }

    #[test]
    fn arguments_fill_in_exactly() {
        assert_eq!(
            substitute_arguments("Fix issue #$ARGUMENTS now", " 123 "),
            "Fix issue #123 now"
        );
        assert_eq!(
            substitute_arguments("Review PR #$1 with priority $2 ($3)", "456 \"very high\""),
            "Review PR #456 with priority very high ()"
        );
        assert_eq!(
            substitute_arguments("first=$ARGUMENTS[0] all=$ARGUMENTS", "a b"),
            "first=a all=a b"
        );
        assert_eq!(
            substitute_arguments("Costs $ and $0 stay", "x"),
            "Costs $ and $0 stay\n\nARGUMENTS: x"
        );
        assert_eq!(
            substitute_arguments("No args here.\n", ""),
            "No args here.\n"
        );
        assert_eq!(
            substitute_arguments("Plain body.\n", "extra words"),
            "Plain body.\n\nARGUMENTS: extra words"
        );
    }

    #[test]
    fn arguments_split_like_a_shell() {
        assert_eq!(
            split_arguments(r#"one "two three" 'four five' six"#),
            ["one", "two three", "four five", "six"]
        );
        assert_eq!(split_arguments("  "), Vec::<String>::new());
        assert_eq!(split_arguments(r#""""#), [""]);
    }

    #[test]
    fn commands_are_named_by_path() {
        let cmd = parse(
            "frontend/build.md",
            "---\ndescription: Build it\nargument-hint: [target] [mode]\nallowed-tools: Bash(npm run build:*)\nmodel: claude-haiku-4-5\n---\nBuild $1\n",
        )
        .unwrap();
        assert_eq!(cmd.name, "frontend:build");
        assert_eq!(cmd.short_name(), "build");
        assert_eq!(cmd.origin(), "project:frontend");
        assert_eq!(cmd.description, "Build it");
        assert_eq!(cmd.argument_hint.as_deref(), Some("[target] [mode]"));
        assert_eq!(cmd.allowed_tools, ["Bash(npm run build:*)"]);
        assert_eq!(cmd.model.as_deref(), Some("claude-haiku-4-5"));
        assert_eq!(cmd.body, "Build $1\n");
        let plain = parse("hello.md", "Say hello to $ARGUMENTS.\n").unwrap();
        assert_eq!(plain.name, "hello");
        assert_eq!(plain.description, "Say hello to $ARGUMENTS.");
    }

    #[test]
    fn bad_command_files_are_warnings() {
        let err = parse("x.md", "---\ndescription: ok\nmodel: {a: [1]}\n---\n").unwrap_err();
        assert_eq!(err.line, 3, "{err}");
        assert!(err.message.ends_with("(command skipped)"), "{err}");
        let err = parse("two words.md", "hi").unwrap_err();
        assert!(err.message.contains("rename the file"), "{err}");
    }
}
