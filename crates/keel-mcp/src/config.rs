//! Which MCP servers the user configured, in Claude Code's `.mcp.json` format: reading the
//! project file, the settings' `mcpServers` and `--mcp-config` values, expanding `${VAR}`
//! references, and editing the files for `keel mcp add/remove`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

/// Why a configuration could not be read or changed. Every message names the file (or flag),
/// the server and the field at fault, and what to do about it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    /// A file could not be read or written.
    #[error("{path}: {message}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A file or flag value is not valid JSON, or not shaped like `{"mcpServers": {...}}`.
    #[error("{origin}: {message}")]
    Syntax {
        /// The file or flag the text came from.
        origin: String,
        /// What is wrong.
        message: String,
    },
    /// One server's definition is wrong.
    #[error("{origin}: MCP server `{server}`: {message}")]
    Server {
        /// The file or flag the definition came from.
        origin: String,
        /// The server's name.
        server: String,
        /// What is wrong, naming the field.
        message: String,
    },
    /// A `${VAR}` reference names a variable that is not set and has no default.
    #[error(
        "{origin}: MCP server `{server}`: environment variable `{variable}` (used in `{field}`) \
         is not set; set it, or write `${{{variable}:-default}}` to give a default"
    )]
    MissingVariable {
        /// The file or flag the definition came from.
        origin: String,
        /// The server's name.
        server: String,
        /// The variable.
        variable: String,
        /// Where it was used (`args[1]`, `env.TOKEN`, `url`, ...).
        field: String,
    },
    /// `keel mcp add/remove/get` was asked for something that cannot be done.
    #[error("{0}")]
    Edit(String),
}

/// Where a server's definition came from, lowest precedence first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ConfigScope {
    /// The settings' `mcpServers` (`~/.keel/settings.json`, `~/.claude/settings.json`, ...).
    User,
    /// The project's `.mcp.json`, shared with the team.
    Project,
    /// `--mcp-config`, for this run only.
    Flag,
}

impl ConfigScope {
    /// The name shown by `keel mcp list/get`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Project => "project",
            Self::Flag => "flag",
        }
    }
}

impl fmt::Display for ConfigScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How keel talks to a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransportKind {
    /// A child process speaking JSON-RPC on stdin/stdout.
    Stdio,
    /// Streamable HTTP (one endpoint, POST plus optional SSE streams).
    Http,
    /// The legacy HTTP+SSE transport (`GET /sse` gives the endpoint to POST to).
    Sse,
    /// A server inside the frontend's process (the Agent SDK's in-process servers), reached
    /// through the frontend.
    Sdk,
}

impl TransportKind {
    /// The `type` value of `.mcp.json`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stdio => "stdio",
            Self::Http => "http",
            Self::Sse => "sse",
            Self::Sdk => "sdk",
        }
    }

    /// Parses a `type` value (`streamable-http` and `streamableHttp` are accepted for `http`).
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "stdio" => Some(Self::Stdio),
            "http" | "streamable-http" | "streamableHttp" | "streamable_http" => Some(Self::Http),
            "sse" => Some(Self::Sse),
            "sdk" => Some(Self::Sdk),
            _ => None,
        }
    }
}

impl fmt::Display for TransportKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One server's definition as written, before `${VAR}` expansion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSpec {
    /// The transport.
    pub transport: TransportKind,
    /// The program to run (stdio).
    pub command: Option<String>,
    /// Its arguments (stdio).
    pub args: Vec<String>,
    /// Extra environment variables for it (stdio).
    pub env: BTreeMap<String, String>,
    /// The endpoint (http, sse).
    pub url: Option<String>,
    /// Extra HTTP headers (http, sse).
    pub headers: BTreeMap<String, String>,
    /// The frontend's name for an in-process server (sdk; defaults to the configured name).
    pub sdk_name: Option<String>,
}

/// How to reach a server, with every `${VAR}` expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Launch {
    /// Run `command args...` with `env` added to keel's environment.
    Stdio {
        /// The program.
        command: String,
        /// Its arguments.
        args: Vec<String>,
        /// Variables added to the inherited environment.
        env: BTreeMap<String, String>,
    },
    /// Streamable HTTP.
    Http {
        /// The endpoint.
        url: String,
        /// Headers sent with every request.
        headers: BTreeMap<String, String>,
    },
    /// Legacy HTTP+SSE.
    Sse {
        /// The SSE endpoint (`.../sse`).
        url: String,
        /// Headers sent with every request.
        headers: BTreeMap<String, String>,
    },
    /// In the frontend's process, under this name.
    Sdk {
        /// The name the frontend knows the server by.
        name: String,
    },
}

/// A configured server: its name, where it came from and its definition (or why the
/// definition is unusable, so the server can be listed as failed rather than stop the session).
#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    /// The server's name, as in `mcp__<name>__<tool>`.
    pub name: String,
    /// Which source defined it.
    pub scope: ConfigScope,
    /// The file or flag that defined it, for messages.
    pub origin: String,
    /// The definition as written.
    pub spec: Result<ServerSpec, ConfigError>,
}

impl ServerConfig {
    /// A server defined in code (tests, the conformance client, ACP's `session/new`).
    pub fn new(
        name: impl Into<String>,
        scope: ConfigScope,
        origin: impl Into<String>,
        value: &Value,
    ) -> Self {
        let name = name.into();
        let origin = origin.into();
        let spec = parse_spec(&name, &origin, value);
        Self {
            name,
            scope,
            origin,
            spec,
        }
    }

    /// How to reach the server, expanding `${VAR}` and `${VAR:-default}` with `lookup`.
    pub fn launch(&self, lookup: &dyn Fn(&str) -> Option<String>) -> Result<Launch, ConfigError> {
        let spec = self.spec.as_ref().map_err(Clone::clone)?;
        let expand = |text: &str, field: &str| {
            expand_vars(text, lookup).map_err(|variable| ConfigError::MissingVariable {
                origin: self.origin.clone(),
                server: self.name.clone(),
                variable,
                field: field.to_string(),
            })
        };
        let expand_map = |map: &BTreeMap<String, String>, field: &str| {
            map.iter()
                .map(|(key, value)| Ok((key.clone(), expand(value, &format!("{field}.{key}"))?)))
                .collect::<Result<BTreeMap<_, _>, ConfigError>>()
        };
        let missing = |field: &str| ConfigError::Server {
            origin: self.origin.clone(),
            server: self.name.clone(),
            message: format!("`{field}` is required for type `{}`", spec.transport),
        };
        match spec.transport {
            TransportKind::Stdio => {
                let command = spec.command.as_deref().ok_or_else(|| missing("command"))?;
                let command = expand(command, "command")?;
                let args = spec
                    .args
                    .iter()
                    .enumerate()
                    .map(|(i, arg)| expand(arg, &format!("args[{i}]")))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(Launch::Stdio {
                    command,
                    args,
                    env: expand_map(&spec.env, "env")?,
                })
            }
            TransportKind::Sdk => Ok(Launch::Sdk {
                name: spec.sdk_name.clone().unwrap_or_else(|| self.name.clone()),
            }),
            TransportKind::Http | TransportKind::Sse => {
                let url = spec.url.as_deref().ok_or_else(|| missing("url"))?;
                let url = expand(url, "url")?;
                let headers = expand_map(&spec.headers, "headers")?;
                Ok(if spec.transport == TransportKind::Http {
                    Launch::Http { url, headers }
                } else {
                    Launch::Sse { url, headers }
                })
            }
        }
    }

    /// A one-line description for `keel mcp list` (`stdio: npx -y server`, `http: https://...`).
    pub fn describe(&self) -> String {
        match &self.spec {
            Err(_) => "invalid definition".to_string(),
            Ok(spec) => match spec.transport {
                TransportKind::Stdio => {
                    let mut line = spec.command.clone().unwrap_or_default();
                    for arg in &spec.args {
                        line.push(' ');
                        line.push_str(arg);
                    }
                    format!("stdio: {line}")
                }
                TransportKind::Sdk => "sdk: in the Agent SDK program's process".to_string(),
                kind => format!("{kind}: {}", spec.url.clone().unwrap_or_default()),
            },
        }
    }
}

/// Replaces `${VAR}` and `${VAR:-default}` in `text`; returns the name of the first variable
/// that is unset and has no default. Text without a closing brace is kept as written.
pub fn expand_vars(text: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[start..]);
            return Ok(out);
        };
        let inner = &after[..end];
        let (name, default) = match inner.split_once(":-") {
            Some((name, default)) => (name, Some(default)),
            None => (inner, None),
        };
        match (lookup(name), default) {
            (Some(value), _) => out.push_str(&value),
            (None, Some(default)) => out.push_str(default),
            (None, None) => return Err(name.to_string()),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Parses one server's JSON definition, naming the field at fault.
pub fn parse_spec(server: &str, origin: &str, value: &Value) -> Result<ServerSpec, ConfigError> {
    let fail = |message: String| ConfigError::Server {
        origin: origin.to_string(),
        server: server.to_string(),
        message,
    };
    let Value::Object(object) = value else {
        return Err(fail(
            "must be an object with `command` (stdio) or `url` (http, sse)".to_string(),
        ));
    };
    let string = |field: &str| -> Result<Option<String>, ConfigError> {
        match object.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(text)) => Ok(Some(text.clone())),
            Some(other) => Err(fail(format!(
                "`{field}` must be a string, not {}",
                json_kind(other)
            ))),
        }
    };
    let string_map = |field: &str| -> Result<BTreeMap<String, String>, ConfigError> {
        match object.get(field) {
            None | Some(Value::Null) => Ok(BTreeMap::new()),
            Some(Value::Object(map)) => map
                .iter()
                .map(|(key, value)| match value {
                    Value::String(text) => Ok((key.clone(), text.clone())),
                    Value::Number(_) | Value::Bool(_) => Ok((key.clone(), value.to_string())),
                    other => Err(fail(format!(
                        "`{field}.{key}` must be a string, not {}",
                        json_kind(other)
                    ))),
                })
                .collect(),
            Some(other) => Err(fail(format!(
                "`{field}` must be an object of strings, not {}",
                json_kind(other)
            ))),
        }
    };
    let command = string("command")?;
    let url = string("url")?;
    let transport = match string("type")? {
        Some(kind) => TransportKind::parse(&kind)
            .ok_or_else(|| fail(format!("`type` is `{kind}`; use `stdio`, `http` or `sse`")))?,
        None if command.is_some() => TransportKind::Stdio,
        None if url.is_some() => TransportKind::Http,
        None => {
            return Err(fail(
                "has neither `command` (stdio) nor `url` (http, sse)".to_string(),
            ));
        }
    };
    let args = match object.get("args") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| match item {
                Value::String(text) => Ok(text.clone()),
                Value::Number(_) | Value::Bool(_) => Ok(item.to_string()),
                other => Err(fail(format!(
                    "`args[{i}]` must be a string, not {}",
                    json_kind(other)
                ))),
            })
            .collect::<Result<_, _>>()?,
        Some(other) => {
            return Err(fail(format!(
                "`args` must be an array of strings, not {}",
                json_kind(other)
            )));
        }
    };
    let spec = ServerSpec {
        transport,
        command,
        args,
        env: string_map("env")?,
        url,
        headers: string_map("headers")?,
        sdk_name: string("name")?,
    };
    match transport {
        TransportKind::Stdio if spec.command.as_deref().is_none_or(str::is_empty) => {
            Err(fail("`command` is required for a stdio server".to_string()))
        }
        TransportKind::Http | TransportKind::Sse
            if spec.url.as_deref().is_none_or(str::is_empty) =>
        {
            Err(fail(format!("`url` is required for type `{transport}`")))
        }
        _ => Ok(spec),
    }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The `mcpServers` object of a `.mcp.json`-shaped document.
fn servers_of(document: &Value, origin: &str) -> Result<Map<String, Value>, ConfigError> {
    let Value::Object(root) = document else {
        return Err(ConfigError::Syntax {
            origin: origin.to_string(),
            message: "must be a JSON object like {\"mcpServers\": {\"name\": {...}}}".to_string(),
        });
    };
    match root.get("mcpServers") {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(servers)) => Ok(servers.clone()),
        Some(other) => Err(ConfigError::Syntax {
            origin: origin.to_string(),
            message: format!(
                "`mcpServers` must be an object of servers by name, not {}",
                json_kind(other)
            ),
        }),
    }
}

fn parse_document(text: &str, origin: &str) -> Result<Value, ConfigError> {
    serde_json::from_str(text).map_err(|error| ConfigError::Syntax {
        origin: origin.to_string(),
        message: format!(
            "not valid JSON: {error} (line {}, column {})",
            error.line(),
            error.column()
        ),
    })
}

/// Where to find servers.
#[derive(Debug, Clone, Default)]
pub struct McpSources {
    /// The project root, whose `.mcp.json` is read (none: skip it).
    pub project_root: Option<PathBuf>,
    /// The merged settings' `mcpServers`.
    pub settings_servers: BTreeMap<String, Value>,
    /// `--mcp-config` values: file paths or JSON text, in order (later ones win).
    pub flag_configs: Vec<String>,
    /// `--strict-mcp-config`: only the `--mcp-config` servers.
    pub strict: bool,
    /// Servers of `.mcp.json` the user refused (settings' `disabledMcpjsonServers`): skipped.
    pub disabled_project_servers: Vec<String>,
    /// Where relative `--mcp-config` paths start.
    pub cwd: PathBuf,
}

/// Reads every source; when two define the same name the later source wins: settings, then
/// the project's `.mcp.json`, then `--mcp-config` (as Claude Code lets a narrower scope
/// override a wider one). A missing `.mcp.json` is fine; a broken file or flag is an error, a
/// broken server definition is kept as a failed server. Sorted by name.
pub fn load_servers(sources: &McpSources) -> Result<Vec<ServerConfig>, ConfigError> {
    let mut servers: BTreeMap<String, ServerConfig> = BTreeMap::new();
    if !sources.strict {
        for (name, value) in &sources.settings_servers {
            let config = ServerConfig::new(name, ConfigScope::User, "settings `mcpServers`", value);
            servers.insert(name.clone(), config);
        }
        if let Some(root) = &sources.project_root {
            let path = root.join(".mcp.json");
            match std::fs::read_to_string(&path) {
                Ok(text) => {
                    let origin = path.display().to_string();
                    let document = parse_document(&text, &origin)?;
                    for (name, value) in servers_of(&document, &origin)? {
                        if sources.disabled_project_servers.contains(&name) {
                            continue;
                        }
                        let config =
                            ServerConfig::new(&name, ConfigScope::Project, &origin, &value);
                        servers.insert(name, config);
                    }
                }
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                Err(error) => {
                    return Err(ConfigError::Io {
                        path,
                        message: format!("cannot read: {error}"),
                    });
                }
            }
        }
    }
    for flag in &sources.flag_configs {
        let (text, origin) = flag_text(flag, &sources.cwd)?;
        let document = parse_document(&text, &origin)?;
        for (name, value) in servers_of(&document, &origin)? {
            let config = ServerConfig::new(&name, ConfigScope::Flag, &origin, &value);
            servers.insert(name, config);
        }
    }
    Ok(servers.into_values().collect())
}

/// The text of a `--mcp-config` value: inline JSON, or the file it names.
fn flag_text(flag: &str, cwd: &Path) -> Result<(String, String), ConfigError> {
    let trimmed = flag.trim_start();
    if trimmed.starts_with('{') {
        return Ok((flag.to_string(), "--mcp-config (inline JSON)".to_string()));
    }
    let path = cwd.join(flag);
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok((text, format!("--mcp-config {}", path.display()))),
        Err(error) => Err(ConfigError::Io {
            path,
            message: format!(
                "cannot read the --mcp-config file: {error}; pass a file path or inline JSON \
                 like '{{\"mcpServers\": {{...}}}}'"
            ),
        }),
    }
}

/// Where `keel mcp add/remove` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EditScope {
    /// The project's `.mcp.json` (shared with the team through git).
    Project,
    /// `~/.keel/settings.json`'s `mcpServers` (every project).
    User,
}

impl EditScope {
    /// The file this scope is stored in.
    pub fn file(self, project_root: &Path, home: &Path) -> PathBuf {
        match self {
            Self::Project => project_root.join(".mcp.json"),
            Self::User => home.join(".keel/settings.json"),
        }
    }
}

impl fmt::Display for EditScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Project => "project",
            Self::User => "user",
        })
    }
}

/// Checks a name given to `keel mcp add`: tool names are `mcp__<server>__<tool>` and the
/// settings key is `mcpServers.<name>`, so only letters, digits, `-` and `_` are allowed.
pub fn validate_name(name: &str) -> Result<(), ConfigError> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(ConfigError::Edit(format!(
            "invalid server name `{name}`: use only letters, digits, `-` and `_`"
        )));
    }
    Ok(())
}

/// Reads the servers stored in one scope's file (missing file: none).
pub fn read_scope(
    scope: EditScope,
    project_root: &Path,
    home: &Path,
) -> Result<Map<String, Value>, ConfigError> {
    let path = scope.file(project_root, home);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let origin = path.display().to_string();
            servers_of(&parse_document(&text, &origin)?, &origin)
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(Map::new()),
        Err(error) => Err(ConfigError::Io {
            path,
            message: format!("cannot read: {error}"),
        }),
    }
}

/// Adds server `name` with definition `value` to the file of `scope`, atomically. Refuses a
/// name already there (remove it first) and a definition that does not parse.
pub fn add_server(
    scope: EditScope,
    name: &str,
    value: Value,
    project_root: &Path,
    home: &Path,
) -> Result<PathBuf, ConfigError> {
    validate_name(name)?;
    let path = scope.file(project_root, home);
    parse_spec(name, "the new definition", &value)?;
    if read_scope(scope, project_root, home)?.contains_key(name) {
        return Err(ConfigError::Edit(format!(
            "MCP server `{name}` already exists in {}; remove it first with `keel mcp remove {name} --scope {scope}`",
            path.display()
        )));
    }
    write_server(scope, &path, name, Some(value))?;
    Ok(path)
}

/// Removes server `name` from `scope`'s file, or from whichever file has it when no scope is
/// given (project first). Returns the scope and file it was removed from.
pub fn remove_server(
    scope: Option<EditScope>,
    name: &str,
    project_root: &Path,
    home: &Path,
) -> Result<(EditScope, PathBuf), ConfigError> {
    let scopes = match scope {
        Some(scope) => vec![scope],
        None => vec![EditScope::Project, EditScope::User],
    };
    for scope in scopes {
        if read_scope(scope, project_root, home)?.contains_key(name) {
            let path = scope.file(project_root, home);
            write_server(scope, &path, name, None)?;
            return Ok((scope, path));
        }
    }
    let place = match scope {
        Some(scope) => format!("{}", scope.file(project_root, home).display()),
        None => format!(
            "{} or {}",
            EditScope::Project.file(project_root, home).display(),
            EditScope::User.file(project_root, home).display()
        ),
    };
    Err(ConfigError::Edit(format!(
        "no MCP server named `{name}` in {place}; `keel mcp list` shows the configured servers"
    )))
}

fn write_server(
    scope: EditScope,
    path: &Path,
    name: &str,
    value: Option<Value>,
) -> Result<(), ConfigError> {
    let io = |error: keel_config::EditError| ConfigError::Io {
        path: path.to_path_buf(),
        message: error.to_string(),
    };
    match scope {
        EditScope::User => {
            // validate_name keeps dots out of names, so the dotted key addresses exactly one server.
            let key = format!("mcpServers.{name}");
            let change = match value {
                Some(value) => keel_config::Change::Set(value),
                None => keel_config::Change::Remove(None),
            };
            keel_config::change_file(path, &key, change).map_err(io)?;
        }
        EditScope::Project => {
            let origin = path.display().to_string();
            let mut document = match std::fs::read_to_string(path) {
                Ok(text) => parse_document(&text, &origin)?,
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                    Value::Object(Map::new())
                }
                Err(error) => {
                    return Err(ConfigError::Io {
                        path: path.to_path_buf(),
                        message: format!("cannot read: {error}"),
                    });
                }
            };
            let mut servers = servers_of(&document, &origin)?;
            match value {
                Some(value) => {
                    servers.insert(name.to_string(), value);
                }
                None => {
                    servers.remove(name);
                }
            }
            if let Value::Object(root) = &mut document {
                root.insert("mcpServers".to_string(), Value::Object(servers));
            }
            let text = serde_json::to_string_pretty(&document).map_err(|error| {
                ConfigError::Edit(format!("cannot serialise {origin}: {error}"))
            })?;
            keel_config::edit::write_atomically(path, &format!("{text}\n")).map_err(io)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn variables_expand_with_defaults_and_missing_ones_are_named() {
        let lookup = env(&[("HOME_DIR", "/home/u"), ("EMPTY", "")]);
        assert_eq!(expand_vars("${HOME_DIR}/x", &lookup).unwrap(), "/home/u/x");
        assert_eq!(
            expand_vars("a ${NOPE:-dflt} b", &lookup).unwrap(),
            "a dflt b"
        );
        assert_eq!(expand_vars("${EMPTY:-dflt}", &lookup).unwrap(), "");
        assert_eq!(
            expand_vars("$HOME ${unterminated", &lookup).unwrap(),
            "$HOME ${unterminated"
        );
        assert_eq!(expand_vars("${NOPE}", &lookup).unwrap_err(), "NOPE");
        assert_eq!(
            expand_vars("${HOME_DIR:-x}${HOME_DIR}", &lookup).unwrap(),
            "/home/u/home/u"
        );
    }

    #[test]
    fn type_defaults_from_command_or_url() {
        let spec = parse_spec("s", "f", &json!({"command": "srv", "args": ["-v", 3]})).unwrap();
        assert_eq!(spec.transport, TransportKind::Stdio);
        assert_eq!(spec.args, ["-v", "3"]);
        let spec = parse_spec("s", "f", &json!({"url": "http://x/mcp"})).unwrap();
        assert_eq!(spec.transport, TransportKind::Http);
        let spec = parse_spec("s", "f", &json!({"type": "sse", "url": "http://x/sse"})).unwrap();
        assert_eq!(spec.transport, TransportKind::Sse);
    }

    #[test]
    fn bad_definitions_name_the_origin_server_and_field() {
        let cases = [
            (
                json!({"command": "x", "args": "a b"}),
                "`args` must be an array of strings, not a string",
            ),
            (
                json!({"command": "x", "args": ["a", {}]}),
                "`args[1]` must be a string",
            ),
            (
                json!({"command": "x", "env": {"K": []}}),
                "`env.K` must be a string",
            ),
            (
                json!({"type": "websocket", "url": "ws://x"}),
                "`type` is `websocket`; use `stdio`, `http` or `sse`",
            ),
            (json!({"type": "http"}), "`url` is required for type `http`"),
            (json!({"args": []}), "neither `command` (stdio) nor `url`"),
            (json!("npx server"), "must be an object"),
        ];
        for (value, expected) in cases {
            let error = parse_spec("github", "/p/.mcp.json", &value)
                .unwrap_err()
                .to_string();
            assert!(
                error.starts_with("/p/.mcp.json: MCP server `github`: "),
                "{error}"
            );
            assert!(
                error.contains(expected),
                "{error} should contain {expected}"
            );
        }
    }

    #[test]
    fn launch_expands_every_field_and_reports_the_missing_variable() {
        let config = ServerConfig::new(
            "api",
            ConfigScope::Project,
            ".mcp.json",
            &json!({
                "type": "http",
                "url": "${API_BASE:-http://127.0.0.1:9}/mcp",
                "headers": {"Authorization": "Bearer ${TOKEN}"}
            }),
        );
        let launch = config.launch(&env(&[("TOKEN", "t0k")])).unwrap();
        assert_eq!(
            launch,
            Launch::Http {
                url: "http://127.0.0.1:9/mcp".into(),
                headers: BTreeMap::from([("Authorization".into(), "Bearer t0k".into())]),
            }
        );
        let error = config.launch(&env(&[])).unwrap_err().to_string();
        assert_eq!(
            error,
            ".mcp.json: MCP server `api`: environment variable `TOKEN` (used in \
             `headers.Authorization`) is not set; set it, or write `${TOKEN:-default}` to give a default"
        );
        let stdio = ServerConfig::new(
            "s",
            ConfigScope::User,
            "settings",
            &json!({"command": "${BIN:-node}", "args": ["${DIR}/x"], "env": {"K": "${V:-v}"}}),
        );
        let error = stdio.launch(&env(&[])).unwrap_err().to_string();
        assert!(error.contains("`DIR` (used in `args[0]`)"), "{error}");
        assert_eq!(
            stdio.launch(&env(&[("DIR", "/d")])).unwrap(),
            Launch::Stdio {
                command: "node".into(),
                args: vec!["/d/x".into()],
                env: BTreeMap::from([("K".into(), "v".into())]),
            }
        );
    }

    #[test]
    fn sources_override_in_order_and_strict_keeps_only_flags() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(".mcp.json"),
            r#"{"mcpServers": {"shared": {"command": "project"}, "proj": {"command": "p"}}}"#,
        )
        .unwrap();
        std::fs::write(
            dir.path().join("extra.json"),
            r#"{"mcpServers": {"shared": {"url": "http://flag/mcp"}}}"#,
        )
        .unwrap();
        let mut sources = McpSources {
            project_root: Some(dir.path().to_path_buf()),
            settings_servers: BTreeMap::from([
                ("shared".to_string(), json!({"command": "user"})),
                ("mine".to_string(), json!({"command": "m"})),
            ]),
            flag_configs: vec![],
            strict: false,
            disabled_project_servers: vec![],
            cwd: dir.path().to_path_buf(),
        };
        let names = |servers: &[ServerConfig]| {
            servers
                .iter()
                .map(|s| format!("{}:{}", s.name, s.scope))
                .collect::<Vec<_>>()
        };
        let servers = load_servers(&sources).unwrap();
        assert_eq!(
            names(&servers),
            ["mine:user", "proj:project", "shared:project"]
        );
        // A refused project server is skipped; a user server of that name shows through.
        sources.disabled_project_servers = vec!["shared".into()];
        assert_eq!(
            names(&load_servers(&sources).unwrap()),
            ["mine:user", "proj:project", "shared:user"]
        );
        sources.disabled_project_servers.clear();
        sources.flag_configs = vec![
            "extra.json".into(),
            r#"{"mcpServers": {"inline": {"command": "i"}}}"#.into(),
        ];
        let servers = load_servers(&sources).unwrap();
        assert_eq!(
            names(&servers),
            ["inline:flag", "mine:user", "proj:project", "shared:flag"]
        );
        sources.strict = true;
        assert_eq!(
            names(&load_servers(&sources).unwrap()),
            ["inline:flag", "shared:flag"]
        );
    }

    #[test]
    fn broken_files_and_flags_are_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(".mcp.json"), "{\"mcpServers\": {,}}").unwrap();
        let sources = McpSources {
            project_root: Some(dir.path().to_path_buf()),
            cwd: dir.path().to_path_buf(),
            ..Default::default()
        };
        let error = load_servers(&sources).unwrap_err().to_string();
        assert!(error.contains(".mcp.json: not valid JSON"), "{error}");
        assert!(error.contains("line 1"), "{error}");
        let sources = McpSources {
            flag_configs: vec!["missing.json".into()],
            cwd: dir.path().to_path_buf(),
            ..Default::default()
        };
        let error = load_servers(&sources).unwrap_err().to_string();
        assert!(
            error.contains("missing.json") && error.contains("--mcp-config"),
            "{error}"
        );
        let sources = McpSources {
            flag_configs: vec![r#"{"mcpServers": []}"#.into()],
            cwd: dir.path().to_path_buf(),
            ..Default::default()
        };
        let error = load_servers(&sources).unwrap_err().to_string();
        assert!(error.contains("`mcpServers` must be an object"), "{error}");
    }

    #[test]
    fn add_and_remove_edit_the_right_file_and_keep_other_keys() {
        let dir = tempfile::tempdir().unwrap();
        let project = dir.path().join("proj");
        let home = dir.path().join("home");
        std::fs::create_dir_all(&project).unwrap();
        std::fs::create_dir_all(home.join(".keel")).unwrap();
        std::fs::write(home.join(".keel/settings.json"), r#"{"model": "m"}"#).unwrap();

        let path = add_server(
            EditScope::Project,
            "fs",
            json!({"command": "srv"}),
            &project,
            &home,
        )
        .unwrap();
        assert_eq!(path, project.join(".mcp.json"));
        add_server(
            EditScope::User,
            "web",
            json!({"type": "http", "url": "http://x"}),
            &project,
            &home,
        )
        .unwrap();
        let settings: Value = serde_json::from_str(
            &std::fs::read_to_string(home.join(".keel/settings.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(settings["model"], "m");
        assert_eq!(settings["mcpServers"]["web"]["url"], "http://x");

        let error = add_server(
            EditScope::Project,
            "fs",
            json!({"command": "x"}),
            &project,
            &home,
        )
        .unwrap_err();
        assert!(error.to_string().contains("already exists"), "{error}");
        let error = add_server(
            EditScope::Project,
            "a.b",
            json!({"command": "x"}),
            &project,
            &home,
        )
        .unwrap_err();
        assert!(error.to_string().contains("invalid server name"), "{error}");
        let error = add_server(
            EditScope::Project,
            "x",
            json!({"args": []}),
            &project,
            &home,
        )
        .unwrap_err();
        assert!(error.to_string().contains("neither `command`"), "{error}");

        assert_eq!(
            remove_server(None, "web", &project, &home).unwrap().0,
            EditScope::User
        );
        assert_eq!(
            remove_server(None, "fs", &project, &home).unwrap().0,
            EditScope::Project
        );
        let error = remove_server(None, "fs", &project, &home).unwrap_err();
        assert!(
            error.to_string().contains("no MCP server named `fs`"),
            "{error}"
        );
        assert!(
            read_scope(EditScope::Project, &project, &home)
                .unwrap()
                .is_empty()
        );
        assert!(
            read_scope(EditScope::User, &project, &home)
                .unwrap()
                .is_empty()
        );
    }
}
