//! CloudWatch: the episode metric the dashboard plots, and the database's
//! connection count for the optional DB cap.

use crate::error::AwsError;
use aws_config::SdkConfig;
use aws_sdk_cloudwatch::types::{Dimension, MetricDatum, StandardUnit, Statistic};
use aws_sdk_cloudwatch::Client;
use std::time::{Duration, SystemTime};

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
        let out = self
            .client
            .get_metric_statistics()
            .namespace("AWS/RDS")
            .metric_name("DatabaseConnections")
            .dimensions(
                Dimension::builder()
                    .name("DBInstanceIdentifier")
                    .value(instance_id)
                    .build(),
            )
            .start_time((now - Duration::from_secs(300)).into())
            .end_time(now.into())
            .period(60)
            .statistics(Statistic::Maximum)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("cloudwatch:GetMetricStatistics", e))?;
        Ok(out
            .datapoints()
            .iter()
            .filter_map(|d| Some((d.timestamp()?.secs(), d.maximum()?)))
            .max_by_key(|(t, _)| *t)
            .map(|(_, v)| v))
    }
}
