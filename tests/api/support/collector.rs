//! An OpenTelemetry collector as the tracing tests need it: OTLP/HTTP on a real socket,
//! each export decoded with the OpenTelemetry proto crate and kept as [`Span`]s. Or one that
//! takes connections and never answers ([`Collector::hanging`]).

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, KeyValue};
use prost::Message;
use tokio::net::TcpListener;

/// One exported span, its ids in hex.
#[derive(Debug, Clone)]
pub struct Span {
    pub trace_id: String,
    pub span_id: String,
    /// Empty for a root span.
    pub parent: String,
    pub name: String,
    /// The proto's `SpanKind` number (2 server, 4 producer, 1 internal).
    pub kind: i32,
    pub attributes: HashMap<String, String>,
    /// (trace id, span id) of each link.
    pub links: Vec<(String, String)>,
    /// The proto's status code (2: error).
    pub status: i32,
    pub resource: HashMap<String, String>,
    pub start: u64,
    pub end: u64,
}

impl Span {
    pub fn attr(&self, name: &str) -> &str {
        self.attributes.get(name).map_or("", String::as_str)
    }
}

pub struct Collector {
    addr: std::net::SocketAddr,
    spans: Arc<Mutex<Vec<Span>>>,
    requests: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn value(kv: &KeyValue) -> String {
    match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        other => format!("{other:?}"),
    }
}

fn attributes(kvs: &[KeyValue]) -> HashMap<String, String> {
    kvs.iter().map(|kv| (kv.key.clone(), value(kv))).collect()
}

fn decode(body: &[u8]) -> Vec<Span> {
    let request = ExportTraceServiceRequest::decode(body).expect("an OTLP protobuf export");
    let mut spans = Vec::new();
    for resource_spans in request.resource_spans {
        let resource = resource_spans
            .resource
            .map(|r| attributes(&r.attributes))
            .unwrap_or_default();
        for scope in resource_spans.scope_spans {
            for s in scope.spans {
                spans.push(Span {
                    trace_id: hex::encode(&s.trace_id),
                    span_id: hex::encode(&s.span_id),
                    parent: hex::encode(&s.parent_span_id),
                    name: s.name,
                    kind: s.kind,
                    attributes: attributes(&s.attributes),
                    links: s
                        .links
                        .iter()
                        .map(|l| (hex::encode(&l.trace_id), hex::encode(&l.span_id)))
                        .collect(),
                    status: s.status.map_or(0, |st| st.code),
                    resource: resource.clone(),
                    start: s.start_time_unix_nano,
                    end: s.end_time_unix_nano,
                });
            }
        }
    }
    spans
}

impl Collector {
    /// Answering every export 200, keeping its spans.
    pub async fn start() -> Collector {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().unwrap();
        let spans = Arc::new(Mutex::new(Vec::new()));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (s, r) = (spans.clone(), requests.clone());
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (spans, requests) = (s.clone(), r.clone());
                let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let (spans, requests) = (spans.clone(), requests.clone());
                    async move {
                        let line = format!(
                            "{} {} {}",
                            req.method(),
                            req.uri().path(),
                            req.headers()
                                .get("content-type")
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or("")
                        );
                        let body = match req.into_body().collect().await {
                            Ok(body) => body.to_bytes(),
                            Err(e) => {
                                requests.lock().unwrap().push(format!("{line}: {e}"));
                                return Ok(Response::new(Full::new(Bytes::new())));
                            }
                        };
                        requests.lock().unwrap().push(line);
                        spans.lock().unwrap().extend(decode(&body));
                        Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
                    }
                });
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Collector {
            addr,
            spans,
            requests,
            task,
        }
    }

    /// Takes connections and never answers one (nor reads a byte of them).
    pub async fn hanging() -> Collector {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                held.push(stream);
            }
        });
        Collector {
            addr,
            spans: Arc::default(),
            requests: Arc::default(),
            task,
        }
    }

    /// The base URL idemhook's `otlp_endpoint` takes.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn spans(&self) -> Vec<Span> {
        self.spans.lock().unwrap().clone()
    }

    /// "METHOD path content-type" of each export received.
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }

    /// The spans, once `done` holds of them (within `secs`).
    pub async fn wait_for(&self, secs: u64, done: impl Fn(&[Span]) -> bool) -> Vec<Span> {
        self.try_wait_for(secs, done).await.unwrap_or_else(|spans| {
            panic!("the collector did not get the spans expected: {spans:#?}")
        })
    }

    /// [`Collector::wait_for`], or the spans it did get (for the caller to add what it
    /// knows, such as the server's log).
    pub async fn try_wait_for(
        &self,
        secs: u64,
        done: impl Fn(&[Span]) -> bool,
    ) -> Result<Vec<Span>, Vec<Span>> {
        for _ in 0..secs * 20 {
            let spans = self.spans();
            if done(&spans) {
                return Ok(spans);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(self.spans())
    }
}
