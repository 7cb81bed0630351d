//! A scale-in never trips another metric's scale-out (`scaling::headroom`): the
//! in-memory world for the decision, the emulator (moto, real SDK clients) for the
//! adapter that reads the alarms and their newest datapoints.

mod common;

use aws_sdk_cloudwatch::types::{ComparisonOperator, MetricDatum, StateValue, Statistic};
use common::*;
use scale_down::port::{AlarmView, Port};
use scale_down::{handle, Settings};
use scaling::report::Outcome;
use std::time::Duration;

const INFLIGHT: &str = "visits-api-inflight-high";
const LATENCY: &str = "visits-api-latency-p95-high";

fn scale_out(name: &str, state: &str, latest: Option<f64>) -> AlarmView {
    AlarmView {
        name: name.into(),
        arn: None,
        state: state.into(),
        since: chrono::DateTime::from_timestamp(1_795_000_000, 0).unwrap(),
        threshold: Some(10.0),
        comparison: Some("GreaterThanThreshold".into()),
        latest,
    }
}

fn guarded() -> Settings {
    let mut s = settings(1, 10);
    s.scale_in_cooldown = Duration::ZERO;
    s.scale_out_alarms = vec![INFLIGHT.into(), LATENCY.into()];
    s.per_task_alarms = vec![INFLIGHT.into()];
    s
}

/// One CPU-low alarm action against 3 running tasks with these scale-out alarms.
async fn scale_in_with(alarms: Vec<AlarmView>) -> (scaling::report::Report, i32) {
    let world = World::new(3, 1, 10);
    world.with(|s| s.alarms = alarms);
    let r = handle(alarm("ALARM", 1), &world, &guarded(), deadline())
        .await
        .unwrap();
    (r, world.with(|s| s.desired))
}

#[tokio::test(start_paused = true)]
async fn a_scale_in_that_would_push_in_flight_over_its_threshold_waits() {
    // 7 in flight per task on 3 tasks is 10.5 on 2: the in-flight alarm would fire.
    let (r, desired) = scale_in_with(vec![
        scale_out(INFLIGHT, "OK", Some(7.0)),
        scale_out(LATENCY, "OK", None),
    ])
    .await;
    assert_eq!(r.outcome, Outcome::Skipped, "{r:#?}");
    assert!(
        r.outcome_reason
            .contains("would put visits-api-inflight-high at 10.5"),
        "{}",
        r.outcome_reason
    );
    assert_eq!(desired, 3, "nothing changed");
}

#[tokio::test(start_paused = true)]
async fn a_scale_out_alarm_in_alarm_holds_the_scale_in() {
    // Latency is not a per-task load, but its ALARM still says the service is short.
    let (r, desired) = scale_in_with(vec![
        scale_out(INFLIGHT, "OK", Some(1.0)),
        scale_out(LATENCY, "ALARM", None),
    ])
    .await;
    assert_eq!(r.outcome, Outcome::Skipped, "{r:#?}");
    assert!(r.outcome_reason.contains(LATENCY), "{}", r.outcome_reason);
    assert_eq!(desired, 3);
}

#[tokio::test(start_paused = true)]
async fn room_on_every_scale_out_metric_lets_the_scale_in_go() {
    // 6 per task on 3 is 9 on 2; a high latency value alone is not projected.
    let (r, desired) = scale_in_with(vec![
        scale_out(INFLIGHT, "OK", Some(6.0)),
        scale_out(LATENCY, "OK", Some(50.0)),
    ])
    .await;
    assert_eq!(r.outcome, Outcome::Completed, "{r:#?}");
    assert_eq!(desired, 2);
}

#[tokio::test(start_paused = true)]
async fn a_misspelt_scale_out_alarm_is_refused_not_ignored() {
    let world = World::new(3, 1, 10);
    world.with(|s| s.alarms = vec![scale_out(INFLIGHT, "OK", Some(1.0))]);
    let e = handle(alarm("ALARM", 1), &world, &guarded(), deadline())
        .await
        .unwrap_err();
    assert!(!e.is_retryable(), "{e}");
    assert!(e.to_string().contains(LATENCY), "{e}");
    assert_eq!(world.with(|s| s.desired), 3);
}

/// The production adapter against the emulator: DescribeAlarms for the state and
/// threshold, GetMetricStatistics for the newest datapoint of an alarm in OK.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_adapter_reads_the_newest_datapoint_of_each_alarm_in_ok() {
    let moto = test_support::moto::shared();
    let conf = moto.sdk_config().await;
    let cw = aws_sdk_cloudwatch::Client::new(&conf);
    let ns = format!("Headroom/{}", std::process::id());
    for (name, metric, state) in [
        ("headroom-inflight-high", "InFlight", StateValue::Ok),
        ("headroom-latency-high", "LatencyP95", StateValue::Alarm),
    ] {
        cw.put_metric_alarm()
            .alarm_name(name)
            .namespace(&ns)
            .metric_name(metric)
            .statistic(Statistic::Average)
            .period(60)
            .evaluation_periods(1)
            .threshold(10.0)
            .comparison_operator(ComparisonOperator::GreaterThanThreshold)
            .send()
            .await
            .unwrap();
        cw.set_alarm_state()
            .alarm_name(name)
            .state_value(state)
            .state_reason("test")
            .send()
            .await
            .unwrap();
        cw.put_metric_data()
            .namespace(&ns)
            .metric_data(
                MetricDatum::builder()
                    .metric_name(metric)
                    .value(7.0)
                    .timestamp(std::time::SystemTime::now().into())
                    .build(),
            )
            .send()
            .await
            .unwrap();
    }
    let names = ["headroom-inflight-high", "headroom-latency-high"].map(String::from);
    let port = aws_port(cw);
    let found = port.scale_out_alarms(&names).await.unwrap();
    let by = |n: &str| found.iter().find(|a| a.name == n).unwrap().clone();
    let inflight = by("headroom-inflight-high");
    assert_eq!(inflight.state, "OK");
    assert_eq!(inflight.latest, Some(7.0));
    assert_eq!(inflight.threshold, Some(10.0));
    assert_eq!(inflight.comparison.as_deref(), Some("GreaterThanThreshold"));
    // In ALARM it blocks by its state: no datapoint is read for it.
    assert_eq!(by("headroom-latency-high").state, "ALARM");
    assert_eq!(by("headroom-latency-high").latest, None);
    // The reconcile schedule's read of the scale-in alarms reads no datapoints.
    let plain = port.alarms(&names).await.unwrap();
    assert!(plain.iter().all(|a| a.latest.is_none()), "{plain:?}");
}
