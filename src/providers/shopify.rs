//! `shopify`: `X-Shopify-Hmac-Sha256: <base64>`, an HMAC-SHA256 over the raw body keyed with
//! the app's client secret. No timestamp is signed. The id is `X-Shopify-Event-Id` (the same
//! for every webhook one event triggers and for retries), else `X-Shopify-Webhook-Id` (older
//! API versions; also stable across retries); the type is `X-Shopify-Topic`.

use super::delivery::{required_header, Delivery, ProviderError};
use super::signature::{SignatureError, Signed, Verifier};

pub const SIGNATURE_HEADER: &str = wire::signature::SHOPIFY_HEADER;
pub const EVENT_ID_HEADER: &str = "X-Shopify-Event-Id";
pub const WEBHOOK_ID_HEADER: &str = "X-Shopify-Webhook-Id";
pub const TYPE_HEADER: &str = "X-Shopify-Topic";

pub struct Shopify {
    pub verifier: Verifier,
}

impl Shopify {
    pub fn verify(&self, d: &Delivery<'_>, _now: i64) -> Result<Signed, SignatureError> {
        self.verifier
            .verify_body(d, SIGNATURE_HEADER, wire::signature::shopify_signature)
    }

    pub fn extract(&self, d: &Delivery<'_>) -> Result<(String, String), ProviderError> {
        let event_type = required_header(d, TYPE_HEADER, "type")?;
        let id = match d.key_header(EVENT_ID_HEADER)? {
            Some(id) => id.to_owned(),
            None => required_header(d, WEBHOOK_ID_HEADER, "id")?,
        };
        Ok((event_type, id))
    }
}
