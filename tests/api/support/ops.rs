//! The admin API as an operator calls it ([`Ops`]): its lists, jobs and the admin view of an
//! event, on the real binary that [`start`](super::forwarding::start) runs with the admin
//! token; and that binary as the operator scenarios start it ([`operator_server`]).

use std::time::Duration;

use serde_json::Value;

use super::app::{payment, ADMIN_TOKEN, PAY};
use super::db::TestDb;
use super::forwarding::start;
use super::process::{config, post, Server};

/// The shared config with the admin token and a 1 s handler bound (so a `sleep`ing delivery
/// fails, and its replay, without the header, goes through).
pub async fn operator_server(db: &TestDb) -> Server {
    start(&config(&db.url, "handler_timeout_secs = 1")).await
}

/// The admin API of `server`, as an operator (`alice`) calls it.
pub struct Ops<'a> {
    pub server: &'a Server,
    http: reqwest::Client,
}

impl<'a> Ops<'a> {
    pub fn new(server: &'a Server) -> Self {
        Ops {
            server,
            http: reqwest::Client::new(),
        }
    }

    pub async fn call(&self, method: reqwest::Method, path: &str) -> (u16, Value) {
        let r = self
            .http
            .request(method, format!("{}{path}", self.server.base))
            .bearer_auth(ADMIN_TOKEN)
            .header("Idemhook-Operator", "alice")
            .send()
            .await
            .expect("the server answers");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, path).await
    }

    pub async fn post(&self, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::POST, path).await
    }

    /// Every event the list gives for `query`, following the cursor.
    pub async fn all(&self, query: &str, limit: u32) -> Vec<Value> {
        let mut events = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut path = format!("/events?limit={limit}{query}");
            if let Some(c) = &cursor {
                path.push_str(&format!("&cursor={c}"));
            }
            let (status, page) = self.get(&path).await;
            assert_eq!(status, 200, "{page}");
            events.extend(page["events"].as_array().unwrap().iter().cloned());
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => return events,
            }
        }
    }

    /// Waits until the list for `query` holds `n` events, and returns them.
    pub async fn await_count(&self, query: &str, n: usize) -> Vec<Value> {
        let mut events = Vec::new();
        for _ in 0..400 {
            events = self.all(query, 10).await;
            if events.len() == n {
                return events;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "{query}: {} events after 20 s, not {n}: {events:?}",
            events.len()
        );
    }

    /// Polls the job until it is no longer running.
    pub async fn finished(&self, id: i64) -> Value {
        self.job_until(id, "still running", |job| job["status"] != "running")
            .await
    }

    /// Polls the job until `done` holds of it, for up to 20 s (then panics, saying `waiting`).
    pub async fn job_until(&self, id: i64, waiting: &str, done: impl Fn(&Value) -> bool) -> Value {
        let mut job = Value::Null;
        for _ in 0..400 {
            let (status, seen) = self.get(&format!("/jobs/{id}")).await;
            assert_eq!(status, 200, "{seen}");
            if done(&seen) {
                return seen;
            }
            job = seen;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("job {id} {waiting} after 20 s: {job}");
    }

    /// Posts `n` events to `fwd` (ids `<prefix>0`…) and waits until all their deliveries are
    /// dead (the app answers 502, `max_attempts` set low).
    pub async fn dead_deliveries(&self, prefix: &str, n: usize) {
        let http = reqwest::Client::new();
        for i in 0..n {
            let body = payment(&format!("{prefix}{i}"), &format!("o{prefix}{i}"), 1);
            assert_eq!(post(&http, self.server, "fwd", &body, &[]).await.0, 200);
        }
        self.await_count("&status=dead", n).await;
    }

    /// The `fwd` source's `forward` destination as `GET /destinations` lists it.
    pub async fn fwd_destination(&self) -> Value {
        let (status, list) = self.get("/destinations").await;
        assert_eq!(status, 200, "{list}");
        list["destinations"]
            .as_array()
            .and_then(|all| {
                all.iter()
                    .find(|d| d["source"] == "fwd" && d["name"] == "forward")
            })
            .cloned()
            .unwrap_or_else(|| panic!("fwd/forward is not listed: {list}"))
    }

    /// [`Ops::fwd_destination`] once `done` holds (up to 30 s); `what` names it in the panic.
    pub async fn fwd_destination_until(&self, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let mut last = Value::Null;
        for _ in 0..600 {
            last = self.fwd_destination().await;
            if done(&last) {
                return last;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("the destination never became {what}: {last}");
    }

    /// The admin view of the `fwd` payment `id` (given as it goes in a path).
    pub async fn fwd_event(&self, id: &str) -> Value {
        self.get(&format!("/webhooks/fwd/events/{id}?{PAY}"))
            .await
            .1
    }

    /// Asks for the `fwd` payment `id`'s delivery again; the answer's status.
    pub async fn redeliver(&self, id: &str) -> u16 {
        self.post(&format!("/webhooks/fwd/events/{id}/redeliver?{PAY}"))
            .await
            .0
    }

    /// Polls the admin view of `fwd`'s `id` until its delivery has `status` (at most `secs`).
    pub async fn wait_for_delivery(&self, id: &str, status: &str, secs: u64) -> Value {
        let done = |view: &Value| view["delivery"]["status"] == status;
        self.wait_for_event(id, secs, done).await
    }

    /// Polls the admin view of `fwd`'s `id` until `done` holds (at most `secs`).
    pub async fn wait_for_event(
        &self,
        id: &str,
        secs: u64,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        for _ in 0..secs * 20 {
            let view = self.fwd_event(id).await;
            if done(&view) {
                return view;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "{id}: not as awaited after {secs} s: {}",
            self.fwd_event(id).await
        );
    }
}

/// The `event_id`s of a list's events, in its order.
pub fn ids(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["event_id"].as_str().unwrap().to_owned())
        .collect()
}
