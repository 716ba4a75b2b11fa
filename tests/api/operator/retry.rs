//! A job's batch that fails is tried again from where the job stands, not left for its lease
//! (30 s) to run out. Only servers lock rows; on SQLite the same failure is a batch's
//! read-then-write transaction losing its lock upgrade to another writer, which
//! `jobs_started_while_others_run_are_all_accepted` meets under load.

use sea_orm::{ConnectionTrait, TransactionTrait};

use crate::support::*;

on_server_backends!(a_redrive_batch_that_meets_a_locked_row_goes_on_once_it_is_free);

/// Three dead deliveries, every one of their rows held by another connection when a redrive
/// job starts: its batch runs out of lock wait and says so in `last_error`, the job stays
/// running, and once the rows are free it reschedules all three and they are delivered.
async fn a_redrive_batch_that_meets_a_locked_row_goes_on_once_it_is_free(backend: Backend) {
    let db = TestDb::create(backend).await;
    let app = Receiver::start().await;
    app.answer(Answer::Status(502));
    let cfg = fwd_config(&db.url, &app.url(), "max_attempts = 1").replace(
        "forward_poll_ms = 50",
        "forward_poll_ms = 50\nlock_timeout_ms = 300",
    );
    let server = start(&cfg).await;
    let ops = Ops::new(&server);
    ops.dead_deliveries("l", 3).await;
    app.answer(Answer::Ok);

    let conn = db.connect().await;
    let holder = conn.begin().await.unwrap();
    holder
        .execute_unprepared("SELECT * FROM deliveries FOR UPDATE")
        .await
        .unwrap();
    let (status, job) = ops.post("/deliveries/redrive?source=fwd").await;
    assert_eq!((status, job["matched"].clone()), (202, 3.into()), "{job}");
    let id = job["id"].as_i64().unwrap();
    let seen = ops
        .job_until(id, "never failed", |job| !job["last_error"].is_null())
        .await;
    assert_eq!(seen["status"], "running", "{seen}");
    assert!(
        !seen["last_error"].is_null(),
        "the batch never failed: {seen}"
    );
    assert_eq!(seen["done"], 0, "{seen}");

    holder.rollback().await.unwrap();
    let job = ops.finished(id).await;
    assert_eq!(
        (
            job["status"].clone(),
            job["done"].clone(),
            job["skipped"].clone()
        ),
        ("done".into(), 3.into(), 0.into()),
        "{job}"
    );
    ops.await_count("&status=delivered", 3).await;
    drop(server);
    db.drop_db().await;
}
