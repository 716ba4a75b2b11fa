//! The console as a browser sees it, on the real binary: [`Browser`] (an HTTP client that
//! carries the session cookie itself and follows no redirect), what it was answered
//! ([`Seen`]), and one console test's world ([`Console`]): a fresh database, the user's app
//! answering 500, the binary forwarding `fwd` to it, and a browser.

use std::time::Duration;

use reqwest::header::{HeaderMap, COOKIE, LOCATION, SET_COOKIE};
use reqwest::redirect::Policy;
use serde_json::Value;

use super::app::{payment, ADMIN_TOKEN};
use super::db::{Backend, TestDb};
use super::forwarding::{fwd_config, start};
use super::process::{post, Server};
use super::receiver::{Answer, Receiver};

/// A browser without a cookie jar: the test carries the cookie itself.
pub struct Browser {
    base: String,
    http: reqwest::Client,
    /// The session cookie it sends (`name=value`), set by the test.
    pub cookie: Option<String>,
}

pub struct Seen {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: String,
}

impl Seen {
    pub fn header(&self, name: impl reqwest::header::AsHeaderName) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    /// The CSRF token the page gives its script.
    pub fn csrf(&self) -> String {
        self.attribute(r#"name="csrf-token""#, "content")
    }

    /// What the button `#id` posts to: the console's replay, redeliver and redrive forms.
    pub fn action(&self, id: &str) -> String {
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
    pub fn new(server: &Server) -> Self {
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

    pub async fn get(&self, path: &str) -> Seen {
        self.send(self.http.get(format!("{}{path}", self.base)))
            .await
    }

    pub async fn post(&self, path: &str, headers: &[(&str, &str)]) -> Seen {
        let mut req = self.http.post(format!("{}{path}", self.base));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        self.send(req).await
    }

    pub async fn form(&self, path: &str, form: &[(&str, &str)], headers: &[(&str, &str)]) -> Seen {
        let mut req = self.http.post(format!("{}{path}", self.base)).form(form);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        self.send(req).await
    }
}

/// One test's world: a fresh database, the user's app answering 500 (so a delivery dies
/// after its one attempt), the binary forwarding `fwd` to it, and a browser, signed out.
pub struct Console {
    db: TestDb,
    pub app: Receiver,
    pub server: Server,
    pub browser: Browser,
}

impl Console {
    pub async fn start(backend: Backend) -> Console {
        Console::start_with(backend, "").await
    }

    /// [`Console::start`] with `tables` added to the configuration (another destination).
    pub async fn start_with(backend: Backend, tables: &str) -> Console {
        let db = TestDb::create(backend).await;
        let app = Receiver::start().await;
        app.answer(Answer::Status(500));
        let mut cfg = fwd_config(&db.url, &app.url(), "max_attempts = 1\ntimeout_secs = 1");
        cfg.push_str(tables);
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
    pub async fn signed_in(backend: Backend) -> (Console, String) {
        Console::signed_in_with(backend, "").await
    }

    /// [`Console::signed_in`] with `tables` added to the configuration.
    pub async fn signed_in_with(backend: Backend, tables: &str) -> (Console, String) {
        let mut console = Console::start_with(backend, tables).await;
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
    /// waits until both deliveries are dead; returns the overview.
    pub async fn traffic(&self) -> Value {
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

    pub async fn stop(self) {
        drop(self.server);
        self.db.drop_db().await;
    }
}

/// A payment whose id and note carry markup and a script.
fn hostile() -> String {
    serde_json::json!({
        "id": "evt_<b>bold</b>", "type": "payment_succeeded",
        "data": {"order_id": "o_x", "amount": 3, "currency": "usd",
                 "note": "<script>window.pwned = 1</script><img src=x onerror=alert(1)>"}
    })
    .to_string()
}
