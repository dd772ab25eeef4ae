//! Email's HTTP handlers: they parse, call [`crate::outbox`] and render.

use actix_web::{HttpResponse, web};
use api::{Emails, EnqueueEmail};
use base::Problem;
use serde::Deserialize;
use shared::{
    idempotency::{Idempotency, UnitOfWork},
    routing::mutation_and_read,
    web::{created, ok},
};
use sqlx::PgPool;
use uuid::Uuid;

use crate::{db, outbox::enqueue};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(mutation_and_read(
        "/emails",
        web::post().to(enqueue_email),
        "email.send",
        Idempotency::optional(),
        Some(web::get().to(list_emails)),
    ));
}

/// Puts the order's confirmation in the outbox, once: a repeat answers 200 with the
/// email already there. The dispatcher delivers it after this commits.
#[utoipa::path(post, path = "/emails", tag = "emails", request_body = EnqueueEmail,
    responses(
        (status = 201, description = "In the outbox", body = db::Email),
        (status = 200, description = "The order's confirmation was in the outbox already", body = db::Email),
    ))]
#[tracing::instrument(skip_all, fields(order.id = %body.order_id))]
async fn enqueue_email(mut uow: UnitOfWork, body: web::Json<EnqueueEmail>) -> Result<HttpResponse, Problem> {
    let (email, is_new) = enqueue(uow.tx().await?, &body).await?;
    if is_new { created(&email) } else { ok(&email) }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct EmailsQuery {
    /// The order whose emails to show.
    order_id: Uuid,
}

/// An order's emails and their delivery.
#[utoipa::path(get, path = "/emails", tag = "emails", params(EmailsQuery),
    responses((status = 200, description = "The order's emails (an empty list if none)", body = Emails)))]
async fn list_emails(pool: web::Data<PgPool>, query: web::Query<EmailsQuery>) -> Result<HttpResponse, Problem> {
    let emails = db::fetch_emails(&pool, query.order_id).await?;
    ok(&Emails {
        order_id: query.order_id,
        emails,
    })
}

/// The email service's own endpoints, for its OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(enqueue_email, list_emails))]
pub struct Api;
