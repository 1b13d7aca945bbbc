//! Turning what MCP servers send (tool results, resource contents, prompt messages) into what
//! keel hands the model: text, API image sources and structured values.

use std::path::Path;

use base64::Engine as _;
use serde_json::{Value, json};

/// Text and images gathered from MCP content blocks.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Converted {
    /// Text of the blocks that have text, one block per paragraph.
    pub text: String,
    /// Whether any block contributed text (an empty text block counts).
    pub has_text: bool,
    /// Images as API image sources (`{"type":"base64","media_type","data"}`).
    pub images: Vec<Value>,
}

impl Converted {
    fn push_text(&mut self, text: &str) {
        if self.has_text {
            self.text.push('\n');
        }
        self.text.push_str(text);
        self.has_text = true;
    }
}

/// Media types the Messages API accepts as image sources.
const API_IMAGE_TYPES: [&str; 4] = ["image/png", "image/jpeg", "image/gif", "image/webp"];

/// An API image source for base64 `data` of `mime`, if the API takes that type.
pub fn image_source(mime: &str, data: &str) -> Option<Value> {
    API_IMAGE_TYPES
        .contains(&mime)
        .then(|| json!({"type": "base64", "media_type": mime, "data": data}))
}

/// Converts MCP content blocks (`text`, `image`, `audio`, `resource`, `resource_link`):
/// text stays text, images become image sources, embedded text resources become text, and
/// what the model cannot take (audio, binary blobs, unsupported image types) is described in
/// a line of text instead of being dropped silently.
pub fn convert_blocks(blocks: &[Value]) -> Converted {
    let mut out = Converted::default();
    for block in blocks {
        let kind = block.get("type").and_then(Value::as_str).unwrap_or("");
        match kind {
            "text" => out.push_text(block.get("text").and_then(Value::as_str).unwrap_or("")),
            "image" => {
                let mime = block.get("mimeType").and_then(Value::as_str).unwrap_or("");
                let data = block.get("data").and_then(Value::as_str).unwrap_or("");
                match image_source(mime, data) {
                    Some(source) => out.images.push(source),
                    None => out.push_text(&format!(
                        "[image of type {mime} omitted: the model accepts png, jpeg, gif and webp]"
                    )),
                }
            }
            "audio" => {
                let mime = block
                    .get("mimeType")
                    .and_then(Value::as_str)
                    .unwrap_or("audio");
                let bytes = base64_len(block.get("data").and_then(Value::as_str).unwrap_or(""));
                out.push_text(&format!("[audio ({mime}, {bytes} bytes) omitted]"));
            }
            "resource" => {
                let resource = block.get("resource").cloned().unwrap_or(Value::Null);
                let uri = resource.get("uri").and_then(Value::as_str).unwrap_or("");
                let mime = resource.get("mimeType").and_then(Value::as_str);
                if let Some(text) = resource.get("text").and_then(Value::as_str) {
                    out.push_text(&format!("[Resource {uri}]\n{text}"));
                } else if let Some(blob) = resource.get("blob").and_then(Value::as_str) {
                    match mime.and_then(|mime| image_source(mime, blob)) {
                        Some(source) => out.images.push(source),
                        None => out.push_text(&format!(
                            "[Binary resource {uri} ({}, {} bytes) omitted]",
                            mime.unwrap_or("unknown type"),
                            base64_len(blob)
                        )),
                    }
                }
            }
            "resource_link" => {
                let uri = block.get("uri").and_then(Value::as_str).unwrap_or("");
                let name = block.get("name").and_then(Value::as_str).unwrap_or(uri);
                let mut line = format!("[Resource link: {name} ({uri})");
                if let Some(description) = block.get("description").and_then(Value::as_str) {
                    line.push_str(": ");
                    line.push_str(description);
                }
                line.push(']');
                out.push_text(&line);
            }
            other => out.push_text(&format!("[unsupported MCP content of type `{other}`]")),
        }
    }
    out
}

/// The decoded size of base64 text, without decoding it.
fn base64_len(data: &str) -> usize {
    let trimmed = data.trim_end_matches('=');
    trimmed.len() * 3 / 4
}

/// Decodes a resource blob and saves it under `dir`, returning the file written; for binary
/// resources the model can then inspect with its other tools.
pub fn save_blob(dir: &Path, uri: &str, blob: &str) -> Result<std::path::PathBuf, String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(blob.trim())
        .map_err(|error| format!("the server sent invalid base64 for {uri}: {error}"))?;
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let stem: String = uri
        .rsplit('/')
        .find(|part| !part.is_empty())
        .unwrap_or("resource")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(60)
        .collect();
    let path = dir.join(format!("mcp-{}-{stem}", std::process::id()));
    let path = unique(path);
    std::fs::write(&path, bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path)
}

fn unique(path: std::path::PathBuf) -> std::path::PathBuf {
    if !path.exists() {
        return path;
    }
    (1..)
        .map(|n| {
            let mut name = path.as_os_str().to_os_string();
            name.push(format!(".{n}"));
            std::path::PathBuf::from(name)
        })
        .find(|candidate| !candidate.exists())
        .unwrap_or(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_become_text_and_images() {
        let converted = convert_blocks(&[
            json!({"type": "text", "text": "first"}),
            json!({"type": "image", "mimeType": "image/png", "data": "iVBO"}),
            json!({"type": "image", "mimeType": "image/svg+xml", "data": "PHN2"}),
            json!({"type": "audio", "mimeType": "audio/wav", "data": "AAAAAAAA"}),
            json!({"type": "resource", "resource": {"uri": "demo://a", "mimeType": "text/plain", "text": "body"}}),
            json!({"type": "resource", "resource": {"uri": "demo://b", "mimeType": "application/octet-stream", "blob": "AAAA"}}),
            json!({"type": "resource_link", "uri": "demo://c", "name": "c.md", "description": "a doc"}),
        ]);
        assert_eq!(
            converted.images,
            [json!({"type": "base64", "media_type": "image/png", "data": "iVBO"})]
        );
        assert_eq!(
            converted.text,
            "first\n[image of type image/svg+xml omitted: the model accepts png, jpeg, gif and webp]\n\
             [audio (audio/wav, 6 bytes) omitted]\n[Resource demo://a]\nbody\n\
             [Binary resource demo://b (application/octet-stream, 3 bytes) omitted]\n\
             [Resource link: c.md (demo://c): a doc]"
        );
        let only_image =
            convert_blocks(&[json!({"type": "image", "mimeType": "image/gif", "data": "R0lG"})]);
        assert!(!only_image.has_text);
        assert_eq!(only_image.images.len(), 1);
    }

    #[test]
    fn blobs_are_saved_decoded() {
        let dir = tempfile::tempdir().unwrap();
        let path = save_blob(dir.path(), "demo://resource/x y.bin", "aGVsbG8=").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"hello");
        assert!(
            path.file_name()
                .unwrap()
                .to_string_lossy()
                .ends_with("x_y.bin")
        );
        let again = save_blob(dir.path(), "demo://resource/x y.bin", "aGVsbG8=").unwrap();
        assert_ne!(path, again);
        let error = save_blob(dir.path(), "demo://z", "!!").unwrap_err();
        assert!(error.contains("invalid base64 for demo://z"), "{error}");
    }
}
