//! PostgreSQL: a group commit as one statement, when every handler hands over its rows.
//!
//! ```text
//! WITH w0 AS (INSERT INTO processed_events (…) SELECT * FROM UNNEST($1::bytea[], …) RETURNING 1),
//!      w1 AS (INSERT INTO inbox (…) SELECT * FROM UNNEST(…) RETURNING 1),
//!      w2 AS (INSERT INTO payments (…) SELECT * FROM UNNEST(…) RETURNING 1),
//!      w3 AS (INSERT INTO orders AS t (…) SELECT * FROM UNNEST(…)
//!             ON CONFLICT (order_id) DO UPDATE SET amount_paid = t.amount_paid + excluded.amount_paid, …
//!             WHERE t.currency = excluded.currency AND t.amount_paid <= 9223372036854775807 - excluded.amount_paid
//!             RETURNING 1)
//! SELECT CASE WHEN (SELECT count(*) FROM w3) = $n THEN 0 ELSE CAST('…' || … AS int) END
//! ```
//!
//! Why: the transaction path costs BEGIN, the dedupe insert, a statement per handler and
//! COMMIT, five round trips for `inbox` + `payments`, where this costs one. What it keeps:
//! - **All or nothing.** A statement is atomic: its data-modifying parts commit together or
//!   not at all, like the transaction they replace.
//! - **The dedupe row is the arbiter.** Its insert has no `ON CONFLICT`: a key committed
//!   elsewhere, or held by another instance's open transaction until it commits, fails the
//!   statement with a unique violation, and the batch is redone event by event, as before.
//!   The rows go in digest order, so two instances' batches lock them in the same order.
//! - **A refused upsert row fails the statement**: the last `SELECT` casts a text to an
//!   integer when an upsert that may refuse (an order in another currency) returned fewer
//!   rows than it was given. That error rolls the whole statement back; the redo, where each
//!   handler runs its own statements, finds the event at fault and why.
//! - **Limits.** The pool's sessions start with the ingest `lock_timeout` and
//!   `statement_timeout` (`db::connect`), which bound this statement as they bound the
//!   transaction; the client bounds it by `db_timeout` too.
//! - **A lost reply** (the connection dropped, the client's bound ran out) is answered by the
//!   attempt token, as a lost COMMIT is: the first event's record holding this delivery's
//!   token means the statement was applied.
//!
//! The values go as arrays, one per column, not as `VALUES` lists: the text then depends only
//! on which tables and columns the batch writes, not on its size, so each connection prepares
//! it once and reuses it.

use std::fmt::Write as _;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use sea_orm::sqlx::{self, postgres::PgArguments, query::Query, Postgres};
use sea_orm::{DbBackend, DbErr, RuntimeErr, Value};

use super::batch::batch_failure;
use super::{dedupe_record, AttemptError, BatchFailure, Store};
use crate::db::error::{classify, DbErrorKind};
use crate::event::Event;
use crate::handlers::{Handler, Rows, Writes};

impl Store {
    /// The group's one statement, when the database is PostgreSQL and every handler of the
    /// group hands over its rows; `None` to take the transaction path instead.
    pub(super) async fn commit_statement(
        &self,
        events: &[(&Event, &[Arc<dyn Handler>])],
        groups: &[(&Arc<dyn Handler>, Vec<&Event>)],
    ) -> Option<Result<Duration, BatchFailure>> {
        if !self.one_statement || self.db.get_database_backend() != DbBackend::Postgres {
            return None;
        }
        let started = Instant::now();
        let now = self.clock.now();
        let records = events.iter().map(|(event, _)| dedupe_record(event, now));
        let mut writes = Writes::none().and(Rows::of(records));
        for (handler, its_events) in groups {
            // A panic here is a handler's failure like any other: the redo isolates it.
            let handed = std::panic::catch_unwind(AssertUnwindSafe(|| handler.writes(its_events)));
            match handed {
                Ok(Some(Ok(more))) => writes.extend(more),
                Ok(None) => return None,
                Ok(Some(Err(_))) | Err(_) => return Some(Err(BatchFailure::Redo)),
            }
        }
        let statement = Statement::of(writes)?;
        let batch: Vec<&Event> = events.iter().map(|(e, _)| *e).collect();
        match self.wait(self.legacy_replays(&self.db, &batch)).await {
            Ok(replays) if replays.is_empty() => {}
            // A replay of an earlier release's record: each event alone finds its own answer.
            Ok(_) => return Some(Err(BatchFailure::Redo)),
            Err(err) => return Some(Err(batch_failure(err))),
        }
        let pool = self.db.get_postgres_connection_pool();
        let sent = self.wait(async {
            statement
                .query()
                .execute(pool)
                .await
                .map_err(|err| DbErr::Exec(RuntimeErr::SqlxError(Arc::new(err))))
        });
        if let Err(err) = sent.await {
            let reply_lost = match &err {
                AttemptError::Db(db) => classify(db) == DbErrorKind::Unavailable,
                _ => true,
            };
            // Applied after all? Then every event of the group is (one statement).
            let applied = match events.first() {
                Some((first, _)) if reply_lost => self.committed_by(first).await,
                _ => false,
            };
            if !applied {
                return Some(Err(batch_failure(err)));
            }
        }
        self.metrics.batch_statements.inc();
        crate::handlers::committed(groups.iter().map(|(h, _)| *h));
        Some(Ok(started.elapsed()))
    }
}

/// The statement's text and its arrays, in parameter order.
struct Statement {
    sql: String,
    arrays: Vec<Array>,
    /// Rows each refusing upsert was given (bound after the arrays).
    expected: Vec<i64>,
}

impl Statement {
    /// `None` when a table's rows cannot be written this way (rows setting different
    /// columns, a column type it does not bind): the transaction path then writes them.
    fn of(writes: Writes) -> Option<Self> {
        let mut sql = String::from("WITH ");
        let mut arrays = Vec::new();
        let mut checks = Vec::new();
        let mut expected = Vec::new();
        for (n, rows) in writes.tables.into_iter().enumerate() {
            if rows.ragged {
                return None;
            }
            let count = rows.len() as i64;
            let columns = quoted(&rows.columns);
            let mut unnest = Vec::with_capacity(rows.columns.len());
            for values in rows.values {
                let array = Array::of(values)?;
                arrays.push(array);
                unnest.push(format!(
                    "${}::{}",
                    arrays.len(),
                    arrays[arrays.len() - 1].cast()
                ));
            }
            let sep = if n == 0 { "" } else { ", " };
            let table = quote(&rows.table);
            let _ = write!(
                sql,
                "{sep}w{n} AS (INSERT INTO {table} AS t ({columns}) SELECT * FROM UNNEST({})",
                unnest.join(", ")
            );
            if let Some(upsert) = &rows.upsert {
                let mut set: Vec<String> = upsert
                    .replace
                    .iter()
                    .map(|c| format!("{0} = excluded.{0}", quote(c)))
                    .collect();
                let mut guard = Vec::new();
                if let Some(add) = &upsert.adds_to {
                    let add = quote(add);
                    set.push(format!("{add} = t.{add} + excluded.{add}"));
                    guard.push(format!("t.{add} <= {} - excluded.{add}", i64::MAX));
                }
                if let Some(same) = &upsert.same {
                    guard.push(format!("t.{0} = excluded.{0}", quote(same)));
                }
                let key = quote(&upsert.key);
                let _ = match set.is_empty() {
                    true => write!(sql, " ON CONFLICT ({key}) DO NOTHING"),
                    false => write!(sql, " ON CONFLICT ({key}) DO UPDATE SET {}", set.join(", ")),
                };
                if !guard.is_empty() {
                    let _ = write!(sql, " WHERE {}", guard.join(" AND "));
                }
                if upsert.may_refuse() {
                    checks.push(n);
                    expected.push(count);
                }
            }
            sql.push_str(" RETURNING 1)");
        }
        // The check reads the counts, so it cannot be folded away when the statement is
        // planned; the text in the error names the table for whoever reads the log.
        let mut verdict = String::from("0");
        for (i, n) in checks.iter().enumerate() {
            let param = arrays.len() + i + 1;
            verdict = format!(
                "CASE WHEN (SELECT count(*) FROM w{n}) = ${param}::int8 THEN {verdict} \
                 ELSE CAST('an upsert refused rows: ' || (SELECT count(*) FROM w{n}) AS int) END"
            );
        }
        let _ = write!(sql, " SELECT {verdict}");
        Some(Self {
            sql,
            arrays,
            expected,
        })
    }

    fn query(&self) -> Query<'_, Postgres, PgArguments> {
        // Safe: the text holds only the entities' own identifiers, quoted; values are bound.
        let mut query = sqlx::query(sqlx::AssertSqlSafe(self.sql.as_str()));
        for array in &self.arrays {
            query = array.bind(query);
        }
        for count in &self.expected {
            query = query.bind(*count);
        }
        query
    }
}

/// One column's values as a PostgreSQL array (NULLs kept).
enum Array {
    Bool(Vec<Option<bool>>),
    SmallInt(Vec<Option<i16>>),
    Int(Vec<Option<i32>>),
    BigInt(Vec<Option<i64>>),
    Text(Vec<Option<String>>),
    Bytes(Vec<Option<Vec<u8>>>),
    Time(Vec<Option<DateTime<Utc>>>),
}

impl Array {
    /// `None` for a type this path does not bind, or a column whose values differ in type.
    fn of(values: Vec<Value>) -> Option<Self> {
        macro_rules! collect {
            ($variant:ident, $array:ident) => {
                values
                    .into_iter()
                    .map(|v| match v {
                        Value::$variant(v) => Some(v),
                        _ => None,
                    })
                    .collect::<Option<Vec<_>>>()
                    .map(Array::$array)
            };
        }
        match values.first()? {
            Value::Bool(_) => collect!(Bool, Bool),
            Value::SmallInt(_) => collect!(SmallInt, SmallInt),
            Value::Int(_) => collect!(Int, Int),
            Value::BigInt(_) => collect!(BigInt, BigInt),
            Value::String(_) => collect!(String, Text),
            Value::Bytes(_) => collect!(Bytes, Bytes),
            Value::ChronoDateTimeUtc(_) => collect!(ChronoDateTimeUtc, Time),
            _ => None,
        }
    }

    fn cast(&self) -> &'static str {
        match self {
            Array::Bool(_) => "bool[]",
            Array::SmallInt(_) => "int2[]",
            Array::Int(_) => "int4[]",
            Array::BigInt(_) => "int8[]",
            Array::Text(_) => "text[]",
            Array::Bytes(_) => "bytea[]",
            Array::Time(_) => "timestamptz[]",
        }
    }

    fn bind<'q>(
        &'q self,
        query: Query<'q, Postgres, PgArguments>,
    ) -> Query<'q, Postgres, PgArguments> {
        match self {
            Array::Bool(v) => query.bind(v),
            Array::SmallInt(v) => query.bind(v),
            Array::Int(v) => query.bind(v),
            Array::BigInt(v) => query.bind(v),
            Array::Text(v) => query.bind(v),
            Array::Bytes(v) => query.bind(v),
            Array::Time(v) => query.bind(v),
        }
    }
}

/// `name` as a PostgreSQL identifier.
fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn quoted(names: &[String]) -> String {
    names
        .iter()
        .map(|n| quote(n))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handlers::Upsert;

    #[test]
    fn the_text_depends_on_the_tables_and_columns_not_on_the_rows() {
        let event = Event::payment("e1", "o1", 1, "eur");
        let other = Event::payment("e2", "o1", 1, "eur");
        let now = Utc::now();
        let one = Writes::none().and(Rows::of([dedupe_record(&event, now)]));
        let two = Writes::none().and(Rows::of([
            dedupe_record(&event, now),
            dedupe_record(&other, now),
        ]));
        let (one, two) = (Statement::of(one).unwrap(), Statement::of(two).unwrap());
        assert_eq!(one.sql, two.sql);
        assert!(
            one.sql
                .starts_with("WITH w0 AS (INSERT INTO \"processed_events\""),
            "{}",
            one.sql
        );
        assert!(
            !one.sql.contains("ON CONFLICT"),
            "the dedupe insert must fail on a conflict"
        );
        assert!(one.sql.ends_with("SELECT 0"), "{}", one.sql);
    }

    #[test]
    fn a_refusing_upsert_is_checked_and_a_replacing_one_is_not() {
        use crate::entities::{delivery_body, order};
        let now = Utc::now();
        let order = order::ActiveModel {
            order_id: sea_orm::Set("o1".into()),
            status: sea_orm::Set("paid".into()),
            amount_paid: sea_orm::Set(5),
            currency: sea_orm::Set("eur".into()),
            created_at: sea_orm::Set(now),
            updated_at: sea_orm::Set(now),
        };
        let body = delivery_body::ActiveModel {
            event_digest: sea_orm::Set(vec![1; 32]),
            payload: sea_orm::Set(b"{}".to_vec()),
            created_at: sea_orm::Set(now),
        };
        let writes = Writes::none()
            .and(
                Rows::of([body]).upsert(
                    Upsert::on(delivery_body::Column::EventDigest)
                        .replace(delivery_body::Column::Payload),
                ),
            )
            .and(
                Rows::of([order]).upsert(
                    Upsert::on(order::Column::OrderId)
                        .adds_to(order::Column::AmountPaid)
                        .only_if_same(order::Column::Currency),
                ),
            );
        let statement = Statement::of(writes).unwrap();
        assert_eq!(statement.expected, vec![1]);
        let sql = &statement.sql;
        assert!(
            sql.contains("\"payload\" = excluded.\"payload\" RETURNING 1"),
            "{sql}"
        );
        assert!(
            sql.contains("WHERE t.\"amount_paid\" <= 9223372036854775807 - excluded.\"amount_paid\" AND t.\"currency\" = excluded.\"currency\""),
            "{sql}"
        );
        assert!(
            sql.contains("(SELECT count(*) FROM w1) = $10::int8"),
            "{sql}"
        );
    }
}
