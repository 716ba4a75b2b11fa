//! Each source's body limit: what its provider may send, within what the database can store.
//!
//! A provider that is answered 413 may never send the event again: GitHub caps payloads at
//! 25 MB and does not retry a failed delivery by itself, so a `github` source's default is
//! 25 MiB, where every other source keeps Rocket's `limits.webhook` (1 MiB unless set). A
//! source's `max_body` sets it either way.
//!
//! The body is stored (inbox, replay store, outbox) by one statement, so the limit is also
//! bounded by what one statement may carry: MariaDB/MySQL refuse a packet over
//! `max_allowed_packet` (16 MiB by default on MariaDB), read at launch. A default the database
//! cannot store is lowered to what it can, with a warning naming both; an explicit `max_body`
//! it cannot store refuses to launch, naming both, since the operator asked for bodies the
//! database would refuse one by one.

use crate::config::ProviderKind;

const MIB: u64 = 1024 * 1024;
/// GitHub's documented payload cap (25 MB), rounded up to MiB.
pub const GITHUB_MAX_BODY: u64 = 25 * MIB;
/// What a statement that stores a body carries beyond it (the key, the type, the id, up to
/// 1 KiB each, and the statement itself).
pub const STATEMENT_OVERHEAD: u64 = 64 * 1024;

/// A source's body limit, as launch resolved it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyLimit {
    pub bytes: u64,
    /// Lowered from the provider's default to what the database can store.
    pub lowered_from: Option<u64>,
}

/// The largest body one statement can store: `None` where the database sets no such bound
/// (PostgreSQL's and SQLite's are about 1 GB, above any webhook).
pub fn storable(max_statement: Option<u64>) -> Option<u64> {
    max_statement.map(|packet| packet.saturating_sub(STATEMENT_OVERHEAD))
}

/// The body limit of source `name`: its explicit `max_body`, else its provider's default,
/// within what the database can store.
pub fn resolve(
    name: &str,
    provider: ProviderKind,
    explicit: Option<u64>,
    webhook_limit: u64,
    storable: Option<u64>,
) -> Result<BodyLimit, String> {
    let wanted = explicit.unwrap_or(match provider {
        ProviderKind::Github => GITHUB_MAX_BODY,
        _ => webhook_limit,
    });
    match storable {
        Some(can) if wanted > can => match explicit {
            Some(_) => Err(format!(
                "idemhook.sources.{name}.max_body is {wanted} bytes, but the database can \
                 store at most {can} bytes in one statement (max_allowed_packet less \
                 {STATEMENT_OVERHEAD}): raise the server's max_allowed_packet or lower max_body"
            )),
            None => Ok(BodyLimit {
                bytes: can,
                lowered_from: Some(wanted),
            }),
        },
        _ => Ok(BodyLimit {
            bytes: wanted,
            lowered_from: None,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn github_defaults_to_its_cap_and_others_to_the_webhook_limit() {
        let github = resolve("gh", ProviderKind::Github, None, MIB, None).unwrap();
        assert_eq!(github.bytes, GITHUB_MAX_BODY);
        let stripe = resolve("st", ProviderKind::Stripe, None, MIB, None).unwrap();
        assert_eq!(stripe.bytes, MIB);
        // An explicit limit wins, above or below the webhook limit.
        let small = resolve("gh", ProviderKind::Github, Some(1000), MIB, None).unwrap();
        assert_eq!(small.bytes, 1000);
        let big = resolve("st", ProviderKind::Stripe, Some(4 * MIB), MIB, None).unwrap();
        assert_eq!(big.bytes, 4 * MIB);
    }

    #[test]
    fn a_default_the_database_cannot_store_is_lowered_and_an_explicit_one_refused() {
        let can = storable(Some(16 * MIB)).unwrap();
        assert_eq!(can, 16 * MIB - STATEMENT_OVERHEAD);
        let lowered = resolve("gh", ProviderKind::Github, None, MIB, Some(can)).unwrap();
        assert_eq!(
            lowered,
            BodyLimit {
                bytes: can,
                lowered_from: Some(GITHUB_MAX_BODY)
            }
        );
        let err = resolve("gh", ProviderKind::Github, Some(20 * MIB), MIB, Some(can)).unwrap_err();
        assert!(
            err.contains("idemhook.sources.gh.max_body") && err.contains(&can.to_string()),
            "{err}"
        );
        let fits = resolve("gh", ProviderKind::Github, Some(8 * MIB), MIB, Some(can)).unwrap();
        assert_eq!(fits.bytes, 8 * MIB);
    }
}
