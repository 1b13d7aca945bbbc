//! Changing settings files (`keel config set/add/remove`, "always allow" answers): read, change
//! one key, validate, write atomically. Other keys and their order are kept.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::load::{Scope, SettingsError};

/// Why a settings file could not be changed.
#[derive(Debug, thiserror::Error)]
pub enum EditError {
    /// The file is broken; fix it first.
    #[error(transparent)]
    Settings(#[from] SettingsError),
    /// The key cannot hold that value.
    #[error("{0}")]
    Invalid(String),
    /// Writing failed.
    #[error("{path}: cannot write settings: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// keel's own settings file of `scope` (the one `keel config set` writes).
pub fn file_for(scope: Scope, home: &Path, project_root: &Path) -> Option<PathBuf> {
    match scope {
        Scope::User => Some(home.join(".keel/settings.json")),
        Scope::Project => Some(project_root.join(".keel/settings.json")),
        Scope::Local => Some(project_root.join(".keel/settings.local.json")),
        Scope::Flag => None,
    }
}

/// The value at a dotted path (`permissions.defaultMode`), if set.
pub fn get_path<'a>(value: &'a Value, key: &str) -> Option<&'a Value> {
    key.split('.')
        .filter(|part| !part.is_empty())
        .try_fold(value, |current, part| current.get(part))
}

/// A command-line value: JSON if it parses as JSON, else a string (`keel config set model x`).
pub fn parse_cli_value(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string()))
}

/// How to change a key.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// Replace the value.
    Set(Value),
    /// Append to an array, unless already present.
    Add(Value),
    /// Remove from an array, or remove the key when no value is given.
    Remove(Option<Value>),
}

/// Applies `change` to `key` in the settings file at `path` (created if missing) and writes it
/// back atomically, after checking the result is still valid settings. Returns whether the file
/// changed.
pub fn change_file(path: &Path, key: &str, change: Change) -> Result<bool, EditError> {
    let origin = path.display().to_string();
    let mut root = match std::fs::read_to_string(path) {
        Ok(text) => {
            let (value, _) = crate::load::parse(&text, &origin, &mut Vec::new())?;
            value
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Value::Object(Map::new()),
        Err(source) => {
            return Err(EditError::Io {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let before = root.clone();
    apply(&mut root, key, change)?;
    if root == before {
        return Ok(false);
    }
    let text = serde_json::to_string_pretty(&root)
        .map_err(|e| EditError::Invalid(format!("cannot serialise settings: {e}")))?;
    crate::load::parse(&text, &origin, &mut Vec::new())?;
    write_atomically(path, &format!("{text}\n"))?;
    Ok(true)
}

fn apply(root: &mut Value, key: &str, change: Change) -> Result<(), EditError> {
    let parts: Vec<&str> = key.split('.').filter(|p| !p.is_empty()).collect();
    let Some((last, parents)) = parts.split_last() else {
        return Err(EditError::Invalid("empty setting name".into()));
    };
    let mut current = root;
    for part in parents {
        let Value::Object(object) = current else {
            return Err(EditError::Invalid(format!(
                "`{key}`: `{part}` is not inside an object"
            )));
        };
        current = object
            .entry(part.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
    }
    let Value::Object(object) = current else {
        return Err(EditError::Invalid(format!(
            "`{key}`: its parent is not an object"
        )));
    };
    match change {
        Change::Set(value) => {
            object.insert(last.to_string(), value);
        }
        Change::Add(value) => {
            let entry = object
                .entry(last.to_string())
                .or_insert_with(|| Value::Array(Vec::new()));
            let Value::Array(items) = entry else {
                return Err(EditError::Invalid(format!(
                    "`{key}` is not a list; use `keel config set`"
                )));
            };
            if !items.contains(&value) {
                items.push(value);
            }
        }
        Change::Remove(None) => {
            object.remove(*last);
        }
        Change::Remove(Some(value)) => {
            if let Some(Value::Array(items)) = object.get_mut(*last) {
                items.retain(|item| item != &value);
            }
        }
    }
    Ok(())
}

/// Writes `text` to `path` through a temporary file in the same directory and a rename, so a
/// crash never leaves a half-written settings file.
pub fn write_atomically(path: &Path, text: &str) -> Result<(), EditError> {
    use std::io::Write;
    let io = |source| EditError::Io {
        path: path.to_path_buf(),
        source,
    };
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    std::fs::create_dir_all(dir).map_err(io)?;
    let mut file = tempfile::NamedTempFile::new_in(dir).map_err(io)?;
    file.write_all(text.as_bytes()).map_err(io)?;
    file.as_file().sync_all().map_err(io)?;
    file.persist(path).map_err(|e| io(e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn set_add_remove_keep_other_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".keel/settings.json");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, r#"{"model": "a", "env": {"X": "1"}}"#).unwrap();
        assert!(change_file(&path, "permissions.allow", Change::Add(json!("Bash(ls)"))).unwrap());
        assert!(!change_file(&path, "permissions.allow", Change::Add(json!("Bash(ls)"))).unwrap());
        assert!(change_file(&path, "model", Change::Set(json!("b"))).unwrap());
        let value: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(
            value,
            json!({"model": "b", "env": {"X": "1"}, "permissions": {"allow": ["Bash(ls)"]}})
        );
        change_file(
            &path,
            "permissions.allow",
            Change::Remove(Some(json!("Bash(ls)"))),
        )
        .unwrap();
        change_file(&path, "model", Change::Remove(None)).unwrap();
        let value: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(
            value,
            json!({"env": {"X": "1"}, "permissions": {"allow": []}})
        );
    }

    #[test]
    fn a_change_that_breaks_the_schema_is_refused_and_the_file_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("settings.json");
        std::fs::write(&path, r#"{"model": "a"}"#).unwrap();
        let error =
            change_file(&path, "permissions.allow", Change::Set(json!("Bash"))).unwrap_err();
        assert!(error.to_string().contains("permissions.allow"), "{error}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), r#"{"model": "a"}"#);
    }

    #[test]
    fn cli_values_are_json_or_strings() {
        assert_eq!(parse_cli_value("true"), json!(true));
        assert_eq!(parse_cli_value("[\"a\"]"), json!(["a"]));
        assert_eq!(parse_cli_value("claude-opus-4-5"), json!("claude-opus-4-5"));
    }
}
