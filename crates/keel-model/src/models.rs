//! Facts about models that shape requests: the default model, output limits and context windows.

/// The model used when neither `--model` nor `ANTHROPIC_MODEL` names one.
pub const DEFAULT_MODEL: &str = "claude-sonnet-4-5";

/// The model the `openai` provider uses when none is named: strong at tool use, fast (no
/// hidden reasoning), a 1M-token context, and streamable without organisation verification.
pub const DEFAULT_OPENAI_MODEL: &str = "gpt-4.1";

/// The model the `openrouter` provider uses when none is named (OpenRouter's spelling).
pub const DEFAULT_OPENROUTER_MODEL: &str = "anthropic/claude-sonnet-4.5";

/// The model a Claude Code alias names (`sonnet`, `opus`, `haiku`, as agent definitions,
/// skills and the `Agent` tool's `model` write it), given the model in use. `inherit` and
/// empty mean `current`; with a non-Claude model (or a provider-prefixed name) in use, aliases
/// also mean `current`, since that provider spells Claude models its own way or has none; any
/// other name is taken as it is.
pub fn resolve_alias(requested: &str, current: &str) -> String {
    let requested = requested.trim();
    let alias = match requested {
        "" | "inherit" => return current.to_string(),
        "sonnet" => "claude-sonnet-4-5",
        "opus" => "claude-opus-4-1",
        "haiku" => "claude-haiku-4-5",
        other => return other.to_string(),
    };
    // A provider prefix (`anthropic/claude-…` on OpenRouter) spells models its own way.
    if current.to_ascii_lowercase().starts_with("claude") {
        alias.to_string()
    } else {
        current.to_string()
    }
}

/// The `max_tokens` to request from `model`: the most its family may produce in one answer
/// (without beta headers), so long edits are not cut short. Unknown models get a conservative
/// limit that every current model accepts.
pub fn default_max_tokens(model: &str) -> u32 {
    known_max_tokens(model).unwrap_or(32_000)
}

/// The most `model`'s family may produce in one answer, if keel knows the family. Provider
/// prefixes (`openai/gpt-4.1` on OpenRouter) are ignored.
pub fn known_max_tokens(model: &str) -> Option<u32> {
    let m = base_name(model);
    let m = m.as_str();
    if let Some(limit) = openai_max_tokens(m) {
        return Some(limit);
    }
    if !m.starts_with("claude") {
        return None;
    }
    Some(
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
        },
    )
}

fn openai_max_tokens(m: &str) -> Option<u32> {
    if m.starts_with("gpt-5") {
        Some(128_000)
    } else if m.starts_with("gpt-4.1") {
        Some(32_768)
    } else if m.starts_with("gpt-4o") {
        Some(16_384)
    } else if m.starts_with("o1") || m.starts_with("o3") || m.starts_with("o4") {
        Some(100_000)
    } else {
        None
    }
}

/// The model name without a provider prefix, lowercased.
fn base_name(model: &str) -> String {
    let m = model.to_ascii_lowercase();
    m.rsplit('/').next().unwrap_or(&m).to_string()
}

/// The context window of `model` in tokens (what fits in one request, input plus output).
/// Claude models have 200k (1M with the `[1m]` suffix); unknown models are assumed to have
/// 128k, the common size of current open models (a local server may be configured smaller).
pub fn context_window(model: &str) -> u64 {
    let m = base_name(model);
    if m.contains("[1m]") {
        1_000_000
    } else if m.starts_with("claude") {
        200_000
    } else if m.starts_with("gpt-4.1") {
        1_047_576
    } else if m.starts_with("gpt-5") {
        400_000
    } else if m.starts_with("o1") || m.starts_with("o3") || m.starts_with("o4") {
        200_000
    } else {
        128_000
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
        assert_eq!(
            resolve_alias("haiku", "claude-sonnet-4-5"),
            "claude-haiku-4-5"
        );
        assert_eq!(
            resolve_alias("inherit", "claude-sonnet-4-5"),
            "claude-sonnet-4-5"
        );
        assert_eq!(resolve_alias("opus", "gpt-4.1"), "gpt-4.1");
        assert_eq!(resolve_alias("gpt-5", "claude-sonnet-4-5"), "gpt-5");
        assert_eq!(default_max_tokens("claude-3-5-haiku-latest"), 8_192);
        assert_eq!(default_max_tokens("claude-3-haiku-20240307"), 4_096);
        assert_eq!(default_max_tokens("some-gateway-model"), 32_000);
        assert_eq!(known_max_tokens("some-gateway-model"), None);
        assert_eq!(default_max_tokens("anthropic/claude-sonnet-4.5"), 64_000);
        assert_eq!(default_max_tokens("gpt-4.1-mini"), 32_768);
        assert_eq!(default_max_tokens("openai/gpt-5"), 128_000);
        assert_eq!(default_max_tokens("o4-mini"), 100_000);
    }

    #[test]
    fn context_windows_by_family() {
        assert_eq!(context_window("claude-sonnet-4-5"), 200_000);
        assert_eq!(context_window("claude-sonnet-4-5[1m]"), 1_000_000);
        assert_eq!(context_window("gpt-4.1"), 1_047_576);
        assert_eq!(context_window("qwen2.5-coder:7b"), 128_000);
    }
}
