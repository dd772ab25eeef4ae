//! What the order service does with an order, whoever asks: the HTTP routes and the
//! 2PC adapter both call these.

use api::{CreateOrder, LineItemRequest};
use base::{ErrorCode, Problem, telemetry::current_trace_id};
use shared::domain::{EmailAddress, LineItems, PaymentToken, invalid};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::{
    db::{self, NewOrder},
    domain::{OrderEvent, OrderStatus, Transition},
    view::{self, OrderView},
};

/// Validates and inserts a pending order; `(id, is_new)`. Refused after the order's
/// cancellation (a creation arriving after its compensation).
pub async fn create(conn: &mut PgConnection, body: &CreateOrder) -> Result<(Uuid, bool), Problem> {
    let mut errors = Vec::new();
    let email = EmailAddress::parse(&body.customer_email).map_err(|e| errors.push(format!("customer_email: {e}")));
    let token = PaymentToken::parse(&body.payment_token).map_err(|e| errors.push(format!("payment_token: {e}")));
    let requests: Vec<LineItemRequest> = body
        .items
        .iter()
        .map(|l| LineItemRequest {
            sku: l.sku.clone(),
            quantity: l.quantity,
        })
        .collect();
    let items = LineItems::parse(&requests).map_err(|p| errors.push(p.detail));
    if let Some(bad) = body
        .items
        .iter()
        .find(|l| !(1..=100_000_000).contains(&l.unit_price_cents))
    {
        errors.push(format!("{}: unit_price_cents out of range", bad.sku));
    }
    let (Ok(email), Ok(token), Ok(items)) = (email, token, items) else {
        return Err(invalid(errors));
    };
    if !errors.is_empty() {
        return Err(invalid(errors));
    }
    let prices: Vec<i64> = items
        .iter()
        .map(|line| {
            body.items
                .iter()
                .find(|l| l.sku == line.sku.as_str())
                .map(|l| l.unit_price_cents)
                .unwrap_or_default()
        })
        .collect();
    let id = body.order_id.unwrap_or_else(Uuid::now_v7);
    if db::fetch_order_tombstone(conn, id).await? {
        return Err(Problem::new(
            ErrorCode::ActionAfterCompensation,
            format!("order {id} was cancelled before it was created; the late creation is refused"),
        ));
    }
    let trace_id = current_trace_id();
    let inserted = db::insert_order(
        conn,
        NewOrder {
            id,
            customer_email: email.as_str(),
            payment_token: token.as_str(),
            trace_id: trace_id.as_deref(),
            skus: &items.skus(),
            quantities: &items.quantities(),
            unit_prices: &prices,
        },
    )
    .await?;
    Ok((id, inserted.is_some()))
}

/// What [`transition`] did.
pub enum Transitioned {
    /// The order, as it is now.
    Order(Box<OrderView>),
    /// A cancel of an order never created: recorded, so that a late creation is refused.
    NeverCreated(NeverCreated),
}

pub use api::NeverCreated;

/// Confirms or cancels an order, by the state machine in [`crate::domain`]. Cancelling
/// an order never created records a tombstone (null compensation), so that its late
/// creation is refused.
#[tracing::instrument(skip(conn, reason), fields(order.id = %id))]
pub async fn transition(
    conn: &mut PgConnection,
    id: Uuid,
    event: OrderEvent,
    reason: Option<String>,
) -> Result<Transitioned, Problem> {
    let Some(order) = db::fetch_order(conn, id, true).await? else {
        if event == OrderEvent::Cancel {
            db::insert_order_tombstone(conn, id).await?;
            tracing::info!("null compensation: cancelled an order that was never created");
            return Ok(Transitioned::NeverCreated(NeverCreated {
                order_id: id,
                status: OrderStatus::Cancelled,
                null_compensation: true,
            }));
        }
        return Err(Problem::not_found(format!("no order {id}")));
    };
    match crate::domain::apply(order.status, event) {
        Transition::AlreadyThere => Ok(Transitioned::Order(Box::new(view::load_existing(conn, id).await?))),
        Transition::Refused => Err(Problem::new(
            ErrorCode::Conflict,
            format!(
                "order {id} is {}; it cannot be {}",
                order.status,
                if event == OrderEvent::Confirm {
                    "confirmed"
                } else {
                    "cancelled"
                }
            ),
        )),
        Transition::To(status) => {
            db::update_order_status(conn, id, status, reason.as_deref()).await?;
            Ok(Transitioned::Order(Box::new(view::load_existing(conn, id).await?)))
        }
    }
}
