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
    /// How deliveries are carried: `http` (a signed POST) or `nats` (a JetStream publish).
    pub kind: DestinationKind,
    /// `http`: `http://` or `https://` URL of the user's app.
    pub url: String,
    /// `http`: env var holding the signing secret, `whsec_<base64>` (Standard Webhooks), or a
    /// list of them while a secret is rotated: each delivery then carries one signature per
    /// secret.
    #[default(SecretEnv::One(String::new()))]
    pub secret_env: SecretEnv,
    /// `nats`: the servers' URLs (several for a cluster; the client also learns the others).
    pub urls: Vec<String>,
    /// `nats`: the subject template: `{source}`, `{type}`, `{event_id}` (see
    /// `forward::subject`).
    pub subject: String,
    /// `nats`: the JetStream stream that must capture the subject (`Nats-Expected-Stream`).
    pub stream: String,
    /// `nats`: env var holding a token.
    pub token_env: Option<String>,
    /// `nats`: env vars holding a user and a password.
    pub user_env: Option<String>,
    pub password_env: Option<String>,
    /// `nats`: env var holding the path of a `.creds` file (JWT and NKey seed).
    pub creds_file_env: Option<String>,
    /// `rabbitmq`: env var holding the AMQP URL (`amqp://user:password@host:5672/%2f`): it
    /// carries the password, so it is never in the file.
    pub url_env: Option<String>,
    /// `rabbitmq`: the exchange to publish to; declared by the operator, never by idemhook.
    pub exchange: String,
    /// `rabbitmq`: the routing key template (`{source}`, `{type}`, `{event_id}`), written by
    /// the rule of NATS subjects (`config::subject`).
    pub routing_key: String,
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
    /// The wait for one attempt's answer; default 10 s (`http`), 5 s (`nats`: see
    /// [`ForwardConfig::timeout_secs`]).
    #[validate(range(min = 1, max = 3600))]
    pub timeout_secs: Option<u64>,
    #[default = 10]
    #[validate(range(min = 1, max = 1000))]
    pub max_attempts: u32,
    #[default = 1000]
    #[validate(range(min = 1))]
    pub backoff_base_ms: u64,
    /// The longest wait between two attempts; default 3600 s (`http`), 30 s (`nats`).
    #[validate(range(min = 1))]
    pub backoff_max_secs: Option<u64>,
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
    /// `pull`: how long a consumer holds a leased delivery before it may be leased again (an
    /// attempt counted); default 30.
    #[validate(range(min = 1, max = 3600))]
    pub lease_secs: Option<u64>,
}

/// A destination's kind: how its deliveries are carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DestinationKind {
    /// A signed POST to the app's URL (Standard Webhooks).
    #[default]
    Http,
    /// A publish into a NATS JetStream stream, deduplicated by the stream (`Nats-Msg-Id`).
    Nats,
    /// A publish to a RabbitMQ exchange with publisher confirms: at least once.
    Rabbitmq,
    /// Held for a consumer that leases deliveries over HTTP (`POST /pull/…`) and acks them.
    Pull,
}

impl DestinationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DestinationKind::Http => "http",
            DestinationKind::Nats => "nats",
            DestinationKind::Rabbitmq => "rabbitmq",
            DestinationKind::Pull => "pull",
        }
    }
}

impl ForwardConfig {
    /// The wait for one attempt's answer. A `nats` destination's is short by default: an
    /// attempt whose ack never came must be retried inside the stream's duplicate window
    /// (JetStream's default: 2 minutes) for the stream to drop the second copy.
    pub fn timeout_secs(&self) -> u64 {
        self.timeout_secs.unwrap_or(match self.kind {
            DestinationKind::Http | DestinationKind::Rabbitmq | DestinationKind::Pull => 10,
            DestinationKind::Nats => 5,
        })
    }

    /// The longest wait between two attempts (shorter for `nats`, as for the timeout).
    pub fn backoff_max_secs(&self) -> u64 {
        self.backoff_max_secs.unwrap_or(match self.kind {
            DestinationKind::Http | DestinationKind::Rabbitmq | DestinationKind::Pull => 3600,
            DestinationKind::Nats => 30,
        })
    }
}

impl ForwardConfig {
    /// Checks what the field bounds cannot: the URL, the secret's variable, the pointer.
    /// `table`: the destination's key (`idemhook.sources.<source>.forward` or
    /// `….destinations.<name>`).
    pub(super) fn validate_named(&self, table: &str) -> Result<(), ConfigError> {
        Validate::validate(self).map_err(|e| invalid(table, &e))?;
        let bad = |msg: String| Err(ConfigError::Invalid(msg));
        for (key, kinds, set) in self.kind_keys() {
            if set && !kinds.contains(&self.kind) {
                let kinds: Vec<String> =
                    kinds.iter().map(|k| format!("{:?}", k.as_str())).collect();
                return bad(format!(
                    "{table}.{key} is a key of kind {}; this destination's kind is \"{}\"",
                    kinds.join(" or "),
                    self.kind.as_str()
                ));
            }
        }
        match self.kind {
            DestinationKind::Http => self.validate_http(table)?,
            DestinationKind::Nats => self.validate_nats(table)?,
            DestinationKind::Rabbitmq => self.validate_rabbitmq(table)?,
            DestinationKind::Pull => self.validate_pull(table)?,
        }
        if !self.ordering.is_empty() && !self.ordering.starts_with('/') {
            return bad(format!(
                "{table}.ordering = {:?} is not a JSON pointer (it must start with '/')",
                self.ordering
            ));
        }
        if self.backoff_max_secs().saturating_mul(1000) < self.backoff_base_ms {
            return bad(format!(
                "{table}.backoff_max_secs must not be below backoff_base_ms"
            ));
        }
        Ok(())
    }

    fn validate_http(&self, table: &str) -> Result<(), ConfigError> {
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
        Ok(())
    }

    /// The keys only one kind takes: (key, kind, whether it is set).
    fn kind_keys(&self) -> [(&'static str, &'static [DestinationKind], bool); 13] {
        use DestinationKind::{Http, Nats, Pull, Rabbitmq};
        [
            ("url", &[Http], !self.url.is_empty()),
            (
                "secret_env",
                &[Http],
                self.secret_env != SecretEnv::One(String::new()),
            ),
            ("urls", &[Nats], !self.urls.is_empty()),
            ("subject", &[Nats], !self.subject.is_empty()),
            ("stream", &[Nats], !self.stream.is_empty()),
            ("token_env", &[Nats, Pull], self.token_env.is_some()),
            ("user_env", &[Nats], self.user_env.is_some()),
            ("password_env", &[Nats], self.password_env.is_some()),
            ("creds_file_env", &[Nats], self.creds_file_env.is_some()),
            ("url_env", &[Rabbitmq], self.url_env.is_some()),
            ("exchange", &[Rabbitmq], !self.exchange.is_empty()),
            ("routing_key", &[Rabbitmq], !self.routing_key.is_empty()),
            ("lease_secs", &[Pull], self.lease_secs.is_some()),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nats() -> ForwardConfig {
        ForwardConfig {
            kind: DestinationKind::Nats,
            urls: vec!["nats://127.0.0.1:4222".into()],
            subject: "webhooks.{source}.{type}".into(),
            stream: "WEBHOOKS".into(),
            ..ForwardConfig::default()
        }
    }

    fn refused(config: ForwardConfig) -> String {
        config.validate_named("t").unwrap_err().to_string()
    }

    #[test]
    fn a_nats_table_takes_its_own_keys_and_its_own_defaults() {
        let ok = nats();
        assert!(ok.validate_named("t").is_ok());
        assert_eq!((ok.timeout_secs(), ok.backoff_max_secs()), (5, 30));
        let http = ForwardConfig::default();
        assert_eq!((http.timeout_secs(), http.backoff_max_secs()), (10, 3600));
        let with_url = ForwardConfig {
            url: "http://x".into(),
            ..nats()
        };
        assert!(refused(with_url).contains("t.url is a key of kind \"http\""));
        let http_with_stream = ForwardConfig {
            url: "http://x".into(),
            secret_env: SecretEnv::One("S".into()),
            stream: "WEBHOOKS".into(),
            ..ForwardConfig::default()
        };
        assert!(refused(http_with_stream).contains("t.stream is a key of kind \"nats\""));
        let rabbit = ForwardConfig {
            kind: DestinationKind::Rabbitmq,
            url_env: Some("AMQP_URL".into()),
            exchange: "webhooks".into(),
            routing_key: "{source}.{type}".into(),
            ..ForwardConfig::default()
        };
        assert!(rabbit.validate_named("t").is_ok());
        let pull = ForwardConfig {
            kind: DestinationKind::Pull,
            token_env: Some("PULL_TOKEN".into()),
            ..ForwardConfig::default()
        };
        assert!(pull.validate_named("t").is_ok());
        assert!(refused(ForwardConfig {
            token_env: None,
            ..pull.clone()
        })
        .contains("t.token_env is required"));
        assert!(refused(ForwardConfig {
            lease_secs: Some(30),
            ..nats()
        })
        .contains("t.lease_secs is a key of kind \"pull\""));
        assert!(refused(ForwardConfig {
            stream: "S".into(),
            ..rabbit.clone()
        })
        .contains("t.stream is a key of kind \"nats\"; this destination's kind is \"rabbitmq\""));
        assert!(refused(ForwardConfig {
            exchange: String::new(),
            ..rabbit.clone()
        })
        .contains("t.exchange"));
        assert!(refused(ForwardConfig {
            url_env: None,
            ..rabbit.clone()
        })
        .contains("t.url_env is required"));
        assert!(refused(ForwardConfig {
            routing_key: "a.{x}".into(),
            ..rabbit
        })
        .contains("t.routing_key"));
    }

    #[test]
    fn a_nats_table_is_checked_naming_the_key() {
        let cases = [
            (
                ForwardConfig {
                    urls: vec![],
                    ..nats()
                },
                "t.urls is required",
            ),
            (
                ForwardConfig {
                    urls: vec!["http://x:4222".into()],
                    ..nats()
                },
                "not a nats:// or tls:// URL",
            ),
            (
                ForwardConfig {
                    subject: "a.{typ}".into(),
                    ..nats()
                },
                "t.subject",
            ),
            (
                ForwardConfig {
                    subject: String::new(),
                    ..nats()
                },
                "t.subject",
            ),
            (
                ForwardConfig {
                    stream: "A.B".into(),
                    ..nats()
                },
                "t.stream",
            ),
            (
                ForwardConfig {
                    stream: String::new(),
                    ..nats()
                },
                "t.stream",
            ),
            (
                ForwardConfig {
                    user_env: Some("U".into()),
                    ..nats()
                },
                "user_env and password_env go together",
            ),
            (
                ForwardConfig {
                    token_env: Some("T".into()),
                    creds_file_env: Some("C".into()),
                    ..nats()
                },
                "one way to authenticate",
            ),
        ];
        for (config, expected) in cases {
            let err = refused(config);
            assert!(err.contains(expected), "{expected}: {err}");
        }
    }
}
