//! The reconcile schedule scales in while a SCALE_IN_ALARMS alarm stays in ALARM
//! (CloudWatch acts only on state changes): the in-memory world for the decision
//! and its skip rules, aws-smithy-mocks for the DescribeAlarms adapter.

mod common;

use aws_sdk_cloudwatch::operation::describe_alarms::{DescribeAlarmsError, DescribeAlarmsOutput};
use aws_sdk_cloudwatch::types::{ComparisonOperator, MetricAlarm, StateValue};
use aws_smithy_mocks::{mock, mock_client, RuleMode};
use chrono::{DateTime, Utc};
use common::*;
use scale_down::port::{AlarmView, Port};
use scale_down::{handle, FnError, Settings};
use scaling::report::{Outcome, Report, TriggerSummary};
use serde_json::{json, Value};
use std::time::Duration;

const LOW: &str = "visits-api-cpu-low";

fn since() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-23T14:50:00Z")
        .unwrap()
        .into()
}

fn low_alarm(state: &str) -> AlarmView {
    AlarmView {
        name: LOW.into(),
        arn: Some(format!(
            "arn:aws:cloudwatch:us-east-1:123456789012:alarm:{LOW}"
        )),
        state: state.into(),
        since: since(),
        threshold: Some(30.0),
        comparison: Some("LessThanThreshold".into()),
        latest: None,
    }
}

/// A reconcile tick `minute` minutes after 15:00 (each tick is a distinct event).
fn tick(minute: u32) -> Value {
    let mut e = schedule();
    e["time"] = json!(format!("2026-11-23T15:{minute:02}:00Z"));
    e
}

fn with_alarms(min: i32, cooldown_s: u64) -> Settings {
    let mut s = settings(min, 10);
    s.scale_in_alarms = vec![LOW.to_string()];
    s.scale_in_cooldown = Duration::from_secs(cooldown_s);
    s
}

async fn run(world: &World, s: &Settings, event: Value) -> Result<Report, FnError> {
    handle(event, world, s, deadline()).await
}

fn described(world: &World) -> usize {
    world.with(|s| {
        s.log
            .iter()
            .filter(|l| l.ends_with(":DescribeAlarms"))
            .count()
    })
}

fn trigger_reason(r: &Report) -> String {
    match &r.trigger {
        TriggerSummary::Alarm { reason, .. } => reason.clone(),
        other => panic!("expected the alarm as trigger, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_low_alarm_left_in_alarm_scales_in_once_per_cooldown_down_to_min() {
    let world = World::new(3, 1, 10);
    world.with(|s| s.alarms = vec![low_alarm("ALARM")]);
    let s = with_alarms(1, 300);

    // The alarm's one invocation acts; the alarm stays in ALARM afterwards.
    let r = run(&world, &s, alarm("ALARM", 1)).await.unwrap();
    assert_eq!(r.outcome, Outcome::Completed, "{r:#?}");
    assert_eq!(world.with(|s| s.desired), 2);

    // Inside the cooldown the schedule sees the alarm but the skip rules hold.
    let r = run(&world, &s, tick(2)).await.unwrap();
    assert_eq!(r.outcome, Outcome::Skipped, "{r:#?}");
    assert!(
        r.outcome_reason.contains("cooldown"),
        "{}",
        r.outcome_reason
    );
    assert!(trigger_reason(&r).starts_with("schedule: visits-api-cpu-low still in ALARM since"));
    assert_eq!(world.with(|s| s.desired), 2);

    // After the cooldown, one more task goes, as if the alarm had fired now.
    tokio::time::advance(Duration::from_secs(301)).await;
    let r = run(&world, &s, tick(8)).await.unwrap();
    assert_eq!(r.outcome, Outcome::Completed, "{r:#?}");
    assert_eq!(
        trigger_reason(&r),
        "schedule: visits-api-cpu-low still in ALARM since 2026-11-23T14:50:00Z"
    );
    assert!(r.decision.reason.contains(LOW), "{:?}", r.decision);
    assert_eq!(world.with(|s| s.desired), 1);
    world.check_settled().unwrap();

    // At the minimum, nothing more, however long the alarm stays.
    tokio::time::advance(Duration::from_secs(301)).await;
    let r = run(&world, &s, tick(14)).await.unwrap();
    assert_eq!(r.outcome, Outcome::Skipped, "{r:#?}");
    assert_eq!(world.with(|s| s.desired), 1);
}

#[tokio::test(start_paused = true)]
async fn a_rolled_back_scale_in_backs_off_for_a_cooldown_before_the_schedule_retries() {
    let world = World::new(3, 1, 10);
    world.with(|s| {
        s.alarms = vec![low_alarm("ALARM")];
        s.deployment_blocked = true;
    });
    let s = with_alarms(1, 300);

    let r = run(&world, &s, alarm("ALARM", 1)).await.unwrap();
    assert_eq!(r.outcome, Outcome::RolledBack, "{r:#?}");
    let actions = r.rollback.expect("a rollback summary").actions;
    assert!(
        actions.iter().any(|a| a.contains("300s scale-in cooldown")),
        "{actions:?}"
    );
    assert!(world.with(|s| s
        .tags
        .contains_key(scaling::episode::LAST_SCALE_IN_ROLLBACK)));
    world.check_settled().unwrap();

    // The fault is gone, but the next ticks inside the cooldown touch no task.
    world.with(|s| s.deployment_blocked = false);
    let calls_before = world.calls();
    for minute in [2, 4] {
        tokio::time::advance(Duration::from_secs(120)).await;
        let r = run(&world, &s, tick(minute)).await.unwrap();
        assert_eq!(r.outcome, Outcome::Skipped, "{r:#?}");
        assert!(
            r.outcome_reason
                .starts_with("backing off: a scale-in was rolled back at"),
            "{}",
            r.outcome_reason
        );
    }
    let acting: Vec<String> = world.with(|s| {
        s.log[calls_before..]
            .iter()
            .filter(|l| !l.ends_with(":DescribeServices") && !l.ends_with(":DescribeAlarms"))
            .cloned()
            .collect()
    });
    assert!(acting.is_empty(), "calls while backing off: {acting:?}");
    assert_eq!(world.with(|s| s.desired), 3);

    // After the cooldown the schedule scales in as usual.
    tokio::time::advance(Duration::from_secs(61)).await;
    let r = run(&world, &s, tick(6)).await.unwrap();
    assert_eq!(r.outcome, Outcome::Completed, "{r:#?}");
    assert_eq!(world.with(|s| s.desired), 2);
    world.check_settled().unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_redelivered_schedule_event_acts_once() {
    let world = World::new(4, 1, 10);
    world.with(|s| s.alarms = vec![low_alarm("ALARM")]);
    let s = with_alarms(1, 0);
    let first = run(&world, &s, tick(2)).await.unwrap();
    assert_eq!(first.outcome, Outcome::Completed, "{first:#?}");
    let again = run(&world, &s, tick(2)).await.unwrap();
    assert_eq!(again.outcome, Outcome::Skipped, "{again:#?}");
    assert!(again.outcome_reason.contains("duplicate"), "{again:#?}");
    assert_eq!(world.with(|s| s.desired), 3);
}

#[tokio::test(start_paused = true)]
async fn alarm_ok_or_no_alarms_configured_only_reconciles() {
    let world = World::new(3, 1, 10);
    world.with(|s| s.alarms = vec![low_alarm("OK")]);
    let r = run(&world, &with_alarms(1, 0), tick(2)).await.unwrap();
    assert_eq!(r.outcome, Outcome::Skipped);
    assert!(
        r.outcome_reason
            .contains("no scale-in alarm in ALARM (visits-api-cpu-low)"),
        "{}",
        r.outcome_reason
    );
    assert!(matches!(r.trigger, TriggerSummary::Schedule { .. }));
    assert_eq!(described(&world), 1);

    world.with(|s| s.alarms = vec![low_alarm("ALARM")]);
    let r = run(&world, &settings(1, 10), tick(4)).await.unwrap();
    assert_eq!(r.outcome_reason, "reconcile: no interrupted episode");
    assert_eq!(
        described(&world),
        1,
        "no SCALE_IN_ALARMS: no DescribeAlarms"
    );
    assert_eq!(world.with(|s| s.desired), 3);
}

#[tokio::test(start_paused = true)]
async fn paused_or_an_interrupted_episode_comes_before_the_alarm() {
    let world = World::new(3, 1, 10);
    world.with(|s| {
        s.alarms = vec![low_alarm("ALARM")];
        s.tags.insert("autoscaler:paused".into(), "true".into());
    });
    let s = with_alarms(1, 0);
    let r = run(&world, &s, tick(2)).await.unwrap();
    assert_eq!(r.outcome, Outcome::Skipped);
    assert_eq!(described(&world), 0, "paused: no DescribeAlarms");

    // An episode crashed midway: the schedule finishes it and starts nothing else.
    world.with(|s| {
        s.tags.remove("autoscaler:paused");
        s.crash_at = Some(8);
    });
    let _ = run(&world, &s, alarm("ALARM", 1)).await;
    world.with(|s| s.crash_at = None);
    let r = run(&world, &s, tick(4)).await.unwrap();
    assert_eq!(r.decision.action, "resume", "{r:#?}");
    assert_eq!(described(&world), 0, "resuming: no DescribeAlarms");
    assert_eq!(world.with(|s| s.desired), 2);
}

#[tokio::test(start_paused = true)]
async fn describe_alarms_failing_changes_nothing_and_says_if_a_retry_helps() {
    let world = World::new(3, 1, 10);
    world.with(|s| {
        s.alarms = vec![low_alarm("ALARM")];
        s.fail_at = Some(1); // DescribeServices is call 0, DescribeAlarms call 1.
    });
    let e = run(&world, &with_alarms(1, 0), tick(2)).await.unwrap_err();
    assert!(e.is_retryable(), "{e}");
    assert_eq!(world.with(|s| s.desired), 3);

    // A misspelt name never silently disables the schedule's scale-in.
    world.with(|s| s.fail_at = None);
    let mut s = with_alarms(1, 0);
    s.scale_in_alarms.push("visits-api-cpu-lwo".into());
    let e = run(&world, &s, tick(4)).await.unwrap_err();
    assert!(!e.is_retryable(), "{e}");
    assert!(e.to_string().contains("visits-api-cpu-lwo"), "{e}");
    assert_eq!(world.with(|s| s.desired), 3);
}

#[tokio::test]
async fn the_adapter_reads_state_and_since_from_describe_alarms() {
    let ok = mock!(aws_sdk_cloudwatch::Client::describe_alarms)
        .match_requests(|r| r.alarm_names() == [LOW.to_string()])
        .then_output(|| {
            DescribeAlarmsOutput::builder()
                .metric_alarms(
                    MetricAlarm::builder()
                        .alarm_name(LOW)
                        .alarm_arn("arn:aws:cloudwatch:us-east-1:123456789012:alarm:x")
                        .state_value(StateValue::Alarm)
                        .state_updated_timestamp(
                            aws_sdk_cloudwatch::primitives::DateTime::from_secs(
                                since().timestamp(),
                            ),
                        )
                        .threshold(30.0)
                        .comparison_operator(ComparisonOperator::LessThanThreshold)
                        .build(),
                )
                .build()
        });
    let cw = mock_client!(aws_sdk_cloudwatch, RuleMode::Sequential, [&ok]);
    let found = aws_port(cw).alarms(&[LOW.to_string()]).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].state, "ALARM");
    assert_eq!(found[0].since, since());
    assert_eq!(found[0].threshold, Some(30.0));
    assert_eq!(found[0].comparison.as_deref(), Some("LessThanThreshold"));
    assert_eq!(ok.num_calls(), 1);
}

#[tokio::test]
async fn the_adapter_classifies_throttling_as_retryable() {
    let throttled = mock!(aws_sdk_cloudwatch::Client::describe_alarms).then_error(|| {
        DescribeAlarmsError::generic(
            aws_sdk_cloudwatch::error::ErrorMetadata::builder()
                .code("Throttling")
                .message("Rate exceeded")
                .build(),
        )
    });
    let cw = mock_client!(aws_sdk_cloudwatch, RuleMode::Sequential, [&throttled]);
    let e = aws_port(cw).alarms(&[LOW.to_string()]).await.unwrap_err();
    assert!(e.retryable, "{e:?}");
    assert!(e.op.contains("DescribeAlarms"), "{e:?}");
}
