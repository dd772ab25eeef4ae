use api::{LineItemRequest, Product, ReserveStock, SetStock};
use base::config::Service;
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
                .json(&SetStock { available }),
        )
        .await;
    assert_eq!(response.status(), 200);
}

/// The SKU's stock.
pub async fn stock(app: &TestApp, sku: &str) -> Product {
    app.get(&format!("/inventory/{sku}")).await.json().await.unwrap()
}

pub fn reservation(order_id: Uuid, sku: &str, quantity: i64) -> ReserveStock {
    ReserveStock {
        order_id,
        items: vec![LineItemRequest {
            sku: sku.to_owned(),
            quantity,
        }],
    }
}
