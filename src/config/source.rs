//! `[default.idemhook.sources.<name>]`: one table per provider endpoint, served at
//! `POST /webhooks/<name>`. As in the parent module, each field carries its default and its
//! bounds; Rocket.toml describes what each key does.

use serde::{Deserialize, Serialize};
use smart_default::SmartDefault;
use validator::Validate;

use super::forward::{ForwardConfig, FORWARD_HANDLER};
use super::secret_env::SecretEnv;
use super::{invalid, ConfigError, MAX_SOURCE_BYTES};

/// `[default.idemhook.sources.<name>]`: where a provider's webhooks come in, and what runs.
#[derive(Debug, Clone, Serialize, Deserialize, SmartDefault, Validate)]
#[serde(default, deny_unknown_fields)]
pub struct SourceConfig {
    #[default(ProviderKind::Generic)]
    pub provider: ProviderKind,
    /// Handler names, run in this order inside the event's transaction.
    #[default(vec!["inbox".to_owned()])]
    #[validate(length(min = 1, message = "a source must run at least one handler"))]
    pub handlers: Vec<String>,
    #[default("Webhook-Id".to_owned())]
    pub id_header: String,
    #[default("/id".to_owned())]
    pub id_pointer: String,
    #[default("Webhook-Type".to_owned())]
    pub type_header: String,
    #[default("/type".to_owned())]
    pub type_pointer: String,
    #[default(OnMissingId::PayloadHash)]
    pub on_missing_id: OnMissingId,
    /// Env var(s) holding the signing secret. Secrets never live in the file.
    pub secret_env: Option<SecretEnv>,
    pub allow_unsigned: bool,
    #[default = 300]
    #[validate(range(min = 1))]
    pub tolerance_secs: u64,
    /// Refuse the same signed bytes twice under different unsigned ids (a second unique key).
    #[default = true]
    pub dedupe_signed_bytes: bool,
    /// The largest body accepted (`"25 MiB"`); `None`: the provider's default (see
    /// `providers::body_limit`).
    pub max_body: Option<rocket::data::ByteUnit>,
    /// What a duplicate whose body differs from the settled one gets.
    #[default(OnPayloadMismatch::Duplicate)]
    pub on_payload_mismatch: OnPayloadMismatch,
    /// Event types this source accepts, as globs (`*`: any run of characters); empty: all.
    pub accept_types: Vec<String>,
    /// `generic` only; empty means unsigned.
    pub signature_header: String,
    #[default(SignatureAlgorithm::Sha256)]
    pub signature_algorithm: SignatureAlgorithm,
    #[default(SignatureEncoding::Hex)]
    pub signature_encoding: SignatureEncoding,
    pub signature_prefix: String,
    pub timestamp_header: String,
    /// The destination named `forward` (the table from before fan-out, kept as it was).
    pub forward: Option<ForwardConfig>,
    /// The source's other destinations, by name (`[a-z0-9_-]{1,64}`): the `forward` handler
    /// writes one outbox row per destination that wants the event.
    pub destinations: std::collections::BTreeMap<String, ForwardConfig>,
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

/// What a duplicate gets whose body differs from the one that settled its event. Either way
/// nothing is applied and the mismatch is recorded on the event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnPayloadMismatch {
    /// 200 `duplicate`, as for any redelivery.
    Duplicate,
    /// 409, naming both hashes: the sender retries, and may disable the endpoint after enough
    /// failures.
    Reject,
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

impl SourceConfig {
    pub(super) fn validate_named(&self, name: &str) -> Result<(), ConfigError> {
        let table = format!("idemhook.sources.{name}");
        if name.is_empty() || name.len() > MAX_SOURCE_BYTES {
            return Err(ConfigError::Invalid(format!(
                "source name {name:?} must be 1 to {MAX_SOURCE_BYTES} bytes"
            )));
        }
        Validate::validate(self).map_err(|e| invalid(&table, &e))?;
        for (k, pointer) in [
            ("id_pointer", &self.id_pointer),
            ("type_pointer", &self.type_pointer),
        ] {
            if !pointer.is_empty() && !pointer.starts_with('/') {
                return Err(ConfigError::Invalid(format!(
                    "{table}.{k} = {pointer:?} is not a JSON pointer (it must start with '/')"
                )));
            }
        }
        if self.provider == ProviderKind::Generic
            && self.secret_env.is_some()
            && self.signature_header.is_empty()
        {
            // A secret with nowhere to read a signature from would run unsigned, silently.
            return Err(ConfigError::Invalid(format!(
                "{table}.secret_env is set but {table}.signature_header is empty, so the \
                 source would accept unsigned deliveries: name the header that carries the \
                 signature, or remove secret_env"
            )));
        }
        for pattern in &self.accept_types {
            glob::Pattern::new(pattern).map_err(|e| {
                ConfigError::Invalid(format!(
                    "{table}.accept_types holds {pattern:?}, which is not a pattern: {e}"
                ))
            })?;
        }
        if self.forward.is_some() && self.destinations.contains_key(FORWARD_HANDLER) {
            return Err(ConfigError::Invalid(format!(
                "{table} has both a forward table and destinations.forward: they are the same \
                 destination (named \"forward\"); keep one"
            )));
        }
        for (name, destination) in self.destinations() {
            if !valid_destination_name(name) {
                return Err(ConfigError::Invalid(format!(
                    "{table}.destinations.{name:?}: a destination's name is 1 to 64 of a-z, \
                     0-9, '_' and '-'"
                )));
            }
            destination.validate_named(&destination_table(&table, name))?;
        }
        let forwards = self.handlers.iter().any(|h| h == FORWARD_HANDLER);
        let has_destinations = self.forward.is_some() || !self.destinations.is_empty();
        if forwards && !has_destinations {
            return Err(ConfigError::Invalid(format!(
                "{table}.handlers lists \"forward\" but the source has no destination: set \
                 {table}.forward.url and secret_env (a [{table}.forward] table), or add \
                 [{table}.destinations.<name>] tables"
            )));
        }
        if let (Some((name, _)), false) = (self.destinations().next(), forwards) {
            // Configured but never written: deliveries the operator expects would never happen.
            return Err(ConfigError::Invalid(format!(
                "{} is set but {table}.handlers does not list \"forward\"",
                destination_table(&table, name)
            )));
        }
        if self
            .secret_env
            .as_ref()
            .is_some_and(|s| s.names().is_empty())
        {
            return Err(ConfigError::Invalid(format!(
                "{table}.secret_env names no environment variable"
            )));
        }
        Ok(())
    }
}

impl SourceConfig {
    /// The source's destinations by name: its forward table as `forward`, then the
    /// `destinations` tables, in name order.
    pub fn destinations(&self) -> impl Iterator<Item = (&str, &ForwardConfig)> {
        self.forward
            .iter()
            .map(|f| (FORWARD_HANDLER, f))
            .chain(self.destinations.iter().map(|(n, d)| (n.as_str(), d)))
    }
}

/// The config key of a source's destination, as errors name it (`table` is the source's).
pub fn destination_table(table: &str, name: &str) -> String {
    if name == FORWARD_HANDLER {
        format!("{table}.forward")
    } else {
        format!("{table}.destinations.{name}")
    }
}

/// `[a-z0-9_-]{1,64}`: a name that fits a header, a URL path segment and a metric label as is.
pub fn valid_destination_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}
