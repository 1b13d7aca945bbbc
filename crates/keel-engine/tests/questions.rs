//! AskUserQuestion through the engine API, as a frontend drives it: the question goes out as
//! `QuestionAsked`, the answers come back as `Op::AnswerQuestion`, and the model's next
//! request carries them. Sessions nobody can answer (print mode) do not offer the tool.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::Driver;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use keel_engine::{Approver, Session, SessionConfig, SessionSetup};
use keel_model::{AnthropicAuth, AnthropicClient, AnthropicConfig};
use keel_policy::{PermissionMode, Policy};
use keel_protocol::{Event, Op, Outcome, Question, SessionId};
use keel_test_support::{MockModelServer, Script, ScriptedBlock, ScriptedTurn};
use keel_tools::{ToolContext, ToolRegistry};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

fn ask(id: &str, questions: Value) -> ScriptedTurn {
    ScriptedTurn {
        content: vec![ScriptedBlock::ToolUse {
            id: Some(id.into()),
            name: "AskUserQuestion".into(),
            input: json!({"questions": questions}),
        }],
        ..Default::default()
    }
}

fn two_questions() -> Value {
    json!([
        {"question": "Which database should the service use?", "header": "Database", "multiSelect": false,
         "options": [{"label": "Postgres", "description": "Relational, already in the stack"},
                     {"label": "SQLite", "description": "One file, no server"}]},
        {"question": "Which features do you want first?", "header": "Features", "multiSelect": true,
         "options": [{"label": "Auth", "description": "Log-in and sessions"},
                     {"label": "Search", "description": "Full-text search"},
                     {"label": "Export", "description": "CSV export"}]}
    ])
}

impl Driver {
    fn start(server: &MockModelServer, dir: &Path, approver: Approver) -> Self {
        Self::start_with(server, dir, approver, true)
    }

    fn start_with(
        server: &MockModelServer,
        dir: &Path,
        approver: Approver,
        answers_questions: bool,
    ) -> Self {
        let mut config = SessionConfig::new("claude-sonnet-4-5", vec![]);
        config.answers_questions = answers_questions;
        let client = AnthropicClient::new(AnthropicConfig::new(
            server.url(),
            AnthropicAuth::ApiKey("k".into()),
        ))
        .unwrap();
        let session = Session::new(SessionSetup {
            id: SessionId::new(),
            config,
            client: Arc::new(client),
            tools: ToolRegistry::builtin(),
            tool_ctx: ToolContext::new(dir, dir.join(".spill"), CancellationToken::new()),
            policy: Policy::new(PermissionMode::Default, dir, &dir.join("home")),
            approver,
            local_settings: None,
            history: vec![],
            transcript: None,
            hooks: None,
            mcp: None,
            context: Default::default(),
        });
        Self::serve(session)
    }

    async fn question(&mut self) -> (String, String, Vec<Question>) {
        self.next("a question", |e| match e {
            Event::QuestionAsked {
                request_id,
                tool_use_id,
                questions,
            } => Some((request_id.clone(), tool_use_id.clone(), questions.clone())),
            _ => None,
        })
        .await
    }

    async fn tools(&mut self) -> Vec<String> {
        self.next("the session's start", |e| match e {
            Event::SessionStarted { tools, .. } => Some(tools.clone()),
            _ => None,
        })
        .await
    }

    async fn finished(&mut self) -> Outcome {
        self.next("the end of the run", |e| match e {
            Event::RunFinished { outcome, .. } => Some(outcome.clone()),
            _ => None,
        })
        .await
    }
}

fn tool_result(server: &MockModelServer, request: usize) -> Value {
    server.requests()[request].body["messages"][2]["content"][0].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_user_answers_and_the_model_reads_the_answers() {
    let dir = tempfile::tempdir().unwrap();
    let server = MockModelServer::start(Script::new(vec![
        ask("toolu_ask", two_questions()),
        ScriptedTurn::text("Postgres with auth and search it is."),
    ]))
    .await
    .unwrap();
    let mut driver = Driver::start(&server, dir.path(), Approver::Interactive);
    assert!(
        driver
            .tools()
            .await
            .contains(&"AskUserQuestion".to_string())
    );
    driver.send(Op::UserInput {
        text: "set up the service".into(),
    });
    let (request_id, tool_use_id, questions) = driver.question().await;
    assert_eq!(tool_use_id, "toolu_ask");
    assert_eq!(questions.len(), 2);
    assert_eq!(questions[0].header, "Database");
    assert_eq!(questions[0].options[1].label, "SQLite");
    assert!(!questions[0].multi_select);
    assert!(questions[1].multi_select);
    // The model waits: nothing more is asked of it until the user answers.
    assert_eq!(server.requests().len(), 1);

    // An answer to a question nobody asked is ignored with a notice.
    driver.send(Op::AnswerQuestion {
        request_id: "no-such-request".into(),
        answers: BTreeMap::new(),
    });
    driver
        .next("a notice", |e| match e {
            Event::Notice { message, .. } if message.contains("no-such-request") => Some(()),
            _ => None,
        })
        .await;

    driver.send(Op::AnswerQuestion {
        request_id,
        answers: BTreeMap::from([
            (
                "Which database should the service use?".to_string(),
                "Postgres".to_string(),
            ),
            (
                "Which features do you want first?".to_string(),
                "Auth, Search".to_string(),
            ),
        ]),
    });
    let structured = driver
        .next("the tool's result", |e| match e {
            Event::ToolResult {
                tool_name,
                structured,
                is_error,
                ..
            } if tool_name == "AskUserQuestion" => {
                assert!(!is_error);
                structured.clone()
            }
            _ => None,
        })
        .await;
    assert_eq!(
        structured["answers"]["Which database should the service use?"],
        "Postgres"
    );
    assert_eq!(driver.finished().await, Outcome::Success);

    let result = tool_result(&server, 1);
    assert_eq!(result["tool_use_id"], "toolu_ask");
    assert_eq!(
        result["content"],
        "The user answered your questions: \"Which database should the service use?\"=\"Postgres\", \
         \"Which features do you want first?\"=\"Auth, Search\". Continue with these answers in mind."
    );
    assert!(result.get("is_error").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declining_or_interrupting_leaves_the_model_an_explanation() {
    let dir = tempfile::tempdir().unwrap();
    let server = MockModelServer::start(Script::new(vec![
        ask("toolu_1", two_questions()),
        ScriptedTurn::text("I will pick Postgres myself."),
        ask("toolu_2", two_questions()),
    ]))
    .await
    .unwrap();
    let mut driver = Driver::start(&server, dir.path(), Approver::Interactive);
    driver.send(Op::UserInput {
        text: "set up the service".into(),
    });
    let (request_id, _, _) = driver.question().await;
    driver.send(Op::AnswerQuestion {
        request_id,
        answers: BTreeMap::new(),
    });
    assert_eq!(driver.finished().await, Outcome::Success);
    let result = tool_result(&server, 1);
    assert_eq!(result["is_error"], true);
    assert!(
        result["content"]
            .as_str()
            .unwrap()
            .contains("declined to answer"),
        "{result}"
    );

    driver.send(Op::UserInput {
        text: "again".into(),
    });
    driver.question().await;
    driver.send(Op::Interrupt);
    assert_eq!(driver.finished().await, Outcome::Interrupted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn print_mode_does_not_offer_the_tool() {
    let dir = tempfile::tempdir().unwrap();
    let server = MockModelServer::start(Script::new(vec![ScriptedTurn::text("ok")]))
        .await
        .unwrap();
    let mut driver = Driver::start(&server, dir.path(), Approver::Unattended);
    assert!(
        !driver
            .tools()
            .await
            .contains(&"AskUserQuestion".to_string())
    );
    driver.send(Op::UserInput { text: "hi".into() });
    assert_eq!(driver.finished().await, Outcome::Success);
    let names: Vec<String> = server.requests()[0].body["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect();
    assert!(!names.contains(&"AskUserQuestion".to_string()), "{names:?}");
    assert!(names.contains(&"Read".to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frontend_that_cannot_answer_questions_is_not_offered_the_tool() {
    // An approving frontend (the HTTP server, ACP) that has no way to show questions: the
    // model must not be offered a tool whose call would wait forever.
    let dir = tempfile::tempdir().unwrap();
    let server = MockModelServer::start(Script::new(vec![ScriptedTurn::text("ok")]))
        .await
        .unwrap();
    let mut driver = Driver::start_with(&server, dir.path(), Approver::Interactive, false);
    assert!(
        !driver
            .tools()
            .await
            .contains(&"AskUserQuestion".to_string())
    );
}
