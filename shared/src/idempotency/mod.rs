//! Idempotency keys held in Postgres: one middleware for every mutating endpoint.
//!
//! ```text
//! request ──► key valid? ──► fingerprint (method, path, canonical body)
//!               │
//!               ▼  claim: INSERT (scope, key) in_flight + lease token, autocommit
//!     ┌─────────┼───────────────┬────────────────────┬───────────────────┐
//!  claimed   completed      other fingerprint     in flight (leased)   lease expired
//!     │      replay stored       422                 409 Retry-After     take over
//!     ▼      + Idempotent-Replayed: true
//!  fencing token? ──► lower than the holder's highest: 409 stale-fencing-token,
//!     │                 key released, nothing done
//!     ▼  (else the holder's highest is raised in the unit of work's transaction)
//!  handler runs on a UnitOfWork (one Postgres transaction)
//!     │
//!     ├─ answer stored (2xx, 402, 409, 422): the response is written into the
//!     │  same transaction, then it commits — business write and stored response
//!     │  become visible together, or neither does
//!     └─ anything else (400s, 404, 5xx, errors): the transaction rolls back and
//!        the claim is deleted, so a retry executes
//! ```
//!
//! The handler and the commit run in a task of their own: a client that hangs up
//! never cancels a unit of work half-way. Requests without a key (allowed everywhere
//! but `POST /checkout`) get the same unit of work, without a stored response.

pub(crate) mod admin;
mod key;
mod purge;
mod store;

use std::{cell::RefCell, future::Future, pin::Pin, rc::Rc};

use actix_web::{
    Error, FromRequest, HttpMessage, HttpRequest, HttpResponse, ResponseError,
    body::{BoxBody, MessageBody},
    dev::{Payload, Service, ServiceRequest, ServiceResponse, Transform},
    http::{
        StatusCode,
        header::{self, HeaderMap, HeaderName, HeaderValue},
    },
    web,
};
use futures_util::{
    StreamExt,
    future::{Ready, ready},
};
use sha2::{Digest, Sha256};
use sqlx::{PgPool, Postgres, Transaction};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

pub use admin::admin_routes;
pub use key::{IdempotencyKey, MAX_KEY_LENGTH, fingerprint};
pub use purge::{IdempotencyPurger, PurgeNow};
pub use store::{
    Claim, ClaimOutcome, Fence, IdempotencyStore, KeyState, ListedKey, StoredResponse, check_fence, highest_epoch,
    list_keys, purge_expired,
};

use api::headers::{FENCING_TOKEN, FencingToken, IDEMPOTENCY_KEY};
use base::{ErrorCode, Problem};

use crate::web::BODY_LIMIT;

/// The header on a replayed response.
pub const REPLAYED: &str = "Idempotent-Replayed";

/// Response headers kept with a stored response (the rest are per-request).
const STORED_HEADERS: [header::HeaderName; 2] = [header::CONTENT_TYPE, header::LOCATION];

/// Whether an answer with this status is stored (and its unit of work committed).
/// 2xx and business outcomes are; validation errors, unknown resources and
/// unexpected errors are not, and release the key.
pub fn is_stored(status: StatusCode) -> bool {
    status.is_success() || matches!(status.as_u16(), 402 | 409 | 422)
}

/// Middleware for a mutating endpoint. `required()` refuses requests without a key.
#[derive(Debug, Clone, Copy, Default)]
pub struct Idempotency {
    required: bool,
}

impl Idempotency {
    pub fn optional() -> Self {
        Idempotency { required: false }
    }

    pub fn required() -> Self {
        Idempotency { required: true }
    }
}

impl<S, B> Transform<S, ServiceRequest> for Idempotency
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<BoxBody>;
    type Error = Error;
    type Transform = IdempotencyMiddleware<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(IdempotencyMiddleware {
            service: Rc::new(service),
            required: self.required,
        }))
    }
}

pub struct IdempotencyMiddleware<S> {
    service: Rc<S>,
    required: bool,
}

type LocalBoxFuture<T> = Pin<Box<dyn Future<Output = T>>>;

impl<S, B> Service<ServiceRequest> for IdempotencyMiddleware<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<BoxBody>;
    type Error = Error;
    type Future = LocalBoxFuture<Result<Self::Response, Self::Error>>;

    actix_web::dev::forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let service = Rc::clone(&self.service);
        let required = self.required;
        Box::pin(async move {
            if !crate::web::is_mutating(req.method()) {
                return service.call(req).await.map(ServiceResponse::map_into_boxed_body);
            }
            match handle(service, required, req).await {
                Ok(response) => Ok(response),
                Err((req, problem)) => Ok(ServiceResponse::new(req, problem.error_response())),
            }
        })
    }
}

type Rejected = (HttpRequest, Problem);

async fn handle<S, B>(
    service: Rc<S>,
    required: bool,
    mut req: ServiceRequest,
) -> Result<ServiceResponse<BoxBody>, Rejected>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
{
    let Some(store) = req.app_data::<web::Data<IdempotencyStore>>().cloned() else {
        let problem = Problem::internal(anyhow::anyhow!("IdempotencyStore is not registered as app data"));
        return Err((req.request().clone(), problem));
    };
    let span = tracing::Span::current();
    let key = match req.headers().get(IDEMPOTENCY_KEY) {
        Some(raw) => match IdempotencyKey::parse(raw.as_bytes()) {
            Ok(key) => Some(key),
            Err(problem) => return Err((req.request().clone(), problem)),
        },
        None if required => {
            let problem = Problem::new(
                ErrorCode::IdempotencyKeyMissing,
                "send an Idempotency-Key header (1-255 printable ASCII characters), e.g. a UUID",
            );
            return Err((req.request().clone(), problem));
        }
        None => None,
    };

    let fencing = match fencing_token(req.headers(), store.fencing) {
        Ok(fencing) => fencing,
        Err(problem) => return Err((req.request().clone(), problem)),
    };
    let body = match read_body(&mut req).await {
        Ok(body) => body,
        Err(problem) => return Err((req.request().clone(), problem)),
    };
    let claim = match &key {
        None => None,
        Some(key) => {
            span.set_attribute("idempotency.key", key.as_str().to_owned());
            let path = req.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/").to_owned();
            let print = fingerprint(req.method().as_str(), &path, &body);
            let scope = scope_of(store.service, &req);
            match store.claim(&scope, key.as_str(), &print).await {
                Err(e) => return Err((req.request().clone(), Problem::internal(e))),
                Ok(ClaimOutcome::Claimed(claim)) => Some(claim),
                Ok(ClaimOutcome::Completed(stored)) => {
                    span.set_attribute("idempotency.replayed", true);
                    tracing::info!(idempotency.key = key.as_str(), "replaying the stored response");
                    return Ok(ServiceResponse::new(req.request().clone(), replay(&stored)));
                }
                Ok(ClaimOutcome::FingerprintMismatch) => {
                    let problem = Problem::new(
                        ErrorCode::IdempotencyKeyReused,
                        "this key was used with a different method, path or body; use a new key for a new request",
                    );
                    return Err((req.request().clone(), problem));
                }
                Ok(ClaimOutcome::InFlight { retry_after }) => {
                    let problem = Problem::new(
                        ErrorCode::IdempotencyKeyInFlight,
                        "the first request with this key has not finished; retry after the Retry-After seconds",
                    )
                    .with_retry_after(retry_after.as_secs_f64().ceil() as u64);
                    return Err((req.request().clone(), problem));
                }
            }
        }
    };
    span.set_attribute("idempotency.replayed", false);
    if let Some(claim) = &claim {
        req.extensions_mut().insert(ClaimedKey {
            scope: claim.scope.clone(),
            key: claim.key.clone(),
        });
    }
    req.set_payload(Payload::from(body));
    let slot = UnitOfWorkSlot::new(store.pool.clone());
    if let Some(token) = fencing {
        let scope = scope_of(store.service, &req);
        match fence(&store, &scope, &token).await {
            Ok(tx) => slot.0.borrow_mut().tx = Some(tx),
            Err(problem) => {
                if let Some(claim) = &claim {
                    release(&store, claim).await;
                }
                return Err((req.request().clone(), problem));
            }
        }
    }
    req.extensions_mut().insert(slot.clone());

    let request = req.request().clone();
    // The work runs in a task of its own (a caller hanging up must not cut a commit
    // in half), under the caller's deadline if it sent one: past it, the handler is
    // dropped before committing, and `finish` rolls back and releases the key.
    let deadline = client::resilience::deadline::current();
    let work = {
        let request = request.clone();
        async move {
            let outcome = match deadline {
                None => service.call(req).await,
                Some(deadline) => {
                    let budget = deadline.saturating_duration_since(std::time::Instant::now());
                    let call = client::resilience::deadline::within(deadline, service.call(req));
                    match tokio::time::timeout(budget, call).await {
                        Ok(outcome) => outcome,
                        Err(_) => Err(client::resilience::deadline::exceeded(budget).into()),
                    }
                }
            };
            finish(&store, claim, slot, request, outcome).await
        }
    };
    match actix_rt::spawn(work.instrument(span)).await {
        Ok(response) => Ok(response),
        Err(e) => {
            // The task panicked; its transaction rolled back when it was dropped.
            tracing::error!(error = %e, "the unit of work's task failed");
            Err((request, Problem::internal(anyhow::anyhow!("the request's task failed"))))
        }
    }
}

/// The call's `Fencing-Token`, when it carries one and fencing is on; a malformed
/// one is a bad request.
pub fn fencing_token(headers: &HeaderMap, fencing: bool) -> Result<Option<FencingToken>, Problem> {
    let Some(raw) = headers.get(FENCING_TOKEN) else {
        return Ok(None);
    };
    if !fencing {
        return Ok(None);
    }
    let raw = raw
        .to_str()
        .map_err(|_| Problem::invalid(format!("{FENCING_TOKEN} must be printable ASCII")))?;
    FencingToken::parse(raw).map(Some).map_err(Problem::invalid)
}

/// Checks the call's fencing token in a new transaction, the one its work will be
/// done in: a stale one is refused with nothing done, a current one is recorded.
async fn fence(
    store: &IdempotencyStore,
    scope: &str,
    token: &FencingToken,
) -> Result<Transaction<'static, Postgres>, Problem> {
    let mut tx = base::db::begin(&store.pool).await?;
    match check_fence(&mut tx, scope, &token.holder, token.epoch).await? {
        Fence::Current => Ok(tx),
        Fence::Stale { highest } => {
            tx.rollback().await?;
            Err(stale_token(token, highest))
        }
    }
}

/// The refusal of a stale fencing token: a span event, a log line, and `409
/// stale-fencing-token`.
pub fn stale_token(token: &FencingToken, highest: i64) -> Problem {
    base::telemetry::span_event(
        &tracing::Span::current(),
        "fencing.stale_token_refused",
        vec![
            base::telemetry::KeyValue::new("fencing.holder", token.holder.clone()),
            base::telemetry::KeyValue::new("fencing.epoch", token.epoch),
            base::telemetry::KeyValue::new("fencing.highest_seen", highest),
        ],
    );
    tracing::warn!(
        fencing.holder = %token.holder,
        fencing.epoch = token.epoch,
        fencing.highest_seen = highest,
        "stale fencing token refused: a newer holder has called; nothing done"
    );
    Problem::new(
        ErrorCode::StaleFencingToken,
        format!(
            "epoch {} of {} is lower than epoch {highest}, already seen: the caller's lease was taken over; nothing was done",
            token.epoch, token.holder
        ),
    )
}

/// Commits or rolls back the unit of work, storing the response with the commit.
async fn finish<B: MessageBody + 'static>(
    store: &IdempotencyStore,
    claim: Option<Claim>,
    slot: UnitOfWorkSlot,
    request: HttpRequest,
    outcome: Result<ServiceResponse<B>, Error>,
) -> ServiceResponse<BoxBody> {
    let response = match outcome {
        Ok(response) => response,
        Err(e) => {
            // Errors that escaped as Err are rendered like any other.
            let tx = slot.take();
            drop(tx);
            if let Some(claim) = &claim {
                release(store, claim).await;
            }
            return ServiceResponse::new(request, e.error_response());
        }
    };
    let status = response.status();
    let (request, response) = response.into_parts();
    let (head, body) = response.into_parts();
    let body = match actix_web::body::to_bytes(body).await {
        Ok(body) => body,
        Err(_) => {
            drop(slot.take());
            if let Some(claim) = &claim {
                release(store, claim).await;
            }
            let problem = Problem::internal(anyhow::anyhow!("the handler's body could not be read"));
            return ServiceResponse::new(request, problem.error_response());
        }
    };
    let tx = slot.take();
    if !is_stored(status) {
        drop(tx);
        if let Some(claim) = &claim {
            release(store, claim).await;
        }
        return ServiceResponse::new(request, head.set_body(body).map_into_boxed_body());
    }
    let stored = StoredResponse {
        status: status.as_u16(),
        headers: STORED_HEADERS
            .iter()
            .filter_map(|name| {
                let value = head.headers().get(name)?.to_str().ok()?;
                Some((name.as_str().to_owned(), value.to_owned()))
            })
            .collect(),
        body: body.to_vec(),
    };
    match commit(store, claim.as_ref(), tx, &stored).await {
        Ok(()) => ServiceResponse::new(request, head.set_body(body).map_into_boxed_body()),
        Err(problem) => {
            if let Some(claim) = &claim
                && problem.code != ErrorCode::IdempotencyKeyInFlight
            {
                release(store, claim).await;
            }
            ServiceResponse::new(request, problem.error_response())
        }
    }
}

async fn commit(
    store: &IdempotencyStore,
    claim: Option<&Claim>,
    tx: Option<Transaction<'static, Postgres>>,
    stored: &StoredResponse,
) -> Result<(), Problem> {
    let mut tx = match (tx, claim) {
        (Some(tx), _) => tx,
        (None, Some(_)) => base::db::begin(&store.pool).await?,
        (None, None) => return Ok(()),
    };
    if let Some(claim) = claim
        && !store.complete(&mut tx, claim, stored).await?
    {
        tx.rollback().await?;
        return Err(Problem::new(
            ErrorCode::IdempotencyKeyInFlight,
            "this request outlived its lease and another request with the same key took over; nothing was committed",
        )
        .with_retry_after(1));
    }
    tx.commit().await?;
    Ok(())
}

async fn release(store: &IdempotencyStore, claim: &Claim) {
    if let Err(e) = store.release(claim).await {
        // The lease will expire and the key will be taken over then.
        tracing::warn!(error = %e, "releasing an idempotency key failed");
    }
}

fn replay(stored: &StoredResponse) -> HttpResponse {
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = HttpResponse::build(status);
    for (name, value) in &stored.headers {
        if let (Ok(name), Ok(value)) = (HeaderName::try_from(name.as_str()), HeaderValue::from_str(value)) {
            response.insert_header((name, value));
        }
    }
    response.insert_header((
        HeaderName::from_static("idempotent-replayed"),
        HeaderValue::from_static("true"),
    ));
    response.body(stored.body.clone())
}

/// Keys are scoped per service, and per client where the request names one (its
/// `Authorization` header, hashed).
fn scope_of(service: &str, req: &ServiceRequest) -> String {
    match req.headers().get(header::AUTHORIZATION) {
        Some(auth) => {
            let digest = Sha256::digest(auth.as_bytes());
            format!("{service}:{}", hex::encode(&digest[..8]))
        }
        None => service.to_owned(),
    }
}

async fn read_body(req: &mut ServiceRequest) -> Result<web::Bytes, Problem> {
    let too_large = || {
        Problem::new(
            ErrorCode::PayloadTooLarge,
            format!("the body must be at most {BODY_LIMIT} bytes"),
        )
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > BODY_LIMIT) {
        return Err(too_large());
    }
    let mut payload = req.take_payload();
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| Problem::invalid(format!("reading the body failed: {e}")))?;
        if body.len() + chunk.len() > BODY_LIMIT {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// The request's transaction, shared by the handler (through [`UnitOfWork`]) and the
/// middleware that commits it.
#[derive(Clone)]
struct UnitOfWorkSlot(Rc<RefCell<SlotState>>);

struct SlotState {
    pool: PgPool,
    tx: Option<Transaction<'static, Postgres>>,
}

impl UnitOfWorkSlot {
    fn new(pool: PgPool) -> Self {
        UnitOfWorkSlot(Rc::new(RefCell::new(SlotState { pool, tx: None })))
    }

    fn take(&self) -> Option<Transaction<'static, Postgres>> {
        self.0.borrow_mut().tx.take()
    }
}

/// The handler's side of a request's database transaction. Write through
/// [`UnitOfWork::tx`]; never commit: the idempotency middleware commits it together
/// with the stored response (or rolls it back) once the handler has answered.
pub struct UnitOfWork {
    slot: UnitOfWorkSlot,
    tx: Option<Transaction<'static, Postgres>>,
}

impl UnitOfWork {
    /// The transaction, begun on first use.
    pub async fn tx(&mut self) -> Result<&mut Transaction<'static, Postgres>, Problem> {
        if self.tx.is_none() {
            // Begun already when the call's fencing token was checked in it.
            self.tx = self.slot.take();
        }
        if self.tx.is_none() {
            let pool = self.slot.0.borrow().pool.clone();
            self.tx = Some(base::db::begin(&pool).await?);
        }
        self.tx
            .as_mut()
            .ok_or_else(|| Problem::internal(anyhow::anyhow!("transaction vanished")))
    }
}

impl Drop for UnitOfWork {
    fn drop(&mut self) {
        if let Some(tx) = self.tx.take() {
            self.slot.0.borrow_mut().tx = Some(tx);
        }
    }
}

impl FromRequest for UnitOfWork {
    type Error = Problem;
    type Future = Ready<Result<Self, Problem>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(match req.extensions().get::<UnitOfWorkSlot>() {
            Some(slot) => Ok(UnitOfWork {
                slot: slot.clone(),
                tx: None,
            }),
            None => Err(Problem::internal(anyhow::anyhow!(
                "UnitOfWork used on a route without the Idempotency middleware"
            ))),
        })
    }
}

/// The key this request holds, for handlers whose own records must be found again
/// by it (a checkout's saga).
#[derive(Debug, Clone)]
pub struct ClaimedKey {
    pub scope: String,
    pub key: String,
}

impl FromRequest for ClaimedKey {
    type Error = Problem;
    type Future = Ready<Result<Self, Problem>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(req.extensions().get::<ClaimedKey>().cloned().ok_or_else(|| {
            Problem::new(
                ErrorCode::IdempotencyKeyMissing,
                "this endpoint needs an Idempotency-Key header",
            )
        }))
    }
}
