//! The extended emulator: moto's own APIs plus the four the project adds.

use aws_sdk_ecs::types::LaunchType;
use test_support::emulated_ecs::EmulatedEcs;
use test_support::moto::Moto;

#[tokio::test]
async fn task_protection_and_lifecycle_actions_work_end_to_end() {
    let moto = Moto::start().expect("moto");
    let world = EmulatedEcs::builder()
        .on(&moto)
        .cluster("visits")
        .build()
        .await
        .unwrap();
    let ecs = &world.ecs;
    let run = ecs
        .run_task()
        .cluster("visits")
        .task_definition(&world.family)
        .started_by("test")
        .launch_type(LaunchType::Fargate)
        .group("service:visits-api")
        .network_configuration(world.network.clone())
        .send()
        .await
        .unwrap();
    let arn = run.tasks()[0].task_arn().unwrap().to_string();

    let unprotected = ecs
        .get_task_protection()
        .cluster("visits")
        .tasks(&arn)
        .send()
        .await
        .unwrap();
    assert!(!unprotected.protected_tasks()[0].protection_enabled());

    let out = ecs
        .update_task_protection()
        .cluster("visits")
        .tasks(&arn)
        .protection_enabled(true)
        .expires_in_minutes(5)
        .send()
        .await
        .unwrap();
    assert!(out.failures().is_empty());
    assert!(out.protected_tasks()[0].expiration_date().is_some());
    let got = ecs
        .get_task_protection()
        .cluster("visits")
        .tasks(&arn)
        .send()
        .await
        .unwrap();
    assert!(got.protected_tasks()[0].protection_enabled());

    let missing = ecs
        .get_task_protection()
        .cluster("visits")
        .tasks("nope")
        .send()
        .await
        .unwrap();
    assert_eq!(missing.failures()[0].reason(), Some("TASK_NOT_VALID"));

    // Manual state manager: describing does not move the task on.
    for _ in 0..3 {
        let d = ecs
            .describe_tasks()
            .cluster("visits")
            .tasks(&arn)
            .send()
            .await
            .unwrap();
        assert_eq!(d.tasks()[0].last_status(), Some("RUNNING"));
    }
    moto.set_task_status(&arn, Some("DEACTIVATING"), Some("STOPPED"))
        .unwrap();
    let d = ecs
        .describe_tasks()
        .cluster("visits")
        .tasks(&arn)
        .send()
        .await
        .unwrap();
    assert_eq!(d.tasks()[0].last_status(), Some("DEACTIVATING"));
    assert_eq!(d.tasks()[0].desired_status(), Some("STOPPED"));

    let asg = aws_sdk_autoscaling::Client::new(&world.sdk);
    asg.create_launch_configuration()
        .launch_configuration_name("lc")
        .image_id("ami-12c6146b")
        .instance_type("t3.micro")
        .send()
        .await
        .unwrap();
    asg.create_auto_scaling_group()
        .auto_scaling_group_name("visits-capacity")
        .launch_configuration_name("lc")
        .min_size(0)
        .max_size(2)
        .availability_zones("us-east-1a")
        .send()
        .await
        .unwrap();
    asg.record_lifecycle_action_heartbeat()
        .auto_scaling_group_name("visits-capacity")
        .lifecycle_hook_name("drain")
        .instance_id("i-1")
        .send()
        .await
        .unwrap();
    asg.complete_lifecycle_action()
        .auto_scaling_group_name("visits-capacity")
        .lifecycle_hook_name("drain")
        .instance_id("i-1")
        .lifecycle_action_result("CONTINUE")
        .send()
        .await
        .unwrap();
    let unknown = asg
        .complete_lifecycle_action()
        .auto_scaling_group_name("nope")
        .lifecycle_hook_name("drain")
        .lifecycle_action_result("CONTINUE")
        .send()
        .await;
    assert!(unknown.is_err(), "unknown group must be rejected");
    let calls = moto.lifecycle_actions().unwrap();
    let actions: Vec<_> = calls
        .iter()
        .map(|c| c["Action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        ["RecordLifecycleActionHeartbeat", "CompleteLifecycleAction"]
    );
    assert_eq!(calls[1]["LifecycleActionResult"], "CONTINUE");

    let sns = aws_sdk_sns::Client::new(&world.sdk);
    let topic = sns.create_topic().name("ops").send().await.unwrap();
    sns.publish()
        .topic_arn(topic.topic_arn().unwrap())
        .subject("hello")
        .message("body")
        .send()
        .await
        .unwrap();
    let msgs = moto.sns_messages().unwrap();
    assert_eq!(msgs[0]["subject"], "hello");
    assert_eq!(msgs[0]["message"], "body");

    moto.reset().unwrap();
    assert!(moto.lifecycle_actions().unwrap().is_empty());
    assert!(moto.sns_messages().unwrap().is_empty());
}
