//! Where each provider puts an event's id and type (and, with the providers issue, how it signs).
//!
//! A provider turns a raw request into the two strings of the event key that it controls
//! (type, id); the source name is ours. Everything here runs on the request task, before the
//! event reaches a shard, so a malformed delivery costs no queue slot and no database work.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;

use crate::config::{ProviderKind, Settings};
use crate::handlers::{Handler, Registry};

pub mod generic;

/// What a provider sees of a delivery.
pub struct Delivery<'a> {
    /// Names lowercased.
    pub headers: &'a [(String, String)],
    pub body: &'a [u8],
    pub json: Option<&'a Value>,
    pub payload_sha256: &'a [u8; 32],
}

impl Delivery<'_> {
    /// The first header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProviderError {
    #[error("the body is not valid JSON, and the event {what} must be read from it at {pointer}")]
    NotJson { what: &'static str, pointer: String },
    #[error("the event type is missing: send the {header} header or a string at {pointer}")]
    MissingType { header: String, pointer: String },
    #[error("the event id is missing: send the {header} header or a string at {pointer}")]
    MissingId { header: String, pointer: String },
    #[error("the event {what} at {pointer} must be a {expected}")]
    WrongType {
        what: &'static str,
        pointer: String,
        expected: &'static str,
    },
}

pub enum Provider {
    Generic(generic::Generic),
}

impl Provider {
    /// (event type, event id) of the delivery.
    pub fn extract(&self, delivery: &Delivery<'_>) -> Result<(String, String), ProviderError> {
        match self {
            Provider::Generic(g) => g.extract(delivery),
        }
    }
}

/// A configured source: its provider and the handlers its events run.
pub struct Source {
    pub name: String,
    pub provider: Provider,
    pub handlers: Arc<[Arc<dyn Handler>]>,
}

/// Every source, by name, built once at launch.
pub struct Sources(HashMap<String, Source>);

impl Sources {
    /// Resolves the configured sources, refusing unknown handler names.
    pub fn build(settings: &Settings, registry: &Registry) -> Result<Self, String> {
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
            let provider = match cfg.provider {
                ProviderKind::Generic => Provider::Generic(generic::Generic::from_config(cfg)),
            };
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
