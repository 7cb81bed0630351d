//! drain-instance Lambda: builds config and clients once, then serves events.

use drain_instance::{handle, Deps, Settings};
use lambda_runtime::{service_fn, tracing, Error, LambdaEvent};
use scaling::aws::{autoscaling::AutoScaling, ecs::Ecs, load_sdk_config};
use scaling::config::Config;

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    let config = Config::from_env()?;
    let sdk = load_sdk_config().await;
    let deps = Deps {
        ecs: Ecs::new(&sdk),
        asg: AutoScaling::new(&sdk),
    };
    let settings = Settings::from_config(&config);
    let (deps, settings) = (&deps, &settings);
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<serde_json::Value>| async move {
            let deadline = scaling::deadline::monotonic(&event.context);
            handle(event.payload, deps, settings, deadline).await
        },
    ))
    .await
}
