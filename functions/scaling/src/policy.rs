//! The scaling policy: pure functions from (service state, limits, history,
//! alarm) to a [`Decision`]. No I/O, no clock: `now` is an argument, so every
//! rule is tested with plain tests and proptest.
//!
//! Both directions live here so that scale-up and scale-down share one notion
//! of limits and cooldowns:
//! - scale-out: at most up to `max` (and the DB cap), a fixed or proportional
//!   step sized from the *running* tasks (pending tasks already ordered count
//!   towards it), its own cooldown since the last scale-out, and never twice on
//!   the same measurement (a datapoint measured before the last scale-out is stale);
//! - the floor: desired below `min` is raised to `min` ([`decide_floor`]);
//! - scale-in: one task at a time, never below `min`, not during a deployment,
//!   an active episode, within the scale-in cooldown of any scaling, nor before
//!   the low alarm's whole evaluation window has passed since the last scale-out;
//! - the scale-up re-evaluation (a schedule re-reading the scale-out alarms):
//!   which alarm drives the step ([`pick_largest`]) and whether to wait for the
//!   cooldown's end inside the invocation ([`reevaluation_wait`]).
//!
//! docs/scale-up.md explains the rules and why they are these.

use crate::config::{Config, ScaleOutMode};
use crate::report::DecisionSummary;
use crate::trigger::AlarmState;
use chrono::{DateTime, Utc};
use std::time::Duration;

/// The service as the decision sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ServiceState {
    pub desired: i32,
    pub running: i32,
    pub pending: i32,
    /// A rolling deployment is replacing tasks.
    pub deployment_in_progress: bool,
}

/// Operator limits (from [`Config`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub min: i32,
    pub max: i32,
    /// Fixed step, and proportional mode's fallback.
    pub step: i32,
    pub mode: ScaleOutMode,
    /// Cap on one proportional scale-out.
    pub max_step: i32,
    pub out_cooldown: Duration,
    pub in_cooldown: Duration,
    /// The scale-in alarm's evaluation window (period × evaluation periods): no
    /// scale-in until this long after the last scale-out, so the low alarm's
    /// whole window lies after it. Zero: only the cooldown applies.
    pub in_window: Duration,
}

impl Limits {
    /// The limits a config sets.
    pub fn from_config(c: &Config) -> Self {
        Limits {
            min: c.min_tasks,
            max: c.max_tasks,
            step: c.scale_out_step,
            mode: c.scale_out_mode,
            max_step: c.scale_out_max_step,
            out_cooldown: c.scale_out_cooldown,
            in_cooldown: c.scale_in_cooldown,
            in_window: c.scale_in_window,
        }
    }

    /// The limits for one scale-out alarm: proportional sizing applies to the
    /// alarms `SCALE_OUT_PROPORTIONAL_ALARMS` names (every alarm when it is
    /// empty); the others take the fixed step.
    pub fn for_alarm(c: &Config, alarm_name: &str) -> Self {
        let mut l = Self::from_config(c);
        if l.mode == ScaleOutMode::Proportional
            && !c.scale_out_proportional_alarms.is_empty()
            && !c
                .scale_out_proportional_alarms
                .iter()
                .any(|a| a == alarm_name)
        {
            l.mode = ScaleOutMode::Fixed;
        }
        l
    }

    /// The same limits with the floor and ceiling in force (a scheduled window's, or
    /// the plain ones): the window is an input to the policy, never a clock read.
    pub fn within(self, b: &crate::window::Bounds) -> Self {
        Limits {
            min: b.min,
            max: b.max,
            ..self
        }
    }
}

/// What happened before, from the episode state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct History {
    pub paused: bool,
    pub last_scale_out: Option<DateTime<Utc>>,
    pub last_scale_in: Option<DateTime<Utc>>,
    /// The last scale-in that a fault rolled back (scale-in back-off).
    pub last_scale_in_rollback: Option<DateTime<Utc>>,
    /// A scale-in episode is under way.
    pub scale_in_active: bool,
}

impl History {
    /// The history recorded in the service's tags.
    pub fn from_state(s: &crate::episode::EpisodeState) -> Self {
        History {
            paused: s.paused,
            last_scale_out: s.last_scale_out,
            last_scale_in: s.last_scale_in,
            last_scale_in_rollback: s.last_scale_in_rollback,
            scale_in_active: s.scale_in_active(),
        }
    }
}

/// The alarm as the decision sees it.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct AlarmInput {
    pub state: Option<AlarmState>,
    /// Newest datapoint (proportional step's value).
    pub value: Option<f64>,
    /// The alarm threshold (proportional step's target).
    pub threshold: Option<f64>,
    /// When the evidence was measured: the start of `value`'s period, else when
    /// the alarm entered ALARM. Evidence measured at or before the last scale-out
    /// is stale: that scale-out already answered it. None: not checked.
    pub measured_at: Option<DateTime<Utc>>,
}

impl AlarmInput {
    /// The decision-relevant part of an alarm change: the evidence is as old as
    /// the alarm's state change (the action payload's datapoints carry no time).
    pub fn from_alarm(a: &crate::trigger::AlarmChange) -> Self {
        AlarmInput {
            state: Some(a.state),
            value: a.latest_value(),
            threshold: a.threshold,
            measured_at: Some(a.timestamp),
        }
    }
}

/// A ceiling below `max` from outside the policy (the DB connection cap).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cap {
    /// Most tasks allowed.
    pub tasks: i32,
    /// Why, for the report: "database connections: 180/200 used, 10 per task".
    pub why: String,
}

/// Why nothing is done.
#[derive(Debug, Clone, PartialEq)]
pub enum Skip {
    Paused,
    /// The alarm is not in ALARM (OK or INSUFFICIENT_DATA).
    NotAlarm(AlarmState),
    Cooldown {
        remaining: Duration,
        since: DateTime<Utc>,
    },
    AtMax {
        max: i32,
    },
    /// The cap (DB connections) stops a scale-out.
    AtCap(Cap),
    AtMin {
        min: i32,
    },
    /// A scale-in rolled back on a fault within the scale-in cooldown.
    BackingOff {
        remaining: Duration,
        since: DateTime<Utc>,
    },
    DeploymentInProgress,
    ScaleInActive,
    /// A window started and desired already meets its floor.
    AtFloor {
        min: i32,
    },
    /// The evidence (datapoint or alarm change) is not newer than the last
    /// scale-out, which already answered it.
    Stale {
        measured_at: DateTime<Utc>,
        last_scale_out: DateTime<Utc>,
    },
    /// The tasks already ordered (running + pending) cover what the running
    /// tasks' load needs: adding more would count the pending ones twice.
    Covered {
        desired: i32,
        running: i32,
        pending: i32,
        /// Tasks the load needs, from the running ones.
        needed: i32,
    },
    /// A scale-out happened less than the low alarm's evaluation window ago:
    /// the window still holds time before it.
    LowWindow {
        remaining: Duration,
        since: DateTime<Utc>,
    },
}

impl Skip {
    /// Short machine code: `paused`, `not_alarm`, `cooldown`, `at_max`, `at_cap`...
    pub fn code(&self) -> &'static str {
        match self {
            Skip::Paused => "paused",
            Skip::NotAlarm(_) => "not_alarm",
            Skip::Cooldown { .. } => "cooldown",
            Skip::AtMax { .. } => "at_max",
            Skip::AtCap(_) => "at_cap",
            Skip::AtMin { .. } => "at_min",
            Skip::BackingOff { .. } => "backing_off",
            Skip::DeploymentInProgress => "deployment_in_progress",
            Skip::ScaleInActive => "scale_in_active",
            Skip::Stale { .. } => "stale",
            Skip::Covered { .. } => "covered",
            Skip::LowWindow { .. } => "low_window",
            Skip::AtFloor { .. } => "at_floor",
        }
    }

    /// A sentence for the report and the operators' email.
    pub fn reason(&self) -> String {
        match self {
            Skip::Paused => "paused: the service has the tag autoscaler:paused=true".into(),
            Skip::NotAlarm(s) => format!("alarm state is {}, only ALARM acts", s.as_str()),
            Skip::Cooldown { remaining, since } => format!(
                "cooldown: last scaling at {}, {}s left",
                since.to_rfc3339(),
                remaining.as_secs()
            ),
            Skip::AtMax { max } => format!("already at the maximum of {max} tasks"),
            Skip::AtCap(cap) => format!("capped at {} tasks by {}", cap.tasks, cap.why),
            Skip::AtMin { min } => format!("already at the minimum of {min} tasks"),
            Skip::BackingOff { remaining, since } => format!(
                "backing off: a scale-in was rolled back at {}, next attempt in {}s",
                since.to_rfc3339(),
                remaining.as_secs()
            ),
            Skip::DeploymentInProgress => "a deployment is in progress".into(),
            Skip::ScaleInActive => "a scale-in episode is already under way".into(),
            Skip::Stale {
                measured_at,
                last_scale_out,
            } => format!(
                "stale: the evidence was measured at {}, not after the last scale-out at {}, \
                 which already answered it",
                measured_at.to_rfc3339(),
                last_scale_out.to_rfc3339()
            ),
            Skip::Covered {
                desired,
                running,
                pending,
                needed,
            } => format!(
                "covered: the load of the {running} running tasks needs {needed}, and {desired} \
                 are ordered ({pending} still starting)"
            ),
            Skip::LowWindow { remaining, since } => format!(
                "the last scale-out at {} is inside the low alarm's evaluation window, {}s left",
                since.to_rfc3339(),
                remaining.as_secs()
            ),
            Skip::AtFloor { min } => {
                format!("already at or above the floor of {min} tasks in force")
            }
        }
    }
}

/// The policy's answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Set the desired count to `target`.
    ScaleTo {
        target: i32,
        /// How the step was sized (and any cap that shortened it).
        reason: String,
        /// Set when a cap shortened the step (the report says so).
        capped_by: Option<Cap>,
    },
    Skip(Skip),
}

impl Decision {
    /// The decision as the report carries it.
    pub fn summary(&self) -> DecisionSummary {
        match self {
            Decision::ScaleTo { target, reason, .. } => DecisionSummary {
                action: "scale_to".into(),
                target: Some(*target),
                reason: reason.clone(),
            },
            Decision::Skip(s) => DecisionSummary {
                action: "skip".into(),
                target: None,
                reason: s.reason(),
            },
        }
    }
}

fn remaining(
    since: Option<DateTime<Utc>>,
    cooldown: Duration,
    now: DateTime<Utc>,
) -> Option<(Duration, DateTime<Utc>)> {
    let since = since?;
    let elapsed = (now - since).to_std().unwrap_or(Duration::ZERO);
    (elapsed < cooldown).then(|| (cooldown - elapsed, since))
}

/// Scale-out: how many tasks to add for an alarm in ALARM.
pub fn decide_scale_out(
    s: &ServiceState,
    l: &Limits,
    h: &History,
    a: &AlarmInput,
    cap: Option<&Cap>,
    now: DateTime<Utc>,
) -> Decision {
    if h.paused {
        return Decision::Skip(Skip::Paused);
    }
    match a.state {
        Some(AlarmState::Alarm) | None => {}
        Some(other) => return Decision::Skip(Skip::NotAlarm(other)),
    }
    if let Some((remaining, since)) = remaining(h.last_scale_out, l.out_cooldown, now) {
        return Decision::Skip(Skip::Cooldown { remaining, since });
    }
    if let (Some(measured_at), Some(last)) = (a.measured_at, h.last_scale_out) {
        // Below min the floor applies whatever the evidence.
        if measured_at <= last && s.desired >= l.min {
            return Decision::Skip(Skip::Stale {
                measured_at,
                last_scale_out: last,
            });
        }
    }
    // The cap never pushes the ceiling below min: "within bounds" comes first.
    let cap = cap.filter(|c| c.tasks < l.max);
    let ceiling = cap.map_or(l.max, |c| c.tasks.max(l.min));
    if s.desired >= ceiling {
        return Decision::Skip(match cap {
            Some(c) if s.desired < l.max => Skip::AtCap(c.clone()),
            _ => Skip::AtMax { max: l.max },
        });
    }
    let (needed, how) = needed_tasks(s, l, a);
    let wanted = needed.max(l.min);
    if wanted <= s.desired {
        return Decision::Skip(Skip::Covered {
            desired: s.desired,
            running: s.running,
            pending: s.pending,
            needed,
        });
    }
    let target = wanted.min(ceiling);
    let mut reason = format!("{how}: {} -> {target}", s.desired);
    let capped_by = if target < wanted {
        match cap {
            Some(c) if c.tasks < l.max && target == ceiling => {
                reason.push_str(&format!(" (capped by {})", c.why));
                Some(c.clone())
            }
            _ => {
                reason.push_str(&format!(" (capped at max {})", l.max));
                None
            }
        }
    } else {
        None
    };
    Decision::ScaleTo {
        target,
        reason,
        capped_by,
    }
}

/// The tasks the load needs, sized from the running tasks, and how.
///
/// The alarm's metric is measured on the running tasks only: tasks still
/// starting (pending) carry no load yet, and they are already in `desired`. So
/// the need is sized from `running` and compared with `desired` by the caller:
/// pending tasks count towards the need, never as missing capacity.
/// - fixed: `min(running, desired) + step`;
/// - proportional (target tracking): `ceil(running × value / threshold)`, at
///   most `max_step` above desired; the fixed step when the alarm gives no
///   datapoint or threshold. With every task running this is
///   `desired × value / threshold`.
pub fn needed_tasks(s: &ServiceState, l: &Limits, a: &AlarmInput) -> (i32, String) {
    let base = s.running.clamp(0, s.desired.max(0));
    let fixed = |why: &str| {
        let needed = base.saturating_add(l.step);
        (
            needed,
            format!("fixed step: {base} running + {} = {needed}{why}", l.step),
        )
    };
    if l.mode != ScaleOutMode::Proportional {
        return fixed("");
    }
    match (a.value, a.threshold) {
        (Some(v), Some(t)) if t > 0.0 && v.is_finite() && v >= 0.0 => {
            let raw = (f64::from(base) * v / t).ceil();
            let most = f64::from(s.desired.max(0).saturating_add(l.max_step));
            let needed = raw.min(most) as i32;
            let capped = if raw > most {
                format!(", at most +{} per step", l.max_step)
            } else {
                String::new()
            };
            (
                needed,
                format!("proportional: {base} running × {v} / threshold {t} = {needed}{capped}"),
            )
        }
        _ => fixed(" (proportional needs a datapoint and a threshold)"),
    }
}

/// The floor: desired below `min` (a stack update, a person, a deployment that
/// set it) is raised to `min` by the scale-up re-evaluation, whatever the
/// alarms say. None when desired is at or above `min`, or when paused.
pub fn decide_floor(s: &ServiceState, l: &Limits, h: &History) -> Option<Decision> {
    if h.paused || s.desired >= l.min {
        return None;
    }
    Some(Decision::ScaleTo {
        target: l.min,
        reason: format!(
            "below the minimum: desired {} < MIN_TASKS {}: raised to {}",
            s.desired, l.min, l.min
        ),
        capped_by: None,
    })
}

/// Among the decisions for several scale-out alarms in ALARM, the one that asks
/// for the most tasks (its index); when none scales, the first skip. None for
/// an empty list. One step per re-evaluation, whatever the number of alarms.
pub fn pick_largest(decisions: &[Decision]) -> Option<usize> {
    let best = decisions
        .iter()
        .enumerate()
        .filter_map(|(i, d)| match d {
            Decision::ScaleTo { target, .. } => Some((i, *target)),
            Decision::Skip(_) => None,
        })
        // The first of equal targets: the configured alarm order decides.
        .fold(None::<(usize, i32)>, |acc, (i, t)| match acc {
            Some((_, best)) if best >= t => acc,
            _ => Some((i, t)),
        });
    best.map(|(i, _)| i)
        .or_else(|| (!decisions.is_empty()).then_some(0))
}

/// How long the re-evaluation waits, inside its invocation, for the scale-out
/// cooldown to end when an alarm is still in ALARM: the cooldown's remainder if
/// it ends within `budget` (the schedule's period), else None (the next tick
/// comes first). So steps under a sustained breach are one cooldown apart, not
/// a cooldown plus up to one schedule period.
pub fn reevaluation_wait(d: &Decision, budget: Duration) -> Option<Duration> {
    match d {
        Decision::Skip(Skip::Cooldown { remaining, .. }) if *remaining <= budget => {
            Some(*remaining)
        }
        _ => None,
    }
}

/// Whether a scale-in can never push the same metric back over the scale-out
/// threshold: a load just under `low` per task on `n` tasks is `low × n / (n − 1)`
/// per task on `n − 1`, largest for the smallest `n` a scale-in starts from
/// (`min + 1`, at least 2). If that stays at or under `high`, a scale-in is not
/// followed by a scale-out of the same load (no flapping between the two alarms).
pub fn scale_in_keeps_below(low: f64, high: f64, min_tasks: i32) -> bool {
    let n = f64::from(min_tasks.max(1) + 1);
    low * n / (n - 1.0) <= high
}

/// Scale-in: remove one task, when nothing forbids it. `alarm` is None for the
/// reconcile schedule (which only scales in when an alarm says so, so callers
/// pass the low alarm's state).
pub fn decide_scale_in(
    s: &ServiceState,
    l: &Limits,
    h: &History,
    a: &AlarmInput,
    now: DateTime<Utc>,
) -> Decision {
    if h.paused {
        return Decision::Skip(Skip::Paused);
    }
    match a.state {
        Some(AlarmState::Alarm) | None => {}
        Some(other) => return Decision::Skip(Skip::NotAlarm(other)),
    }
    if h.scale_in_active {
        return Decision::Skip(Skip::ScaleInActive);
    }
    if s.deployment_in_progress {
        return Decision::Skip(Skip::DeploymentInProgress);
    }
    if s.desired <= l.min {
        return Decision::Skip(Skip::AtMin { min: l.min });
    }
    // Any recent scaling blocks a scale-in: removing a task just added is flapping.
    let last = h.last_scale_out.max(h.last_scale_in);
    if let Some((remaining, since)) = remaining(last, l.in_cooldown, now) {
        return Decision::Skip(Skip::Cooldown { remaining, since });
    }
    // The low alarm must have been below its threshold for its whole window after
    // the last scale-out: evidence from before it describes a smaller service.
    if let Some((remaining, since)) = remaining(h.last_scale_out, l.in_window, now) {
        return Decision::Skip(Skip::LowWindow { remaining, since });
    }
    // A fault that rolled a scale-in back is likely still there: retrying at
    // every schedule tick would deregister and drain a task each time for nothing.
    if let Some((remaining, since)) = remaining(h.last_scale_in_rollback, l.in_cooldown, now) {
        return Decision::Skip(Skip::BackingOff { remaining, since });
    }
    let target = s.desired - 1;
    Decision::ScaleTo {
        target,
        reason: format!("one task at a time: {} -> {target}", s.desired),
        capped_by: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn limits() -> Limits {
        Limits {
            min: 1,
            max: 6,
            step: 1,
            mode: ScaleOutMode::Fixed,
            max_step: 3,
            out_cooldown: Duration::from_secs(60),
            in_cooldown: Duration::from_secs(300),
            in_window: Duration::ZERO,
        }
    }

    fn svc(desired: i32) -> ServiceState {
        ServiceState {
            desired,
            running: desired,
            ..Default::default()
        }
    }

    fn alarm() -> AlarmInput {
        AlarmInput {
            state: Some(AlarmState::Alarm),
            value: Some(90.0),
            threshold: Some(60.0),
            measured_at: None,
        }
    }

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap()
    }

    #[test]
    fn fixed_step_adds_one() {
        let d = decide_scale_out(
            &svc(1),
            &limits(),
            &History::default(),
            &alarm(),
            None,
            t(0),
        );
        assert!(matches!(d, Decision::ScaleTo { target: 2, .. }), "{d:?}");
    }

    #[test]
    fn ok_and_insufficient_data_skip() {
        for s in [AlarmState::Ok, AlarmState::InsufficientData] {
            let a = AlarmInput {
                state: Some(s),
                ..alarm()
            };
            let d = decide_scale_out(&svc(1), &limits(), &History::default(), &a, None, t(0));
            assert_eq!(d, Decision::Skip(Skip::NotAlarm(s)));
        }
    }

    #[test]
    fn scale_out_cooldown_blocks_then_expires() {
        let h = History {
            last_scale_out: Some(t(0)),
            ..Default::default()
        };
        let d = decide_scale_out(&svc(2), &limits(), &h, &alarm(), None, t(59));
        assert_eq!(d.summary().action, "skip");
        assert!(d.summary().reason.contains("1s left"), "{d:?}");
        let d = decide_scale_out(&svc(2), &limits(), &h, &alarm(), None, t(60));
        assert!(matches!(d, Decision::ScaleTo { target: 3, .. }));
    }

    #[test]
    fn scale_in_does_not_block_scale_out() {
        let h = History {
            last_scale_in: Some(t(0)),
            ..Default::default()
        };
        let d = decide_scale_out(&svc(2), &limits(), &h, &alarm(), None, t(1));
        assert!(matches!(d, Decision::ScaleTo { .. }));
    }

    #[test]
    fn max_respected_and_step_capped() {
        let l = Limits {
            step: 4,
            ..limits()
        };
        let d = decide_scale_out(&svc(4), &l, &History::default(), &alarm(), None, t(0));
        let Decision::ScaleTo { target, reason, .. } = d else {
            panic!()
        };
        assert_eq!(target, 6);
        assert!(reason.contains("capped at max 6"), "{reason}");
        let d = decide_scale_out(&svc(6), &l, &History::default(), &alarm(), None, t(0));
        assert_eq!(d, Decision::Skip(Skip::AtMax { max: 6 }));
    }

    #[test]
    fn proportional_step_is_hpa_like_and_capped() {
        let l = Limits {
            mode: ScaleOutMode::Proportional,
            max: 20,
            ..limits()
        };
        // ceil(4 × 90 / 60) = 6: +2.
        let d = decide_scale_out(&svc(4), &l, &History::default(), &alarm(), None, t(0));
        assert!(matches!(d, Decision::ScaleTo { target: 6, .. }), "{d:?}");
        // ceil(4 × 600 / 60) = 40: capped at +3.
        let a = AlarmInput {
            value: Some(600.0),
            ..alarm()
        };
        let d = decide_scale_out(&svc(4), &l, &History::default(), &a, None, t(0));
        assert!(matches!(d, Decision::ScaleTo { target: 7, .. }), "{d:?}");
        // No datapoint: fixed step.
        let a = AlarmInput {
            value: None,
            ..alarm()
        };
        let d = decide_scale_out(&svc(4), &l, &History::default(), &a, None, t(0));
        assert!(matches!(d, Decision::ScaleTo { target: 5, .. }), "{d:?}");
    }

    #[test]
    fn db_cap_stops_and_says_so() {
        let cap = Cap {
            tasks: 3,
            why: "database connections".into(),
        };
        let d = decide_scale_out(
            &svc(3),
            &limits(),
            &History::default(),
            &alarm(),
            Some(&cap),
            t(0),
        );
        assert_eq!(d.summary().action, "skip");
        assert!(d.summary().reason.contains("database connections"), "{d:?}");
        let l = Limits {
            step: 3,
            ..limits()
        };
        let d = decide_scale_out(&svc(1), &l, &History::default(), &alarm(), Some(&cap), t(0));
        let Decision::ScaleTo {
            target, capped_by, ..
        } = d
        else {
            panic!()
        };
        assert_eq!((target, capped_by), (3, Some(cap)));
    }

    #[test]
    fn below_min_goes_to_min() {
        let l = Limits { min: 3, ..limits() };
        let d = decide_scale_out(&svc(0), &l, &History::default(), &alarm(), None, t(0));
        assert!(matches!(d, Decision::ScaleTo { target: 3, .. }), "{d:?}");
    }

    #[test]
    fn paused_skips_both() {
        let h = History {
            paused: true,
            ..Default::default()
        };
        assert_eq!(
            decide_scale_out(&svc(1), &limits(), &h, &alarm(), None, t(0)),
            Decision::Skip(Skip::Paused)
        );
        assert_eq!(
            decide_scale_in(&svc(3), &limits(), &h, &alarm(), t(0)),
            Decision::Skip(Skip::Paused)
        );
    }

    #[test]
    fn scale_in_rules() {
        let l = limits();
        let none = History::default();
        assert!(matches!(
            decide_scale_in(&svc(3), &l, &none, &alarm(), t(0)),
            Decision::ScaleTo { target: 2, .. }
        ));
        assert_eq!(
            decide_scale_in(&svc(1), &l, &none, &alarm(), t(0)),
            Decision::Skip(Skip::AtMin { min: 1 })
        );
        let dep = ServiceState {
            deployment_in_progress: true,
            ..svc(3)
        };
        assert_eq!(
            decide_scale_in(&dep, &l, &none, &alarm(), t(0)),
            Decision::Skip(Skip::DeploymentInProgress)
        );
        let active = History {
            scale_in_active: true,
            ..none
        };
        assert_eq!(
            decide_scale_in(&svc(3), &l, &active, &alarm(), t(0)),
            Decision::Skip(Skip::ScaleInActive)
        );
        // A scale-out 200 s ago blocks a scale-in (300 s cooldown), so does a scale-in.
        for h in [
            History {
                last_scale_out: Some(t(0)),
                ..none
            },
            History {
                last_scale_in: Some(t(0)),
                ..none
            },
        ] {
            let d = decide_scale_in(&svc(3), &l, &h, &alarm(), t(200));
            assert_eq!(d.summary().action, "skip", "{h:?}");
            assert!(matches!(
                decide_scale_in(&svc(3), &l, &h, &alarm(), t(300)),
                Decision::ScaleTo { .. }
            ));
        }
    }

    #[test]
    fn rolled_back_scale_in_backs_off_for_the_in_cooldown() {
        let h = History {
            last_scale_in_rollback: Some(t(0)),
            ..Default::default()
        };
        let d = decide_scale_in(&svc(3), &limits(), &h, &alarm(), t(120));
        let Decision::Skip(skip) = &d else {
            panic!("scaled in 120 s after a rollback: {d:?}")
        };
        assert_eq!(skip.code(), "backing_off");
        assert!(
            skip.reason().contains("next attempt in 180s"),
            "{}",
            skip.reason()
        );
        assert!(matches!(
            decide_scale_in(&svc(3), &limits(), &h, &alarm(), t(300)),
            Decision::ScaleTo { target: 2, .. }
        ));
        // Scale-out is not held back by a failed scale-in.
        let d = decide_scale_out(&svc(3), &limits(), &h, &alarm(), None, t(1));
        assert!(matches!(d, Decision::ScaleTo { .. }), "{d:?}");
    }

    fn counts(desired: i32, running: i32) -> ServiceState {
        ServiceState {
            desired,
            running,
            pending: desired - running,
            deployment_in_progress: false,
        }
    }

    fn proportional() -> Limits {
        Limits {
            mode: ScaleOutMode::Proportional,
            max: 20,
            max_step: 4,
            ..limits()
        }
    }

    #[test]
    fn pending_tasks_count_towards_the_step() {
        let none = History::default();
        // Fixed: 2 running + 1 = 3 is what a third task ordered (pending) covers.
        let d = decide_scale_out(&counts(3, 2), &limits(), &none, &alarm(), None, t(0));
        assert_eq!(d.summary().action, "skip", "{d:?}");
        let Decision::Skip(skip) = &d else { panic!() };
        assert_eq!(skip.code(), "covered");
        assert!(
            skip.reason().contains("1 still starting"),
            "{}",
            skip.reason()
        );
        // Proportional: 2 running at 90 against 60 need 3; 4 are ordered.
        let d = decide_scale_out(&counts(4, 2), &proportional(), &none, &alarm(), None, t(0));
        assert!(
            matches!(d, Decision::Skip(Skip::Covered { needed: 3, .. })),
            "{d:?}"
        );
        // 2 running at 150 need 5: one more than the 4 ordered.
        let a = AlarmInput {
            value: Some(150.0),
            ..alarm()
        };
        let d = decide_scale_out(&counts(4, 2), &proportional(), &none, &a, None, t(0));
        assert!(matches!(d, Decision::ScaleTo { target: 5, .. }), "{d:?}");
    }

    #[test]
    fn proportional_sizes_to_the_load_in_one_step() {
        // 3 tasks at 80 in flight against 50: the load needs ceil(4.8) = 5.
        let a = AlarmInput {
            value: Some(80.0),
            threshold: Some(50.0),
            ..alarm()
        };
        let d = decide_scale_out(
            &svc(3),
            &proportional(),
            &History::default(),
            &a,
            None,
            t(0),
        );
        let Decision::ScaleTo { target, reason, .. } = d else {
            panic!("{d:?}")
        };
        assert_eq!(target, 5);
        assert!(
            reason.contains("3 running × 80 / threshold 50 = 5"),
            "{reason}"
        );
    }

    #[test]
    fn stale_evidence_never_drives_a_second_step() {
        let l = Limits {
            out_cooldown: Duration::ZERO,
            ..proportional()
        };
        let h = History {
            last_scale_out: Some(t(100)),
            ..Default::default()
        };
        let at = |s| AlarmInput {
            value: Some(600.0),
            measured_at: Some(t(s)),
            ..alarm()
        };
        for old in [0, 99, 100] {
            let d = decide_scale_out(&svc(2), &l, &h, &at(old), None, t(200));
            assert!(
                matches!(d, Decision::Skip(Skip::Stale { .. })),
                "{old}: {d:?}"
            );
        }
        let d = decide_scale_out(&svc(2), &l, &h, &at(101), None, t(200));
        assert!(matches!(d, Decision::ScaleTo { target: 6, .. }), "{d:?}");
        // Below min the floor wins over staleness.
        let low = Limits { min: 3, ..l };
        let d = decide_scale_out(&svc(1), &low, &h, &at(0), None, t(200));
        assert!(matches!(d, Decision::ScaleTo { .. }), "{d:?}");
    }

    #[test]
    fn the_floor_raises_desired_to_min_unless_paused() {
        let l = Limits { min: 2, ..limits() };
        let none = History::default();
        let Some(Decision::ScaleTo { target, reason, .. }) = decide_floor(&svc(1), &l, &none)
        else {
            panic!("no floor decision")
        };
        assert_eq!(target, 2);
        assert!(reason.contains("MIN_TASKS 2"), "{reason}");
        assert!(matches!(
            decide_floor(&svc(0), &l, &none),
            Some(Decision::ScaleTo { target: 2, .. })
        ));
        assert_eq!(decide_floor(&svc(2), &l, &none), None);
        assert_eq!(decide_floor(&svc(5), &l, &none), None);
        let paused = History {
            paused: true,
            ..none
        };
        assert_eq!(decide_floor(&svc(1), &l, &paused), None);
    }

    #[test]
    fn the_largest_decision_drives_the_step() {
        let to = |target| Decision::ScaleTo {
            target,
            reason: String::new(),
            capped_by: None,
        };
        let skip = Decision::Skip(Skip::Paused);
        assert_eq!(pick_largest(&[]), None);
        assert_eq!(pick_largest(std::slice::from_ref(&skip)), Some(0));
        assert_eq!(pick_largest(&[skip.clone(), to(3), to(5), to(5)]), Some(2));
        assert_eq!(pick_largest(&[to(4), skip]), Some(0));
    }

    #[test]
    fn the_reevaluation_waits_only_for_a_cooldown_that_ends_within_its_period() {
        let cooldown = |s| {
            Decision::Skip(Skip::Cooldown {
                remaining: Duration::from_secs(s),
                since: t(0),
            })
        };
        let minute = Duration::from_secs(60);
        assert_eq!(
            reevaluation_wait(&cooldown(20), minute),
            Some(Duration::from_secs(20))
        );
        assert_eq!(reevaluation_wait(&cooldown(60), minute), Some(minute));
        assert_eq!(reevaluation_wait(&cooldown(61), minute), None);
        assert_eq!(
            reevaluation_wait(&Decision::Skip(Skip::Paused), minute),
            None
        );
    }

    #[test]
    fn scale_in_waits_for_the_low_window_after_a_scale_out() {
        let l = Limits {
            in_cooldown: Duration::from_secs(120),
            in_window: Duration::from_secs(300),
            ..limits()
        };
        let h = History {
            last_scale_out: Some(t(0)),
            ..Default::default()
        };
        let d = decide_scale_in(&svc(3), &l, &h, &alarm(), t(200));
        let Decision::Skip(skip) = &d else {
            panic!("{d:?}")
        };
        assert_eq!(skip.code(), "low_window");
        assert!(skip.reason().contains("100s left"), "{}", skip.reason());
        assert!(matches!(
            decide_scale_in(&svc(3), &l, &h, &alarm(), t(300)),
            Decision::ScaleTo { target: 2, .. }
        ));
        // A scale-in does not restart the window: only a scale-out does.
        let h = History {
            last_scale_in: Some(t(0)),
            ..Default::default()
        };
        assert!(matches!(
            decide_scale_in(&svc(3), &l, &h, &alarm(), t(120)),
            Decision::ScaleTo { .. }
        ));
    }

    #[test]
    fn thresholds_far_enough_apart_do_not_flap() {
        // The template's CPU alarms: low 30, high 70, min 2: 30 × 3/2 = 45 <= 70.
        assert!(scale_in_keeps_below(30.0, 70.0, 2));
        // min 1: from 2 tasks to 1 doubles the load per task: 40 -> 80 > 70.
        assert!(!scale_in_keeps_below(40.0, 70.0, 1));
        assert!(scale_in_keeps_below(35.0, 70.0, 0));
    }

    /// A toy service for the rules' dynamics: `load` units of work spread over
    /// the running tasks; a task ordered at `t` runs from `t + start`; the
    /// in-flight alarm breaches above `high` per task, the low alarm below `low`
    /// per task. Returns the desired count after every 10 s tick.
    fn simulate(l: &Limits, load: impl Fn(i64) -> f64, ticks: i64) -> Vec<i32> {
        let (high, low, start) = (50.0, 20.0, 30);
        let mut desired = l.min;
        let mut started: Vec<i64> = vec![-1000; desired as usize];
        let mut h = History::default();
        let mut out = Vec::new();
        for k in 0..ticks {
            let now = k * 10;
            let running = started.iter().filter(|s| **s + start <= now).count() as i32;
            let s = ServiceState {
                desired,
                running,
                pending: desired - running,
                deployment_in_progress: false,
            };
            let per_task = load(now) / f64::from(running.max(1));
            let measured = Some(t(now - 10));
            let a = AlarmInput {
                state: Some(AlarmState::Alarm),
                value: Some(per_task),
                threshold: Some(high),
                measured_at: measured,
            };
            if per_task > high {
                if let Decision::ScaleTo { target, .. } =
                    decide_scale_out(&s, l, &h, &a, None, t(now))
                {
                    started.extend(std::iter::repeat_n(now, (target - desired) as usize));
                    desired = target;
                    h.last_scale_out = Some(t(now));
                }
            } else if per_task < low {
                if let Decision::ScaleTo { target, .. } = decide_scale_in(&s, l, &h, &a, t(now)) {
                    started.pop();
                    desired = target;
                    h.last_scale_in = Some(t(now));
                }
            }
            out.push(desired);
        }
        out
    }

    #[test]
    fn a_load_just_above_the_threshold_settles_without_oscillating() {
        // 4 tasks × 50.5: just above the high threshold at 4 tasks.
        for l in [limits(), proportional()] {
            let l = Limits {
                min: 4,
                max: 10,
                in_window: Duration::from_secs(300),
                ..l
            };
            let path = simulate(&l, |_| 4.0 * 50.5, 200);
            assert!(
                path.windows(2).all(|w| w[1] >= w[0]),
                "{:?}: {path:?}",
                l.mode
            );
            assert_eq!(*path.last().unwrap(), 5, "{:?}: {path:?}", l.mode);
        }
    }

    #[test]
    fn proportional_reaches_a_ramp_in_fewer_steps_than_fixed() {
        // The load climbs to 7.5 tasks' worth of in-flight in 60 s and holds.
        let load = |now: i64| 375.0 * (now.min(60) as f64 / 60.0);
        let steps = |l: &Limits| {
            let path = simulate(l, load, 60);
            let reached = path.iter().position(|d| *d >= 8).map(|i| i * 10);
            let changes = path.windows(2).filter(|w| w[1] != w[0]).count();
            (reached, changes, *path.last().unwrap())
        };
        let fixed = steps(&Limits {
            max: 10,
            ..limits()
        });
        let prop = steps(&Limits {
            max: 10,
            ..proportional()
        });
        println!("to 8 tasks: fixed {fixed:?}, proportional {prop:?} (seconds, steps, final)");
        assert_eq!(fixed.2, 8);
        assert_eq!(prop.2, 8);
        assert!(
            prop.0.unwrap() < fixed.0.unwrap(),
            "fixed {fixed:?}, proportional {prop:?}"
        );
        assert!(prop.1 < fixed.1);
    }

    #[test]
    fn a_window_sets_the_floor_and_ceiling_the_policy_keeps() {
        let l = limits().within(&crate::window::Bounds {
            min: 4,
            max: 12,
            window: Some("business-hours".into()),
        });
        assert_eq!((l.min, l.max), (4, 12));
        // A scale-out a second ago does not hold the floor back.
        let h = History {
            last_scale_out: Some(t(0)),
            ..Default::default()
        };
        let d = decide_floor(&svc(2), &l, &h);
        assert!(
            matches!(d, Some(Decision::ScaleTo { target: 4, .. })),
            "{d:?}"
        );
        assert_eq!(decide_floor(&svc(5), &l, &h), None);
        // Scale-in stops at the window's floor.
        assert_eq!(
            decide_scale_in(&svc(4), &l, &History::default(), &alarm(), t(0)),
            Decision::Skip(Skip::AtMin { min: 4 })
        );
    }

    fn arb_limits() -> impl Strategy<Value = Limits> {
        (
            0..10i32,
            1..20i32,
            1..5i32,
            any::<bool>(),
            1..6i32,
            0..600u64,
            0..600u64,
            0..600u64,
        )
            .prop_map(
                |(min, extra, step, prop, max_step, out_s, in_s, window_s)| Limits {
                    min,
                    max: min + extra,
                    step,
                    mode: if prop {
                        ScaleOutMode::Proportional
                    } else {
                        ScaleOutMode::Fixed
                    },
                    max_step,
                    out_cooldown: Duration::from_secs(out_s),
                    in_cooldown: Duration::from_secs(in_s),
                    in_window: Duration::from_secs(window_s),
                },
            )
    }

    fn arb_history() -> impl Strategy<Value = History> {
        (
            any::<bool>(),
            proptest::option::of(0..1000i64),
            proptest::option::of(0..1000i64),
            proptest::option::of(0..1000i64),
            any::<bool>(),
        )
            .prop_map(|(paused, out, inn, rolled_back, active)| History {
                paused,
                last_scale_out: out.map(t),
                last_scale_in: inn.map(t),
                last_scale_in_rollback: rolled_back.map(t),
                scale_in_active: active,
            })
    }

    proptest! {
        #[test]
        fn scale_out_stays_within_limits(
            l in arb_limits(), h in arb_history(), desired in 0..40i32,
            value in proptest::option::of(0.0..1000f64), threshold in proptest::option::of(0.1..500f64),
            cap in proptest::option::of(0..30i32), now in 0..2000i64,
        ) {
            let a = AlarmInput { state: Some(AlarmState::Alarm), value, threshold, measured_at: None };
            let cap = cap.map(|tasks| Cap { tasks, why: "db".into() });
            let d = decide_scale_out(&svc(desired), &l, &h, &a, cap.as_ref(), t(now));
            if let Decision::ScaleTo { target, .. } = d {
                prop_assert!(target > desired, "scale-out never shrinks");
                prop_assert!(target >= l.min && target <= l.max, "min <= {target} <= max");
                if let Some(c) = &cap { prop_assert!(target <= c.tasks.max(l.min)); }
                prop_assert!(!h.paused);
                if let Some(last) = h.last_scale_out {
                    prop_assert!((t(now) - last).to_std().unwrap_or_default() >= l.out_cooldown);
                }
                if desired >= l.min {
                    let most = l.step.max(l.max_step);
                    prop_assert!(target - desired <= most);
                }
            }
        }

        #[test]
        fn pending_tasks_are_never_missing_capacity(
            l in arb_limits(), h in arb_history(), running in 0..30i32, pending in 0..10i32,
            value in proptest::option::of(0.0..1000f64), threshold in proptest::option::of(0.1..500f64),
            now in 0..2000i64,
        ) {
            let s = ServiceState { desired: running + pending, running, pending, deployment_in_progress: false };
            let a = AlarmInput { state: Some(AlarmState::Alarm), value, threshold, measured_at: None };
            let d = decide_scale_out(&s, &l, &h, &a, None, t(now));
            if let Decision::ScaleTo { target, .. } = d {
                // What the running tasks' load asks for, pending ones not counted as missing.
                let running_need = match (l.mode, value, threshold) {
                    (ScaleOutMode::Proportional, Some(v), Some(th)) =>
                        (f64::from(running) * v / th).ceil() as i32,
                    _ => running + l.step,
                };
                prop_assert!(target <= running_need.max(l.min),
                    "target {target} > need {running_need} of {running} running ({pending} pending)");
                prop_assert!(target >= l.min && target <= l.max);
            }
        }

        #[test]
        fn the_schedule_and_the_alarm_action_never_add_two_steps_for_one_breach(
            l in arb_limits(), h in arb_history(), desired in 0..30i32,
            value in proptest::option::of(0.0..1000f64), threshold in proptest::option::of(0.1..500f64),
            measured in 0..1000i64, first in 1000..2000i64, later in 0..1000i64,
        ) {
            // One breach: the same evidence (value, measured at `measured`) reaches the
            // function twice, first at `first`, then `later` seconds after, whichever path.
            let h = History { last_scale_out: h.last_scale_out.filter(|o| *o < t(measured)), ..h };
            let a = AlarmInput { state: Some(AlarmState::Alarm), value, threshold, measured_at: Some(t(measured)) };
            let d1 = decide_scale_out(&svc(desired), &l, &h, &a, None, t(first));
            if let Decision::ScaleTo { target, .. } = d1 {
                let after = ServiceState { desired: target, running: desired, pending: target - desired, deployment_in_progress: false };
                let h2 = History { last_scale_out: Some(t(first)), ..h };
                let d2 = decide_scale_out(&after, &l, &h2, &a, None, t(first + later));
                prop_assert!(matches!(d2, Decision::Skip(_)), "second step {d2:?} after {target}");
            }
        }

        #[test]
        fn the_floor_and_the_reevaluation_keep_desired_within_limits(
            l in arb_limits(), h in arb_history(), desired in 0..40i32,
        ) {
            if let Some(Decision::ScaleTo { target, .. }) = decide_floor(&svc(desired), &l, &h) {
                prop_assert!(desired < l.min && target == l.min && !h.paused);
            }
        }

        #[test]
        fn scale_in_removes_one_and_keeps_min(
            l in arb_limits(), h in arb_history(), desired in 0..40i32, deploying in any::<bool>(), now in 0..2000i64,
        ) {
            let s = ServiceState { deployment_in_progress: deploying, ..svc(desired) };
            let d = decide_scale_in(&s, &l, &h, &AlarmInput::default(), t(now));
            if let Decision::ScaleTo { target, .. } = d {
                prop_assert_eq!(target, desired - 1);
                prop_assert!(target >= l.min);
                prop_assert!(!h.paused && !h.scale_in_active && !deploying);
                for last in [h.last_scale_out, h.last_scale_in, h.last_scale_in_rollback].into_iter().flatten() {
                    prop_assert!((t(now) - last).to_std().unwrap_or_default() >= l.in_cooldown);
                }
                if let Some(out) = h.last_scale_out {
                    prop_assert!((t(now) - out).to_std().unwrap_or_default() >= l.in_window,
                        "the low alarm's whole window lies after the last scale-out");
                }
            }
        }
    }
}
