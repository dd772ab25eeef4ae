use std::{sync::Arc, time::Duration};

use actix::Actor as _;
use actix_web::web;
use base::config::{Env, Service, Settings};
use shared::{
    shedding::LoadShedder,
    startup::{Routes, Server},
    supervisor::{JobLimits, Supervisor, Sweeper},
};
use uuid::Uuid;

use shared::lease::Replica;

use crate::{
    routes::CheckoutDeadline,
    tpc::protocol::{Coordinator, find_unfinished},
};

pub static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/coordinator");

pub const FAULT_OPERATIONS: &[&str] = &[
    "coordinator.checkout",
    "coordinator.vote",
    "coordinator.decide",
    "coordinator.finish",
];

/// The coordinator's own settings.
#[derive(Debug, Clone, Copy)]
pub struct CoordinatorSettings {
    /// `TPC_VOTE_TIMEOUT_MS`: a participant silent this long has voted `timeout`.
    pub vote_timeout: Duration,
    /// `CHECKOUT_DEADLINE_MS`: how long `POST /checkout` waits for the decision.
    pub checkout_deadline: Duration,
    /// `TPC_RECOVERY_INTERVAL_MS`: how often unfinished transactions are looked for.
    pub recovery_interval: Duration,
}

impl CoordinatorSettings {
    pub fn from_env(env: &Env) -> anyhow::Result<Self> {
        Ok(CoordinatorSettings {
            vote_timeout: env.millis_or("TPC_VOTE_TIMEOUT_MS", Duration::from_secs(3))?,
            checkout_deadline: env.millis_or("CHECKOUT_DEADLINE_MS", Duration::from_secs(10))?,
            recovery_interval: env.millis_or("TPC_RECOVERY_INTERVAL_MS", Duration::from_secs(2))?,
        })
    }
}

/// Where this replica serves, as the registry of replicas shows it.
fn own_url(settings: &Settings, port: u16) -> String {
    let ip = match settings.bind_addr.ip() {
        ip if ip.is_unspecified() => std::net::IpAddr::from([127, 0, 0, 1]),
        ip => ip,
    };
    format!("http://{}", std::net::SocketAddr::new(ip, port))
}

pub async fn build(settings: Settings, env: Env) -> anyhow::Result<Server> {
    build_with(settings, CoordinatorSettings::from_env(&env)?).await
}

pub async fn build_with(settings: Settings, own: CoordinatorSettings) -> anyhow::Result<Server> {
    let mut prepared = Server::prepare(&settings, &MIGRATIONS).await?;
    let faults = prepared.fault_injector(&settings, FAULT_OPERATIONS);
    let coordinator = Arc::new(Coordinator {
        pool: prepared.pool.clone(),
        client: prepared.http_client()?,
        peers: settings.peers.clone(),
        vote_timeout: own.vote_timeout,
        faults,
        boot_id: Uuid::new_v4(),
        replica: Replica::new(Service::Coordinator, &settings.replicas),
        answers: Default::default(),
    });
    let supervisor = Supervisor::bounded(Arc::clone(&coordinator), JobLimits::for_checkouts(&settings.resilience));
    let shedder = web::Data::new(LoadShedder::new(settings.resilience.shedding, supervisor.gauge()));
    let supervisor = supervisor.start();
    Sweeper::new(
        prepared.pool.clone(),
        supervisor.clone(),
        own.recovery_interval,
        find_unfinished(coordinator.replica.id.clone(), own_url(&settings, prepared.port)),
    )
    .start();
    let (coordinator, supervisor, deadline) = (
        web::Data::new(coordinator),
        web::Data::new(supervisor),
        web::Data::new(CheckoutDeadline(own.checkout_deadline)),
    );
    prepared.serve(
        &settings,
        Routes {
            public: move |cfg: &mut web::ServiceConfig| {
                cfg.app_data(coordinator.clone())
                    .app_data(shedder.clone())
                    .app_data(supervisor.clone())
                    .app_data(deadline.clone());
                crate::routes::routes(cfg)
            },
            admin: crate::routes::admin_routes,
            fault_operations: FAULT_OPERATIONS,
            openapi: {
                use utoipa::OpenApi as _;
                crate::routes::Api::openapi()
            },
        },
    )
}
