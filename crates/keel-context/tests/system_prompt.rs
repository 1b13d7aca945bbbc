//! The assembled system prompt for a fixture repository with memory files at every level,
//! imports (one cycle, one missing file) and a subdirectory loaded on demand, as snapshots.
//! Paths are redacted to `[HOME]`/`[REPO]` and the date, platform and git state are fixed, so
//! the snapshots only change when the prompt does.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use keel_config::{MemoryLoader, MemoryWarning};
use keel_context::{
    Environment, GitInfo, PartKind, PromptInputs, PromptOptions, ShortStatus, SystemPrompt,
    render_nested_memory,
};

struct Fixture {
    _tmp: tempfile::TempDir,
    home: PathBuf,
    repo: PathBuf,
}

impl Fixture {
    fn write(&self, rel_to: &Path, rel: &str, text: &str) {
        let path = rel_to.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    /// The fixture repository:
    /// ```text
    /// [HOME]/.claude/CLAUDE.md         user preferences, imports @~/.claude/style.md
    /// [HOME]/.claude/style.md
    /// [REPO]/.git/
    /// [REPO]/CLAUDE.md                 imports @AGENTS.md, @docs/testing.md, @docs/missing.md
    /// [REPO]/AGENTS.md                 (imported by CLAUDE.md, so not repeated)
    /// [REPO]/docs/testing.md           imports @cycle-a.md
    /// [REPO]/docs/cycle-a.md           imports @cycle-b.md
    /// [REPO]/docs/cycle-b.md           imports @./cycle-a.md  (the cycle)
    /// [REPO]/CLAUDE.local.md           the user's private notes; mentions an email and @alice
    /// [REPO]/app/AGENTS.md             the working directory's own instructions
    /// [REPO]/app/.claude/CLAUDE.md
    /// [REPO]/app/web/CLAUDE.md         below the cwd: loaded when a tool touches app/web/
    /// ```
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let base = std::fs::canonicalize(tmp.path()).unwrap();
        let home = base.join("home");
        let repo = base.join("repo");
        std::fs::create_dir_all(repo.join(".git")).unwrap();
        let f = Self {
            _tmp: tmp,
            home,
            repo,
        };
        f.write(
            &f.home,
            ".claude/CLAUDE.md",
            "# My preferences\n\n- Answer in British English.\n- Style rules: @~/.claude/style.md\n",
        );
        f.write(&f.home, ".claude/style.md", "Prefer short functions.\n");
        f.write(
            &f.repo,
            "CLAUDE.md",
            "# Widget service\n\n@AGENTS.md\n\nTesting rules are in @docs/testing.md.\nRelease notes: @docs/missing.md\n\n```sh\n# not an import: @docs/in-code.md\nmake test\n```\n",
        );
        f.write(
            &f.repo,
            "AGENTS.md",
            "Build with `make`; run `make test` before finishing.\n",
        );
        f.write(
            &f.repo,
            "docs/testing.md",
            "Unit tests live beside the code. See also @cycle-a.md\n",
        );
        f.write(&f.repo, "docs/cycle-a.md", "Cycle A.\n@cycle-b.md\n");
        f.write(&f.repo, "docs/cycle-b.md", "Cycle B.\n@./cycle-a.md\n");
        f.write(
            &f.repo,
            "CLAUDE.local.md",
            "My sandbox database is on port 5433. Questions go to ops@example.com or @alice.\n",
        );
        f.write(
            &f.repo,
            "app/AGENTS.md",
            "The app is a Rust binary; keep `main.rs` thin.\n",
        );
        f.write(
            &f.repo,
            "app/.claude/CLAUDE.md",
            "Log with `tracing`, never `println!`.\n",
        );
        f.write(
            &f.repo,
            "app/web/CLAUDE.md",
            "Templates here are Askama; escape all user input.\n",
        );
        f.write(&f.repo, "app/web/index.html", "<html></html>\n");
        f
    }

    fn cwd(&self) -> PathBuf {
        self.repo.join("app")
    }

    fn env(&self) -> Environment {
        Environment {
            cwd: self.cwd(),
            additional_dirs: vec![self.home.join("shared")],
            platform: "linux".into(),
            date: "2026-03-14".into(),
            git: Some(GitInfo {
                root: self.repo.clone(),
                branch: Some("main".into()),
                status: Some(ShortStatus::parse(
                    " M src/main.rs\n?? ../notes.txt\n",
                    false,
                )),
            }),
        }
    }

    fn redact(&self, text: &str) -> String {
        text.replace(&self.repo.display().to_string(), "[REPO]")
            .replace(&self.home.display().to_string(), "[HOME]")
    }

    fn warnings(&self, warnings: &[MemoryWarning]) -> String {
        warnings
            .iter()
            .map(|w| format!("- {}", self.redact(&w.to_string())))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

#[test]
fn full_prompt_for_a_repository_with_nested_memory_and_imports() {
    let f = Fixture::new();
    let mut loader = MemoryLoader::new(&f.cwd(), Some(&f.home));
    let memory = loader.load();
    let options = PromptOptions {
        replace: None,
        append: Some("Always run clippy before finishing.".into()),
    };
    let env = f.env();
    let prompt = SystemPrompt::assemble(&PromptInputs {
        env: &env,
        memory: &memory.files,
        skills: Some("Skills available through the Skill tool:\n- release: cut a release"),
        agents: None,
        options: &options,
    });

    let kinds: Vec<PartKind> = prompt.parts().iter().map(|p| p.kind).collect();
    assert_eq!(
        kinds,
        vec![
            PartKind::Base,
            PartKind::Environment,
            PartKind::Memory,
            PartKind::Skills,
            PartKind::Append,
        ]
    );
    assert_eq!(prompt.blocks().len(), 5);
    assert_eq!(prompt.blocks()[4], "Always run clippy before finishing.");

    insta::assert_snapshot!("prompt_show", f.redact(&prompt.render_text()));
    insta::assert_snapshot!("memory_warnings", f.warnings(&memory.warnings));
}

#[test]
fn subdirectory_memory_is_rendered_for_the_conversation_once() {
    let f = Fixture::new();
    let mut loader = MemoryLoader::new(&f.cwd(), Some(&f.home));
    loader.load();
    let nested = loader.files_for_path(&f.repo.join("app/web/index.html"));
    let text = render_nested_memory(&nested.files).unwrap();
    insta::assert_snapshot!("nested_memory", f.redact(&text));
    assert!(
        loader
            .files_for_path(&f.repo.join("app/web/index.html"))
            .files
            .is_empty()
    );
    assert!(render_nested_memory(&[]).is_none());
}

#[test]
fn system_prompt_flag_replaces_keels_words_but_keeps_the_users_memory() {
    let f = Fixture::new();
    let memory = MemoryLoader::new(&f.cwd(), Some(&f.home)).load();
    let options = PromptOptions {
        replace: Some("You are a release bot.".into()),
        append: None,
    };
    let env = f.env();
    let prompt = SystemPrompt::assemble(&PromptInputs {
        env: &env,
        memory: &memory.files,
        skills: None,
        agents: Some("Agents: reviewer"),
        options: &options,
    });
    let kinds: Vec<PartKind> = prompt.parts().iter().map(|p| p.kind).collect();
    assert_eq!(
        kinds,
        vec![PartKind::Replacement, PartKind::Memory, PartKind::Agents]
    );
    let blocks = prompt.blocks();
    assert_eq!(blocks[0], "You are a release bot.");
    assert!(!blocks.iter().any(|b| b.contains("You are keel")));
    assert!(!blocks.iter().any(|b| b.contains("<env>")));
    assert!(blocks[1].contains("Answer in British English."));
}

/// Skills cost the prompt one line each (name and description), in the skills part; the
/// bodies stay out, and skills only the user may start are not listed.
#[test]
fn skills_are_one_line_each() {
    let skill = |name: &str, description: &str, hidden: bool| keel_config::Skill {
        name: name.to_string(),
        description: description.to_string(),
        allowed_tools: Vec::new(),
        model: None,
        argument_hint: None,
        disable_model_invocation: hidden,
        dir: PathBuf::from(format!("/skills/{name}")),
        path: PathBuf::from(format!("/skills/{name}/SKILL.md")),
        body: "SECRET BODY TEXT".to_string(),
        scope: keel_config::DefinitionScope::Project,
    };
    let skills: Vec<keel_config::Skill> = (0..50)
        .map(|i| {
            skill(
                &format!("skill-{i}"),
                &format!("Does task {i}\nover lines"),
                false,
            )
        })
        .chain([skill("manual", "Only by hand", true)])
        .collect();
    let text = keel_context::render_skills(&skills).unwrap();
    assert!(text.starts_with("# Skills\n"));
    assert!(text.contains("\n- skill-7: Does task 7 over lines\n"));
    assert_eq!(text.lines().filter(|l| l.starts_with("- ")).count(), 50);
    assert!(!text.contains("SECRET BODY TEXT"));
    assert!(!text.contains("manual"));
    assert_eq!(keel_context::render_skills(&[]), None);
    let env = Environment::detect(Path::new("/"), &[]);
    let prompt = SystemPrompt::assemble(&PromptInputs {
        env: &env,
        memory: &[],
        skills: Some(&text),
        agents: None,
        options: &PromptOptions::default(),
    });
    assert!(prompt.parts().iter().any(|p| p.kind == PartKind::Skills));
}
