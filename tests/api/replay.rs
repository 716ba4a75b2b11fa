//! A captured signed delivery cannot be applied again, or made to mean something else, by
//! changing what its signature does not cover. GitHub, Shopify and a signed generic source
//! sign the body alone (or a timestamp and the body) and carry the event id, and sometimes the
//! type, in headers: the signed bytes are a second unique key of the dedupe record, and a
//! header may not contradict the signed body.

use hmac::{Hmac, KeyInit, Mac};
use rocket::http::Status;
use sha2::Sha256;

use crate::support::*;

on_every_backend!(
    a_signed_body_replayed_under_a_new_id_is_a_duplicate,
    an_unsigned_header_cannot_contradict_the_signed_body,
    a_source_that_opts_out_applies_a_replay_again,
);

fn hmac_hex(key: &str, parts: &[&[u8]]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key.as_bytes()).unwrap();
    for p in parts {
        mac.update(p);
    }
    hex::encode(mac.finalize().into_bytes())
}

fn github_headers<'a>(signature: &'a str, id: &'a str, event: &'a str) -> [(&'a str, &'a str); 3] {
    [
        ("X-Hub-Signature-256", signature),
        ("X-GitHub-Delivery", id),
        ("X-GitHub-Event", event),
    ]
}

/// The payment is applied once: the same signed bytes under a new delivery id, or under a new
/// type, are answered `duplicate`, on GitHub (body-only signature), Shopify (likewise) and a
/// generic source that signs a timestamp and the body.
async fn a_signed_body_replayed_under_a_new_id_is_a_duplicate(backend: Backend) {
    let db = TestDb::create(backend).await;
    let app = TestApp::spawn(&test_settings(&db)).await;
    let conn = db.connect().await;

    let body = payment("gh_pay", "order_gh", 100);
    let sig = format!("sha256={}", hmac_hex(GITHUB_SECRET, &[body.as_bytes()]));
    let first = app
        .post(
            "github",
            &body,
            &github_headers(&sig, "d-1", "payment_succeeded"),
        )
        .await;
    assert_eq!(first.outcome(), "processed", "{first:?}");
    for (id, event) in [("d-2", "payment_succeeded"), ("d-3", "refund")] {
        let r = app
            .post("github", &body, &github_headers(&sig, id, event))
            .await;
        assert_eq!((r.status, r.outcome()), (Status::Ok, "duplicate"), "{r:?}");
    }
    assert_eq!(amount_paid(&conn, "order_gh").await, Some(100));

    let body = payment("sh_pay", "order_sh", 50);
    let sig = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        hex::decode(hmac_hex(SHOPIFY_SECRET, &[body.as_bytes()])).unwrap(),
    );
    for (id, expected) in [("sh-1", "processed"), ("sh-2", "duplicate")] {
        let headers = [
            ("X-Shopify-Hmac-Sha256", sig.as_str()),
            ("X-Shopify-Topic", "payment_succeeded"),
            ("X-Shopify-Event-Id", id),
        ];
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
    let sig = format!("sha256={}", hmac_hex(GITHUB_SECRET, &[body.as_bytes()]));
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
