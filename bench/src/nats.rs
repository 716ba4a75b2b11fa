//! `idemhook-bench nats`: the NATS JetStream side of the forwarding benchmark
//! (`bench/forward.sh` with `KIND=nats`): make the stream afresh, count what it holds, and
//! publish with a plain async-nats client as fast as the broker takes it, `in_flight`
//! publishes awaiting their acks at once (as idemhook's `concurrency` slots do), each with
//! its own `Nats-Msg-Id`: the broker's own rate beside idemhook's.

use std::time::{Duration, Instant};

use async_nats::jetstream::{self, stream};
use futures::StreamExt as _;

#[derive(clap::Args)]
pub struct NatsArgs {
    #[arg(long, default_value = "nats://127.0.0.1:4222")]
    url: String,
    #[arg(long, default_value = "BENCH")]
    stream: String,
    #[command(subcommand)]
    action: Action,
}

#[derive(clap::Subcommand)]
enum Action {
    /// Delete the stream if it exists and create it capturing `subjects`.
    Reset {
        #[arg(long, default_value = "bench.>")]
        subjects: String,
    },
    /// Print how many messages the stream holds.
    Count,
    /// Publish `n` messages of `body_bytes` to `bench.baseline.*`, `in_flight` at a time.
    Publish {
        #[arg(long, default_value_t = 100_000)]
        n: u64,
        #[arg(long, default_value_t = 32)]
        in_flight: usize,
        #[arg(long, default_value_t = 200)]
        body_bytes: usize,
    },
}

pub async fn run(args: NatsArgs) -> Result<(), String> {
    let client = async_nats::connect(&args.url)
        .await
        .map_err(|e| format!("cannot connect to {}: {e}", args.url))?;
    let js = jetstream::new(client);
    match args.action {
        Action::Reset { subjects } => {
            let _ = js.delete_stream(&args.stream).await;
            let config = stream::Config {
                name: args.stream.clone(),
                subjects: vec![subjects],
                duplicate_window: Duration::from_secs(120),
                ..Default::default()
            };
            js.create_stream(config).await.map_err(|e| e.to_string())?;
        }
        Action::Count => {
            let mut stream = js
                .get_stream(&args.stream)
                .await
                .map_err(|e| e.to_string())?;
            let info = stream.info().await.map_err(|e| e.to_string())?;
            println!("{}", info.state.messages);
        }
        Action::Publish {
            n,
            in_flight,
            body_bytes,
        } => {
            let body = bytes_of(body_bytes);
            let start = Instant::now();
            let published = futures::stream::iter(0..n)
                .map(|i| {
                    let (js, body) = (js.clone(), body.clone());
                    async move {
                        let mut headers = async_nats::HeaderMap::new();
                        headers.insert("Nats-Msg-Id", format!("baseline-{i}").as_str());
                        let subject = format!("bench.baseline.{}", i % 5);
                        let ack = js
                            .publish_with_headers(subject, headers, body.into())
                            .await
                            .map_err(|e| e.to_string())?;
                        ack.await.map(|_| ()).map_err(|e| e.to_string())
                    }
                })
                .buffer_unordered(in_flight)
                .filter(|r| futures::future::ready(r.is_ok()))
                .count()
                .await;
            let secs = start.elapsed().as_secs_f64();
            println!(
                "plain async-nats publisher: {published} of {n} acked in {secs:.1} s: {:.0} messages/s ({in_flight} in flight)",
                published as f64 / secs
            );
        }
    }
    Ok(())
}

/// A JSON body of about `n` bytes.
fn bytes_of(n: usize) -> Vec<u8> {
    let pad = "x".repeat(n.saturating_sub(30));
    format!("{{\"type\":\"baseline\",\"pad\":\"{pad}\"}}").into_bytes()
}
