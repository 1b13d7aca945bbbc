//! keel's MCP client against third-party servers: `@modelcontextprotocol/server-everything`
//! (stdio, streamable HTTP, legacy SSE) and `mcp-server-time` (PyPI), plus crash/restart,
//! broken and hanging servers, and list_changed with a server on the Python SDK.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use keel_mcp::{McpManager, PromptArgs, ServerStatus};
use keel_tools::{Tool, ToolError, ToolRegistry};
use serde_json::{Value, json};

fn find(manager: &McpManager, name: &str) -> Arc<dyn Tool> {
    let tools = manager.tools();
    tools
        .iter()
        .find(|tool| tool.name() == name)
        .cloned()
        .unwrap_or_else(|| {
            panic!(
                "no tool {name}; have {:?}",
                tools
                    .iter()
                    .map(|t| t.name().to_string())
                    .collect::<Vec<_>>()
            )
        })
}

/// What every transport must do with server-everything: tools, a call through the registry
/// (as the engine makes it), an image result, structured content, a resource and a prompt.
async fn exercise_everything(manager: &McpManager, dir: &std::path::Path) {
    assert_eq!(
        manager.statuses(),
        [("everything".to_string(), ServerStatus::Connected)]
    );
    let ctx = tool_ctx(dir);

    // Tools go through a registry exactly as the engine offers them to the model.
    let mut registry = ToolRegistry::new();
    for tool in manager.tools() {
        registry.register(tool).unwrap();
    }
    let names = registry.names();
    for expected in [
        "mcp__everything__echo",
        "mcp__everything__get-sum",
        "mcp__everything__get-tiny-image",
        "ListMcpResourcesTool",
        "ReadMcpResourceTool",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} missing from {names:?}"
        );
    }
    let echo = find(manager, "mcp__everything__echo");
    assert_eq!(echo.description(), "Echoes back the input string");
    assert_eq!(echo.input_schema()["required"], json!(["message"]));
    assert!(echo.is_read_only(), "echo carries readOnlyHint: true");
    assert!(!find(manager, "mcp__everything__toggle-simulated-logging").is_read_only());

    let result = registry
        .call(
            "mcp__everything__echo",
            json!({"message": "hello keel"}),
            &ctx,
        )
        .await;
    assert!(!result.is_error, "{}", result.content);
    assert_eq!(result.content, "Echo: hello keel");

    let result = registry
        .call("mcp__everything__get-sum", json!({"a": 2, "b": 40}), &ctx)
        .await;
    assert!(!result.is_error, "{}", result.content);
    assert!(result.content.contains("42"), "{}", result.content);

    // The registry's schema check applies to MCP tools too.
    let result = registry
        .call("mcp__everything__get-sum", json!({"a": 2}), &ctx)
        .await;
    assert!(result.is_error);
    assert!(
        result.content.contains("`b` is missing"),
        "{}",
        result.content
    );

    let result = registry
        .call("mcp__everything__get-tiny-image", json!({}), &ctx)
        .await;
    assert!(!result.is_error, "{}", result.content);
    assert_eq!(result.images.len(), 1, "{result:?}");
    assert_eq!(result.images[0]["type"], "base64");
    assert_eq!(result.images[0]["media_type"], "image/png");
    assert!(result.images[0]["data"].as_str().unwrap().len() > 100);

    let output = find(manager, "mcp__everything__get-structured-content")
        .call(json!({"location": "Chicago"}), &ctx)
        .await
        .unwrap();
    let structured = output.structured.expect("structuredContent kept");
    assert!(structured["temperature"].is_number(), "{structured}");

    // Resources through the model's tools.
    let listed = registry.call("ListMcpResourcesTool", json!({}), &ctx).await;
    assert!(!listed.is_error, "{}", listed.content);
    let items: Value = serde_json::from_str(&listed.content).unwrap();
    let uri = "demo://resource/static/document/architecture.md";
    let item = items
        .as_array()
        .unwrap()
        .iter()
        .find(|item| item["uri"] == uri)
        .unwrap_or_else(|| panic!("{uri} not listed: {items}"));
    assert_eq!(item["server"], "everything");
    assert_eq!(item["mimeType"], "text/markdown");
    let read = registry
        .call(
            "ReadMcpResourceTool",
            json!({"server": "everything", "uri": uri}),
            &ctx,
        )
        .await;
    assert!(!read.is_error, "{}", read.content);
    let contents: Value = serde_json::from_str(&read.content).unwrap();
    assert_eq!(contents["contents"][0]["uri"], uri);
    assert!(
        contents["contents"][0]["text"].as_str().unwrap().len() > 100,
        "{contents}"
    );
    // A blob of a textual type is decoded for the model.
    let blob = registry
        .call(
            "ReadMcpResourceTool",
            json!({"server": "everything", "uri": "demo://resource/dynamic/blob/7"}),
            &ctx,
        )
        .await;
    assert!(!blob.is_error, "{}", blob.content);
    assert!(
        blob.content.contains("Resource 7: This is a base64 blob"),
        "{}",
        blob.content
    );
    let bad = registry
        .call(
            "ReadMcpResourceTool",
            json!({"server": "nope", "uri": uri}),
            &ctx,
        )
        .await;
    assert!(bad.is_error);
    assert!(
        bad.content.contains("no MCP server named `nope`"),
        "{}",
        bad.content
    );

    // Prompts, as slash commands.
    let prompts = manager.list_prompts().await;
    let args_prompt = prompts
        .iter()
        .find(|p| p.name == "args-prompt")
        .expect("args-prompt listed");
    assert_eq!(args_prompt.command, "mcp__everything__args-prompt");
    assert_eq!(args_prompt.arguments[0].name, "city");
    assert!(args_prompt.arguments[0].required);
    assert!(prompts.iter().any(|p| p.name == "simple-prompt"));
    let simple = manager
        .get_prompt(
            "everything",
            "simple-prompt",
            PromptArgs::Positional(vec![]),
        )
        .await
        .unwrap();
    assert_eq!(simple[0].role, "user");
    assert!(!simple[0].text.is_empty());
    let found = manager
        .find_prompt_command("mcp__everything__args-prompt")
        .await
        .unwrap();
    let messages = manager
        .get_prompt(
            &found.server,
            &found.name,
            PromptArgs::from_command_line("Paris \"Ile de France\""),
        )
        .await
        .unwrap();
    let text: String = messages.iter().map(|m| m.text.clone()).collect();
    assert!(text.contains("Paris"), "{text}");
    assert!(text.contains("Ile de France"), "{text}");
    let error = manager
        .get_prompt("everything", "args-prompt", PromptArgs::Positional(vec![]))
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("needs the argument `city`"),
        "{error}"
    );

    // keel declares roots and answers `roots/list` with the project directory.
    let roots = find(manager, "mcp__everything__get-roots-list")
        .call(json!({}), &ctx)
        .await
        .unwrap();
    let root_uri = format!("file://{}", dir.display());
    assert!(
        roots.content.contains(&root_uri),
        "{root_uri} not in {}",
        roots.content
    );

    // The server's instructions are there for the system prompt.
    let instructions = manager.instructions();
    assert_eq!(instructions.len(), 1);
    assert_eq!(instructions[0].0, "everything");
    assert!(
        instructions[0].1.contains("Everything Server"),
        "{}",
        instructions[0].1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_everything_over_stdio() {
    let dir = tempfile::tempdir().unwrap();
    let manager = McpManager::start(
        vec![server("everything", everything_stdio())],
        options(dir.path()),
    )
    .await;
    exercise_everything(&manager, dir.path()).await;
    let pid = manager.pid("everything").expect("a stdio server has a pid");
    manager.shutdown().await;
    wait_for(
        "server-everything to exit after shutdown",
        Duration::from_secs(10),
        || {
            !std::path::Path::new(&format!("/proc/{pid}")).exists()
                || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .is_ok_and(|stat| stat.contains(") Z "))
        },
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_everything_over_streamable_http() {
    let dir = tempfile::tempdir().unwrap();
    let (_process, port) = everything_http("streamableHttp");
    let manager = McpManager::start(
        vec![server(
            "everything",
            json!({"type": "http", "url": format!("http://127.0.0.1:{port}/mcp")}),
        )],
        options(dir.path()),
    )
    .await;
    exercise_everything(&manager, dir.path()).await;
    manager.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_everything_over_legacy_sse() {
    let dir = tempfile::tempdir().unwrap();
    let (_process, port) = everything_http("sse");
    let manager = McpManager::start(
        vec![server(
            "everything",
            json!({"type": "sse", "url": format!("http://127.0.0.1:{port}/sse")}),
        )],
        options(dir.path()),
    )
    .await;
    assert_eq!(
        manager.statuses(),
        [("everything".to_string(), ServerStatus::Connected)]
    );
    let output = find(&manager, "mcp__everything__echo")
        .call(json!({"message": "over sse"}), &tool_ctx(dir.path()))
        .await
        .unwrap();
    assert_eq!(output.content, "Echo: over sse");
    manager.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_server_time_from_pypi() {
    let dir = tempfile::tempdir().unwrap();
    let manager = McpManager::start(
        vec![server("time", json!({"command": time_server()}))],
        options(dir.path()),
    )
    .await;
    assert_eq!(
        manager.statuses(),
        [("time".to_string(), ServerStatus::Connected)]
    );
    let output = find(&manager, "mcp__time__get_current_time")
        .call(json!({"timezone": "Europe/Paris"}), &tool_ctx(dir.path()))
        .await
        .unwrap();
    let value: Value = serde_json::from_str(&output.content).unwrap_or_else(|_| {
        output
            .structured
            .clone()
            .unwrap_or_else(|| panic!("no JSON in {output:?}"))
    });
    assert_eq!(value["timezone"], "Europe/Paris", "{value}");
    assert!(
        value["datetime"].as_str().unwrap().starts_with("20"),
        "{value}"
    );
    // A server error comes back as an error result the model can read.
    let error = find(&manager, "mcp__time__get_current_time")
        .call(json!({"timezone": "Not/AZone"}), &tool_ctx(dir.path()))
        .await
        .unwrap_err();
    assert!(
        error.to_string().to_lowercase().contains("timezone"),
        "{error}"
    );
    manager.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_filesystem_gets_the_project_as_its_root_and_its_missing_lists_are_tolerated() {
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("project");
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir_all(&project).unwrap();
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::fs::write(project.join("in-project.txt"), "project data").unwrap();
    // Configured with another folder: a server that asks for roots replaces its folders with
    // keel's answer, the project directory.
    let manager = McpManager::start(
        vec![server(
            "fs",
            json!({"command": node(), "args": [filesystem_js(), elsewhere]}),
        )],
        options(&project),
    )
    .await;
    assert_eq!(manager.statuses()[0].1, ServerStatus::Connected);
    let ctx = tool_ctx(&project);
    let read = find(&manager, "mcp__fs__read_text_file");
    let path = project.join("in-project.txt");
    // The server applies the roots answer asynchronously after initialization.
    let deadline = Instant::now() + Duration::from_secs(10);
    let output = loop {
        match read.call(json!({"path": path}), &ctx).await {
            Ok(output) => break output,
            Err(error) => assert!(
                Instant::now() < deadline,
                "the project never became the server's root: {error}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(output.content, "project data");
    // ...and its configured folder is no longer allowed.
    let outside = read
        .call(json!({"path": elsewhere.join("x.txt")}), &ctx)
        .await
        .unwrap_err();
    assert!(outside.to_string().contains("denied"), "{outside}");
    // No resources or prompts: "method not found" is tolerated, not an error.
    assert_eq!(manager.list_resources(Some("fs")).await.unwrap(), []);
    assert!(manager.list_prompts().await.is_empty());
    assert!(
        manager
            .tools()
            .iter()
            .all(|t| t.name() != "ListMcpResourcesTool"),
        "no server has resources, so the resource tools are not offered"
    );
    manager.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_gives_a_clean_error_and_restarts_on_next_use() {
    let dir = tempfile::tempdir().unwrap();
    let manager = McpManager::start(
        vec![server("everything", everything_stdio())],
        options(dir.path()),
    )
    .await;
    let ctx = tool_ctx(dir.path());
    let echo = find(&manager, "mcp__everything__echo");
    assert_eq!(
        echo.call(json!({"message": "one"}), &ctx)
            .await
            .unwrap()
            .content,
        "Echo: one"
    );
    let pid = manager.pid("everything").unwrap();
    let killed = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());

    // Reported by the status without any call...
    wait_for_async("the crash to show in the status", Duration::from_secs(10), || {
        let manager = manager.clone();
        async move {
            matches!(&manager.statuses()[0].1, ServerStatus::Failed(reason) if reason.contains("stopped"))
        }
    })
    .await;
    // ...the tools stay offered, so the model can use them again...
    assert!(
        manager
            .tools()
            .iter()
            .any(|t| t.name() == "mcp__everything__echo")
    );
    // ...the call that meets the dead server fails cleanly...
    let error = echo
        .call(json!({"message": "two"}), &ctx)
        .await
        .unwrap_err();
    let text = error.to_string();
    assert!(matches!(error, ToolError::Failed(_)), "{text}");
    assert!(
        text.contains("MCP server `everything` stopped")
            && text.contains("it will be restarted on the next call"),
        "{text}"
    );
    // ...and the next one starts it again.
    assert_eq!(
        echo.call(json!({"message": "three"}), &ctx)
            .await
            .unwrap()
            .content,
        "Echo: three"
    );
    assert_eq!(manager.statuses()[0].1, ServerStatus::Connected);
    assert_ne!(manager.pid("everything"), Some(pid), "a new process runs");
    manager.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_calls_time_out_and_interrupted_calls_stop_without_breaking_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = options(dir.path());
    options.tool_timeout = Duration::from_secs(1);
    let manager = McpManager::start(vec![server("everything", everything_stdio())], options).await;
    let slow = find(&manager, "mcp__everything__trigger-long-running-operation");
    let started = Instant::now();
    let error = slow
        .call(json!({"duration": 5, "steps": 5}), &tool_ctx(dir.path()))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert!(error.contains("did not answer within 1 s"), "{error}");
    assert!(error.contains("MCP_TOOL_TIMEOUT"), "{error}");

    let ctx = tool_ctx(dir.path());
    let cancel = ctx.cancel.clone();
    let interrupt = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        cancel.cancel();
    };
    let (result, ()) = tokio::join!(
        slow.call(json!({"duration": 5, "steps": 5}), &ctx),
        interrupt
    );
    assert!(
        matches!(result, Err(ToolError::Interrupted { .. })),
        "{result:?}"
    );

    // The server is still there for the next call.
    let echo = find(&manager, "mcp__everything__echo")
        .call(json!({"message": "still here"}), &tool_ctx(dir.path()))
        .await
        .unwrap();
    assert_eq!(echo.content, "Echo: still here");
    assert_eq!(manager.statuses()[0].1, ServerStatus::Connected);
    manager.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_and_hanging_servers_fail_within_the_timeout_while_others_connect() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = options(dir.path());
    options.start_timeout = Duration::from_secs(4);
    let configs = vec![
        server(
            "missing",
            json!({"command": "/nonexistent/keel-mcp-no-such-server"}),
        ),
        // Reads stdin forever and never answers `initialize`.
        server("hangs", json!({"command": "sleep", "args": ["600"]})),
        server(
            "exits",
            json!({"command": "sh", "args": ["-c", "echo boom: no config >&2; exit 3"]}),
        ),
        server("unset", json!({"command": "${KEEL_MCP_TEST_SURELY_UNSET}"})),
        server("everything", everything_stdio()),
    ];
    let started = Instant::now();
    let manager = McpManager::start(configs, options).await;
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_secs(9),
        "starting took {elapsed:?}: servers must start concurrently"
    );
    let statuses: std::collections::BTreeMap<String, ServerStatus> =
        manager.statuses().into_iter().collect();
    let failed = |name: &str| match &statuses[name] {
        ServerStatus::Failed(reason) => reason.clone(),
        other => panic!("{name} should have failed, is {other:?}"),
    };
    assert!(
        failed("missing").contains("command not found"),
        "{}",
        failed("missing")
    );
    assert!(
        failed("hangs").contains("within 4 s"),
        "{}",
        failed("hangs")
    );
    assert!(
        failed("hangs").contains("MCP_TIMEOUT"),
        "{}",
        failed("hangs")
    );
    assert!(
        failed("exits").contains("boom: no config"),
        "{}",
        failed("exits")
    );
    assert!(
        failed("unset").contains("environment variable `KEEL_MCP_TEST_SURELY_UNSET`"),
        "{}",
        failed("unset")
    );
    assert_eq!(statuses["everything"], ServerStatus::Connected);
    assert!(
        manager
            .tools()
            .iter()
            .all(|t| !t.name().starts_with("mcp__hangs"))
    );
    manager.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn variables_with_and_without_defaults_expand_in_the_definition() {
    let dir = tempfile::tempdir().unwrap();
    let config = server(
        "everything",
        json!({
            "command": format!("${{KEEL_MCP_TEST_UNSET_NODE:-{}}}", node().display()),
            "args": [everything_js(), "${KEEL_MCP_TEST_MODE}"],
            "env": {"KEEL_GREETING": "${KEEL_MCP_TEST_UNSET_GREETING:-hello from keel}"}
        }),
    );
    let mut options = options(dir.path());
    // The session's variables: only KEEL_MCP_TEST_MODE is set.
    options.env = Arc::new(|name| (name == "KEEL_MCP_TEST_MODE").then(|| "stdio".to_string()));
    let manager = McpManager::start(vec![config], options).await;
    assert_eq!(manager.statuses()[0].1, ServerStatus::Connected);
    // The expanded env reached the server process.
    let output = find(&manager, "mcp__everything__get-env")
        .call(json!({}), &tool_ctx(dir.path()))
        .await
        .unwrap();
    assert!(
        output.content.contains("hello from keel"),
        "{}",
        output.content
    );
    manager.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_changed_refreshes_the_tool_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let manager = McpManager::start(
        vec![server(
            "grower",
            json!({"command": python(), "args": [fixture("grower.py")]}),
        )],
        options(dir.path()),
    )
    .await;
    assert_eq!(manager.statuses()[0].1, ServerStatus::Connected);
    let names = || {
        manager
            .tools()
            .iter()
            .map(|t| t.name().to_string())
            .filter(|name| name.starts_with("mcp__"))
            .collect::<Vec<_>>()
    };
    assert_eq!(names(), ["mcp__grower__grow"]);
    let output = find(&manager, "mcp__grower__grow")
        .call(json!({}), &tool_ctx(dir.path()))
        .await
        .unwrap();
    assert!(output.content.contains("added"), "{}", output.content);
    wait_for_async("the new tool to appear", Duration::from_secs(10), || {
        let has = names().iter().any(|n| n == "mcp__grower__grown");
        async move { has }
    })
    .await;
    let output = find(&manager, "mcp__grower__grown")
        .call(json!({}), &tool_ctx(dir.path()))
        .await
        .unwrap();
    assert_eq!(output.content, "I was added at run time");
    manager.shutdown().await;
}
