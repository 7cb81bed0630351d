//! The alarm driver (the local stand-in for CloudWatch) on its own, against
//! the emulator: EMF lines written to a task log make the template's
//! in-flight alarm go to ALARM in moto and invoke scale-up once with a payload
//! the functions parse; metrics inside the thresholds invoke nothing; back
//! under the threshold the alarm returns to OK without an invocation.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use e2e::stack::alarms::cloudwatch;
use e2e::stack::alarms::eval::State;
use e2e::stack::alarms::{self, AlarmDriver, DriverEvent, DriverOpts, InvokeFuture, Invoker};
use serde_json::{json, Value};
use tokio::sync::mpsc;

/// Generous for a loaded 2-core machine: the alarm needs 3 one-second periods.
const WAIT: Duration = Duration::from_secs(60);

/// One EMF record as the API writes it (api/src/emf.rs).
fn emf_line(in_flight: u64, cpu: f64) -> String {
    let now = chrono::Utc::now().timestamp_millis();
    json!({
        "_aws": {"Timestamp": now, "CloudWatchMetrics": [{
            "Namespace": "VisitsApi",
            "Dimensions": [["ClusterName", "ServiceName"]],
            "Metrics": [
                {"Name": "InFlight", "Unit": "Count"},
                {"Name": "CPUUtilization", "Unit": "Percent"},
                {"Name": "MemoryUtilization", "Unit": "Percent"},
                {"Name": "LatencyP95", "Unit": "Milliseconds"}
            ]}]},
        "ClusterName": "visits", "ServiceName": "visits-api", "TaskId": "t1",
        "InFlight": in_flight, "CPUUtilization": cpu, "MemoryUtilization": 20.0, "LatencyP95": 3.0,
    })
    .to_string()
}

/// Waits for the first event that `pick` accepts; fails with what came before.
async fn wait_for<T>(
    rx: &mut mpsc::UnboundedReceiver<DriverEvent>,
    what: &str,
    mut pick: impl FnMut(&DriverEvent) -> Option<T>,
) -> T {
    let deadline = Instant::now() + WAIT;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, rx.recv()).await {
            Ok(Some(ev)) => {
                if let Some(v) = pick(&ev) {
                    return v;
                }
                if !matches!(ev, DriverEvent::Records(_)) {
                    seen.push(format!("{ev:?}"));
                }
            }
            _ => panic!("no {what} within {WAIT:?}; events: {seen:#?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inflight_over_the_threshold_alarms_in_moto_and_invokes_scale_up_once() {
    let moto = tokio::task::spawn_blocking(test_support::moto::Moto::start)
        .await
        .unwrap()
        .expect("moto (run `make setup`)");
    let defs = tokio::task::spawn_blocking(alarms::template::load)
        .await
        .unwrap()
        .expect("alarms of infra/scaling.yaml");
    let dir = test_support::scratch_dir("demo-alarm-driver").unwrap();
    let log = dir.join("t1.log");

    // The invoker records what it is asked and answers like a function would.
    let calls: Arc<Mutex<Vec<(String, Value)>>> = Arc::default();
    let recorded = calls.clone();
    let invoke: Invoker = Arc::new(move |name: String, payload: Value| {
        recorded.lock().unwrap().push((name, payload));
        let done: InvokeFuture = Box::pin(async { Ok(json!({"ok": true})) });
        done
    });
    let cw = aws_sdk_cloudwatch::Client::new(&moto.sdk_config().await);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let opts = DriverOpts {
        time_scale: 10.0,
        min_period: Duration::from_secs(1),
        ..DriverOpts::default()
    };
    let driver = AlarmDriver::start(defs, dir.clone(), cw.clone(), invoke, opts, tx)
        .await
        .expect("start the driver");
    assert!(driver
        .not_evaluated
        .contains(&"visits-api-unhealthy-hosts".to_string()));

    // A task reports 80 in flight (threshold 50) and 50% CPU (between 30 and 70).
    let level = Arc::new(Mutex::new(80u64));
    let writer_level = level.clone();
    let writer = tokio::spawn(async move {
        let mut f = std::fs::File::create(&log).unwrap();
        loop {
            let n = *writer_level.lock().unwrap();
            writeln!(f, "{}", emf_line(n, 50.0)).unwrap();
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    });

    let payload = wait_for(&mut rx, "scale-up invocation", |ev| match ev {
        DriverEvent::Invoking {
            alarm,
            function,
            payload,
            ..
        } if alarm == "visits-api-inflight-high" => {
            assert_eq!(function, "scale-up");
            Some(payload.clone())
        }
        _ => None,
    })
    .await;
    let change = scaling::trigger::parse_alarm(&payload).expect("the functions parse it");
    assert_eq!(change.state.as_str(), "ALARM");
    assert_eq!(change.threshold, Some(50.0));
    assert_eq!(change.latest_value(), Some(80.0));
    assert_eq!(
        cloudwatch::state_of(&cw, "visits-api-inflight-high")
            .await
            .unwrap()
            .as_deref(),
        Some("ALARM"),
        "the state is set in the emulator"
    );

    // Back under the threshold: OK again, and OK runs no action.
    *level.lock().unwrap() = 2;
    wait_for(&mut rx, "inflight-high back to OK", |ev| match ev {
        DriverEvent::StateChange { alarm, to, .. }
            if alarm == "visits-api-inflight-high" && *to == State::Ok =>
        {
            Some(())
        }
        _ => None,
    })
    .await;
    writer.abort();
    drop(driver);
    let calls = calls.lock().unwrap().clone();
    let names: Vec<String> = calls
        .iter()
        .map(|(f, p)| format!("{f} <- {}", p["alarmData"]["alarmName"]))
        .collect();
    assert_eq!(
        names,
        ["scale-up <- \"visits-api-inflight-high\""],
        "exactly one action: CPU 50% is neither high (70) nor low (30)"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
