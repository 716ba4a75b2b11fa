//! Logging: `tracing`, human-readable by default, one JSON object per line with
//! `log_format = "json"`. The filter is `RUST_LOG`, default `info` with Rocket's per-request
//! chatter turned down (idemhook logs its own line per event).
//!
//! **Off the request path.** A line is formatted where it is logged, then handed to a
//! background thread that writes it to stdout (`tracing-appender`'s non-blocking writer). A
//! request never waits on the terminal, a pipe or a log shipper: written synchronously, the
//! per-event line cost about a quarter of a duplicate's time (BENCHMARKS.md). The queue holds
//! [`BUFFERED_LINES`] lines; when stdout cannot keep up, new lines are dropped, not waited
//! for, and counted (`idemhook_log_lines_dropped_total`). The guard [`init`] returns flushes
//! what is queued when the process ends normally.
//!
//! What is never logged: secrets (their type cannot print), payload bodies, and database
//! passwords (URLs are redacted before they are logged).

use std::sync::OnceLock;

use tracing_appender::non_blocking::{ErrorCounter, NonBlocking, NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

pub const DEFAULT_FILTER: &str = "info,rocket::server=warn,rocket::launch_=warn";

/// How many lines may wait for stdout before new ones are dropped.
pub const BUFFERED_LINES: usize = 64 * 1024;

static DROPPED: OnceLock<ErrorCounter> = OnceLock::new();

/// Lines dropped because stdout could not keep up, since launch.
pub fn dropped_lines() -> u64 {
    DROPPED.get().map_or(0, |c| c.dropped_lines() as u64)
}

/// A writer that queues up to `lines` lines for `out` on a background thread and drops (and
/// counts) what does not fit, never waiting.
fn off_the_request_path<W: std::io::Write + Send + 'static>(
    out: W,
    lines: usize,
) -> (NonBlocking, WorkerGuard) {
    NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(lines)
        .thread_name("idemhook-log")
        .finish(out)
}

/// Installs the subscriber. Keep the guard until the process ends: dropping it flushes.
#[must_use = "dropping the guard stops the log writer"]
pub fn init(format: LogFormat) -> Option<WorkerGuard> {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    // Buffered: the writer thread drains what is queued, then flushes once, so under load a
    // burst of lines is one write to stdout, not one each (stdout alone flushes every line).
    let stdout = std::io::BufWriter::with_capacity(64 * 1024, std::io::stdout());
    let (writer, guard) = off_the_request_path(stdout, BUFFERED_LINES);
    let counter = writer.error_counter();
    // Colours only for a terminal: escape codes in a file or a log shipper are noise, and
    // formatting them is a share of each line's cost.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(writer);
    let result = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    // Rocket logs through the `log` crate, and at info and debug level it dumps every request,
    // headers included (the admin token, signatures). Whatever RUST_LOG says, records of the
    // `log` crate stop at warn; idemhook's own per-event line (`tracing`) replaces Rocket's.
    log::set_max_level(log::LevelFilter::Warn);
    match result {
        Ok(()) => {
            let _ = DROPPED.set(counter);
            Some(guard)
        }
        Err(e) => {
            eprintln!("logging was already initialised: {e}");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    use super::*;

    /// stdout that does not move (a full pipe, a stalled shipper) until told to.
    struct Stuck(mpsc::Receiver<()>);

    impl Write for Stuck {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let _ = self.0.recv();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_stuck_stdout_drops_and_counts_lines_and_never_blocks_the_caller() {
        let (release, stuck) = mpsc::channel();
        let (mut writer, guard) = off_the_request_path(Stuck(stuck), 8);
        let started = Instant::now();
        for i in 0..1_000 {
            writer.write_all(format!("line {i}\n").as_bytes()).unwrap();
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "writes waited on stdout"
        );
        let dropped = writer.error_counter().dropped_lines();
        assert!(dropped >= 1_000 - 8 - 1, "{dropped} dropped");
        drop(release);
        drop(guard);
    }
}
