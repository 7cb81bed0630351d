//! The reconcile schedule's scale-in for an alarm that stays in ALARM.
//!
//! CloudWatch invokes an alarm action only when the state changes. When the one
//! invocation for the low alarm was skipped (cooldown, an episode in progress, a
//! deployment), nothing would ever scale the service in while the alarm stays in
//! ALARM. So the schedule, once no episode needs finishing, re-reads the
//! `SCALE_IN_ALARMS` with DescribeAlarms and, if one is in ALARM, runs the normal
//! scale-in decision as if it had fired now. Its repeats are bounded by the
//! scale-in cooldown (one action per cooldown), not by the alarm's idempotency key:
//! the same ALARM period may rightly remove one task per cooldown down to the minimum.

use crate::port::{AlarmView, PortError};
use chrono::{DateTime, Utc};
use scaling::aws::cloudwatch::{CloudWatch, MetricAlarm};
use scaling::error::AwsError;
use scaling::headroom::{blocks_scale_in, ScaleOutReading};
use scaling::report::TriggerSummary;

const OP: &str = "cloudwatch:DescribeAlarms";

/// DescribeAlarms for `names`; with `latest`, also the newest datapoint of each alarm
/// in OK (GetMetricStatistics; an alarm in ALARM blocks a scale-in without one).
pub async fn describe(
    cw: &CloudWatch,
    names: &[String],
    latest: bool,
) -> Result<Vec<AlarmView>, AwsError> {
    let found = cw.describe_metric_alarms(names).await?;
    let mut out = Vec::with_capacity(found.len());
    for a in found {
        let value = if latest && a.state == "OK" {
            cw.newest_datapoint(&a, std::time::SystemTime::now())
                .await?
                .map(|d| d.value)
        } else {
            None
        };
        out.push(view(a, value));
    }
    Ok(out)
}

fn view(a: MetricAlarm, latest: Option<f64>) -> AlarmView {
    AlarmView {
        name: a.name,
        arn: a.arn,
        state: a.state,
        since: a.since,
        threshold: a.threshold,
        comparison: a.comparison,
        latest,
    }
}

/// Why a scale-in from `running` tasks must wait for the scale-out alarms, or None
/// (`scaling::headroom`). `per_task` names the alarms whose metric is a load shared by
/// the tasks (SCALE_OUT_PROPORTIONAL_ALARMS). A configured name CloudWatch does not
/// know is refused, as for the scale-in alarms.
pub fn scale_out_pressure(
    names: &[String],
    per_task: &[String],
    found: &[AlarmView],
    running: usize,
) -> Result<Option<String>, PortError> {
    for name in names {
        let Some(a) = found.iter().find(|a| &a.name == name) else {
            return Err(PortError::fatal(
                OP,
                format!("SCALE_OUT_ALARMS names {name}, which CloudWatch does not know"),
            ));
        };
        let reading = ScaleOutReading {
            name: &a.name,
            state: &a.state,
            comparison: a.comparison.as_deref(),
            threshold: a.threshold,
            latest: a.latest,
            per_task: per_task.contains(name),
        };
        if let Some(why) = blocks_scale_in(&reading, running) {
            return Ok(Some(why));
        }
    }
    Ok(None)
}

/// The first of `names` (in configured order) that is in ALARM now, or None.
/// A configured name CloudWatch does not know is a deployment mistake that would
/// silently disable this path: a non-retryable error naming it.
pub fn first_in_alarm(
    names: &[String],
    found: &[AlarmView],
) -> Result<Option<AlarmView>, PortError> {
    let mut first = None;
    for name in names {
        match found.iter().find(|a| &a.name == name) {
            None => {
                return Err(PortError::fatal(
                    OP,
                    format!("SCALE_IN_ALARMS names {name}, which CloudWatch does not know"),
                ))
            }
            Some(a) if a.state == "ALARM" && first.is_none() => first = Some(a.clone()),
            Some(_) => {}
        }
    }
    Ok(first)
}

/// The report's trigger for a scale-in the schedule started: the alarm, with a
/// reason saying it came from the schedule and since when the alarm has been in ALARM.
pub fn trigger_summary(a: &AlarmView) -> TriggerSummary {
    TriggerSummary::Alarm {
        alarm_name: a.name.clone(),
        alarm_arn: a.arn.clone(),
        state: a.state.clone(),
        previous_state: None,
        reason: format!(
            "schedule: {} still in ALARM since {}",
            a.name,
            a.since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ),
        timestamp: a.since,
        metric: None,
        threshold: a.threshold,
        comparison: a.comparison.clone(),
        value: None,
    }
}

/// The idempotency key of a schedule-started scale-in: the alarm and the schedule
/// event's time, so a redelivered schedule event acts once (the cooldown does the rest).
pub fn schedule_key(alarm: &str, schedule_time: DateTime<Utc>) -> String {
    scaling::episode::alarm_key(&format!("schedule:{alarm}"), schedule_time)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(name: &str, state: &str) -> AlarmView {
        AlarmView {
            name: name.into(),
            arn: None,
            state: state.into(),
            since: DateTime::from_timestamp(1_795_000_000, 0).unwrap(),
            threshold: Some(30.0),
            comparison: Some("LessThanThreshold".into()),
            latest: None,
        }
    }

    #[test]
    fn first_in_alarm_follows_the_configured_order() {
        let names = vec!["a".to_string(), "b".to_string(), "c".to_string()];
        let found = [view("c", "ALARM"), view("a", "OK"), view("b", "ALARM")];
        assert_eq!(first_in_alarm(&names, &found).unwrap().unwrap().name, "b");
        let quiet = [
            view("a", "OK"),
            view("b", "INSUFFICIENT_DATA"),
            view("c", "OK"),
        ];
        assert_eq!(first_in_alarm(&names, &quiet).unwrap(), None);
    }

    #[test]
    fn an_unknown_alarm_name_is_a_fatal_error_naming_it() {
        let names = vec!["a".to_string(), "typo".to_string()];
        let e = first_in_alarm(&names, &[view("a", "ALARM")]).unwrap_err();
        assert!(!e.retryable);
        assert!(e.message.contains("typo"), "{e}");
    }

    #[test]
    fn the_trigger_says_schedule_and_since_when() {
        let TriggerSummary::Alarm { reason, state, .. } =
            trigger_summary(&view("cpu-low", "ALARM"))
        else {
            panic!("an alarm summary")
        };
        assert_eq!(state, "ALARM");
        assert!(
            reason.starts_with("schedule: cpu-low still in ALARM since 2026-"),
            "{reason}"
        );
    }

    #[test]
    fn schedule_keys_differ_from_the_alarm_key_and_per_tick() {
        let t = DateTime::from_timestamp(1_795_000_000, 0).unwrap();
        let later = t + chrono::Duration::minutes(2);
        assert_ne!(schedule_key("x", t), scaling::episode::alarm_key("x", t));
        assert_ne!(schedule_key("x", t), schedule_key("x", later));
        assert_eq!(schedule_key("x", t), schedule_key("x", t));
    }
}
