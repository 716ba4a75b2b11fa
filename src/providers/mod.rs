//! Per-provider knowledge: how a delivery is signed, and where its event id and type live.
//!
//! | provider   | signature                                   | id                    | type             |
//! |------------|---------------------------------------------|-----------------------|------------------|
//! | `stripe`   | `Stripe-Signature` over `<t>.<body>`        | body `id`             | body `type`      |
//! | `github`   | `X-Hub-Signature-256` over the body         | `X-GitHub-Delivery`   | `X-GitHub-Event` |
//! | `shopify`  | `X-Shopify-Hmac-Sha256` over the body       | `X-Shopify-Event-Id`  | `X-Shopify-Topic`|
//! | `standard` | `webhook-signature` over `<id>.<t>.<body>`  | `webhook-id`          | body `type`      |
//! | `generic`  | optional, configurable HMAC                 | header/pointer/hash   | header/pointer   |
//!
//! Everything here runs on the request task, before the event reaches a shard: a forged,
//! replayed or malformed delivery costs no queue slot and writes nothing.
//!
//! - [`delivery`]: the request as a provider sees it (borrowed headers, raw body), and
//!   [`ProviderError`].
//! - [`signature`]: secrets, HMAC, constant-time comparison, timestamps; [`Verifier`].
//! - [`body`]: key parts read from the body without building a document (the reader and
//!   the header parsers are in the `wire` crate, with few dependencies, where they are fuzzed).
//! - one file per provider, and this file's [`Provider`], which dispatches to them.
//! - [`sources`]: the configured sources, built at launch (secrets, handlers, metrics).

pub mod body;
pub mod body_limit;
pub mod delivery;
pub mod generic;
pub mod github;
pub mod shopify;
pub mod signature;
pub mod sources;
pub mod standard;
pub mod stripe;

pub use delivery::{Delivery, ProviderError};
pub use signature::Verifier;
pub use sources::{Source, Sources};
/// The body reader lives in `wire` (fuzzed there); re-exported for the handlers' pointers.
pub use wire::pointer;

use signature::{SignatureError, Signed};

pub enum Provider {
    Generic(Box<generic::Generic>),
    Stripe(stripe::Stripe),
    Github(github::Github),
    Shopify(shopify::Shopify),
    Standard(standard::Standard),
}

impl Provider {
    /// Checks the delivery's signature (and timestamp, for schemes that sign one) at `now`,
    /// Unix seconds. `Ok(Some(digest))`: verified, and `digest` is the SHA-256 of the bytes
    /// the signature covers; `Ok(None)`: the source runs unsigned.
    pub fn verify(&self, d: &Delivery<'_>, now: i64) -> Result<Signed, SignatureError> {
        match self {
            Provider::Generic(p) => p.verify(d, now),
            Provider::Stripe(p) => p.verify(d, now),
            Provider::Github(p) => p.verify(d, now),
            Provider::Shopify(p) => p.verify(d, now),
            Provider::Standard(p) => p.verify(d, now),
        }
    }

    /// (event type, event id) of the delivery.
    pub fn extract(&self, d: &Delivery<'_>) -> Result<(String, String), ProviderError> {
        match self {
            Provider::Generic(p) => p.extract(d),
            Provider::Stripe(p) => p.extract(d),
            Provider::Github(p) => p.extract(d),
            Provider::Shopify(p) => p.extract(d),
            Provider::Standard(p) => p.extract(d),
        }
    }
}
