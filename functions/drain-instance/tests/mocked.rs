//! drain-instance over aws-smithy-mocks clients: the sample events, refusals
//! with zero AWS calls, the schedule's resume of a drain waiting in the hook
//! (the emulator never holds an instance in `Terminating:Wait`), and AWS
//! errors returned as classified, retryable Lambda errors.

use aws_lambda_events::event::autoscaling::AutoScalingEvent;
use aws_sdk_autoscaling::operation::complete_lifecycle_action::{
    CompleteLifecycleActionError, CompleteLifecycleActionOutput,
};
use aws_sdk_autoscaling::operation::describe_auto_scaling_instances::DescribeAutoScalingInstancesOutput;
use aws_sdk_autoscaling::operation::describe_lifecycle_hooks::DescribeLifecycleHooksOutput;
use aws_sdk_autoscaling::types::{AutoScalingInstanceDetails, LifecycleHook};
use aws_sdk_ecs::operation::describe_container_instances::DescribeContainerInstancesOutput;
use aws_sdk_ecs::operation::list_container_instances::ListContainerInstancesOutput;
use aws_sdk_ecs::types::ContainerInstance;
use aws_smithy_mocks::{mock, mock_client, Rule, RuleMode};
use drain_instance::{handle, Deps, FnError, Settings};
use scaling::aws::{autoscaling::AutoScaling, ecs::Ecs};
use scaling::error::Classify;
use scaling::report::Outcome;
use serde_json::Value;
use std::time::Duration;
use tokio::time::Instant;

const CI_ARN: &str = "arn:aws:ecs:us-east-1:123456789012:container-instance/visits/ci1";
const INSTANCE: &str = "i-0123456789abcdef0";

fn settings() -> Settings {
    Settings {
        cluster: "visits".into(),
        service: "visits-api".into(),
        asg_name: Some("visits-capacity".into()),
        poll: Duration::from_millis(10),
        reserve: Duration::ZERO,
        global_margin: Duration::from_secs(60),
        region: None,
        dry_run: false,
    }
}

fn deps(ecs: &[&Rule], asg: &[&Rule]) -> Deps {
    Deps {
        ecs: Ecs::from_client(mock_client!(aws_sdk_ecs, RuleMode::MatchAny, ecs)),
        // One attempt: the SDK's own retry would hide the injected error.
        asg: AutoScaling::from_client(mock_client!(
            aws_sdk_autoscaling,
            RuleMode::MatchAny,
            asg,
            |c| c.retry_config(aws_sdk_autoscaling::config::retry::RetryConfig::disabled())
        )),
    }
}

fn events() -> Vec<(String, Value)> {
    let dir = test_support::paths::repo_root().join("events");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if name.starts_with("drain-instance-") && name.ends_with(".json") {
            let v = serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            out.push((name, v));
        }
    }
    assert!(out.len() >= 2, "sample events missing: {out:?}");
    out
}

/// A container instance of the cluster on INSTANCE with `running` tasks.
fn instances(status: &'static str, running: i32) -> [Rule; 2] {
    let list = mock!(aws_sdk_ecs::Client::list_container_instances).then_output(|| {
        ListContainerInstancesOutput::builder()
            .container_instance_arns(CI_ARN)
            .build()
    });
    let describe =
        mock!(aws_sdk_ecs::Client::describe_container_instances).then_output(move || {
            DescribeContainerInstancesOutput::builder()
                .container_instances(
                    ContainerInstance::builder()
                        .container_instance_arn(CI_ARN)
                        .ec2_instance_id(INSTANCE)
                        .status(status)
                        .running_tasks_count(running)
                        .pending_tasks_count(0)
                        .build(),
                )
                .build()
        });
    [list, describe]
}

fn hook() -> Rule {
    mock!(aws_sdk_autoscaling::Client::describe_lifecycle_hooks).then_output(|| {
        DescribeLifecycleHooksOutput::builder()
            .lifecycle_hooks(
                LifecycleHook::builder()
                    .lifecycle_hook_name("drain-before-terminate")
                    .auto_scaling_group_name("visits-capacity")
                    .lifecycle_transition("autoscaling:EC2_INSTANCE_TERMINATING")
                    .heartbeat_timeout(900)
                    .global_timeout(90_000)
                    .build(),
            )
            .build()
    })
}

#[tokio::test]
async fn every_sample_event_is_an_eventbridge_event_this_function_accepts() {
    for (name, event) in events() {
        if event["source"] == "aws.autoscaling" {
            let parsed: AutoScalingEvent =
                serde_json::from_value(event.clone()).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(
                parsed.detail_type.as_deref(),
                Some(drain_instance::event::DETAIL_TYPE)
            );
        }
        drain_instance::event::parse(&event, Some("visits-capacity"))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[tokio::test]
async fn malformed_or_foreign_events_are_refused_without_an_aws_call() {
    let any_ecs = mock!(aws_sdk_ecs::Client::list_container_instances)
        .then_output(|| ListContainerInstancesOutput::builder().build());
    let any_asg = hook();
    let d = deps(&[&any_ecs], &[&any_asg]);
    let (_, good) = events()
        .into_iter()
        .find(|(n, _)| n == "drain-instance-terminate.json")
        .unwrap();
    let mut foreign = good.clone();
    foreign["detail"]["AutoScalingGroupName"] = "someone-else".into();
    let mut no_token = good.clone();
    no_token["detail"]
        .as_object_mut()
        .unwrap()
        .remove("LifecycleActionToken");
    for (case, event, kind) in [
        ("foreign group", foreign, "NotOurs"),
        ("no token", no_token, "BadEvent"),
        ("not an object", Value::from("hello"), "BadEvent"),
        ("empty", serde_json::json!({}), "BadEvent"),
    ] {
        let err = handle(
            event,
            &d,
            &settings(),
            Instant::now() + Duration::from_secs(5),
        )
        .await
        .expect_err(case);
        assert_eq!(err.kind(), kind, "{case}: {err}");
        assert!(!err.retryable(), "{case}");
        let diag: lambda_runtime::Diagnostic = err.into();
        assert!(diag.error_type.starts_with("NonRetryable."), "{case}");
    }
    assert_eq!(any_ecs.num_calls() + any_asg.num_calls(), 0);
}

#[tokio::test]
async fn the_schedule_completes_a_drain_that_outlasted_an_invocation() {
    let [list, describe] = instances("DRAINING", 0);
    let waiting =
        mock!(aws_sdk_autoscaling::Client::describe_auto_scaling_instances).then_output(|| {
            DescribeAutoScalingInstancesOutput::builder()
                .auto_scaling_instances(
                    AutoScalingInstanceDetails::builder()
                        .instance_id(INSTANCE)
                        .auto_scaling_group_name("visits-capacity")
                        .lifecycle_state("Terminating:Wait")
                        .availability_zone("us-east-1a")
                        .health_status("HEALTHY")
                        .protected_from_scale_in(false)
                        .build(),
                )
                .build()
        });
    let hook = hook();
    // Named by the instance id (the schedule has no token), with CONTINUE.
    let complete = mock!(aws_sdk_autoscaling::Client::complete_lifecycle_action)
        .match_requests(|r| {
            r.instance_id() == Some(INSTANCE)
                && r.lifecycle_action_token().is_none()
                && r.lifecycle_hook_name() == Some("drain-before-terminate")
                && r.lifecycle_action_result() == Some("CONTINUE")
        })
        .then_output(|| CompleteLifecycleActionOutput::builder().build());
    let d = deps(&[&list, &describe], &[&waiting, &hook, &complete]);
    let (_, schedule) = events()
        .into_iter()
        .find(|(n, _)| n == "drain-instance-schedule.json")
        .unwrap();
    let r = handle(
        schedule,
        &d,
        &settings(),
        Instant::now() + Duration::from_secs(5),
    )
    .await
    .unwrap();
    assert_eq!(r.outcome, Outcome::Completed, "{r:#?}");
    assert_eq!(complete.num_calls(), 1);
}

#[tokio::test]
async fn a_failed_completion_is_a_retryable_error_and_the_retry_resumes() {
    let [list, describe] = instances("DRAINING", 0);
    let hook = hook();
    let complete = mock!(aws_sdk_autoscaling::Client::complete_lifecycle_action)
        .sequence()
        .error(|| {
            CompleteLifecycleActionError::generic(
                aws_smithy_types::error::ErrorMetadata::builder()
                    .code("Throttling")
                    .message("Rate exceeded")
                    .build(),
            )
        })
        .output(|| CompleteLifecycleActionOutput::builder().build())
        .build();
    let d = deps(&[&list, &describe], &[&hook, &complete]);
    let (_, event) = events()
        .into_iter()
        .find(|(n, _)| n == "drain-instance-terminate.json")
        .unwrap();
    let deadline = || Instant::now() + Duration::from_secs(5);
    let mut event = event;
    event["time"] = chrono::Utc::now().to_rfc3339().into();
    let err = handle(event.clone(), &d, &settings(), deadline())
        .await
        .expect_err("completion failed");
    assert!(matches!(err, FnError::Aws(_)), "{err}");
    assert!(err.retryable(), "{err}");
    // The retried event finds the instance already DRAINING and completes.
    let r = handle(event, &d, &settings(), deadline()).await.unwrap();
    assert_eq!(r.outcome, Outcome::Completed, "{r:#?}");
    assert_eq!(complete.num_calls(), 2);
}
