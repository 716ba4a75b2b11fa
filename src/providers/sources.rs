//! The configured sources, built once at launch: each source's provider with its secrets
//! loaded from the environment, the handlers its events run, and its metric handles. A source
//! that would silently weaken a guarantee (a signing provider without its secret) refuses to
//! launch, naming the key.

use std::collections::HashMap;
use std::sync::Arc;

use super::signature::{Secret, Secrets};
use super::{generic, github, shopify, standard, stripe, Provider, Verifier};
use crate::config::{Environment, ProviderKind, Settings, SourceConfig};
use crate::handlers::{Handler, Registry};
use crate::metrics::{Metrics, SourceMetrics};

/// A configured source: its provider, the handlers its events run and its counters.
pub struct Source {
    pub name: String,
    pub provider: Provider,
    pub handlers: Arc<[Arc<dyn Handler>]>,
    pub metrics: SourceMetrics,
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
            sources.insert(
                name.clone(),
                Source {
                    name: name.clone(),
                    provider,
                    handlers: handlers.into(),
                    metrics: metrics.source(name),
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
        let sig = |key: &[u8]| {
            crate::providers::signature::hmac(
                crate::config::SignatureAlgorithm::Sha256,
                key,
                &[b"x"],
            )
        };
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
