//! Exactly-once on a multi-primary engine: three idemhook processes, each on its own node of
//! a three-node MariaDB Galera cluster (`scripts/galera.sh start`). Two instances inserting
//! the same dedupe key on two nodes both succeed locally; the loser fails at COMMIT with a
//! certification conflict (1213), which idemhook retries until the rerun meets the winner's
//! row and answers `duplicate`.
//!
//! Marked slow (`#[ignore]`); when asked for, it needs `IDEMHOOK_TEST_GALERA_URLS` to list the
//! three nodes' URLs (comma-separated, no database), and fails without. `.ci/run` starts the
//! cluster and sets it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use rand::seq::SliceRandom;
use rand::Rng;
use sea_orm::{ConnectionTrait, Database, Statement};
use tokio::sync::Semaphore;

use crate::support::*;

/// The shared configuration, with more retries: on Galera a lost certification is the
/// expected way for two instances to meet.
fn galera_config(db_url: &str) -> String {
    config(db_url, "shards = 8\ndb_timeout_secs = 2\nmax_retries = 8")
}

/// Delivers every event `times` times to random instances, like a provider whose retries land
/// anywhere behind a load balancer, until each delivery got a 200. Returns the statuses seen.
async fn deliver(
    servers: &[Server],
    events: std::ops::Range<usize>,
    times: usize,
    on_progress: impl Fn(usize) + Send + Sync + 'static,
) -> BTreeMap<u16, usize> {
    let mut deliveries: Vec<usize> = events.flat_map(|e| std::iter::repeat_n(e, times)).collect();
    deliveries.shuffle(&mut rand::thread_rng());
    let bases: Arc<Vec<String>> = Arc::new(servers.iter().map(|s| s.base.clone()).collect());
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let permits = Arc::new(Semaphore::new(32));
    let on_progress = Arc::new(on_progress);
    let total = deliveries.len();
    let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let tasks = deliveries.into_iter().map(|e| {
        let (client, bases, permits, done, on_progress) = (
            client.clone(),
            bases.clone(),
            permits.clone(),
            done.clone(),
            on_progress.clone(),
        );
        tokio::spawn(async move {
            let _permit = permits.acquire().await.unwrap();
            let body = payment(
                &format!("g_{e}"),
                &format!("order_{}", e % 40),
                (e % 9 + 1) as i64,
            );
            let mut seen = Vec::new();
            for attempt in 0..200 {
                let base = &bases[rand::thread_rng().gen_range(0..bases.len())];
                let status = match client
                    .post(format!("{base}/webhooks/demo"))
                    .body(body.clone())
                    .send()
                    .await
                {
                    Ok(r) => r.status().as_u16(),
                    Err(_) => 0,
                };
                seen.push(status);
                if status == 200 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50 + 10 * attempt)).await;
            }
            on_progress(done.fetch_add(1, Ordering::SeqCst) + 1);
            seen
        })
    });
    let mut statuses = BTreeMap::new();
    for seen in join_all(tasks).await {
        for s in seen.unwrap() {
            *statuses.entry(s).or_default() += 1;
        }
    }
    eprintln!("galera: {total} deliveries, statuses seen {statuses:?}");
    statuses
}

async fn retries(servers: &[Server]) -> f64 {
    let mut sum = 0.0;
    for s in servers {
        sum += s.metric("idemhook_db_retries_total").await.unwrap_or(0.0);
    }
    sum
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "slow: needs the three-node Galera cluster of scripts/galera.sh; .ci/run runs it"]
async fn three_instances_on_three_galera_nodes_apply_every_event_once() {
    let cluster = Cluster::take().await;
    let mut servers = Vec::new();
    for url in &cluster.urls {
        servers.push(Server::start(&galera_config(url), &ENV).await);
    }
    for (i, s) in servers.iter().enumerate() {
        let ready: serde_json::Value = reqwest::get(format!("{}/health/ready", s.base))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(ready["galera"]["node"], format!("node{}", i + 1), "{ready}");
        assert_eq!(ready["galera"]["state"], "Synced");
    }

    // Phase 1: 300 events x 5 deliveries, all nodes up: every answer is a 200, no 5xx.
    let statuses = deliver(&servers, 0..300, 5, |_| {}).await;
    assert_eq!(
        statuses.keys().copied().collect::<Vec<_>>(),
        vec![200],
        "{statuses:?}"
    );
    let conflicts_phase1 = retries(&servers).await;

    // Phase 2: 300 more events x 5; node 2 is killed a third of the way in and restarted.
    // Deliveries that got a non-200 are retried on any instance, as providers do.
    let killed = Arc::new(AtomicBool::new(false));
    let cluster = Arc::new(cluster);
    let killer = {
        let (killed, cluster) = (killed.clone(), cluster.clone());
        move |done: usize| {
            if done >= 500 && !killed.swap(true, Ordering::SeqCst) {
                cluster.kill_node_2();
            }
        }
    };
    let statuses = deliver(&servers, 300..600, 5, killer).await;
    assert!(killed.load(Ordering::SeqCst));
    // A node's death may only ever be answered 503 (nothing committed, Retry-After): any
    // other 5xx is an error the classifier does not know, and fails the test with the
    // servers' own account of it.
    let errors: Vec<(u16, usize)> = statuses
        .iter()
        .filter(|(status, _)| **status >= 500 && **status != 503)
        .map(|(status, n)| (*status, *n))
        .collect();
    if !errors.is_empty() {
        let mut lines = Vec::new();
        for s in servers.iter_mut() {
            lines.extend(
                s.logs()
                    .into_iter()
                    .filter(|l| l.contains("request failed")),
            );
        }
        panic!(
            "galera: answers {errors:?} while node 2 was down; server logs:\n{}",
            lines.join("\n")
        );
    }
    // Wait for node 2 to be back and synced, and its instance ready again.
    let ready = servers[1].ready_within(60).await;
    assert_eq!(
        ready, 200,
        "the instance on node 2 serves again once its node is back"
    );

    // Every event applied exactly once, read on every node.
    for url in &cluster.urls {
        let conn = Database::connect(url).await.unwrap();
        let r = rows(&conn).await;
        assert_eq!((r.processed, r.inbox), (600, 600), "on {url}");
        // An event paid twice leaves two payments rows of one key (the table has no unique
        // key on it): named, with their ids (Galera's auto-increment offset tells the node
        // that wrote each) and times, before the totals' assertion fails on it.
        let twice = conn
            .query_all_raw(Statement::from_string(
                conn.get_database_backend(),
                "SELECT HEX(key_digest), order_id, COUNT(*), GROUP_CONCAT(id), \
                 GROUP_CONCAT(created_at) FROM payments GROUP BY key_digest, order_id \
                 HAVING COUNT(*) > 1",
            ))
            .await
            .unwrap();
        for row in &twice {
            let text = |i: usize| row.try_get_by_index::<String>(i).unwrap_or_default();
            eprintln!(
                "galera: on {url}, key {} paid into {} more than once: ids {}, at {}",
                text(0),
                text(1),
                text(3),
                text(4)
            );
        }
        assert_orders_exact(&conn, 600, 40, |e| (e % 9 + 1) as i64).await;
    }
    let conflicts = retries(&servers).await;
    eprintln!(
        "galera: 600 events, 3000 deliveries; conflicts retried: {conflicts_phase1} in phase 1, {conflicts} in all; phase 2 statuses {statuses:?}"
    );
    drop(servers);
    if let Ok(cluster) = Arc::try_unwrap(cluster) {
        cluster.drop_db().await;
    }
}
