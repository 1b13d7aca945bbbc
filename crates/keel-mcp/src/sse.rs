//! The legacy HTTP+SSE client transport (MCP 2024-11-05), which rmcp 3 no longer ships: a
//! `GET` on the SSE URL opens the stream whose first `endpoint` event names the URL to `POST`
//! messages to; the server's messages arrive as `message` events on the stream.

use std::collections::BTreeMap;
use std::future::Future;

use eventsource_stream::Eventsource as _;
use futures::StreamExt as _;
use reqwest::Url;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use rmcp::RoleClient;
use rmcp::service::{RxJsonRpcMessage, TxJsonRpcMessage};
use rmcp::transport::Transport;
use tokio::sync::{mpsc, watch};

use crate::AbortOnDrop;

/// Why the SSE transport failed.
#[derive(Debug, thiserror::Error)]
pub enum SseError {
    /// The request could not be made or the server answered with an error status.
    #[error("{0}")]
    Http(String),
    /// The stream ended before naming the endpoint to post to.
    #[error("the SSE stream at {0} closed before sending its `endpoint` event")]
    NoEndpoint(String),
    /// A header from the configuration is not a valid HTTP header.
    #[error("invalid header `{0}`")]
    Header(String),
}

/// A connected legacy SSE transport.
pub struct SseClientTransport {
    client: reqwest::Client,
    headers: HeaderMap,
    endpoint: Url,
    incoming: mpsc::Receiver<RxJsonRpcMessage<RoleClient>>,
    _reader: AbortOnDrop,
}

/// Turns configured headers into a header map, naming a bad one.
pub fn header_map(headers: &BTreeMap<String, String>) -> Result<HeaderMap, SseError> {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        let name =
            HeaderName::from_bytes(name.as_bytes()).map_err(|_| SseError::Header(name.clone()))?;
        let value = HeaderValue::from_str(value).map_err(|_| SseError::Header(name.to_string()))?;
        map.insert(name, value);
    }
    Ok(map)
}

impl SseClientTransport {
    /// Opens the stream at `url` and waits for the endpoint event.
    pub async fn connect(url: &str, headers: &BTreeMap<String, String>) -> Result<Self, SseError> {
        let base = Url::parse(url)
            .map_err(|error| SseError::Http(format!("invalid URL {url}: {error}")))?;
        let headers = header_map(headers)?;
        let client = reqwest::Client::new();
        let response = client
            .get(base.clone())
            .headers(headers.clone())
            .header(reqwest::header::ACCEPT, "text/event-stream")
            .send()
            .await
            .map_err(|error| SseError::Http(format!("GET {url}: {error}")))?;
        if !response.status().is_success() {
            return Err(SseError::Http(format!(
                "GET {url}: HTTP {}",
                response.status()
            )));
        }
        let (endpoint_tx, mut endpoint_rx) = watch::channel::<Option<Url>>(None);
        let (incoming_tx, incoming) = mpsc::channel(64);
        let stream_base = base.clone();
        let reader = tokio::spawn(async move {
            let mut events = response.bytes_stream().eventsource();
            while let Some(event) = events.next().await {
                let event = match event {
                    Ok(event) => event,
                    Err(error) => {
                        tracing::debug!("MCP SSE stream {stream_base}: {error}");
                        break;
                    }
                };
                match event.event.as_str() {
                    "endpoint" => match stream_base.join(event.data.trim()) {
                        Ok(endpoint) => {
                            let _ = endpoint_tx.send(Some(endpoint));
                        }
                        Err(error) => {
                            tracing::warn!(
                                "MCP SSE server sent a bad endpoint `{}`: {error}",
                                event.data
                            );
                        }
                    },
                    "message" | "" => {
                        match serde_json::from_str::<RxJsonRpcMessage<RoleClient>>(&event.data) {
                            Ok(message) => {
                                if incoming_tx.send(message).await.is_err() {
                                    break;
                                }
                            }
                            Err(error) => tracing::warn!(
                                "MCP SSE server sent a message that is not JSON-RPC: {error}"
                            ),
                        }
                    }
                    _ => {}
                }
            }
        });
        let reader = AbortOnDrop::new(reader);
        let endpoint = loop {
            if let Some(endpoint) = endpoint_rx.borrow_and_update().clone() {
                break endpoint;
            }
            if endpoint_rx.changed().await.is_err() {
                return Err(SseError::NoEndpoint(url.to_string()));
            }
        };
        Ok(Self {
            client,
            headers,
            endpoint,
            incoming,
            _reader: reader,
        })
    }
}

impl Transport<RoleClient> for SseClientTransport {
    type Error = SseError;

    fn send(
        &mut self,
        item: TxJsonRpcMessage<RoleClient>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        let request = self
            .client
            .post(self.endpoint.clone())
            .headers(self.headers.clone())
            .json(&item);
        let endpoint = self.endpoint.clone();
        async move {
            let response = request
                .send()
                .await
                .map_err(|error| SseError::Http(format!("POST {endpoint}: {error}")))?;
            if response.status().is_success() {
                Ok(())
            } else {
                Err(SseError::Http(format!(
                    "POST {endpoint}: HTTP {}",
                    response.status()
                )))
            }
        }
    }

    fn receive(&mut self) -> impl Future<Output = Option<RxJsonRpcMessage<RoleClient>>> + Send {
        self.incoming.recv()
    }

    async fn close(&mut self) -> Result<(), Self::Error> {
        self.incoming.close();
        Ok(())
    }
}
