//! The `Skill` tool: the model loads a skill's instructions when a task matches its
//! description (only names and descriptions are in the system prompt). While the skill is
//! active, until the run ends, its `allowed-tools` run without asking and its `model`, if it
//! names one, answers. Grants made during a run (by skills and custom commands) are taken back
//! when it ends.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use keel_config::Skill;
use keel_tools::{Tool, ToolContext, ToolError, ToolOutput};
use serde_json::{Value, json};

use crate::emit::lock;
use crate::{Session, Shared};

/// The tool's name, as Claude Code names it.
pub(crate) const NAME: &str = "Skill";

/// The sources of rules granted until the run ends.
#[derive(Debug, Default)]
pub(crate) struct Grants {
    sources: Mutex<Vec<String>>,
}

/// Allows `rules` until the run ends, under a source naming `who` (shown by `/permissions`
/// and in explanations). Returns the rules that did not parse, as messages.
pub(crate) fn grant_for_run(shared: &Shared, rules: &[String], who: &str) -> Vec<String> {
    if rules.is_empty() {
        return Vec::new();
    }
    let source = format!("{who} (allowed-tools, until this run ends)");
    let problems = shared.permissions.allow_for_now(rules, &source);
    let mut sources = lock(&shared.grants.sources);
    if !sources.contains(&source) {
        sources.push(source);
    }
    problems
}

/// Uses `model` until the run ends.
pub(crate) fn switch_model_for_run(shared: &Shared, model: &str) {
    let mut current = lock(&shared.model);
    let resolved = keel_model::models::resolve_alias(model, &current);
    let mut before = lock(&shared.model_before);
    if before.is_none() {
        *before = Some(current.clone());
    }
    *current = resolved;
}

/// Takes back what was granted for the run that just ended, and the model it switched to.
pub(crate) fn end_run(shared: &Shared) {
    let sources = std::mem::take(&mut *lock(&shared.grants.sources));
    for source in sources {
        shared.permissions.remove_rules_from(&source);
    }
    if let Some(model) = lock(&shared.model_before).take() {
        *lock(&shared.model) = model;
    }
}

/// Whether a `Skill` call loads a skill that grants nothing (no `allowed-tools`, no model):
/// such a call is only text for the model and needs no approval.
pub(crate) fn grants_nothing(session: &Session, tool: &str, input: &Value) -> bool {
    if tool != NAME {
        return false;
    }
    let Some(name) = input.get("skill").and_then(Value::as_str) else {
        return false;
    };
    find(&session.ext.skills, name)
        .is_some_and(|skill| skill.allowed_tools.is_empty() && skill.model.is_none())
}

/// A skill by the name the model or user gave (a leading `/` is tolerated).
pub(crate) fn find<'a>(skills: &'a [Skill], name: &str) -> Option<&'a Skill> {
    let name = name.trim().trim_start_matches('/');
    skills.iter().find(|s| s.name == name)
}

/// Loads a skill's instructions for the model and activates its grants.
pub(crate) struct SkillTool {
    skills: Arc<Vec<Skill>>,
    shared: Arc<Shared>,
    description: String,
}

impl SkillTool {
    pub(crate) fn new(skills: Vec<Skill>, shared: Arc<Shared>) -> Self {
        let description = "Load a skill: instructions (and the folder of files that come with \
             them) for a particular kind of task. The skills available are listed in the system \
             prompt under \"Skills\" with what each is for. When a task matches one, call this \
             tool with the skill's name before doing the task, then follow the instructions it \
             returns. Pass `args` when the skill takes arguments. Do not call it for a skill \
             that is already loaded in this conversation."
            .to_string();
        Self {
            skills: Arc::new(skills),
            shared,
            description,
        }
    }
}

#[async_trait]
impl Tool for SkillTool {
    fn name(&self) -> &str {
        NAME
    }

    fn description(&self) -> &str {
        &self.description
    }

    fn input_schema(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "skill": {
                    "type": "string",
                    "description": "The skill's name, e.g. \"pdf\" or \"review-pr\"."
                },
                "args": {
                    "type": "string",
                    "description": "Arguments for the skill, if it takes any."
                }
            },
            "required": ["skill"],
            "additionalProperties": false
        })
    }

    fn is_read_only(&self) -> bool {
        false
    }

    async fn call(&self, input: Value, _ctx: &ToolContext) -> Result<ToolOutput, ToolError> {
        let name = input["skill"].as_str().unwrap_or_default();
        let args = input
            .get("args")
            .and_then(Value::as_str)
            .filter(|a| !a.trim().is_empty());
        let Some(skill) = find(&self.skills, name) else {
            let known: Vec<&str> = self.skills.iter().map(|s| s.name.as_str()).collect();
            return Err(ToolError::InvalidInput(format!(
                "Unknown skill: {name}. Available skills: {}.",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            )));
        };
        let problems = grant_for_run(
            &self.shared,
            &skill.allowed_tools,
            &format!("skill {}", skill.name),
        );
        if let Some(model) = &skill.model {
            switch_model_for_run(&self.shared, model);
        }
        let mut content = skill.render(args);
        if !problems.is_empty() {
            content.push_str(&format!(
                "\n\n(Some of this skill's allowed-tools could not be used: {}.)",
                problems.join("; ")
            ));
        }
        Ok(ToolOutput {
            content,
            structured: Some(json!({
                "success": true,
                "commandName": skill.name,
                "allowedTools": skill.allowed_tools,
                "model": skill.model,
            })),
            images: Vec::new(),
        })
    }
}
