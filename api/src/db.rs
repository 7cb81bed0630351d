//! Database pool, startup wait and migrations, and the one place that bounds every database
//! round trip on the client side (connection handling lives here only).
//!
//! Why bound on the client: when the path to the database goes silent mid-statement (a failover
//! whose old primary's packets vanish), the server's `statement_timeout` cannot fire and the
//! kernel keeps the socket for about 15 minutes. sqlx 0.8 sets no TCP keepalive or user timeout
//! and its pool, when a query future is dropped, pings the connection without a bound before
//! taking it back: a silent connection then holds a pool slot for as long as the kernel does.
//! So every round trip here runs under [`DbGuard::query_timeout`]; past it the connection is
//! detached from the pool and dropped (never pinged), and every connection that was idle in the
//! pool at that moment is treated as suspect and replaced instead of reused.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Connection, Postgres};

use crate::config::Config;
use crate::store::StoreError;

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
/// process, and `acquire_timeout` makes requests fail fast while it lasts. Idle connections are
/// not pinged before use (that ping has no bound); the guard's hook instead drops those that
/// were idle when a round trip last timed out.
pub fn pool(config: &Config, guard: &DbGuard) -> PgPool {
    let hook = guard.clone();
    PgPoolOptions::new()
        .max_connections(config.pool_max)
        .min_connections(0)
        .acquire_timeout(config.acquire_timeout)
        .idle_timeout(Some(Duration::from_secs(300)))
        .test_before_acquire(false)
        .before_acquire(move |_conn, meta| {
            let keep = !hook.suspect(meta.idle_for);
            Box::pin(async move { Ok(keep) })
        })
        .connect_lazy_with(connect_options(config))
}

/// Client-side bounds on database round trips, and the memory of the last silent connection.
#[derive(Clone, Debug)]
pub struct DbGuard {
    inner: Arc<GuardInner>,
}

#[derive(Debug)]
struct GuardInner {
    query_timeout: Duration,
    started: Instant,
    /// Milliseconds since `started` of the last round trip that timed out (0: none yet).
    last_silence_ms: AtomicU64,
}

/// A round trip that failed: whether the statement may have committed all the same.
#[derive(Debug)]
pub struct DbFailure {
    /// What to answer.
    pub error: StoreError,
    /// True when the statement had been sent and the answer was lost (a timeout or a broken
    /// connection): the server may have committed it.
    pub uncertain: bool,
}

impl DbGuard {
    /// Bounds each round trip by `DB_QUERY_TIMEOUT_MS`.
    pub fn new(config: &Config) -> Self {
        DbGuard {
            inner: Arc::new(GuardInner {
                query_timeout: config.query_timeout,
                started: Instant::now(),
                last_silence_ms: AtomicU64::new(0),
            }),
        }
    }

    /// The client-side bound on one round trip.
    pub fn query_timeout(&self) -> Duration {
        self.inner.query_timeout
    }

    fn now_ms(&self) -> u64 {
        // +1 so that 0 keeps meaning "never".
        self.inner.started.elapsed().as_millis() as u64 + 1
    }

    /// A connection went silent: every connection idle since before now is suspect.
    fn mark_silence(&self) {
        self.inner
            .last_silence_ms
            .store(self.now_ms(), Ordering::Relaxed);
    }

    /// Whether a connection idle for `idle_for` was already idle when a round trip last timed
    /// out (the same network fault most likely silenced it too).
    fn suspect(&self, idle_for: Duration) -> bool {
        let silence = self.inner.last_silence_ms.load(Ordering::Relaxed);
        silence != 0 && self.now_ms().saturating_sub(idle_for.as_millis() as u64) <= silence
    }

    /// A pooled connection, or 503 once `deadline` passes (never later than the pool's own
    /// `DB_ACQUIRE_TIMEOUT_MS`).
    pub async fn acquire(
        &self,
        pool: &PgPool,
        deadline: tokio::time::Instant,
    ) -> Result<PoolConnection<Postgres>, StoreError> {
        match tokio::time::timeout_at(deadline, pool.acquire()).await {
            Ok(Ok(conn)) => Ok(conn),
            Ok(Err(e)) => Err(e.into()),
            Err(_) => Err(StoreError::Unavailable(
                "no database connection within DB_ACQUIRE_TIMEOUT_MS".into(),
            )),
        }
    }

    /// One round trip (a future that uses a connection), bounded by `DB_QUERY_TIMEOUT_MS`; hand
    /// its outcome and the connection to [`DbGuard::settle`]:
    /// `let out = guard.bound(q.fetch_all(&mut *conn)).await; guard.settle(conn, out)`.
    pub fn bound<F: Future>(&self, round_trip: F) -> tokio::time::Timeout<F> {
        tokio::time::timeout(self.query_timeout(), round_trip)
    }

    /// What a bounded round trip means for the request and for its connection. On a timeout the
    /// connection is detached from the pool and dropped (its socket closed, never pinged), so it
    /// cannot hold a slot; after any other error that may have broken it, it is dropped the
    /// same way.
    pub fn settle<T>(
        &self,
        conn: PoolConnection<Postgres>,
        outcome: Result<Result<T, sqlx::Error>, tokio::time::error::Elapsed>,
    ) -> Result<T, DbFailure> {
        match outcome {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                // A server error (constraint, statement timeout) leaves the connection usable
                // and the transaction rolled back; an I/O or protocol error leaves neither sure.
                let certain = matches!(e, sqlx::Error::Database(_));
                if !certain {
                    drop(conn.detach());
                }
                Err(DbFailure {
                    error: e.into(),
                    uncertain: !certain,
                })
            }
            Err(_) => {
                self.mark_silence();
                drop(conn.detach());
                tracing::error!(
                    target: "db",
                    "database round trip timed out; connection discarded"
                );
                Err(DbFailure {
                    error: StoreError::Unavailable(
                        "the database did not answer in time (DB_QUERY_TIMEOUT_MS)".into(),
                    ),
                    uncertain: true,
                })
            }
        }
    }

    /// `SELECT 1` within `bound` (the health check), on a connection handled like any other.
    pub async fn ping(&self, pool: &PgPool, bound: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + bound;
        let Ok(mut conn) = self.acquire(pool, deadline).await else {
            return false;
        };
        let ping = sqlx::query("SELECT 1").execute(&mut *conn);
        let outcome = tokio::time::timeout_at(
            deadline.min(tokio::time::Instant::now() + self.query_timeout()),
            ping,
        )
        .await;
        self.settle(conn, outcome).is_ok()
    }
}

/// Waits for the database with exponential backoff (RDS may still be starting), bounded by
/// `DB_STARTUP_TIMEOUT_S`, then runs the migrations.
pub async fn wait_and_migrate(config: &Config) -> anyhow::Result<()> {
    let opts = connect_options(config);
    let deadline = Instant::now() + config.db_startup_timeout;
    let mut delay = Duration::from_millis(50);
    let mut conn = loop {
        // Bounded: a connect into a black hole would otherwise wait for the kernel.
        let attempt = tokio::time::timeout(
            config.acquire_timeout.max(config.query_timeout),
            sqlx::PgConnection::connect_with(&opts),
        )
        .await
        .unwrap_or_else(|_| Err(sqlx::Error::PoolTimedOut));
        match attempt {
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
    // Bounded too: a lock held by a stuck task or a silent connection must not hang startup.
    let bound = config.db_startup_timeout.max(Duration::from_secs(30));
    tokio::time::timeout(bound, migrate(&mut conn))
        .await
        .context("migrations did not finish within DB_STARTUP_TIMEOUT_S (30 s at least)")??;
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
