//! Building and running the application: bind, wait for the database, migrate, serve, and shut
//! down gracefully when the future passed to `run_until` completes.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::net::TcpListener;

use crate::config::Config;
use crate::db_secret::{self, DbSecret};
use crate::emf::{self, EmfTarget};
use crate::identity::TaskIdentity;
use crate::metrics::Metrics;
use crate::serve::{Server, Timeouts};
use crate::state::AppState;
use crate::store::{Limits, Store};
use crate::{db, routes};

/// After the grace period, how long stopped work has to send its answer (a CPU burn's 503)
/// before its connection is dropped. ECS's stopTimeout (30 s) leaves 5 s past the default
/// 25 s grace.
const FINAL_ANSWERS: Duration = Duration::from_secs(2);

/// A built application, listening but not yet serving.
pub struct Application {
    listener: TcpListener,
    state: AppState,
}

impl Application {
    /// Binds `BIND_ADDR:PORT` (port 0 picks a free one), finds the task identity, waits for the
    /// database and runs the migrations. With `DB_SECRET_ARN` the AWS SDK's default chain (the
    /// task role on ECS) reads the database secret.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        Self::build_with_aws(config, None).await
    }

    /// [`Application::build`] with the SDK config that reads `DB_SECRET_ARN` (tests point it at
    /// an emulator); `None` loads the default chain when the secret is configured.
    pub async fn build_with_aws(
        mut config: Config,
        aws: Option<aws_config::SdkConfig>,
    ) -> anyhow::Result<Self> {
        let started = Instant::now();
        let secret = match config.db_secret_arn.clone() {
            Some(arn) => {
                let sdk = match aws {
                    Some(sdk) => sdk,
                    None => {
                        aws_config::defaults(aws_config::BehaviorVersion::latest())
                            .load()
                            .await
                    }
                };
                let secret = DbSecret::new(&sdk, arn);
                let creds = secret.read().await?;
                config.db = creds.apply(config.db.clone());
                Some((secret, creds))
            }
            None => None,
        };
        let addr = SocketAddr::new(config.bind_addr, config.port);
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding {addr} (BIND_ADDR/PORT)"))?;
        let (identity, migrated) = tokio::join!(
            TaskIdentity::discover(config.metadata_uri.as_deref()),
            db::wait_and_migrate(&config)
        );
        migrated?;
        let guard = db::DbGuard::new(&config);
        let pool = db::pool(&config, &guard);
        if let Some((secret, creds)) = secret {
            tokio::spawn(db_secret::refresh_on_auth_failure(
                pool.clone(),
                secret,
                db::connect_options(&config),
                creds,
            ));
        }
        // Leave a connection for the health check (and reads, for the writers).
        let spare = (config.pool_max as usize).saturating_sub(1).max(1);
        let limits = Limits {
            batch_max: config.write_batch_max,
            writers: config.write_concurrency.min(spare),
            readers: config.read_concurrency.min(spare),
            acquire: config.acquire_timeout,
        };
        let metrics = Arc::new(Metrics::default());
        let store = Store::start(pool.clone(), guard.clone(), limits, metrics.writes.clone());
        let state = AppState::new((pool, guard), store, metrics, identity, config);
        tracing::info!(
            addr = %listener.local_addr()?,
            task_id = %state.identity.task_id,
            startup_ms = started.elapsed().as_secs_f64() * 1000.0,
            "ready"
        );
        Ok(Application { listener, state })
    }

    /// The bound address (tests use it to find port 0's choice).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// The shared state (tests read metrics and drain state through it).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` completes, then drains: stops accepting, lets in-flight requests
    /// finish within `SHUTDOWN_GRACE_S`, closes the pool.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let Application { listener, state } = self;
        let background = [
            tokio::spawn({
                let m = state.metrics.clone();
                async move { m.run_sampler().await }
            }),
            tokio::spawn(emf::run(
                state.metrics.clone(),
                emf_target(&state),
                state.config.metrics_interval,
            )),
            tokio::spawn({
                let d = state.drain.clone();
                async move { d.run_idle_closer().await }
            }),
        ];

        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        tokio::spawn({
            let state = state.clone();
            async move {
                shutdown.await;
                tracing::info!(
                    in_flight = state.metrics.in_flight(),
                    "shutdown requested; draining"
                );
                state.begin_shutdown();
                let _ = stop_tx.send(true);
            }
        });
        let grace = state.config.shutdown_grace;
        let timeouts = Timeouts {
            header: state.config.header_read_timeout,
            idle: state.config.idle_timeout,
        };
        let mut server = Server::accept_until(
            listener,
            routes::router(state.clone()),
            timeouts,
            stop_rx,
            state.drain.clone(),
        )
        .await;
        // Connections with no request being served are closed now; the others finish theirs.
        if !server.wait(grace).await {
            tracing::warn!(
                in_flight = state.metrics.in_flight(),
                open = server.open(),
                grace_s = grace.as_secs(),
                "grace period over; stopping what still runs"
            );
            // Past this point nothing is waited for: long CPU burns stop, and answer 503
            // within FINAL_ANSWERS rather than have their connection dropped.
            state.stop_work();
            if !server.wait(FINAL_ANSWERS).await {
                tracing::warn!(open = server.open(), "dropping remaining connections");
            }
        }
        state.stop_work();
        server.abort().await;
        for task in background {
            task.abort();
        }
        if tokio::time::timeout(Duration::from_secs(3), state.pool.close())
            .await
            .is_err()
        {
            tracing::warn!("database pool did not close in time");
        }
        tracing::info!("stopped");
        Ok(())
    }
}

fn emf_target(state: &AppState) -> EmfTarget {
    EmfTarget {
        namespace: state.config.metrics_namespace.clone(),
        cluster: state
            .config
            .cluster_name
            .clone()
            .or_else(|| state.identity.cluster.clone())
            .unwrap_or_else(|| "local".into()),
        service: state.config.service_name.clone(),
        task_id: state.identity.task_id.clone(),
    }
}
