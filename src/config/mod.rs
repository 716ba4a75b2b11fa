//! Typed configuration: the `[default.idemhook]` table of Rocket.toml, plus the few settings
//! that come from the process environment (the database URL and the admin token).
//!
//! Rocket.toml's comments are the one prose description of each key. Here each field carries
//! its default (`#[default]`) and its bounds (`#[validate]`) next to it; [`Settings::validate`]
//! runs at launch and refuses a bad value with a message that names the key, so a typo fails
//! the deploy instead of weakening a guarantee at runtime.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use smart_default::SmartDefault;
use validator::{Validate, ValidationErrors, ValidationErrorsKind};

pub use migration::limits::{MAX_KEY_PART_BYTES, MAX_SOURCE_BYTES};

mod access;
mod brokers;
#[cfg(test)]
mod documented;
mod forward;
mod secret_env;
mod source;
pub mod subject;
mod traces;

pub use forward::{DestinationKind, ForwardConfig, FORWARD_HANDLER};

pub use access::{AuthConfig, OperatorConfig, Role, ADMIN_OPERATOR};
pub use secret_env::SecretEnv;
pub use source::{
    destination_table, valid_destination_name, OnMissingId, OnPayloadMismatch, ProviderKind,
    SignatureAlgorithm, SignatureEncoding, SourceConfig,
};
pub use traces::TracesConfig;

/// The database used when none is configured: a file next to the working directory, so that
/// `cargo run` works on a fresh machine with no server.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://idemhook.db?mode=rwc";
/// `IDEMPOTENCY_STORE=in-memory` runs on this; nothing survives a restart.
pub const IN_MEMORY_DATABASE_URL: &str = "sqlite::memory:";
/// Providers retry for days (Stripe up to three); a shorter retention would let a late retry
/// be processed a second time, so nothing below this is accepted.
pub const MIN_RETENTION_DAYS: u32 = 30;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid configuration: {0}")]
    Invalid(String),
    #[error("cannot read the `idemhook` configuration: {0}")]
    Parse(String),
}

/// `[default.idemhook]`. See Rocket.toml for what each key does.
#[derive(Debug, Clone, Serialize, Deserialize, SmartDefault, Validate)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// `DATABASE_URL` (env) wins over it; see [`Settings::database_url`].
    pub database_url: Option<String>,
    #[default = 16]
    #[validate(range(min = 1, max = 4096))]
    pub shards: usize,
    #[default = 2]
    #[validate(range(min = 1, max = 256))]
    pub writers: usize,
    #[default = 100_000]
    pub cache_capacity: u64,
    #[default = 1024]
    #[validate(range(min = 1))]
    pub shard_queue: usize,
    #[default = 128]
    #[validate(range(min = 1, max = 65_536))]
    pub inflight_budget_mib: u32,
    #[default(MIN_RETENTION_DAYS)]
    #[validate(range(
        min = MIN_RETENTION_DAYS,
        message = "providers retry for days, and a swept key would be processed again"
    ))]
    pub retention_days: u32,
    /// `None`: writers + 4 ([`Settings::max_connections`]).
    #[validate(range(min = 1))]
    pub db_max_connections: Option<u32>,
    /// Also the longest one transaction may take before it is abandoned (a database that
    /// stopped answering mid-query).
    #[default = 5]
    #[validate(range(min = 1))]
    pub db_timeout_secs: u64,
    #[default = 3000]
    #[validate(range(min = 1, max = 3_600_000))]
    pub lock_timeout_ms: u64,
    #[default = 5000]
    #[validate(range(min = 1, max = 3_600_000))]
    pub statement_timeout_ms: u64,
    #[default = 10_000]
    #[validate(range(min = 1, max = 3_600_000))]
    pub idle_in_transaction_timeout_ms: u64,
    #[default = 30]
    #[validate(range(min = 1, max = 3600))]
    pub handler_timeout_secs: u64,
    #[default = 3]
    pub max_retries: u32,
    #[default = 16]
    #[validate(range(min = 1, max = 1000, message = "1 disables group commit"))]
    pub max_batch: usize,
    #[default = 30]
    #[validate(range(min = 1))]
    pub inbox_retention_days: u32,
    /// How long the audit of operators' changes and sign-ins is kept.
    #[default = 365]
    #[validate(range(min = 1))]
    pub audit_retention_days: u32,
    #[default = 3600]
    #[validate(range(min = 1))]
    pub sweep_interval_secs: u64,
    #[default = 10_000]
    #[validate(range(min = 1, max = 30_000, message = "it is a statement's parameter count"))]
    pub sweep_batch: u64,
    #[default = 100]
    pub sweep_pause_ms: u64,
    #[default = 20]
    pub shutdown_grace_secs: u64,
    /// How often the delivery worker looks for due deliveries when it found none.
    #[default = 200]
    #[validate(range(min = 10, max = 60000))]
    pub forward_poll_ms: u64,
    /// Whether this instance delivers. `false`: it still writes each event's outbox row in the
    /// event's transaction, and instances with `true` deliver them (an ingest-only instance, or
    /// a backlog held while the app is being moved).
    #[default = true]
    pub forward_worker: bool,
    /// Most body bytes one forwarding source's deliveries in flight may hold: a slot holds its
    /// row's body, so a source's `concurrency` is lowered to what fits its body limit.
    #[default = 64]
    #[validate(range(min = 1, max = 65_536))]
    pub forward_budget_mib: u32,
    #[default(LogFormat::Text)]
    pub log_format: LogFormat,
    pub sources: BTreeMap<String, SourceConfig>,
    /// Named operators of the admin API and the console, with their roles.
    pub operators: BTreeMap<String, OperatorConfig>,
    /// Limits on guessing credentials.
    pub auth: AuthConfig,
    /// OpenTelemetry traces (off by default).
    pub tracing: TracesConfig,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
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

    /// The bounds declared on the fields, then each source's own checks.
    pub fn validate(&self) -> Result<(), ConfigError> {
        Validate::validate(self).map_err(|e| invalid("idemhook", &e))?;
        for (name, source) in &self.sources {
            source.validate_named(name)?;
        }
        for (name, operator) in &self.operators {
            access::validate_operator(name, operator)?;
        }
        self.auth.validate_table()?;
        self.tracing.validate_table()
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

/// The first field-bound violation as "`table.key` = value must be …", naming the key.
pub(crate) fn invalid(table: &str, errors: &ValidationErrors) -> ConfigError {
    let mut fields: Vec<_> = errors
        .errors()
        .iter()
        .filter_map(|(field, kind)| match kind {
            ValidationErrorsKind::Field(errs) => errs.first().map(|e| (field, e)),
            _ => None,
        })
        .collect();
    fields.sort_by(|a, b| a.0.cmp(b.0));
    let Some((field, error)) = fields.first() else {
        return ConfigError::Invalid(format!("{table}: {errors}"));
    };
    let param = |name: &str| error.params.get(name).map(|v| v.to_string());
    let value = param("value").unwrap_or_default();
    let bound = match (param("min"), param("max")) {
        (Some(min), Some(max)) => format!("must be {min}..={max}"),
        (Some(min), None) if error.code == "length" => format!("needs at least {min} entry"),
        (Some(min), None) => format!("must be at least {min}"),
        (None, Some(max)) => format!("must be at most {max}"),
        (None, None) => "is invalid".to_owned(),
    };
    let why = error
        .message
        .as_ref()
        .map(|m| format!(" ({m})"))
        .unwrap_or_default();
    ConfigError::Invalid(format!("{table}.{field} = {value} {bound}{why}"))
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

    /// The variable `name` that a table's `key` names, trimmed; an error naming both when it
    /// is not set or empty (a destination's token, URL or credential, which it cannot do
    /// without).
    pub fn required(&self, table: &str, key: &str, name: &str) -> Result<String, String> {
        self.get(name)
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| format!("{table}.{key} names {name}, which is not set or empty"))
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
        assert!(
            err.contains("idemhook.retention_days = 29 must be at least 30"),
            "{err}"
        );
    }

    /// Each bound is declared on its field; the message names the key, the value and the bound.
    #[test]
    fn bounds_are_refused_naming_the_key_and_the_bound() {
        let cases = [
            (
                Settings {
                    shards: 0,
                    ..Settings::default()
                },
                "idemhook.shards = 0 must be 1..=4096",
            ),
            (
                Settings {
                    max_batch: 1001,
                    ..Settings::default()
                },
                "idemhook.max_batch = 1001 must be 1..=1000",
            ),
            (
                Settings {
                    db_max_connections: Some(0),
                    ..Settings::default()
                },
                "idemhook.db_max_connections = 0 must be at least 1",
            ),
        ];
        for (settings, expected) in cases {
            let err = settings.validate().unwrap_err().to_string();
            assert!(err.contains(expected), "{err}");
        }
        let mut settings = Settings::default();
        let source = SourceConfig {
            tolerance_secs: 0,
            ..SourceConfig::default()
        };
        settings.sources.insert("s".into(), source);
        let err = settings.validate().unwrap_err().to_string();
        assert!(
            err.contains("idemhook.sources.s.tolerance_secs = 0 must be at least 1"),
            "{err}"
        );
        let source = SourceConfig {
            handlers: Vec::new(),
            ..SourceConfig::default()
        };
        settings.sources.insert("s".into(), source);
        let err = settings.validate().unwrap_err().to_string();
        assert!(err.contains("idemhook.sources.s.handlers"), "{err}");
        let source = SourceConfig {
            accept_types: vec!["orders/*".into(), "orders/[".into()],
            ..SourceConfig::default()
        };
        settings.sources.insert("s".into(), source);
        let err = settings.validate().unwrap_err().to_string();
        assert!(
            err.contains("idemhook.sources.s.accept_types holds \"orders/[\""),
            "{err}"
        );
        assert!(Settings::default().validate().is_ok());
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
