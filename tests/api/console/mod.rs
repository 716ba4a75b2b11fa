//! The console on the real binary, on every backend, one behaviour a test: sign-in and its
//! cookie, the pages, the overview's figures, and a hostile payload shown as text; what guards
//! a session's changes is [`guard`]. Each test starts from [`Console::start`]. (What a browser
//! does with the pages is `tests/browser/`, run by `.ci/run`.)

mod guard;

use std::time::Duration;

use reqwest::header::{HeaderMap, CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use reqwest::redirect::Policy;
use serde_json::Value;

use crate::support::*;

on_every_backend!(
    signed_out_the_console_leads_to_its_sign_in_form,
    sign_in_refuses_a_wrong_token_and_sets_a_strict_cookie,
    the_overview_counts_what_arrived,
    the_console_page_is_html_under_a_strict_policy,
    a_hostile_payload_is_shown_as_text,
    pages_refuse_a_bad_filter_and_a_missing_event,
);

const PAY: &str = "type=payment_succeeded";

/// A browser without a cookie jar: the test carries the cookie itself.
struct Browser {
    base: String,
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
        self.attribute(r#"name="csrf-token""#, "content")
    }

    /// What the button `#id` posts to: the console's replay, redeliver and redrive forms.
    fn action(&self, id: &str) -> String {
        self.attribute(&format!(r#"id="{id}""#), "data-post")
            .replace("&amp;", "&")
    }

    /// The value of `attribute` in the first element that has `marker`.
    fn attribute(&self, marker: &str, attribute: &str) -> String {
        let at = self.body.find(marker).unwrap_or_else(|| {
            panic!("no {marker} in the page: {}", self.body);
        });
        let tag = &self.body[self.body[..at].rfind('<').unwrap()..];
        let tag = &tag[..tag.find('>').unwrap()];
        let needle = format!(r#" {attribute}=""#);
        let value = &tag[tag.find(&needle).expect(attribute) + needle.len()..];
        value[..value.find('"').unwrap()].to_owned()
    }
}

impl Browser {
    fn new(server: &Server) -> Self {
        Browser {
            base: server.base.clone(),
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
        self.send(self.http.get(format!("{}{path}", self.base)))
            .await
    }

    async fn post(&self, path: &str, headers: &[(&str, &str)]) -> Seen {
        let mut req = self.http.post(format!("{}{path}", self.base));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        self.send(req).await
    }

    async fn form(&self, path: &str, form: &[(&str, &str)], headers: &[(&str, &str)]) -> Seen {
        let mut req = self.http.post(format!("{}{path}", self.base)).form(form);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        self.send(req).await
    }
}

/// One test's world: a fresh database, the user's app answering 500 (so a delivery dies
/// after its one attempt), the binary forwarding `fwd` to it, and a browser, signed out.
struct Console {
    db: TestDb,
    app: Receiver,
    server: Server,
    browser: Browser,
}

impl Console {
    async fn start(backend: Backend) -> Console {
        let db = TestDb::create(backend).await;
        let app = Receiver::start().await;
        app.answer(Answer::Status(500));
        let cfg = fwd_config(&db.url, &app.url(), "max_attempts = 1\ntimeout_secs = 1");
        let server = start(&cfg).await;
        let browser = Browser::new(&server);
        Console {
            db,
            app,
            server,
            browser,
        }
    }

    /// Started and signed in; also the CSRF token the console's page gives.
    async fn signed_in(backend: Backend) -> (Console, String) {
        let mut console = Console::start(backend).await;
        let r = console
            .browser
            .form("/console/login", &[("token", ADMIN_TOKEN)], &[])
            .await;
        assert_eq!((r.status, r.header(LOCATION)), (303, "/console"));
        let cookie = r.header(SET_COOKIE).split(';').next().unwrap().to_owned();
        console.browser.cookie = Some(cookie);
        let page = console.browser.get("/console").await;
        assert_eq!(page.status, 200, "{}", page.body);
        (console, page.csrf())
    }

    /// Two new events (one with markup in its id and payload), a duplicate and a refusal, then
    /// waits until both deliveries are dead; returns the overview's `fwd` row.
    async fn traffic(&self) -> Value {
        let http = reqwest::Client::new();
        for body in [
            payment("evt_1", "o1", 10),
            hostile(),
            payment("evt_1", "o1", 10),
        ] {
            assert_eq!(post(&http, &self.server, "fwd", &body, &[]).await.0, 200);
        }
        assert_eq!(
            post(&http, &self.server, "fwd", "not json", &[]).await.0,
            400
        );
        let mut fwd = Value::Null;
        for _ in 0..200 {
            let overview = self.browser.get("/console/overview.json").await.json();
            fwd = overview["sources"]
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["source"] == "fwd")
                .cloned()
                .unwrap();
            if fwd["dead"] == 2 {
                return overview;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("both deliveries dead within 10 s: {fwd}");
    }

    async fn stop(self) {
        drop(self.server);
        self.db.drop_db().await;
    }
}

fn hostile() -> String {
    serde_json::json!({
        "id": "evt_<b>bold</b>", "type": "payment_succeeded",
        "data": {"order_id": "o_x", "amount": 3, "currency": "usd",
                 "note": "<script>window.pwned = 1</script><img src=x onerror=alert(1)>"}
    })
    .to_string()
}

/// Signed out: `/` leads to the console, the console to its sign-in form; the figures are 401.
async fn signed_out_the_console_leads_to_its_sign_in_form(backend: Backend) {
    let console = Console::start(backend).await;
    let browser = &console.browser;
    let r = browser.get("/").await;
    assert_eq!((r.status, r.header(LOCATION)), (303, "/console"));
    let r = browser.get("/console").await;
    assert_eq!((r.status, r.header(LOCATION)), (303, "/console/login"));
    let r = browser.get("/console/login").await;
    assert_eq!(r.status, 200);
    assert!(r.body.contains(r#"name="token""#), "{}", r.body);
    assert_eq!(browser.get("/console/overview.json").await.status, 401);
    console.stop().await;
}

/// A wrong token is 401 and sets no cookie. The right one sets an HttpOnly, SameSite=Strict
/// cookie, Secure over https (a proxy says so) and not over plain http, where it cannot be.
async fn sign_in_refuses_a_wrong_token_and_sets_a_strict_cookie(backend: Backend) {
    let console = Console::start(backend).await;
    let browser = &console.browser;
    let r = browser
        .form("/console/login", &[("token", "wrong")], &[])
        .await;
    assert_eq!(r.status, 401);
    assert!(r.body.contains("Wrong token"));
    assert!(r.headers.get(SET_COOKIE).is_none());
    let https = [("X-Forwarded-Proto", "https")];
    let r = browser
        .form("/console/login", &[("token", ADMIN_TOKEN)], &https)
        .await;
    assert!(
        r.header(SET_COOKIE).contains("Secure"),
        "{}",
        r.header(SET_COOKIE)
    );
    let r = browser
        .form("/console/login", &[("token", ADMIN_TOKEN)], &[])
        .await;
    assert_eq!((r.status, r.header(LOCATION)), (303, "/console"));
    let cookie = r.header(SET_COOKIE);
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    assert!(!cookie.contains("Secure"), "{cookie}");
    console.stop().await;
}

/// The overview counts new events, duplicates, refusals and dead deliveries, and has a row
/// for every configured source.
async fn the_overview_counts_what_arrived(backend: Backend) {
    let (console, _) = Console::signed_in(backend).await;
    let overview = console.traffic().await;
    let sources = overview["sources"].as_array().unwrap();
    let fwd = sources.iter().find(|s| s["source"] == "fwd").unwrap();
    assert_eq!(fwd["total"]["new"], 2, "{fwd}");
    assert_eq!(fwd["total"]["duplicates"], 1, "{fwd}");
    assert_eq!(fwd["total"]["refused"], 1, "{fwd}");
    assert_eq!(fwd["pending"], 0, "{fwd}");
    assert!(!fwd["minutes"].as_array().unwrap().is_empty());
    assert_eq!(
        sources.len(),
        5,
        "every configured source has a row: {overview}"
    );
    console.stop().await;
}

/// The console is HTML under a policy that runs only its own script and cannot be framed.
async fn the_console_page_is_html_under_a_strict_policy(backend: Backend) {
    let (console, _) = Console::signed_in(backend).await;
    let page = console.browser.get("/console").await;
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
    console.stop().await;
}

/// Markup in an event's id and payload is shown as text in the list and on its page.
async fn a_hostile_payload_is_shown_as_text(backend: Backend) {
    let (console, _) = Console::signed_in(backend).await;
    console.traffic().await;
    let list = console
        .browser
        .get("/console/events?source=fwd&type=&status=")
        .await;
    assert_eq!(list.status, 200, "{}", list.body);
    assert!(
        list.body.contains("evt_&lt;b&gt;bold&lt;/b&gt;"),
        "{}",
        list.body
    );
    assert!(!list.body.contains("<b>bold"), "{}", list.body);
    let event = console
        .browser
        .get(&format!(
            "/console/events/fwd/evt_%3Cb%3Ebold%3C%2Fb%3E?{PAY}"
        ))
        .await;
    assert_eq!(event.status, 200, "{}", event.body);
    assert!(!event.body.contains("<script>window"), "{}", event.body);
    assert!(!event.body.contains("<img"), "{}", event.body);
    let shown = "&lt;script&gt;window.pwned = 1&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;";
    assert!(event.body.contains(shown), "{}", event.body);
    console.stop().await;
}

/// An unknown status filter is 400, naming the choices; an unknown event's page is 404.
async fn pages_refuse_a_bad_filter_and_a_missing_event(backend: Backend) {
    let (console, _) = Console::signed_in(backend).await;
    let bad = console.browser.get("/console/events?status=done").await;
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("`status` must be one of"), "{}", bad.body);
    let missing = console
        .browser
        .get(&format!("/console/events/fwd/nope?{PAY}"))
        .await;
    assert_eq!(missing.status, 404, "{}", missing.body);
    console.stop().await;
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
