//! The demo's load: visits through the proxy in short loadgen segments (so the
//! demo can stop when the loop is done, and sum the segments' summaries), and
//! a CPU burner (`POST /api/stress`) that drives the CPU alarm.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::loadgen::{self, Mode, Scenario};

/// How long one loadgen segment runs.
const SEGMENT: Duration = Duration::from_secs(5);

/// The visits load's running totals (sums of the loadgen segments' summaries).
#[derive(Debug, Clone, Default)]
pub struct Totals {
    pub requests: u64,
    pub ok: u64,
    pub failed: u64,
    pub errors: BTreeMap<String, u64>,
    /// Worst p99 of any segment, ms.
    pub worst_p99_ms: f64,
}

impl Totals {
    fn add(&mut self, summary: loadgen::Summary) {
        self.requests += summary.requests;
        self.ok += summary.ok;
        self.failed += summary.failed;
        for (k, v) in summary.errors {
            *self.errors.entry(k).or_default() += v;
        }
        self.worst_p99_ms = self
            .worst_p99_ms
            .max(summary.latency_ms.get("p99").copied().unwrap_or(0.0));
    }
}

/// Visits at a constant rate through `base_url` until stopped. The run is
/// split in parts ([`Visits::next_part`]): each segment counts in the part
/// that was current when it started, so a part's totals cover exactly the
/// requests sent after it began (give or take the segment in progress).
pub struct Visits {
    stop: Arc<AtomicBool>,
    part: Arc<AtomicU64>,
    /// Totals per part.
    totals: Arc<Mutex<Vec<Totals>>>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Visits {
    /// Starts sending `rate` visits per second to `base_url` (loopback only).
    pub fn start(base_url: String, rate: f64) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let part = Arc::new(AtomicU64::new(0));
        let totals = Arc::new(Mutex::new(vec![Totals::default()]));
        let (s, p, t) = (stop.clone(), part.clone(), totals.clone());
        let task = tokio::spawn(async move {
            while !s.load(Ordering::SeqCst) {
                let current = p.load(Ordering::SeqCst) as usize;
                let summary = loadgen::run(loadgen::Config {
                    base_url: base_url.clone(),
                    scenario: Scenario::Steady,
                    mode: Mode::Rate(rate),
                    duration: SEGMENT,
                    max_requests: loadgen::MAX_REQUESTS,
                    timeout: Duration::from_secs(30),
                    progress: false,
                })
                .await?;
                let mut t = t.lock().expect("load totals");
                if t.len() <= current {
                    t.resize(current + 1, Totals::default());
                }
                t[current].add(summary);
            }
            Ok(())
        });
        Self {
            stop,
            part,
            totals,
            task,
        }
    }

    /// Starts a new part: segments starting from now count in it.
    pub fn next_part(&self) {
        self.part.fetch_add(1, Ordering::SeqCst);
    }

    /// Stops after the current segment; returns the totals per part.
    pub async fn stop(self) -> anyhow::Result<Vec<Totals>> {
        self.stop.store(true, Ordering::SeqCst);
        let parts = self.part.load(Ordering::SeqCst) as usize + 1;
        let totals = self.totals.clone();
        self.task.await??;
        let mut t = totals.lock().expect("load totals").clone();
        t.resize(parts.max(t.len()), Totals::default());
        Ok(t)
    }
}

/// The sum of several parts' totals.
pub fn sum(parts: &[Totals]) -> Totals {
    let mut all = Totals::default();
    for p in parts {
        all.requests += p.requests;
        all.ok += p.ok;
        all.failed += p.failed;
        for (k, v) in &p.errors {
            *all.errors.entry(k.clone()).or_default() += v;
        }
        all.worst_p99_ms = all.worst_p99_ms.max(p.worst_p99_ms);
    }
    all
}

/// Keeps `workers` CPU burns running through `base_url` until stopped.
pub struct Burner {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Burner {
    /// Starts `workers` loops of `POST /api/stress {"duration_s": burn_s}`.
    pub fn start(base_url: &str, token: &str, workers: u32, burn_s: u64) -> anyhow::Result<Self> {
        loadgen::require_loopback(base_url)?;
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(burn_s + 30))
            .build()?;
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let url = format!("{}/api/stress", base_url.trim_end_matches('/'));
        let tasks = (0..workers)
            .map(|_| {
                let (client, url, token) = (client.clone(), url.clone(), token.to_string());
                let (stop, sent, failed) = (stop.clone(), sent.clone(), failed.clone());
                tokio::spawn(async move {
                    while !stop.load(Ordering::SeqCst) {
                        sent.fetch_add(1, Ordering::Relaxed);
                        let ok = client
                            .post(&url)
                            .bearer_auth(&token)
                            .header("content-type", "application/json")
                            .body(format!(r#"{{"duration_s":{burn_s}}}"#))
                            .send()
                            .await
                            .is_ok_and(|r| r.status().is_success());
                        if !ok {
                            failed.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_millis(500)).await;
                        }
                    }
                })
            })
            .collect();
        Ok(Self {
            stop,
            sent,
            failed,
            tasks,
        })
    }

    /// Stops starting new burns (running ones finish); returns (sent, failed).
    pub fn stop(self) -> (u64, u64) {
        self.stop.store(true, Ordering::SeqCst);
        drop(self.tasks); // detached: each ends after its current burn
        (
            self.sent.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
        )
    }
}
