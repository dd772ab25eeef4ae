//! The outbox: what the email service does, whoever asks (the HTTP routes and the
//! 2PC adapter both call it). Delivery is the dispatcher's, after the writing
//! transaction commits.

use api::EnqueueEmail;
use base::{Problem, telemetry::current_traceparent};
use shared::domain::EmailAddress;

use crate::db::{self, NewEmail};

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
