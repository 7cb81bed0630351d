//! The real visits-api binary as the victim task: a fresh database, bound on
//! the loopback twin of the task's emulated IP, with a slow request
//! (`POST /api/stress`) in flight when the episode starts; ECS's part once
//! desired drops is played here as ECS documents it: deregister the target,
//! let the load balancer drain it (until the task has no request in flight, or
//! the deregistration delay), SIGTERM, then STOPPED.
//!
//! Builds the debug API binary on first use; needs PostgreSQL (`make setup`).
//! `DEBUG_CALLS=1` prints every call of the episode with when it was answered.

use super::{twin, World, ADMIN_TOKEN, SERVICE};
use nix::sys::signal::Signal;
use scale_down::handle;
use scaling::report::Report;
use std::process::{Command, Stdio};
use std::time::Duration;
use test_support::guard::{GuardOpts, Guarded};
use tokio::time::Instant;

const STRESS_TOKEN: &str = "test-stress-token";

/// The workspace's debug visits-api binary, built on first use.
pub fn api_binary() -> std::path::PathBuf {
    test_support::paths::workspace_binary("visits-api", "visits-api")
        .unwrap_or_else(|e| panic!("the visits-api binary: {e:#}"))
}

/// Starts visits-api on `addr:port` and waits until `/health` answers 200.
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

/// What one episode with a real victim did, and when.
pub struct SlowEpisode {
    pub world: World,
    pub report: Report,
    pub victim_arn: String,
    pub victim_ip: String,
    /// The slow request's status, and when its answer arrived.
    pub slow_status: u16,
    pub slow_done: Instant,
    pub started: Instant,
    pub finished: Instant,
    /// When the victim answered `POST /admin/drain` and when UpdateService was answered.
    pub drain_posted: Instant,
    pub lowered: Instant,
    /// SIGTERM sent, and the task's exit (status, when).
    pub sigterm: Instant,
    pub exit: Option<(std::process::ExitStatus, Instant)>,
}

/// Two busy fake tasks plus a real API task with a `slow_s` request in flight
/// (so it has the fewest), a target group with a 30 s deregistration delay,
/// and one scale-down episode from the low alarm.
pub async fn slow_request_episode(name: &str, slow_s: u64) -> SlowEpisode {
    let db = test_support::pg::shared()
        .fresh_database("scale_down")
        .expect("PostgreSQL (make setup)");
    let w = World::new(name, &[5, 5]).await;
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
    let addr = twin(&ip);
    // The API listens on another port of the twin; a logging proxy on the
    // task's own port records its calls (when drain was posted) like the fakes'.
    let api_port = test_support::free_port().unwrap();
    let api = start_api(&addr, api_port, &db).await;
    let listen = format!("{addr}:{}", w.port);
    let upstream = format!("http://{addr}:{api_port}");
    super::proxy::start_on(&listen, upstream, w.calls.clone(), super::proxy::task_call).await;
    w.register(&ip).await;
    w.ecs
        .update_service()
        .cluster(&w.cluster)
        .service(SERVICE)
        .desired_count(3)
        .send()
        .await
        .unwrap();

    let base = format!("http://{addr}:{}", w.port);
    let http = reqwest::Client::new();
    let slow = tokio::spawn({
        let (http, base) = (http.clone(), base.clone());
        async move {
            let r = http
                .post(format!("{base}/api/stress"))
                .bearer_auth(STRESS_TOKEN)
                .json(&serde_json::json!({"duration_s": slow_s}))
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

    // ECS's part once desired drops: desired status STOPPED, deregister, the
    // ALB's drain (ended early once nothing is in flight), SIGTERM, STOPPED.
    w.calls.notify_after("ecs:UpdateService", 0);
    let lowered = w.calls.crash.clone();
    let task = arn.clone();
    let (elb, tg, target_ip, target_port) = (w.elb.clone(), w.tg.clone(), ip.clone(), w.port);
    let drain_url = format!("http://{addr}:{api_port}/admin/drain");
    let ecs_stops = async move {
        lowered.notified().await;
        let t = task.clone();
        tokio::task::spawn_blocking(move || {
            test_support::moto::shared().set_task_status(&t, Some("RUNNING"), Some("STOPPED"))
        })
        .await
        .unwrap()
        .unwrap();
        elb.deregister_targets()
            .target_group_arn(&tg)
            .targets(
                aws_sdk_elasticloadbalancingv2::types::TargetDescription::builder()
                    .id(&target_ip)
                    .port(i32::from(target_port))
                    .build(),
            )
            .send()
            .await
            .unwrap();
        let http = reqwest::Client::new();
        let delay_ends = Instant::now() + Duration::from_secs(30);
        while Instant::now() < delay_ends {
            let idle = http
                .get(&drain_url)
                .bearer_auth(ADMIN_TOKEN)
                .send()
                .await
                .ok()
                .map(|r| r.json::<serde_json::Value>());
            let idle = match idle {
                Some(body) => body.await.is_ok_and(|b| b["in_flight"] == 0),
                None => false,
            };
            if idle {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let sigterm = Instant::now();
        api.signal(Signal::SIGTERM).unwrap();
        let mut api = api;
        let exit = tokio::task::spawn_blocking(move || {
            api.wait_timeout(Duration::from_secs(30))
                .map(|s| (s, Instant::now()))
        })
        .await
        .unwrap();
        tokio::task::spawn_blocking(move || {
            test_support::moto::shared().set_task_status(&task, Some("STOPPED"), Some("STOPPED"))
        })
        .await
        .unwrap()
        .unwrap();
        (sigterm, exit)
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    let started = Instant::now();
    let episode = async {
        let r = handle(w.alarm(7), &w.aws, &w.settings, deadline).await;
        (r, Instant::now())
    };
    let ((report, finished), (sigterm, exit)) = tokio::join!(episode, ecs_stops);
    let (slow_status, slow_done) = slow.await.unwrap();
    if std::env::var_os("DEBUG_CALLS").is_some() {
        let log = w.calls.log();
        let mut seen = std::collections::BTreeMap::<String, usize>::new();
        for op in log {
            let n = seen.entry(op.clone()).or_default();
            let at = w
                .calls
                .answered_at(&op, *n)
                .map(|t| t.saturating_duration_since(started));
            *n += 1;
            eprintln!("{op} {at:?}");
        }
    }
    let at = |op| {
        w.calls
            .answered_at(op, 0)
            .unwrap_or_else(|| panic!("no {op}"))
    };
    SlowEpisode {
        drain_posted: at("task:POST /admin/drain"),
        lowered: at("ecs:UpdateService"),
        report: report.unwrap(),
        victim_arn: arn,
        victim_ip: ip,
        slow_status,
        slow_done,
        started,
        finished,
        sigterm,
        exit,
        world: w,
    }
}
