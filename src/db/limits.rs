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
//! The pool's sessions start with them on both servers, so an ingest transaction pays no round
//! trip for them: PostgreSQL's through the connection's startup options, MariaDB's by a `SET
//! SESSION` as each connection opens (one round trip per connection, not per transaction; it
//! was one of the seven round trips of every MariaDB batch, BENCHMARKS change 27). The
//! migrations get a connection of their own without them. The sweeper sets its own for its
//! transactions ([`Limits::apply`]): `SET LOCAL` on PostgreSQL, which ends with the
//! transaction; on MariaDB, which has no `SET LOCAL`, it sets the session's back before the
//! connection returns to the pool ([`Limits::hand_back`]). A lock or statement timeout is
//! answered 503 after one attempt ([`super::error`] sorts it as `Timeout`); the whole
//! transaction is also bounded by a client-side timer, so a connection that stopped answering
//! fails too.

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

    /// Sets these limits, the session's own, back on `txn`'s connection after another
    /// transaction's [`Limits::apply`], before it returns to the pool: on MariaDB, where they
    /// are the session's and the next transaction on the connection would inherit the other's.
    /// Nothing elsewhere (`SET LOCAL` ends with the transaction).
    pub async fn hand_back(&self, txn: &DatabaseTransaction) -> Result<(), DbErr> {
        match txn.get_database_backend() {
            DatabaseBackend::MySql => self.apply(txn).await,
            _ => Ok(()),
        }
    }

    /// The statement that gives a new MariaDB/MySQL session these limits.
    pub fn mysql_session(&self) -> String {
        self.statement_text(DatabaseBackend::MySql)
            .unwrap_or_default()
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
