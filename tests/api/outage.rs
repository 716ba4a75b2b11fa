//! A database outage, for real: idemhook talks to its database server through a TCP proxy
//! the test controls, and the proxy cuts it off. Only a server can go away on its own, so
//! this runs on PostgreSQL and MariaDB only.

use std::sync::Arc;

use futures::future::join_all;
use idemhook::clock::Clock;
use idemhook::engine::store::{BatchFailure, Committed, Store};
use idemhook::event::Event;
use idemhook::handlers::{Handler, Inbox, Payments};
use idemhook::metrics::Metrics;
use serde_json::json;

use crate::statement;
use crate::support::*;

on_server_backends!(
    a_database_outage_answers_503_and_the_same_instance_recovers,
    a_partitioned_database_fails_the_whole_group_fast,
    a_commit_whose_answer_is_lost_is_answered_processed,
    a_group_commit_whose_answer_is_lost_is_answered_committed,
);

/// idemhook's database URL through a new proxy.
async fn proxied(db: &TestDb) -> (Proxy, String) {
    let (before_host, rest) = db.url.split_once('@').expect("user@host in URL");
    let (host, path) = rest.split_once('/').expect("host/db in URL");
    let proxy = Proxy::start(host).await;
    let url = format!("{before_host}@127.0.0.1:{}/{path}", proxy.port);
    (proxy, url)
}

/// Deliveries flow; the proxy cuts every connection and refuses new ones; deliveries get 503
/// with Retry-After, never a 500 or a hang; the proxy comes back and the *same* process serves
/// again, and the providers' redeliveries are processed exactly once.
async fn a_database_outage_answers_503_and_the_same_instance_recovers(backend: Backend) {
    let db = TestDb::create(backend).await;
    let (proxy, url) = proxied(&db).await;
    let mut server = Server::start(&config(&url, "shards = 4\ndb_timeout_secs = 2"), &ENV).await;
    let client = reqwest::Client::new();
    let body = |i: usize| payment(&format!("out_{i}"), "order_out", 10);
    for i in 0..10 {
        assert_eq!(post(&client, &server, "demo", &body(i), &[]).await.0, 200);
    }
    proxy.cut();
    let during = join_all((10..20).map(|i| {
        let b = body(i);
        let (client, server) = (&client, &server);
        async move { post(client, server, "demo", &b, &[]).await }
    }))
    .await;
    for (status, text, retry) in &during {
        assert_eq!(*status, 503, "{text}");
        assert!(retry.is_some(), "503 without Retry-After");
    }
    let ready = client
        .get(format!("{}/health/ready", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status().as_u16(), 503);
    proxy.restore();
    let ready = server.ready_within(10).await;
    assert_eq!(ready, 200);
    // The providers retry everything that was not answered 200.
    for i in 10..20 {
        let reply = post_until_ok(&client, &server, "demo", &body(i)).await;
        assert!(reply.1.contains(r#""status":"processed""#), "{reply:?}");
    }
    for i in 0..20 {
        let (_, text, _) = post(&client, &server, "demo", &body(i), &[]).await;
        assert!(text.contains(r#""status":"duplicate""#), "{text}");
    }
    let conn = db.connect().await;
    assert_eq!(rows(&conn).await.processed, 20);
    assert_eq!(amount_paid(&conn, "order_out").await, Some(200));
    let logs = server.logs();
    let count = |needle: &str| logs.iter().filter(|l| l.contains(needle)).count();
    assert_eq!(count("database unavailable: answering 503"), 1, "{logs:#?}");
    assert_eq!(count("database available again"), 1, "{logs:#?}");
    assert!(!logs.iter().any(|l| l.contains("panicked")), "{logs:#?}");
    drop(server);
    drop(proxy);
    db.drop_db().await;
}

/// A partition, not a clean cut: the database's sockets stay open and nothing comes back, so
/// no error ever arrives by itself. Sixteen events at once are all answered 503 with
/// Retry-After, each group failing as a whole when the transaction's client-side bound runs
/// out: no group falls back to event-by-event transactions (which would make each event wait
/// its own turn for the same silence). After the partition, the same process serves again.
async fn a_partitioned_database_fails_the_whole_group_fast(backend: Backend) {
    let db = TestDb::create(backend).await;
    let (proxy, url) = proxied(&db).await;
    let server = Server::start(&config(&url, "db_timeout_secs = 2"), &ENV).await;
    let client = reqwest::Client::new();
    let body = |i: usize| payment(&format!("part_{i}"), "order_part", 10);
    assert_eq!(post(&client, &server, "demo", &body(0), &[]).await.0, 200);
    let fallbacks = server.metric("idemhook_batch_fallbacks_total").await;
    proxy.blackhole();
    let cut_at = std::time::Instant::now();
    let during = tokio::time::timeout(
        PATIENCE,
        join_all((1..17).map(|i| {
            let b = body(i);
            let (client, server) = (&client, &server);
            async move { post(client, server, "demo", &b, &[]).await }
        })),
    )
    .await
    .expect("every delivery is answered during the partition");
    // A figure for the record (the assertions are on the answers, not on time).
    eprintln!(
        "partition on {backend:?}: the last 503 {:?} after the cut",
        cut_at.elapsed()
    );
    for (status, text, retry) in &during {
        assert_eq!(*status, 503, "{text}");
        assert!(retry.is_some(), "503 without Retry-After");
    }
    assert_eq!(
        server.metric("idemhook_batch_fallbacks_total").await,
        fallbacks,
        "a group fell back to one transaction per event"
    );
    proxy.restore();
    assert_eq!(server.ready_within(10).await, 200);
    for i in 1..17 {
        let reply = post_until_ok(&client, &server, "demo", &body(i)).await;
        assert_eq!(reply.0, 200, "{reply:?}");
    }
    let conn = db.connect().await;
    assert_eq!(amount_paid(&conn, "order_part").await, Some(170));
    drop(server);
    drop(proxy);
    db.drop_db().await;
}

/// The proxy's URL for `db`, with TLS off on PostgreSQL: the proxy must read the messages.
fn readable(backend: Backend, mut url: String) -> String {
    if backend == Backend::Postgres {
        url.push_str(if url.contains('?') {
            "&sslmode=disable"
        } else {
            "?sslmode=disable"
        });
    }
    url
}

/// The COMMIT reaches the database and commits; its answer never comes back (the proxy drops
/// the connection instead). The delivery that applied the event must be answered
/// `processed`, not 503 (the provider would redeliver and be told `duplicate` for an event
/// it was never told was processed): the engine finds its own attempt token on the record,
/// over another connection. The payment is applied once.
async fn a_commit_whose_answer_is_lost_is_answered_processed(backend: Backend) {
    let db = TestDb::create(backend).await;
    let (proxy, url) = proxied(&db).await;
    let url = readable(backend, url);
    let server = Server::start(&config(&url, "shards = 2"), &ENV).await;
    let client = reqwest::Client::new();
    let first = payment("lost_0", "order_lost", 10);
    assert_eq!(post(&client, &server, "demo", &first, &[]).await.0, 200);
    proxy.lose_next_commit_answer();
    let body = payment("lost_1", "order_lost", 25);
    let (status, text, _) = post(&client, &server, "demo", &body, &[]).await;
    assert!(
        proxy.commit_answer_lost(),
        "no COMMIT went through the proxy"
    );
    assert_eq!(status, 200, "{text}");
    assert!(text.contains(r#""status":"processed""#), "{text}");
    let (_, again, _) = post(&client, &server, "demo", &body, &[]).await;
    assert!(again.contains(r#""status":"duplicate""#), "{again}");
    let conn = db.connect().await;
    assert_eq!(rows(&conn).await.processed, 2);
    assert_eq!(amount_paid(&conn, "order_lost").await, Some(35));
    drop(server);
    drop(proxy);
    db.drop_db().await;
}

/// A group commit's answer is lost: on PostgreSQL the batch's one statement (it commits by
/// itself, so there is no COMMIT to lose: the proxy loses the answer to the message that
/// carries the batch's values), on MariaDB the batch's COMMIT. The batch is applied; the store
/// finds its attempt token over another connection and answers the batch committed, not
/// unavailable (every event would be answered 503, and the provider's redelivery `duplicate`
/// for events it was never told were processed). Delivered again, every event is a duplicate,
/// and the order holds each payment once.
async fn a_group_commit_whose_answer_is_lost_is_answered_committed(backend: Backend) {
    let db = TestDb::create(backend).await;
    let (proxy, url) = proxied(&db).await;
    let url = readable(backend, url);
    let settings = statement::settings();
    let conn = app_pool(&url, &settings).await;
    let metrics = Arc::new(Metrics::new());
    let clock = Clock::from_fn(|| statement::at(0));
    let store = Store::new(conn, 3, statement::bounds(), clock.clone(), metrics.clone());
    let handlers: Vec<Arc<dyn Handler>> = vec![Arc::new(Inbox), Arc::new(Payments::new(clock))];
    let pay = |id: &str, amount: i64| {
        let data = json!({"data": {"order_id": "o_lost", "amount": amount, "currency": "eur"}});
        statement::event("payment_succeeded", id, data)
    };
    // Each call is a delivery of its own: the same events, a new attempt token.
    let deliveries = || {
        let mut events = vec![
            pay("lost_batch_1", 10),
            pay("lost_batch_2", 25),
            pay("lost_batch_3", 7),
        ];
        events.sort_by_key(|e| e.digest);
        events
    };
    let events = deliveries();
    let jobs: Vec<(&Event, &[Arc<dyn Handler>])> =
        events.iter().map(|e| (e, handlers.as_slice())).collect();
    match backend {
        Backend::Postgres => proxy.lose_next_answer_to(b"lost_batch_2"),
        _ => proxy.lose_next_commit_answer(),
    }
    let committed = store.commit_batch(&jobs).await;
    assert!(
        proxy.commit_answer_lost(),
        "no answer went through the proxy"
    );
    match committed {
        Ok(_) => {}
        Err(BatchFailure::Unavailable(why)) => panic!("answered unavailable: {why}"),
        Err(BatchFailure::Redo) => panic!("answered as not committed: redone"),
    }
    let one_statement = u64::from(backend == Backend::Postgres);
    assert_eq!(metrics.batch_statements.get(), one_statement);
    // The provider's redelivery of the batch.
    let again = deliveries();
    let jobs: Vec<(&Event, &[Arc<dyn Handler>])> =
        again.iter().map(|e| (e, handlers.as_slice())).collect();
    assert!(
        matches!(store.commit_batch(&jobs).await, Err(BatchFailure::Redo)),
        "the batch delivered again must be redone event by event"
    );
    for event in &again {
        let verdict = store.process(event, &handlers).await.expect("answered");
        assert!(
            matches!(verdict.committed, Committed::Duplicate { .. }),
            "{}: {:?}",
            event.key.event_id,
            verdict.committed
        );
    }
    let conn = db.connect().await;
    assert_eq!(rows(&conn).await.processed, 3);
    assert_eq!(amount_paid(&conn, "o_lost").await, Some(42));
    drop(proxy);
    db.drop_db().await;
}
