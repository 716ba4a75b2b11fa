//! The plans of the worker's statements: what the database reads for them, on each backend,
//! as the indexes of the deliveries table mean it to.

use chrono::Utc;
use sea_orm::{ConnectionTrait, QueryTrait, Statement};

use crate::support::*;

on_every_backend!(the_claim_reads_the_index_of_pending_rows);

/// The claim names its pending state in the SQL text, so PostgreSQL and SQLite can use the
/// partial index `WHERE status = 'pending'` (a bound parameter never implies a predicate);
/// MariaDB, which has no partial indexes, keeps its `(source, destination, status, …)` index. The plan of
/// the statement the worker sends, on each backend (PostgreSQL with sequential scans off, so
/// that an empty table does not hide the choice, and its generic plan).
async fn the_claim_reads_the_index_of_pending_rows(backend: Backend) {
    let db = TestDb::create(backend).await;
    let conn = db.connect().await;
    idemhook::db::migrate(&db.url, &conn).await.unwrap();
    let db_backend = conn.get_database_backend();
    let due = idemhook::forward::deliveries::candidates(
        db_backend,
        ("fwd", "billing"),
        16,
        Utc::now(),
        idemhook::forward::deliveries::Brakes::Respect,
    )
    .build(db_backend);
    // The claim's own index, and the ordering check's (partial on keyed rows where the
    // backend has partial indexes, migration `m20261210_000001`).
    let (explain, wanted) = match backend {
        Backend::Sqlite => (
            "EXPLAIN QUERY PLAN",
            [
                "idx_deliveries_due_destination",
                "idx_deliveries_ordering_keyed",
            ],
        ),
        Backend::Postgres => (
            "EXPLAIN EXECUTE",
            [
                "idx_deliveries_due_destination",
                "idx_deliveries_ordering_keyed",
            ],
        ),
        Backend::MySql => (
            "EXPLAIN",
            ["idx_deliveries_due_destination", "idx_deliveries_ordering"],
        ),
    };
    let txn = sea_orm::TransactionTrait::begin(&conn).await.unwrap();
    let values = due.values.map(|v| v.0).unwrap_or_default();
    let rows = if backend == Backend::Postgres {
        // A named prepared statement under its generic plan, which a connection may switch to
        // after five executions: planned without the parameters' values, so only a predicate
        // written in the SQL text can select the partial index.
        use sea_orm::sea_query::{PostgresQueryBuilder, QueryBuilder};
        for setting in [
            "enable_seqscan = off",
            "plan_cache_mode = force_generic_plan",
        ] {
            txn.execute_unprepared(&format!("SET LOCAL {setting}"))
                .await
                .unwrap();
        }
        txn.execute_unprepared(&format!("PREPARE due AS {}", due.sql))
            .await
            .unwrap();
        let args: Vec<String> = values
            .iter()
            .map(|v| PostgresQueryBuilder.value_to_string(v))
            .collect();
        txn.query_all_raw(Statement::from_string(
            db_backend,
            format!("EXPLAIN EXECUTE due({})", args.join(", ")),
        ))
        .await
        .unwrap()
    } else {
        txn.query_all_raw(Statement::from_sql_and_values(
            db_backend,
            format!("{explain} {}", due.sql),
            values,
        ))
        .await
        .unwrap()
    };
    // The access path of each plan line: PostgreSQL's one column, SQLite's `detail`, MySQL's
    // `key` (the outer query first, then the ordering check's subquery).
    let plan: Vec<String> = match backend {
        Backend::Sqlite => rows
            .iter()
            .map(|r| r.try_get::<String>("", "detail").unwrap())
            .collect(),
        Backend::Postgres => rows
            .iter()
            .map(|r| r.try_get_by_index::<String>(0).unwrap())
            .collect(),
        Backend::MySql => rows
            .iter()
            .map(|r| {
                r.try_get::<Option<String>>("", "key")
                    .unwrap()
                    .unwrap_or_default()
            })
            .collect(),
    };
    assert!(
        plan.first()
            .is_some_and(|line| backend != Backend::MySql || line == wanted[0]),
        "MySQL's claim does not read {}:\n{}",
        wanted[0],
        plan.join("\n")
    );
    for index in wanted {
        assert!(
            plan.iter().any(|line| line.contains(index)),
            "the claim does not read {index}:\n{}\n{}",
            due.sql,
            plan.join("\n")
        );
    }
    drop(txn);
    db.drop_db().await;
}
