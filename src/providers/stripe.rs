//! `stripe`: `Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>…]`, an HMAC-SHA256 over
//! `<t>.<raw body>` keyed with the endpoint's signing secret (the whole `whsec_…` string).
//! Any `v1` may match (Stripe sends several while a secret is being rolled). The event id and
//! type are the body's `id` and `type`: a Stripe retry resends the same event object, so the
//! same `id`.

use super::body::{body_fields, required_string, ID_POINTER, TYPE_POINTER};
use super::delivery::{Delivery, ProviderError};
use super::signature::{
    check_timestamp, parse_timestamp, signed_digest, SignatureError, Signed, Verifier,
};
use crate::config::SignatureAlgorithm;

pub const SIGNATURE_HEADER: &str = "Stripe-Signature";

pub struct Stripe {
    pub verifier: Verifier,
}

/// The parts of a `Stripe-Signature` header that matter: the timestamp as sent (it is signed
/// as text) and the decoded `v1` signatures. Other schemes (`v0`) are ignored, as Stripe's
/// libraries do.
#[derive(Debug, PartialEq, Eq)]
pub struct StripeHeader<'a> {
    pub timestamp_text: &'a str,
    pub timestamp: i64,
    pub signatures: Vec<Vec<u8>>,
}

pub fn parse_header(value: &str) -> Result<StripeHeader<'_>, SignatureError> {
    let malformed = |reason| SignatureError::Malformed {
        header: SIGNATURE_HEADER,
        reason,
    };
    let mut timestamp_text = None;
    let mut signatures = Vec::new();
    for item in value.split(',') {
        let Some((key, val)) = item.trim().split_once('=') else {
            continue;
        };
        match key {
            "t" if timestamp_text.is_none() => timestamp_text = Some(val),
            "v1" => {
                if let Ok(sig) = hex::decode(val) {
                    signatures.push(sig);
                }
            }
            _ => {}
        }
    }
    let timestamp_text = timestamp_text.ok_or_else(|| malformed("no t= timestamp"))?;
    if signatures.is_empty() {
        return Err(malformed("no v1= signature"));
    }
    Ok(StripeHeader {
        timestamp_text,
        timestamp: parse_timestamp(timestamp_text, SIGNATURE_HEADER)?,
        signatures,
    })
}

impl Stripe {
    pub fn verify(&self, d: &Delivery<'_>, now: i64) -> Result<Signed, SignatureError> {
        let Some(secrets) = &self.verifier.secrets else {
            return Ok(None);
        };
        let value = d
            .header(SIGNATURE_HEADER)
            .ok_or(SignatureError::Missing(SIGNATURE_HEADER))?;
        let header = parse_header(value)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_several_signatures_and_ignores_other_schemes() {
        let h = parse_header("t=1614265330,v1=00ff,v0=abcd,v1=zz,v1=10").unwrap();
        assert_eq!(h.timestamp, 1614265330);
        assert_eq!(h.signatures, vec![vec![0x00, 0xff], vec![0x10]]);
    }

    #[test]
    fn refuses_headers_without_timestamp_or_signature() {
        for bad in [
            "",
            "v1=00ff",
            "t=123",
            "t=abc,v1=00",
            "t=1,v1=zz",
            ",,,",
            "t==,v1==",
        ] {
            assert!(
                matches!(parse_header(bad), Err(SignatureError::Malformed { .. })),
                "{bad:?}"
            );
        }
    }
}
