//! Several instances on one database server.

use crate::support::*;

on_server_backends!(three_instances_deliver_every_event_never_two_at_once);

/// Three instances fan out from one outbox to two destinations while events arrive at all of
/// them, and one is killed (SIGKILL) halfway, then restarted. Every (event, destination) is
/// delivered; no event is ever being delivered to one destination by two instances at once
/// (neither app sees overlapping requests for one key).
async fn three_instances_deliver_every_event_never_two_at_once(backend: Backend) {
    let db = TestDb::create(backend).await;
    let app = Receiver::start().await;
    app.answer(Answer::Slow(20));
    let ledger = Receiver::start().await;
    ledger.answer(Answer::Slow(20));
    let mut cfg = fwd_config(&db.url, &app.url(), "concurrency = 4");
    cfg.push_str(&format!(
        "[default.idemhook.sources.fwd.destinations.ledger]\nurl = \"{}\"\n\
         secret_env = \"FWD_SECRET\"\nconcurrency = 4\ntimeout_secs = 2\nprobe_secs = 1\n\
         backoff_base_ms = 50\nbackoff_max_secs = 1\n",
        ledger.url()
    ));
    let mut servers = Vec::new();
    for _ in 0..3 {
        servers.push(start(&cfg).await);
    }
    let client = reqwest::Client::new();
    for i in 0..60 {
        if i == 30 {
            servers[0].signal("KILL");
            servers[0].wait().await;
        }
        if i == 45 {
            servers[0] = start(&cfg).await;
        }
        let server = &servers[if i >= 30 { 1 + i % 2 } else { i % 3 }];
        let body = payment(&format!("evt_fleet_{i}"), &format!("o{i}"), 1);
        let (status, text, _) = post_until_ok(&client, server, "fwd", &body).await;
        assert_eq!(status, 200, "{text}");
    }
    let keys = app.wait_for_delivered(60, 90).await;
    assert_eq!(keys.len(), 60);
    assert_eq!(
        ledger.wait_for_delivered(60, 90).await,
        keys,
        "the same events, the same keys"
    );
    for (name, app) in [("forward", &app), ("ledger", &ledger)] {
        assert_eq!(
            app.overlaps(),
            0,
            "{name}: one event delivered by two instances at once"
        );
        assert!(app
            .received()
            .iter()
            .all(|r| r.header("idemhook-destination") == name));
    }
    drop(servers);
    db.drop_db().await;
}
