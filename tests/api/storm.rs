//! A storm over three instances on one database: every event delivered ten times to random
//! instances, as providers' retries land anywhere behind a load balancer. Only the database's
//! unique key is shared, and it alone must make every event count once.
//!
//! Slow (10,000 deliveries), so `#[ignore]`d: `cargo test -- --ignored` runs it, as `.ci/run`
//! does. On PostgreSQL and MariaDB: SQLite has one writer, and no server to share.

use std::collections::HashMap;

use rand::seq::SliceRandom;
use rand::Rng;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "slow: 10,000 deliveries over three processes; .ci/run runs it"]
async fn storm_of_three_instances_postgres() {
    storm(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "slow: 10,000 deliveries over three processes; .ci/run runs it"]
async fn storm_of_three_instances_mysql() {
    storm(Backend::MySql).await;
}

/// Three idemhook processes on one database; 1,000 payment events, each delivered 10 times
/// to random instances, 64 at a time: exactly 1,000 processed, 9,000 duplicates, every order
/// exact, no 5xx.
async fn storm(backend: Backend) {
    let db = TestDb::create(backend).await;
    let servers = start_instances(3, &config(&db.url, "shards = 8")).await;
    let mut deliveries: Vec<(usize, String)> = (0..1000)
        .flat_map(|e| std::iter::repeat_n(e, 10))
        .map(|e| {
            let order = format!("order_{}", e % 100);
            let body = payment(&format!("storm_{e}"), &order, (e % 50 + 1) as i64);
            (rand::thread_rng().gen_range(0..3), body)
        })
        .collect();
    deliveries.shuffle(&mut rand::thread_rng());
    let replies = deliver(&servers, deliveries).await;
    let mut statuses: HashMap<u16, usize> = HashMap::new();
    for r in &replies {
        *statuses.entry(r.0).or_default() += 1;
    }
    assert_eq!(statuses.get(&200), Some(&10_000), "{statuses:?}");
    let processed = count_outcome(&replies, "processed");
    let duplicates = count_outcome(&replies, "duplicate");
    assert_eq!((processed, duplicates), (1000, 9000));
    let conn = db.connect().await;
    assert_orders_exact(&conn, 1000, 100, |e| (e % 50 + 1) as i64).await;
    assert_eq!(rows(&conn).await.processed, 1000);
    eprintln!("storm on {backend:?}: 10,000 deliveries, {processed} processed, {duplicates} duplicates, statuses {statuses:?}");
    drop(servers);
    db.drop_db().await;
}
