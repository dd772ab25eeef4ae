//! Recovery finishes what a crash left, whatever the log says, and makes progress
//! past transactions it cannot finish.

use std::time::Duration;

use base::config::Service;
use coordinator::startup::{CoordinatorSettings, build_with};
use testing::{TestApp, eventually};
use uuid::Uuid;

/// The coordinator alone, its participants unreachable (nobody listens on their
/// port), sweeping for unfinished transactions every 100 ms.
async fn coordinator_without_participants() -> TestApp {
    let nowhere = testing::unreachable_url();
    TestApp::spawn(
        Service::Coordinator,
        |s| {
            s.peers.order = nowhere.clone();
            s.peers.inventory = nowhere.clone();
            s.peers.payment = nowhere.clone();
            s.peers.email = nowhere.clone();
        },
        |s| {
            build_with(
                s,
                CoordinatorSettings {
                    vote_timeout: Duration::from_secs(1),
                    checkout_deadline: Duration::from_secs(5),
                    recovery_interval: Duration::from_millis(100),
                },
            )
        },
    )
    .await
}

/// Logs a decided transaction as a crash can leave it: decision `commit`, state
/// `committing`, each participant acknowledged or not.
async fn insert_committing(app: &TestApp, acknowledged: bool, created_secs_ago: f64) -> Uuid {
    let id = Uuid::now_v7();
    let request = serde_json::json!({
        "customer_email": "ada@example.com", "payment_token": "tok_visa",
        "items": [ { "sku": "SKU-001", "quantity": 1, "unit_price_cents": 1000 } ], "total_cents": 1000
    });
    // One database transaction, as the coordinator logs one: a recovery sweep must
    // never see the transaction without its participants.
    let mut db = app.pool.begin().await.unwrap();
    sqlx::query(
        "INSERT INTO transactions (id, order_id, checkout_key, state, decision, request, started_by, created_at, decided_at, next_attempt_at)
         VALUES ($1, $2, $3, 'committing', 'commit', $4, $5,
                 now() - make_interval(secs => $6), now() - make_interval(secs => $6), now() - make_interval(secs => $6))",
    )
    .bind(id)
    .bind(Uuid::now_v7())
    .bind(format!("test:{id}"))
    .bind(&request)
    .bind(Uuid::new_v4())
    .bind(created_secs_ago)
    .execute(&mut *db)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO tx_participants (transaction_id, position, name, vote, outcome)
         SELECT $1, (ordinality - 1)::smallint, name, 'yes', $2::tx_outcome
         FROM unnest(ARRAY['order', 'inventory', 'payment', 'email']) WITH ORDINALITY AS p(name, ordinality)",
    )
    .bind(id)
    .bind(if acknowledged { "committed" } else { "pending" })
    .execute(&mut *db)
    .await
    .unwrap();
    db.commit().await.unwrap();
    id
}

async fn state_of(app: &TestApp, id: Uuid) -> String {
    sqlx::query_scalar("SELECT state::text FROM transactions WHERE id = $1")
        .bind(id)
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

#[actix_web::test]
async fn a_reloaded_transaction_every_participant_acknowledged_is_finished_by_recovery() {
    let app = coordinator_without_participants().await;
    let id = insert_committing(&app, true, 5.0).await;
    let finished = eventually(Duration::from_secs(10), || async {
        (state_of(&app, id).await == "committed").then_some(())
    })
    .await;
    assert!(
        finished.is_some(),
        "still {} after 10 s: every participant had acknowledged",
        state_of(&app, id).await
    );
    let completed: bool = sqlx::query_scalar("SELECT completed_at IS NOT NULL FROM transactions WHERE id = $1")
        .bind(id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert!(completed);
}

#[actix_web::test]
async fn transactions_that_cannot_finish_do_not_keep_newer_ones_from_finishing() {
    let app = coordinator_without_participants().await;
    // More than a sweep takes (100), older than the one that can finish, each waiting
    // for participants that never answer.
    for i in 0..130 {
        insert_committing(&app, false, 60.0 + f64::from(i)).await;
    }
    let newer = insert_committing(&app, true, 1.0).await;
    let finished = eventually(Duration::from_secs(20), || async {
        (state_of(&app, newer).await == "committed").then_some(())
    })
    .await;
    assert!(
        finished.is_some(),
        "the newer transaction was never offered to recovery: still {}",
        state_of(&app, newer).await
    );
    let stuck: i64 = sqlx::query_scalar("SELECT count(*) FROM transactions WHERE state = 'committing'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(stuck, 130, "the others are still being told, not given up on");
}
