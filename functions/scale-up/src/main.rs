//! Scale-up Lambda: builds config and clients once, then serves events.

use lambda_runtime::{service_fn, Error, LambdaEvent};
use scale_up::{handle, Deps};
use scaling::aws::load_sdk_config;
use scaling::config::Config;
use serde_json::Value;

// One event at a time per sandbox: a single-threaded runtime starts faster and
// `tokio::join!` still overlaps the AWS calls.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = Config::from_env()?;
    let sdk = load_sdk_config().await;
    let deps = Deps::new(config, &sdk);
    let deps = &deps;
    lambda_runtime::run(service_fn(move |ev: LambdaEvent<Value>| async move {
        handle(ev.payload, deps).await
    }))
    .await
}
