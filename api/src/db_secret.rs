//! The database credentials from the RDS-managed secret, read at run time and read again when
//! the database refuses them.
//!
//! ECS resolves a `secrets` entry only when it starts a task ("Pass Secrets Manager secrets
//! through Amazon ECS environment variables", ECS developer guide), and RDS rotates the managed
//! master password every 7 days by default ("Password management with Amazon RDS and AWS
//! Secrets Manager", RDS user guide). A task started before a rotation would keep the old
//! password: its open connections stay up, but every new one fails. So with `DB_SECRET_ARN` set
//! the API reads `{"username", "password"}` from Secrets Manager itself at startup, and whenever
//! PostgreSQL answers a connection attempt with an authentication failure (SQLSTATE class 28)
//! it reads the secret again and gives the pool the new credentials. The request that met the
//! failure answers 503; its retry connects with the new password.

use std::sync::OnceLock;
use std::time::Duration;

use anyhow::Context;
use sqlx::postgres::{PgConnectOptions, PgPool};
use tokio::sync::watch;

/// The two keys of an RDS-managed secret that the API uses (it also has engine, host...).
#[derive(Clone, PartialEq, Eq, serde::Deserialize)]
pub struct DbCredentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for DbCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbCredentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl DbCredentials {
    /// `opts` with this user and password.
    pub fn apply(&self, opts: PgConnectOptions) -> PgConnectOptions {
        opts.username(&self.username).password(&self.password)
    }
}

/// Reads one secret; built once at startup.
#[derive(Clone, Debug)]
pub struct DbSecret {
    client: aws_sdk_secretsmanager::Client,
    arn: String,
}

impl DbSecret {
    /// A reader of `arn` through the given SDK config (the task role's credentials on ECS).
    pub fn new(sdk: &aws_config::SdkConfig, arn: impl Into<String>) -> Self {
        DbSecret {
            client: aws_sdk_secretsmanager::Client::new(sdk),
            arn: arn.into(),
        }
    }

    /// The secret's current version (AWSCURRENT). Errors name the secret, never its value.
    pub async fn read(&self) -> anyhow::Result<DbCredentials> {
        self.read_stage("AWSCURRENT").await
    }

    /// One staging label's version: AWSCURRENT, or AWSPENDING while a rotation has set the new
    /// password on the database but not yet promoted it ("How rotation works", Secrets Manager
    /// user guide).
    pub async fn read_stage(&self, stage: &str) -> anyhow::Result<DbCredentials> {
        let out = self
            .client
            .get_secret_value()
            .secret_id(&self.arn)
            .version_stage(stage)
            .send()
            .await
            .map_err(aws_sdk_secretsmanager::Error::from)
            .with_context(|| format!("reading the database secret {}", self.arn))?;
        let text = out
            .secret_string()
            .with_context(|| format!("secret {} has no SecretString", self.arn))?;
        serde_json::from_str(text).map_err(|_| {
            anyhow::anyhow!(
                "secret {} is not JSON with string keys username and password",
                self.arn
            )
        })
    }
}

/// Whether PostgreSQL refused the credentials (class 28: invalid_authorization_specification,
/// invalid_password), as opposed to being down or busy.
pub fn is_auth_failure(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.code().is_some_and(|c| c.starts_with("28")))
}

/// Counts authentication failures seen anywhere in the process; each refresher watches it.
fn failures() -> &'static watch::Sender<u64> {
    static FAILURES: OnceLock<watch::Sender<u64>> = OnceLock::new();
    FAILURES.get_or_init(|| watch::channel(0).0)
}

/// Called wherever a database error surfaces (the store, the health check): an authentication
/// failure wakes the refresher. Cheap for every other error.
pub fn observe(e: &sqlx::Error) {
    // A lost connection is worth a look too: the new one it takes may need the new password.
    let lost = matches!(e, sqlx::Error::Io(_))
        || matches!(e, sqlx::Error::Database(db) if db.code().is_some_and(|c| c.starts_with("57P")));
    if is_auth_failure(e) || lost {
        failures().send_modify(|n| *n += 1);
    }
}

/// At most one secret read per this interval, however many requests fail at once.
const MIN_REREAD: Duration = Duration::from_millis(500);

/// Runs until the pool closes: after each authentication failure, reads the secret again and,
/// when the credentials changed, gives them to the pool (new connections use them; open ones
/// are unaffected, as on the server).
pub async fn refresh_on_auth_failure(
    pool: PgPool,
    secret: DbSecret,
    base: PgConnectOptions,
    mut current: DbCredentials,
) {
    let mut seen = failures().subscribe();
    loop {
        tokio::select! {
            changed = seen.changed() => if changed.is_err() { return },
            _ = pool.close_event() => return,
        }
        seen.mark_unchanged();
        match secret.read().await {
            Ok(fresh) if fresh != current => {
                pool.set_connect_options(fresh.apply(base.clone()));
                tracing::info!(
                    user = %fresh.username,
                    "database refused the credentials; switched to the secret's current version"
                );
                current = fresh;
            }
            Ok(_) => {
                match secret.read_stage("AWSPENDING").await {
                    // Mid-rotation: the database may already have the pending password.
                    Ok(pending) if pending != current => {
                        pool.set_connect_options(pending.apply(base.clone()));
                        tracing::info!("database refused the credentials; trying the rotation's pending version");
                        current = pending;
                    }
                    _ => tracing::warn!(
                        "database refused the credentials and the secret holds no other version"
                    ),
                }
            }
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "re-reading the database secret failed")
            }
        }
        tokio::time::sleep(MIN_REREAD).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_password() {
        let c = DbCredentials {
            username: "app".into(),
            password: "hunter2".into(),
        };
        let shown = format!("{c:?}");
        assert!(
            shown.contains("app") && !shown.contains("hunter2"),
            "{shown}"
        );
    }

    #[test]
    fn only_class_28_is_an_auth_failure() {
        assert!(!is_auth_failure(&sqlx::Error::PoolTimedOut));
        assert!(!is_auth_failure(&sqlx::Error::Protocol("x".into())));
    }
}
