//! `idemhook-bench`: measures idemhook, and beside it the two limits it cannot beat (or can
//! only beat by batching): the database doing the same transactions with no HTTP, and a bare
//! Rocket route doing no work. Only ratios taken in one run on one machine mean anything.
//!
//! ```text
//! idemhook-bench http     --url http://127.0.0.1:8000 --source demo -c 16 --duration 10 --duplicates 50
//! idemhook-bench db-limit --database-url postgres://… -c 16 --duration 10
//! idemhook-bench baseline-server --port 8001      # then `http` against it with --expect-processed none
//! idemhook-bench nats publish --n 100000 --in-flight 32   # the broker's own rate (bench/forward.sh)
//! ```
//!
//! Every mode prints a short table and, with `--json FILE`, writes its result as JSON.

mod baseline;
mod db_limit;
mod load;
mod measure;
mod nats;
mod report;
mod scrape;
mod summary;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand)]
enum Mode {
    /// Drive a running idemhook (or the baseline server) over HTTP.
    Http(load::HttpArgs),
    /// The same database work as one new payment event, with no HTTP and no idemhook.
    DbLimit(db_limit::DbArgs),
    /// Serve a bare Rocket route that reads and parses the body and answers 200.
    BaselineServer(baseline::BaselineArgs),
    /// Print a directory of results as one table, with the ratios.
    Summarize(summary::SummaryArgs),
    /// The NATS JetStream side of `bench/forward.sh` with `KIND=nats`.
    Nats(nats::NatsArgs),
}

#[derive(Clone, Copy, Debug, ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    Generic,
    Stripe,
    Standard,
}

fn main() -> Result<(), String> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    match cli.mode {
        Mode::Http(args) => runtime.block_on(load::run(args)),
        Mode::DbLimit(args) => runtime.block_on(db_limit::run(args)),
        Mode::BaselineServer(args) => runtime.block_on(baseline::serve(args)),
        Mode::Summarize(args) => summary::run(args),
        Mode::Nats(args) => runtime.block_on(nats::run(args)),
    }
}
