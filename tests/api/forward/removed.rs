//! A destination removed from the configuration while deliveries wait for it: the launch
//! warns, naming it; it is listed as `removed` and nothing is attempted; an operator's
//! discard makes its pending deliveries dead, kept; and once it is configured again a redrive
//! delivers them.

use crate::support::*;

on_every_backend!(a_removed_destination_keeps_its_deliveries_until_discarded_and_redriven);

async fn a_removed_destination_keeps_its_deliveries_until_discarded_and_redriven(backend: Backend) {
    let db = TestDb::create(backend).await;
    let app = Receiver::start().await;
    app.answer(Answer::Status(500));
    let server = start(&fwd_config(&db.url, &app.url(), "")).await;
    let client = reqwest::Client::new();
    for (id, order) in [("evt_r1", "o_1"), ("evt_r2", "o_2")] {
        let (status, text, _) = post(&client, &server, "fwd", &payment(id, order, 100), &[]).await;
        assert_eq!(status, 200, "{text}");
    }
    app.wait_for_requests(2, 30).await;
    drop(server);

    // The source still takes its events, but forwards them no longer.
    let cfg = config(
        &db.url,
        "[default.idemhook.sources.fwd]\nhandlers = [\"payments\"]\n",
    );
    let mut server = start(&cfg).await;
    let warning = server.wait_for_log("no longer configured").await;
    assert!(warning.contains("fwd"), "{warning}");
    let ops = Ops::new(&server);
    let removed = ops.fwd_destination().await;
    assert_eq!(removed["state"], "removed", "{removed}");
    assert_eq!(removed["pending"], 2, "{removed}");
    let (status, body) = ops.post("/destinations/fwd/forward/pause").await;
    assert_eq!(
        status, 404,
        "only a configured destination is paused: {body}"
    );
    let (status, discarded) = ops.post("/destinations/fwd/forward/discard").await;
    assert_eq!(status, 200, "{discarded}");
    assert_eq!(discarded["pending"], 0, "{discarded}");
    assert_eq!(discarded["dead"], 2, "{discarded}");
    drop(server);

    // It comes back: a configured destination is not discarded, and a redrive delivers.
    app.answer(Answer::Ok);
    let server = start(&fwd_config(&db.url, &app.url(), "")).await;
    let ops = Ops::new(&server);
    let (status, body) = ops.post("/destinations/fwd/forward/discard").await;
    assert_eq!(status, 409, "{body}");
    let back = ops.fwd_destination().await;
    assert_eq!(back["state"], "active", "{back}");
    assert_eq!(back["dead"], 2, "{back}");
    let (status, job) = ops.post("/deliveries/redrive?source=fwd").await;
    assert_eq!(status, 202, "{job}");
    app.wait_for_delivered(2, 30).await;
    drop(server);
    db.drop_db().await;
}
