//! Retention: the sweeper deletes delivered rows past the inbox retention and dead rows past
//! the retention, and never a pending one, however old. A destination no longer configured
//! keeps every row while it has pending ones: until an operator discards them.

use chrono::{TimeDelta, Utc};
use idemhook::entities::delivery;
use idemhook::status::DeliveryStatus::{Dead, Delivered, Pending};
use sea_orm::{ActiveValue::NotSet, ActiveValue::Set, EntityTrait};

use crate::support::*;

on_every_backend!(the_sweeper_keeps_pending_deliveries_and_drops_settled_old_ones);

async fn the_sweeper_keeps_pending_deliveries_and_drops_settled_old_ones(backend: Backend) {
    let db = TestDb::create(backend).await;
    let mut settings = test_settings(&db);
    settings.inbox_retention_days = 7;
    let app = TestApp::spawn(&settings).await;
    let conn = db.connect().await;
    let days = |d: i64| Utc::now() - TimeDelta::days(d);
    let inbox_days = i64::from(settings.inbox_retention_days);
    let retention = i64::from(settings.retention_days);
    let rows = [
        (Delivered, days(inbox_days + 1)), // swept
        (Delivered, days(inbox_days - 1)), // kept
        (Dead, days(inbox_days + 1)),      // kept: dead rows stay for the retention
        (Dead, days(retention + 1)),       // swept
        (Pending, days(retention + 100)),  // kept: never swept
    ];
    for (i, (status, created)) in rows.iter().enumerate() {
        let row = delivery::ActiveModel {
            id: NotSet,
            key_digest: Set(vec![i as u8; 32]),
            source: Set("fwd".into()),
            destination: Set("forward".into()),
            event_digest: Set(Some(vec![i as u8; 32])),
            event_type: Set("t".into()),
            event_id: Set(format!("e{i}")),
            content_type: Set(None),
            payload: Set(b"{}".to_vec()),
            ordering_key: Set(None),
            status: Set(*status),
            attempts: Set(1),
            next_attempt_at: Set(*created),
            lease_until: Set(None),
            lease_token: Set(None),
            last_status: Set(None),
            last_error: Set(None),
            created_at: Set(*created),
            round: Set(0),
            delivered_at: Set(None),
            traceparent: Set(None),
        };
        delivery::Entity::insert(row).exec(&conn).await.unwrap();
    }
    let left = || async {
        let mut left: Vec<String> = delivery::Entity::find()
            .all(&conn)
            .await
            .unwrap()
            .into_iter()
            .map(|d| d.event_id)
            .collect();
        left.sort();
        left
    };
    // `fwd` forwards nowhere in these settings: its destination was removed, and it still has
    // a pending row. Nothing of it goes.
    let report = app.sweeper().sweep_once().await.unwrap();
    assert_eq!(report.deliveries, 0);
    assert_eq!(left().await, ["e0", "e1", "e2", "e3", "e4"]);
    // An operator discards the pending one (dead now, and as old as it was): then the
    // retention applies as to any destination's rows.
    let discarded = idemhook::forward::deliveries::discard(&conn, ("fwd", "forward"), Utc::now());
    assert_eq!(discarded.await.unwrap(), 1);
    let report = app.sweeper().sweep_once().await.unwrap();
    assert_eq!(report.deliveries, 3);
    assert_eq!(left().await, ["e1", "e2"]);
    drop(app);
    db.drop_db().await;
}
