//! Payment's part in a two-phase-commit checkout: the charge, inside the transaction
//! that is prepared. A declined card votes no (and, rolled back, leaves no record).

use api::{ChargePrepared, ChargeRequest, Participant};
use base::{ErrorCode, Problem};
use participant::TpcWork;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::charges::{Charged, charge};

pub struct PaymentTpc {
    pub funds_limit_cents: i64,
}

impl TpcWork for PaymentTpc {
    const PARTICIPANT: Participant = Participant::Payment;
    const PREPARE_OPERATION: &'static str = "payment.prepare";
    const COMMIT_OPERATION: &'static str = "payment.commit";
    const ABORT_OPERATION: &'static str = "payment.abort";
    type Payload = ChargeRequest;
    type Detail = ChargePrepared;

    async fn prepare(
        &self,
        conn: &mut PgConnection,
        _: Uuid,
        request: ChargeRequest,
    ) -> Result<ChargePrepared, Problem> {
        match charge(conn, &request, self.funds_limit_cents).await? {
            Charged::New(charge) => Ok(ChargePrepared {
                charge_id: charge.id,
                amount_cents: charge.amount_cents,
            }),
            Charged::Existing(_) => Err(Problem::new(
                ErrorCode::Conflict,
                format!("order {} is already charged", request.order_id),
            )),
        }
    }
}
