//! The episode report: what every scaling invocation returns.
//!
//! This is the contract between the scaling functions and `notify`: Lambda
//! destinations carry it (OnSuccess `responsePayload`), notify renders it into the
//! operators' email, and the local stack prints it. Keep changes additive.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How an episode ended. "Every episode reports" (docs/invariants.md): every
/// episode ends in one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The action ran to the end and was verified.
    Completed,
    /// Nothing was changed; `outcome_reason` says why (cooldown, at max, paused, duplicate...).
    Skipped,
    /// A scale-in was abandoned because a scale-out arrived mid-drain; the task was kept.
    Cancelled,
    /// A step failed and everything done before it was undone; `rollback` lists what.
    RolledBack,
    /// A step failed and could not be undone in this invocation; the next invocation
    /// (any alarm or the reconcile schedule) finishes or rolls back the episode.
    Failed,
    /// Nothing failed, but the action outlasts one invocation and a later one goes on
    /// with it (drain-instance: the instance is still draining, a lifecycle heartbeat was
    /// sent, the schedule or the retried event resumes). Serialized `in_progress`.
    InProgress,
}

/// Which function produced the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FunctionKind {
    ScaleUp,
    ScaleDown,
    DrainInstance,
}

/// The ECS service the episode acted on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceRef {
    pub cluster: String,
    pub service: String,
}

impl ServiceRef {
    /// The service `service` of cluster `cluster`.
    pub fn new(cluster: &str, service: &str) -> Self {
        ServiceRef {
            cluster: cluster.to_string(),
            service: service.to_string(),
        }
    }
}

/// The metric an alarm watches, for the email's "why".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct MetricRef {
    pub namespace: String,
    pub name: String,
    #[serde(default)]
    pub dimensions: BTreeMap<String, String>,
}

/// What started the episode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TriggerSummary {
    /// A CloudWatch alarm state change, however it was delivered.
    Alarm {
        alarm_name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        alarm_arn: Option<String>,
        /// New state: ALARM, OK or INSUFFICIENT_DATA.
        state: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        previous_state: Option<String>,
        #[serde(default)]
        reason: String,
        /// When the alarm entered `state`; with the name, the idempotency key.
        timestamp: DateTime<Utc>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        metric: Option<MetricRef>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        threshold: Option<f64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        comparison: Option<String>,
        /// The most recent datapoint from `reasonData`, when the payload had one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        value: Option<f64>,
    },
    /// The periodic EventBridge schedule that finishes or rolls back interrupted episodes.
    Schedule { time: DateTime<Utc> },
    /// A scheduled window's edge (EventBridge Scheduler).
    Window {
        window: String,
        /// `start` or `end`.
        edge: String,
        /// The time the schedule was due (`<aws.scheduler.scheduled-time>`): with the
        /// window's name, the idempotency key.
        scheduled_time: DateTime<Utc>,
    },
    /// An Auto Scaling lifecycle action (drain-instance).
    Lifecycle {
        asg_name: String,
        instance_id: String,
        lifecycle_action_token: String,
    },
}

/// The decision the policy took, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecisionSummary {
    /// `scale_to`, `skip`, `resume`, `rollback`, `drain_instance`...
    pub action: String,
    /// The desired count the decision aims for, when it changes one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<i32>,
    pub reason: String,
}

impl DecisionSummary {
    /// Nothing to do, and why.
    pub fn skip(reason: &str) -> Self {
        DecisionSummary {
            action: "skip".into(),
            target: None,
            reason: reason.to_string(),
        }
    }
}

/// Task counts of the service at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Counts {
    pub desired: i32,
    pub running: i32,
    pub pending: i32,
    /// EC2 capacity mode: the ASG's desired capacity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asg_desired: Option<i32>,
}

/// One AWS call or wait, with how long it took.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// Short machine name: `update_service`, `protect_tasks`, `deregister_target`, `wait_drained`...
    pub name: String,
    pub ok: bool,
    pub duration_ms: u64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

/// The drain result of a scale-in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct DrainSummary {
    /// Task ARN of the task chosen to leave.
    pub victim_task: String,
    /// `fewest-in-flight`, `newest` or `az-balanced`: the strategy that chose it.
    pub strategy: String,
    /// Set when the configured strategy could not be used, with why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<String>,
    /// In-flight requests on the victim when it was stopped (None: unreachable).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_flight_at_stop: Option<u64>,
    /// From deregistration to drained.
    pub drain_ms: u64,
    /// True when the drain deadline passed before the task reported 0 in flight.
    #[serde(default)]
    pub deadline_hit: bool,
}

/// What a failed episode undid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct RollbackSummary {
    pub reason: String,
    /// Human-readable actions, in order: "re-registered target 10.0.1.5:8080"...
    pub actions: Vec<String>,
    /// What an operator should check, when anything is left for a person.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub operator_checks: Vec<String>,
}

/// The report every scaling invocation returns (and notify renders).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub function: FunctionKind,
    /// Stable id of the episode, shared by the invocations that complete one episode.
    pub episode_id: String,
    pub service: ServiceRef,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    pub trigger: TriggerSummary,
    pub decision: DecisionSummary,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<Counts>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<Counts>,
    #[serde(default)]
    pub steps: Vec<Step>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain: Option<DrainSummary>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback: Option<RollbackSummary>,
    pub outcome: Outcome,
    #[serde(default)]
    pub outcome_reason: String,
    pub started_at: DateTime<Utc>,
    pub duration_ms: u64,
    #[serde(default)]
    pub dry_run: bool,
    /// The floor and ceiling in force when the episode decided (a scheduled window's,
    /// or the plain MIN_TASKS/MAX_TASKS). None from functions that do not decide a count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bounds: Option<crate::window::Bounds>,
    /// The once-a-day forecast review (scale-up): the last day's forecast against what
    /// happened. Only that report has it, and notify renders it as its own email.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forecast_review: Option<crate::review::ForecastReview>,
}

impl Report {
    /// The report of an episode that has done nothing yet: skipped with no reason,
    /// no counts, steps, drain or rollback. Each function fills in what it learns
    /// (usually with struct update syntax, `Report { .., ..Report::new(..) }`).
    pub fn new(
        function: FunctionKind,
        service: ServiceRef,
        trigger: TriggerSummary,
        started_at: DateTime<Utc>,
    ) -> Self {
        Report {
            function,
            episode_id: String::new(),
            service,
            region: None,
            account: None,
            trigger,
            decision: DecisionSummary::skip(""),
            before: None,
            after: None,
            steps: Vec::new(),
            drain: None,
            rollback: None,
            outcome: Outcome::Skipped,
            outcome_reason: String::new(),
            started_at,
            duration_ms: 0,
            dry_run: false,
            bounds: None,
            forecast_review: None,
        }
    }

    /// Ends the episode as skipped for `why` (the decision's reason and the outcome's),
    /// after `duration_ms`.
    pub fn skipped(mut self, why: &str, duration_ms: u64) -> Self {
        self.decision.action = "skip".into();
        self.decision.reason = why.to_string();
        self.outcome = Outcome::Skipped;
        self.outcome_reason = why.to_string();
        self.duration_ms = duration_ms;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_report_is_an_empty_skip_and_skipped_sets_both_reasons() {
        let trigger = TriggerSummary::Schedule {
            time: DateTime::<Utc>::UNIX_EPOCH,
        };
        let r = Report::new(
            FunctionKind::ScaleDown,
            ServiceRef::new("visits", "visits-api"),
            trigger.clone(),
            DateTime::<Utc>::UNIX_EPOCH,
        );
        assert_eq!(r.outcome, Outcome::Skipped);
        assert_eq!(r.decision, DecisionSummary::skip(""));
        assert_eq!(
            (r.service.cluster.as_str(), r.service.service.as_str()),
            ("visits", "visits-api")
        );
        assert!(r.steps.is_empty() && r.before.is_none() && r.bounds.is_none());
        let mut started = r.clone();
        started.outcome = Outcome::Completed;
        started.decision.action = "scale_to".into();
        let s = started.skipped("cooldown", 7);
        assert_eq!(s.outcome, Outcome::Skipped);
        assert_eq!(s.decision.action, "skip");
        assert_eq!(
            (s.decision.reason.as_str(), s.outcome_reason.as_str()),
            ("cooldown", "cooldown")
        );
        assert_eq!(s.duration_ms, 7);
        assert_eq!(s.trigger, trigger);
    }

    #[test]
    fn outcomes_serialize_in_snake_case_including_in_progress() {
        let json = serde_json::to_string(&Outcome::InProgress).unwrap();
        assert_eq!(json, "\"in_progress\"");
        let back: Outcome = serde_json::from_str("\"in_progress\"").unwrap();
        assert_eq!(back, Outcome::InProgress);
        assert_eq!(
            serde_json::to_string(&Outcome::RolledBack).unwrap(),
            "\"rolled_back\""
        );
    }
}
