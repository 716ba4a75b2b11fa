//! The console on the real binary, on every backend: sign-in and its cookie, the pages, the
//! overview's figures, CSRF on a cookie's state changes, and a hostile payload shown as text.
//! (What a browser does with the pages is `tests/browser/`, run by `.ci/run`.)

use std::time::Duration;

use reqwest::header::{HeaderMap, CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use reqwest::redirect::Policy;
use serde_json::Value;

use crate::forward::{fwd_config, start};
use crate::support::*;

on_every_backend!(the_console_signs_in_shows_what_arrived_and_guards_every_change,);

const TOKEN: &str = "admin-token-for-forward-tests";
const PAY: &str = "type=payment_succeeded";

/// A browser without a cookie jar: the test carries the cookie itself.
struct Browser<'a> {
    server: &'a Server,
    http: reqwest::Client,
    cookie: Option<String>,
}

struct Seen {
    status: u16,
    headers: HeaderMap,
    body: String,
}

impl Seen {
    fn header(&self, name: impl reqwest::header::AsHeaderName) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    /// The CSRF token the page gives its script.
    fn csrf(&self) -> String {
        let at = self
            .body
            .find(r#"name="csrf-token" content=""#)
            .expect("a csrf meta");
        let rest = &self.body[at + r#"name="csrf-token" content=""#.len()..];
        rest[..rest.find('"').unwrap()].to_owned()
    }
}

impl<'a> Browser<'a> {
    fn new(server: &'a Server) -> Self {
        Browser {
            server,
            http: reqwest::Client::builder()
                .redirect(Policy::none())
                .build()
                .unwrap(),
            cookie: None,
        }
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Seen {
        let req = match &self.cookie {
            Some(c) => req.header(COOKIE, c.as_str()),
            None => req,
        };
        let r = req.send().await.expect("the server answers");
        Seen {
            status: r.status().as_u16(),
            headers: r.headers().clone(),
            body: r.text().await.unwrap_or_default(),
        }
    }

    async fn get(&self, path: &str) -> Seen {
        self.send(self.http.get(format!("{}{path}", self.server.base)))
            .await
    }

    async fn post(&self, path: &str, headers: &[(&str, &str)]) -> Seen {
        let mut req = self.http.post(format!("{}{path}", self.server.base));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        self.send(req).await
    }

    async fn form(&self, path: &str, form: &[(&str, &str)], headers: &[(&str, &str)]) -> Seen {
        let mut req = self
            .http
            .post(format!("{}{path}", self.server.base))
            .form(form);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        self.send(req).await
    }
}

async fn the_console_signs_in_shows_what_arrived_and_guards_every_change(backend: Backend) {
    let db = TestDb::create(backend).await;
    let app = Receiver::start().await;
    app.answer(Answer::Status(500));
    let server = start(&fwd_config(
        &db.url,
        &app.url(),
        "max_attempts = 1\ntimeout_secs = 1",
    ))
    .await;
    let mut browser = Browser::new(&server);

    // Signed out: `/` leads to the console, the console to its sign-in form.
    let r = browser.get("/").await;
    assert_eq!((r.status, r.header(LOCATION)), (303, "/console"));
    let r = browser.get("/console").await;
    assert_eq!((r.status, r.header(LOCATION)), (303, "/console/login"));
    let r = browser.get("/console/login").await;
    assert_eq!(r.status, 200);
    assert!(r.body.contains(r#"name="token""#), "{}", r.body);
    assert_eq!(browser.get("/console/overview.json").await.status, 401);

    let r = browser
        .form("/console/login", &[("token", "wrong")], &[])
        .await;
    assert_eq!(r.status, 401);
    assert!(r.body.contains("Wrong token"));
    assert!(r.headers.get(SET_COOKIE).is_none());

    // Over https (a proxy says so) the cookie is Secure; over plain http it cannot be.
    let r = browser
        .form(
            "/console/login",
            &[("token", TOKEN)],
            &[("X-Forwarded-Proto", "https")],
        )
        .await;
    assert!(
        r.header(SET_COOKIE).contains("Secure"),
        "{}",
        r.header(SET_COOKIE)
    );
    let r = browser
        .form("/console/login", &[("token", TOKEN)], &[])
        .await;
    assert_eq!((r.status, r.header(LOCATION)), (303, "/console"));
    let cookie = r.header(SET_COOKIE).to_owned();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    assert!(!cookie.contains("Secure"), "{cookie}");
    browser.cookie = Some(cookie.split(';').next().unwrap().to_owned());

    // Traffic: two new events, a duplicate, a refusal; the forwarding app answers 500 so the
    // deliveries die after their one attempt.
    let http = reqwest::Client::new();
    let hostile = serde_json::json!({
        "id": "evt_<b>bold</b>", "type": "payment_succeeded",
        "data": {"order_id": "o_x", "amount": 3, "currency": "usd",
                 "note": "<script>window.pwned = 1</script><img src=x onerror=alert(1)>"}
    })
    .to_string();
    for body in [
        payment("evt_1", "o1", 10),
        hostile.clone(),
        payment("evt_1", "o1", 10),
    ] {
        assert_eq!(post(&http, &server, "fwd", &body, &[]).await.0, 200);
    }
    assert_eq!(post(&http, &server, "fwd", "not json", &[]).await.0, 400);
    let mut overview = Value::Null;
    let mut settled = false;
    for _ in 0..200 {
        overview = browser.get("/console/overview.json").await.json();
        let fwd = overview["sources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["source"] == "fwd")
            .cloned()
            .unwrap();
        if fwd["dead"] == 2 {
            assert_eq!(fwd["total"]["new"], 2, "{fwd}");
            assert_eq!(fwd["total"]["duplicates"], 1, "{fwd}");
            assert_eq!(fwd["total"]["refused"], 1, "{fwd}");
            assert_eq!(fwd["pending"], 0, "{fwd}");
            assert!(!fwd["minutes"].as_array().unwrap().is_empty());
            settled = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(settled, "both deliveries dead within 10 s: {overview}");
    assert_eq!(
        overview["sources"].as_array().unwrap().len(),
        5,
        "every configured source has a row: {overview}"
    );

    let page = browser.get("/console").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.header(CONTENT_TYPE).starts_with("text/html"));
    let csp = page.header("content-security-policy");
    assert!(
        csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert!(
        page.body.contains(r#"<tr data-source="fwd">"#),
        "{}",
        page.body
    );
    let csrf = page.csrf();

    // The lists, and the hostile event's page: every value is text.
    let list = browser
        .get("/console/events?source=fwd&type=&status=")
        .await;
    assert_eq!(list.status, 200, "{}", list.body);
    assert!(
        list.body.contains("evt_&lt;b&gt;bold&lt;/b&gt;"),
        "{}",
        list.body
    );
    assert!(!list.body.contains("<b>bold"), "{}", list.body);
    let bad = browser.get("/console/events?status=done").await;
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("`status` must be one of"), "{}", bad.body);
    let dead = browser.get("/console/dead?source=fwd").await;
    assert_eq!(dead.status, 200);
    assert!(
        dead.body
            .contains("/deliveries/redrive?source=fwd&amp;status=dead"),
        "{}",
        dead.body
    );
    let event = browser
        .get(&format!(
            "/console/events/fwd/evt_%3Cb%3Ebold%3C%2Fb%3E?{PAY}"
        ))
        .await;
    assert_eq!(event.status, 200, "{}", event.body);
    assert!(!event.body.contains("<script>window"), "{}", event.body);
    assert!(!event.body.contains("<img"), "{}", event.body);
    assert!(
        event.body.contains(
            "&lt;script&gt;window.pwned = 1&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;"
        ),
        "{}",
        event.body
    );
    assert!(event.body.contains("Redeliver"), "{}", event.body);
    assert_eq!(
        browser
            .get(&format!("/console/events/fwd/nope?{PAY}"))
            .await
            .status,
        404
    );

    // The admin API takes the cookie; a change needs the page's CSRF token besides.
    assert_eq!(browser.get("/events?source=fwd").await.status, 200);
    let redeliver = format!("/webhooks/fwd/events/evt_1/redeliver?{PAY}");
    let r = browser.post(&redeliver, &[]).await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(
        r.json()["error"].as_str().unwrap().contains("CSRF"),
        "{}",
        r.body
    );
    let r = browser.post(&redeliver, &[("X-CSRF-Token", "0000")]).await;
    assert_eq!(r.status, 403, "{}", r.body);
    app.answer(Answer::Ok);
    let r = browser.post(&redeliver, &[("X-CSRF-Token", &csrf)]).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let replay = browser
        .post(
            &format!("/webhooks/fwd/events/evt_1/replay?{PAY}"),
            &[("X-CSRF-Token", &csrf)],
        )
        .await;
    assert_eq!(replay.status, 409, "processed, not forced: {}", replay.body);

    // A cookie whose signed time was changed, and no cookie, are both signed out.
    let real = browser.cookie.clone().unwrap();
    let (name_issued, mac) = real.split_once('.').unwrap();
    let (name, issued) = name_issued.split_once('=').unwrap();
    browser.cookie = Some(format!(
        "{name}={}.{mac}",
        issued.parse::<i64>().unwrap() + 60
    ));
    assert_eq!(browser.get("/console").await.status, 303);
    assert_eq!(browser.get("/events").await.status, 401);
    browser.cookie = Some(real);

    // Sign-out needs the token too (a cross-site form cannot sign an operator out).
    assert_eq!(
        browser
            .form("/console/logout", &[("csrf", "x")], &[])
            .await
            .status,
        403
    );
    let r = browser
        .form("/console/logout", &[("csrf", &csrf)], &[])
        .await;
    assert_eq!((r.status, r.header(LOCATION)), (303, "/console/login"));
    assert!(
        r.header(SET_COOKIE).contains("idemhook_session=;"),
        "{}",
        r.header(SET_COOKIE)
    );

    drop(server);
    db.drop_db().await;
}

/// Without `IDEMHOOK_ADMIN_TOKEN` the console says how to enable it, and signs nobody in.
#[tokio::test]
async fn without_a_token_the_console_says_how_to_enable_it() {
    let db = TestDb::create(Backend::Sqlite).await;
    let env: Vec<(&str, &str)> = ENV.to_vec();
    let server = Server::start(&config(&db.url, ""), &env).await;
    let browser = Browser::new(&server);
    for r in [
        browser.get("/console").await,
        browser.get("/console/login").await,
        browser.form("/console/login", &[("token", "")], &[]).await,
    ] {
        assert_eq!(r.status, 403, "{}", r.body);
        assert!(r.body.contains("IDEMHOOK_ADMIN_TOKEN"), "{}", r.body);
        assert!(r.headers.get(SET_COOKIE).is_none());
    }
    drop(server);
    db.drop_db().await;
}
