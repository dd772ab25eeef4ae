use base::config::Service;
use serde_json::{Value, json};
use testing::TestApp;
use uuid::Uuid;

pub async fn spawn_app() -> TestApp {
    TestApp::spawn(Service::Inventory, |_| {}, inventory_service::startup::build).await
}

pub async fn set_stock(app: &TestApp, sku: &str, available: i64) {
    let response = app
        .send(
            app.client
                .put(app.url(&format!("/admin/inventory/{sku}")))
                .json(&json!({ "available": available })),
        )
        .await;
    assert_eq!(response.status(), 200);
}

/// The SKU's stock, without the request's own trace id.
pub async fn stock(app: &TestApp, sku: &str) -> Value {
    let mut body: Value = app.get(&format!("/inventory/{sku}")).await.json().await.unwrap();
    body.as_object_mut().unwrap().remove("trace_id");
    body
}

pub fn reservation(order_id: Uuid, sku: &str, quantity: i64) -> Value {
    json!({ "order_id": order_id, "items": [ { "sku": sku, "quantity": quantity } ] })
}
