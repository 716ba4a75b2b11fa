//! The `http` destination kind: one signed POST per attempt to the user's app.
//!
//! The request is Standard Webhooks (`webhook-id`, `webhook-timestamp`,
//! `webhook-signature: v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">`), so the app
//! verifies it with any Standard Webhooks library, plus `Idempotency-Key` (the same value as
//! `webhook-id`: one per event, on every attempt, every instance and every redelivery) and
//! the event's key parts.

use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use super::attempt::{idempotency_key, Answer, Fault, Transport};
use super::metrics::Class;
use crate::config::SignatureAlgorithm;
use crate::entities::delivery;
use crate::providers::signature::hmac;

/// Everything but RFC 3986's unreserved characters is escaped, so any UTF-8 id (spaces,
/// control characters, non-ASCII) survives a header and decodes to the exact bytes.
const HEADER_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A header value that decodes to `s`'s exact bytes (see [`HEADER_VALUE`]).
pub(super) fn header_value(s: &str) -> String {
    utf8_percent_encode(s, HEADER_VALUE).to_string()
}

/// How much of a failed answer's body is kept as `last_error`.
const ERROR_EXCERPT: usize = 200;
/// How much of any answer's body is read (so the connection can be reused) before it is
/// dropped: an app answering gigabytes cannot hold the worker.
const BODY_READ_LIMIT: usize = 64 * 1024;

/// `v1,<base64>` over `<id>.<timestamp>.<body>`.
pub fn signature(secret: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let ts = timestamp.to_string();
    let mac = hmac(
        SignatureAlgorithm::Sha256,
        secret,
        &[id.as_bytes(), b".", ts.as_bytes(), b".", body],
    );
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac)
    )
}

/// One app's address and the keys deliveries to it are signed with.
pub struct Http {
    /// Shared by every `http` destination: one pool of connections, reused across attempts.
    client: reqwest::Client,
    /// The destination's name, sent as `Idemhook-Destination`.
    destination: String,
    url: url::Url,
    /// The decoded `whsec_` keys: one while no rotation is under way. Each signs the request,
    /// so an app that verifies with either the old or the new key accepts it.
    secrets: Vec<Vec<u8>>,
    timeout: Duration,
}

impl Http {
    pub fn new(
        client: reqwest::Client,
        destination: &str,
        url: url::Url,
        secrets: Vec<Vec<u8>>,
        timeout: Duration,
    ) -> Self {
        Self {
            client,
            destination: destination.to_owned(),
            url,
            secrets,
            timeout,
        }
    }

    /// `webhook-signature`: one `v1,<base64>` per secret, space-separated (Standard Webhooks
    /// lets a request carry several, and a verifier accepts it when one of them holds).
    fn signatures(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        self.secrets
            .iter()
            .map(|secret| signature(secret, id, timestamp, body))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// The client every `http` destination shares: no redirects followed (a 3xx is the app's
/// answer, not an instruction to send the body elsewhere).
pub fn client() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .user_agent(concat!("idemhook/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| format!("cannot build the forwarding HTTP client: {e}"))
}

#[async_trait]
impl Transport for Http {
    /// Sends the delivery once and reads (a bounded part of) the answer.
    async fn send(&self, row: &delivery::Model, now: DateTime<Utc>) -> Answer {
        post(self, row, now).await
    }
}

async fn post(target: &Http, row: &delivery::Model, now: DateTime<Utc>) -> Answer {
    let client = &target.client;
    let id = idempotency_key(row.event_key());
    let timestamp = now.timestamp();
    let encode = header_value;
    let mut request = client
        .post(target.url.clone())
        .timeout(target.timeout)
        .header(
            "content-type",
            row.content_type.as_deref().unwrap_or("application/json"),
        )
        .header("idempotency-key", &id)
        .header("webhook-id", &id)
        .header("webhook-timestamp", timestamp.to_string())
        .header(
            "webhook-signature",
            target.signatures(&id, timestamp, &row.payload),
        )
        .header("idemhook-source", encode(&row.source))
        .header("idemhook-event-type", encode(&row.event_type))
        .header("idemhook-event-id", encode(&row.event_id))
        .header("idemhook-destination", &target.destination)
        .header("idemhook-attempt", row.attempts.to_string())
        .body(row.payload.clone());
    if let Some(traceparent) = &row.traceparent {
        request = request.header("traceparent", traceparent);
    }
    let mut response = match request.send().await {
        Ok(response) => response,
        Err(e) => return failure(e),
    };
    let status = response.status().as_u16();
    let retry_after = matches!(status, 429 | 503)
        .then(|| {
            response
                .headers()
                .get("retry-after")?
                .to_str()
                .ok()?
                .trim()
                .parse()
                .ok()
        })
        .flatten();
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) if body.len() < BODY_READ_LIMIT => body.extend_from_slice(&chunk),
            Ok(Some(_)) | Ok(None) => break,
            Err(e) if status >= 300 => return failure(e),
            Err(_) => break, // delivered: what follows the status does not matter
        }
    }
    let class = Class::of_status(status);
    let error = if class == Class::Success {
        String::new()
    } else {
        let excerpt = String::from_utf8_lossy(&body[..body.len().min(ERROR_EXCERPT)]);
        format!("HTTP {status}: {excerpt}")
    };
    Answer {
        class,
        status: Some(status),
        retry_after,
        error,
        fault: Fault::None,
    }
}

fn failure(e: reqwest::Error) -> Answer {
    let class = if e.is_timeout() {
        Class::Timeout
    } else {
        Class::Connect
    };
    // The URL is the operator's own; no secret is in it, but its query could hold a token.
    let e = e.without_url();
    Answer {
        class,
        status: None,
        retry_after: None,
        error: format!(
            "{}: {e}",
            if class == Class::Timeout {
                "timeout"
            } else {
                "connection"
            }
        ),
        fault: Fault::None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Standard Webhooks specification's own example: secret, id, timestamp, payload and
    /// the signature its reference libraries compute.
    #[test]
    fn signs_as_the_standard_webhooks_reference_does() {
        let secret = wire::signature::standard_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
            .expect("the spec's secret");
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            signature(&secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn header_values_are_percent_encoded_exactly() {
        let raw = "Évt 1/ü\u{1}~._-";
        let encoded = utf8_percent_encode(raw, HEADER_VALUE).to_string();
        assert!(encoded.is_ascii() && !encoded.contains(' '));
        let decoded = percent_encoding::percent_decode_str(&encoded)
            .decode_utf8()
            .unwrap();
        assert_eq!(decoded, raw);
    }
}
