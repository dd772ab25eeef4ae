//! `/scenarios`: every failure scenario of the README as a button, with two lines on
//! what it shows and why. Clicking fires the checkout (with its fault, answered as
//! soon as it is logged: `Prefer: respond-async`) and opens its X-ray, which fills in
//! live.

use std::fmt::Write as _;

use actix_web::{HttpRequest, HttpResponse, http::StatusCode, web};
use api::{
    ErrorCode,
    faults::{FaultRule, FaultRules, FaultsView},
    headers::{BAGGAGE, IDEMPOTENCY_KEY, PREFER},
};
use base::{Problem, config::Service};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use crate::{
    Console,
    html::{Nav, Page, esc},
    peers::Read,
};

/// Which checkout a scenario runs, and how its failure is brought about.
pub struct Scenario {
    pub name: &'static str,
    pub title: &'static str,
    /// What it shows, and the failure model it exercises.
    pub story: &'static str,
    /// `Service::Order` (the saga) or `Service::Coordinator` (2PC).
    pub via: Service,
    pub baggage: Option<&'static str>,
    /// A rule set on a service before the checkout (the outage a rule stands for).
    pub rule: Option<(Service, &'static str, &'static str)>,
    pub token: &'static str,
    pub sku: &'static str,
    pub quantity: u32,
}

const fn saga(name: &'static str, title: &'static str, story: &'static str) -> Scenario {
    Scenario {
        name,
        title,
        story,
        via: Service::Order,
        baggage: None,
        rule: None,
        token: "tok_visa",
        sku: "SKU-001",
        quantity: 1,
    }
}

const fn two_phase(name: &'static str, title: &'static str, story: &'static str, baggage: &'static str) -> Scenario {
    Scenario {
        via: Service::Coordinator,
        baggage: Some(baggage),
        ..saga(name, title, story)
    }
}

pub const SCENARIOS: [Scenario; 9] = [
    Scenario {
        baggage: Some("fault.payment.charge=lost_response"),
        ..saga(
            "lost-response",
            "Lost response",
            "The payment charges the card, then its answer is lost. The saga cannot know, so it retries with \
             the same idempotency key and the payment replays its stored answer: one charge, the replay on the \
             step's key.",
        )
    },
    Scenario {
        baggage: Some("fault.inventory.reserve=timeout"),
        ..saga(
            "slow-participant",
            "Slow participant",
            "The inventory answers after the step's timeout: the attempt's outcome is unknown, not failed. The \
             retry, same key, finds the reservation already made instead of making a second.",
        )
    },
    Scenario {
        token: "tok_chargeDeclined",
        ..saga(
            "decline",
            "Declined card",
            "The card is declined at the pivot. Everything done so far is undone by its compensation, newest \
             first: the reservation released, the order cancelled; nothing charged, no email.",
        )
    },
    Scenario {
        sku: "SKU-012",
        quantity: 6,
        ..saga(
            "out-of-stock",
            "Out of stock",
            "Six of a SKU with five on the shelf: the reservation is refused before any charge, so only the \
             order is compensated. A business refusal is final; it is not retried.",
        )
    },
    Scenario {
        rule: Some((Service::Email, "email.send", "error")),
        ..saga(
            "email-outage",
            "Email outage",
            "Every email call fails. Past the pivot a saga only goes forward: it retries, then parks, and never \
             refunds the customer. Remove the rule on the Faults page and the saga finishes.",
        )
    },
    Scenario {
        baggage: Some("fault.order.confirm=crash"),
        ..saga(
            "orchestrator-crash",
            "Orchestrator crash",
            "The order service, the saga's orchestrator, aborts in the middle of the saga. Started again, it \
             resumes from its log where it stopped, in the same trace, and finishes.",
        )
    },
    two_phase(
        "tpc-in-doubt",
        "2PC in doubt",
        "Every participant has prepared and voted yes; the decision is held back 8 s. Meanwhile the \
         transaction is in doubt and its rows stay locked: see them, then see them released.",
        "fault.coordinator.vote=delay_ms:8000",
    ),
    two_phase(
        "coordinator-crash",
        "Coordinator crash",
        "The coordinator dies after the votes and before deciding. The participants stay prepared, holding \
         their locks, blocked, until it is back and presumes abort: 2PC's blocking, made visible.",
        "fault.coordinator.vote=crash",
    ),
    two_phase(
        "payment-commit-crash",
        "Payment commit crash",
        "The payment service dies right after committing its part. Started again, it acknowledges the \
         coordinator's repeated commit: phase two is retried until everyone has heard the decision.",
        "fault.payment.commit=crash",
    ),
];

pub async fn scenarios(console: web::Data<Console>) -> HttpResponse {
    let mut main = String::with_capacity(8 * 1024);
    main.push_str(
        "<h1>Scenarios</h1><p>Each button runs one checkout with one failure, then opens its X-ray. \
         Crashes take a service down: under <code>docker compose</code> and <code>txlab up</code> it is \
         started again.</p><div class=\"scenarios\">",
    );
    for s in &SCENARIOS {
        let protocol = if s.via == Service::Order {
            "saga"
        } else {
            "two-phase commit"
        };
        let _ = write!(
            main,
            "<form class=\"scenario card\" method=\"post\" action=\"/scenarios/{}\">{}<h2>{} <small>{protocol}</small></h2>\
             <p>{}</p><button name=\"run\" value=\"{}\">Run</button></form>",
            s.name,
            console.guard.field(),
            esc(s.title),
            esc(s.story),
            s.name,
        );
    }
    main.push_str("</div>");
    Page {
        title: "Scenarios",
        nav: Nav::Scenarios,
        refresh: None,
        main,
    }
    .respond(StatusCode::OK)
}

#[derive(Debug, Deserialize)]
pub struct Run {
    form_token: String,
}

/// `POST /scenarios/{name}`: fires the scenario, then to its X-ray.
pub async fn run(
    console: web::Data<Console>,
    req: HttpRequest,
    name: web::Path<String>,
    form: web::Form<Run>,
) -> Result<HttpResponse, Problem> {
    console.guard.allow(&req, &form.form_token)?;
    let scenario = SCENARIOS
        .iter()
        .find(|s| s.name == name.as_str())
        .ok_or_else(|| Problem::not_found(format!("no scenario {:?}", name.as_str())))?;
    let peers = &console.peers;
    if let Some((service, operation, kind)) = scenario.rule {
        let mut rules = match peers.get::<FaultsView>(service, "/admin/faults").await {
            Read::Got(view) => view.rules,
            Read::Missing => Vec::new(),
            Read::Down(why) => return Err(Problem::new(ErrorCode::ServiceUnavailable, why)),
        };
        rules.push(FaultRule {
            operation: operation.to_owned(),
            kind: kind
                .parse()
                .map_err(|e: String| Problem::internal(anyhow::anyhow!(e)))?,
            probability: 1.0,
        });
        let body = serde_json::to_value(FaultRules { rules }).map_err(Problem::internal)?;
        let answer = peers
            .send(reqwest::Method::PUT, service, "/admin/faults", Some(&body), &[])
            .await
            .map_err(|why| Problem::new(ErrorCode::ServiceUnavailable, why))?;
        if !answer.status.is_success() {
            return Err(Problem::new(
                ErrorCode::ServiceUnavailable,
                format!("{service} refused the rule ({}): {}", answer.status, answer.detail()),
            ));
        }
    }
    let body = json!({
        "customer_email": "console@example.com",
        "items": [{ "sku": scenario.sku, "quantity": scenario.quantity }],
        "payment_token": scenario.token,
    });
    let mut headers = vec![
        (IDEMPOTENCY_KEY, format!("console-{}-{}", scenario.name, Uuid::new_v4())),
        (PREFER, "respond-async".to_owned()),
    ];
    if let Some(baggage) = scenario.baggage {
        headers.push((BAGGAGE, baggage.to_owned()));
    }
    let answer = peers
        .send(reqwest::Method::POST, scenario.via, "/checkout", Some(&body), &headers)
        .await
        .map_err(|why| Problem::new(ErrorCode::ServiceUnavailable, why))?;
    #[derive(Deserialize)]
    struct Started {
        order_id: Uuid,
    }
    match answer.json::<Started>() {
        Ok(started) if answer.status.is_success() => Ok(HttpResponse::SeeOther()
            .insert_header(("Location", format!("/checkouts/{}", started.order_id)))
            .finish()),
        _ => Err(Problem::new(
            ErrorCode::ServiceUnavailable,
            format!(
                "the {} checkout was not started ({}): {}",
                scenario.via,
                answer.status,
                answer.detail()
            ),
        )),
    }
}
