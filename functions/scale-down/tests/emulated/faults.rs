//! The call log shared by the fault proxy (AWS calls) and the fake tasks
//! (admin calls), and the one fault or crash a run injects at a given call.

use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

/// What to do to the planned call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Answer with a server error (AWS: 500 ServerException / InternalFailure;
    /// task: HTTP 500).
    Error,
    /// Let the call take effect, then never answer: the caller's timeout fires
    /// without knowing whether it happened (for a write, it did).
    Hang,
}

#[derive(Debug, Default)]
struct Inner {
    log: Vec<String>,
    /// (operation, its occurrence counted from 0, fault)
    fault_on: Option<(String, usize, Fault)>,
    crash_after: Option<usize>,
    /// (operation, occurrence): notify once that call was answered.
    notify_after: Option<(String, usize)>,
    /// When each call (by index) was answered.
    answered_at: std::collections::BTreeMap<usize, tokio::time::Instant>,
}

/// Every call of a run, in order, plus the planned fault or crash.
#[derive(Debug, Clone, Default)]
pub struct Calls {
    inner: Arc<Mutex<Inner>>,
    /// Notified once the call planned as the crash point has been answered.
    pub crash: Arc<Notify>,
}

impl Calls {
    /// Records `op`; returns its index and the fault planned for it, if any.
    pub fn on_call(&self, op: &str) -> (usize, Option<Fault>) {
        let mut g = self.inner.lock().unwrap();
        let i = g.log.len();
        let seen = g.log.iter().filter(|o| *o == op).count();
        g.log.push(op.to_string());
        match &g.fault_on {
            Some((o, n, f)) if o == op && *n == seen => (i, Some(*f)),
            _ => (i, None),
        }
    }

    /// Called once call `index` has been answered: fires the crash if planned.
    pub fn answered(&self, index: usize) {
        let mut g = self.inner.lock().unwrap();
        g.answered_at.insert(index, tokio::time::Instant::now());
        let fire = g.crash_after == Some(index)
            || g.notify_after.as_ref().is_some_and(|(op, nth)| {
                g.log.get(index) == Some(op)
                    && g.log[..index].iter().filter(|o| *o == op).count() == *nth
            });
        if fire {
            self.crash.notify_one();
        }
    }

    /// Notifies [`Calls::crash`] once the `nth` call of `op` was answered
    /// (a hook for something to happen at that moment; nothing is dropped).
    pub fn notify_after(&self, op: &str, nth: usize) {
        self.inner.lock().unwrap().notify_after = Some((op.to_string(), nth));
    }

    /// The index the next call will get.
    pub fn next_index(&self) -> usize {
        self.inner.lock().unwrap().log.len()
    }

    /// When the `nth` call of `op` was answered, if it was.
    pub fn answered_at(&self, op: &str, nth: usize) -> Option<tokio::time::Instant> {
        let g = self.inner.lock().unwrap();
        let index = g
            .log
            .iter()
            .enumerate()
            .filter(|(_, o)| *o == op)
            .nth(nth)?
            .0;
        g.answered_at.get(&index).copied()
    }

    /// The calls so far.
    pub fn log(&self) -> Vec<String> {
        self.inner.lock().unwrap().log.clone()
    }

    /// Plans a fault at the `nth` (from 0) call of `op` from the start of the log.
    pub fn fault_on(&self, op: &str, nth: usize, fault: Fault) {
        self.inner.lock().unwrap().fault_on = Some((op.to_string(), nth, fault));
    }

    /// Plans a crash right after call `index` was answered.
    pub fn crash_after(&self, index: usize) {
        self.inner.lock().unwrap().crash_after = Some(index);
    }

    /// No fault, no crash from now on.
    pub fn clear_plan(&self) {
        let mut g = self.inner.lock().unwrap();
        g.fault_on = None;
        g.crash_after = None;
        g.notify_after = None;
    }
}
