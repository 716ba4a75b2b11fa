//! Hostile input over a raw socket, to the real binary: requests no HTTP client would send
//! (invalid UTF-8 and NUL in headers and ids, a huge header, 100,000-deep JSON, duplicate id
//! headers, path tricks, a Content-Length shorter than the body…). Every one is refused with
//! a 4xx (or the connection is closed), never a 5xx or a panic, and nothing is recorded. The
//! property tests of the signature parsers are in `provider_vectors.rs`.

use crate::support::*;

/// A corpus of malformed and hostile requests: every one is answered 4xx (or refused by the
/// HTTP layer), never 5xx, the server stays up, and nothing is recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_requests_get_4xx_and_record_nothing() {
    let db = TestDb::create(Backend::Sqlite).await;
    let mut server = Server::start(&config(&db.url, ""), &ENV).await;
    let nested = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let huge_header = vec![b'a'; 200 * 1024];
    let corpus: Vec<(&str, Vec<u8>)> = vec![
        (
            "invalid UTF-8 id header, source that needs an id",
            request(
                "/webhooks/strict",
                &[("Webhook-Id", b"\xff\xfe"), ("Webhook-Type", b"t")],
                b"{}",
            ),
        ),
        (
            "invalid UTF-8 id header, signed source",
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
            request("/webhooks/demo", &[], b"{\"id\":\"\xff\",\"type\":\"t\"}"),
        ),
        (
            "NUL in the id",
            request("/webhooks/demo", &[], br#"{"id":"a\u0000b","type":"t"}"#),
        ),
        (
            "NUL in the type header",
            request(
                "/webhooks/demo",
                &[("Webhook-Type", b"a\x00b")],
                br#"{"id":"x"}"#,
            ),
        ),
        (
            "huge header",
            request(
                "/webhooks/demo",
                &[("X-Big", &huge_header)],
                br#"{"id":"x","type":"t"}"#,
            ),
        ),
        (
            "deeply nested JSON",
            request("/webhooks/demo", &[], nested.as_bytes()),
        ),
        (
            "form body",
            request(
                "/webhooks/demo",
                &[("Content-Type", b"application/x-www-form-urlencoded")],
                b"id=1&type=t",
            ),
        ),
        ("empty body", request("/webhooks/demo", &[], b"")),
        (
            "duplicate id headers",
            request(
                "/webhooks/demo",
                &[("Webhook-Id", b"a"), ("Webhook-Id", b"b")],
                br#"{"type":"t"}"#,
            ),
        ),
        (
            "path traversal",
            request(
                "/webhooks/..%2F..%2Fetc%2Fpasswd",
                &[],
                br#"{"id":"x","type":"t"}"#,
            ),
        ),
        (
            "dot segments",
            request("/webhooks/../admin", &[], br#"{"id":"x","type":"t"}"#),
        ),
        (
            "unknown source with NUL",
            request("/webhooks/a%00b", &[], br#"{"id":"x","type":"t"}"#),
        ),
        (
            "id too long",
            request(
                "/webhooks/demo",
                &[],
                format!(r#"{{"id":"{}","type":"t"}}"#, "x".repeat(1025)).as_bytes(),
            ),
        ),
        (
            "type is an object",
            request("/webhooks/demo", &[], br#"{"id":"x","type":{"a":1}}"#),
        ),
        (
            "stripe without signature",
            request("/webhooks/stripe", &[], br#"{"id":"x","type":"t"}"#),
        ),
        (
            "stripe garbage signature",
            request(
                "/webhooks/stripe",
                &[("Stripe-Signature", b"t=,v1=,,,==")],
                br#"{"id":"x","type":"t"}"#,
            ),
        ),
        (
            "body over the limit",
            request("/webhooks/demo", &[], &vec![b' '; 1024 * 1024 + 10]),
        ),
        (
            // The body's first five bytes, `{"id"`, are not JSON; the rest must not be read
            // as the event, nor as a second request on the connection.
            "Content-Length shorter than the body",
            request_declaring(5, "/webhooks/demo", &[], br#"{"id":"x","type":"t"}"#),
        ),
        (
            "GET on the ingest path",
            b"GET /webhooks/demo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(),
        ),
        (
            "garbage request line",
            b"\x00\x01\x02 / HTTP/1.1\r\n\r\n".to_vec(),
        ),
    ];
    for (name, bytes) in &corpus {
        let status = raw(&server, bytes).await;
        assert!(
            (400..500).contains(&status) || status == 0,
            "{name}: answered {status}"
        );
    }
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
