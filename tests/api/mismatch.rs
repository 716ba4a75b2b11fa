//! A duplicate whose body differs from the one that settled its event is never applied, and
//! is visible on the event: its admin view counts such duplicates, with the last body's hash
//! and time, written within about a second whether the duplicate was answered from the cache
//! or by the database. A source may refuse them instead (`on_payload_mismatch = "reject"`):
//! a 409 naming both hashes, counted as a rejection.

use std::time::Duration;

use idemhook::config::OnPayloadMismatch;
use idemhook::event::key::sha256;
use idemhook::metrics::Rejection;
use rocket::http::Status;
use serde_json::Value;

use crate::support::*;

on_every_backend!(
    mismatching_duplicates_are_counted_on_the_event,
    a_source_that_rejects_mismatches_answers_409,
);

const EVENT: &str = "/webhooks/demo/events/evt_m?type=payment_succeeded";

/// The event's `payload_mismatches` once its count reaches `count` (polled: the writes are
/// coalesced and land within about a second).
async fn mismatches_reaching(app: &TestApp, count: i64) -> Value {
    for _ in 0..100 {
        let view = app.get(EVENT, Some(ADMIN_TOKEN)).await;
        assert_eq!(view.status, Status::Ok, "{view:?}");
        let m = view.json["payload_mismatches"].clone();
        if m["count"].as_i64() >= Some(count) {
            return m;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the event's mismatch count never reached {count}");
}

async fn mismatching_duplicates_are_counted_on_the_event(backend: Backend) {
    let db = TestDb::create(backend).await;
    let app = TestApp::spawn_with(&test_settings(&db), admin_env())
        .await
        .unwrap();
    let settled = payment("evt_m", "order_m", 10);
    let r = app.post("demo", &settled, &[]).await;
    assert_eq!(r.outcome(), "processed", "{r:?}");
    let view = app.get(EVENT, Some(ADMIN_TOKEN)).await;
    assert_eq!(view.json["payload_mismatches"]["count"], 0, "{view:?}");

    // Answered from this instance's cache.
    let other = payment("evt_m", "order_m", 99);
    for _ in 0..3 {
        let r = app.post("demo", &other, &[]).await;
        assert_eq!((r.status, r.outcome()), (Status::Ok, "duplicate"), "{r:?}");
    }
    let m = mismatches_reaching(&app, 3).await;
    assert_eq!(m["count"], 3, "{m}");
    assert_eq!(
        m["last_mismatch_sha256"],
        hex::encode(sha256(other.as_bytes()))
    );
    assert!(m["last_mismatch_at"].is_string(), "{m}");

    // Answered by the database: a second instance, whose cache has never seen the event.
    let second = TestApp::spawn_with(&test_settings(&db), admin_env())
        .await
        .unwrap();
    let third = payment("evt_m", "order_m", 7);
    let r = second.post("demo", &third, &[]).await;
    assert_eq!((r.status, r.outcome()), (Status::Ok, "duplicate"), "{r:?}");
    let m = mismatches_reaching(&app, 4).await;
    assert_eq!(m["count"], 4, "{m}");
    assert_eq!(
        m["last_mismatch_sha256"],
        hex::encode(sha256(third.as_bytes()))
    );

    // The settled body again is a plain duplicate, and nothing was applied.
    assert_eq!(app.post("demo", &settled, &[]).await.outcome(), "duplicate");
    assert_eq!(amount_paid(&db.connect().await, "order_m").await, Some(10));
    let metrics = app.engine().metrics().source("demo");
    assert_eq!(metrics.payload_mismatches.get(), 3);
    db.drop_db().await;
}

async fn a_source_that_rejects_mismatches_answers_409(backend: Backend) {
    let db = TestDb::create(backend).await;
    let mut settings = test_settings(&db);
    settings
        .sources
        .get_mut("demo")
        .expect("the demo test source")
        .on_payload_mismatch = OnPayloadMismatch::Reject;
    let env = admin_env();
    let app = TestApp::spawn_with(&settings, env).await.unwrap();
    let settled = payment("evt_m", "order_m", 10);
    assert_eq!(app.post("demo", &settled, &[]).await.outcome(), "processed");
    let other = payment("evt_m", "order_m", 99);
    let r = app.post("demo", &other, &[]).await;
    assert_eq!(r.status, Status::Conflict, "{r:?}");
    for hash in [sha256(settled.as_bytes()), sha256(other.as_bytes())] {
        assert!(r.error().contains(&hex::encode(hash)), "{r:?}");
    }
    // The settled body is still a duplicate; nothing of the other was applied.
    let r = app.post("demo", &settled, &[]).await;
    assert_eq!((r.status, r.outcome()), (Status::Ok, "duplicate"), "{r:?}");
    assert_eq!(amount_paid(&db.connect().await, "order_m").await, Some(10));
    let metrics = app.engine().metrics().source("demo");
    assert_eq!(metrics.rejected(Rejection::PayloadMismatch).get(), 1);
    assert_eq!(metrics.payload_mismatches.get(), 1);
    let m = mismatches_reaching(&app, 1).await;
    assert_eq!(
        m["last_mismatch_sha256"],
        hex::encode(sha256(other.as_bytes()))
    );
    db.drop_db().await;
}
