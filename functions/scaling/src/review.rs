//! The daily forecast review: the last day's forecast against what happened.
//!
//! Once a day an EventBridge Scheduler schedule invokes scale-up with a [`REVIEW_SOURCE`]
//! input. Scale-up reads the load balancer's request count for that day and for the history the
//! forecaster needed behind it, and [`review`] replays the forecaster over the day: each step is
//! compared with the forecast made [`ForecastReview::horizon_s`] before it (the task start
//! time and margin, `PREDICTIVE_LEAD_S`, in whole steps), from only the history there was then.
//! The forecaster is pure ([`crate::forecast`]), so the replay gives the forecasts the
//! re-evaluations computed and reported that day, without a store for them.
//!
//! The review answers the operator's question before `PREDICTIVE_MODE=on`: how far off was the
//! forecast, and would it have asked for too few tasks (the alarms would have had to catch
//! up) or too many (task-hours paid for nothing)?

use crate::error::ScalingError;
use crate::forecast::{self, Forecast, Series};
use crate::predictive::{self, Predictive};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `source` of the input the template's once-a-day schedule sends:
/// `{"source": REVIEW_SOURCE, "scheduled_time": "<aws.scheduler.scheduled-time>"}`.
pub const REVIEW_SOURCE: &str = "visits-autoscaler.forecast-review";

/// The day a review covers, ending at the newest complete step.
pub use crate::forecast::DAY;

/// None when `event` is not a review input (another trigger); else its scheduled time, or a
/// clear error for a review input that is malformed.
pub fn parse_input(event: &Value) -> Option<Result<DateTime<Utc>, ScalingError>> {
    if event.get("source").and_then(Value::as_str) != Some(REVIEW_SOURCE) {
        return None;
    }
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Input {
        #[allow(dead_code)]
        source: String,
        scheduled_time: DateTime<Utc>,
    }
    Some(
        serde_json::from_value::<Input>(event.clone())
            .map(|i| i.scheduled_time)
            .map_err(|e| {
                ScalingError::BadEvent(format!(
                    "malformed forecast review input: {e}; expected {{source: \
                     {REVIEW_SOURCE}, scheduled_time: RFC 3339}}"
                ))
            }),
    )
}

/// A rate at one step.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Peak {
    /// The step's start.
    pub at: DateTime<Utc>,
    /// Requests per second over the step.
    pub rps: f64,
}

/// The step where the forecast was furthest from what happened.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Miss {
    pub at: DateTime<Utc>,
    pub forecast_rps: f64,
    pub actual_rps: f64,
}

/// One hour of the day: mean requests per second, forecast and actual.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Hour {
    pub start: DateTime<Utc>,
    /// None: no step of the hour had a forecast.
    pub forecast_rps: Option<f64>,
    /// None: the service had no history yet.
    pub actual_rps: Option<f64>,
}

/// The day's forecast against what happened: the report's `forecast_review`, which notify
/// renders into the once-a-day email.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForecastReview {
    /// `PREDICTIVE_MODE` when the review ran.
    pub mode: String,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub step_s: u64,
    /// How long before each step its compared forecast was made.
    pub horizon_s: u64,
    /// `PREDICTIVE_TASK_RPS`: turns rates into tasks.
    pub task_rps: f64,
    /// Steps in the day, and how many had both a forecast and an actual.
    pub steps: u32,
    pub compared: u32,
    /// Why some steps had no forecast (the first one's reason), when any had none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_compared: Option<String>,
    /// Weighted absolute percentage error, Σ|forecast − actual| / Σ actual, over the compared
    /// steps (None: nothing compared, or no request at all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wape: Option<f64>,
    /// Σ(forecast − actual) / Σ actual: above 0 the forecast ran high.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bias: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actual_peak: Option<Peak>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forecast_peak: Option<Peak>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worst: Option<Miss>,
    /// Compared steps where the forecast's tasks were fewer than the load needed (with the
    /// forecast alone, the alarms would have had to add the rest), and those missing tasks
    /// in task-hours.
    pub short_steps: u32,
    pub short_task_hours: f64,
    /// Task-hours the forecast's tasks were above what the load needed.
    pub extra_task_hours: f64,
    /// The day hour by hour.
    pub hours: Vec<Hour>,
}

/// Reviews the last [`DAY`] of `history` (request counts per step, oldest first, the last
/// step ending at `end`). `history` holds the days the forecaster reads
/// (`PREDICTIVE_HISTORY_DAYS`) before that day, so every step is forecast from as much
/// history as the re-evaluation had.
pub fn review(p: &Predictive, history: &Series, end: DateTime<Utc>) -> ForecastReview {
    let step = history.step.as_secs().max(1);
    let per_hour = (forecast::HOUR.as_secs() / step).max(1) as usize;
    let day = (DAY.as_secs() / step) as usize;
    let n = history.values.len();
    let start = n.saturating_sub(day);
    // Rates as the forecaster reads them, aligned with `history` (None before the first
    // datapoint: the service had no history then).
    let rates = predictive::rates(history);
    let first = n - rates.values.len();
    let rate_at = |i: usize| i.checked_sub(first).and_then(|k| rates.values[k]);
    let h = forecast::lead_steps(p.lead, history.step, per_hour);
    let at = |i: usize| end - chrono::Duration::seconds(((n - i) as u64 * step) as i64);

    let lookback = (forecast::LOOKBACK.as_secs() / step) as usize;
    let mut not_compared = None;
    let forecast_at = |t: usize| {
        // The forecast made at the end of step `origin - 1`, `h` steps before `t` ends.
        let origin = (t + 1).checked_sub(h).filter(|&o| o > first);
        match origin {
            None => {
                not_compared.get_or_insert_with(|| {
                    "the service had no request history before these steps".to_string()
                });
                None
            }
            Some(o) => {
                // Only what the forecaster reads: replaying a long history copies no more.
                let past = Series {
                    step: history.step,
                    values: rates.values[(o - first).saturating_sub(lookback)..o - first].to_vec(),
                };
                match forecast::next_hour(&past) {
                    Forecast::Ahead { values, .. } => values[h - 1],
                    Forecast::NotEnoughHistory { have, need } => {
                        not_compared.get_or_insert_with(|| {
                            format!(
                                "not enough history ({:.1} h of the {:.0} h needed)",
                                have.as_secs_f64() / 3600.0,
                                need.as_secs_f64() / 3600.0
                            )
                        });
                        None
                    }
                }
            }
        }
    };
    let forecasts: Vec<Option<f64>> = (start..n).map(forecast_at).collect();
    // The steps compared: (step, forecast, actual).
    let pairs: Vec<(usize, f64, f64)> = (start..n)
        .filter_map(|t| Some((t, forecasts[t - start]?, rate_at(t)?)))
        .collect();

    let actual: f64 = pairs.iter().map(|p| p.2).sum();
    let ratio = |x: f64| (actual > 0.0).then(|| x / actual);
    let peak = |pick: fn(&(usize, f64, f64)) -> f64| {
        pairs
            .iter()
            .max_by(|a, b| pick(a).total_cmp(&pick(b)))
            .map(|x| Peak {
                at: at(x.0),
                rps: pick(x),
            })
    };
    let step_h = step as f64 / 3600.0;
    let (mut short_steps, mut short, mut extra) = (0, 0.0, 0.0);
    for &(_, f, a) in &pairs {
        let (nf, na) = (
            forecast::tasks_for(f, p.task_rps),
            forecast::tasks_for(a, p.task_rps),
        );
        if nf < na {
            short_steps += 1;
            short += (na - nf) as f64 * step_h;
        } else {
            extra += (nf - na) as f64 * step_h;
        }
    }
    let mean = |xs: &mut dyn Iterator<Item = f64>| {
        let (sum, count) = xs.fold((0.0, 0), |(s, c), x| (s + x, c + 1));
        (count > 0).then(|| sum / count as f64)
    };
    let hours = (start..n)
        .step_by(per_hour)
        .map(|s| {
            let e = (s + per_hour).min(n);
            Hour {
                start: at(s),
                forecast_rps: mean(&mut (s..e).filter_map(|t| forecasts[t - start])),
                actual_rps: mean(&mut (s..e).filter_map(rate_at)),
            }
        })
        .collect();
    ForecastReview {
        mode: p.mode.as_str().to_string(),
        from: at(start),
        to: end,
        step_s: step,
        horizon_s: h as u64 * step,
        task_rps: p.task_rps,
        steps: (n - start) as u32,
        compared: pairs.len() as u32,
        not_compared,
        wape: ratio(pairs.iter().map(|p| (p.1 - p.2).abs()).sum()),
        bias: ratio(pairs.iter().map(|p| p.1 - p.2).sum()),
        actual_peak: peak(|x| x.2),
        forecast_peak: peak(|x| x.1),
        worst: pairs
            .iter()
            .max_by(|a, b| (a.1 - a.2).abs().total_cmp(&(b.1 - b.2).abs()))
            .map(|x| Miss {
                at: at(x.0),
                forecast_rps: x.1,
                actual_rps: x.2,
            }),
        short_steps,
        short_task_hours: short,
        extra_task_hours: extra,
        hours,
    }
}

/// A share as the review's log line and email print it: `12 %`; below 1 %, one decimal
/// (`0.9 %`), so a small miss does not read as 1 % or 0 %.
pub fn percent(x: f64) -> String {
    let p = x * 100.0;
    if p.abs() < 1.0 {
        format!("{p:.1} %")
    } else {
        format!("{p:.0} %")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::predictive::PredictiveMode;
    use proptest::prelude::*;
    use serde_json::json;
    use std::time::Duration;

    const STEP: u64 = 300;
    const PER_DAY: usize = 288;

    /// 100 req/s at night, 400 at midday.
    fn daily(i: usize) -> f64 {
        let t = (i % PER_DAY) as f64 / PER_DAY as f64;
        250.0 - 150.0 * (2.0 * std::f64::consts::PI * t).cos()
    }

    /// Request counts per step for `days` whole days, `rps(i)` in step `i`.
    fn counts(days: usize, rps: impl Fn(usize) -> f64) -> Series {
        Series {
            step: Duration::from_secs(STEP),
            values: (0..days * PER_DAY)
                .map(|i| Some(rps(i) * STEP as f64))
                .collect(),
        }
    }

    fn end() -> DateTime<Utc> {
        DateTime::from_timestamp(1_796_083_200, 0).unwrap()
    }

    fn settings(task_rps: f64) -> Predictive {
        Predictive {
            mode: PredictiveMode::ForecastOnly,
            task_rps,
            ..Predictive::off()
        }
    }

    #[test]
    fn a_day_like_the_one_before_is_forecast_exactly() {
        let r = review(&settings(100.0), &counts(3, daily), end());
        assert_eq!((r.steps, r.compared), (288, 288));
        assert_eq!(r.not_compared, None);
        assert!(
            r.wape.unwrap() < 1e-9 && r.bias.unwrap().abs() < 1e-9,
            "{r:?}"
        );
        assert_eq!((r.short_steps, r.short_task_hours), (0, 0.0));
        assert_eq!(r.extra_task_hours, 0.0);
        assert_eq!(r.from, end() - chrono::Duration::days(1));
        assert_eq!(r.hours.len(), 24);
        let noon = r.hours[12];
        assert!((noon.forecast_rps.unwrap() - noon.actual_rps.unwrap()).abs() < 1e-9);
        // A 180 s lead is one 5-minute step ahead.
        assert_eq!(r.horizon_s, 300);
        let peak = r.actual_peak.unwrap();
        assert!((peak.rps - 400.0).abs() < 1e-6, "{peak:?}");
        assert_eq!(peak.at, r.from + chrono::Duration::hours(12));
    }

    #[test]
    fn a_flat_day_that_doubles_in_its_last_hour_is_a_known_miss() {
        // 200 req/s for three days, then 400 req/s in the reviewed day's last hour. The
        // forecast (yesterday's 200, times the last hour's level ratio) lags the jump:
        // with a 100 req/s task, its first step is forecast at 2 tasks short.
        let jump = 3 * PER_DAY - 12;
        let r = review(
            &settings(100.0),
            &counts(3, |i| if i >= jump { 400.0 } else { 200.0 }),
            end(),
        );
        let worst = r.worst.unwrap();
        assert_eq!(worst.at, end() - chrono::Duration::hours(1));
        assert_eq!((worst.forecast_rps, worst.actual_rps), (200.0, 400.0));
        assert!(r.short_steps >= 1 && r.short_task_hours >= 2.0 * 300.0 / 3600.0);
        assert!(r.bias.unwrap() < 0.0, "it ran low: {r:?}");
        // The last hour's mean is the jump; the hours before it are exact.
        assert_eq!(r.hours[23].actual_rps, Some(400.0));
        assert_eq!(r.hours[22].forecast_rps, Some(200.0));
    }

    #[test]
    fn a_day_and_a_half_of_history_compares_only_what_had_a_day_behind_it() {
        // 36 h of history: the reviewed day starts 12 h in, and its steps before hour 25
        // have less than the 25 h the forecaster needs behind them; the rest compare.
        let s = Series {
            step: Duration::from_secs(STEP),
            values: (0..432).map(|i| Some(daily(i) * STEP as f64)).collect(),
        };
        let r = review(&settings(100.0), &s, end());
        assert_eq!(r.steps, 288);
        assert_eq!(r.compared, 288 - (300 - 144));
        assert!(
            r.not_compared
                .as_deref()
                .unwrap()
                .starts_with("not enough history"),
            "{r:?}"
        );
        assert_eq!(r.hours[0].forecast_rps, None);
        assert!(r.hours[0].actual_rps.is_some());
    }

    #[test]
    fn without_any_history_nothing_is_compared_and_it_says_why() {
        let s = Series {
            step: Duration::from_secs(STEP),
            values: vec![None; 288],
        };
        let r = review(&settings(100.0), &s, end());
        assert_eq!(r.compared, 0);
        assert_eq!((r.wape, r.worst), (None, None));
        assert!(r.not_compared.unwrap().contains("no request history"));
    }

    #[test]
    fn the_review_input_is_recognised_and_checked() {
        let ok = json!({"source": REVIEW_SOURCE, "scheduled_time": "2026-12-01T07:00:00Z"});
        assert_eq!(
            parse_input(&ok).unwrap().unwrap().to_rfc3339(),
            "2026-12-01T07:00:00+00:00"
        );
        assert!(parse_input(&json!({"source": "visits-autoscaler.window"})).is_none());
        assert!(parse_input(&json!({"detail-type": "Scheduled Event"})).is_none());
        for bad in [
            json!({"source": REVIEW_SOURCE}),
            json!({"source": REVIEW_SOURCE, "scheduled_time": "<aws.scheduler.scheduled-time>"}),
            json!({"source": REVIEW_SOURCE, "scheduled_time": "2026-12-01T07:00:00Z", "x": 1}),
        ] {
            let e = parse_input(&bad).unwrap().unwrap_err().to_string();
            assert!(e.contains("malformed forecast review input"), "{e}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Whatever the traffic: the compared steps never exceed the day, the error ratios
        /// are consistent (|bias| ≤ WAPE), and the hour rows cover the day.
        #[test]
        fn the_figures_are_consistent(
            levels in proptest::collection::vec(0.0..2_000.0f64, 3 * 288),
            holes in proptest::collection::vec(0..864usize, 0..50),
        ) {
            let mut s = counts(3, |i| levels[i]);
            for h in holes { s.values[h] = None; }
            let r = review(&settings(150.0), &s, end());
            prop_assert!(r.compared <= r.steps);
            prop_assert_eq!(r.hours.len(), 24);
            if let (Some(w), Some(b)) = (r.wape, r.bias) {
                prop_assert!(b.abs() <= w + 1e-9);
            }
            prop_assert!(r.short_task_hours >= 0.0 && r.extra_task_hours >= 0.0);
        }
    }
}
