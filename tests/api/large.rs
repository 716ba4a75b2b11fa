//! Large bodies at the door. A source's body limit is what its provider may send: GitHub caps
//! payloads at 25 MB and never retries a refused delivery, so a `github` source accepts
//! 25 MiB, within what the database can store in one statement (MariaDB's
//! `max_allowed_packet`, 16 MiB by default: there the limit is lowered, with a warning). A
//! body at the limit is processed, stored, shown and replayable; one byte more is a 413 that
//! names the limit, and a GitHub delivery refused so is logged with its GUID.

use rocket::http::Status;
use sea_orm::EntityTrait;

use crate::support::*;

on_every_backend!(a_github_body_at_its_limit_is_processed_stored_and_replayable);

const MIB: usize = 1024 * 1024;
/// What a statement carries beside a body (`providers::body_limit::STATEMENT_OVERHEAD`).
const STATEMENT_OVERHEAD: usize = 64 * 1024;

/// A GitHub `push` payload of exactly `len` bytes: commits with long messages, as a push of
/// many commits (or one with a huge message) sends.
fn push_body(len: usize) -> String {
    let head = r#"{"ref":"refs/heads/main","before":"6113728f27ae82c7b1a177c8d03f9e96e0adf246","after":"76ae82c7b1a177c8d03f9e96e0adf2466113728f","repository":{"id":1296269,"full_name":"octocat/Hello-World"},"pusher":{"name":"octocat"},"commits":["#;
    let commit = |message: &str| {
        format!(
            r#"{{"id":"76ae82c7b1a177c8d03f9e96e0adf2466113728f","message":"{message}","author":{{"name":"Monalisa Octocat","email":"octocat@github.com"}},"added":[],"removed":[],"modified":["README.md"]}}"#
        )
    };
    let mut body = String::with_capacity(len);
    body.push_str(head);
    let line = "Fix the build. ".repeat(64);
    let tail = "]}";
    let full = commit(&line);
    while body.len() + full.len() + 1 + commit("").len() + tail.len() < len {
        body.push_str(&full);
        body.push(',');
    }
    let last = len - body.len() - commit("").len() - tail.len();
    body.push_str(&commit(&"x".repeat(last)));
    body.push_str(tail);
    assert_eq!(body.len(), len);
    body
}

/// The body limit a `github` source has on `db`: 25 MiB, or less where one statement cannot
/// carry it.
async fn github_limit(db: &TestDb) -> usize {
    if db.backend != Backend::MySql {
        return 25 * MIB;
    }
    let row = query_row(&db.connect().await, "SELECT @@max_allowed_packet").await;
    let packet: u64 = row.try_get_by_index(0).unwrap();
    (25 * MIB).min(usize::try_from(packet).unwrap() - STATEMENT_OVERHEAD)
}

async fn a_github_body_at_its_limit_is_processed_stored_and_replayable(backend: Backend) {
    let db = TestDb::create(backend).await;
    let env = admin_env();
    let app = TestApp::spawn_with(&test_settings(&db), env).await.unwrap();
    let limit = github_limit(&db).await;

    let over = push_body(limit + 1);
    let sig = github_signature(&over);
    let r = app
        .post("github", &over, &github_headers(&sig, "big-0", "push"))
        .await;
    assert_eq!(r.status, Status::PayloadTooLarge, "{:?}", r.status);
    assert!(
        r.error().contains(&limit.to_string()) && r.error().contains("github"),
        "{r:?}"
    );
    drop(over);

    let body = push_body(limit);
    let sig = github_signature(&body);
    let r = app
        .post("github", &body, &github_headers(&sig, "big-1", "push"))
        .await;
    assert_eq!((r.status, r.outcome()), (Status::Ok, "processed"), "{r:?}");
    let conn = db.connect().await;
    let first = inbox_row(&conn, &body).await;

    let view = app
        .get("/webhooks/github/events/big-1?type=push", Some(ADMIN_TOKEN))
        .await;
    assert_eq!(view.status, Status::Ok);
    assert_eq!(view.json["payload"].as_str().map(str::len), Some(limit));
    assert_eq!(view.json["payload_from"], "inbox");

    let r = app
        .post_admin(
            "/webhooks/github/events/big-1/replay?type=push&force=true",
            Some(ADMIN_TOKEN),
        )
        .await;
    assert_eq!(r.status, Status::Ok, "{:?}", r.json["error"]);
    // Run again: the inbox's row is replaced by the replay's, holding the same bytes.
    let replayed = inbox_row(&conn, &body).await;
    assert_ne!(replayed, first, "the replay wrote no new inbox row");
    db.drop_db().await;
}

/// The id of the inbox's one row, which must hold `body` exactly.
async fn inbox_row(conn: &sea_orm::DatabaseConnection, body: &str) -> i64 {
    let stored = idemhook::entities::inbox::Entity::find()
        .all(conn)
        .await
        .unwrap();
    assert_eq!(stored.len(), 1);
    assert!(stored[0].payload == body.as_bytes());
    stored[0].id
}

/// On MariaDB's default packet (16 MiB), the real binary warns at launch that the `github`
/// source's 25 MiB cannot be stored, naming both figures, and lowers the limit; a delivery
/// over it is a 413, logged at warn with its `X-GitHub-Delivery` GUID (GitHub will not retry
/// it; an operator redelivers it by that GUID).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(idemhook_test_mysql),
    ignore = "no database server: set IDEMHOOK_TEST_MYSQL_URL"
)]
async fn mariadb_lowers_githubs_limit_with_a_warning_and_refusals_log_the_guid() {
    let db = TestDb::create(Backend::MySql).await;
    let limit = github_limit(&db).await;
    assert!(
        limit < 25 * MIB,
        "this server stores 25 MiB: nothing to lower"
    );
    let extra = r#"
[default.idemhook.sources.github]
provider = "github"
secret_env = "GH_SECRET"
"#;
    let mut env = ENV.to_vec();
    env.push(("GH_SECRET", GITHUB_SECRET));
    let mut server = Server::start(&config(&db.url, extra), &env).await;
    let warning = server.wait_for_log("max_allowed_packet").await;
    assert!(
        warning.contains(&(25 * MIB).to_string()) && warning.contains(&limit.to_string()),
        "{warning}"
    );
    let body = push_body(limit + 1);
    let sig = github_signature(&body);
    let client = reqwest::Client::new();
    let guid = "72d3162e-cc78-11e3-81ab-4c9367dc0958";
    let (status, answer, _) = post(
        &client,
        &server,
        "github",
        &body,
        &github_headers(&sig, guid, "push"),
    )
    .await;
    assert_eq!(status, 413, "{answer}");
    assert!(answer.contains(&limit.to_string()), "{answer}");
    let line = server.wait_for_log("does not retry").await;
    assert!(line.contains(guid), "{line}");
    db.drop_db().await;
}
