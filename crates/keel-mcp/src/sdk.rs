//! MCP servers that live inside the frontend's process (the Agent SDK's
//! `create_sdk_mcp_server`, declared as `{"type": "sdk", "name": ...}`): keel is their client as
//! for any server, and each JSON-RPC message travels through the frontend, which hands it to
//! the server and returns the server's response.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use rmcp::RoleClient;
use rmcp::service::{RxJsonRpcMessage, TxJsonRpcMessage};
use rmcp::transport::Transport;
use serde_json::Value;
use tokio::sync::mpsc;

/// A boxed future of the frontend's answer to one message.
pub type SdkAnswer = Pin<Box<dyn Future<Output = Result<Value, String>> + Send>>;

/// How keel reaches the frontend's in-process servers (for the Agent SDK: `control_request`s
/// with subtype `mcp_message` on stdout, answered on stdin).
pub trait SdkBridge: Send + Sync {
    /// Delivers one JSON-RPC `message` to the server named `server`. The answer is the
    /// server's JSON-RPC response for a request (anything for a notification), or why the
    /// message could not be delivered.
    fn send(&self, server: &str, message: Value) -> SdkAnswer;
}

/// Why a message to an in-process server could not be sent.
#[derive(Debug, thiserror::Error)]
pub enum SdkError {
    /// The message did not serialise (it always does; kept for the trait's sake).
    #[error("cannot encode the message for SDK server `{server}`: {reason}")]
    Encode {
        /// The server.
        server: String,
        /// What serde said.
        reason: String,
    },
}

/// The rmcp transport to one in-process server.
pub(crate) struct SdkTransport {
    bridge: Arc<dyn SdkBridge>,
    server: String,
    responses: mpsc::UnboundedSender<RxJsonRpcMessage<RoleClient>>,
    incoming: mpsc::UnboundedReceiver<RxJsonRpcMessage<RoleClient>>,
}

impl SdkTransport {
    pub(crate) fn new(bridge: Arc<dyn SdkBridge>, server: &str) -> Self {
        let (responses, incoming) = mpsc::unbounded_channel();
        Self {
            bridge,
            server: server.to_string(),
            responses,
            incoming,
        }
    }
}

impl Transport<RoleClient> for SdkTransport {
    type Error = SdkError;

    fn send(
        &mut self,
        item: TxJsonRpcMessage<RoleClient>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        let bridge = self.bridge.clone();
        let server = self.server.clone();
        let responses = self.responses.clone();
        async move {
            let message = serde_json::to_value(&item).map_err(|error| SdkError::Encode {
                server: server.clone(),
                reason: error.to_string(),
            })?;
            let request_id = match (message.get("method"), message.get("id")) {
                (Some(_), Some(id)) => Some(id.clone()),
                _ => None,
            };
            let answer = bridge.send(&server, message).await;
            // Only a request expects something back; a notification's answer is an
            // acknowledgement of delivery.
            let Some(id) = request_id else {
                if let Err(reason) = answer {
                    tracing::debug!(%server, %reason, "SDK MCP notification not delivered");
                }
                return Ok(());
            };
            let response = match answer {
                Ok(response) => serde_json::from_value::<RxJsonRpcMessage<RoleClient>>(response)
                    .map_err(|error| format!("its answer is not a JSON-RPC response ({error})")),
                Err(reason) => Err(reason),
            };
            let response = response.unwrap_or_else(|reason| failure(&id, &server, &reason));
            // The receiver is gone only when the connection is closing.
            let _ = responses.send(response);
            Ok(())
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

/// A JSON-RPC error response for request `id`, so the request fails instead of waiting.
fn failure(id: &Value, server: &str, reason: &str) -> RxJsonRpcMessage<RoleClient> {
    RxJsonRpcMessage::<RoleClient>::error(
        rmcp::model::ErrorData::internal_error(
            format!("SDK MCP server `{server}` did not answer: {reason}"),
            None,
        ),
        serde_json::from_value(id.clone()).ok(),
    )
}
