//! Lambda entry point: builds settings and clients once, then serves events.

use lambda_runtime::{service_fn, Error, LambdaEvent};
use notify::{handle, settings::Settings, Deps};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let settings = Settings::from_env()?;
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let deps = Deps::new(&config, settings);
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| {
        let deps = &deps;
        async move { handle(event.payload, deps).await }
    }))
    .await
}
