//! Launch-time checks: a bad configuration fails the launch with a message naming the key;
//! the in-memory store works without any database server.

use rocket::http::Status;

use crate::helpers::*;
use idemhook::config::Environment;

#[tokio::test]
async fn a_retention_under_thirty_days_refuses_to_launch() {
    let db = TestDb::create(Backend::Sqlite).await.unwrap();
    let mut settings = test_settings(&db);
    settings.retention_days = 29;
    assert!(TestApp::spawn_with(&settings, Environment::empty())
        .await
        .is_err());
    db.drop_db().await;
}

#[tokio::test]
async fn an_unknown_handler_or_store_refuses_to_launch() {
    let db = TestDb::create(Backend::Sqlite).await.unwrap();
    let mut settings = test_settings(&db);
    settings.sources.get_mut("demo").unwrap().handlers = vec!["nope".into()];
    assert!(TestApp::spawn_with(&settings, Environment::empty())
        .await
        .is_err());
    let settings = test_settings(&db);
    let env = Environment::empty().with("IDEMPOTENCY_STORE", "redis");
    assert!(TestApp::spawn_with(&settings, env).await.is_err());
    db.drop_db().await;
}

#[tokio::test]
async fn a_bad_database_url_refuses_to_launch() {
    let db = TestDb::create(Backend::Sqlite).await.unwrap();
    let mut settings = test_settings(&db);
    settings.database_url = Some("sqlite:///nonexistent-dir/x.db".into());
    assert!(TestApp::spawn_with(&settings, Environment::empty())
        .await
        .is_err());
    db.drop_db().await;
}

#[tokio::test]
async fn the_in_memory_store_processes_and_dedupes() {
    let db = TestDb::create(Backend::Sqlite).await.unwrap();
    let mut settings = test_settings(&db);
    settings.database_url = Some("sqlite:///nonexistent-dir/x.db".into());
    let env = Environment::empty().with("IDEMPOTENCY_STORE", "in-memory");
    let app = TestApp::spawn_with(&settings, env).await.unwrap();
    let body = payment("mem_1", "o", 5);
    let r = app.post("demo", &body, &[]).await;
    assert_eq!((r.status, r.outcome()), (Status::Ok, "processed"));
    assert_eq!(app.post("demo", &body, &[]).await.outcome(), "duplicate");
    assert!(!std::path::Path::new("/nonexistent-dir/x.db").exists());
    let ready = app.get("/health/ready", None).await;
    assert_eq!(ready.status, Status::Ok);
    db.drop_db().await;
}
