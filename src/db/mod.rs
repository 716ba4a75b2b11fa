//! The database connection: opened and migrated at launch, or the launch fails.
//!
//! - `limits` ([`Limits`]): how long one transaction may wait on a lock or a statement.
//! - [`redact`]: database URLs as logs may show them.
//! - [`error`]: what a database error means (a duplicate, a race to rerun, a timeout, an
//!   outage, a bug), sorted in this one place for the engine, the worker and the routes.

pub mod error;
mod limits;
mod redact;

pub use limits::Limits;
pub use redact::redact;

use std::time::Duration;

use migration::{Migrator, MigratorTrait};
use sea_orm::{ConnectOptions, Database, DatabaseConnection, DbErr};

use crate::config::{Settings, IN_MEMORY_DATABASE_URL};

#[derive(Debug, thiserror::Error)]
pub enum DbSetupError {
    #[error("cannot connect to the database: {0}")]
    Connect(DbErr),
    #[error("cannot migrate the database schema: {0}")]
    Migrate(DbErr),
}

pub async fn connect(url: &str, settings: &Settings) -> Result<DatabaseConnection, DbSetupError> {
    let timeout = Duration::from_secs(settings.db_timeout_secs);
    // SQLite's only lock wait: the busy timeout, set per connection.
    let lock_timeout = Duration::from_millis(settings.lock_timeout_ms);
    let mut opts = ConnectOptions::new(url.to_owned());
    opts.max_connections(settings.max_connections())
        .connect_timeout(timeout)
        .acquire_timeout(timeout)
        .sqlx_logging(false);
    let cache = statement_cache_capacity(url, settings);
    if is_postgres(url) {
        // The ingest limits as session defaults, sent with the connection's startup: no round
        // trip per transaction. The migrations run on a connection of their own without them
        // ([`migrate`]); the sweeper overrides them with `SET LOCAL`.
        let limits = ingest_limits(settings);
        let ms = |d: Duration| d.as_millis().to_string();
        let session = [
            ("lock_timeout", ms(limits.lock)),
            ("statement_timeout", ms(limits.statement)),
            (
                "idle_in_transaction_session_timeout",
                ms(limits.idle_in_transaction),
            ),
        ];
        opts.map_sqlx_postgres_opts(move |o| {
            let o = o.options(session.clone());
            match cache {
                Some(capacity) => o.statement_cache_capacity(capacity),
                None => o,
            }
        });
    } else if is_mysql(url) {
        if let Some(capacity) = cache {
            opts.map_sqlx_mysql_opts(move |o| o.statement_cache_capacity(capacity));
        }
        // The ingest limits as the session's, set as each connection opens: no round trip per
        // transaction. The migrations run on a connection of their own without them
        // ([`migrate`]); the sweeper sets its own and hands these back (`Limits::hand_back`).
        let session = ingest_limits(settings).mysql_session();
        opts.map_sqlx_mysql_pool_opts(move |o| {
            let session = session.clone();
            o.after_connect(move |conn, _| {
                let session = session.clone();
                Box::pin(async move {
                    use sea_orm::sqlx::{AssertSqlSafe, Executor};
                    conn.execute(sea_orm::sqlx::raw_sql(AssertSqlSafe(session)))
                        .await
                        .map(|_| ())
                })
            })
        });
    }
    if url == IN_MEMORY_DATABASE_URL {
        // Each SQLite `:memory:` connection is its own database, so the pool holds exactly one
        // connection and never closes it.
        opts.max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None);
    } else if url.starts_with("sqlite:") {
        // WAL lets readers (the admin API) run beside the one writer; writers queue on the
        // busy timeout (the lock timeout) instead of failing at once. `synchronous = FULL`: in WAL mode `NORMAL`
        // skips the fsync at each commit, so a commit answered 200 could roll back on power
        // loss and the provider, told `processed`, would never retry. Group commit pays the
        // fsync once per batch (BENCHMARKS.md, change 17).
        opts.map_sqlx_sqlite_opts(move |o| {
            o.journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Full)
                .busy_timeout(lock_timeout)
        });
    }
    Database::connect(opts).await.map_err(DbSetupError::Connect)
}

/// sqlx's default: prepared statements kept per connection.
const SQLX_STATEMENT_CACHE: usize = 100;
/// Prepared statements the whole pool may hold on a MySQL server, well under MySQL's and
/// MariaDB's default global `max_prepared_stmt_count` (16,382), which other clients share.
const POOL_STATEMENT_BUDGET: usize = 8_000;

/// The per-connection statement cache for a MySQL/MariaDB or PostgreSQL URL, when the URL does
/// not set `statement-cache-capacity` itself and the default is too small.
///
/// Group commit writes each handler's rows with one multi-row statement, and every batch size
/// is a different statement text: up to `max_batch` statements per handler, plus the dedupe
/// INSERT's. When they outnumber sqlx's cache of 100, statements are evicted and prepared
/// again on every batch, and on MariaDB a commit that re-prepares stalls for 130–270 ms
/// (BENCHMARKS.md, change 14). Room for four statements per batch size and the rest keeps
/// them all prepared, within a pool-wide budget.
fn statement_cache_capacity(url: &str, settings: &Settings) -> Option<usize> {
    let server = ["postgres:", "postgresql:", "mysql:", "mariadb:"]
        .iter()
        .any(|scheme| url.starts_with(scheme));
    if !server || url.contains("statement-cache-capacity=") {
        return None;
    }
    let wanted = settings.max_batch.saturating_mul(4).saturating_add(32);
    let connections = usize::try_from(settings.max_connections()).unwrap_or(usize::MAX);
    let affordable = POOL_STATEMENT_BUDGET / connections.max(1);
    let capacity = wanted.min(affordable).max(SQLX_STATEMENT_CACHE);
    (capacity > SQLX_STATEMENT_CACHE).then_some(capacity)
}

/// The limits of an ingest transaction, from `lock_timeout_ms`, `statement_timeout_ms` and
/// `idle_in_transaction_timeout_ms`.
pub fn ingest_limits(settings: &Settings) -> Limits {
    Limits {
        lock: Duration::from_millis(settings.lock_timeout_ms),
        statement: Duration::from_millis(settings.statement_timeout_ms),
        idle_in_transaction: Duration::from_millis(settings.idle_in_transaction_timeout_ms),
    }
}

fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres:") || url.starts_with("postgresql:")
}

fn is_mysql(url: &str) -> bool {
    url.starts_with("mysql:") || url.starts_with("mariadb:")
}

/// The most bytes one statement may carry: MariaDB/MySQL's `max_allowed_packet`, which
/// bounds every body idemhook stores and every batch's multi-row INSERT. `None` on PostgreSQL
/// and SQLite, whose limits (about 1 GB a value) are above anything a webhook sends.
pub async fn max_statement_bytes(db: &DatabaseConnection) -> Result<Option<u64>, DbErr> {
    use sea_orm::{ConnectionTrait, DatabaseBackend, Statement};
    if db.get_database_backend() != DatabaseBackend::MySql {
        return Ok(None);
    }
    let row = db
        .query_one_raw(Statement::from_string(
            DatabaseBackend::MySql,
            "SELECT @@max_allowed_packet",
        ))
        .await?;
    let packet: Option<u64> = match row {
        Some(row) => row
            .try_get_by_index::<i64>(0)
            .ok()
            .and_then(|v| u64::try_from(v).ok())
            .or_else(|| row.try_get_by_index::<u64>(0).ok()),
        None => None,
    };
    Ok(packet)
}

/// Applies pending migrations. On PostgreSQL and MariaDB/MySQL they get a connection of their
/// own: the pool's sessions carry the ingest timeouts, which a long migration must not hit.
/// (SQLite uses the pool: no session limits there, and an in-memory database exists only on
/// its one connection.) Concurrent launches on one database should be staggered (or the schema
/// migrated beforehand with `cargo run -p migration -- up`).
pub async fn migrate(url: &str, db: &DatabaseConnection) -> Result<(), DbSetupError> {
    if !is_postgres(url) && !is_mysql(url) {
        return Migrator::up(db, None).await.map_err(DbSetupError::Migrate);
    }
    let plain = Database::connect(url)
        .await
        .map_err(DbSetupError::Connect)?;
    let migrated = Migrator::up(&plain, None).await;
    let _ = plain.close().await;
    migrated.map_err(DbSetupError::Migrate)
}

/// The app's database at launch: connected (with a warning when it is the in-memory store),
/// migrated, and logged ready. The error names the database, its password redacted.
pub async fn open(url: &str, settings: &Settings) -> Result<DatabaseConnection, String> {
    if url == IN_MEMORY_DATABASE_URL {
        tracing::warn!(
            "IDEMPOTENCY_STORE=in-memory: dedupe records live in memory and are LOST on restart; \
             a redelivery after a restart will be processed again"
        );
    }
    let db = connect(url, settings)
        .await
        .map_err(|e| format!("{e} (database: {})", redact(url)))?;
    migrate(url, &db).await.map_err(|e| e.to_string())?;
    tracing::info!(database = %redact(url), shards = settings.shards, "database ready");
    Ok(db)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(max_batch: usize, db_max_connections: Option<u32>) -> Settings {
        Settings {
            max_batch,
            db_max_connections,
            ..Settings::default()
        }
    }

    #[test]
    fn the_statement_cache_grows_with_max_batch_within_the_pool_budget() {
        let pg = "postgres://u@h/db";
        let my = "mysql://u@h/db";
        // The default batch fits sqlx's default cache: nothing to change.
        assert_eq!(statement_cache_capacity(my, &settings(16, None)), None);
        // 64 events: four statements per size and room for the rest.
        assert_eq!(statement_cache_capacity(my, &settings(64, None)), Some(288));
        assert_eq!(statement_cache_capacity(pg, &settings(64, None)), Some(288));
        // A huge batch on a large pool stays within the pool-wide budget (8,000 / 40).
        assert_eq!(
            statement_cache_capacity(my, &settings(1000, Some(40))),
            Some(200)
        );
        // An explicit setting in the URL wins; SQLite has no server-side statements to size.
        let explicit = "mysql://u@h/db?statement-cache-capacity=50";
        assert_eq!(
            statement_cache_capacity(explicit, &settings(64, None)),
            None
        );
        assert_eq!(
            statement_cache_capacity("sqlite://x.db", &settings(64, None)),
            None
        );
    }

    /// A commit answered 200 must survive power loss: every pooled SQLite connection syncs
    /// the WAL at each commit.
    #[tokio::test]
    async fn sqlite_commits_are_synced_to_disk() {
        use sea_orm::{ConnectionTrait, Statement};
        let path = std::env::temp_dir().join(format!("idemhook_sync_{}.db", std::process::id()));
        let url = format!("sqlite://{}?mode=rwc", path.display());
        let db = connect(&url, &Settings::default()).await.unwrap();
        let row = db
            .query_one_raw(Statement::from_string(
                db.get_database_backend(),
                "PRAGMA synchronous",
            ))
            .await
            .unwrap()
            .unwrap();
        let level: i64 = row.try_get_by_index(0).unwrap();
        assert_eq!(level, 2, "PRAGMA synchronous: 2 is FULL");
        db.close().await.unwrap();
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
    }
}
