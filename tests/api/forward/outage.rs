//! Outages on either side of a delivery, and nothing lost: the app down while events
//! arrive, idemhook killed (-9) mid-delivery, idemhook stopped with a delivery unanswered.

use std::time::Duration;

use idemhook::status::DeliveryStatus;
use sea_orm::EntityTrait;

use crate::support::*;

on_every_backend!(
    with_the_app_down_every_event_is_answered_and_delivered_once_it_is_back,
    kill_9_mid_delivery_then_restart_delivers_everything,
    shutdown_gives_back_the_leases_it_did_not_wait_for,
);

/// The app is down. The first event is answered processed, and its delivery is tried and
/// refused. Every later event is answered processed while that delivery is still failing
/// (pending, tried, its last error a refused connection), and at its answer its own delivery
/// is pending: no answer waited for a delivery to succeed or to give up. Once the app is back
/// every event is delivered, the first on a later attempt than its first: none was lost. (That
/// ingestion is not *slowed* would need a clock; what is checked is that it does not wait.)
async fn with_the_app_down_every_event_is_answered_and_delivered_once_it_is_back(backend: Backend) {
    let db = TestDb::create(backend).await;
    let mut app = Receiver::start().await;
    app.stop();
    // Enough attempts that no delivery can go dead while the app is down, however slow the host.
    let server = start(&fwd_config(&db.url, &app.url(), "max_attempts = 1000")).await;
    let client = reqwest::Client::new();
    let ops = Ops::new(&server);
    let id = |i: usize| format!("evt_down_{i}");
    let ingest = |i: usize| {
        let (client, server) = (&client, &server);
        async move {
            let (status, text, _) =
                post(client, server, "fwd", &payment(&id(i), "o", 1), &[]).await;
            assert_eq!(status, 200, "{text}");
            let answer: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert_eq!(answer["status"], "processed", "{text}");
        }
    };
    ingest(0).await;
    // Until its first attempt has an outcome; which one is checked below.
    let tried = |view: &serde_json::Value| {
        view["delivery"]["status"] != "pending" || view["delivery"]["last_error"].is_string()
    };
    ops.wait_for_event(&id(0), 30, tried).await;
    for i in 1..20 {
        ingest(i).await;
        let view = ops.fwd_event(&id(i)).await;
        assert_eq!(view["delivery"]["status"], "pending", "{view}");
    }
    let first = ops.fwd_event(&id(0)).await;
    assert_eq!(first["delivery"]["status"], "pending", "{first}");
    assert!(
        first["delivery"]["last_error"]
            .as_str()
            .is_some_and(|e| e.starts_with("connection")),
        "{first}"
    );
    app.restart().await;
    let keys = app.wait_for_delivered(20, 60).await;
    assert_eq!(keys.len(), 20);
    let first_delivered = app
        .received()
        .into_iter()
        .find(|r| r.header("idemhook-event-id") == id(0))
        .expect("the first event delivered");
    let attempt: u32 = first_delivered.header("idemhook-attempt").parse().unwrap();
    assert!(attempt > 1, "delivered on attempt {attempt}");
    drop(server);
    db.drop_db().await;
}

/// The process is killed (SIGKILL) while the app holds its deliveries unanswered. After a
/// restart, once the leases run out, every event is delivered; the app, deduplicating by
/// `Idempotency-Key`, applies each exactly once.
async fn kill_9_mid_delivery_then_restart_delivers_everything(backend: Backend) {
    let db = TestDb::create(backend).await;
    let app = Receiver::start().await;
    app.answer(Answer::Hang);
    let cfg = fwd_config(&db.url, &app.url(), "");
    let mut server = start(&cfg).await;
    let client = reqwest::Client::new();
    for i in 0..5 {
        let body = payment(&format!("evt_kill_{i}"), "o", 1);
        assert_eq!(post(&client, &server, "fwd", &body, &[]).await.0, 200);
    }
    for _ in 0..200 {
        if app.received().len() >= 5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        app.received().len(),
        5,
        "every delivery in flight before the kill"
    );
    server.signal("KILL");
    server.wait().await;
    app.answer(Answer::Ok);
    let server = start(&cfg).await;
    let keys = app.wait_for_delivered(5, 60).await;
    assert_eq!(keys.len(), 5);
    drop(server);
    db.drop_db().await;
}

/// SIGTERM while the app holds a delivery unanswered, with a grace shorter than the
/// attempt's timeout: the process exits, the delivery is not marked delivered, its lease is
/// given back (due at once for any instance, not after the lease would run out) and the
/// attempt that never finished is not counted. The next instance delivers it.
async fn shutdown_gives_back_the_leases_it_did_not_wait_for(backend: Backend) {
    let db = TestDb::create(backend).await;
    let app = Receiver::start().await;
    app.answer(Answer::Hang);
    let cfg = fwd_config(&db.url, &app.url(), "timeout_secs = 60").replacen(
        "forward_poll_ms = 50",
        "forward_poll_ms = 50\nshutdown_grace_secs = 1",
        1,
    );
    let mut server = start(&cfg).await;
    let client = reqwest::Client::new();
    let body = payment("evt_term", "o", 1);
    assert_eq!(post(&client, &server, "fwd", &body, &[]).await.0, 200);
    for _ in 0..200 {
        if !app.received().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(app.received().len(), 1, "the delivery is in flight");
    server.signal("TERM");
    assert!(server.wait().await.success());
    let conn = db.connect().await;
    let row = idemhook::entities::delivery::Entity::find()
        .one(&conn)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.status, DeliveryStatus::Pending);
    assert_eq!(
        (row.lease_until, row.lease_token),
        (None, None),
        "lease given back"
    );
    assert_eq!(row.attempts, 0, "the unanswered attempt is not counted");
    app.answer(Answer::Ok);
    let server = start(&cfg).await;
    app.wait_for_delivered(1, 30).await;
    drop(server);
    db.drop_db().await;
}
