//! What the user configured. Settings come in layers (user, project, local, `--settings`),
//! each a JSON file in Claude Code's format; they are merged with arrays concatenated and
//! scalars overridden by the more specific layer. Every mistake is reported with the file,
//! line, column and key at fault.

pub mod edit;
pub mod load;
pub mod settings;

pub use edit::{Change, EditError, change_file, file_for, get_path, parse_cli_value};
pub use load::{
    Layer, LoadOptions, LoadedSettings, RuleOrigin, Scope, SettingsError, SourceSet, Warning, load,
    project_root,
};
pub use settings::{
    HookCommand, HookMatcher, Permissions, PriceOverride, SandboxSettings, Settings,
};
