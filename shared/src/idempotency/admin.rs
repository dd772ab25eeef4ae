//! `GET /admin/idempotency-keys`: the service's keys with a prefix (a saga's or a
//! transaction's id), their state and replays, a page at a time.

use actix_web::{HttpResponse, web};
use api::idempotency::{IdempotencyKeyList, IdempotencyKeyView, KeyState as ApiKeyState};
use base::Problem;
use serde::Deserialize;
use sqlx::PgPool;

use super::store::{KeyState, ListedKey, list_keys};

pub fn admin_routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/idempotency-keys").route(web::get().to(list)));
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct KeysQuery {
    /// Only keys that start with this (a saga's id lists its steps' keys); every key
    /// when absent.
    #[param(max_length = 255)]
    prefix: Option<String>,
    /// 1–500; 100 when absent.
    #[param(minimum = 1, maximum = 500)]
    limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// This service's idempotency keys with a prefix, in key order: each one's state,
/// the status of its stored response and how many retries it answered.
#[utoipa::path(get, path = "/admin/idempotency-keys", tag = "idempotency", params(KeysQuery),
    responses((status = 200, description = "A page of keys", body = IdempotencyKeyList)))]
pub(crate) async fn list(pool: web::Data<PgPool>, query: web::Query<KeysQuery>) -> Result<HttpResponse, Problem> {
    let prefix = query.prefix.as_deref().unwrap_or("");
    if prefix.len() > super::MAX_KEY_LENGTH || prefix.bytes().any(|b| !(0x20..=0x7e).contains(&b)) {
        return Err(Problem::invalid(
            "prefix must be at most 255 printable ASCII characters, as keys are",
        ));
    }
    let limit = query.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(Problem::invalid(format!(
            "limit must be between 1 and 500, got {limit}"
        )));
    }
    // The cursor is the last key's scope, a space, and the key (scopes have no spaces).
    let after = match query.cursor.as_deref() {
        None => None,
        Some(cursor) => match cursor.split_once(' ') {
            Some((scope, key)) if !scope.is_empty() && !key.is_empty() => Some((key, scope)),
            _ => return Err(Problem::invalid("cursor must be a next_cursor this endpoint gave")),
        },
    };
    let rows = list_keys(&pool, prefix, after, limit).await?;
    let next_cursor = match rows.last() {
        Some(last) if i64::try_from(rows.len()).is_ok_and(|n| n == limit) => {
            Some(format!("{} {}", last.scope, last.key))
        }
        _ => None,
    };
    crate::web::ok(&IdempotencyKeyList {
        keys: rows.into_iter().map(view).collect(),
        next_cursor,
    })
}

fn view(row: ListedKey) -> IdempotencyKeyView {
    IdempotencyKeyView {
        scope: row.scope,
        key: row.key,
        state: match row.state {
            KeyState::InFlight => ApiKeyState::InFlight,
            KeyState::Completed => ApiKeyState::Completed,
        },
        replays: u32::try_from(row.replays).unwrap_or(0),
        response_status: row.response_status.and_then(|s| u16::try_from(s).ok()),
        created_at: row.created_at,
        completed_at: row.completed_at,
        locked_until: row.locked_until,
    }
}
