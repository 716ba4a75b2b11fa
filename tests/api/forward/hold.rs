//! An app that asks for room (a 429, or a 503 with `Retry-After`) holds back every delivery to
//! it, not only the one it answered: an event committed meanwhile waits for the hold too.

use std::time::Duration;

use crate::support::*;

on_every_backend!(a_429_holds_every_delivery_of_the_destination_until_its_retry_after);

/// The app answers the first delivery 429 with `Retry-After: 3`; a second event, committed
/// once the hold is recorded, reaches the app no sooner than the hold allows, and both are
/// delivered once it has passed.
async fn a_429_holds_every_delivery_of_the_destination_until_its_retry_after(backend: Backend) {
    let db = TestDb::create(backend).await;
    let app = Receiver::start().await;
    app.script(&[Answer::TooMany(3)]);
    // A cap above the app's Retry-After (the shared config caps the backoff at 1 s).
    let cfg = fwd_config(&db.url, &app.url(), "backoff_max_secs = 60")
        .replace("backoff_max_secs = 1\n", "");
    let server = start(&cfg).await;
    let client = reqwest::Client::new();
    let first = payment("evt_first", "o_1", 100);
    assert_eq!(post(&client, &server, "fwd", &first, &[]).await.0, 200);
    let conn = db.connect().await;
    let mut held = false;
    for _ in 0..600 {
        let row = query_row(
            &conn,
            "SELECT COUNT(*) AS n FROM destinations WHERE source = 'fwd' AND name = 'forward' \
             AND hold_until IS NOT NULL",
        )
        .await;
        if row.try_get_by_index::<i64>(0).unwrap() == 1 {
            held = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(held, "no hold recorded after the 429: {:?}", app.received());
    let throttled_at = app.received()[0].at;
    assert_eq!(app.received()[0].reply, Answer::TooMany(3));
    let second = payment("evt_second", "o_2", 100);
    assert_eq!(post(&client, &server, "fwd", &second, &[]).await.0, 200);
    app.wait_for_delivered(2, 30).await;
    let received = app.received();
    let second_at = received
        .iter()
        .find(|r| r.header("idemhook-event-id") == "evt_second")
        .map(|r| r.at)
        .unwrap();
    let waited = second_at.duration_since(throttled_at);
    assert!(
        waited >= Duration::from_millis(2900),
        "the second event reached the app {waited:?} after the 429 asked for 3 s"
    );
    drop(server);
    db.drop_db().await;
}
