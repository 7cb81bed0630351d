//! The CloudWatch calls the driver makes to the emulator, through
//! aws-sdk-cloudwatch (tests/support/moto/moto_cbor.py translates the SDK's CBOR for moto).

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Context;
use aws_sdk_cloudwatch::types::{
    ComparisonOperator, Dimension, MetricDatum, StateValue, Statistic as CwStat,
};
use aws_sdk_cloudwatch::Client;

use super::emf::EmfRecord;
use super::eval::State;
use super::template::AlarmDef;

/// The datums to publish for `records`, by namespace: for each alarm (its
/// definition and the EMF field standing in for its metric) and each record
/// carrying that field, one datum in the alarm's namespace, metric and
/// dimensions, at the record's time. Two alarms on one metric publish it once.
pub fn datapoints<'a>(
    alarms: impl Iterator<Item = (&'a AlarmDef, &'a str)>,
    records: &[EmfRecord],
) -> BTreeMap<String, Vec<MetricDatum>> {
    let mut out: BTreeMap<String, Vec<MetricDatum>> = BTreeMap::new();
    let mut seen = BTreeSet::new();
    for (def, field) in alarms {
        if !seen.insert((def.namespace.clone(), def.metric.clone())) {
            continue;
        }
        for rec in records.iter().filter(|r| super::matches(def, r)) {
            let Some(v) = rec.values.get(field) else {
                continue;
            };
            let dims = def
                .dimensions
                .iter()
                .map(|(name, value)| Dimension::builder().name(name).value(value).build())
                .collect();
            out.entry(def.namespace.clone()).or_default().push(
                MetricDatum::builder()
                    .metric_name(&def.metric)
                    .set_dimensions(Some(dims))
                    .timestamp(aws_sdk_cloudwatch::primitives::DateTime::from_millis(
                        rec.t_ms,
                    ))
                    .value(*v)
                    .build(),
            );
        }
    }
    out
}

/// `PutMetricData` of [`datapoints`] (at most 1,000 datums per call).
pub async fn put_datapoints(
    cw: &Client,
    data: BTreeMap<String, Vec<MetricDatum>>,
) -> anyhow::Result<()> {
    for (namespace, datums) in data {
        for chunk in datums.chunks(1000) {
            cw.put_metric_data()
                .namespace(&namespace)
                .set_metric_data(Some(chunk.to_vec()))
                .send()
                .await
                .with_context(|| format!("PutMetricData {namespace}"))?;
        }
    }
    Ok(())
}

/// `PutMetricAlarm` with the template's settings, acting on `actions` (ARNs).
pub async fn put_metric_alarm(
    cw: &Client,
    def: &AlarmDef,
    actions: &[String],
) -> anyhow::Result<()> {
    let r = &def.rule;
    let comparison = ComparisonOperator::from(r.comparison.as_str());
    let statistic = CwStat::from(r.statistic.as_str());
    let dimensions = def
        .dimensions
        .iter()
        .map(|(name, value)| Dimension::builder().name(name).value(value).build())
        .collect();
    cw.put_metric_alarm()
        .alarm_name(&def.name)
        .namespace(&def.namespace)
        .metric_name(&def.metric)
        .statistic(statistic)
        .comparison_operator(comparison)
        .threshold(r.threshold)
        .period(r.period_s as i32)
        .evaluation_periods(r.evaluation_periods as i32)
        .datapoints_to_alarm(r.datapoints_to_alarm as i32)
        .treat_missing_data(r.missing.as_str())
        .set_dimensions(Some(dimensions))
        .set_alarm_actions(Some(actions.to_vec()))
        .send()
        .await
        .with_context(|| format!("PutMetricAlarm {}", def.name))?;
    Ok(())
}

/// `SetAlarmState`: what CloudWatch records on a state change.
pub async fn set_alarm_state(
    cw: &Client,
    name: &str,
    state: State,
    reason: &str,
    reason_data: &str,
) -> anyhow::Result<()> {
    cw.set_alarm_state()
        .alarm_name(name)
        .state_value(StateValue::from(state.as_str()))
        .state_reason(reason)
        .state_reason_data(reason_data)
        .send()
        .await
        .with_context(|| format!("SetAlarmState {name}"))?;
    Ok(())
}

/// The alarm's state value in the emulator (`DescribeAlarms`); None when
/// there is no such alarm.
pub async fn state_of(cw: &Client, name: &str) -> anyhow::Result<Option<String>> {
    let out = cw
        .describe_alarms()
        .alarm_names(name)
        .send()
        .await
        .with_context(|| format!("DescribeAlarms {name}"))?;
    Ok(out
        .metric_alarms()
        .iter()
        .find(|a| a.alarm_name() == Some(name))
        .and_then(|a| a.state_value())
        .map(|s| s.as_str().to_string()))
}
