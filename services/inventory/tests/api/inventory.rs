use serde_json::{Value, json};
use testing::problem;

use crate::helpers::{spawn_app, stock};

#[actix_web::test]
async fn the_catalogue_has_at_least_ten_priced_skus() {
    let app = spawn_app().await;
    let response = app.get("/inventory").await;
    assert_eq!(response.status(), 200);
    assert!(response.headers().contains_key("traceresponse"));
    let body: Value = response.json().await.unwrap();
    let items = body["items"].as_array().unwrap();
    assert!(items.len() >= 10);
    for item in items {
        assert!(item["price_cents"].as_i64().unwrap() > 0, "{item}");
        assert!(item["available"].as_i64().unwrap() >= 0, "{item}");
        assert_eq!(item["reserved"], 0);
    }
    assert_eq!(body["trace_id"].as_str().unwrap().len(), 32);
}

#[actix_web::test]
async fn one_sku_reads_as_in_the_contract() {
    let app = spawn_app().await;
    let body: serde_json::Value = app.get("/inventory/SKU-001").await.json().await.unwrap();
    for member in ["sku", "price_cents", "available", "reserved"] {
        assert!(body.get(member).is_some(), "{body}");
    }
    let (status, body) = problem(app.get("/inventory/SKU-999").await).await;
    assert_eq!(status, 422);
    assert_eq!(body["type"], "urn:txlab:problem:unknown-sku");
}

#[actix_web::test]
async fn admin_sets_stock_and_refuses_nonsense() {
    let app = spawn_app().await;
    crate::helpers::set_stock(&app, "SKU-002", 7).await;
    assert_eq!(stock(&app, "SKU-002").await.available, 7);
    for bad in [
        json!({ "available": -1 }),
        json!({ "available": "many" }),
        json!({ "stock": 3 }),
    ] {
        let response = app
            .send(app.client.put(app.url("/admin/inventory/SKU-002")).json(&bad))
            .await;
        let (status, _) = problem(response).await;
        assert_eq!(status, 400, "{bad}");
    }
    assert_eq!(stock(&app, "SKU-002").await.available, 7);
}

#[actix_web::test]
async fn admin_routes_require_the_token_when_one_is_set() {
    let app = testing::TestApp::spawn(
        base::config::Service::Inventory,
        |s| s.admin_token = Some("s3cret".into()),
        inventory_service::startup::build,
    )
    .await;
    let put = |token: Option<&str>| {
        let mut request = app
            .client
            .put(app.url("/admin/inventory/SKU-003"))
            .json(&json!({ "available": 1 }));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        app.send(request)
    };
    let (status, _) = problem(put(None).await).await;
    assert_eq!(status, 401);
    let (status, _) = problem(put(Some("wrong")).await).await;
    assert_eq!(status, 401);
    assert_eq!(put(Some("s3cret")).await.status(), 200);
    assert_eq!(stock(&app, "SKU-003").await.available, 1);
}

#[actix_web::test]
async fn health_is_live_and_ready() {
    let app = spawn_app().await;
    let live = app.get("/health/live").await;
    assert_eq!(live.status(), 200);
    let live: Value = live.json().await.unwrap();
    assert_eq!(live["status"], "live");
    assert!(live.get("trace_id").is_some(), "every JSON body has trace_id: {live}");
    let ready: Value = app.get("/health/ready").await.json().await.unwrap();
    assert_eq!(ready["status"], "ready");
    let (status, _) = problem(app.get("/no/such/route").await).await;
    assert_eq!(status, 404);
}

#[actix_web::test]
async fn fault_rules_are_set_read_applied_and_cleared() {
    let app = spawn_app().await;
    let rules = json!({ "rules": [ { "operation": "inventory.reserve", "kind": "error", "probability": 1.0 } ] });
    let put = app.send(app.client.put(app.url("/admin/faults")).json(&rules)).await;
    assert_eq!(put.status(), 200);
    let listed: Value = app.get("/admin/faults").await.json().await.unwrap();
    assert_eq!(listed["enabled"], true);
    assert_eq!(listed["rules"], rules["rules"]);

    let order = uuid::Uuid::new_v4();
    let (status, body) = problem(
        app.post("/reservations", &crate::helpers::reservation(order, "SKU-001", 1), None)
            .await,
    )
    .await;
    assert_eq!(status, 500);
    assert_eq!(body["type"], "urn:txlab:problem:fault-injected");
    assert_eq!(app.count("reservations").await, 0);

    let bad = json!({ "rules": [ { "operation": "payment.charge", "kind": "error" } ] });
    let (status, _) = problem(app.send(app.client.put(app.url("/admin/faults")).json(&bad)).await).await;
    assert_eq!(status, 400, "another service's operation");
    let bad = json!({ "rules": [ { "operation": "inventory.reserve", "kind": "explode" } ] });
    let (status, _) = problem(app.send(app.client.put(app.url("/admin/faults")).json(&bad)).await).await;
    assert_eq!(status, 400, "an unknown kind");
    let still: Value = app.get("/admin/faults").await.json().await.unwrap();
    assert_eq!(still["rules"], rules["rules"], "refused rules change nothing");

    assert_eq!(
        app.send(app.client.delete(app.url("/admin/faults"))).await.status(),
        200
    );
    let reserved = app
        .post("/reservations", &crate::helpers::reservation(order, "SKU-001", 1), None)
        .await;
    assert_eq!(reserved.status(), 201);
}

#[actix_web::test]
async fn readiness_fails_with_a_reason_when_the_database_is_not_fully_migrated() {
    let app = spawn_app().await;
    sqlx::query("DELETE FROM _sqlx_migrations WHERE version = (SELECT max(version) FROM _sqlx_migrations)")
        .execute(&app.pool)
        .await
        .unwrap();
    let (status, body) = problem(app.get("/health/ready").await).await;
    assert_eq!(status, 503);
    assert!(
        body["reason"].as_str().unwrap().contains("migrations applied"),
        "{body}"
    );
    assert_eq!(app.get("/health/live").await.status(), 200, "still live");
}
