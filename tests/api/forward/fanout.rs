//! Fan-out: one source, three destinations with different filters. Each gets exactly the
//! events it asked for, each signed with its own secret and named in `Idemhook-Destination`,
//! all with the event's one `Idempotency-Key`; an event no destination wants writes no row;
//! an event several want stores its body once. An operator sees every destination's delivery
//! in the event view, redelivers to one destination or all, and lists by destination.
//! A destination that is down and one that hangs never hold up the healthy one.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::support::*;

on_every_backend!(
    each_destination_gets_exactly_its_events_with_its_own_signature,
    a_down_and_a_hanging_destination_never_hold_up_a_healthy_one,
);

/// The `fan` source: `destinations` is its destination tables, each `(name, url, secret
/// variable, extra keys)`.
fn fan_config(db_url: &str, destinations: &[(&str, String, &str, &str)]) -> String {
    let mut cfg = config(db_url, "forward_poll_ms = 50");
    cfg.push_str("[default.idemhook.sources.fan]\nhandlers = [\"forward\"]\n");
    for (name, url, secret, extra) in destinations {
        cfg.push_str(&format!(
            "[default.idemhook.sources.fan.destinations.{name}]\nurl = \"{url}\"\n\
             secret_env = \"{secret}\"\nbackoff_base_ms = 50\nbackoff_max_secs = 1\n\
             timeout_secs = 2\nprobe_secs = 1\n{extra}\n"
        ));
    }
    cfg
}

fn event(id: &str, event_type: &str, currency: &str) -> String {
    serde_json::json!({"id": id, "type": event_type, "data": {"currency": currency}}).to_string()
}

/// The event ids an app received, once each, and how many requests in all.
fn ids_of(app: &Receiver) -> (BTreeSet<String>, usize) {
    let received = app.received();
    let ids = received
        .iter()
        .map(|r| r.header("idemhook-event-id").to_owned())
        .collect();
    (ids, received.len())
}

fn set(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|s| (*s).to_owned()).collect()
}

async fn count(db: &TestDb, sql: &str) -> i64 {
    query_row(&db.connect().await, sql)
        .await
        .try_get_by_index(0)
        .unwrap()
}

async fn each_destination_gets_exactly_its_events_with_its_own_signature(backend: Backend) {
    let db = TestDb::create(backend).await;
    let (billing, crm, audit) = (
        Receiver::start().await,
        Receiver::start().await,
        Receiver::start().await,
    );
    let cfg = fan_config(
        &db.url,
        &[
            (
                "billing",
                billing.url(),
                "FWD_SECRET",
                r#"types = ["payment_*"]"#,
            ),
            (
                "crm",
                crm.url(),
                "FWD_SECRET_OLD",
                r#"types = ["refund_*"]"#,
            ),
            (
                "audit",
                audit.url(),
                "FWD_SECRET",
                r#"match = { "/data/currency" = "eur" }"#,
            ),
        ],
    );
    let server = start(&cfg).await;
    let client = reqwest::Client::new();
    let events = [
        ("e_eur", "payment_succeeded", "eur"), // billing, audit
        ("e_usd", "payment_succeeded", "usd"), // billing
        ("r_usd", "refund_created", "usd"),    // crm
        ("x_usd", "other_thing", "usd"),       // nobody
        ("r_eur", "refund_created", "eur"),    // crm, audit
    ];
    for (id, event_type, currency) in events {
        let (status, text, _) = post(
            &client,
            &server,
            "fan",
            &event(id, event_type, currency),
            &[],
        )
        .await;
        assert_eq!(status, 200, "{text}");
    }
    // Written in each event's transaction: final at the answer.
    assert_eq!(count(&db, "SELECT COUNT(*) FROM deliveries").await, 6);
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM delivery_bodies").await,
        2,
        "a body stored once per event that goes to several destinations"
    );
    billing.wait_for_delivered(2, 30).await;
    crm.wait_for_delivered(2, 30).await;
    audit.wait_for_delivered(2, 30).await;
    assert_eq!(ids_of(&billing), (set(&["e_eur", "e_usd"]), 2));
    assert_eq!(ids_of(&crm), (set(&["r_usd", "r_eur"]), 2));
    assert_eq!(ids_of(&audit), (set(&["e_eur", "r_eur"]), 2));
    let mut keys: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (name, app, key) in [
        ("billing", &billing, FORWARD_SECRET_KEY),
        ("crm", &crm, FORWARD_OLD_SECRET_KEY),
        ("audit", &audit, FORWARD_SECRET_KEY),
    ] {
        for r in app.received() {
            assert_eq!(r.header("idemhook-destination"), name);
            assert_eq!(
                r.header("webhook-signature"),
                signed_with(key, &r),
                "{name}"
            );
            let (id, event_type, currency) = events
                .iter()
                .find(|e| e.0 == r.header("idemhook-event-id"))
                .unwrap();
            assert_eq!(
                r.body,
                event(id, event_type, currency).into_bytes(),
                "byte for byte"
            );
            keys.entry(id.to_string())
                .or_default()
                .insert(r.header("idempotency-key").to_owned());
        }
    }
    assert!(
        keys.values().all(|k| k.len() == 1),
        "one Idempotency-Key per event at every destination: {keys:?}"
    );
    assert_eq!(keys.len(), 4);

    let ops = Ops::new(&server);
    // The app has each request before idemhook records its answer: wait for the records.
    let mut view = Value::Null;
    for _ in 0..200 {
        let (status, seen) = ops
            .get("/webhooks/fan/events/e_eur?type=payment_succeeded")
            .await;
        assert_eq!(status, 200, "{seen}");
        view = seen;
        let deliveries = view["deliveries"].as_array().unwrap();
        if deliveries.iter().all(|d| d["status"] == "delivered") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let names: Vec<&str> = view["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["destination"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["audit", "billing"], "{view}");
    assert!(view["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .all(|d| d["status"] == "delivered"
            && d["idempotency_key"] == view["deliveries"][0]["idempotency_key"]));
    assert!(
        view["delivery"].is_null(),
        "no forward table, two destinations: {view}"
    );
    assert_eq!(view["payload_from"], "outbox", "{view}");
    assert_eq!(
        view["payload"].as_str().unwrap(),
        event("e_eur", "payment_succeeded", "eur")
    );
    let (_, one) = ops
        .get("/webhooks/fan/events/e_usd?type=payment_succeeded")
        .await;
    assert_eq!(
        one["delivery"]["destination"], "billing",
        "the only one: {one}"
    );

    // Redelivery: to one destination, to every one, to one the event never went to.
    let redeliver = "/webhooks/fan/events/e_eur/redeliver?type=payment_succeeded";
    let (status, body) = ops.post(&format!("{redeliver}&destination=audit")).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(
        body["destinations"],
        serde_json::json!({"audit": "scheduled"})
    );
    audit.wait_for_requests(3, 30).await;
    let (status, body) = ops.post(&format!("{redeliver}&destination=crm")).await;
    assert_eq!(status, 404, "e_eur never went to crm: {body}");
    // Not a destination's name (a NUL byte is an error on PostgreSQL, not a miss): 400.
    for bad in ["Audit", "%00", "a%20b"] {
        let (status, body) = ops.post(&format!("{redeliver}&destination={bad}")).await;
        assert_eq!(status, 400, "{bad}: {body}");
        let (status, body) = ops
            .get(&format!("/events?status=dead&destination={bad}"))
            .await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
    let (status, body) = ops.post(redeliver).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(
        body["destinations"],
        serde_json::json!({"audit": "scheduled", "billing": "scheduled"})
    );
    billing.wait_for_requests(3, 30).await;
    audit.wait_for_requests(4, 30).await;
    assert_eq!(crm.received().len(), 2, "crm got nothing more");
    let again = audit.received();
    assert_eq!(again[2].header("idemhook-event-id"), "e_eur");
    assert_eq!(
        again[2].header("idempotency-key"),
        keys["e_eur"].first().unwrap()
    );

    // Lists: by destination, and "every delivery of the event" without one.
    let listed =
        |events: Vec<serde_json::Value>| -> BTreeSet<String> { ids(&events).into_iter().collect() };
    let by_crm = ops
        .all("&source=fan&status=delivered&destination=crm", 1)
        .await;
    assert_eq!(listed(by_crm), set(&["r_usd", "r_eur"]));
    let delivered = ops.all("&source=fan&status=delivered", 2).await;
    assert_eq!(
        listed(delivered),
        set(&["e_eur", "e_usd", "r_usd", "r_eur"])
    );
    let (status, body) = ops.get("/events?destination=crm").await;
    assert_eq!(
        status, 400,
        "a destination narrows a delivery status: {body}"
    );
    drop(server);
    db.drop_db().await;
}

/// One destination down (connection refused) and one hanging past its timeout: the healthy
/// one gets every event meanwhile, ingestion answers throughout, and once the others are
/// back they get everything, nothing dead.
async fn a_down_and_a_hanging_destination_never_hold_up_a_healthy_one(backend: Backend) {
    let db = TestDb::create(backend).await;
    let healthy = Receiver::start().await;
    let mut down = Receiver::start().await;
    down.stop();
    let hanging = Receiver::start().await;
    hanging.answer(Answer::Hang);
    let slow = "timeout_secs = 1\nmax_attempts = 1000\nconcurrency = 2";
    let cfg = fan_config(
        &db.url,
        &[
            (
                "down",
                down.url(),
                "FWD_SECRET",
                "max_attempts = 1000\nconcurrency = 2",
            ),
            ("hanging", hanging.url(), "FWD_SECRET", slow),
            ("healthy", healthy.url(), "FWD_SECRET", "concurrency = 2"),
        ],
    )
    .replace("timeout_secs = 2\n", "");
    let server = start(&cfg).await;
    let client = reqwest::Client::new();
    let n = 20;
    for i in 0..n {
        let (status, text, _) = post(
            &client,
            &server,
            "fan",
            &event(&format!("e{i}"), "t", "eur"),
            &[],
        )
        .await;
        assert_eq!(
            status, 200,
            "ingestion answers while two destinations fail: {text}"
        );
    }
    healthy.wait_for_delivered(n, 30).await;
    assert!(
        hanging.received().iter().all(|r| !r.reply.is_success()),
        "the hanging destination delivered nothing yet"
    );
    down.restart().await;
    hanging.answer(Answer::Ok);
    down.wait_for_delivered(n, 60).await;
    hanging.wait_for_delivered(n, 60).await;
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM deliveries WHERE status = 'dead'").await,
        0
    );
    assert_eq!(
        healthy.delivered_keys().len(),
        n,
        "the healthy one, once each"
    );
    drop(server);
    db.drop_db().await;
}
