use serde_json::{Value, json};
use testing::problem;
use uuid::Uuid;

use crate::helpers::{reservation, set_stock, spawn_app, stock};

#[actix_web::test]
async fn twenty_concurrent_reservations_of_ten_units_leave_exactly_ten() {
    let app = spawn_app().await;
    set_stock(&app, "SKU-004", 10).await;
    let attempts = (0..20).map(|_| {
        let app = app.clone();
        async move {
            app.post("/reservations", &reservation(Uuid::new_v4(), "SKU-004", 1), None)
                .await
                .status()
                .as_u16()
        }
    });
    let statuses = futures_util::future::join_all(attempts).await;
    assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 10, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 422).count(), 10, "{statuses:?}");
    let after = stock(&app, "SKU-004").await;
    assert_eq!(after.available, 0);
    assert_eq!(after.reserved, 10);
}

#[actix_web::test]
async fn a_reservation_moves_stock_and_a_release_moves_it_back() {
    let app = spawn_app().await;
    let order = Uuid::new_v4();
    let before = stock(&app, "SKU-005").await.available;
    let response = app.post("/reservations", &reservation(order, "SKU-005", 3), None).await;
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["state"], "held");
    assert_eq!(stock(&app, "SKU-005").await.available, before - 3);
    assert_eq!(stock(&app, "SKU-005").await.reserved, 3);

    let released = app
        .post(&format!("/reservations/{order}/release"), &json!({}), None)
        .await;
    assert_eq!(released.status(), 200);
    let body: Value = released.json().await.unwrap();
    assert_eq!(body["state"], "released");
    assert_eq!(body["null_compensation"], false);
    assert_eq!(stock(&app, "SKU-005").await.available, before);
    assert_eq!(stock(&app, "SKU-005").await.reserved, 0);
}

#[actix_web::test]
async fn a_commit_turns_reserved_stock_into_sold_stock_once() {
    let app = spawn_app().await;
    let order = Uuid::new_v4();
    assert_eq!(
        app.post("/reservations", &reservation(order, "SKU-006", 2), None)
            .await
            .status(),
        201
    );
    for _ in 0..2 {
        let committed = app
            .post(&format!("/reservations/{order}/commit"), &json!({}), None)
            .await;
        assert_eq!(committed.status(), 200);
    }
    let after = stock(&app, "SKU-006").await;
    assert_eq!(after.reserved, 0);
    assert_eq!(after.sold, 2);
    let (status, _) = problem(
        app.post(&format!("/reservations/{order}/release"), &json!({}), None)
            .await,
    )
    .await;
    assert_eq!(status, 409, "a sold reservation cannot be released");
}

#[actix_web::test]
async fn a_duplicate_reservation_has_no_second_effect() {
    let app = spawn_app().await;
    let order = Uuid::new_v4();
    let before = stock(&app, "SKU-007").await.available;
    assert_eq!(
        app.post("/reservations", &reservation(order, "SKU-007", 4), None)
            .await
            .status(),
        201
    );
    let again = app.post("/reservations", &reservation(order, "SKU-007", 4), None).await;
    assert_eq!(again.status(), 200);
    assert_eq!(stock(&app, "SKU-007").await.available, before - 4);
}

#[actix_web::test]
async fn releasing_an_order_that_never_reserved_is_a_recorded_no_op() {
    let app = spawn_app().await;
    let order = Uuid::new_v4();
    let response = app
        .post(&format!("/reservations/{order}/release"), &json!({}), None)
        .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["state"], "released");
    assert_eq!(body["null_compensation"], true);
    assert_eq!(body["lines"], json!([]));
}

#[actix_web::test]
async fn a_reservation_arriving_after_its_release_is_refused() {
    let app = spawn_app().await;
    let order = Uuid::new_v4();
    let before = stock(&app, "SKU-008").await;
    assert_eq!(
        app.post(&format!("/reservations/{order}/release"), &json!({}), None)
            .await
            .status(),
        200
    );
    let (status, body) = problem(app.post("/reservations", &reservation(order, "SKU-008", 1), None).await).await;
    assert_eq!(status, 409);
    assert_eq!(body["type"], "urn:txlab:problem:action-after-compensation");
    assert_eq!(stock(&app, "SKU-008").await, before);
}

#[actix_web::test]
async fn bad_input_is_refused_and_writes_nothing() {
    let app = spawn_app().await;
    let before = stock(&app, "SKU-001").await;
    let order = Uuid::new_v4();
    let cases: Vec<(&str, reqwest::RequestBuilder, u16)> = vec![
        (
            "not JSON",
            app.client
                .post(app.url("/reservations"))
                .header("content-type", "application/json")
                .body("{nope"),
            400,
        ),
        (
            "unknown SKU",
            app.client
                .post(app.url("/reservations"))
                .json(&reservation(order, "SKU-999", 1)),
            422,
        ),
        (
            "malformed SKU",
            app.client
                .post(app.url("/reservations"))
                .json(&reservation(order, "sku 1", 1)),
            400,
        ),
        (
            "quantity 0",
            app.client
                .post(app.url("/reservations"))
                .json(&reservation(order, "SKU-001", 0)),
            400,
        ),
        (
            "quantity -1",
            app.client
                .post(app.url("/reservations"))
                .json(&reservation(order, "SKU-001", -1)),
            400,
        ),
        (
            "quantity 10^9",
            app.client
                .post(app.url("/reservations"))
                .json(&reservation(order, "SKU-001", 1_000_000_000)),
            400,
        ),
        (
            "no items",
            app.client
                .post(app.url("/reservations"))
                .json(&json!({ "order_id": order, "items": [] })),
            400,
        ),
        (
            "100 KiB body",
            app.client
                .post(app.url("/reservations"))
                .header("content-type", "application/json")
                .body(format!("{{\"pad\":\"{}\"}}", "x".repeat(100 * 1024))),
            413,
        ),
        (
            "bad order id",
            app.client
                .post(app.url("/reservations/not-a-uuid/release"))
                .json(&json!({})),
            400,
        ),
    ];
    for (what, request, expected) in cases {
        let (status, body) = problem(app.send(request).await).await;
        assert_eq!(status, expected, "{what}: {body}");
    }
    assert_eq!(app.count("reservations").await, 0);
    assert_eq!(app.count("idempotency_keys").await, 0);
    assert_eq!(stock(&app, "SKU-001").await, before);
}

#[actix_web::test]
async fn insufficient_stock_reserves_nothing_at_all() {
    let app = spawn_app().await;
    set_stock(&app, "SKU-009", 1).await;
    let order = Uuid::new_v4();
    let body = json!({ "order_id": order, "items": [ { "sku": "SKU-010", "quantity": 1 }, { "sku": "SKU-009", "quantity": 2 } ] });
    let (status, problem_body) = problem(app.post("/reservations", &body, None).await).await;
    assert_eq!(status, 422);
    assert_eq!(problem_body["type"], "urn:txlab:problem:insufficient-stock");
    assert_eq!(stock(&app, "SKU-010").await.reserved, 0);
    assert_eq!(stock(&app, "SKU-009").await.available, 1);
    assert_eq!(app.count("reservations").await, 0);
}
