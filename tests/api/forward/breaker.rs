//! The circuit breaker: failed attempts in a row pause the destination, nothing becomes dead
//! while it is paused (probes included), one delivery is probed every `probe_secs`, and a
//! probe's 2xx resumes it; a `410 Gone` pauses it without probes until an operator resumes it.

use std::time::Duration;

use crate::support::*;

on_every_backend!(
    failures_in_a_row_pause_the_destination_and_a_probe_resumes_it,
    a_410_pauses_the_destination_until_an_operator_resumes_it,
);

/// Every attempt may die at its first failure (`max_attempts = 1`), and one failure pauses:
/// with the breaker, none dies, before or after the probes; the app fixed, the next probe
/// resumes the destination and every event is delivered.
async fn failures_in_a_row_pause_the_destination_and_a_probe_resumes_it(backend: Backend) {
    let db = TestDb::create(backend).await;
    let app = Receiver::start().await;
    app.answer(Answer::Status(500));
    let breaker = "max_attempts = 1\npause_after_failures = 1\nprobe_secs = 1";
    let server = start(&fwd_config(&db.url, &app.url(), breaker)).await;
    let ops = Ops::new(&server);
    let client = reqwest::Client::new();
    for (id, order) in [("evt_b1", "o_1"), ("evt_b2", "o_2"), ("evt_b3", "o_3")] {
        let (status, text, _) = post(&client, &server, "fwd", &payment(id, order, 100), &[]).await;
        assert_eq!(status, 200, "{text}");
    }
    let paused = ops
        .fwd_destination_until("paused by failures", |d| {
            d["state"] == "paused" && d["paused_reason"] == "failures"
        })
        .await;
    assert_eq!(paused["dead"], 0, "{paused}");
    // Two probes (one due delivery each, every probe_secs, looked for every 5 s), failing.
    let before = app.received().len();
    for _ in 0..600 {
        if app.received().len() >= before + 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        app.received().len() >= before + 2,
        "no probes: {:?}",
        app.received().len()
    );
    let still = ops
        .fwd_destination_until("still paused", |d| d["state"] == "paused")
        .await;
    assert_eq!(
        still["dead"], 0,
        "a probe past max_attempts went dead: {still}"
    );
    assert_eq!(still["pending"], 3, "{still}");
    app.answer(Answer::Ok);
    app.wait_for_delivered(3, 30).await;
    let resumed = ops
        .fwd_destination_until("active and drained", |d| {
            d["state"] == "active" && d["pending"] == 0
        })
        .await;
    assert_eq!(resumed["dead"], 0, "{resumed}");
    assert!(resumed["paused_reason"].is_null(), "{resumed}");
    drop(server);
    db.drop_db().await;
}

/// The endpoint is gone: paused at once, no probe in the next two looks for one, and only an
/// operator's resume lets the delivery go.
async fn a_410_pauses_the_destination_until_an_operator_resumes_it(backend: Backend) {
    let db = TestDb::create(backend).await;
    let app = Receiver::start().await;
    app.answer(Answer::Status(410));
    let server = start(&fwd_config(&db.url, &app.url(), "probe_secs = 1")).await;
    let ops = Ops::new(&server);
    let client = reqwest::Client::new();
    let (status, text, _) = post(
        &client,
        &server,
        "fwd",
        &payment("evt_gone", "o_1", 100),
        &[],
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let gone = ops
        .fwd_destination_until("paused as gone", |d| d["paused_reason"] == "gone")
        .await;
    assert_eq!(gone["state"], "paused", "{gone}");
    let seen = app.received().len();
    // Probes are looked for every 5 s: two looks, and none may be made.
    tokio::time::sleep(Duration::from_secs(11)).await;
    assert_eq!(
        app.received().len(),
        seen,
        "a destination that is gone was probed"
    );
    app.answer(Answer::Ok);
    let (status, resumed) = ops.post("/destinations/fwd/forward/resume").await;
    assert_eq!(status, 200, "{resumed}");
    app.wait_for_delivered(1, 30).await;
    drop(server);
    db.drop_db().await;
}
