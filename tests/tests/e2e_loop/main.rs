//! End to end on the local stack: alarm payloads (exactly the shapes in
//! events/, entering their state now) go to the REAL function binaries under
//! the harness's Lambda Runtime API (`e2e::stack::runtime_api`); they act on the emulated service through
//! the real SDK; the task runner starts and stops real visits-api processes;
//! HAProxy follows the target group, so clients see what an ALB's would.

mod stack;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use e2e::loadgen::{self, Mode, Scenario};
use e2e::stack::lambda::FUNCTIONS;
use e2e::stack::proxy::SlotState;
use e2e::stack::runner::STRESS_TOKEN;
use e2e::stack::{ADMIN_TOKEN, TASK_PORT};
use scaling::report::Outcome;
use serde_json::{json, Value};

use stack::{alarm_event, health, ids_behind_proxy, run, Env, TASKS_TIMEOUT};

const CPU_HIGH: &str = "scale-up-cpu-high-alarm.json";
const CPU_LOW: &str = "scale-down-alarm.json";

/// 1. Scale-out: alarm -> scale-up -> desired 2 -> a second process serves
///    through the proxy.
#[test]
fn scale_out_second_task_serves_through_the_proxy() {
    run(|env| async move {
        let first = env.reset(1).await.remove(0);
        let done = env.invoke("scale-up", &alarm_event(CPU_HIGH)).await;
        let report = done.report().expect("scale-up report");
        assert_eq!(report.outcome, Outcome::Completed, "{report:#?}");
        assert_eq!(env.stack.desired().await.unwrap(), 2);
        let tasks = env
            .runner
            .wait_for_tasks(2, TASKS_TIMEOUT)
            .await
            .expect("a second task");
        env.wait_ready(2).await;
        let second = tasks.iter().find(|t| t.arn != first.arn).expect("new task");
        let seen = ids_behind_proxy(env, 8).await;
        assert!(
            seen.contains(&second.id) && seen.contains(&first.id),
            "both tasks serve through the proxy: {seen:?}\n{}",
            env.story()
        );
        println!(
            "figure: scale-up invocation (runtime emulator round trip) {:?}; function steps: {:?}",
            done.elapsed,
            report
                .steps
                .iter()
                .map(|s| format!("{} {} ms", s.name, s.duration_ms))
                .collect::<Vec<_>>()
        );
    });
}

/// 2. Scale-in under continuous load through the proxy, with keep-alive
///    clients (the loadgen to HAProxy, HAProxy to the tasks, as the ALB keeps
///    its connections) and a slow request in flight on each task: ECS (the
///    runner) deregisters the victim, the ALB (HAProxy) drains it and
///    completes the deregistration as soon as nothing is in flight and no
///    connection is open, ECS stops it; 0 failed requests, no task replaced
///    after failed health checks, the slow requests answered.
///
///    Each way the uncertain AWS behaviour can go: ECS re-registering a target
///    someone else deregistered, on and off; with the function's early
///    DeregisterTargets head start, and without.
#[test]
fn scale_in_under_load_fails_no_request() {
    run(|env| async move { scale_in_under_load(env, false, true).await });
}

#[test]
fn scale_in_with_an_early_deregistration_that_ecs_undoes_fails_no_request() {
    run(|env| async move { scale_in_under_load(env, true, true).await });
}

#[test]
fn scale_in_with_an_early_deregistration_that_ecs_keeps_fails_no_request() {
    run(|env| async move { scale_in_under_load(env, true, false).await });
}

async fn scale_in_under_load(env: &'static Env, early: bool, reregister: bool) {
    env.runner.set_reregister(reregister);
    let before = env.reset(2).await;
    let replaced_before = env.runner.health_replacements().len();
    // Bounded at 5 min; stopped a moment after the episode ends.
    let stop = Arc::new(AtomicBool::new(false));
    let config = loadgen::Config {
        base_url: env.proxy.url(),
        scenario: Scenario::Steady,
        mode: Mode::Concurrency(4),
        duration: Duration::from_secs(300),
        max_requests: 1_000_000,
        timeout: Duration::from_secs(20),
        progress: false,
    };
    let load = tokio::spawn(loadgen::run_until(config, stop.clone()));
    // Load on both tasks before the episode starts.
    env.eventually("load on both tasks", Duration::from_secs(30), || async {
        env.proxy
            .servers()
            .iter()
            .filter(|s| s.state == SlotState::Ready && s.total > 5)
            .count()
            == 2
    })
    .await;
    // A slow request (a 3 s CPU burn) through the proxy on each task: whichever
    // is chosen has one in flight when it is told to drain.
    let slow: Vec<_> = (0..2)
        .map(|_| tokio::spawn(slow_burn(env.proxy.url(), 3)))
        .collect();
    for t in &before {
        let url = t.url.clone();
        env.eventually(
            "a slow request on each task",
            Duration::from_secs(20),
            || {
                let url = url.clone();
                async move { in_flight(&url).await >= 1 }
            },
        )
        .await;
    }
    let done = if early {
        env.invoke_on(&env.early, "scale-down", &alarm_event(CPU_LOW))
            .await
    } else {
        env.invoke("scale-down", &alarm_event(CPU_LOW)).await
    };
    let report = done.report().expect("scale-down report");
    assert_eq!(
        report.outcome,
        Outcome::Completed,
        "{report:#?}\n{}",
        env.story()
    );
    assert!(
        !load.is_finished(),
        "the load ended before the episode: no proof"
    );
    for s in slow {
        let status = s.await.expect("slow request task");
        assert_eq!(
            status,
            200,
            "the slow request was answered\n{}",
            env.story()
        );
    }
    // Traffic keeps flowing to the remaining task after the victim stopped.
    let after = env.runner.wait_for_tasks(1, TASKS_TIMEOUT).await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::SeqCst);
    let summary = load.await.expect("loadgen task").expect("loadgen run");
    assert_eq!(env.stack.desired().await.unwrap(), 1);
    let victim = before
        .iter()
        .find(|t| t.arn != after[0].arn)
        .expect("one task went");
    let target = format!("{}:{TASK_PORT}", victim.ip);
    let events: Vec<String> = env.proxy.events().into_iter().map(|e| e.what).collect();
    let drained = events
        .iter()
        .rposition(|e| e.contains("DRAIN") && e.contains(&target));
    // The ALB's rule: complete at once when nothing is in flight and no
    // connection is open; the keep-alives were closed by the victim's drain mode,
    // so the delay never cut anything.
    let complete = events
        .iter()
        .rposition(|e| e.contains("MAINT") && e.contains(&format!("{target} drained")));
    assert!(
        matches!((drained, complete), (Some(d), Some(c)) if d < c),
        "drain, then deregistration complete with no connection left: {events:#?}"
    );
    assert!(
        !events.iter().any(|e| e.contains("CUT")),
        "nothing was cut at the deregistration delay: {events:#?}"
    );
    let (status, _) = health(&victim.url).await;
    assert_eq!(status, 0, "the victim's process is gone");
    let timeline = env.runner.timeline();
    assert!(
        timeline
            .iter()
            .any(|l| l.contains(&format!("task {} STOPPED (exit", victim.id))),
        "the victim exited on SIGTERM: {timeline:#?}"
    );
    let reregistered = timeline
        .iter()
        .any(|l| l.contains(&format!("ECS registered {}:{TASK_PORT} again", victim.ip)));
    assert_eq!(
        reregistered,
        early && reregister,
        "ECS registers the early-deregistered victim again only when it does: {timeline:#?}"
    );
    assert_eq!(
        env.runner.health_replacements().len(),
        replaced_before,
        "a task was replaced after failed health checks during the scale-in: {timeline:#?}"
    );
    let drain = report.drain.clone().expect("drain summary");
    println!(
        "figures (early deregistration {early}, re-registration {reregister}): requests {} failed {} ({:?}); \
         episode {} ms, in-flight drain {} ms; latency {:?}",
        summary.requests,
        summary.failed,
        summary.errors,
        report.duration_ms,
        drain.drain_ms,
        summary.latency_ms
    );
    assert!(summary.requests > 50, "load was sent: {summary:?}");
    assert_eq!(
        summary.failed,
        0,
        "no failed request across the scale-in: {:?}\n{}",
        summary.errors,
        env.story()
    );
    env.runner.set_reregister(false);
}

/// `POST /api/stress` for `secs` through `base`; its status (0: no answer).
async fn slow_burn(base: String, secs: u64) -> u16 {
    let resp = reqwest::Client::new()
        .post(format!("{base}/api/stress"))
        .bearer_auth(STRESS_TOKEN)
        .json(&json!({ "duration_s": secs }))
        .timeout(Duration::from_secs(60))
        .send()
        .await;
    resp.map_or(0, |r| r.status().as_u16())
}

/// 3. Notification: notify, given scale-up's result as a Lambda destination
///    record, publishes to the topic with the expected subject.
#[test]
fn notify_publishes_the_scale_out_with_its_subject() {
    run(|env| async move {
        env.reset(1).await;
        let event = alarm_event(CPU_HIGH);
        let done = env.invoke("scale-up", &event).await;
        let report = done.result.clone().expect("scale-up report");
        assert_eq!(report["outcome"], "completed", "{report:#}");
        let record = json!({
            "version": "1.0",
            "timestamp": chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
            "requestContext": {
                "requestId": "e2e-notify-1",
                "functionArn": "arn:aws:lambda:us-east-1:123456789012:function:visits-scale-up:$LATEST",
                "condition": "Success",
                "approximateInvokeCount": 1
            },
            "requestPayload": event,
            "responseContext": {"statusCode": 200, "executedVersion": "$LATEST"},
            "responsePayload": report,
        });
        let sent_before = env.moto.sns_messages().unwrap().len();
        let done = env.invoke("notify", &record).await;
        assert!(done.result.is_ok(), "notify: {:?}", done.result);
        let messages = env.moto.sns_messages().unwrap();
        let new: Vec<&Value> = messages[sent_before..]
            .iter()
            .filter(|m| m["topic_arn"] == env.stack.topic_arn.as_str())
            .collect();
        assert_eq!(new.len(), 1, "one message on the topic: {messages:#?}");
        let subject = new[0]["subject"].as_str().unwrap_or_default();
        assert!(
            subject.starts_with("[visits-api] scaled out 1->2"),
            "subject: {subject:?}"
        );
        let body = new[0]["message"].as_str().unwrap_or_default();
        assert!(
            body.contains("visits-api-cpu-high"),
            "body names the alarm: {body}"
        );
        println!("notification: {subject}\n{body}");
    });
}

/// 4. Idempotency: the same alarm payload delivered twice is one episode.
#[test]
fn duplicate_alarm_delivery_is_one_episode() {
    run(|env| async move {
        env.reset(1).await;
        let event = alarm_event(CPU_HIGH);
        let first = env.invoke("scale-up", &event).await.report().unwrap();
        let again = env.invoke("scale-up", &event).await.report().unwrap();
        assert_eq!(first.outcome, Outcome::Completed, "{first:#?}");
        assert_eq!(again.outcome, Outcome::Skipped, "{again:#?}");
        assert_eq!(env.stack.desired().await.unwrap(), 2, "one +1, not two");
        env.runner.wait_for_tasks(2, TASKS_TIMEOUT).await.unwrap();
        println!("second delivery: {}", again.outcome_reason);
    });
}

/// 5. Bad input: a malformed event gets a clear non-retryable error from
///    every function, and nothing changes.
#[test]
fn malformed_events_get_a_clear_error_and_change_nothing() {
    run(|env| async move {
        env.reset(1).await;
        let tags = env.tags().await;
        let sent = env.moto.sns_messages().unwrap().len();
        let mut truncated = alarm_event(CPU_HIGH);
        truncated["alarmData"]["state"] = Value::Null;
        for payload in [json!({"hello": "world"}), json!([1, 2]), truncated] {
            for function in FUNCTIONS {
                let done = env.invoke(function, &payload).await;
                let err = done
                    .result
                    .expect_err(&format!("{function} accepted {payload}"));
                assert!(
                    err.error_type.starts_with("NonRetryable."),
                    "{function}: error type says not to retry: {err}"
                );
                assert!(
                    err.error_message.len() > 10,
                    "{function}: a message that says what is wrong: {err}"
                );
            }
        }
        assert_eq!(env.stack.desired().await.unwrap(), 1);
        assert_eq!(env.tags().await, tags, "service tags unchanged");
        assert_eq!(
            env.moto.sns_messages().unwrap().len(),
            sent,
            "nothing published"
        );
        assert_eq!(env.runner.tasks().len(), 1);
    });
}

/// 6. A scale-out during the drain: once desired is lowered ECS is already
///    stopping the victim, so the scale-in goes forward (it is never undone
///    halfway); scale-up's higher desired makes ECS start a new task, and the
///    service ends with two tasks serving through the proxy. (A scale-out
///    before desired is lowered cancels the episode: the in-memory and emulator
///    tests put one at every call.)
#[test]
fn scale_out_during_a_drain_ends_with_both_tasks_serving() {
    run(|env| async move {
        let tasks = env.reset(2).await;
        let replaced_before = env.runner.health_replacements().len();
        // A slow request on each task keeps whichever is chosen draining a while.
        let slow: Vec<_> = (0..2)
            .map(|_| tokio::spawn(slow_burn(env.proxy.url(), 4)))
            .collect();
        for t in &tasks {
            let url = t.url.clone();
            env.eventually("slow request in flight", Duration::from_secs(20), || {
                let url = url.clone();
                async move { in_flight(&url).await >= 1 }
            })
            .await;
        }
        let events_before = env.proxy.events().len();
        let scale_down = {
            let event = alarm_event(CPU_LOW);
            tokio::spawn(async move { env.invoke("scale-down", &event).await })
        };
        // The proxy's events, not its momentary state.
        let drained = |from: usize| -> bool {
            env.proxy.events()[from..]
                .iter()
                .any(|e| e.what.contains(" DRAIN ("))
        };
        env.eventually(
            "the victim deregistered by ECS",
            Duration::from_secs(60),
            || async { drained(events_before) },
        )
        .await;
        let up = env.invoke("scale-up", &alarm_event(CPU_HIGH)).await;
        let up = up.report().expect("scale-up report");
        let down = scale_down.await.expect("scale-down task");
        let down = down.report().expect("scale-down report");
        for s in slow {
            assert_eq!(
                s.await.unwrap(),
                200,
                "slow requests answered\n{}",
                env.story()
            );
        }
        assert_eq!(
            down.outcome,
            Outcome::Completed,
            "scale-down: {down:#?}\nscale-up: {up:#?}\n{}",
            env.story()
        );
        assert_eq!(env.stack.desired().await.unwrap(), 2, "scale-up: {up:#?}");
        let now = env.runner.wait_for_tasks(2, TASKS_TIMEOUT).await.unwrap();
        env.wait_ready(2).await;
        let seen = ids_behind_proxy(env, 12).await;
        for t in &now {
            assert!(
                seen.contains(&t.id),
                "{} serves: {seen:?}\n{}",
                t.id,
                env.story()
            );
        }
        assert_eq!(
            env.runner.health_replacements().len(),
            replaced_before,
            "{}",
            env.story()
        );
        println!(
            "scale-up: {:?} {}; scale-down: {:?} {}",
            up.outcome, up.outcome_reason, down.outcome, down.outcome_reason
        );
    });
}

/// The task's in-flight count from `GET /admin/drain`.
async fn in_flight(url: &str) -> u64 {
    let resp = reqwest::Client::new()
        .get(format!("{url}/admin/drain"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await;
    match resp {
        Ok(r) => r
            .json::<Value>()
            .await
            .map_or(0, |v| v["in_flight"].as_u64().unwrap_or(0)),
        Err(_) => 0,
    }
}

/// `cargo lambda invoke` (from the project venv) reaches the stack's
/// functions through the harness's Invoke API, with a sample event file, as
/// docs/local-stack.md tells a newcomer to do on a running stack.
#[test]
fn cargo_lambda_invoke_reaches_the_functions() {
    run(|env| async move {
        env.reset(1).await;
        let venv = test_support::paths::repo_root().join(".venv/bin");
        let cli = test_support::paths::find_tool("cargo-lambda", &[venv])
            .expect("cargo-lambda is missing: run `make setup` (it comes with the project venv)");
        let port = env
            .lambdas
            .url()
            .rsplit(':')
            .next()
            .expect("port")
            .to_string();
        let dir = test_support::scratch_dir("e2e-invoke").unwrap();
        let file = dir.join("alarm.json");
        std::fs::write(&file, alarm_event(CPU_HIGH).to_string()).unwrap();
        let out = tokio::process::Command::new(&cli)
            .args(["lambda", "invoke", "--invoke-address", "127.0.0.1"])
            .args(["--invoke-port", &port, "scale-up", "--data-file"])
            .arg(&file)
            .current_dir(&dir)
            .output()
            .await
            .expect("run cargo lambda invoke");
        let _ = std::fs::remove_dir_all(&dir);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "cargo lambda invoke: {}\n{stdout}",
            String::from_utf8_lossy(&out.stderr)
        );
        let report: Value = serde_json::from_str(stdout.trim()).expect("a JSON report");
        assert_eq!(report["outcome"], "completed", "{report:#}");
        assert_eq!(env.stack.desired().await.unwrap(), 2);
    });
}
