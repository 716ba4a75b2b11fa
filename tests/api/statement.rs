//! The one-statement group commit leaves, for the same batches, exactly the rows and answers of
//! the transaction path and of event-by-event processing.
//!
//! The same batches run three times, each on a fresh database: through the store as it runs
//! (on PostgreSQL, one statement per batch when every handler hands over its rows), through a
//! store that writes every batch as a transaction, and event by event with no group commit
//! at all. The batches hold what can go wrong in one: a duplicate in the middle, a payment
//! its order refuses (another currency, a total past `i64`), an event whose handler fails,
//! two payments of one new order in two currencies, bodies shared by two destinations. Every
//! answer and every row of every table must be equal; surrogate ids are left out, since a
//! sequence is not transactional (a rolled-back batch still used its numbers).

use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use idemhook::clock::Clock;
use idemhook::config::Settings;
use idemhook::engine::store::{BatchFailure, Bounds, Store};
use idemhook::entities::{
    delivery, delivery_body, failed_attempt, inbox, order, payment, processed_event,
};
use idemhook::event::key::{self, EventKey};
use idemhook::event::Event;
use idemhook::forward::{Forward, Wake};
use idemhook::handlers::{Handler, Inbox, Payments};
use idemhook::metrics::Metrics;
use sea_orm::{DatabaseConnection, EntityTrait};
use serde_json::json;

use crate::support::{Backend, TestDb};

crate::support::on_every_backend!(one_statement_transactions_and_single_events_leave_the_same_rows);

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Path {
    /// The store as it runs: one statement per batch on PostgreSQL.
    AsItRuns,
    /// Every batch as a transaction.
    Transactions,
    /// No group commit: each event in its own transaction.
    EventByEvent,
}

async fn one_statement_transactions_and_single_events_leave_the_same_rows(backend: Backend) {
    // Built once: an attempt token is random, and the paths must see the same deliveries.
    let batches = batches();
    let mut results = Vec::new();
    for path in [Path::AsItRuns, Path::Transactions, Path::EventByEvent] {
        let db = TestDb::create(backend).await;
        let settings = settings();
        let conn = crate::support::app_pool(&db.url, &settings).await;
        let metrics = Arc::new(Metrics::new());
        let clock = Clock::from_fn(|| at(0));
        let store = Store::new(conn.clone(), 3, bounds(), clock.clone(), metrics.clone());
        let store = match path {
            Path::Transactions => store.transactions_only(),
            _ => store,
        };
        let handlers: Vec<Arc<dyn Handler>> = vec![
            Arc::new(Inbox),
            Arc::new(Payments::new(clock.clone())),
            Arc::new(Forward::new(&settings, clock, Wake::default()).expect("destinations")),
        ];
        let mut answers = Vec::new();
        for batch in &batches {
            answers.extend(run(&store, batch, &handlers, path).await);
        }
        let statements = metrics.batch_statements.get();
        if path == Path::AsItRuns && backend == Backend::Postgres {
            // Batches 1 and 6 commit whole; the others are redone event by event.
            assert_eq!(statements, 2, "batches written as one statement");
        } else {
            assert_eq!(
                statements, 0,
                "{path:?} on {backend:?} writes no one-statement batch"
            );
        }
        results.push((path, answers, rows(&conn).await));
        db.drop_db().await;
    }
    let (_, answers, rows) = &results[0];
    assert!(
        answers.iter().any(|a| a.starts_with("Rejected")),
        "{answers:#?}"
    );
    assert!(
        answers.iter().any(|a| a.starts_with("Duplicate")),
        "{answers:#?}"
    );
    assert!(
        answers.iter().any(|a| a.starts_with("failed")),
        "{answers:#?}"
    );
    for (path, other_answers, other_rows) in &results[1..] {
        assert_eq!(
            answers, other_answers,
            "answers: as it runs against {path:?}"
        );
        for (table, (mine, theirs)) in rows.iter().zip(other_rows).enumerate() {
            let differ = mine.iter().zip(theirs).find(|(a, b)| a != b);
            assert!(
                differ.is_none() && mine.len() == theirs.len(),
                "table {table}, as it runs against {path:?}: {} rows against {}, first to differ: {differ:#?}",
                mine.len(),
                theirs.len()
            );
        }
    }
}

/// The batches, in the order they commit (each sorted by digest, as the writers hand them).
fn batches() -> Vec<Vec<Event>> {
    let pay = |id: &str, order: &str, amount: i64, currency: &str| {
        event(
            "payment_succeeded",
            id,
            json!({"data": {"order_id": order, "amount": amount, "currency": currency}}),
        )
    };
    let customer = |id: &str| event("customers/create", id, json!({"data": {"id": id}}));
    vec![
        // All new: two payments of o1 summed, o2 in usd, a customer for both destinations.
        vec![
            pay("p1", "o1", 100, "eur"),
            pay("p2", "o1", 50, "eur"),
            pay("p3", "o2", 7, "usd"),
            customer("c1"),
        ],
        // A duplicate (p1, same body) in the middle.
        vec![
            pay("p5", "o1", 1, "eur"),
            pay("p1", "o1", 100, "eur"),
            customer("c2"),
        ],
        // o2 is kept in usd: p7 is refused by its order, p8 goes through.
        vec![
            pay("p7", "o2", 5, "eur"),
            pay("p8", "o1", 2, "eur"),
            customer("c3"),
        ],
        // A payment with no amount fails (answered 500, retried by the provider).
        vec![
            event(
                "payment_succeeded",
                "p9",
                json!({"data": {"order_id": "o3", "currency": "eur"}}),
            ),
            pay("p10", "o3", 4, "eur"),
        ],
        // One new order paid in two currencies within the batch.
        vec![pay("p11", "o4", 1, "eur"), pay("p12", "o4", 2, "usd")],
        // A total near the end of i64, then a payment past it beside one that fits.
        vec![
            pay("p13", "o5", i64::MAX - 1, "eur"),
            pay("p14", "o1", 1, "eur"),
        ],
        vec![
            pay("p15", "o5", 5, "eur"),
            pay("p16", "o2", 1, "usd"),
            customer("c4"),
        ],
    ]
}

/// Each event's answer: the batch's, or each event's own after a redo (the writers' way).
async fn run(
    store: &Store,
    batch: &[Event],
    handlers: &[Arc<dyn Handler>],
    path: Path,
) -> Vec<String> {
    let mut events: Vec<&Event> = batch.iter().collect();
    events.sort_by_key(|e| e.digest);
    if path != Path::EventByEvent {
        let jobs: Vec<(&Event, &[Arc<dyn Handler>])> =
            events.iter().map(|e| (*e, handlers)).collect();
        match store.commit_batch(&jobs).await {
            Ok(_) => {
                return events
                    .iter()
                    .map(|e| format!("Processed {}", e.key.event_id))
                    .collect()
            }
            Err(BatchFailure::Redo) => {}
            Err(BatchFailure::Unavailable(why)) => panic!("the database went away: {why}"),
        }
    }
    let mut answers = Vec::new();
    for event in events {
        let id = &event.key.event_id;
        answers.push(match store.process(event, handlers).await {
            Ok(verdict) => format!("{:?} {id}", verdict.committed),
            Err(err) => format!("failed {id}: {err}"),
        });
    }
    answers
}

/// Every row of every table the batches write, ids left out, in a fixed order.
async fn rows(conn: &DatabaseConnection) -> Vec<Vec<String>> {
    async fn all<E: EntityTrait>(
        conn: &DatabaseConnection,
        f: impl Fn(E::Model) -> String,
    ) -> Vec<String> {
        let mut rows: Vec<String> = E::find()
            .all(conn)
            .await
            .expect("read rows")
            .into_iter()
            .map(f)
            .collect();
        rows.sort();
        rows
    }
    vec![
        all::<processed_event::Entity>(conn, |m| format!("{m:?}")).await,
        all::<inbox::Entity>(conn, |m| format!("{:?}", inbox::Model { id: 0, ..m })).await,
        all::<payment::Entity>(conn, |m| format!("{:?}", payment::Model { id: 0, ..m })).await,
        all::<order::Entity>(conn, |m| format!("{m:?}")).await,
        all::<delivery::Entity>(conn, |m| format!("{:?}", delivery::Model { id: 0, ..m })).await,
        all::<delivery_body::Entity>(conn, |m| format!("{m:?}")).await,
        all::<failed_attempt::Entity>(conn, |m| format!("{m:?}")).await,
    ]
}

/// An event of source `shop` as the route builds it, received at a fixed time.
pub(crate) fn event(event_type: &str, id: &str, body: serde_json::Value) -> Event {
    let body = body.to_string().into_bytes();
    let key = EventKey::new("shop", event_type.into(), id.into()).expect("a valid key");
    let digest = key.digest();
    Event {
        digest,
        key,
        payload_sha256: key::sha256(&body),
        signed_key: None,
        legacy_signed_key: None,
        attempt_token: key::attempt_token(&digest),
        headers: vec![("content-type".into(), "application/json".into())],
        body,
        received_at: at(-1),
        traceparent: None,
    }
}

pub(crate) fn at(secs: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 5, 12, 0, 0)
        .single()
        .expect("a valid time")
        + chrono::Duration::seconds(secs)
}

/// Source `shop` forwarding to `billing` (every type, ordered by order) and `crm` (customers).
pub(crate) fn settings() -> Settings {
    let figment = rocket::figment::Figment::new().merge((
        "idemhook",
        json!({"sources": {"shop": {
            "provider": "generic",
            "handlers": ["inbox", "payments", "forward"],
            "destinations": {
                "billing": {"url": "http://127.0.0.1:9/billing", "secret_env": "BILLING_SECRET",
                            "ordering": "/data/order_id"},
                "crm": {"url": "http://127.0.0.1:9/crm", "secret_env": "CRM_SECRET",
                        "types": ["customers/*"]},
            },
        }}}),
    ));
    Settings::from_figment(&figment).expect("settings")
}

pub(crate) fn bounds() -> Bounds {
    Bounds {
        statement: std::time::Duration::from_secs(10),
        handlers: std::time::Duration::from_secs(30),
    }
}
