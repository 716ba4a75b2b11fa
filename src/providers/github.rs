//! `github`: `X-Hub-Signature-256: sha256=<hex>`, an HMAC-SHA256 over the raw body. GitHub
//! signs no timestamp, so there is no replay window: a captured delivery stays valid, and
//! only the dedupe key stops it from being applied twice. The id is `X-GitHub-Delivery`, a
//! GUID that GitHub keeps when you redeliver from the UI or API; the type is `X-GitHub-Event`.

use super::delivery::{required_header, Delivery, ProviderError};
use super::signature::{SignatureError, Signed, Verifier};

pub const SIGNATURE_HEADER: &str = wire::signature::GITHUB_HEADER;
pub const ID_HEADER: &str = "X-GitHub-Delivery";
pub const TYPE_HEADER: &str = "X-GitHub-Event";

pub struct Github {
    pub verifier: Verifier,
}

impl Github {
    pub fn verify(&self, d: &Delivery<'_>, _now: i64) -> Result<Signed, SignatureError> {
        self.verifier
            .verify_body(d, SIGNATURE_HEADER, wire::signature::github_signature)
    }

    pub fn extract(&self, d: &Delivery<'_>) -> Result<(String, String), ProviderError> {
        Ok((
            required_header(d, TYPE_HEADER, "type")?,
            required_header(d, ID_HEADER, "id")?,
        ))
    }
}
