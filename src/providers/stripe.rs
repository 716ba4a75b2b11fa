//! `stripe`: `Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>…]`, an HMAC-SHA256 over
//! `<t>.<raw body>` keyed with the endpoint's signing secret (the whole `whsec_…` string).
//! Any `v1` may match (Stripe sends several while a secret is being rolled). The event id and
//! type are the body's `id` and `type`: a Stripe retry resends the same event object, so the
//! same `id`.

use super::body::{body_fields, required_string, ID_POINTER, TYPE_POINTER};
use super::delivery::{Delivery, ProviderError};
use super::signature::{check_timestamp, signed_digest, SignatureError, Signed, Verifier};
use crate::config::SignatureAlgorithm;
use wire::signature::stripe_header;

pub const SIGNATURE_HEADER: &str = wire::signature::STRIPE_HEADER;

pub struct Stripe {
    pub verifier: Verifier,
}

impl Stripe {
    pub fn verify(&self, d: &Delivery<'_>, now: i64) -> Result<Signed, SignatureError> {
        let Some(secrets) = &self.verifier.secrets else {
            return Ok(None);
        };
        let value = d
            .header(SIGNATURE_HEADER)
            .ok_or(SignatureError::Missing(SIGNATURE_HEADER))?;
        let header = stripe_header(value)?;
        let signed = [header.timestamp_text.as_bytes(), b".", d.body];
        if !secrets.matches(SignatureAlgorithm::Sha256, &signed, &header.signatures) {
            return Err(SignatureError::Mismatch);
        }
        check_timestamp(header.timestamp, now, self.verifier.tolerance_secs)?;
        Ok(Some(signed_digest(&signed)))
    }

    pub fn extract(&self, d: &Delivery<'_>) -> Result<(String, String), ProviderError> {
        let [event_type, id] = body_fields(d, [(&TYPE_POINTER, "type"), (&ID_POINTER, "id")])?;
        Ok((
            required_string(event_type, "/type", "type")?,
            required_string(id, "/id", "id")?,
        ))
    }
}
