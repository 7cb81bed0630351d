//! The local stack's load balancer: HAProxy follows the emulator's target
//! group. A registered task takes traffic through the proxy. A deregistered
//! one is `draining` in the emulator; the proxy drains it (no new requests;
//! in-flight ones finish: see e2e_loop's scale-in), parks its slot and ends
//! the deregistration. Registered again, it serves again.

use std::time::Duration;

use aws_sdk_elasticloadbalancingv2::types::TargetDescription;
use e2e::stack::proxy::SlotState;
use e2e::stack::{Proxy, Stack, TASK_PORT};
use test_support::moto;

/// Generous: a cold API process migrates its database on a busy 2-core machine.
const TIMEOUT: Duration = Duration::from_secs(100);

async fn task_behind_proxy(client: &reqwest::Client, proxy: &Proxy) -> String {
    let resp = client
        .get(format!("{}/health", proxy.url()))
        .send()
        .await
        .expect("GET /health through the proxy");
    assert_eq!(resp.status(), 200, "through the proxy");
    let body: serde_json::Value = resp.json().await.expect("health JSON");
    body["task_id"].as_str().expect("task_id").to_string()
}

/// A task's target: its IP on the task port.
fn task_target(ip: &str) -> TargetDescription {
    TargetDescription::builder()
        .id(ip)
        .port(i32::from(TASK_PORT))
        .build()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_follows_the_target_group() {
    let moto = moto::shared();
    let stack = Stack::provision(moto, 2).await.expect("provision");
    let runner = stack.start_runner(moto).await.expect("runner");
    let proxy = Proxy::start(&stack).await.expect("haproxy");
    let tasks = runner.wait_for_tasks(2, TIMEOUT).await.expect("two tasks");
    proxy.wait_ready(2, TIMEOUT).await.unwrap();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..8 {
        seen.insert(task_behind_proxy(&client, &proxy).await);
    }
    assert_eq!(seen.len(), 2, "round robin reaches both tasks: {seen:?}");

    // Deregister the first task: the proxy drains it, then parks the slot.
    let victim = &tasks[0];
    let target = format!("{}:{TASK_PORT}", victim.ip);
    let elb = &stack.world.elb;
    elb.deregister_targets()
        .target_group_arn(&stack.target_group)
        .targets(task_target(&victim.ip))
        .send()
        .await
        .unwrap();
    proxy
        .wait_until("victim's slot freed", TIMEOUT, |s| {
            s.iter()
                .all(|s| s.target.as_deref() != Some(target.as_str()))
        })
        .await
        .unwrap();
    // The proxy reported the drain, so the emulator no longer lists it draining.
    let listed = stack.target_health().await.unwrap();
    assert!(
        listed.iter().all(|(ip, _, _)| *ip != victim.ip),
        "deregistration complete once drained: {listed:?}"
    );
    let events: Vec<String> = proxy.events().into_iter().map(|e| e.what).collect();
    let drain = events.iter().position(|e| e.contains("DRAIN"));
    let maint = events.iter().position(|e| e.contains("MAINT"));
    assert!(
        matches!((drain, maint), (Some(d), Some(m)) if d < m),
        "drain before maint: {events:#?}"
    );
    for _ in 0..6 {
        assert_eq!(
            task_behind_proxy(&client, &proxy).await,
            tasks[1].id,
            "only the registered task gets traffic"
        );
    }

    // Registered again (what a rolled-back scale-in does): it serves again.
    elb.register_targets()
        .target_group_arn(&stack.target_group)
        .targets(task_target(&victim.ip))
        .send()
        .await
        .unwrap();
    proxy
        .wait_until("victim ready again", TIMEOUT, |s| {
            s.iter().any(|s| {
                s.target.as_deref() == Some(target.as_str()) && s.state == SlotState::Ready
            })
        })
        .await
        .unwrap();
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..8 {
        seen.insert(task_behind_proxy(&client, &proxy).await);
    }
    assert!(
        seen.contains(&victim.id),
        "the victim serves again: {seen:?}"
    );
    drop(proxy);
    runner.shutdown().await;
}
