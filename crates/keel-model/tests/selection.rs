//! Provider selection as a newcomer meets it: explicit choice first, then the keys in the
//! environment, then a local Ollama, else one message saying what to set. The environment is
//! injected; a mock server plays Ollama and OpenAI-compatible servers.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::complete;
use keel_model::{ProviderKind, ProviderOptions, Selected, SelectedBy, SelectionError, select};
use keel_protocol::Message;
use keel_test_support::{MockModelServer, Script, ScriptedTurn};

fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + Send + Sync + use<> {
    let pairs: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |name| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    }
}

/// An address where nothing listens: the probe for a local Ollama fails at once.
fn dead_address() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("127.0.0.1:{}", listener.local_addr().unwrap().port())
}

async fn pick(
    options: &ProviderOptions,
    pairs: &[(&str, &str)],
) -> Result<Selected, SelectionError> {
    let mut pairs = pairs.to_vec();
    let dead = dead_address();
    if !pairs.iter().any(|(k, _)| *k == "OLLAMA_HOST") {
        pairs.push(("OLLAMA_HOST", &dead));
    }
    select(options, &env(&pairs)).await
}

#[tokio::test]
async fn keys_in_the_environment_pick_anthropic_then_openai_then_openrouter() {
    let none = ProviderOptions::default();
    let both = [
        ("ANTHROPIC_API_KEY", "sk-ant-x"),
        ("OPENAI_API_KEY", "sk-x"),
    ];
    let selected = pick(&none, &both).await.unwrap();
    assert_eq!(selected.kind, ProviderKind::Anthropic);
    assert_eq!(
        selected.selected_by,
        SelectedBy::Environment("ANTHROPIC_API_KEY")
    );
    assert_eq!(selected.api_key_source, "ANTHROPIC_API_KEY");
    assert_eq!(selected.model, "claude-sonnet-4-5");
    assert_eq!(
        (selected.context_window, selected.max_output_tokens),
        (200_000, 64_000)
    );
    assert!(selected.cache, "Anthropic requests ask for prompt caching");
    assert_eq!(selected.retry.max_retries, 10);

    let token = pick(&none, &[("ANTHROPIC_AUTH_TOKEN", "t")]).await.unwrap();
    assert_eq!(token.api_key_source, "ANTHROPIC_AUTH_TOKEN");

    let openai = pick(&none, &[("OPENAI_API_KEY", "sk-x")]).await.unwrap();
    assert_eq!(openai.kind, ProviderKind::OpenAi);
    assert_eq!(openai.selected_by.to_string(), "OPENAI_API_KEY is set");
    assert_eq!(openai.base_url, "https://api.openai.com/v1");
    assert_eq!(openai.model, "gpt-4.1");
    assert!(!openai.cache);

    let routed = pick(&none, &[("OPENROUTER_API_KEY", "sk-or")])
        .await
        .unwrap();
    assert_eq!(routed.kind, ProviderKind::OpenRouter);
    assert_eq!(routed.base_url, "https://openrouter.ai/api/v1");
    assert_eq!(routed.model, "anthropic/claude-sonnet-4.5");

    // A model that clearly belongs to one provider picks it among the keys that are set.
    let gpt = ProviderOptions {
        model: Some("gpt-5".into()),
        ..ProviderOptions::default()
    };
    let selected = pick(&gpt, &both).await.unwrap();
    assert_eq!(selected.kind, ProviderKind::OpenAi);
    assert_eq!(selected.max_output_tokens, 128_000);
}

#[tokio::test]
async fn an_explicit_provider_wins_and_its_missing_key_is_named() {
    let options = ProviderOptions {
        kind: Some(ProviderKind::OpenAi),
        ..ProviderOptions::default()
    };
    let error = pick(&options, &[("ANTHROPIC_API_KEY", "sk-ant-x")])
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "the openai provider needs an API key: set OPENAI_API_KEY (e.g. export OPENAI_API_KEY=...)"
    );
    let selected = pick(
        &options,
        &[
            ("ANTHROPIC_API_KEY", "a"),
            ("OPENAI_API_KEY", "o"),
            ("OPENAI_BASE_URL", "https://gw.example/v1/"),
        ],
    )
    .await
    .unwrap();
    assert_eq!(selected.kind, ProviderKind::OpenAi);
    assert_eq!(selected.selected_by, SelectedBy::Explicit);
    assert_eq!(selected.base_url, "https://gw.example/v1");
    assert_eq!(selected.api_key_source, "OPENAI_API_KEY");

    let options = ProviderOptions {
        kind: Some(ProviderKind::Anthropic),
        ..ProviderOptions::default()
    };
    let error = pick(&options, &[("OPENAI_API_KEY", "o")])
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("ANTHROPIC_API_KEY") && error.contains("ANTHROPIC_AUTH_TOKEN"),
        "{error}"
    );
}

#[tokio::test]
async fn without_keys_a_local_ollama_is_used() {
    let server = MockModelServer::start(Script::new(vec![ScriptedTurn::text("hello from ollama")]))
        .await
        .unwrap();
    let options = ProviderOptions {
        model: Some("qwen2.5-coder:7b".into()),
        thinking_budget: Some(4000),
        ..ProviderOptions::default()
    };
    let selected = pick(&options, &[("OLLAMA_HOST", &server.url())])
        .await
        .unwrap();
    assert_eq!(selected.kind, ProviderKind::Ollama);
    assert_eq!(selected.selected_by, SelectedBy::LocalOllama(server.url()));
    assert_eq!(selected.base_url, format!("{}/v1", server.url()));
    assert_eq!(selected.api_key_source, "none");
    assert_eq!(selected.max_output_tokens, 8_192);
    assert_eq!(selected.thinking, None, "Ollama takes no thinking budget");
    assert_eq!(server.requests()[0].path, "/api/tags", "the probe");

    let reply = complete(
        selected.client.as_ref(),
        &keel_model::ModelRequest::new(&selected.model, vec![Message::user_text("hi")]),
    )
    .await;
    assert_eq!(reply.text(), "hello from ollama");
    assert_eq!(server.requests()[1].path, "/v1/chat/completions");
    assert_eq!(server.requests()[1].body["model"], "qwen2.5-coder:7b");
}

#[tokio::test]
async fn ollama_without_a_tool_capable_model_lists_what_is_installed() {
    let server = MockModelServer::start(Script::default()).await.unwrap();
    // The mock's /api/tags lists one model, "mock-model", whose name promises no tools.
    let error = pick(
        &ProviderOptions::default(),
        &[("OLLAMA_HOST", &server.url())],
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(error.contains("installed: mock-model"), "{error}");
    assert!(error.contains("--model NAME"), "{error}");

    let explicit = ProviderOptions {
        kind: Some(ProviderKind::Ollama),
        base_url: Some(format!("{}/v1", dead_url())),
        ..ProviderOptions::default()
    };
    let error = pick(&explicit, &[]).await.unwrap_err().to_string();
    assert!(
        error.starts_with("Ollama does not answer at http://127.0.0.1:"),
        "{error}"
    );
    assert!(error.contains("ollama serve"), "{error}");
}

fn dead_url() -> String {
    format!("http://{}", dead_address())
}

#[tokio::test]
async fn with_nothing_configured_one_message_says_what_to_set_and_how_to_try_offline() {
    let started = std::time::Instant::now();
    let error = pick(&ProviderOptions::default(), &[]).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the Ollama probe must be quick"
    );
    assert!(matches!(error, SelectionError::NoProvider(_)));
    let text = error.to_string();
    for needle in [
        "export ANTHROPIC_API_KEY=",
        "export OPENAI_API_KEY=",
        "export OPENROUTER_API_KEY=",
        "ollama serve",
        "--provider openai-compatible --base-url URL --model NAME",
        "keel --provider replay --replay examples/quickstart.jsonl -p \"the add test fails; fix it\"",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
}

#[tokio::test]
async fn an_openai_compatible_server_needs_a_url_and_lends_its_only_model() {
    let options = ProviderOptions {
        kind: Some(ProviderKind::OpenAiCompatible),
        ..ProviderOptions::default()
    };
    let error = pick(&options, &[]).await.unwrap_err().to_string();
    assert!(
        error.starts_with("--base-url: the openai-compatible provider needs the server's base URL"),
        "{error}"
    );

    let server = MockModelServer::start(Script::new(vec![ScriptedTurn::text("vllm says hi")]))
        .await
        .unwrap();
    let options = ProviderOptions {
        kind: Some(ProviderKind::OpenAiCompatible),
        base_url: Some(format!("{}/v1/", server.url())),
        api_key_env: Some("VLLM_KEY".into()),
        ..ProviderOptions::default()
    };
    let error = pick(&options, &[]).await.unwrap_err().to_string();
    assert!(
        error.contains("set VLLM_KEY"),
        "a named key variable must be set: {error}"
    );
    let selected = pick(&options, &[("VLLM_KEY", "secret")]).await.unwrap();
    assert_eq!(
        selected.model, "mock-model",
        "the one model GET /v1/models lists"
    );
    assert_eq!(selected.api_key_source, "VLLM_KEY");
    let request = keel_model::ModelRequest::new(&selected.model, vec![Message::user_text("hi")]);
    assert_eq!(
        complete(selected.client.as_ref(), &request).await.text(),
        "vllm says hi"
    );
    let sent = server.requests();
    assert_eq!(sent[0].path, "/v1/models");
    assert_eq!(sent[1].headers["authorization"], "Bearer secret");

    let bad = ProviderOptions {
        base_url: Some("localhost:8000".into()),
        ..options
    };
    let error = pick(&bad, &[("VLLM_KEY", "s")])
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.starts_with("--base-url: \"localhost:8000\" is not an http(s) URL"),
        "{error}"
    );
}

#[tokio::test]
async fn replay_needs_a_file_and_reports_the_recorded_model() {
    let options = ProviderOptions {
        kind: Some(ProviderKind::Replay),
        ..ProviderOptions::default()
    };
    let error = pick(&options, &[]).await.unwrap_err().to_string();
    assert!(
        error.starts_with("--replay: the replay provider needs a recorded session"),
        "{error}"
    );
    let quickstart =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/quickstart.jsonl");
    let options = ProviderOptions {
        kind: Some(ProviderKind::Replay),
        replay_file: Some(quickstart),
        ..ProviderOptions::default()
    };
    let selected = pick(&options, &[("ANTHROPIC_API_KEY", "unused")])
        .await
        .unwrap();
    assert_eq!(selected.kind, ProviderKind::Replay);
    assert_eq!(selected.model, "mock-model");
    assert_eq!(selected.api_key_source, "none");
    let missing = ProviderOptions {
        replay_file: Some("no/such/file.jsonl".into()),
        ..options
    };
    let error = pick(&missing, &[]).await.unwrap_err().to_string();
    assert!(
        error.starts_with("cannot read the replay file no/such/file.jsonl"),
        "{error}"
    );
}

#[tokio::test]
async fn settings_that_cannot_work_are_named() {
    let error = pick(
        &ProviderOptions::default(),
        &[("ANTHROPIC_API_KEY", "k"), ("API_TIMEOUT_MS", "soon")],
    )
    .await
    .unwrap_err()
    .to_string();
    assert_eq!(
        error,
        "API_TIMEOUT_MS: \"soon\" is not a number of milliseconds"
    );
    let error = pick(&ProviderOptions::default(), &[("OLLAMA_HOST", "ftp://x")])
        .await
        .unwrap_err()
        .to_string();
    assert!(error.starts_with("OLLAMA_HOST:"), "{error}");
}
