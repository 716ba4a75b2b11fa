//! The parsers that read a webhook delivery's untrusted bytes before anything else does:
//! the JSON-pointer reader that finds key parts in a body, every provider's signature-header
//! parser, and the rules by which a key is read from headers and body.
//!
//! They live in their own crate, with few dependencies, for one reason: `fuzz/` instruments
//! them with libFuzzer, and an instrumented build must not recompile Rocket and SeaORM. The
//! service (`idemhook::providers`) wraps them with what needs its configuration and its HTTP
//! types; nothing here allocates a secret or touches a header map.

#[doc(hidden)]
pub mod checks;
pub mod key;
pub mod pointer;
pub mod signature;

pub use pointer::{find, Found, Pointer};
pub use signature::SignatureError;
