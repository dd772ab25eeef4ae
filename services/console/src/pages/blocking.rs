//! `/blocking`: which rows each prepared (2PC) transaction holds at each participant,
//! for how long, and which checkouts wait on them — sagas stuck reserving a SKU it
//! holds, transactions still preparing with one. 2PC's blocking, made visible.

use std::{collections::BTreeSet, fmt::Write as _};

use actix_web::{HttpResponse, http::StatusCode, web};
use api::{OrderView, PreparedList, SagaList, StepStatus, TransactionList, TransactionView};
use base::config::Service;
use uuid::Uuid;

use crate::{
    Console,
    html::{Nav, Page, badge, down, esc, short_id},
    pages::xray::PARTICIPANTS,
    peers::{Peers, Read},
};

/// How many unfinished checkouts of each protocol are looked at for waiters.
const LOOKED_AT: usize = 50;

/// A prepared transaction at one participant.
struct Holder {
    service: Service,
    gid: String,
    transaction_id: Option<Uuid>,
    age_seconds: f64,
    rows: Vec<String>,
    locks: usize,
}

/// The transaction a global transaction id belongs to (`txlab_<32 hex>_<participant>`).
fn transaction_of(gid: &str) -> Option<Uuid> {
    let hex = gid.strip_prefix("txlab_")?.split('_').next()?;
    Uuid::parse_str(hex).ok()
}

pub async fn blocking(console: web::Data<Console>) -> HttpResponse {
    let peers = &console.peers;
    let prepared =
        futures_util::future::join_all(PARTICIPANTS.map(|s| peers.get::<PreparedList>(s, "/tpc/prepared"))).await;
    let mut main = String::with_capacity(16 * 1024);
    main.push_str("<h1>Blocking</h1><h2>Held by prepared transactions</h2>");
    let mut holders = Vec::new();
    for (service, read) in PARTICIPANTS.into_iter().zip(prepared) {
        match read {
            Read::Got(list) => holders.extend(list.prepared.into_iter().map(|p| Holder {
                service,
                transaction_id: transaction_of(&p.gid),
                gid: p.gid,
                age_seconds: p.age_seconds,
                rows: p.rows,
                locks: p.locks.len(),
            })),
            Read::Missing => {}
            Read::Down(why) => main.push_str(&down(&format!("the {service} service"), &why)),
        }
    }
    // The checkout of each holder, to link to its X-ray.
    let ids: BTreeSet<Uuid> = holders.iter().filter_map(|h| h.transaction_id).collect();
    let transactions: Vec<(Uuid, Option<TransactionView>)> =
        futures_util::future::join_all(ids.into_iter().map(|id| async move {
            let path = format!("/transactions/{id}");
            (
                id,
                peers.get::<TransactionView>(Service::Coordinator, &path).await.got(),
            )
        }))
        .await;
    let order_of = |id: Option<Uuid>| {
        transactions
            .iter()
            .find(|(t, _)| Some(*t) == id)
            .and_then(|(_, tx)| tx.as_ref().map(|tx| tx.order_id))
    };
    if holders.is_empty() {
        main.push_str("<p class=\"empty released\">No participant holds a prepared transaction: nothing blocks.</p>");
    } else {
        main.push_str(
            "<table class=\"list holders\"><thead><tr><th>participant</th><th>checkout</th><th>prepared for</th>\
             <th>rows held</th><th>locks</th><th>global transaction id</th></tr></thead><tbody>",
        );
        for h in &holders {
            let checkout = match order_of(h.transaction_id) {
                Some(order) => format!("<a href=\"/checkouts/{order}\">{}</a>", short_id(&order)),
                None => "—".to_owned(),
            };
            let _ = write!(
                main,
                "<tr class=\"holder\" data-participant=\"{}\"><td>{}</td><td>{checkout}</td><td>{:.1} s</td>\
                 <td class=\"rows\">{}</td><td>{}</td><td><code>{}</code></td></tr>",
                h.service,
                h.service,
                h.age_seconds,
                esc(&h.rows.join(", ")),
                h.locks,
                esc(&h.gid),
            );
        }
        main.push_str("</tbody></table>");
    }

    let held: BTreeSet<&str> = holders.iter().flat_map(|h| h.rows.iter().map(String::as_str)).collect();
    main.push_str("<h2>Waiting on them</h2>");
    if held.is_empty() {
        main.push_str("<p class=\"empty\">No row is held, so no checkout waits on one.</p>");
    } else {
        let holding: BTreeSet<Uuid> = holders.iter().filter_map(|h| h.transaction_id).collect();
        main.push_str(&waiters(peers, &held, &holding).await);
    }
    Page {
        title: "Blocking",
        nav: Nav::Blocking,
        refresh: Some(console.settings.refresh),
        main,
    }
    .respond(StatusCode::OK)
}

/// The unfinished checkouts that need a held row: sagas whose reservation has not
/// succeeded, transactions still preparing (other than the holders).
async fn waiters(peers: &Peers, held: &BTreeSet<&str>, holding: &BTreeSet<Uuid>) -> String {
    let saga_path = format!("/sagas?state=running&limit={LOOKED_AT}");
    let tx_path = format!("/transactions?state=preparing&limit={LOOKED_AT}");
    let (sagas, transactions) = futures_util::join!(
        peers.get::<SagaList>(Service::Order, &saga_path),
        peers.get::<TransactionList>(Service::Coordinator, &tx_path),
    );
    let mut rows = Vec::new();
    let mut out = String::new();
    match sagas {
        Read::Got(list) => {
            let orders = futures_util::future::join_all(list.sagas.iter().map(|s| {
                let path = format!("/orders/{}", s.order_id);
                async move { peers.get::<OrderView>(Service::Order, &path).await.got() }
            }))
            .await;
            for order in orders.into_iter().flatten() {
                let Some(reserve) = order.steps.iter().find(|s| s.name == "reserve_inventory") else {
                    continue;
                };
                if reserve.status == StepStatus::Succeeded {
                    continue;
                }
                let skus: Vec<&str> = order
                    .items
                    .iter()
                    .map(|i| i.sku.as_str())
                    .filter(|sku| held.contains(sku))
                    .collect();
                if !skus.is_empty() {
                    rows.push((
                        order.order_id,
                        "saga",
                        match reserve.attempts {
                            0 => "about to reserve".to_owned(),
                            n => format!("reserve_inventory, attempt {n}"),
                        },
                        skus.join(", "),
                        reserve.last_error.clone().unwrap_or_default(),
                    ));
                }
            }
        }
        Read::Missing => {}
        Read::Down(why) => out.push_str(&down("the order service", &why)),
    }
    match transactions {
        Read::Got(list) => {
            for tx in list
                .transactions
                .iter()
                .filter(|t| !holding.contains(&t.transaction_id))
            {
                let skus: Vec<&str> = tx
                    .items
                    .iter()
                    .map(|i| i.sku.as_str())
                    .filter(|sku| held.contains(sku))
                    .collect();
                if !skus.is_empty() {
                    rows.push((
                        tx.order_id,
                        "2PC",
                        "preparing".to_owned(),
                        skus.join(", "),
                        tx.reason.clone().unwrap_or_default(),
                    ));
                }
            }
        }
        Read::Missing => {}
        Read::Down(why) => out.push_str(&down("the coordinator", &why)),
    }
    if rows.is_empty() {
        out.push_str("<p class=\"empty\">No unfinished checkout needs a held row.</p>");
        return out;
    }
    out.push_str(
        "<table class=\"list waiting\"><thead><tr><th>checkout</th><th>protocol</th><th>at</th><th>needs</th>\
         <th>last error</th></tr></thead><tbody>",
    );
    for (order, protocol, at, skus, error) in rows {
        let _ = write!(
            out,
            "<tr class=\"waiter\"><td><a href=\"/checkouts/{order}\">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td class=\"why\">{}</td></tr>",
            short_id(&order),
            badge(protocol),
            esc(&at),
            esc(&skus),
            esc(&error),
        );
    }
    out.push_str("</tbody></table>");
    out
}
