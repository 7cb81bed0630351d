//! Predictive pre-scaling: its settings and its one decision, pure.
//!
//! Scale-up's re-evaluation schedule reads the request-rate history (the load balancer's
//! `RequestCount` for the service's target group, one sum per [`Predictive::step`]), and
//! [`outlook`] turns it into a task count ahead of the forecast ([`crate::forecast`]): the
//! forecast's peak within the lead (task start time + margin, plus the age of the newest
//! complete step) divided by what one task serves at its target. [`decide`] raises desired to
//! it, within the bounds in force; it never lowers anything (scale-in stays reactive and
//! graceful). In `forecast-only` the run reports the same outlook and changes nothing.

use crate::forecast::{self, Forecast, Series};
use crate::policy::{Cap, Decision, History, Limits, ServiceState};
use chrono::{DateTime, Utc};
use std::time::Duration;

/// `PREDICTIVE_MODE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PredictiveMode {
    /// No history is read, nothing is forecast.
    Off,
    /// The forecast and what it would do are reported; desired never changes on it.
    ForecastOnly,
    /// Desired is raised ahead of the forecast.
    On,
}

impl PredictiveMode {
    /// As the variable spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            PredictiveMode::Off => "off",
            PredictiveMode::ForecastOnly => "forecast-only",
            PredictiveMode::On => "on",
        }
    }

    /// Parses `off`, `forecast-only` or `on`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "off" => Some(PredictiveMode::Off),
            "forecast-only" => Some(PredictiveMode::ForecastOnly),
            "on" => Some(PredictiveMode::On),
            _ => None,
        }
    }
}

/// Predictive scaling's settings (`PREDICTIVE_*`, read by [`crate::config`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Predictive {
    pub mode: PredictiveMode,
    /// Requests per second one task serves at its scaling target (`PREDICTIVE_TASK_RPS`).
    pub task_rps: f64,
    /// Task start time plus a margin (`PREDICTIVE_LEAD_S`).
    pub lead: Duration,
    /// The history's period (`PREDICTIVE_STEP_S`, 300 to 900 s, whole minutes).
    pub step: Duration,
    /// How much history is read (`PREDICTIVE_HISTORY_DAYS`, 1 to 14; 8 gives the weekly base).
    pub history: Duration,
    /// The load balancer and target group whose `RequestCount` is the history
    /// (`PREDICTIVE_LOAD_BALANCER`, `PREDICTIVE_TARGET_GROUP`: their CloudWatch dimension
    /// values, `app/<name>/<id>` and `targetgroup/<name>/<id>`).
    pub load_balancer: String,
    pub target_group: String,
}

impl Predictive {
    /// Off, with the defaults for the rest (tests and tools).
    pub fn off() -> Self {
        Predictive {
            mode: PredictiveMode::Off,
            task_rps: 2100.0,
            lead: Duration::from_secs(180),
            step: Duration::from_secs(300),
            history: Duration::from_secs(8 * 86_400),
            load_balancer: String::new(),
            target_group: String::new(),
        }
    }

    /// The end of the newest step whose `RequestCount` is published at `at`: steps are whole
    /// multiples of `step` (at least a minute), and the load balancer publishes per minute,
    /// so a minute's slack. The re-evaluation's forecast and the daily review read up to it.
    pub fn last_published_step(&self, at: DateTime<Utc>) -> DateTime<Utc> {
        let step_s = self.step.as_secs().max(60) as i64;
        let end_s = (at.timestamp() - 60).div_euclid(step_s) * step_s;
        DateTime::from_timestamp(end_s, 0).unwrap_or(at)
    }
}

/// What the forecast asks for at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct Outlook {
    pub forecast: Forecast,
    /// Tasks for the forecast's peak within the lead (None: no forecast).
    pub tasks: Option<i32>,
    /// That peak, requests per second.
    pub peak_rps: Option<f64>,
    /// The lead used: `PREDICTIVE_LEAD_S` plus the age of the newest complete step.
    pub lead: Duration,
}

impl Outlook {
    /// One line for the report and the log.
    pub fn describe(&self) -> String {
        match (&self.forecast, self.tasks, self.peak_rps) {
            (Forecast::NotEnoughHistory { have, need }, ..) => format!(
                "forecast: not enough history ({:.1} h of the {:.0} h needed): nothing forecast",
                have.as_secs_f64() / 3600.0,
                need.as_secs_f64() / 3600.0
            ),
            (Forecast::Ahead { ratio, weekly, .. }, Some(tasks), Some(peak)) => format!(
                "forecast: peak {peak:.0} req/s within {}s (same time {} x{ratio:.2}): {tasks} task(s)",
                self.lead.as_secs(),
                if *weekly {
                    "yesterday and last week"
                } else {
                    "yesterday"
                }
            ),
            (Forecast::Ahead { .. }, ..) => {
                "forecast: no datapoint at the same time yesterday: nothing forecast".into()
            }
        }
    }
}

/// The outlook from `history` (request counts per step, oldest first, the last step ending
/// at `end`) at `now`, read as [`rates`].
pub fn outlook(
    p: &Predictive,
    history: &Series,
    end: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Outlook {
    let f = forecast::next_hour(&rates(history));
    let age = (now - end).to_std().unwrap_or_default();
    let lead = p.lead + age;
    let tasks = forecast::tasks_ahead(&f, history.step, lead, p.task_rps);
    let peak_rps = tasks.and(match &f {
        Forecast::Ahead { values, .. } => {
            let steps = (lead.as_secs().div_ceil(history.step.as_secs().max(1)) as usize)
                .clamp(1, values.len());
            values[..steps].iter().flatten().copied().reduce(f64::max)
        }
        Forecast::NotEnoughHistory { .. } => None,
    });
    Outlook {
        forecast: f,
        tasks,
        peak_rps,
        lead,
    }
}

/// Requests per second from request counts per step, from the first datapoint on: before it
/// the service had no history; after it, a step without a datapoint had no request (the load
/// balancer "reports metrics only when requests are flowing": "CloudWatch metrics for your
/// Application Load Balancer", Elastic Load Balancing user guide). The forecaster and the
/// daily review ([`crate::review`]) read the same series.
pub fn rates(history: &Series) -> Series {
    let step_s = history.step.as_secs_f64().max(1.0);
    let first = history
        .values
        .iter()
        .position(Option::is_some)
        .unwrap_or(history.values.len());
    Series {
        step: history.step,
        values: history.values[first..]
            .iter()
            .map(|v| Some(v.unwrap_or(0.0) / step_s))
            .collect(),
    }
}

/// Raise desired to the outlook's tasks (within `limits`, the bounds in force, and under
/// `cap`, the database connections' ceiling, as an alarm's step is), or nothing: paused, no
/// forecast, or desired already at or above it. Never lowers.
pub fn decide(
    s: &ServiceState,
    l: &Limits,
    h: &History,
    o: &Outlook,
    cap: Option<&Cap>,
) -> Option<Decision> {
    let tasks = o.tasks?;
    // Like the alarm's step: the cap never pushes the ceiling below min.
    let cap = cap.filter(|c| c.tasks < l.max && c.tasks.max(l.min) < tasks);
    let ceiling = cap.map_or(l.max, |c| c.tasks.max(l.min));
    let target = tasks.clamp(l.min, ceiling);
    if h.paused || s.desired >= target {
        return None;
    }
    let capped = cap
        .map(|c| format!(" (capped by {})", c.why))
        .unwrap_or_default();
    Some(Decision::ScaleTo {
        target,
        reason: format!(
            "ahead of the forecast: desired {} -> {target}{capped} ({})",
            s.desired,
            o.describe()
        ),
        capped_by: cap.cloned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ScaleOutMode;

    const STEP: Duration = Duration::from_secs(300);

    #[test]
    fn the_newest_published_step_keeps_a_minute_of_slack() {
        let p = Predictive::off();
        let at = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        let last = |t: &str| p.last_published_step(at(t)).to_rfc3339();
        assert_eq!(last("2026-12-01T12:07:30Z"), "2026-12-01T12:05:00+00:00");
        // 12:05:30: the step that ended at 12:05 may not be published yet.
        assert_eq!(last("2026-12-01T12:05:30Z"), "2026-12-01T12:00:00+00:00");
        assert_eq!(last("2026-12-01T12:06:00Z"), "2026-12-01T12:05:00+00:00");
    }

    fn limits(min: i32, max: i32) -> Limits {
        Limits {
            min,
            max,
            step: 1,
            mode: ScaleOutMode::Fixed,
            max_step: 4,
            out_cooldown: Duration::from_secs(60),
            in_cooldown: Duration::from_secs(300),
            in_window: Duration::ZERO,
        }
    }

    fn state(desired: i32) -> ServiceState {
        ServiceState {
            desired,
            running: desired,
            pending: 0,
            deployment_in_progress: false,
        }
    }

    /// A day and an hour of request counts per 5 minutes: 300 req/s, and 3,000 req/s from
    /// the 5 minutes that follow the history, a day earlier.
    fn history() -> Series {
        let n = 288 + 12;
        Series {
            step: STEP,
            values: (0..n)
                .map(|i| {
                    Some(if i == 12 {
                        3000.0 * 300.0
                    } else {
                        300.0 * 300.0
                    })
                })
                .collect(),
        }
    }

    fn end() -> DateTime<Utc> {
        DateTime::from_timestamp(1_767_225_600, 0).unwrap()
    }

    #[test]
    fn the_peak_within_the_lead_sets_the_tasks() {
        let p = Predictive {
            mode: PredictiveMode::On,
            ..Predictive::off()
        };
        // 3,000 req/s / 2,100 per task -> 2 tasks.
        let o = outlook(&p, &history(), end(), end());
        assert_eq!(o.tasks, Some(2));
        assert_eq!(o.peak_rps, Some(3000.0));
        assert!(o.describe().contains("peak 3000 req/s"), "{}", o.describe());
        let d = decide(&state(1), &limits(1, 6), &History::default(), &o, None).unwrap();
        assert!(matches!(d, Decision::ScaleTo { target: 2, .. }), "{d:?}");
    }

    #[test]
    fn never_lowers_and_stays_within_the_bounds() {
        let p = Predictive {
            task_rps: 500.0,
            ..Predictive::off()
        };
        let o = outlook(&p, &history(), end(), end());
        assert_eq!(o.tasks, Some(6));
        // Already above the forecast's need: nothing.
        assert_eq!(
            decide(&state(7), &limits(1, 10), &History::default(), &o, None),
            None
        );
        // The ceiling in force caps it.
        let d = decide(&state(2), &limits(1, 4), &History::default(), &o, None).unwrap();
        assert!(matches!(d, Decision::ScaleTo { target: 4, .. }), "{d:?}");
        // Paused: nothing.
        let paused = History {
            paused: true,
            ..History::default()
        };
        assert_eq!(decide(&state(2), &limits(1, 4), &paused, &o, None), None);
    }

    #[test]
    fn the_database_cap_holds_the_raise_as_it_holds_an_alarm_step() {
        let p = Predictive {
            task_rps: 500.0,
            ..Predictive::off()
        };
        let o = outlook(&p, &history(), end(), end());
        assert_eq!(o.tasks, Some(6));
        let cap = Cap {
            tasks: 4,
            why: "database connections: 160/200 used".into(),
        };
        let d = decide(
            &state(2),
            &limits(1, 10),
            &History::default(),
            &o,
            Some(&cap),
        )
        .unwrap();
        let Decision::ScaleTo {
            target,
            reason,
            capped_by,
        } = d
        else {
            panic!("{d:?}")
        };
        assert_eq!((target, capped_by), (4, Some(cap.clone())));
        assert!(
            reason.contains("2 -> 4 (capped by database connections"),
            "{reason}"
        );
        // At the cap already: nothing. A cap above the need changes nothing.
        assert_eq!(
            decide(
                &state(4),
                &limits(1, 10),
                &History::default(),
                &o,
                Some(&cap)
            ),
            None
        );
        let roomy = Cap { tasks: 9, ..cap };
        let d = decide(
            &state(2),
            &limits(1, 10),
            &History::default(),
            &o,
            Some(&roomy),
        )
        .unwrap();
        assert!(
            matches!(
                d,
                Decision::ScaleTo {
                    target: 6,
                    capped_by: None,
                    ..
                }
            ),
            "{d:?}"
        );
    }

    #[test]
    fn an_old_newest_step_lengthens_the_lead() {
        // The peak is 2 steps ahead of the newest complete step when that step is 6 minutes
        // old: a 180 s lead alone would see only the first step.
        let mut h = history();
        h.values[12] = Some(300.0 * 300.0);
        h.values[13] = Some(3000.0 * 300.0);
        let p = Predictive::off();
        assert_eq!(outlook(&p, &h, end(), end()).tasks, Some(1));
        let later = end() + chrono::Duration::seconds(360);
        assert_eq!(outlook(&p, &h, end(), later).tasks, Some(2));
    }

    #[test]
    fn below_a_day_of_history_it_says_so_and_decides_nothing() {
        let h = Series {
            step: STEP,
            values: vec![Some(1.0); 100],
        };
        let o = outlook(&Predictive::off(), &h, end(), end());
        assert_eq!(o.tasks, None);
        assert!(o
            .describe()
            .contains("not enough history (8.3 h of the 25 h needed)"));
        assert_eq!(
            decide(&state(1), &limits(1, 6), &History::default(), &o, None),
            None
        );
    }

    #[test]
    fn the_history_starts_at_its_first_datapoint_and_gaps_are_quiet_steps() {
        // Two days read, ten hours of datapoints: not enough, whatever the length read.
        let mut values = vec![None; 576];
        for v in &mut values[576 - 120..] {
            *v = Some(90_000.0);
        }
        let h = Series { step: STEP, values };
        let o = outlook(&Predictive::off(), &h, end(), end());
        assert!(
            o.describe().contains("not enough history (10.0 h"),
            "{}",
            o.describe()
        );
        // A gap (no request) a day before the next step is a quiet step, not a missing one.
        let mut h = history();
        h.values[12] = None;
        let o = outlook(&Predictive::off(), &h, end(), end());
        assert!(matches!(&o.forecast, Forecast::Ahead { values, .. } if values[0] == Some(0.0)));
    }

    #[test]
    fn modes_parse_as_spelled() {
        for m in [
            PredictiveMode::Off,
            PredictiveMode::ForecastOnly,
            PredictiveMode::On,
        ] {
            assert_eq!(PredictiveMode::parse(m.as_str()), Some(m));
        }
        assert_eq!(PredictiveMode::parse("forecast_only"), None);
    }
}
