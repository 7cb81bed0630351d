//! CloudWatch through the real aws-sdk-cloudwatch against the emulator.
//!
//! The SDK speaks Smithy RPC v2 CBOR, which moto does not; tests/support/moto/moto_cbor.py
//! translates it to moto's awsJson. These tests go through every kind of value
//! the functions rely on: timestamps and doubles both ways, lists, nested
//! structures, empty outputs and a typed error.

use std::time::{Duration, SystemTime};

use aws_sdk_cloudwatch::operation::set_alarm_state::SetAlarmStateError;
use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{
    ComparisonOperator, Dimension, HistoryItemType, Metric, MetricDataQuery, MetricDatum,
    MetricStat, StandardUnit, StateValue, Statistic,
};
use test_support::moto;

async fn client() -> aws_sdk_cloudwatch::Client {
    aws_sdk_cloudwatch::Client::new(&moto::shared().sdk_config().await)
}

fn dimension() -> Dimension {
    Dimension::builder()
        .name("ServiceName")
        .value("visits-api")
        .build()
}

/// Whole seconds: the emulator buckets datapoints by period from the timestamp.
fn now() -> SystemTime {
    let secs = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs - secs % 60)
}

#[tokio::test]
async fn put_metric_data_reads_back_through_get_metric_data_and_statistics() {
    let cw = client().await;
    let namespace = "CborTest/ReadBack";
    let at = now();
    for value in [2.5, 4.0] {
        cw.put_metric_data()
            .namespace(namespace)
            .metric_data(
                MetricDatum::builder()
                    .metric_name("InFlight")
                    .dimensions(dimension())
                    .timestamp(DateTime::from(at))
                    .value(value)
                    .unit(StandardUnit::Count)
                    .build(),
            )
            .send()
            .await
            .expect("PutMetricData");
    }
    let start = DateTime::from(at - Duration::from_secs(600));
    let end = DateTime::from(at + Duration::from_secs(600));

    let stats = cw
        .get_metric_statistics()
        .namespace(namespace)
        .metric_name("InFlight")
        .dimensions(dimension())
        .start_time(start)
        .end_time(end)
        .period(60)
        .statistics(Statistic::Sum)
        .statistics(Statistic::Maximum)
        .statistics(Statistic::SampleCount)
        .send()
        .await
        .expect("GetMetricStatistics");
    assert_eq!(stats.label(), Some("InFlight"));
    let points = stats.datapoints();
    assert_eq!(points.len(), 1, "one period holds both values: {points:?}");
    assert_eq!(points[0].sum(), Some(6.5));
    assert_eq!(points[0].maximum(), Some(4.0));
    assert_eq!(points[0].sample_count(), Some(2.0));
    assert_eq!(points[0].timestamp(), Some(&DateTime::from(at)));

    let data = cw
        .get_metric_data()
        .start_time(start)
        .end_time(end)
        .metric_data_queries(
            MetricDataQuery::builder()
                .id("inflight")
                .metric_stat(
                    MetricStat::builder()
                        .metric(
                            Metric::builder()
                                .namespace(namespace)
                                .metric_name("InFlight")
                                .dimensions(dimension())
                                .build(),
                        )
                        .period(60)
                        .stat("Maximum")
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .expect("GetMetricData");
    let results = data.metric_data_results();
    assert_eq!(results.len(), 1, "{results:?}");
    assert_eq!(results[0].id(), Some("inflight"));
    assert_eq!(results[0].values(), &[4.0]);
    assert_eq!(results[0].timestamps(), &[DateTime::from(at)]);
}

#[tokio::test]
async fn a_large_put_metric_data_is_gzipped_by_the_sdk_and_still_lands() {
    let cw = client().await;
    let namespace = "CborTest/Large";
    let at = now();
    // 300 datums encode to more than the SDK's 10 KiB compression threshold.
    let data: Vec<MetricDatum> = (0..300)
        .map(|i| {
            MetricDatum::builder()
                .metric_name("Requests")
                .dimensions(dimension())
                .timestamp(DateTime::from(at))
                .value(f64::from(i))
                .build()
        })
        .collect();
    cw.put_metric_data()
        .namespace(namespace)
        .set_metric_data(Some(data))
        .send()
        .await
        .expect("PutMetricData");
    let stats = cw
        .get_metric_statistics()
        .namespace(namespace)
        .metric_name("Requests")
        .dimensions(dimension())
        .start_time(DateTime::from(at - Duration::from_secs(600)))
        .end_time(DateTime::from(at + Duration::from_secs(600)))
        .period(60)
        .statistics(Statistic::SampleCount)
        .statistics(Statistic::Sum)
        .send()
        .await
        .expect("GetMetricStatistics");
    let points = stats.datapoints();
    assert_eq!(points.len(), 1, "{points:?}");
    assert_eq!(points[0].sample_count(), Some(300.0));
    assert_eq!(points[0].sum(), Some(44850.0));
}

#[tokio::test]
async fn alarm_state_changes_show_in_describe_alarms_and_history() {
    let cw = client().await;
    let name = "cbor-test-cpu-high";
    cw.put_metric_alarm()
        .alarm_name(name)
        .namespace("CborTest/Alarms")
        .metric_name("CPUUtilization")
        .dimensions(dimension())
        .statistic(Statistic::Average)
        .period(60)
        .evaluation_periods(3)
        .threshold(70.5)
        .comparison_operator(ComparisonOperator::GreaterThanThreshold)
        .send()
        .await
        .expect("PutMetricAlarm");
    cw.set_alarm_state()
        .alarm_name(name)
        .state_value(StateValue::Alarm)
        .state_reason("test drives it")
        .send()
        .await
        .expect("SetAlarmState");

    let described = cw
        .describe_alarms()
        .alarm_names(name)
        .send()
        .await
        .expect("DescribeAlarms");
    let alarms = described.metric_alarms();
    assert_eq!(alarms.len(), 1, "{alarms:?}");
    let alarm = &alarms[0];
    assert_eq!(alarm.state_value(), Some(&StateValue::Alarm));
    assert_eq!(alarm.state_reason(), Some("test drives it"));
    assert_eq!(alarm.threshold(), Some(70.5));
    assert_eq!(alarm.evaluation_periods(), Some(3));
    assert_eq!(alarm.dimensions(), &[dimension()]);
    let updated = alarm.state_updated_timestamp().expect("state timestamp");
    let age = DateTime::from(SystemTime::now()).secs() - updated.secs();
    assert!((0..3600).contains(&age), "state updated {age}s ago");

    cw.set_alarm_state()
        .alarm_name(name)
        .state_value(StateValue::Ok)
        .state_reason("test settles it")
        .send()
        .await
        .expect("SetAlarmState");
    // Like notify's flap check: a time window, paginated (one item per page).
    let now = SystemTime::now();
    let mut pages = cw
        .describe_alarm_history()
        .alarm_name(name)
        .history_item_type(HistoryItemType::StateUpdate)
        .start_date(DateTime::from(now - Duration::from_secs(3600)))
        .end_date(DateTime::from(now + Duration::from_secs(60)))
        .max_records(1)
        .into_paginator()
        .send();
    let mut summaries = Vec::new();
    while let Some(page) = pages.next().await {
        for item in page.expect("DescribeAlarmHistory").alarm_history_items() {
            assert!(item.timestamp().is_some(), "{item:?}");
            summaries.push(item.history_summary().unwrap_or_default().to_string());
        }
    }
    assert_eq!(
        summaries,
        [
            "Alarm updated from ALARM to OK",
            "Alarm updated from OK to ALARM"
        ],
        "newest first, one per state change"
    );
    let later = cw
        .describe_alarm_history()
        .alarm_name(name)
        .start_date(DateTime::from(now + Duration::from_secs(60)))
        .send()
        .await
        .expect("DescribeAlarmHistory");
    assert!(later.alarm_history_items().is_empty(), "{later:?}");

    cw.delete_alarms()
        .alarm_names(name)
        .send()
        .await
        .expect("DeleteAlarms");
    let after = cw.describe_alarms().alarm_names(name).send().await.unwrap();
    assert!(after.metric_alarms().is_empty());
}

#[tokio::test]
async fn set_alarm_state_on_a_missing_alarm_is_a_typed_resource_not_found() {
    let cw = client().await;
    let err = cw
        .set_alarm_state()
        .alarm_name("cbor-test-no-such-alarm")
        .state_value(StateValue::Ok)
        .state_reason("x")
        .send()
        .await
        .expect_err("the alarm does not exist");
    let service = err.into_service_error();
    assert!(
        matches!(service, SetAlarmStateError::ResourceNotFound(_)),
        "{service:?}"
    );
}
