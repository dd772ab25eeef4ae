//! Typed settings, read once at start-up from the environment described in
//! `contract.md`. Nothing reads `std::env` after start-up.

pub mod resilience;

use std::{collections::HashMap, fmt, net::SocketAddr, str::FromStr, time::Duration};

/// The processes that make up txlab, with their contract defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Service {
    Order,
    Inventory,
    Payment,
    Email,
    Coordinator,
    /// The lab console: web pages over the others' public APIs; no database.
    Console,
}

impl From<api::Participant> for Service {
    fn from(participant: api::Participant) -> Service {
        match participant {
            api::Participant::Order => Service::Order,
            api::Participant::Inventory => Service::Inventory,
            api::Participant::Payment => Service::Payment,
            api::Participant::Email => Service::Email,
        }
    }
}

impl Service {
    pub const ALL: [Service; 6] = [
        Service::Order,
        Service::Inventory,
        Service::Payment,
        Service::Email,
        Service::Coordinator,
        Service::Console,
    ];

    /// Short name, used in fault keys (`fault.<name>.<op>`) and idempotency scopes.
    pub fn name(self) -> &'static str {
        match self {
            Service::Order => "order",
            Service::Inventory => "inventory",
            Service::Payment => "payment",
            Service::Email => "email",
            Service::Coordinator => "coordinator",
            Service::Console => "console",
        }
    }

    /// The binary's name, also the default `OTEL_SERVICE_NAME`.
    pub fn binary(self) -> &'static str {
        match self {
            Service::Order => "order-service",
            Service::Inventory => "inventory-service",
            Service::Payment => "payment-service",
            Service::Email => "email-service",
            Service::Coordinator => "coordinator",
            Service::Console => "console",
        }
    }

    /// The database the service owns (database-per-service); the console has none.
    pub fn database(self) -> Option<&'static str> {
        match self {
            Service::Order => Some("orders"),
            Service::Inventory => Some("inventory"),
            Service::Payment => Some("payments"),
            Service::Email => Some("email"),
            Service::Coordinator => Some("coordinator"),
            Service::Console => None,
        }
    }

    pub fn default_port(self) -> u16 {
        match self {
            Service::Order => 8080,
            Service::Inventory => 8081,
            Service::Payment => 8082,
            Service::Email => 8083,
            Service::Coordinator => 8084,
            Service::Console => 8090,
        }
    }

    /// The environment variable holding this service's base URL for its peers.
    pub fn url_variable(self) -> &'static str {
        match self {
            Service::Order => "ORDER_URL",
            Service::Inventory => "INVENTORY_URL",
            Service::Payment => "PAYMENT_URL",
            Service::Email => "EMAIL_URL",
            Service::Coordinator => "COORDINATOR_URL",
            Service::Console => "CONSOLE_URL",
        }
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A missing or invalid environment variable, named.
#[derive(Debug, thiserror::Error)]
#[error("environment variable {variable}: {reason}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub reason: String,
}

type Lookup = Box<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// Where settings come from: the process environment, or a map in tests.
pub struct Env {
    lookup: Lookup,
}

impl Env {
    pub fn from_process() -> Self {
        Env {
            lookup: Box::new(|name| std::env::var(name).ok()),
        }
    }

    pub fn from_map(map: HashMap<String, String>) -> Self {
        Env {
            lookup: Box::new(move |name| map.get(name).cloned()),
        }
    }

    /// The value, with an empty value treated as unset (as OpenTelemetry does).
    pub fn optional(&self, variable: &'static str) -> Option<String> {
        (self.lookup)(variable).filter(|v| !v.trim().is_empty())
    }

    pub fn required(&self, variable: &'static str) -> Result<String, ConfigError> {
        self.optional(variable).ok_or(ConfigError {
            variable,
            reason: "is required but not set".into(),
        })
    }

    pub fn parse_or<T>(&self, variable: &'static str, default: T) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: fmt::Display,
    {
        match self.optional(variable) {
            None => Ok(default),
            Some(raw) => raw.trim().parse().map_err(|e| ConfigError {
                variable,
                reason: format!("cannot parse {raw:?}: {e}"),
            }),
        }
    }

    pub fn seconds_or(&self, variable: &'static str, default: Duration) -> Result<Duration, ConfigError> {
        let secs: f64 = self.parse_or(variable, default.as_secs_f64())?;
        Duration::try_from_secs_f64(secs).map_err(|e| ConfigError {
            variable,
            reason: format!("not a duration in seconds: {e}"),
        })
    }

    pub fn millis_or(&self, variable: &'static str, default: Duration) -> Result<Duration, ConfigError> {
        let ms: u64 = self.parse_or(variable, default.as_millis() as u64)?;
        Ok(Duration::from_millis(ms))
    }

    /// `on`/`off` (also `true`/`false`, `1`/`0`).
    pub fn switch(&self, variable: &'static str, default: bool) -> Result<bool, ConfigError> {
        match self.optional(variable).map(|v| v.trim().to_ascii_lowercase()) {
            None => Ok(default),
            Some(v) if matches!(v.as_str(), "on" | "true" | "1" | "yes") => Ok(true),
            Some(v) if matches!(v.as_str(), "off" | "false" | "0" | "no") => Ok(false),
            Some(v) => Err(ConfigError {
                variable,
                reason: format!("expected on or off, got {v:?}"),
            }),
        }
    }
}

/// OTLP transport, per the standard `OTEL_EXPORTER_OTLP_PROTOCOL`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtlpProtocol {
    Grpc,
    HttpProtobuf,
}

impl FromStr for OtlpProtocol {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "grpc" => Ok(OtlpProtocol::Grpc),
            "http/protobuf" => Ok(OtlpProtocol::HttpProtobuf),
            other => Err(format!("expected grpc or http/protobuf, got {other:?}")),
        }
    }
}

#[derive(Debug, Clone)]
pub struct OtelSettings {
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`; `None` means spans get ids but are not exported.
    pub endpoint: Option<String>,
    pub protocol: OtlpProtocol,
    pub service_name: String,
}

/// Base URLs of the peers a service calls.
#[derive(Debug, Clone)]
pub struct PeerSettings {
    pub order: String,
    pub inventory: String,
    pub payment: String,
    pub email: String,
    pub coordinator: String,
    pub console: String,
}

impl PeerSettings {
    pub fn url(&self, service: Service) -> &str {
        match service {
            Service::Order => &self.order,
            Service::Inventory => &self.inventory,
            Service::Payment => &self.payment,
            Service::Email => &self.email,
            Service::Coordinator => &self.coordinator,
            Service::Console => &self.console,
        }
    }

    /// `ORDER_URL`, `INVENTORY_URL`, … (each an http(s) URL; the contract's
    /// loopback default when unset).
    pub fn from_env(env: &Env) -> Result<PeerSettings, ConfigError> {
        let peer = |s: Service| -> Result<String, ConfigError> {
            let url = env
                .optional(s.url_variable())
                .unwrap_or_else(|| format!("http://127.0.0.1:{}", s.default_port()));
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(ConfigError {
                    variable: s.url_variable(),
                    reason: format!("must be an http:// or https:// URL, got {url:?}"),
                });
            }
            Ok(url.trim_end_matches('/').to_owned())
        };
        Ok(PeerSettings {
            order: peer(Service::Order)?,
            inventory: peer(Service::Inventory)?,
            payment: peer(Service::Payment)?,
            email: peer(Service::Email)?,
            coordinator: peer(Service::Coordinator)?,
            console: peer(Service::Console)?,
        })
    }
}

impl OtelSettings {
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_EXPORTER_OTLP_PROTOCOL`, `OTEL_SERVICE_NAME`.
    pub fn from_env(service: Service, env: &Env) -> Result<OtelSettings, ConfigError> {
        Ok(OtelSettings {
            endpoint: env.optional("OTEL_EXPORTER_OTLP_ENDPOINT"),
            protocol: env.parse_or("OTEL_EXPORTER_OTLP_PROTOCOL", OtlpProtocol::Grpc)?,
            service_name: env
                .optional("OTEL_SERVICE_NAME")
                .unwrap_or_else(|| service.binary().into()),
        })
    }
}

#[derive(Debug, Clone)]
pub struct IdempotencySettings {
    /// How long a completed key is kept (and replayed) before the purge actor deletes it.
    pub retention: Duration,
    /// How long an in-flight claim is honoured; a duplicate within it gets 409.
    pub lease: Duration,
    /// How often the purge actor runs.
    pub purge_interval: Duration,
}

#[derive(Debug, Clone)]
pub struct FaultSettings {
    /// `FAULT_INJECTION=on`: baggage faults and `/admin/faults` rules are honoured.
    pub enabled: bool,
    /// How long the `timeout` fault waits before doing the work; longer than any
    /// caller's timeout.
    pub timeout_wait: Duration,
}

/// Two-phase commit, participant side.
#[derive(Debug, Clone)]
pub struct TpcSettings {
    /// A prepared transaction older than this is in doubt: ask the coordinator.
    pub in_doubt_after: Duration,
    /// How often to look.
    pub resolve_interval: Duration,
}

/// Several replicas of the orchestrator (and of the coordinator) on the same database.
#[derive(Debug, Clone)]
pub struct ReplicaSettings {
    /// `SAGA_LEASE_TTL_MS` (default 5 s): how long a replica's hold on a saga (or a
    /// 2PC transaction) lasts without a write or a heartbeat; another replica takes
    /// it over once it has run out.
    pub lease_ttl: Duration,
    /// `FENCING` (`on` by default): log writes are conditional on the writer's epoch,
    /// participant calls carry it as a fencing token, and participants refuse a
    /// lower one. `off` keeps the leases (they still assign work) but drops every
    /// check, to show what a paused replica does without them.
    pub fencing: bool,
}

/// The settings every service reads.
#[derive(Debug, Clone)]
pub struct Settings {
    pub service: Service,
    pub bind_addr: SocketAddr,
    pub database_url: String,
    pub database_max_connections: u32,
    pub log_filter: String,
    pub otel: OtelSettings,
    pub fault: FaultSettings,
    pub admin_token: Option<String>,
    pub peers: PeerSettings,
    pub idempotency: IdempotencySettings,
    pub tpc: TpcSettings,
    pub replicas: ReplicaSettings,
    pub resilience: resilience::ResilienceSettings,
}

impl Settings {
    pub fn from_env(service: Service, env: &Env) -> Result<Settings, ConfigError> {
        let default_bind = SocketAddr::from(([127, 0, 0, 1], service.default_port()));
        let bind_addr = env.parse_or("BIND_ADDR", default_bind)?;
        let database_url = env.required("DATABASE_URL")?;
        if !(database_url.starts_with("postgres://") || database_url.starts_with("postgresql://")) {
            return Err(ConfigError {
                variable: "DATABASE_URL",
                reason: "must be a postgres:// or postgresql:// URL".into(),
            });
        }
        let lease_ttl = env.millis_or("SAGA_LEASE_TTL_MS", Duration::from_secs(5))?;
        if lease_ttl < Duration::from_millis(100) {
            return Err(ConfigError {
                variable: "SAGA_LEASE_TTL_MS",
                reason: "must be at least 100 ms".into(),
            });
        }
        Ok(Settings {
            service,
            bind_addr,
            database_url,
            database_max_connections: env.parse_or("DATABASE_MAX_CONNECTIONS", 10)?,
            log_filter: env.optional("RUST_LOG").unwrap_or_else(|| "info".into()),
            otel: OtelSettings::from_env(service, env)?,
            fault: FaultSettings {
                enabled: env.switch("FAULT_INJECTION", false)?,
                timeout_wait: env.millis_or("FAULT_TIMEOUT_WAIT_MS", Duration::from_secs(5))?,
            },
            admin_token: env.optional("ADMIN_TOKEN"),
            peers: PeerSettings::from_env(env)?,
            idempotency: IdempotencySettings {
                retention: env.seconds_or("IDEMPOTENCY_RETENTION_SECS", Duration::from_secs(24 * 3600))?,
                lease: env.seconds_or("IDEMPOTENCY_LEASE_SECS", Duration::from_secs(10))?,
                purge_interval: env.seconds_or("IDEMPOTENCY_PURGE_INTERVAL_SECS", Duration::from_secs(60))?,
            },
            tpc: TpcSettings {
                in_doubt_after: env.seconds_or("TPC_IN_DOUBT_AFTER_SECS", Duration::from_secs(10))?,
                resolve_interval: env.seconds_or("TPC_RESOLVE_INTERVAL_SECS", Duration::from_secs(5))?,
            },
            replicas: ReplicaSettings {
                lease_ttl,
                fencing: env.switch("FENCING", true)?,
            },
            resilience: resilience::ResilienceSettings::from_env(env)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Env {
        Env::from_map(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
    }

    #[test]
    fn missing_database_url_is_named() {
        let err = Settings::from_env(Service::Payment, &env(&[])).unwrap_err();
        assert_eq!(err.variable, "DATABASE_URL");
        assert!(err.to_string().contains("DATABASE_URL"));
    }

    #[test]
    fn defaults_follow_the_contract() {
        let s = Settings::from_env(Service::Inventory, &env(&[("DATABASE_URL", "postgres://x/y")])).unwrap();
        assert_eq!(s.bind_addr.to_string(), "127.0.0.1:8081");
        assert_eq!(s.otel.protocol, OtlpProtocol::Grpc);
        assert_eq!(s.otel.service_name, "inventory-service");
        assert!(s.otel.endpoint.is_none());
        assert!(!s.fault.enabled);
        assert_eq!(s.peers.payment, "http://127.0.0.1:8082");
        assert_eq!(s.idempotency.retention, Duration::from_secs(86400));
        assert_eq!(s.replicas.lease_ttl, Duration::from_secs(5));
        assert!(s.replicas.fencing);
    }

    #[test]
    fn empty_otlp_endpoint_is_unset() {
        let s = Settings::from_env(
            Service::Order,
            &env(&[("DATABASE_URL", "postgres://x/y"), ("OTEL_EXPORTER_OTLP_ENDPOINT", "")]),
        )
        .unwrap();
        assert!(s.otel.endpoint.is_none());
    }

    #[test]
    fn invalid_values_are_named() {
        let cases = [
            ("BIND_ADDR", "nonsense"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "carrier-pigeon"),
            ("FAULT_INJECTION", "maybe"),
            ("PAYMENT_URL", "ftp://x"),
            ("IDEMPOTENCY_RETENTION_SECS", "-3"),
            ("SAGA_LEASE_TTL_MS", "0"),
            ("FENCING", "sometimes"),
        ];
        for (var, value) in cases {
            let err = Settings::from_env(
                Service::Order,
                &env(&[("DATABASE_URL", "postgres://x/y"), (var, value)]),
            )
            .unwrap_err();
            assert_eq!(err.variable, var, "{err}");
        }
    }

    #[test]
    fn database_url_must_be_postgres() {
        let err = Settings::from_env(Service::Order, &env(&[("DATABASE_URL", "mysql://x")])).unwrap_err();
        assert_eq!(err.variable, "DATABASE_URL");
    }
}
