//! A destination that wants some events (`types`, `match`) gets exactly those, and an event it
//! does not want leaves no outbox row; a source rotating its forwarding secret signs every
//! delivery with each key, and every delivery names its destination.

use crate::support::*;

on_every_backend!(a_destination_gets_exactly_the_events_it_wants_signed_with_each_key);

async fn a_destination_gets_exactly_the_events_it_wants_signed_with_each_key(backend: Backend) {
    let db = TestDb::create(backend).await;
    let app = Receiver::start().await;
    let forward = r#"secret_env = ["FWD_SECRET", "FWD_SECRET_OLD"]
types = ["payment_*"]
match = { "/data/currency" = "eur", "/data/amount" = 100 }"#;
    // `fwd_config` writes its own `secret_env`; the rotation list replaces it.
    let cfg = fwd_config(&db.url, &app.url(), forward).replace("secret_env = \"FWD_SECRET\"\n", "");
    let server = start(&cfg).await;
    let client = reqwest::Client::new();
    let refund = serde_json::json!({
        "id": "evt_refund", "type": "refund_created",
        "data": {"order_id": "o_r", "amount": 100, "currency": "eur"}
    })
    .to_string();
    // Not wanted, each for one reason: the amount, the type. Committed (200) all the same.
    for body in [payment("evt_250", "o_250", 250), refund] {
        let (status, text, _) = post(&client, &server, "fwd", &body, &[]).await;
        assert_eq!(status, 200, "{text}");
        assert!(text.contains(r#""status":"processed""#), "{text}");
    }
    let (status, text, _) = post(
        &client,
        &server,
        "fwd",
        &payment("evt_100", "o_100", 100),
        &[],
    )
    .await;
    assert_eq!(status, 200, "{text}");
    // The outbox rows are written in each event's transaction: the count is final now.
    let rows = query_row(&db.connect().await, "SELECT COUNT(*) AS n FROM deliveries").await;
    assert_eq!(
        rows.try_get_by_index::<i64>(0).unwrap(),
        1,
        "one event is wanted"
    );
    app.wait_for_delivered(1, 30).await;
    let received = app.received();
    assert!(
        received
            .iter()
            .all(|r| r.header("idemhook-event-id") == "evt_100"),
        "{received:?}"
    );
    let r = &received[0];
    assert_eq!(r.header("idemhook-destination"), "forward");
    let signatures: Vec<&str> = r.header("webhook-signature").split(' ').collect();
    assert_eq!(
        signatures,
        [
            signed_with(FORWARD_SECRET_KEY, r),
            signed_with(FORWARD_OLD_SECRET_KEY, r)
        ],
        "one signature per secret, in the order listed"
    );
    drop(server);
    db.drop_db().await;
}
