//! scale-down against the REAL visits-api binary on loopback: the victim is a
//! real API process (fresh database) with a slow request in flight
//! (`POST /api/stress`). `/admin/drain` is called for real, the wait lasts
//! until that request has completed, and ends as soon as in-flight reaches 0
//! (well before the target group's 30 s deregistration delay); only then is
//! desired lowered, and the task is stopped with SIGTERM.
//!
//! Needs the debug API binary (`cargo build -p visits-api`; `make test` builds
//! it first) and PostgreSQL (`make setup`).

mod emulated;

use emulated::{twin, World, ADMIN_TOKEN};
use nix::sys::signal::Signal;
use scale_down::handle;
use scaling::report::Outcome;
use std::process::{Command, Stdio};
use std::time::Duration;
use test_support::guard::{GuardOpts, Guarded};
use tokio::time::Instant;

const STRESS_TOKEN: &str = "test-stress-token";
/// How long the slow request keeps the victim busy.
const SLOW_S: u64 = 3;

/// The workspace's debug visits-api binary.
fn api_binary() -> std::path::PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| test_support::paths::repo_root().join("target"));
    let bin = target.join("debug/visits-api");
    assert!(
        bin.is_file(),
        "{} is missing: run `cargo build -p visits-api` (make test does)",
        bin.display()
    );
    bin
}

/// Starts visits-api on `addr` and waits until `/health` answers 200.
async fn start_api(addr: &str, port: u16, db: &str) -> Guarded {
    let log = std::env::temp_dir().join(format!("scale-down-real-api-{port}.log"));
    let log = std::fs::File::create(log).unwrap();
    let mut cmd = Command::new(api_binary());
    cmd.env("BIND_ADDR", addr)
        .env("PORT", port.to_string())
        .env("DATABASE_URL", db)
        .env("ADMIN_TOKEN", ADMIN_TOKEN)
        .env("STRESS_TOKEN", STRESS_TOKEN)
        .env("SHUTDOWN_GRACE_S", "10")
        .env("METRICS_INTERVAL_S", "60");
    let mut api = Guarded::spawn(
        "visits-api",
        &cmd,
        GuardOpts::default(),
        Stdio::from(log.try_clone().unwrap()),
        Stdio::from(log),
    )
    .unwrap();
    let http = reqwest::Client::new();
    let until = Instant::now() + Duration::from_secs(90);
    loop {
        if let Some(status) = api.try_wait() {
            panic!("visits-api exited while starting: {status}");
        }
        let health = http
            .get(format!("http://{addr}:{port}/health"))
            .send()
            .await;
        if health.is_ok_and(|r| r.status().is_success()) {
            return api;
        }
        assert!(Instant::now() < until, "visits-api not healthy within 90 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_drain_waits_for_the_slow_request_and_ends_as_soon_as_it_completes() {
    let db = test_support::pg::shared()
        .fresh_database("scale_down")
        .expect("PostgreSQL (make setup)");
    // Two busy fake tasks; the real one will have the fewest in flight.
    let w = World::new("realapi", &[5, 5]).await;
    w.elb
        .modify_target_group_attributes()
        .target_group_arn(&w.tg)
        .attributes(
            aws_sdk_elasticloadbalancingv2::types::TargetGroupAttribute::builder()
                .key("deregistration_delay.timeout_seconds")
                .value("30")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let (arn, ip) = w.launch().await;
    let victim_arn = arn.clone();
    let addr = twin(&ip);
    let api = start_api(&addr, w.port, &db).await;
    w.register(&ip).await;
    w.ecs
        .update_service()
        .cluster(&w.cluster)
        .service(emulated::SERVICE)
        .desired_count(3)
        .send()
        .await
        .unwrap();

    // The slow request, in flight when the episode starts.
    let base = format!("http://{addr}:{}", w.port);
    let http = reqwest::Client::new();
    let slow = tokio::spawn({
        let (http, base) = (http.clone(), base.clone());
        async move {
            let r = http
                .post(format!("{base}/api/stress"))
                .bearer_auth(STRESS_TOKEN)
                .json(&serde_json::json!({"duration_s": SLOW_S}))
                .send()
                .await
                .expect("the slow request is answered, not cut off");
            (r.status().as_u16(), Instant::now())
        }
    });
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let s: serde_json::Value = http
            .get(format!("{base}/admin/drain"))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if s["in_flight"] == 1 {
            break;
        }
        assert!(Instant::now() < until, "the slow request never showed: {s}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // ECS's part once desired drops: SIGTERM the task, then STOPPED.
    w.calls.notify_after("ecs:UpdateService", 0);
    let lowered = w.calls.crash.clone();
    let ecs_stops = async move {
        lowered.notified().await;
        let at = Instant::now();
        api.signal(Signal::SIGTERM).unwrap();
        let mut api = api;
        let status = tokio::task::spawn_blocking(move || api.wait_timeout(Duration::from_secs(30)))
            .await
            .unwrap();
        let arn = arn.clone();
        tokio::task::spawn_blocking(move || {
            test_support::moto::shared().set_task_status(&arn, Some("STOPPED"), Some("STOPPED"))
        })
        .await
        .unwrap()
        .unwrap();
        (at, status)
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    let started = Instant::now();
    let (r, (lowered_at, exit)) =
        tokio::join!(handle(w.alarm(7), &w.aws, &w.settings, deadline), ecs_stops);
    let r = r.unwrap();
    assert_eq!(r.outcome, Outcome::Completed, "{r:#?}");
    let drain = r.drain.as_ref().unwrap();
    assert_eq!(drain.victim_task, victim_arn);
    assert_eq!(drain.in_flight_at_stop, Some(0), "{drain:?}");
    assert!(!drain.deadline_hit, "{drain:?}");

    let (status, slow_done) = slow.await.unwrap();
    assert_eq!(status, 200, "the slow request completed");
    assert!(
        slow_done <= lowered_at,
        "desired was lowered while the slow request was in flight"
    );
    // Adaptive: it did not sit out the 30 s deregistration delay.
    assert!(
        lowered_at - started < Duration::from_secs(20),
        "lowered {:?} after the start",
        lowered_at - started
    );
    assert!(
        exit.is_some_and(|s| s.success()),
        "graceful exit on SIGTERM: {exit:?}"
    );
    assert!(!w.registered().await.contains(&ip));
    assert_eq!(w.service().await.0, 2);
}
