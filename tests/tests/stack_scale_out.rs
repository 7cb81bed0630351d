//! End to end, scale out: the CPU-high alarm reaches the real scale-up handler,
//! which raises the emulated service 1 -> 2; the task runner starts a second
//! real visits-api process, which serves on its own loopback address.

use std::collections::HashMap;
use std::time::Duration;

use chrono::Utc;
use e2e::stack::{Stack, ADMIN_TOKEN, CLUSTER, IP_REWRITE, SERVICE};
use scaling::report::Outcome;
use serde_json::Value;
use test_support::moto;

/// Generous: a cold API process migrates its database on a busy 2-core machine.
const TASKS_TIMEOUT: Duration = Duration::from_secs(100);

/// The sample CPU-high ALARM event, entering ALARM now (the policy ignores
/// stale alarm changes, and the timestamp is the idempotency key).
fn cpu_high_alarm() -> Value {
    let path = test_support::paths::repo_root().join("events/scale-up-cpu-high-alarm.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut ev: Value = serde_json::from_str(&text).expect("sample event is JSON");
    let now = Utc::now().format("%Y-%m-%dT%H:%M:%S%.3f%z").to_string();
    ev["alarmData"]["state"]["timestamp"] = Value::String(now.clone());
    ev["time"] = Value::String(now);
    ev
}

/// scale-up's config as the template sets it for the local stack.
async fn scale_up_deps(moto: &moto::Moto) -> scale_up::Deps {
    let rewrite = format!("{}={}", IP_REWRITE.0, IP_REWRITE.1);
    let env: HashMap<String, String> = [
        ("CLUSTER_NAME", CLUSTER),
        ("SERVICE_NAME", SERVICE),
        ("MIN_TASKS", "1"),
        ("MAX_TASKS", "4"),
        ("SCALE_OUT_STEP", "1"),
        ("ADMIN_TOKEN", ADMIN_TOKEN),
        ("TASK_IP_PREFIX_REWRITE", rewrite.as_str()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let config = scaling::config::Config::from_map(&env).expect("scale-up config");
    scale_up::Deps::new(config, &moto.sdk_config().await)
}

async fn health(url: &str) -> (u16, Value) {
    let resp = reqwest::get(format!("{url}/health"))
        .await
        .unwrap_or_else(|e| panic!("GET {url}/health: {e}"));
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_out() {
    let moto = moto::shared();
    let stack = Stack::provision(moto, 1)
        .await
        .expect("provision the stack");
    let runner = stack
        .start_runner(moto)
        .await
        .expect("start the task runner");
    let first = runner
        .wait_for_tasks(1, TASKS_TIMEOUT)
        .await
        .expect("the first task serves")
        .remove(0);
    assert_eq!(stack.desired().await.unwrap(), 1);

    runner.note("alarm visits-api-cpu-high -> ALARM: invoking scale-up");
    let deps = scale_up_deps(moto).await;
    let report = scale_up::handle(cpu_high_alarm(), &deps)
        .await
        .expect("scale-up handles the alarm");
    runner.note(format!(
        "scale-up: {:?}, {}",
        report.outcome, report.decision.reason
    ));
    assert_eq!(report.outcome, Outcome::Completed, "{report:#?}");
    assert_eq!(stack.desired().await.unwrap(), 2, "desired after scale-up");

    let tasks = runner
        .wait_for_tasks(2, TASKS_TIMEOUT)
        .await
        .expect("a second task serves");
    let second = tasks
        .iter()
        .find(|t| t.arn != first.arn)
        .expect("a new task, not the first one again");
    assert_ne!(second.url, first.url, "each task has its own address");
    for task in [&first, second] {
        let (status, body) = health(&task.url).await;
        assert_eq!(status, 200, "{} /health: {body}", task.url);
        assert_eq!(body["task_id"], task.id.as_str(), "{} /health", task.url);
    }
    // Both are registered in the target group, as the ALB would see them.
    let targets = stack.target_health().await.expect("describe_target_health");
    let mut ips: Vec<&str> = targets.iter().map(|(ip, _, _)| ip.as_str()).collect();
    ips.sort_unstable();
    let mut want = vec![first.ip.as_str(), second.ip.as_str()];
    want.sort_unstable();
    assert_eq!(ips, want, "target group registrations");
    println!("timeline:\n{}", runner.timeline().join("\n"));
    runner.shutdown().await;
}
