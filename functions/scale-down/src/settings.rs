//! What scale-down needs from the configuration, in one place.

use crate::victim::Strategy;
use std::time::Duration;

/// Scale-in settings (read from the environment in `main`; built directly in tests).
#[derive(Debug, Clone)]
pub struct Settings {
    pub cluster: String,
    pub service: String,
    /// "Within bounds" (docs/invariants.md): desired never goes below this.
    pub min_tasks: i32,
    /// "Within bounds": desired never goes above this (checked before lowering too).
    pub max_tasks: i32,
    /// No scale-in within this long after the last one.
    pub scale_in_cooldown: Duration,
    pub strategy: Strategy,
    /// Added to the target group's deregistration delay to bound the drain wait.
    pub drain_margin: Duration,
    /// How long a victim may take to reach STOPPED after desired is lowered
    /// (its stopTimeout plus slack), across invocations.
    pub stop_timeout: Duration,
    /// Time kept back from the Lambda deadline to persist state and report.
    pub deadline_reserve: Duration,
    /// Pause between polls of the victim's state (DescribeTasks, and its drain status) while
    /// waiting for STOPPED: 1 s by default, the floor on AWS.
    pub poll_interval: Duration,
    /// Expiry of the victim's drain mode; the episode renews it while it waits, so a lost
    /// `POST /admin/undrain` ends by itself.
    pub drain_ttl: Duration,
    /// Deregister the victim before lowering desired: a head start for the ALB's drain. ECS
    /// owns service targets and may register it again, so nothing waits on it.
    pub early_deregister: bool,
    /// DRY_RUN: decide and report, change nothing.
    pub dry_run: bool,
    pub region: Option<String>,
    /// SCALE_IN_ALARMS: re-read by the reconcile schedule (see `alarms`); empty: the
    /// schedule only finishes or rolls back interrupted episodes.
    pub scale_in_alarms: Vec<String>,
    /// SCALE_OUT_ALARMS: no scale-in while one is in ALARM, or while one fewer task would
    /// push a per-task one over its threshold (`scaling::headroom`); empty: no check.
    pub scale_out_alarms: Vec<String>,
    /// SCALE_OUT_PROPORTIONAL_ALARMS: the scale-out alarms whose metric is a load shared by
    /// the tasks (in-flight, CPU average), projected to one fewer task by the headroom check.
    pub per_task_alarms: Vec<String>,
    /// SCALE_IN_ALARM_PERIOD_S × SCALE_IN_ALARM_EVALUATION_PERIODS: the low alarm's window; no scale-in until this
    /// long after the last scale-out (the policy's `Limits::in_window`).
    pub scale_in_window: Duration,
    /// SCHEDULE_WINDOWS: the floor and ceiling by time of day (see [`Settings::in_force`]).
    pub windows: scaling::window::Windows,
    /// The bounds in force for this invocation, once [`Settings::in_force`] set them.
    pub bounds: Option<scaling::window::Bounds>,
}

impl Settings {
    /// Defaults for everything but the service identity and limits.
    pub fn new(cluster: &str, service: &str, min_tasks: i32, max_tasks: i32) -> Self {
        Self {
            cluster: cluster.to_string(),
            service: service.to_string(),
            min_tasks,
            max_tasks,
            scale_in_cooldown: Duration::from_secs(300),
            strategy: Strategy::FewestInFlight,
            drain_margin: Duration::from_secs(10),
            stop_timeout: Duration::from_secs(120),
            deadline_reserve: Duration::from_secs(5),
            poll_interval: Duration::from_secs(1),
            drain_ttl: Duration::from_secs(300),
            early_deregister: false,
            dry_run: false,
            region: None,
            scale_in_alarms: Vec::new(),
            scale_out_alarms: Vec::new(),
            per_task_alarms: Vec::new(),
            scale_in_window: Duration::ZERO,
            windows: scaling::window::Windows::none(min_tasks, max_tasks),
            bounds: None,
        }
    }

    /// These settings with `min_tasks`/`max_tasks` set to the floor and ceiling in force
    /// at `now_unix` (a scheduled window's, or the plain ones), recorded for the report.
    /// The clock is read by the caller: the window is an input.
    pub fn in_force(&self, now_unix: i64) -> Settings {
        let now = chrono::DateTime::from_timestamp(now_unix, 0).unwrap_or_default();
        let b = self.windows.bounds_at_utc(now);
        Settings {
            min_tasks: b.min,
            max_tasks: b.max,
            bounds: Some(b),
            ..self.clone()
        }
    }
}

impl Settings {
    /// From the shared typed config (`DRAIN_MARGIN_S` is the reserve kept back
    /// from the Lambda deadline; it also pads the deregistration delay).
    pub fn from_config(c: &scaling::config::Config) -> Self {
        let mut s = Self::new(&c.cluster, &c.service, c.min_tasks, c.max_tasks);
        s.scale_in_cooldown = c.scale_in_cooldown;
        s.strategy = c.victim_strategy;
        s.deadline_reserve = c.drain_margin;
        s.drain_margin = c.drain_margin.max(s.drain_margin);
        s.dry_run = c.dry_run;
        s.poll_interval = c.poll_interval;
        s.drain_ttl = c.drain_ttl;
        s.early_deregister = c.early_deregister;
        s.region = std::env::var("AWS_REGION").ok();
        s.scale_in_alarms = c.scale_in_alarms.clone();
        s.scale_out_alarms = c.scale_out_alarms.clone();
        s.per_task_alarms = c.scale_out_proportional_alarms.clone();
        s.scale_in_window = c.scale_in_window;
        s.windows = c.windows.clone();
        s
    }
}
