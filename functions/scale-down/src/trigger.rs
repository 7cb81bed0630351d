//! The events scale-down accepts: any shape the shared parser knows
//! (`scaling::trigger`), the reconcile schedule included. An alarm is scale-down's
//! only when it is about this service; a window edge only when the window is declared.
//! This module only turns the library's errors into scale-down's refusal.

use crate::settings::Settings;
use scaling::error::ScalingError;
use scaling::trigger::Trigger;
use serde_json::Value;

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
    Ok(scaling::trigger::parse_ours(event, cluster, service)?)
}

/// Parses `event` as [`parse`] does, and refuses a window edge whose window is not
/// declared in `SCHEDULE_WINDOWS`.
pub fn parse_checked(event: &Value, settings: &Settings) -> Result<Trigger, TriggerError> {
    let trigger = parse(event, &settings.cluster, &settings.service)?;
    if let Trigger::Window(w) = &trigger {
        if settings.windows.get(&w.window).is_none() {
            return Err(TriggerError::BadEvent(format!(
                "window {:?} is not declared in SCHEDULE_WINDOWS",
                w.window
            )));
        }
    }
    Ok(trigger)
}
