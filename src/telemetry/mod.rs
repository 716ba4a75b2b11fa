//! Logging: `tracing`, human-readable by default, one JSON object per line with
//! `log_format = "json"`. The filter is `RUST_LOG`, default `info` with Rocket's per-request
//! chatter turned down (idemhook logs its own line per event).
//!
//! **Off the request path.** A line is formatted where it is logged, then appended to a
//! buffer that a background thread writes to stdout (`writer`). A request never waits on
//! the terminal, a pipe or a log shipper: written synchronously, the per-event line cost about
//! a quarter of a duplicate's time (BENCHMARKS.md). The buffer holds [`BUFFERED_BYTES`]; when
//! stdout cannot keep up, new lines are dropped, not waited for, and counted
//! (`idemhook_log_lines_dropped_total`). The guard [`init`] returns flushes what is buffered
//! when the process ends normally.
//!
//! **Cheap to format.** idemhook's own lines in the text format are written by [`line`]'s
//! fixed layout, not the general formatter: the same text for less CPU, and every control
//! character in a value escaped, so an identifier cannot forge a line.
//!
//! What is never logged: secrets (their type cannot print), payload bodies, and database
//! passwords (URLs are redacted before they are logged).

mod line;
pub mod traces;
mod writer;

use std::sync::OnceLock;

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;
pub use writer::Guard;
use writer::Lines;

pub const DEFAULT_FILTER: &str = "info,rocket::server=warn,rocket::launch_=warn";

/// How many bytes of lines may wait for stdout before new lines are dropped (about 40,000
/// per-event lines, seconds of a flood).
pub const BUFFERED_BYTES: usize = 8 << 20;

static WRITER: OnceLock<Lines> = OnceLock::new();

/// Lines dropped because stdout could not keep up, since launch.
pub fn dropped_lines() -> u64 {
    WRITER.get().map_or(0, Lines::dropped)
}

/// Installs the subscriber. Keep the guard until the process ends: dropping it flushes.
#[must_use = "dropping the guard stops the log writer"]
pub fn init(format: LogFormat) -> Option<Guard> {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let (writer, guard) = match Lines::start(std::io::stdout(), BUFFERED_BYTES) {
        Ok(started) => started,
        Err(e) => {
            eprintln!("cannot start the log writer thread: {e}");
            return None;
        }
    };
    let lines = writer.clone();
    // Colours only for a terminal: escape codes in a file or a log shipper are noise, and
    // formatting them is a share of each line's cost.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(writer);
    let result = match format {
        LogFormat::Text => builder.event_format(line::Layout::default()).try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    // Rocket logs through the `log` crate, and at info and debug level it dumps every request,
    // headers included (the admin token, signatures). Whatever RUST_LOG says, records of the
    // `log` crate stop at warn; idemhook's own per-event line (`tracing`) replaces Rocket's.
    log::set_max_level(log::LevelFilter::Warn);
    match result {
        Ok(()) => {
            let _ = WRITER.set(lines);
            Some(guard)
        }
        Err(e) => {
            eprintln!("logging was already initialised: {e}");
            None
        }
    }
}
