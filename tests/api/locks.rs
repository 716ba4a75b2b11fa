//! A row locked elsewhere (another instance's slow transaction, an operator's forgotten
//! `SELECT … FOR UPDATE`) delays only the event that needs it: that event is answered 503
//! when its lock timeout runs out, and every other event commits meanwhile. Only servers
//! lock rows; SQLite locks the whole database.

use std::sync::Arc;

use futures::future::join_all;
use sea_orm::{ConnectionTrait, TransactionTrait};
use tokio::sync::Semaphore;

use crate::support::*;

on_server_backends!(a_row_locked_elsewhere_delays_only_its_own_event);

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
