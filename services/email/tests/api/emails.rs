use std::time::Duration;

use base::config::Service;
use serde_json::{Value, json};
use testing::{SmtpSink, TestApp, eventually, problem};
use uuid::Uuid;

use email_service::{dispatcher::RetryPolicy, startup::EmailSettings};

fn settings(smtp_url: Option<String>) -> EmailSettings {
    EmailSettings {
        smtp_url,
        from: "txlab orders <orders@txlab.local>".parse().unwrap(),
        poll_interval: Duration::from_millis(50),
        retry: RetryPolicy {
            max_attempts: u32::MAX,
            first_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_millis(200),
        },
    }
}

async fn spawn_app(smtp_url: Option<String>) -> TestApp {
    TestApp::spawn(
        Service::Email,
        |_| {},
        |s| email_service::startup::build_with(s, settings(smtp_url)),
    )
    .await
}

fn confirmation(order_id: Uuid) -> Value {
    json!({ "order_id": order_id, "to": "ada@example.com", "total_cents": 4200 })
}

async fn emails(app: &TestApp, order_id: Uuid) -> Vec<Value> {
    let body: Value = app
        .get(&format!("/emails?order_id={order_id}"))
        .await
        .json()
        .await
        .unwrap();
    body["emails"].as_array().unwrap().clone()
}

async fn delivered(app: &TestApp, order_id: Uuid) -> Option<Value> {
    eventually(Duration::from_secs(10), || async {
        emails(app, order_id)
            .await
            .into_iter()
            .find(|e| e["state"] == "delivered")
    })
    .await
}

#[actix_web::test]
async fn a_confirmation_is_delivered_over_smtp() {
    let sink = SmtpSink::start().await;
    let app = spawn_app(Some(sink.url())).await;
    let order = Uuid::new_v4();
    let response = app.post("/emails", &confirmation(order), None).await;
    assert_eq!(response.status(), 201);
    let email = delivered(&app, order).await.expect("delivered");
    assert_eq!(email["attempts"], 1);
    let messages = sink.messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].to, vec!["ada@example.com"]);
    assert_eq!(messages[0].from, "orders@txlab.local");
    assert!(messages[0].header("Subject").unwrap().contains(&order.to_string()));
    assert_eq!(
        messages[0].header("Message-ID").unwrap(),
        format!("<{}@txlab.local>", email["id"].as_str().unwrap())
    );
    assert!(messages[0].data.contains("$42.00"));
}

#[actix_web::test]
async fn an_order_gets_exactly_one_confirmation() {
    let sink = SmtpSink::start().await;
    let app = spawn_app(Some(sink.url())).await;
    let order = Uuid::new_v4();
    assert_eq!(app.post("/emails", &confirmation(order), None).await.status(), 201);
    assert_eq!(app.post("/emails", &confirmation(order), None).await.status(), 200);
    delivered(&app, order).await.expect("delivered");
    assert_eq!(app.post("/emails", &confirmation(order), None).await.status(), 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(emails(&app, order).await.len(), 1);
    assert_eq!(sink.messages().len(), 1);
}

#[actix_web::test]
async fn a_refusing_relay_is_retried_with_backoff_until_it_accepts() {
    let sink = SmtpSink::start().await;
    sink.refuse_next(3);
    let app = spawn_app(Some(sink.url())).await;
    let order = Uuid::new_v4();
    assert_eq!(app.post("/emails", &confirmation(order), None).await.status(), 201);
    let email = delivered(&app, order)
        .await
        .expect("delivered after the relay recovered");
    assert_eq!(email["attempts"], 4);
    assert_eq!(sink.messages().len(), 1);
}

#[actix_web::test]
async fn an_unreachable_relay_keeps_the_email_pending_with_its_error() {
    let app = spawn_app(Some("smtp://127.0.0.1:9".into())).await;
    let order = Uuid::new_v4();
    assert_eq!(app.post("/emails", &confirmation(order), None).await.status(), 201);
    let failing = eventually(Duration::from_secs(10), || async {
        emails(&app, order)
            .await
            .into_iter()
            .find(|e| e["attempts"].as_i64() >= Some(2))
    })
    .await
    .expect("retried");
    assert_eq!(failing["state"], "pending");
    assert!(failing["last_error"].as_str().is_some());
}

#[actix_web::test]
async fn without_smtp_the_log_transport_marks_emails_delivered() {
    let app = spawn_app(None).await;
    let order = Uuid::new_v4();
    assert_eq!(app.post("/emails", &confirmation(order), None).await.status(), 201);
    delivered(&app, order).await.expect("delivered by the log transport");
}

#[actix_web::test]
async fn bad_input_is_refused_and_writes_nothing() {
    let app = spawn_app(None).await;
    let order = Uuid::new_v4();
    let cases = [
        json!({ "order_id": order, "to": "not-an-address", "total_cents": 1 }),
        json!({ "order_id": order, "to": "ada@example.com", "total_cents": -5 }),
        json!({ "order_id": "nope", "to": "ada@example.com", "total_cents": 1 }),
        json!({ "to": "ada@example.com", "total_cents": 1 }),
    ];
    for body in cases {
        let (status, _) = problem(app.post("/emails", &body, None).await).await;
        assert_eq!(status, 400, "{body}");
    }
    let raw = app
        .client
        .post(app.url("/emails"))
        .header("content-type", "application/json")
        .body("nope");
    assert_eq!(problem(app.send(raw).await).await.0, 400);
    let big = app
        .client
        .post(app.url("/emails"))
        .header("content-type", "application/json")
        .body(format!("{{\"p\":\"{}\"}}", "x".repeat(100 * 1024)));
    assert_eq!(problem(app.send(big).await).await.0, 413);
    assert_eq!(app.count("emails").await, 0);
}

#[actix_web::test]
async fn a_permanently_refused_email_is_failed_with_its_reason_and_not_retried() {
    let sink = SmtpSink::start().await;
    sink.reject_recipients();
    let app = spawn_app(Some(sink.url())).await;
    let order_id = Uuid::new_v4();
    assert_eq!(app.post("/emails", &confirmation(order_id), None).await.status(), 201);
    let failed = eventually(Duration::from_secs(10), || async {
        emails(&app, order_id)
            .await
            .into_iter()
            .find(|e| e["state"] == "failed")
    })
    .await
    .expect("a 5xx refusal is final");
    assert_eq!(failed["attempts"], 1, "{failed}");
    assert!(failed["last_error"].as_str().unwrap().contains("550"), "{failed}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(emails(&app, order_id).await[0]["attempts"], 1, "never tried again");
}

/// A dispatcher that crashed mid-delivery leaves its claim (a lease, no transaction
/// held across SMTP): once the lease runs out, another delivers the email.
#[actix_web::test]
async fn an_email_claimed_by_a_dispatcher_that_died_is_delivered_once_its_lease_ends() {
    let sink = SmtpSink::start().await;
    let app = spawn_app(Some(sink.url())).await;
    let order_id = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO emails (id, order_id, recipient, subject, body, locked_until)
         VALUES ($1, $2, 'ada@example.com', 'Your order', 'Thank you', now() + interval '2 seconds')",
    )
    .bind(Uuid::now_v7())
    .bind(order_id)
    .execute(&app.pool)
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        sink.messages().is_empty(),
        "the claim is honoured while its lease lasts"
    );
    let email = delivered(&app, order_id).await.expect("delivered after the lease");
    assert_eq!(email["attempts"], 1, "{email}");
    assert_eq!(sink.messages().len(), 1);
}
