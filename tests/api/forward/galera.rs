//! Three instances on the three nodes of a Galera cluster (slow; `.ci/run` runs it). Row
//! locks are local to a node there, so two nodes can claim one delivery at once; one of the
//! two claims fails at COMMIT (1213) and claims nothing.

use std::time::Duration;

use sea_orm::{ConnectionTrait, Database};

use super::{fwd_config, start};
use crate::galera::{node_urls, CLUSTER};
use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "slow: needs the three-node Galera cluster of scripts/galera.sh; .ci/run runs it"]
async fn three_galera_nodes_deliver_every_event_never_two_at_once_through_a_node_kill() {
    let _cluster = CLUSTER.lock().await;
    let nodes = node_urls();
    let name = random_db_name();
    let admin = Database::connect(format!("{}/mysql", nodes[0]))
        .await
        .expect("node 1");
    admin
        .execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    let app = Receiver::start().await;
    app.answer(Answer::Slow(20));
    let mut servers = Vec::new();
    for node in &nodes {
        let cfg = fwd_config(&format!("{node}/{name}"), &app.url(), "concurrency = 4").replacen(
            "forward_poll_ms = 50",
            "forward_poll_ms = 50\nmax_retries = 8",
            1,
        );
        servers.push(start(&cfg).await);
    }
    let script = format!("{}/scripts/galera.sh", env!("CARGO_MANIFEST_DIR"));
    let client = reqwest::Client::new();
    for i in 0..120 {
        if i == 60 {
            let killed = std::process::Command::new(&script)
                .args(["kill", "2"])
                .status();
            assert!(killed.is_ok_and(|s| s.success()), "kill node 2");
            let script = script.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_secs(3));
                let _ = std::process::Command::new(&script)
                    .args(["restart", "2"])
                    .status();
            });
        }
        // While node 2 is down its instance answers 503; providers retry elsewhere.
        let server = &servers[if i >= 60 { [0, 2][i % 2] } else { i % 3 }];
        let body = payment(&format!("evt_gal_{i}"), &format!("o{i}"), 1);
        let (status, text, _) = post_until_ok(&client, server, "fwd", &body).await;
        assert_eq!(status, 200, "{text}");
    }
    let keys = app.wait_for_delivered(120, 120).await;
    assert_eq!(keys.len(), 120);
    assert_eq!(
        app.overlaps(),
        0,
        "one event delivered by two instances at once"
    );
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
    eprintln!("galera forwarding: 120 events delivered; claims lost to another node: {lost}");
    assert_eq!(servers[1].ready_within(60).await, 200);
    drop(servers);
    let _ = admin
        .execute_unprepared(&format!("DROP DATABASE {name}"))
        .await;
}
