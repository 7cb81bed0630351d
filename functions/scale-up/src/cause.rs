//! What invoked scale-up: an alarm in ALARM (scale out by a step) or a scheduled
//! window's start (rise to its floor at once). Both then run the same episode:
//! record the intent, UpdateService, cancel hook, capacity, report.

use chrono::{DateTime, Utc};
use scaling::config::Config;
use scaling::episode;
use scaling::error::ScalingError;
use scaling::policy::{self, AlarmInput, Cap, Decision, History, Limits, ServiceState, Skip};
use scaling::report::TriggerSummary;
use scaling::trigger::{self, AlarmChange, AlarmState, Edge, Trigger, WindowEdge};
use scaling::window::Bounds;
use serde_json::Value;

/// The parsed, checked reason for this invocation.
pub(crate) enum Cause {
    Alarm(Box<AlarmChange>),
    Window(WindowEdge),
}

impl Cause {
    /// Parses the event (no AWS call on a bad one: "bad input changes nothing") and checks it is ours.
    pub(crate) fn parse(event: &Value, c: &Config) -> Result<Self, ScalingError> {
        match trigger::parse_ours(event, &c.cluster, &c.service)? {
            Trigger::Alarm(a) => Ok(Cause::Alarm(a)),
            Trigger::Window(w) => {
                if c.windows.get(&w.window).is_none() {
                    return Err(ScalingError::BadEvent(format!(
                        "window {:?} is not declared in SCHEDULE_WINDOWS",
                        w.window
                    )));
                }
                Ok(Cause::Window(w))
            }
            Trigger::Schedule { .. } => Err(ScalingError::BadEvent(
                "scale-up is not invoked by the reconcile schedule (that is scale-down's)".into(),
            )),
        }
    }

    /// The idempotency key: one alarm change, or one window edge, acts once.
    pub(crate) fn key(&self) -> String {
        match self {
            Cause::Alarm(a) => episode::alarm_key(&a.alarm_name, a.timestamp),
            Cause::Window(w) => {
                episode::alarm_key(&format!("window:{}", w.window), w.scheduled_time)
            }
        }
    }

    pub(crate) fn summary(&self) -> TriggerSummary {
        match self {
            Cause::Alarm(a) => a.summary(),
            Cause::Window(w) => Trigger::Window(w.clone()).summary(),
        }
    }

    pub(crate) fn account(&self) -> Option<String> {
        match self {
            Cause::Alarm(a) => a.account.clone(),
            Cause::Window(_) => None,
        }
    }

    /// A reason to stop before reading anything: an alarm not in ALARM, a window's
    /// end (scale-down's), or a window edge that is not in force now (a late retry
    /// after the window closed, or an early one before it opened).
    pub(crate) fn early_skip(&self, bounds: &Bounds) -> Option<String> {
        match self {
            Cause::Alarm(a) if a.state != AlarmState::Alarm => {
                Some(Skip::NotAlarm(a.state).reason())
            }
            Cause::Alarm(_) => None,
            Cause::Window(w) if w.edge == Edge::End => Some(format!(
                "window {} ended: scale-up has nothing to do (scale-down lowers the service \
                 one task at a time as load allows)",
                w.window
            )),
            Cause::Window(w) if bounds.window.as_deref() != Some(w.window.as_str()) => {
                Some(format!(
                    "window {} is not in force now; in force: {}",
                    w.window,
                    bounds.describe()
                ))
            }
            Cause::Window(_) => None,
        }
    }

    /// What the duplicate report calls this cause.
    pub(crate) fn what(&self) -> &'static str {
        match self {
            Cause::Alarm(_) => "this alarm change",
            Cause::Window(_) => "this window start",
        }
    }

    /// The pure decision for this cause, with the bounds in force as the limits.
    pub(crate) fn decide(
        &self,
        s: &ServiceState,
        c: &Config,
        bounds: &Bounds,
        h: &History,
        cap: Option<&Cap>,
        now: DateTime<Utc>,
    ) -> Decision {
        match self {
            Cause::Alarm(a) => {
                let l = Limits::for_alarm(c, &a.alarm_name).within(bounds);
                policy::decide_scale_out(s, &l, h, &AlarmInput::from_alarm(a), cap, now)
            }
            Cause::Window(_) => {
                let l = Limits::from_config(c).within(bounds);
                match policy::decide_floor(s, &l, h) {
                    // The policy's floor, said as the window's.
                    Some(Decision::ScaleTo {
                        target, capped_by, ..
                    }) => Decision::ScaleTo {
                        target,
                        reason: format!("window floor: {} -> {target}", s.desired),
                        capped_by,
                    },
                    Some(d) => d,
                    None if h.paused => Decision::Skip(Skip::Paused),
                    None => Decision::Skip(Skip::AtFloor { min: l.min }),
                }
            }
        }
    }
}
