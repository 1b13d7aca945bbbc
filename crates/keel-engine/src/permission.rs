//! Which tool calls may run without asking. This is the Foundation's interim policy: read-only
//! tools always run; tools that change files or run commands run only when the user bypassed
//! permissions. The full rule system (modes, allow/ask/deny rules, hooks) replaces it.

/// The session's permission mode, spelled as Claude Code spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PermissionMode {
    /// Read-only tools run; anything else is refused with an explanation.
    #[default]
    Default,
    /// Every tool runs (`--dangerously-skip-permissions`).
    BypassPermissions,
}

impl PermissionMode {
    /// Claude Code's name for the mode, as printed in `init` lines.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Default => "default",
            Self::BypassPermissions => "bypassPermissions",
        }
    }

    /// Why a call to `tool` must not run, or `None` if it may.
    pub fn refuses(self, tool: &str, read_only: bool) -> Option<String> {
        match self {
            Self::BypassPermissions => None,
            Self::Default if read_only => None,
            Self::Default => Some(format!(
                "Permission to use {tool} was denied. keel is running in the default permission \
                 mode, in which only read-only tools (Read, Glob, Grep) run; {tool} changes files \
                 or runs commands. Tell the user what you wanted to do: they can rerun keel with \
                 --dangerously-skip-permissions to allow it."
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_mode_refuses_only_mutating_tools() {
        assert_eq!(PermissionMode::Default.refuses("Read", true), None);
        let reason = PermissionMode::Default.refuses("Bash", false).unwrap();
        assert!(reason.contains("--dangerously-skip-permissions"));
        assert!(reason.contains("Bash"));
        assert_eq!(
            PermissionMode::BypassPermissions.refuses("Bash", false),
            None
        );
    }
}
