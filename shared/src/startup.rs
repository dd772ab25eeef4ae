//! The `main` every service shares: settings, telemetry, build, serve, flush.
//! A bad environment ends the process with one line naming the variable.

use std::{future::Future, process::ExitCode};

use crate::{
    config::{Env, Service, Settings},
    telemetry,
};

/// A built service, ready to serve.
pub trait Application: Sized {
    fn run_until_stopped(self) -> impl Future<Output = std::io::Result<()>>;
}

/// Runs a service: `build` gets the common settings and the environment (for the
/// service's own variables).
pub async fn run<A, F, Fut>(service: Service, build: F) -> ExitCode
where
    A: Application,
    F: FnOnce(Settings, Env) -> Fut,
    Fut: Future<Output = anyhow::Result<A>>,
{
    let env = Env::from_process();
    let settings = match Settings::from_env(service, &env) {
        Ok(settings) => settings,
        Err(e) => return fail(service, &e),
    };
    let telemetry = match telemetry::init(&settings.otel, &settings.log_filter) {
        Ok(guard) => guard,
        Err(e) => return fail(service, &e),
    };
    let bind_addr = settings.bind_addr;
    let app = match build(settings, env).await {
        Ok(app) => app,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "start-up failed");
            telemetry.shutdown().await;
            return fail(service, &format!("{e:#}"));
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
