//! Reliability: the bad things done for real to the real binary. Crashes mid-transaction,
//! a database that vanishes, three instances in a storm, floods past the queue bound, and
//! hostile input. Whatever happens: nothing is processed twice, nothing accepted is lost.
//!
//! The slowest scenario (the 10,000-delivery storm) is `#[ignore]`d so `cargo test` stays
//! quick; `.ci/run` runs it with `cargo test -- --ignored`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use rand::seq::SliceRandom;
use rand::Rng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Semaphore;

use crate::helpers::*;
use crate::on_every_backend;
use crate::process::Server;
use crate::proxy::Proxy;

on_every_backend!(
    kill_9_mid_transaction_leaves_nothing_and_the_redelivery_processes_once,
    a_flood_past_the_queue_bound_gets_503s_and_every_200_is_committed,
    a_database_outage_answers_503_and_the_same_instance_recovers,
);

fn config(db_url: &str, extra: &str) -> String {
    format!(
        r#"
[default]
log_level = "normal"
[default.idemhook]
database_url = "{db_url}"
log_format = "json"
{extra}
[default.idemhook.sources.demo]
handlers = ["inbox", "payments", "sleep"]
[default.idemhook.sources.strict]
on_missing_id = "reject"
[default.idemhook.sources.std]
provider = "standard"
secret_env = "STD_SECRET"
[default.idemhook.sources.stripe]
provider = "stripe"
secret_env = "STRIPE_SECRET"
handlers = ["inbox", "payments"]
"#
    )
}

const ENV: [(&str, &str); 2] = [
    ("STD_SECRET", "whsec_c3RhbmRhcmQtd2ViaG9va3MtdGVzdC1rZXk="),
    ("STRIPE_SECRET", "whsec_TOPSECRET_stripe_key_123"),
];

async fn post(
    client: &reqwest::Client,
    server: &Server,
    source: &str,
    body: &str,
    headers: &[(&str, &str)],
) -> (u16, String, Option<String>) {
    let mut req = client
        .post(format!("{}/webhooks/{source}", server.base))
        .body(body.to_owned());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    match req.send().await {
        Ok(r) => {
            let status = r.status().as_u16();
            let retry = r
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            (status, r.text().await.unwrap_or_default(), retry)
        }
        Err(e) => (0, e.to_string(), None),
    }
}

async fn wait_for(server: &Server, metric: &str, at_least: f64) {
    for _ in 0..1000 {
        if server.metric(metric).await.unwrap_or(0.0) >= at_least {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{metric} never reached {at_least}");
}

/// A payment whose handlers block inside the open transaction (after the dedupe row and the
/// payment row are written); the process is killed with SIGKILL. After a restart: no trace of
/// it, and the provider's redelivery is processed exactly once.
async fn kill_9_mid_transaction_leaves_nothing_and_the_redelivery_processes_once(backend: Backend) {
    let Some(db) = TestDb::create(backend).await else {
        return;
    };
    let cfg = config(&db.url, "shards = 2");
    let mut server = Server::start(&cfg, &ENV).await;
    let client = reqwest::Client::new();
    let body = payment("evt_crash", "order_crash", 700);
    let stuck = {
        let (client, url, body) = (
            client.clone(),
            format!("{}/webhooks/demo", server.base),
            body.clone(),
        );
        tokio::spawn(async move {
            client
                .post(url)
                .header("X-Test-Sleep-Ms", "60000")
                .body(body)
                .send()
                .await
        })
    };
    // The event has reached its shard and its transaction (the sleep comes after the writes).
    wait_for(&server, "idemhook_cache_misses_total", 1.0).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.signal("KILL");
    let status = server.wait().await;
    assert!(!status.success());
    assert!(
        stuck.await.unwrap().is_err(),
        "the killed delivery got no answer"
    );
    let conn = db.connect().await;
    let r = rows(&conn).await;
    assert_eq!(
        (r.processed, r.inbox),
        (0, 0),
        "a killed transaction left rows behind"
    );
    assert_eq!(amount_paid(&conn, "order_crash").await, None);

    let server = Server::start(&cfg, &ENV).await;
    let (status, text, _) = post(&client, &server, "demo", &body, &[]).await;
    assert_eq!(
        (status, text.contains(r#""status":"processed""#)),
        (200, true),
        "{text}"
    );
    let (_, text, _) = post(&client, &server, "demo", &body, &[]).await;
    assert!(text.contains(r#""status":"duplicate""#), "{text}");
    assert_eq!(amount_paid(&conn, "order_crash").await, Some(700));
    assert_eq!(rows(&conn).await.processed, 1);
    drop(server);
    db.drop_db().await;
}

/// Two shards, three queued events each at most, every event slowed down inside its
/// transaction: a flood of 40 gets some 503s with Retry-After, every 200 is committed, and
/// retrying the refused ones processes each exactly once.
async fn a_flood_past_the_queue_bound_gets_503s_and_every_200_is_committed(backend: Backend) {
    let Some(db) = TestDb::create(backend).await else {
        return;
    };
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
    for i in refused {
        let mut status = 0;
        for _ in 0..100 {
            status = post(&client, &server, "demo", &bodies[i], &[]).await.0;
            if status == 200 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(status, 200);
    }
    assert_eq!(rows(&conn).await.processed, 40);
    assert_eq!(amount_paid(&conn, "order_flood").await, Some(40));
    let rss = server_rss_kib(&server);
    assert!(rss < 512 * 1024, "resident memory {rss} KiB");
    drop(server);
    db.drop_db().await;
}

fn server_rss_kib(server: &Server) -> u64 {
    let pid = server.child.id().expect("running");
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// idemhook talks to its database through a proxy the test controls. Deliveries flow; the
/// proxy cuts every connection and refuses new ones; deliveries get 503 with Retry-After,
/// never a 500 or a hang; the proxy comes back and the *same* process serves again, and the
/// providers' redeliveries are processed exactly once.
async fn a_database_outage_answers_503_and_the_same_instance_recovers(backend: Backend) {
    if backend == Backend::Sqlite {
        return; // an embedded database cannot go away on its own
    }
    let Some(db) = TestDb::create(backend).await else {
        return;
    };
    let (before_host, rest) = db.url.split_once('@').expect("user@host in URL");
    let (host, path) = rest.split_once('/').expect("host/db in URL");
    let proxy = Proxy::start(host).await;
    let url = format!("{before_host}@127.0.0.1:{}/{path}", proxy.port);
    let mut server = Server::start(&config(&url, "shards = 4\ndb_timeout_secs = 2"), &ENV).await;
    let client = reqwest::Client::new();
    let body = |i: usize| payment(&format!("out_{i}"), "order_out", 10);
    for i in 0..10 {
        assert_eq!(post(&client, &server, "demo", &body(i), &[]).await.0, 200);
    }
    proxy.cut();
    let during = join_all((10..20).map(|i| {
        let b = body(i);
        let (client, server) = (&client, &server);
        async move { post(client, server, "demo", &b, &[]).await }
    }))
    .await;
    for (status, text, retry) in &during {
        assert_eq!(*status, 503, "{text}");
        assert!(retry.is_some(), "503 without Retry-After");
    }
    let ready = client
        .get(format!("{}/health/ready", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status().as_u16(), 503);
    proxy.restore();
    let ready = server.ready_within(10).await;
    assert_eq!(ready, 200);
    // The providers retry everything that was not answered 200.
    for i in 10..20 {
        let mut reply = (0, String::new(), None);
        for _ in 0..50 {
            reply = post(&client, &server, "demo", &body(i), &[]).await;
            if reply.0 == 200 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(reply.1.contains(r#""status":"processed""#), "{reply:?}");
    }
    for i in 0..20 {
        let (_, text, _) = post(&client, &server, "demo", &body(i), &[]).await;
        assert!(text.contains(r#""status":"duplicate""#), "{text}");
    }
    let conn = db.connect().await;
    assert_eq!(rows(&conn).await.processed, 20);
    assert_eq!(amount_paid(&conn, "order_out").await, Some(200));
    let logs = server.logs();
    let count = |needle: &str| logs.iter().filter(|l| l.contains(needle)).count();
    assert_eq!(count("database unavailable: answering 503"), 1, "{logs:#?}");
    assert_eq!(count("database available again"), 1, "{logs:#?}");
    assert!(!logs.iter().any(|l| l.contains("panicked")), "{logs:#?}");
    drop(server);
    drop(proxy);
    db.drop_db().await;
}

/// Three idemhook processes on one database; 1,000 payment events, each delivered 10 times
/// to random instances, 64 at a time: exactly 1,000 processed, 9,000 duplicates, every order
/// exact, no 5xx.
async fn storm(backend: Backend) {
    let Some(db) = TestDb::create(backend).await else {
        return;
    };
    let cfg = config(&db.url, "shards = 8");
    let mut servers = Vec::new();
    for _ in 0..3 {
        servers.push(Server::start(&cfg, &ENV).await); // one after another: migrations
    }
    let servers = Arc::new(servers);
    let mut deliveries: Vec<usize> = (0..1000).flat_map(|e| std::iter::repeat_n(e, 10)).collect();
    deliveries.shuffle(&mut rand::thread_rng());
    let client = reqwest::Client::new();
    let permits = Arc::new(Semaphore::new(64));
    let tasks = deliveries.into_iter().map(|e| {
        let (client, servers, permits) = (client.clone(), servers.clone(), permits.clone());
        tokio::spawn(async move {
            let _permit = permits.acquire().await.unwrap();
            let server = &servers[rand::thread_rng().gen_range(0..3)];
            let body = payment(
                &format!("storm_{e}"),
                &format!("order_{}", e % 100),
                (e % 50 + 1) as i64,
            );
            post(&client, server, "demo", &body, &[]).await
        })
    });
    let replies: Vec<_> = join_all(tasks)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let mut statuses: HashMap<u16, usize> = HashMap::new();
    for r in &replies {
        *statuses.entry(r.0).or_default() += 1;
    }
    assert_eq!(statuses.get(&200), Some(&10_000), "{statuses:?}");
    let processed = replies
        .iter()
        .filter(|r| r.1.contains(r#""status":"processed""#))
        .count();
    let duplicates = replies
        .iter()
        .filter(|r| r.1.contains(r#""status":"duplicate""#))
        .count();
    assert_eq!((processed, duplicates), (1000, 9000));
    let conn = db.connect().await;
    assert_orders_exact(&conn, 1000, 100, |e| (e % 50 + 1) as i64).await;
    assert_eq!(rows(&conn).await.processed, 1000);
    eprintln!("storm on {backend:?}: 10,000 deliveries, {processed} processed, {duplicates} duplicates, statuses {statuses:?}");
    drop(servers);
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "slow: 10,000 deliveries over three processes; .ci/run runs it"]
async fn storm_of_three_instances_postgres() {
    storm(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "slow: 10,000 deliveries over three processes; .ci/run runs it"]
async fn storm_of_three_instances_mysql() {
    storm(Backend::MySql).await;
}

/// Sends raw bytes on a fresh connection and returns the status code of the answer (0 if the
/// server closed the connection without one).
async fn raw(server: &Server, request: &[u8]) -> u16 {
    let addr = server.base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let _ = stream.write_all(request).await;
    let mut buf = vec![0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or(0);
    let head = String::from_utf8_lossy(&buf[..n]);
    head.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

fn request(path: &str, headers: &[(&str, &[u8])], body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    )
    .into_bytes();
    for (k, v) in headers {
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(v);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

/// A corpus of malformed and hostile requests: every one is answered 4xx (or refused by the
/// HTTP layer), never 5xx, the server stays up, and nothing is recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_requests_get_4xx_and_record_nothing() {
    let db = TestDb::create(Backend::Sqlite).await.unwrap();
    let mut server = Server::start(&config(&db.url, ""), &ENV).await;
    let nested = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let huge_header = vec![b'a'; 200 * 1024];
    let corpus: Vec<(&str, Vec<u8>)> = vec![
        (
            "invalid UTF-8 id header, source that needs an id",
            request(
                "/webhooks/strict",
                &[("Webhook-Id", b"\xff\xfe"), ("Webhook-Type", b"t")],
                b"{}",
            ),
        ),
        (
            "invalid UTF-8 id header, signed source",
            request(
                "/webhooks/std",
                &[
                    ("webhook-id", b"\xff"),
                    ("webhook-timestamp", b"1"),
                    ("webhook-signature", b"v1,AAAA"),
                ],
                b"{}",
            ),
        ),
        (
            "invalid UTF-8 in the JSON id",
            request("/webhooks/demo", &[], b"{\"id\":\"\xff\",\"type\":\"t\"}"),
        ),
        (
            "NUL in the id",
            request("/webhooks/demo", &[], br#"{"id":"a\u0000b","type":"t"}"#),
        ),
        (
            "NUL in the type header",
            request(
                "/webhooks/demo",
                &[("Webhook-Type", b"a\x00b")],
                br#"{"id":"x"}"#,
            ),
        ),
        (
            "huge header",
            request(
                "/webhooks/demo",
                &[("X-Big", &huge_header)],
                br#"{"id":"x","type":"t"}"#,
            ),
        ),
        (
            "deeply nested JSON",
            request("/webhooks/demo", &[], nested.as_bytes()),
        ),
        (
            "form body",
            request(
                "/webhooks/demo",
                &[("Content-Type", b"application/x-www-form-urlencoded")],
                b"id=1&type=t",
            ),
        ),
        ("empty body", request("/webhooks/demo", &[], b"")),
        (
            "duplicate id headers",
            request(
                "/webhooks/demo",
                &[("Webhook-Id", b"a"), ("Webhook-Id", b"b")],
                br#"{"type":"t"}"#,
            ),
        ),
        (
            "path traversal",
            request(
                "/webhooks/..%2F..%2Fetc%2Fpasswd",
                &[],
                br#"{"id":"x","type":"t"}"#,
            ),
        ),
        (
            "dot segments",
            request("/webhooks/../admin", &[], br#"{"id":"x","type":"t"}"#),
        ),
        (
            "unknown source with NUL",
            request("/webhooks/a%00b", &[], br#"{"id":"x","type":"t"}"#),
        ),
        (
            "id too long",
            request(
                "/webhooks/demo",
                &[],
                format!(r#"{{"id":"{}","type":"t"}}"#, "x".repeat(1025)).as_bytes(),
            ),
        ),
        (
            "type is an object",
            request("/webhooks/demo", &[], br#"{"id":"x","type":{"a":1}}"#),
        ),
        (
            "stripe without signature",
            request("/webhooks/stripe", &[], br#"{"id":"x","type":"t"}"#),
        ),
        (
            "stripe garbage signature",
            request(
                "/webhooks/stripe",
                &[("Stripe-Signature", b"t=,v1=,,,==")],
                br#"{"id":"x","type":"t"}"#,
            ),
        ),
        (
            "body over the limit",
            request("/webhooks/demo", &[], &vec![b' '; 1024 * 1024 + 10]),
        ),
        (
            "GET on the ingest path",
            b"GET /webhooks/demo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(),
        ),
        (
            "garbage request line",
            b"\x00\x01\x02 / HTTP/1.1\r\n\r\n".to_vec(),
        ),
    ];
    let mut tried = 0;
    for (name, bytes) in &corpus {
        let status = raw(&server, bytes).await;
        assert!(
            (400..500).contains(&status) || status == 0,
            "{name}: answered {status}"
        );
        tried += 1;
    }
    // Still serving, and nothing was recorded.
    let client = reqwest::Client::new();
    let (status, _, _) = post(&client, &server, "demo", &payment("after", "o", 1), &[]).await;
    assert_eq!(status, 200);
    let r = rows(&db.connect().await).await;
    assert_eq!((r.processed, r.inbox, r.failed), (1, 1, 0));
    let logs = server.logs();
    assert!(!logs.iter().any(|l| l.contains("panicked")), "{logs:#?}");
    eprintln!("hostile corpus: {tried} requests, all refused with 4xx");
    drop(server);
    db.drop_db().await;
}

/// Logs at debug level, through valid and invalid signed deliveries and admin calls, never
/// contain a secret, the admin token or a payload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_never_contain_secrets_tokens_or_payloads() {
    use hmac::{Hmac, KeyInit, Mac};
    let db = TestDb::create(Backend::Sqlite).await.unwrap();
    let mut env = ENV.to_vec();
    env.push(("IDEMHOOK_ADMIN_TOKEN", "ADMIN_TOKEN_do_not_log_42"));
    env.push(("RUST_LOG", "debug"));
    let mut server = Server::start(&config(&db.url, ""), &env).await;
    let client = reqwest::Client::new();
    let body = r#"{"id":"evt_log","type":"payment_intent.succeeded","data":{"object":{"amount_received":5,"currency":"usd","metadata":{"order_id":"PAYLOAD_MARKER_order"}}},"card":"PAYLOAD_MARKER_4242"}"#;
    let t = chrono::Utc::now().timestamp().to_string();
    let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(ENV[1].1.as_bytes()).unwrap();
    mac.update(format!("{t}.{body}").as_bytes());
    let good = format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(
        post(
            &client,
            &server,
            "stripe",
            body,
            &[("Stripe-Signature", &good)]
        )
        .await
        .0,
        200
    );
    assert_eq!(
        post(
            &client,
            &server,
            "stripe",
            body,
            &[("Stripe-Signature", "t=1,v1=00")]
        )
        .await
        .0,
        401
    );
    assert_eq!(
        post(&client, &server, "demo", "PAYLOAD_MARKER_not_json", &[])
            .await
            .0,
        400
    );
    for token in ["wrong", "ADMIN_TOKEN_do_not_log_42"] {
        let _ = client
            .get(format!("{}/orders/PAYLOAD_MARKER_order", server.base))
            .bearer_auth(token)
            .send()
            .await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let logs = server.logs();
    assert!(logs.len() > 5, "expected debug logs: {logs:#?}");
    for secret in [
        "TOPSECRET",
        "ADMIN_TOKEN_do_not_log",
        "PAYLOAD_MARKER_4242",
        "PAYLOAD_MARKER_not_json",
        "c3RhbmRhcmQtd2ViaG9va3Mt",
    ] {
        let leaks: Vec<_> = logs.iter().filter(|l| l.contains(secret)).collect();
        assert!(
            leaks.is_empty(),
            "{secret} leaked into the logs: {leaks:#?}"
        );
    }
    drop(server);
    db.drop_db().await;
}
