//! Request capture, turn selection (matchers, push, repeat, exhaustion) and the side endpoints.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use std::time::Duration;

use common::{client, post, post_text};
use keel_test_support::{MockModelServer, Script, ScriptedTurn, TurnMatcher};
use serde_json::{Value, json};

fn answer_of(body: &str) -> String {
    let message: Value = serde_json::from_str(body).unwrap();
    message["content"][0]["text"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn requests_are_recorded_in_order_with_lowercased_headers_and_json_bodies() {
    let server = MockModelServer::start(Script::new(vec![ScriptedTurn::text("one")]))
        .await
        .unwrap();
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64;
    let body = json!({"model": "m", "messages": [{"role": "user", "content": "first"}]});
    let res = client()
        .post(format!("{}/v1/messages", server.url()))
        .header("X-Api-Key", "sk-test")
        .header("Anthropic-Version", "2023-06-01")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // Unknown paths answer 404 and are recorded too.
    let res = client()
        .get(format!("{}/nowhere?x=1", server.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    let err: Value = res.json().await.unwrap();
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("GET /nowhere")
    );
    // A body that is not JSON is kept as text.
    client()
        .post(format!("{}/v1/messages", server.url()))
        .body("not json")
        .send()
        .await
        .unwrap();

    let requests = server.requests();
    assert_eq!(requests.len(), 3);
    let first = &requests[0];
    assert_eq!(first.method, "POST");
    assert_eq!(first.path, "/v1/messages");
    assert_eq!(first.headers["x-api-key"], "sk-test");
    assert_eq!(first.headers["anthropic-version"], "2023-06-01");
    assert_eq!(first.headers["content-type"], "application/json");
    assert_eq!(first.body, body);
    assert!(first.received_unix_us >= before);
    assert_eq!(requests[1].method, "GET");
    assert_eq!(requests[1].path, "/nowhere");
    assert_eq!(requests[1].body, Value::Null);
    assert_eq!(requests[2].body, json!("not json"));
    assert!(
        requests
            .windows(2)
            .all(|w| w[0].received_unix_us <= w[1].received_unix_us)
    );

    // The same list over HTTP, for scripts that run the binary; reading it is not recorded.
    let res = client()
        .get(format!("{}/_mock/requests", server.url()))
        .send()
        .await
        .unwrap();
    let listed: Value = res.json().await.unwrap();
    assert_eq!(listed, serde_json::to_value(&requests).unwrap());
    assert_eq!(server.requests().len(), 3);
}

#[tokio::test]
async fn matchers_pick_the_right_turn_whatever_the_arrival_order() {
    let server = MockModelServer::start(Script::new(vec![
        ScriptedTurn {
            when: Some(TurnMatcher {
                system_contains: Some("Summarize the conversation".into()),
                ..Default::default()
            }),
            ..ScriptedTurn::text("the summary")
        },
        ScriptedTurn {
            when: Some(TurnMatcher {
                messages_contain: Some("sub-task B".into()),
                ..Default::default()
            }),
            ..ScriptedTurn::text("answer for B")
        },
        ScriptedTurn {
            when: Some(TurnMatcher {
                tools_include: Some("Task".into()),
                model: Some("claude-main".into()),
                ..Default::default()
            }),
            ..ScriptedTurn::text("main agent")
        },
        ScriptedTurn::text("anyone"),
    ]))
    .await
    .unwrap();
    let url = server.url();
    let ask = |body: Value| {
        let url = url.clone();
        async move { answer_of(&post_text(&url, "/v1/messages", &body).await.1) }
    };

    // A plain request skips every conditional turn.
    assert_eq!(
        ask(json!({"model": "x", "messages": [{"role": "user", "content": "hello"}]})).await,
        "anyone"
    );
    assert_eq!(server.remaining(), 3);
    assert_eq!(
        ask(
            json!({"model": "claude-main", "tools": [{"name": "Read"}, {"name": "Task"}],
                   "messages": []})
        )
        .await,
        "main agent"
    );
    assert_eq!(
        ask(json!({"model": "x", "messages": [{"role": "user",
                   "content": [{"type": "text", "text": "do sub-task B"}]}]}))
        .await,
        "answer for B"
    );
    assert_eq!(
        ask(json!({"model": "x", "system": [{"type": "text",
                   "text": "Summarize the conversation so far."}], "messages": []}))
        .await,
        "the summary"
    );
    assert_eq!(server.remaining(), 0);

    // Exhausted: a loud 500 naming how many turns were served.
    let (status, body) =
        post_text(&url, "/v1/messages", &json!({"model": "x", "messages": []})).await;
    assert_eq!(status, 500);
    let err: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(err["type"], "error");
    assert_eq!(
        err["error"]["message"],
        "mock script exhausted: no scripted turn left for this request (4 served)"
    );
}

#[tokio::test]
async fn a_request_no_turn_matches_gets_the_exhausted_error() {
    let server = MockModelServer::start(Script::new(vec![ScriptedTurn {
        when: Some(TurnMatcher {
            model: Some("only-this".into()),
            ..Default::default()
        }),
        ..ScriptedTurn::text("x")
    }]))
    .await
    .unwrap();
    let (status, body) = post_text(
        &server.url(),
        "/v1/chat/completions",
        &json!({"model": "other", "messages": []}),
    )
    .await;
    assert_eq!(status, 500);
    assert!(
        body.contains("mock script exhausted") && body.contains("(0 served)"),
        "{body}"
    );
    assert_eq!(server.remaining(), 1);
}

#[tokio::test]
async fn turns_pushed_while_running_are_served_and_repeat_starts_over() {
    let server = MockModelServer::start(Script::new(vec![])).await.unwrap();
    let body = json!({"model": "m", "messages": []});
    let (status, _) = post_text(&server.url(), "/v1/messages", &body).await;
    assert_eq!(status, 500);
    server.push_turn(ScriptedTurn::text("pushed"));
    assert_eq!(server.remaining(), 1);
    let (status, text) = post_text(&server.url(), "/v1/messages", &body).await;
    assert_eq!(status, 200);
    assert_eq!(answer_of(&text), "pushed");

    let looping = MockModelServer::start(
        Script::new(vec![ScriptedTurn::text("a"), ScriptedTurn::text("b")]).repeat(true),
    )
    .await
    .unwrap();
    let mut answers = Vec::new();
    for _ in 0..5 {
        answers.push(answer_of(
            &post_text(&looping.url(), "/v1/messages", &body).await.1,
        ));
    }
    assert_eq!(answers, ["a", "b", "a", "b", "a"]);
}

#[tokio::test]
async fn side_endpoints_answer_without_using_turns() {
    let server = MockModelServer::start(Script::new(vec![ScriptedTurn::text("kept")]))
        .await
        .unwrap();
    let get = |path: &str| {
        let url = format!("{}{path}", server.url());
        async move {
            let res = client().get(url).send().await.unwrap();
            (res.status().as_u16(), res.json::<Value>().await.unwrap())
        }
    };
    assert_eq!(
        get("/v1/models").await,
        (
            200,
            json!({"object": "list", "data": [{"id": "mock-model", "object": "model"}]})
        )
    );
    assert_eq!(
        get("/api/tags").await,
        (200, json!({"models": [{"name": "mock-model"}]}))
    );
    assert_eq!(get("/_mock/health").await.0, 200);
    // The wrong method is refused by name.
    let (status, err) = get("/v1/messages").await;
    assert_eq!(status, 405);
    assert!(err["error"]["message"].as_str().unwrap().contains("POST"));
    // A model request whose body is not JSON is a 400, and no turn is used up.
    let res = client()
        .post(format!("{}/v1/messages", server.url()))
        .body("{oops")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(server.remaining(), 1);
}

#[tokio::test]
async fn waiting_for_requests_reports_how_many_came() {
    let server = MockModelServer::start(Script::new(vec![ScriptedTurn::text("x")]))
        .await
        .unwrap();
    post(
        &server.url(),
        "/v1/messages",
        &json!({"model": "m", "messages": []}),
    )
    .await;
    let got = server
        .wait_for_requests(1, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(got.len(), 1);
    let err = server
        .wait_for_requests(2, Duration::from_millis(100))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("only 1 arrived"), "{err}");
}

#[tokio::test]
async fn dropping_the_server_stops_it() {
    let server = MockModelServer::start(Script::new(vec![])).await.unwrap();
    let url = server.url();
    drop(server);
    let refused = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if client()
                .get(format!("{url}/_mock/health"))
                .send()
                .await
                .is_err()
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(refused.is_ok(), "the port still answers after drop");
}
