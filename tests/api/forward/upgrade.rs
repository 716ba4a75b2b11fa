//! The upgrade to fan-out, in place: a database the release before it migrated, with
//! deliveries pending, dead and delivered in its outbox, takes the fan-out migration at launch
//! (a destination column defaulting to `forward`, an event digest column left empty for the
//! old rows, a new claim index). The forward table's configuration is unchanged; every
//! pending row is delivered with the key it always had, and the operator sees each row, and
//! one an older instance still writes after the migration, as the `forward` destination's.

use chrono::Utc;
use idemhook::event::key::EventKey;
use migration::{Migrator, MigratorTrait};
use sea_orm::sea_query::{Alias, Query};
use sea_orm::ConnectionTrait;

use crate::support::*;

on_every_backend!(pending_deliveries_from_before_fan_out_are_delivered_after_the_upgrade);

/// Migrations the release before fan-out shipped.
const BEFORE_FAN_OUT: u32 = 11;

/// An outbox row as the release before fan-out wrote it (no destination, no event digest).
async fn old_row(conn: &impl ConnectionTrait, id: &str, status: &str) -> String {
    let key = EventKey::new("fwd", "payment_succeeded".into(), id.into()).unwrap();
    let now = Utc::now();
    let body = payment(id, &format!("order_{id}"), 100);
    let insert = Query::insert()
        .into_table(Alias::new("deliveries"))
        .columns(
            [
                "key_digest",
                "source",
                "event_type",
                "event_id",
                "content_type",
                "payload",
                "status",
                "attempts",
                "next_attempt_at",
                "created_at",
            ]
            .map(Alias::new),
        )
        .values_panic([
            key.digest().to_vec().into(),
            "fwd".into(),
            "payment_succeeded".into(),
            id.into(),
            "application/json".into(),
            body.as_bytes().to_vec().into(),
            status.into(),
            0i32.into(),
            now.into(),
            now.into(),
        ])
        .to_owned();
    let backend = conn.get_database_backend();
    conn.execute_raw(backend.build(&insert))
        .await
        .expect("a row of the release before fan-out");
    format!("ih_{}", hex::encode(key.digest()))
}

async fn pending_deliveries_from_before_fan_out_are_delivered_after_the_upgrade(backend: Backend) {
    let db = TestDb::create(backend).await;
    let conn = db.connect().await;
    Migrator::up(&conn, Some(BEFORE_FAN_OUT))
        .await
        .expect("the schema before fan-out");
    let mut keys = Vec::new();
    for id in ["old_1", "old_2", "old_3"] {
        keys.push(old_row(&conn, id, "pending").await);
    }
    old_row(&conn, "old_dead", "dead").await;
    old_row(&conn, "old_done", "delivered").await;
    let app = Receiver::start().await;
    // The new binary, the forward table as it was: it migrates at launch and delivers.
    let server = start(&fwd_config(&db.url, &app.url(), "")).await;
    assert_eq!(
        Migrator::get_pending_migrations(&conn).await.unwrap().len(),
        0
    );
    let old_1 = keys[0].clone();
    let mut delivered = app.wait_for_delivered(3, 30).await;
    delivered.sort();
    keys.sort();
    assert_eq!(delivered, keys, "the keys they always had");
    for r in app.received() {
        assert_eq!(r.header("idemhook-destination"), "forward");
        let id = r.header("idemhook-event-id");
        assert_eq!(
            r.body,
            payment(id, &format!("order_{id}"), 100).into_bytes()
        );
    }
    let ops = Ops::new(&server);
    let view = ops.wait_for_delivery("old_1", "delivered", 30).await;
    assert_eq!(view["deliveries"][0]["destination"], "forward", "{view}");
    assert_eq!(view["delivery"]["idempotency_key"], old_1, "{view}");
    // The dead row is the forward destination's, redeliverable with its old key.
    let (status, body) = ops
        .post("/webhooks/fwd/events/old_dead/redeliver?type=payment_succeeded&destination=forward")
        .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["destinations"]["forward"], "scheduled", "{body}");
    app.wait_for_delivered(4, 30).await;
    // An instance of the release before, still running during a rolling upgrade, writes a
    // row without the event's digest: it is adopted, delivered, and found by its event.
    old_row(&conn, "old_late", "pending").await;
    app.wait_for_delivered(5, 30).await;
    let view = ops.wait_for_delivery("old_late", "delivered", 30).await;
    assert_eq!(view["deliveries"][0]["destination"], "forward", "{view}");
    // A new event beside them: the same key rule for the forward destination.
    let client = reqwest::Client::new();
    let (status, text, _) = post(&client, &server, "fwd", &payment("new_1", "o_new", 5), &[]).await;
    assert_eq!(status, 200, "{text}");
    app.wait_for_delivered(6, 30).await;
    assert_eq!(app.received().len(), 6, "old_done was not sent again");
    drop(server);
    db.drop_db().await;
}
