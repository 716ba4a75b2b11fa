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
        // busy timeout instead of failing at once. `synchronous = FULL`: in WAL mode `NORMAL`
        // skips the fsync at each commit, so a commit answered 200 could roll back on power
        // loss and the provider, told `processed`, would never retry. Group commit pays the
        // fsync once per batch (BENCHMARKS.md, change 17).
        opts.map_sqlx_sqlite_opts(move |o| {
            o.journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Full)
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

/// The URL with every credential replaced by `***`, for logs: the password in the user info
/// (`user:password@`), and any query parameter that sqlx reads a secret from (`password`,
/// `sslpassword`, and, to be safe, any name containing `pass`, `secret` or `token`).
pub fn redact(url: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let mut out = redact_user_info(base);
    if let Some(query) = query {
        out.push('?');
        let params: Vec<String> = query
            .split('&')
            .map(|param| match param.split_once('=') {
                Some((name, _)) if is_secret_param(name) => format!("{name}=***"),
                _ => param.to_owned(),
            })
            .collect();
        out.push_str(&params.join("&"));
    }
    out
}

/// `scheme://user:password@host/…` with the password replaced. The user info ends at the last
/// `@` of the authority (a literal `@` in a password is sent percent-encoded).
fn redact_user_info(base: &str) -> String {
    let Some(scheme_end) = base.find("://").map(|i| i + 3) else {
        return base.to_owned();
    };
    let authority_end = base[scheme_end..]
        .find(['/', '#'])
        .map_or(base.len(), |i| scheme_end + i);
    let authority = &base[scheme_end..authority_end];
    match authority.rfind('@') {
        Some(at) => match authority[..at].split_once(':') {
            Some((user, _)) => format!(
                "{}{user}:***{}",
                &base[..scheme_end],
                &base[scheme_end + at..]
            ),
            None => base.to_owned(),
        },
        None => base.to_owned(),
    }
}

fn is_secret_param(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    ["pass", "secret", "token"].iter().any(|w| name.contains(w))
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

    use super::redact;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact("mysql://root@h/db"), "mysql://root@h/db");
        assert_eq!(
            redact("postgres://u@h/db?password=secret&sslmode=disable"),
            "postgres://u@h/db?password=***&sslmode=disable"
        );
        assert_eq!(
            redact("postgres://u:p%40ss@h/db?sslpassword=k&x=1"),
            "postgres://u:***@h/db?sslpassword=***&x=1"
        );
        // An `@` in the query is no user info.
        assert_eq!(
            redact("mysql://h/db?user=a@b&Password=s"),
            "mysql://h/db?user=a@b&Password=***"
        );
        assert_eq!(redact("sqlite://x.db?mode=rwc"), "sqlite://x.db?mode=rwc");
    }
}
