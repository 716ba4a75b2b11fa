//! A row locked elsewhere (another instance's slow transaction, an operator's forgotten
//! `SELECT … FOR UPDATE`) delays only the event that needs it: that event is answered 503
//! when its lock timeout runs out, and every other event commits meanwhile. Only servers
//! lock rows; SQLite locks the whole database.

use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use idemhook::clock::Clock;
use idemhook::config::Settings;
use idemhook::engine::cache::CommittedKeys;
use idemhook::metrics::Metrics;
use idemhook::sweeper::{Sweeper, SweeperConfig};
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement, TransactionTrait};
use tokio::sync::Semaphore;

use crate::support::*;

on_server_backends!(
    a_row_locked_elsewhere_delays_only_its_own_event,
    the_pool_s_sessions_keep_the_ingest_limits_after_a_sweep,
);

/// One order row held by another connection; one payment for that order and 300 for other
/// orders, 16 at a time. Asserted by order, not by a clock: every answer, the blocked event's
/// 503 included, arrives while the test still holds the lock.
async fn a_row_locked_elsewhere_delays_only_its_own_event(backend: Backend) {
    let db = TestDb::create(backend).await;
    let mut server = Server::start(&config(&db.url, "lock_timeout_ms = 1000"), &ENV).await;
    let client = reqwest::Client::new();
    let first = post(
        &client,
        &server,
        "demo",
        &payment("lock_0", "order_locked", 1),
        &[],
    )
    .await;
    assert_eq!(first.0, 200, "{first:?}");

    let conn = db.connect().await;
    let holder = conn.begin().await.unwrap();
    holder
        .execute_unprepared("SELECT * FROM orders WHERE order_id = 'order_locked' FOR UPDATE")
        .await
        .unwrap();

    let mut bodies = vec![payment("lock_blocked", "order_locked", 5)];
    bodies.extend((0..300).map(|i| payment(&format!("free_{i}"), &format!("order_{}", i % 30), 2)));
    let permits = Arc::new(Semaphore::new(16));
    let started = std::time::Instant::now();
    let replies = tokio::time::timeout(
        PATIENCE,
        join_all(bodies.iter().map(|body| {
            let (client, server, permits) = (&client, &server, permits.clone());
            async move {
                let _permit = permits.acquire().await.unwrap();
                post(client, server, "demo", body, &[]).await
            }
        })),
    )
    .await
    .expect("every event is answered while the row is still locked");
    // A figure for the record (the assertions below are on order, not on time).
    eprintln!(
        "locks on {backend:?}: 301 answers in {:?} with the row held",
        started.elapsed()
    );
    let (blocked, free) = replies.split_first().unwrap();
    assert_eq!(blocked.0, 503, "{blocked:?}");
    assert!(blocked.2.is_some(), "503 without Retry-After");
    let refused: Vec<_> = free.iter().filter(|r| r.0 != 200).collect();
    assert!(
        refused.is_empty(),
        "events that needed no locked row: {refused:?}"
    );
    assert_eq!(count_outcome(free, "processed"), 300);

    holder.rollback().await.unwrap();
    let retry = post(&client, &server, "demo", &bodies[0], &[]).await;
    assert!(retry.1.contains(r#""status":"processed""#), "{retry:?}");
    assert_eq!(amount_paid(&conn, "order_locked").await, Some(6));
    assert_orders_exact(&conn, 300, 30, |_| 2).await;
    let logs = server.logs();
    assert!(!logs.iter().any(|l| l.contains("panicked")), "{logs:#?}");
    drop(server);
    db.drop_db().await;
}

/// The ingest limits are the pool's sessions' own, set as each connection opens (MariaDB) or
/// at its startup (PostgreSQL), not per transaction. The sweeper sets longer ones for its own
/// transactions: on MariaDB, where they are session variables, it must set the ingest ones
/// back, or the next ingest transaction on that connection would wait a minute on a statement.
/// One connection in the pool, so the sweeper's is the one read after it.
async fn the_pool_s_sessions_keep_the_ingest_limits_after_a_sweep(backend: Backend) {
    let db = TestDb::create(backend).await;
    let settings = Settings {
        lock_timeout_ms: 4000,
        statement_timeout_ms: 7000,
        db_max_connections: Some(1),
        ..Settings::default()
    };
    let conn = app_pool(&db.url, &settings).await;
    let wanted = match backend {
        Backend::Postgres => ["4s", "7s"],
        _ => ["4", "7"],
    };
    assert_eq!(
        session_limits(&conn, backend).await,
        wanted,
        "a new session"
    );
    let metrics = Arc::new(Metrics::new());
    let cache = CommittedKeys::new(
        10,
        Duration::from_secs(60),
        metrics.cache_hits.clone(),
        metrics.check_hit.clone(),
    );
    let config = SweeperConfig {
        retention_days: 30,
        inbox_retention_days: 30,
        audit_retention_days: 30,
        batch: 100,
        pause: Duration::ZERO,
        interval: Duration::from_secs(3600),
        destinations: Vec::new(),
        session_limits: idemhook::db::ingest_limits(&settings),
    };
    let sweeper = Sweeper::new(conn.clone(), cache, Clock::system(), metrics, config);
    sweeper.sweep_once().await.expect("sweep");
    assert_eq!(
        session_limits(&conn, backend).await,
        wanted,
        "after a sweep"
    );
    db.drop_db().await;
}

/// The session's lock wait and statement bound, as the server states them (MariaDB's in whole
/// seconds).
async fn session_limits(conn: &DatabaseConnection, backend: Backend) -> [String; 2] {
    let sql = match backend {
        Backend::Postgres => {
            "SELECT current_setting('lock_timeout'), current_setting('statement_timeout')"
        }
        _ => {
            "SELECT CAST(@@SESSION.innodb_lock_wait_timeout AS CHAR), \
             CAST(FLOOR(@@SESSION.max_statement_time) AS CHAR)"
        }
    };
    let row = conn
        .query_one_raw(Statement::from_string(conn.get_database_backend(), sql))
        .await
        .expect("read the session")
        .expect("a row");
    [0, 1].map(|i| row.try_get_by_index::<String>(i).expect("a setting"))
}
