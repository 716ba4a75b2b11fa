//! What every destination kind shares with `http`, checked on the new kinds: the filters
//! (`types`), the fleet-wide rate limit (a `nats` destination), and an operator's pause (a
//! `pull` destination leases nothing while paused).

use serde_json::json;

use crate::support::*;

on_every_backend!(filters_the_rate_limit_and_a_pause_hold_for_nats_and_pull);

const RATE: usize = 4;
const ORDERS: usize = 20;

async fn filters_the_rate_limit_and_a_pause_hold_for_nats_and_pull(backend: Backend) {
    let db = TestDb::create(backend).await;
    let node = NatsNode::start().await;
    let js = jetstream(&[node.url()]).await;
    create_stream(&js, "WEBHOOKS", &["webhooks.>"], 1).await;
    let mut cfg = config(&db.url, "forward_poll_ms = 50");
    cfg.push_str(&format!(
        "[default.idemhook.sources.fan]\nhandlers = [\"forward\"]\n\
         [default.idemhook.sources.fan.destinations.bus]\nkind = \"nats\"\n\
         urls = [\"{}\"]\nsubject = \"webhooks.{{source}}.{{type}}\"\nstream = \"WEBHOOKS\"\n\
         types = [\"orders/*\"]\nrate_per_sec = {RATE}\n\
         [default.idemhook.sources.fan.destinations.warehouse]\nkind = \"pull\"\n\
         token_env = \"PULL_TOKEN\"\ntypes = [\"refunds/*\"]\n",
        node.url()
    ));
    let mut env = fwd_env();
    env.push(("PULL_TOKEN", "kinds-pull-token".to_owned()));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let server = Server::start(&cfg, &env).await;
    let ops = Ops::new(&server);
    let (status, answer) = ops.post("/destinations/fan/warehouse/pause").await;
    assert_eq!(status, 200, "{answer}");

    let client = reqwest::Client::new();
    let post_type = |i: usize, ty: &'static str| {
        let client = client.clone();
        let body = json!({"id": format!("{ty}-{i}"), "type": ty}).to_string();
        let server = &server;
        async move {
            let (status, text, _) = post_until_ok(&client, server, "fan", &body).await;
            assert_eq!(status, 200, "{text}");
        }
    };
    for i in 0..ORDERS {
        post_type(i, "orders/paid").await;
    }
    for i in 0..3 {
        post_type(i, "refunds/create").await;
        post_type(i, "customers/update").await;
    }

    // The filters: the stream gets the orders only, at most the rate (plus the bucket's
    // burst, and one for a claim's tokens reaching the broker late) in any second.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    let stored = loop {
        let stored = stream_messages(&js, "WEBHOOKS").await;
        if stored.len() >= ORDERS || tokio::time::Instant::now() > deadline {
            break stored;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert_eq!(stored.len(), ORDERS);
    assert!(stored
        .iter()
        .all(|m| m.subject == "webhooks.fan.orders/paid"));
    let mut at: Vec<i128> = stored.iter().map(|m| m.stored_at_ns).collect();
    at.sort();
    let most = (0..at.len())
        .map(|i| {
            at[i..]
                .iter()
                .take_while(|t| **t - at[i] < 1_000_000_000)
                .count()
        })
        .max()
        .unwrap_or(0);
    assert!(
        most <= 2 * RATE + 1,
        "{most} messages in one second at rate {RATE}"
    );

    // Paused, the pull destination leases nothing; resumed, its three refunds.
    let lease = |wait: u32| {
        let client = client.clone();
        let url = format!(
            "{}/pull/fan/warehouse/lease?max=10&wait_secs={wait}",
            server.base
        );
        async move {
            let answer: serde_json::Value = client
                .post(url)
                .bearer_auth("kinds-pull-token")
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            answer["deliveries"].as_array().unwrap().clone()
        }
    };
    assert!(
        lease(1).await.is_empty(),
        "a paused pull destination leases nothing"
    );
    let (status, answer) = ops.post("/destinations/fan/warehouse/resume").await;
    assert_eq!(status, 200, "{answer}");
    let leased = lease(5).await;
    let types: Vec<&str> = leased
        .iter()
        .map(|d| d["event_type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["refunds/create"; 3]);
    drop(server);
    db.drop_db().await;
}
