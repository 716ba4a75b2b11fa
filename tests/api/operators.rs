//! Named operators with roles, and the limits on guessing their tokens: through the app
//! (Rocket's local client, each request given the peer address it came from).

use std::net::SocketAddr;
use std::sync::atomic::Ordering;

use rocket::http::{ContentType, Cookie, Header, Status};
use rocket::local::asynchronous::LocalResponse;
use sea_orm::ConnectionTrait;
use serde_json::Value;

use crate::support::*;
use idemhook::config::{Environment, OperatorConfig, Role, SecretEnv};

on_every_backend!(
    each_operator_acts_in_their_role_and_is_named_by_their_token,
    wrong_tokens_are_limited_per_address_and_a_proxy_is_believed_only_when_trusted,
);

const EVENT: &str = "/webhooks/demo/events/evt_op?type=payment_succeeded";

fn operator(vars: &[&str], role: Role) -> OperatorConfig {
    OperatorConfig {
        token_env: SecretEnv::Many(vars.iter().map(|v| (*v).to_owned()).collect()),
        role,
    }
}

struct Answer {
    status: Status,
    retry_after: Option<String>,
    location: Option<String>,
    cookie: Option<String>,
    body: String,
}

impl Answer {
    async fn of(r: LocalResponse<'_>) -> Answer {
        Answer {
            status: r.status(),
            retry_after: r.headers().get_one("Retry-After").map(str::to_owned),
            location: r.headers().get_one("Location").map(str::to_owned),
            cookie: r
                .headers()
                .get_one("Set-Cookie")
                .and_then(|c| c.split(';').next())
                .map(str::to_owned),
            body: r.into_string().await.unwrap_or_default(),
        }
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

fn addr(ip: &str) -> SocketAddr {
    format!("{ip}:40000").parse().unwrap()
}

/// `GET`/`POST path` from `from`, with a bearer token, a cookie and headers.
async fn call(
    app: &TestApp,
    post: bool,
    path: &str,
    from: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
) -> Answer {
    let mut req = if post {
        app.client.post(path.to_owned())
    } else {
        app.client.get(path.to_owned())
    }
    .remote(addr(from));
    if let Some(token) = token {
        req = req.header(Header::new("Authorization", format!("Bearer {token}")));
    }
    for (k, v) in headers {
        req = match (*k, v.split_once('=')) {
            // The local client reads cookies from its own jar, not from a header.
            ("Cookie", Some((name, value))) => {
                req.cookie(Cookie::new(name.to_owned(), value.to_owned()))
            }
            _ => req.header(Header::new(k.to_string(), v.to_string())),
        };
    }
    Answer::of(req.dispatch().await).await
}

async fn sign_in(app: &TestApp, from: &str, token: &str) -> Answer {
    let req = app
        .client
        .post("/console/login")
        .remote(addr(from))
        .header(ContentType::Form)
        .body(format!("token={token}"));
    Answer::of(req.dispatch().await).await
}

/// alice (operate, two tokens while one is rotated) and bob (read), and no
/// `IDEMHOOK_ADMIN_TOKEN`: the operators alone open the admin API. Each token names its
/// operator; bob reads and is refused (403) every change, through the API and the console,
/// which shows him no button; what alice does is recorded under her name, whatever the
/// `Idemhook-Operator` header says.
async fn each_operator_acts_in_their_role_and_is_named_by_their_token(backend: Backend) {
    let db = TestDb::create(backend).await;
    let mut settings = test_settings(&db);
    settings.operators.insert(
        "alice".into(),
        operator(&["ALICE_NEW", "ALICE_OLD"], Role::Operate),
    );
    settings
        .operators
        .insert("bob".into(), operator(&["BOB"], Role::Read));
    let env = Environment::empty()
        .with("ALICE_NEW", "alice-new-token")
        .with("ALICE_OLD", "alice-old-token")
        .with("BOB", "bob-token");
    let app = TestApp::spawn_with(&settings, env).await.unwrap();
    let ip = "203.0.113.20";
    assert_eq!(
        app.post("demo", &payment("evt_op", "o1", 5), &[])
            .await
            .outcome(),
        "processed"
    );

    // bob reads…
    for path in [EVENT, "/events", "/destinations", "/orders/o1"] {
        let r = call(&app, false, path, ip, Some("bob-token"), &[]).await;
        assert_eq!(r.status, Status::Ok, "{path}: {}", r.body);
    }
    // … and changes nothing.
    let replay = format!("{EVENT}&force=true").replace("?type", "/replay?type");
    for path in [
        replay.as_str(),
        "/webhooks/demo/events/evt_op/redeliver?type=payment_succeeded",
        "/events/replay?source=demo",
        "/deliveries/redrive",
        "/destinations/demo/x/pause",
        "/destinations/demo/x/resume",
        "/destinations/demo/x/discard",
    ] {
        let r = call(&app, true, path, ip, Some("bob-token"), &[]).await;
        assert_eq!(r.status, Status::Forbidden, "{path}: {}", r.body);
        assert!(
            r.json()["error"]
                .as_str()
                .unwrap()
                .contains("operator \"bob\" has role read"),
            "{}",
            r.body
        );
    }
    // alice, with the token being rotated out, replays; she is the one recorded.
    let r = call(
        &app,
        true,
        &replay,
        ip,
        Some("alice-old-token"),
        &[("Idemhook-Operator", "bob")],
    )
    .await;
    assert_eq!(r.status, Status::Ok, "{}", r.body);
    assert_eq!(r.json()["operator"], "alice");
    let view = call(&app, false, EVENT, ip, Some("alice-new-token"), &[]).await;
    let replays = view.json()["replays"].clone();
    assert_eq!(replays.as_array().unwrap().len(), 1, "{replays}");
    assert_eq!(replays[0]["operator"], "alice");
    // A token of nobody's.
    let r = call(&app, false, "/events", ip, Some("carol-token"), &[]).await;
    assert_eq!(r.status, Status::Unauthorized);

    // The console: who is signed in, and only the buttons that would work.
    let page = "/console/events/demo/evt_op?type=payment_succeeded";
    for (token, who, buttons) in [
        ("bob-token", "bob (read)", false),
        ("alice-new-token", "alice (operate)", true),
    ] {
        let signed = sign_in(&app, ip, token).await;
        assert_eq!(signed.status, Status::SeeOther, "{}", signed.body);
        assert_eq!(signed.location.as_deref(), Some("/console"));
        let cookie = signed.cookie.expect("a session cookie");
        let seen = call(&app, false, page, ip, None, &[("Cookie", &cookie)]).await;
        assert_eq!(seen.status, Status::Ok);
        assert!(seen.body.contains(who), "{who}: {}", seen.body);
        assert_eq!(seen.body.contains("id=\"replay\""), buttons, "{who}");
        let destinations = call(
            &app,
            false,
            "/console/destinations",
            ip,
            None,
            &[("Cookie", &cookie)],
        )
        .await;
        assert_eq!(destinations.status, Status::Ok);
        if !buttons {
            // bob's session with its CSRF token still cannot change anything.
            let csrf = seen
                .body
                .split("name=\"csrf-token\" content=\"")
                .nth(1)
                .unwrap();
            let csrf = &csrf[..csrf.find('"').unwrap()];
            let r = call(
                &app,
                true,
                &replay,
                ip,
                None,
                &[("Cookie", &cookie), ("X-CSRF-Token", csrf)],
            )
            .await;
            assert_eq!(r.status, Status::Forbidden, "{}", r.body);
        }
    }
    let r = sign_in(&app, ip, "carol-token").await;
    assert_eq!(r.status, Status::Unauthorized);
    // alice again, refused: the event is processed and this is not forced.
    let unforced = replay.replace("&force=true", "");
    let r = call(&app, true, &unforced, ip, Some("alice-new-token"), &[]).await;
    assert_eq!(r.status, Status::Conflict, "{}", r.body);

    // A change and its row commit together: a replay whose handler fails again leaves no
    // replay and no `ok` row, only the refusal's; once the handler works, both.
    app.faults.fail.store(true, Ordering::SeqCst);
    let r = app.post("flaky", &payment("evt_flaky", "o2", 1), &[]).await;
    assert_eq!(r.status, Status::InternalServerError);
    let flaky = "/webhooks/flaky/events/evt_flaky/replay?type=payment_succeeded";
    let r = call(&app, true, flaky, ip, Some("alice-new-token"), &[]).await;
    assert_eq!(r.status, Status::UnprocessableEntity, "{}", r.body);
    let view = "/webhooks/flaky/events/evt_flaky?type=payment_succeeded";
    let v = call(&app, false, view, ip, Some("alice-new-token"), &[])
        .await
        .json();
    assert_eq!(v["replays"], serde_json::json!([]), "{v}");
    app.faults.fail.store(false, Ordering::SeqCst);
    let r = call(&app, true, flaky, ip, Some("alice-new-token"), &[]).await;
    assert_eq!(r.status, Status::Ok, "{}", r.body);
    let v = call(&app, false, view, ip, Some("alice-new-token"), &[])
        .await
        .json();
    assert_eq!(v["replays"].as_array().unwrap().len(), 1, "{v}");

    // The audit, read by bob (read): newest first.
    let audit = call(&app, false, "/audit?limit=500", ip, Some("bob-token"), &[]).await;
    assert_eq!(audit.status, Status::Ok, "{}", audit.body);
    let entries = audit.json()["entries"].as_array().unwrap().clone();
    let seen: Vec<(String, String, String)> = entries
        .iter()
        .rev()
        .map(|e| {
            (
                e["operator"].as_str().unwrap_or("-").to_owned(),
                e["action"].as_str().unwrap().to_owned(),
                e["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let t = |o: &str, a: &str, r: &str| (o.to_owned(), a.to_owned(), r.to_owned());
    assert_eq!(
        seen,
        [
            t("bob", "forced_replay", "forbidden"),
            t("bob", "redeliver", "forbidden"),
            t("bob", "replay_job", "forbidden"),
            t("bob", "redrive_job", "forbidden"),
            t("bob", "pause", "forbidden"),
            t("bob", "resume", "forbidden"),
            t("bob", "discard", "forbidden"),
            t("alice", "forced_replay", "ok"),
            t("bob", "sign_in", "ok"),
            t("bob", "forced_replay", "forbidden"),
            t("alice", "sign_in", "ok"),
            t("alice", "replay", "conflict"),
            t("alice", "replay", "not_applied"),
            t("alice", "replay", "ok"),
        ],
        "{entries:#?}"
    );
    let forced = entries
        .iter()
        .find(|e| e["action"] == "forced_replay" && e["outcome"] == "ok")
        .unwrap();
    assert_eq!(forced["role"], "operate");
    assert_eq!(forced["on_behalf_of"], "bob", "the note, beside the name");
    assert_eq!(forced["client"], ip);
    assert_eq!(forced["target"], "demo/evt_op");
    assert_eq!(forced["count"], 1);
    // Filters and pages.
    let only = call(
        &app,
        false,
        "/audit?operator=alice&action=sign_in",
        ip,
        Some("bob-token"),
        &[],
    )
    .await;
    assert_eq!(
        only.json()["entries"].as_array().unwrap().len(),
        1,
        "{}",
        only.body
    );
    let first = call(&app, false, "/audit?limit=4", ip, Some("bob-token"), &[])
        .await
        .json();
    let cursor = first["next_cursor"].as_str().unwrap().to_owned();
    let next = call(
        &app,
        false,
        &format!("/audit?limit=4&cursor={cursor}"),
        ip,
        Some("bob-token"),
        &[],
    )
    .await
    .json();
    assert_eq!(next["entries"][0]["id"], entries[4]["id"], "{next}");
    for bad in [
        "/audit?actor=bob",
        "/audit?action=delete",
        "/audit?cursor=zz",
    ] {
        let r = call(&app, false, bad, ip, Some("bob-token"), &[]).await;
        assert_eq!(r.status, Status::BadRequest, "{bad}");
    }
    // The console's page of it, and a sign-out, audited too.
    let cookie = sign_in(&app, ip, "bob-token").await.cookie.unwrap();
    let page = call(
        &app,
        false,
        "/console/audit?action=pause",
        ip,
        None,
        &[("Cookie", &cookie)],
    )
    .await;
    assert_eq!(page.status, Status::Ok);
    assert!(
        page.body.contains("id=\"audit\"") && page.body.contains("forbidden"),
        "{}",
        page.body
    );
    let csrf = page
        .body
        .split("name=\"csrf-token\" content=\"")
        .nth(1)
        .unwrap();
    let csrf = &csrf[..csrf.find('"').unwrap()];
    let out = app
        .client
        .post("/console/logout")
        .remote(addr(ip))
        .cookie(Cookie::new(
            "idemhook_session",
            cookie.split_once('=').unwrap().1.to_owned(),
        ))
        .header(ContentType::Form)
        .body(format!("csrf={csrf}"))
        .dispatch()
        .await;
    assert_eq!(out.status(), Status::SeeOther);
    drop(out);
    let latest = call(&app, false, "/audit?limit=1", ip, Some("bob-token"), &[])
        .await
        .json();
    assert_eq!(latest["entries"][0]["action"], "sign_out", "{latest}");
    assert_eq!(latest["entries"][0]["operator"], "bob");

    // Kept audit_retention_days (365 by default): a row a year and a day old is swept.
    let conn = db.connect().await;
    let old = (chrono::Utc::now() - chrono::TimeDelta::days(366)).format("%Y-%m-%d %H:%M:%S");
    execute(
        &conn,
        &format!(
            "INSERT INTO audit (at, operator, role, action, target, params, outcome, count) \
             VALUES ('{old}', 'alice', 'operate', 'pause', 'x', '{{}}', 'ok', 1)"
        ),
    )
    .await;
    let report = app.sweeper().sweep_once().await.unwrap();
    assert_eq!(report.audit, 1);
    let left = call(&app, false, "/audit?limit=500", ip, Some("bob-token"), &[]).await;
    // The rows read above, bob's second sign-in and his sign-out; not the swept one.
    assert_eq!(
        left.json()["entries"].as_array().unwrap().len(),
        entries.len() + 2
    );
    drop(app);
    db.drop_db().await;
}

/// `failures_per_minute = 3`, proxies in 10.0.0.0/8 trusted. An address that sent three
/// wrong tokens is answered 429 with `Retry-After`, even with the right token and on the
/// console's sign-in; another address is not slowed; a request with no token is no failure.
/// Behind a trusted proxy the client is the rightmost untrusted hop of `X-Forwarded-For`; from
/// anyone else the header is ignored, so rotating it gains nothing.
async fn wrong_tokens_are_limited_per_address_and_a_proxy_is_believed_only_when_trusted(
    backend: Backend,
) {
    let db = TestDb::create(backend).await;
    let mut settings = test_settings(&db);
    settings.auth.failures_per_minute = 3;
    settings.auth.trusted_proxies = vec!["10.0.0.0/8".into()];
    let app = TestApp::spawn_with(
        &settings,
        Environment::empty().with("IDEMHOOK_ADMIN_TOKEN", "s3cret"),
    )
    .await
    .unwrap();
    let get = |from: &'static str, token: Option<&'static str>, xff: Option<&'static str>| {
        let app = &app;
        async move {
            let headers: Vec<(&str, &str)> = xff
                .map(|x| vec![("X-Forwarded-For", x)])
                .unwrap_or_default();
            call(app, false, "/events", from, token, &headers).await
        }
    };
    // No token at all, ten times: never a failure.
    for _ in 0..10 {
        assert_eq!(
            get("203.0.113.3", None, None).await.status,
            Status::Unauthorized
        );
    }
    assert_eq!(
        get("203.0.113.3", Some("s3cret"), None).await.status,
        Status::Ok
    );
    // Three wrong tokens; then even the right one is refused, with when to come back.
    for _ in 0..3 {
        assert_eq!(
            get("203.0.113.1", Some("guess"), None).await.status,
            Status::Unauthorized
        );
    }
    let r = get("203.0.113.1", Some("s3cret"), None).await;
    assert_eq!(r.status, Status::TooManyRequests, "{}", r.body);
    let wait: u32 = r.retry_after.as_deref().unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    assert!(r.json()["error"]
        .as_str()
        .unwrap()
        .contains("too many failed"));
    let r = sign_in(&app, "203.0.113.1", "s3cret").await;
    assert_eq!(r.status, Status::TooManyRequests);
    assert!(r.retry_after.is_some());
    // Another address is not slowed.
    assert_eq!(
        get("203.0.113.2", Some("s3cret"), None).await.status,
        Status::Ok
    );

    // Through a trusted proxy: the hop it appended is the client, not what the client wrote.
    let r = get("10.0.0.5", Some("s3cret"), Some("203.0.113.1")).await;
    assert_eq!(
        r.status,
        Status::TooManyRequests,
        "the same client through the proxy"
    );
    for _ in 0..3 {
        let r = get("10.0.0.5", Some("guess"), Some("6.6.6.6, 203.0.113.4")).await;
        assert_eq!(r.status, Status::Unauthorized);
    }
    let r = get(
        "10.0.0.5",
        Some("s3cret"),
        Some("7.7.7.7, 203.0.113.4, 10.0.0.9"),
    )
    .await;
    assert_eq!(r.status, Status::TooManyRequests);
    let r = get("203.0.113.4", Some("s3cret"), None).await;
    assert_eq!(r.status, Status::TooManyRequests, "the same client, direct");
    let r = get("10.0.0.5", Some("s3cret"), Some("203.0.113.5")).await;
    assert_eq!(
        r.status,
        Status::Ok,
        "the proxy's other clients are not slowed"
    );

    // Not a proxy: the header it writes is ignored, rotating it gains nothing.
    for fake in ["1.1.1.1", "2.2.2.2", "3.3.3.3"] {
        let r = get("198.51.100.7", Some("guess"), Some(fake)).await;
        assert_eq!(r.status, Status::Unauthorized);
    }
    let r = get("198.51.100.7", Some("s3cret"), Some("4.4.4.4")).await;
    assert_eq!(r.status, Status::TooManyRequests);

    let metrics = call(&app, false, "/metrics", "127.0.0.1", None, &[])
        .await
        .body;
    for line in [
        "idemhook_auth_failures_total{credential=\"bearer\"} 9",
        "idemhook_auth_throttled_total{credential=\"bearer\"} 5",
        "idemhook_auth_throttled_total{credential=\"signin\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} in:\n{metrics}");
    }
    // The failures' audit: one row per address (and credential) with its count, written
    // once a minute and when the app stops, never once per request.
    let conn = db.connect().await;
    let count_rows = || async {
        let rows = conn
            .query_all_raw(sea_orm::Statement::from_string(
                conn.get_database_backend(),
                "SELECT client, target, count FROM audit WHERE action = 'auth_failed' ORDER BY client",
            ))
            .await
            .unwrap();
        rows.iter()
            .map(|r| {
                (
                    r.try_get_by_index::<String>(0).unwrap(),
                    r.try_get_by_index::<String>(1).unwrap(),
                    r.try_get_by_index::<i64>(2).unwrap(),
                )
            })
            .collect::<Vec<_>>()
    };
    assert!(count_rows().await.is_empty(), "not written per request");
    drop(app);
    let mut rows = Vec::new();
    for _ in 0..100 {
        rows = count_rows().await;
        if !rows.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let s = |c: &str, n: i64| (c.to_owned(), "bearer".to_owned(), n);
    assert_eq!(
        rows,
        [
            s("198.51.100.7", 3),
            s("203.0.113.1", 3),
            s("203.0.113.4", 3)
        ]
    );
    db.drop_db().await;
}
