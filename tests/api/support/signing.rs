//! Deliveries signed as the providers sign them, with the test sources' secrets.

use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::app::{GITHUB_SECRET, SHOPIFY_SECRET};

/// HMAC-SHA256 of the concatenated `parts` under `key`.
pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("any key length");
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().to_vec()
}

/// [`hmac_sha256`] under a text key, in lowercase hex.
pub fn hmac_hex(key: &str, parts: &[&[u8]]) -> String {
    hex::encode(hmac_sha256(key.as_bytes(), parts))
}

/// `X-Hub-Signature-256` of `body` for the `github` test source.
pub fn github_signature(body: &str) -> String {
    format!("sha256={}", hmac_hex(GITHUB_SECRET, &[body.as_bytes()]))
}

/// A GitHub delivery's headers: its signature, delivery GUID and event name.
pub fn github_headers<'a>(
    signature: &'a str,
    id: &'a str,
    event: &'a str,
) -> [(&'a str, &'a str); 3] {
    [
        ("X-Hub-Signature-256", signature),
        ("X-GitHub-Delivery", id),
        ("X-GitHub-Event", event),
    ]
}

/// `X-Shopify-Hmac-Sha256`: base64 of the HMAC-SHA256 of the body under the app's secret.
pub fn shopify_signature(body: &str) -> String {
    base64::engine::general_purpose::STANDARD
        .encode(hmac_sha256(SHOPIFY_SECRET.as_bytes(), &[body.as_bytes()]))
}

/// A Shopify delivery's headers: its signature, topic and event id.
pub fn shopify_headers<'a>(hmac: &'a str, topic: &'a str, id: &'a str) -> [(&'a str, &'a str); 3] {
    [
        ("X-Shopify-Hmac-Sha256", hmac),
        ("X-Shopify-Topic", topic),
        ("X-Shopify-Event-Id", id),
    ]
}
