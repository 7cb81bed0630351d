//! Scale-down's admin token comes from Secrets Manager at init (`ADMIN_TOKEN_SECRET_ARN`), not
//! from a plaintext environment variable; against the emulator's Secrets Manager.

use scaling::config::Config;
use std::collections::HashMap;

fn config(extra: &[(&str, &str)]) -> Config {
    let mut m: HashMap<String, String> = [
        ("CLUSTER_NAME", "visits"),
        ("SERVICE_NAME", "visits-api"),
        ("MIN_TASKS", "2"),
        ("MAX_TASKS", "6"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    m.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    Config::from_map(&m).unwrap()
}

#[tokio::test]
async fn the_admin_token_is_read_from_its_secret_at_init() {
    let moto = tokio::task::spawn_blocking(test_support::moto::shared)
        .await
        .unwrap();
    let sdk = moto.sdk_config().await;
    let arn = aws_sdk_secretsmanager::Client::new(&sdk)
        .create_secret()
        .name("admin-token-test")
        .secret_string("s3cr3t-token")
        .send()
        .await
        .unwrap()
        .arn()
        .unwrap()
        .to_string();

    let mut c = config(&[("ADMIN_TOKEN_SECRET_ARN", &arn)]);
    assert_eq!(c.admin_token, None, "nothing secret in the environment");
    scaling::aws::secret::resolve_admin_token(&mut c, &sdk)
        .await
        .unwrap();
    assert_eq!(c.admin_token.as_deref(), Some("s3cr3t-token"));

    // The local stack's plain ADMIN_TOKEN stays when no secret is named.
    let mut local = config(&[("ADMIN_TOKEN", "local")]);
    scaling::aws::secret::resolve_admin_token(&mut local, &sdk)
        .await
        .unwrap();
    assert_eq!(local.admin_token.as_deref(), Some("local"));

    // A missing secret fails the init, naming the secret and not leaking a value.
    let gone = "arn:aws:secretsmanager:us-east-1:123456789012:secret:nope-abcdef";
    let mut bad = config(&[("ADMIN_TOKEN_SECRET_ARN", gone)]);
    let err = scaling::aws::secret::resolve_admin_token(&mut bad, &sdk)
        .await
        .unwrap_err();
    assert!(err.contains(gone), "{err}");
}
