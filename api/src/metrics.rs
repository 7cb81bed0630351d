//! Request counters and the latency histogram that `/api/metrics` and the EMF records read.
//! Lock-free on the request path: every request touches a few atomics only.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::stats::{Sample, Sampler};
use crate::write_health::WriteHealth;

/// Log-scale latency buckets: 8 per power of two of microseconds (about 9% wide), up to 2^32 µs.
const SUB: u32 = 8;
const BUCKETS: usize = 32 * SUB as usize;

/// A fixed-size latency histogram that many threads record into concurrently.
pub struct Histogram {
    counts: Box<[AtomicU64]>,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

fn bucket_of(us: u64) -> usize {
    let v = us.max(1);
    let e = 63 - v.leading_zeros();
    let m = if e >= 3 {
        (v >> (e - 3)) & 7
    } else {
        (v << (3 - e)) & 7
    } as u32;
    ((e * SUB + m) as usize).min(BUCKETS - 1)
}

/// Midpoint of a bucket, in microseconds.
fn value_of(bucket: usize) -> f64 {
    let (e, m) = (bucket as u32 / SUB, bucket as u32 % SUB);
    let low = f64::from(8 + m) * 2f64.powi(e as i32 - 3);
    let high = f64::from(9 + m) * 2f64.powi(e as i32 - 3);
    (low + high) / 2.0
}

impl Histogram {
    /// Records one latency.
    pub fn record(&self, d: Duration) {
        self.counts[bucket_of(d.as_micros() as u64)].fetch_add(1, Relaxed);
    }

    /// Empties the histogram and returns its counts.
    pub fn take(&self) -> Vec<u64> {
        self.counts.iter().map(|c| c.swap(0, Relaxed)).collect()
    }
}

/// Quantile `q` (0..1) in milliseconds of taken counts; `None` when there were no requests.
pub fn quantile_ms(counts: &[u64], q: f64) -> Option<f64> {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
    let mut seen = 0;
    for (i, c) in counts.iter().enumerate() {
        seen += c;
        if seen >= rank {
            return Some(value_of(i) / 1000.0);
        }
    }
    None
}

/// What this task has served; shared by the middleware, `/api/metrics` and the EMF writer.
pub struct Metrics {
    started: Instant,
    /// Requests being served now, admin requests excluded (the drain waits on this).
    pub in_flight: AtomicI64,
    requests_total: AtomicU64,
    window_requests: AtomicU64,
    window_5xx: AtomicU64,
    window_latency: Histogram,
    /// The 1-second sampler's latest reading, for `/api/metrics`.
    latest: Mutex<(Sample, f64)>,
    /// Whether writes reach the database, and what was lost or left uncertain.
    pub writes: std::sync::Arc<WriteHealth>,
}

/// Counters of one EMF interval.
pub struct Window {
    /// Requests completed in the interval.
    pub requests: u64,
    /// Of which answered 5xx.
    pub errors_5xx: u64,
    /// Latency histogram counts.
    pub latency: Vec<u64>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            started: Instant::now(),
            in_flight: AtomicI64::new(0),
            requests_total: AtomicU64::new(0),
            window_requests: AtomicU64::new(0),
            window_5xx: AtomicU64::new(0),
            window_latency: Histogram::default(),
            latest: Mutex::new((Sample::default(), 0.0)),
            writes: Default::default(),
        }
    }
}

impl Metrics {
    /// Records a finished request.
    pub fn finish(&self, status: u16, latency: Duration) {
        self.requests_total.fetch_add(1, Relaxed);
        self.window_requests.fetch_add(1, Relaxed);
        if status >= 500 {
            self.window_5xx.fetch_add(1, Relaxed);
        }
        self.window_latency.record(latency);
    }

    /// Requests being served now.
    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Relaxed).max(0) as u64
    }

    /// Time since the process built its state.
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// Empties and returns the interval counters.
    pub fn take_window(&self) -> Window {
        Window {
            requests: self.window_requests.swap(0, Relaxed),
            errors_5xx: self.window_5xx.swap(0, Relaxed),
            latency: self.window_latency.take(),
        }
    }

    /// Latest CPU/memory sample and request rate (requests/s over the last second).
    pub fn latest(&self) -> (Sample, f64) {
        *self.latest.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Samples CPU, memory and request rate every second, for `/api/metrics`.
    pub async fn run_sampler(&self) {
        let mut sampler = Sampler::new();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut last = (Instant::now(), self.requests_total.load(Relaxed));
        loop {
            tick.tick().await;
            let sample = sampler.sample();
            let now = (Instant::now(), self.requests_total.load(Relaxed));
            let secs = now.0.duration_since(last.0).as_secs_f64();
            let rate = if secs > 0.0 {
                (now.1 - last.1) as f64 / secs
            } else {
                0.0
            };
            last = now;
            *self.latest.lock().unwrap_or_else(|p| p.into_inner()) = (sample, rate);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_within_a_bucket() {
        let h = Histogram::default();
        for ms in 1..=100u64 {
            h.record(Duration::from_millis(ms));
        }
        let counts = h.take();
        let p50 = quantile_ms(&counts, 0.5).unwrap();
        let p99 = quantile_ms(&counts, 0.99).unwrap();
        assert!((45.0..=56.0).contains(&p50), "p50 {p50}");
        assert!((90.0..=110.0).contains(&p99), "p99 {p99}");
        assert_eq!(quantile_ms(&h.take(), 0.5), None, "take empties");
    }

    #[test]
    fn buckets_are_monotonic() {
        let mut prev = 0;
        for us in [1, 2, 7, 8, 9, 100, 1000, 65_000, 10_000_000, u64::MAX] {
            let b = bucket_of(us);
            assert!(b >= prev);
            prev = b;
        }
    }
}
