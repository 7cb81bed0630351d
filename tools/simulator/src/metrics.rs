//! What the tasks report: the load model turns demand and serving tasks into
//! CPU, in-flight requests and p95 latency, averaged over each EMF interval
//! into one [`Sample`]; alarms read samples through [`AlarmFeed`], which adds
//! CloudWatch's publishing delay and evaluates with the shared evaluator
//! (`alarm_model::eval`, the one the local stack's alarm driver runs).

use crate::params::Params;
use alarm_model::eval::{Datapoint, Evaluator, Rule, Statistic, Transition};
use alarm_model::template::AlarmDef;
use anyhow::bail;
use std::collections::VecDeque;

/// Unix milliseconds of the trace's second 0 (2026-01-01T00:00:00Z): alarm
/// payloads carry real-looking timestamps; nothing depends on the date.
pub const EPOCH_MS: i64 = 1_767_225_600_000;

/// A metric an alarm can watch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    Cpu,
    Memory,
    InFlight,
    LatencyP95,
}

/// Every metric at one moment (per task, the ALB spreads load evenly).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Values {
    pub cpu: f64,
    pub memory: f64,
    pub in_flight: f64,
    pub p95_ms: f64,
    /// Requests arriving per second at the load balancer, all tasks together (its
    /// `RequestCount`, overloaded requests included: predictive scaling's history).
    pub requests: f64,
}

impl Values {
    /// One metric.
    pub fn get(&self, m: Metric) -> f64 {
        match m {
            Metric::Cpu => self.cpu,
            Metric::Memory => self.memory,
            Metric::InFlight => self.in_flight,
            Metric::LatencyP95 => self.p95_ms,
        }
    }
}

/// The load model for `demand` requests/s over `serving` tasks. CPU is linear
/// in load (`CPU_AT_CAPACITY_PCT` at `TASK_CAPACITY_RPS`, at most 100 %);
/// latency is an M/M/1 queue's (mean = base / (1 − CPU), p95 = ln 20 × mean);
/// in flight is Little's law (rate × mean latency).
pub fn values(demand: f64, serving: i32, p: &Params) -> Values {
    let per_task = if serving > 0 {
        demand / f64::from(serving)
    } else {
        f64::INFINITY
    };
    let saturation = p.task_capacity_rps * 100.0 / p.cpu_at_capacity_pct;
    let rho = (per_task / saturation).min(0.999);
    let mean_s = p.base_latency_ms / 1000.0 / (1.0 - rho);
    Values {
        cpu: 100.0 * rho.min(1.0),
        memory: p.memory_pct,
        in_flight: if per_task.is_finite() {
            per_task * mean_s
        } else {
            saturation * mean_s
        },
        p95_ms: 20f64.ln() * mean_s * 1000.0,
        requests: demand,
    }
}

/// One EMF interval's averages.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// First second of the interval.
    pub start: i64,
    /// Seconds covered.
    pub len: i64,
    pub mean: Values,
    /// Tasks serving at the interval's end (for Sum / SampleCount statistics).
    pub tasks: i32,
}

/// Averages per-second values into samples of `interval` seconds.
#[derive(Debug, Clone)]
pub struct Sampler {
    interval: i64,
    start: i64,
    sum: Values,
    n: i64,
}

impl Sampler {
    /// Samples of `interval_s` seconds from second 0.
    pub fn new(interval_s: i64) -> Self {
        Sampler {
            interval: interval_s.max(1),
            start: 0,
            sum: Values::default(),
            n: 0,
        }
    }

    /// Adds second `t`'s values; returns the sample when `t` ends an interval.
    pub fn add(&mut self, t: i64, v: Values, tasks: i32) -> Option<Sample> {
        self.sum.cpu += v.cpu;
        self.sum.memory += v.memory;
        self.sum.in_flight += v.in_flight;
        self.sum.p95_ms += v.p95_ms;
        self.sum.requests += v.requests;
        self.n += 1;
        if (t + 1) % self.interval != 0 {
            return None;
        }
        let n = self.n as f64;
        let s = Sample {
            start: self.start,
            len: self.n,
            mean: Values {
                cpu: self.sum.cpu / n,
                memory: self.sum.memory / n,
                in_flight: self.sum.in_flight / n,
                p95_ms: self.sum.p95_ms / n,
                requests: self.sum.requests / n,
            },
            tasks,
        };
        *self = Sampler {
            start: t + 1,
            ..Sampler::new(self.interval)
        };
        Some(s)
    }
}

/// The model's source for an alarm's metric, and its publishing delay.
pub fn source(def: &AlarmDef, p: &Params) -> anyhow::Result<(Metric, f64)> {
    let ecs = def.namespace == "AWS/ECS";
    let m = match def.metric.as_str() {
        "CPUUtilization" if ecs => Metric::Cpu,
        "MemoryUtilization" if ecs => Metric::Memory,
        "InFlight" if !ecs => Metric::InFlight,
        "LatencyP95" if !ecs => Metric::LatencyP95,
        other => bail!(
            "alarm {}: the simulator has no model of {}/{other}",
            def.name,
            def.namespace
        ),
    };
    Ok((
        m,
        if ecs {
            p.ecs_metric_delay_s
        } else {
            p.emf_metric_delay_s
        },
    ))
}

/// One evaluation of an [`AlarmFeed`].
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// The state change, if the state changed.
    pub change: Option<Transition>,
    /// The newest datapoint (None when its period had no data).
    pub newest: Option<Datapoint>,
}

/// One CloudWatch alarm over the model's samples: samples become visible
/// `delay` seconds after their interval ends, and the alarm is evaluated once
/// per period, as soon as that period's data is in (CloudWatch evaluates a
/// 60 s alarm once a minute, a high-resolution one every 10 s).
#[derive(Debug, Clone)]
pub struct AlarmFeed {
    pub rule: Rule,
    pub metric: Metric,
    eval: Evaluator,
    delay: i64,
    period: i64,
    queue: VecDeque<Sample>,
}

impl AlarmFeed {
    /// A feed for `rule` over `metric`, delayed by `delay_s`.
    pub fn new(rule: Rule, metric: Metric, delay_s: f64) -> Self {
        AlarmFeed {
            rule,
            metric,
            eval: Evaluator::new(rule, i64::from(rule.period_s) * 1000),
            delay: delay_s.round() as i64,
            period: i64::from(rule.period_s).max(1),
            queue: VecDeque::new(),
        }
    }

    /// The alarm's state now.
    pub fn state(&self) -> alarm_model::eval::State {
        self.eval.state()
    }

    /// A new sample from the tasks.
    pub fn push(&mut self, s: &Sample) {
        self.queue.push_back(*s);
    }

    /// Evaluates at second `now` when a period's data has just arrived (None
    /// at other seconds): the state change, stamped at `now`, if any, and the
    /// newest datapoint.
    pub fn tick(&mut self, now: i64) -> Option<Evaluation> {
        let seen = now - self.delay;
        // The evaluator counts a period one second after it ends (its lag).
        if seen < 1 || (seen - 1) % self.period != 0 {
            return None;
        }
        while let Some(s) = self.queue.front() {
            if s.start + s.len > seen {
                break;
            }
            let s = self.queue.pop_front().expect("front exists");
            let copies = match self.rule.statistic {
                Statistic::Sum | Statistic::SampleCount => s.tasks.max(0),
                _ => 1, // every task reports the same value: one sample is their average
            };
            let at = EPOCH_MS + (s.start * 1000) + s.len * 500;
            for _ in 0..copies {
                self.eval.add(at, s.mean.get(self.metric));
            }
        }
        let at = EPOCH_MS + seen * 1000;
        let change = self.eval.evaluate(at).map(|mut tr| {
            tr.at_ms = EPOCH_MS + now * 1000;
            tr
        });
        let newest = match &change {
            Some(tr) => tr.datapoints.first().copied().flatten(),
            None => self.eval.datapoints(at).first().copied().flatten(),
        };
        Some(Evaluation { change, newest })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alarm_model::eval::{Comparison, MissingData, State};

    #[test]
    fn load_model() {
        let p = Params::default();
        let v = values(p.task_capacity_rps * 2.0, 2, &p);
        assert!((v.cpu - p.cpu_at_capacity_pct).abs() < 1e-9, "{v:?}");
        let idle = values(0.0, 2, &p);
        assert_eq!(idle.cpu, 0.0);
        assert!((idle.p95_ms - 20f64.ln() * p.base_latency_ms).abs() < 1e-9);
        let over = values(p.task_capacity_rps * 10.0, 1, &p);
        assert!(over.cpu > 99.0 && over.in_flight > 1000.0, "{over:?}");
        assert!(values(1.0, 0, &p).cpu > 99.0, "no task: saturated");
    }

    #[test]
    fn a_period_is_evaluated_once_its_delayed_data_is_in() {
        let rule = Rule {
            comparison: Comparison::Greater,
            threshold: 70.0,
            statistic: Statistic::Average,
            period_s: 60,
            evaluation_periods: 2,
            datapoints_to_alarm: 2,
            missing: MissingData::Missing,
        };
        let p = Params::default();
        let mut feed = AlarmFeed::new(rule, Metric::Cpu, 30.0);
        let mut sampler = Sampler::new(10);
        let mut changes = Vec::new();
        for t in 0..400 {
            let demand = if t < 120 {
                0.0
            } else {
                5.0 * p.task_capacity_rps
            };
            if let Some(s) = sampler.add(t, values(demand, 2, &p), 2) {
                feed.push(&s);
            }
            if let Some(tr) = feed.tick(t).and_then(|e| e.change) {
                changes.push((t, tr.to));
            }
        }
        // Period [0, 60) is in at 60 + 30 s: OK. Periods [120, 180) and
        // [180, 240) breach: ALARM when the second is in, at 240 + 30 + 1.
        assert_eq!(changes, vec![(91, State::Ok), (271, State::Alarm)]);
    }
}
