use shared::{
    config::Settings,
    startup::{Routes, Server},
};

pub static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/order");

pub const FAULT_OPERATIONS: &[&str] = &["order.create", "order.confirm", "order.cancel"];

pub async fn build(settings: Settings) -> anyhow::Result<Server> {
    Server::start(
        &settings,
        &MIGRATIONS,
        Routes {
            public: crate::routes::routes,
            admin: |_: &mut actix_web::web::ServiceConfig| {},
            fault_operations: FAULT_OPERATIONS,
        },
    )
    .await
}
