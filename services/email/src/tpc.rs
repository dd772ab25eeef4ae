//! Email's part in a two-phase-commit checkout. Email is not a transactional
//! resource: it takes part through its outbox row, prepared and committed with the
//! rest; the dispatcher only ever sees committed rows, so nothing is sent before the
//! decision, and nothing at all on abort.

use api::{EmailPrepared, EnqueueEmail, Participant};
use base::{ErrorCode, Problem};
use participant::TpcWork;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::outbox::enqueue;

pub struct EmailTpc;

impl TpcWork for EmailTpc {
    const PARTICIPANT: Participant = Participant::Email;
    const PREPARE_OPERATION: &'static str = "email.prepare";
    const COMMIT_OPERATION: &'static str = "email.commit";
    const ABORT_OPERATION: &'static str = "email.abort";
    type Payload = EnqueueEmail;
    type Detail = EmailPrepared;

    async fn prepare(&self, conn: &mut PgConnection, _: Uuid, request: EnqueueEmail) -> Result<EmailPrepared, Problem> {
        let (email, is_new) = enqueue(conn, &request).await?;
        if !is_new {
            return Err(Problem::new(
                ErrorCode::Conflict,
                format!("order {} already has its confirmation", request.order_id),
            ));
        }
        Ok(EmailPrepared { email_id: email.id })
    }
}
