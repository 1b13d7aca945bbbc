//! Word-aware wildcard matching between a rule's command pattern and one simple command.
//!
//! Both sides are token sequences rather than strings so that quoting cannot fool the match:
//! a word boundary in the command (`Sep`) only matches a word boundary in the rule, and a part
//! of the command whose value is unknown until run time (`$X`, `$(…)`) only matches a `*` in
//! the rule — or, for deny and ask rules, anything at all (see [`Mode::Lenient`]).

/// One element of a parsed command pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Pat {
    /// A literal character.
    Lit(char),
    /// The boundary between two words.
    Sep,
    /// `*`: any sequence of characters, word boundaries and unknown parts.
    Star,
}

/// One element of a command as the matcher sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Tok {
    /// A character whose value is known before the command runs.
    Char(char),
    /// The boundary between two words.
    Sep,
    /// A part whose value is only known at run time. `Some(source)` keeps the source text
    /// (`$HOME`), which a rule may spell out literally; `None` is an argument keel cannot see
    /// at all (what `xargs` appends).
    Opaque(Option<Vec<char>>),
}

/// How to treat unknown parts of the command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// An unknown part matches only a `*` or its own source text. Used for allow rules and
    /// for the definite half of deny/ask rules.
    Strict,
    /// An unknown part may stand for anything, so a rule that *could* match does. Used to
    /// find deny and ask rules a command might be trying to get around.
    Lenient,
}

/// Whether `pat` matches all of `subj`.
pub(crate) fn matches(pat: &[Pat], subj: &[Tok], mode: Mode) -> bool {
    // Fast path: most rules fail within the program name. A literal pattern element against
    // a known subject token leaves no choice, so the common prefix is compared directly and
    // only the rest (from the first `*` or unknown part) goes to the full algorithm.
    let mut k = 0;
    loop {
        match (pat.get(k), subj.get(k)) {
            (None, None) => return true,
            (Some(Pat::Star), _) | (_, Some(Tok::Opaque(_))) => break,
            (Some(Pat::Lit(a)), Some(Tok::Char(b))) if a == b => k += 1,
            (Some(Pat::Sep), Some(Tok::Sep)) => k += 1,
            _ => return false,
        }
    }
    full_match(&pat[k..], &subj[k..], mode)
}

fn full_match(pat: &[Pat], subj: &[Tok], mode: Mode) -> bool {
    let m = pat.len();
    let n = subj.len();
    let width = n + 1;
    // dp[i * width + j]: pat[i..] matches subj[j..]. Filled from the end so every cell only
    // reads cells already computed; O(m·n) time, no recursion.
    let mut dp = vec![false; (m + 1) * width];
    dp[m * width + n] = true;
    for i in (0..=m).rev() {
        for j in (0..=n).rev() {
            if i == m && j == n {
                continue;
            }
            let mut ok = false;
            if i < m && pat[i] == Pat::Star {
                ok = dp[(i + 1) * width + j] || (j < n && dp[i * width + j + 1]);
            } else if j < n {
                match &subj[j] {
                    Tok::Char(c) => {
                        ok = i < m && pat[i] == Pat::Lit(*c) && dp[(i + 1) * width + j + 1];
                    }
                    Tok::Sep => {
                        ok = i < m && pat[i] == Pat::Sep && dp[(i + 1) * width + j + 1];
                    }
                    Tok::Opaque(source) => {
                        if let Some(src) = source {
                            let k = src.len();
                            if k > 0
                                && i + k <= m
                                && src
                                    .iter()
                                    .zip(&pat[i..i + k])
                                    .all(|(c, p)| *p == Pat::Lit(*c))
                            {
                                ok = dp[(i + k) * width + j + 1];
                            }
                        }
                        if !ok && mode == Mode::Lenient {
                            // The unknown part may be empty, or may absorb pattern elements.
                            ok = dp[i * width + j + 1] || (i < m && dp[(i + 1) * width + j]);
                        }
                    }
                }
            }
            dp[i * width + j] = ok;
        }
    }
    dp[0]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pat(s: &str) -> Vec<Pat> {
        s.chars()
            .map(|c| match c {
                ' ' => Pat::Sep,
                '*' => Pat::Star,
                c => Pat::Lit(c),
            })
            .collect()
    }

    fn subj(s: &str) -> Vec<Tok> {
        s.chars()
            .map(|c| match c {
                ' ' => Tok::Sep,
                '@' => Tok::Opaque(Some(vec!['$', 'X'])),
                '?' => Tok::Opaque(None),
                c => Tok::Char(c),
            })
            .collect()
    }

    #[test]
    fn word_boundary_before_star() {
        assert!(matches(&pat("ls *"), &subj("ls -la"), Mode::Strict));
        assert!(!matches(&pat("ls *"), &subj("lsof"), Mode::Strict));
        assert!(matches(&pat("ls*"), &subj("lsof"), Mode::Strict));
        assert!(matches(
            &pat("git * main"),
            &subj("git push origin main"),
            Mode::Strict
        ));
        assert!(!matches(
            &pat("git * main"),
            &subj("git push origin mainx"),
            Mode::Strict
        ));
    }

    #[test]
    fn unknown_parts_need_a_star_unless_lenient() {
        assert!(!matches(&pat("rm x"), &subj("rm @"), Mode::Strict));
        assert!(matches(&pat("rm *"), &subj("rm @"), Mode::Strict));
        assert!(matches(&pat("rm x"), &subj("rm @"), Mode::Lenient));
        assert!(matches(
            &pat("git push *"),
            &subj("git @ origin"),
            Mode::Lenient
        ));
        assert!(!matches(
            &pat("git push *"),
            &subj("git @ origin"),
            Mode::Strict
        ));
        // An unknown part spelled out literally in the rule matches strictly.
        assert!(matches(&pat("echo $X"), &subj("echo @"), Mode::Strict));
        // Arguments keel cannot see only match a star.
        assert!(!matches(&pat("rm"), &subj("rm ?"), Mode::Strict));
        assert!(matches(&pat("rm *"), &subj("rm ?"), Mode::Strict));
    }
}
