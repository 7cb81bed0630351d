//! The scaling policy: pure functions from (service state, limits, history,
//! alarm) to a [`Decision`]. No I/O, no clock: `now` is an argument, so every
//! rule is tested with plain tests and proptest.
//!
//! Both directions live here so that scale-up and scale-down share one notion
//! of limits and cooldowns:
//! - scale-out: at most up to `max` (and the DB cap), a fixed or proportional
//!   step, its own cooldown since the last scale-out;
//! - scale-in: one task at a time, never below `min`, not during a deployment,
//!   an active episode, or within the scale-in cooldown of any scaling.

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
}

impl AlarmInput {
    /// The decision-relevant part of an alarm change.
    pub fn from_alarm(a: &crate::trigger::AlarmChange) -> Self {
        AlarmInput {
            state: Some(a.state),
            value: a.latest_value(),
            threshold: a.threshold,
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
    // The cap never pushes the ceiling below min: invariant 1 comes first.
    let cap = cap.filter(|c| c.tasks < l.max);
    let ceiling = cap.map_or(l.max, |c| c.tasks.max(l.min));
    if s.desired >= ceiling {
        return Decision::Skip(match cap {
            Some(c) if s.desired < l.max => Skip::AtCap(c.clone()),
            _ => Skip::AtMax { max: l.max },
        });
    }
    let (step, how) = step_size(s.desired, l, a);
    let wanted = (s.desired + step).max(l.min);
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

/// Tasks to add and how that was sized.
fn step_size(desired: i32, l: &Limits, a: &AlarmInput) -> (i32, String) {
    if l.mode == ScaleOutMode::Proportional {
        match (a.value, a.threshold) {
            (Some(v), Some(t)) if t > 0.0 && v.is_finite() => {
                // HPA: ceil(desired × value / target), at least one more task.
                let wanted = (f64::from(desired.max(1)) * v / t).ceil();
                let step = (wanted - f64::from(desired)).clamp(1.0, f64::from(l.max_step)) as i32;
                return (
                    step,
                    format!(
                        "proportional step +{step} (value {v} / threshold {t}, at most +{})",
                        l.max_step
                    ),
                );
            }
            _ => {
                return (
                    l.step,
                    format!(
                        "fixed step +{} (proportional needs a datapoint and a threshold)",
                        l.step
                    ),
                )
            }
        }
    }
    (l.step, format!("fixed step +{}", l.step))
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

    fn arb_limits() -> impl Strategy<Value = Limits> {
        (
            0..10i32,
            1..20i32,
            1..5i32,
            any::<bool>(),
            1..6i32,
            0..600u64,
            0..600u64,
        )
            .prop_map(|(min, extra, step, prop, max_step, out_s, in_s)| Limits {
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
            })
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
            let a = AlarmInput { state: Some(AlarmState::Alarm), value, threshold };
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
            }
        }
    }
}
