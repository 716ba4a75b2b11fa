//! How long one transaction may wait, set on the transaction itself.
//!
//! Without these, a row locked elsewhere (another instance's slow transaction, an operator's
//! open `SELECT … FOR UPDATE`) holds every transaction that needs it for as long as the lock
//! is held, and a database that stops answering holds them forever. They are set where the
//! ingest transactions get them and nowhere else: the migrations run without them, and the
//! sweeper sets its own.
//!
//! | backend    | lock wait                   | one statement          | idle in a transaction |
//! |------------|-----------------------------|------------------------|-----------------------|
//! | PostgreSQL | `lock_timeout`              | `statement_timeout`    | `idle_in_transaction_session_timeout` |
//! | MariaDB    | `innodb_lock_wait_timeout`  | `max_statement_time`   | (none)                |
//! | SQLite     | `busy_timeout` (connection) | (none)                 | (none)                |
//!
//! PostgreSQL: the pool's sessions start with them (connection options, no round trip per
//! transaction), the migrations get a connection of their own, and the sweeper overrides them
//! with `SET LOCAL` ([`Limits::apply`]).
//! MariaDB has no `SET LOCAL`: its two variables are set for the session at the start of each
//! ingest transaction ([`Limits::apply`]), and whoever uses the connection next sets its own. A lock or statement
//! timeout is answered 503 after one attempt ([`super::error`] sorts it as
//! `Timeout`); the whole transaction is also bounded by a client-side timer, so a connection
//! that stopped answering fails too.

use std::time::Duration;

use sea_orm::{ConnectionTrait, DatabaseBackend, DatabaseTransaction, DbErr};

/// The waits one transaction allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub lock: Duration,
    pub statement: Duration,
    /// PostgreSQL only: a transaction left open and idle this long is ended by the server.
    pub idle_in_transaction: Duration,
}

impl Limits {
    /// Sets the limits on `txn`, first thing after BEGIN. One round trip; none on SQLite,
    /// whose busy timeout is the connection's.
    pub async fn apply(&self, txn: &DatabaseTransaction) -> Result<(), DbErr> {
        match self.statement_text(txn.get_database_backend()) {
            Some(sql) => txn.execute_unprepared(&sql).await.map(|_| ()),
            None => Ok(()),
        }
    }

    fn statement_text(&self, backend: DatabaseBackend) -> Option<String> {
        let ms = |d: Duration| d.as_millis().max(1);
        match backend {
            DatabaseBackend::Postgres => Some(format!(
                "SET LOCAL lock_timeout = {}; SET LOCAL statement_timeout = {}; \
                 SET LOCAL idle_in_transaction_session_timeout = {}",
                ms(self.lock),
                ms(self.statement),
                ms(self.idle_in_transaction)
            )),
            // innodb_lock_wait_timeout takes whole seconds (at least 1).
            DatabaseBackend::MySql => Some(format!(
                "SET SESSION innodb_lock_wait_timeout = {}, SESSION max_statement_time = {:.3}",
                self.lock.as_secs_f64().ceil().max(1.0),
                self.statement.as_secs_f64()
            )),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_backend_gets_its_own_form() {
        let limits = Limits {
            lock: Duration::from_millis(2500),
            statement: Duration::from_millis(5000),
            idle_in_transaction: Duration::from_secs(10),
        };
        assert_eq!(
            limits.statement_text(DatabaseBackend::Postgres).unwrap(),
            "SET LOCAL lock_timeout = 2500; SET LOCAL statement_timeout = 5000; \
             SET LOCAL idle_in_transaction_session_timeout = 10000"
        );
        assert_eq!(
            limits.statement_text(DatabaseBackend::MySql).unwrap(),
            "SET SESSION innodb_lock_wait_timeout = 3, SESSION max_statement_time = 5.000"
        );
        assert_eq!(limits.statement_text(DatabaseBackend::Sqlite), None);
    }
}
