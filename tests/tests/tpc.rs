//! The checkout by two-phase commit, end to end, on PostgreSQL prepared transactions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use api::{
    ChargeRequest, Decision, ParticipantOutcome, ParticipantVote, PreparedList, TransactionEventKind,
    TransactionHistory, TransactionState, TransactionStatus, TransactionView,
};
use serde_json::Value;
use testing::{eventually, problem};
use txlab_tests::{Platform, checkout_body, fault_rule, hold_lock, new_key, participant, view};

#[actix_web::test]
async fn a_committed_checkout_changes_every_participant_once() {
    let platform = Platform::start().await;
    let before = platform.stock("SKU-002").await.available;
    let (status, headers, tx) = platform
        .checkout_2pc(&checkout_body("SKU-002", 2, "tok_visa"), &new_key(), None)
        .await;
    assert_eq!(status, 201, "{tx}");
    assert!(headers.contains_key("traceresponse"));
    assert_eq!(tx["status"], "committed");
    assert_eq!(tx["total_cents"], 2 * 4900);
    assert_eq!(tx["trace_id"].as_str().unwrap().len(), 32);
    let tx = platform.finished(tx["transaction_id"].as_str().unwrap()).await;
    for name in ["order", "inventory", "payment", "email"] {
        assert_eq!(participant(&tx, name).vote, ParticipantVote::Yes, "{tx}");
        assert_eq!(participant(&tx, name).outcome, ParticipantOutcome::Committed, "{tx}");
    }
    let order_id = tx["order_id"].as_str().unwrap();
    let order = platform.order(order_id).await;
    assert_eq!(order["status"], "confirmed");
    assert_eq!(platform.stock("SKU-002").await.available, before - 2);

    // Its history: logged, four votes, the decision (the commit point), each
    // participant told once, the final state.
    let history = history(&platform, tx["transaction_id"].as_str().unwrap()).await;
    let kinds: Vec<_> = history.events.iter().map(|e| e.kind).collect();
    use TransactionEventKind::*;
    assert_eq!(
        kinds,
        [
            Logged,
            Vote,
            Vote,
            Vote,
            Vote,
            DecisionLogged,
            PhaseTwoAttempt,
            PhaseTwoAttempt,
            PhaseTwoAttempt,
            PhaseTwoAttempt,
            Finished
        ],
        "{history:?}"
    );
    for event in &history.events[1..5] {
        assert_eq!(event.vote, Some(ParticipantVote::Yes), "{event:?}");
        assert!(event.participant.is_some() && event.duration_ms.is_some(), "{event:?}");
    }
    assert_eq!(history.events[5].decision, Some(Decision::Commit));
    for event in &history.events[6..10] {
        assert_eq!((event.attempt, event.acknowledged), (Some(1), Some(true)), "{event:?}");
    }
    assert_eq!(history.events[10].state, Some(TransactionState::Committed));
    assert_eq!(history.order_id.to_string(), order_id);
    let counts: api::TransactionCounts = platform
        .coordinator
        .get("/transactions/counts")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        counts,
        api::TransactionCounts {
            committed: 1,
            ..Default::default()
        }
    );
    let found: api::TransactionList = platform
        .coordinator
        .get(&format!("/transactions?order_id={order_id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(found.transactions.len(), 1);
    assert_eq!(found.transactions[0].transaction_id, history.transaction_id);
    assert!(
        found.transactions[0]
            .checkout_key
            .as_deref()
            .is_some_and(|k| k.starts_with("coordinator:")),
        "{found:?}"
    );
    let none: api::TransactionList = platform
        .coordinator
        .get(&format!("/transactions?order_id={}&state=aborted", order_id))
        .await
        .json()
        .await
        .unwrap();
    assert!(none.transactions.is_empty());
    let old: api::TransactionList = platform
        .coordinator
        .get("/transactions?older_than_secs=3600")
        .await
        .json()
        .await
        .unwrap();
    assert!(old.transactions.is_empty(), "none an hour old");
    let recent: api::TransactionList = platform
        .coordinator
        .get("/transactions?older_than_secs=0")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(recent.transactions.len(), 1);
    for bad in ["?older_than_secs=-1", "?older_than_secs=315360001"] {
        let (status, body) = problem(platform.coordinator.get(&format!("/transactions{bad}")).await).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
    let first: TransactionHistory = platform
        .coordinator
        .get(&format!("/transactions/{}/history?limit=6", history.transaction_id))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(first.events, history.events[..6]);
    assert_eq!(first.next_cursor, Some(history.events[5].seq));
    let (status, body) = problem(
        platform
            .coordinator
            .get(&format!("/transactions/{}/history", uuid::Uuid::now_v7()))
            .await,
    )
    .await;
    assert_eq!(status, 404, "{body}");
    for bad in ["?limit=0", "?cursor=-2", "?colour=red"] {
        let path = format!("/transactions/{}/history{bad}", history.transaction_id);
        let (status, body) = problem(platform.coordinator.get(&path).await).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
    platform.assert_consistent(&order).await;
    platform.assert_no_prepared_left().await;
}

#[actix_web::test]
async fn effects_stay_invisible_until_the_decision() {
    let platform = Platform::start().await;
    let before = platform.stock("SKU-003").await;
    let key = new_key();
    let body = checkout_body("SKU-003", 1, "tok_visa");
    let checkout = platform.checkout_2pc_in_background(&body, &key, "fault.coordinator.vote=delay_ms:1500");
    // Everyone has prepared; the coordinator has not decided yet.
    let prepared = eventually(Duration::from_secs(10), || async {
        (platform.prepared_left().await == 4).then_some(())
    })
    .await;
    assert!(prepared.is_some(), "all four prepared");
    assert_eq!(
        platform.stock("SKU-003").await,
        before,
        "stock unchanged to everyone else"
    );
    assert_eq!(platform.order.count("orders").await, 0, "no order visible yet");
    assert_eq!(platform.payment.count("charges").await, 0, "no charge visible yet");
    assert_eq!(platform.email.count("emails").await, 0, "no email queued yet");
    let tx = checkout.await.unwrap();
    assert_eq!(tx["status"], "committed", "{tx}");
    platform.finished(tx["transaction_id"].as_str().unwrap()).await;
    assert_eq!(platform.stock("SKU-003").await.sold, before.sold + 1);
    assert_eq!(platform.payment.count("charges").await, 1);
    platform.assert_no_prepared_left().await;
}

async fn aborted_with_no_effects(platform: &Platform, tx: &Value, who: &str) {
    let answer: TransactionView = view(tx);
    assert_eq!(answer.status, TransactionStatus::Aborted, "{tx}");
    assert_eq!(participant(tx, who).vote, ParticipantVote::No, "{tx}");
    assert!(answer.reason.as_deref().unwrap_or_default().contains(who), "{tx}");
    let tx: TransactionView = view(&platform.finished(&answer.transaction_id.to_string()).await);
    assert!(
        tx.participants.iter().all(|p| p.outcome == ParticipantOutcome::Aborted),
        "{tx:?}"
    );
    assert_eq!(platform.order.count("orders").await, 0);
    assert_eq!(platform.payment.count("charges").await, 0);
    assert_eq!(platform.email.count("emails").await, 0);
    assert_eq!(platform.inventory.count("reservations").await, 0);
    platform.assert_no_prepared_left().await;
}

#[actix_web::test]
async fn a_declined_card_votes_no_and_everything_rolls_back() {
    let platform = Platform::start().await;
    let before = platform.stock("SKU-004").await;
    let (status, _, tx) = platform
        .checkout_2pc(&checkout_body("SKU-004", 1, "tok_chargeDeclined"), &new_key(), None)
        .await;
    assert_eq!(status, 201);
    aborted_with_no_effects(&platform, &tx, "payment").await;
    assert_eq!(platform.stock("SKU-004").await, before);
}

#[actix_web::test]
async fn out_of_stock_votes_no_and_everything_rolls_back() {
    let platform = Platform::start().await;
    platform.set_stock("SKU-012", 1).await;
    let (_, _, tx) = platform
        .checkout_2pc(&checkout_body("SKU-012", 2, "tok_visa"), &new_key(), None)
        .await;
    aborted_with_no_effects(&platform, &tx, "inventory").await;
    assert_eq!(platform.stock("SKU-012").await.available, 1);
}

#[actix_web::test]
async fn an_injected_prepare_error_votes_no() {
    let platform = Platform::start().await;
    let (_, _, tx) = platform
        .checkout_2pc(
            &checkout_body("SKU-005", 1, "tok_visa"),
            &new_key(),
            Some("fault.email.prepare=error"),
        )
        .await;
    aborted_with_no_effects(&platform, &tx, "email").await;
}

#[actix_web::test]
async fn a_participant_that_does_not_vote_in_time_aborts_the_transaction() {
    let platform = Platform::start().await;
    let (_, _, tx) = platform
        .checkout_2pc(
            &checkout_body("SKU-006", 1, "tok_visa"),
            &new_key(),
            Some("fault.payment.prepare=timeout"),
        )
        .await;
    assert_eq!(tx["status"], "aborted", "{tx}");
    assert_eq!(participant(&tx, "payment").vote, ParticipantVote::Timeout, "{tx}");
    platform.finished(tx["transaction_id"].as_str().unwrap()).await;
    let history = history(&platform, tx["transaction_id"].as_str().unwrap()).await;
    let timed_out = history
        .events
        .iter()
        .find(|e| e.kind == TransactionEventKind::Vote && e.participant == Some(api::Participant::Payment))
        .expect("the payment's vote is in the history");
    assert_eq!(timed_out.vote, Some(ParticipantVote::Timeout), "{timed_out:?}");
    let decided = history
        .events
        .iter()
        .find(|e| e.kind == TransactionEventKind::DecisionLogged)
        .expect("the decision is in the history");
    assert_eq!(decided.decision, Some(Decision::Abort));
    assert!(
        decided
            .detail
            .as_deref()
            .is_some_and(|d| d.contains("payment voted timeout")),
        "{decided:?}"
    );
    // The late prepare arrives after the abort: it votes no, or is rolled back by the
    // payment service's resolver after asking the coordinator. Nothing stays prepared.
    platform.assert_no_prepared_left().await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    platform.assert_no_prepared_left().await;
    assert_eq!(platform.payment.count("charges").await, 0);
    assert_eq!(platform.order.count("orders").await, 0);
}

#[actix_web::test]
async fn until_the_decision_the_transaction_is_in_doubt_and_holds_its_locks() {
    let platform = Platform::start().await;
    let key = new_key();
    let body = checkout_body("SKU-007", 1, "tok_visa");
    let checkout = platform.checkout_2pc_in_background(&body, &key, "fault.coordinator.vote=delay_ms:4000");
    let in_doubt = eventually(Duration::from_secs(10), || async {
        let listed: Value = platform
            .coordinator
            .get("/transactions?state=in_doubt")
            .await
            .json()
            .await
            .unwrap();
        // In doubt as soon as one participant has voted yes; wait for every vote.
        listed["transactions"]
            .as_array()
            .and_then(|t| t.first().cloned())
            .filter(|tx| {
                tx["participants"]
                    .as_array()
                    .is_some_and(|p| p.iter().all(|p| p["vote"] != "pending"))
            })
    })
    .await
    .expect("the API shows the in-doubt transaction with every vote in");
    assert_eq!(
        in_doubt["decision"],
        Value::Null,
        "every vote is in, nothing decided yet: {in_doubt}"
    );
    // The participants ask the coordinator after 1 s; with no decision to learn they
    // stay in doubt, holding their locks.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(participant(&in_doubt, "inventory").outcome, ParticipantOutcome::InDoubt);
    let prepared: PreparedList = platform.inventory.get("/tpc/prepared").await.json().await.unwrap();
    assert_eq!(prepared.prepared.len(), 1, "{prepared:?}");
    // What it holds, read from the database: the SKU's row, and the tables it wrote.
    let held = &prepared.prepared[0];
    assert_eq!(held.rows, ["SKU-007"], "{held:?}");
    assert!(
        held.locks
            .iter()
            .any(|l| l.relation.as_deref() == Some("products") && l.mode == "RowExclusiveLock"),
        "{held:?}"
    );
    // The payment holds its per-order advisory lock until the decision.
    let payment: PreparedList = platform.payment.get("/tpc/prepared").await.json().await.unwrap();
    assert!(
        payment
            .prepared
            .iter()
            .any(|p| p.locks.iter().any(|l| l.kind == "advisory")),
        "{payment:?}"
    );

    // A saga checkout of the same SKU meets the held row locks: its reservation waits,
    // gives up after the lock timeout, and is retried.
    let (status, _, blocked) = platform
        .checkout(&checkout_body("SKU-007", 1, "tok_visa"), &new_key(), None)
        .await;
    let order_id = blocked["order_id"].as_str().unwrap().to_owned();
    let tx = checkout.await.unwrap();
    assert_eq!(tx["status"], "committed");
    platform.finished(tx["transaction_id"].as_str().unwrap()).await;
    let order = platform.settled(&order_id).await;
    let reserve = order["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "reserve_inventory")
        .unwrap();
    assert!(
        reserve["attempts"].as_u64().unwrap() >= 2,
        "the reservation was blocked and retried ({status}): {order}"
    );
    assert_eq!(
        order["status"], "confirmed",
        "and succeeded once the locks were released"
    );
    platform.assert_no_prepared_left().await;
}

#[actix_web::test]
async fn a_participant_slow_to_acknowledge_does_not_hold_up_the_answer() {
    let platform = Platform::start().await;
    fault_rule(&platform.inventory, "inventory.commit", "error").await;
    // The coordinator's deadline is 15 s; answering within 10 s means it did not wait
    // for inventory's acknowledgement, which cannot come while the rule is on.
    let coordinator = &platform.coordinator;
    let answer = coordinator
        .send(
            coordinator
                .client
                .post(coordinator.url("/checkout"))
                .header("Idempotency-Key", new_key())
                .json(&checkout_body("SKU-002", 1, "tok_visa"))
                .timeout(Duration::from_secs(10)),
        )
        .await;
    assert_eq!(answer.status(), 201);
    let tx: Value = answer.json().await.unwrap();
    assert_eq!(tx["status"], "committed", "{tx}");
    assert_eq!(
        participant(&tx, "inventory").outcome,
        ParticipantOutcome::InDoubt,
        "{tx}"
    );
    assert_eq!(
        participant(&tx, "payment").outcome,
        ParticipantOutcome::Committed,
        "{tx}"
    );

    // Told again until it acknowledges: once the fault is gone, it commits.
    coordinator
        .send(
            platform
                .inventory
                .client
                .delete(platform.inventory.url("/admin/faults")),
        )
        .await;
    let tx = platform.finished(tx["transaction_id"].as_str().unwrap()).await;
    assert_eq!(tx["status"], "committed", "{tx}");
    assert_eq!(
        participant(&tx, "inventory").outcome,
        ParticipantOutcome::Committed,
        "{tx}"
    );
    // Each attempt to tell the inventory is in the history, the refused ones with why.
    let history = history(&platform, tx["transaction_id"].as_str().unwrap()).await;
    let told: Vec<_> = history
        .events
        .iter()
        .filter(|e| {
            e.kind == TransactionEventKind::PhaseTwoAttempt && e.participant == Some(api::Participant::Inventory)
        })
        .collect();
    assert!(told.len() > 1, "{told:?}");
    assert!(
        told[..told.len() - 1]
            .iter()
            .all(|e| e.acknowledged == Some(false) && e.detail.is_some()),
        "{told:?}"
    );
    assert_eq!(told.last().unwrap().acknowledged, Some(true), "{told:?}");
    assert_eq!(
        told.iter().map(|e| e.attempt.unwrap()).collect::<Vec<_>>(),
        (1..=u32::try_from(told.len()).unwrap()).collect::<Vec<_>>()
    );
    let order = platform.order(tx["order_id"].as_str().unwrap()).await;
    platform.assert_consistent(&order).await;
    platform.assert_no_prepared_left().await;
}

#[actix_web::test]
async fn the_same_key_is_one_transaction() {
    let platform = Platform::start().await;
    let key = new_key();
    let body = checkout_body("SKU-008", 1, "tok_visa");
    let (_, _, first) = platform.checkout_2pc(&body, &key, None).await;
    let (status, headers, second) = platform.checkout_2pc(&body, &key, None).await;
    assert_eq!(status, 201);
    assert_eq!(headers["idempotent-replayed"], "true");
    assert_eq!(first, second);
    assert_eq!(platform.coordinator.count("transactions").await, 1);
    assert_eq!(platform.payment.count("charges").await, 1);
}

#[actix_web::test]
async fn bad_2pc_checkouts_are_refused_and_write_nothing() {
    let platform = Platform::start().await;
    let request = platform
        .coordinator
        .client
        .post(platform.coordinator.url("/checkout"))
        .json(&checkout_body("SKU-001", 1, "tok_visa"));
    assert_eq!(problem(platform.coordinator.send(request).await).await.0, 400, "no key");
    for (body, expected) in [
        (checkout_body("SKU-999", 1, "tok_visa"), 422),
        (checkout_body("SKU-001", 0, "tok_visa"), 400),
    ] {
        let request = platform
            .coordinator
            .client
            .post(platform.coordinator.url("/checkout"))
            .json(&body)
            .header("Idempotency-Key", new_key());
        assert_eq!(
            problem(platform.coordinator.send(request).await).await.0,
            expected,
            "{body}"
        );
    }
    assert_eq!(
        problem(platform.coordinator.get("/transactions?state=maybe").await)
            .await
            .0,
        400
    );
    assert_eq!(
        problem(
            platform
                .coordinator
                .get(&format!("/transactions/{}", uuid::Uuid::new_v4()))
                .await
        )
        .await
        .0,
        404
    );
    assert_eq!(platform.coordinator.count("transactions").await, 0);
}

#[actix_web::test]
async fn a_prepare_that_finds_every_slot_held_votes_no_and_says_why() {
    use base::pgcluster::{ClusterOptions, PgCluster};
    use sqlx::{Connection, PgConnection};

    // A cluster of its own with 20 prepared-transaction slots (as many as
    // connections), every one held by a transaction awaiting its decision.
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("pg-slots-{}", new_key()));
    /// Stops and removes the cluster however the test ends.
    struct Throwaway(PgCluster);
    impl Drop for Throwaway {
        fn drop(&mut self) {
            let _ = self.0.stop();
            let _ = std::fs::remove_dir_all(self.0.dir());
        }
    }
    let cluster = PgCluster::new(&dir, txlab_tests::free_port()).unwrap();
    let _throwaway = Throwaway(cluster.clone());
    let options = ClusterOptions {
        max_connections: 20,
        fsync: false,
    };
    tokio::task::spawn_blocking({
        let cluster = cluster.clone();
        move || cluster.init(&options).and_then(|()| cluster.start())
    })
    .await
    .unwrap()
    .unwrap();
    let mut admin = PgConnection::connect(&cluster.url("postgres")).await.unwrap();
    sqlx::query("CREATE DATABASE payments")
        .execute(&mut admin)
        .await
        .unwrap();
    for i in 0..20 {
        sqlx::query("BEGIN").execute(&mut admin).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!("PREPARE TRANSACTION 'held_{i}'")))
            .execute(&mut admin)
            .await
            .unwrap();
    }
    let url = cluster.url("payments");
    let payment = testing::TestApp::spawn(
        base::config::Service::Payment,
        |s| {
            s.database_url = url;
            s.database_max_connections = 4;
        },
        |s| {
            payment_service::startup::build_with(
                s,
                payment_service::startup::PaymentSettings {
                    funds_limit_cents: 10_000,
                },
            )
        },
    )
    .await;

    let gid = format!("txlab_{}_payment", uuid::Uuid::new_v4().simple());
    let order_id = uuid::Uuid::new_v4();
    let body = charge_payload(order_id);
    let answer = payment.post(&format!("/tpc/{gid}/prepare"), &body, Some(&gid)).await;
    let retry_after = answer.headers().get("retry-after").cloned();
    let (status, problem) = problem(answer).await;
    assert_eq!(
        retry_after.as_ref().and_then(|v| v.to_str().ok()),
        Some("1"),
        "{problem}"
    );
    assert_eq!(status, 503, "{problem}");
    assert_eq!(problem["type"], "urn:txlab:problem:service-unavailable", "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("max_prepared_transactions"),
        "{problem}"
    );
    // Nothing of it stays: no charge, no prepared transaction of its own, and once a
    // slot is free the same prepare (same key) votes yes.
    assert_eq!(payment.count("charges").await, 0);
    sqlx::query("ROLLBACK PREPARED 'held_0'")
        .execute(&mut admin)
        .await
        .unwrap();
    let again = payment.post(&format!("/tpc/{gid}/prepare"), &body, Some(&gid)).await;
    assert_eq!(again.status(), 200);
    let vote: Value = again.json().await.unwrap();
    assert_eq!(vote["vote"], "yes", "{vote}");

    // The cluster goes (on drop), prepared transactions and all.
    drop(admin);
}

/// A transaction of its own holding the payment service's per-order lock, as a charge
/// for `order_id` takes it: a charge's work waits on it until this one ends.
async fn hold_charge_lock(payment: &testing::TestApp, order_id: uuid::Uuid) -> sqlx::PgConnection {
    // The lock key as the payment service computes it (from the uuid's text form).
    let sql = format!("SELECT pg_advisory_xact_lock(hashtextextended('{order_id}', 0))");
    hold_lock(&payment.db.url, &sql).await
}

/// The payment participant's prepare payload for a 42.00 charge.
fn charge_payload(order_id: uuid::Uuid) -> ChargeRequest {
    ChargeRequest {
        order_id,
        amount_cents: 4200,
        payment_token: "tok_visa".to_owned(),
    }
}

/// A prepare whose caller hung up goes on working; an abort that overtakes it must not
/// leave it prepared afterwards, holding locks for a transaction that is over.
#[actix_web::test]
async fn an_abort_that_overtakes_its_prepare_leaves_nothing_prepared() {
    // The in-doubt resolver would roll back a leftover after a second; here it waits
    // ten minutes, so a prepared transaction that outlived its abort would show.
    let platform = Platform::start_tuned(
        txlab_tests::saga_settings(),
        |service, s: &mut base::config::Settings| {
            if service == base::config::Service::Payment {
                s.tpc.in_doubt_after = Duration::from_secs(600);
            }
        },
    )
    .await;
    let payment = &platform.payment;
    let order_id = uuid::Uuid::new_v4();
    let gid = format!("txlab_{}_payment", uuid::Uuid::new_v4().simple());
    // Someone holds the lock the charge needs, so the prepare waits on it.
    let mut holder = hold_charge_lock(payment, order_id).await;
    // Its caller hangs up (sending no deadline, so the work goes on without one).
    let body = charge_payload(order_id);
    let gave_up = payment
        .client
        .post(payment.url(&format!("/tpc/{gid}/prepare")))
        .header("Idempotency-Key", &gid)
        .json(&body)
        .timeout(Duration::from_millis(300))
        .send()
        .await;
    assert!(gave_up.is_err_and(|e| e.is_timeout()), "the caller gave up waiting");

    // The abort arrives while the prepare waits: it waits for it in turn, and answers
    // 423 (try again) if the prepare is still under way, never "aborted" with a
    // prepare left to complete after it.
    let abort = || async {
        payment
            .send(
                payment
                    .client
                    .post(payment.url(&format!("/tpc/{gid}/abort")))
                    .header("Idempotency-Key", format!("{gid}:abort"))
                    .json(&serde_json::json!({})),
            )
            .await
            .status()
    };
    let first = abort().await;
    assert!(first == 200 || first == 423, "{first}");
    // The lock goes: the prepare, if it still waits, goes on and prepares.
    sqlx::query("COMMIT").execute(&mut holder).await.unwrap();
    let busy = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
             AND state <> 'idle' AND pid <> pg_backend_pid()",
        )
        .fetch_one(&payment.pool)
        .await
        .unwrap()
    };
    let settled = eventually(Duration::from_secs(10), || async { (busy().await == 0).then_some(()) }).await;
    assert!(settled.is_some(), "the prepare ends");
    // Told again until it says aborted, as the coordinator does.
    if first != 200 {
        let aborted = eventually(Duration::from_secs(10), || async {
            (abort().await == 200).then_some(())
        })
        .await;
        assert!(aborted.is_some(), "the abort goes through");
    }
    assert_eq!(testing::count_prepared(&payment.db.url).await.unwrap(), 0);
    assert_eq!(payment.count("charges").await, 0);
}

/// A prepare stops at its caller's deadline even though its work runs detached from
/// the request: released later, the lock it waited for finds nobody waiting.
#[actix_web::test]
async fn a_prepare_stops_at_its_callers_deadline() {
    let platform = Platform::start().await;
    let payment = &platform.payment;
    let order_id = uuid::Uuid::new_v4();
    let gid = format!("txlab_{}_payment", uuid::Uuid::new_v4().simple());
    let mut holder = hold_charge_lock(payment, order_id).await;
    let body = charge_payload(order_id);
    let answer = payment
        .send(
            payment
                .client
                .post(payment.url(&format!("/tpc/{gid}/prepare")))
                .header("Idempotency-Key", &gid)
                .header("Request-Timeout-Ms", "300")
                .json(&body),
        )
        .await;
    let (status, problem) = problem(answer).await;
    assert_eq!(status, 504, "{problem}");
    // Nobody waits for the lock any more (the prepare's own lock timeout is 2 s).
    let waiting = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
            .fetch_one(&payment.pool)
            .await
            .unwrap()
    };
    let stopped = eventually(Duration::from_millis(1500), || async {
        (waiting().await == 0).then_some(())
    })
    .await;
    assert!(stopped.is_some(), "the prepare still waits past its caller's deadline");
    sqlx::query("COMMIT").execute(&mut holder).await.unwrap();
    assert_eq!(testing::count_prepared(&payment.db.url).await.unwrap(), 0);
    assert_eq!(payment.count("charges").await, 0);
}

/// Phase two of one id, told many times at once (the coordinator's retry meeting the
/// participant's in-doubt resolver, say): PostgreSQL answers all but one "does not
/// exist" or "is busy"; each is an acknowledgement (or a 423 to try again), never a 500.
#[actix_web::test]
async fn concurrent_commits_and_aborts_of_one_transaction_all_acknowledge() {
    let platform = Platform::start().await;
    let payment = &platform.payment;
    // The race is in PostgreSQL's own timing: several rounds, many callers each.
    for verb in ["commit", "abort"].repeat(10) {
        let gid = format!("txlab_{}_payment", uuid::Uuid::new_v4().simple());
        let order_id = uuid::Uuid::new_v4();
        let prepared = payment
            .post(&format!("/tpc/{gid}/prepare"), &charge_payload(order_id), Some(&gid))
            .await;
        assert_eq!(prepared.status(), 200);
        let finishes = (0..32).map(|_| {
            let request = payment
                .client
                .post(payment.url(&format!("/tpc/{gid}/{verb}")))
                .header("Idempotency-Key", &gid)
                .json(&serde_json::json!({}));
            async move {
                let answer = request.send().await.unwrap();
                let status = answer.status().as_u16();
                (status, answer.json::<Value>().await.unwrap())
            }
        });
        let expected = if verb == "commit" { "committed" } else { "aborted" };
        for (status, body) in futures_util::future::join_all(finishes).await {
            match status {
                200 => assert_eq!(body["outcome"], expected, "{body}"),
                423 => assert_eq!(body["type"], "urn:txlab:problem:rows-locked", "{body}"),
                other => panic!("{verb}: {other} {body}"),
            }
        }
        assert_eq!(testing::count_prepared(&payment.db.url).await.unwrap(), 0);
        let charged: i64 = sqlx::query_scalar("SELECT count(*) FROM charges WHERE order_id = $1")
            .bind(order_id)
            .fetch_one(&payment.pool)
            .await
            .unwrap();
        assert_eq!(charged, if verb == "commit" { 1 } else { 0 }, "{verb}");
    }
}

async fn history(platform: &Platform, id: &str) -> TransactionHistory {
    let response = platform.coordinator.get(&format!("/transactions/{id}/history")).await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// A coordinator's epoch is its fencing token at the participant: prepare checks and
/// raises it with the work it prepares; a prepare, commit or abort with a lower epoch
/// than the highest seen for that transaction is refused (409), nothing done.
#[actix_web::test]
async fn a_participant_refuses_a_coordinator_call_with_a_stale_epoch() {
    let platform = Platform::start().await;
    let payment = &platform.payment;
    let call = |gid: &str, verb: &str, token: &str, body: Value| {
        payment
            .client
            .post(payment.url(&format!("/tpc/{gid}/{verb}")))
            .header("Idempotency-Key", gid)
            .header("Fencing-Token", token)
            .json(&body)
    };
    let tx = uuid::Uuid::new_v4();
    let gid = format!("txlab_{}_payment", tx.simple());
    let payload = serde_json::to_value(charge_payload(uuid::Uuid::new_v4())).unwrap();
    let prepared = payment.send(call(&gid, "prepare", &format!("{tx}:2"), payload)).await;
    assert_eq!(prepared.status(), 200);
    let committed = payment
        .send(call(&gid, "commit", &format!("{tx}:2"), serde_json::json!({})))
        .await;
    assert_eq!(committed.status(), 200);
    assert_eq!(payment.count("charges").await, 1);

    // The holder of epoch 1 — paused, and taken over — wakes up.
    let stale = payment
        .send(call(&gid, "abort", &format!("{tx}:1"), serde_json::json!({})))
        .await;
    assert_eq!(stale.status(), 409);
    let problem: Value = stale.json().await.unwrap();
    assert_eq!(problem["type"], "urn:txlab:problem:stale-fencing-token", "{problem}");
    let other = format!("txlab_{}_payment", uuid::Uuid::new_v4().simple());
    let payload = serde_json::to_value(charge_payload(uuid::Uuid::new_v4())).unwrap();
    let refused = payment.send(call(&other, "prepare", &format!("{tx}:1"), payload)).await;
    assert_eq!(refused.status(), 409, "{}", refused.text().await.unwrap());
    assert_eq!(testing::count_prepared(&payment.db.url).await.unwrap(), 0);
    assert_eq!(payment.count("charges").await, 1, "nothing done by the stale calls");
}
