//! `/checkouts/{order_id}`: one checkout of either protocol, X-rayed. A saga's steps
//! as a timeline (each attempt a bar with its outcome; the pivot marked;
//! compensations newest first), its history, and each step's idempotency key with its
//! replays. A 2PC transaction's votes, its logged decision as the commit point, each
//! participant's outcome, and while in doubt the locks its participants hold. The
//! trace id links to Jaeger. The page updates itself until the checkout is final.

use std::{collections::BTreeMap, fmt::Write as _};

use actix_web::{HttpResponse, http::StatusCode, web};
use api::{
    EmailState, Emails, OrderStatus, OrderView, Payments, PreparedList, Reservation, SagaEvent, SagaEventKind,
    SagaHistory, TransactionEvent, TransactionEventKind, TransactionHistory, TransactionList, TransactionView,
    idempotency::{IdempotencyKeyList, IdempotencyKeyView},
    invariants::{CheckoutFacts, check_checkout},
};
use base::config::Service;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::{
    Console,
    html::{Nav, Page, badge, down, esc, millis, url_component},
    peers::{Peers, Read},
    timeline::{Bar, Marker, Timeline},
};

/// The services whose keys and prepared transactions a checkout may have.
pub const PARTICIPANTS: [Service; 4] = [Service::Order, Service::Inventory, Service::Payment, Service::Email];

pub async fn xray(console: web::Data<Console>, order_id: web::Path<Uuid>) -> HttpResponse {
    let order_id = *order_id;
    let peers = &console.peers;
    let order = peers
        .get::<OrderView>(Service::Order, &format!("/orders/{order_id}"))
        .await;
    if let Read::Got(order) = &order
        && let Some(saga) = &order.saga
    {
        let saga_id = saga.saga_id;
        return saga_xray(&console, order, saga_id).await;
    }
    let transactions = peers
        .get::<TransactionList>(Service::Coordinator, &format!("/transactions?order_id={order_id}"))
        .await;
    if let Read::Got(list) = &transactions
        && let Some(tx) = list.transactions.first()
    {
        return tpc_xray(&console, tx).await;
    }
    let mut main = format!("<h1>Checkout {}</h1>", esc(&order_id.to_string()));
    let mut unsure = false;
    for (what, read) in [
        ("the order service", order.map_unit()),
        ("the coordinator", transactions.map_unit()),
    ] {
        if let Read::Down(why) = read {
            main.push_str(&down(what, &why));
            unsure = true;
        }
    }
    if unsure {
        main.push_str("<p>This page tries again by itself.</p>");
        return Page {
            title: "Checkout",
            nav: Nav::Checkout,
            refresh: Some(console.settings.refresh),
            main,
        }
        .respond(StatusCode::OK);
    }
    main.push_str(
        "<p class=\"empty\">Neither the order service nor the coordinator knows a checkout with this order id.</p>",
    );
    Page {
        title: "No such checkout",
        nav: Nav::Checkout,
        refresh: None,
        main,
    }
    .respond(StatusCode::NOT_FOUND)
}

trait MapUnit {
    fn map_unit(&self) -> Read<()>;
}

impl<T> MapUnit for Read<T> {
    fn map_unit(&self) -> Read<()> {
        match self {
            Read::Got(_) => Read::Got(()),
            Read::Missing => Read::Missing,
            Read::Down(why) => Read::Down(why.clone()),
        }
    }
}

/// Every page of a history, up to a bound (a saga parked for days has many events).
async fn saga_history(peers: &Peers, saga_id: Uuid) -> Read<Vec<SagaEvent>> {
    let mut events = Vec::new();
    let mut cursor: Option<i64> = None;
    for _ in 0..10 {
        let path = match cursor {
            Some(c) => format!("/sagas/{saga_id}/history?limit=1000&cursor={c}"),
            None => format!("/sagas/{saga_id}/history?limit=1000"),
        };
        match peers.get::<SagaHistory>(Service::Order, &path).await {
            Read::Got(page) => {
                events.extend(page.events);
                match page.next_cursor {
                    Some(next) => cursor = Some(next),
                    None => break,
                }
            }
            Read::Missing => return Read::Missing,
            Read::Down(why) => return Read::Down(why),
        }
    }
    Read::Got(events)
}

/// The keys that start with `prefix` at every participant, with where each was found.
async fn keys(peers: &Peers, prefix: &str) -> Vec<(Service, Read<IdempotencyKeyList>)> {
    let path = format!("/admin/idempotency-keys?limit=100&prefix={}", url_component(prefix));
    let reads = futures_util::future::join_all(PARTICIPANTS.map(|s| peers.get::<IdempotencyKeyList>(s, &path))).await;
    PARTICIPANTS.into_iter().zip(reads).collect()
}

fn key_cell(found: &BTreeMap<String, (Service, IdempotencyKeyView)>, key: &str) -> String {
    match found.get(key) {
        Some((service, k)) => {
            let replays = match k.replays {
                0 => String::new(),
                1 => " · <b class=\"replayed\">1 replay</b>".to_owned(),
                n => format!(" · <b class=\"replayed\">{n} replays</b>"),
            };
            let status = k.response_status.map(|s| format!(" {s}")).unwrap_or_default();
            format!(
                "<span class=\"key\" title=\"{}\">{service}: {}{status}{replays}</span>",
                esc(&k.key),
                esc(k.state.name())
            )
        }
        None => String::new(),
    }
}

/// The keys read, by key, and a note for each service that could not be read.
fn found_keys(
    reads: Vec<(Service, Read<IdempotencyKeyList>)>,
) -> (BTreeMap<String, (Service, IdempotencyKeyView)>, String) {
    let mut found = BTreeMap::new();
    let mut notes = String::new();
    for (service, read) in reads {
        match read {
            Read::Got(list) => {
                for key in list.keys {
                    found.insert(key.key.clone(), (service, key));
                }
            }
            Read::Missing => {}
            Read::Down(why) => notes.push_str(&down(&format!("the {service} service's keys"), &why)),
        }
    }
    (found, notes)
}

fn trace_link(console: &Console, trace_id: Option<&str>) -> String {
    match trace_id {
        Some(id) => format!(
            "<a class=\"trace\" href=\"{}/trace/{}\" rel=\"noreferrer\">{}</a>",
            esc(&console.settings.jaeger_ui_url),
            url_component(id),
            esc(id)
        ),
        None => "—".to_owned(),
    }
}

/// One attempt of a step or compensation, from its started and ended events.
struct Attempt<'a> {
    step: &'a str,
    compensation: bool,
    number: u32,
    start: DateTime<Utc>,
    end: Option<&'a SagaEvent>,
}

fn attempts(events: &[SagaEvent]) -> Vec<Attempt<'_>> {
    let mut attempts: Vec<Attempt<'_>> = Vec::new();
    for event in events {
        let compensation = matches!(
            event.kind,
            SagaEventKind::CompensationStarted | SagaEventKind::CompensationEnded
        );
        let (Some(step), Some(number)) = (event.step.as_deref(), event.attempt) else {
            continue;
        };
        match event.kind {
            SagaEventKind::StepStarted | SagaEventKind::CompensationStarted => attempts.push(Attempt {
                step,
                compensation,
                number,
                start: event.at,
                end: None,
            }),
            SagaEventKind::StepEnded | SagaEventKind::CompensationEnded => {
                if let Some(open) = attempts
                    .iter_mut()
                    .rev()
                    .find(|a| a.step == step && a.compensation == compensation && a.number == number && a.end.is_none())
                {
                    open.end = Some(event);
                }
            }
            _ => {}
        }
    }
    attempts
}

async fn saga_xray(console: &Console, order: &OrderView, saga_id: Uuid) -> HttpResponse {
    let peers = &console.peers;
    let prefix = saga_id.to_string();
    let (history, key_reads) = futures_util::join!(saga_history(peers, saga_id), keys(peers, &prefix));
    let (found, key_notes) = found_keys(key_reads);
    let saga = order.saga.as_ref();
    let final_ = saga.is_some_and(|s| s.status.is_final());
    let now = Utc::now();

    let mut main = String::with_capacity(32 * 1024);
    let _ = write!(
        main,
        "<h1>Checkout <code>{}</code> <small>saga</small></h1>\
         <dl class=\"facts\"><dt>order</dt><dd>{}</dd><dt>saga</dt><dd>{} <code>{}</code></dd>\
         <dt>why</dt><dd class=\"why\">{}</dd><dt>total</dt><dd>{}</dd><dt>customer</dt><dd>{}</dd>\
         <dt>idempotency key</dt><dd class=\"checkout-key\">{}</dd><dt>trace</dt><dd>{}</dd></dl>",
        esc(&order.order_id.to_string()),
        badge(order.status.name()),
        saga.map(|s| badge(s.status.name())).unwrap_or_default(),
        esc(&saga_id.to_string()),
        esc(order
            .reason
            .as_deref()
            .or(saga.and_then(|s| s.reason.as_deref()))
            .unwrap_or("—")),
        cents(order.total_cents),
        esc(&order.customer_email),
        esc(saga.and_then(|s| s.checkout_key.as_deref()).unwrap_or("—")),
        trace_link(console, order.trace_id.as_deref()),
    );

    match &history {
        Read::Got(events) if !events.is_empty() => {
            let attempts = attempts(events);
            let start = events[0].at;
            let end = if final_ {
                events[events.len() - 1].at
            } else {
                now.max(events[events.len() - 1].at)
            };
            let mut timeline = Timeline::new(start, end);
            for step in &order.steps {
                let label = if step.pivot {
                    format!("◆ {}", step.name)
                } else {
                    step.name.clone()
                };
                let mut bars = Vec::new();
                for a in attempts.iter().filter(|a| a.step == step.name) {
                    let outcome = a.end.and_then(|e| e.outcome).map_or("running", |o| o.name());
                    let mut title = format!(
                        "{} {} attempt {}: {outcome}",
                        step.name,
                        if a.compensation { "compensation" } else { "action" },
                        a.number
                    );
                    if let Some(end) = a.end {
                        if let Some(code) = end.status_code {
                            let _ = write!(title, " ({code})");
                        }
                        if let Some(ms) = end.duration_ms {
                            let _ = write!(title, " in {}", millis(ms));
                        }
                        if let Some(detail) = &end.detail {
                            let _ = write!(title, " — {detail}");
                        }
                    }
                    bars.push(Bar {
                        start: a.start,
                        end: a.end.map_or(end, |e| e.at),
                        class: format!("o-{outcome}{}", if a.compensation { " comp" } else { "" }),
                        title,
                        lower: a.compensation,
                    });
                }
                timeline.row(label, step.pivot, bars);
            }
            for event in events.iter().filter(|e| e.kind == SagaEventKind::StatusChanged) {
                if let Some(status) = event.status {
                    timeline.marker(Marker {
                        at: event.at,
                        label: status.name().to_owned(),
                        class: format!("s-{status}"),
                    });
                }
            }
            main.push_str("<h2>Steps</h2>");
            main.push_str(&timeline.render());
        }
        Read::Got(_) => main.push_str("<p class=\"empty\">The saga has no history yet.</p>"),
        Read::Missing => main.push_str("<p class=\"empty\">The order service has no history for this saga.</p>"),
        Read::Down(why) => main.push_str(&down("the order service's saga history", why)),
    }

    main.push_str(
        "<table class=\"list steps\"><thead><tr><th>step</th><th>status</th><th>attempts</th>\
         <th>compensations</th><th>last error</th><th>idempotency key</th></tr></thead><tbody>",
    );
    for step in &order.steps {
        let pivot = if step.pivot {
            " <span class=\"pivot\" title=\"the pivot: a failure up to here compensates; after it the saga only goes forward\">◆ pivot</span>"
        } else {
            ""
        };
        let action_key = format!("{saga_id}:{}", step.name);
        let compensation_key = format!("{action_key}:compensation");
        let _ = write!(
            main,
            "<tr class=\"step\" data-step=\"{}\"><td>{}{pivot}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"why\">{}</td><td>{}{}</td></tr>",
            esc(&step.name),
            esc(&step.name),
            badge(step.status.name()),
            step.attempts,
            step.compensation_attempts,
            esc(step.last_error.as_deref().unwrap_or("")),
            key_cell(&found, &action_key),
            key_cell(&found, &compensation_key),
        );
    }
    main.push_str("</tbody></table>");
    main.push_str(&key_notes);
    main.push_str(
        &verdict(
            peers,
            order,
            !final_ && !order.saga.as_ref().is_some_and(|s| s.status == api::SagaStatus::Parked),
        )
        .await,
    );

    if let Read::Got(events) = &history {
        let compensations: Vec<&SagaEvent> = events
            .iter()
            .filter(|e| e.kind == SagaEventKind::CompensationEnded)
            .collect();
        if !compensations.is_empty() {
            main.push_str("<h2>Compensations <small>newest step first</small></h2><ol class=\"compensations\">");
            for e in compensations {
                let _ = write!(
                    main,
                    "<li data-step=\"{}\">{} <span>attempt {}</span> {}</li>",
                    esc(e.step.as_deref().unwrap_or("")),
                    esc(e.step.as_deref().unwrap_or("")),
                    e.attempt.unwrap_or(0),
                    badge(e.outcome.map_or("unknown", |o| o.name())),
                );
            }
            main.push_str("</ol>");
        }
        main.push_str(&trace_section(console, order.trace_id.as_deref()));
        main.push_str("<h2>History</h2>");
        saga_history_table(&mut main, events);
    }

    Page {
        title: "Checkout",
        nav: Nav::Checkout,
        refresh: (!final_).then_some(console.settings.refresh),
        main,
    }
    .respond(StatusCode::OK)
}

fn saga_history_table(out: &mut String, events: &[SagaEvent]) {
    let Some(first) = events.first() else { return };
    out.push_str(
        "<table class=\"list history\"><thead><tr><th>+ms</th><th>event</th><th>step</th><th>attempt</th>\
         <th>outcome</th><th>took</th><th>detail</th></tr></thead><tbody>",
    );
    for e in events {
        let outcome = match (e.outcome, e.status_code, e.status) {
            (Some(o), Some(code), _) => format!("{} {code}", badge(o.name())),
            (Some(o), None, _) => badge(o.name()),
            (None, _, Some(status)) => badge(status.name()),
            _ => String::new(),
        };
        let mut detail = esc(e.detail.as_deref().unwrap_or(""));
        if let Some(p) = e.participant {
            let _ = write!(detail, " <span class=\"waits\">waits for {p}</span>");
        }
        let _ = write!(
            out,
            "<tr class=\"k-{}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{outcome}</td><td>{}</td><td class=\"why\">{detail}</td></tr>",
            e.kind,
            (e.at - first.at).num_milliseconds(),
            e.kind,
            esc(e.step.as_deref().unwrap_or("")),
            e.attempt.map(|a| a.to_string()).unwrap_or_default(),
            e.duration_ms.map(millis).unwrap_or_default(),
        );
    }
    out.push_str("</tbody></table>");
}

fn cents(total: i64) -> String {
    format!("{}.{:02}", total / 100, (total % 100).abs())
}

async fn tpc_xray(console: &Console, tx: &TransactionView) -> HttpResponse {
    let peers = &console.peers;
    let id = tx.transaction_id;
    let prefix = format!("txlab_{}_", id.simple());
    let history_path = format!("/transactions/{id}/history?limit=1000");
    let (history, prepared) = futures_util::join!(
        peers.get::<TransactionHistory>(Service::Coordinator, &history_path),
        futures_util::future::join_all(PARTICIPANTS.map(|s| peers.get::<PreparedList>(s, "/tpc/prepared"))),
    );
    let final_ = tx.state.is_final();
    let now = Utc::now();

    let mut main = String::with_capacity(32 * 1024);
    let decision = tx.decision.map_or("not yet".to_owned(), |d| d.name().to_owned());
    let _ = write!(
        main,
        "<h1>Checkout <code>{}</code> <small>two-phase commit</small></h1>\
         <dl class=\"facts\"><dt>transaction</dt><dd>{} <code>{}</code></dd><dt>decision</dt><dd>{}</dd>\
         <dt>why</dt><dd class=\"why\">{}</dd><dt>total</dt><dd>{}</dd><dt>customer</dt><dd>{}</dd>\
         <dt>idempotency key</dt><dd class=\"checkout-key\">{}</dd><dt>trace</dt><dd>{}</dd></dl>",
        esc(&tx.order_id.to_string()),
        badge(tx.state.name()),
        esc(&id.to_string()),
        badge(&decision),
        esc(tx.reason.as_deref().unwrap_or("—")),
        cents(tx.total_cents),
        esc(&tx.customer_email),
        esc(tx.checkout_key.as_deref().unwrap_or("—")),
        trace_link(console, tx.trace_id.as_deref()),
    );

    let events: &[TransactionEvent] = match &history {
        Read::Got(h) => &h.events,
        _ => &[],
    };
    if let Some(first) = events.first() {
        let last = events[events.len() - 1].at;
        let end = if final_ { last } else { now.max(last) };
        let mut timeline = Timeline::new(first.at, end);
        for p in &tx.participants {
            let mut bars = Vec::new();
            for e in events.iter().filter(|e| e.participant == Some(p.name)) {
                let took = e.duration_ms.unwrap_or(0.0);
                let start = e.at - chrono::Duration::microseconds((took * 1000.0) as i64);
                let (class, title, lower) = match e.kind {
                    TransactionEventKind::Vote => {
                        let vote = e.vote.map_or("pending", |v| v.name());
                        (
                            format!("v-{vote}"),
                            format!("{}: prepare, voted {vote} in {}", p.name, millis(took)),
                            false,
                        )
                    }
                    _ => {
                        let ok = e.acknowledged == Some(true);
                        (
                            if ok {
                                "o-succeeded comp".to_owned()
                            } else {
                                "o-unknown comp".to_owned()
                            },
                            format!(
                                "{}: told the decision, attempt {}: {}{}",
                                p.name,
                                e.attempt.unwrap_or(0),
                                if ok { "acknowledged" } else { "not acknowledged" },
                                e.detail.as_deref().map(|d| format!(" — {d}")).unwrap_or_default()
                            ),
                            true,
                        )
                    }
                };
                bars.push(Bar {
                    start,
                    end: e.at,
                    class,
                    title,
                    lower,
                });
            }
            timeline.row(p.name.to_string(), false, bars);
        }
        if tx.decision.is_none() {
            timeline.marker(Marker {
                at: end,
                label: "now: no decision yet".to_owned(),
                class: "s-in_doubt".to_owned(),
            });
        }
        for e in events {
            match e.kind {
                TransactionEventKind::DecisionLogged => timeline.marker(Marker {
                    at: e.at,
                    label: format!("decision: {} (commit point)", e.decision.map_or("?", |d| d.name())),
                    class: "commit-point".to_owned(),
                }),
                TransactionEventKind::Finished => timeline.marker(Marker {
                    at: e.at,
                    label: e.state.map_or("finished", |s| s.name()).to_owned(),
                    class: format!("s-{}", e.state.map_or("finished", |s| s.name())),
                }),
                _ => {}
            }
        }
        main.push_str("<h2>Votes and the decision</h2>");
        main.push_str(&timeline.render());
    }
    if let Read::Down(why) = &history {
        main.push_str(&down("the coordinator's history", why));
    }

    main.push_str(
        "<table class=\"list participants\"><thead><tr><th>participant</th><th>vote</th><th>outcome</th>\
         <th>detail</th><th>global transaction id</th></tr></thead><tbody>",
    );
    for p in &tx.participants {
        let _ = write!(
            main,
            "<tr class=\"participant\" data-participant=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td class=\"why\">{}</td><td><code>{prefix}{}</code></td></tr>",
            p.name,
            p.name,
            badge(p.vote.name()),
            badge(p.outcome.name()),
            esc(p.detail.as_deref().unwrap_or("")),
            p.name,
        );
    }
    main.push_str("</tbody></table>");

    // What its participants hold while it is prepared and undecided (or unheard).
    main.push_str("<h2>Locks held</h2>");
    let mut any = false;
    for (service, read) in PARTICIPANTS.into_iter().zip(prepared) {
        match read {
            Read::Got(list) => {
                for held in list.prepared.iter().filter(|p| p.gid.starts_with(&prefix)) {
                    any = true;
                    main.push_str(&held_locks(service, held));
                }
            }
            Read::Missing => {}
            Read::Down(why) => main.push_str(&down(&format!("the {service} service"), &why)),
        }
    }
    if !any {
        main.push_str("<p class=\"empty released\">None: no participant holds this transaction prepared.</p>");
    }

    match peers
        .get::<OrderView>(Service::Order, &format!("/orders/{}", tx.order_id))
        .await
    {
        Read::Got(order) => main.push_str(&verdict(peers, &order, !final_).await),
        Read::Missing => main.push_str(&verdict_note(
            "ok",
            "nothing to check: no order was created (the transaction aborted before the order service prepared one)",
        )),
        Read::Down(why) => main.push_str(&down("the order service", &why)),
    }
    main.push_str(&trace_section(console, tx.trace_id.as_deref()));
    if !events.is_empty() {
        main.push_str("<h2>History</h2>");
        tpc_history_table(&mut main, events);
    }
    Page {
        title: "Checkout",
        nav: Nav::Checkout,
        refresh: (!final_ || any).then_some(console.settings.refresh),
        main,
    }
    .respond(StatusCode::OK)
}

fn tpc_history_table(out: &mut String, events: &[TransactionEvent]) {
    let Some(first) = events.first() else { return };
    out.push_str(
        "<table class=\"list history\"><thead><tr><th>+ms</th><th>event</th><th>participant</th><th>what</th>\
         <th>took</th><th>detail</th></tr></thead><tbody>",
    );
    for e in events {
        let what = match e.kind {
            TransactionEventKind::Vote => e.vote.map(|v| badge(v.name())).unwrap_or_default(),
            TransactionEventKind::DecisionLogged => e.decision.map(|d| badge(d.name())).unwrap_or_default(),
            TransactionEventKind::PhaseTwoAttempt => format!(
                "attempt {} {}",
                e.attempt.map(|a| a.to_string()).unwrap_or_else(|| "—".into()),
                if e.acknowledged == Some(true) {
                    badge("acknowledged")
                } else {
                    badge("not_acknowledged")
                }
            ),
            _ => e.state.map(|s| badge(s.name())).unwrap_or_default(),
        };
        let _ = write!(
            out,
            "<tr class=\"k-{}\"><td>{}</td><td>{}</td><td>{}</td><td>{what}</td><td>{}</td><td class=\"why\">{}</td></tr>",
            e.kind,
            (e.at - first.at).num_milliseconds(),
            e.kind,
            e.participant.map(|p| p.to_string()).unwrap_or_default(),
            e.duration_ms.map(millis).unwrap_or_default(),
            esc(e.detail.as_deref().unwrap_or("")),
        );
    }
    out.push_str("</tbody></table>");
}

/// What one participant holds for a prepared transaction: the rows others wait for,
/// then its locks on the service's own tables (the system catalogue's are counted).
fn held_locks(service: Service, held: &api::PreparedTransaction) -> String {
    let rows = if held.rows.is_empty() {
        "no rows by key".to_owned()
    } else {
        format!("rows <span class=\"rows\">{}</span>", esc(&held.rows.join(", ")))
    };
    let (catalogue, own): (Vec<_>, Vec<_>) = held
        .locks
        .iter()
        .partition(|l| l.relation.as_deref().is_some_and(|r| r.starts_with("pg_")));
    let own: Vec<String> = own
        .iter()
        .map(|l| format!("{} on {}", esc(&l.mode), esc(l.relation.as_deref().unwrap_or(&l.kind))))
        .collect();
    format!(
        "<div class=\"held\" data-participant=\"{service}\"><b>{service}</b> holds <code>{}</code>, prepared \
         {:.1} s ago: {rows}; locks {}{}</div>",
        esc(&held.gid),
        held.age_seconds,
        if own.is_empty() {
            "none".to_owned()
        } else {
            own.join(", ")
        },
        if catalogue.is_empty() {
            String::new()
        } else {
            format!(" (and {} on the system catalogue)", catalogue.len())
        },
    )
}

/// The checkout's consistency verdict: the auditor's invariants (`api::invariants`)
/// on what the services say now. `running`: the checkout is not final yet, so only
/// what must hold at every moment is judged.
async fn verdict(peers: &Peers, order: &OrderView, running: bool) -> String {
    let id = order.order_id;
    let paths = (
        format!("/payments?order_id={id}"),
        format!("/reservations/{id}"),
        format!("/emails?order_id={id}"),
    );
    let (payments, reservation, emails) = futures_util::join!(
        peers.get::<Payments>(Service::Payment, &paths.0),
        peers.get::<Reservation>(Service::Inventory, &paths.1),
        peers.get::<Emails>(Service::Email, &paths.2),
    );
    let mut out = String::from("<h2>Consistency</h2>");
    let (payments, emails) = match (payments, emails) {
        (Read::Got(p), Read::Got(e)) => (p, e),
        (p, e) => {
            for (what, read) in [
                ("the payment service", p.map_unit()),
                ("the email service", e.map_unit()),
            ] {
                match read {
                    Read::Down(why) => out.push_str(&down(what, &why)),
                    Read::Missing => out.push_str(&down(what, "it does not know this order")),
                    Read::Got(()) => {}
                }
            }
            return out;
        }
    };
    let reservation = match reservation {
        Read::Got(r) => Some(r),
        Read::Missing => None,
        Read::Down(why) => {
            out.push_str(&down("the inventory service", &why));
            return out;
        }
    };
    let violations = check_checkout(CheckoutFacts {
        order,
        payments: &payments,
        reservation: reservation.as_ref(),
        emails: &emails.emails,
    });
    // Mid-flight, a checkout is neither confirmed nor cancelled yet; and a
    // confirmation email is delivered after the saga, at least once.
    let waiting_email = order.status == OrderStatus::Confirmed
        && emails.emails.len() == 1
        && emails.emails[0].state == EmailState::Pending;
    let judged: Vec<_> = violations
        .iter()
        .filter(|v| !(running && v.invariant == "finished-or-parked"))
        .filter(|v| !(waiting_email && v.invariant == "confirmed-one-email"))
        .collect();
    let charges = format!(
        "{} successful charge(s), net {}",
        payments.succeeded().count(),
        cents(payments.net_cents)
    );
    if judged.is_empty() {
        let what = match order.status {
            OrderStatus::Confirmed if waiting_email => {
                format!("confirmed: {charges}, stock committed; the confirmation email is still in the outbox")
            }
            OrderStatus::Confirmed => format!("consistent: confirmed, {charges}, stock committed, one email delivered"),
            OrderStatus::Cancelled => format!("consistent: cancelled, {charges}, no stock held, no email"),
            OrderStatus::Pending if running => {
                format!("so far consistent ({charges}); judged in full once it is final")
            }
            OrderStatus::Pending => format!("parked, visibly waiting: {charges}"),
        };
        out.push_str(&verdict_note("ok", &what));
        return out;
    }
    out.push_str("<ul class=\"verdict bad\">");
    for v in judged {
        let _ = write!(out, "<li><b>{}</b>: {}</li>", esc(v.invariant), esc(&v.detail));
    }
    out.push_str("</ul>");
    out
}

fn verdict_note(class: &str, text: &str) -> String {
    format!("<p class=\"verdict {class}\">{}</p>", esc(text))
}

/// How many spans a waterfall draws.
const WATERFALL_ROWS: usize = 300;

/// The checkout's trace as a waterfall, from the console's own trace buffer.
fn trace_section(console: &Console, trace_id: Option<&str>) -> String {
    let Some(trace_id) = trace_id else {
        return String::new();
    };
    let Some(spans) = console.traces.trace(trace_id) else {
        return "<h2>Trace</h2><p class=\"empty\">Not in the console's trace buffer (the services export to \
                Jaeger, or it was let go): follow the trace link above.</p>"
            .to_owned();
    };
    let rows = crate::traces::waterfall(&spans);
    let at = |nanos: u64| DateTime::<Utc>::from_timestamp_nanos(i64::try_from(nanos).unwrap_or(i64::MAX));
    let (Some(start), Some(end)) = (
        spans.iter().map(|s| s.start_unix_nanos).min(),
        spans.iter().map(|s| s.end_unix_nanos).max(),
    ) else {
        return String::new();
    };
    let mut timeline = Timeline::new(at(start), at(end));
    for (depth, span) in rows.iter().take(WATERFALL_ROWS) {
        let took = (span.end_unix_nanos - span.start_unix_nanos) as f64 / 1e6;
        let mut title = format!("{} — {} — {}", span.name, span.service, millis(took));
        for (key, value) in &span.attributes {
            let _ = write!(title, "\n{key} = {value}");
        }
        if let Some(error) = &span.error {
            let _ = write!(title, "\nerror: {error}");
        }
        let class = if span.error.is_some() { "o-refused" } else { "o-span" };
        timeline.row(
            format!("{}{}", "· ".repeat((*depth).min(12)), span.name),
            false,
            vec![Bar {
                start: at(span.start_unix_nanos),
                end: at(span.end_unix_nanos),
                class: class.to_owned(),
                title,
                lower: false,
            }],
        );
    }
    let more = rows.len().saturating_sub(WATERFALL_ROWS);
    let note = if more > 0 {
        format!(" ({more} more not drawn)")
    } else {
        String::new()
    };
    format!(
        "<h2>Trace <small>{} spans from the console's buffer{note}</small></h2><div class=\"waterfall\">{}</div>",
        spans.len(),
        timeline.render()
    )
}
