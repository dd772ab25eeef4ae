//! The recovery sweep makes progress past sagas it cannot finish.

use std::time::Duration;

use base::config::Service;
use order_service::startup::{SagaSettings, build_with};
use testing::{TestApp, eventually};
use uuid::Uuid;

/// The orchestrator alone, every other participant unreachable, sweeping every 100 ms.
async fn orchestrator_without_participants() -> TestApp {
    let nowhere = testing::unreachable_url();
    TestApp::spawn(
        Service::Order,
        |s| {
            s.peers.inventory = nowhere.clone();
            s.peers.payment = nowhere.clone();
            s.peers.email = nowhere.clone();
        },
        |s| {
            build_with(
                s,
                SagaSettings {
                    checkout_deadline: Duration::from_secs(5),
                    recovery_interval: Duration::from_millis(100),
                    park_retry: Duration::from_secs(600),
                },
            )
        },
    )
    .await
}

/// Logs a saga as a crash leaves it: `status`, with `done` steps succeeded and the next
/// one in flight (or none, when every step is done).
async fn insert_saga(app: &TestApp, status: &str, done: usize, created_secs_ago: f64) -> Uuid {
    let id = Uuid::now_v7();
    let request = serde_json::json!({
        "customer_email": "ada@example.com", "payment_token": "tok_visa",
        "items": [ { "sku": "SKU-001", "quantity": 1, "unit_price_cents": 1000 } ], "total_cents": 1000
    });
    // One database transaction, as the orchestrator logs one: a recovery sweep must
    // never see the saga without its steps.
    let mut db = app.pool.begin().await.unwrap();
    sqlx::query(
        "INSERT INTO sagas (id, order_id, checkout_key, request, created_at, next_attempt_at, status, reason)
         VALUES ($1, $2, $3, $4, now() - make_interval(secs => $5), now() - make_interval(secs => $5),
                 $6::saga_status, CASE WHEN $6 = 'compensating' THEN 'charge_payment: 402' END)",
    )
    .bind(id)
    .bind(Uuid::now_v7())
    .bind(format!("test:{id}"))
    .bind(&request)
    .bind(created_secs_ago)
    .bind(status)
    .execute(&mut *db)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO saga_steps (saga_id, position, step, status, attempts)
         SELECT $1, (ordinality - 1)::smallint, step,
                CASE WHEN ordinality <= $2 THEN 'succeeded'::step_status
                     WHEN ordinality = $2 + 1 THEN 'running'::step_status
                     ELSE 'pending'::step_status END,
                CASE WHEN ordinality <= $2 + 1 THEN 1 ELSE 0 END
         FROM unnest(ARRAY['create_order', 'reserve_inventory', 'charge_payment', 'commit_inventory',
                           'confirm_order', 'send_email']) WITH ORDINALITY AS s(step, ordinality)",
    )
    .bind(id)
    .bind(done as i64)
    .execute(&mut *db)
    .await
    .unwrap();
    db.commit().await.unwrap();
    id
}

async fn status_of(app: &TestApp, id: Uuid) -> String {
    sqlx::query_scalar("SELECT status::text FROM sagas WHERE id = $1")
        .bind(id)
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

#[actix_web::test]
async fn sagas_that_cannot_finish_do_not_keep_newer_ones_from_finishing() {
    let app = orchestrator_without_participants().await;
    // More than a sweep takes (100), older, each compensating a charge at a payment
    // service that is not there: they wait on it (its breaker) for long, their
    // status unchanged meanwhile.
    for i in 0..130 {
        insert_saga(&app, "compensating", 2, 60.0 + f64::from(i)).await;
    }
    // Newer, with every step done: it only has to be written confirmed.
    let newer = insert_saga(&app, "running", 6, 1.0).await;
    let finished = eventually(Duration::from_secs(20), || async {
        (status_of(&app, newer).await == "confirmed").then_some(())
    })
    .await;
    assert!(
        finished.is_some(),
        "the newer saga was never offered to recovery: still {}",
        status_of(&app, newer).await
    );
}
