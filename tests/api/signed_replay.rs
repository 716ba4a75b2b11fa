//! A captured signed delivery cannot be applied again, or made to mean something else, by
//! changing what its signature does not cover. GitHub, Shopify and a signed generic source
//! sign the body alone (or a timestamp and the body) and carry the event id, and sometimes the
//! type, in headers: the signed bytes, with the event type, are a second unique key of the
//! dedupe record, and a header may not contradict the signed body. The type counts because
//! providers send one body under several types as distinct events (Shopify's order topics):
//! each is processed, and `accept_types` bounds what else a captured body can become.

use rocket::http::Status;
use sea_orm::EntityTrait;

use crate::support::*;

on_every_backend!(
    a_signed_body_replayed_under_a_new_id_is_a_duplicate,
    one_signed_body_under_two_types_is_two_events,
    a_type_outside_accept_types_is_refused,
    an_operator_replay_of_a_failed_signed_event_keeps_its_signed_key,
    an_unsigned_header_cannot_contradict_the_signed_body,
    a_source_that_opts_out_applies_a_replay_again,
);

/// Shopify's documented example order, which its documentation gives, byte for byte, as the
/// body of both `orders/create` and `orders/paid` (and of other order topics).
const SHOPIFY_ORDER: &str = include_str!("../fixtures/shopify_order.json");

/// The payment is applied once: the same signed bytes under a new delivery id and the same
/// type are answered `duplicate`, on GitHub (body-only signature), Shopify (likewise) and a
/// generic source that signs a timestamp and the body.
async fn a_signed_body_replayed_under_a_new_id_is_a_duplicate(backend: Backend) {
    let db = TestDb::create(backend).await;
    let app = TestApp::spawn(&test_settings(&db)).await;
    let conn = db.connect().await;

    let body = payment("gh_pay", "order_gh", 100);
    let sig = github_signature(&body);
    let first = app
        .post(
            "github",
            &body,
            &github_headers(&sig, "d-1", "payment_succeeded"),
        )
        .await;
    assert_eq!(first.outcome(), "processed", "{first:?}");
    let r = app
        .post(
            "github",
            &body,
            &github_headers(&sig, "d-2", "payment_succeeded"),
        )
        .await;
    assert_eq!((r.status, r.outcome()), (Status::Ok, "duplicate"), "{r:?}");
    assert_eq!(amount_paid(&conn, "order_gh").await, Some(100));

    let body = payment("sh_pay", "order_sh", 50);
    let hmac = shopify_signature(&body);
    for (id, expected) in [("sh-1", "processed"), ("sh-2", "duplicate")] {
        let headers = shopify_headers(&hmac, "payment_succeeded", id);
        let r = app.post("shopify", &body, &headers).await;
        assert_eq!((r.status, r.outcome()), (Status::Ok, expected), "{r:?}");
    }
    assert_eq!(amount_paid(&conn, "order_sh").await, Some(50));

    // The generic source signs "<timestamp>.<body>"; its id may come from `Webhook-Id`.
    let body = r#"{"type":"payment_succeeded","data":{"order_id":"order_hm","amount":7,"currency":"eur"}}"#;
    let t = chrono::Utc::now().timestamp().to_string();
    let sig = format!(
        "sha256={}",
        hmac_hex(HMAC_SECRET, &[t.as_bytes(), b".", body.as_bytes()])
    );
    for (id, expected) in [("hm-1", "processed"), ("hm-2", "duplicate")] {
        let headers = [
            ("X-Signature", sig.as_str()),
            ("X-Timestamp", &t),
            ("Webhook-Id", id),
        ];
        let r = app.post("hmac", body, &headers).await;
        assert_eq!((r.status, r.outcome()), (Status::Ok, expected), "{r:?}");
    }
    assert_eq!(amount_paid(&conn, "order_hm").await, Some(7));
    assert_eq!(rows(&conn).await.processed, 3);
    db.drop_db().await;
}

/// A signed body that says `payment_failed`, sent with an unsigned `Webhook-Type:
/// payment_succeeded` (or another id than the body's): refused with 400, nothing recorded. A
/// header that agrees with the body is fine.
async fn an_unsigned_header_cannot_contradict_the_signed_body(backend: Backend) {
    let db = TestDb::create(backend).await;
    let app = TestApp::spawn(&test_settings(&db)).await;
    let body = r#"{"id":"evt_f","type":"payment_failed","data":{"order_id":"order_t","amount":9,"currency":"eur"}}"#;
    let t = chrono::Utc::now().timestamp().to_string();
    let sig = format!(
        "sha256={}",
        hmac_hex(HMAC_SECRET, &[t.as_bytes(), b".", body.as_bytes()])
    );
    let signed = [("X-Signature", sig.as_str()), ("X-Timestamp", t.as_str())];
    for (header, value, what) in [
        ("Webhook-Type", "payment_succeeded", "type"),
        ("Webhook-Id", "evt_other", "id"),
    ] {
        let r = app
            .post("hmac", body, &[signed[0], signed[1], (header, value)])
            .await;
        assert_eq!(r.status, Status::BadRequest, "{r:?}");
        assert!(
            r.error().contains(header) && r.error().contains(what),
            "{r:?}"
        );
    }
    let conn = db.connect().await;
    assert_eq!(rows(&conn).await.processed, 0);
    let agreeing = [signed[0], signed[1], ("Webhook-Type", "payment_failed")];
    let r = app.post("hmac", body, &agreeing).await;
    assert_eq!((r.status, r.outcome()), (Status::Ok, "processed"), "{r:?}");
    assert_eq!(r.json["event_type"], "payment_failed");
    assert_eq!(amount_paid(&conn, "order_t").await, None);
    db.drop_db().await;
}

/// `dedupe_signed_bytes = false` (for senders that send byte-identical bodies as distinct
/// events) gives the protection up, as documented: the replay under a new id is applied.
async fn a_source_that_opts_out_applies_a_replay_again(backend: Backend) {
    let db = TestDb::create(backend).await;
    let mut settings = test_settings(&db);
    settings
        .sources
        .get_mut("github")
        .expect("the github test source")
        .dedupe_signed_bytes = false;
    let app = TestApp::spawn(&settings).await;
    let body = payment("gh_twice", "order_twice", 30);
    let sig = github_signature(&body);
    for id in ["t-1", "t-2"] {
        let r = app
            .post(
                "github",
                &body,
                &github_headers(&sig, id, "payment_succeeded"),
            )
            .await;
        assert_eq!(r.outcome(), "processed", "{r:?}");
    }
    let conn = db.connect().await;
    assert_eq!(amount_paid(&conn, "order_twice").await, Some(60));
    db.drop_db().await;
}

/// Shopify sends the same order body under `orders/create` and `orders/paid`, each with its
/// own event id, and GitHub may send one body under two event names: each is a distinct event,
/// processed and stored. A replay of either under a new id and the same type is a duplicate.
async fn one_signed_body_under_two_types_is_two_events(backend: Backend) {
    let db = TestDb::create(backend).await;
    let app = TestApp::spawn(&test_settings(&db)).await;
    let conn = db.connect().await;

    let hmac = shopify_signature(SHOPIFY_ORDER);
    for (topic, id, expected) in [
        ("orders/create", "sh-create", "processed"),
        ("orders/paid", "sh-paid", "processed"),
        // A capture of either, sent again under a new id and its own topic.
        ("orders/paid", "sh-forged-1", "duplicate"),
        ("orders/create", "sh-forged-2", "duplicate"),
        // The provider's own retry.
        ("orders/paid", "sh-paid", "duplicate"),
    ] {
        let r = app
            .post("shopify", SHOPIFY_ORDER, &shopify_headers(&hmac, topic, id))
            .await;
        assert_eq!(
            (r.status, r.outcome()),
            (Status::Ok, expected),
            "{topic} {id}: {r:?}"
        );
    }
    let stored = idemhook::entities::inbox::Entity::find()
        .all(&conn)
        .await
        .unwrap();
    let mut topics: Vec<_> = stored.iter().map(|r| r.event_type.as_str()).collect();
    topics.sort_unstable();
    assert_eq!(topics, ["orders/create", "orders/paid"]);
    assert!(stored.iter().all(|r| r.payload == SHOPIFY_ORDER.as_bytes()));

    let body = r#"{"action":"completed","check_run":{"id":4,"status":"completed"}}"#;
    let sig = github_signature(body);
    for (id, event, expected) in [
        ("g-1", "check_run", "processed"),
        ("g-2", "workflow_job", "processed"),
        ("g-3", "workflow_job", "duplicate"),
    ] {
        let r = app
            .post("github", body, &github_headers(&sig, id, event))
            .await;
        assert_eq!((r.status, r.outcome()), (Status::Ok, expected), "{r:?}");
    }
    assert_eq!(rows(&conn).await.processed, 4);
    db.drop_db().await;
}

/// `accept_types = ["orders/*", "refunds/create"]`: the order topics and the one refund topic
/// are processed; any other type is a 400 naming the list, and nothing is recorded. A captured
/// order body cannot become a `customers/create`.
async fn a_type_outside_accept_types_is_refused(backend: Backend) {
    let db = TestDb::create(backend).await;
    let mut settings = test_settings(&db);
    settings
        .sources
        .get_mut("shopify")
        .expect("the shopify test source")
        .accept_types = vec!["orders/*".into(), "refunds/create".into()];
    let app = TestApp::spawn(&settings).await;
    let conn = db.connect().await;
    let hmac = shopify_signature(SHOPIFY_ORDER);
    for (topic, id) in [
        ("customers/create", "x-1"),
        ("refunds/created", "x-2"),
        ("Orders/create", "x-3"),
        ("orders", "x-4"),
    ] {
        let r = app
            .post("shopify", SHOPIFY_ORDER, &shopify_headers(&hmac, topic, id))
            .await;
        assert_eq!(r.status, Status::BadRequest, "{topic}: {r:?}");
        assert!(r.error().contains("accept_types"), "{r:?}");
    }
    assert_eq!(rows(&conn).await.processed, 0);
    assert_eq!(rows(&conn).await.inbox, 0);
    for (topic, id) in [("orders/create", "ok-1"), ("refunds/create", "ok-2")] {
        let r = app
            .post("shopify", SHOPIFY_ORDER, &shopify_headers(&hmac, topic, id))
            .await;
        assert_eq!(r.outcome(), "processed", "{topic}: {r:?}");
    }
    db.drop_db().await;
}

/// A signed event whose handler failed is replayed by an operator once fixed: the record the
/// replay writes carries the delivery's signed-bytes key, so a capture of the same bytes sent
/// afterwards under a new id is a duplicate and the payment is not applied twice.
async fn an_operator_replay_of_a_failed_signed_event_keeps_its_signed_key(backend: Backend) {
    let db = TestDb::create(backend).await;
    let mut settings = test_settings(&db);
    settings
        .sources
        .get_mut("github")
        .expect("the github test source")
        .handlers = vec!["inbox".into(), "payments".into(), "flaky".into()];
    let env = admin_env();
    let app = TestApp::spawn_with(&settings, env).await.unwrap();
    let conn = db.connect().await;
    let body = payment("gh_fail", "order_rf", 40);
    let sig = github_signature(&body);
    let headers = |id| github_headers(&sig, id, "payment_succeeded");

    app.faults
        .fail
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let r = app.post("github", &body, &headers("f-1")).await;
    assert_eq!(r.status, Status::InternalServerError, "{r:?}");
    app.faults
        .fail
        .store(false, std::sync::atomic::Ordering::SeqCst);
    let r = app
        .post_admin(
            "/webhooks/github/events/f-1/replay?type=payment_succeeded",
            Some(ADMIN_TOKEN),
        )
        .await;
    assert_eq!(r.status, Status::Ok, "{r:?}");
    assert_eq!(amount_paid(&conn, "order_rf").await, Some(40));

    let r = app.post("github", &body, &headers("f-2")).await;
    assert_eq!((r.status, r.outcome()), (Status::Ok, "duplicate"), "{r:?}");
    assert_eq!(amount_paid(&conn, "order_rf").await, Some(40));
    assert_eq!(rows(&conn).await.processed, 1);
    db.drop_db().await;
}
