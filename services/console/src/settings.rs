//! The console's settings: where it listens, where the services are, where Jaeger's
//! UI is, and how often its pages refresh.

use std::{net::SocketAddr, time::Duration};

use base::config::{ConfigError, Env, OtelSettings, PeerSettings, Service, resilience::ResilienceSettings};
use shared::startup::ServiceSettings;

#[derive(Debug, Clone)]
pub struct ConsoleSettings {
    /// `BIND_ADDR`, 127.0.0.1:8090 by default.
    pub bind_addr: SocketAddr,
    /// `ORDER_URL`, `INVENTORY_URL`, `PAYMENT_URL`, `EMAIL_URL`, `COORDINATOR_URL`.
    pub peers: PeerSettings,
    /// `JAEGER_UI_URL`: where a checkout's trace id links to.
    pub jaeger_ui_url: String,
    /// `ADMIN_TOKEN`: sent to the services' `/admin` endpoints; when set, the
    /// console's own actions require it too.
    pub admin_token: Option<String>,
    /// `CONSOLE_REFRESH_MS`: how often an open page refreshes itself.
    pub refresh: Duration,
    /// `CONSOLE_PEER_TIMEOUT_MS`: how long a read of a service may take before the
    /// page shows it as down.
    pub peer_timeout: Duration,
    /// `CONSOLE_TRACE_CAPACITY`: how many traces the console keeps (the oldest goes).
    pub trace_capacity: usize,
    /// `CONSOLE_TRACE_MAX_SPANS`: how many spans of one trace it keeps.
    pub trace_max_spans: usize,
    pub resilience: ResilienceSettings,
    pub log_filter: String,
    pub otel: OtelSettings,
}

impl ServiceSettings for ConsoleSettings {
    fn from_env(service: Service, env: &Env) -> Result<Self, ConfigError> {
        let jaeger_ui_url = env
            .optional("JAEGER_UI_URL")
            .unwrap_or_else(|| "http://localhost:16686".into());
        if !(jaeger_ui_url.starts_with("http://") || jaeger_ui_url.starts_with("https://")) {
            return Err(ConfigError {
                variable: "JAEGER_UI_URL",
                reason: format!("must be an http:// or https:// URL, got {jaeger_ui_url:?}"),
            });
        }
        Ok(ConsoleSettings {
            bind_addr: env.parse_or("BIND_ADDR", SocketAddr::from(([127, 0, 0, 1], service.default_port())))?,
            peers: PeerSettings::from_env(env)?,
            jaeger_ui_url: jaeger_ui_url.trim_end_matches('/').to_owned(),
            admin_token: env.optional("ADMIN_TOKEN"),
            refresh: env.millis_or("CONSOLE_REFRESH_MS", Duration::from_secs(2))?,
            peer_timeout: env.millis_or("CONSOLE_PEER_TIMEOUT_MS", Duration::from_secs(2))?,
            trace_capacity: env.parse_or("CONSOLE_TRACE_CAPACITY", 500)?,
            trace_max_spans: env.parse_or("CONSOLE_TRACE_MAX_SPANS", 2000)?,
            resilience: ResilienceSettings::from_env(env)?,
            log_filter: env.optional("RUST_LOG").unwrap_or_else(|| "info".into()),
            otel: OtelSettings::from_env(service, env)?,
        })
    }

    fn otel(&self) -> &OtelSettings {
        &self.otel
    }

    fn log_filter(&self) -> &str {
        &self.log_filter
    }

    fn bind_addr(&self) -> SocketAddr {
        self.bind_addr
    }
}
