//! Limits on guessing credentials: failed authentications (a wrong bearer token, a wrong
//! sign-in, a wrong pull token) are counted per client address in fixed one-minute windows;
//! past `failures_per_minute`, that address is answered 429 with `Retry-After`, whatever it
//! presents, until its window ends. Other addresses are not slowed.
//!
//! **The client address** is the socket's peer. Only when the peer is one of
//! `trusted_proxies` is the forwarding header believed, read from the right (each proxy
//! appends the address it got the request from) past the trusted hops: a client can write
//! whatever it likes at the left of `X-Forwarded-For`, or into `X-Real-IP`, which Rocket's
//! own `client_ip()` would believe from anyone.
//!
//! **Bounded memory.** The windows live in a moka cache (capacity [`MAX_ADDRESSES`], each
//! entry expiring with its window): an attacker with a million addresses evicts old windows,
//! and gains nothing a per-address limit could have stopped anyway.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ipnet::IpNet;
use prometheus::{IntCounterVec, Opts, Registry};
use rocket::Request;

use super::failure_log::FailureLog;
use crate::config::AuthConfig;
use crate::task::TaskGuard;

/// The window a count of failures is kept for.
const WINDOW: Duration = Duration::from_secs(60);
/// Most addresses whose failures are remembered at once.
const MAX_ADDRESSES: u64 = 100_000;

/// Which credential failed, as the metrics label it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    /// `Authorization: Bearer` on the admin API.
    Bearer,
    /// The console's sign-in form.
    SignIn,
    /// A pull consumer's token.
    Pull,
}

impl Credential {
    fn label(self) -> &'static str {
        match self {
            Credential::Bearer => "bearer",
            Credential::SignIn => "signin",
            Credential::Pull => "pull",
        }
    }
}

struct Window {
    started: Instant,
    failures: AtomicU32,
}

/// Rocket state: the failure windows, the rule for the client address, and the counters.
pub struct Guessing {
    windows: moka::sync::Cache<IpAddr, Arc<Window>>,
    limit: u32,
    trusted: Vec<IpNet>,
    header: String,
    failures: IntCounterVec,
    throttled: IntCounterVec,
    /// The audit of failures, and the task that writes it.
    log: Option<(Arc<FailureLog>, TaskGuard)>,
}

impl Guessing {
    pub fn new(cfg: &AuthConfig, registry: &Registry) -> Result<Self, String> {
        let counter = |name: &str, help: &str| {
            let c = IntCounterVec::new(Opts::new(name, help), &["credential"])
                .map_err(|e| e.to_string())?;
            registry
                .register(Box::new(c.clone()))
                .map_err(|e| e.to_string())?;
            Ok::<_, String>(c)
        };
        Ok(Self {
            windows: moka::sync::Cache::builder()
                .max_capacity(MAX_ADDRESSES)
                .time_to_live(WINDOW)
                .build(),
            limit: cfg.failures_per_minute,
            trusted: cfg.trusted_networks()?,
            header: cfg.client_ip_header.clone(),
            failures: counter(
                "idemhook_auth_failures_total",
                "Failed authentications (a wrong admin, sign-in or pull token)",
            )?,
            throttled: counter(
                "idemhook_auth_throttled_total",
                "Requests answered 429 because their address failed to authenticate too often",
            )?,
            log: None,
        })
    }

    /// Audits the failures through `log` (one row per address and minute).
    pub fn audited(mut self, log: FailureLog) -> Self {
        let log = Arc::new(log);
        let task = log.clone().spawn();
        self.log = Some((log, task));
        self
    }

    /// The seconds until `client`'s window ends, if it has used up its failures.
    pub fn throttled(&self, client: IpAddr, credential: Credential) -> Option<u32> {
        let window = self.windows.get(&client)?;
        if window.failures.load(Ordering::Relaxed) < self.limit {
            return None;
        }
        self.throttled
            .with_label_values(&[credential.label()])
            .inc();
        let left = WINDOW.saturating_sub(window.started.elapsed());
        Some(u32::try_from(left.as_secs()).unwrap_or(60).clamp(1, 60))
    }

    /// Counts a failed authentication from `client`.
    pub fn failed(&self, client: IpAddr, credential: Credential) {
        self.failures.with_label_values(&[credential.label()]).inc();
        let window = self.windows.get_with(client, || {
            Arc::new(Window {
                started: Instant::now(),
                failures: AtomicU32::new(0),
            })
        });
        window.failures.fetch_add(1, Ordering::Relaxed);
        if let Some((log, _)) = &self.log {
            log.note(client, credential.label());
        }
        tracing::warn!(
            client = %client,
            credential = credential.label(),
            "a failed authentication"
        );
    }

    /// The request's client address: the peer, or, when the peer is a trusted proxy, the
    /// rightmost address of the forwarding header that is not a trusted proxy. `None` only
    /// for a request with no peer (Rocket's local client without one).
    pub fn client(&self, req: &Request<'_>) -> Option<IpAddr> {
        let peer = req.remote()?.ip();
        Some(self.client_of(peer, req.headers().get(&self.header)))
    }

    fn client_of<'a>(&self, peer: IpAddr, headers: impl Iterator<Item = &'a str>) -> IpAddr {
        if !self.trusts(peer) {
            return peer;
        }
        // Several header lines are one list, in order.
        let hops: Vec<&str> = headers.flat_map(|h| h.split(',')).collect();
        let mut client = peer;
        for hop in hops.iter().rev() {
            match parse_hop(hop) {
                Some(ip) if self.trusts(client) => client = ip,
                _ => break,
            }
        }
        client
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|net| net.contains(&canonical(ip)))
    }
}

/// An address of a forwarding header: `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1`,
/// `[2001:db8::1]:443`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<std::net::SocketAddr>().ok().map(|s| s.ip()))
        .map(canonical)
}

/// An IPv4 address mapped into IPv6 (`::ffff:10.0.0.1`, a dual-stack socket's peer) as the
/// IPv4 address it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guessing(trusted: &[&str], limit: u32) -> Guessing {
        let cfg = AuthConfig {
            failures_per_minute: limit,
            trusted_proxies: trusted.iter().map(|s| (*s).to_owned()).collect(),
            ..AuthConfig::default()
        };
        Guessing::new(&cfg, &Registry::new()).unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_header_is_believed_only_from_a_trusted_proxy_and_only_past_trusted_hops() {
        let g = guessing(&["10.0.0.0/8", "192.0.2.7"], 10);
        let h = |v: &'static [&'static str]| v.iter().copied();
        // Not a proxy: whatever it writes, its own address.
        assert_eq!(
            g.client_of(ip("203.0.113.5"), h(&["1.1.1.1"])),
            ip("203.0.113.5")
        );
        // A proxy: the address it appended.
        assert_eq!(
            g.client_of(ip("10.1.2.3"), h(&["203.0.113.9"])),
            ip("203.0.113.9")
        );
        // The client's own claim at the left is not believed past the first untrusted hop.
        assert_eq!(
            g.client_of(ip("10.1.2.3"), h(&["6.6.6.6, 203.0.113.9, 192.0.2.7"])),
            ip("203.0.113.9")
        );
        // Several header lines are one list; ports and brackets are read.
        assert_eq!(
            g.client_of(ip("10.1.2.3"), h(&["6.6.6.6", "[2001:db8::1]:443"])),
            ip("2001:db8::1")
        );
        // A proxy that sent no header, or garbage: the proxy itself.
        assert_eq!(g.client_of(ip("10.1.2.3"), h(&[])), ip("10.1.2.3"));
        assert_eq!(g.client_of(ip("10.1.2.3"), h(&["unknown"])), ip("10.1.2.3"));
        // An IPv4-mapped peer is the IPv4 proxy it is.
        assert_eq!(
            g.client_of(ip("::ffff:10.0.0.1"), h(&["203.0.113.9"])),
            ip("203.0.113.9")
        );
        // No trusted proxies: never the header.
        let none = guessing(&[], 10);
        assert_eq!(
            none.client_of(ip("10.1.2.3"), h(&["1.1.1.1"])),
            ip("10.1.2.3")
        );
    }

    #[test]
    fn an_address_is_throttled_past_its_failures_and_others_are_not() {
        let g = guessing(&[], 3);
        let (a, b) = (ip("203.0.113.1"), ip("203.0.113.2"));
        for _ in 0..3 {
            assert_eq!(g.throttled(a, Credential::Bearer), None);
            g.failed(a, Credential::Bearer);
        }
        let wait = g.throttled(a, Credential::SignIn).unwrap();
        assert!((1..=60).contains(&wait), "{wait}");
        assert_eq!(g.throttled(b, Credential::Bearer), None);
        assert_eq!(g.failures.with_label_values(&["bearer"]).get(), 3);
        assert_eq!(g.throttled.with_label_values(&["signin"]).get(), 1);
    }
}
