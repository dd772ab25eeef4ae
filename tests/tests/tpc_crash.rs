//! The coordinator and participants are SIGKILLed at the protocol's worst moments
//! and started again: every transaction ends committed or aborted everywhere, and
//! no prepared transaction is left behind.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use api::{Payments, TransactionView};
use base::config::Service;
use serde_json::Value;
use testing::eventually;
use txlab_tests::{Platform, checkout_body, hold_lock, new_key, view};

/// Starts a 2PC checkout without waiting for the answer; returns its transaction id.
async fn start_checkout(platform: &Platform, sku: &str, baggage: &str) -> String {
    let request = platform
        .coordinator
        .client
        .post(platform.coordinator.url("/checkout"))
        .json(&checkout_body(sku, 1, "tok_visa"))
        .header("Idempotency-Key", new_key())
        .header("baggage", baggage);
    tokio::spawn(async move {
        let _ = request.send().await;
    });
    eventually(Duration::from_secs(10), || async {
        sqlx::query_scalar::<_, uuid::Uuid>("SELECT id FROM transactions LIMIT 1")
            .fetch_optional(&platform.coordinator.pool)
            .await
            .unwrap()
            .map(|id| id.to_string())
    })
    .await
    .expect("the transaction was logged")
}

async fn everywhere(platform: &Platform, tx: &Value, expected: &str) {
    let tx: TransactionView = view(tx);
    assert_eq!(tx.state.name(), expected, "{tx:?}");
    for p in &tx.participants {
        assert_eq!(p.outcome.name(), expected, "{tx:?}");
    }
    let order_id = &tx.order_id.to_string();
    let payments: Payments = view(&platform.payments(order_id).await);
    if expected == "committed" {
        platform.assert_consistent(&platform.order(order_id).await).await;
    } else {
        assert!(payments.charges.is_empty(), "{payments:?}");
        assert_eq!(platform.order.get(&format!("/orders/{order_id}")).await.status(), 404);
        assert!(platform.emails(order_id).await.is_empty());
        assert!(platform.reservation(order_id).await.is_none());
    }
    platform.assert_no_prepared_left().await;
}

#[actix_web::test]
async fn a_coordinator_killed_after_logging_commit_commits_everywhere_on_restart() {
    let mut platform = Platform::start_processes(&[]).await;
    let id = start_checkout(&platform, "SKU-001", "fault.coordinator.decide=crash").await;
    platform.processes().wait_until_exited(Service::Coordinator).await;
    let logged: (String, Option<String>) =
        sqlx::query_as("SELECT state::text, decision::text FROM transactions WHERE id = $1::uuid")
            .bind(&id)
            .fetch_one(&platform.coordinator.pool)
            .await
            .unwrap();
    assert_eq!(
        logged,
        ("committing".to_owned(), Some("commit".to_owned())),
        "the decision was logged first"
    );
    platform.processes().restart(Service::Coordinator).await;
    let tx = platform.finished(&id).await;
    everywhere(&platform, &tx, "committed").await;
}

#[actix_web::test]
async fn a_coordinator_killed_after_every_acknowledgement_and_before_the_final_state_finishes_on_restart() {
    let mut platform = Platform::start_processes(&[]).await;
    let id = start_checkout(&platform, "SKU-006", "fault.coordinator.finish=crash").await;
    platform.processes().wait_until_exited(Service::Coordinator).await;
    let logged: (String, i64) = sqlx::query_as(
        "SELECT t.state::text, count(*) FILTER (WHERE p.outcome = 'pending')
         FROM transactions t JOIN tx_participants p ON p.transaction_id = t.id
         WHERE t.id = $1::uuid GROUP BY t.state",
    )
    .bind(&id)
    .fetch_one(&platform.coordinator.pool)
    .await
    .unwrap();
    assert_eq!(
        logged,
        ("committing".to_owned(), 0),
        "every participant acknowledged, the final state not written"
    );
    assert_eq!(platform.prepared_left().await, 0);
    platform.processes().restart(Service::Coordinator).await;
    let tx = platform.finished(&id).await;
    everywhere(&platform, &tx, "committed").await;
}

#[actix_web::test]
async fn a_coordinator_killed_before_deciding_aborts_everywhere_on_restart() {
    let mut platform = Platform::start_processes(&[]).await;
    let id = start_checkout(&platform, "SKU-002", "fault.coordinator.vote=crash").await;
    platform.processes().wait_until_exited(Service::Coordinator).await;
    assert_eq!(
        platform.prepared_left().await,
        4,
        "everyone prepared, nobody knows the outcome"
    );
    platform.processes().restart(Service::Coordinator).await;
    let tx = platform.finished(&id).await;
    assert!(tx["reason"].as_str().unwrap().contains("presumed abort"), "{tx}");
    everywhere(&platform, &tx, "aborted").await;
    // The history: the votes before the crash, then the resumption and the presumed abort.
    let history: api::TransactionHistory = platform
        .coordinator
        .get(&format!("/transactions/{id}/history"))
        .await
        .json()
        .await
        .unwrap();
    let kinds: Vec<_> = history.events.iter().map(|e| e.kind.name()).collect();
    assert_eq!(
        kinds[..7],
        ["logged", "vote", "vote", "vote", "vote", "resumed", "decision_logged"],
        "{history:?}"
    );
    assert!(
        history.events[6]
            .detail
            .as_deref()
            .is_some_and(|d| d.contains("presumed abort")),
        "{history:?}"
    );
}

#[actix_web::test]
async fn while_the_coordinator_is_down_the_participants_block_and_both_checkouts_resolve_after() {
    let mut platform = Platform::start_processes(&[]).await;
    let before = platform.stock("SKU-003").await;
    let id = start_checkout(&platform, "SKU-003", "fault.coordinator.vote=crash").await;
    platform.processes().wait_until_exited(Service::Coordinator).await;

    // The participants show what they hold, and for how long.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let prepared: Value = platform.inventory.get("/tpc/prepared").await.json().await.unwrap();
    let held = &prepared["prepared"][0];
    assert!(
        held["gid"].as_str().unwrap().contains(&id.replace('-', "")),
        "{prepared}"
    );
    assert!(held["age_seconds"].as_f64().unwrap() >= 1.0, "{prepared}");

    // A second checkout of the same SKU, by saga, meets the locks and cannot go on:
    // its reservation waits, times out on the lock, and is retried.
    let request = platform
        .order
        .client
        .post(platform.order.url("/checkout"))
        .json(&checkout_body("SKU-003", 1, "tok_visa"))
        .header("Idempotency-Key", new_key());
    let second = tokio::spawn(async move { request.send().await.unwrap().json::<Value>().await.unwrap() });
    let blocked = eventually(Duration::from_secs(15), || async {
        let order_id: Option<uuid::Uuid> = sqlx::query_scalar("SELECT order_id FROM sagas LIMIT 1")
            .fetch_optional(&platform.order.pool)
            .await
            .unwrap();
        let order = platform.order(&order_id?.to_string()).await;
        let reserve = order["steps"]
            .as_array()?
            .iter()
            .find(|s| s["name"] == "reserve_inventory")?
            .clone();
        reserve["last_error"].as_str()?.contains("locked").then_some(order)
    })
    .await
    .expect("the reservation is blocked by the in-doubt transaction's locks");
    assert_eq!(blocked["status"], "pending");
    assert_eq!(platform.stock("SKU-003").await, before, "nothing moved while in doubt");

    platform.processes().restart(Service::Coordinator).await;
    let listed: Value = platform
        .coordinator
        .get(&format!("/transactions/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_ne!(listed["state"], "committed", "{listed}");
    let tx = platform.finished(&id).await;
    everywhere(&platform, &tx, "aborted").await;
    let second = second.await.unwrap();
    let second = platform.settled(second["order_id"].as_str().unwrap()).await;
    assert_eq!(
        second["status"], "confirmed",
        "the blocked checkout went through once the locks were released"
    );
    platform.assert_consistent(&second).await;
}

#[actix_web::test]
async fn a_participant_killed_after_preparing_commits_its_prepared_work_on_restart() {
    let mut platform = Platform::start_processes(&[]).await;
    let id = start_checkout(&platform, "SKU-004", "fault.coordinator.vote=delay_ms:2000").await;
    let prepared = eventually(Duration::from_secs(10), || async {
        (platform.prepared_left().await == 4).then_some(())
    })
    .await;
    assert!(prepared.is_some());
    platform.processes().kill(Service::Payment).await;
    // The decision (commit: everyone voted yes) cannot reach the payment service.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let tx = platform.transaction(&id).await;
    assert_eq!(tx["decision"], "commit", "{tx}");
    assert_eq!(tx["participants"][2]["outcome"], "in_doubt", "{tx}");
    assert_eq!(
        testing::count_prepared(&platform.payment.db.url).await.unwrap(),
        1,
        "it survived the crash"
    );
    platform.processes().restart(Service::Payment).await;
    let tx = platform.finished(&id).await;
    everywhere(&platform, &tx, "committed").await;
}

#[actix_web::test]
async fn a_participant_that_crashes_while_committing_is_committed_once() {
    let mut platform = Platform::start_processes(&[]).await;
    let id = start_checkout(&platform, "SKU-005", "fault.payment.commit=crash").await;
    platform.processes().wait_until_exited(Service::Payment).await;
    platform.processes().restart(Service::Payment).await;
    let tx = platform.finished(&id).await;
    everywhere(&platform, &tx, "committed").await;
}

/// A participant killed while its prepare waits inside its transaction (its id
/// claimed, its work half done): PostgreSQL rolls that transaction back, the
/// coordinator hears no vote and aborts, and once the participant is back the abort
/// reaches it. Nothing is left prepared, nothing sold.
#[actix_web::test]
async fn a_participant_killed_in_the_middle_of_its_prepare_aborts_everywhere() {
    let mut platform = Platform::start_processes(&[]).await;
    let before = platform.stock("SKU-007").await;
    let mut holder = hold_lock(
        &platform.inventory.db.url,
        "SELECT 1 FROM products WHERE sku = 'SKU-007' FOR UPDATE",
    )
    .await;
    let id = start_checkout(&platform, "SKU-007", "").await;
    let waiting = eventually(Duration::from_secs(5), || async {
        let waiting: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_locks WHERE NOT granted")
            .fetch_one(&platform.inventory.pool)
            .await
            .unwrap();
        (waiting > 0).then_some(())
    })
    .await;
    assert!(waiting.is_some(), "inventory's prepare waits on the stock row");
    platform.processes().kill(Service::Inventory).await;
    sqlx::query("COMMIT").execute(&mut holder).await.unwrap();
    // The decision is taken without inventory's vote; telling it waits for it.
    tokio::time::sleep(Duration::from_secs(4)).await;
    platform.processes().restart(Service::Inventory).await;
    let tx = platform.finished(&id).await;
    assert_eq!(tx["decision"], "abort", "{tx}");
    everywhere(&platform, &tx, "aborted").await;
    assert_eq!(platform.stock("SKU-007").await, before, "nothing sold, nothing held");
    let claims: i64 = sqlx::query_scalar("SELECT count(*) FROM tpc_log")
        .fetch_one(&platform.inventory.pool)
        .await
        .unwrap();
    assert_eq!(claims, 0, "the killed prepare's claim was rolled back with it");
}
