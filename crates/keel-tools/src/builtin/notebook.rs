//! Jupyter notebooks: Read shows their cells with outputs; NotebookEdit replaces, inserts or
//! deletes one cell and leaves everything else in the file as it was.

use std::path::Path;

use async_trait::async_trait;
use base64::Engine as _;
use serde_json::{Map, Value, json};

use super::common::{atomic_write, blocking, not_found, optional_str, required_str};
use super::media::{ImageKind, prepare_image};
use crate::{Tool, ToolContext, ToolError, ToolOutput};

/// Notebooks larger than this are not parsed.
const MAX_NOTEBOOK_BYTES: u64 = 64 * 1024 * 1024;
/// Characters of one cell's outputs shown before they are cut.
const MAX_OUTPUT_CHARS: usize = 10_000;
/// Output images sent with one read, at most.
const MAX_OUTPUT_IMAGES: usize = 10;

/// Whether `path` names a notebook.
pub(crate) fn is_notebook(path: &Path) -> bool {
    path.extension()
        .is_some_and(|ext| ext.eq_ignore_ascii_case("ipynb"))
}

fn load(path: &Path, size: u64) -> Result<(String, Value), ToolError> {
    if size > MAX_NOTEBOOK_BYTES {
        return Err(ToolError::Failed(format!(
            "{} is a notebook of {size} bytes, too large to open (the limit is {} MB).",
            path.display(),
            MAX_NOTEBOOK_BYTES / (1024 * 1024)
        )));
    }
    let text = std::fs::read_to_string(path).map_err(|source| ToolError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let notebook: Value = serde_json::from_str(&text).map_err(|e| {
        ToolError::Failed(format!(
            "{} is not a valid notebook: its JSON is broken at line {}, column {} ({e}). Read \
             it as text with offset and limit to see the damage.",
            path.display(),
            e.line(),
            e.column()
        ))
    })?;
    if !notebook["cells"].is_array() {
        return Err(ToolError::Failed(format!(
            "{} is not a Jupyter notebook: it has no \"cells\" list.",
            path.display()
        )));
    }
    Ok((text, notebook))
}

/// The notebook's language, for the model and for code fences.
fn language(notebook: &Value) -> String {
    notebook["metadata"]["kernelspec"]["language"]
        .as_str()
        .or_else(|| notebook["metadata"]["language_info"]["name"].as_str())
        .unwrap_or("python")
        .to_string()
}

/// A cell's source, which nbformat stores as a string or a list of lines.
fn source_text(source: &Value) -> String {
    match source {
        Value::String(text) => text.clone(),
        Value::Array(lines) => lines.iter().filter_map(Value::as_str).collect(),
        _ => String::new(),
    }
}

/// The id a cell is known by: its own (nbformat 4.5) or `cell-N` by position.
fn cell_id(cell: &Value, index: usize) -> String {
    cell["id"]
        .as_str()
        .map_or_else(|| format!("cell-{index}"), str::to_string)
}

/// Read of a notebook: every cell with its id, type and source, then its outputs; output
/// images go to the model as images.
pub(crate) fn read_notebook(path: &Path, size: u64) -> Result<ToolOutput, ToolError> {
    let (_, notebook) = load(path, size)?;
    let language = language(&notebook);
    let cells = notebook["cells"].as_array().map_or(&[][..], Vec::as_slice);
    let mut content = format!(
        "Jupyter notebook {} ({language}, {} cell{}).",
        path.display(),
        cells.len(),
        if cells.len() == 1 { "" } else { "s" }
    );
    let mut images = Vec::new();
    let mut omitted_images = 0usize;
    let mut listed = Vec::new();
    for (index, cell) in cells.iter().enumerate() {
        let id = cell_id(cell, index);
        let kind = cell["cell_type"].as_str().unwrap_or("code");
        let source = source_text(&cell["source"]);
        let count = match &cell["execution_count"] {
            Value::Number(n) => format!(" execution_count=\"{n}\""),
            _ => String::new(),
        };
        content.push_str(&format!(
            "\n\n<cell id=\"{id}\" cell_type=\"{kind}\"{count}>\n{source}\n</cell>"
        ));
        let mut outputs_text = String::new();
        for output in cell["outputs"].as_array().into_iter().flatten() {
            render_output(output, &mut outputs_text, &mut |kind, data| {
                if images.len() >= MAX_OUTPUT_IMAGES {
                    omitted_images += 1;
                    return "[image output not shown: too many images in one read]".into();
                }
                match output_image(kind, data) {
                    Ok(source) => {
                        images.push(source);
                        format!("[image output {}: attached]", images.len())
                    }
                    Err(why) => format!("[image output that cannot be shown: {why}]"),
                }
            });
        }
        if !outputs_text.is_empty() {
            let outputs_text = cut(outputs_text.trim_end(), MAX_OUTPUT_CHARS);
            content.push_str(&format!(
                "\n<outputs cell=\"{id}\">\n{outputs_text}\n</outputs>"
            ));
        }
        listed.push(json!({"id": id, "cell_type": kind}));
    }
    if omitted_images > 0 {
        content.push_str(&format!(
            "\n\n({omitted_images} more image output(s) were not attached; at most {MAX_OUTPUT_IMAGES} are sent per read.)"
        ));
    }
    Ok(ToolOutput {
        content,
        structured: Some(json!({
            "type": "notebook",
            "file": {"filePath": path.display().to_string(), "language": language, "cells": listed}
        })),
        images,
    })
}

/// Appends one output's text to `out`; images are handed to `image`, which returns the
/// placeholder text to show instead.
fn render_output(
    output: &Value,
    out: &mut String,
    image: &mut dyn FnMut(ImageKind, &str) -> String,
) {
    match output["output_type"].as_str() {
        Some("stream") => out.push_str(&source_text(&output["text"])),
        Some("execute_result" | "display_data") => {
            let data = &output["data"];
            let picture = [
                ("image/png", ImageKind::Png),
                ("image/jpeg", ImageKind::Jpeg),
            ]
            .into_iter()
            .find_map(|(mime, kind)| data[mime].as_str().map(|d| (kind, d.to_string())));
            let picture = picture.or_else(|| {
                // Base64 may be stored as a list of lines too.
                data["image/png"]
                    .as_array()
                    .map(|_| (ImageKind::Png, source_text(&data["image/png"])))
            });
            if let Some((kind, encoded)) = picture {
                out.push_str(&image(kind, &encoded));
                out.push('\n');
            } else if data["text/plain"].is_null() && !data["text/html"].is_null() {
                out.push_str("[HTML output]\n");
            }
            if !data["text/plain"].is_null() {
                out.push_str(&source_text(&data["text/plain"]));
                out.push('\n');
            }
        }
        Some("error") => {
            let traceback = output["traceback"]
                .as_array()
                .map(|lines| {
                    lines
                        .iter()
                        .filter_map(Value::as_str)
                        .map(strip_ansi)
                        .collect::<Vec<_>>()
                        .join("\n")
                })
                .unwrap_or_default();
            if traceback.is_empty() {
                out.push_str(&format!(
                    "{}: {}\n",
                    output["ename"].as_str().unwrap_or("Error"),
                    output["evalue"].as_str().unwrap_or_default()
                ));
            } else {
                out.push_str(&traceback);
                out.push('\n');
            }
        }
        _ => {}
    }
}

fn output_image(kind: ImageKind, encoded: &str) -> Result<Value, String> {
    let compact: String = encoded.chars().filter(|c| !c.is_whitespace()).collect();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(compact.as_bytes())
        .map_err(|e| format!("its base64 data is broken ({e})"))?;
    prepare_image(kind, bytes).map(|prepared| prepared.source)
}

/// Removes terminal colour codes (tracebacks are full of them).
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn cut(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!(
            "{}\n... [output cut: {} more characters]",
            &text[..at],
            text[at..].chars().count()
        ),
        None => text.to_string(),
    }
}

/// The NotebookEdit tool.
#[derive(Debug, Clone, Copy, Default)]
pub struct NotebookEdit;

#[async_trait]
impl Tool for NotebookEdit {
    fn name(&self) -> &str {
        "NotebookEdit"
    }

    fn description(&self) -> &str {
        "Changes one cell of a Jupyter notebook (.ipynb): replaces its source, inserts a new \
         cell, or deletes it, leaving the other cells, their outputs and the notebook's \
         metadata as they were. Read the notebook first: cells are shown with their ids. \
         `cell_id` names the cell (its id, or `cell-N` for the N-th cell counting from 0). \
         edit_mode `replace` (the default) sets the cell's source (and type, if `cell_type` is \
         given) and clears a code cell's stale outputs; `insert` adds a new cell after \
         `cell_id`, or at the start without it, and needs `cell_type`; `delete` removes the \
         cell (`new_source` is then ignored). Use Edit, not this, for other files."
    }

    fn input_schema(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "notebook_path": {
                    "type": "string",
                    "description": "The notebook to edit (absolute, or relative to the current directory)"
                },
                "cell_id": {
                    "type": "string",
                    "description": "The cell to replace or delete, or the one to insert after; omit it to insert at the start"
                },
                "new_source": {
                    "type": "string",
                    "description": "The cell's new source"
                },
                "cell_type": {
                    "type": "string",
                    "enum": ["code", "markdown"],
                    "description": "The cell's type; required for insert, optional for replace"
                },
                "edit_mode": {
                    "type": "string",
                    "enum": ["replace", "insert", "delete"],
                    "description": "replace (default), insert or delete"
                }
            },
            "required": ["notebook_path", "new_source"],
            "additionalProperties": false
        })
    }

    fn is_read_only(&self) -> bool {
        false
    }

    async fn call(&self, input: Value, ctx: &ToolContext) -> Result<ToolOutput, ToolError> {
        let path = ctx.resolve_path(required_str(&input, "notebook_path")?);
        let edit = Edit {
            cell_id: optional_str(&input, "cell_id")?.map(str::to_string),
            new_source: required_str(&input, "new_source")?.to_string(),
            cell_type: optional_str(&input, "cell_type")?.map(str::to_string),
            mode: match optional_str(&input, "edit_mode")?.unwrap_or("replace") {
                "replace" => Mode::Replace,
                "insert" => Mode::Insert,
                "delete" => Mode::Delete,
                other => {
                    return Err(ToolError::InvalidInput(format!(
                        "edit_mode {other:?} is not one of replace, insert, delete"
                    )));
                }
            },
        };
        let ctx = ctx.clone();
        blocking(move || edit_notebook(&path, &edit, &ctx)).await
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Replace,
    Insert,
    Delete,
}

impl Mode {
    fn as_str(self) -> &'static str {
        match self {
            Self::Replace => "replace",
            Self::Insert => "insert",
            Self::Delete => "delete",
        }
    }
}

struct Edit {
    cell_id: Option<String>,
    new_source: String,
    cell_type: Option<String>,
    mode: Mode,
}

fn edit_notebook(path: &Path, edit: &Edit, ctx: &ToolContext) -> Result<ToolOutput, ToolError> {
    if !is_notebook(path) {
        return Err(ToolError::InvalidInput(format!(
            "{} is not a Jupyter notebook (.ipynb). Use Edit to change other files.",
            path.display()
        )));
    }
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(not_found(path, &ctx.current_dir()));
        }
        Err(source) => {
            return Err(ToolError::Io {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    ctx.ensure_read_and_unchanged(path)?;
    let (text, mut notebook) = load(path, meta.len())?;
    let language = language(&notebook);
    let new_cell_ids = notebook["nbformat"].as_u64().unwrap_or(4) > 4
        || (notebook["nbformat"].as_u64() == Some(4)
            && notebook["nbformat_minor"].as_u64().unwrap_or(0) >= 5);
    let Some(cells) = notebook.get_mut("cells").and_then(Value::as_array_mut) else {
        return Err(ToolError::Failed(format!(
            "{} has no \"cells\" list.",
            path.display()
        )));
    };
    let lines_style = cells
        .iter()
        .find_map(|c| c.get("source"))
        .is_none_or(Value::is_array);
    let target = match &edit.cell_id {
        Some(id) => Some(find_cell(cells, id).ok_or_else(|| unknown_cell(path, cells, id))?),
        None => None,
    };
    let (id, cell_type) = match (edit.mode, target) {
        (Mode::Insert, after) => {
            let Some(cell_type) = edit.cell_type.clone() else {
                return Err(ToolError::InvalidInput(
                    "cell_type is required when edit_mode is insert: \"code\" or \"markdown\""
                        .into(),
                ));
            };
            let position = after.map_or(0, |i| i + 1);
            let id = new_id(cells);
            let cell = new_cell(
                &cell_type,
                new_cell_ids.then_some(id.as_str()),
                source_value(&edit.new_source, lines_style),
            );
            cells.insert(position, cell);
            let shown = if new_cell_ids {
                id
            } else {
                format!("cell-{position}")
            };
            (shown, cell_type)
        }
        (_, None) => {
            return Err(ToolError::InvalidInput(format!(
                "cell_id is required to {} a cell; Read the notebook to see the cell ids",
                edit.mode.as_str()
            )));
        }
        (Mode::Delete, Some(index)) => {
            let removed = cells.remove(index);
            (
                cell_id(&removed, index),
                removed["cell_type"].as_str().unwrap_or("code").to_string(),
            )
        }
        (Mode::Replace, Some(index)) => {
            let cell = &mut cells[index];
            let id = cell_id(cell, index);
            let Some(fields) = cell.as_object_mut() else {
                return Err(ToolError::Failed(format!(
                    "cell {id} of {} is not a JSON object; the notebook is damaged",
                    path.display()
                )));
            };
            let lines_style = fields.get("source").map_or(lines_style, Value::is_array);
            let old_type = fields
                .get("cell_type")
                .and_then(Value::as_str)
                .unwrap_or("code")
                .to_string();
            let cell_type = edit.cell_type.clone().unwrap_or(old_type);
            fields.insert("source".into(), source_value(&edit.new_source, lines_style));
            fields.insert("cell_type".into(), Value::String(cell_type.clone()));
            if cell_type == "code" {
                // The old outputs no longer belong to this source.
                fields.insert("execution_count".into(), Value::Null);
                fields.insert("outputs".into(), json!([]));
            } else {
                fields.remove("execution_count");
                fields.remove("outputs");
            }
            sort_like_nbformat(fields);
            (id, cell_type)
        }
    };
    let updated = serialize_like(&notebook, &text)?;
    atomic_write(path, updated.as_bytes())?;
    ctx.record_read(path);
    let content = match edit.mode {
        Mode::Replace => format!("Updated cell {id} ({cell_type}) of {}.", path.display()),
        Mode::Insert => match &edit.cell_id {
            Some(after) => format!(
                "Inserted a new {cell_type} cell {id} after cell {after} in {}.",
                path.display()
            ),
            None => format!(
                "Inserted a new {cell_type} cell {id} at the start of {}.",
                path.display()
            ),
        },
        Mode::Delete => format!("Deleted cell {id} from {}.", path.display()),
    };
    Ok(ToolOutput {
        content,
        structured: Some(json!({
            "new_source": edit.new_source,
            "cell_id": id,
            "cell_type": cell_type,
            "language": language,
            "edit_mode": edit.mode.as_str(),
            "notebook_path": path.display().to_string(),
        })),
        images: Vec::new(),
    })
}

/// The position of the cell `id` names: its nbformat id, else `cell-N` or `N` by position.
fn find_cell(cells: &[Value], id: &str) -> Option<usize> {
    if let Some(index) = cells.iter().position(|c| c["id"].as_str() == Some(id)) {
        return Some(index);
    }
    let number = id.strip_prefix("cell-").unwrap_or(id);
    number
        .parse::<usize>()
        .ok()
        .filter(|&index| index < cells.len())
}

fn unknown_cell(path: &Path, cells: &[Value], id: &str) -> ToolError {
    let known: Vec<String> = cells
        .iter()
        .enumerate()
        .take(20)
        .map(|(i, c)| cell_id(c, i))
        .collect();
    ToolError::InvalidInput(format!(
        "{} has no cell {id:?}. Its cells are: {}{}",
        path.display(),
        known.join(", "),
        if cells.len() > known.len() {
            ", ..."
        } else {
            ""
        }
    ))
}

/// A fresh cell id in nbformat's style (8 hex digits), unused in this notebook.
fn new_id(cells: &[Value]) -> String {
    loop {
        let hex = uuid::Uuid::new_v4().simple().to_string();
        let id = hex[..8].to_string();
        if !cells.iter().any(|c| c["id"].as_str() == Some(&id)) {
            return id;
        }
    }
}

/// A new cell with its keys in nbformat's (sorted) order.
fn new_cell(cell_type: &str, id: Option<&str>, source: Value) -> Value {
    let mut fields = Map::new();
    fields.insert("cell_type".into(), json!(cell_type));
    if cell_type == "code" {
        fields.insert("execution_count".into(), Value::Null);
    }
    if let Some(id) = id {
        fields.insert("id".into(), json!(id));
    }
    fields.insert("metadata".into(), json!({}));
    if cell_type == "code" {
        fields.insert("outputs".into(), json!([]));
    }
    fields.insert("source".into(), source);
    Value::Object(fields)
}

/// Puts a changed cell's keys back in sorted order, as nbformat writes them.
fn sort_like_nbformat(fields: &mut Map<String, Value>) {
    let mut entries: Vec<(String, Value)> = std::mem::take(fields).into_iter().collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    fields.extend(entries);
}

/// A source in the notebook's style: a list of lines (each keeping its `\n`) or one string.
fn source_value(source: &str, as_lines: bool) -> Value {
    if !as_lines {
        return Value::String(source.to_string());
    }
    Value::Array(
        source
            .split_inclusive('\n')
            .map(|line| Value::String(line.to_string()))
            .collect(),
    )
}

/// Serializes `notebook` formatted as `original` was: the same indentation (nbformat writes
/// one space) and the same final newline, so only the edited cell shows up in a diff.
fn serialize_like(notebook: &Value, original: &str) -> Result<String, ToolError> {
    let indent: String = original
        .lines()
        .nth(1)
        .map(|line| {
            line.chars()
                .take_while(|c| *c == ' ' || *c == '\t')
                .collect()
        })
        .unwrap_or_default();
    let mut out = Vec::with_capacity(original.len() + 256);
    let result = if original.trim_end().contains('\n') && !indent.is_empty() {
        let formatter = serde_json::ser::PrettyFormatter::with_indent(indent.as_bytes());
        let mut serializer = serde_json::Serializer::with_formatter(&mut out, formatter);
        serde::Serialize::serialize(notebook, &mut serializer)
    } else {
        serde_json::to_writer(&mut out, notebook)
    };
    result.map_err(|e| ToolError::Failed(format!("could not write the notebook: {e}")))?;
    let mut text = String::from_utf8(out)
        .map_err(|e| ToolError::Failed(format!("could not write the notebook: {e}")))?;
    if original.ends_with('\n') {
        text.push('\n');
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_keep_the_notebooks_style() {
        assert_eq!(source_value("a\nb\n", true), json!(["a\n", "b\n"]));
        assert_eq!(source_value("a\nb", true), json!(["a\n", "b"]));
        assert_eq!(source_value("", true), json!([]));
        assert_eq!(source_value("a\nb", false), json!("a\nb"));
        assert_eq!(source_text(&json!(["a\n", "b"])), "a\nb");
    }

    #[test]
    fn cells_are_found_by_id_or_position() {
        let cells = vec![json!({"id": "x1"}), json!({"id": "cell-0"}), json!({})];
        assert_eq!(find_cell(&cells, "x1"), Some(0));
        // An id that looks like a position is still an id first.
        assert_eq!(find_cell(&cells, "cell-0"), Some(1));
        assert_eq!(find_cell(&cells, "cell-2"), Some(2));
        assert_eq!(find_cell(&cells, "2"), Some(2));
        assert_eq!(find_cell(&cells, "cell-3"), None);
        assert_eq!(find_cell(&cells, "nope"), None);
    }

    #[test]
    fn ansi_colours_are_stripped() {
        assert_eq!(
            strip_ansi("\u{1b}[0;31mValueError\u{1b}[0m: bad"),
            "ValueError: bad"
        );
    }
}
