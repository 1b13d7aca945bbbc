//! Slash commands the prompt completes: the engine's (built-ins, custom commands, skills, MCP
//! prompts) and the terminal UI's own, each with a one-line description.

/// Commands the terminal UI handles itself, with what they do.
pub const TUI_COMMANDS: &[(&str, &str)] = &[
    ("add", "Pin a file to every message [path]"),
    ("commit", "Ask the agent to commit the uncommitted changes"),
    ("copy", "Copy the last answer to the clipboard"),
    ("diff", "Show the uncommitted changes (git diff)"),
    (
        "doctor",
        "Check configuration, provider, MCP servers and sandbox",
    ),
    ("effort", "Set the reasoning effort [low|medium|high]"),
    ("export", "Write the conversation to a Markdown file [path]"),
    ("files", "List the pinned files"),
    ("mode", "Switch the permission mode [mode]"),
    ("model", "Pick the model from a list, or switch to [name]"),
    (
        "plan",
        "Switch to plan mode (read-only until a plan is approved)",
    ),
    ("quit", "Leave keel"),
    (
        "resume",
        "Pick an earlier session of this directory to continue [id]",
    ),
    ("review", "Ask the agent to review the uncommitted changes"),
    (
        "rewind",
        "Go back to before an earlier prompt and edit it [n]",
    ),
    ("think", "Think harder on the next prompt"),
    ("version", "Show keel's version"),
    ("vim", "Toggle vi editing of the prompt"),
];

/// One completion candidate: the command (without `/`) and its description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// The name typed after `/`.
    pub name: String,
    /// What it does.
    pub description: String,
}

/// Every command, sorted by name, without duplicates (the UI's own win).
pub fn all(engine: &[(String, String)]) -> Vec<Command> {
    let mut out: Vec<Command> = TUI_COMMANDS
        .iter()
        .map(|(n, d)| Command {
            name: (*n).to_string(),
            description: (*d).to_string(),
        })
        .collect();
    for (name, description) in engine {
        if !out.iter().any(|c| &c.name == name) {
            out.push(Command {
                name: name.clone(),
                description: description.clone(),
            });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// The commands matching what was typed after `/`: prefix matches first, then names that
/// contain it.
pub fn matching<'a>(commands: &'a [Command], typed: &str) -> Vec<&'a Command> {
    let typed = typed.to_lowercase();
    let mut prefix: Vec<&Command> = commands
        .iter()
        .filter(|c| c.name.starts_with(&typed))
        .collect();
    let inner = commands
        .iter()
        .filter(|c| !c.name.starts_with(&typed) && c.name.contains(&typed));
    prefix.extend(inner);
    prefix
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_matches_come_first() {
        let cmds = all(&[("compact".into(), "x".into()), ("cost".into(), "y".into())]);
        let names: Vec<&str> = matching(&cmds, "co")
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(names, ["commit", "compact", "copy", "cost"]);
    }
}
