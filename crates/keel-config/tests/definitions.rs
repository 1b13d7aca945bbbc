//! Skills, commands and agents found on disk: the four folders, their precedence,
//! `--setting-sources`, and bad files reported with file and line while the rest load.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use keel_config::{
    DefinitionScope, DefinitionSources, SourceSet, load_agents, load_commands, load_skills,
};

fn write(root: &Path, rel: &str, text: &str) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn setup() -> (tempfile::TempDir, DefinitionSources) {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let project = dir.path().join("project");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::create_dir_all(&project).unwrap();
    let sources = DefinitionSources::new(&home, &project);
    (dir, sources)
}

#[test]
fn project_definitions_override_user_ones_and_bad_files_are_skipped_with_their_line() {
    let (_dir, sources) = setup();
    let home = sources.home.clone();
    let project = sources.project_root.clone();
    write(
        &home,
        ".claude/skills/deploy/SKILL.md",
        "---\nname: deploy\ndescription: user deploy\n---\nuser body",
    );
    write(
        &home,
        ".claude/skills/notes/SKILL.md",
        "---\ndescription: take notes\n---\nnotes body",
    );
    write(
        &project,
        ".keel/skills/deploy/SKILL.md",
        "---\nname: deploy\ndescription: project deploy\nallowed-tools: [\"Bash(make deploy)\"]\n---\nproject body",
    );
    write(
        &project,
        ".claude/skills/broken/SKILL.md",
        "---\nname: broken\ndescription: ok\nallowed-tools: \"Read\n---\n",
    );
    let skills = load_skills(&sources);
    let names: Vec<&str> = skills.items.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["deploy", "notes"]);
    let deploy = &skills.items[0];
    assert_eq!(deploy.description, "project deploy");
    assert_eq!(deploy.scope, DefinitionScope::Project);
    assert_eq!(deploy.allowed_tools, ["Bash(make deploy)"]);
    assert_eq!(skills.warnings.len(), 1, "{:?}", skills.warnings);
    let warning = skills.warnings[0].to_string();
    assert!(
        warning.contains(".claude/skills/broken/SKILL.md:4:")
            || warning.contains(".claude/skills/broken/SKILL.md:5:"),
        "{warning}"
    );
    assert!(warning.ends_with("(skill skipped)"), "{warning}");

    write(
        &home,
        ".claude/commands/review.md",
        "---\ndescription: user review\n---\nReview $ARGUMENTS",
    );
    write(
        &project,
        ".claude/commands/review.md",
        "---\ndescription: project review\n---\nReview carefully: $ARGUMENTS",
    );
    write(
        &project,
        ".claude/commands/git/commit.md",
        "Commit the work.",
    );
    write(
        &project,
        ".keel/commands/bad.md",
        "---\ndescription: x\nmodel: \"claude\n---\n",
    );
    let commands = load_commands(&sources);
    let names: Vec<&str> = commands.items.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["git:commit", "review"]);
    assert_eq!(commands.items[1].description, "project review");
    assert_eq!(commands.warnings.len(), 1);
    assert!(
        commands.warnings[0]
            .to_string()
            .contains(".keel/commands/bad.md:"),
        "{}",
        commands.warnings[0]
    );

    write(
        &project,
        ".claude/agents/reviewer.md",
        "---\nname: reviewer\ndescription: Reviews code\ntools: Read, Grep\n---\nYou review.",
    );
    write(&project, ".claude/agents/notes.txt", "not an agent");
    write(
        &home,
        ".keel/agents/helper.md",
        "---\nname: helper\ndescription: Helps\n---\nYou help.",
    );
    write(
        &home,
        ".keel/agents/bad.md",
        "---\nname: bad\ndescription: x\ntools:\n  - Read\n - Grep\n---\n",
    );
    let agents = load_agents(&sources);
    let names: Vec<&str> = agents.items.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["helper", "reviewer"]);
    assert_eq!(agents.warnings.len(), 1);
    assert!(agents.warnings[0].line >= 5, "{}", agents.warnings[0]);

    // --setting-sources project: the user's folders are not read.
    let mut project_only = sources.clone();
    project_only.sources = SourceSet::parse("project").unwrap();
    let skills = load_skills(&project_only);
    let names: Vec<&str> = skills.items.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["deploy"]);
    assert!(
        load_agents(&project_only)
            .items
            .iter()
            .all(|a| a.name != "helper")
    );
}
