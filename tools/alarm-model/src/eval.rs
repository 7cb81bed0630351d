//! The pure part of the local stand-in for CloudWatch: samples in, one
//! datapoint per period (the alarm's statistic over every sample of every task
//! in that period), and an M-of-N evaluation over the last N complete periods
//! with the alarm's missing-data treatment, as CloudWatch documents them:
//! "Alarm evaluation" (period, evaluation periods, datapoints to alarm; the three
//! states), <https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/alarm-evaluation.html>,
//! and "Configuring how CloudWatch alarms treat missing data",
//! <https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/alarms-and-missing-data.html>.
//!
//! Simplification, stated: CloudWatch looks further back than N periods when
//! some are missing, and with `missing` may alarm on fewer than M present
//! datapoints when all of them breach. Here: ALARM when at least M of the last
//! N periods breach; otherwise OK when any datapoint is present; with none
//! present, INSUFFICIENT_DATA (`missing`) or the current state (`ignore`).

use std::collections::VecDeque;

/// How the samples of one period become one datapoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Statistic {
    Average,
    Sum,
    Minimum,
    Maximum,
    SampleCount,
}

/// The alarm's `ComparisonOperator`: value `op` threshold means breaching.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    Greater,
    GreaterOrEqual,
    Less,
    LessOrEqual,
}

impl Statistic {
    /// CloudWatch's spelling, as `PutMetricAlarm` takes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Average => "Average",
            Self::Sum => "Sum",
            Self::Minimum => "Minimum",
            Self::Maximum => "Maximum",
            Self::SampleCount => "SampleCount",
        }
    }
}

impl Comparison {
    /// CloudWatch's `ComparisonOperator`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Greater => "GreaterThanThreshold",
            Self::GreaterOrEqual => "GreaterThanOrEqualToThreshold",
            Self::Less => "LessThanThreshold",
            Self::LessOrEqual => "LessThanOrEqualToThreshold",
        }
    }
}

/// `TreatMissingData`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MissingData {
    Missing,
    Ignore,
    Breaching,
    NotBreaching,
}

impl MissingData {
    /// CloudWatch's spelling (`TreatMissingData`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Ignore => "ignore",
            Self::Breaching => "breaching",
            Self::NotBreaching => "notBreaching",
        }
    }
}

/// An alarm state, as CloudWatch names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Ok,
    Alarm,
    InsufficientData,
}

impl State {
    /// `OK`, `ALARM`, `INSUFFICIENT_DATA`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "OK",
            Self::Alarm => "ALARM",
            Self::InsufficientData => "INSUFFICIENT_DATA",
        }
    }
}

/// An alarm's evaluation settings, as the template gives them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rule {
    pub comparison: Comparison,
    pub threshold: f64,
    pub statistic: Statistic,
    /// The template's period; the driver may run it faster (time scale).
    pub period_s: u32,
    /// N.
    pub evaluation_periods: u32,
    /// M.
    pub datapoints_to_alarm: u32,
    pub missing: MissingData,
}

impl Rule {
    /// True when `value` breaches the threshold.
    pub fn breaches(&self, value: f64) -> bool {
        match self.comparison {
            Comparison::Greater => value > self.threshold,
            Comparison::GreaterOrEqual => value >= self.threshold,
            Comparison::Less => value < self.threshold,
            Comparison::LessOrEqual => value <= self.threshold,
        }
    }

    /// CloudWatch's wording of the comparison in state reasons.
    pub fn wording(&self) -> &'static str {
        match self.comparison {
            Comparison::Greater => "greater than",
            Comparison::GreaterOrEqual => "greater than or equal to",
            Comparison::Less => "less than",
            Comparison::LessOrEqual => "less than or equal to",
        }
    }
}

/// One period's datapoint.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Datapoint {
    /// Start of the period, unix milliseconds.
    pub start_ms: i64,
    pub value: f64,
    pub sample_count: u64,
}

/// A state change found by [`Evaluator::evaluate`].
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    pub from: State,
    pub to: State,
    /// The last N periods, newest first; None where no sample fell.
    pub datapoints: Vec<Option<Datapoint>>,
    /// How many of them breach (missing ones counted per the treatment).
    pub breaching: usize,
    /// When the evaluation ran, unix milliseconds.
    pub at_ms: i64,
}

/// Evaluates one alarm.
#[derive(Debug, Clone)]
pub struct Evaluator {
    rule: Rule,
    period_ms: i64,
    state: State,
    /// (unix ms, value), in arrival order; pruned to the evaluation range.
    samples: VecDeque<(i64, f64)>,
}

impl Evaluator {
    /// A new alarm in INSUFFICIENT_DATA (as CloudWatch creates it), evaluating
    /// periods of `period_ms` (the template's period, or a scaled one).
    pub fn new(rule: Rule, period_ms: i64) -> Self {
        Self {
            rule,
            period_ms: period_ms.max(1),
            state: State::InsufficientData,
            samples: VecDeque::new(),
        }
    }

    /// The rule.
    pub fn rule(&self) -> &Rule {
        &self.rule
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// The period evaluated, in milliseconds.
    pub fn period_ms(&self) -> i64 {
        self.period_ms
    }

    /// Adds one sample (one task's value at `t_ms`).
    pub fn add(&mut self, t_ms: i64, value: f64) {
        self.samples.push_back((t_ms, value));
    }

    /// A period counts once it ended this long ago: samples of its last
    /// moments may still be on their way from the tasks' logs.
    fn lag_ms(&self) -> i64 {
        (self.period_ms / 2).min(1_000)
    }

    /// The last N complete periods at `now_ms`, newest first.
    pub fn datapoints(&self, now_ms: i64) -> Vec<Option<Datapoint>> {
        let p = self.period_ms;
        let end = (now_ms - self.lag_ms()).div_euclid(p) * p;
        (1..=i64::from(self.rule.evaluation_periods))
            .map(|k| {
                let start = end - k * p;
                let values: Vec<f64> = self
                    .samples
                    .iter()
                    .filter(|(t, _)| (start..start + p).contains(t))
                    .map(|(_, v)| *v)
                    .collect();
                aggregate(self.rule.statistic, &values).map(|value| Datapoint {
                    start_ms: start,
                    value,
                    sample_count: values.len() as u64,
                })
            })
            .collect()
    }

    /// Evaluates at `now_ms`; returns the transition if the state changed.
    pub fn evaluate(&mut self, now_ms: i64) -> Option<Transition> {
        let datapoints = self.datapoints(now_ms);
        let oldest = now_ms - self.lag_ms() - self.period_ms * (datapoints.len() as i64 + 1);
        while self.samples.front().is_some_and(|(t, _)| *t < oldest) {
            self.samples.pop_front();
        }
        let (breaching, present) = datapoints.iter().fold((0, 0), |(b, n), d| {
            let breach = match (d, self.rule.missing) {
                (Some(d), _) => Some(self.rule.breaches(d.value)),
                (None, MissingData::Breaching) => Some(true),
                (None, MissingData::NotBreaching) => Some(false),
                (None, _) => None,
            };
            match breach {
                Some(true) => (b + 1, n + 1),
                Some(false) => (b, n + 1),
                None => (b, n),
            }
        });
        let to = if breaching >= self.rule.datapoints_to_alarm as usize {
            State::Alarm
        } else if present > 0 {
            State::Ok
        } else if self.rule.missing == MissingData::Ignore {
            self.state
        } else {
            State::InsufficientData
        };
        if to == self.state {
            return None;
        }
        let from = std::mem::replace(&mut self.state, to);
        Some(Transition {
            from,
            to,
            datapoints,
            breaching,
            at_ms: now_ms,
        })
    }
}

/// The statistic of one period's samples; None without samples.
pub fn aggregate(stat: Statistic, values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let sum: f64 = values.iter().sum();
    Some(match stat {
        Statistic::Average => sum / values.len() as f64,
        Statistic::Sum => sum,
        Statistic::Minimum => values.iter().copied().fold(f64::INFINITY, f64::min),
        Statistic::Maximum => values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        Statistic::SampleCount => values.len() as f64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: i64 = 1_000;

    fn rule(m: u32, n: u32, missing: MissingData) -> Rule {
        Rule {
            comparison: Comparison::Greater,
            threshold: 70.0,
            statistic: Statistic::Average,
            period_s: 60,
            evaluation_periods: n,
            datapoints_to_alarm: m,
            missing,
        }
    }

    /// Feeds one value per period (None: no sample), two tasks each, and
    /// evaluates right after each period completes. Periods follow on from
    /// the last one fed (the evaluator's newest sample or evaluation).
    fn run(ev: &mut Evaluator, per_period: &[Option<f64>]) -> Vec<Transition> {
        thread_local!(static NEXT: std::cell::Cell<i64> = const { std::cell::Cell::new(0) });
        let mut out = Vec::new();
        for v in per_period {
            let start = NEXT.with(|n| {
                let i = n.get();
                n.set(i + 1);
                100 * P + i * P
            });
            if let Some(v) = v {
                ev.add(start + 100, v - 5.0);
                ev.add(start + 600, v + 5.0); // the other task
            }
            out.extend(ev.evaluate(start + P + ev.lag_ms()));
        }
        out
    }

    #[test]
    fn alarms_only_after_m_of_n_breaching_periods() {
        let mut ev = Evaluator::new(rule(3, 3, MissingData::Missing), P);
        let t = run(&mut ev, &[Some(50.0), Some(80.0), Some(80.0)]);
        assert_eq!(t.len(), 1, "INSUFFICIENT_DATA -> OK only: {t:?}");
        assert_eq!((t[0].from, t[0].to), (State::InsufficientData, State::Ok));
        let t = run(&mut ev, &[Some(80.0), Some(80.0), Some(80.0)]);
        assert_eq!(t.len(), 1, "{t:?}");
        assert_eq!(t[0].to, State::Alarm);
        assert_eq!(t[0].breaching, 3);
        let d = t[0].datapoints[0].expect("newest datapoint");
        assert_eq!(
            (d.value, d.sample_count),
            (80.0, 2),
            "average over both tasks"
        );
        assert!(t[0].datapoints[0].unwrap().start_ms > t[0].datapoints[1].unwrap().start_ms);
        // Staying above: no new transition; one good period: back to OK.
        assert!(run(&mut ev, &[Some(90.0)]).is_empty());
        let t = run(&mut ev, &[Some(10.0)]);
        assert_eq!(t[0].to, State::Ok);
    }

    #[test]
    fn two_of_three_tolerates_one_good_period() {
        let mut ev = Evaluator::new(rule(2, 3, MissingData::Missing), P);
        let t = run(&mut ev, &[Some(80.0), Some(10.0), Some(80.0)]);
        assert_eq!(t.last().map(|t| t.to), Some(State::Alarm), "{t:?}");
    }

    #[test]
    fn missing_data_treatments() {
        // `missing`: all missing -> INSUFFICIENT_DATA; the gap does not count.
        let mut ev = Evaluator::new(rule(2, 2, MissingData::Missing), P);
        assert_eq!(run(&mut ev, &[Some(80.0), None])[0].to, State::Ok);
        assert_eq!(run(&mut ev, &[None, None])[0].to, State::InsufficientData);
        // `breaching`: gaps count against.
        let mut ev = Evaluator::new(rule(2, 2, MissingData::Breaching), P);
        assert_eq!(
            run(&mut ev, &[Some(80.0), None]).last().unwrap().to,
            State::Alarm
        );
        // `notBreaching`: gaps are good data.
        let mut ev = Evaluator::new(rule(1, 1, MissingData::NotBreaching), P);
        assert_eq!(run(&mut ev, &[None])[0].to, State::Ok);
        // `ignore`: no data keeps the state.
        let mut ev = Evaluator::new(rule(1, 1, MissingData::Ignore), P);
        assert_eq!(run(&mut ev, &[Some(80.0)])[0].to, State::Alarm);
        assert!(run(&mut ev, &[None, None]).is_empty());
    }

    #[test]
    fn a_period_counts_only_once_complete() {
        let mut ev = Evaluator::new(rule(1, 1, MissingData::Missing), P);
        ev.add(10 * P + 100, 99.0);
        assert!(ev.evaluate(10 * P + 900).is_none(), "period still open");
        assert_eq!(ev.evaluate(11 * P + ev.lag_ms()).unwrap().to, State::Alarm);
    }

    #[test]
    fn less_than_for_the_low_alarm_and_statistics() {
        let mut r = rule(1, 1, MissingData::Missing);
        r.comparison = Comparison::Less;
        r.threshold = 30.0;
        assert!(r.breaches(29.9) && !r.breaches(30.0));
        r.comparison = Comparison::LessOrEqual;
        assert!(r.breaches(30.0));
        let v = [1.0, 5.0, 3.0];
        assert_eq!(aggregate(Statistic::Sum, &v), Some(9.0));
        assert_eq!(aggregate(Statistic::Maximum, &v), Some(5.0));
        assert_eq!(aggregate(Statistic::Minimum, &v), Some(1.0));
        assert_eq!(aggregate(Statistic::SampleCount, &v), Some(3.0));
        assert_eq!(aggregate(Statistic::Average, &v), Some(3.0));
        assert_eq!(aggregate(Statistic::Average, &[]), None);
    }
}
