use base::config::Service;
use serde_json::{Value, json};
use testing::{TestApp, problem};
use uuid::Uuid;

async fn spawn_app() -> TestApp {
    TestApp::spawn(
        Service::Order,
        |_| {},
        |s| {
            order_service::startup::build_with(
                s,
                order_service::startup::SagaSettings::from_env(&base::config::Env::from_map(Default::default()))
                    .unwrap(),
            )
        },
    )
    .await
}

fn new_order(id: Uuid) -> Value {
    json!({
        "order_id": id,
        "customer_email": "ada@example.com",
        "payment_token": "tok_visa",
        "items": [ { "sku": "SKU-002", "quantity": 1, "unit_price_cents": 4900 },
                   { "sku": "SKU-001", "quantity": 2, "unit_price_cents": 2100 } ]
    })
}

#[actix_web::test]
async fn an_order_is_created_pending_with_its_total() {
    let app = spawn_app().await;
    let id = Uuid::new_v4();
    let response = app.post("/orders", &new_order(id), None).await;
    assert_eq!(response.status(), 201);
    let order: Value = response.json().await.unwrap();
    assert_eq!(order["order_id"], id.to_string());
    assert_eq!(order["status"], "pending");
    assert_eq!(order["total_cents"], 4900 + 2 * 2100);
    assert_eq!(order["reason"], Value::Null);
    assert_eq!(order["trace_id"].as_str().unwrap().len(), 32);
    assert_eq!(order["items"].as_array().unwrap().len(), 2);
    assert!(order["steps"].is_array());
    let again = app.post("/orders", &new_order(id), None).await;
    assert_eq!(again.status(), 200, "a repeat answers with the existing order");
    assert_eq!(app.count("orders").await, 1);
}

#[actix_web::test]
async fn a_pending_order_is_confirmed_once_and_then_cannot_be_cancelled() {
    let app = spawn_app().await;
    let id = Uuid::new_v4();
    app.post("/orders", &new_order(id), None).await;
    for _ in 0..2 {
        let response = app.post(&format!("/orders/{id}/confirm"), &json!({}), None).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.json::<Value>().await.unwrap()["status"], "confirmed");
    }
    let (status, _) = problem(
        app.post(&format!("/orders/{id}/cancel"), &json!({ "reason": "late" }), None)
            .await,
    )
    .await;
    assert_eq!(status, 409);
    let shown: Value = app.get(&format!("/orders/{id}")).await.json().await.unwrap();
    assert_eq!(shown["status"], "confirmed");
}

#[actix_web::test]
async fn a_cancelled_order_keeps_its_reason_and_cannot_be_confirmed() {
    let app = spawn_app().await;
    let id = Uuid::new_v4();
    app.post("/orders", &new_order(id), None).await;
    let response = app
        .post(
            &format!("/orders/{id}/cancel"),
            &json!({ "reason": "payment declined" }),
            None,
        )
        .await;
    assert_eq!(response.status(), 200);
    let (status, _) = problem(app.post(&format!("/orders/{id}/confirm"), &json!({}), None).await).await;
    assert_eq!(status, 409);
    let shown: Value = app.get(&format!("/orders/{id}")).await.json().await.unwrap();
    assert_eq!(shown["status"], "cancelled");
    assert_eq!(shown["reason"], "payment declined");
}

#[actix_web::test]
async fn orders_are_listed_newest_first_and_filtered_by_status() {
    let app = spawn_app().await;
    let ids: Vec<Uuid> = (0..3).map(|_| Uuid::now_v7()).collect();
    for id in &ids {
        app.post("/orders", &new_order(*id), None).await;
    }
    app.post(&format!("/orders/{}/confirm", ids[1]), &json!({}), None).await;
    let all: Value = app.get("/orders?limit=10").await.json().await.unwrap();
    let listed: Vec<&str> = all["orders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["order_id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, vec![ids[2].to_string(), ids[1].to_string(), ids[0].to_string()]);
    for member in ["order_id", "status", "customer_email", "total_cents", "created_at"] {
        assert!(all["orders"][0].get(member).is_some(), "{member}");
    }
    let confirmed: Value = app.get("/orders?status=confirmed").await.json().await.unwrap();
    assert_eq!(confirmed["orders"].as_array().unwrap().len(), 1);
    let limited: Value = app.get("/orders?limit=2").await.json().await.unwrap();
    assert_eq!(limited["orders"].as_array().unwrap().len(), 2);
    for bad in [
        "/orders?status=shipped",
        "/orders?limit=0",
        "/orders?limit=100000",
        "/orders?limit=x",
    ] {
        assert_eq!(problem(app.get(bad).await).await.0, 400, "{bad}");
    }
}

#[actix_web::test]
async fn bad_input_is_refused_and_writes_nothing() {
    let app = spawn_app().await;
    let with = |patch: Value| {
        let mut body = new_order(Uuid::new_v4());
        for (k, v) in patch.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    let cases = [
        with(json!({ "customer_email": "ada-at-example" })),
        with(json!({ "payment_token": "visa" })),
        with(json!({ "items": [] })),
        with(json!({ "items": [ { "sku": "SKU-001", "quantity": 0, "unit_price_cents": 1 } ] })),
        with(json!({ "items": [ { "sku": "SKU-001", "quantity": -1, "unit_price_cents": 1 } ] })),
        with(json!({ "items": [ { "sku": "SKU-001", "quantity": 1_000_000_000, "unit_price_cents": 1 } ] })),
        with(json!({ "items": [ { "sku": "SKU-001", "quantity": 1, "unit_price_cents": 0 } ] })),
        with(json!({ "surprise": true })),
    ];
    for body in cases {
        let (status, problem_body) = problem(app.post("/orders", &body, None).await).await;
        assert_eq!(status, 400, "{body} -> {problem_body}");
    }
    let raw = app
        .client
        .post(app.url("/orders"))
        .header("content-type", "application/json")
        .body("{");
    assert_eq!(problem(app.send(raw).await).await.0, 400);
    let big = app
        .client
        .post(app.url("/orders"))
        .header("content-type", "application/json")
        .body(format!("{{\"p\":\"{}\"}}", "x".repeat(100 * 1024)));
    assert_eq!(problem(app.send(big).await).await.0, 413);
    let unknown = Uuid::new_v4();
    assert_eq!(
        problem(app.post(&format!("/orders/{unknown}/confirm"), &json!({}), None).await)
            .await
            .0,
        404
    );
    assert_eq!(problem(app.get(&format!("/orders/{unknown}")).await).await.0, 404);
    assert_eq!(problem(app.get("/orders/not-a-uuid").await).await.0, 400);
    let wrong_method = app.send(app.client.delete(app.url("/orders"))).await;
    assert_eq!(problem(wrong_method).await.0, 405);
    assert_eq!(app.count("orders").await, 0);
    assert_eq!(app.count("idempotency_keys").await, 0);
}

#[actix_web::test]
async fn cancelling_an_order_never_created_is_a_recorded_no_op_and_refuses_its_creation() {
    let app = spawn_app().await;
    let id = Uuid::new_v4();
    for _ in 0..2 {
        let response = app
            .post(
                &format!("/orders/{id}/cancel"),
                &json!({ "reason": "compensation" }),
                None,
            )
            .await;
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["null_compensation"], true);
        assert_eq!(body["status"], "cancelled");
    }
    let (status, body) = problem(app.post("/orders", &new_order(id), None).await).await;
    assert_eq!(status, 409);
    assert_eq!(body["type"], "urn:txlab:problem:action-after-compensation");
    assert_eq!(app.count("orders").await, 0);
}
