//! Predictive pre-scaling's forecaster: the next hour of the service's load from its own
//! history, with a model a person can check by hand.
//!
//! Model: **seasonal naive with a level ratio**. The forecast for `T + h` is the value one day
//! earlier, `y(T + h − 1 day)`, scaled by how the last hour compares with the same hour one day
//! earlier: `r = mean(y[T − 1 h, T]) / mean(y[T − 1 h − 1 day, T − 1 day])`, clamped to
//! [`RATIO_CLAMP`]. With at least 8 days of history the base is the mean of one day and one
//! week earlier, so a weekly pattern (weekends) counts as well. Holt-Winters would fit trends
//! better, but needs tuning per service and its forecasts are hard to explain in an email;
//! this one reads "same time yesterday, ×1.12 because today runs 12 % above yesterday".
//!
//! Pure: the series and the time are arguments. Below 24 hours of history it refuses.

use std::time::Duration;

/// A metric sampled at a fixed step, oldest first; `None` where no datapoint exists.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Between two samples (5 to 15 minutes for the forecaster).
    pub step: Duration,
    pub values: Vec<Option<f64>>,
}

/// The ratio never scales the seasonal value below half or above double: one odd hour (an
/// outage, a flash crowd) must not multiply the whole next hour's forecast.
pub const RATIO_CLAMP: (f64, f64) = (0.5, 2.0);

/// A day: the forecaster's season, and what the daily review covers.
pub const DAY: Duration = Duration::from_secs(86_400);
/// The forecast's horizon: the next hour.
pub const HOUR: Duration = Duration::from_secs(3_600);
/// The most history [`next_hour`] reads: last week's hour, and the hour since. Older samples
/// change nothing.
pub const LOOKBACK: Duration = Duration::from_secs(7 * 86_400 + 3_600);

/// The forecaster's answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Forecast {
    /// The next hour, one value per step (None where the seasonal base has no datapoint).
    Ahead {
        values: Vec<Option<f64>>,
        /// The level ratio applied, for the report ("×1.12").
        ratio: f64,
        /// Whether the weekly base was used (8+ days of history).
        weekly: bool,
    },
    /// Less than 24 hours of history: nothing is forecast, and the report says so.
    NotEnoughHistory { have: Duration, need: Duration },
}

fn mean(xs: &[Option<f64>]) -> Option<f64> {
    let v: Vec<f64> = xs.iter().flatten().copied().collect();
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

/// Forecasts the hour after the last sample of `s`.
pub fn next_hour(s: &Series) -> Forecast {
    let step = s.step.as_secs().max(1);
    let per = |d: Duration| (d.as_secs() / step) as usize;
    let (day, hour) = (per(DAY), per(HOUR));
    let n = s.values.len();
    if n < day + hour || hour == 0 {
        return Forecast::NotEnoughHistory {
            have: Duration::from_secs(n as u64 * step),
            need: DAY + HOUR,
        };
    }
    let weekly = n >= per(LOOKBACK);
    let at = |i: usize| s.values.get(i).copied().flatten();
    // Base for sample index i (may be in the future, i >= n): yesterday's, with last week's.
    let base = |i: usize| -> Option<f64> {
        let d = at(i - day);
        if !weekly {
            return d;
        }
        match (d, at(i - 7 * day)) {
            (Some(a), Some(b)) => Some((a + b) / 2.0),
            (a, b) => a.or(b),
        }
    };
    let recent = mean(&s.values[n - hour..]);
    let then = mean(&(n - hour..n).map(base).collect::<Vec<_>>());
    let ratio = match (recent, then) {
        (Some(r), Some(t)) if t > 0.0 => (r / t).clamp(RATIO_CLAMP.0, RATIO_CLAMP.1),
        _ => 1.0,
    };
    let values = (n..n + hour).map(|i| base(i).map(|b| b * ratio)).collect();
    Forecast::Ahead {
        values,
        ratio,
        weekly,
    }
}

/// Tasks needed for the forecast's peak within `lead` (task start time + margin) of now, when
/// one task carries `per_task` of the metric at its target. Predictive scaling only ever raises
/// desired on this: it returns a floor, never a ceiling.
pub fn tasks_ahead(f: &Forecast, step: Duration, lead: Duration, per_task: f64) -> Option<i32> {
    let Forecast::Ahead { values, .. } = f else {
        return None;
    };
    let steps = lead_steps(lead, step, values.len());
    let peak = values[..steps]
        .iter()
        .flatten()
        .copied()
        .fold(f64::NAN, f64::max);
    (peak.is_finite() && per_task > 0.0).then(|| tasks_for(peak, per_task))
}

/// The whole steps `lead` spans: at least one, at most `max`.
pub fn lead_steps(lead: Duration, step: Duration, max: usize) -> usize {
    (lead.as_secs().div_ceil(step.as_secs().max(1)) as usize).clamp(1, max)
}

/// Tasks that carry `rps` when one task carries `per_task`: at least one.
pub fn tasks_for(rps: f64, per_task: f64) -> i32 {
    (rps / per_task).ceil().max(1.0) as i32
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const STEP: Duration = Duration::from_secs(300);

    /// A daily curve: 100 at night, 400 at midday, smooth.
    fn daily(i: usize) -> f64 {
        let t = (i % 288) as f64 / 288.0;
        250.0 - 150.0 * (2.0 * std::f64::consts::PI * t).cos()
    }

    fn series(days: usize, f: impl Fn(usize) -> f64) -> Series {
        Series {
            step: STEP,
            values: (0..days * 288 + 12).map(|i| Some(f(i))).collect(),
        }
    }

    fn ahead(f: &Forecast) -> (&[Option<f64>], f64, bool) {
        match f {
            Forecast::Ahead {
                values,
                ratio,
                weekly,
            } => (values, *ratio, *weekly),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_repeating_day_is_forecast_exactly() {
        let s = series(2, daily);
        let n = s.values.len();
        let f = next_hour(&s);
        let (values, ratio, weekly) = ahead(&f);
        assert_eq!((ratio, weekly), (1.0, false));
        for (k, v) in values.iter().enumerate() {
            assert!((v.unwrap() - daily(n + k)).abs() < 1e-9, "step {k}");
        }
    }

    #[test]
    fn growth_is_carried_by_the_ratio() {
        // Each day 10 % busier than the one before: the forecast is the true next hour.
        let grow = |i: usize| daily(i) * 1.1f64.powf((i / 288) as f64);
        let s = series(3, grow);
        let n = s.values.len();
        let f = next_hour(&s);
        let (values, ratio, _) = ahead(&f);
        assert!((ratio - 1.1).abs() < 0.02, "{ratio}");
        for (k, v) in values.iter().enumerate() {
            let truth = grow(n + k);
            assert!((v.unwrap() - truth).abs() / truth < 0.02, "step {k}");
        }
    }

    #[test]
    fn a_week_of_history_adds_the_weekly_base() {
        // Weekends (days 5, 6 of each week) at half load; forecasting into day 8 (a weekday)
        // from a weekday: both bases agree.
        let weekly = |i: usize| daily(i) * if (i / 288) % 7 >= 5 { 0.5 } else { 1.0 };
        let s = series(8, weekly);
        let f = next_hour(&s);
        let (_, _, used) = ahead(&f);
        assert!(used);
    }

    #[test]
    fn less_than_a_day_refuses_and_says_how_much_it_has() {
        let s = Series {
            step: STEP,
            values: vec![Some(1.0); 200],
        };
        assert_eq!(
            next_hour(&s),
            Forecast::NotEnoughHistory {
                have: Duration::from_secs(200 * 300),
                need: DAY + HOUR
            }
        );
        assert_eq!(tasks_ahead(&next_hour(&s), STEP, HOUR, 50.0), None);
    }

    #[test]
    fn tasks_for_the_peak_within_the_lead() {
        let f = Forecast::Ahead {
            values: vec![Some(100.0), Some(180.0), Some(400.0), None],
            ratio: 1.0,
            weekly: false,
        };
        // A 10-minute lead sees the first two steps: 180 / 50 -> 4 tasks.
        assert_eq!(
            tasks_ahead(&f, STEP, Duration::from_secs(600), 50.0),
            Some(4)
        );
        assert_eq!(tasks_ahead(&f, STEP, HOUR, 50.0), Some(8));
    }

    proptest! {
        /// Missing datapoints and any level change never make the forecast leave the clamp
        /// band around the seasonal base, nor negative.
        #[test]
        fn forecasts_stay_in_the_clamped_band(
            holes in proptest::collection::vec(0..588usize, 0..80),
            level in 0.1..10.0f64,
        ) {
            let mut s = series(2, |i| if i >= 576 { daily(i) * level } else { daily(i) });
            for h in holes { s.values[h] = None; }
            let n = s.values.len();
            let f = next_hour(&s);
        let (values, ratio, _) = ahead(&f);
            prop_assert!((RATIO_CLAMP.0..=RATIO_CLAMP.1).contains(&ratio));
            for (k, v) in values.iter().enumerate() {
                if let Some(v) = v {
                    let base = s.values[n + k - 288].unwrap();
                    prop_assert!(*v >= base * RATIO_CLAMP.0 - 1e-9 && *v <= base * RATIO_CLAMP.1 + 1e-9);
                }
            }
        }
    }
}
