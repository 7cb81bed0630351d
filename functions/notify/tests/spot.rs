//! Counting a Spot interruption wave: the service's stopped tasks as ECS lists and describes
//! them (aws-smithy-mocks: the emulator's tasks carry no stop code).

use aws_sdk_ecs::operation::describe_tasks::DescribeTasksOutput;
use aws_sdk_ecs::operation::list_tasks::ListTasksOutput;
use aws_sdk_ecs::types::{Task, TaskStopCode};
use aws_smithy_mocks::{mock, mock_client, RuleMode};
use aws_smithy_types::DateTime as SmithyTime;
use chrono::{DateTime, Utc};
use notify::spot;

fn at() -> DateTime<Utc> {
    "2026-12-01T14:02:00Z".parse().unwrap()
}

fn task(id: &str, code: TaskStopCode, minutes_before: i64, az: &str) -> Task {
    let when = at().timestamp() - minutes_before * 60;
    Task::builder()
        .task_arn(format!(
            "arn:aws:ecs:us-east-1:123456789012:task/visits/{id}"
        ))
        .availability_zone(az)
        .stopping_at(SmithyTime::from_secs(when))
        .stop_code(code)
        .build()
}

/// DescribeTasks' answer: one stopped task per `(id, stop code, minutes before at(), zone)`.
fn described(tasks: &[(&str, TaskStopCode, i64, &str)]) -> DescribeTasksOutput {
    let tasks = tasks
        .iter()
        .map(|(id, code, minutes_before, az)| task(id, code.clone(), *minutes_before, az))
        .collect();
    DescribeTasksOutput::builder()
        .set_tasks(Some(tasks))
        .build()
}

#[tokio::test]
async fn counts_the_service_tasks_that_spot_stopped_in_the_last_ten_minutes() {
    let ids: Vec<String> = (0..6).map(|i| format!("t{i}")).collect();
    let list = mock!(aws_sdk_ecs::Client::list_tasks)
        .match_requests(|r| {
            r.service_name() == Some("visits-api")
                && r.desired_status() == Some(&aws_sdk_ecs::types::DesiredStatus::Stopped)
        })
        .then_output(move || {
            ListTasksOutput::builder()
                .set_task_arns(Some(ids.clone()))
                .build()
        });
    let describe = mock!(aws_sdk_ecs::Client::describe_tasks)
        .match_requests(|r| r.tasks().len() == 6)
        .then_output(|| {
            use TaskStopCode::{
                EssentialContainerExited, ServiceSchedulerInitiated, SpotInterruption,
            };
            described(&[
                ("t0", SpotInterruption, 0, "us-east-1a"),
                ("t1", SpotInterruption, 1, "us-east-1b"),
                ("t2", SpotInterruption, 2, "us-east-1a"),
                // An older wave, a scale-in and a crash do not count.
                ("t3", SpotInterruption, 45, "us-east-1a"),
                ("t4", ServiceSchedulerInitiated, 1, "us-east-1a"),
                ("t5", EssentialContainerExited, 1, "us-east-1a"),
            ])
        });
    let ecs = mock_client!(aws_sdk_ecs, RuleMode::MatchAny, [&list, &describe]);
    let wave = spot::wave(&ecs, "visits", "visits-api", at())
        .await
        .unwrap();
    assert_eq!(wave.tasks, 3);
    assert_eq!(wave.zones, ["us-east-1a", "us-east-1b"]);
    let line = spot::line(&Ok(wave), "visits-api");
    assert!(
        line.contains("3 tasks of visits-api stopped by Spot in the 10 minutes"),
        "{line}"
    );
    assert_eq!((list.num_calls(), describe.num_calls()), (1, 1));
}

#[tokio::test]
async fn describes_in_batches_of_one_hundred() {
    let ids: Vec<String> = (0..150).map(|i| format!("t{i}")).collect();
    let list = mock!(aws_sdk_ecs::Client::list_tasks).then_output(move || {
        ListTasksOutput::builder()
            .set_task_arns(Some(ids.clone()))
            .build()
    });
    let describe = mock!(aws_sdk_ecs::Client::describe_tasks)
        .match_requests(|r| r.tasks().len() <= 100)
        .then_output(|| described(&[("t", TaskStopCode::SpotInterruption, 1, "us-east-1a")]));
    let ecs = mock_client!(aws_sdk_ecs, RuleMode::MatchAny, [&list, &describe]);
    let wave = spot::wave(&ecs, "visits", "visits-api", at())
        .await
        .unwrap();
    assert_eq!(describe.num_calls(), 2);
    assert_eq!(wave.tasks, 2, "one Spot task per batch in this fake");
}

#[test]
fn a_count_that_could_not_be_read_is_said_not_hidden() {
    let line = spot::line(&Err("AccessDenied".into()), "visits-api");
    assert!(line.contains("could not be read (AccessDenied)"), "{line}");
    assert!(spot::is_spot_stop(Some("SpotInterruption")));
    assert!(!spot::is_spot_stop(Some("ServiceSchedulerInitiated")) && !spot::is_spot_stop(None));
}
