//! The one place where database errors are sorted into what the engine does about them.
//!
//! - `UniqueViolation`: on the dedupe insert, another delivery (on this or another instance)
//!   committed the event first: a duplicate, not an error.
//! - `Retryable`: the transaction lost a deadlock, a lock wait or a serialization/certification
//!   race; nothing it did is visible, and rerunning it is safe because the rerun's dedupe
//!   insert meets the winner's committed row.
//! - `Timeout`: the transaction waited past its lock or statement timeout (a row locked
//!   elsewhere, a statement that would not finish). Answered 503 after one attempt: a rerun
//!   would wait on the same lock again, holding a writer that other events need.
//! - `Unavailable`: the database cannot be reached; answer 503 so the provider retries.
//! - `Other`: a bug or a bad write; answer 500.

use sea_orm::{sqlx, DbErr, RuntimeErr};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbErrorKind {
    UniqueViolation,
    Retryable,
    Timeout,
    Unavailable,
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    MySql,
    Sqlite,
}

pub fn classify(err: &DbErr) -> DbErrorKind {
    match err {
        DbErr::ConnectionAcquire(_) => DbErrorKind::Unavailable,
        DbErr::Conn(RuntimeErr::SqlxError(e))
        | DbErr::Exec(RuntimeErr::SqlxError(e))
        | DbErr::Query(RuntimeErr::SqlxError(e)) => classify_sqlx(e),
        DbErr::Conn(_) => DbErrorKind::Unavailable,
        _ => DbErrorKind::Other,
    }
}

fn classify_sqlx(err: &sqlx::Error) -> DbErrorKind {
    match err {
        sqlx::Error::Database(db) => {
            if let Some(my) = db.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>() {
                match classify_code(Backend::MySql, &my.number().to_string()) {
                    // A Galera node that is joining, desynced or has left the primary
                    // component refuses work with messages naming WSREP under several codes.
                    DbErrorKind::Other if my.message().contains("WSREP") => {
                        DbErrorKind::Unavailable
                    }
                    kind => kind,
                }
            } else if db
                .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
                .is_some()
            {
                classify_code(Backend::Postgres, db.code().as_deref().unwrap_or(""))
            } else {
                classify_code(Backend::Sqlite, db.code().as_deref().unwrap_or(""))
            }
        }
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => DbErrorKind::Unavailable,
        _ => DbErrorKind::Other,
    }
}

/// `code` is the SQLSTATE on PostgreSQL, the error number on MySQL/MariaDB, and the extended
/// result code on SQLite.
pub fn classify_code(backend: Backend, code: &str) -> DbErrorKind {
    use DbErrorKind::*;
    match backend {
        Backend::Postgres => match code {
            "23505" => UniqueViolation,
            // serialization_failure (also CockroachDB/YugabyteDB retry errors),
            // deadlock_detected
            "40001" | "40P01" => Retryable,
            // lock_not_available (lock_timeout), query_canceled (statement_timeout)
            "55P03" | "57014" => Timeout,
            // admin_shutdown, crash_shutdown, cannot_connect_now, too_many_connections,
            // read_only_sql_transaction (a failover promoted another primary)
            "57P01" | "57P02" | "57P03" | "53300" | "25006" => Unavailable,
            c if c.starts_with("08") => Unavailable,
            _ => Other,
        },
        Backend::MySql => match code {
            "1062" | "1022" | "1169" | "1586" => UniqueViolation,
            // deadlock (also Galera certification conflicts)
            "1213" => Retryable,
            // lock wait timeout, MariaDB's max_statement_time, MySQL's max_execution_time
            "1205" | "1969" | "3024" => Timeout,
            // too many connections, server shutdown, WSREP not ready, connection killed,
            // read-only, "got error during COMMIT/ROLLBACK" (the engine, e.g. a Galera node
            // leaving the cluster, refused the commit: nothing was committed), network
            // read/write errors, client-side connection errors
            "1040" | "1053" | "1047" | "1927" | "1290" | "1836" | "1180" | "1181" | "1158"
            | "1159" | "1160" | "1161" | "2002" | "2003" | "2006" | "2013" | "2055" | "4031" => {
                Unavailable
            }
            _ => Other,
        },
        Backend::Sqlite => match code {
            // SQLITE_CONSTRAINT_UNIQUE, SQLITE_CONSTRAINT_PRIMARYKEY
            "2067" | "1555" => UniqueViolation,
            // SQLITE_BUSY after the busy timeout (the lock timeout), SQLITE_BUSY_RECOVERY
            "5" | "261" => Timeout,
            // SQLITE_BUSY_SNAPSHOT, SQLITE_BUSY_TIMEOUT, SQLITE_LOCKED: a race to rerun
            "517" | "773" | "6" | "262" => Retryable,
            // SQLITE_CANTOPEN, SQLITE_IOERR, SQLITE_FULL
            "14" | "10" | "13" => Unavailable,
            _ => Other,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use DbErrorKind::*;

    #[test]
    fn postgres_codes() {
        assert_eq!(classify_code(Backend::Postgres, "23505"), UniqueViolation);
        assert_eq!(classify_code(Backend::Postgres, "40001"), Retryable);
        assert_eq!(classify_code(Backend::Postgres, "40P01"), Retryable);
        assert_eq!(classify_code(Backend::Postgres, "55P03"), Timeout);
        assert_eq!(classify_code(Backend::Postgres, "57014"), Timeout);
        assert_eq!(classify_code(Backend::Postgres, "08006"), Unavailable);
        assert_eq!(classify_code(Backend::Postgres, "57P01"), Unavailable);
        assert_eq!(classify_code(Backend::Postgres, "22001"), Other);
    }

    #[test]
    fn mysql_codes() {
        assert_eq!(classify_code(Backend::MySql, "1062"), UniqueViolation);
        assert_eq!(classify_code(Backend::MySql, "1213"), Retryable);
        assert_eq!(classify_code(Backend::MySql, "1205"), Timeout);
        assert_eq!(classify_code(Backend::MySql, "1969"), Timeout);
        assert_eq!(classify_code(Backend::MySql, "2013"), Unavailable);
        assert_eq!(classify_code(Backend::MySql, "1047"), Unavailable);
        assert_eq!(classify_code(Backend::MySql, "1180"), Unavailable);
        assert_eq!(classify_code(Backend::MySql, "1406"), Other);
    }

    #[test]
    fn sqlite_codes() {
        assert_eq!(classify_code(Backend::Sqlite, "1555"), UniqueViolation);
        assert_eq!(classify_code(Backend::Sqlite, "2067"), UniqueViolation);
        assert_eq!(classify_code(Backend::Sqlite, "5"), Timeout);
        assert_eq!(classify_code(Backend::Sqlite, "517"), Retryable);
        assert_eq!(classify_code(Backend::Sqlite, "1"), Other);
    }

    #[test]
    fn pool_errors_are_unavailable() {
        assert_eq!(
            classify(&DbErr::Conn(RuntimeErr::SqlxError(std::sync::Arc::new(
                sqlx::Error::PoolTimedOut
            )))),
            Unavailable
        );
        assert_eq!(classify(&DbErr::Custom("x".into())), Other);
    }
}
