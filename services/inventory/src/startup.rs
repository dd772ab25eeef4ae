use base::config::Settings;
use shared::startup::{Routes, Server};

pub static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/inventory");

pub const FAULT_OPERATIONS: &[&str] = &[
    "inventory.reserve",
    "inventory.release",
    "inventory.commit_reservation",
    "inventory.restock",
    "inventory.prepare",
    "inventory.commit",
    "inventory.abort",
];

pub async fn build(settings: Settings) -> anyhow::Result<Server> {
    let prepared = Server::prepare(&settings, &MIGRATIONS).await?;
    participant::start_resolver(&settings, prepared.pool.clone(), prepared.http_client()?)?;
    prepared.serve(
        &settings,
        Routes {
            public: |cfg: &mut actix_web::web::ServiceConfig| {
                cfg.app_data(actix_web::web::Data::new(crate::tpc::InventoryTpc));
                participant::routes::<crate::tpc::InventoryTpc>(cfg);
                crate::routes::routes(cfg)
            },
            admin: crate::routes::admin_routes,
            fault_operations: FAULT_OPERATIONS,
            openapi: {
                use utoipa::OpenApi as _;
                let mut doc = crate::routes::Api::openapi();
                doc.merge(participant::openapi::<crate::tpc::InventoryTpc>());
                doc
            },
        },
    )
}
