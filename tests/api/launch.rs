//! Launch-time checks on the real binary: a bad configuration stops it before it serves, with
//! a failing exit status and a log line that names the key to fix. And the in-memory store,
//! which needs no database at all.

use rocket::http::Status;

use crate::support::*;
use idemhook::config::Environment;

/// Starts the binary on `rocket_toml` and `env`, expecting it to refuse: it exits with a
/// failure, and the line it logs for the refusal names `key`.
async fn refuses_naming(rocket_toml: &str, env: &[(&str, &str)], key: &str) {
    let (status, logs) = Server::launch_fails(rocket_toml, env).await;
    assert!(!status.success(), "exit status {status}: {logs:#?}");
    assert!(
        logs.iter()
            .any(|l| l.contains("idemhook cannot start") && l.contains(key)),
        "no line says why with {key:?}: {logs:#?}"
    );
}

#[tokio::test]
async fn a_retention_under_thirty_days_refuses_to_launch() {
    let db = TestDb::create(Backend::Sqlite).await;
    let cfg = config(&db.url, "retention_days = 29");
    refuses_naming(&cfg, &ENV, "idemhook.retention_days").await;
    db.drop_db().await;
}

#[tokio::test]
async fn an_unknown_handler_refuses_to_launch() {
    let db = TestDb::create(Backend::Sqlite).await;
    let cfg = config(&db.url, "").replacen(
        DEMO_HANDLERS,
        r#"handlers = ["inbox", "no_such_handler"]"#,
        1,
    );
    assert!(cfg.contains("no_such_handler"));
    refuses_naming(&cfg, &ENV, "idemhook.sources.demo.handlers").await;
    db.drop_db().await;
}

#[tokio::test]
async fn an_unknown_store_refuses_to_launch() {
    let db = TestDb::create(Backend::Sqlite).await;
    let mut env = ENV.to_vec();
    env.push(("IDEMPOTENCY_STORE", "redis"));
    refuses_naming(&config(&db.url, ""), &env, "IDEMPOTENCY_STORE").await;
    db.drop_db().await;
}

#[tokio::test]
async fn a_signed_source_without_its_secret_refuses_to_launch() {
    let db = TestDb::create(Backend::Sqlite).await;
    let extra = r#"
[default.idemhook.sources.billing]
provider = "stripe"
secret_env = "MISSING_VAR"
"#;
    refuses_naming(&config(&db.url, extra), &ENV, "MISSING_VAR").await;
    db.drop_db().await;
}

/// A generic source with a secret but no header to read a signature from would run unsigned.
#[tokio::test]
async fn a_generic_source_with_a_secret_but_no_signature_header_refuses_to_launch() {
    let db = TestDb::create(Backend::Sqlite).await;
    let extra = r#"
[default.idemhook.sources.partner]
secret_env = "PARTNER_SECRET"
"#;
    let mut env = ENV.to_vec();
    env.push(("PARTNER_SECRET", "a-real-secret"));
    let key = "idemhook.sources.partner.signature_header";
    refuses_naming(&config(&db.url, extra), &env, key).await;
    db.drop_db().await;
}

/// `whsec_` alone decodes to an empty HMAC key, which anyone can sign with.
#[tokio::test]
async fn a_secret_that_decodes_to_nothing_refuses_to_launch() {
    let db = TestDb::create(Backend::Sqlite).await;
    let env: Vec<_> = ENV
        .iter()
        .map(|&(k, v)| (k, if k == "STD_SECRET" { "whsec_" } else { v }))
        .collect();
    refuses_naming(&config(&db.url, ""), &env, "STD_SECRET").await;
    db.drop_db().await;
}

#[tokio::test]
async fn a_bad_database_url_refuses_to_launch() {
    let cfg = config("sqlite:///nonexistent-dir/x.db", "");
    refuses_naming(&cfg, &ENV, "cannot connect to the database").await;
}

/// `IDEMPOTENCY_STORE=in-memory` wins over a configured database: the URL points into an
/// empty directory of this test's own, with `mode=rwc` (SQLite would create the file on
/// connect), and after events are processed and deduplicated the directory is still empty.
#[tokio::test]
async fn the_in_memory_store_processes_and_dedupes() {
    let db = TestDb::create(Backend::Sqlite).await;
    let dir = std::env::temp_dir().join(format!("idemhook_mem_{:016x}", rand::random::<u64>()));
    std::fs::create_dir(&dir).unwrap();
    let mut settings = test_settings(&db);
    settings.database_url = Some(format!("sqlite://{}/x.db?mode=rwc", dir.display()));
    let env = Environment::empty().with("IDEMPOTENCY_STORE", "in-memory");
    let app = TestApp::spawn_with(&settings, env).await.unwrap();
    let body = payment("mem_1", "o", 5);
    let r = app.post("demo", &body, &[]).await;
    assert_eq!((r.status, r.outcome()), (Status::Ok, "processed"));
    assert_eq!(app.post("demo", &body, &[]).await.outcome(), "duplicate");
    let ready = app.get("/health/ready", None).await;
    assert_eq!(ready.status, Status::Ok);
    let created: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        created.is_empty(),
        "the configured database was used: {created:?}"
    );
    drop(app);
    std::fs::remove_dir_all(&dir).unwrap();
    db.drop_db().await;
}

/// Forwarding that could not deliver, or could not sign, refuses to launch, naming the key
/// or the variable: `forward` listed without a URL, a URL that is not http(s), no secret, a
/// secret that decodes to nothing, a forward table that no handler list uses, a filter that
/// cannot mean what it says, a rotation list naming a variable that is not set, and the
/// destinations' own: `forward` named twice, an invalid name, a destination's bad URL.
#[tokio::test]
async fn forwarding_misconfigurations_refuse_to_launch() {
    let db = TestDb::create(Backend::Sqlite).await;
    let source = |handlers: &str, forward: &str| {
        format!(
            "[default.idemhook.sources.app]\nhandlers = {handlers}\n{}",
            if forward.is_empty() {
                String::new()
            } else {
                format!("[default.idemhook.sources.app.forward]\n{forward}\n")
            }
        )
    };
    let good = r#"url = "http://127.0.0.1:9/hooks"
secret_env = "FWD_SECRET""#;
    let cases = [
        (
            source(r#"["forward"]"#, ""),
            "idemhook.sources.app.forward.url",
        ),
        (
            source(r#"["forward"]"#, r#"secret_env = "FWD_SECRET""#),
            "idemhook.sources.app.forward.url",
        ),
        (
            source(r#"["forward"]"#, &good.replace("http://", "ftp://")),
            "idemhook.sources.app.forward.url",
        ),
        (
            source(
                r#"["forward"]"#,
                &good.replace("http://127.0.0.1:9/hooks", "not a url"),
            ),
            "idemhook.sources.app.forward.url",
        ),
        (
            source(r#"["forward"]"#, &good.replace("FWD_SECRET", "NO_SUCH_VAR")),
            "NO_SUCH_VAR",
        ),
        (source(r#"["inbox"]"#, good), "idemhook.sources.app.forward"),
        (
            source(
                r#"["forward"]"#,
                &format!("{good}\ntypes = [\"orders/*\", \"\"]"),
            ),
            "idemhook.sources.app.forward.types holds an empty pattern",
        ),
        (
            source(
                r#"["forward"]"#,
                &format!("{good}\nmatch = {{ \"status\" = \"paid\" }}"),
            ),
            "idemhook.sources.app.forward.match",
        ),
        (
            source(
                r#"["forward"]"#,
                &good.replace(r#""FWD_SECRET""#, r#"["FWD_SECRET", "NO_SUCH_VAR"]"#),
            ),
            "NO_SUCH_VAR",
        ),
        // Fan-out: the name `forward` twice, a name that is not one, a destination's own keys.
        (
            format!(
                "{}[default.idemhook.sources.app.destinations.forward]\n{good}\n",
                source(r#"["forward"]"#, good)
            ),
            "both a forward table and destinations.forward",
        ),
        (
            format!(
                "{}[default.idemhook.sources.app.destinations.\"CRM\"]\n{good}\n",
                source(r#"["forward"]"#, "")
            ),
            "a destination's name is 1 to 64 of a-z",
        ),
        (
            format!(
                "{}[default.idemhook.sources.app.destinations.crm]\n{}\n",
                source(r#"["forward"]"#, ""),
                good.replace("http://", "ftp://")
            ),
            "idemhook.sources.app.destinations.crm.url",
        ),
        (
            format!(
                "{}[default.idemhook.sources.app.destinations.crm]\n{good}\n",
                source(r#"["inbox"]"#, "")
            ),
            "idemhook.sources.app.destinations.crm is set but",
        ),
    ];
    let mut env = ENV.to_vec();
    env.push(("FWD_SECRET", "whsec_Zm9yd2FyZA=="));
    for (extra, key) in &cases {
        refuses_naming(&config(&db.url, extra), &env, key).await;
    }
    let mut empty = ENV.to_vec();
    empty.push(("FWD_SECRET", "whsec_"));
    refuses_naming(
        &config(&db.url, &source(r#"["forward"]"#, good)),
        &empty,
        "FWD_SECRET",
    )
    .await;
    db.drop_db().await;
}
