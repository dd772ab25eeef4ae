use api::ChargeState;
use serde_json::{Value, json};
use testing::problem;
use uuid::Uuid;

use crate::helpers::{charge, payments, spawn_app};

#[actix_web::test]
async fn a_visa_charge_succeeds_once_per_order() {
    let app = spawn_app().await;
    let order = Uuid::new_v4();
    let first = app.post("/charges", &charge(order, 4200, "tok_visa"), None).await;
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    assert_eq!(first["state"], "succeeded");
    let again = app.post("/charges", &charge(order, 4200, "tok_visa"), None).await;
    assert_eq!(again.status(), 200, "a repeat answers with the existing charge");
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["id"], first["id"]);
    assert_eq!(payments(&app, order).await.net_cents, 4200);
    let (status, _) = problem(app.post("/charges", &charge(order, 999, "tok_visa"), None).await).await;
    assert_eq!(status, 409, "another amount for a charged order is a conflict");
    assert_eq!(app.count("charges").await, 1);
}

#[actix_web::test]
async fn declined_tokens_are_declined_and_recorded() {
    let app = spawn_app().await;
    let order = Uuid::new_v4();
    let (status, body) = problem(
        app.post("/charges", &charge(order, 4200, "tok_chargeDeclined"), None)
            .await,
    )
    .await;
    assert_eq!(status, 402);
    assert_eq!(body["decline_code"], "card_declined");
    let record = payments(&app, order).await;
    assert_eq!(record.charges[0].state, ChargeState::Declined);
    assert_eq!(record.net_cents, 0);

    let (status, body) = problem(
        app.post(
            "/charges",
            &charge(Uuid::new_v4(), 10_001, "tok_insufficientFunds"),
            None,
        )
        .await,
    )
    .await;
    assert_eq!(status, 402);
    assert_eq!(body["decline_code"], "insufficient_funds");
    let within = app
        .post(
            "/charges",
            &charge(Uuid::new_v4(), 10_000, "tok_insufficientFunds"),
            None,
        )
        .await;
    assert_eq!(within.status(), 201);
}

#[actix_web::test]
async fn a_refund_never_exceeds_the_charge() {
    let app = spawn_app().await;
    let order = Uuid::new_v4();
    assert_eq!(
        app.post("/charges", &charge(order, 5000, "tok_visa"), None)
            .await
            .status(),
        201
    );
    let partial = app
        .post("/refunds", &json!({ "order_id": order, "amount_cents": 2000 }), None)
        .await;
    assert_eq!(partial.status(), 201);
    let (status, _) = problem(
        app.post("/refunds", &json!({ "order_id": order, "amount_cents": 3001 }), None)
            .await,
    )
    .await;
    assert_eq!(status, 409);
    let rest = app.post("/refunds", &json!({ "order_id": order }), None).await;
    assert_eq!(rest.status(), 201);
    let repeat = app.post("/refunds", &json!({ "order_id": order }), None).await;
    assert_eq!(repeat.status(), 200, "a repeated full refund has no second effect");
    let record = payments(&app, order).await;
    assert_eq!(record.refunded_cents, 5000);
    assert_eq!(record.net_cents, 0);
    assert_eq!(record.refunds.len(), 2);
}

#[actix_web::test]
async fn refunding_an_order_never_charged_is_a_recorded_no_op() {
    let app = spawn_app().await;
    let order = Uuid::new_v4();
    for _ in 0..2 {
        let response = app.post("/refunds", &json!({ "order_id": order }), None).await;
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["null_compensation"], true);
        assert_eq!(body["amount_cents"], 0);
    }
    assert_eq!(app.count("refunds").await, 1);
}

#[actix_web::test]
async fn a_charge_arriving_after_its_refund_is_refused() {
    let app = spawn_app().await;
    let order = Uuid::new_v4();
    assert_eq!(
        app.post("/refunds", &json!({ "order_id": order }), None).await.status(),
        200
    );
    let (status, body) = problem(app.post("/charges", &charge(order, 4200, "tok_visa"), None).await).await;
    assert_eq!(status, 409);
    assert_eq!(body["type"], "urn:txlab:problem:action-after-compensation");
    assert_eq!(payments(&app, order).await.net_cents, 0);
    assert_eq!(app.count("charges").await, 0);
}

#[actix_web::test]
async fn bad_input_is_refused_and_writes_nothing() {
    let app = spawn_app().await;
    let order = Uuid::new_v4();
    let post = |body: Value| app.client.post(app.url("/charges")).json(&body);
    let cases: Vec<(&str, reqwest::RequestBuilder, u16)> = vec![
        (
            "not JSON",
            app.client
                .post(app.url("/charges"))
                .header("content-type", "application/json")
                .body("]["),
            400,
        ),
        ("amount 0", post(json!(charge(order, 0, "tok_visa"))), 400),
        ("amount -1", post(json!(charge(order, -1, "tok_visa"))), 400),
        (
            "amount absurd",
            post(json!(charge(order, 1_000_000_000_000, "tok_visa"))),
            400,
        ),
        ("malformed token", post(json!(charge(order, 100, "visa"))), 400),
        (
            "unknown token",
            post(json!(charge(order, 100, "tok_monopolyMoney"))),
            422,
        ),
        (
            "missing order",
            post(json!({ "amount_cents": 100, "payment_token": "tok_visa" })),
            400,
        ),
        (
            "unknown field",
            post(json!({ "order_id": order, "amount_cents": 1, "payment_token": "tok_visa", "x": 1 })),
            400,
        ),
        (
            "100 KiB",
            app.client
                .post(app.url("/charges"))
                .header("content-type", "application/json")
                .body(format!("{{\"p\":\"{}\"}}", "x".repeat(100 * 1024))),
            413,
        ),
        (
            "refund of nothing",
            app.client
                .post(app.url("/refunds"))
                .json(&json!({ "order_id": order, "amount_cents": 0 })),
            400,
        ),
        ("bad query", app.client.get(app.url("/payments?order_id=nope")), 400),
    ];
    for (what, request, expected) in cases {
        let (status, body) = problem(app.send(request).await).await;
        assert_eq!(status, expected, "{what}: {body}");
    }
    assert_eq!(app.count("charges").await, 0);
    assert_eq!(app.count("refunds").await, 0);
    assert_eq!(app.count("idempotency_keys").await, 0);
}
