//! Memory files on real directory trees: which files, in which order, imports and their
//! failure modes, files of subdirectories loaded on demand, and size limits.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use keel_config::{
    MAX_CHARS, Memory, MemoryLoader, MemoryScope, MemoryWarning, SourceSet, WARN_CHARS,
};

struct Tree {
    _tmp: tempfile::TempDir,
    base: PathBuf,
    home: PathBuf,
    repo: PathBuf,
}

impl Tree {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let base = std::fs::canonicalize(tmp.path()).unwrap();
        let home = base.join("home");
        let repo = base.join("work/repo");
        std::fs::create_dir_all(&home).unwrap();
        std::fs::create_dir_all(repo.join(".git")).unwrap();
        Self {
            _tmp: tmp,
            base,
            home,
            repo,
        }
    }

    fn write(&self, path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    fn loader(&self, cwd: &Path) -> MemoryLoader {
        MemoryLoader::new(cwd, Some(&self.home))
    }

    /// Paths relative to the temp base, so assertions read like the tree.
    fn names(&self, memory: &Memory) -> Vec<String> {
        memory
            .files
            .iter()
            .map(|f| {
                f.path
                    .strip_prefix(&self.base)
                    .unwrap()
                    .display()
                    .to_string()
            })
            .collect()
    }
}

#[test]
fn user_files_come_first_then_root_down_to_cwd() {
    let t = Tree::new();
    let sub = t.repo.join("crates/app");
    std::fs::create_dir_all(&sub).unwrap();
    t.write(&t.home.join(".claude/CLAUDE.md"), "user claude");
    t.write(&t.home.join(".keel/AGENTS.md"), "user agents");
    t.write(&t.home.join(".keel/CLAUDE.md"), "user keel claude");
    t.write(&t.repo.join("CLAUDE.local.md"), "root local");
    t.write(&t.repo.join("AGENTS.md"), "root agents");
    t.write(&t.repo.join("CLAUDE.md"), "root claude");
    t.write(&t.repo.join(".claude/CLAUDE.md"), "root dot-claude");
    t.write(&t.repo.join(".keel/AGENTS.md"), "root dot-keel");
    t.write(&t.repo.join("crates/CLAUDE.md"), "crates claude");
    t.write(&sub.join("AGENTS.md"), "app agents");
    // Above the repository root: not read.
    t.write(&t.base.join("work/CLAUDE.md"), "outside");
    // Below the cwd: only on demand.
    t.write(&sub.join("src/CLAUDE.md"), "deeper");

    let memory = t.loader(&sub).load();
    assert_eq!(
        t.names(&memory),
        vec![
            "home/.claude/CLAUDE.md",
            "home/.keel/CLAUDE.md",
            "home/.keel/AGENTS.md",
            "work/repo/CLAUDE.md",
            "work/repo/.claude/CLAUDE.md",
            "work/repo/AGENTS.md",
            "work/repo/.keel/AGENTS.md",
            "work/repo/CLAUDE.local.md",
            "work/repo/crates/CLAUDE.md",
            "work/repo/crates/app/AGENTS.md",
        ]
    );
    let scopes: Vec<MemoryScope> = memory.files.iter().map(|f| f.scope).collect();
    assert_eq!(&scopes[..3], &[MemoryScope::User; 3]);
    assert_eq!(scopes[7], MemoryScope::Local);
    assert_eq!(scopes[9], MemoryScope::Project);
    assert_eq!(memory.files[0].content, "user claude");
    assert!(memory.warnings.is_empty(), "{:?}", memory.warnings);
}

#[test]
fn outside_a_repository_only_the_cwd_is_read() {
    let t = Tree::new();
    let dir = t.base.join("scratch/inner");
    std::fs::create_dir_all(&dir).unwrap();
    t.write(&t.base.join("scratch/CLAUDE.md"), "parent");
    t.write(&dir.join("CLAUDE.md"), "here");
    let memory = t.loader(&dir).load();
    assert_eq!(t.names(&memory), vec!["scratch/inner/CLAUDE.md"]);
}

#[test]
fn setting_sources_choose_the_scopes() {
    let t = Tree::new();
    t.write(&t.home.join(".claude/CLAUDE.md"), "user");
    t.write(&t.repo.join("CLAUDE.md"), "project");
    t.write(&t.repo.join("CLAUDE.local.md"), "local");
    let only_project = SourceSet {
        user: false,
        project: true,
        local: false,
    };
    let memory = t.loader(&t.repo).with_sources(only_project).load();
    assert_eq!(t.names(&memory), vec!["work/repo/CLAUDE.md"]);
    let none = SourceSet::parse("").unwrap();
    assert!(t.loader(&t.repo).with_sources(none).load().files.is_empty());
}

#[test]
fn imports_follow_their_importer_with_relative_home_and_absolute_paths() {
    let t = Tree::new();
    let abs = t.base.join("shared/abs.md");
    t.write(&abs, "absolute");
    t.write(&t.home.join("prefs.md"), "from home");
    t.write(
        &t.repo.join("docs/style.md"),
        "style, see @../docs/deeper.md",
    );
    t.write(&t.repo.join("docs/deeper.md"), "deeper");
    t.write(
        &t.repo.join("CLAUDE.md"),
        &format!(
            "# Project\nFollow @docs/style.md and @~/prefs.md.\nAlso @{}\n",
            abs.display()
        ),
    );
    t.write(&t.repo.join("AGENTS.md"), "agents");
    let memory = t.loader(&t.repo).load();
    assert_eq!(
        t.names(&memory),
        vec![
            "work/repo/CLAUDE.md",
            "work/repo/docs/style.md",
            "work/repo/docs/deeper.md",
            "home/prefs.md",
            "shared/abs.md",
            "work/repo/AGENTS.md",
        ]
    );
    assert_eq!(
        memory.files[1].imported_by.as_deref(),
        Some(&*t.repo.join("CLAUDE.md"))
    );
    assert_eq!(
        memory.files[2].imported_by.as_deref(),
        Some(&*t.repo.join("docs/style.md"))
    );
    assert_eq!(memory.files[2].scope, MemoryScope::Project);
    // The importing text is kept as written; the import is its own entry.
    assert!(memory.files[0].content.contains("Follow @docs/style.md"));
    assert!(memory.warnings.is_empty(), "{:?}", memory.warnings);
}

#[test]
fn a_file_imported_by_claude_md_is_not_repeated_as_its_own_memory_file() {
    let t = Tree::new();
    t.write(&t.repo.join("CLAUDE.md"), "@AGENTS.md\n");
    t.write(&t.repo.join("AGENTS.md"), "the real instructions");
    let memory = t.loader(&t.repo).load();
    assert_eq!(
        t.names(&memory),
        vec!["work/repo/CLAUDE.md", "work/repo/AGENTS.md"]
    );
    assert_eq!(
        memory.files[1].imported_by.as_deref(),
        Some(&*t.repo.join("CLAUDE.md"))
    );
}

#[test]
fn import_cycles_are_cut_and_reported() {
    let t = Tree::new();
    t.write(&t.repo.join("CLAUDE.md"), "root\n@a.md\n");
    t.write(&t.repo.join("a.md"), "a\n\n@b.md\n");
    t.write(&t.repo.join("b.md"), "b\n@a.md\n@CLAUDE.md\n@b.md\n");
    let memory = t.loader(&t.repo).load();
    assert_eq!(
        t.names(&memory),
        vec!["work/repo/CLAUDE.md", "work/repo/a.md", "work/repo/b.md"]
    );
    let cycles: Vec<&MemoryWarning> = memory
        .warnings
        .iter()
        .filter(|w| matches!(w, MemoryWarning::ImportCycle { .. }))
        .collect();
    assert_eq!(cycles.len(), 3, "{:?}", memory.warnings);
    let MemoryWarning::ImportCycle {
        file, line, chain, ..
    } = cycles[0]
    else {
        unreachable!()
    };
    assert_eq!(file, &t.repo.join("b.md"));
    assert_eq!(*line, 2);
    assert_eq!(
        chain,
        &vec![
            t.repo.join("a.md"),
            t.repo.join("b.md"),
            t.repo.join("a.md")
        ]
    );
    let message = cycles[0].to_string();
    assert!(
        message.contains("b.md:2: import @a.md was skipped"),
        "{message}"
    );
    assert!(message.contains("a.md -> "), "{message}");
}

#[test]
fn missing_imports_name_the_file_and_line_and_uncertain_ones_stay_quiet() {
    let t = Tree::new();
    t.write(
        &t.repo.join("CLAUDE.md"),
        "intro\nRead @docs/missing.md first.\nUse @types/node, mail dev@example.com, ask @bob.\nSee @src/lib.rs\n",
    );
    t.write(&t.repo.join("src/lib.rs"), "// exists");
    let memory = t.loader(&t.repo).load();
    assert_eq!(
        t.names(&memory),
        vec!["work/repo/CLAUDE.md", "work/repo/src/lib.rs"]
    );
    assert_eq!(memory.warnings.len(), 1, "{:?}", memory.warnings);
    let warning = &memory.warnings[0];
    assert_eq!(
        warning,
        &MemoryWarning::MissingImport {
            file: t.repo.join("CLAUDE.md"),
            line: 2,
            target: "docs/missing.md".into(),
            resolved: t.repo.join("docs/missing.md"),
        }
    );
    assert!(warning.to_string().starts_with(&format!(
        "{}:2: import @docs/missing.md not found",
        t.repo.join("CLAUDE.md").display()
    )));
}

#[test]
fn imports_nest_at_most_five_deep() {
    let t = Tree::new();
    t.write(&t.repo.join("CLAUDE.md"), "@d1.md");
    for i in 1..=6 {
        t.write(
            &t.repo.join(format!("d{i}.md")),
            &format!("level {i}\n@d{}.md", i + 1),
        );
    }
    t.write(&t.repo.join("d7.md"), "level 7");
    let memory = t.loader(&t.repo).load();
    let names = t.names(&memory);
    assert_eq!(names.len(), 6, "{names:?}");
    assert_eq!(names.last().unwrap(), "work/repo/d5.md");
    assert_eq!(
        memory.warnings,
        vec![MemoryWarning::TooDeep {
            file: t.repo.join("d5.md"),
            line: 2,
            target: "d6.md".into(),
        }]
    );
}

#[test]
fn subdirectory_files_load_once_when_a_tool_first_touches_them() {
    let t = Tree::new();
    let cwd = t.repo.join("app");
    std::fs::create_dir_all(&cwd).unwrap();
    t.write(&t.repo.join("CLAUDE.md"), "root");
    t.write(&cwd.join("src/CLAUDE.md"), "app src");
    t.write(&cwd.join("src/net/AGENTS.md"), "net\n@notes.md");
    t.write(&cwd.join("src/net/notes.md"), "net notes");
    t.write(&cwd.join("src/net/tcp.rs"), "");
    t.write(&t.repo.join("lib/CLAUDE.md"), "sibling lib");
    t.write(&t.repo.join("lib/x.rs"), "");
    t.write(&t.repo.join("node_modules/pkg/AGENTS.md"), "a dependency's");
    t.write(&t.repo.join("node_modules/pkg/index.js"), "");
    t.write(&t.base.join("elsewhere/CLAUDE.md"), "outside the project");

    let mut loader = t.loader(&cwd);
    let start = loader.load();
    assert_eq!(t.names(&start), vec!["work/repo/CLAUDE.md"]);

    let first = loader.files_for_path(&cwd.join("src/net/tcp.rs"));
    assert_eq!(
        t.names(&first),
        vec![
            "work/repo/app/src/CLAUDE.md",
            "work/repo/app/src/net/AGENTS.md",
            "work/repo/app/src/net/notes.md",
        ]
    );
    assert!(first.files.iter().all(|f| f.scope == MemoryScope::Nested));
    // Touching the same place again, or a directory above it, adds nothing.
    assert!(
        loader
            .files_for_path(&cwd.join("src/net/tcp.rs"))
            .files
            .is_empty()
    );
    assert!(loader.files_for_path(Path::new("src")).files.is_empty());
    // A sibling of the cwd inside the repository is loaded on demand too.
    assert_eq!(
        t.names(&loader.files_for_path(&t.repo.join("lib/x.rs"))),
        vec!["work/repo/lib/CLAUDE.md"]
    );
    assert!(
        loader
            .files_for_path(&t.repo.join("node_modules/pkg/index.js"))
            .files
            .is_empty()
    );
    assert!(
        loader
            .files_for_path(&t.base.join("elsewhere/CLAUDE.md"))
            .files
            .is_empty()
    );
}

#[test]
fn large_files_warn_and_huge_ones_are_cut() {
    let t = Tree::new();
    t.write(&t.repo.join("CLAUDE.md"), &"x".repeat(WARN_CHARS + 1));
    t.write(&t.repo.join("AGENTS.md"), &"é".repeat(MAX_CHARS + 10));
    let memory = t.loader(&t.repo).load();
    assert_eq!(memory.files[0].content.len(), WARN_CHARS + 1);
    assert_eq!(
        memory.warnings[0],
        MemoryWarning::TooLarge {
            path: t.repo.join("CLAUDE.md"),
            chars: WARN_CHARS + 1,
            truncated: false,
        }
    );
    let cut = &memory.files[1].content;
    assert!(cut.starts_with(&"é".repeat(MAX_CHARS)));
    assert!(!cut.starts_with(&"é".repeat(MAX_CHARS + 1)));
    assert!(cut.ends_with(&format!(
        "it has {} characters and memory files are cut at {MAX_CHARS}]",
        MAX_CHARS + 10
    )));
    assert!(memory.warnings[1].to_string().contains("only the first"));
}

#[test]
fn one_file_reached_through_a_symlink_is_included_once() {
    let t = Tree::new();
    t.write(&t.repo.join("docs/rules.md"), "rules");
    #[cfg(unix)]
    std::os::unix::fs::symlink(t.repo.join("docs"), t.repo.join("linked")).unwrap();
    #[cfg(not(unix))]
    return;
    t.write(&t.repo.join("CLAUDE.md"), "@docs/rules.md @linked/rules.md");
    let memory = t.loader(&t.repo).load();
    assert_eq!(
        t.names(&memory),
        vec!["work/repo/CLAUDE.md", "work/repo/docs/rules.md"]
    );
}

#[test]
fn text_that_is_not_utf8_is_read_with_a_warning() {
    let t = Tree::new();
    std::fs::write(t.repo.join("CLAUDE.md"), b"caf\xe9 rules").unwrap();
    let memory = t.loader(&t.repo).load();
    assert_eq!(memory.files[0].content, "caf\u{fffd} rules");
    assert!(matches!(
        &memory.warnings[0],
        MemoryWarning::Unreadable { error, .. } if error.contains("not UTF-8")
    ));
}
