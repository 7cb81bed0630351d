//! scale-down Lambda: builds config and clients once, then serves events.

use lambda_runtime::{service_fn, tracing, Error, LambdaEvent};
use scale_down::admin::AdminClient;
use scale_down::aws_port::{AwsPort, MIN_INSTANCE_AGE_S};
use scale_down::{handle, Settings};
use scaling::aws::autoscaling::AutoScaling;
use scaling::aws::{ecs::Ecs, elb::Elb, load_sdk_config, protection::Protection};
use scaling::config::Config;
use std::time::Duration;

/// How long a task may take to answer its admin endpoints.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(1);

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    let mut config = Config::from_env()?;
    let sdk = load_sdk_config().await;
    scaling::aws::secret::resolve_admin_token(&mut config, &sdk).await?;
    let ecs = Ecs::new(&sdk);
    let protection = Protection::new(
        aws_sdk_ecs::Client::new(&sdk),
        &config.cluster,
        config.protection_expiry_min,
    );
    let admin = AdminClient::new(
        config.admin_token.clone(),
        config.ip_rewrite.clone(),
        ADMIN_TIMEOUT,
    );
    let mut port = AwsPort::new(
        ecs,
        Elb::new(&sdk),
        protection,
        admin,
        &config.cluster,
        &config.service,
        config.task_port.map(i32::from),
    );
    if let Some(group) = &config.capacity_asg_name {
        port = port.with_capacity(AutoScaling::new(&sdk), group, MIN_INSTANCE_AGE_S);
    }
    if !config.scale_in_alarms.is_empty() || !config.scale_out_alarms.is_empty() {
        port = port.with_alarms(aws_sdk_cloudwatch::Client::new(&sdk));
    }
    let settings = Settings::from_config(&config);
    let (port, settings) = (&port, &settings);
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<serde_json::Value>| async move {
            let deadline = scaling::deadline::monotonic(&event.context);
            handle(event.payload, port, settings, deadline).await
        },
    ))
    .await
}
