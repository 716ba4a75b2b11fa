//! What the logs must never hold, checked on the real binary at `RUST_LOG=debug`: a signing
//! secret, the admin token or a payload, whether the request was valid, forged, malformed or
//! an admin call.

use hmac::{Hmac, KeyInit, Mac};

use crate::support::*;

/// Logs at debug level, through valid and invalid signed deliveries and admin calls, never
/// contain a secret, the admin token or a payload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_never_contain_secrets_tokens_or_payloads() {
    let db = TestDb::create(Backend::Sqlite).await;
    let mut env = ENV.to_vec();
    env.push(("IDEMHOOK_ADMIN_TOKEN", "ADMIN_TOKEN_do_not_log_42"));
    env.push(("RUST_LOG", "debug"));
    let mut server = Server::start(&config(&db.url, ""), &env).await;
    let client = reqwest::Client::new();
    let body = r#"{"id":"evt_log","type":"payment_intent.succeeded","data":{"object":{"amount_received":5,"currency":"usd","metadata":{"order_id":"PAYLOAD_MARKER_order"}}},"card":"PAYLOAD_MARKER_4242"}"#;
    let t = chrono::Utc::now().timestamp().to_string();
    let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(ENV[1].1.as_bytes()).unwrap();
    mac.update(format!("{t}.{body}").as_bytes());
    let good = format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(
        post(
            &client,
            &server,
            "stripe",
            body,
            &[("Stripe-Signature", &good)]
        )
        .await
        .0,
        200
    );
    assert_eq!(
        post(
            &client,
            &server,
            "stripe",
            body,
            &[("Stripe-Signature", "t=1,v1=00")]
        )
        .await
        .0,
        401
    );
    assert_eq!(
        post(&client, &server, "demo", "PAYLOAD_MARKER_not_json", &[])
            .await
            .0,
        400
    );
    // A refused admin call and an answered one (the order the signed payment paid into).
    for (token, expected) in [("wrong", 401), ("ADMIN_TOKEN_do_not_log_42", 200)] {
        let status = client
            .get(format!("{}/orders/PAYLOAD_MARKER_order", server.base))
            .bearer_auth(token)
            .send()
            .await
            .map_or(0, |r| r.status().as_u16());
        assert_eq!(status, expected, "admin call with token {token:?}");
    }
    // Every line the process writes, up to its exit (shutdown included).
    drop(client);
    server.signal("TERM");
    let status = server.wait().await;
    assert!(status.success(), "exit status {status}");
    let logs = server.logs();
    assert!(logs.len() > 5, "expected debug logs: {logs:#?}");
    for secret in [
        "TOPSECRET",
        "ADMIN_TOKEN_do_not_log",
        "PAYLOAD_MARKER_4242",
        "PAYLOAD_MARKER_not_json",
        "c3RhbmRhcmQtd2ViaG9va3Mt",
    ] {
        let leaks: Vec<_> = logs.iter().filter(|l| l.contains(secret)).collect();
        assert!(
            leaks.is_empty(),
            "{secret} leaked into the logs: {leaks:#?}"
        );
    }
    db.drop_db().await;
}

/// A database URL's credentials, in the user info or in a query parameter that sqlx reads
/// (`?password=`), never reach the log: the launch line shows the URL with them redacted.
/// PostgreSQL only: its test server trusts local connections, so any password is accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(idemhook_test_postgres),
    ignore = "no database server: set IDEMHOOK_TEST_POSTGRES_URL"
)]
async fn database_credentials_never_reach_the_log() {
    let db = TestDb::create(Backend::Postgres).await;
    let url = db
        .url
        .replacen("://postgres@", "://postgres:USERINFO_PW_42@", 1)
        + "?password=QUERY_PW_42&sslmode=disable";
    assert!(url.contains("USERINFO_PW_42") && url.contains("QUERY_PW_42"));
    let mut server = Server::start(&config(&url, ""), &ENV).await;
    server.signal("TERM");
    assert!(server.wait().await.success());
    let logs = server.logs();
    assert!(
        logs.iter()
            .any(|l| l.contains("database ready") && l.contains("password=***")),
        "{logs:#?}"
    );
    let leaks: Vec<_> = logs.iter().filter(|l| l.contains("_PW_42")).collect();
    assert!(leaks.is_empty(), "credentials leaked: {leaks:#?}");
    db.drop_db().await;
}
