//! The `main` every service shares: settings, telemetry, build, serve, flush.
//! A bad environment ends the process with one line naming the variable.

use std::{future::Future, net::SocketAddr, process::ExitCode};

use base::{
    config::{ConfigError, Env, OtelSettings, Service, Settings},
    problem::one_line,
    telemetry,
};

/// A built service, ready to serve.
pub trait Application: Sized {
    fn run_until_stopped(self) -> impl Future<Output = std::io::Result<()>>;
}

/// What [`run`] needs of a service's settings: every service's are [`Settings`]; the
/// console, which has no database, has its own.
pub trait ServiceSettings: Sized {
    fn from_env(service: Service, env: &Env) -> Result<Self, ConfigError>;
    fn otel(&self) -> &OtelSettings;
    fn log_filter(&self) -> &str;
    fn bind_addr(&self) -> SocketAddr;
}

impl ServiceSettings for Settings {
    fn from_env(service: Service, env: &Env) -> Result<Self, ConfigError> {
        Settings::from_env(service, env)
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

/// Runs a service: `build` gets the settings and the environment (for the service's
/// own variables).
pub async fn run<S, A, F, Fut>(service: Service, build: F) -> ExitCode
where
    S: ServiceSettings,
    A: Application,
    F: FnOnce(S, Env) -> Fut,
    Fut: Future<Output = anyhow::Result<A>>,
{
    let env = Env::from_process();
    let settings = match S::from_env(service, &env) {
        Ok(settings) => settings,
        Err(e) => return fail(service, &e),
    };
    let telemetry = match telemetry::init(settings.otel(), settings.log_filter()) {
        Ok(guard) => guard,
        Err(e) => return fail(service, &e),
    };
    let bind_addr = settings.bind_addr();
    let app = match build(settings, env).await {
        Ok(app) => app,
        Err(e) => {
            let message = one_line(&*e);
            tracing::error!(error = %message, "start-up failed");
            telemetry.shutdown().await;
            return fail(service, &message);
        }
    };
    tracing::info!(%bind_addr, service = service.binary(), "serving");
    let outcome = app.run_until_stopped().await;
    telemetry.shutdown().await;
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(service, &e),
    }
}

fn fail(service: Service, error: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("{}: {error}", service.binary());
    ExitCode::FAILURE
}

/// A running HTTP server with the plumbing every service has: its database
/// (connected and migrated), idempotency store and purge actor, fault injector,
/// `/admin` scope behind the admin guard, health routes and problem+json errors.
pub struct Server {
    pub port: u16,
    pub pool: sqlx::PgPool,
    server: actix_web::dev::Server,
}

/// What a service contributes to [`Server::start`].
pub struct Routes<P, A> {
    /// Its public routes.
    pub public: P,
    /// Its `/admin/...` routes (the scope adds the guard).
    pub admin: A,
    /// Its fault points, e.g. `["payment.charge", "payment.refund"]`.
    pub fault_operations: &'static [&'static str],
    /// The OpenAPI document of its own endpoints (public and admin); the platform adds
    /// its own and serves the whole at `/openapi.json` and `/docs`.
    pub openapi: crate::openapi::Document,
}

/// A server's first half: its database connected and migrated, its listener bound.
/// Services that need the pool or their own port before serving (to start actors)
/// take these two steps apart.
pub struct Prepared {
    pub port: u16,
    pub pool: sqlx::PgPool,
    listener: std::net::TcpListener,
    migrations: i64,
    injector: Option<actix_web::web::Data<crate::fault::FaultInjector>>,
    resilience: std::sync::Arc<client::resilience::Resilience>,
}

impl Server {
    pub async fn start<P, A>(
        settings: &Settings,
        migrations: &sqlx::migrate::Migrator,
        routes: Routes<P, A>,
    ) -> anyhow::Result<Server>
    where
        P: Fn(&mut actix_web::web::ServiceConfig) + Clone + Send + 'static,
        A: Fn(&mut actix_web::web::ServiceConfig) + Clone + Send + 'static,
    {
        Self::prepare(settings, migrations).await?.serve(settings, routes)
    }

    pub async fn prepare(settings: &Settings, migrations: &sqlx::migrate::Migrator) -> anyhow::Result<Prepared> {
        use anyhow::Context as _;
        let pool = base::db::connect(settings).await?;
        let migrations = base::db::migrate(&pool, &settings.database_url, migrations).await?;
        let listener = std::net::TcpListener::bind(settings.bind_addr)
            .with_context(|| format!("BIND_ADDR: cannot listen on {}", settings.bind_addr))?;
        let port = listener.local_addr()?.port();
        let resilience = std::sync::Arc::new(client::resilience::Resilience::new(
            settings.resilience.clone(),
            &settings.peers,
        ));
        Ok(Prepared {
            port,
            pool,
            listener,
            migrations,
            injector: None,
            resilience,
        })
    }
}

impl Prepared {
    /// The service's fault injector, for services that inject faults outside HTTP
    /// handlers too (the coordinator's protocol). The same one serves `/admin/faults`.
    pub fn fault_injector(
        &mut self,
        settings: &Settings,
        operations: &'static [&'static str],
    ) -> actix_web::web::Data<crate::fault::FaultInjector> {
        self.injector
            .get_or_insert_with(|| {
                actix_web::web::Data::new(crate::fault::FaultInjector::new(settings.fault.clone(), operations))
            })
            .clone()
    }

    /// An HTTP client for the service's peers, sharing the process's breakers,
    /// budgets and bulkheads (shown at `GET /admin/resilience`).
    pub fn http_client(&self) -> anyhow::Result<client::http_client::HttpClient> {
        Ok(client::http_client::HttpClient::new(std::sync::Arc::clone(
            &self.resilience,
        ))?)
    }

    pub fn serve<P, A>(self, settings: &Settings, routes: Routes<P, A>) -> anyhow::Result<Server>
    where
        P: Fn(&mut actix_web::web::ServiceConfig) + Clone + Send + 'static,
        A: Fn(&mut actix_web::web::ServiceConfig) + Clone + Send + 'static,
    {
        use actix::Actor as _;
        use actix_web::{App, HttpServer, middleware::from_fn, web};

        use crate::{
            fault::{self, FaultInjector},
            health::ExpectedMigrations,
            idempotency::{IdempotencyPurger, IdempotencyStore},
            routing::common,
            web::{QuietHealthRootSpan, require_admin, trace_response},
        };

        let Prepared {
            port,
            pool,
            listener,
            migrations,
            injector,
            resilience,
        } = self;
        IdempotencyPurger::new(
            pool.clone(),
            settings.idempotency.retention,
            settings.idempotency.purge_interval,
        )
        .start();
        let store = web::Data::new(IdempotencyStore {
            pool: pool.clone(),
            service: settings.service.name(),
            lease: settings.idempotency.lease,
            fencing: settings.replicas.fencing,
        });
        let injector = injector
            .unwrap_or_else(|| web::Data::new(FaultInjector::new(settings.fault.clone(), routes.fault_operations)));
        let pool_data = web::Data::new(pool.clone());
        let expected = web::Data::new(ExpectedMigrations(migrations));
        let resilience = web::Data::new(resilience);
        let admin_token = settings.admin_token.clone();
        let openapi = crate::openapi::render(&crate::openapi::document(settings.service, routes.openapi))?;
        let Routes { public, admin, .. } = routes;
        let server = HttpServer::new(move || {
            App::new()
                .wrap(from_fn(client::resilience::deadline::honour_deadline))
                .wrap(from_fn(trace_response))
                .wrap(tracing_actix_web::TracingLogger::<QuietHealthRootSpan>::new())
                .app_data(pool_data.clone())
                .app_data(store.clone())
                .app_data(injector.clone())
                .app_data(expected.clone())
                .app_data(resilience.clone())
                .service(
                    web::scope("/admin")
                        .wrap(from_fn(require_admin))
                        .configure(fault::admin_routes)
                        .configure(crate::shedding::admin_routes)
                        .configure(crate::idempotency::admin_routes)
                        .configure(admin.clone()),
                )
                .configure(public.clone())
                .configure(crate::openapi::routes(openapi.clone()))
                .configure(common(admin_token.clone()))
        })
        .listen(listener)?
        .workers(2)
        .shutdown_timeout(10)
        .run();
        Ok(Server { port, pool, server })
    }
}

impl Application for Server {
    async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}

#[cfg(test)]
mod tests {
    use base::problem::one_line;

    #[test]
    fn repeated_causes_are_left_out() {
        let inner = anyhow::anyhow!("database \"nope\" does not exist");
        let outer = inner.context("error returned from database: database \"nope\" does not exist");
        let top = outer.context("DATABASE_URL: cannot connect");
        assert_eq!(
            one_line(&*top),
            "DATABASE_URL: cannot connect: error returned from database: database \"nope\" does not exist"
        );
    }
}
