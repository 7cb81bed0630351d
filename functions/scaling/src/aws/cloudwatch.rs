//! CloudWatch: the episode metric the dashboard plots, the database's
//! connection count for the optional DB cap, and the scale-out alarms with their
//! newest datapoint for scale-up's re-evaluation, and the load balancer's request
//! count history that predictive scaling forecasts from.

use crate::error::AwsError;
use crate::report::MetricRef;
use aws_config::SdkConfig;
use aws_sdk_cloudwatch::types::{
    AlarmType, Dimension, Metric, MetricDataQuery, MetricDatum, MetricStat, ScanBy, StandardUnit,
    StateValue, Statistic,
};
use aws_sdk_cloudwatch::Client;
use chrono::{DateTime, Utc};
use std::time::{Duration, SystemTime};

/// A metric alarm as DescribeAlarms gives it: its state and what it watches.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricAlarm {
    pub name: String,
    pub arn: Option<String>,
    /// ALARM, OK or INSUFFICIENT_DATA.
    pub state: String,
    /// When the alarm entered `state` (StateTransitionedTimestamp, else
    /// StateUpdatedTimestamp).
    pub since: DateTime<Utc>,
    pub threshold: Option<f64>,
    pub comparison: Option<String>,
    /// None for a metric-math alarm.
    pub metric: Option<MetricRef>,
    /// `Average`, `Sum`... (None: an extended statistic or metric math).
    pub statistic: Option<String>,
    pub period_s: Option<i32>,
}

/// One datapoint: the start of its period and its value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Datapoint {
    pub at: DateTime<Utc>,
    pub value: f64,
}

fn to_chrono(t: &aws_smithy_types::DateTime) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(t.secs(), t.subsec_nanos())
}

/// CloudWatch adapter.
#[derive(Debug, Clone)]
pub struct CloudWatch {
    client: Client,
}

/// Episode metrics for one service: each name says what happened, the value how much.
#[derive(Debug, Clone, PartialEq)]
pub struct EpisodeMetrics<'a> {
    pub namespace: &'a str,
    pub cluster: &'a str,
    pub service: &'a str,
    /// e.g. `("ScaleOutTasks", 2.0)`, `("AsgScaleOut", 1.0)`, `("ScaleInTasks", 1.0)`.
    pub values: Vec<(&'a str, f64)>,
}

impl CloudWatch {
    /// Builds the client from the shared SDK config.
    pub fn new(conf: &SdkConfig) -> Self {
        Self::from_client(Client::new(conf))
    }

    /// Wraps an existing client (tests: aws-smithy-mocks).
    pub fn from_client(client: Client) -> Self {
        CloudWatch { client }
    }

    /// The raw client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// One PutMetricData with the ClusterName/ServiceName dimensions the dashboard uses.
    pub async fn put_episode_metrics(&self, m: &EpisodeMetrics<'_>) -> Result<(), AwsError> {
        if m.values.is_empty() {
            return Ok(());
        }
        let data = m
            .values
            .iter()
            .map(|(name, value)| {
                MetricDatum::builder()
                    .metric_name(*name)
                    .value(*value)
                    .unit(StandardUnit::Count)
                    .dimensions(
                        Dimension::builder()
                            .name("ClusterName")
                            .value(m.cluster)
                            .build(),
                    )
                    .dimensions(
                        Dimension::builder()
                            .name("ServiceName")
                            .value(m.service)
                            .build(),
                    )
                    .build()
            })
            .collect();
        self.client
            .put_metric_data()
            .namespace(m.namespace)
            .set_metric_data(Some(data))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("cloudwatch:PutMetricData", e))?;
        Ok(())
    }

    /// The newest `Maximum` of AWS/RDS `DatabaseConnections` over the last 5
    /// minutes; None when there is no datapoint yet.
    pub async fn database_connections(&self, instance_id: &str) -> Result<Option<f64>, AwsError> {
        let now = SystemTime::now();
        let metric = MetricRef {
            namespace: "AWS/RDS".into(),
            name: "DatabaseConnections".into(),
            dimensions: [("DBInstanceIdentifier".into(), instance_id.into())].into(),
        };
        let from = now - Duration::from_secs(300);
        let newest = self
            .newest(&metric, Statistic::Maximum, 60, from, now)
            .await?;
        Ok(newest.map(|d| d.value))
    }

    /// DescribeAlarms for `names` (metric alarms, 100 names per call: the API's limit).
    /// Names CloudWatch does not know are simply absent from the answer.
    pub async fn describe_metric_alarms(
        &self,
        names: &[String],
    ) -> Result<Vec<MetricAlarm>, AwsError> {
        let mut out = Vec::with_capacity(names.len());
        for chunk in names.chunks(100) {
            let page = self
                .client
                .describe_alarms()
                .set_alarm_names(Some(chunk.to_vec()))
                .alarm_types(AlarmType::MetricAlarm)
                .max_records(100)
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("cloudwatch:DescribeAlarms", e))?;
            out.extend(page.metric_alarms().iter().map(|a| {
                let metric = match (a.namespace(), a.metric_name()) {
                    (Some(ns), Some(name)) => Some(MetricRef {
                        namespace: ns.to_string(),
                        name: name.to_string(),
                        dimensions: a
                            .dimensions()
                            .iter()
                            .filter_map(|d| Some((d.name()?.to_string(), d.value()?.to_string())))
                            .collect(),
                    }),
                    _ => None,
                };
                MetricAlarm {
                    name: a.alarm_name().unwrap_or_default().to_string(),
                    arn: a.alarm_arn().map(str::to_string),
                    state: a
                        .state_value()
                        .map_or("UNKNOWN", StateValue::as_str)
                        .to_string(),
                    since: a
                        .state_transitioned_timestamp()
                        .or(a.state_updated_timestamp())
                        .and_then(to_chrono)
                        .unwrap_or_default(),
                    threshold: a.threshold(),
                    comparison: a.comparison_operator().map(|c| c.as_str().to_string()),
                    metric,
                    statistic: a.statistic().map(|s| s.as_str().to_string()),
                    period_s: a.period(),
                }
            }));
        }
        Ok(out)
    }

    /// The newest datapoint of the metric an alarm watches, with the alarm's
    /// statistic and period, over the last three periods; None when the alarm is
    /// metric math or there is no datapoint. CloudWatch returns the period that is
    /// still filling too, so a 10 s metric has a datapoint at most ~10 s old.
    pub async fn newest_datapoint(
        &self,
        alarm: &MetricAlarm,
        now: SystemTime,
    ) -> Result<Option<Datapoint>, AwsError> {
        let (Some(metric), Some(stat), Some(period)) =
            (&alarm.metric, &alarm.statistic, alarm.period_s)
        else {
            return Ok(None);
        };
        let period = period.max(1);
        let (from, to) = (
            now - Duration::from_secs(3 * period as u64),
            now + Duration::from_secs(period as u64),
        );
        let stat = Statistic::from(stat.as_str());
        self.newest(metric, stat, period, from, to).await
    }

    /// GetMetricStatistics of one metric and statistic over `[from, to)`: the newest
    /// datapoint, or None.
    async fn newest(
        &self,
        metric: &MetricRef,
        stat: Statistic,
        period: i32,
        from: SystemTime,
        to: SystemTime,
    ) -> Result<Option<Datapoint>, AwsError> {
        let dims = metric
            .dimensions
            .iter()
            .map(|(k, v)| Dimension::builder().name(k).value(v).build())
            .collect();
        let out = self
            .client
            .get_metric_statistics()
            .namespace(&metric.namespace)
            .metric_name(&metric.name)
            .set_dimensions(Some(dims))
            .start_time(from.into())
            .end_time(to.into())
            .period(period)
            .statistics(stat.clone())
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("cloudwatch:GetMetricStatistics", e))?;
        Ok(out
            .datapoints()
            .iter()
            .filter_map(|d| {
                let value = match &stat {
                    Statistic::Average => d.average(),
                    Statistic::Sum => d.sum(),
                    Statistic::Maximum => d.maximum(),
                    Statistic::Minimum => d.minimum(),
                    Statistic::SampleCount => d.sample_count(),
                    _ => None,
                }?;
                Some(Datapoint {
                    at: to_chrono(d.timestamp()?)?,
                    value,
                })
            })
            .max_by_key(|d| d.at))
    }

    /// The load balancer's `RequestCount` (namespace `AWS/ApplicationELB`, dimensions
    /// `LoadBalancer` and `TargetGroup`, statistic Sum) per `step` from `from` to `to`, oldest
    /// first, one value per step (None where CloudWatch has no datapoint: the load balancer
    /// publishes RequestCount only for periods with requests). `from` and `to` should be whole
    /// steps: GetMetricData aligns periods to them.
    ///
    /// One GetMetricData query, followed through `NextToken` (at most 100,800 datapoints per
    /// call; a 14-day history at 60 s is 20,160), `ScanBy=TimestampAscending`.
    /// ("GetMetricData", Amazon CloudWatch API Reference,
    /// <https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_GetMetricData.html>;
    /// the metric: "CloudWatch metrics for your Application Load Balancer",
    /// <https://docs.aws.amazon.com/elasticloadbalancing/latest/application/load-balancer-cloudwatch-metrics.html>.)
    pub async fn request_counts(
        &self,
        load_balancer: &str,
        target_group: &str,
        step: Duration,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<crate::forecast::Series, AwsError> {
        let step_s = step.as_secs().max(60) as i64;
        let slots = ((to - from).num_seconds() / step_s).max(0) as usize;
        let mut values = vec![None; slots];
        let query = MetricDataQuery::builder()
            .id("requests")
            .metric_stat(
                MetricStat::builder()
                    .metric(
                        Metric::builder()
                            .namespace("AWS/ApplicationELB")
                            .metric_name("RequestCount")
                            .dimensions(
                                Dimension::builder()
                                    .name("LoadBalancer")
                                    .value(load_balancer)
                                    .build(),
                            )
                            .dimensions(
                                Dimension::builder()
                                    .name("TargetGroup")
                                    .value(target_group)
                                    .build(),
                            )
                            .build(),
                    )
                    .period(step_s as i32)
                    .stat("Sum")
                    .build(),
            )
            .return_data(true)
            .build();
        let mut token: Option<String> = None;
        // Bounded: each page holds at least one datapoint of at most `slots`.
        for _ in 0..=slots.max(1) {
            let out = self
                .client
                .get_metric_data()
                .metric_data_queries(query.clone())
                .start_time(aws_smithy_types::DateTime::from_secs(from.timestamp()))
                .end_time(aws_smithy_types::DateTime::from_secs(to.timestamp()))
                .scan_by(ScanBy::TimestampAscending)
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("cloudwatch:GetMetricData", e))?;
            for r in out.metric_data_results() {
                for (t, v) in r.timestamps().iter().zip(r.values()) {
                    let i = (t.secs() - from.timestamp()).div_euclid(step_s);
                    if let Some(slot) = usize::try_from(i).ok().and_then(|i| values.get_mut(i)) {
                        *slot = Some(slot.unwrap_or(0.0) + v);
                    }
                }
            }
            match out.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => break,
            }
        }
        Ok(crate::forecast::Series {
            step: Duration::from_secs(step_s as u64),
            values,
        })
    }
}
