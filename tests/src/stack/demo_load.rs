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

/// Visits at a constant rate through `base_url` until stopped.
pub struct Visits {
    stop: Arc<AtomicBool>,
    totals: Arc<Mutex<Totals>>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Visits {
    /// Starts sending `rate` visits per second to `base_url` (loopback only).
    pub fn start(base_url: String, rate: f64) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let totals = Arc::new(Mutex::new(Totals::default()));
        let (s, t) = (stop.clone(), totals.clone());
        let task = tokio::spawn(async move {
            while !s.load(Ordering::SeqCst) {
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
                t.requests += summary.requests;
                t.ok += summary.ok;
                t.failed += summary.failed;
                for (k, v) in summary.errors {
                    *t.errors.entry(k).or_default() += v;
                }
                t.worst_p99_ms = t
                    .worst_p99_ms
                    .max(summary.latency_ms.get("p99").copied().unwrap_or(0.0));
            }
            Ok(())
        });
        Self { stop, totals, task }
    }

    /// Totals so far.
    pub fn totals(&self) -> Totals {
        self.totals.lock().expect("load totals").clone()
    }

    /// Stops after the current segment and returns the totals.
    pub async fn stop(self) -> anyhow::Result<Totals> {
        self.stop.store(true, Ordering::SeqCst);
        let totals = self.totals.clone();
        self.task.await??;
        let t = totals.lock().expect("load totals").clone();
        Ok(t)
    }
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
