//! What every signing scheme shares: secrets, HMAC, constant-time comparison, replay windows.
//!
//! Nothing here is hand-rolled: HMAC comes from `hmac`, digests from `sha2`, the comparison
//! from `subtle`. Secrets are held as bytes behind a type whose `Debug` prints nothing, so a
//! stray `{:?}` cannot leak one into a log.

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Sha256, Sha512};
use subtle::ConstantTimeEq;

use super::delivery::Delivery;
use crate::config::SignatureAlgorithm;

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

/// What a verified delivery's signature covered: the SHA-256 of the exact bytes signed, so
/// that the same signed bytes can be refused a second time under other, unsigned, key parts.
/// `None` for a source that runs unsigned.
pub type Signed = Option<[u8; 32]>;

/// The SHA-256 of the concatenated parts: what [`Signed`] holds.
pub fn signed_digest(parts: &[&[u8]]) -> [u8; 32] {
    use sha2::Digest;
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part);
    }
    hasher.finalize().into()
}

/// One signing secret.
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl Secret {
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// The secrets a source accepts. During a rotation both the old and the new one are listed,
/// and a signature valid under either passes.
#[derive(Clone, Debug)]
pub struct Secrets(Vec<Secret>);

impl Secrets {
    pub fn new(secrets: Vec<Secret>) -> Self {
        Self(secrets)
    }

    /// True if any candidate equals the HMAC of `parts` (concatenated) under any secret.
    /// Every secret and candidate is tried, whatever matches first, and each comparison is
    /// constant-time, so timing tells nothing about how close a forgery came.
    pub fn matches(
        &self,
        algorithm: SignatureAlgorithm,
        parts: &[&[u8]],
        candidates: &[Vec<u8>],
    ) -> bool {
        let mut found = subtle::Choice::from(0);
        for secret in &self.0 {
            let expected = hmac(algorithm, &secret.0, parts);
            for candidate in candidates {
                found |= expected.as_slice().ct_eq(candidate.as_slice());
            }
        }
        found.into()
    }
}

/// A source's signature policy: the secrets it accepts (`None` when it runs unsigned) and its
/// replay window.
pub struct Verifier {
    pub secrets: Option<Secrets>,
    pub tolerance_secs: u64,
}

impl Verifier {
    /// The schemes that sign the raw body alone (GitHub, Shopify): the decoded signature in
    /// `header` must be the HMAC-SHA256 of the body under one of the secrets.
    pub fn verify_body(
        &self,
        d: &Delivery<'_>,
        header: &'static str,
        decode: impl Fn(&str) -> Result<Vec<u8>, SignatureError>,
    ) -> Result<Signed, SignatureError> {
        let Some(secrets) = &self.secrets else {
            return Ok(None);
        };
        let value = d.header(header).ok_or(SignatureError::Missing(header))?;
        let signature = decode(value)?;
        if secrets.matches(SignatureAlgorithm::Sha256, &[d.body], &[signature]) {
            Ok(Some(*d.payload_sha256))
        } else {
            Err(SignatureError::Mismatch)
        }
    }
}

/// The HMAC of the concatenated parts.
pub fn hmac(algorithm: SignatureAlgorithm, key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    fn run<M: Mac + KeyInit>(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
        // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
        let mut mac = match <M as KeyInit>::new_from_slice(key) {
            Ok(mac) => mac,
            Err(_) => return Vec::new(),
        };
        for part in parts {
            mac.update(part);
        }
        mac.finalize().into_bytes().to_vec()
    }
    match algorithm {
        SignatureAlgorithm::Sha256 => run::<Hmac<Sha256>>(key, parts),
        SignatureAlgorithm::Sha512 => run::<Hmac<Sha512>>(key, parts),
    }
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
    if value.is_empty() || value.len() > 18 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SignatureError::Malformed {
            header,
            reason: "the timestamp is not a Unix time in seconds",
        });
    }
    value.parse().map_err(|_| SignatureError::Malformed {
        header,
        reason: "the timestamp is not a Unix time in seconds",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_checked_both_ways() {
        assert_eq!(check_timestamp(1000, 1300, 300), Ok(()));
        assert_eq!(check_timestamp(1600, 1300, 300), Ok(()));
        assert_eq!(
            check_timestamp(999, 1300, 300),
            Err(SignatureError::TooOld { tolerance: 300 })
        );
        assert_eq!(
            check_timestamp(1601, 1300, 300),
            Err(SignatureError::TooNew { tolerance: 300 })
        );
        assert!(check_timestamp(i64::MIN, i64::MAX, 300).is_err());
    }

    #[test]
    fn any_secret_and_any_candidate_may_match() {
        let secrets = Secrets::new(vec![
            Secret::new(b"old".to_vec()),
            Secret::new(b"new".to_vec()),
        ]);
        let good = hmac(SignatureAlgorithm::Sha256, b"new", &[b"body"]);
        assert!(secrets.matches(
            SignatureAlgorithm::Sha256,
            &[b"bo", b"dy"],
            &[vec![1], good.clone()]
        ));
        assert!(!secrets.matches(
            SignatureAlgorithm::Sha256,
            &[b"body!"],
            std::slice::from_ref(&good)
        ));
        assert!(!secrets.matches(SignatureAlgorithm::Sha512, &[b"body"], &[good]));
        assert!(!secrets.matches(SignatureAlgorithm::Sha256, &[b"body"], &[]));
    }

    #[test]
    fn secrets_do_not_print() {
        let s = Secrets::new(vec![Secret::new(b"hunter2".to_vec())]);
        assert!(!format!("{s:?}").contains("hunter2"));
    }

    #[test]
    fn timestamps_must_be_plain_digits() {
        for bad in ["", "-5", "+5", "1e9", " 1", "12345678901234567890", "１２"] {
            assert!(parse_timestamp(bad, "t").is_err(), "{bad:?}");
        }
        assert_eq!(parse_timestamp("1614265330", "t"), Ok(1614265330));
    }
}
