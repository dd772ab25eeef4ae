use api::{ChargeRequest, Payments};
use base::config::Service;
use testing::TestApp;
use uuid::Uuid;

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(configure: impl FnOnce(&mut base::config::Settings)) -> TestApp {
    TestApp::spawn(Service::Payment, configure, |settings| {
        payment_service::startup::build_with(
            settings,
            payment_service::startup::PaymentSettings {
                funds_limit_cents: 10_000,
            },
        )
    })
    .await
}

pub fn charge(order_id: Uuid, amount_cents: i64, token: &str) -> ChargeRequest {
    ChargeRequest {
        order_id,
        amount_cents,
        payment_token: token.to_owned(),
    }
}

pub async fn payments(app: &TestApp, order_id: Uuid) -> Payments {
    app.get(&format!("/payments?order_id={order_id}"))
        .await
        .json()
        .await
        .unwrap()
}
