//! `standard`: Standard Webhooks (standardwebhooks.com), which Svix also sends.
//!
//! `webhook-signature: v1,<base64> [v1,<base64> …]`, HMAC-SHA256 over
//! `<webhook-id>.<webhook-timestamp>.<raw body>`, keyed with the base64 part of the
//! `whsec_<base64>` secret. The `svix-id`, `svix-timestamp` and `svix-signature` names are
//! accepted too. The id is `webhook-id` (the same on every retry of a message, by the spec),
//! the type the body's `type`.

use base64::Engine as _;

use super::body::{body_fields, required_string, TYPE_POINTER};
use super::delivery::{Delivery, ProviderError};
use super::signature::{
    check_timestamp, parse_timestamp, signed_digest, SignatureError, Signed, Verifier,
};
use crate::config::SignatureAlgorithm;

pub const ID_HEADER: &str = "webhook-id";
pub const TIMESTAMP_HEADER: &str = "webhook-timestamp";
pub const SIGNATURE_HEADER: &str = "webhook-signature";
const SVIX: [&str; 3] = ["svix-id", "svix-timestamp", "svix-signature"];

pub struct Standard {
    pub verifier: Verifier,
}

/// `whsec_<base64>` (or bare base64) to key bytes.
pub fn decode_secret(secret: &str) -> Result<Vec<u8>, String> {
    let b64 = secret.strip_prefix("whsec_").unwrap_or(secret);
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|_| "a Standard Webhooks secret is whsec_ followed by base64".to_owned())
}

/// The `v1` signatures of a `webhook-signature` header; other versions (`v1a`, asymmetric)
/// are skipped.
pub fn parse_signatures(value: &str) -> Result<Vec<Vec<u8>>, SignatureError> {
    let signatures: Vec<Vec<u8>> = value
        .split(' ')
        .filter_map(|item| item.strip_prefix("v1,"))
        .filter_map(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok())
        .collect();
    if signatures.is_empty() {
        return Err(SignatureError::Malformed {
            header: SIGNATURE_HEADER,
            reason: "no v1,<base64> signature",
        });
    }
    Ok(signatures)
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
        let candidates = parse_signatures(signature)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_space_separated_versions() {
        let sigs = parse_signatures("v1a,xxx v1,AAE= v2,AAA= v1,/w==").unwrap();
        assert_eq!(sigs, vec![vec![0, 1], vec![0xff]]);
        assert!(parse_signatures("v1a,AAE=").is_err());
        assert!(parse_signatures("v1,***").is_err());
        assert!(parse_signatures("").is_err());
    }

    #[test]
    fn secrets_are_whsec_base64() {
        assert_eq!(decode_secret("whsec_AAE=").unwrap(), vec![0, 1]);
        assert_eq!(decode_secret("AAE=").unwrap(), vec![0, 1]);
        assert!(decode_secret("whsec_not base64!").is_err());
    }
}
