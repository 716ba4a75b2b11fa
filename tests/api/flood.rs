//! The bounds, on the real binary: a flood past the queue bound, or past the byte budget, is
//! refused with 503 and Retry-After instead of queueing without bound, every 200 is committed,
//! and nothing refused is lost once the provider retries.

use futures::future::join_all;

use crate::support::*;

on_every_backend!(
    a_flood_past_the_queue_bound_gets_503s_and_every_200_is_committed,
    bodies_past_the_byte_budget_get_503s_before_they_are_read,
);

/// Two shards, three queued events each at most, every event slowed down inside its
/// transaction: a flood of 40 gets some 503s with Retry-After, every 200 is committed, and
/// retrying the refused ones processes each exactly once.
async fn a_flood_past_the_queue_bound_gets_503s_and_every_200_is_committed(backend: Backend) {
    let db = TestDb::create(backend).await;
    let cfg = config(&db.url, "shards = 2\nshard_queue = 3\nmax_batch = 1");
    let server = Server::start(&cfg, &ENV).await;
    let client = reqwest::Client::new();
    let bodies: Vec<String> = (0..40)
        .map(|i| payment(&format!("flood_{i}"), "order_flood", 1))
        .collect();
    let replies = join_all(
        bodies
            .iter()
            .map(|b| post(&client, &server, "demo", b, &[("X-Test-Sleep-Ms", "100")])),
    )
    .await;
    let ok: Vec<usize> = (0..40).filter(|&i| replies[i].0 == 200).collect();
    let refused: Vec<usize> = (0..40).filter(|&i| replies[i].0 == 503).collect();
    assert_eq!(ok.len() + refused.len(), 40, "{replies:?}");
    assert!(!refused.is_empty() && !ok.is_empty(), "{replies:?}");
    assert!(
        ok.iter()
            .all(|&i| replies[i].1.contains(r#""status":"processed""#)),
        "{replies:?}"
    );
    assert!(
        refused
            .iter()
            .all(|&i| replies[i].2.as_deref() == Some("1")),
        "503 without Retry-After"
    );
    let conn = db.connect().await;
    assert_eq!(
        rows(&conn).await.processed,
        ok.len() as u64,
        "every 200 is committed, nothing else"
    );
    // The providers retry what was refused, until it goes through.
    for i in refused {
        let reply = post_until_ok(&client, &server, "demo", &bodies[i]).await;
        assert!(reply.1.contains(r#""status":"processed""#), "{reply:?}");
    }
    assert_eq!(rows(&conn).await.processed, 40);
    assert_eq!(amount_paid(&conn, "order_flood").await, Some(40));
    drop(server);
    db.drop_db().await;
}

/// A budget of 1 MiB for everything in flight, and four deliveries of ~300 KiB held inside
/// their transactions: three fit, the fourth is refused with 503 and Retry-After before its
/// body is read, and nothing of it is recorded; retried once the others are answered, it
/// commits.
async fn bodies_past_the_byte_budget_get_503s_before_they_are_read(backend: Backend) {
    let db = TestDb::create(backend).await;
    // One writer: the held events wait for it in turn, not on each other's locks (SQLite
    // locks the whole database for a writing transaction).
    let cfg = config(&db.url, "inflight_budget_mib = 1\nwriters = 1");
    let server = Server::start(&cfg, &ENV).await;
    let client = reqwest::Client::new();
    let pad = "0,".repeat(150_000);
    let bodies: Vec<String> = (0..4)
        .map(|i| {
            format!(
                r#"{{"id":"wide_{i}","type":"payment_succeeded","data":{{"order_id":"order_wide_{i}","amount":1,"currency":"eur"}},"pad":[{pad}0]}}"#
            )
        })
        .collect();
    let replies = join_all(
        bodies
            .iter()
            .map(|b| post(&client, &server, "demo", b, &[("X-Test-Sleep-Ms", "2000")])),
    )
    .await;
    let refused: Vec<_> = replies.iter().filter(|r| r.0 == 503).collect();
    assert_eq!(refused.len(), 1, "{replies:?}");
    assert!(refused[0].1.contains("bytes"), "{refused:?}");
    assert_eq!(refused[0].2.as_deref(), Some("1"));
    assert_eq!(
        replies.iter().filter(|r| r.0 == 200).count(),
        3,
        "{replies:?}"
    );
    let conn = db.connect().await;
    assert_eq!(rows(&conn).await.processed, 3);
    let metric = r#"idemhook_events_rejected_total{reason="over_budget",source="demo"}"#;
    assert_eq!(server.metric(metric).await, Some(1.0));
    for (reply, body) in replies.iter().zip(&bodies) {
        if reply.0 == 503 {
            assert_eq!(post(&client, &server, "demo", body, &[]).await.0, 200);
        }
    }
    // Each on its own order: held rows are another bound's business (`locks.rs`).
    assert_eq!(rows(&conn).await.processed, 4);
    drop(server);
    db.drop_db().await;
}
