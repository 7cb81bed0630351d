//! End to end on the local stack: a load that rises and stays high makes the
//! service climb step after step to the capacity the load needs, with one alarm
//! transition in all (CloudWatch invokes the alarm action once; scale-up's
//! re-evaluation schedule adds the later steps), then comes back down one
//! graceful task at a time once the load falls, with no failed request.
//!
//! The pieces are the real ones of `make demo`: the task runner with real
//! visits-api processes, HAProxy, the alarm driver reading the template's
//! alarms, and the real function binaries. This test plays EventBridge's two
//! schedules (scale-up's re-evaluation, scale-down's reconcile).
//!
//! Two alarms are evaluated, from the template, with numbers suited to a short
//! run on a shared 2-core machine: the in-flight alarm (threshold 3 instead of
//! 50, so that twelve CPU burns are the overload; 5 s periods, 3 of 3) and the
//! CPU-low alarm (threshold 8% instead of 30, 5 s periods, 3 of 3). Locally all
//! the API processes share the machine's two cores and report CPU as a share of
//! both, so four busy tasks read about 25% each: under the template's 30% they
//! would look idle while the burns run (on AWS each task has its own vCPUs).
//! The latency alarm is left out: a 1 s burn is above its 500 ms whatever the
//! task count, which would climb to max.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use e2e::stack::alarms::{self, AlarmDriver, DriverEvent, DriverOpts};
use e2e::stack::demo_load::{Burner, Visits};
use e2e::stack::lambda::{invoker, Lambdas};
use e2e::stack::runner::{METRICS_INTERVAL_S, STRESS_TOKEN};
use e2e::stack::{Proxy, Stack, SERVICE};
use scaling::report::{FunctionKind, Outcome, Report, TriggerSummary};
use serde_json::Value;
use test_support::moto;

/// Concurrent 1 s CPU burns: the load. At most `THRESHOLD × need` so that, once
/// the need is reached, the average can't breach (the burns are a closed loop).
const LOAD: u32 = 12;
/// In-flight threshold per task for this run.
const THRESHOLD: f64 = 3.0;
/// CPU-low threshold for this run, percent of the machine (see the header).
const CPU_LOW: f64 = 8.0;
/// Both alarms' period, s.
const PERIOD_S: u32 = 5;
/// Scale-out cooldown, s; also the re-evaluation schedule's period. Longer than
/// a task's start plus one period, so the alarm has seen the last step's task.
const COOLDOWN_S: u64 = 12;
/// Scale-in cooldown, s; the reconcile schedule's period.
const IN_COOLDOWN_S: u64 = 3;
/// Generous: a cold API process migrates its database on a busy 2-core machine.
const TASKS_TIMEOUT: Duration = Duration::from_secs(120);

/// What happened, in order: reports with the time their invocation answered,
/// and the in-flight alarm's transitions.
#[derive(Default)]
struct Seen {
    reports: Vec<Report>,
    inflight_changes: Vec<(Instant, String)>,
    errors: Vec<String>,
}

fn record(seen: &Mutex<Seen>, result: Result<Value, String>) {
    let mut s = seen.lock().unwrap();
    match result.map(serde_json::from_value::<Report>) {
        Ok(Ok(r)) => s.reports.push(r),
        Ok(Err(e)) => s.errors.push(format!("not a report: {e}")),
        Err(e) => s.errors.push(e),
    }
}

fn schedule_event(rule: &str) -> Value {
    let now = Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    serde_json::json!({
        "version": "0", "id": uuid_like(), "detail-type": "Scheduled Event",
        "source": "aws.events", "account": moto::ACCOUNT_ID, "time": now,
        "region": moto::REGION, "resources": [format!("arn:aws:events:us-east-1:123456789012:rule/{rule}")],
        "detail": {}
    })
}

fn uuid_like() -> String {
    format!(
        "{:032x}",
        Utc::now().timestamp_nanos_opt().unwrap_or_default()
    )
}

/// Completed episodes of `kind`, in the order they happened.
fn completed(seen: &Mutex<Seen>, kind: FunctionKind) -> Vec<Report> {
    let mut out: Vec<Report> = seen
        .lock()
        .unwrap()
        .reports
        .iter()
        .filter(|r| r.function == kind && r.outcome == Outcome::Completed)
        .cloned()
        .collect();
    out.sort_by_key(|r| r.started_at);
    out
}

fn at(r: &Report) -> DateTime<Utc> {
    r.started_at + chrono::Duration::milliseconds(r.duration_ms as i64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sustained_overload_climbs_step_after_step_then_settles_gracefully() {
    let moto = moto::shared();
    let stack = Stack::provision(moto, 1)
        .await
        .expect("provision the stack");
    let runner = stack.start_runner(moto).await.expect("task runner");
    let proxy = Proxy::start(&stack).await.expect("HAProxy");
    runner
        .wait_for_tasks(1, TASKS_TIMEOUT)
        .await
        .expect("one task");

    // The template's alarms, narrowed to the two this run evaluates.
    let mut defs = tokio::task::spawn_blocking(alarms::template::load)
        .await
        .unwrap()
        .expect("alarms of infra/scaling.yaml");
    defs.retain(|d| d.logical_id == "InFlightHighAlarm" || d.logical_id == "CpuLowAlarm");
    assert_eq!(defs.len(), 2, "the template's in-flight and CPU-low alarms");
    for d in &mut defs {
        d.rule.period_s = PERIOD_S;
        d.rule.evaluation_periods = 3;
        d.rule.datapoints_to_alarm = 3;
        d.rule.threshold = if d.logical_id == "InFlightHighAlarm" {
            THRESHOLD
        } else {
            CPU_LOW
        };
    }
    let inflight_alarm = format!("{SERVICE}-inflight-high");
    let (cooldown, in_cooldown) = (COOLDOWN_S.to_string(), IN_COOLDOWN_S.to_string());
    let overrides = [
        ("MAX_TASKS", "6"),
        ("SCALE_OUT_MODE", "fixed"),
        ("SCALE_OUT_ALARMS", inflight_alarm.as_str()),
        ("SCALE_OUT_COOLDOWN_S", cooldown.as_str()),
        ("SCALE_OUT_REEVALUATE_S", cooldown.as_str()),
        ("SCALE_IN_COOLDOWN_S", in_cooldown.as_str()),
        ("SCALE_IN_ALARM_PERIOD_S", "5"),
        ("SCALE_IN_ALARM_EVALUATION_PERIODS", "3"),
        ("DRAIN_MARGIN_S", "2"),
    ];
    let lambdas = Arc::new(
        Lambdas::start(moto, &stack, &["scale-up", "scale-down"], &overrides)
            .await
            .expect("functions"),
    );
    let seen = Arc::new(Mutex::new(Seen::default()));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let collector = {
        let seen = seen.clone();
        let alarm = inflight_alarm.clone();
        tokio::spawn(async move {
            while let Some(ev) = rx.recv().await {
                match ev {
                    DriverEvent::StateChange { alarm: a, to, .. } if a == alarm => seen
                        .lock()
                        .unwrap()
                        .inflight_changes
                        .push((Instant::now(), to.as_str().to_string())),
                    DriverEvent::Invoked { result, .. } => record(&seen, result),
                    DriverEvent::Error(e) => seen.lock().unwrap().errors.push(e),
                    _ => {}
                }
            }
        })
    };
    let opts = DriverOpts {
        min_period: Duration::from_secs(u64::from(METRICS_INTERVAL_S)),
        ..DriverOpts::default()
    };
    let cw = aws_sdk_cloudwatch::Client::new(&moto.sdk_config().await);
    let _driver = AlarmDriver::start(
        defs,
        runner.log_dir().to_path_buf(),
        cw,
        invoker(lambdas.clone()),
        opts,
        tx,
    )
    .await
    .expect("alarm driver");

    // EventBridge's schedules: scale-up every cooldown, scale-down every scale-in cooldown.
    let schedules = {
        let (lambdas, seen) = (lambdas.clone(), seen.clone());
        tokio::spawn(async move {
            let mut up = tokio::time::interval(Duration::from_secs(COOLDOWN_S));
            let mut down = tokio::time::interval(Duration::from_secs(IN_COOLDOWN_S));
            loop {
                let (function, rule) = tokio::select! {
                    _ = up.tick() => ("scale-up", "visits-api-scale-up-reevaluate"),
                    _ = down.tick() => ("scale-down", "visits-api-scale-down-reconcile"),
                };
                let (lambdas, seen) = (lambdas.clone(), seen.clone());
                // Asynchronous, like EventBridge: a run that waits does not hold the other.
                tokio::spawn(async move {
                    match lambdas.invoke(function, &schedule_event(rule)).await {
                        Ok(done) => record(&seen, done.result.map_err(|e| e.to_string())),
                        Err(e) => seen.lock().unwrap().errors.push(format!("{e:#}")),
                    }
                });
            }
        })
    };

    // Ramp and hold: twelve burns in flight, kept up until the climb stops.
    let need = (f64::from(LOAD) / THRESHOLD).ceil() as i32;
    let burner = Burner::start(&proxy.url(), STRESS_TOKEN, LOAD, 1).expect("burner");
    let climb_started = Instant::now();
    let deadline = climb_started + Duration::from_secs(240);
    loop {
        let desired = stack.desired().await.unwrap();
        let steady = completed(&seen, FunctionKind::ScaleUp)
            .last()
            .is_some_and(|r| Utc::now() - at(r) > chrono::Duration::seconds(2 * COOLDOWN_S as i64));
        if desired >= need && steady {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "desired {desired} after {:?}, the load needs {need}; reports:\n{:#?}\nrunner:\n{}\nscale-up log:\n{}",
            climb_started.elapsed(),
            seen.lock().unwrap().reports,
            runner.timeline().join("\n"),
            lambdas.log("scale-up")
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let steps = completed(&seen, FunctionKind::ScaleUp);
    let peak = stack.desired().await.unwrap();
    let gaps: Vec<f64> = steps
        .windows(2)
        .map(|w| (at(&w[1]) - at(&w[0])).num_milliseconds() as f64 / 1000.0)
        .collect();
    let changes: Vec<String> = seen
        .lock()
        .unwrap()
        .inflight_changes
        .iter()
        .map(|(t, s)| format!("{s} at {:.1} s", (*t - climb_started).as_secs_f64()))
        .collect();
    println!(
        "climb: {} steps to {peak} tasks (the load needs {need}); gaps between steps {gaps:?} s \
         (bound: cooldown {COOLDOWN_S} s + period {PERIOD_S} s); in-flight alarm: {changes:?}",
        steps.len()
    );

    // The count the load needs, no less and no more than one step beyond it.
    assert!(
        THRESHOLD * f64::from(peak) >= f64::from(LOAD),
        "{peak} tasks × {THRESHOLD} < load {LOAD}"
    );
    assert!(
        peak <= need + 1,
        "overshot: {peak} tasks for a need of {need}"
    );
    // Step after step: one alarm action, then the re-evaluation.
    assert!(steps.len() >= 2, "{steps:#?}");
    for (i, s) in steps.iter().enumerate().skip(1) {
        let TriggerSummary::Alarm {
            reason, alarm_name, ..
        } = &s.trigger
        else {
            panic!("step {i} has no alarm: {:?}", s.trigger)
        };
        assert_eq!(alarm_name, &inflight_alarm);
        assert!(
            reason.starts_with("re-evaluation by the schedule"),
            "step {i}: {reason}"
        );
    }
    // No alarm transition between the first step and the last.
    let first_alarm = seen
        .lock()
        .unwrap()
        .inflight_changes
        .iter()
        .filter(|(_, s)| s == "ALARM")
        .count();
    assert_eq!(
        first_alarm, 1,
        "the in-flight alarm entered ALARM once: {changes:?}"
    );
    for g in &gaps {
        assert!(
            *g <= (COOLDOWN_S + u64::from(PERIOD_S)) as f64 + 2.0,
            "{g} s between steps > cooldown {COOLDOWN_S} s + one period {PERIOD_S} s (+2 s of calls): {gaps:?}"
        );
    }

    // The load falls: the burns stop, visits go on through the proxy. Scale-in one
    // graceful task at a time, back to one.
    let visits = Visits::start(proxy.url(), 10.0);
    let (_sent, _failed) = burner.stop();
    let fall = Instant::now();
    let deadline = fall + Duration::from_secs(240);
    // A task ECS is stopping (deregistered, draining, exiting) is no longer in
    // `tasks()`; its episode ends once it is STOPPED.
    while stack.desired().await.unwrap() > 1
        || runner.tasks().len() > 1
        || !runner.stopping().is_empty()
    {
        assert!(
            Instant::now() < deadline,
            "still {} tasks {:?} after the load fell; reports:\n{:#?}\nscale-down log:\n{}",
            runner.tasks().len(),
            fall.elapsed(),
            completed(&seen, FunctionKind::ScaleDown),
            lambdas.log("scale-down")
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Let the last drain settle in the proxy, then count.
    proxy
        .wait_ready(1, TASKS_TIMEOUT)
        .await
        .expect("one slot serving");
    let parts = visits.stop().await.expect("visits");
    let load = e2e::stack::demo_load::sum(&parts);
    schedules.abort();
    let ins = completed(&seen, FunctionKind::ScaleDown);
    println!(
        "scale-in: {} episodes in {:.1} s; visits across it: {} sent, {} failed",
        ins.len(),
        fall.elapsed().as_secs_f64(),
        load.requests,
        load.failed
    );
    assert_eq!(ins.len() as i32, peak - 1, "one task per episode: {ins:#?}");
    for r in &ins {
        let (b, a) = (r.before.unwrap().desired, r.after.unwrap().desired);
        assert_eq!(a, b - 1, "one task at a time");
    }
    assert!(load.requests > 0);
    assert_eq!(
        load.failed, 0,
        "failed requests across the scale-in: {:?}",
        load.errors
    );
    // Re-evaluations after the climb changed nothing (quiet skips).
    let late = completed(&seen, FunctionKind::ScaleUp);
    assert_eq!(
        late.len(),
        steps.len(),
        "scale-out after the load fell: {late:#?}"
    );
    let errors = std::mem::take(&mut seen.lock().unwrap().errors);
    assert!(errors.is_empty(), "{errors:?}");
    collector.abort();
    drop(proxy);
    runner.shutdown().await;
}
