use std::{net::IpAddr, sync::Arc, time::Duration};

use actix::Actor as _;
use actix_web::web;
use base::config::{Env, PeerSettings, Service, Settings};
use shared::{
    shedding::LoadShedder,
    startup::{Routes, Server},
    supervisor::{JobLimits, Supervisor, Sweeper},
};

use crate::{
    checkout::CheckoutDeadline,
    saga::{
        engine::{self, Engine},
        log::Replica,
    },
};

pub static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/order");

pub const FAULT_OPERATIONS: &[&str] = &[
    "order.checkout",
    "order.create",
    "order.confirm",
    "order.cancel",
    "order.prepare",
    "order.commit",
    "order.abort",
    // The orchestrator's own: each step's point between a call's answer and the write
    // of its outcome (`saga::steps::STEP_FAULT_POINTS`).
    "order.step.create_order",
    "order.step.reserve_inventory",
    "order.step.charge_payment",
    "order.step.commit_inventory",
    "order.step.confirm_order",
    "order.step.send_email",
];

/// The orchestrator's own settings.
#[cfg(test)]
mod tests {
    #[test]
    fn every_step_is_a_fault_point() {
        for point in crate::saga::steps::STEP_FAULT_POINTS {
            assert!(super::FAULT_OPERATIONS.contains(&point), "{point}");
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct SagaSettings {
    /// `CHECKOUT_DEADLINE_MS`: how long `POST /checkout` waits before answering 202.
    pub checkout_deadline: Duration,
    /// `SAGA_RECOVERY_INTERVAL_MS`: how often unfinished sagas are looked for.
    pub recovery_interval: Duration,
    /// `SAGA_PARK_RETRY_SECS`: how long a parked saga waits before it is retried.
    pub park_retry: Duration,
}

impl SagaSettings {
    pub fn from_env(env: &Env) -> anyhow::Result<Self> {
        Ok(SagaSettings {
            checkout_deadline: env.millis_or("CHECKOUT_DEADLINE_MS", Duration::from_secs(5))?,
            recovery_interval: env.millis_or("SAGA_RECOVERY_INTERVAL_MS", Duration::from_secs(2))?,
            park_retry: env.seconds_or("SAGA_PARK_RETRY_SECS", Duration::from_secs(30))?,
        })
    }
}

pub async fn build(settings: Settings, env: Env) -> anyhow::Result<Server> {
    build_with(settings, SagaSettings::from_env(&env)?).await
}

pub async fn build_with(settings: Settings, saga: SagaSettings) -> anyhow::Result<Server> {
    let mut prepared = Server::prepare(&settings, &MIGRATIONS).await?;
    // The orchestrator calls its own order endpoints over loopback.
    let own_ip = match settings.bind_addr.ip() {
        ip if ip.is_unspecified() => IpAddr::from([127, 0, 0, 1]),
        ip => ip,
    };
    let own_url = format!("http://{}", std::net::SocketAddr::new(own_ip, prepared.port));
    let client = prepared.http_client()?;
    client.resilience().name(&own_url, Service::Order.name());
    let replica = Replica::new(Service::Order, &settings.replicas);
    let faults = prepared.fault_injector(&settings, FAULT_OPERATIONS);
    let engine = Arc::new(Engine {
        pool: prepared.pool.clone(),
        client,
        participants: PeerSettings {
            order: own_url,
            ..settings.peers.clone()
        },
        park_retry: saga.park_retry,
        replica,
        faults,
    });
    participant::start_resolver(&settings, prepared.pool.clone(), prepared.http_client()?)?;
    let supervisor = Supervisor::bounded(Arc::clone(&engine), JobLimits::for_checkouts(&settings.resilience));
    // A checkout needs these up to its pivot; past it, it waits for them instead.
    let shedder = LoadShedder::new(settings.resilience.shedding, supervisor.gauge()).needing(
        Arc::clone(engine.client.resilience()),
        &[Service::Order, Service::Inventory, Service::Payment],
    );
    let shedder = web::Data::new(shedder);
    let manager = supervisor.start();
    Sweeper::new(
        prepared.pool.clone(),
        manager.clone(),
        saga.recovery_interval,
        engine::find_due(engine.replica.id.clone(), engine.participants.order.clone()),
    )
    .start();
    engine::wake_parked_sagas_on_recovery(prepared.pool.clone(), engine.client.resilience().recoveries());
    let (engine, manager, deadline) = (
        web::Data::new(engine),
        web::Data::new(manager),
        web::Data::new(CheckoutDeadline(saga.checkout_deadline)),
    );
    prepared.serve(
        &settings,
        Routes {
            public: move |cfg: &mut web::ServiceConfig| {
                cfg.app_data(engine.clone())
                    .app_data(shedder.clone())
                    .app_data(manager.clone())
                    .app_data(deadline.clone())
                    .app_data(web::Data::new(crate::tpc::OrderTpc));
                participant::routes::<crate::tpc::OrderTpc>(cfg);
                crate::routes::routes(cfg)
            },
            admin: crate::routes::admin_routes,
            fault_operations: FAULT_OPERATIONS,
            openapi: {
                use utoipa::OpenApi as _;
                let mut doc = crate::routes::Api::openapi();
                doc.merge(participant::openapi::<crate::tpc::OrderTpc>());
                doc
            },
        },
    )
}
