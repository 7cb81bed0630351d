//! What CloudWatch writes on a state change: the state reason, its
//! `reasonData` JSON, and the direct alarm-action payload that a Lambda alarm
//! action receives (the shape of `events/scale-up-cpu-high-alarm.json`), as "Lambda alarm
//! actions" in "Using Amazon CloudWatch alarms" shows it:
//! <https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/AlarmThatSendsEmail.html#alarms-and-actions>.

use chrono::{DateTime, TimeZone, Utc};
use serde_json::{json, Value};

use crate::eval::{State, Transition};
use crate::template::AlarmDef;

/// One state of an alarm with its reason, as `state` / `previousState` carry it.
#[derive(Debug, Clone, PartialEq)]
pub struct StateRecord {
    pub state: State,
    pub reason: String,
    /// JSON text (CloudWatch sends it as a string).
    pub reason_data: String,
    /// `2026-11-23T15:03:12.345+0000`.
    pub timestamp: String,
}

impl StateRecord {
    /// The state an alarm is created in.
    pub fn created(at_ms: i64) -> Self {
        Self {
            state: State::InsufficientData,
            reason: "Unchecked: Initial alarm creation".into(),
            reason_data: String::new(),
            timestamp: cw_time(at_ms),
        }
    }

    fn to_json(&self) -> Value {
        let mut v = json!({
            "value": self.state.as_str(),
            "reason": self.reason,
            "timestamp": self.timestamp,
        });
        if !self.reason_data.is_empty() {
            v["reasonData"] = json!(self.reason_data);
        }
        v
    }
}

fn utc(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

/// CloudWatch's timestamp format in alarm payloads.
pub fn cw_time(ms: i64) -> String {
    utc(ms).format("%Y-%m-%dT%H:%M:%S%.3f%z").to_string()
}

/// The new state's record: CloudWatch's reason text and reasonData for a transition.
/// `note` is appended to the reason (e.g. the local time scale), if not empty.
pub fn state_record(def: &AlarmDef, tr: &Transition, note: &str) -> StateRecord {
    let rule = &def.rule;
    let present: Vec<_> = tr.datapoints.iter().flatten().collect();
    let listed = present
        .iter()
        .map(|d| {
            format!(
                "{} ({})",
                round(d.value),
                utc(d.start_ms).format("%d/%m/%y %H:%M:%S")
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    let n = tr.datapoints.len();
    let threshold = format!("{:.1}", rule.threshold);
    let mut reason = match tr.to {
        State::Alarm => format!(
            "Threshold Crossed: {} out of the last {n} datapoints [{listed}] were {} the threshold ({threshold}) (minimum {} datapoints for OK -> ALARM transition).",
            tr.breaching,
            rule.wording(),
            rule.datapoints_to_alarm
        ),
        State::Ok => format!(
            "Threshold Crossed: {} out of the last {n} datapoints [{listed}] were not {} the threshold ({threshold}) (minimum 1 datapoint for ALARM -> OK transition).",
            present.len().saturating_sub(tr.breaching),
            rule.wording()
        ),
        State::InsufficientData => {
            format!("Insufficient Data: {n} datapoints were unknown.")
        }
    };
    if !note.is_empty() {
        reason.push(' ');
        reason.push_str(note);
    }
    let oldest = tr
        .datapoints
        .last()
        .and_then(|d| d.map(|d| d.start_ms))
        .unwrap_or(tr.at_ms);
    let reason_data = json!({
        "version": "1.0",
        "queryDate": cw_time(tr.at_ms),
        "startDate": cw_time(oldest),
        "statistic": format!("{:?}", rule.statistic),
        "period": rule.period_s,
        "recentDatapoints": present.iter().rev().map(|d| round(d.value)).collect::<Vec<_>>(),
        "threshold": rule.threshold,
        "evaluatedDatapoints": present.iter().map(|d| json!({
            "timestamp": cw_time(d.start_ms),
            "sampleCount": d.sample_count as f64,
            "value": round(d.value),
        })).collect::<Vec<_>>(),
    });
    StateRecord {
        state: tr.to,
        reason,
        reason_data: reason_data.to_string(),
        timestamp: cw_time(tr.at_ms),
    }
}

fn round(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// The payload a Lambda alarm action receives on a state change.
pub fn alarm_action_event(
    def: &AlarmDef,
    account: &str,
    region: &str,
    state: &StateRecord,
    previous: &StateRecord,
) -> Value {
    json!({
        "source": "aws.cloudwatch",
        "alarmArn": alarm_arn(def, account, region),
        "accountId": account,
        "time": state.timestamp,
        "region": region,
        "alarmData": {
            "alarmName": def.name,
            "state": state.to_json(),
            "previousState": previous.to_json(),
            "configuration": {
                "metrics": [{
                    "id": format!("local-{}", def.logical_id.to_lowercase()),
                    "metricStat": {
                        "metric": {
                            "namespace": def.namespace,
                            "name": def.metric,
                            "dimensions": def.dimensions,
                        },
                        "period": def.rule.period_s,
                        "stat": format!("{:?}", def.rule.statistic),
                    },
                    "returnData": true,
                }],
            },
        },
    })
}

/// `arn:aws:cloudwatch:REGION:ACCOUNT:alarm:NAME`.
pub fn alarm_arn(def: &AlarmDef, account: &str, region: &str) -> String {
    format!("arn:aws:cloudwatch:{region}:{account}:alarm:{}", def.name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::{Comparison, Datapoint, MissingData, Rule, Statistic};

    fn def() -> AlarmDef {
        AlarmDef {
            logical_id: "CpuHighAlarm".into(),
            name: "visits-api-cpu-high".into(),
            namespace: "AWS/ECS".into(),
            metric: "CPUUtilization".into(),
            dimensions: [("ClusterName", "visits"), ("ServiceName", "visits-api")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            rule: Rule {
                comparison: Comparison::Greater,
                threshold: 70.0,
                statistic: Statistic::Average,
                period_s: 60,
                evaluation_periods: 3,
                datapoints_to_alarm: 3,
                missing: MissingData::Missing,
            },
            actions: vec!["scale-up".into()],
        }
    }

    fn transition() -> Transition {
        let at = 1_795_000_000_000;
        Transition {
            from: State::Ok,
            to: State::Alarm,
            datapoints: (1..=3)
                .map(|k| {
                    Some(Datapoint {
                        start_ms: at - k * 60_000,
                        value: 80.0 + k as f64,
                        sample_count: 2,
                    })
                })
                .collect(),
            breaching: 3,
            at_ms: at,
        }
    }

    /// The payload parses with the functions' own trigger parser, which sees
    /// the alarm, its state, metric, threshold and newest datapoint.
    #[test]
    fn the_functions_parse_the_payload() {
        let d = def();
        let state = state_record(&d, &transition(), "(local)");
        let prev = StateRecord::created(1_794_999_000_000);
        let ev = alarm_action_event(&d, "123456789012", "us-east-1", &state, &prev);
        let a = scaling::trigger::parse_alarm(&ev).expect("scaling parses the event");
        assert_eq!(a.alarm_name, "visits-api-cpu-high");
        assert_eq!(a.state.as_str(), "ALARM");
        assert_eq!(a.threshold, Some(70.0));
        assert_eq!(a.latest_value(), Some(81.0), "newest first");
        let m = a.metric.expect("metric");
        assert_eq!(
            (m.namespace.as_str(), m.name.as_str()),
            ("AWS/ECS", "CPUUtilization")
        );
        assert_eq!(m.dimensions["ServiceName"], "visits-api");
        assert!(
            a.reason
                .starts_with("Threshold Crossed: 3 out of the last 3"),
            "{}",
            a.reason
        );
        assert!(a.reason.ends_with("(local)"));
        assert_eq!(a.timestamp.timestamp_millis(), transition().at_ms);
    }

    /// Same keys as the sample that CloudWatch sends (events/), recursively.
    #[test]
    fn same_shape_as_the_sample_event() {
        fn keys(v: &Value, path: &str, out: &mut Vec<String>) {
            if let Value::Object(m) = v {
                for (k, v) in m {
                    // Dimension names are data, not shape.
                    if path.ends_with("/dimensions") {
                        continue;
                    }
                    let p = format!("{path}/{k}");
                    out.push(p.clone());
                    keys(v, &p, out);
                }
            } else if let Value::Array(a) = v {
                if let Some(first) = a.first() {
                    keys(first, &format!("{path}[]"), out);
                }
            }
        }
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../events/scale-up-cpu-high-alarm.json");
        let sample: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let d = def();
        let state = state_record(&d, &transition(), "");
        let prev = state_record(&d, &transition(), "");
        let ours = alarm_action_event(&d, "123456789012", "us-east-1", &state, &prev);
        let (mut want, mut got) = (Vec::new(), Vec::new());
        keys(&sample, "", &mut want);
        keys(&ours, "", &mut got);
        // The sample's metric has a unit because its alarm sets one; ours sets none.
        want.retain(|k| !k.ends_with("metricStat/unit"));
        want.sort();
        got.sort();
        assert_eq!(got, want);
        let rd: Value = serde_json::from_str(&state.reason_data).unwrap();
        let srd: Value =
            serde_json::from_str(sample["alarmData"]["state"]["reasonData"].as_str().unwrap())
                .unwrap();
        let (mut a, mut b) = (Vec::new(), Vec::new());
        keys(&rd, "", &mut a);
        keys(&srd, "", &mut b);
        a.sort();
        b.sort();
        assert_eq!(a, b, "reasonData keys");
    }
}
