//! Settings files on disk: precedence, merging, and one test per kind of mistake.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use keel_config::{LoadOptions, Scope, SettingsError, SourceSet, load};
use serde_json::json;

struct Dirs {
    _root: tempfile::TempDir,
    home: PathBuf,
    project: PathBuf,
}

fn dirs() -> Dirs {
    let root = tempfile::tempdir().unwrap();
    let home = root.path().join("home");
    let project = root.path().join("work/project");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::create_dir_all(project.join(".git")).unwrap();
    Dirs {
        _root: root,
        home,
        project,
    }
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn options(d: &Dirs) -> LoadOptions {
    LoadOptions {
        home: d.home.clone(),
        cwd: d.project.clone(),
        sources: SourceSet::default(),
        flag_settings: None,
    }
}

#[test]
fn layers_merge_in_precedence_order() {
    let d = dirs();
    write(
        &d.home.join(".claude/settings.json"),
        r#"{"model": "from-claude-user", "permissions": {"allow": ["Read"]}, "env": {"A": "user"}}"#,
    );
    write(
        &d.home.join(".keel/settings.json"),
        r#"{"model": "from-keel-user", "permissions": {"deny": ["Bash(rm:*)"]}}"#,
    );
    write(
        &d.project.join(".claude/settings.json"),
        r#"{"permissions": {"allow": ["Bash(git diff:*)"], "defaultMode": "acceptEdits"}, "env": {"A": "project", "B": "project"}}"#,
    );
    write(
        &d.project.join(".keel/settings.local.json"),
        r#"{"model": "from-local", "permissions": {"allow": ["Edit(src/**)"]}}"#,
    );
    let mut opts = options(&d);
    opts.flag_settings = Some(r#"{"permissions": {"ask": ["Bash(git push:*)"]}}"#.into());
    let loaded = load(&opts).unwrap();

    let scopes: Vec<Scope> = loaded.layers.iter().map(|l| l.scope).collect();
    assert_eq!(
        scopes,
        [
            Scope::User,
            Scope::User,
            Scope::Project,
            Scope::Local,
            Scope::Flag
        ]
    );
    let settings = &loaded.effective;
    assert_eq!(settings.model.as_deref(), Some("from-local"));
    assert_eq!(
        settings.permissions.allow,
        ["Read", "Bash(git diff:*)", "Edit(src/**)"]
    );
    assert_eq!(settings.permissions.deny, ["Bash(rm:*)"]);
    assert_eq!(settings.permissions.ask, ["Bash(git push:*)"]);
    assert_eq!(
        settings.permissions.default_mode.as_deref(),
        Some("acceptEdits")
    );
    assert_eq!(settings.env["A"], "project");
    assert_eq!(settings.env["B"], "project");
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);

    // Each rule remembers its file and the directory its `/` patterns are relative to.
    let rules = loaded.rules();
    let edit = rules.iter().find(|r| r.rule == "Edit(src/**)").unwrap();
    assert_eq!(edit.list, "allow");
    assert!(edit.origin.ends_with(".keel/settings.local.json"));
    assert_eq!(edit.base_dir, d.project);
    assert_eq!(
        loaded.source_of("model").unwrap().path.as_deref(),
        Some(d.project.join(".keel/settings.local.json").as_path())
    );
}

#[test]
fn setting_sources_limit_what_is_read() {
    let d = dirs();
    write(&d.home.join(".keel/settings.json"), r#"{"model": "user"}"#);
    write(
        &d.project.join(".keel/settings.json"),
        r#"{"model": "project"}"#,
    );
    let mut opts = options(&d);
    opts.sources = SourceSet::parse("user").unwrap();
    assert_eq!(
        load(&opts).unwrap().effective.model.as_deref(),
        Some("user")
    );
    opts.sources = SourceSet::parse("").unwrap();
    assert_eq!(load(&opts).unwrap().effective.model, None);
}

#[test]
fn project_settings_are_found_from_a_subdirectory() {
    let d = dirs();
    write(
        &d.project.join(".claude/settings.json"),
        r#"{"model": "p"}"#,
    );
    let sub = d.project.join("src/deep");
    std::fs::create_dir_all(&sub).unwrap();
    let mut opts = options(&d);
    opts.cwd = sub;
    let loaded = load(&opts).unwrap();
    assert_eq!(loaded.project_root, d.project);
    assert_eq!(loaded.effective.model.as_deref(), Some("p"));
}

#[test]
fn settings_flag_reads_a_file_relative_to_the_working_directory() {
    let d = dirs();
    write(&d.project.join("ci-settings.json"), r#"{"maxRetries": 7}"#);
    let mut opts = options(&d);
    opts.flag_settings = Some("ci-settings.json".into());
    assert_eq!(load(&opts).unwrap().effective.max_retries, Some(7));
    opts.flag_settings = Some("missing.json".into());
    let error = load(&opts).unwrap_err().to_string();
    assert!(
        error.contains("missing.json") && error.contains("cannot read"),
        "{error}"
    );
}

fn load_error(text: &str) -> (SettingsError, String) {
    let d = dirs();
    let path = d.project.join(".keel/settings.json");
    write(&path, text);
    let error = load(&options(&d)).unwrap_err();
    let message = error.to_string();
    assert!(
        message.starts_with(&path.display().to_string()),
        "the message names the file: {message}"
    );
    (error, message)
}

#[test]
fn invalid_json_names_line_and_column() {
    let (error, message) = load_error("{\n  \"model\": \"a\",\n  \"env\": {,}\n}\n");
    match error {
        SettingsError::Json { line, column, .. } => assert_eq!((line, column), (3, 11)),
        other => panic!("{other:?}"),
    }
    assert!(message.contains(":3:11: invalid JSON"), "{message}");
}

#[test]
fn trailing_comma_is_reported_where_it_is() {
    let (_, message) = load_error("{\n  \"permissions\": {\"allow\": [\"Read\",]}\n}");
    assert!(
        message.contains(":2:") && message.contains("invalid JSON"),
        "{message}"
    );
}

#[test]
fn wrong_type_names_the_key_and_position() {
    let (error, message) = load_error("{\n  \"permissions\": {\n    \"allow\": \"Bash\"\n  }\n}");
    match &error {
        SettingsError::Invalid { key, line, .. } => {
            assert_eq!(key, "permissions.allow");
            assert_eq!(*line, 3);
        }
        other => panic!("{other:?}"),
    }
    assert!(message.contains("expected a sequence"), "{message}");
}

#[test]
fn wrong_type_inside_a_list_names_the_element() {
    let (_, message) = load_error(r#"{"permissions": {"deny": ["Read", 42]}}"#);
    assert!(message.contains("`permissions.deny[1]`"), "{message}");
}

#[test]
fn wrong_type_deep_in_hooks_names_the_path() {
    let (_, message) = load_error(
        r#"{"hooks": {"PreToolUse": [{"matcher": "Bash", "hooks": [{"type": "command", "command": "x", "timeout": "10"}]}]}}"#,
    );
    assert!(
        message.contains("`hooks.PreToolUse[0].hooks[0].timeout`"),
        "{message}"
    );
}

#[test]
fn unknown_permission_mode_lists_the_valid_ones() {
    let (_, message) = load_error(r#"{"permissions": {"defaultMode": "yolo"}}"#);
    assert!(message.contains("permissions.defaultMode"), "{message}");
    assert!(
        message.contains("bypassPermissions") && message.contains("acceptEdits"),
        "{message}"
    );
}

#[test]
fn a_top_level_array_is_refused() {
    let (_, message) = load_error(r#"["Read"]"#);
    assert!(message.contains("must be a JSON object"), "{message}");
}

#[test]
fn unsupported_hook_type_is_an_error() {
    let (_, message) =
        load_error(r#"{"hooks": {"Stop": [{"hooks": [{"type": "webhook", "command": "x"}]}]}}"#);
    assert!(message.contains("hooks.Stop[0].hooks[0].type"), "{message}");
}

#[test]
fn unknown_keys_are_warnings_with_suggestions() {
    let d = dirs();
    write(
        &d.project.join(".keel/settings.json"),
        r#"{"permisions": {}, "permissions": {"alow": []}, "hooks": {"PreToolUs": []}, "statusLine": {"type": "command"}, "model": "m"}"#,
    );
    let loaded = load(&options(&d)).unwrap();
    let warnings: Vec<String> = loaded.warnings.iter().map(|w| w.to_string()).collect();
    assert_eq!(warnings.len(), 3, "{warnings:#?}");
    assert!(
        warnings[0].contains("unknown setting `permisions`")
            && warnings[0].contains("did you mean `permissions`")
    );
    assert!(warnings[1].contains("`permissions.alow`") && warnings[1].contains("`allow`"));
    assert!(warnings[2].contains("hooks.PreToolUs") && warnings[2].contains("PreToolUse"));
    // Claude Code keys keel does not act on load quietly.
    assert!(!warnings.iter().any(|w| w.contains("statusLine")));
    assert_eq!(loaded.effective.model.as_deref(), Some("m"));
}

#[test]
fn config_set_writes_keels_file_for_the_scope() {
    let d = dirs();
    let loaded = load(&options(&d)).unwrap();
    let path = keel_config::file_for(Scope::Local, &d.home, &loaded.project_root).unwrap();
    keel_config::change_file(
        &path,
        "permissions.allow",
        keel_config::Change::Add(json!("Bash(npm test)")),
    )
    .unwrap();
    let loaded = load(&options(&d)).unwrap();
    assert_eq!(loaded.effective.permissions.allow, ["Bash(npm test)"]);
    assert_eq!(loaded.layers[0].scope, Scope::Local);
}

#[test]
fn web_settings_load_with_warnings_for_unknown_keys_and_errors_for_bad_urls() {
    let d = dirs();
    write(
        &d.project.join(".keel/settings.json"),
        r#"{"web": {"fetchModel": "claude-haiku-4-5", "allowPrivateHosts": ["loopback", "wiki.corp"],
                    "searxngUrl": "http://localhost:8888", "braveApiKey": "k", "searxngURL": "x"}}"#,
    );
    let loaded = load(&options(&d)).unwrap();
    let warnings: Vec<String> = loaded.warnings.iter().map(|w| w.to_string()).collect();
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    assert!(
        warnings[0].contains("unknown setting `web.searxngURL`")
            && warnings[0].contains("did you mean `searxngUrl`"),
        "{}",
        warnings[0]
    );
    let web = &loaded.effective.web;
    assert_eq!(web.fetch_model.as_deref(), Some("claude-haiku-4-5"));
    assert_eq!(web.allow_private_hosts, ["loopback", "wiki.corp"]);
    assert_eq!(web.searxng_url.as_deref(), Some("http://localhost:8888"));
    assert_eq!(web.brave_api_key.as_deref(), Some("k"));

    let (_, message) = load_error(r#"{"web": {"searxngUrl": "localhost:8888"}}"#);
    assert!(
        message.contains("web.searxngUrl") && message.contains("not an http(s) URL"),
        "{message}"
    );
}
