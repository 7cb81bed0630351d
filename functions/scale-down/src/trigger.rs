//! The events scale-down accepts: any shape the shared parser knows
//! (`scaling::trigger`), the reconcile schedule included. An alarm is scale-down's
//! only when it is about this service; a window edge only when the window is declared.
//! A refusal is the library's own [`ScalingError`] (`BadEvent` or `NotOurs`), worded
//! as scale-up words it.

use crate::settings::Settings;
use scaling::error::ScalingError;
use scaling::trigger::Trigger;
use serde_json::Value;

/// Parses `event`, rejecting alarms whose metric names another cluster or service.
pub fn parse(event: &Value, cluster: &str, service: &str) -> Result<Trigger, ScalingError> {
    scaling::trigger::parse_ours(event, cluster, service)
}

/// Parses `event` as [`parse`] does, and refuses a window edge whose window is not
/// declared in `SCHEDULE_WINDOWS`.
pub fn parse_checked(event: &Value, settings: &Settings) -> Result<Trigger, ScalingError> {
    let trigger = parse(event, &settings.cluster, &settings.service)?;
    if let Trigger::Window(w) = &trigger {
        if settings.windows.get(&w.window).is_none() {
            return Err(ScalingError::BadEvent(format!(
                "window {:?} is not declared in SCHEDULE_WINDOWS",
                w.window
            )));
        }
    }
    Ok(trigger)
}
