//! Log lines off the request path: a request appends its line to a shared buffer, and a
//! background thread writes what has gathered to stdout every few milliseconds.
//!
//! **Why not a channel of lines** (`tracing-appender`'s non-blocking writer, used before): it
//! allocates each line, and its thread wakes for a handful of lines at a time, spinning and
//! yielding before it parks. Under a flood of duplicates that thread alone took about 6 % of
//! the server's CPU, on a machine whose two cores the requests need (BENCHMARKS.md). Here a
//! line costs a lock and a copy, and the thread wakes at most once per [`PAUSE`]: under load
//! one `write` carries thousands of lines.
//!
//! **Never blocks, always bounded.** A request never waits on stdout: when what waits to be
//! written reaches [`Lines::limit`] bytes, new lines are dropped and counted
//! ([`Lines::dropped`], `idemhook_log_lines_dropped_total`). Memory is at most twice the limit
//! (what gathers while the last batch is written).
//!
//! **Flushed at exit.** Dropping the [`Guard`] writes what is still buffered; a `kill -9` loses
//! at most the last [`PAUSE`] of lines.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

/// How long the writer thread lets lines gather after a write.
pub const PAUSE: Duration = Duration::from_millis(10);

/// The shared buffer; cheap to clone, one per subscriber.
#[derive(Clone)]
pub struct Lines(Arc<Shared>);

struct Shared {
    pending: Mutex<Pending>,
    gathered: Condvar,
    limit: usize,
    dropped: AtomicU64,
}

#[derive(Default)]
struct Pending {
    bytes: Vec<u8>,
    closing: bool,
}

/// Stops the writer thread, after it has written everything buffered, when dropped.
pub struct Guard {
    lines: Lines,
    thread: Option<JoinHandle<()>>,
}

impl Lines {
    /// A buffer of at most `limit` bytes, written to `out` by a thread of its own.
    pub fn start<W: Write + Send + 'static>(
        out: W,
        limit: usize,
    ) -> std::io::Result<(Lines, Guard)> {
        let lines = Lines(Arc::new(Shared {
            pending: Mutex::default(),
            gathered: Condvar::new(),
            limit,
            dropped: AtomicU64::new(0),
        }));
        let writer = lines.clone();
        let thread = std::thread::Builder::new()
            .name("idemhook-log".into())
            .spawn(move || writer.write_until_closed(out))?;
        let guard = Guard {
            lines: lines.clone(),
            thread: Some(thread),
        };
        Ok((lines, guard))
    }

    /// Lines dropped because the buffer was full.
    pub fn dropped(&self) -> u64 {
        self.0.dropped.load(Ordering::Relaxed)
    }

    /// The buffer; a panic elsewhere while holding it leaves bytes, never a broken invariant.
    fn pending(&self) -> MutexGuard<'_, Pending> {
        self.0.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends one whole line (the formatter writes a line in one call), or drops it.
    fn append(&self, line: &[u8]) {
        let mut pending = self.pending();
        if pending.bytes.len() + line.len() > self.0.limit {
            drop(pending);
            self.0.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let was_empty = pending.bytes.is_empty();
        pending.bytes.extend_from_slice(line);
        drop(pending);
        // Only the first line of a batch wakes the thread; it may be sleeping out its pause,
        // and then the wake is a no-op.
        if was_empty {
            self.0.gathered.notify_one();
        }
    }

    fn write_until_closed(&self, mut out: impl Write) {
        let mut batch = Vec::new();
        loop {
            let closing = {
                let mut pending = self.pending();
                while pending.bytes.is_empty() && !pending.closing {
                    pending = self
                        .0
                        .gathered
                        .wait(pending)
                        .unwrap_or_else(|e| e.into_inner());
                }
                std::mem::swap(&mut pending.bytes, &mut batch);
                pending.closing
            };
            // A failing stdout (a closed pipe) loses these lines; there is nowhere to say so.
            let _ = out.write_all(&batch).and_then(|()| out.flush());
            batch.clear();
            if closing && self.pending().bytes.is_empty() {
                return;
            }
            if !closing {
                std::thread::sleep(PAUSE);
            }
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.lines.pending().closing = true;
        self.lines.0.gathered.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// What the formatter writes one line into.
pub struct LineWriter<'a>(&'a Lines);

impl Write for LineWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.append(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Lines {
    type Writer = LineWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        LineWriter(self)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::Instant;

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

    /// stdout that keeps what it is given.
    #[derive(Clone, Default)]
    struct Kept(Arc<Mutex<Vec<u8>>>);

    impl Write for Kept {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_stuck_stdout_drops_and_counts_lines_and_never_blocks_the_caller() {
        let (release, stuck) = mpsc::channel();
        let (lines, guard) = Lines::start(Stuck(stuck), 80).unwrap();
        let started = Instant::now();
        for i in 0..1_000 {
            lines
                .make_writer()
                .write_all(format!("line {i:04}\n").as_bytes())
                .unwrap();
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "writes waited on stdout"
        );
        // At most 8 lines of 10 bytes wait in the buffer and 8 more in the stuck write.
        let dropped = lines.dropped();
        assert!(
            (1_000 - 16..=1_000 - 8).contains(&dropped),
            "{dropped} dropped"
        );
        drop(release);
        drop(guard);
    }

    #[test]
    fn every_line_is_written_whole_and_in_order_and_the_guard_flushes() {
        let kept = Kept::default();
        let (lines, guard) = Lines::start(kept.clone(), 1 << 20).unwrap();
        let writers: Vec<_> = (0..4)
            .map(|t| {
                let lines = lines.clone();
                std::thread::spawn(move || {
                    for i in 0..2_000 {
                        let line = format!("{t} {i}\n");
                        lines.make_writer().write_all(line.as_bytes()).unwrap();
                    }
                })
            })
            .collect();
        for w in writers {
            w.join().unwrap();
        }
        drop(guard);
        let text = String::from_utf8(kept.0.lock().unwrap().clone()).unwrap();
        let mut next = [0; 4];
        for line in text.lines() {
            let (t, i) = line.split_once(' ').unwrap();
            let t: usize = t.parse().unwrap();
            assert_eq!(
                i.parse::<usize>().unwrap(),
                next[t],
                "thread {t}'s lines out of order"
            );
            next[t] += 1;
        }
        assert_eq!(next, [2_000; 4]);
        assert_eq!(lines.dropped(), 0);
    }
}
