//! Conformance with real AWS events: every payload in `<repo>/../shared/real-events/` (AWS's
//! published examples and captures from public projects; where each comes from is in that
//! folder's PROVENANCE.md) fed to every function: scale-up, scale-down, notify, drain-instance.
//!
//! The files are read in place and never copied into this repository. The expected outcome of
//! each (file, function) is written down in `tests/conformance/real-events.json`, keyed by file
//! name: either handled (the report's outcome and reason; notify's severity, kind and subject)
//! or refused with a `NonRetryable.*` error that says why, with zero AWS calls. A panic is never
//! an expected outcome. Most files name other clusters, services and groups, so each file may
//! also carry `adapt`: text replacements that switch those names to this stack's own; the
//! adapted copy, made here in memory, runs the handling path and not only "not ours".
//!
//! The functions run as libraries with real SDK clients against the emulator, through a
//! forwarder that counts every AWS request. `UPDATE_REAL_EVENTS=1` rewrites the outcomes in
//! the expectations file (keeping `adapt` and `why`); review the diff.
//! `REAL_EVENTS_ABSENT_OK=1` lets a clone without `../shared/real-events/` pass, saying so.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_autoscaling::types::LifecycleHookSpecification;
use scaling::error::{error_type, Classify};
use serde_json::{json, Map, Value};
use test_support::emulated_ecs::EmulatedEcs;

const FUNCTIONS: [&str; 4] = ["scale-up", "scale-down", "notify", "drain-instance"];
const CLUSTER: &str = "visits";
const SERVICE: &str = "visits-api";
const ASG: &str = "visits-capacity";
const HOOK: &str = "drain-before-terminate";
const SOURCE: &str = "the shared real-events collection (AWS documentation examples and \
    payloads captured by aws-lambda-go, aws-lambda-java-libs, aws-lambda-rust-runtime, \
    aws-lambda-dotnet, powertools-lambda-python, aws-sam-cli, localstack and others; see its \
    PROVENANCE.md)";

/// `<repo root>/../shared/real-events`; from a git worktree, the main checkout's root counts
/// as the repo root too (worktrees live elsewhere than the clone that has `shared/` beside it).
fn real_events_dir() -> PathBuf {
    let root = test_support::paths::repo_root();
    let beside = |r: &std::path::Path| r.join("../shared/real-events");
    if beside(&root).is_dir() {
        return beside(&root);
    }
    let common = std::process::Command::new("git")
        .args(["rev-parse", "--path-format=absolute", "--git-common-dir"])
        .current_dir(&root)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    match common.as_deref().and_then(|git| git.parent()) {
        Some(main) if beside(main).is_dir() => beside(main),
        _ => beside(&root),
    }
}

fn expectations_path() -> PathBuf {
    test_support::paths::repo_root().join("tests/conformance/real-events.json")
}

/// The configuration each function runs with: the template's defaults for the stack, in
/// Fargate mode for the scaling functions (the template's default) and with the capacity group
/// for drain-instance and notify, which only exist for it in EC2 mode.
fn env(function: &str) -> BTreeMap<&'static str, String> {
    let mut e = BTreeMap::from([
        ("CLUSTER_NAME", CLUSTER.into()),
        ("SERVICE_NAME", SERVICE.into()),
        ("MIN_TASKS", "2".into()),
        ("MAX_TASKS", "6".into()),
        (
            "TOPIC_ARN",
            "arn:aws:sns:us-east-1:123456789012:visits-ops".into(),
        ),
        (
            "SCALING_ALARM_NAMES",
            "visits-api-cpu-high,visits-api-cpu-low,visits-api-memory-high,\
             visits-api-inflight-high,visits-api-latency-p95-high"
                .into(),
        ),
    ]);
    if matches!(function, "drain-instance" | "notify") {
        e.insert("CAPACITY_ASG_NAME", ASG.into());
    }
    e
}

fn config(function: &str) -> scaling::config::Config {
    let e = env(function);
    scaling::config::Config::from_lookup(|k| e.get(k).cloned()).expect("conformance config")
}

// --- The AWS side: the emulator behind a request counter --------------------------------------

/// Forwards every request to the emulator and counts it.
struct Counter {
    endpoint: String,
    calls: Arc<AtomicUsize>,
}

async fn counter(moto: String) -> Counter {
    let calls = Arc::new(AtomicUsize::new(0));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let http = reqwest::Client::new();
    let app = axum::Router::new().fallback({
        let calls = calls.clone();
        move |req: axum::extract::Request| {
            let (http, moto, calls) = (http.clone(), moto.clone(), calls.clone());
            async move {
                calls.fetch_add(1, Ordering::SeqCst);
                let (parts, body) = req.into_parts();
                let body = axum::body::to_bytes(body, 16 << 20)
                    .await
                    .unwrap_or_default();
                let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
                let mut fwd = http
                    .request(parts.method, format!("{moto}{path}"))
                    .body(body);
                for (k, v) in &parts.headers {
                    if k != "host" && k != "content-length" {
                        fwd = fwd.header(k, v);
                    }
                }
                match fwd.send().await {
                    Ok(r) => {
                        let mut out = axum::http::Response::builder().status(r.status().as_u16());
                        for (k, v) in r.headers() {
                            if k != "content-length" && k != "transfer-encoding" {
                                out = out.header(k, v);
                            }
                        }
                        let bytes = r.bytes().await.unwrap_or_default();
                        out.body(axum::body::Body::from(bytes)).unwrap()
                    }
                    Err(e) => axum::http::Response::builder()
                        .status(502)
                        .body(axum::body::Body::from(e.to_string()))
                        .unwrap(),
                }
            }
        }
    });
    tokio::spawn(async move { axum::serve(listener, app).await });
    Counter { endpoint, calls }
}

/// The stack in a freshly reset emulator: the cluster, the service at its minimum (2), and for
/// drain-instance the capacity group with its terminate hook and one container instance.
async fn fresh_stack(moto: &test_support::moto::Moto, capacity: bool) -> EmulatedEcs {
    moto.reset().expect("reset the emulator");
    let world = EmulatedEcs::builder()
        .on(moto)
        .cluster(CLUSTER)
        .tasks(2)
        .tag("stack", "visits")
        // ECS would finish the service's first deployment; the emulator needs telling.
        .all_running()
        .build()
        .await
        .expect("the emulated service");
    if capacity {
        let hook = LifecycleHookSpecification::builder()
            .lifecycle_hook_name(HOOK)
            .lifecycle_transition("autoscaling:EC2_INSTANCE_TERMINATING")
            .heartbeat_timeout(900)
            .default_result("CONTINUE")
            .build();
        test_support::capacity::group_with_container_instances(
            &aws_sdk_autoscaling::Client::new(&world.sdk),
            &world.ecs,
            CLUSTER,
            ASG,
            0,
            1,
            Some(hook),
        )
        .await;
    }
    world
}

// --- Running one function on one event ----------------------------------------------------------

/// One function's result, as the expectations file words it.
fn refused(e: &impl Classify, msg: String) -> String {
    format!("refused {}: {msg}", error_type(e))
}

fn reported(r: &scaling::report::Report) -> String {
    let outcome = serde_json::to_value(r.outcome).unwrap();
    format!("{}: {}", outcome.as_str().unwrap_or("?"), r.outcome_reason)
}

async fn run(function: &str, event: Value, sdk: &aws_config::SdkConfig) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    match function {
        "scale-up" => {
            let deps = scale_up::Deps::new(config(function), sdk);
            match scale_up::handle(event, &deps).await {
                Ok(r) => reported(&r),
                Err(e) => refused(&e, e.to_string()),
            }
        }
        "scale-down" => {
            use scale_down::{admin::AdminClient, aws_port::AwsPort, Settings};
            use scaling::aws::{ecs::Ecs, elb::Elb, protection::Protection};
            let c = config(function);
            let port = AwsPort::new(
                Ecs::new(sdk),
                Elb::new(sdk),
                Protection::new(aws_sdk_ecs::Client::new(sdk), &c.cluster, 15),
                AdminClient::new(None, None, Duration::from_secs(1)),
                &c.cluster,
                &c.service,
                Some(8080),
            );
            match scale_down::handle(event, &port, &Settings::from_config(&c), deadline).await {
                Ok(r) => reported(&r),
                Err(e) => refused(&e, e.to_string()),
            }
        }
        "drain-instance" => {
            use scaling::aws::{autoscaling::AutoScaling, ecs::Ecs};
            let deps = drain_instance::Deps {
                ecs: Ecs::new(sdk),
                asg: AutoScaling::new(sdk),
            };
            let s = drain_instance::Settings::from_config(&config(function));
            match drain_instance::handle(event, &deps, &s, deadline).await {
                Ok(r) => reported(&r),
                Err(e) => refused(&e, e.to_string()),
            }
        }
        "notify" => {
            let e = env(function);
            let settings = notify::settings::Settings::from_lookup(|k| e.get(k).cloned())
                .expect("notify settings");
            match notify::prepare(event.clone(), &settings) {
                Ok(notify::classify::Verdict::Notify(n)) => {
                    let m = notify::render::render(&n);
                    format!("email {} {}: {}", n.severity, n.kind, m.subject)
                }
                Ok(notify::classify::Verdict::Drop { reason }) => format!("dropped: {reason}"),
                Ok(notify::classify::Verdict::Ignore { reason }) => format!("ignored: {reason}"),
                Err(_) => {
                    // The handler itself, to count its calls: a refusal makes none.
                    let deps = notify::Deps::new(sdk, settings);
                    match notify::handle(event, &deps).await {
                        Err(e) => refused(&e, e.to_string()),
                        Ok(h) => format!("prepare refused but handle answered {h:?}"),
                    }
                }
            }
        }
        other => panic!("unknown function {other}"),
    }
}

/// Runs one case on a fresh stack; a panic is reported, not propagated.
async fn case(
    function: &'static str,
    event: Value,
    moto: &'static test_support::moto::Moto,
    fwd: &Counter,
) -> (String, usize, i32) {
    let sdk = test_support::moto::sdk_config_for(&fwd.endpoint).await;
    let world = fresh_stack(moto, function == "drain-instance").await;
    fwd.calls.store(0, Ordering::SeqCst);
    let outcome = match tokio::spawn(async move { run(function, event, &sdk).await }).await {
        Ok(o) => o,
        Err(e) if e.is_panic() => format!("PANIC: {e}"),
        Err(e) => format!("task failed: {e}"),
    };
    let calls = fwd.calls.load(Ordering::SeqCst);
    (outcome, calls, world.desired().await.unwrap())
}

// --- Expectations ----------------------------------------------------------------------------------

/// Whether `got` meets `want`: the same class (the text before the first ": ") and `got`'s
/// text containing `want`'s, so that wording around the point may change.
fn meets(got: &str, want: &str) -> bool {
    let split = |s: &str| -> (String, String) {
        match s.split_once(": ") {
            Some((c, r)) => (c.to_string(), r.to_string()),
            None => (s.to_string(), String::new()),
        }
    };
    let (gc, gr) = split(got);
    let (wc, wr) = split(want);
    gc == wc && gr.contains(&wr)
}

/// Checks the rules every outcome obeys, whatever the file says ("bad input changes
/// nothing" in docs/invariants.md: a refusal is non-retryable, with no AWS call).
fn invariants(function: &str, outcome: &str, calls: usize, desired: i32) -> Vec<String> {
    let mut bad = Vec::new();
    if outcome.starts_with("PANIC") {
        bad.push("panicked".into());
    }
    if outcome.starts_with("refused") {
        if !outcome.starts_with("refused NonRetryable.") {
            bad.push("refused with a retryable error".into());
        }
        if calls != 0 {
            bad.push(format!("refused after {calls} AWS call(s)"));
        }
        if desired != 2 {
            bad.push(format!("refused but desired changed to {desired}"));
        }
    }
    if function == "notify" && !outcome.starts_with("refused") && calls != 0 {
        bad.push(format!("classifying made {calls} AWS call(s)"));
    }
    bad
}

fn adapt(text: &str, names: &Map<String, Value>) -> String {
    let mut out = text.to_string();
    for (from, to) in names {
        out = out.replace(
            from.as_str(),
            to.as_str().expect("adapt values are strings"),
        );
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_real_event_to_every_function() {
    let dir = real_events_dir();
    if !dir.is_dir() {
        let msg = format!(
            "{} is absent: this test feeds every function {SOURCE}. Put the folder beside the \
             repository (CI has it) or set REAL_EVENTS_ABSENT_OK=1 to skip knowingly.",
            dir.display()
        );
        if std::env::var("REAL_EVENTS_ABSENT_OK").is_ok_and(|v| v == "1") {
            println!("SKIPPED: {msg}");
            return;
        }
        panic!("{msg}");
    }
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".json"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 50,
        "only {} files in {}",
        files.len(),
        dir.display()
    );

    let path = expectations_path();
    let mut expected: Map<String, Value> = serde_json::from_str(
        &std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let update = std::env::var("UPDATE_REAL_EVENTS").is_ok_and(|v| v == "1");

    let moto: &'static test_support::moto::Moto =
        tokio::task::spawn_blocking(test_support::moto::shared)
            .await
            .unwrap();
    let fwd = counter(moto.endpoint()).await;

    let mut problems = Vec::new();
    let mut ran = 0;
    for file in &files {
        let text = std::fs::read_to_string(dir.join(file)).unwrap();
        let entry = expected
            .entry(file.clone())
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .unwrap();
        let mut variants = vec![("verbatim", text.clone())];
        if let Some(names) = entry.get("adapt").and_then(Value::as_object) {
            variants.push(("adapted", adapt(&text, names)));
        }
        for (variant, body) in variants {
            let event: Value = serde_json::from_str(&body)
                .unwrap_or_else(|e| panic!("{file} ({variant}) is not JSON: {e}"));
            for function in FUNCTIONS {
                let (got, calls, desired) = case(function, event.clone(), moto, &fwd).await;
                ran += 1;
                for b in invariants(function, &got, calls, desired) {
                    problems.push(format!("{file} -> {function} ({variant}): {b}: {got}"));
                }
                let slot = entry
                    .entry(variant.to_string())
                    .or_insert_with(|| json!({}))
                    .as_object_mut()
                    .unwrap();
                let want = slot
                    .get(function)
                    .and_then(Value::as_str)
                    .map(str::to_string);
                if update {
                    slot.insert(function.to_string(), Value::String(got));
                    continue;
                }
                match want {
                    Some(want) if meets(&got, &want) => {}
                    Some(want) => problems.push(format!(
                        "{file} -> {function} ({variant}):\n    expected {want}\n    got      {got}"
                    )),
                    None => problems.push(format!(
                        "{file} -> {function} ({variant}): no expected outcome written down; got {got}"
                    )),
                }
            }
        }
    }
    let stale: Vec<_> = expected
        .keys()
        .filter(|k| !files.contains(k))
        .cloned()
        .collect();
    if update {
        let text = serde_json::to_string_pretty(&Value::Object(expected)).unwrap();
        std::fs::write(&path, text + "\n").unwrap();
    }
    assert!(
        stale.is_empty(),
        "expectations for files that are not there: {stale:?}"
    );
    println!("{} files, {ran} (file, function) runs", files.len());
    assert!(
        problems.is_empty(),
        "{} problem(s):\n{}",
        problems.len(),
        problems.join("\n")
    );
}
