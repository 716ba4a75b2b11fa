//! The HTTP load generator: N concurrent clients, a share of duplicates, optional signing.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use futures::future::join_all;
use hdrhistogram::Histogram;
use hmac::{Hmac, KeyInit, Mac};
use rand::{Rng, SeedableRng};
use sha2::Sha256;

use crate::measure::{take, MeasureArgs};
use crate::report::{histogram, RunResult};
use crate::scrape::Scrape;
use crate::Provider;

#[derive(clap::Args)]
pub struct HttpArgs {
    /// Base URL of the server.
    #[arg(long, default_value = "http://127.0.0.1:8000")]
    url: String,
    /// Source to post to: `POST <url>/webhooks/<source>`.
    #[arg(long, default_value = "demo")]
    source: String,
    #[command(flatten)]
    measure: MeasureArgs,
    /// Offered load in requests per second over all connections (open loop: requests are
    /// sent on a fixed schedule whatever the answers' speed, as long as a connection is
    /// free). Without it each connection sends its next request as soon as the last is
    /// answered, which measures throughput at saturation, where latency is mostly queueing.
    #[arg(long)]
    rate: Option<f64>,
    /// Percent of requests that redeliver an already-processed event (0, 50, 100…).
    #[arg(long, default_value_t = 0)]
    duplicates: u8,
    /// How requests are signed; the server's source must use the same provider and secret.
    #[arg(long, value_enum, default_value = "generic")]
    provider: Provider,
    /// Signing secret (Stripe: the whsec_… string; Standard: `whsec_<base64>`).
    #[arg(long, env = "BENCH_SECRET")]
    secret: Option<String>,
    /// Distinct orders the payments spread over.
    #[arg(long, default_value_t = 1000)]
    orders: u64,
    /// Events delivered once before the measured phase, which duplicates are drawn from.
    #[arg(long, default_value_t = 1000)]
    pool: u64,
    /// Skip the /metrics check (for the baseline server, which has none).
    #[arg(long)]
    no_check: bool,
    /// Request path instead of /webhooks/<source>.
    #[arg(long)]
    path: Option<String>,
}

/// How to build one delivery of event number `n`.
struct Payloads {
    run: String,
    provider: Provider,
    secret: Vec<u8>,
    orders: u64,
}

impl Payloads {
    fn id(&self, n: u64) -> String {
        format!("evt_{}_{n}", self.run)
    }

    fn request(&self, n: u64) -> (String, Vec<(&'static str, String)>) {
        let id = self.id(n);
        let order = format!("order_{}_{}", self.run, n % self.orders);
        let amount = n % 1000 + 1;
        // The body is a function of `n` alone: a provider's retry resends the same bytes (only
        // the signature header, with its timestamp, is new).
        let created = 1_700_000_000 + n;
        let now = chrono::Utc::now().timestamp().to_string();
        match self.provider {
            Provider::Generic => (
                format!(
                    r#"{{"id":"{id}","type":"payment_succeeded","created":{created},"data":{{"order_id":"{order}","amount":{amount},"currency":"eur","customer":"cus_bench","description":"benchmark payment for idemhook"}}}}"#
                ),
                Vec::new(),
            ),
            Provider::Stripe => {
                let body = format!(
                    r#"{{"id":"{id}","object":"event","type":"payment_intent.succeeded","created":{created},"data":{{"object":{{"id":"pi_{n}","object":"payment_intent","amount_received":{amount},"currency":"usd","metadata":{{"order_id":"{order}"}}}}}}}}"#
                );
                let sig = hex::encode(hmac(&self.secret, &[now.as_bytes(), b".", body.as_bytes()]));
                (
                    body,
                    vec![("Stripe-Signature", format!("t={now},v1={sig}"))],
                )
            }
            Provider::Standard => {
                let body = format!(
                    r#"{{"type":"payment_succeeded","created":{created},"data":{{"order_id":"{order}","amount":{amount},"currency":"eur","customer":"cus_bench"}}}}"#
                );
                let sig = base64::engine::general_purpose::STANDARD.encode(hmac(
                    &self.secret,
                    &[id.as_bytes(), b".", now.as_bytes(), b".", body.as_bytes()],
                ));
                let headers = vec![
                    ("webhook-id", id),
                    ("webhook-timestamp", now),
                    ("webhook-signature", format!("v1,{sig}")),
                ];
                (body, headers)
            }
        }
    }
}

fn hmac(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("any key length");
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().to_vec()
}

/// What the clients saw.
#[derive(Default)]
struct Tally {
    statuses: BTreeMap<String, u64>,
    new_ok: u64,
}

async fn send(
    client: &reqwest::Client,
    url: &str,
    payloads: &Payloads,
    n: u64,
) -> Result<u16, String> {
    let (body, headers) = payloads.request(n);
    let mut req = client.post(url).body(body);
    for (k, v) in headers {
        req = req.header(k, v);
    }
    let resp = req.send().await.map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    // Read the body so the connection can be reused.
    let _ = resp.bytes().await;
    Ok(status)
}

pub async fn run(args: HttpArgs) -> Result<(), String> {
    let secret = match (args.provider, &args.secret) {
        (Provider::Generic, _) => Vec::new(),
        (Provider::Stripe, Some(s)) => s.as_bytes().to_vec(),
        (Provider::Standard, Some(s)) => base64::engine::general_purpose::STANDARD
            .decode(s.trim_start_matches("whsec_"))
            .map_err(|_| "a Standard Webhooks secret is whsec_<base64>".to_owned())?,
        (_, None) => return Err("--secret (or BENCH_SECRET) is required to sign".to_owned()),
    };
    let payloads = Arc::new(Payloads {
        run: format!("{:08x}", rand::random::<u32>()),
        provider: args.provider,
        secret,
        orders: args.orders.max(1),
    });
    let base = args.url.trim_end_matches('/').to_owned();
    let url = match &args.path {
        Some(p) => format!("{base}{p}"),
        None => format!("{base}/webhooks/{}", args.source),
    };
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.measure.concurrency)
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(60))
        .build()
        .map_err(|e| e.to_string())?;
    let check = !args.no_check;
    let before = if check {
        Some(
            Scrape::fetch(&client, &base)
                .await
                .ok_or("cannot read /metrics (use --no-check for a server without it)")?,
        )
    } else {
        None
    };

    // Seed the events that duplicates will redeliver.
    let pool = if args.duplicates > 0 {
        args.pool.max(1)
    } else {
        0
    };
    let next = Arc::new(AtomicU64::new(pool));
    let mut seeded_ok = 0;
    for chunk in (0..pool)
        .collect::<Vec<_>>()
        .chunks(args.measure.concurrency.max(1))
    {
        let sends = chunk.iter().map(|&n| send(&client, &url, &payloads, n));
        for r in join_all(sends).await {
            if r? == 200 {
                seeded_ok += 1;
            }
        }
    }
    let mid = if check {
        Scrape::fetch(&client, &base).await
    } else {
        None
    };

    let duration = args.measure.length();
    let budget = Arc::new(args.measure.budget());
    let rate = match args.rate {
        Some(r) if !(r.is_finite() && r >= 0.001) => {
            return Err("--rate must be a number of requests per second, at least 0.001".into())
        }
        r => r,
    };
    // The open-loop schedule: request k is due at `started + k / rate`.
    let tickets = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.measure.concurrency.max(1) {
        let (client, url, payloads, next, budget, tickets) = (
            client.clone(),
            url.clone(),
            payloads.clone(),
            next.clone(),
            budget.clone(),
            tickets.clone(),
        );
        let dup_percent = u32::from(args.duplicates);
        tasks.push(tokio::spawn(async move {
            let mut h: Histogram<u64> = histogram();
            let mut tally = Tally::default();
            let mut rng = rand::rngs::StdRng::from_entropy();
            loop {
                // When the request counts as sent, for its latency. Paced, a request that is
                // due while every connection is busy counts from when it was due (its wait is
                // part of what a sender would see), but one that waits for its time on the
                // timer counts from when the timer woke it (the timer ticks by the
                // millisecond, and that lateness is the generator's, not the server's).
                let mut sent_at = None;
                if let Some(rate) = rate {
                    let ticket = tickets.fetch_add(1, Ordering::Relaxed);
                    let Ok(due) = Duration::try_from_secs_f64(ticket as f64 / rate) else {
                        break;
                    };
                    if duration.is_some_and(|d| due >= d) {
                        break;
                    }
                    let due_at = started + due;
                    if due_at > Instant::now() {
                        tokio::time::sleep_until(due_at.into()).await;
                    } else {
                        sent_at = Some(due_at);
                    }
                }
                if duration.is_some_and(|d| started.elapsed() >= d) {
                    break;
                }
                if !take(&budget) {
                    break;
                }
                let duplicate = pool > 0 && rng.gen_range(0..100) < dup_percent;
                let n = if duplicate {
                    rng.gen_range(0..pool)
                } else {
                    next.fetch_add(1, Ordering::Relaxed)
                };
                let t = sent_at.unwrap_or_else(Instant::now);
                let status = send(&client, &url, &payloads, n).await;
                let _ = h.record(t.elapsed().as_micros().max(1) as u64);
                let key = match status {
                    Ok(s) => {
                        if s == 200 && !duplicate {
                            tally.new_ok += 1;
                        }
                        s.to_string()
                    }
                    Err(_) => "error".to_owned(),
                };
                *tally.statuses.entry(key).or_default() += 1;
            }
            (h, tally)
        }));
    }
    let mut h = histogram();
    let mut tally = Tally::default();
    for task in tasks {
        let (th, tt) = task.await.map_err(|e| e.to_string())?;
        h.add(&th).map_err(|e| e.to_string())?;
        tally.new_ok += tt.new_ok;
        for (k, v) in tt.statuses {
            *tally.statuses.entry(k).or_default() += v;
        }
    }
    let elapsed = started.elapsed();

    let label = args.measure.label.clone().unwrap_or_else(|| url.clone());
    let mut result = RunResult::new("http", &label, args.measure.concurrency, elapsed, &h);
    result.duplicates_percent = args.duplicates;
    result.offered_rate = rate;
    result.status_counts = tally.statuses;
    if let (Some(before), Some(mid)) = (before, mid) {
        // Give the server a moment to settle responses already written, then count.
        let after = Scrape::fetch(&client, &base)
            .await
            .ok_or("cannot read /metrics")?;
        let key = |m: &str| format!("idemhook_events_{m}_total{{source=\"{}\"}}", args.source);
        let processed = (after.get(&key("processed")) - before.get(&key("processed"))) as u64;
        let duplicates = (after.get(&key("duplicate")) - mid.get(&key("duplicate"))) as u64;
        let sent = seeded_ok + tally.new_ok;
        result.new_events_sent = Some(sent);
        result.server_processed = Some(processed);
        result.server_duplicates = Some(duplicates);
        result.consistent = processed == sent;
        result.server_check_p99_hit_ms = after.check_quantile_ms(&mid, "hit", 0.99);
        result.server_check_p99_miss_ms = after.check_quantile_ms(&mid, "miss", 0.99);
    }
    result.print();
    result.save(args.measure.json.as_deref())?;
    if result.consistent {
        Ok(())
    } else {
        Err("the server's processed count differs from the new events it accepted".to_owned())
    }
}
