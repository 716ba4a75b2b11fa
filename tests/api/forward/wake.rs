//! The worker is woken by a commit, not only by its poll; an ingest-only instance writes the
//! outbox and leaves delivery to others; the claim reads the partial index of pending rows.

use std::time::Duration;

use chrono::Utc;
use sea_orm::{ConnectionTrait, QueryTrait, Statement};

use super::{start, wait_for_delivery};
use crate::support::*;

on_every_backend!(
    a_commit_wakes_the_worker_long_before_its_poll,
    an_ingest_only_instance_writes_the_outbox_and_another_instance_delivers_it,
    the_claim_reads_the_index_of_pending_rows,
);

/// The `fwd` source with a forward table, and `settings` as the top-level keys.
fn fwd(db_url: &str, app_url: &str, settings: &str) -> String {
    config(
        db_url,
        &format!(
            r#"{settings}
[default.idemhook.sources.fwd]
handlers = ["forward", "payments"]
[default.idemhook.sources.fwd.forward]
url = "{app_url}"
secret_env = "FWD_SECRET"
timeout_secs = 2
"#
        ),
    )
}

/// With a one-minute poll, an event is delivered within seconds: its commit woke the worker.
/// The first event settles whatever the worker was doing at launch; once it is delivered the
/// worker has found nothing more and sleeps its poll, so only the wake can deliver the second
/// in time.
async fn a_commit_wakes_the_worker_long_before_its_poll(backend: Backend) {
    let db = TestDb::create(backend).await;
    let app = Receiver::start().await;
    let server = start(&fwd(&db.url, &app.url(), "forward_poll_ms = 60000")).await;
    let client = reqwest::Client::new();
    for (n, id) in ["evt_wake_1", "evt_wake_2"].into_iter().enumerate() {
        let body = payment(id, &format!("order_{n}"), 100);
        let (status, text, _) = post(&client, &server, "fwd", &body, &[]).await;
        assert_eq!(status, 200, "{text}");
        // 20 s: a third of the poll.
        wait_for_delivery(&client, &server, id, "delivered", 20).await;
    }
    assert_eq!(app.received().len(), 2);
    drop(server);
    db.drop_db().await;
}

/// `forward_worker = false`: the outbox row commits with the event and stays pending (a
/// worker polling every 50 ms would have delivered it many times over in the wait below); an
/// instance with the worker on, started on the same database, delivers it.
async fn an_ingest_only_instance_writes_the_outbox_and_another_instance_delivers_it(
    backend: Backend,
) {
    let db = TestDb::create(backend).await;
    let app = Receiver::start().await;
    let mut ingest = start(&fwd(
        &db.url,
        &app.url(),
        "forward_poll_ms = 50\nforward_worker = false",
    ))
    .await;
    let client = reqwest::Client::new();
    let body = payment("evt_ingest_only", "order_1", 100);
    let (status, text, _) = post(&client, &ingest, "fwd", &body, &[]).await;
    assert_eq!(status, 200, "{text}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        app.received().is_empty(),
        "an ingest-only instance delivered"
    );
    let conn = db.connect().await;
    let row = conn
        .query_one_raw(Statement::from_string(
            conn.get_database_backend(),
            "SELECT status, attempts FROM deliveries",
        ))
        .await
        .unwrap()
        .expect("the outbox row");
    assert_eq!(row.try_get_by_index::<String>(0).unwrap(), "pending");
    assert_eq!(row.try_get_by_index::<i32>(1).unwrap(), 0);
    ingest.signal("TERM");
    ingest.wait().await;

    let worker = start(&fwd(&db.url, &app.url(), "forward_poll_ms = 50")).await;
    let keys = app.wait_for_delivered(1, 30).await;
    assert_eq!(keys.len(), 1);
    drop(worker);
    db.drop_db().await;
}

/// The claim names its pending state in the SQL text, so PostgreSQL and SQLite can use the
/// partial index `WHERE status = 'pending'` (a bound parameter never implies a predicate);
/// MariaDB, which has no partial indexes, keeps its `(source, status, …)` index. The plan of
/// the statement the worker sends, on each backend (PostgreSQL with sequential scans off, so
/// that an empty table does not hide the choice, and its generic plan).
async fn the_claim_reads_the_index_of_pending_rows(backend: Backend) {
    let db = TestDb::create(backend).await;
    let conn = db.connect().await;
    idemhook::db::migrate(&db.url, &conn).await.unwrap();
    let db_backend = conn.get_database_backend();
    let due =
        idemhook::forward::lease::candidates(db_backend, "fwd", 16, Utc::now()).build(db_backend);
    let (explain, wanted) = match backend {
        Backend::Sqlite => ("EXPLAIN QUERY PLAN", "idx_deliveries_due_pending"),
        Backend::Postgres => ("EXPLAIN EXECUTE", "idx_deliveries_due_pending"),
        Backend::MySql => ("EXPLAIN", "idx_deliveries_due"),
    };
    let txn = sea_orm::TransactionTrait::begin(&conn).await.unwrap();
    let values = due.values.map(|v| v.0).unwrap_or_default();
    let rows = if backend == Backend::Postgres {
        // A named prepared statement under its generic plan, which a connection may switch to
        // after five executions: planned without the parameters' values, so only a predicate
        // written in the SQL text can select the partial index.
        use sea_orm::sea_query::{PostgresQueryBuilder, QueryBuilder};
        for setting in [
            "enable_seqscan = off",
            "plan_cache_mode = force_generic_plan",
        ] {
            txn.execute_unprepared(&format!("SET LOCAL {setting}"))
                .await
                .unwrap();
        }
        txn.execute_unprepared(&format!("PREPARE due AS {}", due.sql))
            .await
            .unwrap();
        let args: Vec<String> = values
            .iter()
            .map(|v| PostgresQueryBuilder.value_to_string(v))
            .collect();
        txn.query_all_raw(Statement::from_string(
            db_backend,
            format!("EXPLAIN EXECUTE due({})", args.join(", ")),
        ))
        .await
        .unwrap()
    } else {
        txn.query_all_raw(Statement::from_sql_and_values(
            db_backend,
            format!("{explain} {}", due.sql),
            values,
        ))
        .await
        .unwrap()
    };
    // The access path of each plan line: PostgreSQL's one column, SQLite's `detail`, MySQL's
    // `key` of the outer query (the first row).
    let plan: Vec<String> = match backend {
        Backend::Sqlite => rows
            .iter()
            .map(|r| r.try_get::<String>("", "detail").unwrap())
            .collect(),
        Backend::Postgres => rows
            .iter()
            .map(|r| r.try_get_by_index::<String>(0).unwrap())
            .collect(),
        Backend::MySql => rows
            .iter()
            .take(1)
            .map(|r| {
                r.try_get::<Option<String>>("", "key")
                    .unwrap()
                    .unwrap_or_default()
            })
            .collect(),
    };
    assert!(
        plan.iter().any(|line| line.contains(wanted)),
        "the claim does not read {wanted}:\n{}\n{}",
        due.sql,
        plan.join("\n")
    );
    drop(txn);
    db.drop_db().await;
}
