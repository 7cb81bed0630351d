//! drain-instance against the emulator: a real capacity ASG with a terminate
//! hook, real ECS container instances on its EC2 instances, a real task on
//! one of them, and the lifecycle calls read back from the emulator.

use aws_sdk_autoscaling::types::LifecycleHookSpecification;
use aws_sdk_ecs::types::{ContainerDefinition, NetworkMode};
use chrono::{DateTime, Utc};
use drain_instance::{handle, Deps, Settings};
use scaling::aws::{autoscaling::AutoScaling, ecs::Ecs};
use scaling::report::{Outcome, Report};
use serde_json::{json, Value};
use std::time::Duration;
use test_support::{capacity, moto};
use tokio::time::Instant;

const HOOK: &str = "drain-before-terminate";

/// One test's world: its own cluster and group (the emulator is shared).
struct World {
    cluster: String,
    group: String,
    deps: Deps,
    ecs: aws_sdk_ecs::Client,
    /// (EC2 instance id, container instance ARN)
    instances: Vec<(String, String)>,
}

async fn world(name: &str, instances: i32) -> World {
    let conf = moto::shared().sdk_config().await;
    let ecs = aws_sdk_ecs::Client::new(&conf);
    let asg = aws_sdk_autoscaling::Client::new(&conf);
    let cluster = format!("di-{name}");
    let group = format!("di-{name}-capacity");
    ecs.create_cluster()
        .cluster_name(&cluster)
        .send()
        .await
        .unwrap();
    let registered = capacity::group_with_container_instances(
        &asg,
        &ecs,
        &cluster,
        &group,
        0,
        instances,
        Some(
            LifecycleHookSpecification::builder()
                .lifecycle_hook_name(HOOK)
                .lifecycle_transition("autoscaling:EC2_INSTANCE_TERMINATING")
                .heartbeat_timeout(900)
                .build(),
        ),
    )
    .await;
    ecs.register_task_definition()
        .family(&cluster)
        .network_mode(NetworkMode::Bridge)
        .container_definitions(
            ContainerDefinition::builder()
                .name("api")
                .image("x")
                .cpu(256)
                .memory(256)
                .build(),
        )
        .send()
        .await
        .unwrap();
    World {
        deps: Deps {
            ecs: Ecs::from_client(ecs.clone()),
            asg: AutoScaling::from_client(asg),
        },
        cluster,
        group,
        ecs,
        instances: registered,
    }
}

impl World {
    fn settings(&self) -> Settings {
        Settings {
            cluster: self.cluster.clone(),
            service: "visits-api".into(),
            asg_name: Some(self.group.clone()),
            poll: Duration::from_millis(100),
            reserve: Duration::ZERO,
            global_margin: Duration::from_secs(60),
            region: Some("us-east-1".into()),
            dry_run: false,
        }
    }

    /// Starts one task on the container instance `ci` (EC2 launch type).
    async fn run_task_on(&self, ci: &str) -> String {
        let out = self
            .ecs
            .start_task()
            .cluster(&self.cluster)
            .task_definition(&self.cluster)
            .container_instances(ci)
            .group("service:visits-api")
            .send()
            .await
            .unwrap();
        out.tasks()[0].task_arn().unwrap().to_string()
    }

    fn event(&self, instance: &str, time: DateTime<Utc>) -> Value {
        let mut e: Value = serde_json::from_str(
            &std::fs::read_to_string(
                test_support::paths::repo_root().join("events/drain-instance-terminate.json"),
            )
            .unwrap(),
        )
        .unwrap();
        e["time"] = json!(time.to_rfc3339());
        e["detail"]["AutoScalingGroupName"] = json!(self.group);
        e["detail"]["EC2InstanceId"] = json!(instance);
        e["detail"]["LifecycleActionToken"] = json!(format!("token-{instance}"));
        e
    }

    async fn run(&self, event: Value, budget: Duration) -> Report {
        handle(event, &self.deps, &self.settings(), Instant::now() + budget)
            .await
            .expect("handled")
    }

    async fn status(&self, ci: &str) -> String {
        let out = self
            .ecs
            .describe_container_instances()
            .cluster(&self.cluster)
            .container_instances(ci)
            .send()
            .await
            .unwrap();
        out.container_instances()[0].status().unwrap().to_string()
    }

    /// This group's lifecycle calls, as (action, result, token).
    fn lifecycle_calls(&self) -> Vec<(String, String, String)> {
        moto::shared()
            .lifecycle_actions()
            .unwrap()
            .into_iter()
            .filter(|c| c["AutoScalingGroupName"] == self.group.as_str())
            .map(|c| {
                let s = |k: &str| c[k].as_str().unwrap_or_default().to_string();
                (
                    s("Action"),
                    s("LifecycleActionResult"),
                    s("LifecycleActionToken"),
                )
            })
            .collect()
    }
}

#[tokio::test]
async fn drains_then_heartbeats_then_completes_when_the_last_task_leaves() {
    let w = world("drain", 2).await;
    let (instance, ci) = w.instances[0].clone();
    let task = w.run_task_on(&ci).await;
    let event = w.event(&instance, Utc::now());

    // The task stays: the wait outlasts this (short) invocation.
    let r = w.run(event.clone(), Duration::from_secs(2)).await;
    assert_eq!(r.outcome, Outcome::InProgress, "{r:#?}");
    assert!(
        r.outcome_reason.contains("still draining"),
        "{}",
        r.outcome_reason
    );
    let task_id = task.rsplit('/').next().unwrap();
    assert!(
        r.outcome_reason.contains(task_id),
        "names the task: {}",
        r.outcome_reason
    );
    assert_eq!(w.status(&ci).await, "DRAINING");
    let token = format!("token-{instance}");
    assert_eq!(
        w.lifecycle_calls(),
        [(
            "RecordLifecycleActionHeartbeat".into(),
            String::new(),
            token.clone()
        )]
    );
    // The other instance is untouched.
    assert_eq!(w.status(&w.instances[1].1).await, "ACTIVE");

    // ECS moves the task away; the retried event resumes (already DRAINING) and completes.
    w.ecs
        .stop_task()
        .cluster(&w.cluster)
        .task(&task)
        .send()
        .await
        .unwrap();
    let r = w.run(event, Duration::from_secs(30)).await;
    assert_eq!(r.outcome, Outcome::Completed, "{r:#?}");
    let names: Vec<&str> = r.steps.iter().map(|s| s.name.as_str()).collect();
    assert!(names.contains(&"wait_empty") && names.contains(&"complete_lifecycle_action"));
    assert!(r
        .steps
        .iter()
        .any(|s| s.detail.contains("already DRAINING")));
    let calls = w.lifecycle_calls();
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert_eq!(
        calls[1],
        ("CompleteLifecycleAction".into(), "CONTINUE".into(), token)
    );
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["function"], "drain-instance");
    assert_eq!(json["trigger"]["instance_id"], instance.as_str());
}

#[tokio::test]
async fn an_empty_instance_completes_at_once_and_a_foreign_one_is_let_go() {
    let w = world("empty", 1).await;
    let (instance, ci) = w.instances[0].clone();
    let r = w
        .run(w.event(&instance, Utc::now()), Duration::from_secs(30))
        .await;
    assert_eq!(r.outcome, Outcome::Completed, "{r:#?}");
    assert_eq!(w.status(&ci).await, "DRAINING");

    let r = w
        .run(
            w.event("i-00000000000000fff", Utc::now()),
            Duration::from_secs(30),
        )
        .await;
    assert_eq!(r.outcome, Outcome::Completed, "{r:#?}");
    assert!(
        r.outcome_reason.contains("not a container instance"),
        "{}",
        r.outcome_reason
    );
    let results: Vec<String> = w.lifecycle_calls().into_iter().map(|c| c.1).collect();
    assert_eq!(results, ["CONTINUE", "CONTINUE"]);
}

#[tokio::test]
async fn near_the_global_timeout_the_tasks_still_running_are_named() {
    let w = world("cutoff", 1).await;
    let (instance, ci) = w.instances[0].clone();
    let task = w.run_task_on(&ci).await;
    // The hook started almost 48 h ago (the emulator's global timeout).
    let started = Utc::now() - chrono::Duration::seconds(172_800 - 30);
    let r = w
        .run(w.event(&instance, started), Duration::from_secs(30))
        .await;
    assert_eq!(r.outcome, Outcome::Failed, "{r:#?}");
    let checks = &r
        .rollback
        .as_ref()
        .expect("operator checks")
        .operator_checks;
    let task_id = task.rsplit('/').next().unwrap();
    assert!(checks.iter().any(|c| c.contains(task_id)), "{checks:?}");
    let calls = w.lifecycle_calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0].1, "CONTINUE");
}

#[tokio::test]
async fn the_schedule_finds_nothing_waiting_in_the_hook() {
    // The emulator never holds an instance in Terminating:Wait, so the resume
    // path only finds nothing here; the mocked tests cover the resume itself.
    let w = world("schedule", 1).await;
    w.deps
        .ecs
        .set_draining(&w.cluster, &w.instances[0].1)
        .await
        .unwrap();
    let event: Value = serde_json::from_str(
        &std::fs::read_to_string(
            test_support::paths::repo_root().join("events/drain-instance-schedule.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let r = w.run(event, Duration::from_secs(30)).await;
    assert_eq!(r.outcome, Outcome::Skipped, "{r:#?}");
    assert!(w.lifecycle_calls().is_empty());
}

#[tokio::test]
async fn a_dry_run_reports_and_changes_nothing() {
    let w = world("dryrun", 1).await;
    let (instance, ci) = w.instances[0].clone();
    w.run_task_on(&ci).await;
    let mut s = w.settings();
    s.dry_run = true;
    let deadline = Instant::now() + Duration::from_secs(30);
    let r = handle(w.event(&instance, Utc::now()), &w.deps, &s, deadline)
        .await
        .unwrap();
    assert_eq!(r.outcome, Outcome::Skipped, "{r:#?}");
    assert!(r.dry_run);
    assert!(
        r.outcome_reason.contains("1 running"),
        "{}",
        r.outcome_reason
    );
    assert_eq!(w.status(&ci).await, "ACTIVE");
    assert!(w.lifecycle_calls().is_empty());
}
