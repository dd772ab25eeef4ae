//! The orchestrator is SIGKILLed mid-saga and started again: every saga reaches a
//! final state and the invariants hold.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use api::{OrderView, SagaEventKind, SagaHistory, SagaStatus, StepStatus};
use base::config::Service;
use serde_json::Value;
use testing::eventually;
use txlab_tests::{Platform, checkout_body, hold_lock, new_key, step, view};

/// Starts a checkout without waiting for its answer, and returns its order id once
/// the order service has one.
async fn start_checkout(platform: &Platform, body: Value, key: &str, baggage: &str) -> String {
    let request = platform
        .order
        .client
        .post(platform.order.url("/checkout"))
        .json(&body)
        .header("Idempotency-Key", key)
        .header("baggage", baggage);
    tokio::spawn(async move {
        let _ = request.send().await;
    });
    eventually(Duration::from_secs(10), || async {
        sqlx::query_scalar::<_, uuid::Uuid>("SELECT order_id FROM sagas LIMIT 1")
            .fetch_optional(&platform.order.pool)
            .await
            .unwrap()
            .map(|id| id.to_string())
    })
    .await
    .expect("the saga was logged")
}

async fn wait_for(platform: &Platform, order_id: &str, what: impl Fn(&Value) -> bool) {
    let reached = eventually(Duration::from_secs(20), || async {
        let response = platform.order.get(&format!("/orders/{order_id}")).await;
        let order: Value = response.json().await.unwrap_or(Value::Null);
        what(&order).then_some(())
    })
    .await;
    assert!(reached.is_some(), "the saga never got there");
}

/// Kills the orchestrator at the moment `at` holds (the next step is held up by a
/// delay), restarts it, and checks the saga ends `expected` and consistent; then
/// retries the checkout with the same key and gets the same order.
async fn crash_and_recover(body: Value, baggage: &str, at: impl Fn(&Value) -> bool, expected: &str) {
    let mut platform = Platform::start_processes(&[]).await;
    let key = new_key();
    let order_id = start_checkout(&platform, body.clone(), &key, baggage).await;
    wait_for(&platform, &order_id, at).await;
    platform.processes().kill(Service::Order).await;
    platform.processes().restart(Service::Order).await;

    let order = platform.settled(&order_id).await;
    let settled: OrderView = view(&order);
    assert_eq!(settled.status.name(), expected, "{order}");
    assert_eq!(
        settled.saga.as_ref().map(|s| s.status.name()),
        Some(expected),
        "{order}"
    );
    platform.assert_consistent(&order).await;
    // Its history says it was taken up again after the crash, and where it was.
    let saga_id = order["saga"]["saga_id"].as_str().unwrap();
    let history: SagaHistory = platform
        .order
        .get(&format!("/sagas/{saga_id}/history"))
        .await
        .json()
        .await
        .unwrap();
    let resumed: Vec<_> = history
        .events
        .iter()
        .filter(|e| e.kind == SagaEventKind::Resumed)
        .collect();
    assert!(
        resumed
            .iter()
            .any(|e| matches!(e.status, Some(SagaStatus::Running | SagaStatus::Compensating))),
        "{history:?}"
    );
    assert_eq!(
        history.events.last().map(|e| (e.kind, e.status)),
        Some((
            SagaEventKind::StatusChanged,
            Some(settled.saga.as_ref().unwrap().status)
        )),
        "{history:?}"
    );

    // The client never got its answer; retrying with the same key finds the same order.
    let retried = eventually(Duration::from_secs(20), || async {
        let (status, _, answer) = platform.checkout(&body, &key, None).await;
        (status == 201).then_some(answer)
    })
    .await
    .expect("the retried checkout answered");
    assert_eq!(view::<OrderView>(&retried).order_id.to_string(), order_id);
    assert_eq!(platform.order.count("sagas").await, 1);
    let succeeded: i64 = sqlx::query_scalar("SELECT count(*) FROM charges WHERE state = 'succeeded'")
        .fetch_one(&platform.payment.pool)
        .await
        .unwrap();
    assert_eq!(succeeded, if expected == "confirmed" { 1 } else { 0 });
}

#[actix_web::test]
async fn killed_after_the_reservation_it_resumes_and_confirms() {
    crash_and_recover(
        checkout_body("SKU-001", 2, "tok_visa"),
        "fault.payment.charge=delay_ms:1500",
        |o| step(o, "reserve_inventory").status == StepStatus::Succeeded,
        "confirmed",
    )
    .await;
}

#[actix_web::test]
async fn killed_after_the_charge_it_resumes_forward_and_never_refunds() {
    crash_and_recover(
        checkout_body("SKU-002", 1, "tok_visa"),
        "fault.inventory.commit_reservation=delay_ms:1500",
        |o| step(o, "charge_payment").status == StepStatus::Succeeded,
        "confirmed",
    )
    .await;
}

#[actix_web::test]
async fn killed_while_compensating_it_finishes_compensating() {
    crash_and_recover(
        checkout_body("SKU-003", 1, "tok_chargeDeclined"),
        "fault.inventory.release=delay_ms:1500",
        |o| o["saga"]["status"] == "compensating",
        "cancelled",
    )
    .await;
}

#[actix_web::test]
async fn an_orchestrator_that_crashes_itself_mid_step_recovers() {
    let mut platform = Platform::start_processes(&[]).await;
    let body = checkout_body("SKU-004", 1, "tok_visa");
    let order_id = start_checkout(&platform, body, &new_key(), "fault.order.confirm=crash").await;
    platform.processes().wait_until_exited(Service::Order).await;
    platform.processes().restart(Service::Order).await;
    let order = platform.settled(&order_id).await;
    assert_eq!(order["status"], "confirmed", "{order}");
    platform.assert_consistent(&order).await;
}

/// Killed while its own call to create the order is being worked on, the orchestrator
/// leaves that call's idempotency claim behind, leased for longer than the step's
/// whole retry schedule. Resumed, the saga's calls are answered "still in flight": not
/// a failed attempt — it waits for the lease, then the call takes the key over and the
/// checkout goes through.
#[actix_web::test]
async fn killed_mid_step_its_own_call_still_in_flight_is_waited_for_not_given_up_on() {
    let mut platform = Platform::start_processes(&[(Service::Order, "IDEMPOTENCY_LEASE_SECS", "6")]).await;
    // The order's creation blocks inside its unit of work (its key claimed) on a lock
    // of the test's.
    let mut holder = hold_lock(&platform.order.db.url, "LOCK TABLE orders IN EXCLUSIVE MODE").await;
    let order_id = start_checkout(&platform, checkout_body("SKU-005", 1, "tok_visa"), &new_key(), "").await;
    let claimed = eventually(Duration::from_secs(10), || async {
        let in_flight: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM idempotency_keys WHERE key LIKE '%:create_order' AND state = 'in_flight'",
        )
        .fetch_one(&platform.order.pool)
        .await
        .unwrap();
        (in_flight == 1).then_some(())
    })
    .await;
    assert!(claimed.is_some(), "create_order is under way, its key claimed");
    platform.processes().kill(Service::Order).await;
    sqlx::query("COMMIT").execute(&mut holder).await.unwrap();
    platform.processes().restart(Service::Order).await;

    let order = platform.settled(&order_id).await;
    assert_eq!(order["status"], "confirmed", "{order}");
    assert!(
        step(&order, "create_order").attempts <= 3,
        "waits for the lease are not attempts: {order}"
    );
    platform.assert_consistent(&order).await;
}
