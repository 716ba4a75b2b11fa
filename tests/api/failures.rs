//! Handlers that fail or panic: the event rolls back entirely, is answered 500, is audited
//! as a failed attempt, and is processed exactly once when the provider retries.

use rocket::http::Status;
use std::sync::atomic::Ordering;

use sea_orm::EntityTrait;

use crate::support::*;

on_every_backend!(
    a_failing_handler_rolls_back_and_the_retry_processes_once,
    a_panicking_handler_fails_one_event_and_the_shard_keeps_serving,
    a_payment_with_bad_fields_rolls_back,
);

async fn a_failing_handler_rolls_back_and_the_retry_processes_once(backend: Backend) {
    let db = TestDb::create(backend).await;
    let app = TestApp::spawn_with(&test_settings(&db), admin_env())
        .await
        .unwrap();
    let body = payment("evt_flaky", "order_f", 500);
    app.faults.fail.store(true, Ordering::SeqCst);
    for _ in 0..2 {
        let r = app.post("flaky", &body, &[]).await;
        assert_eq!(r.status, Status::InternalServerError, "{r:?}");
        assert!(r.error().contains("rolled back"), "{r:?}");
        // The detail is logged, never sent.
        assert!(!r.error().contains("ledger"), "{r:?}");
    }
    let conn = db.connect().await;
    // The payment written before the failing handler was rolled back with it.
    assert_eq!(amount_paid(&conn, "order_f").await, None);
    assert_eq!(rows(&conn).await.processed, 0);
    // The failed event's raw payload is kept, so it can be replayed after a fix.
    let kept = idemhook::entities::event_payload::Entity::find()
        .all(&conn)
        .await
        .unwrap();
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].payload, body.as_bytes());
    let audit = app
        .get(
            "/webhooks/flaky/events/evt_flaky?type=payment_succeeded",
            Some(ADMIN_TOKEN),
        )
        .await;
    assert_eq!(audit.status, Status::Ok, "{audit:?}");
    assert_eq!(audit.json["status"], "failed");
    assert_eq!(audit.json["attempts"], 2);
    assert_eq!(
        audit.json["last_error"],
        "the downstream ledger is unavailable"
    );
    assert_eq!(audit.json["processed_at"], serde_json::Value::Null);

    app.faults.fail.store(false, Ordering::SeqCst);
    let r = app.post("flaky", &body, &[]).await;
    assert_eq!(r.outcome(), "processed", "{r:?}");
    assert_eq!(app.post("flaky", &body, &[]).await.outcome(), "duplicate");
    assert_eq!(amount_paid(&conn, "order_f").await, Some(500));
    let audit = app
        .get(
            "/webhooks/flaky/events/evt_flaky?type=payment_succeeded",
            Some(ADMIN_TOKEN),
        )
        .await;
    assert_eq!(audit.json["status"], "processed");
    assert_eq!(audit.json["attempts"], 3);
    drop(app);
    db.drop_db().await;
}

async fn a_panicking_handler_fails_one_event_and_the_shard_keeps_serving(backend: Backend) {
    let db = TestDb::create(backend).await;
    let mut settings = test_settings(&db);
    settings.shards = 1; // every event goes through the shard that saw the panic
    let app = TestApp::spawn(&settings).await;
    let r = app
        .post("panicky", r#"{"id":"p1","type":"boom"}"#, &[])
        .await;
    assert_eq!(r.status, Status::InternalServerError, "{r:?}");
    for i in 0..3 {
        let r = app
            .post(
                "panicky",
                &format!(r#"{{"id":"ok{i}","type":"fine"}}"#),
                &[],
            )
            .await;
        assert_eq!(r.outcome(), "processed", "{r:?}");
    }
    let r = rows(&db.connect().await).await;
    // The inbox row written before the panic was rolled back.
    assert_eq!((r.processed, r.inbox, r.failed), (3, 3, 1));
    drop(app);
    db.drop_db().await;
}

async fn a_payment_with_bad_fields_rolls_back(backend: Backend) {
    let db = TestDb::create(backend).await;
    let app = TestApp::spawn(&test_settings(&db)).await;
    let body = r#"{"id":"bad_pay","type":"payment_succeeded","data":{"order_id":"o","amount":"12","currency":"eur"}}"#;
    let r = app.post("demo", body, &[]).await;
    assert_eq!(r.status, Status::InternalServerError, "{r:?}");
    let r = rows(&db.connect().await).await;
    assert_eq!((r.processed, r.inbox, r.failed), (0, 0, 1));
    drop(app);
    db.drop_db().await;
}
