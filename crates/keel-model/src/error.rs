//! Why talking to a model failed, in words that tell the user what to fix.

use std::time::Duration;

/// A failed model request or stream. Each message is one line naming the problem and the fix.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ModelError {
    /// The API answered with an error status.
    #[error("{}", api_message(*status, error_type, message, help.as_deref()))]
    Api {
        /// The HTTP status.
        status: u16,
        /// The API's error type, e.g. `authentication_error`.
        error_type: String,
        /// The API's own explanation.
        message: String,
        /// What the user can do about it (names the setting or flag to check).
        help: Option<String>,
        /// How long the server asked us to wait before retrying (`retry-after`).
        retry_after: Option<Duration>,
    },
    /// The API could not be reached at all.
    #[error("cannot reach the model API at {url}: {reason}. Check the base URL and your network")]
    Connect {
        /// Where keel tried to connect.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The server accepted the request but stopped answering within the time allowed.
    #[error("the model API did not answer within {after:?} ({phase}); the request was abandoned")]
    Timeout {
        /// Which wait expired: `first byte` or `idle stream`.
        phase: &'static str,
        /// How long keel waited.
        after: Duration,
    },
    /// The stream closed before the message was complete.
    #[error(
        "the model's response stream ended early (the connection closed before the message was complete)"
    )]
    StreamEnded,
    /// The connection broke while the answer was streaming.
    #[error("the model's response stream broke: {0}")]
    StreamBroken(String),
    /// The server sent an `error` event in the middle of the stream.
    #[error("the model API reported an error mid-stream ({error_type}): {message}")]
    StreamError {
        /// The API's error type, e.g. `overloaded_error`.
        error_type: String,
        /// The API's explanation.
        message: String,
    },
    /// The server sent an event keel could not understand.
    #[error("the model API sent a malformed {event} event: {reason}")]
    MalformedEvent {
        /// The event's name.
        event: String,
        /// Why it could not be parsed.
        reason: String,
    },
    /// The request could not be built or sent (a bug or a bad setting, not a server problem).
    #[error("cannot send the model request: {0}")]
    Request(String),
    /// The model (or the server running it) cannot call tools, and keel cannot work without them.
    #[error(
        "the model {model:?} cannot call tools ({detail}), and keel needs tools to read, edit and run things. {help}"
    )]
    ToolsUnsupported {
        /// The model asked for.
        model: String,
        /// The server's own words.
        detail: String,
        /// What to pick or change instead.
        help: String,
    },
    /// A replay file could not answer (missing, unreadable, or out of recorded responses).
    #[error("{0}")]
    Replay(String),
}

fn api_message(status: u16, error_type: &str, message: &str, help: Option<&str>) -> String {
    let what = match status {
        400 => "the model API rejected the request",
        401 => "authentication failed",
        403 => "permission denied by the model API",
        404 => "not found",
        408 => "the model API timed out",
        413 => "the request is too large for the model API",
        429 => "rate limited by the model API",
        529 => "the model API is overloaded",
        500..=599 => "the model API had a server error",
        _ => "the model API returned an error",
    };
    let kind = if error_type.is_empty() {
        String::new()
    } else {
        format!(" {error_type}")
    };
    let mut line = format!("{what} ({status}{kind}): {message}");
    if let Some(help) = help {
        line.push_str(". ");
        line.push_str(help);
    }
    line
}

/// Statuses that mean "try again": timeout, conflict, rate limit, server errors, overload.
fn retryable_status(status: u16) -> bool {
    matches!(status, 408 | 409 | 429 | 500 | 502 | 503 | 504 | 529)
}

impl ModelError {
    /// Whether sending the same request again may succeed (rate limits, overload, server
    /// errors, broken connections), as opposed to errors that need the user to change something.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Api { status, .. } => retryable_status(*status),
            Self::Connect { .. }
            | Self::Timeout { .. }
            | Self::StreamEnded
            | Self::StreamBroken(_)
            | Self::MalformedEvent { .. } => true,
            // Anthropic's transient error types, and OpenAI's `server_error` (also what
            // llama.cpp and vLLM send when generation fails mid-stream).
            Self::StreamError { error_type, .. } => {
                matches!(
                    error_type.as_str(),
                    "overloaded_error"
                        | "api_error"
                        | "rate_limit_error"
                        | "timeout_error"
                        | "server_error"
                        | "rate_limit_exceeded"
                ) || error_type.parse().is_ok_and(retryable_status)
            }
            Self::Request(_) | Self::ToolsUnsupported { .. } | Self::Replay(_) => false,
        }
    }

    /// The server's requested wait before a retry, if it gave one.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Api { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// Whether the request failed because the conversation no longer fits the context window.
    pub fn is_prompt_too_long(&self) -> bool {
        match self {
            Self::Api {
                status, message, ..
            } => {
                let m = message.to_ascii_lowercase();
                (*status == 400 || *status == 413)
                    && (m.contains("prompt is too long")
                        || m.contains("context length")
                        || m.contains("context window")
                        || m.contains("maximum context"))
            }
            _ => false,
        }
    }
}

/// A provider that cannot be set up from what the user configured.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// No credentials were found.
    #[error("{0}")]
    MissingCredentials(String),
    /// A setting has a value keel cannot use.
    #[error("{setting}: {problem}")]
    Invalid {
        /// The environment variable, flag or setting at fault.
        setting: String,
        /// What is wrong and how to fix it.
        problem: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(status: u16, message: &str, help: Option<&str>) -> ModelError {
        ModelError::Api {
            status,
            error_type: "authentication_error".into(),
            message: message.into(),
            help: help.map(str::to_string),
            retry_after: None,
        }
    }

    #[test]
    fn api_errors_are_one_line_with_the_fix() {
        let text = api(401, "invalid x-api-key", Some("Check ANTHROPIC_API_KEY")).to_string();
        assert_eq!(
            text,
            "authentication failed (401 authentication_error): invalid x-api-key. Check ANTHROPIC_API_KEY"
        );
        assert!(!text.contains('\n'));
    }

    #[test]
    fn retryable_statuses() {
        for status in [408, 409, 429, 500, 502, 503, 504, 529] {
            assert!(api(status, "x", None).is_retryable(), "{status}");
        }
        for status in [400, 401, 403, 404, 413] {
            assert!(!api(status, "x", None).is_retryable(), "{status}");
        }
        assert!(ModelError::StreamEnded.is_retryable());
    }

    #[test]
    fn prompt_too_long_is_recognised() {
        assert!(
            api(
                400,
                "prompt is too long: 210000 tokens > 200000 maximum",
                None
            )
            .is_prompt_too_long()
        );
        assert!(!api(400, "max_tokens too large", None).is_prompt_too_long());
    }
}
