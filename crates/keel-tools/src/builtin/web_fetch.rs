//! WebFetch: fetches a page, turns its HTML into Markdown, and has a small, fast model answer
//! the caller's prompt from it, so the main conversation gets the answer rather than the page.
//!
//! Safety: only http(s); `http://` is upgraded to `https://`; redirects are followed on the
//! same host only (another host is reported to the model, which may fetch it with a new,
//! separately approved call); bodies stop at a size limit and the whole fetch at a time limit.
//! Private, loopback and link-local addresses are refused unless the `web.allowPrivateHosts`
//! setting lists them: the check runs on the addresses a name resolves to, inside the HTTP
//! client's own resolver, so the connection goes to an address that was checked (a name that
//! resolves differently a second time cannot slip through). The client connects directly,
//! never through a proxy, since a proxy would resolve names where keel cannot check them.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::StreamExt as _;
use keel_model::{ModelClient, ModelRequest};
use keel_protocol::Message;
use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use serde_json::{Value, json};

use super::common::{blocking, required_str};
use super::web::ask_model;
use crate::{Tool, ToolContext, ToolError, ToolOutput};

/// How long a fetched page is reused for the same URL.
pub const CACHE_TTL: Duration = Duration::from_secs(15 * 60);
/// Cached pages kept at most (the oldest go first).
const CACHE_ENTRIES: usize = 64;
/// Redirects followed on the same host before giving up.
const MAX_REDIRECTS: usize = 10;
/// The longest URL accepted.
const MAX_URL_CHARS: usize = 2000;

/// What WebFetch needs besides its input: the model that reads pages, and its limits.
#[derive(Clone)]
pub struct WebFetchConfig {
    /// The provider the prompt goes to.
    pub client: Arc<dyn ModelClient>,
    /// The model that answers the prompt over the page (a small, fast one).
    pub model: String,
    /// Hosts that may be reached although they are not public: host names or IP addresses,
    /// `loopback` (127.0.0.0/8, ::1), `private` (every other non-public address) or `*`.
    /// A listed host also keeps `http://` instead of being upgraded to `https://`.
    pub allow_private_hosts: Vec<String>,
    /// The most body bytes read; the rest of a larger body is never downloaded.
    pub max_body_bytes: usize,
    /// The longest a fetch (all redirects and the body) may take.
    pub timeout: Duration,
    /// Characters of the page's Markdown given to the model.
    pub max_content_chars: usize,
}

impl std::fmt::Debug for WebFetchConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebFetchConfig")
            .field("model", &self.model)
            .field("allow_private_hosts", &self.allow_private_hosts)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("timeout", &self.timeout)
            .field("max_content_chars", &self.max_content_chars)
            .finish_non_exhaustive()
    }
}

impl WebFetchConfig {
    /// Defaults: 10 MB bodies, 60 s per fetch, 100,000 characters of Markdown for the model,
    /// no private hosts.
    pub fn new(client: Arc<dyn ModelClient>, model: impl Into<String>) -> Self {
        Self {
            client,
            model: model.into(),
            allow_private_hosts: Vec::new(),
            max_body_bytes: 10 * 1024 * 1024,
            timeout: Duration::from_secs(60),
            max_content_chars: 100_000,
        }
    }
}

/// The small, fast model of a provider's family that reads pages for WebFetch: Claude Haiku
/// for Anthropic, otherwise the session's own model (other providers' model names are not
/// known in advance).
pub fn default_fetch_model(provider: keel_model::ProviderKind, main_model: &str) -> String {
    match provider {
        keel_model::ProviderKind::Anthropic => "claude-haiku-4-5".to_string(),
        _ => main_model.to_string(),
    }
}

/// The WebFetch tool; one per session, holding that session's page cache.
pub struct WebFetch {
    config: WebFetchConfig,
    access: Arc<Access>,
    /// Built on first use: setting up TLS costs start-up time a session may never need.
    http: tokio::sync::OnceCell<reqwest::Client>,
    cache: Mutex<HashMap<String, (Instant, Arc<Page>)>>,
}

impl std::fmt::Debug for WebFetch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebFetch")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl WebFetch {
    /// A WebFetch tool with its own page cache.
    pub fn new(config: WebFetchConfig) -> Self {
        Self {
            access: Arc::new(Access::new(&config.allow_private_hosts)),
            config,
            http: tokio::sync::OnceCell::new(),
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The HTTP client: no redirects of its own, no proxy, names resolved through the check.
    async fn http(&self) -> Result<&reqwest::Client, ToolError> {
        self.http
            .get_or_try_init(|| async {
                reqwest::Client::builder()
                    .redirect(reqwest::redirect::Policy::none())
                    .no_proxy()
                    .dns_resolver(CheckedResolver {
                        access: self.access.clone(),
                    })
                    .connect_timeout(Duration::from_secs(10).min(self.config.timeout))
                    .user_agent(concat!("keel/", env!("CARGO_PKG_VERSION"), " (WebFetch)"))
                    .build()
                    .map_err(|e| ToolError::Failed(format!("cannot set up HTTP for WebFetch: {e}")))
            })
            .await
    }

    fn cached(&self, url: &str) -> Option<Arc<Page>> {
        let cache = match self.cache.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        cache
            .get(url)
            .filter(|(at, _)| at.elapsed() < CACHE_TTL)
            .map(|(_, page)| page.clone())
    }

    fn remember(&self, url: String, page: Arc<Page>) {
        let mut cache = match self.cache.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        cache.retain(|_, (at, _)| at.elapsed() < CACHE_TTL);
        while cache.len() >= CACHE_ENTRIES {
            let Some(oldest) = cache
                .iter()
                .min_by_key(|(_, (at, _))| *at)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            cache.remove(&oldest);
        }
        cache.insert(url, (Instant::now(), page));
    }

    /// The URL to fetch: http(s) only, no credentials, `http` upgraded unless the host is one
    /// the user allowed as private.
    fn prepare_url(&self, raw: &str) -> Result<Url, ToolError> {
        if raw.chars().count() > MAX_URL_CHARS {
            return Err(ToolError::InvalidInput(format!(
                "the URL is longer than {MAX_URL_CHARS} characters"
            )));
        }
        let mut url = Url::parse(raw.trim()).map_err(|e| {
            ToolError::InvalidInput(format!(
                "{raw:?} is not a valid URL ({e}); give a full URL such as https://example.com/page"
            ))
        })?;
        if url.scheme() != "http" && url.scheme() != "https" {
            return Err(ToolError::InvalidInput(format!(
                "WebFetch reads http(s) pages; {:?} URLs are not supported (use Read for local files)",
                url.scheme()
            )));
        }
        if url.host_str().is_none() {
            return Err(ToolError::InvalidInput(format!("{raw:?} has no host")));
        }
        // Credentials in a URL would be sent to whoever answers; WebFetch is for public pages.
        let _ = url.set_username("");
        let _ = url.set_password(None);
        url.set_fragment(None);
        if url.scheme() == "http" && !self.access.keeps_http(&url) {
            let _ = url.set_scheme("https");
        }
        Ok(url)
    }

    /// Fetches `url`, following same-host redirects.
    async fn fetch(&self, url: Url) -> Result<Fetched, ToolError> {
        let mut url = url;
        let http = self.http().await?;
        for _ in 0..=MAX_REDIRECTS {
            self.access.check_literal(&url)?;
            let response = http
                .get(url.clone())
                .header(
                    reqwest::header::ACCEPT,
                    "text/markdown, text/html;q=0.9, text/*;q=0.8, */*;q=0.5",
                )
                .send()
                .await
                .map_err(|e| request_error(&url, &e))?;
            let status = response.status();
            if status.is_redirection() {
                let Some(location) = response
                    .headers()
                    .get(reqwest::header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                else {
                    return Err(ToolError::Failed(format!(
                        "{url} answered with a redirect ({status}) but no Location"
                    )));
                };
                let next = url.join(location).map_err(|e| {
                    ToolError::Failed(format!(
                        "{url} redirects to {location:?}, which is not a valid URL ({e})"
                    ))
                })?;
                if next.scheme() != "http" && next.scheme() != "https" {
                    return Err(ToolError::Failed(format!(
                        "{url} redirects to {next}, which is not an http(s) URL"
                    )));
                }
                if !same_host(&url, &next) {
                    return Ok(Fetched::Redirect {
                        from: url.to_string(),
                        to: next.to_string(),
                        status: status.as_u16(),
                    });
                }
                url = next;
                continue;
            }
            return self.read_page(url, response).await.map(Fetched::Page);
        }
        Err(ToolError::Failed(format!(
            "{url} redirected more than {MAX_REDIRECTS} times; giving up"
        )))
    }

    /// Reads at most `max_body_bytes` of the body and converts it to Markdown.
    async fn read_page(&self, url: Url, response: reqwest::Response) -> Result<Page, ToolError> {
        let status = response.status();
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_ascii_lowercase();
        let limit = self.config.max_body_bytes;
        let mut body: Vec<u8> = Vec::new();
        let mut truncated = false;
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| request_error(&url, &e))?;
            let room = limit.saturating_sub(body.len());
            if chunk.len() > room {
                body.extend_from_slice(&chunk[..room]);
                truncated = true;
                break;
            }
            body.extend_from_slice(&chunk);
        }
        // Dropping the stream closes the connection: the rest is never downloaded.
        drop(stream);
        let bytes = body.len();
        let kind = body_kind(&content_type, &body);
        if kind == BodyKind::Binary {
            return Err(ToolError::Failed(format!(
                "{url} is not a web page but {} ({bytes} bytes). WebFetch reads text; to look \
                 at a file like this, download it with Bash (e.g. curl -L -o /tmp/file '{url}') \
                 and Read it.",
                if content_type.is_empty() {
                    "binary data".to_string()
                } else {
                    content_type.clone()
                }
            )));
        }
        let markdown = blocking(move || {
            let text = String::from_utf8_lossy(&body).into_owned();
            Ok(match kind {
                BodyKind::Html => html_to_markdown(&text),
                _ => text,
            })
        })
        .await?;
        Ok(Page {
            url: url.to_string(),
            code: status.as_u16(),
            code_text: status.canonical_reason().unwrap_or_default().to_string(),
            bytes,
            truncated,
            markdown,
        })
    }
}

/// What a fetch produced.
enum Fetched {
    Page(Page),
    /// A redirect to another host, which is the model's to follow.
    Redirect {
        from: String,
        to: String,
        status: u16,
    },
}

/// A fetched page, as cached.
#[derive(Debug)]
struct Page {
    url: String,
    code: u16,
    code_text: String,
    bytes: usize,
    truncated: bool,
    markdown: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyKind {
    Html,
    Text,
    Binary,
}

/// HTML, other text, or something WebFetch does not read, from the content type (or, without
/// one, the bytes).
fn body_kind(content_type: &str, body: &[u8]) -> BodyKind {
    let mime = content_type.split(';').next().unwrap_or_default().trim();
    if mime.contains("html") {
        return BodyKind::Html;
    }
    let textual = mime.starts_with("text/")
        || [
            "json",
            "xml",
            "javascript",
            "markdown",
            "yaml",
            "toml",
            "csv",
        ]
        .iter()
        .any(|t| mime.contains(t));
    if textual {
        return BodyKind::Text;
    }
    if !mime.is_empty() && mime != "application/octet-stream" {
        return BodyKind::Binary;
    }
    let head = &body[..body.len().min(4096)];
    let looks_text = !head.contains(&0)
        && match std::str::from_utf8(head) {
            Ok(_) => true,
            Err(e) => e.error_len().is_none(),
        };
    if !looks_text {
        BodyKind::Binary
    } else if head
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'<')
    {
        BodyKind::Html
    } else {
        BodyKind::Text
    }
}

fn html_to_markdown(html: &str) -> String {
    let converter = htmd::HtmlToMarkdown::builder()
        .skip_tags(vec![
            "script", "style", "noscript", "template", "svg", "iframe", "head",
        ])
        .build();
    converter.convert(html).unwrap_or_else(|_| html.to_string())
}

/// Whether a redirect stays on the same site: the same host, give or take a `www.`.
fn same_host(from: &Url, to: &Url) -> bool {
    let strip = |url: &Url| {
        url.host_str()
            .map(|h| h.trim_start_matches("www.").to_ascii_lowercase())
    };
    // `port()` is None for a scheme's default port, so http→https on the defaults is the
    // same place.
    strip(from).is_some() && strip(from) == strip(to) && from.port() == to.port()
}

/// The URL's host as an IP address, when it is one (`[::1]` included).
fn literal_ip(url: &Url) -> Option<IpAddr> {
    url.host_str()?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()
}

/// Which non-public addresses the user allows WebFetch to reach.
#[derive(Debug)]
struct Access {
    everything: bool,
    loopback: bool,
    private: bool,
    hosts: Vec<String>,
}

impl Access {
    fn new(entries: &[String]) -> Self {
        let mut access = Self {
            everything: false,
            loopback: false,
            private: false,
            hosts: Vec::new(),
        };
        for entry in entries {
            let entry = entry
                .trim()
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_ascii_lowercase();
            match entry.as_str() {
                "*" => access.everything = true,
                "loopback" | "localhost" => {
                    access.loopback = true;
                    access.hosts.push("localhost".into());
                }
                "private" => access.private = true,
                "" => {}
                _ => access.hosts.push(entry),
            }
        }
        access
    }

    fn host_listed(&self, host: &str) -> bool {
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .trim_end_matches('.')
            .to_ascii_lowercase();
        self.everything || self.hosts.contains(&host)
    }

    /// Whether a connection to `ip`, reached through the name `host`, is allowed.
    fn permits(&self, host: &str, ip: IpAddr) -> bool {
        match classify(ip) {
            Reach::Public => true,
            _ if self.host_listed(host) => true,
            Reach::Loopback => self.loopback || self.private,
            Reach::Private => self.private,
        }
    }

    /// Refuses a URL whose host is an IP address the user has not allowed (the resolver only
    /// sees names).
    fn check_literal(&self, url: &Url) -> Result<(), ToolError> {
        let Some(ip) = literal_ip(url) else {
            return Ok(());
        };
        let host = url.host_str().unwrap_or_default();
        if self.permits(host, ip) {
            Ok(())
        } else {
            Err(refused(host, ip))
        }
    }

    /// Whether `http://` stays as it is: for hosts the user allowed as private, which are
    /// often plain-HTTP servers on the local network.
    fn keeps_http(&self, url: &Url) -> bool {
        let Some(host) = url.host_str() else {
            return false;
        };
        if self.host_listed(host) {
            return true;
        }
        let Some(ip) = literal_ip(url) else {
            return false;
        };
        !matches!(classify(ip), Reach::Public) && self.permits(host, ip)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reach {
    Public,
    Loopback,
    Private,
}

/// Where an address leads: the public internet, this machine, or a private network
/// (RFC 1918, carrier-grade NAT, link-local including cloud metadata services, unique-local
/// IPv6, and addresses that are not meant to be connected to at all).
fn classify(ip: IpAddr) -> Reach {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            if v4.is_loopback() {
                Reach::Loopback
            } else if v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 198 && (b == 18 || b == 19))
                || a >= 240
            {
                Reach::Private
            } else {
                Reach::Public
            }
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return classify(IpAddr::V4(v4));
            }
            if v6.is_loopback() {
                Reach::Loopback
            } else if v6.is_unspecified()
                || v6.is_multicast()
                || v6.is_unique_local()
                || v6.is_unicast_link_local()
                || v6.segments()[0] == 0x2001 && v6.segments()[1] == 0x0db8
            {
                Reach::Private
            } else {
                Reach::Public
            }
        }
    }
}

fn refused(host: &str, ip: IpAddr) -> ToolError {
    let what = match classify(ip) {
        Reach::Loopback => "this machine (a loopback address)",
        _ => "a private or local network address",
    };
    ToolError::Failed(format!(
        "Refused to fetch from {host}: it leads to {ip}, {what}. WebFetch reads public web \
         pages. If the user wants this host reachable, they can add \"{host}\" (or \"loopback\" \
         / \"private\") to web.allowPrivateHosts in .keel/settings.json."
    ))
}

/// The resolver the HTTP client uses: the system's lookup, then only the addresses WebFetch
/// may connect to. The client connects to what this returns, so what was checked is what is
/// used.
struct CheckedResolver {
    access: Arc<Access>,
}

/// A name that resolved only to addresses WebFetch may not reach.
#[derive(Debug)]
struct Blocked {
    host: String,
    ip: IpAddr,
}

impl std::fmt::Display for Blocked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} resolves to {}, which is not allowed",
            self.host, self.ip
        )
    }
}

impl std::error::Error for Blocked {}

impl Resolve for CheckedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let access = self.access.clone();
        Box::pin(async move {
            let host = name.as_str().to_string();
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = found
                .iter()
                .copied()
                .filter(|addr| access.permits(&host, addr.ip()))
                .collect();
            if allowed.is_empty() {
                let ip = found
                    .first()
                    .map_or(IpAddr::from([0, 0, 0, 0]), SocketAddr::ip);
                return Err(
                    Box::new(Blocked { host, ip }) as Box<dyn std::error::Error + Send + Sync>
                );
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

/// One message for a failed request, naming the cause the user can do something about.
fn request_error(url: &Url, error: &reqwest::Error) -> ToolError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = source {
        if let Some(blocked) = current.downcast_ref::<Blocked>() {
            return refused(&blocked.host, blocked.ip);
        }
        source = current.source();
    }
    if error.is_timeout() {
        return ToolError::Failed(format!("{url} did not answer in time"));
    }
    let detail = keel_model::deepest_cause(error);
    ToolError::Failed(format!("Could not fetch {url}: {detail}"))
}

#[async_trait]
impl Tool for WebFetch {
    fn name(&self) -> &str {
        "WebFetch"
    }

    fn description(&self) -> &str {
        "Fetches a web page and answers a prompt about it: the page is converted to Markdown \
         and a small, fast model reads it and answers `prompt`, so say exactly what you want \
         from the page (e.g. \"list the function's parameters and their types\"). Use it to \
         read documentation, changelogs or issues at a known URL; use WebSearch to find URLs. \
         `url` must be a full URL; http is upgraded to https. Redirects within the same site \
         are followed; a redirect to another host is reported with the new URL, which you can \
         then fetch with another call. Pages are cached for 15 minutes. It cannot log in, run \
         JavaScript or reach private network addresses. For GitHub, the `gh` CLI through Bash \
         is often better."
    }

    fn input_schema(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "url": {
                    "type": "string",
                    "description": "The URL to fetch (a full http or https URL)"
                },
                "prompt": {
                    "type": "string",
                    "description": "What to find out from the page"
                }
            },
            "required": ["url", "prompt"],
            "additionalProperties": false
        })
    }

    fn is_read_only(&self) -> bool {
        true
    }

    async fn call(&self, input: Value, ctx: &ToolContext) -> Result<ToolOutput, ToolError> {
        let started = Instant::now();
        let prompt = required_str(&input, "prompt")?.to_string();
        let url = self.prepare_url(required_str(&input, "url")?)?;
        let key = url.to_string();
        let page = match self.cached(&key) {
            Some(page) => page,
            None => {
                let limit = self.config.timeout;
                let fetched = tokio::select! {
                    () = ctx.cancel.cancelled() => {
                        return Err(ToolError::Interrupted { partial: String::new() });
                    }
                    fetched = tokio::time::timeout(limit, self.fetch(url)) => fetched,
                };
                match fetched {
                    Err(_) => {
                        return Err(ToolError::Failed(format!(
                            "Fetching {key} took longer than {} s and was stopped. The site \
                             may be slow or down; try again later or another source.",
                            limit.as_secs_f64()
                        )));
                    }
                    Ok(Err(error)) => return Err(error),
                    Ok(Ok(Fetched::Redirect { from, to, status })) => {
                        return Ok(redirect_output(&from, &to, status, &prompt, started));
                    }
                    Ok(Ok(Fetched::Page(page))) => {
                        let page = Arc::new(page);
                        if (200..300).contains(&page.code) {
                            self.remember(key.clone(), page.clone());
                        }
                        page
                    }
                }
            }
        };
        if page.code >= 400 {
            let excerpt: String = page.markdown.chars().take(500).collect();
            return Err(ToolError::Failed(format!(
                "{} answered HTTP {} {}.{}",
                page.url,
                page.code,
                page.code_text,
                if excerpt.trim().is_empty() {
                    String::new()
                } else {
                    format!(" The page says:\n{}", excerpt.trim())
                }
            )));
        }
        let (content, content_cut) = cut_chars(&page.markdown, self.config.max_content_chars);
        let mut request = ModelRequest::new(
            self.config.model.clone(),
            vec![Message::user_text(format!(
                "Web page content from {}:\n---\n{content}\n---\n\n{prompt}\n\nAnswer the \
                 request above from the page content alone, concisely. Quote the page exactly \
                 where precision matters (code, commands, names, versions), keep other quotes \
                 short, and say plainly if the page does not contain the answer.",
                page.url
            ))],
        );
        request.max_tokens = request.max_tokens.min(4096);
        let answer = ask_model(self.config.client.as_ref(), &request, &ctx.cancel)
            .await
            .map_err(|error| match error {
                ToolError::Interrupted { .. } => error,
                other => ToolError::Failed(format!(
                    "Fetched {} but the model that reads it ({}) failed: {other}",
                    page.url, self.config.model
                )),
            })?;
        let mut result = answer.text();
        if page.truncated {
            result.push_str(&format!(
                "\n\n(Only the first {} MB of the page were read; it is larger.)",
                self.config.max_body_bytes / (1024 * 1024)
            ));
        } else if content_cut {
            result.push_str(&format!(
                "\n\n(The page is long: only its first {} characters were read.)",
                self.config.max_content_chars
            ));
        }
        Ok(ToolOutput {
            structured: Some(json!({
                "bytes": page.bytes,
                "code": page.code,
                "codeText": page.code_text,
                "result": result,
                "durationMs": u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                "url": page.url,
            })),
            content: result,
            images: Vec::new(),
        })
    }
}

fn cut_chars(text: &str, max: usize) -> (&str, bool) {
    match text.char_indices().nth(max) {
        Some((at, _)) => (&text[..at], true),
        None => (text, false),
    }
}

fn redirect_output(
    from: &str,
    to: &str,
    status: u16,
    prompt: &str,
    started: Instant,
) -> ToolOutput {
    let content = format!(
        "The page redirected to another host, which was not followed.\nOriginal URL: \
         {from}\nRedirect URL: {to}\nStatus: {status}\n\nTo read it, call WebFetch again with \
         url {} and the same prompt ({}).",
        json!(to),
        json!(prompt)
    );
    ToolOutput {
        structured: Some(json!({
            "bytes": 0,
            "code": status,
            "codeText": "Redirect to another host",
            "result": content,
            "durationMs": u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            "url": from,
            "redirectUrl": to,
        })),
        content,
        images: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_classified() {
        let reach = |s: &str| classify(s.parse().unwrap());
        assert_eq!(reach("127.0.0.1"), Reach::Loopback);
        assert_eq!(reach("::1"), Reach::Loopback);
        assert_eq!(reach("::ffff:127.0.0.1"), Reach::Loopback);
        for private in [
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "fd00::1",
            "fe80::1",
            "::",
            "::ffff:10.0.0.1",
        ] {
            assert_eq!(reach(private), Reach::Private, "{private}");
        }
        for public in ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111"] {
            assert_eq!(reach(public), Reach::Public, "{public}");
        }
    }

    #[test]
    fn private_hosts_need_the_setting() {
        let none = Access::new(&[]);
        let loopback: IpAddr = "127.0.0.1".parse().unwrap();
        let lan: IpAddr = "192.168.1.5".parse().unwrap();
        assert!(!none.permits("localhost", loopback));
        assert!(!none.permits("router", lan));
        assert!(none.permits("example.com", "93.184.216.34".parse().unwrap()));
        let some = Access::new(&["loopback".into(), "Wiki.Corp".into()]);
        assert!(some.permits("localhost", loopback));
        assert!(!some.permits("router", lan));
        assert!(some.permits("wiki.corp", lan));
        let all = Access::new(&["private".into()]);
        assert!(all.permits("anything", lan));
        assert!(all.permits("anything", loopback));
    }

    #[test]
    fn http_stays_only_for_allowed_private_hosts() {
        let access = Access::new(&["loopback".into(), "intranet".into()]);
        let url = |s: &str| Url::parse(s).unwrap();
        assert!(access.keeps_http(&url("http://127.0.0.1:8080/")));
        assert!(access.keeps_http(&url("http://localhost/")));
        assert!(access.keeps_http(&url("http://intranet/x")));
        assert!(!access.keeps_http(&url("http://example.com/")));
        assert!(!access.keeps_http(&url("http://10.0.0.1/")));
        assert!(!Access::new(&[]).keeps_http(&url("http://127.0.0.1/")));
    }

    #[test]
    fn redirects_stay_on_the_same_site() {
        let url = |s: &str| Url::parse(s).unwrap();
        assert!(same_host(
            &url("https://docs.rs/a"),
            &url("https://docs.rs/b")
        ));
        assert!(same_host(
            &url("https://www.docs.rs/a"),
            &url("https://docs.rs/b")
        ));
        assert!(same_host(
            &url("http://docs.rs/a"),
            &url("https://docs.rs/b")
        ));
        assert!(!same_host(
            &url("https://docs.rs/a"),
            &url("https://evil.rs/b")
        ));
        assert!(!same_host(
            &url("http://127.0.0.1:1/a"),
            &url("http://localhost:1/b")
        ));
        assert!(!same_host(
            &url("http://127.0.0.1:1/a"),
            &url("http://127.0.0.1:2/b")
        ));
    }

    #[test]
    fn bodies_are_told_apart() {
        assert_eq!(body_kind("text/html; charset=utf-8", b""), BodyKind::Html);
        assert_eq!(body_kind("application/json", b"{}"), BodyKind::Text);
        assert_eq!(body_kind("text/plain", b"hi"), BodyKind::Text);
        assert_eq!(body_kind("image/png", b"\x89PNG"), BodyKind::Binary);
        assert_eq!(body_kind("", b"  <html>"), BodyKind::Html);
        assert_eq!(body_kind("", b"plain"), BodyKind::Text);
        assert_eq!(
            body_kind("application/octet-stream", b"\0\x01"),
            BodyKind::Binary
        );
    }

    #[test]
    fn html_becomes_markdown_without_scripts() {
        let md = html_to_markdown(
            "<html><head><title>T</title><style>p{}</style></head><body><h1>Hi</h1>\
             <script>alert(1)</script><p>a <a href=\"/x\">link</a></p></body></html>",
        );
        assert!(md.contains("# Hi"), "{md}");
        assert!(md.contains("[link](/x)"), "{md}");
        assert!(!md.contains("alert"), "{md}");
        assert!(!md.contains("p{}"), "{md}");
    }
}
