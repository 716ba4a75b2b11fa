//! Upgrades in place: a database that the previous release migrated and filled with live
//! dedupe records takes the new migrations (new columns, one with a default, a unique index
//! over the existing rows, a new table) on every backend, and its records keep answering
//! `duplicate`.

use chrono::Utc;
use idemhook::entities::processed_event;
use idemhook::event::key::{legacy_signed_key, sha256, EventKey};
use idemhook::status::EventStatus;
use migration::{Migrator, MigratorTrait};
use rocket::http::Status;
use sea_orm::{ActiveValue::Set, EntityTrait, NotSet};

use crate::support::*;

on_every_backend!(
    a_database_of_the_previous_release_migrates_in_place,
    signed_bytes_applied_by_the_previous_release_stay_refused,
);

/// Migrations the previous release shipped (before the signed-bytes key).
const PREVIOUS_RELEASE_MIGRATIONS: u32 = 2;
/// Migrations of the release before the signed-bytes key counted the event type.
const UNTYPED_SIGNED_KEY_MIGRATIONS: u32 = 8;

async fn a_database_of_the_previous_release_migrates_in_place(backend: Backend) {
    let db = TestDb::create(backend).await;
    let conn = db.connect().await;
    Migrator::up(&conn, Some(PREVIOUS_RELEASE_MIGRATIONS))
        .await
        .expect("the previous release's schema");
    // Records as the previous release wrote them: no signed key, status or reason yet.
    let bodies: Vec<String> = (0..3)
        .map(|i| payment(&format!("old_{i}"), "order_old", 5))
        .collect();
    for (i, body) in bodies.iter().enumerate() {
        let key = EventKey::new("demo", "payment_succeeded".into(), format!("old_{i}")).unwrap();
        let row = processed_event::ActiveModel {
            key_digest: Set(key.digest().to_vec()),
            source: Set(key.source.clone()),
            event_type: Set(key.event_type.clone()),
            event_id: Set(key.event_id.clone()),
            payload_sha256: Set(sha256(body.as_bytes()).to_vec()),
            legacy_signed_key: NotSet,
            typed_signed_key: NotSet,
            status: NotSet,
            reason: NotSet,
            attempt_token: NotSet,
            mismatches: NotSet,
            last_mismatch_sha256: NotSet,
            last_mismatch_at: NotSet,
            received_at: Set(Utc::now()),
            processed_at: Set(Utc::now()),
        };
        processed_event::Entity::insert(row)
            .exec_without_returning(&conn)
            .await
            .expect("a record of the previous release");
    }
    // The new release launches on it: its migrations run at launch.
    let app = TestApp::spawn(&test_settings(&db)).await;
    assert_eq!(
        Migrator::get_pending_migrations(&conn).await.unwrap().len(),
        0
    );
    for body in &bodies {
        let r = app.post("demo", body, &[]).await;
        assert_eq!((r.status, r.outcome()), (Status::Ok, "duplicate"), "{r:?}");
    }
    assert_eq!(amount_paid(&conn, "order_old").await, None);
    // New records beside the old ones; the unique index holds many NULLs (unsigned sources).
    for i in 0..2 {
        let r = app
            .post("demo", &payment(&format!("new_{i}"), "order_new", 3), &[])
            .await;
        assert_eq!(r.outcome(), "processed", "{r:?}");
    }
    assert_eq!(rows(&conn).await.processed, 5);
    assert_eq!(amount_paid(&conn, "order_new").await, Some(6));
    db.drop_db().await;
}

/// The release before this one keyed signed bytes by (source, bytes), without the type, in
/// `signed_key`. After the upgrade, a replay of bytes it applied, under a new id and the same
/// type, is still a duplicate, including for a record it writes while both releases run
/// side by side; the same bytes under another type are a new event, as under the new rule.
async fn signed_bytes_applied_by_the_previous_release_stay_refused(backend: Backend) {
    let db = TestDb::create(backend).await;
    let conn = db.connect().await;
    Migrator::up(&conn, Some(UNTYPED_SIGNED_KEY_MIGRATIONS))
        .await
        .expect("the previous release's schema");
    let old_record = |id: &str, body: &str| {
        let key = EventKey::new("github", "payment_succeeded".into(), id.into()).unwrap();
        let signed = sha256(body.as_bytes());
        processed_event::ActiveModel {
            key_digest: Set(key.digest().to_vec()),
            source: Set(key.source.clone()),
            event_type: Set(key.event_type.clone()),
            event_id: Set(key.event_id.clone()),
            payload_sha256: Set(signed.to_vec()),
            // GitHub signs the body alone: the signed bytes are the body.
            legacy_signed_key: Set(Some(legacy_signed_key("github", &signed).to_vec())),
            typed_signed_key: NotSet,
            status: Set(EventStatus::Processed),
            reason: Set(None),
            attempt_token: Set(None),
            mismatches: NotSet,
            last_mismatch_sha256: NotSet,
            last_mismatch_at: NotSet,
            received_at: Set(Utc::now()),
            processed_at: Set(Utc::now()),
        }
    };
    let before = payment("gh_old", "order_up", 11);
    processed_event::Entity::insert(old_record("d-old", &before))
        .exec_without_returning(&conn)
        .await
        .expect("a record of the previous release");

    let app = TestApp::spawn(&test_settings(&db)).await;
    // Written by an instance of the previous release still running during the deploy.
    let during = payment("gh_during", "order_up", 13);
    let row = old_record("d-during", &during);
    processed_event::Entity::insert(row)
        .exec_without_returning(&conn)
        .await
        .expect("a record of the previous release's instance");
    for (body, id) in [(&before, "d-new-1"), (&during, "d-new-2")] {
        let sig = github_signature(body);
        let r = app
            .post(
                "github",
                body,
                &github_headers(&sig, id, "payment_succeeded"),
            )
            .await;
        assert_eq!((r.status, r.outcome()), (Status::Ok, "duplicate"), "{r:?}");
        let r = app
            .post("github", body, &github_headers(&sig, id, "refund"))
            .await;
        assert_eq!((r.status, r.outcome()), (Status::Ok, "processed"), "{r:?}");
    }
    assert_eq!(amount_paid(&conn, "order_up").await, None);
    assert_eq!(rows(&conn).await.processed, 4);
    db.drop_db().await;
}
