//! Against the emulator: the real SNS client publishes, the message is read back
//! from moto (`GET /moto-api/data.json`), and the replay ring lives in the real
//! topic's tags, so a redelivered event publishes nothing.

mod common;

use notify::{handle, Deps, Handled};
use serde_json::Value;

fn sent_to(moto: &test_support::moto::Moto, topic: &str) -> Vec<Value> {
    moto.sns_messages()
        .expect("read moto's SNS state")
        .into_iter()
        .filter(|m| m["topic_arn"] == topic)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn publishes_to_the_emulator_and_drops_replays() {
    let moto = test_support::moto::shared();
    let conf = moto.sdk_config().await;
    let sns = aws_sdk_sns::Client::new(&conf);
    let topic = sns
        .create_topic()
        .name("notify-moto-test")
        .send()
        .await
        .expect("create topic")
        .topic_arn()
        .expect("topic arn")
        .to_string();
    let deps = Deps {
        sns: sns.clone(),
        cloudwatch: aws_sdk_cloudwatch::Client::new(&conf),
        settings: common::settings_with(&topic),
    };

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
