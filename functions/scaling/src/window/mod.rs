//! Scheduled capacity: operator-declared windows, each with a floor and/or a ceiling
//! on the desired count, e.g. "Mon–Fri 08:00–18:00 Europe/Madrid: min 4, max 12".
//!
//! A window is two schedule expressions (its start and its end, see [`expr`]) read in
//! one IANA time zone. It is in force at `t` when its latest start at or before `t`
//! is later than its latest end: `[start, end)`, the same edges EventBridge Scheduler
//! fires (the template creates one schedule per edge, which invokes scale-up at a
//! start and scale-down at an end). Outside every window the plain
//! `MIN_TASKS`/`MAX_TASKS` apply.
//!
//! Everything here is pure: the time is an argument. The functions read the clock
//! once and pass the [`Bounds`] in force to the policy as its `min`/`max`.
//!
//! Refused when read (`SCHEDULE_WINDOWS`, see [`Windows::parse`]): a bad expression or
//! time zone, a floor above the ceiling in force (the window's own, or `MAX_TASKS`), a
//! ceiling below the floor in force, a duplicate name, and two windows in force at the
//! same time within the next year.

pub mod expr;

use expr::Expr;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use serde::Deserialize;
use serde_json::Value;

/// One window.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    /// Operator's name for it: in reports, emails and idempotency keys.
    pub name: String,
    pub start: Expr,
    pub end: Expr,
    /// The expressions as written, for reports.
    pub start_text: String,
    pub end_text: String,
    pub tz: TimeZone,
    pub tz_name: String,
    /// Desired never goes below this while the window is in force.
    pub floor: Option<i32>,
    /// Desired never goes above this while the window is in force.
    pub ceiling: Option<i32>,
}

impl Window {
    /// Whether the window is in force at `t`.
    pub fn in_force(&self, t: Timestamp) -> bool {
        match self.start.last_at_or_before(&self.tz, t) {
            None => false,
            Some(s) => self
                .end
                .last_at_or_before(&self.tz, t)
                .is_none_or(|e| s > e),
        }
    }

    /// `min 4, max 12 (business-hours: cron(...) .. cron(...) Europe/Madrid)`.
    pub fn describe(&self) -> String {
        format!(
            "{}: {} .. {} {}",
            self.name, self.start_text, self.end_text, self.tz_name
        )
    }
}

/// The floor and ceiling in force at one time, and where they come from. Every
/// scaling report carries it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Deserialize)]
pub struct Bounds {
    pub min: i32,
    pub max: i32,
    /// The window in force; None outside every window (plain MIN_TASKS/MAX_TASKS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<String>,
}

impl Bounds {
    /// The plain limits, outside every window.
    pub fn plain(min: i32, max: i32) -> Self {
        Bounds {
            min,
            max,
            window: None,
        }
    }

    /// For reports and emails: `min 4, max 12 (window business-hours)`.
    pub fn describe(&self) -> String {
        match &self.window {
            Some(w) => format!("min {}, max {} (window {w})", self.min, self.max),
            None => format!("min {}, max {} (no window in force)", self.min, self.max),
        }
    }
}

/// Every declared window, validated against each other and the plain limits.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Windows {
    pub windows: Vec<Window>,
    plain_min: i32,
    plain_max: i32,
}

/// One entry of `SCHEDULE_WINDOWS` as written. `min`/`max` are numbers, numeric
/// strings, or empty/null for none: the template fills them from string parameters.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    name: String,
    #[serde(default)]
    start: String,
    #[serde(default)]
    end: String,
    #[serde(default = "utc")]
    timezone: String,
    #[serde(default)]
    min: Value,
    #[serde(default)]
    max: Value,
}

fn utc() -> String {
    "UTC".into()
}

/// How many edges one expression may have in a year: a window that opens more often
/// than about 13 times a day is not a window (and would make the overlap check slow).
const MAX_EDGES_PER_YEAR: usize = 5000;

impl Windows {
    /// No windows: the plain limits always.
    pub fn none(plain_min: i32, plain_max: i32) -> Self {
        Windows {
            windows: Vec::new(),
            plain_min,
            plain_max,
        }
    }

    /// Parses `SCHEDULE_WINDOWS`: a JSON array of
    /// `{"name", "start", "end", "timezone", "min", "max"}`. An entry whose start and end
    /// are both empty is an unused template slot and is skipped. `now` starts the
    /// one-year horizon of the overlap check.
    pub fn parse(
        text: &str,
        plain_min: i32,
        plain_max: i32,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Self, String> {
        let now = Timestamp::from_second(now.timestamp()).map_err(|e| e.to_string())?;
        let entries: Vec<Entry> = serde_json::from_str(text).map_err(|e| {
            format!("expected a JSON array of {{name, start, end, timezone, min, max}} ({e})")
        })?;
        let mut windows: Vec<Window> = Vec::new();
        for e in entries {
            if e.start.trim().is_empty() && e.end.trim().is_empty() {
                continue;
            }
            let w = window(e, plain_min, plain_max)?;
            if windows.iter().any(|o| o.name == w.name) {
                return Err(format!("two windows are named {:?}", w.name));
            }
            windows.push(w);
        }
        let all = Windows {
            windows,
            plain_min,
            plain_max,
        };
        all.check_overlaps(now, 366)?;
        Ok(all)
    }

    /// The floor and ceiling in force at `t`.
    pub fn bounds_at(&self, t: Timestamp) -> Bounds {
        match self.windows.iter().find(|w| w.in_force(t)) {
            None => Bounds::plain(self.plain_min, self.plain_max),
            Some(w) => Bounds {
                min: w.floor.unwrap_or(self.plain_min),
                max: w.ceiling.unwrap_or(self.plain_max),
                window: Some(w.name.clone()),
            },
        }
    }

    /// [`Windows::bounds_at`] for a chrono time (what the functions carry).
    pub fn bounds_at_utc(&self, t: chrono::DateTime<chrono::Utc>) -> Bounds {
        let t = Timestamp::from_second(t.timestamp()).unwrap_or(Timestamp::UNIX_EPOCH);
        self.bounds_at(t)
    }

    /// The window named `name`.
    pub fn get(&self, name: &str) -> Option<&Window> {
        self.windows.iter().find(|w| w.name == name)
    }

    /// Refuses two windows in force at the same instant within `days` from `from`.
    pub fn check_overlaps(&self, from: Timestamp, days: i64) -> Result<(), String> {
        let until = from
            .checked_add(SignedDuration::from_hours(24 * days))
            .map_err(|e| e.to_string())?;
        let spans: Vec<Vec<(Timestamp, Timestamp)>> = self
            .windows
            .iter()
            .map(|w| spans(w, from, until))
            .collect::<Result<_, _>>()?;
        for i in 0..spans.len() {
            for j in i + 1..spans.len() {
                for a in &spans[i] {
                    if let Some(b) = spans[j].iter().find(|b| a.0 < b.1 && b.0 < a.1) {
                        let at = a.0.max(b.0);
                        return Err(format!(
                            "windows {:?} and {:?} overlap: both are in force at {} ({})",
                            self.windows[i].name,
                            self.windows[j].name,
                            at.to_zoned_datetime(self.windows[i].tz.clone()),
                            self.windows[i].tz_name,
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}

fn number(v: &Value, what: &str, name: &str) -> Result<Option<i32>, String> {
    let bad = || format!("window {name:?}: {what} {v} is not a whole number of tasks (0 or more)");
    let n = match v {
        Value::Null => return Ok(None),
        Value::String(s) if s.trim().is_empty() => return Ok(None),
        Value::String(s) => s.trim().parse::<i64>().map_err(|_| bad())?,
        Value::Number(n) => n.as_i64().ok_or_else(bad)?,
        _ => return Err(bad()),
    };
    i32::try_from(n)
        .ok()
        .filter(|n| *n >= 0)
        .map(Some)
        .ok_or_else(bad)
}

fn window(e: Entry, plain_min: i32, plain_max: i32) -> Result<Window, String> {
    let name = e.name.trim().to_string();
    let ok_name = !name.is_empty()
        && name.len() <= 32
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !ok_name {
        return Err(format!(
            "window name {name:?}: 1 to 32 letters, digits, '-' or '_'"
        ));
    }
    let expr = |text: &str, which: &str| {
        Expr::parse(text).map_err(|why| format!("window {name:?} {which}: {why}"))
    };
    let start = expr(&e.start, "start")?;
    let end = expr(&e.end, "end")?;
    let tz_name = e.timezone.trim().to_string();
    let tz = TimeZone::get(&tz_name)
        .map_err(|err| format!("window {name:?}: unknown time zone {tz_name:?} ({err})"))?;
    let floor = number(&e.min, "min", &name)?;
    let ceiling = number(&e.max, "max", &name)?;
    if floor.is_none() && ceiling.is_none() {
        return Err(format!("window {name:?} sets neither min nor max"));
    }
    let (min, max) = (floor.unwrap_or(plain_min), ceiling.unwrap_or(plain_max));
    if min > max {
        return Err(format!(
            "window {name:?}: its floor {min} is above the ceiling in force {max} \
             (the window's max, or MAX_TASKS)"
        ));
    }
    if max < 1 {
        return Err(format!("window {name:?}: max must be at least 1"));
    }
    Ok(Window {
        name,
        start_text: e.start.trim().to_string(),
        end_text: e.end.trim().to_string(),
        start,
        end,
        tz,
        tz_name,
        floor,
        ceiling,
    })
}

/// The intervals `[start, end)` in which `w` is in force between `from` and `until`.
fn spans(
    w: &Window,
    from: Timestamp,
    until: Timestamp,
) -> Result<Vec<(Timestamp, Timestamp)>, String> {
    let fires = |e: &Expr| -> Result<Vec<Timestamp>, String> {
        let mut out = Vec::new();
        let mut t = from;
        while let Some(next) = e.first_after(&w.tz, t).filter(|n| *n < until) {
            out.push(next);
            if out.len() > MAX_EDGES_PER_YEAR {
                return Err(format!(
                    "window {:?}: an edge fires more than {MAX_EDGES_PER_YEAR} times a year",
                    w.name
                ));
            }
            t = next;
        }
        Ok(out)
    };
    // (time, is_end): at one instant a start sorts before an end, so a window whose
    // start and end coincide is not in force then, as `in_force` says.
    let mut edges: Vec<(Timestamp, bool)> = fires(&w.start)?
        .into_iter()
        .map(|t| (t, false))
        .chain(fires(&w.end)?.into_iter().map(|t| (t, true)))
        .collect();
    edges.sort();
    let mut out = Vec::new();
    let mut open = w.in_force(from).then_some(from);
    for (t, is_end) in edges {
        match (open, is_end) {
            (None, false) => open = Some(t),
            (Some(s), true) => {
                if s < t {
                    out.push((s, t));
                }
                open = None;
            }
            _ => {}
        }
    }
    if let Some(s) = open {
        out.push((s, until));
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
