//! The database connection: opened and migrated at launch, or the launch fails.

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
    let mut opts = ConnectOptions::new(url.to_owned());
    opts.max_connections(settings.max_connections())
        .connect_timeout(timeout)
        .acquire_timeout(timeout)
        .sqlx_logging(false);
    if let Some(capacity) = statement_cache_capacity(url, settings) {
        if url.starts_with("postgres") {
            opts.map_sqlx_postgres_opts(move |o| o.statement_cache_capacity(capacity));
        } else {
            opts.map_sqlx_mysql_opts(move |o| o.statement_cache_capacity(capacity));
        }
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
        // busy timeout instead of failing at once.
        opts.map_sqlx_sqlite_opts(move |o| {
            o.journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Normal)
                .busy_timeout(timeout)
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

/// Applies pending migrations. Concurrent launches on one database should be staggered
/// (or the schema migrated beforehand with `cargo run -p migration -- up`).
pub async fn migrate(db: &DatabaseConnection) -> Result<(), DbSetupError> {
    Migrator::up(db, None).await.map_err(DbSetupError::Migrate)
}

/// The URL with any password replaced, for logs.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &url[scheme + 3..at];
            match creds.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme + 3],
                    &creds[..colon],
                    &url[at..]
                ),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
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

    use super::redact;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact("mysql://root@h/db"), "mysql://root@h/db");
        assert_eq!(redact("sqlite://x.db?mode=rwc"), "sqlite://x.db?mode=rwc");
    }
}
