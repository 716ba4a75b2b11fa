//! The admin API: disabled without a token, bearer-protected with one.

use rocket::http::Status;

use crate::support::*;
use idemhook::config::Environment;

on_every_backend!(admin_api_reports_events_and_orders,);

async fn admin_api_reports_events_and_orders(backend: Backend) {
    let db = TestDb::create(backend).await;
    let settings = test_settings(&db);
    {
        let closed = TestApp::spawn(&settings).await;
        let r = closed.get("/orders/o1", Some("anything")).await;
        assert_eq!(r.status, Status::Forbidden);
        assert!(r.error().contains("IDEMHOOK_ADMIN_TOKEN"), "{r:?}");
    }
    let env = Environment::empty().with("IDEMHOOK_ADMIN_TOKEN", "s3cret");
    let app = TestApp::spawn_with(&settings, env).await.unwrap();
    let body = payment("evt_Ü/1", "o1", 1234);
    assert_eq!(app.post("demo", &body, &[]).await.outcome(), "processed");
    let other = r#"{"id":"evt_Ü/1","type":"payment_succeeded","data":{"order_id":"o1","amount":1,"currency":"eur"}}"#;
    assert_eq!(app.post("demo", other, &[]).await.outcome(), "duplicate");
    assert_eq!(
        app.engine()
            .metrics()
            .source("demo")
            .payload_mismatches
            .get(),
        1
    );

    assert_eq!(
        app.get("/orders/o1", None).await.status,
        Status::Unauthorized
    );
    assert_eq!(
        app.get("/orders/o1", Some("s3creT")).await.status,
        Status::Unauthorized
    );

    let path = "/webhooks/demo/events/evt_%C3%9C%2F1?type=payment_succeeded";
    let r = app.get(path, Some("s3cret")).await;
    assert_eq!(r.status, Status::Ok, "{r:?}");
    assert_eq!(r.json["source"], "demo");
    assert_eq!(r.json["event_type"], "payment_succeeded");
    assert_eq!(r.json["event_id"], "evt_Ü/1");
    assert_eq!(r.json["status"], "processed");
    assert_eq!(r.json["attempts"], 1);
    assert_eq!(r.json["last_error"], serde_json::Value::Null);
    assert_eq!(
        r.json["payload_sha256"],
        hex::encode(idemhook::event::key::sha256(body.as_bytes()))
    );
    for field in ["received_at", "processed_at"] {
        let t = r.json[field].as_str().unwrap_or_default();
        assert!(
            chrono::DateTime::parse_from_rfc3339(t).is_ok() && t.ends_with('Z'),
            "{field}: {t}"
        );
    }
    let r = app
        .get(
            "/webhooks/demo/events/evt_%C3%9C%2F1?type=payment_failed",
            Some("s3cret"),
        )
        .await;
    assert_eq!(r.status, Status::NotFound);
    let r = app.get("/webhooks/demo/events/evt_x", Some("s3cret")).await;
    assert_eq!(r.status, Status::BadRequest);

    let r = app.get("/orders/o1", Some("s3cret")).await;
    assert_eq!(r.status, Status::Ok);
    assert_eq!(r.json["order_id"], "o1");
    assert_eq!(r.json["status"], "paid");
    assert_eq!(r.json["amount_paid"], 1234);
    assert_eq!(r.json["currency"], "eur");
    assert_eq!(r.json["payments"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        app.get("/orders/O1", Some("s3cret")).await.status,
        Status::NotFound
    );
    drop(app);
    db.drop_db().await;
}
