//! Entry point: config, logs, build, serve until SIGTERM or SIGINT.
//! `visits-api healthcheck` is the container's liveness probe instead.

use visits_api::{healthcheck, telemetry, Application, Config};

fn main() {
    if std::env::args().nth(1).as_deref() == Some("healthcheck") {
        std::process::exit(if healthcheck::alive(std::time::Duration::from_secs(3)) {
            0
        } else {
            1
        });
    }
    serve();
}

#[tokio::main]
async fn serve() {
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("visits-api: {e}");
            std::process::exit(2);
        }
    };
    telemetry::init();
    let app = match Application::build(config).await {
        Ok(app) => app,
        Err(e) => {
            telemetry::flush();
            // `{:#}` keeps the whole cause chain on one line.
            eprintln!("visits-api: {e:#}");
            std::process::exit(1);
        }
    };
    let result = app.run_until(shutdown_signal()).await;
    telemetry::flush();
    if let Err(e) = result {
        eprintln!("visits-api: {e:#}");
        std::process::exit(1);
    }
    // Exit now rather than wait for the runtime to join blocking threads.
    std::process::exit(0);
}

/// SIGTERM (ECS stopping the task) or SIGINT (Ctrl-C).
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(e) => {
            eprintln!("visits-api: cannot listen for SIGTERM ({e}); Ctrl-C only");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
