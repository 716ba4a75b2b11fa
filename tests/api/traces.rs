//! Traces, for real: the binary exporting to a collector on a real socket (OTLP/HTTP,
//! decoded with the OpenTelemetry proto crate), on every backend. One event is one trace:
//! the request's span and its phases, the transaction's span linked both ways, and one span
//! per delivery attempt to each destination, whose context reaches the consumer over HTTP,
//! NATS, RabbitMQ and a pull lease. A provider's `traceparent` is linked to unless trusted;
//! nothing a provider sent, and no secret, is in a span; a collector that hangs costs spans,
//! counted, and never a request.

use std::collections::BTreeSet;
use std::time::Duration;

use idemhook::entities::delivery;
use sea_orm::EntityTrait;
use serde_json::Value;

use crate::support::*;

on_every_backend!(
    one_trace_from_the_request_to_every_destination,
    a_trusted_traceparent_is_continued_and_an_unsampled_one_is_not_exported,
);

const INCOMING_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const INCOMING_SPAN: &str = "00f067aa0ba902b7";
const PULL_TOKEN: &str = "pull-token-kept-out-of-spans";
/// A header value and a body field no span may carry.
const HEADER_SECRET: &str = "hush-hush-header-value";
const BODY_SECRET: &str = "4242424242424242";

fn tracing_table(collector: &Collector, extra: &str) -> String {
    format!(
        "[default.idemhook.tracing]\notlp_endpoint = \"{}\"\nsample_ratio = 1.0\n{extra}\n",
        collector.url()
    )
}

fn body(id: &str) -> String {
    format!(r#"{{"id":"{id}","type":"card.charged","card":"{BODY_SECRET}"}}"#)
}

fn children<'a>(spans: &'a [Span], parent: &Span) -> Vec<&'a Span> {
    spans
        .iter()
        .filter(|s| s.parent == parent.span_id && s.trace_id == parent.trace_id)
        .collect()
}

fn named<'a>(spans: &'a [Span], name: &str) -> Vec<&'a Span> {
    spans.iter().filter(|s| s.name == name).collect()
}

fn request_spans(spans: &[Span]) -> Vec<&Span> {
    named(spans, "POST /webhooks/{source}")
}

async fn one_trace_from_the_request_to_every_destination(backend: Backend) {
    let db = TestDb::create(backend).await;
    let collector = Collector::start().await;
    let app = Receiver::start().await;
    let node = NatsNode::start().await;
    let js = jetstream(&[node.url()]).await;
    create_stream(&js, "TRACES", &["traces.>"], 1).await;
    let channel = broker().await;
    let tag = format!("{:08x}", rand::random::<u32>());
    let (exchange, queue) = (format!("ih_tx_{tag}"), format!("ih_tq_{tag}"));
    declare(&channel, &exchange, &queue, "fan.#").await;

    let mut cfg = config(&db.url, "forward_poll_ms = 50");
    cfg.push_str(&tracing_table(&collector, ""));
    cfg.push_str(&format!(
        "[default.idemhook.sources.fan]\nhandlers = [\"inbox\", \"forward\"]\n\
         [default.idemhook.sources.fan.destinations.app]\nurl = \"{}\"\nsecret_env = \"FWD_SECRET\"\n\
         [default.idemhook.sources.fan.destinations.bus]\nkind = \"nats\"\nurls = [\"{}\"]\n\
         subject = \"traces.{{source}}\"\nstream = \"TRACES\"\n\
         [default.idemhook.sources.fan.destinations.ledger]\nkind = \"rabbitmq\"\n\
         url_env = \"AMQP_URL\"\nexchange = \"{exchange}\"\nrouting_key = \"{{source}}.x\"\n\
         [default.idemhook.sources.fan.destinations.shelf]\nkind = \"pull\"\n\
         token_env = \"PULL_TOKEN\"\n",
        app.url(),
        node.url(),
    ));
    let mut env = fwd_env();
    env.push(("AMQP_URL", format!("amqp://guest:guest@{BROKER}/%2f")));
    env.push(("PULL_TOKEN", PULL_TOKEN.to_owned()));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut server = Server::start(&cfg, &env).await;
    let client = reqwest::Client::new();

    // A provider's own trace context: linked to, not continued (not trusted).
    let incoming = format!("00-{INCOMING_TRACE}-{INCOMING_SPAN}-01");
    let headers = [
        ("traceparent", incoming.as_str()),
        ("X-Custom-Secret", HEADER_SECRET),
    ];
    let (status, text, _) = post(&client, &server, "fan", &body("evt_traced"), &headers).await;
    assert_eq!(status, 200, "{text}");
    let (status, text, _) = post(&client, &server, "fan", &body("evt_traced"), &headers).await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("duplicate"), "{text}");

    // Every destination gets it, each with a trace context.
    app.wait_for_delivered(1, 30).await;
    let shelf = client
        .post(format!("{}/pull/fan/shelf/lease", server.base))
        .bearer_auth(PULL_TOKEN)
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    let spans = collector
        .try_wait_for(30, |spans| {
            request_spans(spans).len() == 2
                && ["deliver app", "deliver bus", "deliver ledger"]
                    .iter()
                    .all(|n| named(spans, n).iter().any(|s| s.status == 0))
                && named(spans, "transaction").len() == 1
        })
        .await;
    let spans = match spans {
        Ok(spans) => spans,
        Err(spans) => {
            let rows = delivery::Entity::find()
                .all(&db.connect().await)
                .await
                .map(|rows| {
                    rows.into_iter()
                        .map(|r| {
                            (
                                r.destination,
                                r.status,
                                r.attempts,
                                r.last_error,
                                r.traceparent,
                            )
                        })
                        .collect::<Vec<_>>()
                });
            let (logs, exports) = (server.logs(), collector.requests());
            panic!(
                "spans missing: {spans:#?}\nexports: {exports:#?}\ndeliveries: {rows:#?}\n\
                 logs: {logs:#?}"
            )
        }
    };

    // The request's span: a new root, linked to the provider's context.
    let requests = request_spans(&spans);
    let req = *requests
        .iter()
        .find(|s| s.attr("idemhook.outcome") == "processed")
        .expect("the processed request's span");
    assert_eq!(req.kind, 2, "a server span");
    assert!(req.parent.is_empty(), "{req:?}");
    assert_ne!(req.trace_id, INCOMING_TRACE);
    assert_eq!(
        req.links,
        vec![(INCOMING_TRACE.to_owned(), INCOMING_SPAN.to_owned())]
    );
    assert_eq!(req.attr("idemhook.source"), "fan");
    assert_eq!(req.attr("idemhook.event_type"), "card.charged");
    assert_eq!(req.attr("idemhook.key_digest").len(), 64);
    assert_eq!(req.attr("http.response.status_code"), "200");
    assert_eq!(req.resource.get("service.name").unwrap(), "idemhook");

    // Its phases, in order, within it; its share of the transaction linked to the
    // transaction's span, which links back and says what it committed.
    let phases: Vec<&str> = {
        let mut c = children(&spans, req);
        c.retain(|s| !s.name.starts_with("deliver "));
        c.sort_by_key(|s| s.start);
        c.iter().map(|s| s.name.as_str()).collect()
    };
    assert_eq!(phases, ["read body", "verify", "shard wait", "commit"]);
    for phase in children(&spans, req) {
        assert!(phase.start >= req.start, "{phase:?}");
        if !phase.name.starts_with("deliver ") {
            assert!(phase.end <= req.end, "{phase:?}");
        }
    }
    let commit = named(&spans, "commit")[0];
    let tx = named(&spans, "transaction")[0];
    assert_eq!(
        commit.links,
        vec![(tx.trace_id.clone(), tx.span_id.clone())]
    );
    assert_eq!(tx.links, vec![(req.trace_id.clone(), req.span_id.clone())]);
    assert_eq!(tx.attr("idemhook.batch.size"), "1");
    assert_eq!(tx.attr("idemhook.handlers"), "inbox forward");
    assert_eq!(tx.attr("idemhook.outcome"), "committed");
    assert_eq!(tx.attr("idemhook.retries"), "0");

    // The duplicate: its own request span, answered from the cache, no transaction.
    let dup = *requests
        .iter()
        .find(|s| s.attr("idemhook.outcome") == "duplicate")
        .expect("the duplicate's span");
    assert_eq!(
        dup.attr("idemhook.key_digest"),
        req.attr("idemhook.key_digest")
    );
    let dup_phases: BTreeSet<&str> = children(&spans, dup)
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(dup_phases, BTreeSet::from(["read body", "verify"]));

    // Attempt spans per destination, in the event's trace, under its request span; each
    // consumer got the context of the attempt that delivered (a pull consumer, the event's).
    // (A first attempt may fail while a broker connection is being made.)
    let attempt = |name: &str| {
        named(&spans, name)
            .into_iter()
            .find(|s| s.status == 0)
            .unwrap()
            .clone()
    };
    let context = |s: &Span| format!("00-{}-{}-01", s.trace_id, s.span_id);
    for name in ["deliver app", "deliver bus", "deliver ledger"] {
        for s in named(&spans, name) {
            assert_eq!(
                (s.trace_id.as_str(), s.parent.as_str()),
                (req.trace_id.as_str(), req.span_id.as_str()),
                "{s:?}"
            );
            assert_eq!(s.kind, 4, "a producer span: {s:?}");
            assert!(!s.attr("idemhook.attempt").is_empty(), "{s:?}");
        }
    }
    assert_eq!(
        attempt("deliver app").attr("http.response.status_code"),
        "200"
    );
    // What a consumer got is the context of one of its destination's attempts.
    let sent_by = |name: &str, traceparent: &str| {
        assert!(
            named(&spans, name)
                .iter()
                .any(|s| context(s) == traceparent),
            "{traceparent} is no attempt of {name}: {spans:#?}"
        );
    };
    let received = app.received();
    assert_eq!(
        received.last().unwrap().header("traceparent"),
        context(&attempt("deliver app"))
    );
    let stored = stream_messages(&js, "TRACES").await;
    assert_eq!(stored.len(), 1);
    sent_by("deliver bus", stored[0].header("traceparent").unwrap());
    let queued = drain(&channel, &queue).await;
    assert!(!queued.is_empty());
    for message in &queued {
        sent_by("deliver ledger", &amqp_header(message, "traceparent"));
    }
    let leased = &shelf["deliveries"][0];
    assert_eq!(leased["traceparent"], context(req).as_str(), "{shelf}");

    // Nothing a provider sent, and no secret, in any span; OTLP/HTTP protobuf on the wire.
    let secrets = [
        HEADER_SECRET,
        BODY_SECRET,
        "evt_traced",
        PULL_TOKEN,
        ADMIN_TOKEN,
        INCOMING_TRACE,
    ];
    for span in &spans {
        for (key, value) in span.attributes.iter().chain(span.resource.iter()) {
            for secret in secrets {
                assert!(
                    !value.contains(secret) && !key.contains(secret),
                    "{key} = {value} in {span:?}"
                );
            }
        }
    }
    assert!(collector
        .requests()
        .iter()
        .all(|r| r == "POST /v1/traces application/x-protobuf"));

    drop(server);
    undeclare(&channel, &exchange, &queue).await;
    db.drop_db().await;
}

async fn a_trusted_traceparent_is_continued_and_an_unsampled_one_is_not_exported(backend: Backend) {
    let db = TestDb::create(backend).await;
    let collector = Collector::start().await;
    let app = Receiver::start().await;
    let mut cfg = fwd_config(&db.url, &app.url(), "");
    cfg.push_str(&tracing_table(
        &collector,
        "trust_incoming_traceparent = true",
    ));
    let server = start(&cfg).await;
    let client = reqwest::Client::new();
    let unsampled_trace = "0af7651916cd43dd8448eb211c80319c";
    let sends = [
        (
            "e_unsampled",
            format!("00-{unsampled_trace}-b7ad6b7169203331-00"),
        ),
        (
            "e_trusted",
            format!("00-{INCOMING_TRACE}-{INCOMING_SPAN}-01"),
        ),
        ("e_garbage", "00-not-a-trace-context-01".to_owned()),
    ];
    for (i, (id, traceparent)) in sends.iter().enumerate() {
        let body = payment(id, &format!("order_{i}"), 100);
        let headers = [("traceparent", traceparent.as_str())];
        let (status, text, _) = post(&client, &server, "fwd", &body, &headers).await;
        assert_eq!(status, 200, "{text}");
    }
    app.wait_for_delivered(3, 30).await;
    let spans = collector
        .wait_for(30, |spans| {
            let delivered = named(spans, "deliver forward");
            delivered.iter().filter(|s| s.status == 0).count() >= 2
        })
        .await;

    // Trusted: the provider's trace id, under its span.
    let trusted = request_spans(&spans)
        .into_iter()
        .find(|s| s.trace_id == INCOMING_TRACE)
        .expect("the trusted context continued");
    assert_eq!(trusted.parent, INCOMING_SPAN);
    assert!(trusted.links.is_empty());
    // A malformed one: a new root, nothing linked.
    let fresh: Vec<&Span> = request_spans(&spans)
        .into_iter()
        .filter(|s| s.trace_id != INCOMING_TRACE)
        .collect();
    assert_eq!(fresh.len(), 1, "{spans:#?}");
    assert!(fresh[0].parent.is_empty() && fresh[0].links.is_empty());

    // Unsampled by the trusted provider: no span of it anywhere (the queue is first in,
    // first out: its spans would have gone before the others' last), and its consumer
    // still gets its trace id, unsampled.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        collector
            .spans()
            .iter()
            .all(|s| s.trace_id != unsampled_trace),
        "{spans:#?}"
    );
    let by_id = |id: &str| {
        app.received()
            .into_iter()
            .find(|r| r.header("idemhook-event-id") == id)
            .unwrap()
    };
    let sent = by_id("e_unsampled");
    let tp = sent.header("traceparent");
    assert!(
        tp.starts_with(&format!("00-{unsampled_trace}-")) && tp.ends_with("-00"),
        "{tp}"
    );
    let sent = by_id("e_trusted");
    assert!(
        named(&spans, "deliver forward")
            .iter()
            .any(|s| format!("00-{INCOMING_TRACE}-{}-01", s.span_id) == sent.header("traceparent")),
        "{sent:?}"
    );
    drop(server);
    db.drop_db().await;
}

/// A collector that takes the connection and never answers: every delivery is answered as
/// ever, the spans that do not fit the queue are dropped and counted. (The database plays no
/// part: SQLite only.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_that_hangs_costs_spans_never_requests() {
    let db = TestDb::create(Backend::Sqlite).await;
    let collector = Collector::hanging().await;
    let mut cfg = config(&db.url, "");
    cfg.push_str(&tracing_table(&collector, "queue = 64"));
    cfg.push_str("[default.idemhook.sources.plain]\nhandlers = [\"inbox\"]\n");
    let server = Server::start(&cfg, &ENV).await;
    let client = reqwest::Client::new();
    // Six spans an event: the queue (64) and the one batch held by the hung export (512)
    // overflow within 100 events.
    for i in 0..150 {
        let (status, text, _) = post(&client, &server, "plain", &body(&format!("e{i}")), &[]).await;
        assert_eq!(status, 200, "{text}");
    }
    server
        .wait_for_metric("idemhook_trace_spans_dropped_total", 100.0)
        .await;
    drop(server);
    db.drop_db().await;
}
