//! scale-down against the emulator through the production `AwsPort` (real SDK
//! clients): victim selection over real `describe_tasks` output, drain mode,
//! the desired-count change (the agent, playing ECS, deregisters the victim from
//! a real target group and stops it), the report.

mod emulated;

use emulated::World;
use scale_down::aws_port::Capacity;
use scale_down::handle;
use scaling::aws::autoscaling::AutoScaling;
use scaling::report::{Outcome, Step};
use std::time::Duration;
use tokio::time::Instant;

fn deadline() -> Instant {
    Instant::now() + Duration::from_secs(120)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removes_the_task_with_fewest_in_flight_through_the_real_clients() {
    let w = World::new("fewest", &[4, 1, 6]).await;
    let victim = w.live.lock().unwrap()[1].clone();
    let r = handle(w.alarm(1), &w.aws, &w.settings, deadline())
        .await
        .unwrap();
    assert_eq!(r.outcome, Outcome::Completed, "{r:#?}");
    let drain = r.drain.as_ref().unwrap();
    assert_eq!(drain.victim_task, victim.arn);
    assert_eq!(drain.strategy, "fewest-in-flight");
    assert_eq!(drain.fallback, None);
    assert_eq!(drain.in_flight_at_stop, Some(0));
    assert!(!drain.deadline_hit, "{drain:?}");
    // The victim was told to drain; ECS took it out of the target group and stopped it.
    assert_eq!(victim.fake.state.lock().unwrap().drain_calls, 1);
    let stopped: Vec<String> = w
        .stopped
        .lock()
        .unwrap()
        .iter()
        .map(|t| t.id.clone())
        .collect();
    assert_eq!(stopped, std::slice::from_ref(&victim.id));
    assert!(!w.registered().await.contains(&victim.ip));
    assert_eq!(w.service().await.0, 2);
    w.check_settled().await.unwrap();
    let (before, after) = (r.before.unwrap(), r.after.unwrap());
    assert_eq!((before.desired, after.desired), (3, 2));
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["function"], "scale-down");
    assert_eq!(json["outcome"], "completed");
    for step in [
        "protect_tasks",
        "post_admin_drain",
        "update_service",
        "wait_stopped",
        "release_protection",
    ] {
        assert!(
            r.steps.iter().any(|s| s.name == step && s.ok),
            "{step} missing: {:#?}",
            r.steps
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_task_falls_back_and_the_report_says_so() {
    let w = World::new("fallback", &[0, 0, 0]).await;
    let silent = w.live.lock().unwrap()[0].clone();
    silent.fake.state.lock().unwrap().stopped = true; // answers nothing
    let r = handle(w.alarm(2), &w.aws, &w.settings, deadline())
        .await
        .unwrap();
    let drain = r.drain.as_ref().unwrap();
    let fallback = drain.fallback.as_deref().expect("fallback recorded");
    assert!(fallback.contains(&silent.id), "{fallback}");
    assert_ne!(drain.strategy, "fewest-in-flight");
    assert_eq!(r.outcome, Outcome::Completed, "{r:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_minimum_nothing_changes() {
    let w = World::new("atmin", &[0]).await;
    let r = handle(w.alarm(3), &w.aws, &w.settings, deadline())
        .await
        .unwrap();
    assert_eq!(r.outcome, Outcome::Skipped, "{r:#?}");
    assert_eq!(w.service().await.0, 1);
    w.check_settled().await.unwrap();
}

/// EC2 mode: a capacity group of two instances in the cluster, one with a task
/// on it, and the scale-down's port told about the group.
async fn with_capacity(
    w: &mut World,
    min_size: i32,
) -> (aws_sdk_autoscaling::Client, String, Vec<String>) {
    let conf = test_support::moto::shared().sdk_config().await;
    let asg = aws_sdk_autoscaling::Client::new(&conf);
    let group = format!("{}-capacity", w.cluster);
    let (ids, cis): (Vec<String>, Vec<String>) =
        test_support::capacity::group_with_container_instances(
            &asg, &w.ecs, &w.cluster, &group, min_size, 2, None,
        )
        .await
        .into_iter()
        .unzip();
    // A bridge-mode task (not the service's) keeps the first instance busy.
    w.ecs
        .register_task_definition()
        .family("sidecar")
        .network_mode(aws_sdk_ecs::types::NetworkMode::Bridge)
        .container_definitions(
            aws_sdk_ecs::types::ContainerDefinition::builder()
                .name("x")
                .image("x")
                .cpu(128)
                .memory(128)
                .build(),
        )
        .send()
        .await
        .unwrap();
    w.ecs
        .start_task()
        .cluster(&w.cluster)
        .task_definition("sidecar")
        .container_instances(&cis[0])
        .send()
        .await
        .unwrap();
    w.aws.capacity = Some(Capacity {
        asg: AutoScaling::from_client(asg.clone()),
        group: group.clone(),
        min_age_s: 0,
    });
    (asg, group, ids)
}

/// One scale-in in EC2 mode with a group of `min_size`..4 (2 instances):
/// the capacity step, then the group's desired capacity and instances, and
/// the instance ids in launch order (the first one has a task).
async fn scale_in_on_ec2(
    name: &str,
    min_size: i32,
) -> (Step, Option<i32>, Vec<String>, Vec<String>) {
    let mut w = World::new(name, &[0, 0]).await;
    let (asg, group, ids) = with_capacity(&mut w, min_size).await;
    let r = handle(w.alarm(4), &w.aws, &w.settings, deadline())
        .await
        .unwrap();
    assert_eq!(r.outcome, Outcome::Completed, "{r:#?}");
    w.check_settled().await.unwrap();
    let step = r
        .steps
        .iter()
        .find(|s| s.name == "capacity_scale_in")
        .expect("capacity step")
        .clone();
    let g = asg
        .describe_auto_scaling_groups()
        .auto_scaling_group_names(&group)
        .send()
        .await
        .unwrap();
    let g = &g.auto_scaling_groups()[0];
    let left = g
        .instances()
        .iter()
        .filter_map(|i| i.instance_id().map(str::to_string))
        .collect();
    (step, g.desired_capacity(), left, ids)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ec2_mode_gives_back_the_instance_left_empty_never_one_with_tasks() {
    let (step, desired, left, ids) = scale_in_on_ec2("capacity", 1).await;
    assert!(step.ok && step.detail.contains(&ids[1]), "{step:?}");
    assert_eq!(desired, Some(1));
    assert_eq!(left, ids[..1], "the busy instance stays");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ec2_mode_keeps_the_group_at_its_minimum() {
    let (step, desired, left, ids) = scale_in_on_ec2("capmin", 2).await;
    assert!(step.detail.contains("minimum"), "{step:?}");
    assert_eq!((desired, left), (Some(2), ids));
}

/// What scale-up does on a scale-out (as seen by scale-down): desired set to
/// `to` (computed from what it read earlier) and, for an episode in a
/// cancellable phase when it read, the cancel request.
async fn scale_out(w: &World, to: i32, cancel: bool) {
    let (_, tags) = w.service().await;
    w.ecs
        .update_service()
        .cluster(&w.cluster)
        .service(emulated::SERVICE)
        .desired_count(to)
        .send()
        .await
        .unwrap();
    let state = scaling::episode::EpisodeState::from_tags(&tags);
    if let (true, Some(ep)) = (cancel, state.scale_in.as_ref()) {
        let arn = scaling::aws::ecs::Ecs::from_client(w.ecs.clone())
            .describe_service(&w.cluster, emulated::SERVICE)
            .await
            .unwrap()
            .arn;
        w.ecs
            .tag_resource()
            .resource_arn(arn)
            .tags(
                aws_sdk_ecs::types::Tag::builder()
                    .key(scaling::episode::CANCEL)
                    .value(&ep.id)
                    .build(),
            )
            .send()
            .await
            .unwrap();
    }
}

/// A scale-out lands right after `op` (its `nth` call) of a scale-down
/// episode; the episode must end cancelled with the victim kept in service.
async fn overtaken_after(name: &str, op: &str, nth: usize, cancel: bool) {
    let w = World::new(name, &[1, 0, 1]).await;
    let victim = w.live.lock().unwrap()[1].clone();
    // ECS takes a moment to act on a lower desired count: the scale-out lands first.
    w.reaction.store(3000, std::sync::atomic::Ordering::Relaxed);
    w.calls.notify_after(op, nth);
    let hook = w.calls.crash.clone();
    let episode = handle(w.alarm(6), &w.aws, &w.settings, deadline());
    let scale_up = async {
        hook.notified().await;
        scale_out(&w, 4, cancel).await;
    };
    let (r, ()) = tokio::join!(episode, scale_up);
    let r = r.unwrap();
    assert_eq!(r.outcome, Outcome::Cancelled, "{r:#?}");
    assert!(w.live.lock().unwrap().iter().any(|t| t.id == victim.id));
    assert!(
        w.registered().await.contains(&victim.ip),
        "victim re-registered"
    );
    assert!(
        !victim.fake.state.lock().unwrap().draining,
        "victim undrained"
    );
    // ECS starts the task the scale-out asked for; then all is settled.
    w.start_task(0).await;
    w.check_settled().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scale_out_during_the_drain_cancels_it_and_keeps_the_task() {
    overtaken_after("cancel", "task:POST /admin/drain", 0, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scale_out_that_overtakes_the_lowering_still_keeps_the_task() {
    // Scale-up read the marker before Lowering, raised desired after ours
    // landed and asked for the cancel: the victim is never stopped by ECS.
    overtaken_after("overtaken", "ecs:UpdateService", 0, true).await;
}

/// The low alarm stays in ALARM in the emulator's CloudWatch (aws-sdk-cloudwatch
/// through the CBOR shim): the reconcile schedule scales in once, and only
/// reconciles when the alarm is back to OK.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_schedule_scales_in_while_the_low_alarm_stays_in_alarm() {
    use aws_sdk_cloudwatch::types::{ComparisonOperator, StateValue, Statistic};
    let mut w = World::new("stuck-low", &[0, 0, 0]).await;
    let cw = aws_sdk_cloudwatch::Client::new(&test_support::moto::shared().sdk_config().await);
    let name = format!("{}-cpu-low", w.cluster);
    cw.put_metric_alarm()
        .alarm_name(&name)
        .namespace("AWS/ECS")
        .metric_name("CPUUtilization")
        .statistic(Statistic::Average)
        .period(60)
        .evaluation_periods(1)
        .threshold(30.0)
        .comparison_operator(ComparisonOperator::LessThanThreshold)
        .send()
        .await
        .expect("PutMetricAlarm");
    let set = |state: StateValue| {
        cw.set_alarm_state()
            .alarm_name(&name)
            .state_value(state)
            .state_reason("test")
            .send()
    };
    set(StateValue::Alarm).await.expect("SetAlarmState ALARM");
    w.aws.cloudwatch = Some(scaling::aws::cloudwatch::CloudWatch::from_client(
        cw.clone(),
    ));
    w.settings.scale_in_alarms = vec![name.clone()];

    let r = handle(w.schedule(), &w.aws, &w.settings, deadline())
        .await
        .unwrap();
    assert_eq!(r.outcome, Outcome::Completed, "{r:#?}");
    let json = serde_json::to_value(&r).unwrap();
    let reason = json["trigger"]["reason"].as_str().unwrap_or_default();
    assert!(
        reason.starts_with(&format!("schedule: {name} still in ALARM since ")),
        "{reason}"
    );
    assert_eq!(json["trigger"]["alarm_name"], name.as_str());
    assert_eq!(w.service().await.0, 2);
    w.check_settled().await.unwrap();

    set(StateValue::Ok).await.expect("SetAlarmState OK");
    let mut tick = w.schedule();
    tick["time"] = "2026-11-23T15:04:00Z".into();
    let r = handle(tick, &w.aws, &w.settings, deadline()).await.unwrap();
    assert_eq!(r.outcome, Outcome::Skipped, "{r:#?}");
    assert!(
        r.outcome_reason.contains("no scale-in alarm in ALARM"),
        "{r:#?}"
    );
    assert_eq!(w.service().await.0, 2);
}
