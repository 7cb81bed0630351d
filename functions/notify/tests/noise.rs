//! Noise control through the real handler: a flapping alarm gives one digest, a
//! replayed event gives nothing, malformed input is a clear error with no AWS call.
//! SNS and CloudWatch are aws-smithy-mocks clients here, for what the emulator can't
//! do on demand: exact history timestamps, injected failures, counting every AWS call.
//! The mocks keep state (topic tags, alarm history) so the handler's read-decide-write
//! cycle is exercised as on AWS. `moto.rs` runs the same flap and publish paths against
//! the emulator.

mod common;

use aws_sdk_cloudwatch::operation::describe_alarm_history::DescribeAlarmHistoryOutput;
use aws_sdk_cloudwatch::types::AlarmHistoryItem;
use aws_sdk_sns::operation::list_tags_for_resource::ListTagsForResourceOutput;
use aws_sdk_sns::operation::publish::PublishOutput;
use aws_sdk_sns::operation::tag_resource::TagResourceOutput;
use aws_sdk_sns::types::Tag;
use aws_smithy_mocks::{mock, mock_client, Rule, RuleMode};
use chrono::{DateTime, TimeDelta, Utc};
use notify::{handle, Deps, Handled, NotifyError};
use scaling::error::Classify;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// Mocked AWS with state: the topic's tags, the alarm's history, what was published.
struct FakeAws {
    tags: Arc<Mutex<BTreeMap<String, String>>>,
    history: Arc<Mutex<Vec<DateTime<Utc>>>>,
    published: Arc<Mutex<Vec<String>>>,
    rules: Vec<Rule>,
    deps: Deps,
}

impl FakeAws {
    fn new() -> Self {
        let tags: Arc<Mutex<BTreeMap<String, String>>> = Arc::default();
        let history: Arc<Mutex<Vec<DateTime<Utc>>>> = Arc::default();
        let published: Arc<Mutex<Vec<String>>> = Arc::default();
        let t = tags.clone();
        let list_tags =
            mock!(aws_sdk_sns::Client::list_tags_for_resource).then_compute_output(move |_| {
                let tags = t.lock().unwrap();
                ListTagsForResourceOutput::builder()
                    .set_tags(Some(
                        tags.iter()
                            .map(|(k, v)| Tag::builder().key(k).value(v).build().unwrap())
                            .collect(),
                    ))
                    .build()
            });
        let t = tags.clone();
        let tag = mock!(aws_sdk_sns::Client::tag_resource).then_compute_output(move |req| {
            let mut tags = t.lock().unwrap();
            for tag in req.tags() {
                tags.insert(tag.key().to_string(), tag.value().to_string());
            }
            TagResourceOutput::builder().build()
        });
        let p = published.clone();
        let publish = mock!(aws_sdk_sns::Client::publish).then_compute_output(move |req| {
            let mut p = p.lock().unwrap();
            p.push(req.subject().unwrap_or_default().to_string());
            PublishOutput::builder()
                .message_id(format!("msg-{}", p.len()))
                .build()
        });
        let h = history.clone();
        let hist = mock!(aws_sdk_cloudwatch::Client::describe_alarm_history).then_compute_output(
            move |req| {
                let from = req.start_date().unwrap().to_millis().unwrap();
                let to = req.end_date().unwrap().to_millis().unwrap();
                let items = h
                    .lock()
                    .unwrap()
                    .iter()
                    .filter(|t| (from..=to).contains(&t.timestamp_millis()))
                    .rev() // CloudWatch answers newest first
                    .map(|t| {
                        AlarmHistoryItem::builder()
                            .alarm_name(req.alarm_name().unwrap_or_default())
                            .timestamp(aws_smithy_types::DateTime::from_millis(
                                t.timestamp_millis(),
                            ))
                            .history_summary("Alarm updated from OK to ALARM")
                            .build()
                    })
                    .collect();
                DescribeAlarmHistoryOutput::builder()
                    .set_alarm_history_items(Some(items))
                    .build()
            },
        );
        let sns = mock_client!(
            aws_sdk_sns,
            RuleMode::MatchAny,
            [&list_tags, &tag, &publish]
        );
        let cloudwatch = mock_client!(aws_sdk_cloudwatch, RuleMode::MatchAny, [&hist]);
        FakeAws {
            tags,
            history,
            published,
            rules: vec![list_tags, tag, publish, hist],
            deps: Deps {
                sns,
                cloudwatch,
                ecs: mock_client!(aws_sdk_ecs, RuleMode::MatchAny, []),
                settings: common::settings(),
            },
        }
    }

    fn calls(&self) -> usize {
        self.rules.iter().map(Rule::num_calls).sum()
    }

    fn published(&self) -> Vec<String> {
        self.published.lock().unwrap().clone()
    }
}

/// The 5xx alarm sample, moved to state `state` at `at` with a fresh event id.
fn alarm_event(i: usize, state: &str, prev: &str, at: DateTime<Utc>) -> Value {
    let mut ev = common::event("alarm-5xx");
    let ts = at.format("%Y-%m-%dT%H:%M:%S%.3f+0000").to_string();
    ev["id"] = json!(format!("flap-{i}"));
    ev["detail"]["state"]["value"] = json!(state);
    ev["detail"]["state"]["timestamp"] = json!(ts);
    ev["detail"]["previousState"]["value"] = json!(prev);
    ev
}

#[tokio::test]
async fn a_flapping_alarm_sends_one_digest() {
    let aws = FakeAws::new();
    let start = DateTime::parse_from_rfc3339("2026-11-23T14:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    let mut outcomes = Vec::new();
    // Toggle every 40 s for 6 minutes: 9 transitions inside the 10-minute window.
    for i in 0..9 {
        let at = start + TimeDelta::seconds(40 * i as i64);
        let (state, prev) = if i % 2 == 0 {
            ("ALARM", "OK")
        } else {
            ("OK", "ALARM")
        };
        // CloudWatch records the transition before EventBridge delivers it.
        aws.history.lock().unwrap().push(at);
        let out = handle(alarm_event(i, state, prev, at), &aws.deps)
            .await
            .expect("handled");
        outcomes.push(out);
    }
    let subjects = aws.published();
    // FLAP_MAX_TRANSITIONS=3 in the test settings: three emails, then one digest.
    assert_eq!(subjects.len(), 4, "{subjects:#?}");
    let digests: Vec<&String> = subjects.iter().filter(|s| s.contains("flapping")).collect();
    assert_eq!(digests.len(), 1, "{subjects:#?}");
    assert_eq!(
        digests[0],
        "[visits-api] alarm flapping: visits-api-5xx (4 changes in 10 min)"
    );
    let muted = outcomes
        .iter()
        .filter(|o| matches!(o, Handled::Dropped { reason } if reason.contains("flapping")))
        .count();
    assert_eq!(muted, 5);
}

#[tokio::test]
async fn a_replayed_event_sends_nothing() {
    let aws = FakeAws::new();
    let event = common::event("ecs-task-oom");
    let first = handle(event.clone(), &aws.deps).await.unwrap();
    assert!(
        matches!(&first, Handled::Published { dedup_recorded: true, subject, .. }
            if subject == "[visits-api] task crashed: OOM (exit 137)"),
        "{first:?}"
    );
    for _ in 0..3 {
        let again = handle(event.clone(), &aws.deps).await.unwrap();
        assert!(
            matches!(&again, Handled::Dropped { reason } if reason.contains("replay")),
            "{again:?}"
        );
    }
    assert_eq!(aws.published().len(), 1);
    // A different event still goes out, and the ring stays within its tags.
    let other = handle(common::event("ecs-task-crashed"), &aws.deps)
        .await
        .unwrap();
    assert!(matches!(other, Handled::Published { .. }), "{other:?}");
    assert_eq!(aws.published().len(), 2);
    let tags = aws.tags.lock().unwrap();
    assert!(
        tags.keys().all(|k| k.starts_with("notify:seen-")),
        "{tags:?}"
    );
    assert!(tags.values().all(|v| v.len() <= 256));
}

#[tokio::test]
async fn dropped_events_make_no_aws_call() {
    let aws = FakeAws::new();
    for stem in [
        "alarm-created-ok",
        "alarm-scaling-cpu-high",
        "ecs-task-stopped-normal",
    ] {
        let out = handle(common::event(stem), &aws.deps).await.unwrap();
        assert!(matches!(out, Handled::Dropped { .. }), "{stem}: {out:?}");
    }
    assert_eq!(aws.calls(), 0);
}

#[tokio::test]
async fn malformed_input_is_a_clear_non_retryable_error_with_no_aws_call() {
    let aws = FakeAws::new();
    let cases = [
        json!("just a string"),
        json!([1, 2, 3]),
        json!({"hello": "world"}),
        json!({"source": "aws.cloudwatch", "alarmData": {"alarmName": "visits-api-cpu-high"}}),
        json!({"detail-type": "ECS Task State Change", "source": "aws.ecs", "detail": {"taskArn": 5}}),
        json!({"requestContext": {"requestId": "r", "functionArn": "f", "condition": "Success"},
               "responsePayload": {"outcome": "exploded"}}),
    ];
    for case in cases {
        let err = handle(case.clone(), &aws.deps).await.unwrap_err();
        assert!(matches!(err, NotifyError::BadEvent(_)), "{case}: {err:?}");
        assert!(!err.retryable());
        let diag: lambda_runtime::Diagnostic = err.into();
        assert_eq!(diag.error_type, "NonRetryable.BadEvent");
        assert!(
            diag.error_message.starts_with("malformed "),
            "{}",
            diag.error_message
        );
    }
    assert_eq!(aws.calls(), 0);
}

#[tokio::test]
async fn unknown_events_are_ignored_not_errors() {
    let aws = FakeAws::new();
    let out = handle(
        json!({"version": "0", "id": "x", "detail-type": "Scheduled Event", "source": "aws.events",
               "account": "123456789012", "time": "2026-11-23T14:00:00Z", "region": "us-east-1",
               "resources": [], "detail": {}}),
        &aws.deps,
    )
    .await
    .unwrap();
    assert!(matches!(out, Handled::Ignored { .. }), "{out:?}");
    assert_eq!(aws.calls(), 0);
}
