//! `CloudWatch Alarm State Change` (EventBridge) detail.

use super::time::{de_opt_time, de_time};
use chrono::{DateTime, Utc};
use scaling::trigger::AlarmState;
use serde::Deserialize;
use std::collections::BTreeMap;

/// The detail of an alarm state change: the alarm, its new and previous state.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AlarmChange {
    pub alarm_name: String,
    pub state: StateRecord,
    /// Absent when the event reports the alarm's creation.
    #[serde(default)]
    pub previous_state: Option<StateRecord>,
    #[serde(default)]
    pub configuration: Option<AlarmConfiguration>,
}

/// One state of an alarm, as CloudWatch records it: the state and why it was entered.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StateRecord {
    pub value: AlarmState,
    #[serde(default)]
    pub reason: String,
    /// A JSON document inside a string (CloudWatch's choice); see [`StateRecord::reason_data`].
    #[serde(default, rename = "reasonData")]
    pub reason_data_raw: Option<String>,
    #[serde(deserialize_with = "de_time")]
    pub timestamp: DateTime<Utc>,
}

/// The part of `reasonData` the email shows: the threshold and the datapoints.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ReasonData {
    #[serde(default)]
    pub threshold: Option<f64>,
    #[serde(default)]
    pub recent_datapoints: Vec<f64>,
    #[serde(default)]
    pub statistic: Option<String>,
    #[serde(default)]
    pub period: Option<u32>,
    #[serde(default, deserialize_with = "de_opt_time")]
    pub start_date: Option<DateTime<Utc>>,
}

impl StateRecord {
    /// `reasonData` decoded; `None` when absent or not the metric-alarm shape
    /// (composite alarms carry other data there). Never an error: it only adds detail.
    pub fn reason_data(&self) -> Option<ReasonData> {
        self.reason_data_raw
            .as_deref()
            .and_then(|s| serde_json::from_str(s).ok())
    }

    /// True for the state CloudWatch gives an alarm when it is created or updated
    /// ("Unchecked: Initial alarm creation"): a transition out of it is a deploy
    /// artefact, not news.
    pub fn is_unchecked(&self) -> bool {
        self.value == AlarmState::InsufficientData && self.reason.starts_with("Unchecked")
    }
}

/// The alarm's configuration as EventBridge carries it (no threshold: that is in `reasonData`).
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct AlarmConfiguration {
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub metrics: Vec<AlarmMetric>,
}

/// One metric (or expression) the alarm evaluates.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct AlarmMetric {
    #[serde(default)]
    pub metric_stat: Option<MetricStat>,
}

/// A metric and how it is aggregated.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct MetricStat {
    pub metric: MetricId,
    #[serde(default)]
    pub stat: Option<String>,
}

/// Namespace, name and dimensions of a metric.
#[derive(Debug, Clone, Deserialize, Default)]
pub struct MetricId {
    #[serde(default)]
    pub namespace: Option<String>,
    pub name: String,
    #[serde(default)]
    pub dimensions: BTreeMap<String, String>,
}

impl AlarmChange {
    /// The first metric's dimensions: used to reject alarms on another service.
    pub fn dimensions(&self) -> Option<&BTreeMap<String, String>> {
        self.configuration
            .as_ref()?
            .metrics
            .iter()
            .find_map(|m| m.metric_stat.as_ref())
            .map(|s| &s.metric.dimensions)
    }

    /// `Namespace/Name` of the first metric, for the body.
    pub fn metric_label(&self) -> Option<String> {
        let stat = self
            .configuration
            .as_ref()?
            .metrics
            .iter()
            .find_map(|m| m.metric_stat.as_ref())?;
        let ns = stat.metric.namespace.as_deref().unwrap_or("?");
        Some(match &stat.stat {
            Some(s) => format!("{ns}/{} ({s})", stat.metric.name),
            None => format!("{ns}/{}", stat.metric.name),
        })
    }
}
