//! `GET /health/live` (the process serves) and `GET /health/ready` (its database is
//! reachable and every migration is applied).

use std::time::Duration;

use actix_web::{HttpResponse, web};
use sqlx::PgPool;

/// How many migrations a ready database has applied; set at start-up.
#[derive(Debug, Clone, Copy)]
pub struct ExpectedMigrations(pub i64);

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/health/live").route(web::get().to(live)))
        .service(web::resource("/health/ready").route(web::get().to(ready)));
}

pub use api::health::{Health, HealthBody};

/// Health checks are polled constantly: their `trace_id` names a trace that is never
/// exported (see `web::QuietHealthRootSpan`).
fn answer(status: Health) -> HttpResponse {
    let body = HealthBody { status };
    crate::web::json(actix_web::http::StatusCode::OK, &body).unwrap_or_else(|_| HttpResponse::Ok().json(body))
}

/// The process serves.
#[utoipa::path(get, path = "/health/live", tag = "health",
    responses((status = 200, description = "Live", body = HealthBody)))]
pub(crate) async fn live() -> HttpResponse {
    answer(Health::Live)
}

/// The database is reachable and every migration is applied.
#[utoipa::path(get, path = "/health/ready", tag = "health",
    responses(
        (status = 200, description = "Ready", body = HealthBody),
        (status = 503, description = "Not ready: `reason` says why"),
    ))]
pub(crate) async fn ready(pool: web::Data<PgPool>, expected: web::Data<ExpectedMigrations>) -> HttpResponse {
    let check = sqlx::query_scalar::<_, i64>("SELECT count(*) FROM _sqlx_migrations WHERE success");
    match tokio::time::timeout(Duration::from_secs(2), check.fetch_one(pool.get_ref())).await {
        Ok(Ok(applied)) if applied >= expected.0 => answer(Health::Ready),
        Ok(Ok(applied)) => unavailable(format!("{applied} of {} migrations applied", expected.0)),
        Ok(Err(e)) => unavailable(format!("database unreachable: {e}")),
        Err(_) => unavailable("database did not answer within 2 s".into()),
    }
}

/// Not ready: a 503 problem+json (as every error is) whose `reason` says why.
fn unavailable(reason: String) -> HttpResponse {
    use actix_web::ResponseError as _;
    base::Problem::new(base::ErrorCode::ServiceUnavailable, format!("not ready: {reason}"))
        .with_extension("reason", reason)
        .with_retry_after(1)
        .error_response()
}
