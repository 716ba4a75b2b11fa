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
