//! Capacity ahead of the load: the inputs of the scheduled and predictive modes.
//!
//! - [`LoadHistory`]: the load balancer's request count as CloudWatch would hold it (sums
//!   per `PREDICTIVE_STEP_S`, visible a metric delay after each step ends), which the project's
//!   re-evaluation reads for `scaling::predictive` (the functions' own forecaster and
//!   decision: nothing of them is re-implemented here).
//! - [`daily_window`]: the window an operator would declare after looking at the trace's first
//!   [`HISTORY_DAYS`] days, as a `SCHEDULE_WINDOWS` value the functions' own window code reads.

use crate::trace::Trace;
use scaling::forecast::Series;
use std::collections::VecDeque;
use std::time::Duration;

/// Days an operator looks at before declaring the scheduled window.
pub const HISTORY_DAYS: usize = 3;

/// Minutes the window opens before its first busy hour: a task start (55 s) and a margin.
pub const WINDOW_LEAD_MIN: usize = 5;

const DAY_S: i64 = 86_400;

/// Request counts per step, oldest first, as GetMetricData would return them.
#[derive(Debug, Clone)]
pub struct LoadHistory {
    step_s: i64,
    /// Steps kept (the history read).
    keep: usize,
    /// Seconds after a step ends before its sum is visible.
    delay_s: i64,
    /// Index of `sums[0]`'s step.
    first: i64,
    sums: VecDeque<f64>,
}

impl LoadHistory {
    /// `step` per datapoint, `history` read back, each sum visible `delay_s` after its step.
    pub fn new(step: Duration, history: Duration, delay_s: i64) -> Self {
        let step_s = step.as_secs().max(1) as i64;
        LoadHistory {
            step_s,
            keep: (history.as_secs() as i64 / step_s) as usize,
            delay_s,
            first: 0,
            sums: VecDeque::new(),
        }
    }

    /// Adds `seconds` at `rps` requests per second from second `start`.
    pub fn add(&mut self, start: i64, seconds: i64, rps: f64) {
        for t in start..start + seconds {
            let i = t.div_euclid(self.step_s);
            while self.first + (self.sums.len() as i64) <= i {
                self.sums.push_back(0.0);
            }
            if let Some(s) = self.sums.get_mut((i - self.first) as usize) {
                *s += rps;
            }
        }
        // Keep the history read plus the steps not yet complete.
        while self.sums.len() > self.keep + 2 {
            self.sums.pop_front();
            self.first += 1;
        }
    }

    /// The complete steps visible at `now` (at most the history read), and the second the
    /// last of them ends.
    pub fn visible(&self, now: i64) -> (Series, i64) {
        let end_step = (now - self.delay_s).div_euclid(self.step_s); // exclusive
        let last = end_step.min(self.first + self.sums.len() as i64);
        let from = (last - self.keep as i64).max(self.first);
        let values = (from..last)
            .map(|i| self.sums.get((i - self.first) as usize).copied())
            .collect();
        (
            Series {
                step: Duration::from_secs(self.step_s as u64),
                values,
            },
            last * self.step_s,
        )
    }
}

/// The daily window an operator would declare from the first [`HISTORY_DAYS`] days of
/// `trace` (already scaled): each hour of day's busiest minute, averaged over those days; the
/// hours where that needs more than `min` tasks at `task_rps` each, from [`WINDOW_LEAD_MIN`]
/// minutes before the first such hour (so the tasks have started when it begins) to the end of
/// the last, with a floor of the tasks their mean needs (at most `max`). None when the trace is shorter than the history and a
/// day, or no hour needs more than `min`. The simulated clock's hour 0 is the trace's start.
pub fn daily_window(trace: &Trace, task_rps: f64, min: i32, max: i32) -> Option<String> {
    let days = HISTORY_DAYS;
    if trace.rps.len() < (days + 1) * DAY_S as usize || task_rps <= 0.0 {
        return None;
    }
    // Hourly means hide minute peaks that already need a task more: the busiest minute.
    let mut hourly = [0.0f64; 24];
    for (hour, secs) in trace.rps[..days * DAY_S as usize].chunks(3600).enumerate() {
        let peak = secs
            .chunks(60)
            .map(|m| m.iter().sum::<f64>() / m.len() as f64)
            .fold(0.0, f64::max);
        hourly[hour % 24] += peak / days as f64;
    }
    let needs = |rps: f64| (rps / task_rps).ceil() as i32;
    let busy: Vec<usize> = (0..24).filter(|&h| needs(hourly[h]) > min).collect();
    let (&start, &last) = (busy.first()?, busy.last()?);
    let mean = hourly[start..=last].iter().sum::<f64>() / (last - start + 1) as f64;
    let floor = needs(mean).clamp(min + 1, max);
    let end = if last == 23 {
        "cron(59 23 * * ? *)".to_string()
    } else {
        format!("cron(0 {} * * ? *)", last + 1)
    };
    let open = (start * 60 + 24 * 60 - WINDOW_LEAD_MIN) % (24 * 60);
    Some(
        serde_json::json!([{
            "name": "busy-hours",
            "start": format!("cron({} {} * * ? *)", open % 60, open / 60),
            "end": end,
            "timezone": "UTC",
            "min": floor,
        }])
        .to_string(),
    )
}

/// The once-a-day forecast review (`scaling::review`, the functions' own) for each day of `t`
/// after its first [`HISTORY_DAYS`]: what the daily email would have said, day by day, with
/// `p`'s settings. `t` holds requests per second, one value per second.
pub fn daily_reviews(
    t: &Trace,
    p: &scaling::predictive::Predictive,
) -> Vec<scaling::review::ForecastReview> {
    let step = p.step.as_secs().max(60) as usize;
    let per_day = DAY_S as usize / step;
    let counts: Vec<Option<f64>> = t
        .rps
        .chunks(step)
        .filter(|c| c.len() == step)
        .map(|c| Some(c.iter().sum()))
        .collect();
    // What scale-up reads for a review: the day, and the forecaster's history before it.
    let read = per_day + (p.history.as_secs() as usize / step);
    let epoch = chrono::DateTime::from_timestamp(0, 0).unwrap_or_default();
    (HISTORY_DAYS + 1..=counts.len() / per_day)
        .map(|day| {
            let end = day * per_day;
            let history = Series {
                step: p.step,
                values: counts[end.saturating_sub(read)..end].to_vec(),
            };
            let end = epoch + chrono::Duration::seconds((end * step) as i64);
            scaling::review::review(p, &history, end)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_are_visible_after_their_step_and_the_delay() {
        let mut h = LoadHistory::new(Duration::from_secs(300), Duration::from_secs(900), 60);
        h.add(0, 600, 2.0);
        // At 599 s nothing is complete and visible; at 360 s the first step is.
        assert_eq!(h.visible(300).0.values, Vec::<Option<f64>>::new());
        let (s, end) = h.visible(360);
        assert_eq!((s.values, end), (vec![Some(600.0)], 300));
        h.add(600, 1200, 1.0);
        // 1,800 s of data, 900 s of history read: the last three complete steps.
        let (s, end) = h.visible(1860);
        assert_eq!(s.values, vec![Some(300.0); 3]);
        assert_eq!(end, 1800);
    }

    #[test]
    fn the_window_covers_the_busy_hours_with_their_mean_need() {
        // 4 days: 1,000 req/s, 5,000 from 09:00 to 17:00.
        let rps: Vec<f64> = (0..4 * DAY_S as usize)
            .map(|t| {
                if (9..17).contains(&((t / 3600) % 24)) {
                    5000.0
                } else {
                    1000.0
                }
            })
            .collect();
        let t = Trace {
            name: "t".into(),
            rps,
            bin_s: 1,
        };
        let w = daily_window(&t, 2100.0, 2, 6).unwrap();
        assert!(
            w.contains("cron(55 8 * * ? *)") && w.contains("cron(0 17 * * ? *)"),
            "{w}"
        );
        assert!(w.contains("\"min\":3"), "{w}");
        // Three days are not enough to also run a day after them.
        let short = Trace {
            name: "s".into(),
            rps: t.rps[..3 * DAY_S as usize].to_vec(),
            bin_s: 1,
        };
        assert_eq!(daily_window(&short, 2100.0, 2, 6), None);
    }
}
