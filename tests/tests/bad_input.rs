//! Endpoints whose body may be left out: a body that is there but is not JSON, has the
//! wrong shape or another media type is refused with a problem, and changes nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use api::{ErrorCode, ProblemBody};
use serde_json::{Value, json};
use testing::{TestApp, problem};
use txlab_tests::{Platform, fault_rule, faults, new_key, view};
use uuid::Uuid;

/// Bodies that must be refused, with the status each gets.
fn bad_bodies(wrong_shape: &[&str]) -> Vec<(&'static str, String, u16)> {
    let mut bodies = vec![
        ("application/json", "not json".to_owned(), 400),
        ("application/json", "[1, 2".to_owned(), 400),
        ("application/json", "null".to_owned(), 400),
        ("text/plain", r#"{"reason": "x"}"#.to_owned(), 415),
    ];
    bodies.extend(wrong_shape.iter().map(|b| ("application/json", (*b).to_owned(), 400)));
    bodies
}

async fn refused(app: &TestApp, path: &str, content_type: &str, body: String, expected: u16) {
    let request = app
        .client
        .post(app.url(path))
        .header("Content-Type", content_type)
        .header("Idempotency-Key", new_key())
        .body(body.clone());
    let (status, problem) = problem(app.send(request).await).await;
    assert_eq!(status, expected, "POST {path} {content_type} {body}: {problem}");
    let expected_code = if expected == 415 {
        ErrorCode::UnsupportedMediaType
    } else {
        ErrorCode::InvalidJson
    };
    assert_eq!(view::<ProblemBody>(&problem).code(), Some(expected_code), "{problem}");
}

#[actix_web::test]
async fn a_present_but_invalid_optional_body_is_refused_and_changes_nothing() {
    let platform = Platform::start().await;
    let (order, inventory, payment) = (&platform.order, &platform.inventory, &platform.payment);

    // An order, pending: cancel and confirm refuse bad bodies and leave it pending.
    let id = Uuid::now_v7();
    let created = order
        .post(
            "/orders",
            &json!({ "order_id": id, "customer_email": "ada@example.com", "payment_token": "tok_visa",
                     "items": [ { "sku": "SKU-001", "quantity": 1, "unit_price_cents": 2100 } ] }),
            None,
        )
        .await;
    assert_eq!(created.status(), 201);
    for (content_type, body, status) in bad_bodies(&[r#"{"reason": 42}"#, r#"{"reasn": "x"}"#, r#"{"reason": ""}"#]) {
        let status = if body == r#"{"reason": ""}"# { 400 } else { status };
        let path = format!("/orders/{id}/cancel");
        let request = order
            .client
            .post(order.url(&path))
            .header("Content-Type", content_type)
            .header("Idempotency-Key", new_key())
            .body(body.clone());
        let (got, problem) = problem(order.send(request).await).await;
        assert_eq!(got, status, "cancel {content_type} {body}: {problem}");
    }
    for (content_type, body, status) in bad_bodies(&[r#"{"x": 1}"#]) {
        refused(order, &format!("/orders/{id}/confirm"), content_type, body, status).await;
    }
    let shown: Value = order.get(&format!("/orders/{id}")).await.json().await.unwrap();
    assert_eq!(shown["status"], "pending", "{shown}");

    // An unknown order: a bad cancel writes no tombstone (its creation still works).
    let unknown = Uuid::now_v7();
    for (content_type, body, status) in bad_bodies(&[r#"{"reasn": "x"}"#]) {
        refused(order, &format!("/orders/{unknown}/cancel"), content_type, body, status).await;
    }
    let tombstones: i64 = sqlx::query_scalar("SELECT count(*) FROM order_tombstones")
        .fetch_one(&order.pool)
        .await
        .unwrap();
    assert_eq!(tombstones, 0);

    // A held reservation: release and commit refuse bad bodies; it stays held.
    let reserved = inventory
        .post(
            "/reservations",
            &json!({ "order_id": id, "items": [ { "sku": "SKU-001", "quantity": 1 } ] }),
            Some(&new_key()),
        )
        .await;
    assert_eq!(reserved.status(), 201);
    for verb in ["release", "commit"] {
        for (content_type, body, status) in bad_bodies(&[r#"{"x": 1}"#]) {
            refused(
                inventory,
                &format!("/reservations/{id}/{verb}"),
                content_type,
                body,
                status,
            )
            .await;
        }
    }
    let held: Value = inventory
        .get(&format!("/reservations/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(held["state"], "held", "{held}");

    // A prepared 2PC charge: commit and abort refuse bad bodies; it stays prepared.
    let gid = format!("txlab_{}_payment", Uuid::new_v4().simple());
    let prepared = payment
        .post(
            &format!("/tpc/{gid}/prepare"),
            &json!({ "order_id": Uuid::new_v4(), "amount_cents": 4200, "payment_token": "tok_visa" }),
            Some(&gid),
        )
        .await;
    assert_eq!(prepared.status(), 200);
    for verb in ["commit", "abort"] {
        for (content_type, body, status) in bad_bodies(&[r#"{"x": 1}"#]) {
            refused(payment, &format!("/tpc/{gid}/{verb}"), content_type, body, status).await;
        }
    }
    assert_eq!(testing::count_prepared(&payment.db.url).await.unwrap(), 1);

    // Fault rules: a bad DELETE leaves them in place.
    fault_rule(payment, "payment.charge", "error").await;
    let request = payment
        .client
        .delete(payment.url("/admin/faults"))
        .header("Content-Type", "application/json")
        .body(r#"{"all": true}"#);
    assert_eq!(payment.send(request).await.status(), 400);
    assert_eq!(faults(payment).await.rules.len(), 1);

    // Left out, or an empty object, the bodies are fine; the default reason stands.
    let confirmed = order.post(&format!("/orders/{id}/confirm"), &json!({}), None).await;
    assert_eq!(confirmed.status(), 200);
    let other = Uuid::now_v7();
    let cancelled = order
        .send(order.client.post(order.url(&format!("/orders/{other}/cancel"))))
        .await;
    assert_eq!(cancelled.status(), 200);
    let released = inventory
        .send(
            inventory
                .client
                .post(inventory.url(&format!("/reservations/{id}/release"))),
        )
        .await;
    assert_eq!(released.status(), 200);
    let aborted = payment.post(&format!("/tpc/{gid}/abort"), &json!({}), None).await;
    assert_eq!(aborted.status(), 200);
    assert_eq!(testing::count_prepared(&payment.db.url).await.unwrap(), 0);
}
