//! The set of tools a session offers: checks each call against the tool's schema, runs it so
//! that a failure or a panic becomes an error result, and keeps the output within limits.

use std::fmt;
use std::sync::Arc;

use jsonschema::error::{TypeKind, ValidationErrorKind};
use jsonschema::{ValidationError, Validator};
use keel_protocol::ToolSpec;
use serde_json::Value;

use crate::{Tool, ToolContext, ToolError, output, spec_of};

/// What one tool call produced, ready to become a `tool_result` block.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCallResult {
    /// The text sent to the model.
    pub content: String,
    /// Whether the call failed (sent as `is_error: true`).
    pub is_error: bool,
    /// The structured form for frontends (Claude Code's `tool_use_result`), if any.
    pub structured: Option<Value>,
    /// Images sent after the text (API image `source` objects).
    pub images: Vec<Value>,
}

impl ToolCallResult {
    /// The content of the `tool_result` block: the text alone, or text and images as blocks.
    pub fn to_content(&self) -> keel_protocol::ToolResultContent {
        use keel_protocol::{ToolResultBlock, ToolResultContent};
        if self.images.is_empty() {
            return ToolResultContent::Text(self.content.clone());
        }
        let mut blocks = vec![ToolResultBlock::Text {
            text: self.content.clone(),
        }];
        blocks.extend(self.images.iter().map(|source| ToolResultBlock::Image {
            source: source.clone(),
        }));
        ToolResultContent::Blocks(blocks)
    }

    /// A failed call's result: text only.
    pub fn error(content: impl Into<String>) -> Self {
        Self {
            content: content.into(),
            is_error: true,
            structured: None,
            images: Vec::new(),
        }
    }
}

/// Why a tool could not be added to a registry.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// Two tools would answer to the same name.
    #[error("a tool named `{0}` is already registered; tool names must be unique")]
    Duplicate(String),
    /// The tool's input schema is not a valid JSON Schema.
    #[error("the input schema of tool `{tool}` does not compile: {message}")]
    InvalidSchema {
        /// The tool's name.
        tool: String,
        /// What is wrong with the schema.
        message: String,
    },
}

/// One registered tool with its compiled input validator.
struct Entry {
    tool: Arc<dyn Tool>,
    validator: Arc<Validator>,
}

/// The tools of a session, in the order they are offered to the model.
#[derive(Default)]
pub struct ToolRegistry {
    entries: Vec<Entry>,
}

impl fmt::Debug for ToolRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ToolRegistry")
            .field("tools", &self.names())
            .finish()
    }
}

impl ToolRegistry {
    /// A registry with no tools.
    pub fn new() -> Self {
        Self::default()
    }

    /// The built-in tools that need no configuration: Read, Write, Edit, Bash, Glob, Grep,
    /// NotebookEdit. (WebFetch and WebSearch need a model or a search backend; the caller
    /// registers them.)
    pub fn builtin() -> Self {
        let mut registry = Self::new();
        for tool in crate::builtin::all() {
            if let Err(error) = registry.register(tool) {
                // The built-ins have distinct names and schemas compiled by this crate's own
                // tests (`builtin_registry_has_the_seven_tools_in_order`), so this is a bug.
                tracing::error!("built-in tool rejected: {error}");
            }
        }
        registry
    }

    /// Adds a tool; its name must be new and its schema must compile.
    pub fn register(&mut self, tool: Arc<dyn Tool>) -> Result<(), RegistryError> {
        let name = tool.name().to_string();
        if self.position(&name).is_some() {
            return Err(RegistryError::Duplicate(name));
        }
        let validator = jsonschema::validator_for(&tool.input_schema()).map_err(|error| {
            RegistryError::InvalidSchema {
                tool: name.clone(),
                message: error.to_string(),
            }
        })?;
        self.entries.push(Entry {
            tool,
            validator: Arc::new(validator),
        });
        Ok(())
    }

    /// Removes a tool by name, returning it if it was there.
    pub fn remove(&mut self, name: &str) -> Option<Arc<dyn Tool>> {
        let index = self.position(name)?;
        Some(self.entries.remove(index).tool)
    }

    /// Keeps only the tools whose name passes `keep` (e.g. an `--allowedTools` list).
    pub fn retain(&mut self, mut keep: impl FnMut(&str) -> bool) {
        self.entries.retain(|entry| keep(entry.tool.name()));
    }

    /// The tool names, in registration order.
    pub fn names(&self) -> Vec<String> {
        self.entries
            .iter()
            .map(|entry| entry.tool.name().to_string())
            .collect()
    }

    /// The specs sent to the model, in registration order.
    pub fn specs(&self) -> Vec<ToolSpec> {
        self.entries
            .iter()
            .map(|entry| spec_of(entry.tool.as_ref()))
            .collect()
    }

    /// Whether the named tool only observes; `None` if there is no such tool.
    pub fn is_read_only(&self, name: &str) -> Option<bool> {
        self.find(name).map(|entry| entry.tool.is_read_only())
    }

    /// The named tool, if registered.
    pub fn get(&self, name: &str) -> Option<Arc<dyn Tool>> {
        self.find(name).map(|entry| entry.tool.clone())
    }

    /// Whether no tool is registered.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// How many tools are registered.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Checks that `name` is a registered tool and `input` satisfies its schema, so a caller
    /// can refuse a malformed call before asking anyone's permission for it. The error is the
    /// text the model is sent.
    pub fn check(&self, name: &str, input: &Value) -> Result<(), String> {
        let Some(entry) = self.find(name) else {
            return Err(format!("No such tool available: {name}"));
        };
        let problems = describe_violations(input, entry.validator.iter_errors(input));
        if problems.is_empty() {
            return Ok(());
        }
        let noun = if problems.len() == 1 {
            "issue"
        } else {
            "issues"
        };
        Err(format!(
            "InputValidationError: {name} failed due to the following {noun}:\n{}",
            problems.join("\n")
        ))
    }

    /// Runs one call: unknown tools, schema violations, tool errors and panics all become
    /// error results; every result's text is kept within [`output::MAX_OUTPUT_CHARS`].
    pub async fn call(&self, name: &str, input: Value, ctx: &ToolContext) -> ToolCallResult {
        if let Err(problem) = self.check(name, &input) {
            return ToolCallResult::error(problem);
        }
        let Some(entry) = self.find(name) else {
            return ToolCallResult::error(format!("No such tool available: {name}"));
        };

        // A task of its own, so a panicking tool fails alone (as a JoinError) instead of
        // unwinding through the engine. The guard aborts it if this future is dropped, so the
        // task always has an owner.
        let tool = entry.tool.clone();
        let task_ctx = ctx.clone();
        let handle = tokio::spawn(async move { tool.call(input, &task_ctx).await });
        let mut guard = AbortOnDrop(Some(handle));
        let joined = match guard.0.as_mut() {
            Some(handle) => handle.await,
            None => return ToolCallResult::error(format!("internal error in tool {name}")),
        };
        guard.0 = None;

        let spill_dir = &ctx.spill_dir;
        match joined {
            Ok(Ok(out)) => ToolCallResult {
                content: limited(out.content, spill_dir).await,
                is_error: false,
                structured: out.structured,
                images: out.images,
            },
            Ok(Err(ToolError::WithOutput(out))) => ToolCallResult {
                content: limited(out.content, spill_dir).await,
                is_error: true,
                structured: out.structured,
                images: out.images,
            },
            Ok(Err(error)) => ToolCallResult::error(limited(error.to_string(), spill_dir).await),
            Err(join_error) => {
                let why = if join_error.is_panic() {
                    panic_message(join_error.into_panic())
                } else {
                    "the call was cancelled".to_string()
                };
                ToolCallResult::error(format!("internal error in tool {name}: {why}"))
            }
        }
    }

    fn position(&self, name: &str) -> Option<usize> {
        self.entries
            .iter()
            .position(|entry| entry.tool.name() == name)
    }

    fn find(&self, name: &str) -> Option<&Entry> {
        self.entries.iter().find(|entry| entry.tool.name() == name)
    }
}

/// [`output::limit`], with the spill file written on the blocking pool rather than on a
/// runtime thread (tens of megabytes take tens of milliseconds to write).
async fn limited(text: String, spill_dir: &std::path::Path) -> String {
    if text.len() <= output::MAX_OUTPUT_CHARS {
        return text;
    }
    let dir = spill_dir.to_path_buf();
    match tokio::task::spawn_blocking(move || output::limit(text, &dir)).await {
        Ok(text) => text,
        Err(error) => format!("internal error while shortening the tool output: {error}"),
    }
}

/// Aborts the task it holds when dropped.
struct AbortOnDrop<T>(Option<tokio::task::JoinHandle<T>>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        if let Some(handle) = &self.0 {
            handle.abort();
        }
    }
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_string()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "the tool panicked".to_string()
    }
}

/// One line per problem, each naming the parameter, in Claude Code's wording where it has one.
fn describe_violations<'a>(
    input: &Value,
    errors: impl Iterator<Item = ValidationError<'a>>,
) -> Vec<String> {
    let mut lines = Vec::new();
    for error in errors {
        let param = parameter_name(error.instance_path().as_str());
        let line = match error.kind() {
            ValidationErrorKind::Required { property } => {
                let property = property
                    .as_str()
                    .map_or(property.to_string(), str::to_string);
                format!(
                    "The required parameter `{}` is missing",
                    join_param(&param, &property)
                )
            }
            ValidationErrorKind::AdditionalProperties { unexpected }
            | ValidationErrorKind::UnevaluatedProperties { unexpected } => {
                for property in unexpected {
                    lines.push(format!(
                        "An unexpected parameter `{}` was provided",
                        join_param(&param, property)
                    ));
                }
                continue;
            }
            ValidationErrorKind::Type { .. } if param.is_empty() => format!(
                "The input must be a JSON object of parameters, but a {} was provided",
                json_type_of(input)
            ),
            ValidationErrorKind::Type { kind } => {
                let expected = match kind {
                    TypeKind::Single(t) => t.to_string(),
                    TypeKind::Multiple(set) => set
                        .iter()
                        .map(|t| t.to_string())
                        .collect::<Vec<_>>()
                        .join(" or "),
                };
                format!(
                    "The parameter `{param}` type is expected as `{expected}` but provided as `{}`",
                    json_type_of(error.instance())
                )
            }
            ValidationErrorKind::Enum { options } => format!(
                "The parameter `{param}` must be one of {}, but {} was provided",
                options_list(options),
                error.instance()
            ),
            ValidationErrorKind::Constant { expected_value } => format!(
                "The parameter `{param}` must be {expected_value}, but {} was provided",
                error.instance()
            ),
            ValidationErrorKind::Minimum { limit } => format!(
                "The parameter `{param}` must be at least {limit}, but {} was provided",
                error.instance()
            ),
            ValidationErrorKind::Maximum { limit } => format!(
                "The parameter `{param}` must be at most {limit}, but {} was provided",
                error.instance()
            ),
            ValidationErrorKind::ExclusiveMinimum { limit } => format!(
                "The parameter `{param}` must be greater than {limit}, but {} was provided",
                error.instance()
            ),
            ValidationErrorKind::ExclusiveMaximum { limit } => format!(
                "The parameter `{param}` must be less than {limit}, but {} was provided",
                error.instance()
            ),
            ValidationErrorKind::MinLength { limit } => {
                format!("The parameter `{param}` must be at least {limit} characters long")
            }
            ValidationErrorKind::MaxLength { limit } => {
                format!("The parameter `{param}` must be at most {limit} characters long")
            }
            _ if param.is_empty() => format!("The input is invalid: {error}"),
            _ => format!("The parameter `{param}` is invalid: {error}"),
        };
        lines.push(line);
    }
    lines
}

/// `/todos/0/status` → `todos[0].status`; the root is the empty string.
fn parameter_name(pointer: &str) -> String {
    let mut name = String::new();
    for segment in pointer.split('/').skip(1) {
        let segment = segment.replace("~1", "/").replace("~0", "~");
        if !segment.is_empty() && segment.bytes().all(|b| b.is_ascii_digit()) {
            name.push_str(&format!("[{segment}]"));
        } else {
            if !name.is_empty() {
                name.push('.');
            }
            name.push_str(&segment);
        }
    }
    name
}

fn join_param(parent: &str, child: &str) -> String {
    if parent.is_empty() {
        child.to_string()
    } else {
        format!("{parent}.{child}")
    }
}

fn options_list(options: &Value) -> String {
    match options.as_array() {
        Some(values) => values
            .iter()
            .map(Value::to_string)
            .collect::<Vec<_>>()
            .join(", "),
        None => options.to_string(),
    }
}

fn json_type_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ToolOutput;
    use async_trait::async_trait;
    use serde_json::json;
    use tokio_util::sync::CancellationToken;

    struct Fake {
        name: &'static str,
        schema: Value,
        behaviour: fn(&Value) -> Result<ToolOutput, ToolError>,
    }

    #[async_trait]
    impl Tool for Fake {
        fn name(&self) -> &str {
            self.name
        }
        fn description(&self) -> &str {
            "a test tool"
        }
        fn input_schema(&self) -> Value {
            self.schema.clone()
        }
        fn is_read_only(&self) -> bool {
            true
        }
        async fn call(&self, input: Value, _ctx: &ToolContext) -> Result<ToolOutput, ToolError> {
            (self.behaviour)(&input)
        }
    }

    fn fake(
        name: &'static str,
        behaviour: fn(&Value) -> Result<ToolOutput, ToolError>,
    ) -> Arc<Fake> {
        Arc::new(Fake {
            name,
            schema: json!({
                "type": "object",
                "properties": {
                    "file_path": {"type": "string"},
                    "limit": {"type": "integer", "minimum": 1},
                    "mode": {"type": "string", "enum": ["a", "b"]}
                },
                "required": ["file_path"],
                "additionalProperties": false
            }),
            behaviour,
        })
    }

    fn ctx(dir: &std::path::Path) -> ToolContext {
        ToolContext::new(dir, dir.join("spill"), CancellationToken::new())
    }

    #[test]
    fn builtin_registry_has_the_seven_tools_in_order() {
        let registry = ToolRegistry::builtin();
        assert_eq!(
            registry.names(),
            [
                "Read",
                "Write",
                "Edit",
                "Bash",
                "Glob",
                "Grep",
                "NotebookEdit"
            ]
        );
        let specs = registry.specs();
        assert_eq!(specs.len(), 7);
        for spec in specs {
            assert_eq!(spec.input_schema["type"], "object", "{}", spec.name);
            assert_eq!(spec.input_schema["additionalProperties"], false);
            assert!(
                spec.description.len() > 80,
                "{} needs a description",
                spec.name
            );
        }
        for (name, read_only) in [
            ("Read", true),
            ("Write", false),
            ("Edit", false),
            ("Bash", false),
            ("Glob", true),
            ("Grep", true),
            ("NotebookEdit", false),
        ] {
            assert_eq!(registry.is_read_only(name), Some(read_only), "{name}");
        }
        assert_eq!(registry.is_read_only("Nope"), None);
    }

    #[test]
    fn duplicate_names_and_broken_schemas_are_refused() {
        let mut registry = ToolRegistry::new();
        registry
            .register(fake("T", |_| Ok(ToolOutput::text(""))))
            .unwrap();
        let err = registry
            .register(fake("T", |_| Ok(ToolOutput::text(""))))
            .unwrap_err();
        assert!(err.to_string().contains("already registered"), "{err}");
        let broken = Arc::new(Fake {
            name: "Broken",
            schema: json!({"type": "no-such-type"}),
            behaviour: |_| Ok(ToolOutput::text("")),
        });
        let err = registry.register(broken).unwrap_err();
        assert!(err.to_string().contains("Broken"), "{err}");
        assert_eq!(registry.names(), ["T"]);
    }

    #[test]
    fn tools_can_be_removed_and_filtered() {
        let mut registry = ToolRegistry::builtin();
        registry.retain(|name| name != "Bash" && name != "Write");
        assert_eq!(
            registry.names(),
            ["Read", "Edit", "Glob", "Grep", "NotebookEdit"]
        );
        assert!(registry.remove("Edit").is_some());
        assert!(registry.remove("Edit").is_none());
        assert!(registry.get("Edit").is_none());
        assert_eq!(registry.get("Read").unwrap().name(), "Read");
        assert_eq!(registry.len(), 4);
    }

    #[tokio::test]
    async fn unknown_tool_is_an_error_result() {
        let dir = tempfile::tempdir().unwrap();
        let result = ToolRegistry::builtin()
            .call("Frobnicate", json!({}), &ctx(dir.path()))
            .await;
        assert!(result.is_error);
        assert_eq!(result.content, "No such tool available: Frobnicate");
    }

    #[tokio::test]
    async fn schema_violations_name_each_parameter() {
        let dir = tempfile::tempdir().unwrap();
        let mut registry = ToolRegistry::new();
        registry
            .register(fake("Fake", |_| panic!("must not run on invalid input")))
            .unwrap();
        let result = registry
            .call(
                "Fake",
                json!({"path": "x.txt", "limit": "ten", "mode": "c"}),
                &ctx(dir.path()),
            )
            .await;
        assert!(result.is_error);
        let text = result.content;
        assert!(
            text.starts_with("InputValidationError: Fake failed due to the following issues:"),
            "{text}"
        );
        assert!(
            text.contains("The required parameter `file_path` is missing"),
            "{text}"
        );
        assert!(
            text.contains("An unexpected parameter `path` was provided"),
            "{text}"
        );
        assert!(
            text.contains(
                "The parameter `limit` type is expected as `integer` but provided as `string`"
            ),
            "{text}"
        );
        assert!(
            text.contains("The parameter `mode` must be one of \"a\", \"b\""),
            "{text}"
        );

        let result = registry
            .call(
                "Fake",
                json!({"file_path": "x", "limit": 0}),
                &ctx(dir.path()),
            )
            .await;
        assert!(
            result
                .content
                .contains("following issue:\nThe parameter `limit` must be at least 1"),
            "{}",
            result.content
        );

        let result = registry.call("Fake", json!("x"), &ctx(dir.path())).await;
        assert!(
            result.content.contains("must be a JSON object"),
            "{}",
            result.content
        );
    }

    #[tokio::test]
    async fn builtin_read_with_a_wrong_parameter_name_says_which() {
        let dir = tempfile::tempdir().unwrap();
        let result = ToolRegistry::builtin()
            .call("Read", json!({"path": "x.txt"}), &ctx(dir.path()))
            .await;
        assert!(result.is_error);
        assert!(result.content.contains("InputValidationError"));
        assert!(result.content.contains("`file_path`"), "{}", result.content);
        assert!(result.content.contains("`path`"), "{}", result.content);
    }

    #[tokio::test]
    async fn a_panicking_tool_becomes_an_error_result() {
        let dir = tempfile::tempdir().unwrap();
        let mut registry = ToolRegistry::new();
        registry
            .register(fake("Boom", |_| panic!("kaboom at line 3")))
            .unwrap();
        let result = registry
            .call("Boom", json!({"file_path": "x"}), &ctx(dir.path()))
            .await;
        assert!(result.is_error);
        assert_eq!(
            result.content,
            "internal error in tool Boom: kaboom at line 3"
        );
        // The registry still works afterwards.
        let again = registry.call("Boom", json!({}), &ctx(dir.path())).await;
        assert!(again.content.contains("InputValidationError"));
    }

    #[tokio::test]
    async fn tool_errors_and_failed_output_are_error_results() {
        let dir = tempfile::tempdir().unwrap();
        let mut registry = ToolRegistry::new();
        registry
            .register(fake("Fails", |_| {
                Err(ToolError::Failed("could not frob: try again".into()))
            }))
            .unwrap();
        registry
            .register(fake("Exits", |_| {
                Err(ToolError::WithOutput(ToolOutput {
                    content: "Exit code 2\noops".into(),
                    structured: Some(json!({"stdout": "oops"})),
                    images: Vec::new(),
                }))
            }))
            .unwrap();
        let result = registry
            .call("Fails", json!({"file_path": "x"}), &ctx(dir.path()))
            .await;
        assert_eq!(
            result,
            ToolCallResult::error("could not frob: try again".to_string())
        );
        let result = registry
            .call("Exits", json!({"file_path": "x"}), &ctx(dir.path()))
            .await;
        assert!(result.is_error);
        assert_eq!(result.content, "Exit code 2\noops");
        assert_eq!(result.structured, Some(json!({"stdout": "oops"})));
    }

    #[tokio::test]
    async fn large_output_is_cut_and_spilled() {
        let dir = tempfile::tempdir().unwrap();
        let mut registry = ToolRegistry::new();
        registry
            .register(fake("Big", |_| {
                let text: String = (0..20_000).map(|i| format!("row {i}\n")).collect();
                Ok(ToolOutput::text(text))
            }))
            .unwrap();
        let context = ctx(dir.path());
        let result = registry
            .call("Big", json!({"file_path": "x"}), &context)
            .await;
        assert!(!result.is_error);
        assert!(result.content.starts_with("row 0\nrow 1\n"));
        assert!(result.content.ends_with("row 19999\n"));
        assert!(result.content.chars().count() < output::MAX_OUTPUT_CHARS + 400);
        assert!(
            result.content.contains("(20000 lines) is saved to"),
            "marker missing"
        );
        let spilled: Vec<_> = std::fs::read_dir(&context.spill_dir).unwrap().collect();
        assert_eq!(spilled.len(), 1);
        let saved = std::fs::read_to_string(spilled[0].as_ref().unwrap().path()).unwrap();
        assert_eq!(saved.lines().count(), 20_000);
    }

    #[test]
    fn the_registry_and_its_calls_can_move_between_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        fn assert_send<T: Send>(_: &T) {}
        assert_send_sync::<ToolRegistry>();
        let dir = tempfile::tempdir().unwrap();
        let registry = ToolRegistry::builtin();
        let context = ctx(dir.path());
        let call = registry.call("Read", json!({}), &context);
        assert_send(&call);
    }

    #[test]
    fn parameter_names_follow_the_pointer() {
        assert_eq!(parameter_name(""), "");
        assert_eq!(parameter_name("/limit"), "limit");
        assert_eq!(parameter_name("/todos/0/status"), "todos[0].status");
        assert_eq!(parameter_name("/a~1b"), "a/b");
    }
}
