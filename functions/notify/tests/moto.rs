//! Against the emulator: the real SNS client publishes, the message is read back
//! from moto (`GET /moto-api/data.json`), and the replay ring lives in the real
//! topic's tags, so a redelivered event publishes nothing. The flap check reads
//! the alarm history that moto records on each `SetAlarmState` (through
//! aws-sdk-cloudwatch and the emulator's CBOR shim).

mod common;

use aws_sdk_cloudwatch::types::{ComparisonOperator, StateValue, Statistic};
use chrono::{DateTime, TimeDelta, Utc};
use notify::{handle, Deps, Handled};
use serde_json::{json, Value};

fn sent_to(moto: &test_support::moto::Moto, topic: &str) -> Vec<Value> {
    moto.sns_messages()
        .expect("read moto's SNS state")
        .into_iter()
        .filter(|m| m["topic_arn"] == topic)
        .collect()
}

/// Clients on the shared emulator, with a new SNS topic `name` (each test its
/// own: the replay ring lives in the topic's tags).
async fn deps_with_topic(name: &str) -> (Deps, String) {
    let conf = test_support::moto::shared().sdk_config().await;
    let sns = aws_sdk_sns::Client::new(&conf);
    let topic = sns
        .create_topic()
        .name(name)
        .send()
        .await
        .expect("create topic")
        .topic_arn()
        .expect("topic arn")
        .to_string();
    let deps = Deps {
        sns,
        cloudwatch: aws_sdk_cloudwatch::Client::new(&conf),
        ecs: aws_sdk_ecs::Client::new(&conf),
        settings: common::settings_with(&topic),
    };
    (deps, topic)
}

#[tokio::test(flavor = "multi_thread")]
async fn publishes_to_the_emulator_and_drops_replays() {
    let moto = test_support::moto::shared();
    let (deps, topic) = deps_with_topic("notify-moto-test").await;
    let sns = deps.sns.clone();

    let out = handle(common::event("ecs-task-oom"), &deps)
        .await
        .expect("handled");
    let Handled::Published {
        message_id,
        dedup_recorded,
        ..
    } = out
    else {
        panic!("expected a publish, got {out:?}");
    };
    assert!(dedup_recorded);
    let sent = sent_to(moto, &topic);
    assert_eq!(sent.len(), 1, "{sent:#?}");
    assert_eq!(sent[0]["message_id"], message_id.as_str());
    assert_eq!(
        sent[0]["subject"],
        "[visits-api] task crashed: OOM (exit 137)"
    );
    let body = sent[0]["message"].as_str().unwrap_or_default();
    assert!(body.contains("OutOfMemoryError"), "{body}");
    assert!(
        body.contains("https://us-east-1.console.aws.amazon.com/ecs/"),
        "{body}"
    );

    // The redelivery finds its fingerprint in the topic's tags.
    let again = handle(common::event("ecs-task-oom"), &deps)
        .await
        .expect("handled");
    assert!(
        matches!(&again, Handled::Dropped { reason } if reason.contains("replay")),
        "{again:?}"
    );
    assert_eq!(sent_to(moto, &topic).len(), 1);
    let tags = sns
        .list_tags_for_resource()
        .resource_arn(&topic)
        .send()
        .await
        .expect("list tags");
    assert!(tags.tags().iter().any(|t| t.key() == "notify:seen-head"));

    // An episode report goes out too, with its steps.
    let out = handle(common::event("destination-scale-down-success"), &deps)
        .await
        .expect("handled");
    assert!(matches!(out, Handled::Published { .. }), "{out:?}");
    let sent = sent_to(moto, &topic);
    assert_eq!(sent.len(), 2);
    assert_eq!(
        sent[1]["subject"],
        "[visits-api] scaled in 4->3 (cpu-low 12.3%)"
    );
    assert!(sent[1]["message"]
        .as_str()
        .unwrap_or_default()
        .contains("wait_drained"));
}

/// Moves `alarm` to `state` in the emulator (CloudWatch records the transition
/// in the alarm's history) and returns the event EventBridge would deliver for
/// it: the 5xx sample with this alarm, state, timestamp and a fresh id.
async fn change(
    cw: &aws_sdk_cloudwatch::Client,
    alarm: &str,
    state: StateValue,
    id: usize,
) -> Value {
    cw.set_alarm_state()
        .alarm_name(alarm)
        .state_value(state.clone())
        .state_reason("the flap test drives it")
        .send()
        .await
        .expect("SetAlarmState");
    let described = cw
        .describe_alarms()
        .alarm_names(alarm)
        .send()
        .await
        .expect("DescribeAlarms");
    let a = &described.metric_alarms()[0];
    assert_eq!(a.state_value(), Some(&state));
    let millis = a
        .state_updated_timestamp()
        .and_then(|t| t.to_millis().ok())
        .expect("state timestamp");
    let at = DateTime::<Utc>::from_timestamp_millis(millis).expect("valid time");
    let previous = if state == StateValue::Alarm {
        "OK"
    } else {
        "ALARM"
    };
    let mut ev = common::event("alarm-5xx");
    ev["id"] = json!(format!("moto-flap-{id}"));
    ev["detail"]["alarmName"] = json!(alarm);
    ev["detail"]["state"]["value"] = json!(state.as_str());
    ev["detail"]["state"]["timestamp"] = json!(at.format("%Y-%m-%dT%H:%M:%S%.3f+0000").to_string());
    ev["detail"]["previousState"]["value"] = json!(previous);
    // notify counts history within a second of the event's own timestamp as
    // the event itself: let more than that pass before the next transition
    // (waiting on the clock, not on the emulator; a slow machine only widens it).
    while Utc::now() < at + TimeDelta::milliseconds(1_200) {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    ev
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flapping_alarm_in_the_emulator_gives_one_email_then_one_digest() {
    let moto = test_support::moto::shared();
    // FLAP_MAX_TRANSITIONS=3 in 10 minutes (common::settings_with).
    let (deps, topic) = deps_with_topic("notify-moto-flap").await;
    let cw = deps.cloudwatch.clone();
    let alarm = "visits-api-5xx";
    cw.put_metric_alarm()
        .alarm_name(alarm)
        .namespace("VisitsApi")
        .metric_name("Http5xx")
        .statistic(Statistic::Sum)
        .period(60)
        .evaluation_periods(1)
        .threshold(5.0)
        .comparison_operator(ComparisonOperator::GreaterThanThreshold)
        .send()
        .await
        .expect("PutMetricAlarm");

    // A single change: emailed as it is.
    let first = change(&cw, alarm, StateValue::Alarm, 1).await;
    let out = handle(first, &deps).await.expect("handled");
    let Handled::Published { subject, .. } = &out else {
        panic!("a single change is emailed, got {out:?}");
    };
    assert!(
        subject.contains("ALARM") && subject.contains("5xx") && !subject.contains("flapping"),
        "{subject}"
    );
    let sent = sent_to(moto, &topic);
    assert_eq!(sent.len(), 1, "{sent:#?}");
    assert_eq!(&sent[0]["subject"], subject.as_str());

    // Three more changes; the events of the 2nd and 3rd are not sent (only
    // the history counts). The 4th change in the window is the digest.
    change(&cw, alarm, StateValue::Ok, 2).await;
    change(&cw, alarm, StateValue::Alarm, 3).await;
    let fourth = change(&cw, alarm, StateValue::Ok, 4).await;
    let out = handle(fourth, &deps).await.expect("handled");
    assert!(
        matches!(&out, Handled::Published { subject, .. }
            if subject == "[visits-api] alarm flapping: visits-api-5xx (4 changes in 10 min)"),
        "{out:?}"
    );
    let sent = sent_to(moto, &topic);
    assert_eq!(sent.len(), 2, "{sent:#?}");
    let digest = sent[1]["message"].as_str().unwrap_or_default();
    assert!(
        digest.contains("Alarm updated from OK to ALARM")
            && digest.contains("Alarm updated from ALARM to OK"),
        "the digest lists the transitions from the alarm history: {digest}"
    );

    // The 5th: the digest went out already, so nothing more is sent.
    let fifth = change(&cw, alarm, StateValue::Alarm, 5).await;
    let out = handle(fifth, &deps).await.expect("handled");
    assert!(
        matches!(&out, Handled::Dropped { reason } if reason.contains("flapping")),
        "{out:?}"
    );
    assert_eq!(sent_to(moto, &topic).len(), 2);
}
