//! The schedule expressions that bound a window, and when they fire.
//!
//! The syntax is EventBridge Scheduler's (AWS docs, "Schedule types in EventBridge
//! Scheduler", <https://docs.aws.amazon.com/scheduler/latest/UserGuide/schedule-types.html>):
//! `cron(minutes hours day-of-month month day-of-week year)` and `at(yyyy-mm-ddThh:mm:ss)`,
//! both read in the schedule's time zone. The same page says how daylight saving time
//! is handled, and this evaluator does the same so that "is the window in force now"
//! agrees with the edges Scheduler actually fires:
//! - spring forward: a time that does not exist that day is skipped (no invocation);
//! - fall back: a time that occurs twice fires once, at the first occurrence.
//!
//! Supported in cron fields: numbers, `JAN`-`DEC`, `SUN`-`SAT` (1 = Sunday), `*`, `?`,
//! `a-b` ranges, `,` lists and `/` steps. `L`, `W` and `#` are refused with a clear
//! error: a window edge does not need them. `rate(...)` is refused too: a rate has no
//! time of day (it counts from the schedule's start date), so it cannot bound a window.

use jiff::civil::{Date, DateTime};
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::Timestamp;

/// How far back (or ahead) a fire time is searched for. A window whose last start is
/// older than this is not in force; see [`super::Window`].
pub const SEARCH_DAYS: i32 = 400;

/// One parsed schedule expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    /// `cron(...)`: a recurring time of day.
    Cron(Box<Cron>),
    /// `at(...)`: one local date and time.
    At(DateTime),
}

/// The six cron fields as sets of allowed values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    minutes: Vec<bool>,
    hours: Vec<bool>,
    /// Index 1..=31; None for `?` or `*` (any day).
    days_of_month: Option<Vec<bool>>,
    months: Vec<bool>,
    /// Index 1..=7, 1 = Sunday; None for `?` or `*`.
    days_of_week: Option<Vec<bool>>,
    /// Index = year - 1970; None for `*`.
    years: Option<Vec<bool>>,
}

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const DAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];
const FIRST_YEAR: i32 = 1970;
const LAST_YEAR: i32 = 2199;

impl Expr {
    /// Parses `cron(...)` or `at(...)`; the error says what is wrong in words.
    pub fn parse(text: &str) -> Result<Expr, String> {
        let text = text.trim();
        if let Some(body) = inside(text, "cron") {
            return Cron::parse(body).map(|c| Expr::Cron(Box::new(c)));
        }
        if let Some(body) = inside(text, "at") {
            let dt: DateTime = body
                .trim()
                .parse()
                .map_err(|e| format!("at({body}): expected yyyy-mm-ddThh:mm:ss ({e})"))?;
            return Ok(Expr::At(dt));
        }
        if inside(text, "rate").is_some() {
            return Err(format!(
                "{text}: a rate expression has no time of day, so it cannot start or end a \
                 window; use cron(...) or at(...)"
            ));
        }
        Err(format!(
            "{text:?}: expected cron(minutes hours day-of-month month day-of-week year) or \
             at(yyyy-mm-ddThh:mm:ss)"
        ))
    }

    /// The latest fire time at or before `t` (within [`SEARCH_DAYS`]).
    pub fn last_at_or_before(&self, tz: &TimeZone, t: Timestamp) -> Option<Timestamp> {
        match self {
            Expr::At(dt) => resolve(tz, *dt).filter(|f| *f <= t),
            Expr::Cron(c) => c.search(tz, t, Direction::Back),
        }
    }

    /// The earliest fire time strictly after `t` (within [`SEARCH_DAYS`]).
    pub fn first_after(&self, tz: &TimeZone, t: Timestamp) -> Option<Timestamp> {
        match self {
            Expr::At(dt) => resolve(tz, *dt).filter(|f| *f > t),
            Expr::Cron(c) => c.search(tz, t, Direction::Forward),
        }
    }
}

fn inside<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    text.strip_prefix(name)?
        .trim_start()
        .strip_prefix('(')?
        .strip_suffix(')')
}

/// The instant a local time names, the way Scheduler fires it: none in a gap, the
/// first in a fold.
fn resolve(tz: &TimeZone, dt: DateTime) -> Option<Timestamp> {
    let amb = tz.to_ambiguous_timestamp(dt);
    match amb.offset() {
        AmbiguousOffset::Gap { .. } => None,
        AmbiguousOffset::Unambiguous { .. } | AmbiguousOffset::Fold { .. } => amb.earlier().ok(),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    Back,
    Forward,
}

impl Cron {
    fn parse(body: &str) -> Result<Cron, String> {
        let fields: Vec<&str> = body.split_whitespace().collect();
        let [min, hour, dom, month, dow, year] = fields.as_slice() else {
            return Err(format!(
                "cron({body}): expected 6 fields (minutes hours day-of-month month day-of-week \
                 year), found {}",
                fields.len()
            ));
        };
        let any = |f: &str| f == "*" || f == "?";
        if !(*dom == "?" || *dow == "?") {
            return Err(format!(
                "cron({body}): one of day-of-month and day-of-week must be '?'"
            ));
        }
        let days_of_month = if any(dom) {
            None
        } else {
            Some(set(dom, 1, 31, &[], "day-of-month")?)
        };
        let days_of_week = if any(dow) {
            None
        } else {
            Some(set(dow, 1, 7, &DAYS, "day-of-week")?)
        };
        let years = if *year == "*" {
            None
        } else {
            Some(set(year, FIRST_YEAR, LAST_YEAR, &[], "year")?)
        };
        Ok(Cron {
            minutes: set(min, 0, 59, &[], "minutes")?,
            hours: set(hour, 0, 23, &[], "hours")?,
            days_of_month,
            months: set(month, 1, 12, &MONTHS, "month")?,
            days_of_week,
            years,
        })
    }

    fn day_matches(&self, d: Date) -> bool {
        let year_ok = match &self.years {
            None => true,
            Some(y) => {
                let i = i32::from(d.year()) - FIRST_YEAR;
                i >= 0 && y.get(i as usize).copied().unwrap_or(false)
            }
        };
        let dom_ok = self
            .days_of_month
            .as_ref()
            .is_none_or(|s| s[d.day() as usize - 1]);
        let dow_ok = self
            .days_of_week
            .as_ref()
            .is_none_or(|s| s[d.weekday().to_sunday_one_offset() as usize - 1]);
        year_ok && self.months[d.month() as usize - 1] && dom_ok && dow_ok
    }

    /// Walks local days from `t`'s own, one at a time, and within a matching day its
    /// times of day, nearest first. Bounded by [`SEARCH_DAYS`].
    fn search(&self, tz: &TimeZone, t: Timestamp, dir: Direction) -> Option<Timestamp> {
        let mut day = t.to_zoned_datetime(tz.clone()).date();
        let times: Vec<(i8, i8)> = (0..24)
            .filter(|h| self.hours[*h as usize])
            .flat_map(|h| {
                (0..60)
                    .filter(|m| self.minutes[*m as usize])
                    .map(move |m| (h, m))
            })
            .collect();
        // One day either side of `t`'s local date covers offsets of any size.
        for _ in 0..=SEARCH_DAYS + 1 {
            if self.day_matches(day) {
                let mut candidates = times
                    .iter()
                    .filter_map(|(h, m)| resolve(tz, day.at(*h, *m, 0, 0)));
                let found = match dir {
                    Direction::Back => candidates.rfind(|f| *f <= t),
                    Direction::Forward => candidates.find(|f| *f > t),
                };
                if found.is_some() {
                    return found;
                }
            }
            day = match dir {
                Direction::Back => day.yesterday().ok()?,
                Direction::Forward => day.tomorrow().ok()?,
            };
        }
        None
    }
}

/// One cron field as a set over `lo..=hi`, stored from index 0 = `lo`.
fn set(field: &str, lo: i32, hi: i32, names: &[&str], what: &str) -> Result<Vec<bool>, String> {
    let mut out = vec![false; (hi - lo + 1) as usize];
    let value = |s: &str| -> Result<i32, String> {
        let upper = s.to_ascii_uppercase();
        if let Some(i) = names.iter().position(|n| *n == upper) {
            return Ok(lo + i as i32);
        }
        let v: i32 = s.parse().map_err(|_| {
            if s.contains(['L', 'W', '#']) {
                format!("{what} {s:?}: L, W and # are not supported in a window edge")
            } else {
                format!("{what} {s:?} is not a number in {lo}-{hi}")
            }
        })?;
        if !(lo..=hi).contains(&v) {
            return Err(format!("{what} {v} is outside {lo}-{hi}"));
        }
        Ok(v)
    };
    for part in field.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => {
                let step: i32 = s
                    .parse()
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or_else(|| format!("{what} step {s:?} must be a positive number"))?;
                (r, step)
            }
            None => (part, 1),
        };
        let (a, b) = match range {
            "*" => (lo, hi),
            r => match r.split_once('-') {
                Some((a, b)) => (value(a)?, value(b)?),
                // `5/15` means from 5 to the end, every 15.
                None if step > 1 => (value(r)?, hi),
                None => {
                    let v = value(r)?;
                    (v, v)
                }
            },
        };
        if a > b {
            return Err(format!("{what} range {range:?} runs backwards"));
        }
        for v in (a..=b).step_by(step as usize) {
            out[(v - lo) as usize] = true;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn madrid() -> TimeZone {
        TimeZone::get("Europe/Madrid").unwrap()
    }

    #[test]
    fn weekday_mornings_in_madrid() {
        let e = Expr::parse("cron(0 8 ? * MON-FRI *)").unwrap();
        // Tuesday 2026-12-01 09:00 CET (08:00 UTC): the last start is today 08:00 CET.
        let last = e
            .last_at_or_before(&madrid(), ts("2026-12-01T08:00:00Z"))
            .unwrap();
        assert_eq!(last, ts("2026-12-01T07:00:00Z"));
        // Saturday: back to Friday.
        let last = e
            .last_at_or_before(&madrid(), ts("2026-12-05T12:00:00Z"))
            .unwrap();
        assert_eq!(last, ts("2026-12-04T07:00:00Z"));
        // Friday evening: next is Monday 08:00 CET.
        let next = e
            .first_after(&madrid(), ts("2026-12-04T18:00:00Z"))
            .unwrap();
        assert_eq!(next, ts("2026-12-07T07:00:00Z"));
        // Summer time: 08:00 CEST is 06:00 UTC.
        let next = e
            .first_after(&madrid(), ts("2026-07-01T00:00:00Z"))
            .unwrap();
        assert_eq!(next, ts("2026-07-01T06:00:00Z"));
    }

    #[test]
    fn spring_forward_skips_and_fall_back_fires_once() {
        // Madrid 2026-03-29: 02:00 CET jumps to 03:00 CEST; 02:30 does not exist.
        let e = Expr::parse("cron(30 2 * * ? *)").unwrap();
        let next = e
            .first_after(&madrid(), ts("2026-03-28T12:00:00Z"))
            .unwrap();
        assert_eq!(next, ts("2026-03-30T00:30:00Z"), "the 29th is skipped");
        // 2026-10-25: 02:30 happens at 00:30 UTC (CEST) and 01:30 UTC (CET): first only.
        let next = e
            .first_after(&madrid(), ts("2026-10-24T12:00:00Z"))
            .unwrap();
        assert_eq!(next, ts("2026-10-25T00:30:00Z"));
        let after = e.first_after(&madrid(), next).unwrap();
        assert_eq!(after, ts("2026-10-26T01:30:00Z"), "not again at 01:30 UTC");
    }

    #[test]
    fn fields_lists_steps_and_names() {
        let e = Expr::parse("cron(0/15 9-17/4 ? JAN,jul 2,6 2026-2027)").unwrap();
        let utc = TimeZone::UTC;
        // 2026-07-06 is a Monday (2): first fire 09:00.
        assert_eq!(
            e.first_after(&utc, ts("2026-07-05T23:00:00Z")),
            Some(ts("2026-07-06T09:00:00Z"))
        );
        assert_eq!(
            e.first_after(&utc, ts("2026-07-06T09:00:00Z")),
            Some(ts("2026-07-06T09:15:00Z"))
        );
        // Hours 9, 13, 17 only.
        assert_eq!(
            e.first_after(&utc, ts("2026-07-06T09:45:00Z")),
            Some(ts("2026-07-06T13:00:00Z"))
        );
        // Outside the years: none.
        assert_eq!(e.first_after(&utc, ts("2028-01-01T00:00:00Z")), None);
    }

    #[test]
    fn at_is_one_local_time() {
        let e = Expr::parse("at(2026-12-24T08:00:00)").unwrap();
        assert_eq!(
            e.first_after(&madrid(), ts("2026-12-01T00:00:00Z")),
            Some(ts("2026-12-24T07:00:00Z"))
        );
        assert_eq!(e.first_after(&madrid(), ts("2026-12-24T07:00:00Z")), None);
        assert_eq!(
            e.last_at_or_before(&madrid(), ts("2026-12-25T00:00:00Z")),
            Some(ts("2026-12-24T07:00:00Z"))
        );
    }

    #[test]
    fn bad_expressions_say_why() {
        for (text, says) in [
            ("rate(5 minutes)", "no time of day"),
            ("cron(0 8 * * MON-FRI *)", "must be '?'"),
            ("cron(0 8 ? * MON-FRI)", "6 fields"),
            ("cron(0 24 ? * MON-FRI *)", "outside 0-23"),
            ("cron(0 8 L * ? *)", "not supported"),
            ("cron(0 8 ? * 6#3 *)", "not supported"),
            ("cron(0 8 ? * FRI-MON *)", "backwards"),
            ("cron(0/0 8 ? * * *)", "positive"),
            ("at(2026-13-01T00:00:00)", "yyyy-mm-dd"),
            ("every day at 8", "expected cron"),
        ] {
            let e = Expr::parse(text).unwrap_err();
            assert!(e.contains(says), "{text}: {e}");
        }
    }
}
