//! Signature headers, parsed: what each provider sends, decoded into the candidate MACs and
//! the timestamp it claims. Verifying them (HMAC, constant-time comparison) is the service's
//! job; this is only the reading of attacker-controlled text, which is what gets fuzzed.

use base64::Engine as _;

pub const STRIPE_HEADER: &str = "Stripe-Signature";
pub const STANDARD_HEADER: &str = "webhook-signature";
pub const GITHUB_HEADER: &str = "X-Hub-Signature-256";
pub const SHOPIFY_HEADER: &str = "X-Shopify-Hmac-Sha256";

/// Why a delivery's signature was refused. Answered 401; the message says which check failed,
/// never what was expected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignatureError {
    #[error("the {0} header is missing")]
    Missing(&'static str),
    #[error("the {header} header is malformed: {reason}")]
    Malformed {
        header: &'static str,
        reason: &'static str,
    },
    #[error("the signature does not match")]
    Mismatch,
    #[error("the signed timestamp is more than {tolerance} s in the past (a replay, or a delivery held too long)")]
    TooOld { tolerance: u64 },
    #[error("the signed timestamp is more than {tolerance} s in the future (clock skew)")]
    TooNew { tolerance: u64 },
}

fn malformed(header: &'static str, reason: &'static str) -> SignatureError {
    SignatureError::Malformed { header, reason }
}

/// Refuses a signed timestamp further than `tolerance` seconds from `now`, either way.
pub fn check_timestamp(timestamp: i64, now: i64, tolerance: u64) -> Result<(), SignatureError> {
    let age = i128::from(now) - i128::from(timestamp);
    if age > i128::from(tolerance) {
        Err(SignatureError::TooOld { tolerance })
    } else if -age > i128::from(tolerance) {
        Err(SignatureError::TooNew { tolerance })
    } else {
        Ok(())
    }
}

/// A Unix timestamp in seconds, as every scheme sends it: ASCII digits only.
pub fn parse_timestamp(value: &str, header: &'static str) -> Result<i64, SignatureError> {
    const REASON: &str = "the timestamp is not a Unix time in seconds";
    if value.is_empty() || value.len() > 18 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(malformed(header, REASON));
    }
    value.parse().map_err(|_| malformed(header, REASON))
}

/// A `Stripe-Signature` header: `t=<unix>,v1=<hex>[,v1=<hex>…]` (other schemes ignored).
#[derive(Debug)]
pub struct StripeHeader<'a> {
    /// The timestamp exactly as sent: it is part of what is signed.
    pub timestamp_text: &'a str,
    pub timestamp: i64,
    pub signatures: Vec<Vec<u8>>,
}

pub fn stripe_header(value: &str) -> Result<StripeHeader<'_>, SignatureError> {
    let mut timestamp_text = None;
    let mut signatures = Vec::new();
    for item in value.split(',') {
        let Some((key, val)) = item.trim().split_once('=') else {
            continue;
        };
        match key {
            // The first `t` counts: a second one appended cannot move the window.
            "t" if timestamp_text.is_none() => timestamp_text = Some(val),
            // A v1 that is not hex cannot match; skip it rather than fail the others.
            "v1" => {
                if let Ok(sig) = hex::decode(val) {
                    signatures.push(sig);
                }
            }
            _ => {}
        }
    }
    let timestamp_text = timestamp_text.ok_or(malformed(STRIPE_HEADER, "no t= timestamp"))?;
    if signatures.is_empty() {
        return Err(malformed(STRIPE_HEADER, "no v1= signature"));
    }
    Ok(StripeHeader {
        timestamp_text,
        timestamp: parse_timestamp(timestamp_text, STRIPE_HEADER)?,
        signatures,
    })
}

/// The `v1` signatures of a Standard Webhooks `webhook-signature` header (space-separated
/// `v1,<base64>`); other versions (`v1a`, asymmetric) are skipped.
pub fn standard_signatures(value: &str) -> Result<Vec<Vec<u8>>, SignatureError> {
    let signatures: Vec<Vec<u8>> = value
        .split(' ')
        .filter_map(|item| item.strip_prefix("v1,"))
        .filter_map(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok())
        .collect();
    if signatures.is_empty() {
        return Err(malformed(STANDARD_HEADER, "no v1,<base64> signature"));
    }
    Ok(signatures)
}

/// A Standard Webhooks secret, `whsec_<base64>` (or bare base64), to key bytes.
pub fn standard_secret(secret: &str) -> Result<Vec<u8>, String> {
    let b64 = secret.strip_prefix("whsec_").unwrap_or(secret);
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|_| "a Standard Webhooks secret is whsec_ followed by base64".to_owned())
}

/// GitHub's `X-Hub-Signature-256: sha256=<hex>`.
pub fn github_signature(value: &str) -> Result<Vec<u8>, SignatureError> {
    let hex_sig = value
        .strip_prefix("sha256=")
        .ok_or(malformed(GITHUB_HEADER, "expected sha256=<hex>"))?;
    hex::decode(hex_sig).map_err(|_| malformed(GITHUB_HEADER, "the signature is not hex"))
}

/// Shopify's `X-Shopify-Hmac-Sha256: <base64>` (surrounding spaces tolerated).
pub fn shopify_signature(value: &str) -> Result<Vec<u8>, SignatureError> {
    base64::engine::general_purpose::STANDARD
        .decode(value.trim())
        .map_err(|_| malformed(SHOPIFY_HEADER, "the signature is not base64"))
}

/// How a generic source's signature is written after its prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Hex,
    Base64,
}

/// A generic source's signature header: `<prefix><hex or base64>`. `header` names the header
/// in errors.
pub fn generic_signature(
    value: &str,
    prefix: &str,
    encoding: Encoding,
    header: &'static str,
) -> Result<Vec<u8>, SignatureError> {
    let encoded = value
        .strip_prefix(prefix)
        .ok_or(malformed(header, "the configured prefix is missing"))?;
    match encoding {
        Encoding::Hex => {
            hex::decode(encoded).map_err(|_| malformed(header, "the signature is not hex"))
        }
        Encoding::Base64 => base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|_| malformed(header, "the signature is not base64")),
    }
}

#[cfg(test)]
mod tests;
