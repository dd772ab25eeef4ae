//! Connecting to a service's own database and applying its migrations: the shared
//! tables (`migrations/shared/`, versions below 100) and the service's own
//! (`migrations/<service>/`, versions from 100), as one ordered set.

use std::time::Duration;

use sqlx::{
    Connection, PgPool,
    migrate::{Migration, Migrator},
    postgres::PgPoolOptions,
};

use crate::config::Settings;

/// The shared tables every service has (idempotency keys).
pub static SHARED_MIGRATIONS: Migrator = sqlx::migrate!("../../migrations/shared");

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("DATABASE_URL: cannot connect to {url}: {source}")]
    Connect { url: String, source: sqlx::Error },
    #[error("DATABASE_URL: applying migrations to {url} failed: {source}")]
    Migrate {
        url: String,
        source: sqlx::migrate::MigrateError,
    },
}

/// The URL without its password, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{}:***{}", &url[..scheme + 3], user, &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// Connects, retrying for up to 10 s (a database still starting up), and reports the
/// last real reason (refused, unknown database, authentication) when it gives up.
pub async fn connect(settings: &Settings) -> Result<PgPool, DbError> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match sqlx::PgConnection::connect(&settings.database_url).await {
            Ok(probe) => {
                let _ = probe.close().await;
                break;
            }
            Err(source) if std::time::Instant::now() > deadline || !is_transient(&source) => {
                return Err(DbError::Connect {
                    url: redact(&settings.database_url),
                    source,
                });
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
    PgPoolOptions::new()
        .max_connections(settings.database_max_connections)
        .acquire_timeout(Duration::from_secs(10))
        .connect(&settings.database_url)
        .await
        .map_err(|source| DbError::Connect {
            url: redact(&settings.database_url),
            source,
        })
}

/// `pool.begin()`, safe to cancel. sqlx sends `BEGIN` and counts the transaction only
/// once the server has answered; a caller dropped in between (a request cut off at
/// its deadline) returns the connection to the pool inside a transaction that sqlx
/// does not know of, and every later user of that connection fails ("cannot run
/// inside a transaction block", then "current transaction is aborted"). Here the
/// `BEGIN` runs in a task of its own: a caller that is gone when it completes drops
/// the transaction there, and it is rolled back as any other.
pub async fn begin(pool: &PgPool) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error> {
    let pool = pool.clone();
    tokio::spawn(async move { pool.begin().await })
        .await
        .map_err(|e| sqlx::Error::Protocol(format!("the task beginning a transaction failed: {e}")))?
}

/// Whether a statement gave up waiting for a row lock (`lock_timeout`, 55P03):
/// another transaction, perhaps an in-doubt prepared one, holds the rows.
pub fn is_lock_timeout(e: &sqlx::Error) -> bool {
    has_code(e, "55P03")
}

/// Whether a statement was cancelled by `statement_timeout` (57014): it ran into the
/// deadline it was given.
pub fn is_statement_timeout(e: &sqlx::Error) -> bool {
    has_code(e, "57014")
}

/// Whether `PREPARE TRANSACTION` found every slot of `max_prepared_transactions`
/// taken by transactions awaiting their decisions. PostgreSQL reports it as
/// `out_of_memory` (53200) with this message.
pub fn is_out_of_prepared_slots(e: &sqlx::Error) -> bool {
    has_code(e, "53200")
        && e.as_database_error().is_some_and(|d| {
            d.message()
                .starts_with("maximum number of prepared transactions reached")
        })
}

/// Whether `COMMIT PREPARED` / `ROLLBACK PREPARED` found no prepared transaction by
/// that id (`undefined_object`, 42704): never prepared, or finished already.
pub fn is_no_such_prepared(e: &sqlx::Error) -> bool {
    has_code(e, "42704")
}

/// Whether `COMMIT PREPARED` / `ROLLBACK PREPARED` found the prepared transaction
/// being finished by another session at this very moment ('is busy':
/// `object_not_in_prerequisite_state`, 55000, as `LockGXact` raises it).
pub fn is_prepared_busy(e: &sqlx::Error) -> bool {
    has_code(e, "55000")
}

/// Worth retrying at start-up: the server may still be coming up.
fn is_transient(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut) || has_code(e, "57P03")
}

/// Whether PostgreSQL answered with this SQLSTATE.
fn has_code(e: &sqlx::Error, sqlstate: &str) -> bool {
    e.as_database_error()
        .and_then(|d| d.code())
        .is_some_and(|code| code == sqlstate)
}

/// Applies the shared migrations and the service's; returns how many there are.
pub async fn migrate(pool: &PgPool, url: &str, service: &Migrator) -> Result<i64, DbError> {
    let migrations: Vec<Migration> = SHARED_MIGRATIONS.iter().chain(service.iter()).cloned().collect();
    let count = migrations.len() as i64;
    Migrator::with_migrations(migrations)
        .run(pool)
        .await
        .map_err(|source| DbError::Migrate {
            url: redact(url),
            source,
        })?;
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(redact("postgres://u:secret@h:5432/d"), "postgres://u:***@h:5432/d");
        assert_eq!(redact("postgres://u@h/d"), "postgres://u@h/d");
        assert_eq!(redact("postgres://h/d"), "postgres://h/d");
    }
}
