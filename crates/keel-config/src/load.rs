//! Finding, parsing and merging settings files.

use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::settings::{
    CLAUDE_CODE_KEYS_IGNORED, HOOK_EVENTS, KNOWN_KEYS, PERMISSION_KEYS, PERMISSION_MODES, Settings,
    WEB_KEYS,
};

/// Where a settings layer comes from, lowest precedence first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    /// `~/.claude/settings.json`, `~/.keel/settings.json`: every project.
    User,
    /// `.claude/settings.json`, `.keel/settings.json`: shared with the team.
    Project,
    /// `.claude/settings.local.json`, `.keel/settings.local.json`: this machine only.
    Local,
    /// `--settings FILE|JSON`.
    Flag,
}

impl Scope {
    /// The name used by `--setting-sources` and in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Project => "project",
            Self::Local => "local",
            Self::Flag => "flag",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which file-based scopes to read (`--setting-sources user,project,local`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceSet {
    /// Read user settings.
    pub user: bool,
    /// Read project settings.
    pub project: bool,
    /// Read local settings.
    pub local: bool,
}

impl Default for SourceSet {
    fn default() -> Self {
        Self {
            user: true,
            project: true,
            local: true,
        }
    }
}

impl SourceSet {
    /// Parses `--setting-sources`: a comma-separated list of `user`, `project`, `local`
    /// (an empty string reads none, as the Agent SDK uses it).
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut set = Self {
            user: false,
            project: false,
            local: false,
        };
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part {
                "user" => set.user = true,
                "project" => set.project = true,
                "local" => set.local = true,
                other => {
                    return Err(format!(
                        "--setting-sources: unknown source {other:?}; use a comma-separated list of user, project, local"
                    ));
                }
            }
        }
        Ok(set)
    }

    fn includes(&self, scope: Scope) -> bool {
        match scope {
            Scope::User => self.user,
            Scope::Project => self.project,
            Scope::Local => self.local,
            Scope::Flag => true,
        }
    }
}

/// What to load.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// The user's home directory.
    pub home: PathBuf,
    /// The working directory keel started in.
    pub cwd: PathBuf,
    /// File scopes to read.
    pub sources: SourceSet,
    /// `--settings`: a file path, or inline JSON (text starting with `{`).
    pub flag_settings: Option<String>,
}

/// One parsed settings file (or inline JSON).
#[derive(Debug, Clone, PartialEq)]
pub struct Layer {
    /// Its scope.
    pub scope: Scope,
    /// The file, or `None` for inline `--settings` JSON.
    pub path: Option<PathBuf>,
    /// The directory rules with a leading `/` are relative to (the project root for project
    /// and local files, home for user files, the working directory for inline JSON).
    pub base_dir: PathBuf,
    /// The file's JSON.
    pub value: Value,
    /// The file's settings.
    pub settings: Settings,
}

impl Layer {
    /// The file name for messages, or `--settings` for inline JSON.
    pub fn origin(&self) -> String {
        match &self.path {
            Some(path) => path.display().to_string(),
            None => "--settings".to_string(),
        }
    }
}

/// A problem that does not stop keel: an unknown key, a misspelt hook event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// The file it was found in.
    pub origin: String,
    /// What is wrong and what keel did about it.
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.origin, self.message)
    }
}

/// A settings file keel cannot use. The message names the file, the position and the key.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The file exists but cannot be read.
    #[error("{path}: cannot read settings: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid JSON.
    #[error(
        "{origin}:{line}:{column}: invalid JSON: {message}. Fix the file (or move it aside) and run keel again"
    )]
    Json {
        /// The file.
        origin: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// The parser's explanation.
        message: String,
    },
    /// A known key has a value of the wrong type or an invalid value.
    #[error("{origin}:{line}:{column}: `{key}`: {message}")]
    Invalid {
        /// The file.
        origin: String,
        /// 1-based line (0 when unknown).
        line: usize,
        /// 1-based column (0 when unknown).
        column: usize,
        /// The dotted key at fault, e.g. `permissions.allow[2]`.
        key: String,
        /// What is wrong and what is expected.
        message: String,
    },
}

/// All settings layers, merged.
#[derive(Debug, Clone, Default)]
pub struct LoadedSettings {
    /// The layers read, lowest precedence first.
    pub layers: Vec<Layer>,
    /// The merged JSON: objects merged key by key, arrays concatenated, scalars overridden.
    pub merged: Value,
    /// The merged settings.
    pub effective: Settings,
    /// Problems that did not stop loading.
    pub warnings: Vec<Warning>,
    /// The project root: where `.keel/` and `.claude/` were looked for.
    pub project_root: PathBuf,
}

/// A permission rule with the layer it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleOrigin {
    /// The rule text, e.g. `Bash(git diff:*)`.
    pub rule: String,
    /// `allow`, `ask` or `deny`.
    pub list: &'static str,
    /// The file (or `--settings`).
    pub origin: String,
    /// The directory a leading `/` in the rule's path pattern is relative to.
    pub base_dir: PathBuf,
}

impl LoadedSettings {
    /// Every permission rule with its origin, in precedence order (lowest first).
    pub fn rules(&self) -> Vec<RuleOrigin> {
        let mut rules = Vec::new();
        for layer in &self.layers {
            let lists: [(&'static str, &Vec<String>); 3] = [
                ("allow", &layer.settings.permissions.allow),
                ("ask", &layer.settings.permissions.ask),
                ("deny", &layer.settings.permissions.deny),
            ];
            for (list, entries) in lists {
                for rule in entries {
                    rules.push(RuleOrigin {
                        rule: rule.clone(),
                        list,
                        origin: layer.origin(),
                        base_dir: layer.base_dir.clone(),
                    });
                }
            }
        }
        rules
    }

    /// The layer with the highest precedence that sets the dotted `key`, for `keel config get`.
    pub fn source_of(&self, key: &str) -> Option<&Layer> {
        self.layers
            .iter()
            .rev()
            .find(|layer| crate::edit::get_path(&layer.value, key).is_some())
    }
}

/// The directory whose `.keel/` and `.claude/` hold project settings: the nearest ancestor of
/// `cwd` (up to the repository root) that has one of them, else the repository root, else `cwd`.
/// The home directory is never a project root: its `.claude/` is user-level.
pub fn project_root(cwd: &Path, home: &Path) -> PathBuf {
    let mut git_root = None;
    for dir in cwd.ancestors() {
        if dir == home {
            break;
        }
        if dir.join(".keel").is_dir() || dir.join(".claude").is_dir() {
            return dir.to_path_buf();
        }
        if dir.join(".git").exists() {
            git_root = Some(dir.to_path_buf());
            break;
        }
    }
    git_root.unwrap_or_else(|| cwd.to_path_buf())
}

/// The settings files of each scope, lowest precedence first (Claude Code's file before
/// keel's, so keel's own file wins where both set a key).
pub fn settings_files(home: &Path, project_root: &Path) -> Vec<(Scope, PathBuf, PathBuf)> {
    vec![
        (
            Scope::User,
            home.join(".claude/settings.json"),
            home.to_path_buf(),
        ),
        (
            Scope::User,
            home.join(".keel/settings.json"),
            home.to_path_buf(),
        ),
        (
            Scope::Project,
            project_root.join(".claude/settings.json"),
            project_root.to_path_buf(),
        ),
        (
            Scope::Project,
            project_root.join(".keel/settings.json"),
            project_root.to_path_buf(),
        ),
        (
            Scope::Local,
            project_root.join(".claude/settings.local.json"),
            project_root.to_path_buf(),
        ),
        (
            Scope::Local,
            project_root.join(".keel/settings.local.json"),
            project_root.to_path_buf(),
        ),
    ]
}

/// Reads and merges every settings layer. A missing file is skipped; a broken one is an error
/// naming the file, line, column and key.
pub fn load(options: &LoadOptions) -> Result<LoadedSettings, SettingsError> {
    let project_root = project_root(&options.cwd, &options.home);
    let mut layers = Vec::new();
    let mut warnings = Vec::new();
    for (scope, path, base_dir) in settings_files(&options.home, &project_root) {
        if !options.sources.includes(scope) {
            continue;
        }
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => continue,
            Err(source) => return Err(SettingsError::Io { path, source }),
        };
        let origin = path.display().to_string();
        let (value, settings) = parse(&text, &origin, &mut warnings)?;
        layers.push(Layer {
            scope,
            path: Some(path),
            base_dir,
            value,
            settings,
        });
    }
    if let Some(flag) = &options.flag_settings {
        let trimmed = flag.trim_start();
        let (text, path, origin) = if trimmed.starts_with('{') {
            (flag.clone(), None, "--settings".to_string())
        } else {
            let path = options.cwd.join(flag);
            let text = std::fs::read_to_string(&path).map_err(|source| SettingsError::Io {
                path: path.clone(),
                source,
            })?;
            let origin = path.display().to_string();
            (text, Some(path), origin)
        };
        let (value, settings) = parse(&text, &origin, &mut warnings)?;
        layers.push(Layer {
            scope: Scope::Flag,
            path,
            base_dir: options.cwd.clone(),
            value,
            settings,
        });
    }
    let mut merged = Value::Object(serde_json::Map::new());
    for layer in &layers {
        merge(&mut merged, &layer.value);
    }
    let effective = typed(&merged.to_string(), "merged settings")?;
    Ok(LoadedSettings {
        layers,
        merged,
        effective,
        warnings,
        project_root,
    })
}

/// Parses one settings text: JSON syntax, then the typed shape, then value checks and warnings.
pub fn parse(
    text: &str,
    origin: &str,
    warnings: &mut Vec<Warning>,
) -> Result<(Value, Settings), SettingsError> {
    let value: Value = serde_json::from_str(text).map_err(|e| SettingsError::Json {
        origin: origin.to_string(),
        line: e.line(),
        column: e.column(),
        message: strip_position(&e.to_string()),
    })?;
    let Value::Object(object) = &value else {
        return Err(SettingsError::Invalid {
            origin: origin.to_string(),
            line: 1,
            column: 1,
            key: "(top level)".into(),
            message: "a settings file must be a JSON object, like {\"permissions\": {...}}".into(),
        });
    };
    let settings = typed(text, origin)?;
    check_values(&settings, text, origin)?;
    for key in object.keys() {
        if !KNOWN_KEYS.contains(&key.as_str()) && !CLAUDE_CODE_KEYS_IGNORED.contains(&key.as_str())
        {
            warnings.push(Warning {
                origin: origin.to_string(),
                message: format!(
                    "unknown setting `{key}` (ignored){}",
                    suggestion(key, KNOWN_KEYS)
                ),
            });
        }
    }
    if let Some(Value::Object(permissions)) = object.get("permissions") {
        for key in permissions.keys() {
            if !PERMISSION_KEYS.contains(&key.as_str()) {
                warnings.push(Warning {
                    origin: origin.to_string(),
                    message: format!(
                        "unknown setting `permissions.{key}` (ignored){}",
                        suggestion(key, PERMISSION_KEYS)
                    ),
                });
            }
        }
    }
    if let Some(Value::Object(web)) = object.get("web") {
        for key in web.keys() {
            if !WEB_KEYS.contains(&key.as_str()) {
                warnings.push(Warning {
                    origin: origin.to_string(),
                    message: format!(
                        "unknown setting `web.{key}` (ignored){}",
                        suggestion(key, WEB_KEYS)
                    ),
                });
            }
        }
    }
    for event in settings.hooks.keys() {
        if !HOOK_EVENTS.contains(&event.as_str()) {
            warnings.push(Warning {
                origin: origin.to_string(),
                message: format!(
                    "unknown hook event `hooks.{event}` (its hooks never run){}",
                    suggestion(event, HOOK_EVENTS)
                ),
            });
        }
    }
    Ok((value, settings))
}

/// Deserializes the typed settings, reporting the key path and position of a type error.
fn typed(text: &str, origin: &str) -> Result<Settings, SettingsError> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize::<_, Settings>(&mut deserializer).map_err(|error| {
        let key = error.path().to_string();
        let inner = error.into_inner();
        SettingsError::Invalid {
            origin: origin.to_string(),
            line: inner.line(),
            column: inner.column(),
            key,
            message: strip_position(&inner.to_string()),
        }
    })
}

/// Checks values that have the right type but an impossible value.
fn check_values(settings: &Settings, text: &str, origin: &str) -> Result<(), SettingsError> {
    let invalid = |key: &str, needle: &str, message: String| {
        let (line, column) = position_of(text, needle);
        SettingsError::Invalid {
            origin: origin.to_string(),
            line,
            column,
            key: key.to_string(),
            message,
        }
    };
    if let Some(mode) = &settings.permissions.default_mode
        && !PERMISSION_MODES.contains(&mode.as_str())
    {
        return Err(invalid(
            "permissions.defaultMode",
            "\"defaultMode\"",
            format!(
                "unknown permission mode {mode:?}; use one of {}",
                PERMISSION_MODES.join(", ")
            ),
        ));
    }
    if let Some(threshold) = settings.auto_compact_threshold
        && !(0.5..=0.98).contains(&threshold)
    {
        return Err(invalid(
            "autoCompactThreshold",
            "\"autoCompactThreshold\"",
            format!(
                "{threshold} is out of range; use a fraction of the context window between 0.5 and 0.98"
            ),
        ));
    }
    if let Some(tool) = &settings.todo_tool
        && tool != "tasks"
        && tool != "TodoWrite"
    {
        return Err(invalid(
            "todoTool",
            "\"todoTool\"",
            format!("unknown planning tool {tool:?}; use \"tasks\" or \"TodoWrite\""),
        ));
    }
    for (key, value) in [
        ("web.searxngUrl", &settings.web.searxng_url),
        ("web.braveApiUrl", &settings.web.brave_api_url),
    ] {
        if let Some(url) = value
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            let field = key.trim_start_matches("web.");
            return Err(invalid(
                key,
                &format!("\"{field}\""),
                format!("{url:?} is not an http(s) URL; write it like \"http://localhost:8888\""),
            ));
        }
    }
    for (event, matchers) in &settings.hooks {
        for (i, matcher) in matchers.iter().enumerate() {
            for (j, hook) in matcher.hooks.iter().enumerate() {
                let key = format!("hooks.{event}[{i}].hooks[{j}]");
                if hook.kind != "command" {
                    return Err(invalid(
                        &format!("{key}.type"),
                        &format!("\"{}\"", hook.kind),
                        format!(
                            "unsupported hook type {:?}; keel runs hooks of type \"command\"",
                            hook.kind
                        ),
                    ));
                }
                if hook.command.trim().is_empty() {
                    return Err(invalid(
                        &format!("{key}.command"),
                        "\"hooks\"",
                        "a command hook needs a non-empty \"command\"".into(),
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Line and column (1-based) of the first occurrence of `needle`, or (0, 0).
fn position_of(text: &str, needle: &str) -> (usize, usize) {
    let Some(offset) = text.find(needle) else {
        return (0, 0);
    };
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// serde_json appends " at line L column C"; keel prints the position in front instead.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(cut) => message[..cut].to_string(),
        None => message.to_string(),
    }
}

/// " (did you mean `x`?)" when a known name is one or two edits away.
fn suggestion(name: &str, known: &[&str]) -> String {
    known
        .iter()
        .filter(|candidate| edit_distance(&name.to_lowercase(), &candidate.to_lowercase()) <= 2)
        .min_by_key(|candidate| edit_distance(name, candidate))
        .map(|candidate| format!(" (did you mean `{candidate}`?)"))
        .unwrap_or_default()
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

/// Merges `higher` into `lower`: objects key by key, arrays concatenated without duplicates,
/// anything else replaced.
pub fn merge(lower: &mut Value, higher: &Value) {
    match (lower, higher) {
        (Value::Object(low), Value::Object(high)) => {
            for (key, value) in high {
                match low.get_mut(key) {
                    Some(existing) => merge(existing, value),
                    None => {
                        low.insert(key.clone(), value.clone());
                    }
                }
            }
        }
        (Value::Array(low), Value::Array(high)) => {
            for item in high {
                if !low.contains(item) {
                    low.push(item.clone());
                }
            }
        }
        (low, high) => *low = high.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_concatenates_arrays_and_overrides_scalars() {
        let mut low = json!({"model": "a", "permissions": {"allow": ["Read", "Bash(ls)"]}, "env": {"A": "1"}});
        merge(
            &mut low,
            &json!({"model": "b", "permissions": {"allow": ["Bash(ls)", "Edit"]}, "env": {"B": "2"}}),
        );
        assert_eq!(
            low,
            json!({"model": "b", "permissions": {"allow": ["Read", "Bash(ls)", "Edit"]}, "env": {"A": "1", "B": "2"}})
        );
    }

    #[test]
    fn source_sets_parse() {
        assert_eq!(
            SourceSet::parse("user, local").unwrap(),
            SourceSet {
                user: true,
                project: false,
                local: true
            }
        );
        assert_eq!(
            SourceSet::parse("").unwrap(),
            SourceSet {
                user: false,
                project: false,
                local: false
            }
        );
        assert!(
            SourceSet::parse("users")
                .unwrap_err()
                .contains("unknown source")
        );
    }

    #[test]
    fn suggestions_catch_typos() {
        assert_eq!(
            suggestion("permisions", KNOWN_KEYS),
            " (did you mean `permissions`?)"
        );
        assert_eq!(suggestion("zzz", KNOWN_KEYS), "");
    }
}
