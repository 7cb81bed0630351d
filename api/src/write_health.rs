//! Whether this task can write, said where an alarm can watch it: counters that the EMF record
//! carries (`WriteFailures`, `WriteUncertain`, `CanWrite`), `/api/metrics`, and one log line at
//! each change (`"writes failing"` / `"writes recovered"`, target `db`). Deliberately not the
//! load balancer's health check: a task that cannot reach the database is still alive, and
//! replacing it would not bring the database back.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::Instant;

use serde::Serialize;

/// Outcome counters of the group-commit writer.
#[derive(Debug)]
pub struct WriteHealth {
    can_write: AtomicBool,
    failing_since: Mutex<Option<Instant>>,
    /// Rows answered 503 because the database failed them (all kinds).
    failed: AtomicU64,
    /// Of those, rows whose statement had been sent when the answer was lost: they may have
    /// committed, so a client that retries may record the visit twice.
    uncertain: AtomicU64,
    /// Rows committed whose 201 could not be delivered (the request had given up or its
    /// client had gone).
    committed_unanswered: AtomicU64,
    window_failed: AtomicU64,
    window_uncertain: AtomicU64,
    window_ok: AtomicU64,
}

impl Default for WriteHealth {
    fn default() -> Self {
        WriteHealth {
            can_write: AtomicBool::new(true),
            failing_since: Mutex::new(None),
            failed: AtomicU64::new(0),
            uncertain: AtomicU64::new(0),
            committed_unanswered: AtomicU64::new(0),
            window_failed: AtomicU64::new(0),
            window_uncertain: AtomicU64::new(0),
            window_ok: AtomicU64::new(0),
        }
    }
}

/// Totals since start, for `/api/metrics`.
#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
pub struct WriteTotals {
    /// False from a failed batch until the next committed one.
    pub can_write: bool,
    /// Rows answered 503 for a database failure.
    pub failed_rows: u64,
    /// Rows answered 503 whose commit is unknown (may exist).
    pub uncertain_rows: u64,
    /// Rows committed but not acknowledged to their client.
    pub committed_unanswered_rows: u64,
}

/// One EMF interval's counts.
#[derive(Clone, Copy, Debug, Default)]
pub struct WriteWindow {
    /// Rows committed in the interval.
    pub ok: u64,
    /// Rows answered 503 for a database failure.
    pub failed: u64,
    /// Of which with an unknown outcome.
    pub uncertain: u64,
    /// 1 when the task could write at the end of the interval and no batch failed in it.
    pub can_write: bool,
}

impl WriteHealth {
    /// A batch of `rows` committed; `unanswered` of them could not be told.
    pub fn committed(&self, rows: u64, unanswered: u64) {
        self.window_ok.fetch_add(rows, Relaxed);
        if unanswered > 0 {
            self.committed_unanswered.fetch_add(unanswered, Relaxed);
            tracing::warn!(
                target: "db",
                rows = unanswered,
                "visits committed but their requests had already gone"
            );
        }
        if !self.can_write.swap(true, Relaxed) {
            let since = self
                .failing_since
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take();
            tracing::warn!(
                target: "db",
                can_write = true,
                failing_s = since.map_or(0.0, |s| s.elapsed().as_secs_f64()),
                "writes recovered"
            );
        }
    }

    /// A batch of `rows` failed; `uncertain` when they may have committed.
    pub fn failed(&self, rows: u64, uncertain: bool, error: &str) {
        self.failed.fetch_add(rows, Relaxed);
        self.window_failed.fetch_add(rows, Relaxed);
        if uncertain {
            self.uncertain.fetch_add(rows, Relaxed);
            self.window_uncertain.fetch_add(rows, Relaxed);
        }
        if self.can_write.swap(false, Relaxed) {
            *self.failing_since.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
            tracing::error!(target: "db", can_write = false, error, "writes failing");
        }
    }

    /// Totals since start.
    pub fn totals(&self) -> WriteTotals {
        WriteTotals {
            can_write: self.can_write.load(Relaxed),
            failed_rows: self.failed.load(Relaxed),
            uncertain_rows: self.uncertain.load(Relaxed),
            committed_unanswered_rows: self.committed_unanswered.load(Relaxed),
        }
    }

    /// Empties and returns the interval's counts.
    pub fn take_window(&self) -> WriteWindow {
        let failed = self.window_failed.swap(0, Relaxed);
        WriteWindow {
            ok: self.window_ok.swap(0, Relaxed),
            failed,
            uncertain: self.window_uncertain.swap(0, Relaxed),
            can_write: failed == 0 && self.can_write.load(Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failing_then_recovering() {
        let h = WriteHealth::default();
        h.committed(3, 0);
        assert!(h.take_window().can_write);
        h.failed(4, true, "timeout");
        h.failed(2, false, "refused");
        let w = h.take_window();
        assert!(!w.can_write);
        assert_eq!((w.failed, w.uncertain), (6, 4));
        assert!(
            !h.take_window().can_write,
            "still failing with no new batch"
        );
        h.committed(1, 1);
        let t = h.totals();
        assert!(t.can_write);
        assert_eq!(
            (t.failed_rows, t.uncertain_rows, t.committed_unanswered_rows),
            (6, 4, 1)
        );
        assert!(h.take_window().can_write);
    }
}
