//! What every signing scheme shares: secrets, HMAC, constant-time comparison, replay windows.
//! The headers themselves are parsed in `wire::signature`, where they are fuzzed.
//!
//! Nothing here is hand-rolled: HMAC comes from `hmac`, digests from `sha2`, the comparison
//! from `subtle`. Secrets are held as bytes behind a type whose `Debug` prints nothing, so a
//! stray `{:?}` cannot leak one into a log.

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Sha256, Sha512};
use subtle::ConstantTimeEq;

use super::delivery::Delivery;
use crate::config::SignatureAlgorithm;

pub use wire::signature::{check_timestamp, parse_timestamp, SignatureError};

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
