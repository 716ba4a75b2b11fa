//! `summarize DIR`: the matrix of a `bench/run.sh` run as one markdown table, with the two
//! ratios the project is judged by: new events against the database limit, duplicates
//! against bare Rocket, each at the same concurrency and from the same run.

use std::path::PathBuf;

use serde::Deserialize;

#[derive(clap::Args)]
pub struct SummaryArgs {
    /// Directory of result JSON files written by `bench/run.sh`.
    dir: PathBuf,
}

#[derive(Deserialize)]
struct Row {
    mode: String,
    target: String,
    concurrency: usize,
    duplicates_percent: u8,
    throughput_per_sec: f64,
    latency: Latency,
    server_check_p99_hit_ms: Option<f64>,
    server_check_p99_miss_ms: Option<f64>,
    consistent: bool,
    status_counts: std::collections::BTreeMap<String, u64>,
}

#[derive(Deserialize)]
struct Latency {
    p50_ms: f64,
    p99_ms: f64,
    p999_ms: f64,
}

pub fn run(args: SummaryArgs) -> Result<(), String> {
    let mut rows = Vec::new();
    let entries =
        std::fs::read_dir(&args.dir).map_err(|e| format!("{}: {e}", args.dir.display()))?;
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "json") {
            let text = std::fs::read_to_string(&path).map_err(|e| e.to_string())?;
            let row: Row =
                serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
            rows.push(row);
        }
    }
    rows.sort_by(|a, b| {
        (&a.target, a.concurrency, a.duplicates_percent).cmp(&(
            &b.target,
            b.concurrency,
            b.duplicates_percent,
        ))
    });
    // target label convention from run.sh: "<what> <db>", e.g. "idemhook postgres", and
    // "bare-rocket postgres" for the bare Rocket run taken next to that database's cells.
    let find = |what: &str, db: &str, c: usize| {
        rows.iter()
            .find(|r| r.target == format!("{what} {db}").trim() && r.concurrency == c)
            .map(|r| r.throughput_per_sec)
    };
    println!("| run | conc. | dup % | req/s | p50 ms | p99 ms | p99.9 ms | check p99 hit / miss ms | ratio | statuses |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for r in &rows {
        let db = r.target.split_whitespace().nth(1).unwrap_or("");
        let ratio = if r.mode == "http" && r.target.starts_with("idemhook") {
            match r.duplicates_percent {
                0 => find("db-limit", db, r.concurrency)
                    .map(|l| format!("{:.2}× db-limit", r.throughput_per_sec / l)),
                100 => find("bare-rocket", db, r.concurrency)
                    .map(|l| format!("{:.2}× bare Rocket", r.throughput_per_sec / l)),
                _ => None,
            }
        } else {
            None
        };
        let check = match (r.server_check_p99_hit_ms, r.server_check_p99_miss_ms) {
            (None, None) => "-".to_owned(),
            (h, m) => format!(
                "{} / {}",
                h.map_or("-".into(), |v| format!("≤{v}")),
                m.map_or("-".into(), |v| format!("≤{v}"))
            ),
        };
        println!(
            "| {}{} | {} | {} | {:.0} | {:.3} | {:.3} | {:.3} | {} | {} | {:?} |",
            r.target,
            if r.consistent { "" } else { " (INCONSISTENT)" },
            r.concurrency,
            r.duplicates_percent,
            r.throughput_per_sec,
            r.latency.p50_ms,
            r.latency.p99_ms,
            r.latency.p999_ms,
            check,
            ratio.unwrap_or_default(),
            r.status_counts,
        );
    }
    Ok(())
}
