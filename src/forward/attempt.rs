//! One delivery attempt: the signed request, what the app's answer means, and when to try
//! again.
//!
//! The request is Standard Webhooks (`webhook-id`, `webhook-timestamp`,
//! `webhook-signature: v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">`), so the app
//! verifies it with any Standard Webhooks library, plus `Idempotency-Key` (the same value as
//! `webhook-id`: one per event, on every attempt, every instance and every redelivery) and
//! the event's key parts.

use std::time::Duration;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use rand::Rng;

use super::metrics::Class;
use super::Target;
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

/// How much of a failed answer's body is kept as `last_error`.
const ERROR_EXCERPT: usize = 200;
/// How much of any answer's body is read (so the connection can be reused) before it is
/// dropped: an app answering gigabytes cannot hold the worker.
const BODY_READ_LIMIT: usize = 64 * 1024;

/// The `Idempotency-Key` (and `webhook-id`) of the event with this key digest.
pub fn idempotency_key(key_digest: &[u8]) -> String {
    format!("ih_{}", hex::encode(key_digest))
}

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

/// How an attempt ended.
pub struct Answer {
    pub class: Class,
    pub status: Option<u16>,
    /// `Retry-After` of a 429 or 503, in seconds.
    pub retry_after: Option<u64>,
    /// For a failure: what to show the operator.
    pub error: String,
}

impl Answer {
    pub fn delivered(&self) -> bool {
        self.class == Class::Success
    }
}

/// Sends the delivery once and reads (a bounded part of) the answer.
pub async fn send(
    client: &reqwest::Client,
    target: &Target,
    row: &delivery::Model,
    now: DateTime<Utc>,
) -> Answer {
    let id = idempotency_key(&row.key_digest);
    let timestamp = now.timestamp();
    let encode = |s: &str| utf8_percent_encode(s, HEADER_VALUE).to_string();
    let request = client
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
            signature(&target.secret, &id, timestamp, &row.payload),
        )
        .header("idemhook-source", encode(&row.source))
        .header("idemhook-event-type", encode(&row.event_type))
        .header("idemhook-event-id", encode(&row.event_id))
        .header("idemhook-attempt", row.attempts.to_string())
        .body(row.payload.clone());
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
    }
}

/// The wait before attempt `attempts + 1`: exponential from `base`, doubled per attempt, up
/// to `max`, with full jitter between the base and that bound (many deliveries failing
/// together do not retry together). A `Retry-After` longer than that wins, capped at `max`.
pub fn backoff(base: Duration, max: Duration, attempts: u32, retry_after: Option<u64>) -> Duration {
    let exp = base
        .saturating_mul(1u32 << attempts.saturating_sub(1).min(30))
        .min(max)
        .max(base);
    let jittered = if exp > base {
        rand::thread_rng().gen_range(base..=exp)
    } else {
        base
    };
    match retry_after {
        Some(secs) => jittered.max(Duration::from_secs(secs).min(max)),
        None => jittered,
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
    fn backoff_grows_from_the_base_to_the_cap_and_honours_retry_after() {
        let (base, max) = (Duration::from_millis(100), Duration::from_secs(1));
        for attempts in 1..40 {
            let d = backoff(base, max, attempts, None);
            assert!(d >= base && d <= max, "{attempts}: {d:?}");
        }
        assert_eq!(backoff(base, max, 1, None), base);
        assert_eq!(backoff(base, max, 1, Some(60)), max);
        assert!(backoff(base, Duration::from_secs(3600), 1, Some(5)) >= Duration::from_secs(5));
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
