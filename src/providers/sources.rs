//! The configured sources, built once at launch: each source's provider with its secrets
//! loaded from the environment, the handlers its events run, and its metric handles. A source
//! that would silently weaken a guarantee (a signing provider without its secret) refuses to
//! launch, naming the key.

use std::collections::HashMap;
use std::sync::Arc;

use super::body_limit::{self, BodyLimit};
use super::signature::{Secret, Secrets};
use super::{generic, github, shopify, standard, stripe, Provider, Verifier};
use crate::config::{Environment, OnPayloadMismatch, ProviderKind, Settings, SourceConfig};
use crate::handlers::{Handler, Registry};
use crate::metrics::{Metrics, SourceMetrics};

/// A configured source: its provider, the handlers its events run and its counters.
pub struct Source {
    pub name: String,
    pub provider: Provider,
    pub handlers: Arc<[Arc<dyn Handler>]>,
    /// Their names, space-separated (a transaction's span names them).
    pub handler_names: Arc<str>,
    pub metrics: SourceMetrics,
    /// Whether a signed delivery's signed bytes are a second unique key (`dedupe_signed_bytes`).
    pub dedupe_signed_bytes: bool,
    /// `accept_types`, compiled; empty accepts every type.
    pub accept_types: Vec<glob::Pattern>,
    /// The provider's kind (GitHub's refused deliveries are logged with their GUID: GitHub
    /// never retries them by itself).
    pub kind: ProviderKind,
    /// What a duplicate with another body gets (`on_payload_mismatch`).
    pub on_payload_mismatch: OnPayloadMismatch,
    /// The largest body accepted, in bytes ([`body_limit`]); set at launch by
    /// [`Sources::limit_bodies`], once the database's own limit is known.
    pub max_body: u64,
}

impl Source {
    /// Whether this source accepts events of `event_type`. Where the provider does not sign
    /// the type, a captured body can be sent again under any type the source accepts: the
    /// list bounds what it can become.
    pub fn accepts(&self, event_type: &str) -> bool {
        self.accept_types.is_empty() || self.accept_types.iter().any(|p| p.matches(event_type))
    }
}

/// Every source, by name, built once at launch.
pub struct Sources(HashMap<String, Source>);

impl Sources {
    /// Resolves the configured sources: handler names against the registry, secrets from the
    /// environment, metric handles from `metrics`. A signing provider without a secret refuses
    /// to launch (naming the env var) unless the source sets `allow_unsigned = true`.
    pub fn build(
        settings: &Settings,
        registry: &Registry,
        env: &Environment,
        metrics: &Metrics,
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
            let accept_types = cfg
                .accept_types
                .iter()
                .map(|p| glob::Pattern::new(p).map_err(|e| format!("{p:?}: {e}")))
                .collect::<Result<Vec<_>, _>>()?;
            if !cfg.dedupe_signed_bytes {
                tracing::warn!(
                    "source {name:?} sets dedupe_signed_bytes = false: a captured signed \
                     delivery re-sent with another id in an unsigned header is applied again. \
                     Only for senders that send byte-identical signed bodies as distinct events."
                );
            }
            sources.insert(
                name.clone(),
                Source {
                    name: name.clone(),
                    provider,
                    handlers: handlers.into(),
                    handler_names: cfg.handlers.join(" ").into(),
                    metrics: metrics.source(name),
                    dedupe_signed_bytes: cfg.dedupe_signed_bytes,
                    accept_types,
                    kind: cfg.provider,
                    on_payload_mismatch: cfg.on_payload_mismatch,
                    max_body: 0,
                },
            );
        }
        Ok(Self(sources))
    }

    /// Sets each source's body limit from its `max_body` or its provider's default, within
    /// `storable` (what one statement of the database can store), warning where a default was
    /// lowered. Returns the largest limit, which the in-flight budget must hold.
    pub fn limit_bodies(
        &mut self,
        settings: &Settings,
        webhook_limit: u64,
        storable: Option<u64>,
    ) -> Result<u64, String> {
        let mut largest = 0;
        for (name, source) in &mut self.0 {
            let explicit = settings
                .sources
                .get(name)
                .and_then(|cfg| cfg.max_body)
                .map(|b| b.as_u64());
            let BodyLimit {
                bytes,
                lowered_from,
            } = body_limit::resolve(name, source.kind, explicit, webhook_limit, storable)?;
            if let Some(wanted) = lowered_from {
                tracing::warn!(
                    "source {name:?}: its provider may send bodies of up to {wanted} bytes, but \
                     the database can store at most {bytes} in one statement \
                     (max_allowed_packet): larger bodies are answered 413. Raise the server's \
                     max_allowed_packet to accept them"
                );
            }
            source.max_body = bytes;
            largest = largest.max(bytes);
        }
        Ok(largest)
    }

    pub fn get(&self, name: &str) -> Option<&Source> {
        self.0.get(name)
    }

    /// Every source, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &Source)> {
        self.0.iter()
    }
}

fn build_provider(name: &str, cfg: &SourceConfig, env: &Environment) -> Result<Provider, String> {
    let signs = cfg.provider != ProviderKind::Generic || !cfg.signature_header.is_empty();
    let decode: fn(&str) -> Result<Vec<u8>, String> = match cfg.provider {
        ProviderKind::Standard => wire::signature::standard_secret,
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

/// The secrets named by `secret_env`: one per variable, the whole value (surrounding white
/// space trimmed). Never split on a separator: a provider's secret may contain any character
/// (a GitHub secret may hold a comma), and a split secret would fail every real delivery while
/// a forger needed only one fragment. Rotation is a list of variables.
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
    let secrets: Vec<Secret> = secret_env
        .keys(env, decode)?
        .into_iter()
        .filter_map(|(_, key)| key.map(Secret::new))
        .collect();
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
        let registry = Registry::builtin(&crate::clock::Clock::system());
        Sources::build(settings, &registry, env, &Metrics::new())
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

    fn github_secrets(sources: &Sources) -> &Secrets {
        let Provider::Github(g) = &sources.get("s").unwrap().provider else {
            panic!("github")
        };
        g.verifier.secrets.as_ref().unwrap()
    }

    fn signs(secrets: &Secrets, key: &[u8]) -> bool {
        let algorithm = crate::config::SignatureAlgorithm::Sha256;
        let signature = crate::providers::signature::hmac(algorithm, key, &[b"x"]);
        secrets.matches(algorithm, &[b"x"], &[signature])
    }

    /// Rotation is a list of variables; a variable's value is one secret, commas and all.
    #[test]
    fn secrets_rotate_by_a_list_of_variables_and_are_never_split() {
        let many = SecretEnv::Many(vec!["OLD".into(), "NEW".into()]);
        let s = settings(ProviderKind::Github, Some(many), false);
        let env = Environment::empty().with("OLD", "a").with("NEW", "b");
        let sources = build(&s, &env).unwrap();
        assert!(signs(github_secrets(&sources), b"a"));
        assert!(signs(github_secrets(&sources), b"b"));
        let one = SecretEnv::One("ONE".into());
        let s = settings(ProviderKind::Github, Some(one), false);
        let env = Environment::empty().with("ONE", "a,b");
        let sources = build(&s, &env).unwrap();
        assert!(signs(github_secrets(&sources), b"a,b"));
        assert!(!signs(github_secrets(&sources), b"a"));
        assert!(!signs(github_secrets(&sources), b"b"));
    }

    #[test]
    fn a_secret_that_decodes_to_nothing_refuses_naming_the_variable() {
        let s = settings(
            ProviderKind::Standard,
            Some(SecretEnv::One("STD".into())),
            false,
        );
        let err = build(&s, &Environment::empty().with("STD", "whsec_"))
            .err()
            .unwrap();
        assert!(err.contains("STD") && err.contains("empty"), "{err}");
    }

    #[test]
    fn invalid_secrets_never_appear_in_errors() {
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
