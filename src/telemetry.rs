//! Logging: `tracing`, human-readable by default, one JSON object per line with
//! `log_format = "json"`. The filter is `RUST_LOG`, default `info` with Rocket's per-request
//! chatter turned down (idemhook logs its own line per event).
//!
//! What is never logged: secrets (their type cannot print), payload bodies, and database
//! passwords (URLs are redacted before they are logged).

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

pub const DEFAULT_FILTER: &str = "info,rocket::server=warn,rocket::launch_=warn";

pub fn init(format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let result = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    if let Err(e) = result {
        eprintln!("logging was already initialised: {e}");
    }
    // Rocket logs through the `log` crate, and at info and debug level it dumps every request,
    // headers included (the admin token, signatures). Whatever RUST_LOG says, records of the
    // `log` crate stop at warn; idemhook's own per-event line (`tracing`) replaces Rocket's.
    log::set_max_level(log::LevelFilter::Warn);
}
