//! Typed configuration: the `[default.idemhook]` table of Rocket.toml, plus the few settings
//! that come from the process environment (the database URL and the admin token).
//!
//! Every key has a default that works out of the box; `Settings::validate` runs at launch and
//! refuses a bad value with a message that names the key, so a typo fails the deploy instead
//! of weakening a guarantee at runtime.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

/// The database used when none is configured: a file next to the working directory, so that
/// `cargo run` works on a fresh machine with no server.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://idemhook.db?mode=rwc";
/// `IDEMPOTENCY_STORE=in-memory` runs on this; nothing survives a restart.
pub const IN_MEMORY_DATABASE_URL: &str = "sqlite::memory:";
/// Providers retry for days (Stripe up to three); a shorter retention would let a late retry
/// be processed a second time, so nothing below this is accepted.
pub const MIN_RETENTION_DAYS: u32 = 30;
/// Longest event id or event type accepted, in bytes.
pub const MAX_KEY_PART_BYTES: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid configuration: {0}")]
    Invalid(String),
    #[error("cannot read the `idemhook` configuration: {0}")]
    Parse(String),
}

/// `[default.idemhook]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// `postgres://…`, `mysql://…` or `sqlite://…`; the env var `DATABASE_URL` wins over it.
    pub database_url: Option<String>,
    /// Number of shard actors. Events are routed by key hash, so one key is always handled by
    /// one shard, in order; shards run in parallel and hand their batches to the writers.
    pub shards: usize,
    /// Writers: database transactions committing new events at once, each with the batches of
    /// as many shards as are waiting (up to `max_batch` events).
    pub writers: usize,
    /// Committed keys kept in memory to answer duplicates without a database round trip.
    pub cache_capacity: u64,
    /// Events waiting per shard before new ones are answered 503: the bound on queued memory.
    pub shard_queue: usize,
    /// Days a dedupe record is kept. At least `MIN_RETENTION_DAYS`.
    pub retention_days: u32,
    /// Database connections; by default one per writer plus a few for audit rows, the
    /// sweeper and the admin API.
    pub db_max_connections: Option<u32>,
    /// Seconds to wait for a connection before answering 503.
    pub db_timeout_secs: u64,
    /// How often an event whose transaction lost a deadlock or serialization race is rerun.
    pub max_retries: u32,
    /// Most events one transaction commits (group commit); 1 disables it.
    pub max_batch: usize,
    /// Days an inbox row is kept for downstream consumers.
    pub inbox_retention_days: u32,
    /// Seconds between retention sweeps.
    pub sweep_interval_secs: u64,
    /// Rows deleted per sweep statement: small enough to hold locks only briefly.
    pub sweep_batch: u64,
    /// Pause between two sweep batches, so ingestion always gets the database back.
    pub sweep_pause_ms: u64,
    /// On SIGTERM/SIGINT, how long queued and in-flight events may take to commit and be
    /// answered before the shards stop. Keep it under Rocket's `shutdown.grace`.
    pub shutdown_grace_secs: u64,
    /// `text` (human-readable) or `json` (one object per line).
    pub log_format: LogFormat,
    pub sources: BTreeMap<String, SourceConfig>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            database_url: None,
            shards: 16,
            writers: 2,
            cache_capacity: 100_000,
            shard_queue: 1024,
            retention_days: MIN_RETENTION_DAYS,
            db_max_connections: None,
            db_timeout_secs: 5,
            max_retries: 3,
            max_batch: 16,
            inbox_retention_days: 30,
            sweep_interval_secs: 3600,
            sweep_batch: 10_000,
            sweep_pause_ms: 100,
            shutdown_grace_secs: 20,
            log_format: LogFormat::Text,
            sources: BTreeMap::new(),
        }
    }
}

/// `[default.idemhook.sources.<name>]`: where a provider's webhooks come in, and what runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SourceConfig {
    pub provider: ProviderKind,
    /// Handler names, run in this order inside the event's transaction.
    pub handlers: Vec<String>,
    /// Header that carries the event id; it wins over `id_pointer`.
    pub id_header: String,
    /// JSON pointer (RFC 6901) to the event id in the body.
    pub id_pointer: String,
    pub type_header: String,
    pub type_pointer: String,
    pub on_missing_id: OnMissingId,
    /// Env var(s) holding the signing secret; several (or a comma-separated list in one) are
    /// all accepted, for rotation. Secrets never live in this file.
    pub secret_env: Option<SecretEnv>,
    /// Launch without a secret for a provider that signs, accepting unsigned deliveries.
    pub allow_unsigned: bool,
    /// How far a signed timestamp may be from now, in either direction, in seconds.
    pub tolerance_secs: u64,
    /// `generic` only: the header carrying an HMAC of the body; empty means unsigned.
    pub signature_header: String,
    pub signature_algorithm: SignatureAlgorithm,
    pub signature_encoding: SignatureEncoding,
    /// Stripped from the signature header's value before decoding, e.g. `sha256=`.
    pub signature_prefix: String,
    /// `generic` only: a header with the Unix time of signing; then `<timestamp>.<body>` is
    /// what is signed, and the tolerance applies.
    pub timestamp_header: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum SecretEnv {
    One(String),
    Many(Vec<String>),
}

impl SecretEnv {
    pub fn names(&self) -> Vec<&str> {
        match self {
            SecretEnv::One(name) => vec![name.as_str()],
            SecretEnv::Many(names) => names.iter().map(String::as_str).collect(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SignatureAlgorithm {
    Sha256,
    Sha512,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SignatureEncoding {
    Hex,
    Base64,
}

impl Default for SourceConfig {
    fn default() -> Self {
        Self {
            provider: ProviderKind::Generic,
            handlers: vec!["inbox".to_owned()],
            id_header: "Webhook-Id".to_owned(),
            id_pointer: "/id".to_owned(),
            type_header: "Webhook-Type".to_owned(),
            type_pointer: "/type".to_owned(),
            on_missing_id: OnMissingId::PayloadHash,
            secret_env: None,
            allow_unsigned: false,
            tolerance_secs: 300,
            signature_header: String::new(),
            signature_algorithm: SignatureAlgorithm::Sha256,
            signature_encoding: SignatureEncoding::Hex,
            signature_prefix: String::new(),
            timestamp_header: String::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProviderKind {
    Generic,
    Stripe,
    Github,
    Shopify,
    /// Standard Webhooks (standardwebhooks.com), also what Svix sends.
    Standard,
}

/// What to do with an event that carries no id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnMissingId {
    /// Use `sha256:<hex of the raw body>`: byte-identical redeliveries are duplicates.
    PayloadHash,
    /// Answer 400.
    Reject,
}

impl Settings {
    pub fn from_figment(figment: &rocket::figment::Figment) -> Result<Self, ConfigError> {
        match figment.find_value("idemhook") {
            Ok(_) => figment
                .extract_inner::<Settings>("idemhook")
                .map_err(|e| ConfigError::Parse(e.to_string())),
            Err(_) => Ok(Settings::default()),
        }
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |msg: String| Err(ConfigError::Invalid(msg));
        if self.retention_days < MIN_RETENTION_DAYS {
            return invalid(format!(
                "idemhook.retention_days = {} is below the minimum of {MIN_RETENTION_DAYS}: \
                 providers retry for days, and a swept key would be processed again",
                self.retention_days
            ));
        }
        if self.shards == 0 || self.shards > 4096 {
            return invalid(format!(
                "idemhook.shards = {} must be 1..=4096",
                self.shards
            ));
        }
        if self.writers == 0 || self.writers > 256 {
            return invalid(format!(
                "idemhook.writers = {} must be 1..=256",
                self.writers
            ));
        }
        if self.shard_queue == 0 {
            return invalid("idemhook.shard_queue must be at least 1".to_owned());
        }
        if self.db_timeout_secs == 0 {
            return invalid("idemhook.db_timeout_secs must be at least 1".to_owned());
        }
        if !(1..=1000).contains(&self.max_batch) {
            return invalid(format!(
                "idemhook.max_batch = {} must be 1..=1000 (1 disables group commit)",
                self.max_batch
            ));
        }
        if self.inbox_retention_days == 0 {
            return invalid("idemhook.inbox_retention_days must be at least 1".to_owned());
        }
        if self.sweep_interval_secs == 0 {
            return invalid("idemhook.sweep_interval_secs must be at least 1".to_owned());
        }
        if !(1..=30_000).contains(&self.sweep_batch) {
            return invalid(format!(
                "idemhook.sweep_batch = {} must be 1..=30000 (it is a statement's parameter count)",
                self.sweep_batch
            ));
        }
        if self.db_max_connections == Some(0) {
            return invalid("idemhook.db_max_connections must be at least 1".to_owned());
        }
        for (name, source) in &self.sources {
            source.validate(name)?;
        }
        Ok(())
    }

    /// The database actually used: `IDEMPOTENCY_STORE=in-memory` first, then `DATABASE_URL`,
    /// then `database_url`, then the embedded SQLite file.
    pub fn database_url(&self, env: &Environment) -> Result<String, ConfigError> {
        match env.get("IDEMPOTENCY_STORE").map(str::trim) {
            None | Some("") | Some("database") => Ok(env
                .get("DATABASE_URL")
                .filter(|url| !url.trim().is_empty())
                .map(str::to_owned)
                .or_else(|| self.database_url.clone())
                .unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned())),
            Some("in-memory") => Ok(IN_MEMORY_DATABASE_URL.to_owned()),
            Some(other) => Err(ConfigError::Invalid(format!(
                "IDEMPOTENCY_STORE = {other:?} is not a store: use \"database\" (the default) \
                 or \"in-memory\""
            ))),
        }
    }

    pub fn max_connections(&self) -> u32 {
        self.db_max_connections.unwrap_or_else(|| {
            u32::try_from(self.writers)
                .unwrap_or(u32::MAX)
                .saturating_add(4)
        })
    }
}

impl SourceConfig {
    fn validate(&self, name: &str) -> Result<(), ConfigError> {
        let key = |k: &str| format!("idemhook.sources.{name}.{k}");
        if name.is_empty() || name.len() > 255 {
            return Err(ConfigError::Invalid(format!(
                "source name {name:?} must be 1 to 255 bytes"
            )));
        }
        if self.handlers.is_empty() {
            return Err(ConfigError::Invalid(format!(
                "{} is empty: a source must run at least one handler",
                key("handlers")
            )));
        }
        for (k, pointer) in [
            ("id_pointer", &self.id_pointer),
            ("type_pointer", &self.type_pointer),
        ] {
            if !pointer.is_empty() && !pointer.starts_with('/') {
                return Err(ConfigError::Invalid(format!(
                    "{} = {pointer:?} is not a JSON pointer (it must start with '/')",
                    key(k)
                )));
            }
        }
        if self.tolerance_secs == 0 {
            return Err(ConfigError::Invalid(format!(
                "{} must be at least 1 second",
                key("tolerance_secs")
            )));
        }
        if self
            .secret_env
            .as_ref()
            .is_some_and(|s| s.names().is_empty())
        {
            return Err(ConfigError::Invalid(format!(
                "{} names no environment variable",
                key("secret_env")
            )));
        }
        Ok(())
    }
}

/// A snapshot of the environment variables idemhook reads. Tests build one by hand, so they
/// never race on the real process environment.
#[derive(Debug, Clone, Default)]
pub struct Environment {
    vars: HashMap<String, String>,
}

impl Environment {
    pub fn from_process() -> Self {
        Self {
            vars: std::env::vars().collect(),
        }
    }

    pub fn empty() -> Self {
        Self::default()
    }

    pub fn with(mut self, name: &str, value: &str) -> Self {
        self.vars.insert(name.to_owned(), value.to_owned());
        self
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_below_thirty_days_is_refused_naming_the_key() {
        let settings = Settings {
            retention_days: 29,
            ..Settings::default()
        };
        let err = settings.validate().unwrap_err().to_string();
        assert!(err.contains("idemhook.retention_days"), "{err}");
    }

    #[test]
    fn database_url_precedence() {
        let settings = Settings {
            database_url: Some("postgres://config".into()),
            ..Settings::default()
        };
        let env = Environment::empty();
        assert_eq!(settings.database_url(&env).unwrap(), "postgres://config");
        let env = env.with("DATABASE_URL", "mysql://env");
        assert_eq!(settings.database_url(&env).unwrap(), "mysql://env");
        let env = env.with("IDEMPOTENCY_STORE", "in-memory");
        assert_eq!(settings.database_url(&env).unwrap(), IN_MEMORY_DATABASE_URL);
        let env = env.with("IDEMPOTENCY_STORE", "redis");
        assert!(settings.database_url(&env).is_err());
        assert_eq!(
            Settings::default()
                .database_url(&Environment::empty())
                .unwrap(),
            DEFAULT_DATABASE_URL
        );
    }

    #[test]
    fn unknown_keys_are_refused() {
        let figment =
            rocket::figment::Figment::new().merge(("idemhook", serde_json::json!({ "shard": 3 })));
        assert!(Settings::from_figment(&figment).is_err());
    }
}
