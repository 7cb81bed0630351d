//! A database outage under load on the local stack: the tasks' load balancer
//! health check (`/health`) does not depend on PostgreSQL, so every task stays
//! registered and healthy to the ALB stand-in (HAProxy) and to the ECS
//! stand-in's target group health checks (no task is replaced), requests that
//! need the database get a fast 503, and everything recovers once the
//! database is back. Were `/health` to fail with the database, ECS would
//! replace every task at once.
//!
//! What operators see instead: the template's `visits-api-cannot-write` alarm,
//! evaluated by the local stand-in for CloudWatch on the tasks' own EMF records,
//! goes to ALARM during the outage and back to OK after it, and invokes nothing
//! (notify hears of it through the alarm-state-change rule).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use e2e::loadgen::{self, Mode, Scenario};
use e2e::stack::alarms::eval::State;
use e2e::stack::alarms::{self, AlarmDriver, DriverEvent, DriverOpts, InvokeFuture, Invoker};
use e2e::stack::proxy::SlotState;
use e2e::stack::runner::METRICS_INTERVAL_S;
use e2e::stack::{Proxy, RunnerOptions, Stack};
use test_support::moto;
use test_support::pg::PgCluster;
use tokio::sync::mpsc::UnboundedReceiver;

/// Generous: a cold API process migrates its database on a busy 2-core machine.
const TASKS_TIMEOUT: Duration = Duration::from_secs(120);
/// How long the database stays down: several health-check rounds of the
/// runner (1 s apart, 2 failures replace a task) and of HAProxy.
const OUTAGE: Duration = Duration::from_secs(8);

const CANNOT_WRITE: &str = "visits-api-cannot-write";

/// Waits (bounded) until the cannot-write alarm enters `to`; fails on any invocation, since
/// the alarm has no action.
async fn wait_for(events: &mut UnboundedReceiver<DriverEvent>, to: State, within: Duration) {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let event = tokio::time::timeout_at(deadline, events.recv())
            .await
            .unwrap_or_else(|_| panic!("{CANNOT_WRITE} did not enter {to:?} within {within:?}"))
            .expect("the alarm driver runs");
        match event {
            DriverEvent::StateChange { alarm, to: got, .. }
                if alarm == CANNOT_WRITE && got == to =>
            {
                return
            }
            DriverEvent::Invoking { function, .. } => panic!("{CANNOT_WRITE} invoked {function}"),
            DriverEvent::Error(e) => panic!("alarm driver: {e}"),
            _ => {}
        }
    }
}

/// Stops or starts the database off the async workers: the calls block until
/// PostgreSQL has gone or answers.
async fn control(cluster: &Arc<PgCluster>, call: fn(&PgCluster) -> anyhow::Result<()>) {
    let c = cluster.clone();
    tokio::task::spawn_blocking(move || call(&c))
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_leaves_every_task_registered_and_healthy() {
    let cluster = tokio::task::spawn_blocking(|| {
        let c = PgCluster::new_private().expect("a private PostgreSQL cluster (make setup)");
        let url = c.fresh_database("outage").expect("a database");
        (c, url)
    })
    .await
    .unwrap();
    let (cluster, database_url) = cluster;
    let cluster = Arc::new(cluster);
    let moto = moto::shared();
    let stack = Stack::provision(moto, 2)
        .await
        .expect("provision the stack");
    let runner = e2e::stack::Runner::start_with(
        stack.clone(),
        moto,
        RunnerOptions {
            database_url: Some(database_url),
            reregister: false,
        },
    )
    .await
    .expect("task runner");
    let tasks = runner
        .wait_for_tasks(2, TASKS_TIMEOUT)
        .await
        .expect("two tasks");
    let proxy = Proxy::start(&stack).await.expect("HAProxy");
    proxy.wait_ready(2, TASKS_TIMEOUT).await.unwrap();

    // The template's cannot-write alarm, its 60 s periods evaluated as 1 s ones.
    let defs: Vec<_> = tokio::task::spawn_blocking(alarms::template::load)
        .await
        .unwrap()
        .expect("alarms of infra/scaling.yaml")
        .into_iter()
        .filter(|d| d.name == CANNOT_WRITE)
        .collect();
    assert_eq!(defs.len(), 1, "the template defines {CANNOT_WRITE}");
    let no_action: Invoker = Arc::new(|name: String, _| {
        let refused: InvokeFuture =
            Box::pin(async move { anyhow::bail!("{CANNOT_WRITE} has no action, yet {name} ran") });
        refused
    });
    let (tx, mut alarm_events) = tokio::sync::mpsc::unbounded_channel();
    let opts = DriverOpts {
        time_scale: 60.0,
        min_period: Duration::from_secs(u64::from(METRICS_INTERVAL_S)),
        ..DriverOpts::default()
    };
    let cw = aws_sdk_cloudwatch::Client::new(&moto.sdk_config().await);
    let driver = AlarmDriver::start(
        defs,
        runner.log_dir().to_path_buf(),
        cw,
        no_action,
        opts,
        tx,
    )
    .await
    .expect("alarm driver");
    assert_eq!(
        driver.evaluated.len(),
        1,
        "{CANNOT_WRITE} has a local source"
    );
    wait_for(&mut alarm_events, State::Ok, Duration::from_secs(30)).await;

    // Keep-alive load of visits (they need the database): during the outage
    // they may only fail as fast 503s, never as a lost connection or a timeout.
    let stop = Arc::new(AtomicBool::new(false));
    let config = loadgen::Config {
        base_url: proxy.url(),
        scenario: Scenario::Steady,
        mode: Mode::Concurrency(2),
        duration: Duration::from_secs(300),
        max_requests: 1_000_000,
        timeout: Duration::from_secs(20),
        progress: false,
    };
    let load = tokio::spawn(loadgen::run_until(config, stop.clone()));
    tokio::time::sleep(Duration::from_secs(1)).await;

    runner.note("database down");
    control(&cluster, PgCluster::stop).await;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let down_since = Instant::now();
    let mut db_requests = 0;
    while down_since.elapsed() < OUTAGE {
        let t0 = Instant::now();
        let resp = http
            .post(format!("{}/api/visit", proxy.url()))
            .json(&serde_json::json!({}))
            .send()
            .await
            .expect("an answer through the proxy");
        assert_eq!(
            resp.status().as_u16(),
            503,
            "a request that needs the database"
        );
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "the 503 came fast: {:?}",
            t0.elapsed()
        );
        db_requests += 1;
        let health = http
            .get(format!("{}/health", proxy.url()))
            .send()
            .await
            .expect("health through the proxy");
        assert_eq!(health.status().as_u16(), 200, "the load balancer's check");
        let body: serde_json::Value = health.json().await.unwrap();
        assert_eq!(body["database"], "unreachable", "{body}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Every task still registered, and in service on the ALB stand-in.
    let registered = stack.target_health().await.unwrap();
    let ips: Vec<&str> = registered.iter().map(|(ip, _, _)| ip.as_str()).collect();
    for t in &tasks {
        assert!(
            ips.contains(&t.ip.as_str()),
            "{} still registered: {ips:?}",
            t.id
        );
    }
    let servers = proxy.servers();
    assert_eq!(
        servers
            .iter()
            .filter(|s| s.state == SlotState::Ready && s.status.starts_with("UP"))
            .count(),
        2,
        "both tasks UP to HAProxy's health checks: {servers:#?}"
    );
    assert!(
        runner.health_replacements().is_empty(),
        "no task replaced: {:#?}",
        runner.timeline()
    );
    assert_eq!(runner.tasks(), tasks, "the same two tasks");

    // Still down: the alarm has seen it (2 of 2 periods with CanWrite 0).
    wait_for(&mut alarm_events, State::Alarm, Duration::from_secs(30)).await;

    runner.note("database back");
    control(&cluster, PgCluster::start).await;
    let back = Instant::now();
    loop {
        let resp = http
            .post(format!("{}/api/visit", proxy.url()))
            .json(&serde_json::json!({}))
            .send()
            .await
            .expect("an answer through the proxy");
        if resp.status().as_u16() == 201 {
            break;
        }
        assert!(
            back.elapsed() < Duration::from_secs(30),
            "no 201 within 30 s of the database's return"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Both tasks serve database requests again.
    for t in &tasks {
        let resp = http
            .post(format!("{}/api/visit", t.url))
            .json(&serde_json::json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 201, "{} recovered", t.id);
    }
    wait_for(&mut alarm_events, State::Ok, Duration::from_secs(30)).await;
    stop.store(true, Ordering::SeqCst);
    let summary = load.await.unwrap().unwrap();
    assert!(
        summary.errors.keys().all(|k| k == "status_5xx"),
        "only 503s during the outage, no lost connection or timeout: {summary:?}"
    );
    assert!(summary.ok > 0, "{summary:?}");
    println!(
        "outage {OUTAGE:?}: {db_requests} probes answered 503 fast; recovered {:?} after the \
         database came back; load: {} requests, {} ok, errors {:?}",
        back.elapsed(),
        summary.requests,
        summary.ok,
        summary.errors
    );
    runner.shutdown().await;
}
