//! `ListMcpResourcesTool` and `ReadMcpResourceTool`: the model's way to MCP resources, with
//! Claude Code's names and input schemas.

use async_trait::async_trait;
use keel_tools::{Tool, ToolContext, ToolError, ToolOutput};
use serde_json::{Value, json};

use crate::client::McpManager;

/// Lists the resources of one server or of all of them.
pub struct ListResourcesTool {
    manager: McpManager,
}

impl ListResourcesTool {
    /// The tool over `manager`'s servers.
    pub fn new(manager: McpManager) -> Self {
        Self { manager }
    }
}

#[async_trait]
impl Tool for ListResourcesTool {
    fn name(&self) -> &str {
        "ListMcpResourcesTool"
    }

    fn description(&self) -> &str {
        "Lists available resources from configured MCP servers. Each resource object includes a \
         'server' field indicating which server it's from. Give `server` to list only that \
         server's resources; read one with ReadMcpResourceTool."
    }

    fn input_schema(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "server": {
                    "type": "string",
                    "description": "Optional server name to filter resources by"
                }
            },
            "additionalProperties": false
        })
    }

    fn is_read_only(&self) -> bool {
        true
    }

    async fn call(&self, input: Value, _ctx: &ToolContext) -> Result<ToolOutput, ToolError> {
        let server = input.get("server").and_then(Value::as_str);
        let resources = self
            .manager
            .list_resources(server)
            .await
            .map_err(|error| ToolError::Failed(error.to_string()))?;
        let items: Vec<Value> = resources
            .iter()
            .map(|resource| {
                let mut item = json!({
                    "uri": resource.uri,
                    "name": resource.name,
                    "server": resource.server,
                });
                if let Some(mime) = &resource.mime_type {
                    item["mimeType"] = json!(mime);
                }
                if let Some(description) = &resource.description {
                    item["description"] = json!(description);
                }
                item
            })
            .collect();
        let structured = Value::Array(items);
        let content = if resources.is_empty() {
            "No resources found. MCP servers may still provide tools even if they have no \
             resources."
                .to_string()
        } else {
            serde_json::to_string_pretty(&structured).unwrap_or_default()
        };
        Ok(ToolOutput {
            content,
            structured: Some(structured),
            images: Vec::new(),
        })
    }
}

/// Reads one resource of one server.
pub struct ReadResourceTool {
    manager: McpManager,
}

impl ReadResourceTool {
    /// The tool over `manager`'s servers.
    pub fn new(manager: McpManager) -> Self {
        Self { manager }
    }
}

#[async_trait]
impl Tool for ReadResourceTool {
    fn name(&self) -> &str {
        "ReadMcpResourceTool"
    }

    fn description(&self) -> &str {
        "Reads a specific resource from an MCP server, identified by server name and resource \
         URI (as listed by ListMcpResourcesTool). Text comes back as text; images are shown to \
         you; other binary contents are saved to a file whose path is returned."
    }

    fn input_schema(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "server": {"type": "string", "description": "The MCP server name"},
                "uri": {"type": "string", "description": "The resource URI to read"}
            },
            "required": ["server", "uri"],
            "additionalProperties": false
        })
    }

    fn is_read_only(&self) -> bool {
        true
    }

    async fn call(&self, input: Value, ctx: &ToolContext) -> Result<ToolOutput, ToolError> {
        let field = |key: &str| {
            input
                .get(key)
                .and_then(Value::as_str)
                .ok_or_else(|| ToolError::InvalidInput(format!("`{key}` must be a string")))
        };
        let (server, uri) = (field("server")?, field("uri")?);
        self.manager
            .read_resource(server, uri, &ctx.spill_dir)
            .await
            .map_err(|error| ToolError::Failed(error.to_string()))
    }
}
