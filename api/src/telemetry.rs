//! Logs: JSON lines on stdout, one per event (CloudWatch Logs and the local stack read them).
//!
//! Lines go into a shared buffer that a background thread writes out every [`FLUSH_EVERY`], or
//! at once when it holds [`FLUSH_AT`] bytes: a few writes a second instead of one per request.
//! One write per request line cost a quarter of the API's GET throughput in `make bench-api`
//! (and each write also wakes the log driver on the other end of the pipe). The price: a
//! process killed outright (SIGKILL, OOM) loses at most the last [`FLUSH_EVERY`] of lines;
//! every orderly exit calls [`flush`] first.

use std::io::{self, Write};
use std::sync::{Mutex, Once, PoisonError};
use std::time::Duration;

use tracing_subscriber::EnvFilter;

/// How long a line may wait in the buffer.
pub const FLUSH_EVERY: Duration = Duration::from_millis(25);
/// Buffer size that triggers a write without waiting.
pub const FLUSH_AT: usize = 64 * 1024;

static BUFFER: Mutex<Vec<u8>> = Mutex::new(Vec::new());

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
        static FLUSHER: Once = Once::new();
        FLUSHER.call_once(|| {
            let spawned = std::thread::Builder::new()
                .name("log-flush".into())
                .spawn(|| loop {
                    std::thread::sleep(FLUSH_EVERY);
                    flush();
                });
            if let Err(e) = spawned {
                eprintln!(
                    "visits-api: no log flusher thread ({e}); logs flush at {FLUSH_AT} bytes"
                );
            }
        });
    }
}

/// Writes out every buffered line. Call before the process exits.
pub fn flush() {
    // Take the buffer while holding stdout, so that concurrent flushes keep the lines' order.
    let mut out = io::stdout().lock();
    let data = std::mem::take(&mut *BUFFER.lock().unwrap_or_else(PoisonError::into_inner));
    if !data.is_empty() {
        // Nowhere to report a failed log write; the next lines will try again.
        let _ = out.write_all(&data);
        let _ = out.flush();
    }
}

/// What the subscriber writes each formatted event to (one `write_all` per event).
struct BufferedStdout;

impl Write for BufferedStdout {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let full = {
            let mut buf = BUFFER.lock().unwrap_or_else(PoisonError::into_inner);
            buf.extend_from_slice(data);
            buf.len() >= FLUSH_AT
        };
        if full {
            flush();
        }
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
        let held = BUFFER.lock().unwrap().clone();
        assert!(
            held.windows(16).any(|x| x == b"{\"a\":1}\n{\"b\":2}\n"),
            "{}",
            String::from_utf8_lossy(&held)
        );
        flush();
        assert!(BUFFER.lock().unwrap().is_empty());
    }
}
