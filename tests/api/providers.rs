//! Signed deliveries end to end: verified before anything is recorded, 401 otherwise, and a
//! provider's retries deduplicated by its own event id.

use base64::Engine as _;
use rocket::http::Status;

use crate::support::*;

on_every_backend!(
    a_signed_stripe_payment_delivered_three_times_moves_the_order_once,
    forged_and_replayed_deliveries_are_refused_and_nothing_is_recorded,
);

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn stripe_header(secret: &str, t: i64, body: &str) -> String {
    let sig = hmac_sha256(
        secret.as_bytes(),
        &[t.to_string().as_bytes(), b".", body.as_bytes()],
    );
    format!("t={t},v1={}", hex::encode(sig))
}

fn standard_signature(id: &str, t: i64, body: &str) -> String {
    let key = base64::engine::general_purpose::STANDARD
        .decode(STANDARD_SECRET.trim_start_matches("whsec_"))
        .unwrap();
    let sig = hmac_sha256(
        &key,
        &[
            id.as_bytes(),
            b".",
            t.to_string().as_bytes(),
            b".",
            body.as_bytes(),
        ],
    );
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(sig)
    )
}

fn stripe_payment(event_id: &str, order_id: &str, amount: i64) -> String {
    serde_json::json!({
        "id": event_id, "object": "event", "type": "payment_intent.succeeded",
        "data": {"object": {"id": "pi_1", "object": "payment_intent", "amount_received": amount,
                            "currency": "usd", "metadata": {"order_id": order_id}}}
    })
    .to_string()
}

async fn a_signed_stripe_payment_delivered_three_times_moves_the_order_once(backend: Backend) {
    let db = TestDb::create(backend).await;
    let app = TestApp::spawn(&test_settings(&db)).await;
    let body = stripe_payment("evt_3Stripe", "order_s", 4200);
    // Stripe re-signs every retry with a fresh timestamp; during a rotation it may be signed
    // with either secret.
    let secrets = STRIPE_SECRETS;
    let mut outcomes = Vec::new();
    for (i, secret) in [secrets[0], secrets[1], secrets[0]].into_iter().enumerate() {
        let header = stripe_header(secret, now() - i as i64, &body);
        let r = app
            .post("stripe", &body, &[("Stripe-Signature", &header)])
            .await;
        assert_eq!(r.status, Status::Ok, "{r:?}");
        outcomes.push(r.outcome().to_owned());
    }
    assert_eq!(outcomes, ["processed", "duplicate", "duplicate"]);
    let conn = db.connect().await;
    assert_eq!(amount_paid(&conn, "order_s").await, Some(4200));

    // GitHub: the delivery GUID is the id; a redelivery from GitHub's UI keeps it.
    let gh_body = r#"{"action":"opened","number":7}"#;
    let sig = format!(
        "sha256={}",
        hex::encode(hmac_sha256(GITHUB_SECRET.as_bytes(), &[gh_body.as_bytes()]))
    );
    let headers = [
        ("X-Hub-Signature-256", sig.as_str()),
        ("X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958"),
        ("X-GitHub-Event", "pull_request"),
    ];
    let r = app.post("github", gh_body, &headers).await;
    assert_eq!(
        (r.outcome(), r.json["event_type"].as_str()),
        ("processed", Some("pull_request"))
    );
    assert_eq!(
        app.post("github", gh_body, &headers).await.outcome(),
        "duplicate"
    );

    // Shopify: X-Shopify-Event-Id first, else X-Shopify-Webhook-Id.
    let sh_body = r#"{"id":820982911946154508,"total_price":"12.00"}"#;
    let sig = shopify_signature(sh_body);
    let base = [
        ("X-Shopify-Hmac-Sha256", sig.as_str()),
        ("X-Shopify-Topic", "orders/create"),
    ];
    let with = |extra: (&'static str, &'static str)| [base[0], base[1], extra];
    let r = app
        .post("shopify", sh_body, &with(("X-Shopify-Webhook-Id", "wh-1")))
        .await;
    assert_eq!(
        (r.outcome(), r.json["event_id"].as_str()),
        ("processed", Some("wh-1"))
    );
    // Another event (its own body and signature: the same signed bytes under another id would
    // be a replay, see `replay.rs`).
    let sh_body = r#"{"id":820982911946154509,"total_price":"13.00"}"#;
    let sig = shopify_signature(sh_body);
    let base = [
        ("X-Shopify-Hmac-Sha256", sig.as_str()),
        ("X-Shopify-Topic", "orders/create"),
    ];
    let with = |extra: (&'static str, &'static str)| [base[0], base[1], extra];
    let r = app
        .post("shopify", sh_body, &with(("X-Shopify-Event-Id", "ev-1")))
        .await;
    assert_eq!(
        (r.outcome(), r.json["event_id"].as_str()),
        ("processed", Some("ev-1"))
    );
    assert_eq!(
        app.post("shopify", sh_body, &with(("X-Shopify-Event-Id", "ev-1")))
            .await
            .outcome(),
        "duplicate"
    );

    // Standard Webhooks, under both header spellings: one message id, one event.
    let std_body = r#"{"type":"payment_succeeded","data":{"order_id":"order_w","amount":15,"currency":"eur"}}"#;
    let t = now().to_string();
    let sig = standard_signature("msg_1", now(), std_body);
    let r = app
        .post(
            "standard",
            std_body,
            &[
                ("webhook-id", "msg_1"),
                ("webhook-timestamp", &t),
                ("webhook-signature", &sig),
            ],
        )
        .await;
    assert_eq!(r.outcome(), "processed", "{r:?}");
    let r = app
        .post(
            "standard",
            std_body,
            &[
                ("svix-id", "msg_1"),
                ("svix-timestamp", &t),
                ("svix-signature", &sig),
            ],
        )
        .await;
    assert_eq!(r.outcome(), "duplicate", "{r:?}");
    assert_eq!(amount_paid(&conn, "order_w").await, Some(15));

    // Generic HMAC with a signed timestamp.
    let g_body = r#"{"id":"g-1","type":"thing.happened"}"#;
    let t = now().to_string();
    let sig = format!(
        "sha256={}",
        hex::encode(hmac_sha256(
            HMAC_SECRET.as_bytes(),
            &[t.as_bytes(), b".", g_body.as_bytes()]
        ))
    );
    let r = app
        .post(
            "hmac",
            g_body,
            &[("X-Signature", &sig), ("X-Timestamp", &t)],
        )
        .await;
    assert_eq!(r.outcome(), "processed", "{r:?}");
    drop(app);
    db.drop_db().await;
}

async fn forged_and_replayed_deliveries_are_refused_and_nothing_is_recorded(backend: Backend) {
    let db = TestDb::create(backend).await;
    let app = TestApp::spawn(&test_settings(&db)).await;
    let body = stripe_payment("evt_forged", "order_x", 100);
    let secret = STRIPE_SECRETS[0];
    let cases = [
        (None, "Stripe-Signature header is missing"),
        (Some("garbage".to_owned()), "malformed"),
        (
            Some(stripe_header("whsec_wrong", now(), &body)),
            "does not match",
        ),
        (
            Some(stripe_header(secret, now(), &body.replace("100", "999"))),
            "does not match",
        ),
        (
            Some(stripe_header(secret, now() - 400, &body)),
            "in the past",
        ),
        (
            Some(stripe_header(secret, now() + 400, &body)),
            "in the future",
        ),
    ];
    for (header, message) in cases {
        let headers: Vec<(&str, &str)> = header
            .as_deref()
            .map(|h| ("Stripe-Signature", h))
            .into_iter()
            .collect();
        let r = app.post("stripe", &body, &headers).await;
        assert_eq!(r.status, Status::Unauthorized, "{message}: {r:?}");
        assert!(r.error().contains(message), "{r:?} should say {message:?}");
        for s in STRIPE_SECRETS {
            assert!(!r.error().contains(s));
        }
    }
    // A Shopify delivery signed correctly, sent to the GitHub source: the wrong scheme for
    // it, refused for the signature GitHub's scheme needs.
    let sh_body = r#"{"id":820982911946154508,"total_price":"12.00"}"#;
    let sh_sig = shopify_signature(sh_body);
    let shopify = [
        ("X-Shopify-Hmac-Sha256", sh_sig.as_str()),
        ("X-Shopify-Topic", "orders/create"),
        ("X-Shopify-Event-Id", "ev-elsewhere"),
    ];
    let r = app.post("github", sh_body, &shopify).await;
    assert_eq!(r.status, Status::Unauthorized, "{r:?}");
    assert!(r.error().contains("X-Hub-Signature-256"), "{r:?}");
    // The same signature is correct for the Shopify source: without a topic it passes the
    // signature check (not a 401) and is refused as a bad request.
    let r = app
        .post("shopify", sh_body, &[shopify[0], shopify[2]])
        .await;
    assert_eq!(r.status, Status::BadRequest, "{r:?}");
    assert!(r.error().contains("X-Shopify-Topic"), "{r:?}");
    // Signed, but no id: verified first, then refused as a bad request.
    let gh_body = "{}";
    let sig = format!(
        "sha256={}",
        hex::encode(hmac_sha256(GITHUB_SECRET.as_bytes(), &[gh_body.as_bytes()]))
    );
    let r = app
        .post(
            "github",
            gh_body,
            &[("X-Hub-Signature-256", &sig), ("X-GitHub-Event", "push")],
        )
        .await;
    assert_eq!(r.status, Status::BadRequest);
    assert!(r.error().contains("X-GitHub-Delivery"), "{r:?}");
    let r = rows(&db.connect().await).await;
    assert_eq!((r.processed, r.inbox, r.failed), (0, 0, 0));
    drop(app);
    db.drop_db().await;
}
