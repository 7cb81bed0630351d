//! Logs: JSON lines on stdout, one per event (CloudWatch Logs and the local stack read them).
//!
//! Nothing that serves requests ever writes to stdout itself. Lines go into a bounded buffer
//! that one background thread writes out every [`FLUSH_EVERY`], or at once when it holds
//! [`FLUSH_AT`] bytes: a few writes a second instead of one per request (one write per request
//! line cost a quarter of the GET throughput in `make bench-api`). When stdout stops taking
//! bytes (the log reader is stuck: the awslogs driver in blocking mode, a full pipe), only that
//! thread blocks; once the buffer holds [`BUFFER_MAX`] bytes, new lines are dropped and
//! counted ([`dropped_lines`], the `LogLinesDropped` metric, and one line saying how many once
//! stdout moves again). So a stuck log reader costs log lines, never answers or SIGTERM.
//!
//! The price: a process killed outright (SIGKILL, OOM) loses at most the last [`FLUSH_EVERY`]
//! of lines; every orderly exit calls [`flush`] first, which waits at most [`EXIT_FLUSH_MAX`].

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, Once, PoisonError};
use std::time::{Duration, Instant};

use tracing_subscriber::EnvFilter;

/// How long a line may wait in the buffer.
pub const FLUSH_EVERY: Duration = Duration::from_millis(25);
/// Buffer size that wakes the writer without waiting.
pub const FLUSH_AT: usize = 64 * 1024;
/// Buffer size past which lines are dropped (and counted) rather than kept.
pub const BUFFER_MAX: usize = 1024 * 1024;
/// How long [`flush`] waits for stdout at exit.
pub const EXIT_FLUSH_MAX: Duration = Duration::from_secs(2);

/// Lines waiting, with sequence numbers: `appended` counts lines put in, `written` lines
/// written out (or dropped), so that `flush` knows when its lines are out.
struct Pending {
    bytes: Vec<u8>,
    appended: u64,
    written: u64,
}

static PENDING: Mutex<Pending> = Mutex::new(Pending {
    bytes: Vec::new(),
    appended: 0,
    written: 0,
});
/// Wakes the writer thread (buffer over `FLUSH_AT`, or a flush).
static WAKE: Condvar = Condvar::new();
/// Tells `flush` that lines were written.
static WRITTEN: Condvar = Condvar::new();
static DROPPED: AtomicU64 = AtomicU64::new(0);
static WRITER_RUNNING: AtomicBool = AtomicBool::new(false);

fn pending() -> MutexGuard<'static, Pending> {
    PENDING.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Installs the JSON subscriber; `RUST_LOG` filters (default `info`). Safe to call twice (tests).
pub fn init() {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    let installed = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_env_filter(filter)
        .with_writer(|| BufferedStdout)
        .try_init();
    if installed.is_ok() {
        start_writer();
    }
}

fn start_writer() {
    static WRITER: Once = Once::new();
    WRITER.call_once(|| {
        let spawned = std::thread::Builder::new()
            .name("log-writer".into())
            .spawn(|| writer_loop(&mut io::stdout()));
        match spawned {
            Ok(_) => WRITER_RUNNING.store(true, Ordering::SeqCst),
            Err(e) => eprintln!("visits-api: no log writer thread ({e}); logs are written inline"),
        }
    });
}

/// Takes what is buffered and writes it out; blocks only this thread when `out` is stuck.
fn writer_loop(out: &mut impl Write) -> ! {
    let mut reported = 0;
    loop {
        let (mut bytes, upto) = {
            let mut p = pending();
            if p.bytes.is_empty() {
                p = WAKE
                    .wait_timeout(p, FLUSH_EVERY)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
            (std::mem::take(&mut p.bytes), p.appended)
        };
        let dropped = DROPPED.load(Ordering::Relaxed);
        if dropped > reported {
            // Said once stdout takes bytes again, after the lines that were kept.
            bytes.extend_from_slice(
                format!(
                    "{{\"level\":\"WARN\",\"target\":\"log\",\"message\":\"log lines dropped: stdout was not read\",\"dropped_total\":{dropped}}}\n"
                )
                .as_bytes(),
            );
            reported = dropped;
        }
        if !bytes.is_empty() {
            // Nowhere to report a failed log write; the next lines will try again.
            let _ = out.write_all(&bytes);
            let _ = out.flush();
        }
        pending().written = upto;
        WRITTEN.notify_all();
    }
}

/// Writes out every buffered line, waiting at most [`EXIT_FLUSH_MAX`]. Call before exit.
pub fn flush() {
    if !WRITER_RUNNING.load(Ordering::SeqCst) {
        let bytes = std::mem::take(&mut pending().bytes);
        let mut out = io::stdout().lock();
        let _ = out.write_all(&bytes);
        let _ = out.flush();
        return;
    }
    let deadline = Instant::now() + EXIT_FLUSH_MAX;
    let mut p = pending();
    let target = p.appended;
    WAKE.notify_all();
    while p.written < target {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return; // stdout is stuck: exit anyway
        }
        p = WRITTEN
            .wait_timeout(p, left)
            .unwrap_or_else(PoisonError::into_inner)
            .0;
    }
}

/// Log lines dropped since start because stdout did not take them.
pub fn dropped_lines() -> u64 {
    DROPPED.load(Ordering::Relaxed)
}

/// Queues one whole line (the EMF record uses it too); never blocks on stdout.
pub fn write_line(line: &[u8]) {
    let wake = {
        let mut p = pending();
        if p.bytes.len() + line.len() > BUFFER_MAX {
            DROPPED.fetch_add(1, Ordering::Relaxed);
            return;
        }
        p.bytes.extend_from_slice(line);
        p.appended += 1;
        p.bytes.len() >= FLUSH_AT
    };
    if !WRITER_RUNNING.load(Ordering::Relaxed) {
        if wake {
            flush();
        }
    } else if wake {
        WAKE.notify_one();
    }
}

/// What the subscriber writes each formatted event to (one `write_all` per event).
struct BufferedStdout;

impl Write for BufferedStdout {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        write_line(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffered_lines_are_kept_whole_and_in_order() {
        let mut w = BufferedStdout;
        w.write_all(b"{\"a\":1}\n").unwrap();
        w.write_all(b"{\"b\":2}\n").unwrap();
        let held = pending().bytes.clone();
        assert!(
            held.windows(16).any(|x| x == b"{\"a\":1}\n{\"b\":2}\n"),
            "{}",
            String::from_utf8_lossy(&held)
        );
        flush();
        assert!(pending().bytes.is_empty());
    }
}
