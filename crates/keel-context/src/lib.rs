//! What the model sees: the system prompt assembled from parts, token estimates, and the
//! strategies that keep a long conversation inside the context window.
//!
//! Everything here is a pure transformation or prompt builder that can be tested without a
//! model; the engine decides when to apply them and makes the model calls they prepare:
//! - [`SystemPrompt`]: base instructions, environment (with [`GitStatus`] collected in the
//!   background), memory files, skills and agents summaries, user additions.
//! - [`tokens`]: fast estimates, a [`TokenCounter`] calibrated by the API's usage numbers,
//!   [`context_window`] and the [`ContextPolicy`] saying when to compact.
//! - [`micro_compact`]: clears old, large tool outputs.
//! - [`summary_request`] / [`compacted_conversation`]: compaction through a summary call.
//! - [`SessionNotes`]: running notes kept current in the background, for instant compaction.

mod compact;
mod env;
mod micro;
mod notes;
mod prompt;
pub mod tokens;
mod transcript;

pub use compact::{
    COMPACTED_MARKER, REREAD_FILE_CHARS, REREAD_FILES, REREAD_TOTAL_CHARS, SUMMARY_SYSTEM,
    choose_kept_tail, compacted_conversation, recent_files, summary_request,
    summary_request_within, tail_for_notes,
};
pub use env::{Environment, GitInfo, GitStatus, STATUS_LINES, ShortStatus};
pub use micro::{MICRO_MARKER, MicroCompacted, MicroOptions, micro_compact};
pub use notes::{NOTES_SYSTEM, NotesError, SessionNotes, compacted_from_notes, update_request};
pub use prompt::{
    BASE_INSTRUCTIONS, MEMORY_PREAMBLE, PartKind, PromptInputs, PromptOptions, PromptPart,
    SystemPrompt, render_memory, render_nested_memory, render_skills, system_prompt,
};
pub use tokens::{
    ContextAction, ContextPolicy, IMAGE_TOKENS, TokenCounter, context_used, context_window,
    estimate_block, estimate_json, estimate_message, estimate_messages, estimate_request,
    estimate_system, estimate_text, estimate_tool_result, estimate_tools,
};

#[cfg(test)]
mod tests {
    use super::*;

    fn env_at(dir: &std::path::Path) -> Environment {
        Environment {
            date: "2026-01-02".into(),
            ..Environment::detect(dir, &[])
        }
    }

    #[test]
    fn default_prompt_has_base_and_environment() {
        let dir = tempfile::tempdir().unwrap();
        let parts = system_prompt(&env_at(dir.path()), &PromptOptions::default());
        assert_eq!(parts.len(), 2);
        assert!(parts[0].starts_with("You are keel"));
        assert!(parts[1].contains(&format!("Working directory: {}", dir.path().display())));
    }

    #[test]
    fn replace_and_append() {
        let dir = tempfile::tempdir().unwrap();
        let options = PromptOptions {
            replace: Some("Only say hi.".into()),
            append: Some("Be brief.".into()),
        };
        assert_eq!(
            system_prompt(&env_at(dir.path()), &options),
            vec!["Only say hi.".to_string(), "Be brief.".to_string()]
        );
        // The SDK passes `--system-prompt ""` for "no system prompt at all".
        let empty = PromptOptions {
            replace: Some(String::new()),
            append: None,
        };
        assert!(system_prompt(&env_at(dir.path()), &empty).is_empty());
    }
}
