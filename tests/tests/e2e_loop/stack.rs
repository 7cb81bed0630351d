//! One local stack for the whole test binary: moto, PostgreSQL, the task
//! runner with real visits-api processes, HAProxy in front, and the real
//! function binaries under the harness's Lambda Runtime API.
//!
//! It lives on a runtime of its own (background loops and SDK connection
//! pools must outlive each test's body), and tests take turns on it ([`run`]):
//! each starts from [`reset`], a known service state. Nothing is left behind
//! when the binary exits: every process and scratch directory is guarded.

use std::future::Future;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use chrono::Utc;
use e2e::stack::lambda::{Invocation, FUNCTIONS};
use e2e::stack::proxy::{ProxyServer, SlotState};
use e2e::stack::{Lambdas, LiveTask, Proxy, Runner, Stack, CLUSTER, SERVICE};
use serde_json::Value;
use test_support::moto::{self, Moto};

/// Generous: a cold API process migrates its database on a busy 2-core machine.
pub const TASKS_TIMEOUT: Duration = Duration::from_secs(120);

/// Everything a test drives.
pub struct Env {
    pub moto: &'static Moto,
    pub stack: Stack,
    pub runner: Runner,
    pub proxy: Proxy,
    pub lambdas: Lambdas,
    /// scale-down alone with `EARLY_DEREGISTER=true` (the head start).
    pub early: Lambdas,
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("the stack's runtime")
    })
}

fn env() -> &'static Env {
    static ENV: OnceLock<Env> = OnceLock::new();
    ENV.get_or_init(|| {
        runtime().block_on(async {
            let moto = moto::shared();
            let stack = Stack::provision(moto, 1)
                .await
                .expect("provision the stack");
            let runner = stack.start_runner(moto).await.expect("task runner");
            let proxy = Proxy::start(&stack).await.expect("HAProxy");
            let lambdas = Lambdas::start(moto, &stack, &FUNCTIONS, &[])
                .await
                .expect("functions under the runtime emulator");
            let early = Lambdas::start(
                moto,
                &stack,
                &["scale-down"],
                &[("EARLY_DEREGISTER", "true")],
            )
            .await
            .expect("scale-down with EARLY_DEREGISTER under the runtime emulator");
            Env {
                moto,
                stack,
                runner,
                proxy,
                lambdas,
                early,
            }
        })
    })
}

/// Runs one test body on the shared stack, one test at a time.
pub fn run<F, Fut>(f: F)
where
    F: FnOnce(&'static Env) -> Fut,
    Fut: Future<Output = ()>,
{
    static TURN: Mutex<()> = Mutex::new(());
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let env = env();
    runtime().block_on(f(env));
}

impl Env {
    /// A known state: no episode or autoscaler tag, no task protection,
    /// `n` tasks serving, each behind a ready proxy slot.
    pub async fn reset(&self, n: i32) -> Vec<LiveTask> {
        let ecs = &self.stack.world.ecs;
        let arn = self.service_arn().await;
        let keys: Vec<String> = self.tags().await.into_keys().collect();
        if !keys.is_empty() {
            ecs.untag_resource()
                .resource_arn(&arn)
                .set_tag_keys(Some(keys))
                .send()
                .await
                .expect("untag the service");
        }
        let live: Vec<String> = self.runner.tasks().into_iter().map(|t| t.arn).collect();
        for chunk in live.chunks(10) {
            ecs.update_task_protection()
                .cluster(CLUSTER)
                .set_tasks(Some(chunk.to_vec()))
                .protection_enabled(false)
                .send()
                .await
                .expect("release task protection");
        }
        ecs.update_service()
            .cluster(CLUSTER)
            .service(SERVICE)
            .desired_count(n)
            .send()
            .await
            .expect("set desired");
        let tasks = self
            .runner
            .wait_for_tasks(n as usize, TASKS_TIMEOUT)
            .await
            .expect("tasks after reset");
        self.wait_ready(n as usize).await;
        tasks
    }

    /// Waits until exactly `n` proxy slots serve (and none drains).
    pub async fn wait_ready(&self, n: usize) -> Vec<ProxyServer> {
        self.proxy
            .wait_until(&format!("{n} ready"), TASKS_TIMEOUT, |s| {
                s.iter().filter(|s| s.state == SlotState::Ready).count() == n
                    && s.iter().all(|s| s.state != SlotState::Draining)
            })
            .await
            .expect("proxy slots")
    }

    pub async fn service_arn(&self) -> String {
        let out = self
            .stack
            .world
            .ecs
            .describe_services()
            .cluster(CLUSTER)
            .services(SERVICE)
            .send()
            .await
            .expect("describe_services");
        out.services()[0]
            .service_arn()
            .expect("service ARN")
            .to_string()
    }

    /// The service's `autoscaler:*` tags.
    pub async fn tags(&self) -> std::collections::BTreeMap<String, String> {
        let out = self
            .stack
            .world
            .ecs
            .list_tags_for_resource()
            .resource_arn(self.service_arn().await)
            .send()
            .await
            .expect("list_tags_for_resource");
        out.tags()
            .iter()
            .filter_map(|t| Some((t.key()?.to_string(), t.value()?.to_string())))
            .filter(|(k, _)| k.starts_with("autoscaler:"))
            .collect()
    }

    pub async fn invoke(&self, function: &str, payload: &Value) -> Invocation {
        self.invoke_on(&self.lambdas, function, payload).await
    }

    /// [`Env::invoke`] on another set of functions (e.g. [`Env::early`]).
    pub async fn invoke_on(&self, on: &Lambdas, function: &str, payload: &Value) -> Invocation {
        self.runner.note(format!("invoke {function}"));
        let done = on
            .invoke(function, payload)
            .await
            .unwrap_or_else(|e| panic!("{e:#}"));
        self.runner.note(format!(
            "{function} answered in {:?}: {}",
            done.elapsed,
            match &done.result {
                Ok(v) => format!("{} {}", v["outcome"], v["outcome_reason"]),
                Err(e) => e.to_string(),
            }
        ));
        done
    }

    /// Runner timeline, proxy events and function logs, for failure messages.
    pub fn story(&self) -> String {
        let proxy: Vec<String> = self.proxy.events().into_iter().map(|e| e.what).collect();
        format!(
            "runner:\n{}\nproxy:\n{}\nscale-up log:\n{}\nscale-down log:\n{}\nscale-down (early) log:\n{}",
            self.runner.timeline().join("\n"),
            proxy.join("\n"),
            tail(&self.lambdas.log("scale-up")),
            tail(&self.lambdas.log("scale-down")),
            tail(&self.early.log("scale-down")),
        )
    }

    /// Waits until `ok()` or panics with the story.
    pub async fn eventually<Fut: Future<Output = bool>>(
        &self,
        what: &str,
        timeout: Duration,
        mut ok: impl FnMut() -> Fut,
    ) {
        let deadline = Instant::now() + timeout;
        while !ok().await {
            assert!(
                Instant::now() < deadline,
                "not {what} after {timeout:?}\n{}",
                self.story()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// A sample event from events/, entering its state now (the policy ignores
/// stale alarm changes, and name + timestamp is the idempotency key).
pub fn alarm_event(file: &str) -> Value {
    let path = test_support::paths::repo_root().join("events").join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut ev: Value = serde_json::from_str(&text).expect("sample event is JSON");
    let now = Utc::now().format("%Y-%m-%dT%H:%M:%S%.3f%z").to_string();
    ev["alarmData"]["state"]["timestamp"] = Value::String(now.clone());
    ev["time"] = Value::String(now);
    ev
}

/// `GET {url}/health` → (status, body).
pub async fn health(url: &str) -> (u16, Value) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client");
    match client.get(format!("{url}/health")).send().await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            (status, resp.json().await.unwrap_or(Value::Null))
        }
        Err(e) => (0, Value::String(e.to_string())),
    }
}

/// Task ids that answer `/health` through the proxy in `n` requests.
pub async fn ids_behind_proxy(env: &Env, n: usize) -> std::collections::BTreeSet<String> {
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..n {
        let (status, body) = health(&env.proxy.url()).await;
        assert_eq!(status, 200, "through the proxy: {body}\n{}", env.story());
        seen.insert(body["task_id"].as_str().unwrap_or_default().to_string());
    }
    seen
}
