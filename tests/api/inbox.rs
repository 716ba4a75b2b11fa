//! Inbox ids follow insert order, not commit order: the transaction holding id N can commit
//! after the one holding N+1. A consumer that tails `id > last seen` misses N; the lagged
//! cursor documented in docs/handlers.md ("Reading the inbox") reads it. On the servers, where two
//! transactions insert at once.

use chrono::{Duration, Utc};
use idemhook::entities::inbox;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder,
    TransactionTrait,
};

use crate::support::*;

on_server_backends!(a_late_commit_is_missed_by_a_naive_tail_and_read_by_a_lagged_cursor);

fn row(id: &str) -> inbox::ActiveModel {
    let key = idemhook::event::key::EventKey::new("demo", "t".into(), id.into()).unwrap();
    inbox::ActiveModel {
        key_digest: Set(key.digest().to_vec()),
        source: Set(key.source.clone()),
        event_type: Set(key.event_type.clone()),
        event_id: Set(key.event_id.clone()),
        payload: Set(b"{}".to_vec()),
        received_at: Set(Utc::now()),
        ..Default::default()
    }
}

/// The rows after `cursor`, in id order.
async fn after(db: &DatabaseConnection, cursor: i64) -> Vec<inbox::Model> {
    inbox::Entity::find()
        .filter(inbox::Column::Id.gt(cursor))
        .order_by_asc(inbox::Column::Id)
        .all(db)
        .await
        .unwrap()
}

/// The lagged cursor: past rows older than `lag` only.
async fn lagged_cursor(db: &DatabaseConnection, cursor: i64, lag: Duration) -> i64 {
    inbox::Entity::find()
        .filter(inbox::Column::Id.gt(cursor))
        .filter(inbox::Column::ReceivedAt.lt(Utc::now() - lag))
        .all(db)
        .await
        .unwrap()
        .iter()
        .map(|r| r.id)
        .max()
        .unwrap_or(cursor)
}

async fn a_late_commit_is_missed_by_a_naive_tail_and_read_by_a_lagged_cursor(backend: Backend) {
    let db = TestDb::create(backend).await;
    let _app = TestApp::spawn(&test_settings(&db)).await; // migrates the schema
    let conn = db.connect().await;
    let writer_a = db.connect().await;
    let writer_b = db.connect().await;
    // A takes id N and stays open; B takes N+1 and commits first.
    let txn_a = writer_a.begin().await.unwrap();
    inbox::Entity::insert(row("late"))
        .exec_without_returning(&txn_a)
        .await
        .unwrap();
    let txn_b = writer_b.begin().await.unwrap();
    inbox::Entity::insert(row("early"))
        .exec_without_returning(&txn_b)
        .await
        .unwrap();
    txn_b.commit().await.unwrap();

    // Both consumers read what is visible: only N+1.
    let first = after(&conn, 0).await;
    assert_eq!(
        first
            .iter()
            .map(|r| r.event_id.as_str())
            .collect::<Vec<_>>(),
        ["early"]
    );
    let naive_cursor = first.last().unwrap().id;
    let lag = Duration::minutes(2);
    let cursor = lagged_cursor(&conn, 0, lag).await;
    assert_eq!(cursor, 0, "nothing is older than the lag yet");

    txn_a.commit().await.unwrap();
    let naive: Vec<_> = after(&conn, naive_cursor).await;
    assert!(
        naive.is_empty(),
        "the naive tail never sees the late row: {naive:?}"
    );
    let lagged: Vec<_> = after(&conn, cursor)
        .await
        .into_iter()
        .map(|r| r.event_id)
        .collect();
    assert!(lagged.contains(&"late".to_owned()), "{lagged:?}");
    db.drop_db().await;
}
