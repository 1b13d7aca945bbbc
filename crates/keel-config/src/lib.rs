//! What the user configured. Settings come in layers (user, project, local, `--settings`),
//! each a JSON file in Claude Code's format; they are merged with arrays concatenated and
//! scalars overridden by the more specific layer. Every mistake is reported with the file,
//! line, column and key at fault. Memory files (`CLAUDE.md`, `AGENTS.md`) are found and their
//! `@path` imports resolved in [`memory`]. Skills, custom slash commands and agent definitions
//! (Markdown with YAML frontmatter) are found and parsed in [`skills`], [`commands`] and
//! [`agents`].

pub mod agents;
pub mod commands;
pub mod definitions;
pub mod edit;
pub mod frontmatter;
pub mod load;
pub mod memory;
pub mod settings;
pub mod skills;

pub use agents::{AgentDefinition, load_agents, parse_agent};
pub use commands::{
    CustomCommand, load_commands, parse_command, split_arguments, substitute_arguments,
};
pub use definitions::{DefinitionScope, DefinitionSources, Loaded};
pub use edit::{Change, EditError, change_file, file_for, get_path, parse_cli_value};
pub use frontmatter::{DefinitionWarning, ToolList};
pub use load::{
    Layer, LoadOptions, LoadedSettings, RuleOrigin, Scope, SettingsError, SourceSet, Warning, load,
    project_root,
};
pub use memory::{
    ImportRef, MAX_CHARS, MAX_IMPORT_DEPTH, Memory, MemoryFile, MemoryLoader, MemoryScope,
    MemoryWarning, WARN_CHARS, find_imports, repo_root,
};
pub use settings::{HookCommand, HookMatcher, Permissions, SandboxSettings, Settings};
pub use skills::{SKILL_FILE, Skill, load_skills, parse_skill};
