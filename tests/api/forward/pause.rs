//! An operator's pause (by the API and the CLI): no delivery to the destination starts on any
//! instance, none becomes dead, ingestion goes on; on resume every waiting delivery goes.
//! `GET /destinations` (and `idemhook destinations list`) show the state and the backlog.

use std::time::Duration;

use crate::support::*;

on_every_backend!(a_paused_destination_keeps_its_deliveries_pending_until_resumed);

async fn a_paused_destination_keeps_its_deliveries_pending_until_resumed(backend: Backend) {
    let db = TestDb::create(backend).await;
    let app = Receiver::start().await;
    let server = start(&fwd_config(&db.url, &app.url(), "")).await;
    let ops = Ops::new(&server);
    let client = reqwest::Client::new();
    for unknown in [
        "/destinations/fwd/crm/pause",
        "/destinations/nope/forward/resume",
    ] {
        let (status, body) = ops.post(unknown).await;
        assert_eq!(status, 404, "{unknown}: {body}");
    }
    let (status, paused) = ops.post("/destinations/fwd/forward/pause").await;
    assert_eq!(status, 200, "{paused}");
    assert_eq!(paused["state"], "paused", "{paused}");
    assert_eq!(paused["paused_reason"], "operator", "{paused}");
    assert!(paused["paused_at"].is_string(), "{paused}");
    // The CLI pauses and lists as well (pausing again keeps it paused).
    let dir = std::env::temp_dir();
    let run = idemhook(&dir, &server.base, true, &["destinations", "pause", "fwd"]).await;
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert_eq!(run.stdout, "paused fwd/forward: paused\n");
    let run = idemhook(&dir, &server.base, true, &["destinations", "list"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let row: Vec<&str> = run
        .stdout
        .lines()
        .nth(1)
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        row[..4],
        ["fwd", "forward", "paused", "operator"],
        "{}",
        run.stdout
    );
    let run = idemhook(
        &dir,
        &server.base,
        true,
        &["destinations", "resume", "fwd", "crm"],
    )
    .await;
    assert_eq!(run.code, 1, "an unknown destination fails: {}", run.stdout);
    assert!(run.stderr.contains("404"), "{}", run.stderr);
    for (id, order) in [("evt_p1", "o_1"), ("evt_p2", "o_2")] {
        let (status, text, _) = post(&client, &server, "fwd", &payment(id, order, 100), &[]).await;
        assert_eq!(status, 200, "ingestion goes on while paused: {text}");
    }
    // The worker polls every 50 ms: twenty polls, and nothing may have been attempted.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        app.received().is_empty(),
        "attempted while paused: {:?}",
        app.received()
    );
    let fwd = ops.fwd_destination().await;
    assert_eq!(fwd["state"], "paused", "{fwd}");
    assert_eq!(fwd["pending"], 2, "{fwd}");
    assert_eq!(fwd["dead"], 0, "{fwd}");
    assert_eq!(fwd["kind"], "http", "{fwd}");
    // The gauge the IdemhookDestinationPaused alert reads (refreshed every 5 s).
    let gauge = r#"idemhook_destination_paused{destination="forward",source="fwd"} 1"#;
    let mut metrics = String::new();
    for _ in 0..300 {
        metrics = client
            .get(format!("{}/metrics", server.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if metrics.contains(gauge) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(metrics.contains(gauge), "{metrics}");
    let (status, resumed) = ops.post("/destinations/fwd/forward/resume").await;
    assert_eq!(status, 200, "{resumed}");
    assert_eq!(resumed["state"], "active", "{resumed}");
    assert!(resumed["paused_reason"].is_null(), "{resumed}");
    app.wait_for_delivered(2, 30).await;
    ops.fwd_destination_until("drained after the resume", |d| d["pending"] == 0)
        .await;
    drop(server);
    db.drop_db().await;
}
