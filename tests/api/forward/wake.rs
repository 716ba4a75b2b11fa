//! The worker is woken by a commit, not only by its poll; an ingest-only instance writes the
//! outbox and leaves delivery to others.

use std::time::Duration;

use crate::support::*;

on_every_backend!(
    a_commit_wakes_the_worker_long_before_its_poll,
    an_ingest_only_instance_writes_the_outbox_and_another_instance_delivers_it,
);

/// With a one-minute poll, an event is delivered within seconds: its commit woke the worker.
/// The first event settles whatever the worker was doing at launch; once it is delivered the
/// worker has found nothing more and sleeps its poll, so only the wake can deliver the second
/// in time.
async fn a_commit_wakes_the_worker_long_before_its_poll(backend: Backend) {
    let db = TestDb::create(backend).await;
    let app = Receiver::start().await;
    let server = start(&fwd_config_with(
        &db.url,
        &app.url(),
        "forward_poll_ms = 60000",
        "",
    ))
    .await;
    let client = reqwest::Client::new();
    let ops = Ops::new(&server);
    for (n, id) in ["evt_wake_1", "evt_wake_2"].into_iter().enumerate() {
        let body = payment(id, &format!("order_{n}"), 100);
        let (status, text, _) = post(&client, &server, "fwd", &body, &[]).await;
        assert_eq!(status, 200, "{text}");
        // 20 s: a third of the poll.
        ops.wait_for_delivery(id, "delivered", 20).await;
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
    let settings = "forward_poll_ms = 50\nforward_worker = false";
    let mut ingest = start(&fwd_config_with(&db.url, &app.url(), settings, "")).await;
    let client = reqwest::Client::new();
    let body = payment("evt_ingest_only", "order_1", 100);
    let (status, text, _) = post(&client, &ingest, "fwd", &body, &[]).await;
    assert_eq!(status, 200, "{text}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        app.received().is_empty(),
        "an ingest-only instance delivered"
    );
    let sql = "SELECT status, attempts FROM deliveries";
    let row = query_row(&db.connect().await, sql).await;
    assert_eq!(row.try_get_by_index::<String>(0).unwrap(), "pending");
    assert_eq!(row.try_get_by_index::<i32>(1).unwrap(), 0);
    ingest.signal("TERM");
    ingest.wait().await;

    let worker = start(&fwd_config(&db.url, &app.url(), "")).await;
    let keys = app.wait_for_delivered(1, 30).await;
    assert_eq!(keys.len(), 1);
    drop(worker);
    db.drop_db().await;
}
