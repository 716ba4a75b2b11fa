//! `GET /events`: one page of events, newest first, by keyset.
//!
//! An event lives in one of three places: `processed_events` (processed or rejected),
//! `failed_attempts` without a settled record (failed), and, for a forwarding source, its
//! `deliveries` row. Each status reads one of them; with no status, the three streams are
//! merged. Every stream is the same query shape:
//!
//! ```sql
//! SELECT key_digest, t FROM … WHERE status = ? [AND source = ?] [AND event_type = ?]
//!   [AND t >= since] [AND t < until]
//!   AND t <= cursor.t AND (t < cursor.t OR key_digest < cursor.digest)
//! ORDER BY t DESC, key_digest DESC LIMIT page + 1
//! ```
//!
//! which walks an index ending in `(t, key_digest)` backwards and stops after one page
//! (migration `m20261129_000001_operator`). A page of digests is then read whole with three
//! `IN` lookups ([`super::view`]), so every item has the same shape whichever stream found it.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::extension::mysql::{IndexHintScope, IndexName, MySqlSelectStatementExt};
use sea_orm::sea_query::{Alias, Expr, ExprTrait, Query, SimpleExpr};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseBackend, DbErr, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Select,
};

use super::filter::{Cursor, ListQuery};
use crate::entities::{delivery, failed_attempt, processed_event};
use crate::event::key::Sha256Digest;
use crate::forward::deliveries::{in_undelivered_state, same_event, state_is};
use crate::status::{DeliveryStatus, EventStatus};

/// An item of a page before it is read whole: its time and its digest.
pub type Hit = (DateTime<Utc>, Sha256Digest);

/// The columns one stream filters and orders by, and the index it walks: `(without a source
/// filter, with one)`.
struct Columns<C> {
    time: C,
    /// The row's own key: the page's order and its cursor.
    digest: C,
    /// The event's key, the hit (the same column but in the outbox, where an event has a row
    /// per destination).
    event: C,
    source: C,
    event_type: C,
    index: (&'static str, &'static str),
}

/// The page's hits, newest first, and the cursor of the next page (`None`: this is the last).
pub async fn page(
    db: &impl ConnectionTrait,
    query: &ListQuery,
) -> Result<(Vec<Hit>, Option<Cursor>), DbErr> {
    let mut hits = match query.filters.status {
        Some(status) => match (status.event_status(), status.delivery_status()) {
            (Some(EventStatus::Failed), _) => failed(db, query).await?,
            (Some(settled_as), _) => settled(db, query, settled_as).await?,
            (None, Some(state)) => deliveries(db, query, state).await?,
            (None, None) => Vec::new(),
        },
        None => {
            let mut all = settled(db, query, EventStatus::Processed).await?;
            all.extend(settled(db, query, EventStatus::Rejected).await?);
            all.extend(failed(db, query).await?);
            all
        }
    };
    hits.sort_unstable_by_key(|row| std::cmp::Reverse((row.at, row.key)));
    hits.dedup_by(|a, b| a.key == b.key);
    let limit = usize::try_from(query.limit).unwrap_or(usize::MAX);
    let next = if hits.len() > limit {
        hits.truncate(limit);
        hits.last().map(|row| Cursor {
            at: row.at,
            digest: row.key,
        })
    } else {
        None
    };
    // An event with several deliveries in the state is one hit (its rows may also fall on two
    // pages: listed on both).
    let mut seen = std::collections::HashSet::new();
    let events = hits
        .into_iter()
        .filter(|row| seen.insert(row.event))
        .map(|row| (row.at, row.event))
        .collect();
    Ok((events, next))
}

/// A row a stream found: its time and key (the order and the cursor), and its event.
struct Found {
    at: DateTime<Utc>,
    key: Sha256Digest,
    event: Sha256Digest,
}

async fn settled(
    db: &impl ConnectionTrait,
    query: &ListQuery,
    status: EventStatus,
) -> Result<Vec<Found>, DbErr> {
    use processed_event::Column as C;
    let select = processed_event::Entity::find().filter(C::Status.eq(status));
    let columns = Columns {
        time: C::ProcessedAt,
        digest: C::KeyDigest,
        event: C::KeyDigest,
        source: C::Source,
        event_type: C::EventType,
        index: (
            "idx_processed_events_status_recent",
            "idx_processed_events_source_recent",
        ),
    };
    newest(db, select, columns, query).await
}

/// Failed events: attempted, with no settled record (an event that failed and was later
/// processed is listed as processed, once).
/// `failed_attempts` rows whose event has no settled record: the failed events. One
/// condition for the list and for a job's count.
pub fn unsettled(backend: DatabaseBackend) -> SimpleExpr {
    let mut settled = Query::select();
    settled
        .expr(Expr::val(1))
        .from(processed_event::Entity)
        .and_where(
            Expr::col((processed_event::Entity, processed_event::Column::KeyDigest))
                .equals((failed_attempt::Entity, failed_attempt::Column::KeyDigest)),
        );
    // PostgreSQL turns `NOT EXISTS` into an anti-join over all of `failed_attempts` and sorts
    // it (203 ms a page with 50,000 rows beside 10 million records); `OFFSET 0` keeps it a
    // per-row check while the index is walked backwards, and the page reads ~100 rows
    // (1.1 ms). BENCHMARKS.md, "GET /events on 10 million rows".
    if backend == DatabaseBackend::Postgres {
        settled.offset(0);
    }
    Expr::exists(settled.to_owned()).not()
}

async fn failed(db: &impl ConnectionTrait, query: &ListQuery) -> Result<Vec<Found>, DbErr> {
    use failed_attempt::Column as C;
    let select = failed_attempt::Entity::find().filter(unsettled(db.get_database_backend()));
    let columns = Columns {
        time: C::LastFailedAt,
        digest: C::KeyDigest,
        event: C::KeyDigest,
        source: C::Source,
        event_type: C::EventType,
        index: (
            "idx_failed_attempts_last_failed_at",
            "idx_failed_attempts_source_recent",
        ),
    };
    newest(db, select, columns, query).await
}

/// Events by their deliveries' state. With a destination: that destination's delivery is in
/// `status`. Without: `delivered` means every delivery of the event is (a delivered row with
/// no undelivered sibling), `delivery_pending` and `dead` any one.
async fn deliveries(
    db: &impl ConnectionTrait,
    query: &ListQuery,
    status: DeliveryStatus,
) -> Result<Vec<Found>, DbErr> {
    use delivery::Column as C;
    let mut select = delivery::Entity::find();
    select = if status == DeliveryStatus::Delivered {
        // Nearly every row: walked on `(created_at, key_digest)`, whose index holds delivered
        // rows only (migration `m20261210_000001`), so the state is written in the text.
        select.filter(state_is(delivery::Entity, status))
    } else {
        // Few rows, in the partial indexes of undelivered rows, whose predicate the query must
        // state in its own text for PostgreSQL and SQLite to use them.
        select.filter(in_undelivered_state(status))
    };
    select = match (&query.filters.destination, status) {
        (Some(name), _) => select.filter(C::Destination.eq(name.as_str())),
        (None, DeliveryStatus::Delivered) => select.filter(every_sibling_delivered()),
        (None, _) => select,
    };
    let columns = Columns {
        time: C::CreatedAt,
        digest: C::KeyDigest,
        event: C::EventDigest,
        source: C::Source,
        event_type: C::EventType,
        index: (
            "idx_deliveries_status_recent",
            "idx_deliveries_source_recent",
        ),
    };
    newest(db, select, columns, query).await
}

/// No other row of the delivered row's event is undelivered (`idx_deliveries_event`).
fn every_sibling_delivered() -> SimpleExpr {
    let sibling = Alias::new("sibling");
    let event = Expr::col((delivery::Entity, delivery::Column::EventDigest));
    let undelivered = Query::select()
        .expr(Expr::val(1))
        .from_as(delivery::Entity, sibling.clone())
        .cond_where(same_event(sibling.clone(), event))
        .and_where(
            Expr::col((sibling, delivery::Column::Status)).ne(DeliveryStatus::Delivered.as_str()),
        )
        .to_owned();
    Expr::exists(undelivered).not()
}

/// One stream's page: the filters, the cursor, newest first, one more than the page so the
/// caller knows whether another page follows.
async fn newest<E>(
    db: &impl ConnectionTrait,
    mut select: Select<E>,
    c: Columns<E::Column>,
    query: &ListQuery,
) -> Result<Vec<Found>, DbErr>
where
    E: EntityTrait,
{
    let f = &query.filters;
    // MariaDB re-executing a cached prepared statement after a full-row read of the same
    // table (the page's own lookup) stops treating the index as covering, walks `ref` on the
    // status alone and reads millions of rows (3.7 s a page 15 days deep on 10 million;
    // BENCHMARKS.md). Naming the index keeps every execution at one page of entries.
    if db.get_database_backend() == DatabaseBackend::MySql {
        let index = if f.source.is_some() {
            c.index.1
        } else {
            c.index.0
        };
        QuerySelect::query(&mut select).force_index(IndexName::new(index), IndexHintScope::All);
    }
    if let Some(source) = &f.source {
        select = select.filter(c.source.eq(source.as_str()));
    }
    if let Some(event_type) = &f.event_type {
        select = select.filter(c.event_type.eq(event_type.as_str()));
    }
    if let Some(since) = f.since {
        select = select.filter(c.time.gte(since));
    }
    if let Some(until) = f.until {
        select = select.filter(c.time.lt(until));
    }
    if let Some(cursor) = query.cursor {
        // `t <= cursor` first: a range the index serves; the OR then only trims the ties.
        select = select.filter(c.time.lte(cursor.at)).filter(
            Condition::any()
                .add(c.time.lt(cursor.at))
                .add(c.digest.lt(cursor.digest.to_vec())),
        );
    }
    type Row = (Vec<u8>, DateTime<Utc>, Option<Vec<u8>>);
    let rows: Vec<Row> = select
        .select_only()
        .column(c.digest)
        .column(c.time)
        .column_as(c.event, "event")
        .order_by_desc(c.time)
        .order_by_desc(c.digest)
        .limit(query.limit + 1)
        .into_tuple()
        .all(db)
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(key, at, event)| {
            let key: Sha256Digest = key.try_into().ok()?;
            let event = match event {
                Some(event) => event.try_into().ok()?,
                None => key,
            };
            Some(Found { at, key, event })
        })
        .collect())
}
