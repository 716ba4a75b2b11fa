//! Operations: the retention sweeper, metrics, health, graceful shutdown and logs.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use chrono::{TimeDelta, Utc};
use futures::future::join_all;
use idemhook::clock::Clock;
use idemhook::config::Environment;
use idemhook::sweeper::SweepReport;
use rocket::http::Status;

use crate::support::*;

on_every_backend!(
    the_sweeper_deletes_what_is_older_than_the_retention_and_nothing_else,
    sigterm_drains_accepted_events_before_exit,
);

const DAY: i64 = 86_400;

async fn the_sweeper_deletes_what_is_older_than_the_retention_and_nothing_else(backend: Backend) {
    let db = TestDb::create(backend).await;
    let offset = Arc::new(AtomicI64::new(-31 * DAY));
    let clock = {
        let offset = offset.clone();
        Clock::from_fn(move || Utc::now() + TimeDelta::seconds(offset.load(Ordering::SeqCst)))
    };
    let app = TestApp::launch(&test_settings(&db), Environment::empty(), clock)
        .await
        .unwrap();
    let old = payment("evt_old", "order_sweep", 100);
    let young = payment("evt_young", "order_sweep", 10);
    // 31 days ago: one processed event, one failed attempt.
    assert_eq!(app.post("demo", &old, &[]).await.outcome(), "processed");
    app.faults.fail.store(true, Ordering::SeqCst);
    let r = app
        .post("flaky", &payment("evt_failed", "o_f", 1), &[])
        .await;
    assert_eq!(r.status, Status::InternalServerError);
    app.faults.fail.store(false, Ordering::SeqCst);
    // 29 days ago: another processed event.
    offset.store(-29 * DAY, Ordering::SeqCst);
    assert_eq!(app.post("demo", &young, &[]).await.outcome(), "processed");

    offset.store(0, Ordering::SeqCst);
    let sweeper = app.sweeper();
    let report = sweeper.sweep_once().await.unwrap();
    assert_eq!(
        report,
        SweepReport {
            processed_events: 1,
            failed_attempts: 1,
            inbox: 1,
            // The failed event's kept payload goes with its audit row.
            event_payloads: 1,
            deliveries: 0,
            delivery_bodies: 0,
            // ...and so does its attempt history.
            history: 1,
            audit: 0,
        }
    );
    let conn = db.connect().await;
    let r = rows(&conn).await;
    assert_eq!((r.processed, r.failed, r.inbox), (1, 0, 1));
    // The 29-day-old record still answers duplicate...
    assert_eq!(app.post("demo", &young, &[]).await.outcome(), "duplicate");
    // ...while the swept one is new again, even to the instance whose cache had it: the
    // documented consequence of retention, harmless because no provider retries a month on.
    assert_eq!(app.post("demo", &old, &[]).await.outcome(), "processed");
    assert_eq!(amount_paid(&conn, "order_sweep").await, Some(210));
    // Idempotent: nothing left to sweep.
    assert_eq!(sweeper.sweep_once().await.unwrap(), SweepReport::default());
    let text = app
        .client
        .get("/metrics")
        .dispatch()
        .await
        .into_string()
        .await
        .unwrap_or_default();
    for expected in [
        r#"idemhook_sweeper_rows_deleted_total{table="processed_events"} 1"#,
        r#"idemhook_sweeper_rows_deleted_total{table="failed_attempts"} 1"#,
        r#"idemhook_sweeper_rows_deleted_total{table="inbox"} 1"#,
    ] {
        assert!(text.contains(expected), "missing {expected:?} in\n{text}");
    }
    assert!(!text.contains("idemhook_sweeper_last_run_timestamp_seconds 0\n"));
    assert!(
        text.contains("idemhook_log_lines_dropped_total 0\n"),
        "{text}"
    );
    drop(app);
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_every_outcome() {
    let db = TestDb::create(Backend::Sqlite).await;
    let app = TestApp::spawn(&test_settings(&db)).await;
    let body = payment("evt_m", "o_m", 5);
    app.post("demo", &body, &[]).await;
    app.post("demo", &body, &[]).await;
    app.post("demo", "{bad", &[]).await;
    app.post("nope-1", &body, &[]).await;
    app.post("nope-2", &body, &[]).await;
    app.post("stripe", &body, &[]).await;
    app.faults.fail.store(true, Ordering::SeqCst);
    app.post("flaky", &body, &[]).await;
    let resp = app.client.get("/metrics").dispatch().await;
    assert_eq!(resp.status(), Status::Ok);
    assert!(resp
        .content_type()
        .is_some_and(|c| c.to_string().starts_with("text/plain")));
    let text = resp.into_string().await.unwrap();
    for expected in [
        r#"idemhook_events_received_total{source="demo"} 3"#,
        r#"idemhook_events_received_total{source="_unknown"} 2"#,
        r#"idemhook_events_processed_total{source="demo"} 1"#,
        r#"idemhook_events_duplicate_total{source="demo"} 1"#,
        r#"idemhook_events_failed_total{source="flaky"} 1"#,
        r#"idemhook_events_rejected_total{reason="bad_request",source="demo"} 1"#,
        r#"idemhook_events_rejected_total{reason="unauthorized",source="stripe"} 1"#,
        r#"idemhook_events_rejected_total{reason="unknown_source",source="_unknown"} 2"#,
        r#"idemhook_idempotency_check_seconds_count{result="hit"} 1"#,
        // The failed event's check is not observed: only events that settle are.
        r#"idemhook_idempotency_check_seconds_count{result="miss"} 1"#,
        r#"idemhook_processing_seconds_count{outcome="processed",source="demo"} 1"#,
        "idemhook_cache_hits_total 1",
        "idemhook_cache_misses_total 2",
        "idemhook_cache_entries 1",
        r#"idemhook_shard_queue_depth{shard="0"} 0"#,
        "idemhook_database_up 1",
        "idemhook_db_retries_total 0",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in\n{text}");
    }
    // The names of unknown sources are in no label: both went to `_unknown`.
    assert!(!text.contains("nope-"), "{text}");
    drop(app);
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_endpoints() {
    let db = TestDb::create(Backend::Sqlite).await;
    let app = TestApp::spawn(&test_settings(&db)).await;
    let live = app.get("/health/live", None).await;
    assert_eq!(
        (live.status, live.json["status"].as_str()),
        (Status::Ok, Some("live"))
    );
    let ready = app.get("/health/ready", None).await;
    assert_eq!(
        (ready.status, ready.json["status"].as_str()),
        (Status::Ok, Some("ready"))
    );
    drop(app);
    db.drop_db().await;
}

/// A hundred readiness probes at once share one check of the database (one connection at a
/// time, an answer reused for a second), so probes cannot starve the writers of the pool.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_readiness_probes_shares_one_database_check() {
    let db = TestDb::create(Backend::Sqlite).await;
    let app = TestApp::spawn(&test_settings(&db)).await;
    let replies = futures::future::join_all((0..100).map(|_| app.get("/health/ready", None))).await;
    assert!(
        replies.iter().all(|r| r.status == Status::Ok),
        "{replies:?}"
    );
    let checks = app.engine().metrics().readiness_checks.get();
    assert!(
        (1..=2).contains(&checks),
        "{checks} database checks for 100 probes"
    );
    drop(app);
    db.drop_db().await;
}

/// Five slow events are accepted (in a transaction, or queued for one at the writers); then
/// SIGTERM. Every one of them commits and is answered 200, and the process exits
/// 0. Logs are JSON, one line per event, with no payload in them.
async fn sigterm_drains_accepted_events_before_exit(backend: Backend) {
    let db = TestDb::create(backend).await;
    // One shard: all five are held by it while they commit.
    let extra = r#"shards = 1
[default.idemhook.sources.slow]
handlers = ["inbox", "sleep"]
[default.shutdown]
grace = 5
mercy = 2
"#;
    let mut server = Server::start(&config(&db.url, extra), &ENV).await;
    let client = reqwest::Client::new();
    let sends = (0..5).map(|i| {
        let client = client.clone();
        let url = format!("{}/webhooks/slow", server.base);
        async move {
            let body = format!(r#"{{"id":"slow-{i}","type":"t","secret_payload":"p4yl0ad"}}"#);
            let r = client
                .post(url)
                .header("X-Test-Sleep-Ms", "300")
                .body(body)
                .send()
                .await
                .expect("answered");
            (r.status().as_u16(), r.text().await.unwrap_or_default())
        }
    });
    let replies = tokio::spawn(join_all(sends));
    // All five are inside idemhook before the signal.
    server
        .wait_for_metric(r#"idemhook_events_received_total{source="slow"}"#, 5.0)
        .await;
    server.signal("TERM");
    let replies = replies.await.unwrap();
    for (status, body) in &replies {
        assert_eq!(*status, 200, "{body}");
        assert!(body.contains(r#""status":"processed""#), "{body}");
    }
    // Idle keep-alive connections would hold Rocket's shutdown until its grace ran out.
    drop(client);
    let status = server.wait().await;
    assert!(status.success(), "exit status {status}");
    assert_eq!(rows(&db.connect().await).await.processed, 5);

    let logs = server.logs();
    let events: Vec<serde_json::Value> = logs
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|j| j["message"] == "event")
        .collect();
    assert_eq!(events.len(), 5, "{logs:#?}");
    for e in &events {
        assert_eq!(e["source"], "slow");
        assert_eq!(e["outcome"], "processed");
        assert!(e["latency_ms"].as_f64().is_some(), "{e}");
        assert!(e["event_id"]
            .as_str()
            .is_some_and(|id| id.starts_with("slow-")));
    }
    assert!(
        logs.iter().all(|l| !l.contains("p4yl0ad")),
        "a payload reached the logs"
    );
    assert!(
        logs.iter().any(|l| l.contains("shards drained")),
        "{logs:#?}"
    );
    db.drop_db().await;
}
