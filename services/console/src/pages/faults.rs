//! `/faults`: every service's fault rules, editable (add one, remove one, clear them:
//! `PUT`/`DELETE /admin/faults` underneath), with the faults injected so far per
//! point; and each service's breakers, retry budgets, bulkheads and load shedding
//! (`GET /admin/resilience`).

use std::fmt::Write as _;

use actix_web::{HttpRequest, HttpResponse, http::StatusCode, web};
use api::{
    ErrorCode,
    faults::{FaultKind, FaultRule, FaultRules, FaultsView},
    resilience::ResilienceView,
};
use base::{Problem, config::Service};
use serde::Deserialize;

use crate::{
    Console,
    html::{Nav, Page, badge, down, esc},
    peers::Read,
};

/// The services with fault points, in the order the page shows them.
pub const SERVICES: [Service; 5] = [
    Service::Order,
    Service::Inventory,
    Service::Payment,
    Service::Email,
    Service::Coordinator,
];

/// The kinds of fault a rule may inject (`delay_ms` takes its milliseconds apart).
const KINDS: [&str; 6] = ["error", "decline", "timeout", "lost_response", "crash", "delay_ms"];

pub async fn faults(console: web::Data<Console>, req: HttpRequest) -> HttpResponse {
    let peers = &console.peers;
    let reads = futures_util::future::join_all(SERVICES.map(|s| async move {
        let (faults, resilience) = futures_util::join!(
            peers.get::<FaultsView>(s, "/admin/faults"),
            peers.get::<ResilienceView>(s, "/admin/resilience"),
        );
        (s, faults, resilience)
    }))
    .await;
    let mut main = String::with_capacity(24 * 1024);
    main.push_str("<h1>Faults and resilience</h1>");
    if console.guard.needs_sign_in() && !console.guard.signed_in(&req) {
        main.push_str("<p class=\"down\">Changing a rule needs the admin token: <a href=\"/signin\">sign in</a>.</p>");
    }
    for (service, faults, resilience) in reads {
        let _ = write!(main, "<section class=\"card\" id=\"{service}\"><h2>{service}</h2>");
        match faults {
            Read::Got(view) => fault_rules(&mut main, &console, service, &view),
            Read::Missing => main.push_str(&down(&format!("the {service} service's fault rules"), "404")),
            Read::Down(why) => main.push_str(&down(&format!("the {service} service"), &why)),
        }
        match resilience {
            Read::Got(view) => resilience_table(&mut main, &view),
            Read::Missing => {}
            Read::Down(why) => main.push_str(&down(&format!("the {service} service's resilience"), &why)),
        }
        main.push_str("</section>");
    }
    Page {
        title: "Faults",
        nav: Nav::Faults,
        refresh: None,
        main,
    }
    .respond(StatusCode::OK)
}

fn fault_rules(out: &mut String, console: &Console, service: Service, view: &FaultsView) {
    let switch = if view.enabled { badge("on") } else { badge("off") };
    let _ = write!(out, "<p>fault injection {switch}</p>");
    if view.rules.is_empty() {
        out.push_str("<p class=\"empty rules\">No rule.</p>");
    } else {
        out.push_str(
            "<table class=\"list rules\"><thead><tr><th>operation</th><th>kind</th><th>probability</th><th></th></tr></thead><tbody>",
        );
        for (i, rule) in view.rules.iter().enumerate() {
            let _ = write!(
                out,
                "<tr class=\"rule\"><td>{}</td><td>{}</td><td>{}</td><td><form method=\"post\" action=\"/faults/{service}/remove\">{}\
                 <input type=\"hidden\" name=\"index\" value=\"{i}\"><button>remove</button></form></td></tr>",
                esc(&rule.operation),
                esc(&rule.kind.to_string()),
                rule.probability,
                console.guard.field(),
            );
        }
        out.push_str("</tbody></table>");
    }
    let operations: Vec<&String> = view.injected.iter().flat_map(|m| m.keys()).collect();
    let _ = write!(
        out,
        "<form class=\"filters add-rule\" method=\"post\" action=\"/faults/{service}\">{}<label>operation <select name=\"operation\">",
        console.guard.field()
    );
    for op in &operations {
        let _ = write!(out, "<option>{}</option>", esc(op));
    }
    out.push_str("</select></label> <label>kind <select name=\"kind\">");
    for kind in KINDS {
        let _ = write!(out, "<option>{kind}</option>");
    }
    let _ = write!(
        out,
        "</select></label> <label>ms <input type=\"number\" name=\"delay_ms\" min=\"0\" max=\"600000\" size=\"6\"></label> \
         <label>probability <input type=\"number\" name=\"probability\" min=\"0\" max=\"1\" step=\"0.05\" value=\"1\"></label> \
         <button>add rule</button></form>\
         <form class=\"inline\" method=\"post\" action=\"/faults/{service}/clear\">{}<button>remove every rule</button></form>",
        console.guard.field()
    );
    if let Some(injected) = &view.injected {
        let fired: Vec<String> = injected
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(op, n)| format!("{} ×{n}", esc(op)))
            .collect();
        if !fired.is_empty() {
            let _ = write!(out, "<p class=\"injected\">injected so far: {}</p>", fired.join(", "));
        }
    }
}

fn resilience_table(out: &mut String, view: &ResilienceView) {
    if let Some(shedding) = &view.load_shedding {
        let _ = write!(
            out,
            "<p>load shedding {}: {} running</p>",
            badge(if shedding.enabled { "on" } else { "off" }),
            shedding.running
        );
    }
    if view.downstreams.is_empty() {
        return;
    }
    out.push_str(
        "<table class=\"list resilience\"><thead><tr><th>calls to</th><th>calls</th><th>breaker</th><th>opened</th>\
         <th>short-circuited</th><th>retry budget (window)</th><th>bulkhead</th></tr></thead><tbody>",
    );
    for d in &view.downstreams {
        let breaker = d.breaker.as_ref();
        let budget = d.retry_budget.as_ref().map_or("—".to_owned(), |b| {
            format!(
                "{} retries of {} allowed; {} denied",
                b.window_retries, b.window_allowed, b.denied
            )
        });
        let bulkhead = d.bulkhead.as_ref().map_or("—".to_owned(), |b| {
            format!(
                "{}/{} in flight; {} rejected",
                b.in_flight, b.max_concurrent, b.rejected
            )
        });
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{budget}</td><td>{bulkhead}</td></tr>",
            esc(&d.name),
            d.calls,
            breaker.map_or("—".to_owned(), |b| badge(&serde_plain(&b.state))),
            breaker.map_or(0, |b| b.opened),
            breaker.map_or(0, |b| b.short_circuited),
        );
    }
    out.push_str("</tbody></table>");
}

/// A unit enum's API name.
fn serde_plain<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// The service a path names.
fn service_named(name: &str) -> Result<Service, Problem> {
    SERVICES
        .into_iter()
        .find(|s| s.name() == name)
        .ok_or_else(|| Problem::not_found(format!("no service {name:?} has fault rules")))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddRule {
    form_token: String,
    operation: String,
    kind: String,
    delay_ms: Option<String>,
    probability: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoveRule {
    form_token: String,
    index: usize,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Clear {
    form_token: String,
}

/// `POST /faults/{service}`: adds a rule to the service's rules.
pub async fn add(
    console: web::Data<Console>,
    req: HttpRequest,
    service: web::Path<String>,
    form: web::Form<AddRule>,
) -> Result<HttpResponse, Problem> {
    console.guard.allow(&req, &form.form_token)?;
    let service = service_named(&service)?;
    let kind = match form.kind.as_str() {
        "delay_ms" => {
            let ms = form.delay_ms.as_deref().unwrap_or("").trim();
            format!("delay_ms:{ms}")
        }
        other => other.to_owned(),
    };
    let kind: FaultKind = kind.parse().map_err(Problem::invalid)?;
    let probability = match form.probability.as_deref().map(str::trim).filter(|p| !p.is_empty()) {
        None => 1.0,
        Some(raw) => raw
            .parse::<f64>()
            .ok()
            .filter(|p| (0.0..=1.0).contains(p))
            .ok_or_else(|| Problem::invalid(format!("probability must be between 0 and 1, got {raw:?}")))?,
    };
    let mut rules = current_rules(&console, service).await?;
    rules.push(FaultRule {
        operation: form.operation.trim().to_owned(),
        kind,
        probability,
    });
    put_rules(&console, service, rules).await
}

/// `POST /faults/{service}/remove`: removes the rule at `index`.
pub async fn remove(
    console: web::Data<Console>,
    req: HttpRequest,
    service: web::Path<String>,
    form: web::Form<RemoveRule>,
) -> Result<HttpResponse, Problem> {
    console.guard.allow(&req, &form.form_token)?;
    let service = service_named(&service)?;
    let mut rules = current_rules(&console, service).await?;
    if form.index >= rules.len() {
        return Err(Problem::new(
            ErrorCode::Conflict,
            format!("{service} has no rule {} any more: reload the page", form.index),
        ));
    }
    rules.remove(form.index);
    put_rules(&console, service, rules).await
}

/// `POST /faults/{service}/clear`: removes every rule of the service.
pub async fn clear(
    console: web::Data<Console>,
    req: HttpRequest,
    service: web::Path<String>,
    form: web::Form<Clear>,
) -> Result<HttpResponse, Problem> {
    console.guard.allow(&req, &form.form_token)?;
    let service = service_named(&service)?;
    put_rules(&console, service, Vec::new()).await
}

async fn current_rules(console: &Console, service: Service) -> Result<Vec<FaultRule>, Problem> {
    match console.peers.get::<FaultsView>(service, "/admin/faults").await {
        Read::Got(view) => Ok(view.rules),
        Read::Missing => Err(Problem::not_found(format!("{service} has no /admin/faults"))),
        Read::Down(why) => Err(Problem::new(ErrorCode::ServiceUnavailable, why)),
    }
}

/// Replaces the service's rules, then back to the page.
async fn put_rules(console: &Console, service: Service, rules: Vec<FaultRule>) -> Result<HttpResponse, Problem> {
    let body = serde_json::to_value(FaultRules { rules }).map_err(Problem::internal)?;
    let answer = console
        .peers
        .send(reqwest::Method::PUT, service, "/admin/faults", Some(&body), &[])
        .await
        .map_err(|why| Problem::new(ErrorCode::ServiceUnavailable, why))?;
    if answer.status.is_success() {
        return Ok(HttpResponse::SeeOther()
            .insert_header(("Location", format!("/faults#{service}")))
            .finish());
    }
    let code = if answer.status.is_client_error() {
        ErrorCode::InvalidRequest
    } else {
        ErrorCode::ServiceUnavailable
    };
    Err(Problem::new(
        code,
        format!("{service} refused the rules ({}): {}", answer.status, answer.detail()),
    ))
}
