//! Forwarding to the user's app, for real: the binary on a real socket, the app a real HTTP
//! server ([`Receiver`]) that answers as each test says or is down, on every backend.

use base64::Engine as _;
use hmac::{KeyInit, Mac};

use crate::support::*;

on_every_backend!(
    every_event_is_delivered_signed_and_unchanged_and_a_rolled_back_one_never,
    failures_and_timeouts_are_retried_with_the_same_key,
    a_dead_delivery_is_redelivered_with_the_same_key,
    ordering_holds_across_a_retried_first_event,
);

/// Verifies a delivery as a Standard Webhooks library does, with its own HMAC.
fn verify(r: &Received) {
    let (id, ts) = (r.header("webhook-id"), r.header("webhook-timestamp"));
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(FORWARD_SECRET_KEY).unwrap();
    mac.update(format!("{id}.{ts}.").as_bytes());
    mac.update(&r.body);
    let expected = format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    );
    assert_eq!(r.header("webhook-signature"), expected, "{r:?}");
    assert_eq!(r.header("idempotency-key"), id);
}

fn percent_decoded(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .unwrap()
        .into_owned()
}

async fn deliveries_in_db(db: &TestDb) -> i64 {
    let row = query_row(&db.connect().await, "SELECT COUNT(*) AS n FROM deliveries").await;
    row.try_get_by_index(0).unwrap()
}

/// Each event reaches the app once, byte for byte, signed, with its exact key parts; the
/// key is stable and distinct per event. An event whose transaction rolled back (a payment
/// the handler cannot read) has no outbox row and is never delivered.
async fn every_event_is_delivered_signed_and_unchanged_and_a_rolled_back_one_never(
    backend: Backend,
) {
    let db = TestDb::create(backend).await;
    let app = Receiver::start().await;
    let server = start(&fwd_config(&db.url, &app.url(), "")).await;
    let client = reqwest::Client::new();
    let ops = Ops::new(&server);
    let ids = ["evt_a", "Évt b/ü", "evt_c"];
    for (i, id) in ids.iter().enumerate() {
        let body = payment(id, &format!("order_{i}"), 100);
        let headers = [
            ("Webhook-Id", *id),
            ("Content-Type", "application/json; charset=utf-8"),
        ];
        let (status, text, _) = post(&client, &server, "fwd", &body, &headers).await;
        assert_eq!(status, 200, "{text}");
    }
    let broken = r#"{"id":"evt_broken","type":"payment_succeeded","data":{"order_id":"o","amount":"x","currency":"eur"}}"#;
    assert_eq!(post(&client, &server, "fwd", broken, &[]).await.0, 500);
    let keys = app.wait_for_delivered(3, 30).await;
    assert_eq!(keys.len(), 3);
    assert_eq!(
        deliveries_in_db(&db).await,
        3,
        "a rolled-back event left an outbox row"
    );
    for r in app.received() {
        verify(&r);
        let id = percent_decoded(r.header("idemhook-event-id"));
        assert!(ids.contains(&id.as_str()), "{id:?}");
        let i = ids.iter().position(|x| *x == id).unwrap();
        assert_eq!(
            r.body,
            payment(&id, &format!("order_{i}"), 100).into_bytes()
        );
        assert_eq!(r.header("content-type"), "application/json; charset=utf-8");
        assert_eq!(percent_decoded(r.header("idemhook-source")), "fwd");
        assert_eq!(r.header("idemhook-event-type"), "payment_succeeded");
        assert_eq!(r.header("idemhook-attempt"), "1");
        // The app has the request; idemhook records it once the answer is back.
        let view = ops
            .wait_for_delivery(&urlencode(&id), "delivered", 30)
            .await;
        assert_eq!(
            view["delivery"]["idempotency_key"],
            r.header("idempotency-key")
        );
        assert_eq!(view["delivery"]["last_status"], 200);
    }
    assert!(!app
        .received()
        .iter()
        .any(|r| r.header("idemhook-event-id") == "evt_broken"));
    // A duplicate is answered from the dedupe record and schedules nothing.
    assert!(post(
        &client,
        &server,
        "fwd",
        &payment("evt_a", "order_0", 100),
        &[("Webhook-Id", "evt_a")]
    )
    .await
    .1
    .contains("duplicate"));
    assert_eq!(deliveries_in_db(&db).await, 3);
    drop(server);
    db.drop_db().await;
}

fn urlencode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// A 500, then a hang past `timeout_secs`, then a 503 with `Retry-After: 0`, then a 2xx: four
/// attempts of one delivery (each failure, the 503 included, is retried), the same key on
/// each, numbered 1 to 4.
async fn failures_and_timeouts_are_retried_with_the_same_key(backend: Backend) {
    let db = TestDb::create(backend).await;
    let app = Receiver::start().await;
    app.script(&[Answer::Status(500), Answer::Hang, Answer::RetryAfter(0)]);
    let server = start(&fwd_config(&db.url, &app.url(), "timeout_secs = 1")).await;
    let client = reqwest::Client::new();
    let ops = Ops::new(&server);
    let body = payment("evt_retry", "order_r", 5);
    assert_eq!(post(&client, &server, "fwd", &body, &[]).await.0, 200);
    let view = ops.wait_for_delivery("evt_retry", "delivered", 30).await;
    assert_eq!(view["delivery"]["attempts"], 4, "{view}");
    let received = app.received();
    let replies: Vec<Answer> = received.iter().map(|r| r.reply).collect();
    assert_eq!(
        replies,
        [
            Answer::Status(500),
            Answer::Hang,
            Answer::RetryAfter(0),
            Answer::Ok
        ],
        "{received:#?}"
    );
    let key = received[0].header("idempotency-key");
    for (i, r) in received.iter().enumerate() {
        verify(r);
        assert_eq!(r.header("idempotency-key"), key);
        assert_eq!(r.header("idemhook-attempt"), (i + 1).to_string());
        assert_eq!(r.body, body.as_bytes());
    }
    drop(server);
    db.drop_db().await;
}

/// The app fails every attempt: after `max_attempts` the delivery is dead, kept and visible.
/// An operator redelivers it (202; a second request while it is pending is 409); it is
/// delivered with the same key. An event that has no delivery is 404.
async fn a_dead_delivery_is_redelivered_with_the_same_key(backend: Backend) {
    let db = TestDb::create(backend).await;
    let app = Receiver::start().await;
    app.answer(Answer::Status(502));
    let server = start(&fwd_config(
        &db.url,
        &app.url(),
        // Not 1 s: on a loaded machine an attempt could time out before the app's handler
        // even saw the request, and the app would count two requests for three attempts.
        "max_attempts = 3\ntimeout_secs = 3",
    ))
    .await;
    let client = reqwest::Client::new();
    let ops = Ops::new(&server);
    let body = payment("evt_dead", "order_d", 7);
    assert_eq!(post(&client, &server, "fwd", &body, &[]).await.0, 200);
    let view = ops.wait_for_delivery("evt_dead", "dead", 30).await;
    assert_eq!(view["delivery"]["attempts"], 3, "{view}");
    assert_eq!(view["delivery"]["last_status"], 502);
    assert!(view["delivery"]["last_error"]
        .as_str()
        .unwrap()
        .contains("HTTP 502"));
    assert_eq!(app.received().len(), 3, "{:#?}", app.received());
    app.answer(Answer::Hang);
    assert_eq!(ops.redeliver("evt_dead").await, 202);
    assert_eq!(ops.redeliver("evt_dead").await, 409);
    app.answer(Answer::Ok);
    ops.wait_for_delivery("evt_dead", "delivered", 30).await;
    let received = app.received();
    let keys: std::collections::BTreeSet<_> = received
        .iter()
        .map(|r| r.header("idempotency-key"))
        .collect();
    assert_eq!(
        keys.len(),
        1,
        "one key for every attempt and the redelivery"
    );
    assert_eq!(ops.redeliver("evt_unknown").await, 404);
    drop(server);
    db.drop_db().await;
}

/// With `ordering`, one customer's events are delivered in the order they committed, even
/// when the first needs retries: the second is not sent until the first is delivered.
async fn ordering_holds_across_a_retried_first_event(backend: Backend) {
    let db = TestDb::create(backend).await;
    let app = Receiver::start().await;
    app.script(&[Answer::Status(500), Answer::Status(503)]);
    let server = start(&fwd_config(
        &db.url,
        &app.url(),
        r#"ordering = "/data/customer""#,
    ))
    .await;
    let client = reqwest::Client::new();
    let event = |n: usize| {
        format!(
            r#"{{"id":"evt_o{n}","type":"customer.updated","data":{{"customer":"cus_1","n":{n}}}}}"#
        )
    };
    for n in 1..=5 {
        assert_eq!(post(&client, &server, "fwd", &event(n), &[]).await.0, 200);
    }
    app.wait_for_delivered(5, 30).await;
    let order: Vec<String> = app
        .received()
        .iter()
        .map(|r| percent_decoded(r.header("idemhook-event-id")))
        .collect();
    assert_eq!(
        order,
        ["evt_o1", "evt_o1", "evt_o1", "evt_o2", "evt_o3", "evt_o4", "evt_o5"],
        "delivery order"
    );
    drop(server);
    db.drop_db().await;
}

mod breaker;
mod drain;
mod fanout;
mod filters;
mod fleet;
mod galera;
mod hold;
mod kinds;
mod nats;
mod outage;
mod pause;
mod plans;
mod pull;
mod rabbitmq;
mod rate;
mod removed;
mod retention;
mod upgrade;
mod wake;
