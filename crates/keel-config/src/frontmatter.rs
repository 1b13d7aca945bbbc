//! YAML frontmatter of Markdown definition files (skills, slash commands, agents): the block
//! between a first line `---` and the next `---` line, parsed with `yaml_serde`, with every
//! problem reported at its line in the file.
//!
//! Claude Code users often write plain `key: value` lines whose value itself contains `: `
//! (`description: Use when: the user asks`), which strict YAML rejects. When a block fails to
//! parse, it is parsed once more with such values quoted; only when that also fails is the
//! file reported.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::{self, DeserializeOwned, Deserializer, SeqAccess, Visitor};

/// A Markdown file split into its frontmatter and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document<'a> {
    /// The YAML between the `---` lines, if the file has frontmatter.
    pub frontmatter: Option<&'a str>,
    /// Everything after the closing `---` line (the whole file without frontmatter).
    pub body: &'a str,
}

/// Something wrong with a definition file: where, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefinitionWarning {
    /// The file.
    pub path: PathBuf,
    /// The 1-based line at fault (1 when the whole file is).
    pub line: usize,
    /// What is wrong and how to fix it, ending with what keel did (e.g. "skill skipped").
    pub message: String,
}

impl fmt::Display for DefinitionWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.path.display(), self.line, self.message)
    }
}

impl DefinitionWarning {
    /// A warning about `path` at `line`.
    pub fn new(path: &Path, line: usize, message: impl Into<String>) -> Self {
        Self {
            path: path.to_path_buf(),
            line,
            message: message.into(),
        }
    }
}

/// Splits a Markdown file into frontmatter and body. A file whose first line is `---` must
/// close the block with another `---` line; the error names the opening line.
pub fn split(text: &str) -> Result<Document<'_>, String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let Some(first_end) = text.find('\n') else {
        return Ok(if text.trim_end() == "---" {
            Document {
                frontmatter: Some(""),
                body: "",
            }
        } else {
            Document {
                frontmatter: None,
                body: text,
            }
        });
    };
    if text[..first_end].trim_end() != "---" {
        return Ok(Document {
            frontmatter: None,
            body: text,
        });
    }
    let rest = &text[first_end + 1..];
    let mut offset = 0;
    for line in rest.split_inclusive('\n') {
        let trimmed = line.trim_end();
        if trimmed == "---" || trimmed == "..." {
            return Ok(Document {
                frontmatter: Some(&rest[..offset]),
                body: &rest[offset + line.len()..],
            });
        }
        offset += line.len();
    }
    Err(
        "the frontmatter opened with `---` on line 1 is never closed; add a line with `---` \
         after the last key"
            .to_string(),
    )
}

/// Parses a frontmatter block (which starts on line 2 of `path`) into `T`. Errors name the
/// file line; an empty block gives `T`'s defaults for every field.
pub fn parse<T: DeserializeOwned>(yaml: &str, path: &Path) -> Result<T, DefinitionWarning> {
    if yaml.trim().is_empty() {
        return yaml_serde::from_str("{}").map_err(|e| warning_from(&e, path));
    }
    match yaml_serde::from_str::<T>(yaml) {
        Ok(value) => Ok(value),
        Err(first) => {
            let requoted = quote_plain_values(yaml);
            if requoted != yaml
                && let Ok(value) = yaml_serde::from_str::<T>(&requoted)
            {
                return Ok(value);
            }
            Err(warning_from(&first, path))
        }
    }
}

/// The 1-based file line of `key:` in a frontmatter block, for messages about a field's value.
pub fn key_line(yaml: &str, key: &str) -> Option<usize> {
    yaml.lines()
        .position(|line| {
            line.strip_prefix(key)
                .is_some_and(|rest| rest.trim_start().starts_with(':'))
        })
        .map(|index| index + 2)
}

fn warning_from(error: &yaml_serde::Error, path: &Path) -> DefinitionWarning {
    // The block starts on the file's second line (after `---`); yaml_serde counts from 1.
    let line = error.location().map_or(1, |l| l.line() + 1);
    let mut message = error.to_string();
    // yaml_serde appends " at line N column M", which would name the block's line, not the
    // file's; the warning's own line is the right one.
    if let Some(cut) = message.find(" at line ") {
        message.truncate(cut);
    }
    DefinitionWarning::new(
        path,
        line,
        format!("invalid frontmatter: {message}; fix the YAML between the `---` lines"),
    )
}

/// Quotes the values of top-level `key: value` lines that strict YAML would misread
/// (`description: Use when: the user asks`), leaving everything else alone.
fn quote_plain_values(yaml: &str) -> String {
    let mut out = String::with_capacity(yaml.len() + 16);
    for line in yaml.split_inclusive('\n') {
        let content = line.trim_end_matches(['\n', '\r']);
        let ending = &line[content.len()..];
        match content.split_once(": ") {
            Some((key, value))
                if !key.is_empty()
                    && !key.starts_with([' ', '\t', '-', '#'])
                    && key
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                    && needs_quotes(value.trim()) =>
            {
                let escaped = value.trim().replace('\\', "\\\\").replace('"', "\\\"");
                out.push_str(&format!("{key}: \"{escaped}\"{ending}"));
            }
            _ => out.push_str(line),
        }
    }
    out
}

fn needs_quotes(value: &str) -> bool {
    if value.is_empty() || value.starts_with(['"', '\'', '|', '>']) {
        return false;
    }
    if yaml_serde::from_str::<yaml_serde::Value>(value).is_ok() && value.starts_with(['[', '{']) {
        return false;
    }
    // `argument-hint: [file] [message]` is not YAML but is what people write.
    value.contains(": ")
        || value.contains(" #")
        || value.starts_with(['@', '`', '%'])
        || yaml_serde::from_str::<yaml_serde::Value>(value).is_err()
}

/// A list of tool names or permission rules, written as a YAML list or as one string
/// (`Read, Grep, Bash(git add:*)`), as Claude Code accepts both.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ToolList(pub Vec<String>);

impl<'de> serde::Deserialize<'de> for ToolList {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ListVisitor;
        impl<'de> Visitor<'de> for ListVisitor {
            type Value = ToolList;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a comma-separated string or a list of tool names")
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<ToolList, E> {
                Ok(ToolList(split_tool_list(text)))
            }

            fn visit_unit<E: de::Error>(self) -> Result<ToolList, E> {
                Ok(ToolList::default())
            }

            fn visit_none<E: de::Error>(self) -> Result<ToolList, E> {
                Ok(ToolList::default())
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ToolList, A::Error> {
                let mut tools = Vec::new();
                while let Some(item) = seq.next_element::<String>()? {
                    tools.extend(split_tool_list(&item));
                }
                Ok(ToolList(tools))
            }
        }
        deserializer.deserialize_any(ListVisitor)
    }
}

/// Splits `Read, Grep, Bash(git add:*)` (or space-separated names) into entries, keeping
/// commas and spaces inside parentheses.
pub fn split_tool_list(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut depth = 0usize;
    for c in text.chars() {
        match c {
            '(' => {
                depth += 1;
                current.push(c);
            }
            ')' => {
                depth = depth.saturating_sub(1);
                current.push(c);
            }
            ',' if depth == 0 => out.push(std::mem::take(&mut current)),
            c if c.is_whitespace() && depth == 0 => out.push(std::mem::take(&mut current)),
            c => current.push(c),
        }
    }
    out.push(current);
    out.into_iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize, PartialEq, Default)]
    #[serde(default)]
    struct Fields {
        name: Option<String>,
        description: Option<String>,
        #[serde(rename = "allowed-tools")]
        allowed_tools: ToolList,
    }

    #[test]
    fn splits_frontmatter_from_body() {
        let doc = split("---\nname: a\n---\nbody\nmore\n").unwrap();
        assert_eq!(doc.frontmatter, Some("name: a\n"));
        assert_eq!(doc.body, "body\nmore\n");
        let plain = split("just text\n---\n").unwrap();
        assert_eq!(plain.frontmatter, None);
        assert_eq!(plain.body, "just text\n---\n");
        let crlf = split("---\r\nname: a\r\n---\r\nbody").unwrap();
        assert_eq!(crlf.frontmatter, Some("name: a\r\n"));
        assert_eq!(crlf.body, "body");
        let err = split("---\nname: a\nbody\n").unwrap_err();
        assert!(err.contains("never closed"), "{err}");
    }

    #[test]
    fn tool_lists_accept_strings_and_lists() {
        let path = Path::new("x.md");
        let f: Fields = parse("allowed-tools: Read, Grep, Bash(git add:*)\n", path).unwrap();
        assert_eq!(f.allowed_tools.0, ["Read", "Grep", "Bash(git add:*)"]);
        let f: Fields =
            parse("allowed-tools:\n  - Read\n  - Bash(npm run test *)\n", path).unwrap();
        assert_eq!(f.allowed_tools.0, ["Read", "Bash(npm run test *)"]);
        let f: Fields = parse("allowed-tools: Read Grep\n", path).unwrap();
        assert_eq!(f.allowed_tools.0, ["Read", "Grep"]);
        let f: Fields = parse("allowed-tools:\n", path).unwrap();
        assert!(f.allowed_tools.0.is_empty());
    }

    #[test]
    fn errors_name_the_file_line() {
        let path = Path::new("/p/SKILL.md");
        let err =
            parse::<Fields>("name: ok\ndescription: \"unclosed\nmore: x\n", path).unwrap_err();
        assert!(err.line >= 3, "{err}");
        assert!(err.to_string().starts_with("/p/SKILL.md:"), "{err}");
        assert!(err.message.contains("invalid frontmatter"), "{err}");
        let err = parse::<Fields>("name: ok\n\nallowed-tools: {a: 1}\n", path).unwrap_err();
        assert_eq!(err.line, 4, "{err}");
    }

    #[test]
    fn colons_inside_plain_values_are_tolerated() {
        let f: Fields = parse(
            "name: x\ndescription: Use when: the user asks # twice\n",
            Path::new("x"),
        )
        .unwrap();
        assert_eq!(
            f.description.as_deref(),
            Some("Use when: the user asks # twice")
        );
    }

    #[test]
    fn key_lines_are_file_lines() {
        assert_eq!(
            key_line("name: a\ndescription: b\n", "description"),
            Some(3)
        );
        assert_eq!(key_line("name: a\n", "model"), None);
    }
}
