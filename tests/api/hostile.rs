//! Hostile input over a raw socket, to the real binary: requests no HTTP client would send
//! (invalid UTF-8 and NUL in headers and ids, a huge header, 100,000-deep JSON, duplicate id
//! headers, path tricks, a Content-Length shorter than the body…). Every one is answered with
//! the 4xx it has earned, never a 5xx, a panic or a silent close, and nothing is recorded. The
//! property tests of the signature parsers are in `provider_vectors.rs`.

use crate::support::*;

/// A corpus of malformed and hostile requests, each with the status it must get: 400 for what
/// cannot be read (from the HTTP layer for a NUL in a header or a garbage request line), 401
/// for a bad signature, 404 for a path that names no source, 413 for a body over the limit,
/// 431 for headers over what a webhook needs. A closed connection (status 0) is a failure:
/// every case here can be answered, the two "too large" ones included (the server answers
/// before it has read everything, and the answer still arrives). The server stays up, and
/// nothing is recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_requests_get_4xx_and_record_nothing() {
    let db = TestDb::create(Backend::Sqlite).await;
    let mut server = Server::start(&config(&db.url, ""), &ENV).await;
    let nested = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let huge_header = vec![b'a'; 200 * 1024];
    let corpus: Vec<(&str, u16, Vec<u8>)> = vec![
        (
            "invalid UTF-8 id header, source that needs an id",
            400,
            request(
                "/webhooks/strict",
                &[("Webhook-Id", b"\xff\xfe"), ("Webhook-Type", b"t")],
                b"{}",
            ),
        ),
        (
            "invalid UTF-8 id header, signed source",
            401,
            request(
                "/webhooks/std",
                &[
                    ("webhook-id", b"\xff"),
                    ("webhook-timestamp", b"1"),
                    ("webhook-signature", b"v1,AAAA"),
                ],
                b"{}",
            ),
        ),
        (
            "invalid UTF-8 in the JSON id",
            400,
            request("/webhooks/demo", &[], b"{\"id\":\"\xff\",\"type\":\"t\"}"),
        ),
        (
            "NUL in the id",
            400,
            request("/webhooks/demo", &[], br#"{"id":"a\u0000b","type":"t"}"#),
        ),
        (
            "NUL in the type header",
            400,
            request(
                "/webhooks/demo",
                &[("Webhook-Type", b"a\x00b")],
                br#"{"id":"x"}"#,
            ),
        ),
        (
            "huge header",
            431,
            request(
                "/webhooks/demo",
                &[("X-Big", &huge_header)],
                br#"{"id":"x","type":"t"}"#,
            ),
        ),
        (
            "deeply nested JSON",
            400,
            request("/webhooks/demo", &[], nested.as_bytes()),
        ),
        (
            "form body",
            400,
            request(
                "/webhooks/demo",
                &[("Content-Type", b"application/x-www-form-urlencoded")],
                b"id=1&type=t",
            ),
        ),
        ("empty body", 400, request("/webhooks/demo", &[], b"")),
        (
            "duplicate id headers",
            400,
            request(
                "/webhooks/demo",
                &[("Webhook-Id", b"a"), ("Webhook-Id", b"b")],
                br#"{"type":"t"}"#,
            ),
        ),
        (
            "path traversal",
            404,
            request(
                "/webhooks/..%2F..%2Fetc%2Fpasswd",
                &[],
                br#"{"id":"x","type":"t"}"#,
            ),
        ),
        (
            "dot segments",
            404,
            request("/webhooks/../admin", &[], br#"{"id":"x","type":"t"}"#),
        ),
        (
            "unknown source with NUL",
            404,
            request("/webhooks/a%00b", &[], br#"{"id":"x","type":"t"}"#),
        ),
        (
            "id too long",
            400,
            request(
                "/webhooks/demo",
                &[],
                format!(r#"{{"id":"{}","type":"t"}}"#, "x".repeat(1025)).as_bytes(),
            ),
        ),
        (
            "type is an object",
            400,
            request("/webhooks/demo", &[], br#"{"id":"x","type":{"a":1}}"#),
        ),
        (
            "stripe without signature",
            401,
            request("/webhooks/stripe", &[], br#"{"id":"x","type":"t"}"#),
        ),
        (
            "stripe garbage signature",
            401,
            request(
                "/webhooks/stripe",
                &[("Stripe-Signature", b"t=,v1=,,,==")],
                br#"{"id":"x","type":"t"}"#,
            ),
        ),
        (
            "body over the limit",
            413,
            request("/webhooks/demo", &[], &vec![b' '; 1024 * 1024 + 10]),
        ),
        (
            // The body's first five bytes, `{"id"`, are not JSON; the rest must not be read
            // as the event, nor as a second request on the connection.
            "Content-Length shorter than the body",
            400,
            request_declaring(5, "/webhooks/demo", &[], br#"{"id":"x","type":"t"}"#),
        ),
        (
            "GET on the ingest path",
            404,
            b"GET /webhooks/demo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(),
        ),
        (
            "garbage request line",
            400,
            b"\x00\x01\x02 / HTTP/1.1\r\n\r\n".to_vec(),
        ),
    ];
    let mut wrong = Vec::new();
    for (name, expected, bytes) in &corpus {
        let status = raw(&server, bytes).await;
        if status != *expected {
            wrong.push(format!("{name}: answered {status}, not {expected}"));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
    // Still serving, and nothing but this one event was recorded.
    let client = reqwest::Client::new();
    let (status, text, _) = post(&client, &server, "demo", &payment("after", "o", 1), &[]).await;
    assert_eq!(status, 200, "{text}");
    let r = rows(&db.connect().await).await;
    assert_eq!((r.processed, r.inbox, r.failed), (1, 1, 0));
    // Every line the server wrote, up to its exit: no panic among them.
    drop(client);
    server.signal("TERM");
    let status = server.wait().await;
    assert!(status.success(), "exit status {status}");
    let logs = server.logs();
    assert!(!logs.iter().any(|l| l.contains("panicked")), "{logs:#?}");
    eprintln!("hostile corpus: {} requests, all refused", corpus.len());
    db.drop_db().await;
}
