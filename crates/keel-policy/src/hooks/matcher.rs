//! Which hooks an event selects: Claude Code's matcher rules.

use regex::Regex;

/// A compiled `matcher`.
#[derive(Clone, Debug)]
pub(crate) enum Matcher {
    /// Empty, `*`, or an event that ignores matchers.
    All,
    /// Only letters, digits, `_`, `-` and `|`: exact names (`Edit|Write`).
    Names(Vec<String>),
    /// Anything else: an unanchored regular expression (`mcp__.*`).
    Pattern(Regex),
}

impl Matcher {
    /// Compiles a matcher as written in settings.
    pub(crate) fn compile(text: &str) -> Result<Matcher, regex::Error> {
        let text = text.trim();
        if text.is_empty() || text == "*" {
            return Ok(Matcher::All);
        }
        let plain = text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '|'));
        if plain {
            let names = text
                .split('|')
                .filter(|name| !name.is_empty())
                .map(str::to_string)
                .collect();
            return Ok(Matcher::Names(names));
        }
        Regex::new(text).map(Matcher::Pattern)
    }

    /// Whether the event's matcher value (tool name, source, …) is selected. A missing value
    /// is only matched by "all".
    pub(crate) fn matches(&self, target: Option<&str>) -> bool {
        match (self, target) {
            (Matcher::All, _) => true,
            (_, None) => false,
            (Matcher::Names(names), Some(target)) => names.iter().any(|n| n == target),
            (Matcher::Pattern(regex), Some(target)) => regex.is_match(target),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(text: &str, target: &str) -> bool {
        Matcher::compile(text).unwrap().matches(Some(target))
    }

    #[test]
    fn plain_names_match_exactly() {
        assert!(m("Edit|Write", "Edit"));
        assert!(m("Edit|Write", "Write"));
        assert!(!m("Edit|Write", "NotebookEdit"));
        assert!(!m("Bash", "BashOutput"));
        assert!(m("mcp__my-server__do_it", "mcp__my-server__do_it"));
    }

    #[test]
    fn patterns_are_unanchored_regexes() {
        assert!(m("mcp__.*", "mcp__github__list_issues"));
        assert!(!m("mcp__.*", "Bash"));
        assert!(m("^Notebook", "NotebookEdit"));
        assert!(m("Edit$", "NotebookEdit"));
    }

    #[test]
    fn empty_and_star_match_everything_even_without_a_value() {
        for text in ["", "*", "  "] {
            let matcher = Matcher::compile(text).unwrap();
            assert!(matcher.matches(Some("Anything")));
            assert!(matcher.matches(None));
        }
    }

    #[test]
    fn invalid_regex_is_an_error() {
        assert!(Matcher::compile("Edit(").is_err());
    }
}
