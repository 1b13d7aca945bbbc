//! Read, Write and Edit on real files, through the registry as the engine calls them.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use std::os::unix::fs::PermissionsExt as _;

use common::{Workspace, s, set_mtime};
use serde_json::json;

// ---------- Read ----------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_numbers_lines_like_cat_n_and_reports_structure() {
    let ws = Workspace::new();
    let file = ws.write("src/lib.rs", "pub fn answer() -> u32 {\n    41\n}\n");
    let result = ws.ok("Read", json!({"file_path": s(&file)})).await;
    assert_eq!(
        result.content,
        "     1\tpub fn answer() -> u32 {\n     2\t    41\n     3\t}"
    );
    let structured = result.structured.unwrap();
    assert_eq!(structured["type"], "text");
    assert_eq!(structured["file"]["filePath"], s(&file));
    assert_eq!(structured["file"]["numLines"], 3);
    assert_eq!(structured["file"]["startLine"], 1);
    assert_eq!(structured["file"]["totalLines"], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_resolves_relative_paths_against_the_current_directory() {
    let ws = Workspace::new();
    ws.write("notes/todo.txt", "buy milk\n");
    let result = ws.ok("Read", json!({"file_path": "notes/todo.txt"})).await;
    assert_eq!(result.content, "     1\tbuy milk");
    let result = ws
        .ok("Read", json!({"file_path": "./notes/../notes/todo.txt"}))
        .await;
    assert_eq!(result.content, "     1\tbuy milk");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_offset_and_limit_select_a_window_and_say_how_to_go_on() {
    let ws = Workspace::new();
    let text: String = (1..=10).map(|i| format!("line {i}\n")).collect();
    let file = ws.write("ten.txt", &text);
    let result = ws
        .ok(
            "Read",
            json!({"file_path": s(&file), "offset": 3, "limit": 2}),
        )
        .await;
    assert!(
        result
            .content
            .starts_with("     3\tline 3\n     4\tline 4\n\n(Showing lines 3-4 of 10."),
        "{}",
        result.content
    );
    assert!(result.content.contains("offset=5"), "{}", result.content);
    let file_json = &result.structured.unwrap()["file"];
    assert_eq!(file_json["numLines"], 2);
    assert_eq!(file_json["startLine"], 3);
    assert_eq!(file_json["totalLines"], 10);

    // The last window needs no note.
    let result = ws
        .ok("Read", json!({"file_path": s(&file), "offset": 9}))
        .await;
    assert_eq!(result.content, "     9\tline 9\n    10\tline 10");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_shows_2000_lines_by_default() {
    let ws = Workspace::new();
    let text: String = (1..=2500).map(|i| format!("{i}\n")).collect();
    let file = ws.write("long.txt", &text);
    let result = ws.ok("Read", json!({"file_path": s(&file)})).await;
    assert!(
        result.content.contains("  2000\t2000\n"),
        "last default line shown"
    );
    assert!(!result.content.contains("\t2001"));
    assert!(
        result.content.contains("Showing lines 1-2000 of 2500")
            && result.content.contains("offset=2001"),
        "{}",
        &result.content[result.content.len() - 200..]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_cuts_very_long_lines() {
    let ws = Workspace::new();
    let file = ws.write("min.js", &format!("{}\nend\n", "x".repeat(5000)));
    let result = ws.ok("Read", json!({"file_path": s(&file)})).await;
    let first = result.content.lines().next().unwrap();
    assert!(
        first.ends_with("... [line truncated: 3000 more characters]"),
        "{first:.80}"
    );
    assert!(result.content.ends_with("     2\tend"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_offset_past_the_end_names_the_line_count() {
    let ws = Workspace::new();
    let file = ws.write("three.txt", "a\nb\nc\n");
    let err = ws
        .err("Read", json!({"file_path": s(&file), "offset": 10}))
        .await;
    assert!(
        err.contains("has 3 lines") && err.contains("offset 10"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_refuses_binary_files_and_directories() {
    let ws = Workspace::new();
    // (Images and PDFs are shown as such; other binaries are refused.)
    let bin = ws.path("program");
    std::fs::write(&bin, b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x02\0>\0").unwrap();
    let err = ws.err("Read", json!({"file_path": s(&bin)})).await;
    assert!(
        err.contains("binary") && err.contains("cannot be shown as text"),
        "{err}"
    );

    let fifo = ws.path("pipe");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let err = ws.err("Read", json!({"file_path": s(&fifo)})).await;
    assert!(err.contains("not a regular file"), "{err}");

    std::fs::create_dir(ws.path("folder")).unwrap();
    let err = ws.err("Read", json!({"file_path": "folder"})).await;
    assert!(
        err.contains("is a directory") && err.contains("Glob") && err.contains("ls"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_of_a_missing_file_suggests_similar_names() {
    let ws = Workspace::new();
    ws.write("config.toml", "x = 1\n");
    let err = ws.err("Read", json!({"file_path": "confg.toml"})).await;
    assert!(
        err.starts_with(&format!(
            "File does not exist: {}",
            s(&ws.path("confg.toml"))
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!("Did you mean {}?", s(&ws.path("config.toml")))),
        "{err}"
    );

    let err = ws
        .err("Read", json!({"file_path": "nothing/like/it.rs"}))
        .await;
    assert!(
        err.contains("File does not exist") && !err.contains("Did you mean"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_of_an_empty_file_says_it_is_empty() {
    let ws = Workspace::new();
    let file = ws.write("empty.txt", "");
    let result = ws.ok("Read", json!({"file_path": s(&file)})).await;
    assert!(
        result.content.contains("exists but is empty"),
        "{}",
        result.content
    );
    assert_eq!(result.structured.unwrap()["file"]["numLines"], 0);
}

// ---------- Write ----------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_refuses_an_existing_file_that_was_not_read() {
    let ws = Workspace::new();
    let file = ws.write("keep.txt", "original\n");
    let err = ws
        .err(
            "Write",
            json!({"file_path": s(&file), "content": "clobbered"}),
        )
        .await;
    assert!(
        err.contains("File has not been read yet. Read it first before writing to it."),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "original\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_after_read_replaces_the_file_and_keeps_its_mode() {
    let ws = Workspace::new();
    let file = ws.write("run.sh", "#!/bin/sh\necho old\n");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755)).unwrap();
    ws.ok("Read", json!({"file_path": s(&file)})).await;
    let result = ws
        .ok(
            "Write",
            json!({"file_path": s(&file), "content": "#!/bin/sh\necho new\n"}),
        )
        .await;
    assert_eq!(
        result.content,
        format!("The file {} has been updated.", s(&file))
    );
    assert_eq!(result.structured.as_ref().unwrap()["type"], "update");
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "#!/bin/sh\necho new\n"
    );
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o755);
    // The temp file was renamed into place, not left behind.
    let names: Vec<String> = std::fs::read_dir(&ws.root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["run.sh"]);
    // The model has seen what it wrote: a second write needs no new Read.
    ws.ok(
        "Write",
        json!({"file_path": s(&file), "content": "again\n"}),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_creates_new_files_and_their_directories() {
    let ws = Workspace::new();
    let result = ws
        .ok(
            "Write",
            json!({"file_path": "a/b/new.txt", "content": "hello"}),
        )
        .await;
    let path = ws.path("a/b/new.txt");
    assert_eq!(
        result.content,
        format!("File created successfully at: {}", s(&path))
    );
    let structured = result.structured.unwrap();
    assert_eq!(structured["type"], "create");
    assert_eq!(structured["content"], "hello");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "hello");
    // The mode any program creating a file here gets (umask applied), not a temp file's 0600.
    let reference = ws.write("reference.txt", "");
    let mode_of = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode_of(&path), mode_of(&reference));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_refuses_a_file_changed_since_it_was_read() {
    let ws = Workspace::new();
    let file = ws.write("moving.txt", "v1\n");
    set_mtime(&file, 1_000_000);
    ws.ok("Read", json!({"file_path": s(&file)})).await;
    std::fs::write(&file, "v2 by the user\n").unwrap();
    set_mtime(&file, 2_000_000);
    let err = ws
        .err("Write", json!({"file_path": s(&file), "content": "v3"}))
        .await;
    assert!(
        err.contains("modified since it was last read") && err.contains("Read it again"),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "v2 by the user\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_through_a_symlink_keeps_the_link() {
    let ws = Workspace::new();
    let target = ws.write("real.txt", "old\n");
    let link = ws.path("link.txt");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    ws.ok("Read", json!({"file_path": s(&link)})).await;
    ws.ok("Write", json!({"file_path": s(&link), "content": "new\n"}))
        .await;
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "new\n");
}

// ---------- Edit ----------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edit_replaces_a_unique_string_and_shows_the_region() {
    let ws = Workspace::new();
    let file = ws.write("src/lib.rs", "pub fn answer() -> u32 {\n    41\n}\n");
    ws.ok("Read", json!({"file_path": s(&file)})).await;
    let result = ws
        .ok(
            "Edit",
            json!({"file_path": s(&file), "old_string": "    41", "new_string": "    42"}),
        )
        .await;
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "pub fn answer() -> u32 {\n    42\n}\n"
    );
    assert!(
        result
            .content
            .starts_with(&format!("The file {} has been updated.", s(&file))),
        "{}",
        result.content
    );
    assert!(
        result.content.contains("     2\t    42"),
        "{}",
        result.content
    );
    let structured = result.structured.unwrap();
    assert_eq!(structured["oldString"], "    41");
    assert_eq!(structured["newString"], "    42");
    assert_eq!(structured["replaceAll"], false);
    assert_eq!(
        structured["structuredPatch"][0]["lines"],
        json!([" pub fn answer() -> u32 {", "-    41", "+    42", " }"])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edit_with_several_matches_needs_replace_all_or_more_context() {
    let ws = Workspace::new();
    let file = ws.write("dup.txt", "x = 1\ny = 0\nx = 1\n");
    ws.ok("Read", json!({"file_path": s(&file)})).await;
    let err = ws
        .err(
            "Edit",
            json!({"file_path": s(&file), "old_string": "x = 1", "new_string": "x = 2"}),
        )
        .await;
    assert!(err.contains("Found 2 matches"), "{err}");
    assert!(err.contains("replace_all"), "{err}");
    assert!(
        err.contains("provide more context to uniquely identify the instance"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "x = 1\ny = 0\nx = 1\n"
    );

    let result = ws
        .ok(
            "Edit",
            json!({"file_path": s(&file), "old_string": "x = 1", "new_string": "x = 2", "replace_all": true}),
        )
        .await;
    assert!(
        result.content.contains("all 2 occurrences"),
        "{}",
        result.content
    );
    assert_eq!(result.structured.unwrap()["replaceAll"], true);
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "x = 2\ny = 0\nx = 2\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edit_of_missing_text_says_to_match_exactly() {
    let ws = Workspace::new();
    let file = ws.write("a.py", "def f():\n    return 1\n");
    ws.ok("Read", json!({"file_path": s(&file)})).await;
    let err = ws
        .err(
            "Edit",
            json!({"file_path": s(&file), "old_string": "  return 1\n  ", "new_string": "x"}),
        )
        .await;
    assert!(
        err.contains("not found") && err.contains("whitespace and indentation"),
        "{err}"
    );
    let err = ws
        .err(
            "Edit",
            json!({"file_path": s(&file), "old_string": "     2\t    return 1", "new_string": "x"}),
        )
        .await;
    assert!(err.contains("line-number prefix"), "{err}");
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "def f():\n    return 1\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edit_keeps_crlf_line_endings() {
    let ws = Workspace::new();
    let file = ws.write("win.txt", "first\r\nsecond\r\nthird\r\n");
    ws.ok("Read", json!({"file_path": s(&file)})).await;
    ws.ok(
        "Edit",
        json!({"file_path": s(&file), "old_string": "first\nsecond", "new_string": "one\ntwo\nmore"}),
    )
    .await;
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "one\r\ntwo\r\nmore\r\nthird\r\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edit_keeps_permissions_and_the_final_newline() {
    let ws = Workspace::new();
    let file = ws.write("tool.sh", "#!/bin/sh\necho a\n");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755)).unwrap();
    ws.ok("Read", json!({"file_path": s(&file)})).await;
    ws.ok(
        "Edit",
        json!({"file_path": s(&file), "old_string": "echo a\n", "new_string": "echo b"}),
    )
    .await;
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "#!/bin/sh\necho b\n"
    );
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o755);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edit_refuses_unread_and_changed_files() {
    let ws = Workspace::new();
    let file = ws.write("f.txt", "alpha\n");
    let err = ws
        .err(
            "Edit",
            json!({"file_path": s(&file), "old_string": "alpha", "new_string": "beta"}),
        )
        .await;
    assert!(err.contains("has not been read yet"), "{err}");

    set_mtime(&file, 1_000_000);
    ws.ok("Read", json!({"file_path": s(&file)})).await;
    std::fs::write(&file, "alpha changed\n").unwrap();
    set_mtime(&file, 1_000_001);
    let err = ws
        .err(
            "Edit",
            json!({"file_path": s(&file), "old_string": "alpha", "new_string": "beta"}),
        )
        .await;
    assert!(err.contains("modified since it was last read"), "{err}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "alpha changed\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edit_with_identical_strings_is_refused() {
    let ws = Workspace::new();
    let file = ws.write("f.txt", "same\n");
    ws.ok("Read", json!({"file_path": s(&file)})).await;
    let err = ws
        .err(
            "Edit",
            json!({"file_path": s(&file), "old_string": "same", "new_string": "same"}),
        )
        .await;
    assert!(err.contains("identical"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edit_with_empty_old_string_creates_a_missing_file() {
    let ws = Workspace::new();
    let result = ws
        .ok(
            "Edit",
            json!({"file_path": "new/dir/file.md", "old_string": "", "new_string": "# Title\n"}),
        )
        .await;
    assert!(
        result.content.contains("File created successfully"),
        "{}",
        result.content
    );
    assert_eq!(
        std::fs::read_to_string(ws.path("new/dir/file.md")).unwrap(),
        "# Title\n"
    );
    // And it may be edited straight away.
    ws.ok(
        "Edit",
        json!({"file_path": "new/dir/file.md", "old_string": "Title", "new_string": "Heading"}),
    )
    .await;
    assert_eq!(
        std::fs::read_to_string(ws.path("new/dir/file.md")).unwrap(),
        "# Heading\n"
    );

    // A missing file with a non-empty old_string is an error naming the file.
    let err = ws
        .err(
            "Edit",
            json!({"file_path": "nope.md", "old_string": "a", "new_string": "b"}),
        )
        .await;
    assert!(err.contains("File does not exist"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edit_after_write_needs_no_new_read() {
    let ws = Workspace::new();
    ws.ok("Write", json!({"file_path": "w.txt", "content": "one\n"}))
        .await;
    ws.ok(
        "Edit",
        json!({"file_path": "w.txt", "old_string": "one", "new_string": "two"}),
    )
    .await;
    assert_eq!(std::fs::read_to_string(ws.path("w.txt")).unwrap(), "two\n");
}
