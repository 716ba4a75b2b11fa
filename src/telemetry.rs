//! Logging: `tracing`, human-readable by default, one JSON object per line with
//! `log_format = "json"`. The filter is `RUST_LOG`, default `info` with Rocket's per-request
//! chatter turned down (idemhook logs its own line per event).
//!
//! What is never logged: secrets (their type cannot print), payload bodies, and database
//! passwords (URLs are redacted before they are logged).

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

pub const DEFAULT_FILTER: &str = "info,rocket::server=warn,rocket::launch_=warn";

/// Caps applied whatever `RUST_LOG` says: at debug level Rocket dumps each request with its
/// headers (the admin token, signatures), hyper and sqlx can print raw bytes and bound
/// values. None of that may reach a log.
const CAPS: [&str; 4] = [
    "rocket::server=info",
    "hyper=info",
    "sqlx=warn",
    "sea_orm=info",
];

pub fn init(format: LogFormat) {
    let mut filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    for cap in CAPS {
        if let Ok(directive) = cap.parse() {
            filter = filter.add_directive(directive);
        }
    }
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let result = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    if let Err(e) = result {
        eprintln!("logging was already initialised: {e}");
    }
}
