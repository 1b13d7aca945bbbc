//! Keeping tool output within what a model can usefully take: text above
//! [`MAX_OUTPUT_CHARS`] is cut to its head and tail, and the whole text is saved to a spill
//! file the model can page through with Read or search with Grep.

use std::io::Write as _;
use std::path::{Path, PathBuf};

/// The most characters of one tool result sent to the model (Claude Code's Bash limit).
pub const MAX_OUTPUT_CHARS: usize = 30_000;

/// Returns `text` unchanged if it has at most [`MAX_OUTPUT_CHARS`] characters; otherwise its
/// head and tail around a marker that says where the full text was saved.
pub fn limit(text: String, spill_dir: &Path) -> String {
    limit_to(text, spill_dir, MAX_OUTPUT_CHARS)
}

/// [`limit`] with an explicit character budget (for tools with tighter limits, and tests).
pub fn limit_to(text: String, spill_dir: &Path, max_chars: usize) -> String {
    // Cheap exits first: a string has at least len/4 characters and at most len.
    if text.len() <= max_chars {
        return text;
    }
    let total_chars = text.chars().count();
    if total_chars <= max_chars {
        return text;
    }
    let head_chars = max_chars / 2;
    let tail_chars = max_chars - head_chars;
    let head_end = byte_index_of_char(&text, head_chars);
    let tail_start = byte_index_of_char(&text, total_chars - tail_chars);
    let omitted = total_chars - head_chars - tail_chars;
    let marker = match spill(&text, spill_dir) {
        Ok(path) => format!(
            "\n\n[... {omitted} characters omitted. The full output ({} lines) is saved to {}; \
             use Read with offset/limit, or Grep, to see the rest ...]\n\n",
            line_count(&text),
            path.display()
        ),
        Err(error) => format!(
            "\n\n[... {omitted} characters omitted. The full output could not be saved \
             ({error}), so the omitted part is lost; rerun with narrower output (e.g. pipe \
             through head, tail or grep) to see it ...]\n\n"
        ),
    };
    let mut out = String::with_capacity(head_end + marker.len() + text.len() - tail_start);
    out.push_str(&text[..head_end]);
    out.push_str(&marker);
    out.push_str(&text[tail_start..]);
    out
}

/// Cuts `text` to at most `max_chars` characters (head and tail) without saving it anywhere,
/// for structured copies of output that the model never sees.
pub fn clip(text: &str, max_chars: usize) -> String {
    if text.len() <= max_chars {
        return text.to_string();
    }
    let total_chars = text.chars().count();
    if total_chars <= max_chars {
        return text.to_string();
    }
    let head_chars = max_chars / 2;
    let tail_chars = max_chars - head_chars;
    let head_end = byte_index_of_char(text, head_chars);
    let tail_start = byte_index_of_char(text, total_chars - tail_chars);
    format!(
        "{}\n[... {} characters omitted ...]\n{}",
        &text[..head_end],
        total_chars - head_chars - tail_chars,
        &text[tail_start..]
    )
}

/// The byte offset where character number `n` (0-based) starts, or the length if there are
/// fewer characters; always a char boundary.
fn byte_index_of_char(text: &str, n: usize) -> usize {
    text.char_indices()
        .nth(n)
        .map_or(text.len(), |(index, _)| index)
}

/// Lines as an editor counts them: a final line without a newline still counts.
fn line_count(text: &str) -> usize {
    let newlines = text.bytes().filter(|&b| b == b'\n').count();
    if text.is_empty() || text.ends_with('\n') {
        newlines
    } else {
        newlines + 1
    }
}

/// Writes the full text to a new file in `spill_dir`, creating the directory if needed.
fn spill(text: &str, spill_dir: &Path) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(spill_dir)?;
    let path = spill_dir.join(format!("tool-output-{}.txt", uuid::Uuid::new_v4()));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)?;
    file.write_all(text.as_bytes())?;
    file.flush()?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn spilled_path(out: &str) -> PathBuf {
        let start = out.find("is saved to ").unwrap() + "is saved to ".len();
        let end = out[start..].find("; use Read").unwrap() + start;
        PathBuf::from(&out[start..end])
    }

    #[test]
    fn short_text_is_returned_unchanged_and_nothing_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let spill_dir = dir.path().join("spill");
        assert_eq!(limit("hello".to_string(), &spill_dir), "hello");
        assert!(!spill_dir.exists());
    }

    #[test]
    fn text_of_exactly_the_limit_is_kept_and_one_more_char_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        let exact = "é".repeat(100);
        assert_eq!(limit_to(exact.clone(), dir.path(), 100), exact);
        let over = "é".repeat(101);
        let out = limit_to(over, dir.path(), 100);
        assert!(out.contains("[... 1 characters omitted."), "{out}");
        assert!(out.starts_with(&"é".repeat(50)));
        assert!(out.ends_with(&"é".repeat(50)));
    }

    #[test]
    fn multibyte_text_is_cut_on_char_boundaries_and_spilled_whole() {
        let dir = tempfile::tempdir().unwrap();
        let text: String = (0..5000)
            .map(|i| format!("line {i} ✓ 日本語 🦀\n"))
            .collect();
        let out = limit_to(text.clone(), &dir.path().join("spill"), 1000);
        assert!(out.contains("characters omitted"), "{out}");
        assert!(out.contains("(5000 lines)"), "{out}");
        let saved = std::fs::read_to_string(spilled_path(&out)).unwrap();
        assert_eq!(saved, text);
        let (head, rest) = out.split_once("\n\n[... ").unwrap();
        let tail = rest.split_once(" ...]\n\n").unwrap().1;
        assert_eq!(head.chars().count(), 500);
        assert_eq!(tail.chars().count(), 500);
        assert!(text.starts_with(head) && text.ends_with(tail));
    }

    #[test]
    fn a_failed_spill_still_truncates_and_says_why() {
        let dir = tempfile::tempdir().unwrap();
        // A regular file where the spill directory should be: create_dir_all fails.
        let blocker = dir.path().join("not-a-dir");
        std::fs::write(&blocker, "x").unwrap();
        let out = limit_to("a".repeat(500), &blocker, 100);
        assert!(out.contains("could not be saved"), "{out}");
        assert!(out.starts_with(&"a".repeat(50)) && out.ends_with(&"a".repeat(50)));
        assert!(out.chars().count() < 500);
    }

    #[test]
    fn clip_keeps_head_and_tail() {
        let text = "x".repeat(10) + &"y".repeat(10);
        let out = clip(&text, 10);
        assert!(out.starts_with("xxxxx\n[... 10 characters omitted ...]\nyyyyy"));
        assert_eq!(clip("short", 10), "short");
    }

    proptest! {
        #[test]
        fn limited_output_is_bounded_and_made_of_prefix_and_suffix(
            text in "(.|\n){0,400}",
            max in 1usize..200,
        ) {
            let dir = tempfile::tempdir().unwrap();
            let out = limit_to(text.clone(), dir.path(), max);
            let chars = text.chars().count();
            if chars <= max {
                prop_assert_eq!(out, text);
            } else {
                let start = out.find("\n\n[... ").unwrap();
                let end = out.find(" ...]\n\n").unwrap() + " ...]\n\n".len();
                let marker = &out[start..end];
                prop_assert!(out.chars().count() <= max + marker.chars().count());
                let head = &out[..start];
                let tail = &out[end..];
                prop_assert!(text.starts_with(head));
                prop_assert!(text.ends_with(tail));
                prop_assert_eq!(head.chars().count() + tail.chars().count(), max);
                let saved = std::fs::read_to_string(spilled_path(&out)).unwrap();
                prop_assert_eq!(saved, text);
            }
        }
    }
}
