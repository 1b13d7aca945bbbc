//! Which provider keel talks to, and how it was chosen: presets that only set defaults, and a
//! selection order a newcomer can predict — an explicit choice (flag, then settings), else the
//! credentials in the environment, else a local Ollama that answers, else one message saying
//! exactly what to set (and how to try keel offline).

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::openai::{OpenAiClient, OpenAiConfig, ReasoningParam, TokenLimitParam};
use crate::replay::ReplayClient;
use crate::retry::RetryPolicy;
use crate::{AnthropicClient, AnthropicConfig, ConfigError, ModelClient, Timeouts, models};

/// A model provider keel can talk to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProviderKind {
    /// Anthropic's Messages API (`ANTHROPIC_API_KEY`).
    Anthropic,
    /// OpenAI's chat completions (`OPENAI_API_KEY`).
    OpenAi,
    /// A local Ollama server (no key).
    Ollama,
    /// OpenRouter (`OPENROUTER_API_KEY`).
    OpenRouter,
    /// Any other OpenAI-compatible server: vLLM, llama.cpp, LM Studio, a gateway.
    OpenAiCompatible,
    /// Recorded responses from a file; no network.
    Replay,
}

impl ProviderKind {
    /// Every provider, in the order help text lists them.
    pub const ALL: [ProviderKind; 6] = [
        ProviderKind::Anthropic,
        ProviderKind::OpenAi,
        ProviderKind::Ollama,
        ProviderKind::OpenRouter,
        ProviderKind::OpenAiCompatible,
        ProviderKind::Replay,
    ];

    /// The name used by `--provider` and settings.
    pub fn name(self) -> &'static str {
        match self {
            Self::Anthropic => "anthropic",
            Self::OpenAi => "openai",
            Self::Ollama => "ollama",
            Self::OpenRouter => "openrouter",
            Self::OpenAiCompatible => "openai-compatible",
            Self::Replay => "replay",
        }
    }
}

impl std::fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A provider name keel does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown provider {given:?}: use one of anthropic, openai, ollama, openrouter, openai-compatible, replay"
)]
pub struct UnknownProvider {
    /// What was given.
    pub given: String,
}

impl FromStr for ProviderKind {
    type Err = UnknownProvider;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim().to_ascii_lowercase().replace('_', "-");
        Self::ALL
            .into_iter()
            .find(|kind| kind.name() == wanted)
            .ok_or_else(|| UnknownProvider {
                given: s.to_string(),
            })
    }
}

impl<'de> Deserialize<'de> for ProviderKind {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

/// What a preset fills in when the user does not say otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Preset {
    /// The provider.
    pub kind: ProviderKind,
    /// The base URL used when none is configured (`None`: the user must give one).
    pub base_url: Option<&'static str>,
    /// The environment variable that overrides the base URL.
    pub base_url_env: Option<&'static str>,
    /// The environment variable holding the key (`None`: no key by default).
    pub key_env: Option<&'static str>,
    /// Whether the provider refuses to work without a key.
    pub key_required: bool,
    /// The model used when none is configured (`None`: discovered from the server, or required).
    pub default_model: Option<&'static str>,
    /// Which request field carries the output limit.
    pub token_limit: TokenLimitParam,
}

/// Ollama's address when `OLLAMA_HOST` is not set.
pub const OLLAMA_DEFAULT_HOST: &str = "http://localhost:11434";

/// The replay file shipped with keel, named in the no-provider message.
pub const QUICKSTART_REPLAY: &str = "examples/quickstart.jsonl";

/// The preset of `kind`.
pub fn preset(kind: ProviderKind) -> Preset {
    let base = Preset {
        kind,
        base_url: None,
        base_url_env: None,
        key_env: None,
        key_required: false,
        default_model: None,
        token_limit: TokenLimitParam::MaxTokens,
    };
    match kind {
        ProviderKind::Anthropic => Preset {
            base_url: Some("https://api.anthropic.com"),
            base_url_env: Some("ANTHROPIC_BASE_URL"),
            key_env: Some("ANTHROPIC_API_KEY"),
            key_required: true,
            default_model: Some(models::DEFAULT_MODEL),
            ..base
        },
        ProviderKind::OpenAi => Preset {
            base_url: Some("https://api.openai.com/v1"),
            base_url_env: Some("OPENAI_BASE_URL"),
            key_env: Some("OPENAI_API_KEY"),
            key_required: true,
            default_model: Some(models::DEFAULT_OPENAI_MODEL),
            // OpenAI's reasoning models reject `max_tokens`; all its models take this one.
            token_limit: TokenLimitParam::MaxCompletionTokens,
            ..base
        },
        ProviderKind::Ollama => Preset {
            base_url: Some("http://localhost:11434/v1"),
            base_url_env: Some("OLLAMA_HOST"),
            ..base
        },
        ProviderKind::OpenRouter => Preset {
            base_url: Some("https://openrouter.ai/api/v1"),
            key_env: Some("OPENROUTER_API_KEY"),
            key_required: true,
            default_model: Some(models::DEFAULT_OPENROUTER_MODEL),
            ..base
        },
        ProviderKind::OpenAiCompatible | ProviderKind::Replay => base,
    }
}

/// What the user configured about the provider, already merged by the caller in the order
/// flag > settings (the environment is read by [`select`] itself). Everything is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProviderOptions {
    /// The provider asked for (`--provider`, settings `provider`).
    pub kind: Option<ProviderKind>,
    /// The API's base URL, overriding the preset's and its environment variable.
    pub base_url: Option<String>,
    /// The environment variable holding the key, overriding the preset's (required to send a
    /// key to `openai-compatible` and `ollama`).
    pub api_key_env: Option<String>,
    /// The model (`--model`, settings `model`).
    pub model: Option<String>,
    /// The replay file (`--replay`), for the `replay` provider.
    pub replay_file: Option<PathBuf>,
    /// Request timeouts; `None` for the defaults (first-byte and idle from `API_TIMEOUT_MS`).
    pub timeouts: Option<Timeouts>,
    /// How often a failed request is retried; `None` for [`crate::retry::DEFAULT_MAX_RETRIES`].
    pub max_retries: Option<u32>,
    /// A thinking budget in tokens; `None` for no extended thinking.
    pub thinking_budget: Option<u32>,
    /// `Some(false)` sends requests with tools without streaming from the start (servers that
    /// cannot stream tool calls; keel also detects them by itself).
    pub stream_tool_calls: Option<bool>,
    /// Headers added to every request (on top of `ANTHROPIC_CUSTOM_HEADERS` for Anthropic).
    pub extra_headers: Vec<(String, String)>,
    /// How long to wait for a local Ollama to answer during selection; `None` for 300 ms.
    pub ollama_probe_timeout: Option<Duration>,
}

/// Why a provider was picked, for the user to see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SelectedBy {
    /// `--provider` or the `provider` setting.
    Explicit,
    /// This environment variable held a key.
    Environment(&'static str),
    /// No key was set, and Ollama answered at this address.
    LocalOllama(String),
}

impl std::fmt::Display for SelectedBy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Explicit => f.write_str("chosen with --provider or the provider setting"),
            Self::Environment(var) => write!(f, "{var} is set"),
            Self::LocalOllama(url) => write!(f, "no API key is set and Ollama answered at {url}"),
        }
    }
}

/// The provider keel will use, ready to send requests, with what the engine needs to know.
#[derive(Clone)]
pub struct Selected {
    /// The client to send requests through.
    pub client: Arc<dyn ModelClient>,
    /// The provider.
    pub kind: ProviderKind,
    /// Why it was picked.
    pub selected_by: SelectedBy,
    /// The model to ask for.
    pub model: String,
    /// Where requests go (the replay file for `replay`).
    pub base_url: String,
    /// Where the key came from, for stream-json's `init` line (`apiKeySource`): the variable's
    /// name, or `none`.
    pub api_key_source: String,
    /// The model's context window in tokens.
    pub context_window: u64,
    /// The `max_tokens` to request.
    pub max_output_tokens: u32,
    /// When to retry failed requests.
    pub retry: RetryPolicy,
    /// The thinking budget to put in each [`crate::ModelRequest`] (`None`: no thinking).
    pub thinking: Option<u32>,
    /// Whether to ask for prompt caching in each [`crate::ModelRequest`].
    pub cache: bool,
}

impl std::fmt::Debug for Selected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Selected")
            .field("kind", &self.kind)
            .field("selected_by", &self.selected_by)
            .field("model", &self.model)
            .field("base_url", &self.base_url)
            .field("api_key_source", &self.api_key_source)
            .field("context_window", &self.context_window)
            .field("max_output_tokens", &self.max_output_tokens)
            .field("retry", &self.retry)
            .field("thinking", &self.thinking)
            .field("cache", &self.cache)
            .finish_non_exhaustive()
    }
}

/// Why no provider could be set up. Each message names what to set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectionError {
    /// Nothing is configured and no local Ollama answered.
    #[error("{0}")]
    NoProvider(String),
    /// The chosen provider needs a key that is not set.
    #[error(
        "the {provider} provider needs an API key: set {variable} (e.g. export {variable}=...){extra}"
    )]
    MissingKey {
        /// The provider.
        provider: ProviderKind,
        /// The variable to set.
        variable: String,
        /// More advice, starting with its own punctuation (may be empty).
        extra: String,
    },
    /// An option or environment variable has a value keel cannot use, or one is missing.
    #[error("{setting}: {problem}")]
    Invalid {
        /// The flag, setting or variable at fault.
        setting: String,
        /// What is wrong and how to fix it.
        problem: String,
    },
    /// Ollama was asked for but does not answer.
    #[error(
        "Ollama does not answer at {url} ({reason}); start it with `ollama serve`, or set OLLAMA_HOST to where it runs"
    )]
    OllamaUnreachable {
        /// Where keel looked.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The server has no model keel can pick by itself.
    #[error("{0}")]
    NoModel(String),
    /// The replay file cannot be used.
    #[error("{0}")]
    Replay(String),
    /// The HTTP client cannot be set up.
    #[error("{0}")]
    Client(String),
}

/// An environment lookup: `std::env::var(name).ok()` in the binary, a map in tests.
pub type EnvLookup<'a> = &'a (dyn Fn(&str) -> Option<String> + Send + Sync);

/// Picks and sets up the provider: `options.kind` if given; else the first of
/// `ANTHROPIC_API_KEY`/`ANTHROPIC_AUTH_TOKEN` (anthropic), `OPENAI_API_KEY` (openai) and
/// `OPENROUTER_API_KEY` (openrouter) that is set — a `--model` that clearly belongs to one of
/// them picks that one; else a local Ollama that answers within the probe timeout; else
/// [`SelectionError::NoProvider`] listing what to set.
pub async fn select(
    options: &ProviderOptions,
    env: EnvLookup<'_>,
) -> Result<Selected, SelectionError> {
    let value = |name: &str| env(name).filter(|v| !v.trim().is_empty());
    let (kind, selected_by, probed) = match options.kind {
        Some(kind) => (kind, SelectedBy::Explicit, None),
        None => {
            let anthropic = value("ANTHROPIC_API_KEY")
                .map(|_| "ANTHROPIC_API_KEY")
                .or_else(|| value("ANTHROPIC_AUTH_TOKEN").map(|_| "ANTHROPIC_AUTH_TOKEN"));
            let openai = value("OPENAI_API_KEY").map(|_| "OPENAI_API_KEY");
            let openrouter = value("OPENROUTER_API_KEY").map(|_| "OPENROUTER_API_KEY");
            let candidates = [
                (ProviderKind::Anthropic, anthropic),
                (ProviderKind::OpenAi, openai),
                (ProviderKind::OpenRouter, openrouter),
            ];
            let family = options.model.as_deref().and_then(model_family);
            let found = candidates
                .iter()
                .find(|(kind, var)| var.is_some() && Some(*kind) == family)
                .or_else(|| candidates.iter().find(|(_, var)| var.is_some()));
            match found {
                Some((kind, Some(var))) => (*kind, SelectedBy::Environment(var), None),
                _ => {
                    let root = ollama_root(options, env)?;
                    let timeout = options
                        .ollama_probe_timeout
                        .unwrap_or(Duration::from_millis(300));
                    match ollama_models(&root, timeout).await {
                        Ok(installed) => (
                            ProviderKind::Ollama,
                            SelectedBy::LocalOllama(root.clone()),
                            Some(installed),
                        ),
                        Err(_) => return Err(no_provider(&root)),
                    }
                }
            }
        }
    };
    build(kind, selected_by, probed, options, env).await
}

/// The provider a model name clearly belongs to, to prefer it when several keys are set.
fn model_family(model: &str) -> Option<ProviderKind> {
    let m = model.to_ascii_lowercase();
    if m.contains('/') {
        Some(ProviderKind::OpenRouter)
    } else if m.starts_with("claude") {
        Some(ProviderKind::Anthropic)
    } else if m.starts_with("gpt-")
        || m.starts_with("chatgpt")
        || ["o1", "o3", "o4"]
            .iter()
            .any(|p| m == *p || m.starts_with(&format!("{p}-")))
    {
        Some(ProviderKind::OpenAi)
    } else {
        None
    }
}

fn no_provider(ollama: &str) -> SelectionError {
    SelectionError::NoProvider(format!(
        "no model provider is configured. Set one of these and run keel again:\n\
         \x20 export ANTHROPIC_API_KEY=sk-ant-...    Anthropic (Claude)\n\
         \x20 export OPENAI_API_KEY=sk-...           OpenAI\n\
         \x20 export OPENROUTER_API_KEY=sk-or-...    OpenRouter\n\
         \x20 or start Ollama (`ollama serve`; none answered at {ollama}; OLLAMA_HOST sets where)\n\
         \x20 or use any OpenAI-compatible server: --provider openai-compatible --base-url URL --model NAME\n\
         No key? Watch keel work offline from a recorded session:\n\
         \x20 keel --provider replay --replay {QUICKSTART_REPLAY} -p \"the add test fails; fix it\""
    ))
}

async fn build(
    kind: ProviderKind,
    selected_by: SelectedBy,
    probed: Option<Vec<String>>,
    options: &ProviderOptions,
    env: EnvLookup<'_>,
) -> Result<Selected, SelectionError> {
    let value = |name: &str| env(name).filter(|v| !v.trim().is_empty());
    let timeouts = match options.timeouts {
        Some(timeouts) => timeouts,
        None => env_timeouts(env)?,
    };
    let retry = options
        .max_retries
        .map_or_else(RetryPolicy::default, RetryPolicy::with_max_retries);
    let preset = preset(kind);
    let client_error = |e: crate::ModelError| SelectionError::Client(e.to_string());

    if kind == ProviderKind::Replay {
        let Some(path) = &options.replay_file else {
            return Err(SelectionError::Invalid {
                setting: "--replay".into(),
                problem: format!(
                    "the replay provider needs a recorded session: pass --replay FILE (keel \
                     ships {QUICKSTART_REPLAY}; record your own with --record FILE)"
                ),
            });
        };
        let client = ReplayClient::open(path)
            .await
            .map_err(|e| SelectionError::Replay(e.to_string()))?;
        let model = options
            .model
            .clone()
            .or_else(|| client.model().map(str::to_string))
            .unwrap_or_else(|| "replay".to_string());
        return Ok(Selected {
            client: Arc::new(client),
            kind,
            selected_by,
            context_window: models::context_window(&model),
            max_output_tokens: models::default_max_tokens(&model),
            model,
            base_url: path.display().to_string(),
            api_key_source: "none".into(),
            retry,
            thinking: None,
            cache: false,
        });
    }

    if kind == ProviderKind::Anthropic {
        let mut config = AnthropicConfig::from_lookup(|name| {
            if let Some(var) = &options.api_key_env
                && name == "ANTHROPIC_API_KEY"
            {
                return env(var);
            }
            env(name)
        })
        .map_err(|error| match error {
            ConfigError::MissingCredentials(_) => SelectionError::MissingKey {
                provider: kind,
                variable: options
                    .api_key_env
                    .clone()
                    .unwrap_or_else(|| "ANTHROPIC_API_KEY".into()),
                extra: " (or ANTHROPIC_AUTH_TOKEN for a gateway that takes a bearer token)".into(),
            },
            ConfigError::Invalid { setting, problem } => {
                SelectionError::Invalid { setting, problem }
            }
        })?;
        if let Some(url) = &options.base_url {
            config.base_url = check_url("--base-url", url)?;
        }
        if options.timeouts.is_some() {
            config.timeouts = timeouts;
        }
        config.extra_headers.extend(options.extra_headers.clone());
        let model = options
            .model
            .clone()
            .or_else(|| value("ANTHROPIC_MODEL"))
            .unwrap_or_else(|| models::DEFAULT_MODEL.to_string());
        let api_key_source = match (&options.api_key_env, config.api_key_source()) {
            (Some(var), "ANTHROPIC_API_KEY") => var.clone(),
            (_, source) => source.to_string(),
        };
        let base_url = config.base_url.clone();
        let client = AnthropicClient::new(config).map_err(client_error)?;
        return Ok(Selected {
            client: Arc::new(client),
            kind,
            selected_by,
            context_window: models::context_window(&model),
            max_output_tokens: models::default_max_tokens(&model),
            model,
            base_url,
            api_key_source,
            retry,
            thinking: options.thinking_budget,
            cache: true,
        });
    }

    // The OpenAI-compatible family.
    let base_url = match (&options.base_url, kind) {
        (Some(url), _) => check_url("--base-url", url)?,
        (None, ProviderKind::Ollama) => format!("{}/v1", ollama_root(options, env)?),
        (None, _) => match preset.base_url_env.and_then(value) {
            Some(url) => check_url(preset.base_url_env.unwrap_or("base URL"), &url)?,
            None => match preset.base_url {
                Some(url) => url.to_string(),
                None => {
                    return Err(SelectionError::Invalid {
                        setting: "--base-url".into(),
                        problem: "the openai-compatible provider needs the server's base URL, \
                                  e.g. --base-url http://localhost:8000/v1"
                            .into(),
                    });
                }
            },
        },
    };
    let key_env = options
        .api_key_env
        .clone()
        .or_else(|| preset.key_env.map(str::to_string));
    let api_key = key_env.as_deref().and_then(value);
    if api_key.is_none()
        && let Some(variable) = &key_env
        && (preset.key_required || options.api_key_env.is_some())
    {
        return Err(SelectionError::MissingKey {
            provider: kind,
            variable: variable.clone(),
            extra: String::new(),
        });
    }
    let mut config = OpenAiConfig::new(kind, base_url.clone());
    config.api_key = api_key;
    config.api_key_env = key_env.clone();
    config.timeouts = timeouts;
    config.token_limit = preset.token_limit;
    config.reasoning = match kind {
        ProviderKind::OpenAi => ReasoningParam::Effort,
        ProviderKind::OpenRouter => ReasoningParam::MaxTokens,
        _ => ReasoningParam::None,
    };
    config.stream_tool_calls = options.stream_tool_calls.unwrap_or(true);
    if kind == ProviderKind::OpenRouter {
        // OpenRouter shows the app's name on its activity page.
        config.extra_headers.push(("X-Title".into(), "keel".into()));
    }
    config.extra_headers.extend(options.extra_headers.clone());

    let model = match (&options.model, preset.default_model) {
        (Some(model), _) => model.clone(),
        (None, Some(model)) => model.to_string(),
        (None, None) if kind == ProviderKind::Ollama => {
            let root = base_url.trim_end_matches("/v1").to_string();
            let installed = match probed {
                Some(installed) => installed,
                None => {
                    let timeout = options
                        .ollama_probe_timeout
                        .unwrap_or(Duration::from_secs(2))
                        .max(Duration::from_secs(2));
                    ollama_models(&root, timeout).await.map_err(|reason| {
                        SelectionError::OllamaUnreachable {
                            url: root.clone(),
                            reason,
                        }
                    })?
                }
            };
            pick_ollama_model(&installed, &root)?
        }
        (None, None) => server_model(&base_url, config.api_key.as_deref()).await?,
    };
    let api_key_source = match (&config.api_key, &key_env) {
        (Some(_), Some(var)) => var.clone(),
        _ => "none".to_string(),
    };
    let thinking = match config.reasoning {
        ReasoningParam::None => None,
        _ => options.thinking_budget,
    };
    let max_output_tokens = models::known_max_tokens(&model).unwrap_or(match kind {
        // Local servers often run models with small contexts, where a large `max_tokens`
        // is refused (vLLM) or crowds out the prompt.
        ProviderKind::Ollama | ProviderKind::OpenAiCompatible => 8_192,
        _ => 32_000,
    });
    let client = OpenAiClient::new(config).map_err(client_error)?;
    Ok(Selected {
        client: Arc::new(client),
        kind,
        selected_by,
        context_window: models::context_window(&model),
        max_output_tokens,
        model,
        base_url,
        api_key_source,
        retry,
        thinking,
        cache: false,
    })
}

/// `API_TIMEOUT_MS` (Claude Code's variable) sets the first-byte and idle timeouts.
fn env_timeouts(env: EnvLookup<'_>) -> Result<Timeouts, SelectionError> {
    let mut timeouts = Timeouts::default();
    if let Some(ms) = env("API_TIMEOUT_MS").filter(|v| !v.trim().is_empty()) {
        let ms: u64 = ms.trim().parse().map_err(|_| SelectionError::Invalid {
            setting: "API_TIMEOUT_MS".into(),
            problem: format!("{ms:?} is not a number of milliseconds"),
        })?;
        timeouts.first_byte = Duration::from_millis(ms);
        timeouts.idle = Duration::from_millis(ms);
    }
    Ok(timeouts)
}

fn check_url(setting: &str, url: &str) -> Result<String, SelectionError> {
    let url = url.trim().trim_end_matches('/').to_string();
    if url.starts_with("http://") || url.starts_with("https://") {
        Ok(url)
    } else {
        Err(SelectionError::Invalid {
            setting: setting.to_string(),
            problem: format!(
                "{url:?} is not an http(s) URL; give the full address, e.g. http://localhost:8000/v1"
            ),
        })
    }
}

/// Ollama's address without `/v1`: from `--base-url` when the provider is Ollama, else
/// `OLLAMA_HOST` (which may lack the scheme or port, as Ollama itself allows), else the default.
fn ollama_root(options: &ProviderOptions, env: EnvLookup<'_>) -> Result<String, SelectionError> {
    if options.kind == Some(ProviderKind::Ollama)
        && let Some(url) = &options.base_url
    {
        let url = check_url("--base-url", url)?;
        return Ok(url.trim_end_matches("/v1").to_string());
    }
    let Some(host) = env("OLLAMA_HOST").filter(|v| !v.trim().is_empty()) else {
        return Ok(OLLAMA_DEFAULT_HOST.to_string());
    };
    let host = host.trim().trim_end_matches('/');
    let (scheme, rest) = match host.split_once("://") {
        Some((scheme, rest)) => (scheme.to_string(), rest.to_string()),
        None => ("http".to_string(), host.to_string()),
    };
    if scheme != "http" && scheme != "https" {
        return Err(SelectionError::Invalid {
            setting: "OLLAMA_HOST".into(),
            problem: format!("{host:?} is not an http(s) address; e.g. 127.0.0.1:11434"),
        });
    }
    let (hostport, path) = match rest.split_once('/') {
        Some((hostport, path)) => (hostport.to_string(), format!("/{path}")),
        None => (rest, String::new()),
    };
    // The server listens on every interface when told 0.0.0.0; a client connects locally.
    let hostport = hostport.replacen("0.0.0.0", "127.0.0.1", 1);
    let has_port = hostport
        .rsplit_once(':')
        .is_some_and(|(_, port)| port.parse::<u16>().is_ok())
        && !hostport.ends_with(']');
    // Ollama's default port applies to plain http; https without a port means 443.
    let hostport = if has_port || scheme == "https" {
        hostport
    } else {
        format!("{hostport}:11434")
    };
    Ok(format!("{scheme}://{hostport}{path}"))
}

/// The models installed in Ollama at `root` (`GET /api/tags`).
async fn ollama_models(root: &str, timeout: Duration) -> Result<Vec<String>, String> {
    #[derive(Deserialize)]
    struct Tags {
        #[serde(default)]
        models: Vec<Tag>,
    }
    #[derive(Deserialize)]
    struct Tag {
        #[serde(default)]
        name: String,
        #[serde(default)]
        model: String,
    }
    let tags: Tags = get_json(&format!("{root}/api/tags"), None, timeout).await?;
    Ok(tags
        .models
        .into_iter()
        .map(|t| if t.name.is_empty() { t.model } else { t.name })
        .filter(|n| !n.is_empty())
        .collect())
}

async fn get_json<T: serde::de::DeserializeOwned>(
    url: &str,
    key: Option<&str>,
    timeout: Duration,
) -> Result<T, String> {
    let http = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .build()
        .map_err(|e| e.to_string())?;
    let mut request = http.get(url);
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let response = request
        .send()
        .await
        .map_err(|e| crate::http::deepest_cause(&e))?;
    if !response.status().is_success() {
        return Err(format!("HTTP {}", response.status().as_u16()));
    }
    response.json().await.map_err(|e| e.to_string())
}

/// Model families Ollama serves with tool support (from Ollama's "tools" model list).
const OLLAMA_TOOL_FAMILIES: &[&str] = &[
    "qwen3",
    "qwen2.5",
    "qwen2",
    "qwq",
    "llama3.1",
    "llama3.2",
    "llama3.3",
    "llama4",
    "gpt-oss",
    "devstral",
    "mistral",
    "mixtral",
    "magistral",
    "command-r",
    "firefunction",
    "hermes3",
    "granite3",
    "granite4",
    "nemotron",
    "smollm2",
    "phi4-mini",
    "cogito",
    "deepseek-v3",
    "kimi-k2",
    "glm4",
];

/// Whether an installed Ollama model's name suggests it can call tools.
pub fn ollama_model_has_tools(name: &str) -> bool {
    let base = name.to_ascii_lowercase();
    let base = base.rsplit('/').next().unwrap_or(&base);
    OLLAMA_TOOL_FAMILIES.iter().any(|f| base.starts_with(f))
}

fn pick_ollama_model(installed: &[String], root: &str) -> Result<String, SelectionError> {
    if let Some(model) = installed.iter().find(|m| ollama_model_has_tools(m)) {
        return Ok(model.clone());
    }
    let listed = if installed.is_empty() {
        "none".to_string()
    } else {
        installed.join(", ")
    };
    Err(SelectionError::NoModel(format!(
        "Ollama at {root} has no model keel knows to support tools (installed: {listed}). \
         Pull one with `ollama pull qwen2.5-coder` (or llama3.1), or name yours with --model NAME"
    )))
}

/// The one model an OpenAI-compatible server serves (`GET /models`), as vLLM and llama.cpp do.
async fn server_model(base_url: &str, key: Option<&str>) -> Result<String, SelectionError> {
    #[derive(Deserialize)]
    struct Models {
        #[serde(default)]
        data: Vec<Entry>,
    }
    #[derive(Deserialize)]
    struct Entry {
        id: String,
    }
    let url = format!("{base_url}/models");
    let missing = |why: String| {
        SelectionError::NoModel(format!(
            "no model given and {why}; pass --model NAME (the name the server knows the model by)"
        ))
    };
    let models: Models = get_json(&url, key, Duration::from_secs(2))
        .await
        .map_err(|reason| missing(format!("{url} could not list its models ({reason})")))?;
    match models.data.as_slice() {
        [only] => Ok(only.id.clone()),
        [] => Err(missing(format!("{url} lists no models"))),
        many => Err(missing(format!(
            "{url} serves several ({})",
            many.iter()
                .map(|m| m.id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn provider_names_parse_and_unknown_ones_list_the_choices() {
        for kind in ProviderKind::ALL {
            assert_eq!(kind.name().parse::<ProviderKind>(), Ok(kind));
        }
        assert_eq!("OpenAI".parse(), Ok(ProviderKind::OpenAi));
        assert_eq!(
            "openai_compatible".parse(),
            Ok(ProviderKind::OpenAiCompatible)
        );
        let error = "gemini".parse::<ProviderKind>().unwrap_err().to_string();
        assert_eq!(
            error,
            "unknown provider \"gemini\": use one of anthropic, openai, ollama, openrouter, openai-compatible, replay"
        );
        let kind: ProviderKind = serde_json::from_str("\"ollama\"").unwrap();
        assert_eq!(kind, ProviderKind::Ollama);
    }

    #[test]
    fn ollama_host_is_read_the_way_ollama_reads_it() {
        let root =
            |host: &str| ollama_root(&ProviderOptions::default(), &env(&[("OLLAMA_HOST", host)]));
        assert_eq!(root("").unwrap(), "http://localhost:11434");
        assert_eq!(root("0.0.0.0").unwrap(), "http://127.0.0.1:11434");
        assert_eq!(root("127.0.0.1:9999").unwrap(), "http://127.0.0.1:9999");
        assert_eq!(
            root("https://gpu.box/ollama/").unwrap(),
            "https://gpu.box/ollama"
        );
        assert_eq!(root("http://[::1]:5000").unwrap(), "http://[::1]:5000");
        assert!(root("ftp://x").is_err());
        let options = ProviderOptions {
            kind: Some(ProviderKind::Ollama),
            base_url: Some("http://box:11434/v1/".into()),
            ..ProviderOptions::default()
        };
        assert_eq!(
            ollama_root(&options, &env(&[])).unwrap(),
            "http://box:11434"
        );
    }

    #[test]
    fn tool_capable_ollama_models_are_recognised() {
        assert!(ollama_model_has_tools("qwen2.5-coder:7b"));
        assert!(ollama_model_has_tools("llama3.1:latest"));
        assert!(ollama_model_has_tools("hf.co/someone/Qwen3-8B-GGUF:Q4"));
        assert!(!ollama_model_has_tools("llama3:8b"));
        assert!(!ollama_model_has_tools("gemma:2b"));
        let picked = pick_ollama_model(&["gemma:2b".into(), "qwen3:8b".into()], "r").unwrap();
        assert_eq!(picked, "qwen3:8b");
        let error = pick_ollama_model(&["gemma:2b".into()], "http://h")
            .unwrap_err()
            .to_string();
        assert!(error.contains("installed: gemma:2b"), "{error}");
        assert!(error.contains("ollama pull qwen2.5-coder"), "{error}");
    }

    #[test]
    fn model_names_point_at_their_provider() {
        assert_eq!(
            model_family("claude-opus-4-1"),
            Some(ProviderKind::Anthropic)
        );
        assert_eq!(model_family("gpt-4.1"), Some(ProviderKind::OpenAi));
        assert_eq!(model_family("o3"), Some(ProviderKind::OpenAi));
        assert_eq!(model_family("o4-mini"), Some(ProviderKind::OpenAi));
        assert_eq!(
            model_family("anthropic/claude-sonnet-4.5"),
            Some(ProviderKind::OpenRouter)
        );
        assert_eq!(model_family("qwen2.5-coder"), None);
        assert_eq!(model_family("olmo"), None);
    }
}
