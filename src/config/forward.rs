//! `[default.idemhook.sources.<name>.forward]` and `[….destinations.<name>]`: where the
//! `forward` handler's outbox delivers a source's events (see `crate::forward`). Each field
//! carries its default and bounds; Rocket.toml describes what each key does.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use smart_default::SmartDefault;
use validator::Validate;

use super::secret_env::SecretEnv;
use super::{invalid, ConfigError};

/// The handler name that writes the outbox row.
pub const FORWARD_HANDLER: &str = "forward";

#[derive(Debug, Clone, Serialize, Deserialize, SmartDefault, Validate)]
#[serde(default, deny_unknown_fields)]
pub struct ForwardConfig {
    /// How deliveries are carried: `http` (the only kind today).
    pub kind: DestinationKind,
    /// `http://` or `https://` URL of the user's app.
    pub url: String,
    /// Env var holding the signing secret, `whsec_<base64>` (Standard Webhooks), or a list of
    /// them while a secret is rotated: each delivery then carries one signature per secret.
    #[default(SecretEnv::One(String::new()))]
    pub secret_env: SecretEnv,
    /// Globs on the event type (`*`: any run of characters); empty: every type. Checked at
    /// launch by `forward::filter`.
    pub types: Vec<String>,
    /// JSON pointer → value (string, number, boolean); every one must hold. Checked at launch
    /// by `forward::filter`.
    #[serde(rename = "match")]
    pub matches: BTreeMap<String, serde_json::Value>,
    /// JSON pointer into the payload; deliveries whose values are equal go one at a time, in
    /// commit order. Empty: no ordering.
    pub ordering: String,
    #[default = 10]
    #[validate(range(min = 1, max = 3600))]
    pub timeout_secs: u64,
    #[default = 10]
    #[validate(range(min = 1, max = 1000))]
    pub max_attempts: u32,
    #[default = 1000]
    #[validate(range(min = 1))]
    pub backoff_base_ms: u64,
    #[default = 3600]
    #[validate(range(min = 1))]
    pub backoff_max_secs: u64,
    #[default = 16]
    #[validate(range(min = 1, max = 1024))]
    pub concurrency: usize,
    /// Failed attempts in a row, across the fleet, that pause the destination (0: never).
    #[default = 50]
    pub pause_after_failures: u32,
    /// Attempts a second to this destination, across the fleet; none: no limit.
    #[validate(range(min = 1, max = 100_000))]
    pub rate_per_sec: Option<u32>,
    /// While paused by failures, one due delivery is tried this often.
    #[default = 60]
    #[validate(range(min = 1, max = 3600))]
    pub probe_secs: u64,
}

/// A destination's kind: how its deliveries are carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DestinationKind {
    /// A signed POST to the app's URL (Standard Webhooks).
    #[default]
    Http,
}

impl ForwardConfig {
    /// Checks what the field bounds cannot: the URL, the secret's variable, the pointer.
    /// `table`: the destination's key (`idemhook.sources.<source>.forward` or
    /// `….destinations.<name>`).
    pub(super) fn validate_named(&self, table: &str) -> Result<(), ConfigError> {
        Validate::validate(self).map_err(|e| invalid(table, &e))?;
        let bad = |msg: String| Err(ConfigError::Invalid(msg));
        if self.url.trim().is_empty() {
            return bad(format!(
                "{table}.url is required: the address of the app to deliver to"
            ));
        }
        match url::Url::parse(&self.url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
            Ok(_) => {
                return bad(format!(
                    "{table}.url = {:?} must be http or https",
                    self.url
                ))
            }
            Err(e) => return bad(format!("{table}.url = {:?} is not a URL: {e}", self.url)),
        }
        let names = self.secret_env.names();
        if names.is_empty() || names.iter().any(|name| name.trim().is_empty()) {
            return bad(format!(
                "{table}.secret_env is required (a variable's name, or a list of them): \
                 deliveries are signed (Standard Webhooks)"
            ));
        }
        if !self.ordering.is_empty() && !self.ordering.starts_with('/') {
            return bad(format!(
                "{table}.ordering = {:?} is not a JSON pointer (it must start with '/')",
                self.ordering
            ));
        }
        if self.backoff_max_secs.saturating_mul(1000) < self.backoff_base_ms {
            return bad(format!(
                "{table}.backoff_max_secs must not be below backoff_base_ms"
            ));
        }
        Ok(())
    }
}
