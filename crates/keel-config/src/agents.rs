//! Agent definitions: Markdown files in `.keel/agents/` and `.claude/agents/` (and the
//! user-level folders) describing a subagent the `Agent` tool can start. Frontmatter:
//! `name`, `description` (when to use it, shown to the model), optional `tools` (the subset
//! it may use; all of the parent's when absent) and `model`; the body is its system prompt.

use std::path::Path;

use serde::Deserialize;

use crate::definitions::{
    DefinitionScope, DefinitionSources, Loaded, Named, markdown_files, read, valid_name,
};
use crate::frontmatter::{self, DefinitionWarning, ToolList};

/// One subagent definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentDefinition {
    /// The `subagent_type` that selects it.
    pub name: String,
    /// When to use it, shown to the model in the `Agent` tool's description.
    pub description: String,
    /// The tools it may use (`None`: all of its parent's).
    pub tools: Option<Vec<String>>,
    /// Its model (`None`: the one the call asks for, else the parent's).
    pub model: Option<String>,
    /// Its system prompt.
    pub system_prompt: String,
    /// The file (`None` for keel's built-in agents).
    pub path: Option<std::path::PathBuf>,
    /// User or project level (`None` for built-ins).
    pub scope: Option<DefinitionScope>,
}

impl Named for AgentDefinition {
    fn name(&self) -> &str {
        &self.name
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct AgentFrontmatter {
    name: Option<String>,
    description: Option<String>,
    tools: Option<ToolList>,
    model: Option<String>,
}

/// Reads every agent definition the sources name. Bad files are warnings; the rest load.
pub fn load_agents(sources: &DefinitionSources) -> Loaded<AgentDefinition> {
    let mut loaded = Loaded::default();
    for (scope, dir) in sources.dirs("agents") {
        for (path, _) in markdown_files(&dir) {
            match read(&path, "agent").and_then(|text| parse_agent(&path, &text, scope)) {
                Ok(agent) => loaded.put(agent),
                Err(warning) => loaded.warnings.push(warning),
            }
        }
    }
    loaded.sort();
    loaded
}

/// Parses one agent file.
pub fn parse_agent(
    path: &Path,
    text: &str,
    scope: DefinitionScope,
) -> Result<AgentDefinition, DefinitionWarning> {
    let skipped = |line, message: String| {
        DefinitionWarning::new(path, line, format!("{message} (agent skipped)"))
    };
    let doc = frontmatter::split(text).map_err(|m| skipped(1, m))?;
    let Some(yaml) = doc.frontmatter else {
        return Err(skipped(
            1,
            "an agent file needs frontmatter with at least `name` and `description` between \
             `---` lines"
                .to_string(),
        ));
    };
    let fields: AgentFrontmatter = frontmatter::parse(yaml, path).map_err(|mut w| {
        w.message.push_str(" (agent skipped)");
        w
    })?;
    let name = fields
        .name
        .map(|n| n.trim().to_string())
        .or_else(|| path.file_stem().map(|s| s.to_string_lossy().to_string()))
        .unwrap_or_default();
    if !valid_name(&name) {
        return Err(skipped(
            frontmatter::key_line(yaml, "name").unwrap_or(1),
            format!(
                "agent name {name:?} cannot be used as a subagent_type: use letters, digits and \
                 hyphens"
            ),
        ));
    }
    let description = fields
        .description
        .map(|d| d.trim().to_string())
        .filter(|d| !d.is_empty())
        .ok_or_else(|| {
            skipped(
                frontmatter::key_line(yaml, "description").unwrap_or(1),
                "the agent has no description, so the model cannot know when to use it; add \
                 `description: ...`"
                    .to_string(),
            )
        })?;
    let tools = fields
        .tools
        .map(|t| t.0)
        .filter(|t| !(t.len() == 1 && t[0] == "*"));
    Ok(AgentDefinition {
        name,
        description,
        tools,
        model: fields
            .model
            .filter(|m| !m.trim().is_empty() && m != "inherit"),
        system_prompt: doc.body.trim().to_string(),
        path: Some(path.to_path_buf()),
        scope: Some(scope),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<AgentDefinition, DefinitionWarning> {
        parse_agent(
            Path::new("/p/.claude/agents/reviewer.md"),
            text,
            DefinitionScope::Project,
        )
    }

    #[test]
    fn an_agent_definition() {
        let agent = parse(
            "---\nname: code-reviewer\ndescription: Reviews diffs\ntools: Read, Grep, Glob\nmodel: inherit\n---\nYou review code.\n",
        )
        .unwrap();
        assert_eq!(agent.name, "code-reviewer");
        assert_eq!(agent.description, "Reviews diffs");
        assert_eq!(
            agent.tools.as_deref(),
            Some(&["Read".to_string(), "Grep".into(), "Glob".into()][..])
        );
        assert_eq!(agent.model, None);
        assert_eq!(agent.system_prompt, "You review code.");
        let all = parse("---\ndescription: d\ntools: '*'\n---\nx").unwrap();
        assert_eq!(all.name, "reviewer");
        assert_eq!(all.tools, None);
    }

    #[test]
    fn bad_agents_are_warnings() {
        let err = parse("You review code.").unwrap_err();
        assert!(err.message.contains("needs frontmatter"), "{err}");
        let err = parse("---\nname: r\ntools: {x: 1}\n---\n").unwrap_err();
        assert_eq!(err.line, 3, "{err}");
        let err = parse("---\nname: r\n---\nbody").unwrap_err();
        assert!(err.message.contains("no description"), "{err}");
    }
}
