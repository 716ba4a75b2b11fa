//! Three instances on the three nodes of a Galera cluster (slow; `.ci/run` runs it), fanning
//! out to two destinations. Row locks are local to a node there, so two nodes can claim one
//! delivery at once; one of the two claims fails at COMMIT (1213) and claims nothing.

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "slow: needs the three-node Galera cluster of scripts/galera.sh; .ci/run runs it"]
async fn three_galera_nodes_deliver_every_event_never_two_at_once_through_a_node_kill() {
    let cluster = Cluster::take().await;
    let app = Receiver::start().await;
    app.answer(Answer::Slow(20));
    let ledger = Receiver::start().await;
    ledger.answer(Answer::Slow(20));
    let mut servers = Vec::new();
    for url in &cluster.urls {
        let mut cfg = fwd_config(url, &app.url(), "concurrency = 4").replacen(
            "forward_poll_ms = 50",
            "forward_poll_ms = 50\nmax_retries = 8",
            1,
        );
        cfg.push_str(&format!(
            "[default.idemhook.sources.fwd.destinations.ledger]\nurl = \"{}\"\n\
             secret_env = \"FWD_SECRET\"\nconcurrency = 4\ntimeout_secs = 2\nprobe_secs = 1\n\
             backoff_base_ms = 50\nbackoff_max_secs = 1\n",
            ledger.url()
        ));
        servers.push(start(&cfg).await);
    }
    let client = reqwest::Client::new();
    for i in 0..120 {
        if i == 60 {
            cluster.kill_node_2();
        }
        // While node 2 is down its instance answers 503; providers retry elsewhere.
        let server = &servers[if i >= 60 { [0, 2][i % 2] } else { i % 3 }];
        let body = payment(&format!("evt_gal_{i}"), &format!("o{i}"), 1);
        let (status, text, _) = post_until_ok(&client, server, "fwd", &body).await;
        assert_eq!(status, 200, "{text}");
    }
    let keys = app.wait_for_delivered(120, 120).await;
    assert_eq!(keys.len(), 120);
    assert_eq!(ledger.wait_for_delivered(120, 120).await, keys);
    for app in [&app, &ledger] {
        assert_eq!(
            app.overlaps(),
            0,
            "one event delivered by two instances at once"
        );
    }
    let lost = {
        let mut n = 0.0;
        for s in &servers {
            n += s
                .metric("idemhook_delivery_claims_lost_total")
                .await
                .unwrap_or(0.0);
        }
        n
    };
    eprintln!(
        "galera forwarding: 120 events delivered to each of 2 destinations; claims lost to \
         another node: {lost}"
    );
    assert_eq!(servers[1].ready_within(60).await, 200);
    drop(servers);
    cluster.drop_db().await;
}
