//! A storm over three instances on one database: every event delivered ten times to random
//! instances, as providers' retries land anywhere behind a load balancer. Only the database's
//! unique key is shared, and it alone must make every event count once.
//!
//! Slow (10,000 deliveries), so `#[ignore]`d: `cargo test -- --ignored` runs it, as `.ci/run`
//! does. On PostgreSQL and MariaDB: SQLite has one writer, and no server to share.

use std::collections::HashMap;
use std::sync::Arc;

use futures::future::join_all;
use rand::seq::SliceRandom;
use rand::Rng;
use tokio::sync::Semaphore;

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
    let cfg = config(&db.url, "shards = 8");
    let mut servers = Vec::new();
    for _ in 0..3 {
        servers.push(Server::start(&cfg, &ENV).await); // one after another: migrations
    }
    let servers = Arc::new(servers);
    let mut deliveries: Vec<usize> = (0..1000).flat_map(|e| std::iter::repeat_n(e, 10)).collect();
    deliveries.shuffle(&mut rand::thread_rng());
    let client = reqwest::Client::new();
    let permits = Arc::new(Semaphore::new(64));
    let tasks = deliveries.into_iter().map(|e| {
        let (client, servers, permits) = (client.clone(), servers.clone(), permits.clone());
        tokio::spawn(async move {
            let _permit = permits.acquire().await.unwrap();
            let server = &servers[rand::thread_rng().gen_range(0..3)];
            let body = payment(
                &format!("storm_{e}"),
                &format!("order_{}", e % 100),
                (e % 50 + 1) as i64,
            );
            post(&client, server, "demo", &body, &[]).await
        })
    });
    let replies: Vec<_> = join_all(tasks)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let mut statuses: HashMap<u16, usize> = HashMap::new();
    for r in &replies {
        *statuses.entry(r.0).or_default() += 1;
    }
    assert_eq!(statuses.get(&200), Some(&10_000), "{statuses:?}");
    let processed = replies
        .iter()
        .filter(|r| r.1.contains(r#""status":"processed""#))
        .count();
    let duplicates = replies
        .iter()
        .filter(|r| r.1.contains(r#""status":"duplicate""#))
        .count();
    assert_eq!((processed, duplicates), (1000, 9000));
    let conn = db.connect().await;
    assert_orders_exact(&conn, 1000, 100, |e| (e % 50 + 1) as i64).await;
    assert_eq!(rows(&conn).await.processed, 1000);
    eprintln!("storm on {backend:?}: 10,000 deliveries, {processed} processed, {duplicates} duplicates, statuses {statuses:?}");
    drop(servers);
    db.drop_db().await;
}
