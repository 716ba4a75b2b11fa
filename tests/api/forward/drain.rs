//! Shutdown with deliveries to make: the delivery worker keeps delivering while the shards
//! drain, and stops only once they have (the order `idemhook::task::Tasks::shutdown` keeps).

use idemhook::status::DeliveryStatus;
use sea_orm::EntityTrait;

use crate::support::*;

on_server_backends!(an_event_committed_while_the_shards_drain_is_delivered_before_exit);

/// Two slow events are inside idemhook when SIGTERM arrives: `first` commits about a second
/// into the drain, `last` about two seconds after it. The delivery worker still runs while
/// the shards drain, so `first` is delivered by this instance before it exits; a worker
/// stopped before the drain would have left it to the next instance, never attempted. Once
/// the process has exited no delivery is leased: the worker stopped after the last commit and
/// settled or gave back everything it held.
///
/// Not on SQLite: there `last`'s open transaction holds the one write lock, so nothing about
/// `first`'s delivery could be written until the drain ended.
async fn an_event_committed_while_the_shards_drain_is_delivered_before_exit(backend: Backend) {
    let db = TestDb::create(backend).await;
    let app = Receiver::start().await;
    // One event a transaction (no group commit), so `first` commits while `last` is still in
    // its own; the drain and Rocket's grace outlast `last`.
    let cfg = fwd_config_with(
        &db.url,
        &app.url(),
        "forward_poll_ms = 50\nmax_batch = 1\nshutdown_grace_secs = 30",
        "[default.shutdown]\ngrace = 30\nmercy = 2",
    )
    .replacen(
        r#"handlers = ["forward", "payments"]"#,
        r#"handlers = ["forward", "payments", "sleep"]"#,
        1,
    );
    let mut server = start(&cfg).await;
    let client = reqwest::Client::new();
    let send = |id: &str, order: &str, sleep_ms: u64| {
        let request = client
            .post(format!("{}/webhooks/fwd", server.base))
            .header("X-Test-Sleep-Ms", sleep_ms.to_string())
            .body(payment(id, order, 1));
        tokio::spawn(async move {
            let r = request.send().await.expect("answered");
            (r.status().as_u16(), r.text().await.unwrap_or_default())
        })
    };
    let received = r#"idemhook_events_received_total{source="fwd"}"#;
    let first = send("evt_drain_first", "order_first", 1_000);
    server.wait_for_metric(received, 1.0).await;
    let last = send("evt_drain_last", "order_last", 3_000);
    server.wait_for_metric(received, 2.0).await;
    server.signal("TERM");
    for reply in [first, last] {
        let (status, body) = reply.await.unwrap();
        assert_eq!(status, 200, "{body}");
        assert!(body.contains(r#""status":"processed""#), "{body}");
    }
    // Idle keep-alive connections would hold Rocket's shutdown until its grace ran out.
    drop(client);
    assert!(server.wait().await.success());

    let delivered_here = app
        .received()
        .iter()
        .any(|r| String::from_utf8_lossy(&r.body).contains("evt_drain_first"));
    let rows = idemhook::entities::delivery::Entity::find()
        .all(&db.connect().await)
        .await
        .unwrap();
    let first_row = rows.iter().find(|r| r.event_id == "evt_drain_first");
    assert!(
        delivered_here && first_row.is_some_and(|r| r.status == DeliveryStatus::Delivered),
        "the event committed during the drain was not delivered before exit: {:?}",
        first_row.map(|r| (&r.status, r.attempts))
    );
    assert_eq!(rows.len(), 2);
    for row in &rows {
        assert_eq!(
            (row.lease_until, row.lease_token.as_ref()),
            (None, None),
            "{} left leased",
            row.event_id
        );
    }
    db.drop_db().await;
}
