//! Hooks whose code lives in the frontend (the Agent SDK's hook callbacks). keel-policy decides
//! which run and what their answers mean, exactly as for command hooks; this module carries one
//! call to the frontend as an [`Event::HookCallback`] and its answer back as an
//! [`Op::HookResult`](keel_protocol::Op).

use std::collections::HashMap;
use std::sync::Mutex;

use keel_policy::hooks::{CallbackHook, CallbackReply};
use keel_protocol::{Event, HookReply};
use serde_json::Value;
use tokio::sync::oneshot;

use crate::emit::{Emitter, lock};

/// Callback requests waiting for the frontend's answer, by request id.
#[derive(Default)]
pub(crate) struct HookReplies {
    pending: Mutex<HashMap<String, oneshot::Sender<HookReply>>>,
}

impl HookReplies {
    /// Delivers an answer; false when nothing waits for it (it came too late, or twice).
    pub(crate) fn answer(&self, request_id: &str, reply: HookReply) -> bool {
        match lock(&self.pending).remove(request_id) {
            Some(waiting) => waiting.send(reply).is_ok(),
            None => false,
        }
    }

    /// Asks the frontend to run `callback` with `input` and waits for its answer. Dropping the
    /// future (timeout, interrupt) forgets the request, so a late answer is ignored.
    pub(crate) async fn call(
        &self,
        emitter: &Emitter,
        callback: CallbackHook,
        input: Value,
    ) -> CallbackReply {
        let request_id = uuid::Uuid::new_v4().to_string();
        let (tx, rx) = oneshot::channel();
        lock(&self.pending).insert(request_id.clone(), tx);
        let _forget = Forget {
            replies: self,
            request_id: request_id.clone(),
        };
        let tool_use_id = input
            .get("tool_use_id")
            .and_then(Value::as_str)
            .map(str::to_string);
        emitter.emit(Event::HookCallback {
            request_id,
            callback_id: callback.id,
            input,
            tool_use_id,
        });
        match rx.await {
            Ok(HookReply::Output { output }) => CallbackReply::Output(output),
            Ok(HookReply::Failed { error }) => CallbackReply::Failed(error),
            Err(_) => CallbackReply::Failed("the frontend stopped before answering".into()),
        }
    }
}

/// Removes a request from the pending table when its caller stops waiting.
struct Forget<'a> {
    replies: &'a HookReplies,
    request_id: String,
}

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        lock(&self.replies.pending).remove(&self.request_id);
    }
}
