//! The text layout of idemhook's own log lines, written without `tracing-subscriber`'s
//! general-purpose formatter.
//!
//! **Why.** idemhook logs one line per webhook, duplicates included, on the request path. The
//! general formatter pays, on every line, a calendar computation for the timestamp, a
//! character-by-character pass over the message, and a `fmt` call for every piece it writes.
//! Under a flood of duplicates that was several percent of the server's CPU (BENCHMARKS.md,
//! "Duplicates against bare Rocket"). Here the timestamp's date and time are formatted once a
//! second per thread, numbers go through `itoa` and `ryu`, and a value without control
//! characters is copied in one piece.
//!
//! **The same layout.** `2026-11-29T21:57:14.123456Z  INFO idemhook::routes::webhooks: event
//! source=stripe …`, byte for byte what the default formatter writes, except that floats take
//! `ryu`'s shortest form. Lines of other crates (Rocket through `log`, sqlx), lines inside a
//! span, and colour output on a terminal keep the default formatter: [`Layout`] hands them to
//! it.
//!
//! **One line per event, whatever a sender put in an identifier.** Every control character
//! in a value (newline, carriage return, escape, the C1 range) is written escaped (`\n`, `\r`,
//! `\u{1b}`, `\u{85}`), so an event id cannot forge a second log line or drive a terminal.

use std::cell::RefCell;
use std::fmt::{self, Write as _};
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::{Format, Full, Writer};
use tracing_subscriber::fmt::time::SystemTime as DefaultTimer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The event formatter for `log_format = "text"`.
#[derive(Default)]
pub struct Layout {
    general: Format<Full, DefaultTimer>,
}

impl<S, N> FormatEvent<S, N> for Layout
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        if writer.has_ansi_escapes()
            || !meta.target().starts_with("idemhook")
            || ctx.event_scope().is_some()
        {
            return self.general.format_event(ctx, writer, event);
        }
        write_timestamp(&mut writer)?;
        writer.write_str(level(meta.level()))?;
        writer.write_str(meta.target())?;
        writer.write_str(": ")?;
        let mut fields = Fields {
            out: &mut writer,
            first: true,
            result: Ok(()),
        };
        event.record(&mut fields);
        fields.result?;
        writer.write_char('\n')
    }
}

/// The level as the default formatter writes it: padded to five, then a space.
fn level(level: &Level) -> &'static str {
    match *level {
        Level::TRACE => "TRACE ",
        Level::DEBUG => "DEBUG ",
        Level::INFO => " INFO ",
        Level::WARN => " WARN ",
        Level::ERROR => "ERROR ",
    }
}

thread_local! {
    /// The second last formatted on this thread, and its text up to the fraction's dot.
    static SECOND: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
}

/// `2026-11-29T21:57:14.123456Z ` (RFC 3339, UTC, microseconds, then a space).
fn write_timestamp(out: &mut Writer<'_>) -> fmt::Result {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let seconds = since.as_secs();
    SECOND.with(|cached| {
        let mut cached = cached.borrow_mut();
        if cached.0 != seconds {
            let text = i64::try_from(seconds)
                .ok()
                .and_then(|s| chrono::DateTime::from_timestamp(s, 0))
                .unwrap_or_default()
                .format("%Y-%m-%dT%H:%M:%S.")
                .to_string();
            *cached = (seconds, text);
        }
        out.write_str(&cached.1)
    })?;
    let micros = since.subsec_micros();
    let mut digits = itoa::Buffer::new();
    let digits = digits.format(micros);
    out.write_str(&"000000"[digits.len()..])?;
    out.write_str(digits)?;
    out.write_str("Z ")
}

/// Writes an event's fields as the default formatter does: the message first and bare, then
/// `name=value`, space-separated; strings quoted, `%` values as displayed, all escaped.
struct Fields<'w, 'a> {
    out: &'w mut Writer<'a>,
    first: bool,
    result: fmt::Result,
}

impl Fields<'_, '_> {
    /// Starts a field; false when an earlier write failed.
    fn start(&mut self, field: &Field) -> bool {
        if self.result.is_err() {
            return false;
        }
        if !std::mem::take(&mut self.first) {
            self.result = self.out.write_char(' ');
        }
        if field.name() != "message" {
            self.result = self
                .result
                .and_then(|()| self.out.write_str(field.name()))
                .and_then(|()| self.out.write_char('='));
        }
        self.result.is_ok()
    }
}

impl Visit for Fields<'_, '_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        if self.start(field) {
            self.result = self.out.write_str(ryu::Buffer::new().format(value));
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        if self.start(field) {
            self.result = self.out.write_str(itoa::Buffer::new().format(value));
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        if self.start(field) {
            self.result = self.out.write_str(itoa::Buffer::new().format(value));
        }
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        if self.start(field) {
            self.result = self.out.write_str(if value { "true" } else { "false" });
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.record_debug(field, &format_args!("{value}"));
        } else {
            self.record_debug(field, &value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if self.start(field) {
            self.result = write!(Escaped(self.out), "{value:?}");
        }
    }
}

/// Passes text through, writing each control character escaped.
struct Escaped<'w, 'a>(&'w mut Writer<'a>);

impl fmt::Write for Escaped<'_, '_> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        escape_into(self.0, text)
    }
}

/// Copies `text` to `out` with every control character (C0, DEL, C1) escaped.
fn escape_into(out: &mut impl fmt::Write, text: &str) -> fmt::Result {
    // Any control character's UTF-8 starts with a byte below 0x20, 0x7f, or (C1) 0xc2.
    if !text.bytes().any(|b| b < 0x20 || b == 0x7f || b == 0xc2) {
        return out.write_str(text);
    }
    let mut clean = 0;
    for (at, c) in text.char_indices() {
        if c.is_control() {
            out.write_str(&text[clean..at])?;
            write!(out, "{}", c.escape_default())?;
            clean = at + c.len_utf8();
        }
    }
    out.write_str(&text[clean..])
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::fmt::MakeWriter;

    use super::*;

    /// Collects what a subscriber writes.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Captured {
        type Writer = Captured;
        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    impl Captured {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    /// What `log` writes under our layout and under the default one.
    fn both(log: impl Fn()) -> (String, String) {
        let ours = Captured::default();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .event_format(Layout::default())
            .with_writer(ours.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, &log);
        let general = Captured::default();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(general.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, &log);
        (ours.text(), general.text())
    }

    /// Drops the timestamp, which differs between two runs.
    fn after_timestamp(line: &str) -> &str {
        line.split_once(' ').map_or("", |(_, rest)| rest)
    }

    #[test]
    fn writes_the_default_layout() {
        let (ours, general) = both(|| {
            let id = String::from("evt_1 ünï");
            tracing::info!(source = %"stripe", event_id = %id, outcome = "duplicate",
                latency_ms = 0.25, count = 3u64, delta = -2i64, ok = true, "event");
            tracing::warn!("database unavailable: {}", "refused");
        });
        let ours: Vec<&str> = ours.lines().collect();
        let general: Vec<&str> = general.lines().collect();
        assert_eq!(ours.len(), 2, "{ours:?}");
        for (ours, general) in ours.iter().zip(&general) {
            assert_eq!(after_timestamp(ours), after_timestamp(general));
        }
        assert_eq!(
            after_timestamp(ours[0]),
            " INFO idemhook::telemetry::line::tests: event source=stripe event_id=evt_1 ünï \
             outcome=\"duplicate\" latency_ms=0.25 count=3 delta=-2 ok=true"
        );
    }

    #[test]
    fn the_timestamp_is_rfc3339_utc_to_the_microsecond() {
        let (ours, _) = both(|| tracing::info!("tick"));
        let stamp = ours.split(' ').next().unwrap();
        let parsed = chrono::DateTime::parse_from_rfc3339(stamp).unwrap();
        assert_eq!(stamp.len(), "2026-11-29T21:57:14.123456Z".len(), "{stamp}");
        assert!(stamp.ends_with('Z'));
        let age = chrono::Utc::now().signed_duration_since(parsed);
        assert!(age.num_seconds().abs() < 60, "{stamp} is not now");
    }

    #[test]
    fn a_value_cannot_forge_a_second_line_or_drive_the_terminal() {
        let (ours, _) = both(|| {
            let id = "evt\n2026-11-29T00:00:00.000000Z  INFO forged\r\x1b[31m\u{85}\x7f";
            tracing::info!(event_id = %id, source = "a\nb", "event {}", "x\ny");
        });
        assert_eq!(ours.lines().count(), 1, "{ours:?}");
        assert!(
            ours.ends_with(
                ": event x\\ny event_id=evt\\n2026-11-29T00:00:00.000000Z  INFO \
                 forged\\r\\u{1b}[31m\\u{85}\\u{7f} source=\"a\\nb\"\n"
            ),
            "{ours:?}"
        );
    }

    #[test]
    fn lines_of_other_crates_keep_the_default_formatter() {
        // The default formatter leaves a field's newline raw where ours escapes it, so the two
        // outputs tell which formatter wrote the line.
        let (ours, general) = both(|| tracing::info!(target: "rocket::server", id = %"a\nb", "x"));
        assert!(general.contains("id=a\nb"), "{general:?}");
        assert_eq!(after_timestamp(&ours), after_timestamp(&general));
    }

    #[test]
    fn lines_inside_a_span_keep_the_default_formatter() {
        let (ours, general) = both(|| {
            let _request = tracing::info_span!("request", id = 7).entered();
            tracing::info!("inside");
        });
        assert!(general.contains("request{id=7}: "), "{general:?}");
        assert_eq!(after_timestamp(&ours), after_timestamp(&general));
    }
}
