//! A run of both protocols under a mixed fault schedule, then the auditor: zero
//! violations. And the auditor does find one when there is one.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use loadgen::{
    audit::{AuditSettings, Endpoints, audit},
    load::{FaultMix, LoadSettings, Mode, Protocol, Skus, run},
};
use txlab_tests::Platform;

fn endpoints(platform: &Platform) -> Endpoints {
    Endpoints {
        order: platform.order.address.clone(),
        inventory: platform.inventory.address.clone(),
        payment: platform.payment.address.clone(),
        email: platform.email.address.clone(),
        coordinator: Some(platform.coordinator.address.clone()),
    }
}

fn faults() -> Vec<FaultMix> {
    [
        "inventory.reserve=error:0.1",
        "payment.charge=lost_response:0.1",
        "order.confirm=error:0.1",
        "email.send=error:0.1",
        "payment.prepare=error:0.05",
        "inventory.commit=error:0.1",
    ]
    .iter()
    .map(|f| f.parse().unwrap())
    .collect()
}

#[actix_web::test]
async fn a_mixed_run_of_both_protocols_leaves_no_violation() {
    let platform = Platform::start().await;
    let mut transactions_started = 0;
    for (protocol, url, mode) in [
        (
            Protocol::Saga,
            platform.order.address.clone(),
            Mode::Closed { clients: 6 },
        ),
        (
            Protocol::TwoPhase,
            platform.coordinator.address.clone(),
            Mode::Open { rate: 20.0 },
        ),
    ] {
        let report = run(&LoadSettings {
            urls: vec![url],
            protocol,
            mode,
            requests: 40,
            skus: Skus::Uniform { count: 4 },
            faults: faults(),
            timeout: Duration::from_secs(30),
            progress: false,
        })
        .await
        .unwrap();
        // A checkout refused with 503 `service-unavailable` (its pricing call to a
        // busy inventory timed out) did nothing and says so: a valid answer under
        // load, audited like the others. Any other failure is not.
        let refused = report
            .outcomes
            .failures
            .get("503 service-unavailable")
            .copied()
            .unwrap_or(0);
        assert_eq!(report.outcomes.failed, refused, "{}", report.table());
        assert!(report.outcomes.succeeded > 0, "{}", report.table());
        if protocol == Protocol::TwoPhase {
            transactions_started = 40 - refused;
        }
    }
    let report = audit(&AuditSettings {
        endpoints: endpoints(&platform),
        settle: Duration::from_secs(60),
    })
    .await
    .unwrap();
    let violations: Vec<String> = report.violations.iter().map(ToString::to_string).collect();
    assert!(violations.is_empty(), "{}\n{}", report.summary(), violations.join("\n"));
    assert!(report.orders >= 40, "{}", report.summary());
    assert_eq!(
        u64::try_from(report.transactions).unwrap(),
        transactions_started,
        "{}",
        report.summary()
    );
}

#[actix_web::test]
async fn the_auditor_reports_a_double_charge_with_its_order_and_trace() {
    let platform = Platform::start().await;
    let (_, _, order) = platform
        .checkout(
            &txlab_tests::checkout_body("SKU-001", 1, "tok_visa"),
            &txlab_tests::new_key(),
            None,
        )
        .await;
    let order_id: uuid::Uuid = order["order_id"].as_str().unwrap().parse().unwrap();
    // A second successful charge, behind the payment service's back (its unique index
    // would refuse it, so that goes first).
    sqlx::query("DROP INDEX charges_one_success_per_order")
        .execute(&platform.payment.pool)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO charges (id, order_id, amount_cents, token, state) VALUES (gen_random_uuid(), $1, 2100, 'tok_visa', 'succeeded')",
    )
    .bind(order_id)
    .execute(&platform.payment.pool)
    .await
    .unwrap();
    let report = audit(&AuditSettings {
        endpoints: endpoints(&platform),
        settle: Duration::from_secs(10),
    })
    .await
    .unwrap();
    let found = report
        .violations
        .iter()
        .find(|v| v.invariant == "charged-once")
        .expect("the double charge");
    assert_eq!(found.order_id.as_deref(), order["order_id"].as_str());
    assert_eq!(found.trace_id.as_deref(), order["trace_id"].as_str());
}
