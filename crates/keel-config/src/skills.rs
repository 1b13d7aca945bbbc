//! Skills: folders holding a `SKILL.md` (YAML frontmatter with `name`, `description`,
//! `allowed-tools`, optional `model`, then instructions) and any files it refers to. Only the
//! name and description go into the prompt; the body is loaded when the model calls the
//! `Skill` tool, so fifty skills cost fifty lines.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::definitions::{
    DefinitionScope, DefinitionSources, Loaded, Named, first_line, read, valid_name,
};
use crate::frontmatter::{self, DefinitionWarning, ToolList};

/// A skill's file name inside its folder.
pub const SKILL_FILE: &str = "SKILL.md";

/// One skill, ready to be offered to the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skill {
    /// What the model and `/name` call it (frontmatter `name`, else the folder's name).
    pub name: String,
    /// When to use it, written for the model.
    pub description: String,
    /// Permission rules that apply without asking while the skill is active.
    pub allowed_tools: Vec<String>,
    /// The model to use while the skill is active, if it asks for one.
    pub model: Option<String>,
    /// What arguments it takes, for `/help`.
    pub argument_hint: Option<String>,
    /// Only the user may start it (`/name`); it is not offered to the model.
    pub disable_model_invocation: bool,
    /// The folder holding `SKILL.md` and the files it refers to.
    pub dir: PathBuf,
    /// The `SKILL.md` file.
    pub path: PathBuf,
    /// The instructions after the frontmatter.
    pub body: String,
    /// User or project level.
    pub scope: DefinitionScope,
}

impl Named for Skill {
    fn name(&self) -> &str {
        &self.name
    }
}

impl Skill {
    /// The text the model receives when it loads the skill: its folder (so it can Read the
    /// skill's other files) and its instructions, with `$ARGUMENTS` filled in. Without
    /// arguments the body is left as written, so shell examples such as `awk '{print $1}'`
    /// survive.
    pub fn render(&self, args: Option<&str>) -> String {
        let body = match args {
            Some(args) if !args.trim().is_empty() => {
                crate::commands::substitute_arguments(&self.body, args)
            }
            _ => self.body.clone(),
        };
        format!(
            "Base directory for this skill: {}\n\n{}",
            self.dir.display(),
            body.trim()
        )
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct SkillFrontmatter {
    name: Option<String>,
    description: Option<String>,
    #[serde(rename = "allowed-tools", alias = "allowed_tools")]
    allowed_tools: ToolList,
    model: Option<String>,
    #[serde(rename = "argument-hint")]
    argument_hint: Option<String>,
    #[serde(rename = "disable-model-invocation")]
    disable_model_invocation: bool,
}

/// Reads every skill the sources name. Bad files are warnings; the rest load.
pub fn load_skills(sources: &DefinitionSources) -> Loaded<Skill> {
    let mut loaded = Loaded::default();
    for (scope, dir) in sources.dirs("skills") {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut folders: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_dir())
            .collect();
        folders.sort();
        for folder in folders {
            let path = folder.join(SKILL_FILE);
            if !path.is_file() {
                continue;
            }
            match read(&path, "skill").and_then(|text| parse_skill(&path, &text, scope)) {
                Ok(skill) => loaded.put(skill),
                Err(warning) => loaded.warnings.push(warning),
            }
        }
    }
    loaded.sort();
    loaded
}

/// Parses one `SKILL.md`.
pub fn parse_skill(
    path: &Path,
    text: &str,
    scope: DefinitionScope,
) -> Result<Skill, DefinitionWarning> {
    let skipped = |line, message: String| {
        DefinitionWarning::new(path, line, format!("{message} (skill skipped)"))
    };
    let doc = frontmatter::split(text).map_err(|m| skipped(1, m))?;
    let yaml = doc.frontmatter.unwrap_or("");
    let fields: SkillFrontmatter = frontmatter::parse(yaml, path).map_err(|mut w| {
        w.message.push_str(" (skill skipped)");
        w
    })?;
    let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
    let name = match fields.name {
        Some(name) => name.trim().to_string(),
        None => dir
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default(),
    };
    if !valid_name(&name) {
        return Err(skipped(
            frontmatter::key_line(yaml, "name").unwrap_or(1),
            format!(
                "skill name {name:?} cannot be called: use letters, digits and hyphens \
                 (e.g. `name: review-pr`)"
            ),
        ));
    }
    let description = match fields.description.map(|d| d.trim().to_string()) {
        Some(d) if !d.is_empty() => d,
        _ => first_line(doc.body).ok_or_else(|| {
            skipped(
                1,
                "the skill has no description, so the model cannot know when to use it; add \
                 `description: ...` to its frontmatter"
                    .to_string(),
            )
        })?,
    };
    Ok(Skill {
        name,
        description,
        allowed_tools: fields.allowed_tools.0,
        model: fields
            .model
            .filter(|m| !m.trim().is_empty() && m != "inherit"),
        argument_hint: fields.argument_hint,
        disable_model_invocation: fields.disable_model_invocation,
        dir,
        path: path.to_path_buf(),
        body: doc.body.to_string(),
        scope,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Skill, DefinitionWarning> {
        parse_skill(
            Path::new("/p/.claude/skills/pdf/SKILL.md"),
            text,
            DefinitionScope::Project,
        )
    }

    #[test]
    fn a_full_skill() {
        let skill = parse(
            "---\nname: pdf-tools\ndescription: Fill PDF forms\nallowed-tools: Read, Bash(python3 *)\nmodel: haiku\n---\nRun $ARGUMENTS with forms.py\n",
        )
        .unwrap();
        assert_eq!(skill.name, "pdf-tools");
        assert_eq!(skill.description, "Fill PDF forms");
        assert_eq!(skill.allowed_tools, ["Read", "Bash(python3 *)"]);
        assert_eq!(skill.model.as_deref(), Some("haiku"));
        assert_eq!(skill.dir, Path::new("/p/.claude/skills/pdf"));
        assert_eq!(
            skill.render(Some("a.pdf")),
            "Base directory for this skill: /p/.claude/skills/pdf\n\nRun a.pdf with forms.py"
        );
    }

    #[test]
    fn name_defaults_to_the_folder_and_description_to_the_first_line() {
        let skill = parse("# PDF\n\nWorks with PDF files.\n").unwrap();
        assert_eq!(skill.name, "pdf");
        assert_eq!(skill.description, "Works with PDF files.");
    }

    #[test]
    fn bad_skills_are_warnings_with_lines() {
        let err = parse("---\nname: x\ndescription: \"oops\n---\nbody").unwrap_err();
        assert!(err.line >= 3, "{err}");
        assert!(err.message.ends_with("(skill skipped)"), "{err}");
        let err = parse("---\nname: two words\ndescription: d\n---\n").unwrap_err();
        assert_eq!(err.line, 2, "{err}");
        let err = parse("---\nname: ok\n---\n").unwrap_err();
        assert!(err.message.contains("no description"), "{err}");
        let err = parse("---\nname: ok\n").unwrap_err();
        assert!(err.message.contains("never closed"), "{err}");
    }
}
