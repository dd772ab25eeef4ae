//! Injected faults at every step end in the state the saga's semantics require.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use api::{
    AttemptOutcome, OrderStatus, OrderView, SagaEventKind, SagaHistory, SagaList, SagaStatus,
    idempotency::{IdempotencyKeyList, KeyState},
};
use testing::eventually;
use txlab_tests::{Platform, checkout_body, fault_rule, new_key, step, view};

/// A baggage fault fails a step's first attempt; the retry (same idempotency key)
/// finds the definite answer, so every case ends confirmed, charged once, emailed once.
async fn one_fault(operation: &str, kind: &str, step_name: &str) {
    let platform = Platform::start().await;
    let before = platform.stock("SKU-010").await.available;
    let baggage = format!("fault.{operation}={kind}");
    let (status, _, order) = platform
        .checkout(&checkout_body("SKU-010", 2, "tok_visa"), &new_key(), Some(&baggage))
        .await;
    assert!(status == 201 || status == 202, "{status} {order}");
    let order = platform.settled(&view::<OrderView>(&order).order_id.to_string()).await;
    assert_eq!(
        view::<OrderView>(&order).status,
        OrderStatus::Confirmed,
        "{baggage}: {order}"
    );
    assert!(step(&order, step_name).attempts >= 2, "{baggage}: retried: {order}");
    assert_eq!(platform.stock("SKU-010").await.available, before - 2);
    platform.assert_consistent(&order).await;
    if kind == "lost_response" {
        // The retry was answered from the stored response: the participant's key for
        // the step says so.
        let participant = match operation.split('.').next() {
            Some("inventory") => &platform.inventory,
            Some("payment") => &platform.payment,
            Some("email") => &platform.email,
            _ => &platform.order,
        };
        let saga_id = view::<OrderView>(&order).saga.unwrap().saga_id;
        let keys: IdempotencyKeyList = participant
            .get(&format!("/admin/idempotency-keys?prefix={saga_id}:{step_name}"))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(keys.keys.len(), 1, "{keys:?}");
        let key = &keys.keys[0];
        assert_eq!(key.key, format!("{saga_id}:{step_name}"));
        assert_eq!((key.state, key.replays), (KeyState::Completed, 1), "{key:?}");
        assert!(key.response_status.is_some_and(|s| (200..300).contains(&s)), "{key:?}");
    }
}

macro_rules! fault_cases {
    ($($name:ident: $operation:literal, $kind:literal, $step:literal;)*) => {$(
        #[actix_web::test]
        async fn $name() {
            one_fault($operation, $kind, $step).await;
        }
    )*};
}

fault_cases! {
    reserve_error_is_retried: "inventory.reserve", "error", "reserve_inventory";
    reserve_timeout_is_retried: "inventory.reserve", "timeout", "reserve_inventory";
    reserve_lost_response_is_replayed: "inventory.reserve", "lost_response", "reserve_inventory";
    charge_error_is_retried: "payment.charge", "error", "charge_payment";
    charge_timeout_is_retried: "payment.charge", "timeout", "charge_payment";
    charge_lost_response_is_replayed: "payment.charge", "lost_response", "charge_payment";
    confirm_error_is_retried: "order.confirm", "error", "confirm_order";
    confirm_timeout_is_retried: "order.confirm", "timeout", "confirm_order";
    confirm_lost_response_is_replayed: "order.confirm", "lost_response", "confirm_order";
    email_error_is_retried: "email.send", "error", "send_email";
    email_timeout_is_retried: "email.send", "timeout", "send_email";
    email_lost_response_is_replayed: "email.send", "lost_response", "send_email";
}

#[actix_web::test]
async fn a_declined_reservation_cancels_before_the_charge() {
    let platform = Platform::start().await;
    let (_, _, order) = platform
        .checkout(
            &checkout_body("SKU-001", 1, "tok_visa"),
            &new_key(),
            Some("fault.inventory.reserve=decline"),
        )
        .await;
    assert_eq!(order["status"], "cancelled", "{order}");
    assert_eq!(step(&order, "charge_payment").attempts, 0);
    platform.assert_consistent(&order).await;
}

#[actix_web::test]
async fn a_charge_that_always_fails_is_compensated_after_its_attempts() {
    let platform = Platform::start().await;
    fault_rule(&platform.payment, "payment.charge", "error").await;
    let before = platform.stock("SKU-008").await;
    let (_, _, order) = platform
        .checkout(&checkout_body("SKU-008", 1, "tok_visa"), &new_key(), None)
        .await;
    let order = platform.settled(order["order_id"].as_str().unwrap()).await;
    assert_eq!(order["status"], "cancelled", "{order}");
    assert_eq!(step(&order, "charge_payment").attempts, 4);
    assert!(
        order["reason"].as_str().unwrap().contains("no definite answer"),
        "{order}"
    );
    assert_eq!(platform.stock("SKU-008").await.available, before.available);
    platform.assert_consistent(&order).await;
}

#[actix_web::test]
async fn a_charge_whose_answers_are_always_lost_is_refunded() {
    let platform = Platform::start().await;
    fault_rule(&platform.payment, "payment.charge", "lost_response").await;
    let (_, _, order) = platform
        .checkout(&checkout_body("SKU-009", 1, "tok_visa"), &new_key(), None)
        .await;
    let order = platform.settled(order["order_id"].as_str().unwrap()).await;
    assert_eq!(order["status"], "cancelled", "{order}");
    let payments = platform.payments(order["order_id"].as_str().unwrap()).await;
    assert_eq!(
        payments["charged_cents"], order["total_cents"],
        "the charge happened: {payments}"
    );
    assert_eq!(payments["net_cents"], 0, "and was refunded: {payments}");
    platform.assert_consistent(&order).await;
}

#[actix_web::test]
async fn an_email_outage_never_refunds_and_the_email_goes_out_once_it_is_over() {
    let platform = Platform::start().await;
    fault_rule(&platform.email, "email.send", "error").await;
    let (status, _, order) = platform
        .checkout(&checkout_body("SKU-011", 1, "tok_visa"), &new_key(), None)
        .await;
    assert_eq!(status, 201, "the order is decided: {order}");
    assert_eq!(order["status"], "confirmed");
    let id = order["order_id"].as_str().unwrap().to_owned();
    let parked = platform.settled(&id).await;
    assert_eq!(parked["saga"]["status"], "parked", "{parked}");
    assert!(
        parked["saga"]["reason"].as_str().unwrap().contains("send_email"),
        "{parked}"
    );
    assert_eq!(parked["status"], "confirmed");
    // Parked past its first attempt: the listing says it is retrying, and on what.
    let retrying: SagaList = platform
        .order
        .get("/sagas?state=parked&retrying=true")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(retrying.sagas.len(), 1, "{retrying:?}");
    let saga = &retrying.sagas[0];
    assert_eq!(saga.order_id.to_string(), id);
    assert!(saga.retrying && saga.max_attempts > 1, "{saga:?}");
    assert!(
        saga.reason.as_deref().is_some_and(|r| r.contains("send_email")),
        "{saga:?}"
    );
    assert_eq!(
        platform.payments(&id).await["net_cents"],
        parked["total_cents"],
        "never refunded"
    );
    // Its history: the email's failed attempts, then the parking, why, and on whom.
    let history: SagaHistory = platform
        .order
        .get(&format!("/sagas/{}/history", saga.saga_id))
        .await
        .json()
        .await
        .unwrap();
    let failed = history
        .events
        .iter()
        .filter(|e| e.kind == SagaEventKind::StepEnded && e.step.as_deref() == Some("send_email"))
        .filter(|e| e.outcome == Some(AttemptOutcome::Unknown) && e.status_code == Some(500))
        .count();
    assert!(failed > 1, "{history:?}");
    let parking = history
        .events
        .iter()
        .find(|e| e.kind == SagaEventKind::StatusChanged && e.status == Some(SagaStatus::Parked))
        .expect("the parking is in the history");
    assert!(
        parking.detail.as_deref().is_some_and(|d| d.contains("send_email")),
        "{parking:?}"
    );
    assert_eq!(parking.participant, Some(api::Participant::Email), "{parking:?}");

    let cleared = platform.email.client.delete(platform.email.url("/admin/faults"));
    assert_eq!(platform.email.send(cleared).await.status(), 200);
    let done = eventually(Duration::from_secs(30), || async {
        let order = platform.order(&id).await;
        (order["saga"]["status"] == "confirmed").then_some(order)
    })
    .await
    .expect("the recovery actor finished the saga");
    platform.assert_consistent(&done).await;
}

#[actix_web::test]
async fn a_relay_refusing_mail_delays_delivery_but_not_the_order() {
    let platform = Platform::start().await;
    platform.smtp.refuse_next(3);
    let (status, _, order) = platform
        .checkout(&checkout_body("SKU-001", 1, "tok_visa"), &new_key(), None)
        .await;
    assert_eq!(status, 201);
    assert_eq!(order["status"], "confirmed");
    platform.assert_consistent(&order).await;
    let emails = platform.emails(order["order_id"].as_str().unwrap()).await;
    assert_eq!(emails[0].attempts, 4);
}

#[actix_web::test]
async fn a_saga_parked_while_compensating_keeps_the_reason_of_its_first_refusal() {
    let platform = Platform::start().await;
    // The refund (a null compensation of the declined charge) is refused: an
    // operator's case, parked while compensating.
    fault_rule(&platform.payment, "payment.refund", "decline").await;
    let (_, _, order) = platform
        .checkout(&checkout_body("SKU-007", 1, "tok_chargeDeclined"), &new_key(), None)
        .await;
    let id = order["order_id"].as_str().unwrap().to_owned();
    let parked = platform.settled(&id).await;
    assert_eq!(parked["saga"]["status"], "parked", "{parked}");
    assert!(
        parked["saga"]["reason"]
            .as_str()
            .unwrap()
            .contains("compensating charge_payment was refused"),
        "why it is parked: {parked}"
    );
    assert!(
        parked["saga"]["cancel_reason"]
            .as_str()
            .unwrap()
            .contains("payment-declined"),
        "why it compensates, also while parked: {parked}"
    );

    let cleared = platform.payment.client.delete(platform.payment.url("/admin/faults"));
    assert_eq!(platform.payment.send(cleared).await.status(), 200);
    let order = eventually(Duration::from_secs(30), || async {
        let order = platform.order(&id).await;
        (order["saga"]["status"] == "cancelled").then_some(order)
    })
    .await
    .expect("resumed, it finished compensating");
    assert_eq!(order["status"], "cancelled", "{order}");
    assert!(
        order["reason"]
            .as_str()
            .unwrap()
            .starts_with("charge_payment: 402 payment-declined"),
        "the first refusal survives the resumption: {order}"
    );
    assert_eq!(order["saga"]["reason"], order["reason"], "{order}");
    platform.assert_consistent(&order).await;
}
