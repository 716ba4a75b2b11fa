//! The user's app, as the forwarding tests need it: an HTTP server on a real socket that
//! records every request it gets and answers as the test says (2xx, a status, a hang), or is
//! down altogether (its port refuses connections). Deliveries are counted by their
//! `Idempotency-Key`, as a real app would dedupe them.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// How the app answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Ok,
    Status(u16),
    /// 503 with `Retry-After: <secs>`.
    RetryAfter(u64),
    /// 429 with `Retry-After: <secs>`.
    TooMany(u64),
    /// Never answers (the attempt times out).
    Hang,
    /// 2xx after this many milliseconds.
    Slow(u64),
}

impl Answer {
    pub fn is_success(self) -> bool {
        matches!(self, Answer::Ok | Answer::Slow(_))
    }
}

/// One request as the app received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
    /// What the app answered.
    pub reply: Answer,
    /// When it arrived.
    pub at: std::time::Instant,
}

impl Received {
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).map_or("", String::as_str)
    }
}

#[derive(Default)]
struct State {
    received: Vec<Received>,
    /// Replies for the next requests, in order; then `default`.
    script: Vec<Answer>,
    default: Option<Answer>,
    /// Requests being answered right now, by `Idempotency-Key` (to catch two at once).
    in_flight: HashMap<String, usize>,
    overlaps: usize,
}

pub struct Receiver {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: Option<tokio::task::JoinHandle<()>>,
    /// Bound, never listening, for as long as the receiver lives: while the app is down its
    /// port refuses connections, and no other test's server can take the port meanwhile (a
    /// server answering 404 there was an app that was not down at all).
    _hold: tokio::net::TcpSocket,
}

/// A socket on `addr` that shares its port with the receiver's own (SO_REUSEPORT).
fn shared(addr: SocketAddr) -> tokio::net::TcpSocket {
    let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
    socket.set_reuseport(true).expect("SO_REUSEPORT");
    socket.bind(addr).expect("bind the receiver's port");
    socket
}

/// The receiver's listener on `addr` (port 0: a fresh one).
fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.set_reuseport(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

impl Receiver {
    /// Listening on a fresh port, answering 2xx.
    pub async fn start() -> Receiver {
        let listener = listen(([127, 0, 0, 1], 0).into()).expect("bind receiver");
        let addr = listener.local_addr().expect("receiver address");
        let hold = shared(addr);
        let state = Arc::new(Mutex::new(State::default()));
        let task = Some(serve(listener, state.clone()));
        Receiver {
            addr,
            state,
            task,
            _hold: hold,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}/hooks", self.addr)
    }

    /// Every later request is answered this way (until `script` or another `answer`).
    pub fn answer(&self, reply: Answer) {
        self.state.lock().unwrap().default = Some(reply);
    }

    /// The next requests are answered these ways, in order.
    pub fn script(&self, replies: &[Answer]) {
        self.state.lock().unwrap().script = replies.to_vec();
    }

    /// The app goes down: its port refuses connections (open ones are dropped).
    pub fn stop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }

    /// The app comes back on the same port.
    pub async fn restart(&mut self) {
        self.stop();
        let listener = loop {
            match listen(self.addr) {
                Ok(l) => break l,
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        };
        self.task = Some(serve(listener, self.state.clone()));
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.lock().unwrap().received.clone()
    }

    /// Requests answered 2xx, by `Idempotency-Key` (each key once, however often it came).
    pub fn delivered_keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self
            .received()
            .into_iter()
            .filter(|r| r.reply.is_success())
            .map(|r| r.header("idempotency-key").to_owned())
            .collect();
        keys.sort();
        keys.dedup();
        keys
    }

    /// How many times a request came in while another with the same key was being answered.
    pub fn overlaps(&self) -> usize {
        self.state.lock().unwrap().overlaps
    }

    /// Waits (up to `secs`) until `n` requests came in, however they were answered.
    pub async fn wait_for_requests(&self, n: usize, secs: u64) {
        for _ in 0..secs * 20 {
            if self.received().len() >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{} of {n} requests after {secs} s", self.received().len());
    }

    /// Waits (up to `secs`) until `n` distinct keys were answered 2xx.
    pub async fn wait_for_delivered(&self, n: usize, secs: u64) -> Vec<String> {
        for _ in 0..secs * 20 {
            let keys = self.delivered_keys();
            if keys.len() >= n {
                return keys;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let keys = self.delivered_keys();
        panic!(
            "{} of {n} deliveries after {secs} s; received {} requests",
            keys.len(),
            self.received().len()
        );
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop();
    }
}

fn serve(listener: TcpListener, state: Arc<Mutex<State>>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut connections = tokio::task::JoinSet::new();
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let state = state.clone();
            // Owned by this task: aborting it (the app going down) drops every connection.
            connections.spawn(async move {
                let service = hyper::service::service_fn(move |req| handle(req, state.clone()));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    })
}

async fn handle(
    req: Request<Incoming>,
    state: Arc<Mutex<State>>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let headers: HashMap<String, String> = req
        .headers()
        .iter()
        .map(|(n, v)| (n.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes().to_vec())
        .unwrap_or_default();
    let key = headers.get("idempotency-key").cloned().unwrap_or_default();
    let reply = {
        let mut s = state.lock().unwrap();
        let reply = if s.script.is_empty() {
            s.default.unwrap_or(Answer::Ok)
        } else {
            s.script.remove(0)
        };
        let n = s.in_flight.entry(key.clone()).or_default();
        *n += 1;
        if *n > 1 {
            s.overlaps += 1;
        }
        s.received.push(Received {
            headers,
            body,
            reply,
            at: std::time::Instant::now(),
        });
        reply
    };
    let answering = Answering {
        state: state.clone(),
        key,
    };
    let response = match reply {
        Answer::Ok => Response::new(Full::new(Bytes::from_static(b"ok"))),
        Answer::Status(code) => {
            let mut r = Response::new(Full::new(Bytes::from_static(b"the app failed")));
            *r.status_mut() = hyper::StatusCode::from_u16(code).unwrap();
            r
        }
        Answer::RetryAfter(secs) => Response::builder()
            .status(503)
            .header("retry-after", secs.to_string())
            .body(Full::new(Bytes::from_static(b"busy")))
            .unwrap(),
        Answer::TooMany(secs) => Response::builder()
            .status(429)
            .header("retry-after", secs.to_string())
            .body(Full::new(Bytes::from_static(b"slow down")))
            .unwrap(),
        Answer::Slow(ms) => {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Response::new(Full::new(Bytes::from_static(b"ok")))
        }
        Answer::Hang => {
            // Until the connection is dropped (the attempt's timeout), then this task goes.
            std::future::pending::<()>().await;
            unreachable!()
        }
    };
    drop(answering);
    Ok(response)
}

/// A request being answered, counted in `in_flight` until this drops: when the answer is
/// written, or when the sender's connection closes mid-answer (hyper then drops the handler's
/// future: an instance killed while its request slept here is no longer delivering it, and
/// must not be counted as overlapping the next instance's attempt at that key).
struct Answering {
    state: Arc<Mutex<State>>,
    key: String,
}

impl Drop for Answering {
    fn drop(&mut self) {
        if let Ok(mut s) = self.state.lock() {
            if let Some(n) = s.in_flight.get_mut(&self.key) {
                *n -= 1;
            }
        }
    }
}
