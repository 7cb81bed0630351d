//! The production adapter over aws-smithy-mocks clients: bridge-mode targets
//! (instance + host port) and AWS errors turned into classified port errors.

use aws_sdk_ecs::operation::describe_container_instances::DescribeContainerInstancesOutput;
use aws_sdk_ecs::operation::describe_tasks::DescribeTasksOutput;
use aws_sdk_ecs::operation::update_service::UpdateServiceError;
use aws_sdk_ecs::types::{Container, ContainerInstance, NetworkBinding, Task};
use aws_smithy_mocks::{mock, mock_client, RuleMode};
use scale_down::admin::AdminClient;
use scale_down::aws_port::AwsPort;
use scale_down::machine::targets_of;
use scale_down::port::{LbBinding, Port, ServiceView};
use scaling::aws::{ecs::Ecs, elb::Elb, protection::Protection};
use std::time::Duration;

fn port(ecs: aws_sdk_ecs::Client) -> AwsPort {
    let elb = Elb::from_client(mock_client!(aws_sdk_elasticloadbalancingv2, []));
    AwsPort::new(
        Ecs::from_client(ecs.clone()),
        elb,
        Protection::new(ecs, "visits", 15),
        AdminClient::new(None, None, Duration::from_millis(100)),
        "visits",
        "visits-api",
        None,
    )
}

#[tokio::test]
async fn a_bridge_mode_victim_is_targeted_by_instance_and_host_port() {
    let tasks = mock!(aws_sdk_ecs::Client::describe_tasks).then_output(|| {
        DescribeTasksOutput::builder()
            .tasks(
                Task::builder()
                    .task_arn("arn:aws:ecs:us-east-1:123456789012:task/visits/abc")
                    .last_status("RUNNING")
                    .desired_status("RUNNING")
                    .container_instance_arn(
                        "arn:aws:ecs:us-east-1:123456789012:container-instance/visits/ci1",
                    )
                    .containers(
                        Container::builder()
                            .name("api")
                            .network_bindings(
                                NetworkBinding::builder()
                                    .container_port(8080)
                                    .host_port(32768)
                                    .build(),
                            )
                            .build(),
                    )
                    .build(),
            )
            .build()
    });
    let instances = mock!(aws_sdk_ecs::Client::describe_container_instances).then_output(|| {
        DescribeContainerInstancesOutput::builder()
            .container_instances(
                ContainerInstance::builder()
                    .ec2_instance_id("i-0123456789abcdef0")
                    .build(),
            )
            .build()
    });
    let p = port(mock_client!(
        aws_sdk_ecs,
        RuleMode::MatchAny,
        [&tasks, &instances]
    ));
    let victim = p.task("abc").await.unwrap().unwrap();
    assert!(victim.is_running());
    let svc = ServiceView {
        load_balancers: vec![LbBinding {
            target_group_arn: "tg".into(),
            container_name: "api".into(),
            container_port: 8080,
        }],
        ..ServiceView::default()
    };
    let targets = targets_of(&victim, &svc);
    assert_eq!(targets.len(), 1);
    assert_eq!(
        (targets[0].id.as_str(), targets[0].port),
        ("i-0123456789abcdef0", 32768)
    );
}

#[tokio::test]
async fn an_aws_error_keeps_its_operation_and_retryability() {
    let rule = mock!(aws_sdk_ecs::Client::update_service).then_error(|| {
        UpdateServiceError::AccessDeniedException(
            aws_sdk_ecs::types::error::AccessDeniedException::builder()
                .message("denied")
                .build(),
        )
    });
    let p = port(mock_client!(aws_sdk_ecs, [&rule]));
    let err = p.set_desired(2).await.unwrap_err();
    assert_eq!(err.op, "ecs:UpdateService");
    assert!(!err.retryable, "{err}");
}

#[tokio::test]
async fn an_unreachable_task_is_a_retryable_admin_error() {
    let p = port(mock_client!(aws_sdk_ecs, []));
    let task = scale_down::port::TaskView {
        private_ip: Some("127.0.0.1".into()),
        ..Default::default()
    };
    // No TASK_PORT and no load balancer seen yet: nothing to call.
    assert!(p.drain_status(&task).await.is_err());
}
