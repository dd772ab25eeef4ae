//! The dispatcher actor: on every tick it claims due emails (a lease, not a held
//! transaction), delivers each, and records the outcome. Transient SMTP failures are
//! retried with exponential backoff and jitter, without limit (at least once);
//! permanent refusals (5xx) mark the email failed.

use std::{rc::Rc, time::Duration};

use actix::{Actor, ActorFutureExt, AsyncContext, Context, WrapFuture};
use lettre::{
    AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
    message::{Mailbox, header::ContentType},
};
use sqlx::PgPool;
use tracing::Instrument;

use crate::db::{self, EmailRow};

pub use base::retry::RetryPolicy;

pub enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    /// No SMTP server: the email is logged and marked delivered.
    Log,
}

impl Transport {
    /// Plain SMTP from `smtp://[user:password@]host[:port]` (port 25 by default), as
    /// Mailpit and local relays speak it. TLS relays are not supported.
    pub fn smtp(url: &str) -> anyhow::Result<Transport> {
        let rest = url
            .strip_prefix("smtp://")
            .ok_or_else(|| anyhow::anyhow!("expected smtp://host:port"))?
            .trim_end_matches('/');
        let (credentials, address) = match rest.rsplit_once('@') {
            Some((credentials, address)) => (Some(credentials), address),
            None => (None, rest),
        };
        let (host, port) = match address.rsplit_once(':') {
            Some((host, port)) => (host, port.parse().map_err(|_| anyhow::anyhow!("bad port {port:?}"))?),
            None => (address, 25),
        };
        if host.is_empty() {
            anyhow::bail!("no host");
        }
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
            .port(port)
            .timeout(Some(Duration::from_secs(10)));
        if let Some((user, password)) = credentials.and_then(|c| c.split_once(':')) {
            builder = builder.credentials(lettre::transport::smtp::authentication::Credentials::new(
                user.to_owned(),
                password.to_owned(),
            ));
        }
        Ok(Transport::Smtp(builder.build()))
    }
}

enum Delivery {
    Delivered,
    Retry(String),
    Refused(String),
}

pub struct EmailDispatcher {
    pool: PgPool,
    transport: Rc<Transport>,
    from: Mailbox,
    poll_interval: Duration,
    retry: RetryPolicy,
    /// Emails claimed per tick.
    batch: i64,
    /// True while a tick's deliveries run; overlapping ticks are skipped.
    busy: bool,
}

impl EmailDispatcher {
    pub fn new(pool: PgPool, transport: Transport, from: Mailbox, poll_interval: Duration, retry: RetryPolicy) -> Self {
        EmailDispatcher {
            pool,
            transport: Rc::new(transport),
            from,
            poll_interval,
            retry,
            batch: 20,
            busy: false,
        }
    }
}

impl Actor for EmailDispatcher {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(self.poll_interval, |dispatcher, ctx| {
            if dispatcher.busy {
                return;
            }
            dispatcher.busy = true;
            let work = dispatch_due(
                dispatcher.pool.clone(),
                Rc::clone(&dispatcher.transport),
                dispatcher.from.clone(),
                dispatcher.retry,
                dispatcher.batch,
            );
            ctx.spawn(
                work.into_actor(dispatcher)
                    .map(|(), dispatcher, _| dispatcher.busy = false),
            );
        });
    }
}

async fn dispatch_due(pool: PgPool, transport: Rc<Transport>, from: Mailbox, retry: RetryPolicy, batch: i64) {
    let due = match db::claim_due_emails(&pool, batch, Duration::from_secs(60)).await {
        Ok(due) => due,
        Err(e) => {
            tracing::warn!(error = %e, "claiming due emails failed");
            return;
        }
    };
    for email in due {
        let span = tracing::info_span!(
            "email.deliver",
            otel.kind = "client",
            email.id = %email.id,
            order.id = %email.order_id,
            attempt = email.attempts + 1,
        );
        if let Some(parent) = email.traceparent.as_deref() {
            base::telemetry::continue_trace(&span, parent);
        }
        deliver_and_record(&pool, &transport, &from, retry, email)
            .instrument(span)
            .await;
    }
}

async fn deliver_and_record(pool: &PgPool, transport: &Transport, from: &Mailbox, retry: RetryPolicy, email: EmailRow) {
    let outcome = deliver(transport, from, &email).await;
    let recorded = match outcome {
        Delivery::Delivered => {
            tracing::info!(to = %email.recipient, "email delivered");
            db::update_email_delivered(pool, email.id).await
        }
        Delivery::Retry(error) => {
            let wait = retry.backoff((email.attempts + 1) as u32);
            tracing::warn!(%error, retry_in_ms = wait.as_millis() as u64, "email delivery failed; will retry");
            db::update_email_failed(pool, email.id, &error, Some(wait)).await
        }
        Delivery::Refused(error) => {
            tracing::error!(%error, "email refused permanently");
            db::update_email_failed(pool, email.id, &error, None).await
        }
    };
    if let Err(e) = recorded {
        // The claim expires and the email is delivered again: at least once.
        tracing::warn!(error = %e, "recording the delivery outcome failed");
    }
}

async fn deliver(transport: &Transport, from: &Mailbox, email: &EmailRow) -> Delivery {
    let to: Mailbox = match email.recipient.parse() {
        Ok(to) => to,
        Err(e) => return Delivery::Refused(format!("recipient: {e}")),
    };
    let message = Message::builder()
        .from(from.clone())
        .to(to)
        .subject(email.subject.clone())
        .message_id(Some(format!("<{}@txlab.local>", email.id)))
        .header(ContentType::TEXT_PLAIN)
        .body(email.body.clone());
    let message = match message {
        Ok(message) => message,
        Err(e) => return Delivery::Refused(format!("building the message: {e}")),
    };
    match transport {
        Transport::Log => {
            tracing::info!(to = %email.recipient, subject = %email.subject, "log transport: email not sent over SMTP");
            Delivery::Delivered
        }
        Transport::Smtp(smtp) => match smtp.send(message).await {
            Ok(_) => Delivery::Delivered,
            Err(e) if e.is_permanent() => Delivery::Refused(e.to_string()),
            Err(e) => Delivery::Retry(e.to_string()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[actix_rt::test]
    async fn smtp_urls_are_checked() {
        assert!(Transport::smtp("smtp://localhost:1025").is_ok());
        assert!(Transport::smtp("smtp://user:pw@mail.example.com").is_ok());
        for bad in ["http://localhost:1025", "smtp://", "smtp://host:port"] {
            assert!(Transport::smtp(bad).is_err(), "{bad}");
        }
    }
}
