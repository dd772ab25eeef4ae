//! The checkout saga end to end: every service up, real Postgres, real SMTP.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use api::{OrderView, SagaCounts, SagaHistory, SagaList, SagaStatus, StepStatus};
use serde_json::{Value, json};
use testing::{eventually, problem};
use txlab_tests::{Platform, checkout_body, new_key, step, view};

#[actix_web::test]
async fn a_checkout_confirms_decrements_stock_charges_once_and_emails_once() {
    let platform = Platform::start().await;
    let before = platform.stock("SKU-002").await.available;
    let (status, headers, order) = platform
        .checkout(&checkout_body("SKU-002", 2, "tok_visa"), &new_key(), None)
        .await;
    assert_eq!(status, 201, "{order}");
    assert!(headers.contains_key("traceresponse"));
    assert_eq!(order["status"], "confirmed");
    assert_eq!(order["reason"], Value::Null);
    assert_eq!(order["total_cents"], 2 * 4900);
    assert_eq!(order["trace_id"].as_str().unwrap().len(), 32);
    for name in ["reserve_inventory", "charge_payment", "confirm_order", "send_email"] {
        assert_eq!(step(&order, name).status, StepStatus::Succeeded, "{name}: {order}");
        assert_eq!(step(&order, name).attempts, 1, "{name}");
    }
    assert_eq!(platform.stock("SKU-002").await.available, before - 2);
    assert_eq!(platform.stock("SKU-002").await.sold, 2);
    platform.assert_consistent(&order).await;
    let shown = platform.order(order["order_id"].as_str().unwrap()).await;
    assert_eq!(shown["status"], "confirmed");
    assert_eq!(shown["trace_id"], order["trace_id"]);
}

#[actix_web::test]
async fn a_declined_card_cancels_restores_stock_and_sends_nothing() {
    let platform = Platform::start().await;
    let before = platform.stock("SKU-003").await;
    let (status, _, order) = platform
        .checkout(&checkout_body("SKU-003", 1, "tok_chargeDeclined"), &new_key(), None)
        .await;
    assert_eq!(status, 201, "{order}");
    assert_eq!(order["status"], "cancelled");
    assert!(
        order["reason"].as_str().unwrap().contains("payment-declined"),
        "{order}"
    );
    assert_eq!(step(&order, "reserve_inventory").status, StepStatus::Compensated);
    assert_eq!(step(&order, "charge_payment").status, StepStatus::Compensated);
    assert_eq!(step(&order, "send_email").status, StepStatus::Pending);
    assert_eq!(platform.stock("SKU-003").await.available, before.available);
    assert_eq!(platform.stock("SKU-003").await.reserved, 0);
    platform.assert_consistent(&order).await;
}

#[actix_web::test]
async fn out_of_stock_cancels_without_charging() {
    let platform = Platform::start().await;
    platform.set_stock("SKU-012", 1).await;
    let (status, _, order) = platform
        .checkout(&checkout_body("SKU-012", 3, "tok_visa"), &new_key(), None)
        .await;
    assert_eq!(status, 201, "{order}");
    assert_eq!(order["status"], "cancelled");
    assert!(
        order["reason"].as_str().unwrap().contains("insufficient-stock"),
        "{order}"
    );
    assert_eq!(step(&order, "charge_payment").attempts, 0);
    let payments = platform.payments(order["order_id"].as_str().unwrap()).await;
    assert_eq!(payments["charges"], json!([]));
    assert_eq!(platform.stock("SKU-012").await.available, 1);
    platform.assert_consistent(&order).await;
}

#[actix_web::test]
async fn insufficient_funds_above_the_limit_cancels() {
    let platform = Platform::start().await;
    let (_, _, order) = platform
        .checkout(&checkout_body("SKU-005", 2, "tok_insufficientFunds"), &new_key(), None)
        .await;
    assert_eq!(order["status"], "cancelled", "{order}");
    assert!(order["reason"].as_str().unwrap().contains("insufficient_funds"));
    platform.assert_consistent(&order).await;
}

#[actix_web::test]
async fn the_same_idempotency_key_makes_one_order_and_one_charge() {
    let platform = Platform::start().await;
    let key = new_key();
    let body = checkout_body("SKU-004", 1, "tok_visa");
    let (first_status, _, first) = platform.checkout(&body, &key, None).await;
    let (second_status, headers, second) = platform.checkout(&body, &key, None).await;
    assert_eq!(first_status, 201);
    assert_eq!(second_status, 201);
    assert_eq!(headers["idempotent-replayed"], "true");
    assert_eq!(first, second);
    let concurrent = futures_util::future::join_all((0..10).map(|_| platform.checkout(&body, &key, None))).await;
    assert!(
        concurrent
            .iter()
            .all(|(s, _, b)| *s == 201 && b["order_id"] == first["order_id"])
    );
    assert_eq!(platform.order.count("orders").await, 1);
    assert_eq!(platform.order.count("sagas").await, 1);
    assert_eq!(platform.payment.count("charges").await, 1);
    platform.assert_consistent(&first).await;
}

#[actix_web::test]
async fn concurrent_duplicate_checkouts_start_one_saga() {
    let platform = Platform::start().await;
    let key = new_key();
    let body = checkout_body("SKU-006", 1, "tok_visa");
    let answers = futures_util::future::join_all((0..20).map(|_| platform.checkout(&body, &key, None))).await;
    for (status, headers, answer) in &answers {
        assert!(
            *status == 201 || (*status == 409 && headers.contains_key("retry-after")),
            "{status} {answer}"
        );
    }
    assert_eq!(platform.order.count("sagas").await, 1);
    let (_, _, order) = platform.checkout(&body, &key, None).await;
    platform
        .assert_consistent(&platform.settled(order["order_id"].as_str().unwrap()).await)
        .await;
    assert_eq!(platform.payment.count("charges").await, 1);
}

#[actix_web::test]
async fn bad_checkouts_are_refused_and_write_nothing() {
    let platform = Platform::start().await;
    let post = |body: Value, key: Option<&str>| {
        let mut request = platform.order.client.post(platform.order.url("/checkout")).json(&body);
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        platform.order.send(request)
    };
    let (status, body) = problem(post(checkout_body("SKU-001", 1, "tok_visa"), None).await).await;
    assert_eq!(status, 400);
    assert_eq!(body["type"], "urn:txlab:problem:idempotency-key-missing");
    let cases = [
        (checkout_body("SKU-999", 1, "tok_visa"), 422),
        (checkout_body("SKU-001", 0, "tok_visa"), 400),
        (checkout_body("SKU-001", -1, "tok_visa"), 400),
        (checkout_body("SKU-001", 1_000_000_000, "tok_visa"), 400),
        (checkout_body("SKU-001", 1, "visa"), 400),
        (
            json!({ "customer_email": "ada", "items": [ { "sku": "SKU-001", "quantity": 1 } ], "payment_token": "tok_visa" }),
            400,
        ),
        (
            json!({ "customer_email": "ada@example.com", "items": [], "payment_token": "tok_visa" }),
            400,
        ),
    ];
    for (body, expected) in cases {
        let (status, problem_body) = problem(post(body.clone(), Some(&new_key())).await).await;
        assert_eq!(status, expected, "{body}: {problem_body}");
    }
    let not_json = platform
        .order
        .client
        .post(platform.order.url("/checkout"))
        .header("Idempotency-Key", new_key())
        .header("content-type", "application/json")
        .body("{");
    assert_eq!(problem(platform.order.send(not_json).await).await.0, 400);
    let huge = platform
        .order
        .client
        .post(platform.order.url("/checkout"))
        .header("Idempotency-Key", new_key())
        .header("content-type", "application/json")
        .body(format!("{{\"p\":\"{}\"}}", "x".repeat(100 * 1024)));
    assert_eq!(problem(platform.order.send(huge).await).await.0, 413);
    assert_eq!(platform.order.count("orders").await, 0);
    assert_eq!(platform.order.count("sagas").await, 0);
    assert_eq!(platform.inventory.count("reservations").await, 0);
    assert_eq!(platform.payment.count("charges").await, 0);
}

#[actix_web::test]
async fn a_slow_saga_answers_202_with_a_location_and_finishes_later() {
    let platform = Platform::start_with(order_service::startup::SagaSettings {
        checkout_deadline: Duration::from_millis(300),
        ..txlab_tests::saga_settings()
    })
    .await;
    let (status, headers, order) = platform
        .checkout(
            &checkout_body("SKU-007", 1, "tok_visa"),
            &new_key(),
            Some("fault.payment.charge=delay_ms:1500"),
        )
        .await;
    assert_eq!(status, 202, "{order}");
    assert_eq!(order["status"], "pending");
    let location = headers["location"].to_str().unwrap();
    assert_eq!(location, format!("/orders/{}", order["order_id"].as_str().unwrap()));
    let done = eventually(Duration::from_secs(20), || async {
        let shown: Value = platform.order.get(location).await.json().await.unwrap();
        (shown["status"] == "confirmed").then_some(shown)
    })
    .await
    .expect("confirmed later");
    platform.assert_consistent(&done).await;
}

/// `Prefer: respond-async`: 202 with `Location` once the checkout is logged, on both
/// protocols, whatever their deadline; the work goes on.
#[actix_web::test]
async fn a_checkout_that_prefers_to_respond_async_is_answered_once_logged() {
    let platform = Platform::start().await;
    for (app, baggage, done) in [
        (&platform.order, "fault.payment.charge=delay_ms:1500", "confirmed"),
        (
            &platform.coordinator,
            "fault.coordinator.vote=delay_ms:1500",
            "committed",
        ),
    ] {
        let response = app
            .send(
                app.client
                    .post(app.url("/checkout"))
                    .header("Idempotency-Key", new_key())
                    .header("Prefer", "wait=10, respond-async")
                    .header("baggage", baggage)
                    .json(&checkout_body("SKU-008", 1, "tok_visa")),
            )
            .await;
        assert_eq!(response.status(), 202);
        let location = response.headers()["location"].to_str().unwrap().to_owned();
        let answer: Value = response.json().await.unwrap();
        assert!(answer["order_id"].is_string(), "{answer}");
        assert_eq!(
            answer["status"], "pending",
            "answered before the work was done: {answer}"
        );
        let finished = eventually(Duration::from_secs(20), || async {
            let shown: Value = app.get(&location).await.json().await.unwrap();
            (shown["status"] == done).then_some(shown)
        })
        .await;
        assert!(finished.is_some(), "{location} ends {done}");
    }
}

/// `GET /sagas`: newest first, by state, a page at a time, and what it refuses.
#[actix_web::test]
async fn sagas_are_listed_newest_first_by_state_and_a_page_at_a_time() {
    let platform = Platform::start().await;
    let mut orders = Vec::new();
    for token in ["tok_visa", "tok_chargeDeclined", "tok_visa"] {
        let (status, _, order) = platform
            .checkout(&checkout_body("SKU-001", 1, token), &new_key(), None)
            .await;
        assert_eq!(status, 201, "{order}");
        orders.push(view::<OrderView>(&order));
    }
    let app = &platform.order;
    let list = |query: &'static str| async move {
        let response = app.get(&format!("/sagas{query}")).await;
        assert_eq!(response.status(), 200, "GET /sagas{query}");
        response.json::<SagaList>().await.unwrap()
    };

    let all = list("").await;
    let newest_first: Vec<_> = orders.iter().rev().map(|o| o.order_id).collect();
    assert_eq!(all.sagas.iter().map(|s| s.order_id).collect::<Vec<_>>(), newest_first);
    assert_eq!(all.next_cursor, None, "one page holds them all");
    let declined = &all.sagas[1];
    assert_eq!(declined.status, SagaStatus::Cancelled);
    assert!(
        declined
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("payment-declined")),
        "{declined:?}"
    );
    assert_eq!((declined.max_attempts, declined.retrying), (1, false), "{declined:?}");
    assert_eq!(declined.trace_id, orders[1].trace_id);

    let counts: SagaCounts = platform.order.get("/sagas/counts").await.json().await.unwrap();
    assert_eq!(
        counts,
        SagaCounts {
            confirmed: 2,
            cancelled: 1,
            ..SagaCounts::default()
        }
    );

    let cancelled = list("?state=cancelled").await;
    assert_eq!(cancelled.sagas.len(), 1);
    assert_eq!(cancelled.sagas[0].order_id, orders[1].order_id);
    assert_eq!(list("?state=confirmed&retrying=false").await.sagas.len(), 2);
    assert!(list("?retrying=true").await.sagas.is_empty(), "nothing retried");
    assert!(list("?older_than_secs=3600").await.sagas.is_empty(), "none an hour old");

    let first = list("?limit=2").await;
    assert_eq!(first.sagas.len(), 2);
    let cursor = first.next_cursor.expect("a full page says where the next begins");
    assert_eq!(cursor, first.sagas[1].saga_id);
    let response = platform.order.get(&format!("/sagas?limit=2&cursor={cursor}")).await;
    let rest: SagaList = response.json().await.unwrap();
    assert_eq!(
        rest.sagas.iter().map(|s| s.order_id).collect::<Vec<_>>(),
        [orders[0].order_id]
    );
    assert_eq!(rest.next_cursor, None);

    for bad in [
        "?state=stuck",
        "?limit=0",
        "?limit=501",
        "?older_than_secs=-1",
        "?retrying=maybe",
        "?cursor=nope",
        "?colour=red",
    ] {
        let (status, body) = problem(platform.order.get(&format!("/sagas{bad}")).await).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
}

/// `GET /sagas/{id}/history`: the saga log as events, oldest first, a page at a time.
#[actix_web::test]
async fn a_sagas_history_shows_each_attempt_its_compensations_and_why_it_changed() {
    let platform = Platform::start().await;
    let history = |saga_id: uuid::Uuid, query: &'static str| {
        let app = &platform.order;
        async move {
            let response = app.get(&format!("/sagas/{saga_id}/history{query}")).await;
            assert_eq!(response.status(), 200, "history{query}");
            response.json::<SagaHistory>().await.unwrap()
        }
    };
    let described = |h: &SagaHistory| -> Vec<String> {
        h.events
            .iter()
            .map(|e| {
                let mut line = e.kind.to_string();
                for part in [
                    e.step.clone(),
                    e.outcome.map(|o| o.to_string()),
                    e.status_code.map(|c| c.to_string()),
                    e.status.map(|s| s.to_string()),
                ]
                .into_iter()
                .flatten()
                {
                    line = format!("{line} {part}");
                }
                line
            })
            .collect()
    };

    let (_, _, confirmed) = platform
        .checkout(&checkout_body("SKU-004", 1, "tok_visa"), &new_key(), None)
        .await;
    let confirmed = view::<OrderView>(&confirmed);
    let saga_id = confirmed.saga.as_ref().unwrap().saga_id;
    let shown = history(saga_id, "").await;
    assert_eq!((shown.saga_id, shown.order_id), (saga_id, confirmed.order_id));
    let mut expected = vec!["saga_started".to_owned()];
    for (name, code) in [
        ("create_order", 201),
        ("reserve_inventory", 201),
        ("charge_payment", 201),
        ("commit_inventory", 200),
        ("confirm_order", 200),
        ("send_email", 201),
    ] {
        expected.push(format!("step_started {name}"));
        expected.push(format!("step_ended {name} succeeded {code}"));
    }
    expected.push("status_changed confirmed".to_owned());
    assert_eq!(described(&shown), expected);
    assert!(
        shown
            .events
            .windows(2)
            .all(|w| w[0].seq < w[1].seq && w[0].at <= w[1].at)
    );
    let ended = &shown.events[2];
    assert_eq!((ended.attempt, ended.detail.as_deref()), (Some(1), None), "{ended:?}");
    assert!(ended.duration_ms.is_some_and(|ms| ms > 0.0), "{ended:?}");
    assert_eq!(shown.next_cursor, None);

    // A page at a time.
    let first = history(saga_id, "?limit=5").await;
    assert_eq!(first.events, shown.events[..5]);
    let cursor = first.next_cursor.expect("a full page says where the next begins");
    let response = platform
        .order
        .get(&format!("/sagas/{saga_id}/history?cursor={cursor}"))
        .await;
    let rest: SagaHistory = response.json().await.unwrap();
    assert_eq!(rest.events, shown.events[5..]);

    // A declined card: the refusal, why the saga turned back, and the compensations
    // newest first.
    let (_, _, declined) = platform
        .checkout(&checkout_body("SKU-004", 1, "tok_chargeDeclined"), &new_key(), None)
        .await;
    let declined = view::<OrderView>(&declined);
    let shown = history(declined.saga.as_ref().unwrap().saga_id, "").await;
    assert_eq!(
        described(&shown)[5..],
        [
            "step_started charge_payment",
            "step_ended charge_payment refused 402",
            "status_changed compensating",
            "compensation_started charge_payment",
            "compensation_ended charge_payment succeeded 200",
            "compensation_started reserve_inventory",
            "compensation_ended reserve_inventory succeeded 200",
            "compensation_started create_order",
            "compensation_ended create_order succeeded 200",
            "status_changed cancelled",
        ]
    );
    let refused = &shown.events[6];
    assert!(
        refused
            .detail
            .as_deref()
            .is_some_and(|d| d.contains("payment-declined")),
        "{refused:?}"
    );
    let turned = &shown.events[7];
    assert!(
        turned.detail.as_deref().is_some_and(|d| d.contains("charge_payment")),
        "{turned:?}"
    );

    let (status, body) = problem(
        platform
            .order
            .get(&format!("/sagas/{}/history", uuid::Uuid::now_v7()))
            .await,
    )
    .await;
    assert_eq!(status, 404, "{body}");
    for bad in ["?limit=0", "?limit=1001", "?cursor=-1", "?cursor=x", "?colour=red"] {
        let (status, body) = problem(platform.order.get(&format!("/sagas/{saga_id}/history{bad}")).await).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
}

/// `GET /admin/idempotency-keys`: a service's keys with a prefix, a page at a time.
#[actix_web::test]
async fn each_participant_lists_a_sagas_keys_with_their_state() {
    use api::idempotency::{IdempotencyKeyList, KeyState};
    let platform = Platform::start().await;
    let (_, _, order) = platform
        .checkout(&checkout_body("SKU-005", 1, "tok_chargeDeclined"), &new_key(), None)
        .await;
    let saga_id = view::<OrderView>(&order).saga.unwrap().saga_id;
    let keys = |query: String| {
        let inventory = &platform.inventory;
        async move {
            let response = inventory.get(&format!("/admin/idempotency-keys{query}")).await;
            assert_eq!(response.status(), 200, "{query}");
            response.json::<IdempotencyKeyList>().await.unwrap()
        }
    };
    let listed = keys(format!("?prefix={saga_id}")).await;
    let names: Vec<_> = listed.keys.iter().map(|k| k.key.as_str()).collect();
    assert_eq!(
        names,
        [
            format!("{saga_id}:reserve_inventory"),
            format!("{saga_id}:reserve_inventory:compensation")
        ]
    );
    assert!(
        listed
            .keys
            .iter()
            .all(|k| k.state == KeyState::Completed && k.replays == 0 && k.response_status.is_some()),
        "{listed:?}"
    );
    assert_eq!(listed.next_cursor, None);

    // A page at a time, and nothing of another saga's.
    let first = keys(format!("?prefix={saga_id}&limit=1")).await;
    assert_eq!(first.keys, listed.keys[..1]);
    let cursor = first.next_cursor.expect("a full page says where the next begins");
    let rest = keys(format!("?prefix={saga_id}&limit=1&cursor={}", urlencoding(&cursor))).await;
    assert_eq!(rest.keys, listed.keys[1..]);
    assert!(keys(format!("?prefix={}", uuid::Uuid::now_v7())).await.keys.is_empty());

    for bad in [
        "?limit=0",
        "?limit=501",
        "?cursor=nospace",
        "?prefix=%C3%A9",
        "?colour=red",
    ] {
        let (status, body) = problem(platform.inventory.get(&format!("/admin/idempotency-keys{bad}")).await).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
}

fn urlencoding(raw: &str) -> String {
    raw.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
