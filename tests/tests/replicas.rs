//! Several orchestrator replicas on one database, as real processes: each saga is
//! driven by one replica at a time (the holder of its lease), a killed replica's
//! sagas are taken over, and a replica that was paused — by a `pause_ms` fault or a
//! `SIGSTOP` — past its lease wakes up as a zombie that fencing stops. With
//! `FENCING=off` the same zombie does damage, and the auditor says so.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use api::{OrderStatus, OrderView, Payments, ReplicaList, SagaEventKind, SagaHistory, SagaStatus};
use base::config::Service;
use serde_json::Value;
use testing::eventually;
use txlab_tests::{Platform, checkout_body, new_key, view};

/// The platform as processes with a second order replica; `extra` is more
/// environment for every service.
async fn two_orchestrators(extra: &[(&str, &str)]) -> (Platform, [String; 2]) {
    two_of(Service::Order, extra).await
}

/// The platform as processes with a second replica of `service` (the order service
/// or the coordinator).
async fn two_of(replicated: Service, extra: &[(&str, &str)]) -> (Platform, [String; 2]) {
    let services = [
        Service::Order,
        Service::Inventory,
        Service::Payment,
        Service::Email,
        Service::Coordinator,
    ];
    let env: Vec<(Service, &str, &str)> = services
        .iter()
        .flat_map(|s| extra.iter().map(move |(k, v)| (*s, *k, *v)))
        .collect();
    let mut platform = Platform::start_processes(&env).await;
    let second = platform.processes().add_replica(replicated).await;
    let urls = [
        platform.processes().replica_url(replicated, 0),
        platform.processes().replica_url(replicated, second),
    ];
    (platform, urls)
}

/// The auditor (`loadgen audit`) over everything the platform holds.
async fn audit(platform: &Platform) -> loadgen::audit::AuditReport {
    loadgen::audit::audit(&loadgen::audit::AuditSettings {
        endpoints: loadgen::audit::Endpoints {
            order: platform.order.address.clone(),
            inventory: platform.inventory.address.clone(),
            payment: platform.payment.address.clone(),
            email: platform.email.address.clone(),
            coordinator: Some(platform.coordinator.address.clone()),
        },
        settle: Duration::from_secs(60),
    })
    .await
    .unwrap()
}

/// Checkouts from four clients, spread over both replicas at `urls`; a client that
/// gets no answer (its replica was killed) sends the same request again, to the
/// other one. Returns each checkout's answer.
fn load(urls: [String; 2], checkouts: usize) -> tokio::task::JoinHandle<Vec<Value>> {
    tokio::spawn(async move {
        let clients = (0..4).map(|client| {
            let urls = urls.clone();
            tokio::spawn(async move {
                let mut answers = Vec::new();
                for i in (client..checkouts).step_by(4) {
                    let key = new_key();
                    let sku = format!("SKU-00{}", 1 + i % 5);
                    let body = checkout_body(&sku, 1, if i % 7 == 3 { "tok_chargeDeclined" } else { "tok_visa" });
                    let mut target = i;
                    let answer = loop {
                        match checkout_at(&urls[target % 2], &body, &key, None).await {
                            Some((status, body)) if [201, 202].contains(&status) => break body,
                            // No answer, in flight (a killed replica's claim), overloaded.
                            Some((status, body)) if ![409, 503].contains(&status) => {
                                panic!("checkout {key}: {status} {body}")
                            }
                            _ => {
                                target += 1;
                                assert!(target < i + 600, "checkout {key} never answered");
                                tokio::time::sleep(Duration::from_millis(100)).await;
                            }
                        }
                    };
                    answers.push(answer);
                }
                answers
            })
        });
        let mut answers = Vec::new();
        for client in clients.collect::<Vec<_>>() {
            answers.extend(client.await.unwrap());
        }
        answers
    })
}

/// `POST {url}/checkout`; `None` when no answer came (the replica was killed).
async fn checkout_at(url: &str, body: &Value, key: &str, baggage: Option<&str>) -> Option<(u16, Value)> {
    let mut request = reqwest::Client::new()
        .post(format!("{url}/checkout"))
        .json(body)
        .header("Idempotency-Key", key)
        .timeout(Duration::from_secs(30));
    if let Some(baggage) = baggage {
        request = request.header("baggage", baggage);
    }
    let response = request.send().await.ok()?;
    let status = response.status().as_u16();
    Some((status, response.json().await.unwrap_or(Value::Null)))
}

async fn history(platform: &Platform, saga_id: &str) -> SagaHistory {
    platform
        .order
        .get(&format!("/sagas/{saga_id}/history?limit=500"))
        .await
        .json()
        .await
        .unwrap()
}

/// The saga id of the only saga logged so far, once there is one.
async fn the_saga(platform: &Platform) -> (String, String) {
    eventually(Duration::from_secs(10), || async {
        sqlx::query_as::<_, (uuid::Uuid, uuid::Uuid)>("SELECT id, order_id FROM sagas LIMIT 1")
            .fetch_optional(&platform.order.pool)
            .await
            .unwrap()
            .map(|(saga, order)| (saga.to_string(), order.to_string()))
    })
    .await
    .expect("the saga was logged")
}

#[tokio::test]
async fn two_replicas_share_the_checkouts_and_one_key_sent_to_both_makes_one_order() {
    let (platform, urls) = two_orchestrators(&[]).await;
    let mut owners = std::collections::HashSet::new();
    for i in 0..6 {
        let (status, body) = checkout_at(&urls[i % 2], &checkout_body("SKU-001", 1, "tok_visa"), &new_key(), None)
            .await
            .unwrap();
        assert_eq!(status, 201, "{body}");
        let order: OrderView = view(&body);
        assert_eq!(order.status, OrderStatus::Confirmed, "{body}");
        let saga = order.saga.unwrap();
        assert_eq!(saga.epoch, 1, "taken once, by the replica it was sent to: {body}");
        owners.insert(saga.owner.unwrap());
        platform.assert_consistent(&body).await;
    }
    assert_eq!(owners.len(), 2, "each replica drove its own checkouts: {owners:?}");
    // Both are in the registry, each with its heartbeat.
    let listed: ReplicaList = reqwest::get(format!("{}/admin/replicas", urls[1]))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(owners.contains(&listed.this), "{listed:?}");
    let live: std::collections::HashSet<String> = listed
        .replicas
        .iter()
        .filter(|r| r.live)
        .map(|r| r.id.clone())
        .collect();
    assert_eq!(live, owners, "{listed:?}");
    assert!(listed.replicas.iter().any(|r| r.url == urls[1]), "{listed:?}");

    // One key, sent to both replicas at once: one saga, one order, one charge.
    let key = new_key();
    let body = checkout_body("SKU-002", 1, "tok_visa");
    let (a, b) = tokio::join!(
        checkout_at(&urls[0], &body, &key, None),
        checkout_at(&urls[1], &body, &key, None)
    );
    let answered: Vec<(u16, Value)> = [a.unwrap(), b.unwrap()].into_iter().collect();
    for (status, body) in &answered {
        assert!(
            [201, 409].contains(status),
            "a checkout or an in-flight refusal: {status} {body}"
        );
    }
    let sagas: i64 = sqlx::query_scalar("SELECT count(*) FROM sagas WHERE checkout_key LIKE '%' || $1")
        .bind(&key)
        .fetch_one(&platform.order.pool)
        .await
        .unwrap();
    assert_eq!(sagas, 1);
    let (status, again) = checkout_at(&urls[1], &body, &key, None).await.unwrap();
    assert_eq!(status, 201, "{again}");
    let order_id = again["order_id"].as_str().unwrap();
    for (status, body) in &answered {
        if *status == 201 {
            assert_eq!(body["order_id"], order_id);
        }
    }
    let payments: Payments = view(&platform.payments(order_id).await);
    assert_eq!(payments.succeeded().count(), 1);
}

#[tokio::test]
async fn sagas_of_a_replica_killed_over_and_over_are_taken_over_and_all_end_consistent() {
    let (mut platform, urls) = two_orchestrators(&[]).await;
    const CHECKOUTS: usize = 40;
    const KILLS: usize = 30;
    let load = load(urls, CHECKOUTS);
    for kill in 0..KILLS {
        tokio::time::sleep(Duration::from_millis(100 + (kill as u64 * 7919) % 300)).await;
        platform.processes().restart_replica(Service::Order, 1).await;
    }
    let answers = load.await.unwrap();
    assert_eq!(answers.len(), CHECKOUTS);
    let mut taken_over = 0;
    for answer in &answers {
        let order = platform.settled(answer["order_id"].as_str().unwrap()).await;
        let settled: OrderView = view(&order);
        let saga = settled.saga.as_ref().unwrap();
        assert!(saga.status.is_final(), "{order}");
        if saga.epoch > 1 {
            taken_over += 1;
        }
    }
    assert!(taken_over > 0, "some sagas changed hands");
    let report = audit(&platform).await;
    let violations: Vec<String> = report.violations.iter().map(ToString::to_string).collect();
    assert!(violations.is_empty(), "{}\n{}", report.summary(), violations.join("\n"));
    assert!(report.orders >= CHECKOUTS, "{}", report.summary());
}

#[tokio::test]
async fn transactions_of_a_coordinator_killed_over_and_over_are_taken_over_and_all_end_consistent() {
    let (mut platform, urls) = two_of(Service::Coordinator, &[]).await;
    const CHECKOUTS: usize = 32;
    const KILLS: usize = 30;
    let load = load(urls, CHECKOUTS);
    for kill in 0..KILLS {
        tokio::time::sleep(Duration::from_millis(100 + (kill as u64 * 7919) % 300)).await;
        platform.processes().restart_replica(Service::Coordinator, 1).await;
    }
    let answers = load.await.unwrap();
    assert_eq!(answers.len(), CHECKOUTS);
    let mut taken_over = 0;
    for answer in &answers {
        let tx = platform.finished(answer["transaction_id"].as_str().unwrap()).await;
        if tx["epoch"].as_i64().unwrap() > 1 {
            taken_over += 1;
        }
    }
    assert!(taken_over > 0, "some transactions changed hands");
    platform.assert_no_prepared_left().await;
    let report = audit(&platform).await;
    let violations: Vec<String> = report.violations.iter().map(ToString::to_string).collect();
    assert!(violations.is_empty(), "{}\n{}", report.summary(), violations.join("\n"));
}

/// A coordinator paused between the last vote and the decision write, past its
/// lease: another replica takes the transaction over and logs abort before telling
/// anyone (presumed abort, made final). The paused one wakes up to log commit: the
/// write is refused, it stands down, and the transaction is aborted everywhere.
#[tokio::test]
async fn a_coordinator_paused_before_its_decision_finds_the_presumed_abort_logged_and_follows_it() {
    let (platform, urls) = two_of(Service::Coordinator, &[("SAGA_LEASE_TTL_MS", "1000")]).await;
    let (status, body) = checkout_at(
        &urls[0],
        &checkout_body("SKU-006", 1, "tok_visa"),
        &new_key(),
        Some("fault.coordinator.vote=pause_ms:4000"),
    )
    .await
    .unwrap();
    assert_eq!(status, 201, "{body}");
    let id = body["transaction_id"].as_str().unwrap().to_owned();
    let tx: api::TransactionView = view(&platform.finished(&id).await);
    assert_eq!(tx.state, api::TransactionState::Aborted, "{tx:?}");
    assert!(
        tx.reason.as_deref().is_some_and(|r| r.starts_with("presumed abort")),
        "{tx:?}"
    );
    assert_eq!(tx.epoch, 2, "{tx:?}");
    let history: api::TransactionHistory = platform
        .coordinator
        .get(&format!("/transactions/{id}/history?limit=500"))
        .await
        .json()
        .await
        .unwrap();
    let kinds: Vec<_> = history.events.iter().map(|e| (e.kind, e.epoch)).collect();
    use api::TransactionEventKind as Kind;
    let decisions: Vec<_> = history
        .events
        .iter()
        .filter(|e| e.kind == Kind::DecisionLogged)
        .collect();
    assert_eq!(decisions.len(), 1, "one decision, logged once: {kinds:?}");
    assert_eq!(decisions[0].decision, Some(api::Decision::Abort));
    assert_eq!(
        decisions[0].epoch,
        Some(2),
        "logged by the replica that took over: {kinds:?}"
    );
    let votes = history
        .events
        .iter()
        .filter(|e| e.kind == Kind::Vote && e.epoch == Some(1))
        .count();
    assert_eq!(votes, 4, "every vote came in at epoch 1: {kinds:?}");
    let lost = history
        .events
        .iter()
        .find(|e| e.kind == Kind::LeaseLost)
        .unwrap_or_else(|| panic!("the paused coordinator stood down: {kinds:?}"));
    assert_eq!(lost.epoch, Some(1));
    assert!(
        lost.detail.as_deref().is_some_and(|d| d.contains("its log says abort")),
        "{lost:?}"
    );
    assert_ne!(lost.owner, tx.owner);
    platform.assert_no_prepared_left().await;
    let payments: Payments = view(&platform.payments(&tx.order_id.to_string()).await);
    assert_eq!(payments.charged_cents, 0, "{payments:?}");
    // Both coordinators are in their registry, live.
    let listed: ReplicaList = reqwest::get(format!("{}/admin/replicas", urls[0]))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed.replicas.iter().filter(|r| r.live).count(), 2, "{listed:?}");
    assert!(
        listed.replicas.iter().all(|r| r.id.starts_with("coordinator-")),
        "{listed:?}"
    );
    let report = audit(&platform).await;
    assert!(report.violations.is_empty(), "{}", report.summary());
}

/// How the orchestrator that started the checkout is made a zombie.
#[derive(Debug, Clone, Copy)]
enum Pause {
    /// `pause_ms` at the charge's fault point: the runner stops, its lease lapses.
    Fault,
    /// The whole process frozen with `SIGSTOP` at the same point, then `SIGCONT`.
    Sigstop,
}

/// What a zombie left behind.
struct ZombieRun {
    platform: Platform,
    order: Value,
    saga_id: String,
    history: SagaHistory,
}

/// Replica 0 takes a checkout whose charge is declined on its first attempt only
/// (a baggage fault) and is paused between that answer and writing it down, for
/// longer than its lease. Replica 1 takes the saga over, charges on the second
/// attempt and confirms it. Then replica 0 wakes up holding the decline.
async fn zombie(pause: Pause, fencing: bool) -> ZombieRun {
    let ttl = "1000";
    let (mut platform, urls) = two_orchestrators(&[
        ("SAGA_LEASE_TTL_MS", ttl),
        ("FENCING", if fencing { "on" } else { "off" }),
    ])
    .await;
    let baggage = match pause {
        Pause::Fault => "fault.payment.charge=decline,fault.order.step.charge_payment=pause_ms:6000",
        // Held at the step's fault point (holding the lease) while the process is stopped.
        Pause::Sigstop => "fault.payment.charge=decline,fault.order.step.charge_payment=delay_ms:4000",
    };
    let checkout = {
        let url = urls[0].clone();
        tokio::spawn(async move {
            checkout_at(
                &url,
                &checkout_body("SKU-003", 1, "tok_visa"),
                &new_key(),
                Some(baggage),
            )
            .await
        })
    };
    let (saga_id, order_id) = the_saga(&platform).await;
    if let Pause::Sigstop = pause {
        // The charge's first attempt started (and is declined at once): freeze replica 0
        // inside its delay, for longer than the lease.
        let started = eventually(Duration::from_secs(10), || async {
            history(&platform, &saga_id)
                .await
                .events
                .iter()
                .any(|e| e.kind == SagaEventKind::StepStarted && e.step.as_deref() == Some("charge_payment"))
                .then_some(())
        })
        .await;
        assert!(started.is_some(), "the charge started");
        tokio::time::sleep(Duration::from_millis(500)).await;
        platform.processes().signal_replica(Service::Order, 0, true);
        let confirmed = eventually(Duration::from_secs(20), || async {
            let order: Value = reqwest::get(format!("{}/orders/{order_id}", urls[1]))
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            (order["status"] == "confirmed").then_some(())
        })
        .await;
        platform.processes().signal_replica(Service::Order, 0, false);
        assert!(confirmed.is_some(), "replica 1 took the saga over and confirmed it");
    }
    // Replica 0's checkout is answered once its runner has stopped: after it woke up
    // and stood down (with fencing) or did what its stale state said (without).
    let _ = checkout.await.unwrap();
    let order = platform.settled(&order_id).await;
    let history = history(&platform, &saga_id).await;
    ZombieRun {
        platform,
        order,
        saga_id,
        history,
    }
}

/// With fencing: the takeover is in the history, the zombie's first write is
/// refused and it stands down; nothing is compensated, every invariant holds, and
/// a call it would make with its stale epoch is refused by the participant.
async fn fenced_zombie(pause: Pause) {
    let ZombieRun {
        platform,
        order,
        saga_id,
        history,
    } = zombie(pause, true).await;
    let settled: OrderView = view(&order);
    assert_eq!(settled.status, OrderStatus::Confirmed, "{order}");
    let saga = settled.saga.as_ref().unwrap();
    assert_eq!(saga.status, SagaStatus::Confirmed);
    assert_eq!(saga.epoch, 2, "taken over once: {order}");
    let taken_over = history
        .events
        .iter()
        .find(|e| e.kind == SagaEventKind::Resumed && e.epoch == Some(2))
        .unwrap_or_else(|| panic!("a takeover at epoch 2: {history:?}"));
    assert!(
        taken_over
            .detail
            .as_deref()
            .is_some_and(|d| d.starts_with("taken over from order-")),
        "{taken_over:?}"
    );
    let lost = history
        .events
        .iter()
        .find(|e| e.kind == SagaEventKind::LeaseLost)
        .unwrap_or_else(|| panic!("the zombie stood down: {history:?}"));
    assert_eq!(lost.epoch, Some(1));
    assert!(
        lost.detail.as_deref().is_some_and(|d| d.contains("was refused")),
        "{lost:?}"
    );
    assert_ne!(lost.owner, saga.owner, "the old holder stood down, not the new one");
    // Nothing written at epoch 1 after the takeover, and no compensation at all.
    let takeover_seq = taken_over.seq;
    assert!(
        history
            .events
            .iter()
            .filter(|e| e.seq > takeover_seq && e.kind != SagaEventKind::LeaseLost)
            .all(|e| e.epoch == Some(2)),
        "{history:?}"
    );
    assert!(
        !history
            .events
            .iter()
            .any(|e| e.kind == SagaEventKind::CompensationStarted),
        "{history:?}"
    );
    let violations = platform
        .violations(&settled.order_id.to_string(), Duration::from_secs(20))
        .await;
    assert!(violations.is_empty(), "{violations:?}");

    // The zombie's compensation, had it been sent with its epoch: refused, nothing done.
    let refund = platform
        .payment
        .client
        .post(platform.payment.url("/refunds"))
        .json(&serde_json::json!({ "order_id": settled.order_id }))
        .header("Idempotency-Key", format!("{saga_id}:charge_payment:compensation"))
        .header("Fencing-Token", format!("{saga_id}:1"));
    let refused = platform.payment.send(refund).await;
    assert_eq!(refused.status(), 409);
    let problem: Value = refused.json().await.unwrap();
    assert_eq!(problem["type"], "urn:txlab:problem:stale-fencing-token", "{problem}");
    let payments: Payments = view(&platform.payments(&settled.order_id.to_string()).await);
    assert_eq!(payments.refunded_cents, 0, "{payments:?}");
}

/// Without fencing the same zombie writes its stale decline over the new holder's
/// log and compensates a confirmed checkout: the auditor reports it.
async fn unfenced_zombie(pause: Pause) {
    let ZombieRun { platform, order, .. } = zombie(pause, false).await;
    let settled: OrderView = view(&order);
    let violations = platform.violations(&settled.order_id.to_string(), Duration::ZERO).await;
    assert!(
        !violations.is_empty(),
        "without fencing the zombie's refund of a confirmed checkout is a violation: {order}"
    );
    let payments: Payments = view(&platform.payments(&settled.order_id.to_string()).await);
    assert!(payments.refunded_cents > 0, "the zombie refunded: {payments:?}");
}

#[tokio::test]
async fn a_replica_paused_past_its_lease_by_pause_ms_is_fenced_off() {
    fenced_zombie(Pause::Fault).await;
}

#[tokio::test]
async fn a_replica_paused_past_its_lease_by_pause_ms_does_damage_without_fencing() {
    unfenced_zombie(Pause::Fault).await;
}

#[tokio::test]
async fn a_replica_stopped_with_sigstop_past_its_lease_is_fenced_off() {
    fenced_zombie(Pause::Sigstop).await;
}

#[tokio::test]
async fn a_replica_stopped_with_sigstop_past_its_lease_does_damage_without_fencing() {
    unfenced_zombie(Pause::Sigstop).await;
}

#[tokio::test]
async fn loadgen_spreads_its_checkouts_over_every_replica_it_is_given() {
    let (platform, urls) = two_orchestrators(&[]).await;
    let report = loadgen::load::run(&loadgen::load::LoadSettings {
        urls: urls.to_vec(),
        protocol: loadgen::load::Protocol::Saga,
        mode: loadgen::load::Mode::Closed { clients: 2 },
        requests: 8,
        skus: loadgen::load::Skus::Uniform { count: 4 },
        faults: Vec::new(),
        timeout: Duration::from_secs(30),
        progress: false,
    })
    .await
    .unwrap();
    assert_eq!(
        report.outcomes.succeeded + report.outcomes.cancelled,
        8,
        "{}",
        report.table()
    );
    let owners: std::collections::HashSet<String> = sqlx::query_scalar("SELECT owner FROM sagas")
        .fetch_all(&platform.order.pool)
        .await
        .unwrap()
        .into_iter()
        .collect::<Vec<Option<String>>>()
        .into_iter()
        .flatten()
        .collect();
    assert_eq!(
        owners.len(),
        2,
        "each replica drove the checkouts sent to it: {owners:?}"
    );
}
