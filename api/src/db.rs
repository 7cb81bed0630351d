//! Database pool, startup wait and migrations.

use std::time::{Duration, Instant};

use anyhow::Context;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::Connection;

use crate::config::Config;

/// Embedded migrations (api/migrations), so the image carries its own schema.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Key of the advisory lock that serialises migrations across tasks starting together.
const MIGRATION_LOCK: i64 = 0x7669_7369_7473; // "visits"

/// Connection options with the server-side statement bound applied.
pub fn connect_options(config: &Config) -> PgConnectOptions {
    let ms = config.statement_timeout.as_millis().to_string();
    config
        .db
        .clone()
        .options([("statement_timeout", ms.as_str())])
}

/// A lazy pool: connections open on demand, so a database outage later on never blocks the
/// process, and `acquire_timeout` makes requests fail fast while it lasts.
pub fn pool(config: &Config) -> PgPool {
    PgPoolOptions::new()
        .max_connections(config.pool_max)
        .min_connections(0)
        .acquire_timeout(config.acquire_timeout)
        .idle_timeout(Some(Duration::from_secs(300)))
        .connect_lazy_with(connect_options(config))
}

/// Waits for the database with exponential backoff (RDS may still be starting), bounded by
/// `DB_STARTUP_TIMEOUT_S`, then runs the migrations.
pub async fn wait_and_migrate(config: &Config) -> anyhow::Result<()> {
    let opts = connect_options(config);
    let deadline = Instant::now() + config.db_startup_timeout;
    let mut delay = Duration::from_millis(50);
    let mut conn = loop {
        match sqlx::PgConnection::connect_with(&opts).await {
            Ok(c) => break c,
            Err(e) if Instant::now() + delay < deadline => {
                tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "database not ready");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            Err(e) => {
                return Err(e).with_context(|| {
                    format!(
                        "database unreachable after {}s (DB_STARTUP_TIMEOUT_S)",
                        config.db_startup_timeout.as_secs()
                    )
                })
            }
        }
    };
    migrate(&mut conn).await?;
    conn.close().await.ok();
    Ok(())
}

/// Runs the embedded migrations under a session advisory lock: when ten tasks start at once,
/// one migrates and the others wait, then find nothing to do.
pub async fn migrate(conn: &mut sqlx::PgConnection) -> anyhow::Result<()> {
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(MIGRATION_LOCK)
        .execute(&mut *conn)
        .await
        .context("taking the migration lock")?;
    let result = MIGRATOR.run(&mut *conn).await.context("running migrations");
    let unlock = sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(MIGRATION_LOCK)
        .execute(&mut *conn)
        .await
        .context("releasing the migration lock");
    result?;
    unlock?;
    Ok(())
}
