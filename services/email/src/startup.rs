use std::time::Duration;

use actix::Actor as _;
use anyhow::Context as _;
use base::config::{Env, Settings};
use lettre::message::Mailbox;
use shared::startup::{Routes, Server};

use crate::dispatcher::{EmailDispatcher, RetryPolicy, Transport};

pub static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/email");

pub const FAULT_OPERATIONS: &[&str] = &["email.send", "email.prepare", "email.commit", "email.abort"];

/// The email service's own settings.
#[derive(Debug, Clone)]
pub struct EmailSettings {
    /// `SMTP_URL`, e.g. `smtp://localhost:1025`; unset = the log transport.
    pub smtp_url: Option<String>,
    /// `EMAIL_FROM`.
    pub from: Mailbox,
    /// `EMAIL_POLL_INTERVAL_MS`: how often the dispatcher looks for due emails.
    pub poll_interval: Duration,
    pub retry: RetryPolicy,
}

impl EmailSettings {
    pub fn from_env(env: &Env) -> anyhow::Result<Self> {
        let from = env
            .optional("EMAIL_FROM")
            .unwrap_or_else(|| "txlab orders <orders@txlab.local>".into());
        Ok(EmailSettings {
            smtp_url: env.optional("SMTP_URL"),
            from: from
                .parse()
                .map_err(|e| anyhow::anyhow!("environment variable EMAIL_FROM: {from:?} is not a mailbox: {e}"))?,
            poll_interval: env.millis_or("EMAIL_POLL_INTERVAL_MS", Duration::from_millis(250))?,
            retry: RetryPolicy {
                max_attempts: u32::MAX,
                first_backoff: env.millis_or("EMAIL_RETRY_BASE_MS", Duration::from_millis(500))?,
                max_backoff: env.millis_or("EMAIL_RETRY_MAX_MS", Duration::from_secs(60))?,
            },
        })
    }
}

pub async fn build(settings: Settings, env: Env) -> anyhow::Result<Server> {
    build_with(settings, EmailSettings::from_env(&env)?).await
}

pub async fn build_with(settings: Settings, email: EmailSettings) -> anyhow::Result<Server> {
    let transport = match &email.smtp_url {
        Some(url) => Transport::smtp(url).with_context(|| format!("environment variable SMTP_URL: {url:?}"))?,
        None => Transport::Log,
    };
    let prepared = Server::prepare(&settings, &MIGRATIONS).await?;
    participant::start_resolver(&settings, prepared.pool.clone(), prepared.http_client()?)?;
    let server = prepared.serve(
        &settings,
        Routes {
            public: |cfg: &mut actix_web::web::ServiceConfig| {
                cfg.app_data(actix_web::web::Data::new(crate::tpc::EmailTpc));
                participant::routes::<crate::tpc::EmailTpc>(cfg);
                crate::routes::routes(cfg)
            },
            admin: |_: &mut actix_web::web::ServiceConfig| {},
            fault_operations: FAULT_OPERATIONS,
            openapi: {
                use utoipa::OpenApi as _;
                let mut doc = crate::routes::Api::openapi();
                doc.merge(participant::openapi::<crate::tpc::EmailTpc>());
                doc
            },
        },
    )?;
    EmailDispatcher::new(
        server.pool.clone(),
        transport,
        email.from,
        email.poll_interval,
        email.retry,
    )
    .start();
    Ok(server)
}
