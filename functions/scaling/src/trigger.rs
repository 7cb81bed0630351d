//! Trigger events: every shape an alarm (or the reconcile schedule) arrives in,
//! parsed into one [`Trigger`].
//!
//! Accepted shapes:
//! - the direct CloudWatch alarm action (`source: aws.cloudwatch`, `alarmData`);
//! - the EventBridge `CloudWatch Alarm State Change` event (same `alarmData` under `detail`);
//! - an SNS-wrapped classic alarm notification (`Records[0].Sns.Message`);
//! - the EventBridge `Scheduled Event` (reconcile);
//! - a scheduled window's edge: the input that the template's EventBridge Scheduler
//!   schedules send, `{"source": "visits-autoscaler.window", "window": NAME,
//!   "edge": "start"|"end", "scheduled_time": "<aws.scheduler.scheduled-time>"}`
//!   (AWS docs, "Adding context attributes in EventBridge Scheduler",
//!   <https://docs.aws.amazon.com/scheduler/latest/UserGuide/managing-schedule-context-attributes.html>).
//!
//! Parsing is pure: a malformed or unknown payload is [`ScalingError::BadEvent`]
//! with a message a person understands, and the caller makes no AWS call.

use crate::error::ScalingError;
use crate::report::{MetricRef, TriggerSummary};
use aws_lambda_events::event::cloudwatch_alarms::{
    CloudWatchAlarm, CloudWatchAlarmData, CloudWatchAlarmState, CloudWatchAlarmStateReasonData,
    CloudWatchAlarmStateValue,
};
use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// An alarm state, as CloudWatch names it (and spells it on the wire:
/// `OK`, `ALARM`, `INSUFFICIENT_DATA`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AlarmState {
    Ok,
    Alarm,
    InsufficientData,
}

impl AlarmState {
    /// CloudWatch's spelling: `OK`, `ALARM`, `INSUFFICIENT_DATA`.
    pub fn as_str(self) -> &'static str {
        match self {
            AlarmState::Ok => "OK",
            AlarmState::Alarm => "ALARM",
            AlarmState::InsufficientData => "INSUFFICIENT_DATA",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "OK" => Some(AlarmState::Ok),
            "ALARM" => Some(AlarmState::Alarm),
            "INSUFFICIENT_DATA" => Some(AlarmState::InsufficientData),
            _ => None,
        }
    }

    fn from_value(v: &CloudWatchAlarmStateValue) -> Self {
        match v {
            CloudWatchAlarmStateValue::Alarm => AlarmState::Alarm,
            CloudWatchAlarmStateValue::InsufficientData => AlarmState::InsufficientData,
            _ => AlarmState::Ok,
        }
    }
}

impl std::fmt::Display for AlarmState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How the alarm reached the function (for the report and logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// The alarm's own Lambda action.
    AlarmAction,
    /// An EventBridge rule on `CloudWatch Alarm State Change`.
    EventBridge,
    /// An SNS topic the alarm notifies, subscribed by the function.
    Sns,
}

/// One alarm state change, whatever shape it arrived in.
#[derive(Debug, Clone, PartialEq)]
pub struct AlarmChange {
    pub delivery: Delivery,
    pub alarm_name: String,
    pub alarm_arn: Option<String>,
    pub state: AlarmState,
    pub previous_state: Option<AlarmState>,
    /// Why the alarm was in its previous state: "Unchecked: Initial alarm creation" marks
    /// a transition out of creation. Only the alarm action and EventBridge carry it.
    pub previous_reason: Option<String>,
    pub reason: String,
    /// When the alarm entered `state`; with the name, the idempotency key.
    pub timestamp: DateTime<Utc>,
    /// The watched metric; None for metric-math or composite alarms.
    pub metric: Option<MetricRef>,
    /// How the watched metric is aggregated, e.g. `Average`.
    pub statistic: Option<String>,
    /// The alarm's description, when it has one.
    pub description: Option<String>,
    pub threshold: Option<f64>,
    /// e.g. `GreaterThanThreshold` (only the SNS shape carries it).
    pub comparison: Option<String>,
    /// The most recent datapoints, newest first, when the payload carries them.
    pub datapoints: Vec<f64>,
    pub region: Option<String>,
    pub account: Option<String>,
}

impl AlarmChange {
    /// The newest datapoint: the proportional step's `value`, and the value the email shows.
    pub fn latest_value(&self) -> Option<f64> {
        self.datapoints.first().copied()
    }

    /// True when the alarm left the state CloudWatch gives it on creation or update
    /// ("Unchecked: Initial alarm creation"), or the change names no previous state:
    /// a deploy artefact rather than news.
    pub fn leaves_creation(&self) -> bool {
        match self.previous_state {
            None => true,
            Some(AlarmState::InsufficientData) => self
                .previous_reason
                .as_deref()
                .is_some_and(|r| r.starts_with("Unchecked")),
            Some(_) => false,
        }
    }

    /// Rejects an alarm that is not about this service: its metric names another
    /// cluster or service, or it names neither (a composite or metric-math alarm, or
    /// another service's metric) and its name is not one of this service's alarms
    /// (`<service>-…`, as the template names them).
    pub fn check_ours(&self, cluster: &str, service: &str) -> Result<(), ScalingError> {
        let dims = self.metric.as_ref().map(|m| &m.dimensions);
        let mut named = false;
        for (dim, want) in [("ClusterName", cluster), ("ServiceName", service)] {
            if let Some(got) = dims.and_then(|d| d.get(dim)) {
                if got != want {
                    return Err(ScalingError::NotOurs(format!(
                        "alarm {} watches {dim}={got}, this function scales {dim}={want}",
                        self.alarm_name
                    )));
                }
                named = true;
            }
        }
        if named || self.alarm_name.starts_with(&format!("{service}-")) {
            return Ok(());
        }
        let what = match &self.metric {
            Some(m) => format!(
                "watches {} {} without this service's dimensions",
                m.namespace, m.name
            ),
            None => "is a composite or metric-math alarm".to_string(),
        };
        Err(ScalingError::NotOurs(format!(
            "alarm {} {what}, and its name does not start with {service}-",
            self.alarm_name
        )))
    }

    /// The trigger as the report carries it.
    pub fn summary(&self) -> TriggerSummary {
        TriggerSummary::Alarm {
            alarm_name: self.alarm_name.clone(),
            alarm_arn: self.alarm_arn.clone(),
            state: self.state.as_str().to_string(),
            previous_state: self.previous_state.map(|s| s.as_str().to_string()),
            reason: self.reason.clone(),
            timestamp: self.timestamp,
            metric: self.metric.clone(),
            threshold: self.threshold,
            comparison: self.comparison.clone(),
            value: self.latest_value(),
        }
    }
}

/// What started an invocation.
#[derive(Debug, Clone, PartialEq)]
pub enum Trigger {
    Alarm(Box<AlarmChange>),
    /// The periodic reconcile schedule (EventBridge `Scheduled Event`).
    Schedule {
        time: DateTime<Utc>,
        /// The rule ARN from `resources`.
        rule: Option<String>,
    },
    /// A scheduled window starts or ends.
    Window(WindowEdge),
}

/// `source` of the window-edge input the template's schedules send.
pub const WINDOW_SOURCE: &str = "visits-autoscaler.window";

/// One edge of a scheduled window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowEdge {
    /// The window's name in `SCHEDULE_WINDOWS`.
    pub window: String,
    pub edge: Edge,
    /// When the schedule was due; with the name, the idempotency key.
    pub scheduled_time: DateTime<Utc>,
}

/// Which edge of a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Edge {
    Start,
    End,
}

impl Edge {
    /// `start` or `end`.
    pub fn as_str(self) -> &'static str {
        match self {
            Edge::Start => "start",
            Edge::End => "end",
        }
    }
}

impl Trigger {
    /// The trigger as the report carries it.
    pub fn summary(&self) -> TriggerSummary {
        match self {
            Trigger::Alarm(a) => a.summary(),
            Trigger::Schedule { time, .. } => TriggerSummary::Schedule { time: *time },
            Trigger::Window(w) => TriggerSummary::Window {
                window: w.window.clone(),
                edge: w.edge.as_str().to_string(),
                scheduled_time: w.scheduled_time,
            },
        }
    }
}

fn bad(msg: impl Into<String>) -> ScalingError {
    ScalingError::BadEvent(msg.into())
}

const SHAPES: &str = "expected a CloudWatch alarm action (alarmData), an EventBridge \
    'CloudWatch Alarm State Change' or 'Scheduled Event', an SNS alarm notification (Records[].Sns), \
    or a window edge (source visits-autoscaler.window)";

/// Parses any accepted event shape. Pure: no AWS call, whatever the input.
pub fn parse(event: &Value) -> Result<Trigger, ScalingError> {
    let Some(obj) = event.as_object() else {
        return Err(bad(format!("event is not a JSON object; {SHAPES}")));
    };
    if obj.contains_key("alarmData") {
        // An EventBridge envelope around an alarm action's body is a shape AWS never sends:
        // refuse it rather than guess which of the two it is.
        if obj.contains_key("detail-type") {
            return Err(bad(format!(
                "both an EventBridge envelope (detail-type) and an alarm action body (alarmData): \
                 not a shape AWS sends; {SHAPES}"
            )));
        }
        return parse_alarm_action(event).map(|a| Trigger::Alarm(Box::new(a)));
    }
    if let Some(detail_type) = obj.get("detail-type").and_then(Value::as_str) {
        return match detail_type {
            "CloudWatch Alarm State Change" => {
                parse_eventbridge_alarm(event).map(|a| Trigger::Alarm(Box::new(a)))
            }
            "Scheduled Event" => parse_schedule(event),
            other => Err(bad(format!(
                "unsupported EventBridge detail-type {other:?}; {SHAPES}"
            ))),
        };
    }
    if obj.contains_key("Records") {
        return parse_sns(event).map(|a| Trigger::Alarm(Box::new(a)));
    }
    if obj.get("source").and_then(Value::as_str) == Some(WINDOW_SOURCE) {
        return parse_window(event);
    }
    Err(bad(format!("unrecognised event; {SHAPES}")))
}

/// Parses any accepted event shape and, for an alarm, checks that it is about this
/// service ([`AlarmChange::check_ours`]). Pure, like [`parse`].
pub fn parse_ours(event: &Value, cluster: &str, service: &str) -> Result<Trigger, ScalingError> {
    let trigger = parse(event)?;
    if let Trigger::Alarm(a) = &trigger {
        a.check_ours(cluster, service)?;
    }
    Ok(trigger)
}

/// Parses an event that must be an alarm (scale functions ignore nothing else).
pub fn parse_alarm(event: &Value) -> Result<AlarmChange, ScalingError> {
    match parse(event)? {
        Trigger::Alarm(a) => Ok(*a),
        Trigger::Schedule { .. } | Trigger::Window(_) => {
            Err(bad("a scheduled event is not an alarm state change"))
        }
    }
}

fn parse_alarm_action(event: &Value) -> Result<AlarmChange, ScalingError> {
    let alarm: CloudWatchAlarm = serde_json::from_value(event.clone())
        .map_err(|e| bad(format!("malformed CloudWatch alarm action: {e}")))?;
    if alarm
        .source
        .as_deref()
        .is_some_and(|s| s != "aws.cloudwatch")
    {
        return Err(bad(format!(
            "alarm action from source {:?}, expected aws.cloudwatch",
            alarm.source
        )));
    }
    from_alarm_data(
        Delivery::AlarmAction,
        alarm.alarm_data,
        &event["alarmData"],
        alarm.alarm_arn,
        alarm.region,
        alarm.account_id,
    )
}

fn parse_eventbridge_alarm(event: &Value) -> Result<AlarmChange, ScalingError> {
    let ev: EventBridgeEvent<CloudWatchAlarmData> = serde_json::from_value(event.clone())
        .map_err(|e| bad(format!("malformed EventBridge alarm state change: {e}")))?;
    if ev.source != "aws.cloudwatch" {
        return Err(bad(format!(
            "alarm state change from source {:?}, expected aws.cloudwatch",
            ev.source
        )));
    }
    let arn = ev.resources.as_ref().and_then(|r| r.first().cloned());
    from_alarm_data(
        Delivery::EventBridge,
        ev.detail,
        &event["detail"],
        arn,
        ev.region,
        ev.account,
    )
}

/// `state.reasonData.recentDatapoints`, newest first, read from the raw payload: the
/// crate types reasonData without a threshold (anomaly detection's bands) as a composite
/// alarm's, which drops them.
fn recent_datapoints(alarm_data: &Value) -> Vec<f64> {
    let raw = alarm_data["state"]["reasonData"]
        .as_str()
        .unwrap_or_default();
    let data: Value = serde_json::from_str(raw).unwrap_or_default();
    let recent = data["recentDatapoints"].as_array().into_iter().flatten();
    recent.rev().filter_map(Value::as_f64).collect()
}

fn from_alarm_data(
    delivery: Delivery,
    data: CloudWatchAlarmData,
    // The same alarm data as sent, for what the crate's types drop.
    raw: &Value,
    alarm_arn: Option<String>,
    region: Option<String>,
    account: Option<String>,
) -> Result<AlarmChange, ScalingError> {
    let state: CloudWatchAlarmState<CloudWatchAlarmStateReasonData> = data
        .state
        .ok_or_else(|| bad(format!("alarm {} has no state", data.alarm_name)))?;
    if data.alarm_name.is_empty() {
        return Err(bad("alarm has an empty alarmName"));
    }
    let (threshold, datapoints) = match &state.reason_data {
        Some(CloudWatchAlarmStateReasonData::Metric(m)) => {
            // evaluatedDatapoints carry timestamps: newest first by time. Otherwise
            // recentDatapoints, which CloudWatch lists oldest to newest.
            let mut evaluated: Vec<_> = m
                .evaluated_datapoints
                .iter()
                .filter_map(|d| d.value.map(|v| (d.timestamp, v)))
                .collect();
            let points = if evaluated.is_empty() {
                m.recent_datapoints.iter().rev().copied().collect()
            } else {
                evaluated.sort_by_key(|p| std::cmp::Reverse(p.0));
                evaluated.into_iter().map(|(_, v)| v).collect()
            };
            (Some(m.threshold), points)
        }
        // No threshold (anomaly detection's bands): the values evaluated all the same.
        _ => (None, recent_datapoints(raw)),
    };
    let (metric, statistic) = metric_from_configuration(&data.configuration).unzip();
    let previous = data.previous_state;
    Ok(AlarmChange {
        delivery,
        alarm_name: data.alarm_name,
        alarm_arn,
        state: AlarmState::from_value(&state.value),
        previous_state: previous.as_ref().map(|p| AlarmState::from_value(&p.value)),
        previous_reason: previous.map(|p| p.reason),
        reason: state.reason,
        timestamp: state.timestamp,
        metric,
        statistic: statistic.flatten(),
        description: data
            .configuration
            .get("description")
            .and_then(Value::as_str)
            .filter(|d| !d.is_empty())
            .map(str::to_string),
        threshold,
        comparison: None,
        datapoints,
        region,
        account,
    })
}

/// The single returned metric of `configuration.metrics[]` and its statistic (None for
/// metric math).
fn metric_from_configuration(conf: &Value) -> Option<(MetricRef, Option<String>)> {
    let metrics = conf.get("metrics")?.as_array()?;
    let stats: Vec<&Value> = metrics.iter().filter_map(|m| m.get("metricStat")).collect();
    let [stat] = stats.as_slice() else {
        return None;
    };
    let metric = stat.get("metric")?;
    let dimensions = metric
        .get("dimensions")
        .and_then(Value::as_object)
        .map(|d| {
            d.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default();
    let statistic = stat.get("stat").and_then(Value::as_str).map(str::to_string);
    let metric = MetricRef {
        namespace: metric.get("namespace")?.as_str()?.to_string(),
        name: metric.get("name")?.as_str()?.to_string(),
        dimensions,
    };
    Some((metric, statistic))
}

fn parse_schedule(event: &Value) -> Result<Trigger, ScalingError> {
    let ev: EventBridgeEvent = serde_json::from_value(event.clone())
        .map_err(|e| bad(format!("malformed EventBridge scheduled event: {e}")))?;
    if ev.source != "aws.events" {
        return Err(bad(format!(
            "scheduled event from source {:?}, expected aws.events",
            ev.source
        )));
    }
    Ok(Trigger::Schedule {
        time: ev.time.ok_or_else(|| bad("scheduled event has no time"))?,
        rule: ev.resources.and_then(|r| r.into_iter().next()),
    })
}

/// The classic alarm notification SNS carries. Our own lenient type: the crate's
/// `CloudWatchAlarmPayload` rejects `"AlarmDescription": null`, which CloudWatch
/// sends for alarms without a description.
fn parse_window(event: &Value) -> Result<Trigger, ScalingError> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Input {
        #[allow(dead_code)]
        source: String,
        window: String,
        edge: Edge,
        scheduled_time: DateTime<Utc>,
    }
    let input: Input = serde_json::from_value(event.clone()).map_err(|e| {
        bad(format!(
            "malformed window edge: {e}; expected {{source, window, edge: start|end, \
             scheduled_time: RFC 3339}}"
        ))
    })?;
    if input.window.is_empty() {
        return Err(bad("window edge names no window"));
    }
    Ok(Trigger::Window(WindowEdge {
        window: input.window,
        edge: input.edge,
        scheduled_time: input.scheduled_time,
    }))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SnsAlarmMessage {
    alarm_name: String,
    #[serde(default)]
    alarm_arn: Option<String>,
    #[serde(rename = "AWSAccountId", default)]
    aws_account_id: Option<String>,
    new_state_value: String,
    #[serde(default)]
    old_state_value: Option<String>,
    #[serde(default)]
    new_state_reason: String,
    #[serde(default)]
    alarm_description: Option<String>,
    state_change_time: String,
    #[serde(default)]
    trigger: Option<SnsAlarmTrigger>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SnsAlarmTrigger {
    #[serde(default)]
    metric_name: Option<String>,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    dimensions: Vec<SnsDimension>,
    #[serde(default)]
    comparison_operator: Option<String>,
    #[serde(default)]
    threshold: Option<f64>,
    #[serde(default)]
    statistic: Option<String>,
}

#[derive(Deserialize)]
struct SnsDimension {
    // CloudWatch writes these lower-case in the classic message.
    #[serde(alias = "Name")]
    name: String,
    #[serde(alias = "Value")]
    value: String,
}

/// The SNS envelope, reduced to what is used: the message and the topic (for the region).
/// Captured deliveries differ in the rest (no `SignatureVersion`, `SigningCertURL` spelled
/// two ways, `Subject: null`), and none of it matters to an alarm.
#[derive(Deserialize)]
struct SnsEvent {
    #[serde(rename = "Records")]
    records: Vec<SnsRecord>,
}

#[derive(Deserialize)]
struct SnsRecord {
    #[serde(rename = "Sns")]
    sns: SnsMessage,
}

#[derive(Deserialize)]
struct SnsMessage {
    #[serde(rename = "Message")]
    message: String,
    #[serde(rename = "TopicArn", default)]
    topic_arn: String,
}

fn parse_sns(event: &Value) -> Result<AlarmChange, ScalingError> {
    let ev: SnsEvent = serde_json::from_value(event.clone())
        .map_err(|e| bad(format!("malformed SNS event: {e}")))?;
    let [record] = ev.records.as_slice() else {
        return Err(bad(format!(
            "SNS event has {} records, expected exactly one",
            ev.records.len()
        )));
    };
    let msg: SnsAlarmMessage = serde_json::from_str(&record.sns.message).map_err(|e| {
        bad(format!(
            "SNS message is not a CloudWatch alarm notification: {e}"
        ))
    })?;
    let state = AlarmState::parse(&msg.new_state_value).ok_or_else(|| {
        bad(format!(
            "alarm {} has unknown NewStateValue {:?}",
            msg.alarm_name, msg.new_state_value
        ))
    })?;
    let timestamp = parse_alarm_time(&msg.state_change_time).ok_or_else(|| {
        bad(format!(
            "alarm {} has unparsable StateChangeTime {:?}",
            msg.alarm_name, msg.state_change_time
        ))
    })?;
    let trigger = msg.trigger;
    let metric = trigger.as_ref().and_then(|t| {
        Some(MetricRef {
            namespace: t.namespace.clone()?,
            name: t.metric_name.clone()?,
            dimensions: t
                .dimensions
                .iter()
                .map(|d| (d.name.clone(), d.value.clone()))
                .collect::<BTreeMap<_, _>>(),
        })
    });
    let region = record
        .sns
        .topic_arn
        .split(':')
        .nth(3)
        .filter(|r| !r.is_empty())
        .map(str::to_string);
    Ok(AlarmChange {
        delivery: Delivery::Sns,
        datapoints: reason_datapoints(&msg.new_state_reason),
        alarm_name: msg.alarm_name,
        alarm_arn: msg.alarm_arn,
        state,
        previous_state: msg.old_state_value.as_deref().and_then(AlarmState::parse),
        previous_reason: None,
        reason: msg.new_state_reason,
        description: msg.alarm_description.filter(|d| !d.is_empty()),
        timestamp,
        threshold: trigger.as_ref().and_then(|t| t.threshold),
        statistic: trigger.as_ref().and_then(|t| t.statistic.clone()),
        comparison: trigger.and_then(|t| t.comparison_operator),
        metric,
        region,
        account: msg.aws_account_id,
    })
}

/// CloudWatch writes `2015-06-03T17:43:27.123+0000` (no colon in the offset).
fn parse_alarm_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .or_else(|_| DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z"))
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Datapoints from a reason such as `... datapoints [1234.0 (06/03/15 17:43:27), 98.0 (...)] was ...`,
/// newest first as CloudWatch lists them.
fn reason_datapoints(reason: &str) -> Vec<f64> {
    let Some(start) = reason.find('[') else {
        return Vec::new();
    };
    let Some(len) = reason[start..].find(']') else {
        return Vec::new();
    };
    reason[start + 1..start + len]
        .split(", ")
        .filter_map(|p| p.split(" (").next()?.trim().parse().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn alarm_states_read_and_print_in_cloudwatch_spelling() {
        for (wire, state) in [
            ("OK", AlarmState::Ok),
            ("ALARM", AlarmState::Alarm),
            ("INSUFFICIENT_DATA", AlarmState::InsufficientData),
        ] {
            let read: AlarmState = serde_json::from_value(json!(wire)).unwrap();
            assert_eq!((read, state.to_string()), (state, wire.to_string()));
            assert_eq!(AlarmState::parse(wire), Some(state));
        }
        assert!(serde_json::from_value::<AlarmState>(json!("Alarm")).is_err());
        assert_eq!(AlarmState::parse("PENDING"), None);
    }

    #[test]
    fn parse_ours_refuses_another_services_alarm_and_passes_schedules() {
        let alarm = |service: &str| {
            json!({"source": "aws.cloudwatch", "alarmArn": "arn:aws:cloudwatch:us-east-1:1:alarm:a",
                "accountId": "1", "time": "2026-11-23T15:00:00Z", "region": "us-east-1",
                "alarmData": {"alarmName": "visits-api-cpu-high",
                    "state": {"value": "ALARM", "reason": "r", "timestamp": "2026-11-23T15:00:00.000+0000"},
                    "configuration": {"metrics": [{"id": "m", "metricStat": {"metric": {
                        "namespace": "AWS/ECS", "name": "CPUUtilization",
                        "dimensions": {"ClusterName": "visits", "ServiceName": service}},
                        "period": 60, "stat": "Average"}, "returnData": true}]}}})
        };
        let ours = parse_ours(&alarm("visits-api"), "visits", "visits-api").unwrap();
        assert!(matches!(ours, Trigger::Alarm(a) if a.state == AlarmState::Alarm));
        match parse_ours(&alarm("other"), "visits", "visits-api") {
            Err(ScalingError::NotOurs(m)) => assert!(m.contains("ServiceName=other"), "{m}"),
            other => panic!("{other:?}"),
        }
        let schedule = json!({"version": "0", "id": "1", "detail-type": "Scheduled Event",
            "source": "aws.events", "account": "1", "time": "2026-11-23T15:00:00Z",
            "region": "us-east-1", "resources": [], "detail": {}});
        assert!(matches!(
            parse_ours(&schedule, "visits", "other-service"),
            Ok(Trigger::Schedule { .. })
        ));
    }

    #[test]
    fn an_alarm_change_carries_what_the_email_shows() {
        let change = |previous: Value, reason_data: &str| {
            parse_alarm(&json!({"version": "0", "id": "1",
                "detail-type": "CloudWatch Alarm State Change", "source": "aws.cloudwatch",
                "account": "1", "time": "2026-11-23T15:00:00Z", "region": "us-east-1",
                "resources": ["arn:aws:cloudwatch:us-east-1:1:alarm:visits-api-cpu-high"],
                "detail": {"alarmName": "visits-api-cpu-high",
                    "state": {"value": "ALARM", "reason": "r", "reasonData": reason_data,
                        "timestamp": "2026-11-23T15:00:00.000+0000"},
                    "previousState": previous,
                    "configuration": {"description": "CPU over 70 %", "metrics": [{"id": "m",
                        "metricStat": {"metric": {"namespace": "AWS/ECS", "name": "CPUUtilization",
                            "dimensions": {"ClusterName": "visits", "ServiceName": "visits-api"}},
                        "period": 60, "stat": "Average"}, "returnData": true}]}}}))
            .unwrap()
        };
        let created = json!({"value": "INSUFFICIENT_DATA",
            "reason": "Unchecked: Initial alarm creation", "timestamp": "2026-11-23T14:59:00.000+0000"});
        let threshold =
            r#"{"version":"1.0","period":60,"threshold":70.0,"recentDatapoints":[80.0,91.5]}"#;
        let a = change(created, threshold);
        assert!(a.leaves_creation());
        assert_eq!(a.previous_state, Some(AlarmState::InsufficientData));
        assert_eq!((a.latest_value(), a.threshold), (Some(91.5), Some(70.0)));
        assert_eq!(a.statistic.as_deref(), Some("Average"));
        assert_eq!(a.description.as_deref(), Some("CPU over 70 %"));

        let no_data = json!({"value": "INSUFFICIENT_DATA", "reason": "no datapoints",
            "timestamp": "2026-11-23T14:59:00.000+0000"});
        assert!(!change(no_data, threshold).leaves_creation());
        // Anomaly detection: bands instead of a threshold; the datapoints still count.
        let ok = json!({"value": "OK", "reason": "in band", "timestamp": "2026-11-23T14:59:00.000+0000"});
        let bands = r#"{"version":"1.0","period":60,"recentDatapoints":[0.5,0.0],"recentUpperThresholds":[0.3]}"#;
        let a = change(ok, bands);
        assert!(!a.leaves_creation());
        assert_eq!((a.datapoints.clone(), a.threshold), (vec![0.0, 0.5], None));
    }

    #[test]
    fn classic_time_parses() {
        let t = parse_alarm_time("2015-06-03T17:43:27.123+0000").unwrap();
        assert_eq!(t.to_rfc3339(), "2015-06-03T17:43:27.123+00:00");
        assert!(parse_alarm_time("yesterday").is_none());
    }

    #[test]
    fn reason_datapoints_newest_first() {
        let r = "Threshold Crossed: 2 out of the last 2 datapoints [91.5 (03/06/15 17:43:00), \
                 88.0 (03/06/15 17:42:00)] were greater than the threshold (70.0)";
        assert_eq!(reason_datapoints(r), vec![91.5, 88.0]);
        assert!(reason_datapoints("no data").is_empty());
    }

    #[test]
    fn window_edges_parse_and_bad_ones_say_why() {
        let ev = json!({"source": "visits-autoscaler.window", "window": "business-hours",
                        "edge": "start", "scheduled_time": "2026-12-01T07:00:00Z"});
        let Trigger::Window(w) = parse(&ev).unwrap() else {
            panic!("not a window edge")
        };
        assert_eq!((w.window.as_str(), w.edge), ("business-hours", Edge::Start));
        assert_eq!(w.scheduled_time.to_rfc3339(), "2026-12-01T07:00:00+00:00");
        for (ev, says) in [
            (
                json!({"source": "visits-autoscaler.window", "window": "w", "edge": "middle",
                    "scheduled_time": "2026-12-01T07:00:00Z"}),
                "unknown variant",
            ),
            // Scheduler left the placeholder in: the input template is wrong.
            (
                json!({"source": "visits-autoscaler.window", "window": "w", "edge": "end",
                    "scheduled_time": "<aws.scheduler.scheduled-time>"}),
                "malformed window edge",
            ),
            (
                json!({"source": "visits-autoscaler.window", "window": "", "edge": "end",
                    "scheduled_time": "2026-12-01T07:00:00Z"}),
                "names no window",
            ),
            (
                json!({"source": "visits-autoscaler.window", "window": "w", "edge": "end",
                    "scheduled_time": "2026-12-01T07:00:00Z", "extra": 1}),
                "unknown field",
            ),
        ] {
            let err = parse(&ev).unwrap_err().to_string();
            assert!(err.contains(says), "{ev} -> {err}");
        }
        assert!(
            parse_alarm(&json!({"source": "visits-autoscaler.window", "window": "w",
            "edge": "end", "scheduled_time": "2026-12-01T07:00:00Z"}))
            .is_err()
        );
    }

    #[test]
    fn unknown_shapes_are_bad_events() {
        for ev in [
            json!([]),
            json!("ALARM"),
            json!({}),
            json!({"detail-type": "ECS Task State Change", "source": "aws.ecs", "detail": {}}),
            json!({"alarmData": {"alarmName": "x"}}),
            json!({"Records": []}),
            json!({"Records": [{"Sns": {"Message": "not json"}}]}),
        ] {
            match parse(&ev) {
                Err(ScalingError::BadEvent(msg)) => assert!(!msg.is_empty()),
                other => panic!("{ev} gave {other:?}"),
            }
        }
    }

    #[test]
    fn schedule_parses() {
        let ev = json!({
            "version": "0", "id": "89d1a02d-5ec7-412e-82f5-13505f849b41",
            "detail-type": "Scheduled Event", "source": "aws.events",
            "account": "123456789012", "time": "2026-11-23T15:00:00Z", "region": "us-east-1",
            "resources": ["arn:aws:events:us-east-1:123456789012:rule/visits-reconcile"],
            "detail": {}
        });
        let Trigger::Schedule { time, rule } = parse(&ev).unwrap() else {
            panic!("not a schedule")
        };
        assert_eq!(time.to_rfc3339(), "2026-11-23T15:00:00+00:00");
        assert!(rule.unwrap().ends_with("rule/visits-reconcile"));
        assert!(parse_alarm(&ev).is_err());
    }
}
