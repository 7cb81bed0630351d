//! Metric history in the emulator's CloudWatch: what a load balancer would have published.

use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{Dimension, MetricDatum, StandardUnit};

/// The load balancer's `RequestCount` (AWS/ApplicationELB, per load balancer and target
/// group): one sum inside each step of `step_s` seconds from `from_s` (Unix seconds), the
/// step `i` at `rps[i]` requests per second. Predictive scaling and the forecast review read
/// it back with GetMetricData. The dimensions are spelled here as the ALB publishes them
/// (<https://docs.aws.amazon.com/elasticloadbalancing/latest/application/load-balancer-cloudwatch-metrics.html>),
/// not taken from `scaling`'s reader, so a wrong name in the reader fails the tests.
pub async fn put_request_counts(
    cw: &aws_sdk_cloudwatch::Client,
    load_balancer: &str,
    target_group: &str,
    from_s: i64,
    step_s: i64,
    rps: &[f64],
) -> anyhow::Result<()> {
    let data: Vec<MetricDatum> = rps
        .iter()
        .enumerate()
        .map(|(i, r)| {
            MetricDatum::builder()
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
                .timestamp(DateTime::from_secs(from_s + i as i64 * step_s + 10))
                .value(r * step_s as f64)
                .unit(StandardUnit::Count)
                .build()
        })
        .collect();
    // PutMetricData takes at most 1,000 datums a call.
    for chunk in data.chunks(500) {
        cw.put_metric_data()
            .namespace("AWS/ApplicationELB")
            .set_metric_data(Some(chunk.to_vec()))
            .send()
            .await?;
    }
    Ok(())
}
