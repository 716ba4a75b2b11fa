//! The database's own limit: the transaction a new payment event costs idemhook (insert the
//! dedupe row, insert the payment, add to the order), as plain SQL from N concurrent
//! connections, with no HTTP, no actors and no ORM entities.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use migration::{Migrator, MigratorTrait};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseBackend, DatabaseConnection, DbErr,
    Statement, TransactionTrait, Value,
};

use crate::measure::{take, MeasureArgs};
use crate::report::{histogram, RunResult};

#[derive(clap::Args)]
pub struct DbArgs {
    /// The database (migrated on start); use a scratch database.
    #[arg(long, env = "DATABASE_URL")]
    database_url: String,
    #[command(flatten)]
    measure: MeasureArgs,
    #[arg(long, default_value_t = 1000)]
    orders: u64,
}

struct Sql {
    dedupe: &'static str,
    payment: &'static str,
    order: &'static str,
}

fn sql(backend: DatabaseBackend) -> Sql {
    match backend {
        DatabaseBackend::Postgres => Sql {
            dedupe: "INSERT INTO processed_events (key_digest, source, event_type, event_id, payload_sha256, received_at, processed_at) VALUES ($1, $2, $3, $4, $5, $6, $6)",
            payment: "INSERT INTO payments (order_id, key_digest, amount, currency, created_at) VALUES ($1, $2, $3, 'eur', $4)",
            order: "INSERT INTO orders (order_id, status, amount_paid, currency, created_at, updated_at) VALUES ($1, 'paid', $2, 'eur', $3, $3) ON CONFLICT (order_id) DO UPDATE SET amount_paid = orders.amount_paid + excluded.amount_paid, updated_at = excluded.updated_at",
        },
        DatabaseBackend::MySql => Sql {
            dedupe: "INSERT INTO processed_events (key_digest, source, event_type, event_id, payload_sha256, received_at, processed_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            payment: "INSERT INTO payments (order_id, key_digest, amount, currency, created_at) VALUES (?, ?, ?, 'eur', ?)",
            order: "INSERT INTO orders (order_id, status, amount_paid, currency, created_at, updated_at) VALUES (?, 'paid', ?, 'eur', ?, ?) ON DUPLICATE KEY UPDATE amount_paid = amount_paid + VALUES(amount_paid), updated_at = VALUES(updated_at)",
        },
        _ => Sql {
            dedupe: "INSERT INTO processed_events (key_digest, source, event_type, event_id, payload_sha256, received_at, processed_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            payment: "INSERT INTO payments (order_id, key_digest, amount, currency, created_at) VALUES (?, ?, ?, 'eur', ?)",
            order: "INSERT INTO orders (order_id, status, amount_paid, currency, created_at, updated_at) VALUES (?, 'paid', ?, 'eur', ?, ?) ON CONFLICT (order_id) DO UPDATE SET amount_paid = orders.amount_paid + excluded.amount_paid, updated_at = excluded.updated_at",
        },
    }
}

async fn one_event(
    db: &DatabaseConnection,
    sql: &Sql,
    run: &str,
    n: u64,
    orders: u64,
) -> Result<(), DbErr> {
    let backend = db.get_database_backend();
    let now = chrono::Utc::now();
    let digest: Vec<u8> = (0..32).map(|_| rand::random::<u8>()).collect();
    let order = format!("order_{run}_{}", n % orders);
    let amount = (n % 1000 + 1) as i64;
    let pg = backend == DatabaseBackend::Postgres;
    let stmt = |sql: &str, values: Vec<Value>| Statement::from_sql_and_values(backend, sql, values);
    let txn = db.begin().await?;
    let mut dedupe: Vec<Value> = vec![
        digest.clone().into(),
        "bench".into(),
        "payment_succeeded".into(),
        format!("evt_{run}_{n}").into(),
        digest.clone().into(),
        now.into(),
    ];
    if !pg {
        dedupe.push(now.into());
    }
    txn.execute_raw(stmt(sql.dedupe, dedupe)).await?;
    txn.execute_raw(stmt(
        sql.payment,
        vec![
            order.clone().into(),
            digest.into(),
            amount.into(),
            now.into(),
        ],
    ))
    .await?;
    let mut upsert: Vec<Value> = vec![order.into(), amount.into(), now.into()];
    if !pg {
        upsert.push(now.into());
    }
    txn.execute_raw(stmt(sql.order, upsert)).await?;
    txn.commit().await
}

pub async fn run(args: DbArgs) -> Result<(), String> {
    let mut opts = ConnectOptions::new(args.database_url.clone());
    opts.max_connections(args.measure.concurrency as u32)
        .sqlx_logging(false);
    if args.database_url.starts_with("sqlite:") {
        opts.map_sqlx_sqlite_opts(|o| {
            o.journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(5))
        });
    }
    let db = Database::connect(opts).await.map_err(|e| e.to_string())?;
    Migrator::up(&db, None).await.map_err(|e| e.to_string())?;
    let backend = db.get_database_backend();
    let run = format!("{:08x}", rand::random::<u32>());
    let next = Arc::new(AtomicU64::new(0));
    let budget = Arc::new(args.measure.budget());
    let duration = args.measure.length();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.measure.concurrency.max(1) {
        let (db, next, budget, run) = (db.clone(), next.clone(), budget.clone(), run.clone());
        let orders = args.orders.max(1);
        tasks.push(tokio::spawn(async move {
            let sql = sql(backend);
            let mut h = histogram();
            let mut statuses: BTreeMap<String, u64> = BTreeMap::new();
            loop {
                if duration.is_some_and(|d| started.elapsed() >= d) || !take(&budget) {
                    break;
                }
                let n = next.fetch_add(1, Ordering::Relaxed);
                let t = Instant::now();
                let outcome = one_event(&db, &sql, &run, n, orders).await;
                let _ = h.record(t.elapsed().as_micros().max(1) as u64);
                let key = if outcome.is_ok() {
                    "committed"
                } else {
                    "error"
                };
                *statuses.entry(key.to_owned()).or_default() += 1;
            }
            (h, statuses)
        }));
    }
    let mut h = histogram();
    let mut statuses: BTreeMap<String, u64> = BTreeMap::new();
    for task in tasks {
        let (th, ts) = task.await.map_err(|e| e.to_string())?;
        h.add(&th).map_err(|e| e.to_string())?;
        for (k, v) in ts {
            *statuses.entry(k).or_default() += v;
        }
    }
    let elapsed = started.elapsed();
    let label = args
        .measure
        .label
        .clone()
        .unwrap_or_else(|| format!("{backend:?}"));
    let mut result = RunResult::new("db-limit", &label, args.measure.concurrency, elapsed, &h);
    // Throughput counts committed transactions only.
    let committed = statuses.get("committed").copied().unwrap_or(0);
    result.throughput_per_sec = committed as f64 / elapsed.as_secs_f64();
    result.status_counts = statuses;
    result.print();
    result.save(args.measure.json.as_deref())
}
