//! EC2 capacity in the emulator: an Auto Scaling group whose instances are
//! registered as ECS container instances of a cluster, as drain-instance and
//! scale-down's EC2-mode tests need it.

use aws_sdk_autoscaling::types::LifecycleHookSpecification;

/// Creates the Auto Scaling group `group` (its own launch configuration of the
/// same name, `min_size`..4, `desired` instances, optional lifecycle `hook`)
/// and registers each of its instances as a container instance of `cluster`
/// (which must exist). Returns (EC2 instance id, container instance ARN) in
/// the group's order. Panics on any emulator error: it is test setup.
pub async fn group_with_container_instances(
    asg: &aws_sdk_autoscaling::Client,
    ecs: &aws_sdk_ecs::Client,
    cluster: &str,
    group: &str,
    min_size: i32,
    desired: i32,
    hook: Option<LifecycleHookSpecification>,
) -> Vec<(String, String)> {
    asg.create_launch_configuration()
        .launch_configuration_name(group)
        .image_id("ami-12c6146b")
        .instance_type("t3.micro")
        .send()
        .await
        .unwrap();
    asg.create_auto_scaling_group()
        .auto_scaling_group_name(group)
        .launch_configuration_name(group)
        .min_size(min_size)
        .max_size(4)
        .desired_capacity(desired)
        .availability_zones("us-east-1a")
        .set_lifecycle_hook_specification_list(hook.map(|h| vec![h]))
        .send()
        .await
        .unwrap();
    let out = asg
        .describe_auto_scaling_groups()
        .auto_scaling_group_names(group)
        .send()
        .await
        .unwrap();
    let mut registered = Vec::new();
    for i in out.auto_scaling_groups()[0].instances() {
        let id = i.instance_id().unwrap().to_string();
        let doc = serde_json::json!({"instanceId": id, "region": "us-east-1"}).to_string();
        let ci = ecs
            .register_container_instance()
            .cluster(cluster)
            .instance_identity_document(doc)
            .send()
            .await
            .unwrap();
        let arn = ci
            .container_instance()
            .unwrap()
            .container_instance_arn()
            .unwrap();
        registered.push((id, arn.to_string()));
    }
    registered
}
