//! `ExitPlanMode`: in plan mode the model explores read-only, then presents its plan with this
//! tool. The permission policy asks the user; approving it is what ends plan mode.

use std::sync::Arc;

use async_trait::async_trait;
use keel_policy::PermissionMode;
use keel_tools::{Tool, ToolContext, ToolError, ToolOutput};
use serde_json::{Value, json};

use crate::Shared;

/// The tool's name, as Claude Code names it.
pub(crate) const NAME: &str = "ExitPlanMode";

/// Presents a plan for approval and, once the user approves, leaves plan mode.
pub struct ExitPlanMode {
    shared: Arc<Shared>,
}

impl ExitPlanMode {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }
}

#[async_trait]
impl Tool for ExitPlanMode {
    fn name(&self) -> &str {
        NAME
    }

    fn description(&self) -> &str {
        "Use this when you are in plan mode and have finished researching: present your plan \
         (Markdown, concise, the concrete steps and files you will change) for the user to \
         approve. Once approved you may start making changes. Only use it for tasks that change \
         code, not for questions or research."
    }

    fn input_schema(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "plan": {
                    "type": "string",
                    "description": "The plan to present to the user, in Markdown."
                }
            },
            "required": ["plan"],
            "additionalProperties": false
        })
    }

    fn is_read_only(&self) -> bool {
        false
    }

    async fn call(&self, input: Value, _ctx: &ToolContext) -> Result<ToolOutput, ToolError> {
        let plan = input["plan"].as_str().unwrap_or_default();
        if self.shared.permissions.mode() != PermissionMode::Plan {
            return Ok(ToolOutput::text(
                "Not in plan mode, so there is nothing to exit; go ahead with the task.",
            ));
        }
        // This call only runs after the user approved it (the policy asks in plan mode).
        self.shared.permissions.set_mode(PermissionMode::Default);
        Ok(ToolOutput {
            content: "The user approved your plan. Plan mode is over: you can now make the \
                      changes, starting with the first step."
                .to_string(),
            structured: Some(json!({"plan": plan, "isAgent": false})),
            images: Vec::new(),
        })
    }
}
