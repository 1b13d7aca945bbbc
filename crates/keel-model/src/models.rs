//! Facts about models that shape requests: the default model and output limits.

/// The model used when neither `--model` nor `ANTHROPIC_MODEL` names one.
pub const DEFAULT_MODEL: &str = "claude-sonnet-4-5";

/// The `max_tokens` to request from `model`: the most its family may produce in one answer
/// (without beta headers), so long edits are not cut short. Unknown models get a conservative
/// limit that every current model accepts.
pub fn default_max_tokens(model: &str) -> u32 {
    let m = model.to_ascii_lowercase();
    if m.contains("opus-4-0")
        || m.contains("opus-4-1")
        || m == "claude-opus-4"
        || m.contains("opus-4-2025")
    {
        32_000
    } else if m.contains("sonnet-4") || m.contains("opus-4") || m.contains("haiku-4") {
        64_000
    } else if m.contains("3-7-sonnet") {
        32_000
    } else if m.contains("3-5-sonnet") || m.contains("3-5-haiku") {
        8_192
    } else if m.starts_with("claude-3") {
        4_096
    } else {
        32_000
    }
}

/// The context window of `model` in tokens (what fits in one request, input plus output).
pub fn context_window(model: &str) -> u64 {
    let m = model.to_ascii_lowercase();
    if m.contains("[1m]") {
        1_000_000
    } else {
        200_000
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_get_their_output_limits() {
        assert_eq!(default_max_tokens("claude-sonnet-4-5"), 64_000);
        assert_eq!(default_max_tokens("claude-sonnet-4-5-20250929"), 64_000);
        assert_eq!(default_max_tokens("claude-opus-4-1"), 32_000);
        assert_eq!(default_max_tokens("claude-opus-4-1-20250805"), 32_000);
        assert_eq!(default_max_tokens("claude-opus-4-5"), 64_000);
        assert_eq!(default_max_tokens("claude-haiku-4-5"), 64_000);
        assert_eq!(default_max_tokens("claude-3-5-haiku-latest"), 8_192);
        assert_eq!(default_max_tokens("claude-3-haiku-20240307"), 4_096);
        assert_eq!(default_max_tokens("some-gateway-model"), 32_000);
    }
}
