//! Write: creates a file or replaces one the model has read, atomically.

use async_trait::async_trait;
use serde_json::{Value, json};

use super::common::{blocking, required_str, write_file};
use crate::{Tool, ToolContext, ToolError, ToolOutput};

/// The Write tool.
#[derive(Debug, Clone, Copy, Default)]
pub struct Write;

#[async_trait]
impl Tool for Write {
    fn name(&self) -> &str {
        "Write"
    }

    fn description(&self) -> &str {
        "Writes `content` to `file_path`, creating the file (and any missing parent \
         directories) or replacing it entirely. Use it for new files or complete rewrites; for \
         changing part of an existing file prefer Edit, which sends only the change. An \
         existing file must have been read with Read in this session and not changed since, \
         otherwise the write is refused so nothing is overwritten unseen. The path may be \
         absolute or relative to the current directory. The file is replaced atomically and \
         keeps its permissions."
    }

    fn input_schema(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "file_path": {
                    "type": "string",
                    "description": "The file to write (absolute, or relative to the current directory)"
                },
                "content": {
                    "type": "string",
                    "description": "The complete new content of the file"
                }
            },
            "required": ["file_path", "content"],
            "additionalProperties": false
        })
    }

    fn is_read_only(&self) -> bool {
        false
    }

    async fn call(&self, input: Value, ctx: &ToolContext) -> Result<ToolOutput, ToolError> {
        let path = ctx.resolve_path(required_str(&input, "file_path")?);
        let content = required_str(&input, "content")?.to_string();
        let ctx = ctx.clone();
        blocking(move || {
            let display = path.display().to_string();
            let existed = match std::fs::metadata(&path) {
                Ok(meta) if meta.is_dir() => {
                    return Err(ToolError::InvalidInput(format!(
                        "{display} is a directory; give the path of a file inside it."
                    )));
                }
                Ok(_) => true,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
                Err(source) => return Err(ToolError::Io { path, source }),
            };
            if existed {
                ctx.ensure_read_and_unchanged(&path)?;
            } else if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(|source| ToolError::Io {
                    path: parent.to_path_buf(),
                    source,
                })?;
            }
            write_file(&ctx, &path, &content)?;
            // The model knows exactly what is in the file now, so a following Edit may go on.
            ctx.record_read(&path);
            let (kind, message) = if existed {
                ("update", format!("The file {display} has been updated."))
            } else {
                ("create", format!("File created successfully at: {display}"))
            };
            Ok(ToolOutput {
                content: message,
                structured: Some(json!({
                    "type": kind,
                    "filePath": display,
                    "content": content,
                })),
                images: Vec::new(),
            })
        })
        .await
    }
}
