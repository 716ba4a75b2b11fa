//! Poison events: an event that can never succeed is settled as `rejected` (answered 200, so
//! the provider stops retrying), with its reason and raw payload kept for a replay, and every
//! later delivery is answered the same way. Nothing of it is applied.

use idemhook::entities::{event_payload, processed_event};
use idemhook::status::EventStatus;
use rocket::http::Status;
use sea_orm::EntityTrait;

use crate::support::*;

on_every_backend!(
    a_rejected_event_is_settled_and_answered_the_same_way_again,
    a_payment_in_another_currency_or_past_the_total_is_rejected,
    a_payment_intent_without_an_order_is_processed_with_no_effect,
);

async fn a_rejected_event_is_settled_and_answered_the_same_way_again(backend: Backend) {
    let db = TestDb::create(backend).await;
    let env = admin_env();
    let app = TestApp::spawn_with(&test_settings(&db), env).await.unwrap();
    let body = r#"{"id":"evt_poison","type":"poison","data":{"x":1}}"#;
    let first = app.post("picky", body, &[]).await;
    assert_eq!(
        (first.status, first.outcome()),
        (Status::Ok, "rejected"),
        "{first:?}"
    );
    assert_eq!(first.replayed, None);
    // Later deliveries (the cache's answer, then the database's after a restart of the
    // cache's knowledge is not needed: both say the same).
    for _ in 0..2 {
        let again = app.post("picky", body, &[]).await;
        assert_eq!(
            (again.status, again.outcome()),
            (Status::Ok, "rejected"),
            "{again:?}"
        );
        assert_eq!(again.replayed.as_deref(), Some("true"));
    }
    let conn = db.connect().await;
    let r = rows(&conn).await;
    assert_eq!(
        (r.processed, r.inbox),
        (1, 0),
        "the inbox row was rolled back"
    );
    let record = processed_event::Entity::find()
        .one(&conn)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.status, EventStatus::Rejected);
    assert_eq!(record.reason.as_deref(), Some("poison is never accepted"));
    let kept = event_payload::Entity::find()
        .one(&conn)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(kept.payload, body.as_bytes());
    let audit = app
        .get(
            "/webhooks/picky/events/evt_poison?type=poison",
            Some(ADMIN_TOKEN),
        )
        .await;
    assert_eq!(audit.json["status"], "rejected", "{audit:?}");
    assert_eq!(audit.json["reason"], "poison is never accepted");
    let metrics = app.engine().metrics().render();
    assert!(
        metrics.contains(r#"idemhook_handler_rejections_total{source="picky"} 1"#),
        "{metrics}"
    );
    // A different event of the same source is not affected.
    let fine = app
        .post("picky", r#"{"id":"evt_fine","type":"fine"}"#, &[])
        .await;
    assert_eq!(fine.outcome(), "processed");
    drop(app);
    db.drop_db().await;
}

/// 250 eur and then 100 usd on one order is not "350 eur": the second payment is rejected and
/// the order keeps 250 eur. A payment that would take the total past `i64` is rejected too,
/// and the order stays readable (SQLite would otherwise turn the column into a float).
async fn a_payment_in_another_currency_or_past_the_total_is_rejected(backend: Backend) {
    let db = TestDb::create(backend).await;
    let env = admin_env();
    let app = TestApp::spawn_with(&test_settings(&db), env).await.unwrap();
    let pay = |id: &str, amount: i64, currency: &str| {
        serde_json::json!({
            "id": id,
            "type": "payment_succeeded",
            "data": {"order_id": "order_fx", "amount": amount, "currency": currency}
        })
        .to_string()
    };
    assert_eq!(
        app.post("demo", &pay("fx_1", 250, "eur"), &[])
            .await
            .outcome(),
        "processed"
    );
    let usd = app.post("demo", &pay("fx_2", 100, "usd"), &[]).await;
    assert_eq!(
        (usd.status, usd.outcome()),
        (Status::Ok, "rejected"),
        "{usd:?}"
    );
    let huge = app.post("demo", &pay("fx_3", i64::MAX, "eur"), &[]).await;
    assert_eq!(
        (huge.status, huge.outcome()),
        (Status::Ok, "rejected"),
        "{huge:?}"
    );
    let order = app.get("/orders/order_fx", Some(ADMIN_TOKEN)).await;
    assert_eq!(order.status, Status::Ok, "{order:?}");
    assert_eq!(order.json["amount_paid"], 250);
    assert_eq!(order.json["currency"], "eur");
    assert_eq!(order.json["payments"].as_array().map(Vec::len), Some(1));
    drop(app);
    db.drop_db().await;
}

/// Stripe sends `payment_intent.succeeded` for Checkout sessions and invoices too, without our
/// `metadata.order_id`: not for the payments handler, so processed with no effect, never a
/// failure retried for days.
async fn a_payment_intent_without_an_order_is_processed_with_no_effect(backend: Backend) {
    let db = TestDb::create(backend).await;
    let app = TestApp::spawn(&test_settings(&db)).await;
    let body = r#"{"id":"pi_1","type":"payment_intent.succeeded","data":{"object":{"amount_received":900,"currency":"usd","metadata":{}}}}"#;
    let r = app.post("demo", body, &[]).await;
    assert_eq!((r.status, r.outcome()), (Status::Ok, "processed"), "{r:?}");
    let r = rows(&db.connect().await).await;
    assert_eq!((r.processed, r.inbox, r.failed), (1, 1, 0));
    drop(app);
    db.drop_db().await;
}
