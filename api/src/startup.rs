//! Building and running the application: bind, wait for the database, migrate, serve, and shut
//! down gracefully when the future passed to `run_until` completes.

use std::future::{Future, IntoFuture};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::net::TcpListener;

use crate::config::Config;
use crate::emf::{self, EmfTarget};
use crate::identity::TaskIdentity;
use crate::state::AppState;
use crate::store::{Limits, Store};
use crate::{db, routes};

/// A built application, listening but not yet serving.
pub struct Application {
    listener: TcpListener,
    state: AppState,
}

impl Application {
    /// Binds `BIND_ADDR:PORT` (port 0 picks a free one), finds the task identity, waits for the
    /// database and runs the migrations.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let started = Instant::now();
        let addr = SocketAddr::new(config.bind_addr, config.port);
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding {addr} (BIND_ADDR/PORT)"))?;
        let (identity, migrated) = tokio::join!(
            TaskIdentity::discover(config.metadata_uri.as_deref()),
            db::wait_and_migrate(&config)
        );
        migrated?;
        let pool = db::pool(&config);
        let wait = config.acquire_timeout + config.statement_timeout;
        // Leave a connection for the health check (and reads, for the writers).
        let spare = (config.pool_max as usize).saturating_sub(1).max(1);
        let limits = Limits {
            batch_max: config.write_batch_max,
            writers: config.write_concurrency.min(spare),
            readers: config.read_concurrency.min(spare),
        };
        let store = Store::start(pool.clone(), limits, wait);
        let state = AppState::new(pool, store, identity, config);
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
        ];

        let (fired_tx, fired_rx) = tokio::sync::oneshot::channel();
        let on_signal = {
            let state = state.clone();
            async move {
                shutdown.await;
                tracing::info!(
                    in_flight = state.metrics.in_flight(),
                    "shutdown requested; draining"
                );
                state.begin_shutdown();
                let _ = fired_tx.send(());
            }
        };
        let grace = state.config.shutdown_grace;
        let app = routes::router(state.clone()).into_make_service_with_connect_info::<SocketAddr>();
        let server = axum::serve(listener, app).with_graceful_shutdown(on_signal);
        tokio::select! {
            result = server.into_future() => result.context("serving")?,
            _ = async {
                if fired_rx.await.is_ok() {
                    tokio::time::sleep(grace).await;
                } else {
                    std::future::pending::<()>().await;
                }
            } => {
                tracing::warn!(in_flight = state.metrics.in_flight(), grace_s = grace.as_secs(), "grace period over; dropping remaining connections");
            }
        }
        // Past this point nothing is waited for: long CPU burns stop too.
        state.stop_work();
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
