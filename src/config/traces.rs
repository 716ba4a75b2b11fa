//! `[default.idemhook.tracing]`: OpenTelemetry traces, exported over OTLP/HTTP (protobuf).
//! Off unless an endpoint is given here or in the standard `OTEL_EXPORTER_OTLP_ENDPOINT` /
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` variables (see `telemetry::traces`).

use serde::{Deserialize, Serialize};
use smart_default::SmartDefault;
use validator::Validate;

use super::{invalid, ConfigError};

#[derive(Debug, Clone, Serialize, Deserialize, SmartDefault, Validate, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TracesConfig {
    /// The collector's base URL (`/v1/traces` is appended), e.g. `http://127.0.0.1:4318`.
    /// Unset: the OTEL_EXPORTER_OTLP_* variables decide, and without them tracing is off.
    pub otlp_endpoint: Option<String>,
    /// The share of events traced, decided per trace id (so every span of a trace, on every
    /// instance, makes the same decision).
    #[default = 1.0]
    #[validate(range(min = 0.0, max = 1.0))]
    pub sample_ratio: f64,
    /// `service.name` of every span; `OTEL_SERVICE_NAME` wins when it is set.
    #[default = "idemhook"]
    pub service_name: String,
    /// Whether a provider's `traceparent` header is continued (its trace id, its sampling
    /// decision). `false`: it is only linked to, so an outsider cannot choose which events
    /// are sampled nor join their traces to ours.
    pub trust_incoming_traceparent: bool,
    /// Finished spans that may wait for export; past it, new ones are dropped and counted.
    #[default = 4096]
    #[validate(range(min = 64, max = 1_000_000))]
    pub queue: usize,
}

impl TracesConfig {
    pub(super) fn validate_table(&self) -> Result<(), ConfigError> {
        Validate::validate(self).map_err(|e| invalid("idemhook.tracing", &e))?;
        if let Some(endpoint) = &self.otlp_endpoint {
            match url::Url::parse(endpoint) {
                Ok(url) if matches!(url.scheme(), "http" | "https") => {}
                _ => {
                    return Err(ConfigError::Invalid(format!(
                        "idemhook.tracing.otlp_endpoint = {endpoint:?} is not an http(s) URL"
                    )))
                }
            }
        }
        if self.service_name.is_empty() {
            return Err(ConfigError::Invalid(
                "idemhook.tracing.service_name is empty".to_owned(),
            ));
        }
        Ok(())
    }
}
