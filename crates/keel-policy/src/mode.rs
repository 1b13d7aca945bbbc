//! Permission modes, spelled the way Claude Code spells them in settings and on the command
//! line.

use std::fmt;
use std::str::FromStr;

/// What happens to a tool call that no rule decides.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum PermissionMode {
    /// Reads inside the working directories and read-only commands run; the rest asks.
    #[default]
    Default,
    /// Like `default`, and edits (plus `mkdir`/`touch`/`cp`/`mv`) inside the working
    /// directories run without asking.
    AcceptEdits,
    /// Nothing that changes anything runs; the model explores and then presents a plan.
    Plan,
    /// Everything runs except what a deny or ask rule stops and writes to protected paths.
    BypassPermissions,
    /// Like `default`, but anything that would ask is denied instead (unattended runs).
    DontAsk,
}

impl PermissionMode {
    /// Every mode, in the order they are listed to users.
    pub const ALL: [PermissionMode; 5] = [
        PermissionMode::Default,
        PermissionMode::AcceptEdits,
        PermissionMode::Plan,
        PermissionMode::BypassPermissions,
        PermissionMode::DontAsk,
    ];

    /// Claude Code's spelling (`default`, `acceptEdits`, `plan`, `bypassPermissions`,
    /// `dontAsk`).
    pub fn as_str(self) -> &'static str {
        match self {
            PermissionMode::Default => "default",
            PermissionMode::AcceptEdits => "acceptEdits",
            PermissionMode::Plan => "plan",
            PermissionMode::BypassPermissions => "bypassPermissions",
            PermissionMode::DontAsk => "dontAsk",
        }
    }
}

impl fmt::Display for PermissionMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A permission mode name that is not one of the five.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown permission mode `{given}`; valid modes are default, acceptEdits, plan, \
     bypassPermissions and dontAsk"
)]
pub struct ModeParseError {
    /// What was given.
    pub given: String,
}

impl FromStr for PermissionMode {
    type Err = ModeParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PermissionMode::ALL
            .into_iter()
            .find(|m| m.as_str() == s.trim())
            .ok_or_else(|| ModeParseError {
                given: s.to_string(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_lists_valid_values() {
        for mode in PermissionMode::ALL {
            assert_eq!(mode.as_str().parse::<PermissionMode>(), Ok(mode));
        }
        let err = "accept-edits".parse::<PermissionMode>().unwrap_err();
        assert!(err.to_string().contains("acceptEdits"), "{err}");
    }
}
