//! Payment HTTP handlers.

use actix_web::{HttpResponse, web};
use api::{ChargeRequest, RefundRequest};
use serde::{Deserialize, Serialize};
use shared::{
    ErrorCode, Problem,
    domain::PaymentToken,
    idempotency::{Idempotency, UnitOfWork},
    web::{created, mutation, ok},
};
use sqlx::PgPool;
use uuid::Uuid;

use crate::{
    cards::{Authorization, authorize},
    db,
    startup::PaymentSettings,
};

/// Largest amount one charge may carry: $1,000,000.00.
const MAX_AMOUNT_CENTS: i64 = 100_000_000;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(mutation(
        "/charges",
        web::post().to(charge_order),
        "payment.charge",
        Idempotency::optional(),
    ))
    .service(mutation(
        "/refunds",
        web::post().to(refund_order),
        "payment.refund",
        Idempotency::optional(),
    ))
    .service(web::resource("/payments").route(web::get().to(list_payments)));
}

/// Charges an order once. A repeat for the same order and amount answers with the
/// existing charge; a charge after the order's refund is refused (hanging action).
#[utoipa::path(post, path = "/charges", tag = "payments", request_body = ChargeRequest,
    responses(
        (status = 201, description = "Charged", body = db::Charge),
        (status = 200, description = "The order was charged this amount already: that charge", body = db::Charge),
        (status = 402, description = "Declined (`payment-declined`, with `decline_code` and `charge_id`)"),
        (status = 409, description = "The order was refunded already (`action-after-compensation`), or charged another amount"),
        (status = 422, description = "A token the payment service does not know, or an injected decline"),
    ))]
#[tracing::instrument(skip_all, fields(order.id = %body.order_id))]
async fn charge_order(
    mut uow: UnitOfWork,
    settings: web::Data<PaymentSettings>,
    body: web::Json<ChargeRequest>,
) -> Result<HttpResponse, Problem> {
    match charge(uow.tx().await?, &body, settings.funds_limit_cents).await? {
        Charged::New(charge) => created(&charge),
        Charged::Existing(charge) => ok(&charge),
    }
}

/// What [`charge`] did.
pub enum Charged {
    New(db::Charge),
    /// The order was already charged this amount; nothing changed.
    Existing(db::Charge),
}

/// Charges the order, recording a declined attempt too (a 402 error).
pub async fn charge(
    conn: &mut sqlx::PgConnection,
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
                Some(code.as_str()),
            )
            .await?;
            tracing::info!(decline_code = code.as_str(), "charge declined");
            Err(Problem::new(
                ErrorCode::PaymentDeclined,
                format!("the card was declined: {}", code.as_str()),
            )
            .with_extension("decline_code", code.as_str())
            .with_extension("charge_id", declined.id.to_string()))
        }
        Authorization::Approved | Authorization::UnknownToken => Ok(Charged::New(
            db::insert_charge(conn, request.order_id, request.amount_cents, token.as_str(), None).await?,
        )),
    }
}

/// Compensation: refunds the order's charge (in full by default). A refund for an
/// order never charged succeeds as a recorded no-op (null compensation).
#[utoipa::path(post, path = "/refunds", tag = "payments", request_body = RefundRequest,
    responses(
        (status = 201, description = "Refunded", body = RefundAnswer),
        (status = 200, description = "Nothing to refund: the null compensation, or the order refunded in full already", body = RefundAnswer),
        (status = 409, description = "More than what remains refundable"),
    ))]
#[tracing::instrument(skip_all, fields(order.id = %body.order_id))]
async fn refund_order(mut uow: UnitOfWork, body: web::Json<RefundRequest>) -> Result<HttpResponse, Problem> {
    if body.amount_cents.is_some_and(|a| a <= 0) {
        return Err(Problem::invalid("amount_cents must be positive"));
    }
    let tx = uow.tx().await?;
    db::lock_order(tx, body.order_id).await?;
    let Some(charge) = db::fetch_successful_charge(tx, body.order_id).await? else {
        let refunds = db::fetch_refunds(tx, body.order_id).await?;
        if let Some(earlier) = refunds.into_iter().find(|r| r.null_compensation) {
            return ok(&earlier);
        }
        tracing::info!("null compensation: refunded an order that had no charge");
        return ok(&db::insert_refund(tx, body.order_id, None, 0).await?);
    };
    let remaining = charge.amount_cents - charge.refunded_cents;
    let amount = body.amount_cents.unwrap_or(remaining);
    if remaining == 0 && body.amount_cents.is_none() {
        // Refunded in full already: a repeated full refund has no second effect.
        let refunds = db::fetch_refunds(tx, body.order_id).await?;
        return ok(&RefundedInFull {
            order_id: body.order_id,
            refunded_cents: charge.refunded_cents,
            refunds,
        });
    }
    if amount > remaining {
        return Err(Problem::new(
            ErrorCode::Conflict,
            format!("only {remaining} of {} cents remain refundable", charge.amount_cents),
        ));
    }
    created(&db::insert_refund(tx, body.order_id, Some(charge.id), amount).await?)
}

/// What `POST /refunds` answers: the refund made (or the null compensation), or,
/// for an order refunded in full already, its refunds so far.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
enum RefundAnswer {
    Refund(db::Refund),
    RefundedInFull(RefundedInFull),
}

/// An order refunded in full already: a repeated full refund has no second effect.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct RefundedInFull {
    order_id: Uuid,
    refunded_cents: i64,
    refunds: Vec<db::Refund>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct PaymentsQuery {
    /// The order whose charges and refunds to show.
    order_id: Uuid,
}

/// `GET /payments?order_id=`: an order's money movements and their balance.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct Payments {
    order_id: Uuid,
    charges: Vec<db::Charge>,
    refunds: Vec<db::Refund>,
    /// Succeeded charges.
    charged_cents: i64,
    refunded_cents: i64,
    /// `charged_cents - refunded_cents`.
    net_cents: i64,
}

/// An order's charges and refunds, and their balance.
#[utoipa::path(get, path = "/payments", tag = "payments", params(PaymentsQuery),
    responses((status = 200, description = "The order's payments (empty lists if none)", body = Payments)))]
async fn list_payments(pool: web::Data<PgPool>, query: web::Query<PaymentsQuery>) -> Result<HttpResponse, Problem> {
    let charges = db::fetch_charges(&pool, query.order_id).await?;
    let refunds = db::fetch_refunds(&mut *pool.acquire().await?, query.order_id).await?;
    let charged: i64 = charges
        .iter()
        .filter(|c| c.state == db::ChargeState::Succeeded)
        .map(|c| c.amount_cents)
        .sum();
    let refunded: i64 = refunds.iter().map(|r| r.amount_cents).sum();
    ok(&Payments {
        order_id: query.order_id,
        charges,
        refunds,
        charged_cents: charged,
        refunded_cents: refunded,
        net_cents: charged - refunded,
    })
}

/// The payment service's own endpoints, for its OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(charge_order, refund_order, list_payments))]
pub struct Api;
