//! Scale-up with aws-smithy-mocks: every sample event, bad events (zero AWS
//! calls), and the error paths the emulator cannot produce (throttling,
//! AccessDenied, a missing service).

mod common;

use aws_sdk_autoscaling::Client as AsgClient;
use aws_sdk_cloudwatch::operation::put_metric_data::PutMetricDataOutput;
use aws_sdk_cloudwatch::Client as CwClient;
use aws_sdk_ecs::operation::describe_services::DescribeServicesOutput;
use aws_sdk_ecs::operation::tag_resource::TagResourceOutput;
use aws_sdk_ecs::operation::untag_resource::UntagResourceOutput;
use aws_sdk_ecs::operation::update_service::UpdateServiceOutput;
use aws_sdk_ecs::types::{Failure, Service, Tag};
use aws_sdk_ecs::Client as EcsClient;
use aws_smithy_mocks::{mock, mock_client, Rule, RuleMode};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::retry::RetryConfig;
use scale_up::{handle, ScaleUpError};
use scaling::error::{error_type, AwsErrorKind, Classify, ScalingError};
use scaling::report::Outcome;
use serde_json::json;

const ARN: &str = "arn:aws:ecs:us-east-1:123456789012:service/visits/visits-api";

fn service(desired: i32, tags: &[(&str, &str)]) -> DescribeServicesOutput {
    let mut s = Service::builder()
        .service_arn(ARN)
        .service_name("visits-api")
        .status("ACTIVE")
        .desired_count(desired)
        .running_count(desired)
        .pending_count(0)
        .task_definition("arn:aws:ecs:us-east-1:123456789012:task-definition/visits-api:3");
    for (k, v) in tags {
        s = s.tags(Tag::builder().key(*k).value(*v).build());
    }
    DescribeServicesOutput::builder()
        .services(s.build())
        .build()
}

fn aws_error(status: u16, code: &str, message: &str) -> HttpResponse {
    HttpResponse::new(
        StatusCode::try_from(status).unwrap(),
        SdkBody::from(json!({"__type": code, "message": message}).to_string()),
    )
}

/// ECS client over rules, with the SDK's standard retry (as in production).
fn ecs(rules: &[&Rule]) -> EcsClient {
    mock_client!(aws_sdk_ecs, RuleMode::MatchAny, rules, |c| c
        .retry_config(RetryConfig::standard().with_max_attempts(3)))
}

/// Clients that must not be called: any call fails the test through the counts.
fn idle_asg() -> (Rule, AsgClient) {
    let r = mock!(aws_sdk_autoscaling::Client::describe_auto_scaling_groups)
        .then_output(|| unreachable!("no ASG call expected"));
    let c = mock_client!(aws_sdk_autoscaling, RuleMode::MatchAny, [&r]);
    (r, c)
}

fn metrics_ok() -> (Rule, CwClient) {
    let r = mock!(aws_sdk_cloudwatch::Client::put_metric_data)
        .sequence()
        .output(|| PutMetricDataOutput::builder().build())
        .repeatedly()
        .build();
    let c = mock_client!(aws_sdk_cloudwatch, RuleMode::MatchAny, [&r]);
    (r, c)
}

struct Ecs {
    describe: Rule,
    tag: Rule,
    untag: Rule,
    update: Rule,
}

impl Ecs {
    fn happy(desired: i32) -> Self {
        Ecs {
            describe: mock!(EcsClient::describe_services)
                .sequence()
                .output(move || service(desired, &[]))
                .repeatedly()
                .build(),
            tag: ok_tag(),
            untag: ok_untag(),
            update: mock!(EcsClient::update_service)
                .sequence()
                .output(|| UpdateServiceOutput::builder().build())
                .repeatedly()
                .build(),
        }
    }

    fn client(&self) -> EcsClient {
        ecs(&[&self.describe, &self.tag, &self.untag, &self.update])
    }

    fn calls(&self) -> usize {
        self.describe.num_calls()
            + self.tag.num_calls()
            + self.untag.num_calls()
            + self.update.num_calls()
    }
}

fn ok_tag() -> Rule {
    mock!(EcsClient::tag_resource)
        .sequence()
        .output(|| TagResourceOutput::builder().build())
        .repeatedly()
        .build()
}

fn ok_untag() -> Rule {
    mock!(EcsClient::untag_resource)
        .sequence()
        .output(|| UntagResourceOutput::builder().build())
        .repeatedly()
        .build()
}

#[tokio::test]
async fn every_sample_event_is_parsed_and_decided() {
    for (stem, ev) in common::all_events() {
        let ecs = Ecs::happy(1);
        let (_asg_rule, asg) = idle_asg();
        let (cw_rule, cw) = metrics_ok();
        let deps = common::deps(common::config(&[]), ecs.client(), asg, cw);
        let report = handle(ev, &deps)
            .await
            .unwrap_or_else(|e| panic!("{stem}: {e}"));
        if stem.ends_with("-alarm") {
            assert_eq!(report.outcome, Outcome::Completed, "{stem}: {report:?}");
            assert_eq!(report.decision.target, Some(2), "{stem}");
            assert_eq!(ecs.update.num_calls(), 1, "{stem}");
            assert_eq!(cw_rule.num_calls(), 1, "{stem}: one episode metric");
            let names: Vec<_> = report.steps.iter().map(|s| s.name.as_str()).collect();
            assert_eq!(
                names,
                [
                    "describe_service",
                    "record_intent",
                    "update_service",
                    "put_metric_data"
                ],
                "{stem}"
            );
        } else if stem.ends_with("-schedule") {
            // The re-evaluation with desired at min and no SCALE_OUT_ALARMS: a quiet skip.
            assert_eq!(report.outcome, Outcome::Skipped, "{stem}: {report:?}");
            assert_eq!(ecs.update.num_calls(), 0, "{stem}");
        } else if stem.ends_with("-review") {
            // The daily forecast review with PREDICTIVE_MODE off (the code's default): skipped,
            // nothing read.
            assert_eq!(report.outcome, Outcome::Skipped, "{stem}: {report:?}");
            assert!(
                report.outcome_reason.contains("PREDICTIVE_MODE is off"),
                "{stem}: {}",
                report.outcome_reason
            );
            assert_eq!(ecs.calls(), 0, "{stem}");
            assert_eq!(cw_rule.num_calls(), 0, "{stem}");
        } else {
            assert!(
                stem.ends_with("-ok"),
                "{stem}: name says ALARM, OK, schedule or review"
            );
            assert_eq!(report.outcome, Outcome::Skipped, "{stem}");
            assert!(
                report.outcome_reason.contains("OK"),
                "{stem}: {}",
                report.outcome_reason
            );
            assert_eq!(ecs.calls(), 0, "{stem}: an OK transition makes no AWS call");
        }
    }
}

#[tokio::test]
async fn bad_events_fail_clearly_with_zero_calls() {
    let mut not_ours = common::event("scale-up-cpu-high-alarm");
    not_ours["alarmData"]["configuration"]["metrics"][0]["metricStat"]["metric"]["dimensions"]
        ["ServiceName"] = json!("billing-api");
    let mut no_state = common::event("scale-up-eventbridge-cpu-high-alarm");
    no_state["detail"]["state"] = json!(null);
    let cases = [
        (json!(null), "BadEvent"),
        (json!({"hello": "world"}), "BadEvent"),
        (
            json!({"detail-type": "EC2 Instance State-change Notification", "source": "aws.ec2", "detail": {}}),
            "BadEvent",
        ),
        (
            // A schedule (the re-evaluation) is accepted; one from another source is not.
            json!({"source": "aws.ec2", "detail-type": "Scheduled Event", "time": "2026-11-23T15:00:00Z", "detail": {}}),
            "BadEvent",
        ),
        (
            json!({"Records": [{"Sns": {"Message": "{\"AlarmName\": 3}"}}]}),
            "BadEvent",
        ),
        (no_state, "BadEvent"),
        (not_ours, "NotOurs"),
    ];
    for (ev, kind) in cases {
        let ecs = Ecs::happy(1);
        let (asg_rule, asg) = idle_asg();
        let (cw_rule, cw) = metrics_ok();
        let deps = common::deps(common::config(&[]), ecs.client(), asg, cw);
        let err = handle(ev.clone(), &deps).await.expect_err("must fail");
        assert_eq!(err.kind(), kind, "{ev}: {err}");
        assert!(!err.retryable(), "{ev}");
        assert!(error_type(&err).starts_with("NonRetryable."), "{ev}");
        assert!(err.to_string().len() > 20, "a sentence, not a code: {err}");
        assert!(err.report().is_none());
        assert_eq!(
            ecs.calls() + asg_rule.num_calls() + cw_rule.num_calls(),
            0,
            "{ev}: zero AWS calls"
        );
    }
}

#[tokio::test]
async fn throttling_then_success_completes() {
    let mut ecs = Ecs::happy(1);
    ecs.describe = mock!(EcsClient::describe_services)
        .sequence()
        .http_response(|| aws_error(400, "ThrottlingException", "Rate exceeded"))
        .output(|| service(1, &[]))
        .build();
    let (_r, asg) = idle_asg();
    let (_c, cw) = metrics_ok();
    let deps = common::deps(common::config(&[]), ecs.client(), asg, cw);
    let report = handle(common::event("scale-up-cpu-high-alarm"), &deps)
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::Completed, "{report:?}");
    assert_eq!(
        ecs.describe.num_calls(),
        2,
        "the SDK's standard retry absorbed the throttle"
    );
    assert_eq!(report.after.unwrap().desired, 2);
}

#[tokio::test]
async fn throttling_that_persists_is_a_retryable_error() {
    let mut ecs = Ecs::happy(1);
    ecs.describe = mock!(EcsClient::describe_services)
        .sequence()
        .http_response(|| aws_error(400, "ThrottlingException", "Rate exceeded"))
        .repeatedly()
        .build();
    let (_r, asg) = idle_asg();
    let (_c, cw) = metrics_ok();
    let deps = common::deps(common::config(&[]), ecs.client(), asg, cw);
    let err = handle(common::event("scale-up-cpu-high-alarm"), &deps)
        .await
        .unwrap_err();
    assert_eq!(error_type(&err), "Retryable.Aws.Throttling");
    let report = err.report().expect("a report");
    assert_eq!(report.outcome, Outcome::Failed);
    assert!(
        report.outcome_reason.contains("Rate exceeded"),
        "{}",
        report.outcome_reason
    );
    assert_eq!(
        ecs.update.num_calls() + ecs.tag.num_calls(),
        0,
        "nothing changed"
    );
}

#[tokio::test]
async fn access_denied_on_update_rolls_back_the_intent() {
    let mut ecs = Ecs::happy(1);
    ecs.update = mock!(EcsClient::update_service).then_http_response(|| {
        aws_error(
            400,
            "AccessDeniedException",
            "User: arn:aws:sts::123456789012:assumed-role/scale-up/fn is not authorized to perform: ecs:UpdateService",
        )
    });
    let (_r, asg) = idle_asg();
    let (cw_rule, cw) = metrics_ok();
    let deps = common::deps(common::config(&[]), ecs.client(), asg, cw);
    let err = handle(common::event("scale-up-cpu-high-alarm"), &deps)
        .await
        .unwrap_err();
    let ScaleUpError::Aws { source, report } = &err else {
        panic!("{err}")
    };
    assert_eq!(source.kind, AwsErrorKind::AccessDenied);
    assert!(!err.retryable());
    assert_eq!(report.outcome, Outcome::RolledBack, "{report:?}");
    assert!(
        report.outcome_reason.contains("not authorized"),
        "{}",
        report.outcome_reason
    );
    let rollback = report.rollback.as_ref().expect("rollback summary");
    assert!(rollback.operator_checks.is_empty(), "{rollback:?}");
    // The intent tags were written, then removed again (they were absent before).
    assert_eq!(ecs.tag.num_calls(), 1);
    assert_eq!(ecs.untag.num_calls(), 1);
    assert_eq!(
        cw_rule.num_calls(),
        0,
        "no episode metric for a failed action"
    );
}

#[tokio::test]
async fn missing_service_is_a_clear_non_retryable_error() {
    let mut ecs = Ecs::happy(1);
    ecs.describe = mock!(EcsClient::describe_services).then_output(|| {
        DescribeServicesOutput::builder()
            .failures(Failure::builder().arn(ARN).reason("MISSING").build())
            .build()
    });
    let (_r, asg) = idle_asg();
    let (_c, cw) = metrics_ok();
    let deps = common::deps(common::config(&[]), ecs.client(), asg, cw);
    let err = handle(common::event("scale-up-cpu-high-alarm"), &deps)
        .await
        .unwrap_err();
    assert_eq!(error_type(&err), "NonRetryable.Aws.NotFound");
    assert!(
        err.to_string().contains("visits-api") && err.to_string().contains("MISSING"),
        "{err}"
    );
    assert_eq!(err.report().unwrap().outcome, Outcome::Failed);
    assert_eq!(
        ecs.update.num_calls() + ecs.tag.num_calls(),
        0,
        "service left as it was"
    );
}

#[tokio::test]
async fn paused_service_reports_and_does_nothing() {
    let mut ecs = Ecs::happy(1);
    ecs.describe = mock!(EcsClient::describe_services)
        .then_output(|| service(1, &[("autoscaler:paused", "true")]));
    let (_r, asg) = idle_asg();
    let (_c, cw) = metrics_ok();
    let deps = common::deps(common::config(&[]), ecs.client(), asg, cw);
    let report = handle(common::event("scale-up-cpu-high-alarm"), &deps)
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::Skipped);
    assert!(report.outcome_reason.contains("paused"));
    assert_eq!(ecs.update.num_calls() + ecs.tag.num_calls(), 0);
}

#[tokio::test]
async fn scale_out_during_a_drain_requests_the_cancel() {
    let mut ecs = Ecs::happy(2);
    ecs.describe = mock!(EcsClient::describe_services).then_output(|| {
        service(
            2,
            &[(
                "autoscaler:episode",
                "in-1763910000-00ab/draining/1763910000",
            )],
        )
    });
    ecs.tag = mock!(EcsClient::tag_resource)
        .sequence()
        .output(|| TagResourceOutput::builder().build())
        .times(2)
        .build();
    let (_r, asg) = idle_asg();
    let (_c, cw) = metrics_ok();
    let deps = common::deps(common::config(&[]), ecs.client(), asg, cw);
    let report = handle(common::event("scale-up-cpu-high-alarm"), &deps)
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::Completed);
    assert!(
        report.outcome_reason.contains("in-1763910000-00ab"),
        "{}",
        report.outcome_reason
    );
    assert!(report
        .steps
        .iter()
        .any(|s| s.name == "request_cancel" && s.ok));
    assert_eq!(ecs.tag.num_calls(), 2, "intent, then the cancel request");
}

#[test]
fn scaling_errors_keep_their_kind() {
    let e: ScaleUpError = ScalingError::BadEvent("x".into()).into();
    assert_eq!(error_type(&e), "NonRetryable.BadEvent");
    let d: lambda_runtime::Diagnostic = e.into();
    assert_eq!(d.error_type, "NonRetryable.BadEvent");
}
