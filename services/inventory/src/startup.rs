use shared::{
    config::Settings,
    startup::{Routes, Server},
};

pub static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/inventory");

pub const FAULT_OPERATIONS: &[&str] = &[
    "inventory.reserve",
    "inventory.release",
    "inventory.commit_reservation",
    "inventory.restock",
];

pub async fn build(settings: Settings) -> anyhow::Result<Server> {
    Server::start(
        &settings,
        &MIGRATIONS,
        Routes {
            public: crate::routes::routes,
            admin: crate::routes::admin_routes,
            fault_operations: FAULT_OPERATIONS,
        },
    )
    .await
}
