//! What the ingest route reads of a request: its headers and declared length before the
//! body, then the body itself, bounded by the source's limit.

use rocket::data::{Data, ToByteUnit};
use rocket::http::HeaderMap;
use rocket::request::{FromRequest, Outcome, Request};
use tokio::io::AsyncReadExt;

/// The body limit used when Rocket.toml sets no `limits.webhook`.
pub const DEFAULT_BODY_LIMIT: u64 = 1024 * 1024;
/// Most header bytes (names and values) a delivery may carry. Providers send a few KiB; the
/// HTTP layer alone would accept hundreds.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;

/// The request's headers (borrowed from Rocket), taken before the body is read.
pub struct RequestMeta<'r> {
    pub(super) headers: &'r HeaderMap<'r>,
    pub(super) header_bytes: usize,
    pub(super) content_length: Option<u64>,
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for RequestMeta<'r> {
    type Error = std::convert::Infallible;

    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, Self::Error> {
        let headers = req.headers();
        let header_bytes = headers
            .iter()
            .map(|h| h.name().len() + h.value().len())
            .sum();
        let content_length = headers
            .get_one("Content-Length")
            .and_then(|v| v.parse().ok());
        Outcome::Success(RequestMeta {
            headers,
            header_bytes,
            content_length,
        })
    }
}

/// The buffer reserved for a body of unknown length (chunked): it grows as bytes arrive.
const UNKNOWN_LENGTH_RESERVE: u64 = 64 * 1024;

/// The whole body, or `None` when it is longer than `limit`. It is read straight into one
/// buffer sized from Content-Length; Rocket's `into_bytes` would go through an 8 KiB
/// zero-filled copy buffer per request, a visible share of the cost of a duplicate.
///
/// The buffer is the declared length (within the limit) plus the one byte that tells a body
/// at the limit from one over it, so a large body is never copied into a buffer twice its
/// size as a growing one would be (25 MiB bodies: about 50 MiB less at the peak of each). A
/// sender's claim costs no memory until its bytes arrive: the pages of a reserved buffer are
/// only touched as they are written, and the claim was charged to the in-flight budget.
pub(super) async fn read_body(
    body: Data<'_>,
    limit: u64,
    content_length: Option<u64>,
) -> std::io::Result<Option<Vec<u8>>> {
    let reserve = content_length.map_or(UNKNOWN_LENGTH_RESERVE, |declared| {
        declared.min(limit).saturating_add(1)
    });
    let mut buf = Vec::with_capacity(usize::try_from(reserve).unwrap_or(0));
    // One byte past the limit tells a body at the limit from one over it.
    body.open(limit.saturating_add(1).bytes())
        .read_to_end(&mut buf)
        .await?;
    Ok((buf.len() as u64 <= limit).then_some(buf))
}

/// The headers an event keeps for its handlers: names lowercased, in the order received.
pub(super) fn owned_headers(headers: &HeaderMap<'_>) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|h| (h.name().as_str().to_ascii_lowercase(), h.value().to_owned()))
        .collect()
}

/// At most `max` bytes of `s`, cut on a character boundary: a source name from the URL is
/// attacker-controlled and goes into the log.
pub(super) fn truncate(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
