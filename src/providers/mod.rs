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

use std::collections::HashMap;
use std::sync::Arc;

use rocket::http::HeaderMap;

use crate::config::{Environment, ProviderKind, Settings, SourceConfig};
use crate::handlers::{Handler, Registry};

pub mod generic;
pub mod github;
pub mod pointer;
pub mod shopify;
pub mod signature;
pub mod standard;
pub mod stripe;
#[cfg(test)]
mod vectors;

use signature::{Secret, Secrets, SignatureError};

/// What a provider sees of a delivery. The headers are Rocket's own map, borrowed, and the
/// body is raw bytes, read with [`pointer::find`]: most deliveries are duplicates answered
/// from the cache, and those never need a copy of the headers or a parsed document.
pub struct Delivery<'a> {
    pub headers: &'a HeaderMap<'a>,
    pub body: &'a [u8],
    pub payload_sha256: &'a [u8; 32],
}

impl Delivery<'_> {
    /// The first header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get_one(name)
    }

    /// The header that carries part of the event key. Sent twice with different values, it
    /// is ambiguous (a proxy appended one?), and which one is "the" id decides what counts
    /// as a duplicate, so it is refused rather than guessed.
    pub fn key_header(&self, name: &str) -> Result<Option<&str>, ProviderError> {
        let mut values = self.headers.get(name);
        let first = values.next();
        if values.any(|v| Some(v) != first) {
            return Err(ProviderError::AmbiguousHeader(name.to_owned()));
        }
        Ok(first)
    }
}

/// A header map holding copies of these headers, names in the case given (lookups ignore it).
#[cfg(test)]
pub(crate) fn header_map(headers: &[(&str, &str)]) -> HeaderMap<'static> {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        map.add_raw(name.to_string(), value.to_string());
    }
    map
}

/// Why the event's id or type could not be read. Answered 400.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProviderError {
    #[error("the body is not valid JSON, and the event {what} must be read from it at {pointer}")]
    NotJson { what: &'static str, pointer: String },
    #[error("the event type is missing: send the {header} header or a string at {pointer}")]
    MissingType { header: String, pointer: String },
    #[error("the event id is missing: send the {header} header or a string at {pointer}")]
    MissingId { header: String, pointer: String },
    #[error("the event {what} is missing: the {header} header is required")]
    MissingHeader {
        what: &'static str,
        header: &'static str,
    },
    #[error("the event {what} is missing: the body needs a string at {pointer}")]
    MissingField { what: &'static str, pointer: String },
    #[error("the {0} header is sent more than once with different values")]
    AmbiguousHeader(String),
    #[error("the event {what} at {pointer} must be a {expected}")]
    WrongType {
        what: &'static str,
        pointer: String,
        expected: &'static str,
    },
}

/// A source's signature policy: the secrets it accepts (`None` when it runs unsigned) and its
/// replay window.
pub struct Verifier {
    pub secrets: Option<Secrets>,
    pub tolerance_secs: u64,
}

impl Verifier {
    /// The schemes that sign the raw body alone (GitHub, Shopify): the decoded signature in
    /// `header` must be the HMAC-SHA256 of the body under one of the secrets.
    pub fn verify_body(
        &self,
        d: &Delivery<'_>,
        header: &'static str,
        decode: impl Fn(&str) -> Result<Vec<u8>, SignatureError>,
    ) -> Result<(), SignatureError> {
        let Some(secrets) = &self.secrets else {
            return Ok(());
        };
        let value = d.header(header).ok_or(SignatureError::Missing(header))?;
        let signature = decode(value)?;
        if secrets.matches(
            crate::config::SignatureAlgorithm::Sha256,
            &[d.body],
            &[signature],
        ) {
            Ok(())
        } else {
            Err(SignatureError::Mismatch)
        }
    }
}

pub enum Provider {
    Generic(Box<generic::Generic>),
    Stripe(stripe::Stripe),
    Github(github::Github),
    Shopify(shopify::Shopify),
    Standard(standard::Standard),
}

impl Provider {
    /// Checks the delivery's signature (and timestamp, for schemes that sign one) at `now`,
    /// Unix seconds.
    pub fn verify(&self, d: &Delivery<'_>, now: i64) -> Result<(), SignatureError> {
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

/// A required header's value.
pub(crate) fn required_header(
    d: &Delivery<'_>,
    header: &'static str,
    what: &'static str,
) -> Result<String, ProviderError> {
    d.key_header(header)?
        .map(str::to_owned)
        .ok_or(ProviderError::MissingHeader { what, header })
}

/// The values at these body pointers, read in one pass; `fields` are `(pointer, what)`,
/// and a body that is not JSON is refused naming the first.
pub(crate) fn body_fields<const N: usize>(
    d: &Delivery<'_>,
    fields: [(&pointer::Pointer, &'static str); N],
) -> Result<[pointer::Found; N], ProviderError> {
    pointer::find(d.body, fields.map(|(p, _)| p)).map_err(|_| {
        let (pointer, what) = fields.first().map_or(("", "id"), |(p, w)| (p.as_str(), *w));
        ProviderError::NotJson {
            what,
            pointer: pointer.to_owned(),
        }
    })
}

/// A string the body must hold at `pointer`.
pub(crate) fn required_string(
    found: pointer::Found,
    pointer: &str,
    what: &'static str,
) -> Result<String, ProviderError> {
    body_value(found, pointer, what, false)?.ok_or_else(|| ProviderError::MissingField {
        what,
        pointer: pointer.to_owned(),
    })
}

/// A key part found in the body: `None` when absent or null; integers only where
/// `allow_integer` (some senders number their events), in decimal form.
pub(crate) fn body_value(
    found: pointer::Found,
    pointer: &str,
    what: &'static str,
    allow_integer: bool,
) -> Result<Option<String>, ProviderError> {
    use pointer::Found;
    match found {
        Found::Missing | Found::Null => Ok(None),
        Found::String(s) => Ok(Some(s)),
        Found::Integer(n) if allow_integer => Ok(Some(n)),
        Found::Integer(_) | Found::Other => Err(ProviderError::WrongType {
            what,
            pointer: pointer.to_owned(),
            expected: if allow_integer {
                "string or an integer"
            } else {
                "string"
            },
        }),
    }
}

/// The pointers the hosted providers read their key from: `/type`, and `/id`.
pub(crate) static TYPE_POINTER: std::sync::LazyLock<pointer::Pointer> =
    std::sync::LazyLock::new(|| pointer::Pointer::new("/type"));
pub(crate) static ID_POINTER: std::sync::LazyLock<pointer::Pointer> =
    std::sync::LazyLock::new(|| pointer::Pointer::new("/id"));

/// A configured source: its provider and the handlers its events run.
pub struct Source {
    pub name: String,
    pub provider: Provider,
    pub handlers: Arc<[Arc<dyn Handler>]>,
}

/// Every source, by name, built once at launch.
pub struct Sources(HashMap<String, Source>);

impl Sources {
    /// Resolves the configured sources: handler names against the registry, secrets from the
    /// environment. A signing provider without a secret refuses to launch (naming the env
    /// var) unless the source sets `allow_unsigned = true`.
    pub fn build(
        settings: &Settings,
        registry: &Registry,
        env: &Environment,
    ) -> Result<Self, String> {
        let mut sources = HashMap::new();
        for (name, cfg) in &settings.sources {
            let handlers = cfg
                .handlers
                .iter()
                .map(|h| {
                    registry.get(h).ok_or_else(|| {
                        format!("idemhook.sources.{name}.handlers names an unknown handler {h:?}")
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            let provider = build_provider(name, cfg, env)?;
            sources.insert(
                name.clone(),
                Source {
                    name: name.clone(),
                    provider,
                    handlers: handlers.into(),
                },
            );
        }
        Ok(Self(sources))
    }

    pub fn get(&self, name: &str) -> Option<&Source> {
        self.0.get(name)
    }
}

fn build_provider(name: &str, cfg: &SourceConfig, env: &Environment) -> Result<Provider, String> {
    let signs = cfg.provider != ProviderKind::Generic || !cfg.signature_header.is_empty();
    let decode: fn(&str) -> Result<Vec<u8>, String> = match cfg.provider {
        ProviderKind::Standard => standard::decode_secret,
        _ => |s| Ok(s.as_bytes().to_vec()),
    };
    let verifier = Verifier {
        secrets: if signs {
            load_secrets(name, cfg, env, decode)?
        } else {
            None
        },
        tolerance_secs: cfg.tolerance_secs,
    };
    Ok(match cfg.provider {
        ProviderKind::Generic => {
            Provider::Generic(Box::new(generic::Generic::from_config(cfg, verifier)))
        }
        ProviderKind::Stripe => Provider::Stripe(stripe::Stripe { verifier }),
        ProviderKind::Github => Provider::Github(github::Github { verifier }),
        ProviderKind::Shopify => Provider::Shopify(shopify::Shopify { verifier }),
        ProviderKind::Standard => Provider::Standard(standard::Standard { verifier }),
    })
}

/// The secrets named by `secret_env`: each variable may hold several, comma-separated.
fn load_secrets(
    name: &str,
    cfg: &SourceConfig,
    env: &Environment,
    decode: fn(&str) -> Result<Vec<u8>, String>,
) -> Result<Option<Secrets>, String> {
    let unsigned = |why: String| {
        if cfg.allow_unsigned {
            tracing::warn!(
                "SOURCE {name:?} ACCEPTS UNSIGNED DELIVERIES: {why}, and allow_unsigned = true. \
                 Anyone who can reach /webhooks/{name} can forge its events."
            );
            Ok(None)
        } else {
            Err(format!(
                "source {name:?} ({:?}) signs its deliveries but {why}; set the secret, or \
                 set idemhook.sources.{name}.allow_unsigned = true to accept unsigned deliveries",
                cfg.provider
            ))
        }
    };
    let Some(secret_env) = &cfg.secret_env else {
        return unsigned(format!(
            "idemhook.sources.{name}.secret_env names no environment variable"
        ));
    };
    let mut secrets = Vec::new();
    for var in secret_env.names() {
        for value in env.get(var).unwrap_or("").split(',') {
            let value = value.trim();
            if value.is_empty() {
                continue;
            }
            let key = decode(value).map_err(|e| format!("the secret in {var} is invalid: {e}"))?;
            secrets.push(Secret::new(key));
        }
    }
    if secrets.is_empty() {
        return unsigned(format!(
            "the environment variable {} is not set or empty",
            secret_env.names().join(" / ")
        ));
    }
    Ok(Some(Secrets::new(secrets)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SecretEnv;

    fn settings(
        provider: ProviderKind,
        secret_env: Option<SecretEnv>,
        allow_unsigned: bool,
    ) -> Settings {
        let mut settings = Settings::default();
        settings.sources.insert(
            "s".into(),
            SourceConfig {
                provider,
                secret_env,
                allow_unsigned,
                ..SourceConfig::default()
            },
        );
        settings
    }

    fn build(settings: &Settings, env: &Environment) -> Result<Sources, String> {
        Sources::build(settings, &Registry::builtin(), env)
    }

    #[test]
    fn a_signing_provider_without_its_secret_refuses_naming_the_variable() {
        let s = settings(
            ProviderKind::Stripe,
            Some(SecretEnv::One("STRIPE_WHSEC".into())),
            false,
        );
        let err = build(&s, &Environment::empty()).err().unwrap();
        assert!(
            err.contains("STRIPE_WHSEC") && err.contains("allow_unsigned"),
            "{err}"
        );
        let err = build(
            &settings(ProviderKind::Github, None, false),
            &Environment::empty(),
        )
        .err()
        .unwrap();
        assert!(err.contains("idemhook.sources.s.secret_env"), "{err}");
        // Opted out: launches, unverified.
        let s = settings(
            ProviderKind::Stripe,
            Some(SecretEnv::One("STRIPE_WHSEC".into())),
            true,
        );
        assert!(build(&s, &Environment::empty()).is_ok());
        // An unsigned generic source needs no secret.
        assert!(build(
            &settings(ProviderKind::Generic, None, false),
            &Environment::empty()
        )
        .is_ok());
    }

    #[test]
    fn secrets_rotate_by_list_or_comma_and_never_appear_in_errors() {
        let many = SecretEnv::Many(vec!["OLD".into(), "NEW".into()]);
        let s = settings(ProviderKind::Github, Some(many), false);
        let env = Environment::empty().with("NEW", "b");
        assert!(build(&s, &env).is_ok());
        let s = settings(
            ProviderKind::Github,
            Some(SecretEnv::One("BOTH".into())),
            false,
        );
        let env = Environment::empty().with("BOTH", "a, b");
        let sources = build(&s, &env).unwrap();
        let Provider::Github(g) = &sources.get("s").unwrap().provider else {
            panic!("github")
        };
        let sig =
            |key: &[u8]| signature::hmac(crate::config::SignatureAlgorithm::Sha256, key, &[b"x"]);
        let secrets = g.verifier.secrets.as_ref().unwrap();
        assert!(secrets.matches(
            crate::config::SignatureAlgorithm::Sha256,
            &[b"x"],
            &[sig(b"a")]
        ));
        assert!(secrets.matches(
            crate::config::SignatureAlgorithm::Sha256,
            &[b"x"],
            &[sig(b"b")]
        ));
        let s = settings(
            ProviderKind::Standard,
            Some(SecretEnv::One("STD".into())),
            false,
        );
        let env = Environment::empty().with("STD", "whsec_not*base64");
        let err = build(&s, &env).err().unwrap();
        assert!(err.contains("STD") && !err.contains("not*base64"), "{err}");
    }
}
