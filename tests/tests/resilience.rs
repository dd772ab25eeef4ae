//! The resilience patterns end to end, against the real services: the breaker opens
//! after N failures and closes again after a good trial, shed checkouts get 503 +
//! Retry-After and write nothing, retries stay within the budget, deadlines cross
//! hops, and after a saturating run the auditor finds nothing wrong.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use api::{
    ParticipantOutcome, ParticipantVote,
    faults::{FaultRule, FaultRules},
    headers::REQUEST_TIMEOUT_MS,
    resilience::{BreakerStateName, BreakerView, BudgetView, ResilienceView},
};
use base::config::{
    Service, Settings,
    resilience::{BreakerSettings, BudgetSettings, SheddingSettings},
};
use serde_json::Value;
use testing::eventually;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use txlab_tests::{Platform, checkout_body, fault_rule, faults, new_key, participant, resilience, saga_settings, step};

/// A breaker that opens after `failures` in a row and stays open for `cool_down`.
fn breaker(failures: u32, cool_down: Duration) -> Option<BreakerSettings> {
    Some(BreakerSettings {
        failure_threshold: failures,
        cool_down,
        half_open_trials: 1,
    })
}

fn breaker_of(view: &ResilienceView, downstream: &str) -> BreakerView {
    in_state(view, downstream).unwrap_or_else(|| panic!("no breaker for {downstream}: {view:?}"))
}

/// The downstream's breaker, once the downstream has been called.
fn in_state(view: &ResilienceView, downstream: &str) -> Option<BreakerView> {
    view.downstream(downstream).and_then(|d| d.breaker.clone())
}

fn budget_of(view: &ResilienceView, downstream: &str) -> BudgetView {
    view.downstream(downstream)
        .and_then(|d| d.retry_budget.clone())
        .unwrap_or_else(|| panic!("no retry budget for {downstream}: {view:?}"))
}

async fn injected(app: &testing::TestApp, operation: &str) -> u64 {
    faults(app)
        .await
        .injected
        .and_then(|i| i.get(operation).copied())
        .unwrap_or_default()
}

#[actix_web::test]
async fn the_breaker_opens_after_n_failures_and_a_good_trial_after_the_cool_down_closes_it() {
    let platform = Platform::start_tuned(saga_settings(), |service, s: &mut Settings| {
        if service == Service::Order {
            s.resilience.breaker = breaker(3, Duration::from_millis(1500));
            s.resilience.retry_budget = None;
        }
    })
    .await;
    fault_rule(&platform.payment, "payment.charge", "error").await;
    let (_, _, order) = platform
        .checkout(&checkout_body("SKU-003", 1, "tok_visa"), &new_key(), None)
        .await;
    let order = platform.settled(order["order_id"].as_str().unwrap()).await;

    // Three charges failed at payment and opened the breaker; the fourth attempt
    // found it open, was held back (not an attempt, nothing sent) until the
    // cool-down ended, and went as the breaker's trial — which failed too.
    assert_eq!(order["status"], "cancelled", "{order}");
    assert_eq!(step(&order, "charge_payment").attempts, 4, "{order}");
    assert_eq!(injected(&platform.payment, "payment.charge").await, 4);
    assert!(
        order["reason"]
            .as_str()
            .unwrap()
            .contains("no definite answer after 4 attempts"),
        "{order}"
    );
    // The refund met the open breaker too, waited for the cool-down, went through
    // as the trial call and closed it.
    let breaker = eventually(Duration::from_secs(10), || async {
        let view = resilience(&platform.order).await;
        in_state(&view, "payment").filter(|b| b.state == BreakerStateName::Closed)
    })
    .await
    .expect("the payment breaker closes again");
    assert_eq!(
        breaker.opened, 2,
        "opened, and opened again by the failed trial: {breaker:?}"
    );
    assert!(breaker.short_circuited >= 1, "{breaker:?}");
    platform.assert_consistent(&order).await;

    // Closed again: with the fault gone, checkouts go through.
    platform
        .payment
        .send(platform.payment.client.delete(platform.payment.url("/admin/faults")))
        .await;
    let (status, _, order) = platform
        .checkout(&checkout_body("SKU-003", 1, "tok_visa"), &new_key(), None)
        .await;
    assert_eq!((status, order["status"].as_str()), (201, Some("confirmed")), "{order}");
}

#[actix_web::test]
async fn shed_checkouts_get_503_with_retry_after_and_write_nothing() {
    let platform = Platform::start_tuned(saga_settings(), |_, s: &mut Settings| {
        s.resilience.shedding = Some(SheddingSettings {
            max_in_flight: 2,
            max_running: 100,
            retry_after: Duration::from_secs(2),
        });
    })
    .await;
    for (app, slow) in [
        (&platform.order, "fault.inventory.reserve=delay_ms:1500"),
        (&platform.coordinator, "fault.inventory.prepare=delay_ms:1500"),
    ] {
        let in_flight: Vec<_> = (0..2)
            .map(|_| {
                let request = app
                    .client
                    .post(app.url("/checkout"))
                    .header("Idempotency-Key", new_key())
                    .header("baggage", slow)
                    .json(&checkout_body("SKU-002", 1, "tok_visa"));
                actix_rt::spawn(request.send())
            })
            .collect();
        let busy = eventually(Duration::from_secs(5), || async {
            let view = resilience(app).await;
            (view.load_shedding.and_then(|s| s.in_flight) == Some(2)).then_some(())
        })
        .await;
        assert!(busy.is_some(), "two checkouts in flight");
        let key = new_key();
        let body = checkout_body("SKU-002", 1, "tok_visa");
        let shed = app
            .send(
                app.client
                    .post(app.url("/checkout"))
                    .header("Idempotency-Key", &key)
                    .json(&body),
            )
            .await;
        assert_eq!(shed.status(), 503, "a third checkout is shed while two are in flight");
        assert_eq!(shed.headers()["retry-after"], "2");
        let (status, problem) = testing::problem(shed).await;
        assert_eq!(status, 503);
        assert_eq!(problem["type"], "urn:txlab:problem:overloaded", "{problem}");
        for request in in_flight {
            assert_eq!(request.await.unwrap().unwrap().status(), 201);
        }
        // Only the two admitted checkouts left anything behind, and the shed one's
        // key was never claimed: sent again, it simply runs.
        let checkouts = if app.address == platform.order.address {
            "sagas"
        } else {
            "transactions"
        };
        assert_eq!(app.count(checkouts).await, 2, "{checkouts}");
        let claimed: i64 = sqlx::query_scalar("SELECT count(*) FROM idempotency_keys WHERE key = $1")
            .bind(&key)
            .fetch_one(&app.pool)
            .await
            .unwrap();
        assert_eq!(claimed, 0);
        let again = app
            .send(
                app.client
                    .post(app.url("/checkout"))
                    .header("Idempotency-Key", &key)
                    .json(&body),
            )
            .await;
        assert_eq!(again.status(), 201);
        assert!(again.headers().get("idempotent-replayed").is_none());
        assert_eq!(resilience(app).await.load_shedding.and_then(|s| s.shed), Some(1));
    }
}

#[actix_web::test]
async fn retries_stay_within_the_budget() {
    let platform = Platform::start_tuned(saga_settings(), |service, s: &mut Settings| {
        if service == Service::Order {
            s.resilience.breaker = None;
            // No retries earned by traffic; a floor of 3 per 10 s window.
            s.resilience.retry_budget = Some(BudgetSettings {
                ratio: 0.0,
                min_per_second: 0.3,
                window: Duration::from_secs(10),
            });
        }
    })
    .await;
    fault_rule(&platform.payment, "payment.charge", "error").await;
    let started = Instant::now();
    let checkouts = ["SKU-004", "SKU-005", "SKU-006", "SKU-007"].map(|sku| {
        let platform = &platform;
        async move {
            let (_, _, order) = platform
                .checkout(&checkout_body(sku, 1, "tok_visa"), &new_key(), None)
                .await;
            platform.settled(order["order_id"].as_str().unwrap()).await
        }
    });
    let orders = futures_util::future::join_all(checkouts).await;
    let within_one_window = started.elapsed() < Duration::from_secs(9);
    // Four sagas, four attempts each: sixteen charges without a budget. With it,
    // four first calls and at most three retries reached the payment service.
    let charges = injected(&platform.payment, "payment.charge").await;
    let view = resilience(&platform.order).await;
    let budget = budget_of(&view, "payment");
    if within_one_window {
        assert!(
            (4..=7).contains(&charges),
            "{charges} charges reached payment; {budget:?}"
        );
    }
    // A retry the budget denies is held back and tried again after a backoff; a saga
    // whose charge is held back too often is cancelled saying so. The refunds are
    // never held back by the budget: they must happen.
    assert!(budget.denied >= 3, "{budget:?}");
    assert!(budget.window_retries <= budget.window_allowed, "{budget:?}");
    let mut by_protection = 0;
    for order in &orders {
        assert_eq!(order["status"], "cancelled", "{order}");
        let reason = order["reason"].as_str().unwrap();
        if reason.starts_with("overload-protection: charge_payment") {
            by_protection += 1;
        } else {
            assert!(reason.contains("no definite answer"), "{order}");
        }
        platform.assert_consistent(order).await;
    }
    if within_one_window {
        assert!(by_protection >= 1, "{orders:?}");
    }
}

#[actix_web::test]
async fn a_checkout_is_refused_at_admission_while_a_step_before_the_pivot_is_behind_an_open_breaker() {
    let platform = Platform::start_tuned(saga_settings(), |service, s: &mut Settings| {
        if service == Service::Order {
            s.resilience.breaker = breaker(2, Duration::from_secs(30));
        }
    })
    .await;
    fault_rule(&platform.payment, "payment.charge", "error").await;
    let first = platform
        .order
        .client
        .post(platform.order.url("/checkout"))
        .header("Idempotency-Key", new_key())
        .json(&checkout_body("SKU-002", 1, "tok_visa"));
    let _first = actix_rt::spawn(first.send());
    let open = eventually(Duration::from_secs(5), || async {
        let view = resilience(&platform.order).await;
        in_state(&view, "payment")
            .is_some_and(|b| b.state == BreakerStateName::Open)
            .then_some(())
    })
    .await;
    assert!(open.is_some(), "two failed charges opened the payment breaker");
    let sagas_before = platform.order.count("sagas").await;
    let refused = platform
        .order
        .send(
            platform
                .order
                .client
                .post(platform.order.url("/checkout"))
                .header("Idempotency-Key", new_key())
                .json(&checkout_body("SKU-002", 1, "tok_visa")),
        )
        .await;
    let retry_after: u64 = refused.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    let (status, problem) = testing::problem(refused).await;
    assert_eq!(status, 503, "{problem}");
    assert_eq!(problem["type"], "urn:txlab:problem:overloaded", "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("circuit breaker for payment is open"),
        "{problem}"
    );
    assert!(
        (20..=30).contains(&retry_after),
        "until the breaker lets a trial through: {retry_after}"
    );
    assert_eq!(platform.order.count("sagas").await, sagas_before, "nothing written");
    // The saga already running is not cancelled by the breaker: it waits for it.
    let first: uuid::Uuid = sqlx::query_scalar("SELECT order_id FROM sagas")
        .fetch_one(&platform.order.pool)
        .await
        .unwrap();
    let first = eventually(Duration::from_secs(5), || async {
        let order = platform.order(&first.to_string()).await;
        let held = step(&order, "charge_payment")
            .last_error
            .is_some_and(|e| e.contains("circuit open"));
        held.then_some(order)
    })
    .await
    .expect("its next charge is held back by the open breaker");
    assert_eq!(first["saga"]["status"], "running", "{first}");
    assert_eq!(step(&first, "charge_payment").attempts, 2, "{first}");
}

/// Compensations and steps past the pivot must happen: the retry budget, which
/// exists to drop optional retries, never holds them back.
#[actix_web::test]
async fn a_compensation_is_never_held_back_by_the_retry_budget() {
    let platform = Platform::start_tuned(saga_settings(), |service, s: &mut Settings| {
        if service == Service::Order {
            s.resilience.retry_budget = Some(BudgetSettings {
                ratio: 0.0,
                min_per_second: 0.0,
                window: Duration::from_secs(10),
            });
        }
    })
    .await;
    let (_, _, order) = platform
        .checkout(
            &checkout_body("SKU-009", 1, "tok_chargeDeclined"),
            &new_key(),
            Some("fault.payment.refund=error,fault.order.cancel=error"),
        )
        .await;
    let order = platform.settled(order["order_id"].as_str().unwrap()).await;
    assert_eq!(order["status"], "cancelled", "{order}");
    assert_eq!(step(&order, "charge_payment").compensation_attempts, 2, "{order}");
    assert_eq!(step(&order, "create_order").compensation_attempts, 2, "{order}");
    let view = resilience(&platform.order).await;
    for name in ["payment", "order"] {
        let budget = budget_of(&view, name);
        assert_eq!(budget.denied, 0, "{name}: {budget:?}");
    }
    platform.assert_consistent(&order).await;
}

/// Work parked waiting for a participant resumes as soon as that participant
/// recovers — its breaker closes after a good trial — not a park wait later.
#[actix_web::test]
async fn sagas_parked_waiting_for_a_participant_resume_when_its_breaker_closes() {
    let saga = order_service::startup::SagaSettings {
        park_retry: Duration::from_secs(300),
        ..saga_settings()
    };
    let platform = Platform::start_tuned(saga, |service, s: &mut Settings| {
        if service == Service::Order {
            s.resilience.breaker = breaker(2, Duration::from_millis(300));
        }
    })
    .await;
    fault_rule(&platform.email, "email.send", "error").await;
    let (status, _, order) = platform
        .checkout(&checkout_body("SKU-011", 1, "tok_visa"), &new_key(), None)
        .await;
    assert_eq!((status, order["status"].as_str()), (201, Some("confirmed")), "{order}");
    let id = order["order_id"].as_str().unwrap().to_owned();
    let parked = platform.settled(&id).await;
    assert_eq!(parked["saga"]["status"], "parked", "{parked}");
    let parked_on: Option<String> = sqlx::query_scalar("SELECT parked_on FROM sagas WHERE order_id = $1::uuid")
        .bind(&id)
        .fetch_one(&platform.order.pool)
        .await
        .unwrap();
    assert_eq!(parked_on.as_deref(), Some("email"));

    // The outage ends; the next checkout's email is the breaker's trial and closes it.
    platform
        .email
        .send(platform.email.client.delete(platform.email.url("/admin/faults")))
        .await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (status, _, second) = platform
        .checkout(&checkout_body("SKU-011", 1, "tok_visa"), &new_key(), None)
        .await;
    assert_eq!(status, 201, "{second}");
    let resumed = eventually(Duration::from_secs(10), || async {
        let order = platform.order(&id).await;
        (order["saga"]["status"] == "confirmed").then_some(order)
    })
    .await
    .expect("resumed when email recovered, not 300 s later");
    platform.assert_consistent(&resumed).await;
}

#[actix_web::test]
async fn a_callee_stops_at_its_callers_deadline_and_does_nothing() {
    let platform = Platform::start().await;
    let order_id = uuid::Uuid::new_v4();
    let charge = serde_json::json!({ "order_id": order_id, "amount_cents": 1200, "payment_token": "tok_visa" });
    let app = &platform.payment;
    let started = Instant::now();
    let response = app
        .send(
            app.client
                .post(app.url("/charges"))
                .header("Idempotency-Key", new_key())
                .header(REQUEST_TIMEOUT_MS, "300")
                .header("baggage", "fault.payment.charge=delay_ms:1000")
                .json(&charge),
        )
        .await;
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    let (status, problem) = testing::problem(response).await;
    assert_eq!(
        (status, problem["type"].as_str()),
        (504, Some("urn:txlab:problem:deadline-exceeded"))
    );
    // Past the delay the work would have finished; it never started.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let payments = platform.payments(&order_id.to_string()).await;
    assert_eq!(payments["charges"].as_array().map(Vec::len), Some(0), "{payments}");

    // No time left: refused before anything; not a number: 400.
    for (value, expected) in [("0", 504), ("soon", 400)] {
        let response = app
            .send(
                app.client
                    .post(app.url("/charges"))
                    .header("Idempotency-Key", new_key())
                    .header(REQUEST_TIMEOUT_MS, value)
                    .json(&charge),
            )
            .await;
        assert_eq!(response.status(), expected);
    }
    assert_eq!(app.count("charges").await, 0);
}

#[actix_web::test]
async fn a_checkout_under_a_deadline_answers_before_it_and_the_saga_goes_on() {
    let platform = Platform::start().await;
    let response = platform
        .order
        .send(
            platform
                .order
                .client
                .post(platform.order.url("/checkout"))
                .header("Idempotency-Key", new_key())
                .header(REQUEST_TIMEOUT_MS, "1000")
                .header("baggage", "fault.payment.charge=delay_ms:1500")
                .json(&checkout_body("SKU-009", 1, "tok_visa")),
        )
        .await;
    let status = response.status();
    let order: Value = response.json().await.unwrap();
    // Answered when the deadline passed, before the work was done (the charge alone
    // takes longer than the deadline): no clock is read, so a busy machine cannot
    // fail it.
    assert_eq!(status, 202, "{order}");
    assert_eq!(order["status"], "pending", "{order}");
    let order = platform.settled(order["order_id"].as_str().unwrap()).await;
    assert_eq!(order["status"], "confirmed", "{order}");
    platform.assert_consistent(&order).await;
}

/// The client's side of deadlines, on the wire: a call made under a deadline carries
/// what is left of it as `Request-Timeout-Ms`, and gives up when it passes.
#[actix_web::test]
async fn outgoing_calls_carry_what_is_left_of_the_deadline() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/reservations", listener.local_addr().unwrap());
    let heads = actix_rt::spawn(async move {
        let mut heads = Vec::new();
        for answer in [true, false] {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut buffer = vec![0u8; 8192];
            let n = socket.read(&mut buffer).await.unwrap();
            heads.push(String::from_utf8_lossy(&buffer[..n]).to_lowercase());
            if answer {
                let _ = socket
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}")
                    .await;
            } else {
                // Never answers: the caller must give up at its deadline.
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        }
        heads
    });
    let settings = testing::settings(Service::Order, "postgres://unused/unused");
    let resilience = std::sync::Arc::new(client::resilience::Resilience::new(
        settings.resilience.clone(),
        &settings.peers,
    ));
    let client = client::http_client::HttpClient::new(resilience).unwrap();
    let deadline = Instant::now() + Duration::from_millis(400);
    let first = client::resilience::deadline::within(
        deadline,
        client
            .post_json(&url, &serde_json::json!({}), "k1", Duration::from_secs(3))
            .send(),
    )
    .await;
    assert_eq!(first.unwrap().status(), 200);
    let started = Instant::now();
    let second = client::resilience::deadline::within(
        deadline,
        client
            .post_json(&url, &serde_json::json!({}), "k2", Duration::from_secs(3))
            .send(),
    )
    .await;
    assert!(second.is_err());
    assert!(
        started.elapsed() < Duration::from_millis(1000),
        "{:?}",
        started.elapsed()
    );
    let heads = heads.await.unwrap();
    let sent: u64 = heads[0]
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{}: ", REQUEST_TIMEOUT_MS.to_lowercase())))
        .and_then(|v| v.trim().parse().ok())
        .expect("the header is sent");
    assert!(sent > 0 && sent <= 400, "{sent}");
}

/// Stopped inside its unit of work (waiting on a row lock), the callee rolls back
/// and releases the key: the same request sent again runs afresh.
#[actix_web::test]
async fn work_cut_at_the_deadline_is_rolled_back_and_its_key_released() {
    let platform = Platform::start().await;
    let app = &platform.inventory;
    let before = platform.stock("SKU-010").await;
    let mut holder = app.pool.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM products WHERE sku = 'SKU-010' FOR UPDATE")
        .execute(&mut *holder)
        .await
        .unwrap();
    let order_id = uuid::Uuid::new_v4().to_string();
    let key = new_key();
    let reserve = |deadline: Option<&'static str>| {
        let mut request = app
            .client
            .post(app.url("/reservations"))
            .header("Idempotency-Key", &key)
            .json(&serde_json::json!({ "order_id": order_id, "items": [ { "sku": "SKU-010", "quantity": 1 } ] }));
        if let Some(deadline) = deadline {
            request = request.header(REQUEST_TIMEOUT_MS, deadline);
        }
        app.send(request)
    };
    let started = Instant::now();
    let (status, problem) = testing::problem(reserve(Some("400")).await).await;
    assert_eq!(
        (status, problem["type"].as_str()),
        (504, Some("urn:txlab:problem:deadline-exceeded"))
    );
    assert!(
        started.elapsed() < Duration::from_millis(1400),
        "{:?}",
        started.elapsed()
    );
    holder.rollback().await.unwrap();
    // Nothing of it stayed: no reservation, the stock as it was, the key free.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(platform.reservation(&order_id).await.is_none());
    assert_eq!(platform.stock("SKU-010").await, before);
    let again = reserve(None).await;
    assert_eq!(again.status(), 201);
    assert!(again.headers().get("idempotent-replayed").is_none());
    assert!(platform.reservation(&order_id).await.is_some());
}

/// Every pattern on, small limits, a payment service slower than its callers'
/// timeouts, both protocols driven past what they can take: checkouts are shed or
/// fail fast, and afterwards the auditor finds every invariant intact.
#[actix_web::test]
async fn saturated_against_a_slow_payment_the_auditor_still_finds_nothing() {
    use loadgen::{
        audit::{AuditSettings, Endpoints, audit},
        load::{LoadSettings, Mode, Protocol, Skus, run},
    };
    let platform = Platform::start_tuned(saga_settings(), |_, s: &mut Settings| {
        s.resilience.shedding = Some(SheddingSettings {
            max_in_flight: 6,
            max_running: 10,
            retry_after: Duration::from_secs(1),
        });
        s.resilience.breaker = breaker(3, Duration::from_secs(1));
    })
    .await;
    let slow = app_rules(&[
        ("payment.charge", "delay_ms:3500"),
        ("payment.prepare", "delay_ms:3500"),
    ]);
    let put = platform
        .payment
        .client
        .put(platform.payment.url("/admin/faults"))
        .json(&slow);
    assert_eq!(platform.payment.send(put).await.status(), 200);
    let mut shed_or_fast = 0;
    for (protocol, url) in [
        (Protocol::Saga, platform.order.address.clone()),
        (Protocol::TwoPhase, platform.coordinator.address.clone()),
    ] {
        let report = run(&LoadSettings {
            urls: vec![url],
            protocol,
            mode: Mode::Open { rate: 15.0 },
            requests: 45,
            skus: Skus::Uniform { count: 4 },
            faults: Vec::new(),
            timeout: Duration::from_secs(30),
            progress: false,
        })
        .await
        .unwrap();
        shed_or_fast += report.outcomes.shed + report.outcomes.cancelled;
    }
    assert!(shed_or_fast > 0);
    let view = resilience(&platform.order).await;
    let breaker = breaker_of(&view, "payment");
    assert!(breaker.opened >= 1, "{breaker:?}");
    platform
        .payment
        .send(platform.payment.client.delete(platform.payment.url("/admin/faults")))
        .await;
    let report = audit(&AuditSettings {
        endpoints: Endpoints {
            order: platform.order.address.clone(),
            inventory: platform.inventory.address.clone(),
            payment: platform.payment.address.clone(),
            email: platform.email.address.clone(),
            coordinator: Some(platform.coordinator.address.clone()),
        },
        settle: Duration::from_secs(90),
    })
    .await
    .unwrap();
    let violations: Vec<String> = report.violations.iter().map(ToString::to_string).collect();
    assert!(violations.is_empty(), "{}\n{}", report.summary(), violations.join("\n"));
    platform.assert_no_prepared_left().await;
}

fn app_rules(rules: &[(&str, &str)]) -> FaultRules {
    FaultRules {
        rules: rules
            .iter()
            .map(|(operation, kind)| FaultRule {
                operation: (*operation).to_owned(),
                kind: kind.parse().unwrap(),
                probability: 1.0,
            })
            .collect(),
    }
}

/// 2PC behind an open breaker: the participant votes `no` without being asked, the
/// transaction aborts at once, and that participant is never told anything.
#[actix_web::test]
async fn a_2pc_participant_behind_an_open_breaker_is_never_asked_and_the_checkout_aborts_at_once() {
    let platform = Platform::start_tuned(saga_settings(), |service, s: &mut Settings| {
        if service == Service::Coordinator {
            s.resilience.breaker = breaker(1, Duration::from_secs(4));
        }
    })
    .await;
    // The first transaction's failed prepare opens the coordinator's payment breaker
    // (its abort for payment goes through anyway: phase two skips the breaker).
    let coordinator = platform.coordinator.client.clone();
    let first = coordinator
        .post(platform.coordinator.url("/checkout"))
        .header("Idempotency-Key", new_key())
        .header("baggage", "fault.payment.prepare=error")
        .json(&checkout_body("SKU-001", 1, "tok_visa"));
    let first = actix_rt::spawn(first.send());
    let open = eventually(Duration::from_secs(5), || async {
        let view = resilience(&platform.coordinator).await;
        in_state(&view, "payment")
            .is_some_and(|b| b.state == BreakerStateName::Open)
            .then_some(())
    })
    .await;
    assert!(open.is_some(), "the payment breaker opens");

    let (status, _, tx) = platform
        .checkout_2pc(&checkout_body("SKU-001", 1, "tok_visa"), &new_key(), None)
        .await;
    assert_eq!((status, tx["status"].as_str()), (201, Some("aborted")), "{tx}");
    let payment = participant(&tx, "payment");
    assert_eq!(
        (payment.vote, payment.outcome),
        (ParticipantVote::No, ParticipantOutcome::Aborted),
        "{tx}"
    );
    assert!(
        payment
            .detail
            .as_deref()
            .unwrap_or_default()
            .contains("circuit open for payment"),
        "{tx}"
    );
    // The payment service never saw this transaction: no tombstone, no key.
    let id: uuid::Uuid = tx["transaction_id"].as_str().unwrap().parse().unwrap();
    let gid = format!("txlab_{}_payment", id.simple());
    for sql in [
        "SELECT count(*) FROM tpc_aborted WHERE gid = $1",
        "SELECT count(*) FROM idempotency_keys WHERE key = $1",
    ] {
        let seen: i64 = sqlx::query_scalar(sql)
            .bind(&gid)
            .fetch_one(&platform.payment.pool)
            .await
            .unwrap();
        assert_eq!(seen, 0, "{sql}");
    }
    // The first one finished: its abort reached payment with the breaker open.
    assert_eq!(first.await.unwrap().unwrap().status().as_u16(), 201);
    platform.assert_no_prepared_left().await;
}

#[actix_web::test]
async fn rows_locked_by_an_in_doubt_transaction_do_not_open_the_breaker() {
    // One failure would open the order service's breaker to inventory.
    let platform = Platform::start_tuned(saga_settings(), |service, s: &mut Settings| {
        if service == Service::Order {
            s.resilience.breaker = breaker(1, Duration::from_secs(30));
        }
    })
    .await;
    // A 2PC checkout holds SKU-008's row, prepared and undecided, for 4 s.
    let held = platform.checkout_2pc_in_background(
        &checkout_body("SKU-008", 1, "tok_visa"),
        &new_key(),
        "fault.coordinator.vote=delay_ms:4000",
    );
    let prepared = eventually(Duration::from_secs(10), || async {
        (platform.prepared_left().await == 4).then_some(())
    })
    .await;
    assert!(prepared.is_some(), "all four prepared");

    // A saga checkout of the same SKU: its reservation meets the lock, gives up with
    // 423 rows-locked, is retried, and goes through once the lock is released.
    let (_, _, blocked) = platform
        .checkout(&checkout_body("SKU-008", 1, "tok_visa"), &new_key(), None)
        .await;
    let order = platform.settled(blocked["order_id"].as_str().unwrap()).await;
    assert_eq!(order["status"], "confirmed", "{order}");
    assert!(
        step(&order, "reserve_inventory").attempts >= 2,
        "the reservation was locked out and retried: {order}"
    );
    // Contention on one row said nothing about inventory's health: the breaker never
    // opened, and every other checkout kept reaching inventory.
    let view = resilience(&platform.order).await;
    let breaker = breaker_of(&view, "inventory");
    assert_eq!(breaker.state, BreakerStateName::Closed, "{breaker:?}");
    assert_eq!(breaker.opened, 0, "{breaker:?}");
    let (status, _, other) = platform
        .checkout(&checkout_body("SKU-009", 1, "tok_visa"), &new_key(), None)
        .await;
    assert_eq!((status, other["status"].as_str()), (201, Some("confirmed")), "{other}");
    assert_eq!(held.await.unwrap()["status"], "committed");
    platform.assert_consistent(&order).await;
    platform.assert_no_prepared_left().await;
}

/// Phase two frees the locks that others wait for, so the breaker (or a bulkhead full
/// of calls waiting on those very locks) must not keep it out.
#[actix_web::test]
async fn phase_two_reaches_a_participant_behind_an_open_breaker_and_frees_its_locks() {
    let platform = Platform::start_tuned(saga_settings(), |service, s: &mut Settings| {
        if service == Service::Coordinator {
            s.resilience.breaker = breaker(1, Duration::from_secs(60));
        }
    })
    .await;
    // Everyone prepares the first checkout; its decision waits 3 s.
    let held = platform.checkout_2pc_in_background(
        &checkout_body("SKU-010", 1, "tok_visa"),
        &new_key(),
        "fault.coordinator.vote=delay_ms:3000",
    );
    let prepared = eventually(Duration::from_secs(10), || async {
        (platform.prepared_left().await == 4).then_some(())
    })
    .await;
    assert!(prepared.is_some(), "all four prepared");
    // Meanwhile a second one's failed prepare opens the breaker to inventory.
    let (_, _, failed) = platform
        .checkout_2pc(
            &checkout_body("SKU-011", 1, "tok_visa"),
            &new_key(),
            Some("fault.inventory.prepare=error"),
        )
        .await;
    assert_eq!(failed["status"], "aborted", "{failed}");
    let view = resilience(&platform.coordinator).await;
    assert_eq!(breaker_of(&view, "inventory").state, BreakerStateName::Open, "{view:?}");

    // The first commits everywhere, inventory included, while the breaker is open
    // for another minute: no prepared transaction, no held row is left.
    let tx = held.await.unwrap();
    assert_eq!(tx["status"], "committed", "{tx}");
    let tx = platform.finished(tx["transaction_id"].as_str().unwrap()).await;
    let inventory = participant(&tx, "inventory");
    assert_eq!(inventory.outcome, ParticipantOutcome::Committed, "{tx}");
    platform.assert_no_prepared_left().await;
    let view = resilience(&platform.coordinator).await;
    assert_eq!(breaker_of(&view, "inventory").state, BreakerStateName::Open, "{view:?}");
    let order = platform.order(tx["order_id"].as_str().unwrap()).await;
    platform.assert_consistent(&order).await;
}
