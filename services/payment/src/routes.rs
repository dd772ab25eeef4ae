//! Payment's HTTP handlers: they parse, call [`crate::charges`] and render.

use actix_web::{HttpResponse, web};
use api::{ChargeRequest, Payments, RefundAnswer, RefundRequest};
use base::Problem;
use serde::Deserialize;
use shared::{
    idempotency::{Idempotency, UnitOfWork},
    routing::mutation,
    web::{created, ok},
};
use sqlx::PgPool;
use uuid::Uuid;

use crate::{
    charges::{self, Charged, PaymentSettings, Refunded, charge},
    db,
};

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
    match charges::refund(uow.tx().await?, &body).await? {
        Refunded::New(refund) => created(&refund),
        Refunded::NullCompensation(refund) => ok(&refund),
        Refunded::InFullAlready(refunds) => ok(&refunds),
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct PaymentsQuery {
    /// The order whose charges and refunds to show.
    order_id: Uuid,
}

/// An order's charges and refunds, and their balance.
#[utoipa::path(get, path = "/payments", tag = "payments", params(PaymentsQuery),
    responses((status = 200, description = "The order's payments (empty lists if none)", body = Payments)))]
async fn list_payments(pool: web::Data<PgPool>, query: web::Query<PaymentsQuery>) -> Result<HttpResponse, Problem> {
    ok(&charges::payments(&pool, query.order_id).await?)
}

/// The payment service's own endpoints, for its OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(charge_order, refund_order, list_payments))]
pub struct Api;
