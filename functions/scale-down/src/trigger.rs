//! The events scale-down accepts: any alarm shape the shared parser knows
//! (`scaling::trigger`), and the reconcile schedule (EventBridge `Scheduled Event`).
//! This module only maps the library's result onto the step machine's view.

use scaling::error::ScalingError;
use scaling::report::TriggerSummary;
use serde_json::Value;

/// A parsed, validated trigger.
#[derive(Debug, Clone, PartialEq)]
pub enum Trigger {
    /// A CloudWatch alarm state change.
    Alarm {
        name: String,
        state: String,
        /// The state timestamp (RFC 3339): with the name, the idempotency key.
        state_timestamp: String,
        summary: TriggerSummary,
    },
    /// The periodic reconcile, or a scheduled window's edge: finish or roll back an
    /// interrupted episode; scale in only while a low alarm stays in ALARM or desired is
    /// above the ceiling in force.
    Schedule { summary: TriggerSummary },
}

impl Trigger {
    /// The report's view of the trigger.
    pub fn summary(&self) -> &TriggerSummary {
        match self {
            Trigger::Alarm { summary, .. } | Trigger::Schedule { summary } => summary,
        }
    }
}

/// Why an event was refused (non-retryable, and no AWS call was made).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TriggerError {
    #[error("malformed event: {0}")]
    BadEvent(String),
    #[error("alarm is about {0}, not this service")]
    NotOurs(String),
}

impl From<ScalingError> for TriggerError {
    fn from(e: ScalingError) -> Self {
        match e {
            ScalingError::NotOurs(m) => TriggerError::NotOurs(m),
            other => TriggerError::BadEvent(other.to_string()),
        }
    }
}

/// Parses `event`, rejecting alarms whose metric names another cluster or service.
pub fn parse(event: &Value, cluster: &str, service: &str) -> Result<Trigger, TriggerError> {
    match scaling::trigger::parse(event)? {
        scaling::trigger::Trigger::Alarm(a) => {
            a.check_ours(cluster, service)?;
            Ok(Trigger::Alarm {
                name: a.alarm_name.clone(),
                state: a.state.as_str().to_string(),
                state_timestamp: a.timestamp.to_rfc3339(),
                summary: a.summary(),
            })
        }
        schedule @ (scaling::trigger::Trigger::Schedule { .. }
        | scaling::trigger::Trigger::Window(_)) => Ok(Trigger::Schedule {
            summary: schedule.summary(),
        }),
    }
}
