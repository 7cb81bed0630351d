//! `make bench-scale-down`, end to end: one scale-in on the local stack (the
//! real scale-down binary, the ECS stand-in, HAProxy as the ALB) under
//! keep-alive load, with a slow request in flight on the victim. Prints,
//! side by side: the in-flight drain time (the ALB stops sending new requests
//! -> the victim's last request done), the overhead beyond it (-> STOPPED;
//! target ≤ 2 s), and the time from lowering desired to STOPPED.
//! Ignored by `cargo test`: run with `-- --ignored --nocapture`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use e2e::loadgen::{self, Mode, Scenario};
use e2e::stack::proxy::SlotState;
use e2e::stack::runner::STRESS_TOKEN;
use e2e::stack::{Lambdas, Proxy, Stack, ADMIN_TOKEN, CLUSTER, SERVICE};
use scaling::report::Outcome;
use serde_json::{json, Value};
use test_support::moto;

const TIMEOUT: Duration = Duration::from_secs(120);
/// Episodes measured (the median is reported).
const RUNS: usize = 3;
/// The slow request on each task when the episode starts.
const SLOW_S: u64 = 2;

fn low_alarm() -> Value {
    let path = test_support::paths::repo_root().join("events/scale-down-alarm.json");
    let mut ev: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let now = chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.3f%z")
        .to_string();
    ev["alarmData"]["state"]["timestamp"] = Value::String(now.clone());
    ev["time"] = Value::String(now);
    ev
}

async fn in_flight(http: &reqwest::Client, url: &str) -> Option<u64> {
    let r = http
        .get(format!("{url}/admin/drain"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .ok()?;
    r.json::<Value>().await.ok()?["in_flight"].as_u64()
}

struct Run {
    /// ECS's deregistration seen by the ALB stand-in -> the victim's last request done.
    drain: Duration,
    /// Last request done -> the task STOPPED.
    overhead: Duration,
    /// desired - 1 -> STOPPED.
    to_stopped: Duration,
    requests: u64,
    failed: u64,
}

async fn one_episode(
    stack: &Stack,
    runner: &e2e::stack::Runner,
    proxy: &Proxy,
    lambdas: &Lambdas,
) -> Run {
    stack
        .world
        .ecs
        .update_service()
        .cluster(CLUSTER)
        .service(SERVICE)
        .desired_count(2)
        .send()
        .await
        .unwrap();
    let tasks = runner.wait_for_tasks(2, TIMEOUT).await.unwrap();
    proxy
        .wait_until("2 ready", TIMEOUT, |s| {
            s.iter().filter(|s| s.state == SlotState::Ready).count() == 2
                && s.iter().all(|s| s.state != SlotState::Draining)
        })
        .await
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let load = tokio::spawn(loadgen::run_until(
        loadgen::Config {
            base_url: proxy.url(),
            scenario: Scenario::Steady,
            mode: Mode::Concurrency(4),
            duration: Duration::from_secs(300),
            max_requests: 1_000_000,
            timeout: Duration::from_secs(20),
            progress: false,
        },
        stop.clone(),
    ));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let http = reqwest::Client::new();
    let slow: Vec<_> = (0..2)
        .map(|_| {
            let (http, url) = (http.clone(), proxy.url());
            tokio::spawn(async move {
                http.post(format!("{url}/api/stress"))
                    .bearer_auth(STRESS_TOKEN)
                    .json(&json!({ "duration_s": SLOW_S }))
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
                    .unwrap_or(0)
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let events_before = proxy.events().len();
    let event = low_alarm();
    let invoke = lambdas.invoke("scale-down", &event);
    // Watch while the episode runs: desired lowered, the ALB's drain start,
    // the victim's in-flight count, STOPPED.
    let watch = async {
        let (mut lowered, mut drain_start, mut idle_at, mut victim) = (None, None, None, None);
        let until = Instant::now() + TIMEOUT;
        loop {
            let now = Instant::now();
            assert!(now < until, "no STOPPED within {TIMEOUT:?}");
            if lowered.is_none() && stack.desired().await.unwrap() == 1 {
                lowered = Some(now);
            }
            if drain_start.is_none() {
                if let Some(e) = proxy.events()[events_before..]
                    .iter()
                    .find(|e| e.what.contains(" DRAIN ("))
                {
                    drain_start = Some(e.at);
                    victim = tasks
                        .iter()
                        .find(|t| e.what.contains(&format!("({}:", t.ip)))
                        .cloned();
                }
            }
            if let (Some(v), None) = (&victim, idle_at) {
                match in_flight(&http, &v.url).await {
                    Some(0) | None => idle_at = Some(Instant::now()),
                    Some(_) => {}
                }
            }
            if victim.is_some() && runner.tasks().len() == 1 && runner.stopping().is_empty() {
                return (
                    lowered.unwrap(),
                    drain_start.unwrap(),
                    idle_at.unwrap(),
                    Instant::now(),
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let (done, (lowered, drain_start, idle_at, stopped)) = tokio::join!(invoke, watch);
    let report = done.unwrap().report().unwrap();
    assert_eq!(report.outcome, Outcome::Completed, "{report:#?}");
    for s in slow {
        assert_eq!(s.await.unwrap(), 200, "the slow requests are answered");
    }
    stop.store(true, Ordering::SeqCst);
    let summary = load.await.unwrap().unwrap();
    Run {
        drain: idle_at.saturating_duration_since(drain_start),
        overhead: stopped.saturating_duration_since(idle_at),
        to_stopped: stopped.saturating_duration_since(lowered),
        requests: summary.requests,
        failed: summary.failed,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: make bench-scale-down"]
async fn bench_scale_in_through_the_stand_ins() {
    let moto = moto::shared();
    let stack = Stack::provision(moto, 2)
        .await
        .expect("provision the stack");
    let runner = stack.start_runner(moto).await.expect("runner");
    let proxy = Proxy::start(&stack).await.expect("HAProxy");
    let lambdas = Lambdas::start(moto, &stack, &["scale-down"], &[])
        .await
        .expect("scale-down under the runtime emulator");
    let mut runs = Vec::new();
    for _ in 0..RUNS {
        runs.push(one_episode(&stack, &runner, &proxy, &lambdas).await);
    }
    let median = |f: fn(&Run) -> Duration| {
        let mut v: Vec<Duration> = runs.iter().map(f).collect();
        v.sort();
        v[v.len() / 2]
    };
    let (drain, overhead, to_stopped) = (
        median(|r| r.drain),
        median(|r| r.overhead),
        median(|r| r.to_stopped),
    );
    let s = |d: Duration| format!("{:.2} s", d.as_secs_f64());
    let requests: u64 = runs.iter().map(|r| r.requests).sum();
    let failed: u64 = runs.iter().map(|r| r.failed).sum();
    println!();
    println!(
        "scale-in on the local stack: HAProxy as the ALB, the runner as ECS, keep-alive load \
         (4 clients) and a {SLOW_S} s request on each task; median of {RUNS} (debug build)"
    );
    println!("{:<52} {:>9}   target", "", "measured");
    println!(
        "{:<52} {:>9}",
        "in-flight drain (ALB stops routing -> last request)",
        s(drain)
    );
    println!(
        "{:<52} {:>9}   <= 2.00 s",
        "overhead beyond it (last request -> STOPPED)",
        s(overhead)
    );
    println!("{:<52} {:>9}", "desired - 1 -> STOPPED", s(to_stopped));
    println!("{:<52} {:>9}   0", "failed requests (all runs)", failed);
    println!("{:<52} {:>9}", "requests (all runs)", requests);
    for (i, r) in runs.iter().enumerate() {
        println!(
            "  run {}: drain {}, overhead {}, desired - 1 -> STOPPED {}",
            i + 1,
            s(r.drain),
            s(r.overhead),
            s(r.to_stopped)
        );
    }
    let verdict = if overhead <= Duration::from_secs(2) && failed == 0 {
        "meets"
    } else {
        "MISSES"
    };
    println!("overhead {verdict} the 2 s target");
    runner.shutdown().await;
}
