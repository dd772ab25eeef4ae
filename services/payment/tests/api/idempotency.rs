//! The shared idempotency mechanism, exercised on a real business write: charges.

use std::time::Duration;

use serde_json::Value;
use testing::{eventually, problem};
use uuid::Uuid;

use crate::helpers::{charge, spawn_app, spawn_app_with};

#[actix_web::test]
async fn a_replayed_request_returns_the_stored_response_and_writes_once() {
    let app = spawn_app().await;
    let body = charge(Uuid::new_v4(), 4200, "tok_visa");
    let first = app.post("/charges", &body, Some("replay-1")).await;
    assert_eq!(first.status(), 201);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first_body = first.bytes().await.unwrap();
    let second = app.post("/charges", &body, Some("replay-1")).await;
    assert_eq!(second.status(), 201);
    assert_eq!(second.headers()["idempotent-replayed"], "true");
    assert_eq!(second.headers()["content-type"], "application/json");
    assert_eq!(second.bytes().await.unwrap(), first_body, "byte for byte");
    assert_eq!(app.count("charges").await, 1);
}

#[actix_web::test]
async fn business_failures_are_stored_and_replayed_too() {
    let app = spawn_app().await;
    let body = charge(Uuid::new_v4(), 4200, "tok_chargeDeclined");
    let first = app.post("/charges", &body, Some("declined-1")).await;
    assert_eq!(first.status(), 402);
    let first_body = first.bytes().await.unwrap();
    let second = app.post("/charges", &body, Some("declined-1")).await;
    assert_eq!(second.status(), 402);
    assert_eq!(second.headers()["idempotent-replayed"], "true");
    assert_eq!(second.headers()["content-type"], "application/problem+json");
    assert_eq!(second.bytes().await.unwrap(), first_body);
    assert_eq!(app.count("charges").await, 1);
}

#[actix_web::test]
async fn a_key_reused_with_another_request_is_refused() {
    let app = spawn_app().await;
    let order = Uuid::new_v4();
    assert_eq!(
        app.post("/charges", &charge(order, 4200, "tok_visa"), Some("reused"))
            .await
            .status(),
        201
    );
    let (status, body) = problem(
        app.post("/charges", &charge(order, 4300, "tok_visa"), Some("reused"))
            .await,
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(body["type"], "urn:txlab:problem:idempotency-key-reused");
    let other_order = charge(Uuid::new_v4(), 4200, "tok_visa");
    let (status, _) = problem(app.post("/charges", &other_order, Some("reused")).await).await;
    assert_eq!(status, 422);
    let (status, _) = problem(
        app.post("/refunds", &serde_json::json!({ "order_id": order }), Some("reused"))
            .await,
    )
    .await;
    assert_eq!(status, 422, "another path is another request");
    assert_eq!(app.count("charges").await, 1);
    assert_eq!(app.count("refunds").await, 0);
}

#[actix_web::test]
async fn invalid_keys_are_refused_before_anything_runs() {
    let app = spawn_app().await;
    let body = charge(Uuid::new_v4(), 4200, "tok_visa");
    for key in ["k".repeat(256), "tab\tkey".to_owned()] {
        let request = app
            .client
            .post(app.url("/charges"))
            .json(&body)
            .header("Idempotency-Key", key.as_str());
        let (status, problem_body) = problem(app.send(request).await).await;
        assert_eq!(status, 400);
        assert_eq!(problem_body["type"], "urn:txlab:problem:idempotency-key-invalid");
    }
    assert_eq!(app.post("/charges", &body, Some(&"k".repeat(255))).await.status(), 201);
    assert_eq!(app.count("charges").await, 1);
}

#[actix_web::test]
async fn fifty_concurrent_duplicates_execute_exactly_once() {
    let app = spawn_app().await;
    let body = charge(Uuid::new_v4(), 4200, "tok_visa");
    let requests = (0..50).map(|_| {
        let (app, body) = (app.clone(), body.clone());
        async move {
            let response = app.post("/charges", &body, Some("storm")).await;
            let status = response.status().as_u16();
            let retry_after = response.headers().get("retry-after").is_some();
            (status, retry_after, response.bytes().await.unwrap())
        }
    });
    let answers = futures_util::future::join_all(requests).await;
    let stored: Vec<_> = answers.iter().filter(|(s, _, _)| *s == 201).collect();
    let in_flight = answers.iter().filter(|(s, retry, _)| *s == 409 && *retry).count();
    assert_eq!(
        stored.len() + in_flight,
        50,
        "every answer is the stored one or 409: {answers:?}"
    );
    assert!(!stored.is_empty());
    assert!(
        stored.iter().all(|(_, _, b)| *b == stored[0].2),
        "every stored answer is the same"
    );
    assert_eq!(app.count("charges").await, 1);
}

#[actix_web::test]
async fn a_lost_response_is_recovered_by_retrying_with_the_same_key() {
    let app = spawn_app().await;
    let body = charge(Uuid::new_v4(), 4200, "tok_visa");
    let lost = app
        .client
        .post(app.url("/charges"))
        .json(&body)
        .header("Idempotency-Key", "lost-1")
        .header("baggage", "fault.payment.charge=lost_response");
    let (status, _) = problem(app.send(lost).await).await;
    assert_eq!(status, 503);
    assert_eq!(app.count("charges").await, 1, "the work committed");
    let retry = app.post("/charges", &body, Some("lost-1")).await;
    assert_eq!(retry.status(), 201);
    assert_eq!(retry.headers()["idempotent-replayed"], "true");
    assert_eq!(app.count("charges").await, 1, "and did not run twice");
}

#[actix_web::test]
async fn a_client_that_hangs_up_does_not_cancel_the_work() {
    let app = spawn_app().await;
    let body = charge(Uuid::new_v4(), 4200, "tok_visa");
    let impatient = app
        .client
        .post(app.url("/charges"))
        .json(&body)
        .header("Idempotency-Key", "hangup-1")
        .header("baggage", "fault.payment.charge=delay_ms:400")
        .timeout(Duration::from_millis(100));
    assert!(impatient.send().await.is_err(), "the client gave up");
    let completed = eventually(Duration::from_secs(10), || async {
        let n: i64 =
            sqlx::query_scalar("SELECT count(*) FROM idempotency_keys WHERE key = 'hangup-1' AND state = 'completed'")
                .fetch_one(&app.pool)
                .await
                .unwrap();
        (n == 1).then_some(())
    })
    .await;
    assert!(completed.is_some(), "the work finished after the client left");
    let retry = app.post("/charges", &body, Some("hangup-1")).await;
    assert_eq!(retry.status(), 201);
    assert_eq!(retry.headers()["idempotent-replayed"], "true");
    assert_eq!(app.count("charges").await, 1);
}

#[actix_web::test]
async fn a_failure_before_commit_releases_the_key_so_a_retry_executes() {
    let app = spawn_app().await;
    let body = charge(Uuid::new_v4(), 4200, "tok_visa");
    let failing = app
        .client
        .post(app.url("/charges"))
        .json(&body)
        .header("Idempotency-Key", "retry-after-error")
        .header("baggage", "fault.payment.charge=error");
    let (status, _) = problem(app.send(failing).await).await;
    assert_eq!(status, 500);
    assert_eq!(app.count("idempotency_keys").await, 0);
    let retry = app.post("/charges", &body, Some("retry-after-error")).await;
    assert_eq!(retry.status(), 201);
    assert!(retry.headers().get("idempotent-replayed").is_none());
    assert_eq!(app.count("charges").await, 1);
}

#[actix_web::test]
async fn the_purge_actor_removes_expired_keys_and_the_key_can_run_again() {
    let app = spawn_app_with(|s| {
        s.idempotency.retention = Duration::from_millis(500);
        s.idempotency.purge_interval = Duration::from_millis(100);
    })
    .await;
    let first = app
        .post("/charges", &charge(Uuid::new_v4(), 4200, "tok_visa"), Some("expiring"))
        .await;
    assert_eq!(first.status(), 201);
    let purged = eventually(Duration::from_secs(10), || async {
        (app.count("idempotency_keys").await == 0).then_some(())
    })
    .await;
    assert!(purged.is_some(), "the purge actor deleted the expired key");
    let second = app
        .post("/charges", &charge(Uuid::new_v4(), 4200, "tok_visa"), Some("expiring"))
        .await;
    assert_eq!(
        second.status(),
        201,
        "a purged key executes again, even for another body"
    );
    assert!(second.headers().get("idempotent-replayed").is_none());
    assert_eq!(app.count("charges").await, 2);
    let _: Value = second.json().await.unwrap();
}
