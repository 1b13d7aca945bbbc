//! Turning tree-sitter word nodes into the words a program would receive: quotes removed,
//! escapes applied, and every part whose value is only known at run time marked as such.

use tree_sitter::Node;

use super::{Word, WordPart};

/// Resolves a word-like node (`word`, `string`, `concatenation`, `command_name`, …).
pub(super) fn resolve(node: Node<'_>, src: &str) -> Word {
    let mut word = Word {
        parts: Vec::new(),
        glob: false,
    };
    add(node, src, &mut word);
    if brace_expands(text(node, src)) {
        // `{a,b}` turns one word into several: keel cannot know the words, so the whole
        // thing counts as unknown.
        word.parts = vec![WordPart::Dynamic(text(node, src).to_string())];
    }
    word.merge_literals();
    word
}

fn text<'s>(node: Node<'_>, src: &'s str) -> &'s str {
    src.get(node.start_byte()..node.end_byte()).unwrap_or("")
}

fn add(node: Node<'_>, src: &str, word: &mut Word) {
    let raw = text(node, src);
    if !node.is_named() {
        word.push_literal(raw);
        return;
    }
    match node.kind() {
        "word" => {
            let (value, glob) = unescape_unquoted(raw);
            word.glob |= glob;
            word.push_literal(&value);
        }
        "raw_string" => {
            let inner = raw
                .strip_prefix('\'')
                .and_then(|r| r.strip_suffix('\''))
                .unwrap_or(raw);
            word.push_literal(inner);
        }
        "string" => add_double_quoted(node, src, word),
        "ansi_c_string" => {
            let inner = raw
                .strip_prefix("$'")
                .and_then(|r| r.strip_suffix('\''))
                .unwrap_or(raw);
            word.push_literal(&decode_ansi_c(inner));
        }
        "concatenation" | "command_name" => {
            let mut cursor = node.walk();
            let children: Vec<Node<'_>> = node.children(&mut cursor).collect();
            let mut i = 0;
            while i < children.len() {
                let child = children[i];
                let next = children.get(i + 1);
                if !child.is_named()
                    && child.kind() == "$"
                    && let Some(next) = next.filter(|n| n.kind() == "string")
                    && next.start_byte() == child.end_byte()
                {
                    // `$"…"`: a locale translation, only known at run time.
                    let source = src.get(child.start_byte()..next.end_byte()).unwrap_or("");
                    word.parts.push(WordPart::Dynamic(source.to_string()));
                    i += 2;
                    continue;
                }
                add(child, src, word);
                i += 1;
            }
        }
        "number" if node.named_child_count() == 0 => word.push_literal(raw),
        "regex"
        | "extglob_pattern"
        | "test_operator"
        | "variable_name"
        | "special_variable_name" => word.push_literal(raw),
        // Expansions, substitutions, arithmetic, `$"…"`, arrays and anything else: known
        // only when the shell runs.
        _ => word.parts.push(WordPart::Dynamic(raw.to_string())),
    }
}

fn add_double_quoted(node: Node<'_>, src: &str, word: &mut Word) {
    // Interior of the quotes, with the named children (content and expansions) inside it;
    // text between children is literal too, so walk the gaps as well.
    let start = node.start_byte() + 1;
    let end = node.end_byte().saturating_sub(1).max(start);
    let mut pos = start;
    let mut cursor = node.walk();
    for child in node.named_children(&mut cursor) {
        if child.start_byte() > pos {
            word.push_literal(&unescape_double_quoted(
                src.get(pos..child.start_byte()).unwrap_or(""),
            ));
        }
        match child.kind() {
            "string_content" => word.push_literal(&unescape_double_quoted(text(child, src))),
            _ => word
                .parts
                .push(WordPart::Dynamic(text(child, src).to_string())),
        }
        pos = child.end_byte();
    }
    if end > pos {
        word.push_literal(&unescape_double_quoted(src.get(pos..end).unwrap_or("")));
    }
}

/// Removes backslash escapes from an unquoted word and reports unescaped glob characters.
fn unescape_unquoted(raw: &str) -> (String, bool) {
    let mut out = String::with_capacity(raw.len());
    let mut glob = false;
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('\n') | None => {}
                Some(e) => out.push(e),
            },
            '*' | '?' | '[' => {
                glob = true;
                out.push(c);
            }
            c => out.push(c),
        }
    }
    (out, glob)
}

fn unescape_double_quoted(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.peek() {
                Some('$' | '`' | '"' | '\\') => {
                    if let Some(e) = chars.next() {
                        out.push(e);
                    }
                }
                Some('\n') => {
                    chars.next();
                }
                _ => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Decodes the body of a `$'…'` string the way bash does.
pub(super) fn decode_ansi_c(body: &str) -> String {
    let mut out = String::with_capacity(body.len());
    let chars: Vec<char> = body.chars().collect();
    let mut i = 0;
    let digits = |start: usize, max: usize, radix: u32| -> (u32, usize) {
        let mut value = 0u32;
        let mut n = 0;
        while n < max {
            match chars.get(start + n).and_then(|c| c.to_digit(radix)) {
                Some(d) => {
                    value = value.saturating_mul(radix).saturating_add(d);
                    n += 1;
                }
                None => break,
            }
        }
        (value, n)
    };
    while i < chars.len() {
        let c = chars[i];
        if c != '\\' || i + 1 >= chars.len() {
            out.push(c);
            i += 1;
            continue;
        }
        let e = chars[i + 1];
        i += 2;
        let simple = match e {
            'a' => Some('\u{7}'),
            'b' => Some('\u{8}'),
            'e' | 'E' => Some('\u{1b}'),
            'f' => Some('\u{c}'),
            'n' => Some('\n'),
            'r' => Some('\r'),
            't' => Some('\t'),
            'v' => Some('\u{b}'),
            '\\' | '\'' | '"' | '?' => Some(e),
            _ => None,
        };
        if let Some(s) = simple {
            out.push(s);
            continue;
        }
        match e {
            '0'..='7' => {
                let (v, n) = digits(i - 1, 3, 8);
                i = i - 1 + n;
                out.push(char::from_u32(v & 0xff).unwrap_or('\u{fffd}'));
            }
            'x' => {
                let (v, n) = digits(i, 2, 16);
                if n == 0 {
                    out.push_str("\\x");
                } else {
                    i += n;
                    out.push(char::from_u32(v).unwrap_or('\u{fffd}'));
                }
            }
            'u' | 'U' => {
                let (v, n) = digits(i, if e == 'u' { 4 } else { 8 }, 16);
                if n == 0 {
                    out.push('\\');
                    out.push(e);
                } else {
                    i += n;
                    out.push(char::from_u32(v).unwrap_or('\u{fffd}'));
                }
            }
            'c' => match chars.get(i) {
                Some(ctl) => {
                    i += 1;
                    let v = (*ctl as u32) & 0x1f;
                    out.push(char::from_u32(v).unwrap_or('\u{fffd}'));
                }
                None => out.push_str("\\c"),
            },
            other => {
                out.push('\\');
                out.push(other);
            }
        }
    }
    out
}

/// Whether unquoted text contains a brace expansion (`{a,b}` or `{1..3}`).
fn brace_expands(raw: &str) -> bool {
    let mut quote: Option<char> = None;
    let mut escaped = false;
    let mut open: Option<usize> = None;
    let mut saw_separator = false;
    let bytes: Vec<char> = raw.chars().collect();
    for (i, &c) in bytes.iter().enumerate() {
        if escaped {
            escaped = false;
            continue;
        }
        match (quote, c) {
            (Some('\''), '\'') | (Some('"'), '"') => quote = None,
            (Some(_), _) => {}
            (None, '\\') => escaped = true,
            (None, '\'' | '"') => quote = Some(c),
            (None, '{') => {
                open = Some(i);
                saw_separator = false;
            }
            (None, ',') if open.is_some() => saw_separator = true,
            (None, '.') if open.is_some() && bytes.get(i + 1) == Some(&'.') => {
                saw_separator = true;
            }
            (None, '}') => {
                if open.is_some() && saw_separator {
                    return true;
                }
                open = None;
            }
            _ => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ansi_c_escapes() {
        assert_eq!(decode_ansi_c(r"\x72\x6d"), "rm");
        assert_eq!(decode_ansi_c(r"\162m"), "rm");
        assert_eq!(decode_ansi_c(r"a\tb\n"), "a\tb\n");
        assert_eq!(decode_ansi_c(r"\u0067it"), "git");
        assert_eq!(decode_ansi_c(r"\q"), "\\q");
    }

    #[test]
    fn brace_expansion_detection() {
        assert!(brace_expands("{a,b}"));
        assert!(brace_expands("x{1..3}"));
        assert!(!brace_expands("{}"));
        assert!(!brace_expands("'{a,b}'"));
        assert!(!brace_expands("\\{a,b}"));
    }
}
