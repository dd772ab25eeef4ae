//! What the payment service does, whoever asks: the HTTP routes and the 2PC adapter
//! both call these. Per order, charge and refund are serialised by an advisory lock.

use api::{ChargeRequest, Payments, RefundRequest, RefundedInFull};
use base::{ErrorCode, Problem};
use shared::domain::PaymentToken;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::{
    cards::{Authorization, authorize},
    db,
};

/// Largest amount one charge may carry: $1,000,000.00.
pub const MAX_AMOUNT_CENTS: i64 = 100_000_000;

/// Payment's own settings.
#[derive(Debug, Clone, Copy)]
pub struct PaymentSettings {
    /// `tok_insufficientFunds` is declined above this (`PAYMENT_FUNDS_LIMIT_CENTS`).
    pub funds_limit_cents: i64,
}

/// What [`charge`] did.
pub enum Charged {
    New(db::Charge),
    /// The order was already charged this amount; nothing changed.
    Existing(db::Charge),
}

/// Charges the order, recording a declined attempt too (a 402 error).
pub async fn charge(
    conn: &mut PgConnection,
    request: &ChargeRequest,
    funds_limit_cents: i64,
) -> Result<Charged, Problem> {
    let token = PaymentToken::parse(&request.payment_token).map_err(Problem::invalid)?;
    if !(1..=MAX_AMOUNT_CENTS).contains(&request.amount_cents) {
        return Err(Problem::invalid(format!(
            "amount_cents must be between 1 and {MAX_AMOUNT_CENTS}, got {}",
            request.amount_cents
        )));
    }
    let authorization = authorize(token.as_str(), request.amount_cents, funds_limit_cents);
    if authorization == Authorization::UnknownToken {
        return Err(Problem::new(
            ErrorCode::InvalidPaymentToken,
            format!(
                "{} is not a known test token (tok_visa, tok_chargeDeclined, tok_insufficientFunds, ...)",
                token.as_str()
            ),
        ));
    }
    db::lock_order(conn, request.order_id).await?;
    if !db::fetch_refunds(conn, request.order_id).await?.is_empty() {
        return Err(Problem::new(
            ErrorCode::ActionAfterCompensation,
            format!(
                "order {} was already refunded; a charge arriving after its refund is refused",
                request.order_id
            ),
        ));
    }
    if let Some(existing) = db::fetch_successful_charge(conn, request.order_id).await? {
        if existing.amount_cents != request.amount_cents {
            return Err(Problem::new(
                ErrorCode::Conflict,
                format!(
                    "order {} is already charged {} cents",
                    request.order_id, existing.amount_cents
                ),
            ));
        }
        return Ok(Charged::Existing(existing));
    }
    match authorization {
        Authorization::Declined(code) => {
            let declined = db::insert_charge(
                conn,
                request.order_id,
                request.amount_cents,
                token.as_str(),
                Some(code.name()),
            )
            .await?;
            tracing::info!(decline_code = code.name(), "charge declined");
            Err(Problem::new(
                ErrorCode::PaymentDeclined,
                format!("the card was declined: {}", code.name()),
            )
            .with_extension("decline_code", code.name())
            .with_extension("charge_id", declined.id.to_string()))
        }
        Authorization::Approved | Authorization::UnknownToken => Ok(Charged::New(
            db::insert_charge(conn, request.order_id, request.amount_cents, token.as_str(), None).await?,
        )),
    }
}

/// What [`refund`] did.
pub enum Refunded {
    /// A refund, new.
    New(db::Refund),
    /// Nothing was charged: the null compensation, recorded now or before.
    NullCompensation(db::Refund),
    /// Refunded in full already: a repeated full refund has no second effect.
    InFullAlready(RefundedInFull),
}

/// Compensation: refunds the order's charge (in full unless `amount_cents` says how
/// much). A refund for an order never charged is a recorded no-op (null
/// compensation) that refuses a later charge.
pub async fn refund(conn: &mut PgConnection, request: &RefundRequest) -> Result<Refunded, Problem> {
    if request.amount_cents.is_some_and(|a| a <= 0) {
        return Err(Problem::invalid("amount_cents must be positive"));
    }
    db::lock_order(conn, request.order_id).await?;
    let Some(charge) = db::fetch_successful_charge(conn, request.order_id).await? else {
        let refunds = db::fetch_refunds(conn, request.order_id).await?;
        if let Some(earlier) = refunds.into_iter().find(|r| r.null_compensation) {
            return Ok(Refunded::NullCompensation(earlier));
        }
        tracing::info!("null compensation: refunded an order that had no charge");
        return Ok(Refunded::NullCompensation(
            db::insert_refund(conn, request.order_id, None, 0).await?,
        ));
    };
    let remaining = charge.amount_cents - charge.refunded_cents;
    let amount = request.amount_cents.unwrap_or(remaining);
    if remaining == 0 && request.amount_cents.is_none() {
        let refunds = db::fetch_refunds(conn, request.order_id).await?;
        return Ok(Refunded::InFullAlready(RefundedInFull {
            order_id: request.order_id,
            refunded_cents: charge.refunded_cents,
            refunds,
        }));
    }
    if amount > remaining {
        return Err(Problem::new(
            ErrorCode::Conflict,
            format!("only {remaining} of {} cents remain refundable", charge.amount_cents),
        ));
    }
    Ok(Refunded::New(
        db::insert_refund(conn, request.order_id, Some(charge.id), amount).await?,
    ))
}

/// An order's charges and refunds, and their balance.
pub async fn payments(pool: &PgPool, order_id: Uuid) -> Result<Payments, Problem> {
    let charges = db::fetch_charges(pool, order_id).await?;
    let refunds = db::fetch_refunds(&mut *pool.acquire().await?, order_id).await?;
    let charged: i64 = charges
        .iter()
        .filter(|c| c.state == db::ChargeState::Succeeded)
        .map(|c| c.amount_cents)
        .sum();
    let refunded: i64 = refunds.iter().map(|r| r.amount_cents).sum();
    Ok(Payments {
        order_id,
        charges,
        refunds,
        charged_cents: charged,
        refunded_cents: refunded,
        net_cents: charged - refunded,
    })
}
