//! The policies this project is compared with, as AWS documents them. Their
//! alarms run on the same CloudWatch evaluation as the project's
//! ([`AlarmFeed`] over `alarm_model::eval`); only the reaction differs.
//!
//! - **Target tracking** (Application Auto Scaling for ECS services, "Use a
//!   target metric to scale Amazon ECS services"): it manages two alarms on
//!   the service's average CPU: above the target for 3 of 3 one-minute
//!   datapoints, below 90 % of it for 15 of 15. While the high alarm is in
//!   ALARM it re-evaluates every period (Auto Scaling alarm actions repeat;
//!   CloudWatch user guide, "Alarm actions") and sets desired to
//!   `ceil(serving × metric / target)`: the capacity a scale-out added counts
//!   towards the next one, so it grows in proportion and never twice for the
//!   same load. Scale-in is gradual ("scales in more gradually"): one task per
//!   scale-in cooldown, never below the proportional count, and never within
//!   the scale-out cooldown of a scale-out.
//! - **Target tracking, 20 s metrics**: the same with the service's CPU at
//!   20-second resolution (ECS developer guide, "Faster auto scaling with
//!   high-resolution metrics": `ECSServiceAverageCPUUtilizationHighResolution`);
//!   modelled as the same datapoint counts at 20 s periods.
//! - **Step scaling on 60 s alarms** (Application Auto Scaling, "Step scaling
//!   policies"): CPU > 70 % for 3 of 3 minutes adds +1, +2 or +3 tasks for a
//!   breach of up to 15, 25 or more points; CPU < 30 % for 15 of 15 minutes
//!   removes one; one cooldown for both, re-evaluated each minute in ALARM.
//! - **The original design**: CPU > 70 % for 5 min → +1, < 30 % for 5 min → −1,
//!   5 min cooldown, checked every minute.

use crate::metrics::{AlarmFeed, Metric, Sample};
use crate::params::Params;
use crate::service::Service;
use alarm_model::eval::{Comparison, MissingData, Rule, State, Statistic};

/// What every policy does each simulated second.
pub trait Policy {
    /// The name in the table and the plot.
    fn name(&self) -> String;
    /// The tasks published one EMF interval of metrics.
    fn on_sample(&mut self, s: &Sample);
    /// One second passed; the policy may change the service.
    fn tick(&mut self, now: i64, svc: &mut Service);
}

fn cpu_rule(cmp: Comparison, threshold: f64, period_s: u32, n: u32) -> Rule {
    Rule {
        comparison: cmp,
        threshold,
        statistic: Statistic::Average,
        period_s,
        evaluation_periods: n,
        datapoints_to_alarm: n,
        missing: MissingData::Missing,
    }
}

/// The two CPU alarms every baseline reacts to: the high one scales out, the
/// low one scales in. Each needs all of its `n` datapoints breaching.
struct CpuAlarms {
    high: AlarmFeed,
    low: AlarmFeed,
}

impl CpuAlarms {
    /// CPU above `high` for `high_n` periods and below `low` for `low_n`, on
    /// `period_s` datapoints published `delay_s` late.
    fn new(high: f64, high_n: u32, low: f64, low_n: u32, period_s: u32, delay_s: f64) -> Self {
        CpuAlarms {
            high: AlarmFeed::new(
                cpu_rule(Comparison::Greater, high, period_s, high_n),
                Metric::Cpu,
                delay_s,
            ),
            low: AlarmFeed::new(
                cpu_rule(Comparison::Less, low, period_s, low_n),
                Metric::Cpu,
                delay_s,
            ),
        }
    }

    fn push(&mut self, s: &Sample) {
        self.high.push(s);
        self.low.push(s);
    }
}

/// Min and max tasks, shared by every policy (the template's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    pub min: i32,
    pub max: i32,
}

impl Bounds {
    fn clamp(&self, n: i32) -> i32 {
        n.clamp(self.min, self.max)
    }
}

/// ECS target tracking on average CPU.
pub struct TargetTracking {
    label: &'static str,
    b: Bounds,
    target: f64,
    alarms: CpuAlarms,
    out_cooldown: i64,
    in_cooldown: i64,
    last_out: Option<i64>,
    last_in: Option<i64>,
}

impl TargetTracking {
    /// With `period_s` datapoints (60 s standard, 20 s high resolution). The
    /// metric's publishing delay shrinks with its period.
    pub fn new(label: &'static str, period_s: u32, p: &Params, b: Bounds) -> Self {
        let target = p.tt_target_cpu;
        let delay = p.ecs_metric_delay_s * f64::from(period_s) / 60.0;
        TargetTracking {
            label,
            b,
            target,
            alarms: CpuAlarms::new(target, 3, 0.9 * target, 15, period_s, delay),
            out_cooldown: p.tt_out_cooldown_s as i64,
            in_cooldown: p.tt_in_cooldown_s as i64,
            last_out: None,
            last_in: None,
        }
    }
}

impl Policy for TargetTracking {
    fn name(&self) -> String {
        self.label.to_string()
    }

    fn on_sample(&mut self, s: &Sample) {
        self.alarms.push(s);
    }

    fn tick(&mut self, now: i64, svc: &mut Service) {
        let high = self.alarms.high.tick(now);
        let low = self.alarms.low.tick(now);
        let serving = f64::from(svc.serving(now).max(1));
        let proportional = |v: f64| (serving * v / self.target).ceil() as i32;
        if let (Some(e), State::Alarm) = (&high, self.alarms.high.state()) {
            if let Some(v) = e.newest.map(|d| d.value) {
                let want = self.b.clamp(proportional(v));
                if want > svc.desired {
                    svc.set_desired(want, now);
                    self.last_out = Some(now);
                }
            }
            return;
        }
        if let (Some(e), State::Alarm) = (&low, self.alarms.low.state()) {
            let cool = |last: Option<i64>, c: i64| last.is_none_or(|l| now - l >= c);
            if !(cool(self.last_in, self.in_cooldown) && cool(self.last_out, self.out_cooldown)) {
                return;
            }
            if let Some(v) = e.newest.map(|d| d.value) {
                // Scale in gradually: at most one task per cooldown below the proportional count.
                let want = self.b.clamp(proportional(v).max(svc.desired - 1));
                if want < svc.desired {
                    svc.set_desired(want, now);
                    self.last_in = Some(now);
                }
            }
        }
    }
}

/// Changes desired by `step` within `b`, when that changes it, and records
/// when in `last` (the start of the cooldown).
fn step_by(b: Bounds, svc: &mut Service, step: i32, now: i64, last: &mut Option<i64>) {
    let want = b.clamp(svc.desired + step);
    if want != svc.desired {
        svc.set_desired(want, now);
        *last = Some(now);
    }
}

/// Step scaling on 60 s CPU alarms.
pub struct StepScaling {
    b: Bounds,
    alarms: CpuAlarms,
    cooldown: i64,
    last: Option<i64>,
}

impl StepScaling {
    /// The thresholds and cooldown of `p`.
    pub fn new(p: &Params, b: Bounds) -> Self {
        StepScaling {
            b,
            alarms: CpuAlarms::new(
                p.step_high_cpu,
                3,
                p.step_low_cpu,
                15,
                60,
                p.ecs_metric_delay_s,
            ),
            cooldown: p.step_cooldown_s as i64,
            last: None,
        }
    }
}

impl Policy for StepScaling {
    fn name(&self) -> String {
        "step scaling (60 s alarms)".into()
    }

    fn on_sample(&mut self, s: &Sample) {
        self.alarms.push(s);
    }

    fn tick(&mut self, now: i64, svc: &mut Service) {
        let high = self.alarms.high.tick(now);
        let low = self.alarms.low.tick(now);
        if (high.is_none() && low.is_none()) || self.last.is_some_and(|t| now - t < self.cooldown) {
            return;
        }
        if let (Some(e), State::Alarm) = (&high, self.alarms.high.state()) {
            let breach = e.newest.map_or(0.0, |d| d.value) - self.alarms.high.rule.threshold;
            let step = if breach < 15.0 {
                1
            } else if breach < 25.0 {
                2
            } else {
                3
            };
            step_by(self.b, svc, step, now, &mut self.last);
        } else if self.alarms.low.state() == State::Alarm {
            step_by(self.b, svc, -1, now, &mut self.last);
        }
    }
}

/// The original design: a poller on 5 min CPU averages.
pub struct Naive {
    b: Bounds,
    alarms: CpuAlarms,
    cooldown: i64,
    last: Option<i64>,
}

impl Naive {
    /// The thresholds, window and cooldown of `p`.
    pub fn new(p: &Params, b: Bounds) -> Self {
        let n = (p.naive_window_s / 60.0).round().max(1.0) as u32;
        Naive {
            b,
            alarms: CpuAlarms::new(
                p.naive_high_cpu,
                n,
                p.naive_low_cpu,
                n,
                60,
                p.ecs_metric_delay_s,
            ),
            cooldown: p.naive_cooldown_s as i64,
            last: None,
        }
    }
}

impl Policy for Naive {
    fn name(&self) -> String {
        "original design (70/30 %, 5 min)".into()
    }

    fn on_sample(&mut self, s: &Sample) {
        self.alarms.push(s);
    }

    fn tick(&mut self, now: i64, svc: &mut Service) {
        let evaluated = self.alarms.high.tick(now).is_some() | self.alarms.low.tick(now).is_some();
        if !evaluated || self.last.is_some_and(|t| now - t < self.cooldown) {
            return;
        }
        let step = match (self.alarms.high.state(), self.alarms.low.state()) {
            (State::Alarm, _) => 1,
            (_, State::Alarm) => -1,
            _ => 0,
        };
        step_by(self.b, svc, step, now, &mut self.last);
    }
}
