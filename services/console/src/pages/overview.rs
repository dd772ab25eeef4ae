//! `/`: saga and 2PC side by side: counts by state, filters (running, retrying,
//! compensating, parked, in doubt, stuck longer than N s), newest first, a page at a
//! time; every checkout links to its X-ray.

use std::fmt::Write as _;

use actix_web::{HttpResponse, http::StatusCode, web};
use api::{SagaCounts, SagaList, SagaStatus, TransactionCounts, TransactionFilter, TransactionList};
use base::{Problem, config::Service};
use chrono::Utc;
use serde::Deserialize;
use uuid::Uuid;

use crate::{
    Console,
    html::{Nav, Page, ago, badge, down, esc, short_id, url_component},
    peers::Read,
};

/// Rows per list.
const PAGE: usize = 25;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverviewQuery {
    /// Sagas in this status.
    saga_state: Option<String>,
    /// Only retrying sagas (a step or compensation past its first attempt).
    retrying: Option<String>,
    /// Only sagas started at least this many seconds ago.
    older_than_secs: Option<String>,
    saga_cursor: Option<Uuid>,
    /// Transactions in this state, or `in_doubt`.
    tx_state: Option<String>,
    tx_before: Option<Uuid>,
}

/// The filters, checked.
struct Filters {
    saga_state: Option<SagaStatus>,
    retrying: bool,
    older_than_secs: Option<u32>,
    saga_cursor: Option<Uuid>,
    tx_state: Option<TransactionFilter>,
    tx_before: Option<Uuid>,
}

impl Filters {
    fn from(query: &OverviewQuery) -> Result<Filters, Problem> {
        let blank = |v: &Option<String>| v.as_deref().map(str::trim).filter(|v| !v.is_empty()).map(str::to_owned);
        Ok(Filters {
            saga_state: blank(&query.saga_state)
                .map(|s| s.parse::<SagaStatus>())
                .transpose()
                .map_err(Problem::invalid)?,
            retrying: match blank(&query.retrying).as_deref() {
                None | Some("false") => false,
                Some("true" | "on") => true,
                Some(other) => {
                    return Err(Problem::invalid(format!(
                        "retrying must be true or false, got {other:?}"
                    )));
                }
            },
            older_than_secs: blank(&query.older_than_secs)
                .map(|s| {
                    s.parse::<u32>().ok().filter(|n| *n <= 315_360_000).ok_or_else(|| {
                        Problem::invalid(format!("older_than_secs must be 0–315360000 seconds, got {s:?}"))
                    })
                })
                .transpose()?,
            saga_cursor: query.saga_cursor,
            tx_state: blank(&query.tx_state)
                .map(|s| s.parse::<TransactionFilter>())
                .transpose()
                .map_err(Problem::invalid)?,
            tx_before: query.tx_before,
        })
    }

    /// The overview's URL with these filters, some changed.
    fn link(&self, change: impl FnOnce(&mut Filters)) -> String {
        let mut f = Filters { ..*self };
        change(&mut f);
        let mut params = Vec::new();
        if let Some(state) = f.saga_state {
            params.push(format!("saga_state={state}"));
        }
        if f.retrying {
            params.push("retrying=true".to_owned());
        }
        if let Some(secs) = f.older_than_secs {
            params.push(format!("older_than_secs={secs}"));
        }
        if let Some(cursor) = f.saga_cursor {
            params.push(format!("saga_cursor={cursor}"));
        }
        if let Some(state) = f.tx_state {
            params.push(format!("tx_state={}", url_component(state.name())));
        }
        if let Some(before) = f.tx_before {
            params.push(format!("tx_before={before}"));
        }
        if params.is_empty() {
            "/".to_owned()
        } else {
            format!("/?{}", params.join("&amp;"))
        }
    }
}

pub async fn overview(console: web::Data<Console>, query: web::Query<OverviewQuery>) -> Result<HttpResponse, Problem> {
    let filters = Filters::from(&query)?;
    let peers = &console.peers;
    let mut sagas_path = format!("/sagas?limit={PAGE}");
    if let Some(state) = filters.saga_state {
        let _ = write!(sagas_path, "&state={state}");
    }
    if filters.retrying {
        sagas_path.push_str("&retrying=true");
    }
    if let Some(secs) = filters.older_than_secs {
        let _ = write!(sagas_path, "&older_than_secs={secs}");
    }
    if let Some(cursor) = filters.saga_cursor {
        let _ = write!(sagas_path, "&cursor={cursor}");
    }
    let mut tx_path = format!("/transactions?limit={PAGE}");
    if let Some(state) = filters.tx_state {
        let _ = write!(tx_path, "&state={state}");
    }
    if let Some(before) = filters.tx_before {
        let _ = write!(tx_path, "&before={before}");
    }
    if let Some(secs) = filters.older_than_secs {
        let _ = write!(tx_path, "&older_than_secs={secs}");
    }
    let (saga_counts, sagas, tx_counts, transactions) = futures_util::join!(
        peers.get::<SagaCounts>(Service::Order, "/sagas/counts"),
        peers.get::<SagaList>(Service::Order, &sagas_path),
        peers.get::<TransactionCounts>(Service::Coordinator, "/transactions/counts"),
        peers.get::<TransactionList>(Service::Coordinator, &tx_path),
    );
    let mut main = String::with_capacity(16 * 1024);
    main.push_str("<h1>Checkouts</h1><div class=\"columns\">");
    saga_column(&mut main, &filters, saga_counts, sagas);
    tx_column(&mut main, &filters, tx_counts, transactions);
    main.push_str("</div>");
    let buffer = console.traces.stats();
    let _ = write!(
        main,
        "<p class=\"footnote trace-buffer\">Trace buffer: {} traces, {} spans kept; {} traces and {} spans let go \
         (<code>POST /v1/traces</code>).</p>",
        buffer.traces, buffer.spans, buffer.dropped_traces, buffer.dropped_spans
    );
    Ok(Page {
        title: "Overview",
        nav: Nav::Overview,
        refresh: Some(console.settings.refresh),
        main,
    }
    .respond(StatusCode::OK))
}

fn saga_column(out: &mut String, filters: &Filters, counts: Read<SagaCounts>, sagas: Read<SagaList>) {
    out.push_str("<section class=\"column\" id=\"sagas\"><h2>Saga <small>order service</small></h2>");
    match counts {
        Read::Got(c) => {
            out.push_str("<p class=\"counts\">");
            for (status, n) in [
                (SagaStatus::Running, c.running),
                (SagaStatus::Compensating, c.compensating),
                (SagaStatus::Parked, c.parked),
                (SagaStatus::Confirmed, c.confirmed),
                (SagaStatus::Cancelled, c.cancelled),
            ] {
                let href = filters.link(|f| {
                    f.saga_state = Some(status);
                    f.saga_cursor = None;
                });
                let _ = write!(
                    out,
                    "<a class=\"count s-{status}\" href=\"{href}\">{status} <b>{n}</b></a>"
                );
            }
            let href = filters.link(|f| {
                f.retrying = true;
                f.saga_cursor = None;
            });
            let _ = write!(
                out,
                "<a class=\"count s-retrying\" href=\"{href}\">retrying <b>{}</b></a></p>",
                c.retrying
            );
        }
        Read::Missing => out.push_str(&down("the order service", "it has no GET /sagas/counts")),
        Read::Down(why) => out.push_str(&down("the order service", &why)),
    }
    // The filter form; the other column's filters ride along.
    out.push_str("<form class=\"filters\" method=\"get\" action=\"/\"><label>state <select name=\"saga_state\"><option value=\"\">any</option>");
    for status in SagaStatus::ALL {
        let selected = if filters.saga_state == Some(*status) {
            " selected"
        } else {
            ""
        };
        let _ = write!(out, "<option{selected}>{status}</option>");
    }
    let checked = if filters.retrying { " checked" } else { "" };
    let older = filters.older_than_secs.map(|s| s.to_string()).unwrap_or_default();
    let _ = write!(
        out,
        "</select></label> <label><input type=\"checkbox\" name=\"retrying\" value=\"true\"{checked}> retrying</label> \
         <label title=\"applies to both lists\">stuck longer than <input type=\"number\" name=\"older_than_secs\" min=\"0\" value=\"{older}\" size=\"5\"> s</label>"
    );
    if let Some(state) = filters.tx_state {
        let _ = write!(
            out,
            "<input type=\"hidden\" name=\"tx_state\" value=\"{}\">",
            esc(state.name())
        );
    }
    out.push_str(" <button>Filter</button> <a href=\"/\">clear</a></form>");
    match sagas {
        Read::Got(list) if list.sagas.is_empty() => out.push_str("<p class=\"empty\">No saga matches.</p>"),
        Read::Got(list) => {
            let now = Utc::now();
            out.push_str(
                "<table class=\"list\"><thead><tr><th>order</th><th>saga</th><th>attempts</th><th>why</th><th>started</th></tr></thead><tbody>",
            );
            for saga in &list.sagas {
                let retrying = if saga.retrying {
                    " <span class=\"badge s-retrying\">retrying</span>"
                } else {
                    ""
                };
                let _ = write!(
                    out,
                    "<tr><td><a href=\"/checkouts/{}\">{}</a></td><td>{}{retrying}</td><td>{}</td><td class=\"why\">{}</td><td>{} ago</td></tr>",
                    saga.order_id,
                    short_id(&saga.order_id),
                    badge(saga.status.name()),
                    saga.max_attempts,
                    esc(saga.reason.as_deref().unwrap_or("")),
                    ago(saga.created_at, now),
                );
            }
            out.push_str("</tbody></table>");
            if let Some(cursor) = list.next_cursor {
                let href = filters.link(|f| f.saga_cursor = Some(cursor));
                let _ = write!(out, "<p class=\"more\"><a href=\"{href}\">older sagas →</a></p>");
            }
        }
        Read::Missing => out.push_str(&down("the order service", "it has no GET /sagas")),
        Read::Down(why) => out.push_str(&down("the order service", &why)),
    }
    out.push_str("</section>");
}

fn tx_column(out: &mut String, filters: &Filters, counts: Read<TransactionCounts>, list: Read<TransactionList>) {
    out.push_str("<section class=\"column\" id=\"transactions\"><h2>Two-phase commit <small>coordinator</small></h2>");
    match counts {
        Read::Got(c) => {
            out.push_str("<p class=\"counts\">");
            for (filter, n) in [
                (TransactionFilter::State(api::TransactionState::Preparing), c.preparing),
                (TransactionFilter::InDoubt, c.in_doubt),
                (
                    TransactionFilter::State(api::TransactionState::Committing),
                    c.committing,
                ),
                (TransactionFilter::State(api::TransactionState::Aborting), c.aborting),
                (TransactionFilter::State(api::TransactionState::Committed), c.committed),
                (TransactionFilter::State(api::TransactionState::Aborted), c.aborted),
            ] {
                let href = filters.link(|f| {
                    f.tx_state = Some(filter);
                    f.tx_before = None;
                });
                let _ = write!(
                    out,
                    "<a class=\"count s-{filter}\" href=\"{href}\">{filter} <b>{n}</b></a>"
                );
            }
            out.push_str("</p>");
        }
        Read::Missing => out.push_str(&down("the coordinator", "it has no GET /transactions/counts")),
        Read::Down(why) => out.push_str(&down("the coordinator", &why)),
    }
    out.push_str("<form class=\"filters\" method=\"get\" action=\"/\"><label>state <select name=\"tx_state\"><option value=\"\">any</option>");
    for filter in TransactionFilter::ALL {
        let selected = if filters.tx_state == Some(filter) {
            " selected"
        } else {
            ""
        };
        let _ = write!(out, "<option{selected}>{filter}</option>");
    }
    out.push_str("</select></label>");
    if let Some(state) = filters.saga_state {
        let _ = write!(out, "<input type=\"hidden\" name=\"saga_state\" value=\"{state}\">");
    }
    if filters.retrying {
        out.push_str("<input type=\"hidden\" name=\"retrying\" value=\"true\">");
    }
    if let Some(secs) = filters.older_than_secs {
        let _ = write!(out, "<input type=\"hidden\" name=\"older_than_secs\" value=\"{secs}\">");
    }
    out.push_str(" <button>Filter</button> <a href=\"/\">clear</a></form>");
    match list {
        Read::Got(list) if list.transactions.is_empty() => {
            out.push_str("<p class=\"empty\">No transaction matches.</p>")
        }
        Read::Got(list) => {
            let now = Utc::now();
            out.push_str(
                "<table class=\"list\"><thead><tr><th>order</th><th>state</th><th>votes</th><th>why</th><th>started</th></tr></thead><tbody>",
            );
            for tx in &list.transactions {
                let in_doubt = tx
                    .participants
                    .iter()
                    .any(|p| p.outcome == api::ParticipantOutcome::InDoubt)
                    && !tx.state.is_final();
                let doubt = if in_doubt {
                    " <span class=\"badge s-in_doubt\">in doubt</span>"
                } else {
                    ""
                };
                let votes: Vec<String> = tx
                    .participants
                    .iter()
                    .map(|p| {
                        format!(
                            "<span class=\"vote v-{}\" title=\"{}: {}\">{}</span>",
                            p.vote,
                            p.name,
                            p.vote,
                            esc(&p.name.to_string()[..1])
                        )
                    })
                    .collect();
                let _ = write!(
                    out,
                    "<tr><td><a href=\"/checkouts/{}\">{}</a></td><td>{}{doubt}</td><td>{}</td><td class=\"why\">{}</td><td>{} ago</td></tr>",
                    tx.order_id,
                    short_id(&tx.order_id),
                    badge(tx.state.name()),
                    votes.join(""),
                    esc(tx.reason.as_deref().unwrap_or("")),
                    ago(tx.created_at, now),
                );
            }
            out.push_str("</tbody></table>");
            if list.transactions.len() == PAGE
                && let Some(last) = list.transactions.last()
            {
                let href = filters.link(|f| f.tx_before = Some(last.transaction_id));
                let _ = write!(out, "<p class=\"more\"><a href=\"{href}\">older transactions →</a></p>");
            }
        }
        Read::Missing => out.push_str(&down("the coordinator", "it has no GET /transactions")),
        Read::Down(why) => out.push_str(&down("the coordinator", &why)),
    }
    out.push_str("</section>");
}
