//! The idempotency middleware's transaction rules, with handlers written for the
//! purpose: what commits, what rolls back, and what happens to the key.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use actix_web::{App, HttpResponse, test, web};
use base::{ErrorCode, Problem};
use shared::idempotency::{Idempotency, IdempotencyStore, UnitOfWork};
use sqlx::PgPool;
use testing::TestDatabase;

async fn database() -> PgPool {
    let db = TestDatabase::create().await;
    let pool = db.pool().await;
    let none = sqlx::migrate::Migrator::with_migrations(Vec::new());
    base::db::migrate(&pool, &db.url, &none).await.unwrap();
    sqlx::query("CREATE TABLE widgets (name text PRIMARY KEY)")
        .execute(&pool)
        .await
        .unwrap();
    pool
}

async fn write(uow: &mut UnitOfWork, name: &str) -> Result<(), Problem> {
    sqlx::query("INSERT INTO widgets (name) VALUES ($1)")
        .bind(name)
        .execute(&mut **uow.tx().await?)
        .await?;
    Ok(())
}

/// Writes, then fails unexpectedly before the commit.
async fn write_then_fail(mut uow: UnitOfWork) -> Result<HttpResponse, Problem> {
    write(&mut uow, "doomed").await?;
    Err(Problem::internal(anyhow::anyhow!("something broke after the write")))
}

/// Writes, then reports a business conflict (stored, like a declined card).
async fn write_then_conflict(mut uow: UnitOfWork) -> Result<HttpResponse, Problem> {
    write(&mut uow, "recorded").await?;
    Err(Problem::new(ErrorCode::Conflict, "a business outcome"))
}

async fn write_then_succeed(mut uow: UnitOfWork) -> Result<HttpResponse, Problem> {
    write(&mut uow, "made").await?;
    Ok(HttpResponse::Created().json(serde_json::json!({ "made": true })))
}

async fn count(pool: &PgPool, table: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
        .fetch_one(pool)
        .await
        .unwrap()
}

macro_rules! app {
    ($pool:expr) => {
        test::init_service(
            App::new()
                .app_data(web::Data::new(IdempotencyStore {
                    pool: $pool.clone(),
                    service: "test",
                    lease: Duration::from_secs(10),
                    fencing: true,
                }))
                .service(
                    web::resource("/fail")
                        .route(web::post().to(write_then_fail))
                        .wrap(Idempotency::optional()),
                )
                .service(
                    web::resource("/conflict")
                        .route(web::post().to(write_then_conflict))
                        .wrap(Idempotency::optional()),
                )
                .service(
                    web::resource("/succeed")
                        .route(web::post().to(write_then_succeed))
                        .wrap(Idempotency::required()),
                ),
        )
        .await
    };
}

fn post(path: &str, key: Option<&str>) -> test::TestRequest {
    let request = test::TestRequest::post().uri(path).set_json(serde_json::json!({}));
    match key {
        Some(key) => request.insert_header(("Idempotency-Key", key)),
        None => request,
    }
}

#[actix_web::test]
async fn an_error_after_the_write_leaves_neither_the_write_nor_the_key() {
    let pool = database().await;
    let app = app!(pool);
    let response = test::call_service(&app, post("/fail", Some("k1")).to_request()).await;
    assert_eq!(response.status(), 500);
    assert_eq!(count(&pool, "widgets").await, 0);
    assert_eq!(count(&pool, "idempotency_keys").await, 0);
    let again = test::call_service(&app, post("/fail", Some("k1")).to_request()).await;
    assert_eq!(again.status(), 500, "released, so the retry executed again");
    assert!(again.headers().get("idempotent-replayed").is_none());
}

#[actix_web::test]
async fn a_business_outcome_commits_with_its_stored_response() {
    let pool = database().await;
    let app = app!(pool);
    let first = test::call_service(&app, post("/conflict", Some("k2")).to_request()).await;
    assert_eq!(first.status(), 409);
    assert_eq!(count(&pool, "widgets").await, 1);
    assert_eq!(count(&pool, "idempotency_keys").await, 1);
    let replay = test::call_service(&app, post("/conflict", Some("k2")).to_request()).await;
    assert_eq!(replay.status(), 409);
    assert_eq!(replay.headers().get("idempotent-replayed").unwrap(), "true");
    assert_eq!(count(&pool, "widgets").await, 1);
}

#[actix_web::test]
async fn without_a_key_the_unit_of_work_still_commits_or_rolls_back() {
    let pool = database().await;
    let app = app!(pool);
    assert_eq!(
        test::call_service(&app, post("/fail", None).to_request())
            .await
            .status(),
        500
    );
    assert_eq!(count(&pool, "widgets").await, 0);
    assert_eq!(
        test::call_service(&app, post("/conflict", None).to_request())
            .await
            .status(),
        409
    );
    assert_eq!(count(&pool, "widgets").await, 1);
    assert_eq!(count(&pool, "idempotency_keys").await, 0);
}

#[actix_web::test]
async fn a_required_key_is_enforced_before_anything_runs() {
    let pool = database().await;
    let app = app!(pool);
    let response = test::call_service(&app, post("/succeed", None).to_request()).await;
    assert_eq!(response.status(), 400);
    let body: serde_json::Value = test::read_body_json(response).await;
    assert_eq!(body["type"], "urn:txlab:problem:idempotency-key-missing");
    assert_eq!(count(&pool, "widgets").await, 0);
    let made = test::call_service(&app, post("/succeed", Some("k3")).to_request()).await;
    assert_eq!(made.status(), 201);
    assert_eq!(count(&pool, "widgets").await, 1);
}

#[actix_web::test]
async fn a_success_commits_the_write_and_completes_the_key_together() {
    let pool = database().await;
    let app = app!(pool);
    let made = test::call_service(&app, post("/succeed", Some("k4")).to_request()).await;
    assert_eq!(made.status(), 201);
    let (widgets, completed): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM widgets), (SELECT count(*) FROM idempotency_keys WHERE state = 'completed')",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((widgets, completed), (1, 1));
}

/// A transaction's `begin` cut off half-way (a request dropped at its deadline while
/// its BEGIN is on the wire) must not hand its connection back to the pool inside a
/// transaction. One idle connection, taken without a ping, so the first poll of a
/// begin sends its BEGIN and waits for the answer; the begin is dropped right there,
/// and the next statement on that connection must run outside any transaction.
#[actix_web::test]
async fn a_begin_cut_off_half_way_leaves_its_connection_outside_any_transaction() {
    let db = TestDatabase::create().await;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .test_before_acquire(false)
        .connect(&db.url)
        .await
        .unwrap();
    for round in 0..20 {
        let mut begin = Box::pin(base::db::begin(&pool));
        let done = std::future::poll_fn(|cx| std::task::Poll::Ready(begin.as_mut().poll(cx).is_ready())).await;
        assert!(
            !done,
            "round {round}: the begin finished in one poll, nothing was cut off"
        );
        drop(begin);
        tokio::time::sleep(Duration::from_millis(5)).await;
        // Outside a transaction block this fails for want of such a transaction; inside
        // one (or an aborted one) it fails for being there.
        let answer = sqlx::raw_sql("COMMIT PREPARED 'txlab_no_such_transaction'")
            .execute(&pool)
            .await
            .map(|_| String::from("committed?"))
            .unwrap_or_else(|e| e.to_string());
        assert!(answer.contains("does not exist"), "round {round}: {answer}");
    }
}

fn fenced(path: &str, key: &str, epoch: i64) -> test::TestRequest {
    post(path, Some(key)).insert_header(("Fencing-Token", format!("saga-1:{epoch}")))
}

async fn highest_epoch(pool: &PgPool) -> Option<i64> {
    sqlx::query_scalar("SELECT epoch FROM fencing_tokens WHERE holder = 'saga-1'")
        .fetch_optional(pool)
        .await
        .unwrap()
}

#[actix_web::test]
async fn a_lower_fencing_token_is_refused_with_nothing_done_and_replays_stay_replays() {
    let pool = database().await;
    let app = app!(pool);
    let newer = test::call_service(&app, fenced("/succeed", "by-epoch-2", 2).to_request()).await;
    assert_eq!(newer.status(), 201);
    assert_eq!(highest_epoch(&pool).await, Some(2), "raised with the work");

    // A paused holder of epoch 1 wakes up and calls with a key of its own.
    let stale = test::call_service(&app, fenced("/succeed", "by-epoch-1", 1).to_request()).await;
    assert_eq!(stale.status(), 409);
    let body: serde_json::Value = test::read_body_json(stale).await;
    assert_eq!(body["type"], "urn:txlab:problem:stale-fencing-token", "{body}");
    assert_eq!(count(&pool, "widgets").await, 1, "nothing done");
    let keys: Vec<String> = sqlx::query_scalar("SELECT key FROM idempotency_keys ORDER BY key")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(keys, ["by-epoch-2"], "the stale call's key was released, not stored");

    // The same stale holder repeating the newer holder's call gets its stored answer.
    let replay = test::call_service(&app, fenced("/succeed", "by-epoch-2", 1).to_request()).await;
    assert_eq!(replay.status(), 201);
    assert_eq!(replay.headers().get("idempotent-replayed").unwrap(), "true");

    // An equal or higher epoch goes through, and a rolled-back call raises nothing.
    let failed = test::call_service(&app, fenced("/fail", "by-epoch-5", 5).to_request()).await;
    assert_eq!(failed.status(), 500);
    assert_eq!(highest_epoch(&pool).await, Some(2), "rolled back with the work");
    let same = test::call_service(&app, fenced("/conflict", "by-epoch-2b", 2).to_request()).await;
    assert_eq!(same.status(), 409);
    assert_eq!(count(&pool, "widgets").await, 2);
}

#[actix_web::test]
async fn a_malformed_fencing_token_is_a_bad_request_that_changes_nothing() {
    let pool = database().await;
    let app = app!(pool);
    for bad in ["saga-1", "saga-1:0", "saga-1:x", ":3"] {
        let request = post("/succeed", Some("k-bad")).insert_header(("Fencing-Token", bad));
        let response = test::call_service(&app, request.to_request()).await;
        assert_eq!(response.status(), 400, "{bad}");
    }
    assert_eq!(count(&pool, "widgets").await, 0);
    assert_eq!(count(&pool, "idempotency_keys").await, 0);
}
