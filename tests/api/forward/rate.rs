//! The fleet-wide rate limit: three instances deliver to one destination, and together they
//! stay within `rate_per_sec` plus the bucket's burst (one second's worth).

use std::time::Duration;

use crate::support::*;

on_server_backends!(three_instances_together_keep_to_the_destinations_rate);

const RATE: usize = 4;
const EVENTS: usize = 20;

async fn three_instances_together_keep_to_the_destinations_rate(backend: Backend) {
    let db = TestDb::create(backend).await;
    let app = Receiver::start().await;
    let cfg = fwd_config(&db.url, &app.url(), &format!("rate_per_sec = {RATE}"));
    let mut servers = Vec::new();
    for _ in 0..3 {
        servers.push(start(&cfg).await);
    }
    let client = reqwest::Client::new();
    for i in 0..EVENTS {
        let body = payment(&format!("evt_rate_{i}"), &format!("o{i}"), 1);
        let (status, text, _) = post(&client, &servers[i % 3], "fwd", &body, &[]).await;
        assert_eq!(status, 200, "{text}");
    }
    app.wait_for_delivered(EVENTS, 60).await;
    let mut arrivals: Vec<_> = app.received().iter().map(|r| r.at).collect();
    arrivals.sort();
    // Every request the app saw, in any one-second window: at most the burst (a second's
    // worth, the bucket full) plus a second of refill. One more is allowed for the time between
    // a claim's tokens and its request reaching the app, which a loaded host can stretch; with
    // no limit all twenty arrive within a fraction of a second.
    let most = arrivals
        .iter()
        .enumerate()
        .map(|(i, start)| {
            arrivals[i..]
                .iter()
                .take_while(|at| at.duration_since(*start) < Duration::from_secs(1))
                .count()
        })
        .max()
        .unwrap_or(0);
    assert!(
        most <= 2 * RATE + 1,
        "{most} requests in one second at rate {RATE}"
    );
    // And the whole takes as long as the rate says, however the requests were spread.
    let span = arrivals[arrivals.len() - 1].duration_since(arrivals[0]);
    let least = Duration::from_secs_f64((EVENTS - 2 * RATE) as f64 / RATE as f64 * 0.9);
    assert!(
        span >= least,
        "{EVENTS} requests in {span:?} at rate {RATE}"
    );
    drop(servers);
    db.drop_db().await;
}
