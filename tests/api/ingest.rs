//! The basic contract: processed, then duplicate; identity is exact bytes; bad requests are
//! refused with a 4xx and leave nothing behind.

use rocket::http::Status;

use crate::support::*;

on_every_backend!(
    processed_then_duplicate_counts_the_payment_once,
    a_restarted_instance_answers_duplicate_from_the_database,
    identity_is_exact_bytes,
    bad_requests_are_refused_and_nothing_is_recorded,
    events_without_an_id_are_identified_by_payload_hash,
);

/// The body limit is exact: a body of `limits.webhook` bytes is processed, one byte more is a
/// 413 and leaves nothing behind, however the sender states (or misstates) its length.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_at_the_limit_is_read_and_one_byte_over_is_refused() {
    let db = TestDb::create(Backend::Sqlite).await;
    const LIMIT: usize = 300;
    let app = TestApp::launch_figment(
        figment(&test_settings(&db)).merge(("limits.webhook", LIMIT)),
        idemhook::config::Environment::empty(),
        idemhook::clock::Clock::system(),
    )
    .await
    .expect("the app launches");
    let sized = |id: &str, len: usize| {
        let head = format!(r#"{{"id":"{id}","type":"ping","pad":""#);
        let body = format!("{head}{}\"}}", "x".repeat(len - head.len() - 2));
        assert_eq!(body.len(), len);
        body
    };
    let r = app.post("demo", &sized("at-limit", LIMIT), &[]).await;
    assert_eq!((r.status, r.outcome()), (Status::Ok, "processed"), "{r:?}");
    let r = app.post("demo", &sized("over", LIMIT + 1), &[]).await;
    assert_eq!(r.status, Status::PayloadTooLarge, "{r:?}");
    assert!(r.error().contains("\"demo\"'s limit of 300 bytes"), "{r:?}");
    // A Content-Length header that understates the body changes nothing: the limit counts
    // bytes read. (The local client frames nothing, so this shows only that the header's
    // value is not trusted; `hostile.rs` sends a short Content-Length over a real socket.)
    let r = app
        .post(
            "demo",
            &sized("liar", LIMIT + 50),
            &[("Content-Length", "10")],
        )
        .await;
    assert_eq!(r.status, Status::PayloadTooLarge, "{r:?}");
    let r = rows(&db.connect().await).await;
    assert_eq!((r.processed, r.failed), (1, 0));
    drop(app);
    db.drop_db().await;
}

async fn processed_then_duplicate_counts_the_payment_once(backend: Backend) {
    let db = TestDb::create(backend).await;
    let app = TestApp::spawn(&test_settings(&db)).await;
    let body = payment("evt_1", "order_1", 250);

    let first = app.post("demo", &body, &[]).await;
    assert_eq!(first.status, Status::Ok, "{first:?}");
    assert_eq!(first.outcome(), "processed");
    assert_eq!(first.json["source"], "demo");
    assert_eq!(first.json["event_type"], "payment_succeeded");
    assert_eq!(first.json["event_id"], "evt_1");
    assert_eq!(first.replayed, None);

    let second = app.post("demo", &body, &[]).await;
    assert_eq!(second.status, Status::Ok);
    assert_eq!(second.outcome(), "duplicate");
    assert_eq!(second.replayed.as_deref(), Some("true"));
    assert_eq!(second.json["event_id"], "evt_1");

    let conn = db.connect().await;
    assert_eq!(amount_paid(&conn, "order_1").await, Some(250));
    let r = rows(&conn).await;
    assert_eq!((r.processed, r.inbox, r.failed), (1, 1, 0));
    // The second answer came from the cache, not the database.
    let metrics = app.engine().metrics();
    assert_eq!(metrics.cache_hits.get(), 1);
    drop(app);
    db.drop_db().await;
}

async fn a_restarted_instance_answers_duplicate_from_the_database(backend: Backend) {
    let db = TestDb::create(backend).await;
    let settings = test_settings(&db);
    let body = payment("evt_restart", "order_r", 100);
    {
        let app = TestApp::spawn(&settings).await;
        assert_eq!(app.post("demo", &body, &[]).await.outcome(), "processed");
    }
    // A new instance: empty cache, same database (a restart or a deploy).
    let app = TestApp::spawn(&settings).await;
    let again = app.post("demo", &body, &[]).await;
    assert_eq!(again.status, Status::Ok);
    assert_eq!(again.outcome(), "duplicate");
    assert_eq!(again.replayed.as_deref(), Some("true"));
    let metrics = app.engine().metrics();
    assert_eq!(metrics.cache_hits.get(), 0);
    // The database answer filled the cache: the next duplicate does not reach it.
    assert_eq!(app.post("demo", &body, &[]).await.outcome(), "duplicate");
    assert_eq!(metrics.cache_hits.get(), 1);
    assert_eq!(amount_paid(&db.connect().await, "order_r").await, Some(100));
    drop(app);
    db.drop_db().await;
}

async fn identity_is_exact_bytes(backend: Backend) {
    let db = TestDb::create(backend).await;
    let app = TestApp::spawn(&test_settings(&db)).await;
    let long = "x".repeat(1024);
    let ids = [
        "evt_a",
        "evt_A",
        "evt_a ",
        " evt_a",
        "évt_a",
        "évt_a\u{301}",
        "事件🙂",
        &long,
    ];
    let order_of = |id: &str| {
        if id.len() < 200 {
            format!("o_{id}")
        } else {
            "o_long".into()
        }
    };
    for id in ids {
        let r = app.post("demo", &payment(id, &order_of(id), 1), &[]).await;
        assert_eq!(
            (r.status, r.outcome()),
            (Status::Ok, "processed"),
            "{id:?}: {r:?}"
        );
        assert_eq!(r.json["event_id"], id, "ids come back exactly as sent");
    }
    for id in ids {
        let r = app.post("demo", &payment(id, &order_of(id), 1), &[]).await;
        assert_eq!(r.outcome(), "duplicate", "{id:?}");
    }
    // The same id under another event type or source is another event.
    let r = app
        .post("demo", r#"{"id":"evt_a","type":"payment_failed"}"#, &[])
        .await;
    assert_eq!(r.outcome(), "processed");
    let r = app
        .post(
            "strict",
            r#"{"id":"evt_a","type":"payment_succeeded"}"#,
            &[],
        )
        .await;
    assert_eq!(r.outcome(), "processed");

    let too_long = "x".repeat(1025);
    let r = app.post("demo", &payment(&too_long, "o", 1), &[]).await;
    assert_eq!(r.status, Status::BadRequest);
    assert!(r.error().contains("1025 bytes"), "{r:?}");

    // Order ids are exact too: `o_evt_a` and `o_evt_A` are two orders of 1 each.
    let conn = db.connect().await;
    assert_eq!(amount_paid(&conn, "o_evt_a").await, Some(1));
    assert_eq!(amount_paid(&conn, "o_evt_A").await, Some(1));
    assert_eq!(amount_paid(&conn, "o_evt_a ").await, Some(1));
    assert_eq!(rows(&conn).await.processed, ids.len() as u64 + 2);
    drop(app);
    db.drop_db().await;
}

async fn bad_requests_are_refused_and_nothing_is_recorded(backend: Backend) {
    let db = TestDb::create(backend).await;
    let app = TestApp::spawn(&test_settings(&db)).await;
    type Case<'a> = (&'a str, String, Vec<(&'a str, &'a str)>, Status, &'a str);
    let cases: Vec<Case> = vec![
        (
            "demo",
            "{not json".into(),
            vec![],
            Status::BadRequest,
            "not valid JSON",
        ),
        (
            "demo",
            r#"{"id":"e1"}"#.into(),
            vec![],
            Status::BadRequest,
            "event type is missing",
        ),
        (
            "demo",
            r#"{"id":"e1","type":""}"#.into(),
            vec![],
            Status::BadRequest,
            "type is empty",
        ),
        (
            "demo",
            r#"{"id":"","type":"t"}"#.into(),
            vec![],
            Status::BadRequest,
            "id is empty",
        ),
        (
            "demo",
            r#"{"id":"e1","type":7}"#.into(),
            vec![],
            Status::BadRequest,
            "must be a string",
        ),
        (
            "demo",
            r#"{"type":"t"}"#.into(),
            vec![("Webhook-Id", "")],
            Status::BadRequest,
            "id is empty",
        ),
        (
            "strict",
            r#"{"type":"t"}"#.into(),
            vec![],
            Status::BadRequest,
            "event id is missing",
        ),
        (
            "nope",
            payment("e1", "o", 1),
            vec![],
            Status::NotFound,
            "unknown source",
        ),
        (
            "demo",
            format!(
                r#"{{"id":"big","type":"t","pad":"{}"}}"#,
                "x".repeat(1024 * 1024)
            ),
            vec![],
            Status::PayloadTooLarge,
            "'s limit of",
        ),
    ];
    for (source, body, headers, status, message) in &cases {
        let r = app.post(source, body, headers).await;
        assert_eq!(r.status, *status, "{source} {:.60}: {r:?}", body);
        assert!(r.error().contains(message), "{r:?} should say {message:?}");
    }
    let r = app.get("/webhooks/demo", None).await;
    assert_eq!(r.status, Status::NotFound);
    assert_eq!(r.error(), "no such endpoint");
    let r = rows(&db.connect().await).await;
    assert_eq!((r.processed, r.inbox, r.failed), (0, 0, 0));
    drop(app);
    db.drop_db().await;
}

async fn events_without_an_id_are_identified_by_payload_hash(backend: Backend) {
    let db = TestDb::create(backend).await;
    let app = TestApp::spawn(&test_settings(&db)).await;
    let body = r#"{"type":"ping","n":1}"#;
    let r = app.post("demo", body, &[]).await;
    assert_eq!(r.outcome(), "processed");
    let expected = format!(
        "sha256:{}",
        hex::encode(idemhook::event::key::sha256(body.as_bytes()))
    );
    assert_eq!(r.json["event_id"], expected.as_str());
    assert_eq!(app.post("demo", body, &[]).await.outcome(), "duplicate");
    // One byte more is another payload, hence another event.
    assert_eq!(
        app.post("demo", &format!("{body} "), &[]).await.outcome(),
        "processed"
    );
    // Headers may carry the whole key; then the body need not be JSON at all.
    let headers = [("Webhook-Id", "raw-1"), ("Webhook-Type", "raw.event")];
    assert_eq!(
        app.post("demo", "\u{1}not json", &headers).await.outcome(),
        "processed"
    );
    assert_eq!(
        app.post("demo", "other bytes", &headers).await.outcome(),
        "duplicate"
    );
    drop(app);
    db.drop_db().await;
}
