//! Builds the console's server: its pages, its embedded assets, its health checks.

use std::{net::TcpListener, sync::Arc};

use actix_web::{App, HttpResponse, HttpServer, middleware::from_fn, web};
use base::config::Env;
use client::resilience::Resilience;
use shared::{
    routing::limits_and_errors,
    startup::Application,
    web::{QuietHealthRootSpan, trace_response},
};

use crate::{
    Console,
    guard::Guard,
    pages,
    peers::Peers,
    settings::ConsoleSettings,
    traces::{self, TraceBuffer},
};

pub struct Server {
    pub port: u16,
    server: actix_web::dev::Server,
}

impl Application for Server {
    async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}

pub async fn build(settings: ConsoleSettings, _env: Env) -> anyhow::Result<Server> {
    let listener = TcpListener::bind(settings.bind_addr)?;
    let port = listener.local_addr()?.port();
    let resilience = Arc::new(Resilience::new(settings.resilience.clone(), &settings.peers));
    let peers = Peers::new(
        settings.peers.clone(),
        resilience,
        settings.admin_token.clone(),
        settings.peer_timeout,
    )?;
    let admin_token = settings.admin_token.clone();
    let guard = Guard::new(settings.admin_token.clone());
    let traces = TraceBuffer::new(settings.trace_capacity, settings.trace_max_spans);
    let console = web::Data::new(Console {
        settings,
        peers,
        guard,
        traces,
    });
    let server = HttpServer::new(move || {
        App::new()
            .wrap(from_fn(trace_response))
            .wrap(tracing_actix_web::TracingLogger::<QuietHealthRootSpan>::new())
            .app_data(console.clone())
            .configure(routes)
            .configure(limits_and_errors(admin_token.clone()))
    })
    .listen(listener)?
    .workers(2)
    .shutdown_timeout(5)
    .run();
    Ok(Server { port, server })
}

/// The largest OTLP export the console takes (a batch of 512 spans is far below it).
const EXPORT_LIMIT: usize = 16 * 1024 * 1024;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/").route(web::get().to(pages::overview::overview)))
        .service(web::resource("/checkouts/{order_id}").route(web::get().to(pages::xray::xray)))
        .service(web::resource("/scenarios").route(web::get().to(pages::scenarios::scenarios)))
        .service(web::resource("/scenarios/{name}").route(web::post().to(pages::scenarios::run)))
        .service(web::resource("/blocking").route(web::get().to(pages::blocking::blocking)))
        .service(web::resource("/faults").route(web::get().to(pages::faults::faults)))
        .service(web::resource("/faults/{service}").route(web::post().to(pages::faults::add)))
        .service(web::resource("/faults/{service}/remove").route(web::post().to(pages::faults::remove)))
        .service(web::resource("/faults/{service}/clear").route(web::post().to(pages::faults::clear)))
        .service(
            web::resource("/signin")
                .route(web::get().to(pages::signin::form))
                .route(web::post().to(pages::signin::sign_in)),
        )
        .service(web::resource("/assets/console.css").route(web::get().to(css)))
        .service(web::resource("/assets/console.js").route(web::get().to(js)))
        .service(
            web::resource("/v1/traces")
                .app_data(web::PayloadConfig::new(EXPORT_LIMIT))
                .route(web::post().to(traces::export)),
        )
        .service(web::resource("/health/live").route(web::get().to(health)))
        .service(web::resource("/health/ready").route(web::get().to(health)));
}

/// The console is ready as soon as it serves: a service that is down shows as down
/// on its pages.
async fn health() -> HttpResponse {
    HttpResponse::Ok().json(api::health::HealthBody {
        status: api::health::Health::Ready,
    })
}

async fn css() -> HttpResponse {
    asset("text/css; charset=utf-8", include_str!("../assets/console.css"))
}

async fn js() -> HttpResponse {
    asset("text/javascript; charset=utf-8", include_str!("../assets/console.js"))
}

fn asset(content_type: &str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header(("Cache-Control", "public, max-age=300"))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .body(body)
}
