//! Email HTTP handlers.

use actix_web::{HttpResponse, web};
use api::EnqueueEmail;
use serde::Deserialize;
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EmailsQuery {
    order_id: Uuid,
}

async fn list_emails(pool: web::Data<PgPool>, query: web::Query<EmailsQuery>) -> Result<HttpResponse, Problem> {
    let emails = db::fetch_emails(&pool, query.order_id).await?;
    ok(&serde_json::json!({ "order_id": query.order_id, "emails": emails }))
}
