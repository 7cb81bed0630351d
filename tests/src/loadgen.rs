//! The load generator behind the `loadgen` binary and the end-to-end tests:
//! a bounded, loopback-only HTTP load with a latency histogram and a JSON
//! summary.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use hdrhistogram::Histogram;
use serde::Serialize;

/// Longest run allowed, whatever the caller asks.
pub const MAX_DURATION: Duration = Duration::from_secs(600);
/// Most requests one run may send, whatever the caller asks.
pub const MAX_REQUESTS: u64 = 1_000_000;
/// Open-loop cap on requests in flight: past it, arrivals count as `overload`
/// instead of piling up without bound.
const MAX_IN_FLIGHT: u64 = 1_000;

/// The shape of the load over the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// The same load throughout; visits only.
    Steady,
    /// From zero up to the full load over the run; visits only.
    Ramp,
    /// Full load, then four times that for the middle third, then full again.
    Burst,
    /// Steady load of mixed calls: visit, visits summary, and health.
    Mix,
}

impl std::str::FromStr for Scenario {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> anyhow::Result<Self> {
        Ok(match s {
            "steady" => Self::Steady,
            "ramp" => Self::Ramp,
            "burst" => Self::Burst,
            "mix" => Self::Mix,
            other => bail!("unknown scenario {other:?} (steady, ramp, burst, mix)"),
        })
    }
}

/// Open loop (arrivals per second, independent of answers) or closed loop
/// (N workers, each sending its next request when the last one answered).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mode {
    /// Requests per second at full load.
    Rate(f64),
    /// Concurrent workers at full load.
    Concurrency(u32),
}

/// One run's settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Base URL, e.g. `http://127.0.0.1:8080`; must be loopback.
    pub base_url: String,
    /// Load shape.
    pub scenario: Scenario,
    /// Open or closed loop.
    pub mode: Mode,
    /// Run length (capped at [`MAX_DURATION`]).
    pub duration: Duration,
    /// Request budget (capped at [`MAX_REQUESTS`]).
    pub max_requests: u64,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Print a progress bar to stderr once a second.
    pub progress: bool,
}

/// What a run did: the JSON that tests read.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Requests sent (answered or not).
    pub requests: u64,
    /// Requests answered 2xx.
    pub ok: u64,
    /// Requests that were not answered 2xx.
    pub failed: u64,
    /// Failed requests by kind: `status_4xx`, `status_5xx`, `connect`, `timeout`, `other`, `overload`.
    pub errors: BTreeMap<String, u64>,
    /// Latency of answered requests in milliseconds: p50, p95, p99, max.
    pub latency_ms: BTreeMap<String, f64>,
    /// Wall time of the run.
    pub duration_s: f64,
    /// requests / duration_s.
    pub achieved_rps: f64,
}

/// Fails unless `url` is http:// to a loopback host (127.0.0.0/8, localhost, [::1]).
pub fn require_loopback(url: &str) -> anyhow::Result<()> {
    let rest = url
        .strip_prefix("http://")
        .with_context(|| format!("only http:// targets: {url}"))?;
    let authority = rest.split('/').next().unwrap_or_default();
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next().unwrap_or_default()
    } else {
        authority.split(':').next().unwrap_or_default()
    };
    let loopback = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false);
    if !loopback {
        bail!("refusing non-loopback target {host:?}: load only goes to this machine");
    }
    Ok(())
}

/// Fraction of full load at `elapsed` of a run of length `total`.
pub fn load_factor(scenario: Scenario, elapsed: Duration, total: Duration) -> f64 {
    let f = (elapsed.as_secs_f64() / total.as_secs_f64().max(1e-9)).clamp(0.0, 1.0);
    match scenario {
        Scenario::Steady | Scenario::Mix => 1.0,
        Scenario::Ramp => f.max(0.02),
        Scenario::Burst if (1.0 / 3.0..2.0 / 3.0).contains(&f) => 4.0,
        Scenario::Burst => 1.0,
    }
}

struct Shared {
    client: reqwest::Client,
    config: Config,
    histogram: Mutex<Histogram<u64>>,
    errors: Mutex<BTreeMap<String, u64>>,
    sent: AtomicU64,
    ok: AtomicU64,
    in_flight: AtomicU64,
    stop: Arc<AtomicBool>,
}

impl Shared {
    fn error(&self, kind: &str) {
        *self
            .errors
            .lock()
            .expect("errors lock")
            .entry(kind.to_string())
            .or_default() += 1;
    }

    /// Claims one request from the budget; false once it is spent or the run is stopped.
    fn claim(&self) -> bool {
        !self.stop.load(Ordering::SeqCst)
            && self.sent.fetch_add(1, Ordering::SeqCst) < self.config.max_requests
    }

    async fn one(&self, seq: u64) {
        let base = &self.config.base_url;
        let request = match (self.config.scenario, seq % 20) {
            (Scenario::Mix, 0..=2) => self.client.get(format!("{base}/api/visits")),
            (Scenario::Mix, 3) => self.client.get(format!("{base}/health")),
            _ => self
                .client
                .post(format!("{base}/api/visit"))
                .header("content-type", "application/json")
                .body(r#"{"page":"/loadgen"}"#),
        };
        let started = Instant::now();
        match request.send().await {
            Ok(resp) if resp.status().is_success() => {
                // Read the body so the latency covers the whole answer.
                let _ = resp.bytes().await;
                let micros = started.elapsed().as_micros() as u64;
                let _ = self
                    .histogram
                    .lock()
                    .expect("histogram lock")
                    .record(micros.max(1));
                self.ok.fetch_add(1, Ordering::Relaxed);
            }
            Ok(resp) if resp.status().is_client_error() => self.error("status_4xx"),
            Ok(_) => self.error("status_5xx"),
            Err(e) if e.is_timeout() => self.error("timeout"),
            Err(e) if e.is_connect() => self.error("connect"),
            Err(_) => self.error("other"),
        }
    }
}

/// Runs the load and returns its summary. Bounded by the duration and the
/// request budget; refuses non-loopback targets.
pub async fn run(config: Config) -> anyhow::Result<Summary> {
    run_until(config, Arc::default()).await
}

/// [`run`], ending early once `stop` is set (requests in flight still finish
/// and count): tests keep the load up exactly as long as an episode lasts.
pub async fn run_until(mut config: Config, stop: Arc<AtomicBool>) -> anyhow::Result<Summary> {
    require_loopback(&config.base_url)?;
    config.duration = config.duration.min(MAX_DURATION);
    config.max_requests = config.max_requests.min(MAX_REQUESTS);
    config.base_url = config.base_url.trim_end_matches('/').to_string();
    let client = reqwest::Client::builder()
        .timeout(config.timeout)
        .pool_max_idle_per_host(256)
        .build()?;
    let shared = Arc::new(Shared {
        client,
        histogram: Mutex::new(Histogram::new_with_bounds(1, 600_000_000, 3)?),
        errors: Mutex::new(BTreeMap::new()),
        sent: AtomicU64::new(0),
        ok: AtomicU64::new(0),
        in_flight: AtomicU64::new(0),
        stop,
        config: config.clone(),
    });
    let started = Instant::now();
    let deadline = started + config.duration;
    let progress = config
        .progress
        .then(|| tokio::spawn(progress_bar(shared.clone(), started)));
    match config.mode {
        Mode::Rate(rate) => open_loop(&shared, rate, started, deadline).await,
        Mode::Concurrency(n) => closed_loop(&shared, n, started, deadline).await,
    }
    if let Some(p) = progress {
        p.abort();
        eprintln!();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let requests = shared.sent.load(Ordering::SeqCst).min(config.max_requests);
    let ok = shared.ok.load(Ordering::SeqCst);
    let errors = shared.errors.lock().expect("errors lock").clone();
    let h = shared.histogram.lock().expect("histogram lock");
    let ms = |v: u64| v as f64 / 1000.0;
    let latency_ms = BTreeMap::from([
        ("p50".to_string(), ms(h.value_at_quantile(0.50))),
        ("p95".to_string(), ms(h.value_at_quantile(0.95))),
        ("p99".to_string(), ms(h.value_at_quantile(0.99))),
        ("max".to_string(), ms(h.max())),
    ]);
    Ok(Summary {
        requests,
        ok,
        failed: requests.saturating_sub(ok),
        errors,
        latency_ms,
        duration_s: elapsed,
        achieved_rps: requests as f64 / elapsed.max(1e-9),
    })
}

async fn open_loop(shared: &Arc<Shared>, rate: f64, started: Instant, deadline: Instant) {
    let mut tasks = tokio::task::JoinSet::new();
    let mut next = Instant::now();
    let mut seq = 0u64;
    while next < deadline {
        tokio::time::sleep_until(next.into()).await;
        if !shared.claim() {
            break;
        }
        if shared.in_flight.load(Ordering::SeqCst) >= MAX_IN_FLIGHT {
            shared.error("overload");
        } else {
            let s = shared.clone();
            s.in_flight.fetch_add(1, Ordering::SeqCst);
            tasks.spawn(async move {
                s.one(seq).await;
                s.in_flight.fetch_sub(1, Ordering::SeqCst);
            });
        }
        seq += 1;
        let factor = load_factor(
            shared.config.scenario,
            next - started,
            shared.config.duration,
        );
        next += Duration::from_secs_f64(1.0 / (rate * factor).max(0.1));
    }
    while tasks.join_next().await.is_some() {}
}

async fn closed_loop(shared: &Arc<Shared>, workers: u32, started: Instant, deadline: Instant) {
    let mut tasks = tokio::task::JoinSet::new();
    for id in 0..workers.max(1) {
        let s = shared.clone();
        tasks.spawn(async move {
            let mut seq = u64::from(id);
            while Instant::now() < deadline && !s.stop.load(Ordering::SeqCst) {
                // Worker `id` is active while the scenario's load covers it.
                let factor = load_factor(s.config.scenario, started.elapsed(), s.config.duration);
                let active = (f64::from(workers) * factor.min(1.0)).ceil() as u32;
                if id >= active {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
                if !s.claim() {
                    break;
                }
                s.one(seq).await;
                seq += u64::from(workers);
            }
        });
    }
    while tasks.join_next().await.is_some() {}
}

async fn progress_bar(shared: Arc<Shared>, started: Instant) {
    const WIDTH: usize = 30;
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let total = shared.config.duration.as_secs_f64();
        let elapsed = started.elapsed().as_secs_f64();
        let filled = ((elapsed / total) * WIDTH as f64).min(WIDTH as f64) as usize;
        let sent = shared
            .sent
            .load(Ordering::Relaxed)
            .min(shared.config.max_requests);
        let failed = sent.saturating_sub(
            shared.ok.load(Ordering::Relaxed) + shared.in_flight.load(Ordering::Relaxed),
        );
        let p95 = shared
            .histogram
            .lock()
            .expect("histogram lock")
            .value_at_quantile(0.95) as f64
            / 1000.0;
        eprint!(
            "\r[{}{}] {elapsed:5.1}s/{total:.0}s sent {sent} failed {failed} p95 {p95:.1} ms   ",
            "#".repeat(filled),
            ".".repeat(WIDTH - filled)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_targets_are_allowed() {
        for ok in [
            "http://127.0.0.1:8080",
            "http://127.31.4.5:8080/x",
            "http://localhost:1",
            "http://[::1]:80",
        ] {
            assert!(require_loopback(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://10.0.0.1:80",
            "http://172.31.1.2:8080",
            "http://example.com",
            "https://127.0.0.1",
            "http://[2001:db8::1]:80",
        ] {
            assert!(require_loopback(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn scenario_shapes() {
        let total = Duration::from_secs(30);
        let at = |s| Duration::from_secs(s);
        assert_eq!(load_factor(Scenario::Steady, at(10), total), 1.0);
        assert!(
            load_factor(Scenario::Ramp, at(3), total) < load_factor(Scenario::Ramp, at(27), total)
        );
        assert_eq!(load_factor(Scenario::Burst, at(5), total), 1.0);
        assert_eq!(load_factor(Scenario::Burst, at(15), total), 4.0);
        assert_eq!(load_factor(Scenario::Burst, at(25), total), 1.0);
        assert!("nope".parse::<Scenario>().is_err());
    }
}
