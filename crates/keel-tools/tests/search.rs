//! Glob and Grep on real trees.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use common::{Workspace, s, set_mtime};
use serde_json::json;

fn lines(text: &str) -> Vec<&str> {
    text.lines().collect()
}

// ---------- Glob ----------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn glob_lists_absolute_paths_newest_first() {
    let ws = Workspace::new();
    for (name, time) in [("old.rs", 1_000), ("new.rs", 3_000), ("mid.rs", 2_000)] {
        let path = ws.write(name, "");
        set_mtime(&path, time);
    }
    ws.write("notes.md", "");
    let result = ws.ok("Glob", json!({"pattern": "*.rs"})).await;
    assert_eq!(
        lines(&result.content),
        [
            s(&ws.path("new.rs")),
            s(&ws.path("mid.rs")),
            s(&ws.path("old.rs"))
        ]
    );
    let structured = result.structured.unwrap();
    assert_eq!(structured["numFiles"], 3);
    assert_eq!(structured["truncated"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn glob_star_stays_in_one_directory_and_double_star_crosses() {
    let ws = Workspace::new();
    ws.write("top.rs", "");
    ws.write("src/lib.rs", "");
    ws.write("src/deep/mod.rs", "");
    let names = |content: &str| {
        let mut v: Vec<String> = content
            .lines()
            .map(|l| l.strip_prefix(s(&ws.root)).unwrap().to_string())
            .collect();
        v.sort();
        v
    };
    let top = ws.ok("Glob", json!({"pattern": "*.rs"})).await;
    assert_eq!(names(&top.content), ["/top.rs"]);
    let all = ws.ok("Glob", json!({"pattern": "**/*.rs"})).await;
    assert_eq!(
        names(&all.content),
        ["/src/deep/mod.rs", "/src/lib.rs", "/top.rs"]
    );
    let src = ws.ok("Glob", json!({"pattern": "src/*.rs"})).await;
    assert_eq!(names(&src.content), ["/src/lib.rs"]);
    let braces = ws
        .ok("Glob", json!({"pattern": "src/**/{lib,mod}.rs"}))
        .await;
    assert_eq!(names(&braces.content), ["/src/deep/mod.rs", "/src/lib.rs"]);
    // `path` picks the directory the pattern is matched in.
    let sub = ws
        .ok("Glob", json!({"pattern": "*.rs", "path": "src"}))
        .await;
    assert_eq!(names(&sub.content), ["/src/lib.rs"]);
    // An absolute pattern works too.
    let abs = format!("{}/src/**/*.rs", s(&ws.root));
    let abs = ws.ok("Glob", json!({"pattern": abs})).await;
    assert_eq!(names(&abs.content), ["/src/deep/mod.rs", "/src/lib.rs"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn glob_honours_gitignore_includes_hidden_files_and_skips_dot_git() {
    let ws = Workspace::new();
    ws.write(".gitignore", "target/\n*.log\n");
    ws.write("target/debug/out.rs", "");
    ws.write("debug.log", "");
    ws.write("keep.rs", "");
    ws.write(".hidden.rs", "");
    ws.write(".git/hooks/pre-commit.rs", "");
    let result = ws.ok("Glob", json!({"pattern": "**/*"})).await;
    let mut found: Vec<&str> = result
        .content
        .lines()
        .map(|l| l.strip_prefix(s(&ws.root)).unwrap())
        .collect();
    found.sort();
    assert_eq!(found, ["/.gitignore", "/.hidden.rs", "/keep.rs"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn glob_cuts_at_100_results_and_says_so() {
    let ws = Workspace::new();
    for i in 0..120 {
        ws.write(&format!("f{i:03}.txt"), "");
    }
    let result = ws.ok("Glob", json!({"pattern": "*.txt"})).await;
    let listed = result
        .content
        .lines()
        .filter(|l| l.starts_with('/'))
        .count();
    assert_eq!(listed, 100);
    assert!(
        result.content.contains("truncated") && result.content.contains("120"),
        "{}",
        result.content
    );
    assert_eq!(result.structured.unwrap()["truncated"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn glob_reports_no_files_and_bad_directories() {
    let ws = Workspace::new();
    let result = ws.ok("Glob", json!({"pattern": "*.zig"})).await;
    assert_eq!(result.content, "No files found");
    let err = ws
        .err("Glob", json!({"pattern": "*", "path": "missing"}))
        .await;
    assert!(
        err.contains("missing") && err.contains("cannot be searched"),
        "{err}"
    );
    ws.write("file.txt", "");
    let err = ws
        .err("Glob", json!({"pattern": "*", "path": "file.txt"}))
        .await;
    assert!(err.contains("is not a directory"), "{err}");
    let err = ws.err("Glob", json!({"pattern": "[a"})).await;
    assert!(err.contains("Invalid glob pattern"), "{err}");
}

// ---------- Grep ----------

fn grep_tree(ws: &Workspace) {
    let a = ws.write(
        "src/a.rs",
        "fn alpha() {}\nfn beta() {}\n// TODO alpha again\n",
    );
    let b = ws.write("src/b.py", "def alpha():\n    pass\n");
    let c = ws.write("docs/c.md", "Nothing here.\nALPHA in caps\n");
    set_mtime(&a, 1_000);
    set_mtime(&b, 3_000);
    set_mtime(&c, 2_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grep_lists_matching_files_newest_first_by_default() {
    let ws = Workspace::new();
    grep_tree(&ws);
    let result = ws.ok("Grep", json!({"pattern": "alpha"})).await;
    assert_eq!(
        lines(&result.content),
        [
            "Found 2 files",
            s(&ws.path("src/b.py")),
            s(&ws.path("src/a.rs"))
        ]
    );
    let structured = result.structured.unwrap();
    assert_eq!(structured["numFiles"], 2);
    assert_eq!(structured["mode"], "files_with_matches");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grep_content_mode_prints_path_line_and_text() {
    let ws = Workspace::new();
    grep_tree(&ws);
    let a = ws.path("src/a.rs");
    let b = ws.path("src/b.py");
    let result = ws
        .ok(
            "Grep",
            json!({"pattern": "alpha", "output_mode": "content"}),
        )
        .await;
    assert_eq!(
        lines(&result.content),
        [
            format!("{}:1:fn alpha() {{}}", s(&a)),
            format!("{}:3:// TODO alpha again", s(&a)),
            format!("{}:1:def alpha():", s(&b)),
        ]
    );
    let result = ws
        .ok(
            "Grep",
            json!({"pattern": "alpha", "output_mode": "content", "-n": false, "path": "src/b.py"}),
        )
        .await;
    assert_eq!(result.content, format!("{}:def alpha():", s(&b)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grep_context_lines_and_group_separators() {
    let ws = Workspace::new();
    let text: String = (1..=12)
        .map(|i| {
            if i == 3 || i == 10 {
                format!("hit {i}\n")
            } else {
                format!("line {i}\n")
            }
        })
        .collect();
    let f = ws.write("ctx.txt", &text);
    let p = s(&f);
    let result = ws
        .ok(
            "Grep",
            json!({"pattern": "hit", "output_mode": "content", "-C": 1}),
        )
        .await;
    assert_eq!(
        lines(&result.content),
        [
            format!("{p}-2-line 2"),
            format!("{p}:3:hit 3"),
            format!("{p}-4-line 4"),
            "--".to_string(),
            format!("{p}-9-line 9"),
            format!("{p}:10:hit 10"),
            format!("{p}-11-line 11"),
        ]
    );
    let result = ws
        .ok(
            "Grep",
            json!({"pattern": "hit 3", "output_mode": "content", "-A": 2}),
        )
        .await;
    assert_eq!(
        lines(&result.content),
        [
            format!("{p}:3:hit 3"),
            format!("{p}-4-line 4"),
            format!("{p}-5-line 5")
        ]
    );
    let result = ws
        .ok(
            "Grep",
            json!({"pattern": "hit 3", "output_mode": "content", "-B": 1, "context": 5}),
        )
        .await;
    assert_eq!(lines(&result.content)[0], format!("{p}-2-line 2"));
    assert!(
        result.content.contains(&format!("{p}-8-line 8")),
        "context applies after"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grep_case_insensitive_and_count_mode() {
    let ws = Workspace::new();
    grep_tree(&ws);
    let result = ws
        .ok(
            "Grep",
            json!({"pattern": "alpha", "-i": true, "output_mode": "count"}),
        )
        .await;
    assert_eq!(
        lines(&result.content),
        [
            format!("{}:1", s(&ws.path("docs/c.md"))),
            format!("{}:2", s(&ws.path("src/a.rs"))),
            format!("{}:1", s(&ws.path("src/b.py"))),
            String::new(),
            "Found 4 matching lines in 3 files.".to_string(),
        ]
    );
    assert_eq!(result.structured.unwrap()["numMatches"], 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grep_filters_by_glob_and_type() {
    let ws = Workspace::new();
    grep_tree(&ws);
    ws.write("web/app.ts", "const alpha = 1;\n");
    ws.write("web/view.tsx", "alpha()\n");
    let files = |content: &str| {
        let mut v: Vec<String> = content
            .lines()
            .skip(1)
            .map(|l| l.strip_prefix(s(&ws.root)).unwrap().to_string())
            .collect();
        v.sort();
        v
    };
    let result = ws
        .ok("Grep", json!({"pattern": "alpha", "glob": "*.rs"}))
        .await;
    assert_eq!(files(&result.content), ["/src/a.rs"]);
    let result = ws
        .ok("Grep", json!({"pattern": "alpha", "glob": "*.{ts,tsx}"}))
        .await;
    assert_eq!(files(&result.content), ["/web/app.ts", "/web/view.tsx"]);
    let result = ws
        .ok("Grep", json!({"pattern": "alpha", "type": "py"}))
        .await;
    assert_eq!(files(&result.content), ["/src/b.py"]);
    let err = ws
        .err("Grep", json!({"pattern": "alpha", "type": "nosuchlang"}))
        .await;
    assert!(err.contains("Unknown file type `nosuchlang`"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grep_multiline_spans_lines() {
    let ws = Workspace::new();
    let f = ws.write("m.rs", "struct S {\n    field: u8,\n}\n");
    let result = ws
        .ok(
            "Grep",
            json!({"pattern": "struct S \\{.*field", "output_mode": "content"}),
        )
        .await;
    assert_eq!(result.content, "No matches found");
    let result = ws
        .ok(
            "Grep",
            json!({"pattern": "struct S \\{.*field", "output_mode": "content", "multiline": true}),
        )
        .await;
    assert_eq!(
        lines(&result.content),
        [
            format!("{}:1:struct S {{", s(&f)),
            format!("{}:2:    field: u8,", s(&f))
        ]
    );
    let err = ws.err("Grep", json!({"pattern": "S \\{\\n"})).await;
    assert!(err.contains("multiline"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grep_pages_with_offset_and_head_limit() {
    let ws = Workspace::new();
    let text: String = (1..=10).map(|i| format!("item {i}\n")).collect();
    let f = ws.write("list.txt", &text);
    let p = s(&f);
    let result = ws
        .ok(
            "Grep",
            json!({"pattern": "item", "output_mode": "content", "offset": 2, "head_limit": 3}),
        )
        .await;
    assert_eq!(
        lines(&result.content),
        [
            format!("{p}:3:item 3"),
            format!("{p}:4:item 4"),
            format!("{p}:5:item 5"),
            "(Showing lines 3-5 of 10. Use offset=5 to see more.)".to_string(),
        ]
    );
    // Adjacent matching lines are counted one by one.
    let result = ws
        .ok("Grep", json!({"pattern": "item", "output_mode": "count"}))
        .await;
    assert_eq!(
        lines(&result.content),
        [
            format!("{p}:10"),
            String::new(),
            "Found 10 matching lines in 1 file.".to_string()
        ]
    );
    for i in 0..5 {
        ws.write(&format!("many/f{i}.txt"), "item\n");
    }
    let result = ws
        .ok(
            "Grep",
            json!({"pattern": "item", "path": "many", "head_limit": 2}),
        )
        .await;
    let shown: Vec<&str> = result.content.lines().collect();
    assert_eq!(shown[0], "Found 5 files");
    assert_eq!(shown.len(), 4, "{}", result.content);
    assert!(shown[3].contains("offset=2"), "{}", result.content);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grep_skips_ignored_binary_and_git_files() {
    let ws = Workspace::new();
    ws.write(".gitignore", "build/\n");
    ws.write("build/gen.rs", "needle\n");
    ws.write(".git/config", "needle\n");
    ws.write(".env", "needle\n");
    std::fs::write(ws.path("blob.bin"), b"needle\0\x01\x02").unwrap();
    ws.write("src/main.rs", "needle\n");
    let result = ws.ok("Grep", json!({"pattern": "needle"})).await;
    let mut found: Vec<&str> = result
        .content
        .lines()
        .skip(1)
        .map(|l| l.strip_prefix(s(&ws.root)).unwrap())
        .collect();
    found.sort();
    assert_eq!(found, ["/.env", "/src/main.rs"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grep_reports_bad_regexes_missing_paths_and_no_matches() {
    let ws = Workspace::new();
    ws.write("a.txt", "text\n");
    let err = ws.err("Grep", json!({"pattern": "foo("})).await;
    assert!(
        err.contains("Invalid regex `foo(`") && err.contains("unclosed group"),
        "{err}"
    );
    let err = ws
        .err("Grep", json!({"pattern": "x", "path": "nowhere"}))
        .await;
    assert!(
        err.contains("nowhere") && err.contains("cannot be searched"),
        "{err}"
    );
    let result = ws.ok("Grep", json!({"pattern": "absent"})).await;
    assert_eq!(result.content, "No matches found");
    let err = ws
        .err("Grep", json!({"pattern": "x", "output_mode": "lines"}))
        .await;
    assert!(err.contains("`output_mode` must be one of"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trees_past_the_single_thread_walk_report_every_file_once() {
    // Small trees are walked on one thread and larger ones go parallel part-way through; a
    // file must be neither lost nor reported twice at the switch.
    let ws = Workspace::new();
    for d in 0..150 {
        ws.write(&format!("d{d}/hit.txt"), &format!("needle {d}\n"));
        ws.write(&format!("d{d}/miss.txt"), "nothing here\n");
    }
    let result = ws
        .ok(
            "Grep",
            json!({"pattern": "needle", "output_mode": "content"}),
        )
        .await;
    let mut found = lines(&result.content);
    assert_eq!(found.len(), 150);
    found.sort_unstable();
    found.dedup();
    assert_eq!(found.len(), 150, "a file was reported twice");
    let files = ws.ok("Grep", json!({"pattern": "needle"})).await;
    assert_eq!(files.structured.unwrap()["numFiles"], 150);

    let glob = ws.ok("Glob", json!({"pattern": "**/*.txt"})).await;
    assert!(
        glob.content
            .contains("showing the 100 most recently modified of 300 matches"),
        "{}",
        glob.content
    );
}
