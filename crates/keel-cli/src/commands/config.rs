//! `keel config`: show and change settings in the files keel reads.

use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand, ValueEnum};
use keel_config::{Change, Scope, file_for, get_path, parse_cli_value};
use serde_json::Value;

use keel_setup::Workspace;

/// `keel config ...`
#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: ConfigCommand,
}

/// The config subcommands.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// The effective settings, and which file each top-level key comes from.
    List,
    /// One setting's effective value (dotted key, e.g. permissions.defaultMode).
    Get {
        /// The key.
        key: String,
    },
    /// Set a setting (the value is JSON if it parses as JSON, else a string).
    Set {
        /// The key.
        key: String,
        /// The value.
        value: String,
        /// Which file to write.
        #[arg(long, value_enum, default_value_t = ScopeArg::Local)]
        scope: ScopeArg,
    },
    /// Add a value to a list setting (e.g. permissions.allow).
    Add {
        /// The key.
        key: String,
        /// The value to add.
        value: String,
        /// Which file to write.
        #[arg(long, value_enum, default_value_t = ScopeArg::Local)]
        scope: ScopeArg,
    },
    /// Remove a value from a list setting, or the whole key when no value is given.
    Remove {
        /// The key.
        key: String,
        /// The value to remove from the list.
        value: Option<String>,
        /// Which file to write.
        #[arg(long, value_enum, default_value_t = ScopeArg::Local)]
        scope: ScopeArg,
    },
}

/// Which settings file `set`/`add`/`remove` write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ScopeArg {
    /// `~/.keel/settings.json`.
    User,
    /// `.keel/settings.json` in the project (shared with the team).
    Project,
    /// `.keel/settings.local.json` in the project (this machine only).
    Local,
}

impl From<ScopeArg> for Scope {
    fn from(scope: ScopeArg) -> Self {
        match scope {
            ScopeArg::User => Scope::User,
            ScopeArg::Project => Scope::Project,
            ScopeArg::Local => Scope::Local,
        }
    }
}

/// Runs `keel config`.
#[allow(clippy::print_stdout)]
pub fn run(args: ConfigArgs, ws: &Workspace) -> Result<ExitCode> {
    match args.command {
        ConfigCommand::List => {
            let text = serde_json::to_string_pretty(&ws.settings.merged)
                .context("cannot show the settings")?;
            println!("{text}");
            if let Value::Object(keys) = &ws.settings.merged {
                if !keys.is_empty() {
                    println!();
                }
                for key in keys.keys() {
                    if let Some(layer) = ws.settings.source_of(key) {
                        println!("{key}: from {} ({})", layer.origin(), layer.scope);
                    }
                }
            }
            if ws.settings.layers.is_empty() {
                println!("(no settings files found; keel uses its defaults)");
            }
            Ok(ExitCode::SUCCESS)
        }
        ConfigCommand::Get { key } => match get_path(&ws.settings.merged, &key) {
            Some(value) => {
                match value {
                    Value::String(text) => println!("{text}"),
                    other => println!("{}", serde_json::to_string_pretty(other)?),
                }
                Ok(ExitCode::SUCCESS)
            }
            None => bail!("`{key}` is not set in any settings file"),
        },
        ConfigCommand::Set { key, value, scope } => {
            write(ws, scope, &key, Change::Set(parse_cli_value(&value)))
        }
        ConfigCommand::Add { key, value, scope } => {
            write(ws, scope, &key, Change::Add(parse_cli_value(&value)))
        }
        ConfigCommand::Remove { key, value, scope } => write(
            ws,
            scope,
            &key,
            Change::Remove(value.as_deref().map(parse_cli_value)),
        ),
    }
}

#[allow(clippy::print_stdout)]
fn write(ws: &Workspace, scope: ScopeArg, key: &str, change: Change) -> Result<ExitCode> {
    let Some(path) = file_for(scope.into(), &ws.home, &ws.settings.project_root) else {
        bail!("that scope has no settings file");
    };
    let changed = keel_config::change_file(&path, key, change)?;
    if changed {
        println!("updated {} in {}", key, path.display());
    } else {
        println!("{} already as asked in {}", key, path.display());
    }
    Ok(ExitCode::SUCCESS)
}
