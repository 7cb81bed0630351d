//! The events scale-down accepts: the low alarm's direct Lambda alarm action,
//! and the reconcile schedule (EventBridge `Scheduled Event`).

use chrono::{DateTime, Utc};
use scaling::report::{MetricRef, TriggerSummary};
use serde_json::Value;

/// A parsed, validated trigger.
#[derive(Debug, Clone, PartialEq)]
pub enum Trigger {
    /// A CloudWatch alarm state change delivered as a Lambda alarm action.
    Alarm {
        name: String,
        state: String,
        /// The raw state timestamp: with the name, the idempotency key.
        state_timestamp: String,
        summary: TriggerSummary,
    },
    /// The periodic reconcile: finish or roll back an interrupted episode, start nothing.
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

fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .or_else(|_| DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.3f%z"))
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn str_at<'a>(v: &'a Value, ptr: &str) -> Result<&'a str, TriggerError> {
    v.pointer(ptr)
        .and_then(Value::as_str)
        .ok_or_else(|| TriggerError::BadEvent(format!("missing string {ptr}")))
}

/// Parses `event`, rejecting alarms whose metric names another cluster or service.
pub fn parse(event: &Value, cluster: &str, service: &str) -> Result<Trigger, TriggerError> {
    if event.get("alarmData").is_some() {
        return parse_alarm(event, cluster, service);
    }
    if event.get("detail-type").and_then(Value::as_str) == Some("Scheduled Event")
        && event.get("source").and_then(Value::as_str) == Some("aws.events")
    {
        let time = str_at(event, "/time")?;
        let time =
            parse_time(time).ok_or_else(|| TriggerError::BadEvent(format!("bad time {time:?}")))?;
        return Ok(Trigger::Schedule {
            summary: TriggerSummary::Schedule { time },
        });
    }
    Err(TriggerError::BadEvent(
        "neither a CloudWatch alarm action nor a scheduled event".into(),
    ))
}

fn parse_alarm(event: &Value, cluster: &str, service: &str) -> Result<Trigger, TriggerError> {
    let name = str_at(event, "/alarmData/alarmName")?.to_string();
    let state = str_at(event, "/alarmData/state/value")?.to_string();
    let state_timestamp = str_at(event, "/alarmData/state/timestamp")?.to_string();
    let timestamp = parse_time(&state_timestamp).ok_or_else(|| {
        TriggerError::BadEvent(format!("bad state timestamp {state_timestamp:?}"))
    })?;
    let metric = event
        .pointer("/alarmData/configuration/metrics/0/metricStat/metric")
        .map(|m| MetricRef {
            namespace: m["namespace"].as_str().unwrap_or_default().to_string(),
            name: m["name"].as_str().unwrap_or_default().to_string(),
            dimensions: m["dimensions"]
                .as_object()
                .map(|d| {
                    d.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                        .collect()
                })
                .unwrap_or_default(),
        });
    if let Some(m) = &metric {
        for (dim, ours) in [("ClusterName", cluster), ("ServiceName", service)] {
            if let Some(theirs) = m.dimensions.get(dim) {
                if theirs != ours {
                    return Err(TriggerError::NotOurs(format!("{dim}={theirs}")));
                }
            }
        }
    }
    let summary = TriggerSummary::Alarm {
        alarm_name: name.clone(),
        alarm_arn: event
            .get("alarmArn")
            .and_then(Value::as_str)
            .map(str::to_string),
        state: state.clone(),
        previous_state: event
            .pointer("/alarmData/previousState/value")
            .and_then(Value::as_str)
            .map(str::to_string),
        reason: event
            .pointer("/alarmData/state/reason")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        timestamp,
        metric,
        threshold: None,
        comparison: None,
        value: None,
    };
    Ok(Trigger::Alarm {
        name,
        state,
        state_timestamp,
        summary,
    })
}
