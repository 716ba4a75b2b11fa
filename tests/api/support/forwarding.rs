//! The real binary with the admin token and a forwarding source: what the forwarding,
//! operator and console scenarios share.

use base64::Engine as _;
use hmac::{KeyInit, Mac};

use super::app::ADMIN_TOKEN;
use super::process::{config, Server, ENV};

/// `whsec_` + base64 of the key the app verifies with (`FWD_SECRET`).
pub const FORWARD_SECRET_KEY: &[u8] = b"forward-secret-key-for-tests";
/// A second key (`FWD_SECRET_OLD`), for a source that rotates: `secret_env` lists both.
pub const FORWARD_OLD_SECRET_KEY: &[u8] = b"the-key-being-rotated-out";

/// The environment [`start`] gives the binary: [`ENV`], the forward secrets, the admin token.
pub fn fwd_env() -> Vec<(&'static str, String)> {
    let whsec = |key: &[u8]| {
        format!(
            "whsec_{}",
            base64::engine::general_purpose::STANDARD.encode(key)
        )
    };
    let mut env: Vec<(&str, String)> = ENV.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
    env.push(("FWD_SECRET", whsec(FORWARD_SECRET_KEY)));
    env.push(("FWD_SECRET_OLD", whsec(FORWARD_OLD_SECRET_KEY)));
    env.push(("IDEMHOOK_ADMIN_TOKEN", ADMIN_TOKEN.to_owned()));
    env
}

/// The shared config plus a `fwd` source (generic, unsigned) that forwards to `url`, its
/// payments applied in the same transaction, retrying fast; `forward` adds keys to its
/// forward table.
pub fn fwd_config(db_url: &str, url: &str, forward: &str) -> String {
    fwd_config_with(db_url, url, "forward_poll_ms = 50", forward)
}

/// [`fwd_config`] with `settings` as the top-level keys (the worker's poll, say).
pub fn fwd_config_with(db_url: &str, url: &str, settings: &str, forward: &str) -> String {
    let timeout = if forward.contains("timeout_secs") {
        ""
    } else {
        "timeout_secs = 2"
    };
    // An app that is down trips the circuit breaker (50 failures in a row): it is probed
    // every second here, not every minute, so its deliveries go within seconds of its return.
    let probe = if forward.contains("probe_secs") {
        ""
    } else {
        "probe_secs = 1"
    };
    config(
        db_url,
        &format!(
            r#"{settings}
[default.idemhook.sources.fwd]
handlers = ["forward", "payments"]
[default.idemhook.sources.fwd.forward]
url = "{url}"
secret_env = "FWD_SECRET"
backoff_base_ms = 50
backoff_max_secs = 1
{timeout}
{probe}
{forward}
"#
        ),
    )
}

/// Starts the binary on `cfg` with [`ENV`], the `fwd` source's secret and [`ADMIN_TOKEN`].
pub async fn start(cfg: &str) -> Server {
    let env = fwd_env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Server::start(cfg, &env).await
}

/// `v1,<base64>` of a delivery under `key`, as a Standard Webhooks verifier computes it.
pub fn signed_with(key: &[u8], r: &super::receiver::Received) -> String {
    let (id, ts) = (r.header("webhook-id"), r.header("webhook-timestamp"));
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
    mac.update(format!("{id}.{ts}.").as_bytes());
    mac.update(&r.body);
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    )
}
