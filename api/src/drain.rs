//! Drain mode: how a task leaves the load balancer without failing a request or a health check.
//!
//! On a service scale-in ECS deregisters the task's target and the ALB drains it: no new
//! requests, and "if a deregistering target has no in-flight requests and no active
//! connections, Elastic Load Balancing immediately completes the deregistration process,
//! without waiting for the deregistration delay to elapse" (Elastic Load Balancing, Application
//! Load Balancers user guide, "Target groups for your Application Load Balancers" ->
//! "Deregistration delay",
//! <https://docs.aws.amazon.com/elasticloadbalancing/latest/application/edit-target-group-attributes.html#deregistration-delay>).
//! So a draining task must leave no connection open once its last request is done:
//! - every response carries `Connection: close` (the middleware), so a busy keep-alive
//!   connection ends with its next response;
//! - idle keep-alive connections are closed by the server, but only once no new request has
//!   arrived for [`Drain::quiet`]: while the target is still registered the ALB may pick an
//!   idle connection at the very moment the server closes it, and the ALB answers that
//!   request with a 502 (the keep-alive race the ALB guide warns about under "Connection idle
//!   timeout"). A quiet period means the ALB has stopped routing here.
//!
//! Drain mode never fails `/health`: ECS replaces a task that fails its load balancer health
//! check (Amazon ECS developer guide, "Health checks for Amazon ECS services",
//! <https://docs.aws.amazon.com/AmazonECS/latest/developerguide/healthcheck.html>), and a
//! task that is leaving is still healthy.
//!
//! A scale-down's drain mode expires unless renewed (`POST /admin/drain` again): a scale-down
//! function that dies before its rollback's `POST /admin/undrain` cannot leave a task closing
//! its connections forever. SIGTERM's drain never expires.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::watch;

/// Expiry of a drain request that names none.
pub const DEFAULT_TTL: Duration = Duration::from_secs(300);
/// The longest expiry a drain request may ask for.
pub const MAX_TTL: Duration = Duration::from_secs(3600);
/// How often the idle closer looks at the drain state.
const CLOSER_TICK: Duration = Duration::from_millis(100);

/// The drain state of this task, shared by the handlers, the middleware and the server loop.
pub struct Drain {
    /// When the scale-down's drain mode ends unless renewed (None: not draining for it).
    until: Mutex<Option<Instant>>,
    /// SIGTERM: draining until the process exits.
    shutdown: AtomicBool,
    /// Milliseconds since `epoch` at which the last counted request started.
    last_request_ms: AtomicU64,
    epoch: Instant,
    /// How long drain mode waits without a new request before closing idle connections.
    quiet: Duration,
    /// Bumped when every connection should close once idle; each connection's task watches it.
    close_idle: watch::Sender<u64>,
}

impl Drain {
    /// Not draining; idle connections close after `quiet` without requests once draining.
    pub fn new(quiet: Duration) -> Self {
        Drain {
            until: Mutex::new(None),
            shutdown: AtomicBool::new(false),
            last_request_ms: AtomicU64::new(0),
            epoch: Instant::now(),
            quiet,
            close_idle: watch::Sender::new(0),
        }
    }

    /// True while the task drains (scale-down's unexpired drain mode, or shutdown).
    pub fn is_draining(&self) -> bool {
        self.shutdown.load(Ordering::Relaxed) || self.expires_in().is_some()
    }

    /// Time left of the scale-down's drain mode (None: not in it, or it expired).
    pub fn expires_in(&self) -> Option<Duration> {
        let until = *self.until.lock().expect("drain lock");
        until.and_then(|u| u.checked_duration_since(Instant::now()))
    }

    /// Enters (or renews) drain mode for `ttl`, capped at [`MAX_TTL`]. Returns true when the task
    /// was not draining before.
    pub fn start(&self, ttl: Duration) -> bool {
        let was = self.is_draining();
        *self.until.lock().expect("drain lock") = Some(Instant::now() + ttl.min(MAX_TTL));
        // A request that was already running must not count as "traffic after the drain began".
        self.saw_request();
        !was
    }

    /// Leaves the scale-down's drain mode (a rollback). Shutdown's drain stays.
    pub fn stop(&self) {
        *self.until.lock().expect("drain lock") = None;
    }

    /// SIGTERM: drain until exit, and close idle connections now (ECS sends SIGTERM only after
    /// the load balancer finished draining, so no new request is on its way).
    pub fn begin_shutdown(&self) {
        self.shutdown.store(true, Ordering::Relaxed);
        self.close_idle.send_modify(|n| *n += 1);
    }

    /// Called by the middleware when a counted request starts.
    pub fn saw_request(&self) {
        let ms = self.epoch.elapsed().as_millis() as u64;
        self.last_request_ms.store(ms, Ordering::Relaxed);
    }

    /// How long since the last counted request started.
    pub fn since_last_request(&self) -> Duration {
        let last = self.last_request_ms.load(Ordering::Relaxed);
        self.epoch
            .elapsed()
            .saturating_sub(Duration::from_millis(last))
    }

    /// What a connection's task watches: a change means "close once idle".
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.close_idle.subscribe()
    }

    /// Runs forever: while draining and quiet, asks every connection to close once idle (again
    /// each tick, for connections opened since).
    pub async fn run_idle_closer(&self) {
        loop {
            tokio::time::sleep(CLOSER_TICK).await;
            if self.is_draining() && self.since_last_request() >= self.quiet {
                self.close_idle.send_modify(|n| *n += 1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drain_mode_expires_unless_renewed() {
        let d = Drain::new(Duration::from_millis(10));
        assert!(!d.is_draining());
        assert!(d.start(Duration::from_millis(30)));
        assert!(d.is_draining());
        assert!(!d.start(Duration::from_millis(30)), "a renewal");
        std::thread::sleep(Duration::from_millis(60));
        assert!(!d.is_draining(), "expired");
        d.start(Duration::from_secs(10 * 3600));
        assert!(d.expires_in().unwrap() <= MAX_TTL);
        d.stop();
        assert!(!d.is_draining());
    }

    #[test]
    fn shutdown_drains_for_good_and_undrain_does_not_end_it() {
        let d = Drain::new(Duration::from_secs(1));
        let rx = d.subscribe();
        d.begin_shutdown();
        d.stop();
        assert!(d.is_draining());
        assert!(
            rx.has_changed().unwrap(),
            "idle connections close at SIGTERM"
        );
    }
}
