//! `standard`: Standard Webhooks (standardwebhooks.com), which Svix also sends.
//!
//! `webhook-signature: v1,<base64> [v1,<base64> …]`, HMAC-SHA256 over
//! `<webhook-id>.<webhook-timestamp>.<raw body>`, keyed with the base64 part of the
//! `whsec_<base64>` secret. The `svix-id`, `svix-timestamp` and `svix-signature` names are
//! accepted too. The id is `webhook-id` (the same on every retry of a message, by the spec),
//! the type the body's `type`.

use super::body::{body_fields, required_string, TYPE_POINTER};
use super::delivery::{Delivery, ProviderError};
use super::signature::{
    check_timestamp, parse_timestamp, signed_digest, SignatureError, Signed, Verifier,
};
use crate::config::SignatureAlgorithm;
use wire::signature::standard_signatures;

pub const ID_HEADER: &str = "webhook-id";
pub const TIMESTAMP_HEADER: &str = "webhook-timestamp";
pub const SIGNATURE_HEADER: &str = wire::signature::STANDARD_HEADER;
const SVIX: [&str; 3] = ["svix-id", "svix-timestamp", "svix-signature"];

pub struct Standard {
    pub verifier: Verifier,
}

/// The (id, timestamp, signature) header values: the `webhook-` set, or the `svix-` one.
fn headers<'a>(d: &'a Delivery<'_>) -> [Option<&'a str>; 3] {
    let standard = [ID_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER].map(|h| d.header(h));
    if standard.iter().any(Option::is_some) {
        standard
    } else {
        SVIX.map(|h| d.header(h))
    }
}

impl Standard {
    pub fn verify(&self, d: &Delivery<'_>, now: i64) -> Result<Signed, SignatureError> {
        let Some(secrets) = &self.verifier.secrets else {
            return Ok(None);
        };
        let [id, timestamp, signature] = headers(d);
        let id = id.ok_or(SignatureError::Missing(ID_HEADER))?;
        let timestamp_text = timestamp.ok_or(SignatureError::Missing(TIMESTAMP_HEADER))?;
        let signature = signature.ok_or(SignatureError::Missing(SIGNATURE_HEADER))?;
        let timestamp = parse_timestamp(timestamp_text, TIMESTAMP_HEADER)?;
        let candidates = standard_signatures(signature)?;
        let signed = [id.as_bytes(), b".", timestamp_text.as_bytes(), b".", d.body];
        if !secrets.matches(SignatureAlgorithm::Sha256, &signed, &candidates) {
            return Err(SignatureError::Mismatch);
        }
        check_timestamp(timestamp, now, self.verifier.tolerance_secs)?;
        Ok(Some(signed_digest(&signed)))
    }

    pub fn extract(&self, d: &Delivery<'_>) -> Result<(String, String), ProviderError> {
        let name = if d.header(ID_HEADER).is_some() {
            ID_HEADER
        } else {
            SVIX[0]
        };
        let id = d.key_header(name)?.ok_or(ProviderError::MissingHeader {
            what: "id",
            header: ID_HEADER,
        })?;
        let [event_type] = body_fields(d, [(&TYPE_POINTER, "type")])?;
        Ok((required_string(event_type, "/type", "type")?, id.to_owned()))
    }
}
