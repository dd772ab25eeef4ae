use base::config::{Env, Settings};
use shared::startup::{Routes, Server};

pub static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/payment");

pub const FAULT_OPERATIONS: &[&str] = &[
    "payment.charge",
    "payment.refund",
    "payment.prepare",
    "payment.commit",
    "payment.abort",
];

pub use crate::charges::PaymentSettings;

pub async fn build(settings: Settings, env: Env) -> anyhow::Result<Server> {
    let payment = PaymentSettings {
        funds_limit_cents: env.parse_or("PAYMENT_FUNDS_LIMIT_CENTS", 10_000)?,
    };
    build_with(settings, payment).await
}

pub async fn build_with(settings: Settings, payment: PaymentSettings) -> anyhow::Result<Server> {
    let prepared = Server::prepare(&settings, &MIGRATIONS).await?;
    participant::start_resolver(&settings, prepared.pool.clone(), prepared.http_client()?)?;
    prepared.serve(
        &settings,
        Routes {
            public: move |cfg: &mut actix_web::web::ServiceConfig| {
                cfg.app_data(actix_web::web::Data::new(payment))
                    .app_data(actix_web::web::Data::new(crate::tpc::PaymentTpc {
                        funds_limit_cents: payment.funds_limit_cents,
                    }));
                participant::routes::<crate::tpc::PaymentTpc>(cfg);
                crate::routes::routes(cfg)
            },
            admin: |_: &mut actix_web::web::ServiceConfig| {},
            fault_operations: FAULT_OPERATIONS,
            openapi: {
                use utoipa::OpenApi as _;
                let mut doc = crate::routes::Api::openapi();
                doc.merge(participant::openapi::<crate::tpc::PaymentTpc>());
                doc
            },
        },
    )
}
