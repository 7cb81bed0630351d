//! Secrets read once at init, so that none sits in plaintext in a Lambda environment
//! ("Securing environment variables", Lambda developer guide): the function's environment
//! names the secret (`ADMIN_TOKEN_SECRET_ARN`) and its role may read only that secret.

use aws_config::SdkConfig;

/// The secret's current `SecretString`. The error names the secret, never a value.
pub async fn read_string(sdk: &SdkConfig, arn: &str) -> Result<String, String> {
    let client = aws_sdk_secretsmanager::Client::new(sdk);
    let out = client
        .get_secret_value()
        .secret_id(arn)
        .send()
        .await
        .map_err(|e| {
            format!(
                "reading secret {arn}: {}",
                aws_sdk_secretsmanager::Error::from(e)
            )
        })?;
    out.secret_string()
        .map(str::to_string)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| format!("secret {arn} has no SecretString"))
}

/// Resolves `ADMIN_TOKEN_SECRET_ARN` into `config.admin_token` (a plain `ADMIN_TOKEN`, as the
/// local stack sets it, is kept when no ARN is given).
pub async fn resolve_admin_token(
    config: &mut crate::config::Config,
    sdk: &SdkConfig,
) -> Result<(), String> {
    if let Some(arn) = config.admin_token_secret_arn.clone() {
        config.admin_token = Some(read_string(sdk, &arn).await?);
    }
    Ok(())
}
