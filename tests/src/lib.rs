//! The platform for end-to-end tests: every service in this process on port 0, each
//! with its own fresh database, wired to each other and to an SMTP sink; plus the
//! consistency checks from the brief.
//!
//! - this file: [`Platform`] (in-process services) and the checks and request helpers
//!   the tests share;
//! - [`otlp`]: a real OTLP trace receiver (gRPC and HTTP) that keeps every span;
//! - [`processes`]: the platform as real processes, to SIGKILL and SIGSTOP;
//! - [`browser`]: headless Chromium driven over WebDriver, for the console.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use api::{
    CheckoutRequest, Email, EmailState, Emails, LineItemRequest, OrderStatus, OrderView, Participant, ParticipantView,
    Payments, Product, Reservation, ReservationState, SagaStatus, SetStock, StepView, TransactionView,
    faults::{FaultRule, FaultRules, FaultsView},
    headers::{BAGGAGE, IDEMPOTENCY_KEY},
    resilience::ResilienceView,
};
use base::config::{Service, Settings};
use serde::de::DeserializeOwned;
use serde_json::Value;
use shared::startup as shared_startup;
use testing::{SmtpSink, TestApp, eventually};
use uuid::Uuid;

pub struct Platform {
    pub coordinator: TestApp,
    pub order: TestApp,
    pub inventory: TestApp,
    pub payment: TestApp,
    pub email: TestApp,
    pub smtp: SmtpSink,
    /// When the services run as processes of their own (to be killed and restarted).
    pub processes: Option<processes::Processes>,
}

pub mod browser;
pub mod otlp;
pub mod processes;

/// How the orchestrator is tuned for tests: short waits, quick recovery.
pub fn saga_settings() -> order_service::startup::SagaSettings {
    order_service::startup::SagaSettings {
        checkout_deadline: Duration::from_secs(15),
        recovery_interval: Duration::from_millis(200),
        park_retry: Duration::from_millis(500),
    }
}

fn tune_participant(settings: &mut Settings, coordinator: &str) {
    // Longer than any step's or vote's timeout (3 s at most), so `timeout` times out.
    settings.fault.timeout_wait = Duration::from_millis(3500);
    settings.peers.coordinator = coordinator.to_owned();
    settings.tpc.in_doubt_after = Duration::from_secs(1);
    settings.tpc.resolve_interval = Duration::from_millis(300);
}

/// Ports handed out by [`free_port`]: below Linux's ephemeral range (32768–60999), so
/// that no outgoing connection — a database connection, say — is given one meanwhile.
const RESERVED_PORTS: std::ops::Range<u16> = 20_000..32_000;

/// The console, running in this process.
pub struct ConsoleApp {
    pub address: String,
    pub client: reqwest::Client,
}

impl ConsoleApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// `GET path`: the status and the body.
    pub async fn page(&self, path: &str) -> (u16, String) {
        let response = self.client.get(self.url(path)).send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.text().await.unwrap())
    }
}

/// A port nobody listens on yet, for a service its peers must know before it starts
/// (or that is killed and restarted on the same port). It stays this process's until
/// the process ends: a lock file per port, shared by every test process on the
/// machine, keeps other tests from picking it while it is not being listened on.
pub fn free_port() -> u16 {
    static HELD: std::sync::Mutex<Vec<std::fs::File>> = std::sync::Mutex::new(Vec::new());
    let dir = std::env::temp_dir().join("txlab-test-ports");
    std::fs::create_dir_all(&dir).expect("the port lock directory");
    let span = RESERVED_PORTS.end - RESERVED_PORTS.start;
    let first = (Uuid::new_v4().as_u128() % u128::from(span)) as u16;
    for offset in 0..span {
        let port = RESERVED_PORTS.start + (first + offset) % span;
        // A file another user made cannot be opened here: that port is skipped.
        let Ok(lock) = std::fs::File::create(dir.join(format!("{port}.lock"))) else {
            continue;
        };
        if lock.try_lock().is_err() {
            continue;
        }
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            HELD.lock().expect("the held ports").push(lock);
            return port;
        }
    }
    panic!("no free port in {RESERVED_PORTS:?}");
}

impl Platform {
    pub async fn start() -> Platform {
        Self::start_with(saga_settings()).await
    }

    pub async fn start_with(saga: order_service::startup::SagaSettings) -> Platform {
        Self::start_tuned(saga, |_, _| {}).await
    }

    /// The platform with every service's settings passed through `tune` last (to
    /// set resilience thresholds, say).
    pub async fn start_tuned(
        saga: order_service::startup::SagaSettings,
        tune: impl Fn(Service, &mut Settings) + Clone,
    ) -> Platform {
        let smtp = SmtpSink::start().await;
        let coordinator_port = free_port();
        let coordinator_url = format!("http://127.0.0.1:{coordinator_port}");
        let participant = |s: &mut Settings| {
            tune_participant(s, &coordinator_url);
            tune(s.service, s);
        };
        let inventory = TestApp::spawn(Service::Inventory, participant, inventory_service::startup::build).await;
        let payment = TestApp::spawn(Service::Payment, participant, |s| {
            payment_service::startup::build_with(
                s,
                payment_service::startup::PaymentSettings {
                    funds_limit_cents: 10_000,
                },
            )
        })
        .await;
        let smtp_url = smtp.url();
        let email = TestApp::spawn(Service::Email, participant, |s| {
            email_service::startup::build_with(
                s,
                email_service::startup::EmailSettings {
                    smtp_url: Some(smtp_url),
                    from: "txlab orders <orders@txlab.local>".parse().unwrap(),
                    poll_interval: Duration::from_millis(50),
                    retry: base::retry::RetryPolicy {
                        max_attempts: u32::MAX,
                        first_backoff: Duration::from_millis(50),
                        max_backoff: Duration::from_millis(500),
                    },
                },
            )
        })
        .await;
        let (inventory_url, payment_url, email_url) = (
            inventory.address.clone(),
            payment.address.clone(),
            email.address.clone(),
        );
        let order = TestApp::spawn(
            Service::Order,
            |s| {
                participant(s);
                s.peers.inventory = inventory_url.clone();
                s.peers.payment = payment_url.clone();
                s.peers.email = email_url.clone();
                tune(Service::Order, s);
            },
            |s| order_service::startup::build_with(s, saga),
        )
        .await;
        let order_url = order.address.clone();
        let coordinator = TestApp::spawn(
            Service::Coordinator,
            |s| {
                s.bind_addr = std::net::SocketAddr::from(([127, 0, 0, 1], coordinator_port));
                s.peers.order = order_url;
                s.peers.inventory = inventory_url;
                s.peers.payment = payment_url;
                s.peers.email = email_url;
                tune(Service::Coordinator, s);
            },
            |s| {
                coordinator::startup::build_with(
                    s,
                    coordinator::startup::CoordinatorSettings {
                        vote_timeout: Duration::from_secs(3),
                        checkout_deadline: Duration::from_secs(15),
                        recovery_interval: Duration::from_millis(200),
                    },
                )
            },
        )
        .await;
        Platform {
            coordinator,
            order,
            inventory,
            payment,
            email,
            smtp,
            processes: None,
        }
    }

    /// The console, in this process, reading these services.
    pub async fn console(&self) -> ConsoleApp {
        self.console_with(|_| {}).await
    }

    /// The console with its settings passed through `tune` last.
    pub async fn console_with(&self, tune: impl FnOnce(&mut console::settings::ConsoleSettings)) -> ConsoleApp {
        let env = base::config::Env::from_map(std::collections::HashMap::new());
        let mut settings =
            <console::settings::ConsoleSettings as shared_startup::ServiceSettings>::from_env(Service::Console, &env)
                .unwrap();
        settings.bind_addr = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
        settings.peers = base::config::PeerSettings {
            order: self.order.address.clone(),
            inventory: self.inventory.address.clone(),
            payment: self.payment.address.clone(),
            email: self.email.address.clone(),
            coordinator: self.coordinator.address.clone(),
            console: testing::unreachable_url(),
        };
        settings.refresh = Duration::from_millis(500);
        settings.jaeger_ui_url = "http://127.0.0.1:16686".into();
        tune(&mut settings);
        let server = console::startup::build(settings, env).await.unwrap();
        let address = format!("http://127.0.0.1:{}", server.port);
        actix_rt::spawn(shared_startup::Application::run_until_stopped(server));
        ConsoleApp {
            address,
            client: reqwest::Client::new(),
        }
    }

    /// Every service, by name.
    pub fn apps(&self) -> [(&'static str, &TestApp); 5] {
        [
            ("order", &self.order),
            ("inventory", &self.inventory),
            ("payment", &self.payment),
            ("email", &self.email),
            ("coordinator", &self.coordinator),
        ]
    }

    /// `POST /checkout` on the saga; returns the status, headers and JSON body.
    pub async fn checkout(
        &self,
        body: &Value,
        key: &str,
        baggage: Option<&str>,
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        checkout_on(&self.order, body, key, baggage).await
    }

    /// `POST /checkout` on the 2PC coordinator.
    pub async fn checkout_2pc(
        &self,
        body: &Value,
        key: &str,
        baggage: Option<&str>,
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        checkout_on(&self.coordinator, body, key, baggage).await
    }

    /// A 2PC checkout sent now and answered later: the test looks inside meanwhile.
    pub fn checkout_2pc_in_background(&self, body: &Value, key: &str, baggage: &str) -> tokio::task::JoinHandle<Value> {
        let request = self
            .coordinator
            .client
            .post(self.coordinator.url("/checkout"))
            .json(body)
            .header(IDEMPOTENCY_KEY, key)
            .header(BAGGAGE, baggage);
        tokio::spawn(async move { request.send().await.unwrap().json::<Value>().await.unwrap() })
    }

    /// Prepared transactions left in the participants' databases.
    pub async fn prepared_left(&self) -> i64 {
        let mut total = 0;
        for app in [&self.order, &self.inventory, &self.payment, &self.email] {
            total += testing::count_prepared(&app.db.url).await.unwrap();
        }
        total
    }

    pub async fn assert_no_prepared_left(&self) {
        let none = eventually(Duration::from_secs(15), || async {
            (self.prepared_left().await == 0).then_some(())
        })
        .await;
        assert!(
            none.is_some(),
            "{} prepared transactions left behind",
            self.prepared_left().await
        );
    }

    pub async fn transaction(&self, id: &str) -> Value {
        self.coordinator
            .get(&format!("/transactions/{id}"))
            .await
            .json()
            .await
            .unwrap()
    }

    /// Waits until the 2PC transaction is committed or aborted everywhere.
    pub async fn finished(&self, id: &str) -> Value {
        eventually(Duration::from_secs(60), || async {
            let tx = self.transaction(id).await;
            view::<TransactionView>(&tx).state.is_final().then_some(tx)
        })
        .await
        .unwrap_or_else(|| panic!("transaction {id} did not finish"))
    }
}

async fn checkout_on(
    app: &TestApp,
    body: &Value,
    key: &str,
    baggage: Option<&str>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut request = app
        .client
        .post(app.url("/checkout"))
        .json(body)
        .header(IDEMPOTENCY_KEY, key);
    if let Some(baggage) = baggage {
        request = request.header(BAGGAGE, baggage);
    }
    let response = app.send(request).await;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, headers, body)
}

impl Platform {
    pub async fn order(&self, order_id: &str) -> Value {
        self.order
            .get(&format!("/orders/{order_id}"))
            .await
            .json()
            .await
            .unwrap()
    }

    /// Waits until the order's saga stops (final, or parked), and returns the order.
    pub async fn settled(&self, order_id: &str) -> Value {
        eventually(Duration::from_secs(60), || async {
            let order = self.order(order_id).await;
            let saga = view::<OrderView>(&order).saga.map(|s| s.status);
            saga.is_some_and(|s| s.is_final() || s == SagaStatus::Parked)
                .then_some(order)
        })
        .await
        .unwrap_or_else(|| panic!("order {order_id} did not settle"))
    }

    /// The SKU's stock.
    pub async fn stock(&self, sku: &str) -> Product {
        self.inventory
            .get(&format!("/inventory/{sku}"))
            .await
            .json()
            .await
            .unwrap()
    }

    pub async fn set_stock(&self, sku: &str, available: i64) {
        let request = self
            .inventory
            .client
            .put(self.inventory.url(&format!("/admin/inventory/{sku}")))
            .json(&SetStock { available });
        assert_eq!(self.inventory.send(request).await.status(), 200);
    }

    pub async fn payments(&self, order_id: &str) -> Value {
        self.payment
            .get(&format!("/payments?order_id={order_id}"))
            .await
            .json()
            .await
            .unwrap()
    }

    pub async fn emails(&self, order_id: &str) -> Vec<Email> {
        let body: Value = self
            .email
            .get(&format!("/emails?order_id={order_id}"))
            .await
            .json()
            .await
            .unwrap();
        view::<Emails>(&body).emails
    }

    pub async fn reservation(&self, order_id: &str) -> Option<Value> {
        let response = self.inventory.get(&format!("/reservations/{order_id}")).await;
        (response.status() == 200).then_some(response.json().await.unwrap())
    }

    /// What the auditor finds wrong with one settled checkout (`api::invariants`),
    /// given `grace` for what is still on its way (the confirmation email): empty
    /// once every invariant holds, else what is still broken when the grace ends.
    pub async fn violations(&self, order_id: &str, grace: Duration) -> Vec<api::invariants::Violation> {
        let deadline = std::time::Instant::now() + grace;
        loop {
            let order: OrderView = view(&self.order(order_id).await);
            let payments: Payments = view(&self.payments(order_id).await);
            let reservation = self.reservation(order_id).await.map(|r| view::<Reservation>(&r));
            let emails = self.emails(order_id).await;
            let found = api::invariants::check_checkout(api::invariants::CheckoutFacts {
                order: &order,
                payments: &payments,
                reservation: reservation.as_ref(),
                emails: &emails,
            });
            if found.is_empty() || std::time::Instant::now() >= deadline {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The brief's invariants for one settled order: a confirmed order has one
    /// successful charge for its total, a committed reservation and exactly one
    /// delivered confirmation email; a cancelled one has net charge 0, no held stock
    /// and no email.
    pub async fn assert_consistent(&self, order: &Value) {
        let order: OrderView = view(order);
        let id = order.order_id.to_string();
        let payments: Payments = view(&self.payments(&id).await);
        let succeeded = payments.succeeded().count();
        let reservation = self.reservation(&id).await.map(|r| view::<Reservation>(&r));
        assert!(payments.refunded_cents <= payments.charged_cents, "{payments:?}");
        match order.status {
            OrderStatus::Confirmed => {
                assert_eq!(succeeded, 1, "one successful charge: {payments:?}");
                assert_eq!(payments.net_cents, order.total_cents, "{payments:?}");
                assert_eq!(reservation.map(|r| r.state), Some(ReservationState::Committed));
                let delivered = eventually(Duration::from_secs(20), || async {
                    let emails = self.emails(&id).await;
                    (emails.len() == 1 && emails[0].state == EmailState::Delivered).then_some(emails)
                })
                .await;
                assert!(
                    delivered.is_some(),
                    "one delivered email for {id}: {:?}",
                    self.emails(&id).await
                );
                let sent = self
                    .smtp
                    .messages()
                    .iter()
                    .filter(|m| m.header("Subject").is_some_and(|s| s.contains(&id)))
                    .count();
                assert_eq!(sent, 1, "one message through SMTP for {id}");
            }
            OrderStatus::Cancelled => {
                assert_eq!(payments.net_cents, 0, "{payments:?}");
                if let Some(reservation) = reservation {
                    assert_eq!(reservation.state, ReservationState::Released, "{reservation:?}");
                }
                assert!(self.emails(&id).await.is_empty(), "no email for a cancelled order");
            }
            OrderStatus::Pending => panic!("order {id} is pending, not final: {order:?}"),
        }
    }
}

/// A body read as the contract type it must be.
pub fn view<T: DeserializeOwned>(body: &Value) -> T {
    serde_json::from_value(body.clone()).unwrap_or_else(|e| panic!("not a {}: {e}: {body}", std::any::type_name::<T>()))
}

/// A checkout body, as JSON: tests also send bodies the contract refuses.
pub fn checkout_body(sku: &str, quantity: i64, token: &str) -> Value {
    serde_json::to_value(CheckoutRequest {
        customer_email: "ada@example.com".to_owned(),
        items: vec![LineItemRequest {
            sku: sku.to_owned(),
            quantity,
        }],
        payment_token: token.to_owned(),
    })
    .unwrap()
}

/// A saga step of an order as the API shows it.
pub fn step(order: &Value, name: &str) -> StepView {
    let order: OrderView = view(order);
    order
        .step(name)
        .cloned()
        .unwrap_or_else(|| panic!("no step {name} in {order:?}"))
}

/// A 2PC transaction's participant by name (`order`, `inventory`, `payment`, `email`).
pub fn participant(tx: &Value, name: &str) -> ParticipantView {
    let tx: TransactionView = view(tx);
    let name: Participant = name.parse().unwrap();
    tx.participant(name)
        .cloned()
        .unwrap_or_else(|| panic!("no participant {name} in {tx:?}"))
}

/// `PUT /admin/faults` with one rule that always applies.
pub async fn fault_rule(app: &TestApp, operation: &str, kind: &str) {
    let request = app.client.put(app.url("/admin/faults")).json(&FaultRules {
        rules: vec![FaultRule {
            operation: operation.to_owned(),
            kind: kind.parse().unwrap(),
            probability: 1.0,
        }],
    });
    assert_eq!(app.send(request).await.status(), 200);
}

/// A service's `GET /admin/resilience`.
pub async fn resilience(app: &TestApp) -> ResilienceView {
    app.get("/admin/resilience").await.json().await.unwrap()
}

/// A service's `GET /admin/faults`.
pub async fn faults(app: &TestApp) -> FaultsView {
    app.get("/admin/faults").await.json().await.unwrap()
}

/// A transaction of the test's own on database `url` that has run `sql` (taking some
/// lock) and stays open until the test commits it: whatever needs that lock waits.
pub async fn hold_lock(url: &str, sql: &str) -> sqlx::PgConnection {
    use sqlx::Connection;
    let mut holder = sqlx::PgConnection::connect(url).await.unwrap();
    sqlx::query("BEGIN").execute(&mut holder).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(&mut holder)
        .await
        .unwrap();
    holder
}

pub fn new_key() -> String {
    Uuid::new_v4().to_string()
}
