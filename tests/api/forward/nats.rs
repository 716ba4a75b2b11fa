//! The `nats` destination, for real: the binary publishing into a JetStream stream of a
//! `nats-server` the test starts (so that it can stop, restart or kill it), on every backend.
//! Exactly once is read back from the stream itself: one message per event, one per
//! `Nats-Msg-Id`, bodies byte for byte, through a broker outage, a crash between the
//! stream's ack and idemhook's record, and a node of a three-node cluster killed mid-run.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures::StreamExt as _;
use sea_orm::{ConnectionTrait, Statement};

use crate::support::*;

on_every_backend!(
    every_event_lands_once_in_the_stream_through_a_broker_outage,
    a_crash_after_the_ack_publishes_again_and_the_stream_keeps_one,
    a_misconfigured_stream_pauses_the_destination_and_a_large_body_is_dead_at_once,
    a_retry_in_doubt_goes_past_a_pause,
);
/// Several instances need a database server. Slow (three instances beside three broker
/// nodes, one killed: on a 2-core machine it slowed the tests running beside it past their
/// leases), so `#[ignore]`d: `cargo test -- --ignored` runs it, as `.ci/run` does.
mod cluster {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "slow: three instances and a three-node NATS cluster; .ci/run runs it"]
    async fn postgres() {
        super::three_instances_and_a_three_node_cluster_losing_a_node_store_each_event_once(
            crate::support::Backend::Postgres,
        )
        .await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "slow: three instances and a three-node NATS cluster; .ci/run runs it"]
    async fn mysql() {
        super::three_instances_and_a_three_node_cluster_losing_a_node_store_each_event_once(
            crate::support::Backend::MySql,
        )
        .await
    }
}

/// The `fan` source (generic, unsigned) forwarding to the destination `bus` of kind `nats`
/// on `urls` (a TOML array), into the stream `WEBHOOKS`; `extra`: more keys of its table.
fn nats_config(db_url: &str, urls: &str, extra: &str) -> String {
    let mut cfg = config(db_url, "forward_poll_ms = 50");
    cfg.push_str(&format!(
        "[default.idemhook.sources.fan]\nhandlers = [\"forward\"]\n\
         [default.idemhook.sources.fan.destinations.bus]\nkind = \"nats\"\nurls = {urls}\n\
         subject = \"webhooks.{{source}}.{{type}}\"\nstream = \"WEBHOOKS\"\n\
         backoff_base_ms = 50\nbackoff_max_secs = 2\ntimeout_secs = 2\nprobe_secs = 1\n{extra}\n"
    ));
    cfg
}

/// Event types as providers send them, and the subject each must land on (the mapping
/// written out by hand, not by the code under test).
const TYPES: [(&str, &str); 5] = [
    (
        "invoice.payment_succeeded",
        "webhooks.fan.invoice.payment_succeeded",
    ),
    ("orders/paid", "webhooks.fan.orders/paid"),
    ("pull_request", "webhooks.fan.pull_request"),
    ("odd type*>", "webhooks.fan.odd%20type%2A%3E"),
    ("100%..x", "webhooks.fan.100%25.%.x"),
];

/// The `i`th event: its id, type and body (with bytes a re-encoding would change).
fn event(i: usize) -> (String, &'static str, String) {
    let id = format!("evt_{i:05}");
    let (ty, _) = TYPES[i % TYPES.len()];
    let body =
        format!("{{\"id\":\"{id}\",\"type\":\"{ty}\",  \"note\":\"caf\\u00e9 é\",\"n\":1.50}}");
    (id, ty, body)
}

/// Posts events `range` to `fan`, 16 at a time, each answered 200 (a provider's retries
/// until then).
async fn post_events(server: &Server, range: std::ops::Range<usize>) {
    let client = reqwest::Client::new();
    futures::stream::iter(range)
        .map(|i| {
            let client = client.clone();
            async move {
                let (_, _, body) = event(i);
                let (status, text, _) = post_until_ok(&client, server, "fan", &body).await;
                assert_eq!(status, 200, "{text}");
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<()>>()
        .await;
}

async fn delivered(db: &TestDb) -> i64 {
    query_row(
        &db.connect().await,
        "SELECT COUNT(*) FROM deliveries WHERE status = 'delivered'",
    )
    .await
    .try_get_by_index(0)
    .unwrap()
}

/// Waits until `n` deliveries are recorded as delivered.
async fn await_delivered(db: &TestDb, n: i64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let now = delivered(db).await;
        if now == n {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{now} of {n} deliveries delivered"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The stream holds each of events `0..n` exactly once: one message per event and per
/// message id, its body byte for byte, on its subject, with the delivery headers.
fn assert_exactly_once(stored: &[Stored], n: usize) {
    let ids: BTreeSet<&str> = stored.iter().map(|m| m.msg_id.as_str()).collect();
    assert_eq!(ids.len(), stored.len(), "a message id stored twice");
    let mut by_event: BTreeMap<String, &Stored> = BTreeMap::new();
    for m in stored {
        let id = m
            .header("Idemhook-Event-Id")
            .expect("Idemhook-Event-Id")
            .to_owned();
        assert!(
            by_event.insert(id.clone(), m).is_none(),
            "event {id} stored twice"
        );
    }
    assert_eq!(by_event.len(), n, "events in the stream");
    for i in 0..n {
        let (id, ty, body) = event(i);
        let m = by_event[&id];
        assert_eq!(m.payload, body.as_bytes(), "{id}'s body");
        assert_eq!(m.subject, TYPES[i % TYPES.len()].1, "{ty}");
        assert_eq!(m.header("Nats-Expected-Stream"), Some("WEBHOOKS"));
        assert_eq!(m.header("Idemhook-Destination"), Some("bus"));
        assert_eq!(m.header("Idemhook-Source"), Some("fan"));
        let key = m.header("Idempotency-Key").expect("Idempotency-Key");
        assert!(key.starts_with("ih_") && m.msg_id.starts_with(key), "{m:?}");
        assert!(m.header("Idemhook-Attempt").is_some());
    }
}

async fn every_event_lands_once_in_the_stream_through_a_broker_outage(backend: Backend) {
    let db = TestDb::create(backend).await;
    let mut node = NatsNode::start().await;
    let js = jetstream(&[node.url()]).await;
    create_stream(&js, "WEBHOOKS", &["webhooks.>"], 1).await;
    let server = start(&nats_config(&db.url, &format!("[\"{}\"]", node.url()), "")).await;

    // 1,000 events, a tenth of them posted twice (the provider's retries).
    post_events(&server, 0..1000).await;
    let client = reqwest::Client::new();
    for i in (0..1000).step_by(10) {
        let (status, text, _) = post(&client, &server, "fan", &event(i).2, &[]).await;
        assert!(
            status == 200 && text.contains("duplicate"),
            "{status} {text}"
        );
    }
    await_delivered(&db, 1000).await;
    assert_exactly_once(&stream_messages(&js, "WEBHOOKS").await, 1000);

    // The broker stops for 10 s: ingestion goes on; once it is back, everything is published,
    // without restarting idemhook.
    node.kill().await;
    let down = tokio::time::Instant::now();
    post_events(&server, 1000..1100).await;
    tokio::time::sleep(Duration::from_secs(10).saturating_sub(down.elapsed())).await;
    assert_eq!(
        delivered(&db).await,
        1000,
        "nothing is delivered while the broker is down"
    );
    node.restart().await;
    await_delivered(&db, 1100).await;
    assert_exactly_once(&stream_messages(&js, "WEBHOOKS").await, 1100);
    drop(server);
    db.drop_db().await;
}

async fn a_crash_after_the_ack_publishes_again_and_the_stream_keeps_one(backend: Backend) {
    let db = TestDb::create(backend).await;
    let node = NatsNode::start().await;
    let js = jetstream(&[node.url()]).await;
    create_stream(&js, "WEBHOOKS", &["webhooks.>"], 1).await;
    let cfg = nats_config(&db.url, &format!("[\"{}\"]", node.url()), "");

    // The stream acks the publish, and the process exits before it records the delivery.
    let mut env = fwd_env();
    env.push(("IDEMHOOK_TEST_EXIT_AFTER_DELIVERY", "1".to_owned()));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut server = Server::start(&cfg, &env).await;
    let client = reqwest::Client::new();
    let _ = post(&client, &server, "fan", &event(0).2, &[]).await;
    let status = server.wait().await;
    assert_eq!(status.code(), Some(86), "{}", server.logs().join("\n"));
    assert_eq!(stream_messages(&js, "WEBHOOKS").await.len(), 1);
    assert_eq!(delivered(&db).await, 0, "the delivery was not recorded");

    // Restarted: once the lease runs out the delivery is published again with the same
    // message id, the stream answers "duplicate", and that is recorded as delivered.
    let server = start(&cfg).await;
    await_delivered(&db, 1).await;
    let stored = stream_messages(&js, "WEBHOOKS").await;
    assert_exactly_once(&stored, 1);
    let attempts: i32 = query_row(&db.connect().await, "SELECT attempts FROM deliveries")
        .await
        .try_get_by_index(0)
        .unwrap();
    assert_eq!(attempts, 2, "published twice, stored once");

    // An operator's redelivery is a new round: published again, under a new message id.
    let ops = Ops::new(&server);
    let (status, answer) = ops
        .post(&format!(
            "/webhooks/fan/events/{}/redeliver?type=invoice.payment_succeeded",
            event(0).0
        ))
        .await;
    assert_eq!(status, 202, "{answer}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let again = loop {
        let stored = stream_messages(&js, "WEBHOOKS").await;
        if stored.len() == 2 || tokio::time::Instant::now() > deadline {
            break stored;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(again.len(), 2, "the redelivery is published");
    assert_ne!(again[0].msg_id, again[1].msg_id);
    assert_eq!(again[0].payload, again[1].payload);
    drop(server);
    db.drop_db().await;
}

async fn a_misconfigured_stream_pauses_the_destination_and_a_large_body_is_dead_at_once(
    backend: Backend,
) {
    let db = TestDb::create(backend).await;
    // A definite misconfiguration refuses to launch, naming it: no stream, a stream that does
    // not capture the subjects, a duplicate window too short for the retries.
    let mut node = NatsNode::start().await;
    let urls = format!("[\"{}\"]", node.url());
    let js = jetstream(&[node.url()]).await;
    let refused = |needle: &'static str| {
        let cfg = nats_config(&db.url, &urls, "");
        async move {
            let env = fwd_env();
            let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let (status, logs) = Server::launch_fails(&cfg, &env).await;
            assert!(!status.success());
            assert!(
                logs.iter().any(|l| l.contains(needle)),
                "{needle}: {logs:#?}"
            );
        }
    };
    refused("does not exist").await;
    create_stream(&js, "WEBHOOKS", &["other.>"], 1).await;
    refused("does not capture").await;
    js.delete_stream("WEBHOOKS").await.unwrap();
    let short = async_nats::jetstream::stream::Config {
        name: "WEBHOOKS".to_owned(),
        subjects: vec!["webhooks.>".to_owned()],
        duplicate_window: Duration::from_secs(5),
        ..Default::default()
    };
    js.create_stream(short).await.unwrap();
    refused("duplicate_window").await;
    js.delete_stream("WEBHOOKS").await.unwrap();

    // The broker down at launch: idemhook starts and ingests; once the broker is back
    // without the stream, the destination pauses as misconfigured; fixed and resumed, it
    // delivers.
    node.kill().await;
    // The source takes bodies up to 2 MiB, more than the server's max_payload (1 MiB).
    let cfg = nats_config(&db.url, &urls, "").replace(
        "handlers = [\"forward\"]\n",
        "handlers = [\"forward\"]\nmax_body = \"2 MiB\"\n",
    );
    let mut server = start(&cfg).await;
    post_events(&server, 0..3).await;
    node.restart().await;
    let ops = Ops::new(&server);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (_, list) = ops.get("/destinations").await;
        let paused = list["destinations"].as_array().unwrap().iter().any(|d| {
            d["name"] == "bus" && d["kind"] == "nats" && d["paused_reason"] == "misconfigured"
        });
        if paused {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "not paused: {list}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(delivered(&db).await, 0);
    create_stream(&js, "WEBHOOKS", &["webhooks.>"], 1).await;
    let (status, answer) = ops.post("/destinations/fan/bus/resume").await;
    assert_eq!(status, 200, "{answer}");
    await_delivered(&db, 3).await;
    assert_exactly_once(&stream_messages(&js, "WEBHOOKS").await, 3);

    // A body over the server's max_payload (1 MiB) is dead after one attempt, saying why; the
    // mismatch was named once connected.
    server
        .wait_for_log("larger than the NATS server's max_payload")
        .await;
    let big = format!(
        "{{\"id\":\"big\",\"type\":\"x\",\"pad\":\"{}\"}}",
        "a".repeat(1_100_000)
    );
    let client = reqwest::Client::new();
    let (status, text, _) = post(&client, &server, "fan", &big, &[]).await;
    assert_eq!(status, 200, "{text}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let conn = db.connect().await;
    let (attempts, error) = loop {
        let sql = "SELECT attempts, last_error FROM deliveries \
                   WHERE event_id = 'big' AND status = 'dead'";
        let row = conn
            .query_one_raw(Statement::from_string(conn.get_database_backend(), sql))
            .await
            .unwrap();
        if let Some(row) = row {
            let attempts: i32 = row.try_get_by_index(0).unwrap();
            let error: String = row.try_get_by_index(1).unwrap();
            break (attempts, error);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the large delivery is not dead"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(attempts, 1);
    assert!(error.contains("max_payload"), "{error}");
    drop(server);
    db.drop_db().await;
}

async fn three_instances_and_a_three_node_cluster_losing_a_node_store_each_event_once(
    backend: Backend,
) {
    let db = TestDb::create(backend).await;
    let mut cluster = NatsCluster::start().await;
    let js = jetstream(&cluster.urls()).await;
    create_stream(&js, "WEBHOOKS", &["webhooks.>"], 3).await;
    let cfg = nats_config(&db.url, &cluster.urls_toml(), "concurrency = 4");
    let mut servers = Vec::new();
    for _ in 0..3 {
        servers.push(start(&cfg).await);
    }
    let client = reqwest::Client::new();
    for i in 0..300 {
        if i == 150 {
            cluster.nodes[0].kill().await;
        }
        let (_, _, body) = event(i);
        let (status, text, _) = post_until_ok(&client, &servers[i % 3], "fan", &body).await;
        assert_eq!(status, 200, "{text}");
    }
    await_delivered(&db, 300).await;
    let js = jetstream(&cluster.urls()[1..]).await;
    assert_exactly_once(&stream_messages(&js, "WEBHOOKS").await, 300);
    drop(servers);
    db.drop_db().await;
}

/// A publish whose ack never came (the broker frozen) is in doubt: its retry must reach the
/// stream inside the duplicate window, so it goes even while an operator has paused the
/// destination, and nothing else does. The stream still holds the event once.
async fn a_retry_in_doubt_goes_past_a_pause(backend: Backend) {
    let db = TestDb::create(backend).await;
    let node = NatsNode::start().await;
    let js = jetstream(&[node.url()]).await;
    create_stream(&js, "WEBHOOKS", &["webhooks.>"], 1).await;
    let extra = "timeout_secs = 1\nbackoff_base_ms = 1000\npause_after_failures = 0";
    let cfg = nats_config(&db.url, &format!("[\"{}\"]", node.url()), "").replace(
        "backoff_base_ms = 50\nbackoff_max_secs = 2\ntimeout_secs = 2\n",
        &format!("{extra}\nbackoff_max_secs = 2\n"),
    );
    let server = start(&cfg).await;
    node.signal("STOP");
    post_events(&server, 0..1).await;
    let conn = db.connect().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let row = query_row(&conn, "SELECT COALESCE(last_error, '') FROM deliveries").await;
        let error: String = row.try_get_by_index(0).unwrap();
        if error.contains("the retry publishes the same message id") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no attempt timed out: {error:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ops = Ops::new(&server);
    let (status, answer) = ops.post("/destinations/fan/bus/pause").await;
    assert_eq!(status, 200, "{answer}");
    post_events(&server, 1..2).await;
    node.signal("CONT");
    await_delivered(&db, 1).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        delivered(&db).await,
        1,
        "only the retry in doubt went while paused"
    );
    assert_exactly_once(&stream_messages(&js, "WEBHOOKS").await, 1);
    drop(server);
    db.drop_db().await;
}
