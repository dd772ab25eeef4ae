//! Email HTTP handlers.

use actix_web::{HttpResponse, web};
use api::EnqueueEmail;
use serde::{Deserialize, Serialize};
use shared::{
    Problem,
    domain::EmailAddress,
    idempotency::{Idempotency, UnitOfWork},
    telemetry::current_traceparent,
    web::{created, mutation_and_read, ok},
};
use sqlx::PgPool;
use uuid::Uuid;

use crate::db::{self, NewEmail};

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

/// Writes the order's confirmation into the outbox unless it is there already;
/// `(email, is_new)`. Delivery starts once the writing transaction commits.
pub async fn enqueue(conn: &mut sqlx::PgConnection, request: &EnqueueEmail) -> Result<(db::Email, bool), Problem> {
    let to = EmailAddress::parse(&request.to).map_err(Problem::invalid)?;
    if !(0..=100_000_000_000).contains(&request.total_cents) {
        return Err(Problem::invalid(format!(
            "total_cents out of range: {}",
            request.total_cents
        )));
    }
    let subject = format!("Your order {} is confirmed", request.order_id);
    let text = format!(
        "Hello,\n\nthank you for your order {}.\nTotal: ${}.{:02}\n\nIt is confirmed and on its way.\n\n-- txlab\n",
        request.order_id,
        request.total_cents / 100,
        request.total_cents % 100
    );
    let traceparent = current_traceparent();
    Ok(db::insert_email(
        conn,
        NewEmail {
            order_id: request.order_id,
            recipient: to.as_str(),
            subject: &subject,
            body: &text,
            traceparent: traceparent.as_deref(),
        },
    )
    .await?)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct EmailsQuery {
    /// The order whose emails to show.
    order_id: Uuid,
}

/// `GET /emails?order_id=`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct Emails {
    order_id: Uuid,
    emails: Vec<db::Email>,
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
