//! The `pull` destination, for real: consumers lease, ack and nack over HTTP against the
//! binary, on every backend. Three consumers at once never hold the same delivery; a consumer
//! that dies mid-lease leaves its delivery to be leased again once the lease runs out; a
//! token whose lease ran out is reported stale and never acked; a delivery nacked or left to
//! run out `max_attempts` times is dead; ordering holds across leases; only the destination's
//! own token opens it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

use crate::support::*;

on_every_backend!(
    three_consumers_never_hold_the_same_delivery,
    leases_that_run_out_nacks_and_stale_tokens,
    ordering_tokens_and_parameters,
);

const TOKEN: &str = "pull-token-for-tests";
const OTHER_TOKEN: &str = "the-other-consumers-token";

/// The `fan` source with the pull destinations `warehouse` (`extra`: more of its keys) and
/// `other`, each with its own token.
async fn pull_server(db: &TestDb, extra: &str) -> Server {
    let mut cfg = config(&db.url, "forward_poll_ms = 50");
    cfg.push_str(&format!(
        "[default.idemhook.sources.fan]\nhandlers = [\"forward\"]\n\
         [default.idemhook.sources.fan.destinations.warehouse]\nkind = \"pull\"\n\
         token_env = \"PULL_TOKEN\"\n{extra}\n\
         [default.idemhook.sources.fan.destinations.other]\nkind = \"pull\"\n\
         token_env = \"OTHER_PULL_TOKEN\"\n"
    ));
    let mut env = fwd_env();
    env.push(("PULL_TOKEN", TOKEN.to_owned()));
    env.push(("OTHER_PULL_TOKEN", OTHER_TOKEN.to_owned()));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Server::start(&cfg, &env).await
}

/// A consumer of `warehouse`.
#[derive(Clone)]
struct Consumer {
    base: String,
    client: reqwest::Client,
    token: String,
}

impl Consumer {
    fn new(server: &Server) -> Self {
        Self::with_token(server, TOKEN)
    }

    fn with_token(server: &Server, token: &str) -> Self {
        Consumer {
            base: format!("{}/pull/fan/warehouse", server.base),
            client: reqwest::Client::new(),
            token: token.to_owned(),
        }
    }

    async fn call(&self, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self
            .client
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("an answer");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Leases up to `max`, waiting up to `wait` seconds: the deliveries.
    async fn lease(&self, max: u32, wait: u32) -> Vec<Value> {
        let (status, answer) = self
            .call(&format!("/lease?max={max}&wait_secs={wait}"), None)
            .await;
        assert_eq!(status, 200, "{answer}");
        answer["deliveries"].as_array().unwrap().clone()
    }

    async fn ack(&self, tokens: &[&str]) -> Value {
        let (status, answer) = self
            .call("/ack", Some(json!({ "lease_tokens": tokens })))
            .await;
        assert_eq!(status, 200, "{answer}");
        answer
    }

    async fn nack(&self, tokens: &[&str], delay: u64) -> Value {
        let body = json!({ "lease_tokens": tokens, "delay_secs": delay });
        let (status, answer) = self.call("/nack", Some(body)).await;
        assert_eq!(status, 200, "{answer}");
        answer
    }
}

async fn post_event(server: &Server, id: &str, extra: Value) {
    let mut body = json!({ "id": id, "type": "order.paid" });
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().cloned().unwrap_or_default());
    let client = reqwest::Client::new();
    let (status, text, _) = post_until_ok(&client, server, "fan", &body.to_string()).await;
    assert_eq!(status, 200, "{text}");
}

async fn status_of(db: &TestDb, event_id: &str) -> (String, i32) {
    let row = query_row(
        &db.connect().await,
        &format!(
            "SELECT status, attempts FROM deliveries \
             WHERE event_id = '{event_id}' AND destination = 'warehouse'"
        ),
    )
    .await;
    (
        row.try_get_by_index(0).unwrap(),
        row.try_get_by_index(1).unwrap(),
    )
}

async fn three_consumers_never_hold_the_same_delivery(backend: Backend) {
    let db = TestDb::create(backend).await;
    let server = pull_server(&db, "lease_secs = 30").await;
    for i in 0..90 {
        post_event(&server, &format!("evt_{i:03}"), json!({})).await;
    }
    // Each consumer leases batches and acks them; every lease taken is recorded.
    let taken: Arc<Mutex<Vec<String>>> = Arc::default();
    let consumers = (0..3).map(|_| {
        let (consumer, taken) = (Consumer::new(&server), taken.clone());
        tokio::spawn(async move {
            loop {
                let batch = consumer.lease(7, 1).await;
                if batch.is_empty() {
                    return;
                }
                let tokens: Vec<&str> = batch
                    .iter()
                    .map(|d| d["lease_token"].as_str().unwrap())
                    .collect();
                taken.lock().unwrap().extend(
                    batch
                        .iter()
                        .map(|d| d["event_id"].as_str().unwrap().to_owned()),
                );
                let answer = consumer.ack(&tokens).await;
                assert_eq!(answer["acked"], tokens.len(), "{answer}");
                assert_eq!(answer["stale"], json!([]));
            }
        })
    });
    for consumer in futures::future::join_all(consumers).await {
        consumer.unwrap();
    }
    let taken = taken.lock().unwrap().clone();
    let once: BTreeSet<&String> = taken.iter().collect();
    assert_eq!(taken.len(), 90, "a delivery was leased twice: {taken:?}");
    assert_eq!(once.len(), 90);
    let delivered: i64 = query_row(
        &db.connect().await,
        "SELECT COUNT(*) FROM deliveries WHERE destination = 'warehouse' AND status = 'delivered'",
    )
    .await
    .try_get_by_index(0)
    .unwrap();
    assert_eq!(delivered, 90);
    drop(server);
    db.drop_db().await;
}

async fn leases_that_run_out_nacks_and_stale_tokens(backend: Backend) {
    let db = TestDb::create(backend).await;
    let server = pull_server(&db, "lease_secs = 1\nmax_attempts = 3").await;
    let (a, b) = (Consumer::new(&server), Consumer::new(&server));

    // A consumer leases and dies: once the lease runs out, another leases it (attempt 2);
    // the dead consumer's token is stale, never acked.
    post_event(&server, "killed", json!({})).await;
    let first = a.lease(1, 5).await;
    assert_eq!(first.len(), 1);
    assert_eq!(first[0]["attempt"], 1);
    assert_eq!(
        first[0]["body"],
        json!({"id": "killed", "type": "order.paid"}).to_string()
    );
    assert!(first[0]["idempotency_key"]
        .as_str()
        .unwrap()
        .starts_with("ih_"));
    assert!(
        chrono::DateTime::parse_from_rfc3339(first[0]["leased_until"].as_str().unwrap()).is_ok()
    );
    assert!(b.lease(1, 0).await.is_empty(), "held by the first consumer");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let second = b.lease(1, 5).await;
    assert_eq!(second.len(), 1);
    assert_eq!(second[0]["attempt"], 2);
    assert_eq!(second[0]["idempotency_key"], first[0]["idempotency_key"]);
    let stale = first[0]["lease_token"].as_str().unwrap();
    let answer = a.ack(&[stale]).await;
    assert_eq!(answer, json!({"acked": 0, "stale": [stale]}));
    let answer = b.ack(&[second[0]["lease_token"].as_str().unwrap()]).await;
    assert_eq!(answer["acked"], 1);
    assert_eq!(status_of(&db, "killed").await, ("delivered".into(), 2));
    // Acked twice: the second ack is stale.
    let again = b.ack(&[second[0]["lease_token"].as_str().unwrap()]).await;
    assert_eq!(again["acked"], 0);

    // Nacked: due again (after its delay), the attempt counted; the third is the last.
    post_event(&server, "poison", json!({})).await;
    for attempt in 1..=3 {
        let leased = a.lease(1, 5).await;
        assert_eq!(leased.len(), 1, "attempt {attempt}");
        assert_eq!(leased[0]["attempt"], attempt);
        let answer = a
            .nack(&[leased[0]["lease_token"].as_str().unwrap()], 0)
            .await;
        assert_eq!(answer["nacked"], 1, "{answer}");
    }
    assert_eq!(status_of(&db, "poison").await, ("dead".into(), 3));
    assert!(a.lease(1, 0).await.is_empty());

    // A delivery whose every lease runs out un-acked ends dead, not leased forever.
    post_event(&server, "crasher", json!({})).await;
    for attempt in 1..=3 {
        let leased = a.lease(1, 5).await;
        assert_eq!(leased.len(), 1, "attempt {attempt}");
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    assert!(a.lease(1, 0).await.is_empty());
    assert_eq!(status_of(&db, "crasher").await.0, "dead");
    let error: String = query_row(
        &db.connect().await,
        "SELECT last_error FROM deliveries WHERE event_id = 'crasher' AND destination = 'warehouse'",
    )
    .await
    .try_get_by_index(0)
    .unwrap();
    assert!(error.contains("leases all ran out"), "{error}");

    // The backlog gauges cover pull destinations (a consumer that stops pulling alerts like
    // an app that stops answering): warehouse's two dead, other's three never pulled.
    let want = [
        ("idemhook_deliveries_dead", "warehouse", "2"),
        ("idemhook_deliveries_pending", "other", "3"),
    ];
    let shown = |text: &str, (name, destination, value): &(&str, &str, &str)| {
        text.lines().any(|l| {
            l.starts_with(&format!("{name}{{"))
                && l.contains(&format!("destination=\"{destination}\""))
                && l.ends_with(&format!(" {value}"))
        })
    };
    let http = reqwest::Client::new();
    let mut text = String::new();
    for _ in 0..150 {
        let metrics = http.get(format!("{}/metrics", server.base)).send().await;
        text = metrics.unwrap().text().await.unwrap();
        if want.iter().all(|w| shown(&text, w)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let missing: Vec<_> = want.iter().filter(|w| !shown(&text, w)).collect();
    assert!(missing.is_empty(), "{missing:?} in:\n{text}");
    drop(server);
    db.drop_db().await;
}

async fn ordering_tokens_and_parameters(backend: Backend) {
    let db = TestDb::create(backend).await;
    let server = pull_server(&db, "ordering = \"/account\"").await;
    let consumer = Consumer::new(&server);

    // Ordering across leases: one account's second event waits for the first's ack.
    post_event(&server, "a1", json!({"account": "A"})).await;
    post_event(&server, "a2", json!({"account": "A"})).await;
    post_event(&server, "b1", json!({"account": "B"})).await;
    let leased = consumer.lease(10, 0).await;
    let ids: BTreeSet<&str> = leased
        .iter()
        .map(|d| d["event_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, BTreeSet::from(["a1", "b1"]));
    assert!(consumer.lease(10, 0).await.is_empty(), "a2 waits for a1");
    let tokens: BTreeMap<&str, &str> = leased
        .iter()
        .map(|d| {
            (
                d["event_id"].as_str().unwrap(),
                d["lease_token"].as_str().unwrap(),
            )
        })
        .collect();
    consumer.ack(&[tokens["a1"]]).await;
    let next = consumer.lease(10, 2).await;
    assert_eq!(next.len(), 1);
    assert_eq!(next[0]["event_id"], "a2");

    // A commit wakes a waiting consumer.
    let waiting = {
        let consumer = consumer.clone();
        tokio::spawn(async move { consumer.lease(1, 30).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    post_event(&server, "c1", json!({"account": "C"})).await;
    let woken = waiting.await.unwrap();
    assert_eq!(woken[0]["event_id"], "c1");

    // Only this destination's token opens it; names and parameters are checked.
    for token in ["wrong", ADMIN_TOKEN, OTHER_TOKEN] {
        let (status, answer) = Consumer::with_token(&server, token)
            .call("/lease", None)
            .await;
        assert_eq!(status, 401, "{token}: {answer}");
    }
    let client = reqwest::Client::new();
    let bare = client
        .post(format!("{}/pull/fan/warehouse/lease", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(bare.status().as_u16(), 401);
    let unknown = client
        .post(format!("{}/pull/fan/nowhere/lease", server.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status().as_u16(), 404);
    for (query, named) in [
        ("max=0", "max"),
        ("max=501", "max"),
        ("wait_secs=31", "wait_secs"),
        ("max=x", "max"),
        ("limit=3", "limit"),
    ] {
        let (status, answer) = consumer.call(&format!("/lease?{query}"), None).await;
        assert_eq!(status, 400, "{query}: {answer}");
        assert!(
            answer["error"].as_str().unwrap().contains(named),
            "{answer}"
        );
    }
    for (body, named) in [
        (json!({"lease_tokens": []}), "lease_tokens"),
        (json!({"lease_tokens": ["nonsense"]}), "lease_tokens[0]"),
        (json!({"tokens": ["x"]}), "tokens"),
    ] {
        let (status, answer) = consumer.call("/ack", Some(body)).await;
        assert_eq!(status, 400, "{answer}");
        assert!(
            answer["error"].as_str().unwrap().contains(named),
            "{answer}"
        );
    }
    let (status, answer) = consumer
        .call(
            "/nack",
            Some(json!({"lease_tokens": [tokens["b1"]], "delay_secs": 86401})),
        )
        .await;
    assert_eq!(status, 400, "{answer}");

    // Guessing tokens is limited per address (10 wrong ones a minute by default, three spent
    // above): past it, even the right token is 429 until the minute ends.
    let guesser = Consumer::with_token(&server, "guess");
    let mut wrong = 0;
    let throttled = loop {
        let (status, answer) = guesser.call("/lease", None).await;
        if status == 429 {
            break answer;
        }
        assert_eq!(status, 401, "{answer}");
        wrong += 1;
        assert!(wrong <= 10, "never throttled");
    };
    assert!(throttled["error"]
        .as_str()
        .unwrap()
        .contains("too many failed"));
    assert_eq!(wrong, 7, "three wrong tokens above, seven here");
    let right = client
        .post(format!("{}/pull/fan/warehouse/lease", server.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(right.status().as_u16(), 429);
    let wait: u64 = right.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    drop(server);
    db.drop_db().await;
}
