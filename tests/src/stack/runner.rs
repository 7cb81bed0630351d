//! The task runner: plays the ECS agent and scheduler for service
//! `visits-api`. It polls the service's desired count; for each missing task
//! it calls `run_task` (group `service:visits-api`, like the scheduler), starts
//! a real visits-api process bound to the loopback twin of the task's IP,
//! waits for `/health`, registers `IP:8080` in the target group and marks the
//! task RUNNING. When desired < live it deregisters an unprotected task, stops
//! its process with SIGTERM and marks the task STOPPED.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use aws_sdk_elasticloadbalancingv2::types::TargetDescription;
use nix::sys::signal::Signal;
use test_support::guard::{GuardOpts, Guarded};
use test_support::moto::Moto;
use tokio::sync::Notify;

use super::metadata::{task_id, Metadata};
use super::{loopback_twin, Stack, ADMIN_TOKEN, CLUSTER, SERVICE, TASK_PORT};

/// How long a new API process may take to answer `/health` (migrations on a
/// busy 2-core machine included).
const START_TIMEOUT: Duration = Duration::from_secs(90);
/// `nice` increment of the API processes: below the emulator, the proxy and
/// the function binaries, which run at the harness's own priority.
const TASK_NICENESS: &str = "10";
/// Poll period of the reconcile loop.
const TICK: Duration = Duration::from_millis(300);
/// The tasks' EMF interval (`METRICS_INTERVAL_S`): the alarm driver's
/// shortest period when `make demo` runs the template's alarms time-scaled.
pub const METRICS_INTERVAL_S: u32 = 1;
/// The tasks' `STRESS_TOKEN`: lets the demo burn CPU (`POST /api/stress`).
pub const STRESS_TOKEN: &str = "local-stack-stress-token";
/// CPU burns one task runs at once (`STRESS_MAX_CONCURRENT`): enough for
/// the demo to hold more requests in flight than the template's in-flight
/// alarm threshold (a burn is a request in flight for its whole duration).
pub const STRESS_MAX_CONCURRENT: u32 = 64;

/// One task the runner started and that is serving.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveTask {
    /// The ECS task ARN.
    pub arn: String,
    /// Its id (last ARN segment), what `/health` reports as `task_id`.
    pub id: String,
    /// The emulated private IP (10.x.y.z).
    pub ip: String,
    /// Where the process listens: `http://127.x.y.z:8080`.
    pub url: String,
}

struct Proc {
    task: LiveTask,
    process: Guarded,
}

struct Shared {
    live: Mutex<Vec<Proc>>,
    timeline: Mutex<Vec<String>>,
    started: Instant,
    stop: Notify,
}

impl Shared {
    fn note(&self, what: String) {
        let line = format!("{:>7.1}s  {what}", self.started.elapsed().as_secs_f64());
        tracing::info!("{line}");
        self.timeline.lock().expect("timeline").push(line);
    }
}

/// The running task runner; dropping it stops every API process.
pub struct Runner {
    shared: Arc<Shared>,
    loop_task: Option<tokio::task::JoinHandle<()>>,
    _metadata: Arc<Metadata>,
    log_dir: PathBuf,
    /// Removes `log_dir` even when the runner is never dropped (a static stack).
    _log_guard: test_support::guard::DirGuard,
}

struct Ctx {
    stack: Stack,
    moto: &'static Moto,
    metadata: Arc<Metadata>,
    shared: Arc<Shared>,
    binary: PathBuf,
    database_url: String,
    log_dir: PathBuf,
}

impl Runner {
    /// Creates a fresh database (test-support's PostgreSQL), the fake
    /// metadata endpoint, and starts reconciling in the background.
    pub async fn start(stack: Stack, moto: &'static Moto) -> anyhow::Result<Self> {
        let binary = api_binary()?;
        let database_url =
            tokio::task::spawn_blocking(|| test_support::pg::shared().fresh_database("stack"))
                .await??;
        let metadata = Arc::new(Metadata::start().await?);
        let log_dir = test_support::scratch_dir("visits-stack")?;
        let shared = Arc::new(Shared {
            live: Mutex::new(Vec::new()),
            timeline: Mutex::new(Vec::new()),
            started: Instant::now(),
            stop: Notify::new(),
        });
        let ctx = Ctx {
            stack,
            moto,
            metadata: metadata.clone(),
            shared: shared.clone(),
            binary,
            database_url,
            log_dir: log_dir.clone(),
        };
        let loop_task = tokio::spawn(async move {
            loop {
                if let Err(e) = ctx.reconcile().await {
                    ctx.shared.note(format!("runner error: {e:#}"));
                }
                tokio::select! {
                    _ = ctx.shared.stop.notified() => break,
                    _ = tokio::time::sleep(TICK) => {}
                }
            }
        });
        Ok(Self {
            shared,
            loop_task: Some(loop_task),
            _metadata: metadata,
            _log_guard: test_support::guard::DirGuard::new(&log_dir)?,
            log_dir,
        })
    }

    /// The tasks serving now.
    pub fn tasks(&self) -> Vec<LiveTask> {
        let live = self.shared.live.lock().expect("live tasks");
        live.iter().map(|p| p.task.clone()).collect()
    }

    /// Waits until exactly `n` tasks serve; errors with the timeline after `timeout`.
    pub async fn wait_for_tasks(
        &self,
        n: usize,
        timeout: Duration,
    ) -> anyhow::Result<Vec<LiveTask>> {
        let deadline = Instant::now() + timeout;
        loop {
            let tasks = self.tasks();
            if tasks.len() == n {
                return Ok(tasks);
            }
            if Instant::now() > deadline {
                bail!(
                    "{} tasks serving after {timeout:?}, expected {n}; timeline:\n{}\nAPI logs in {}",
                    tasks.len(),
                    self.timeline().join("\n"),
                    self.log_dir.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// What happened so far, one line per event, seconds since start.
    pub fn timeline(&self) -> Vec<String> {
        self.shared.timeline.lock().expect("timeline").clone()
    }

    /// The directory of the tasks' output, one `<task id>.log` per task
    /// (stdout and stderr): the alarm driver reads their EMF lines there.
    pub fn log_dir(&self) -> &std::path::Path {
        &self.log_dir
    }

    /// Records an outside event (e.g. "alarm fired") in the timeline.
    pub fn note(&self, what: impl Into<String>) {
        self.shared.note(what.into());
    }

    /// Stops reconciling, then stops every API process (SIGTERM, then SIGKILL
    /// after the guard's grace).
    pub async fn shutdown(mut self) {
        self.stop_loop().await;
        let procs: Vec<Proc> = std::mem::take(&mut *self.shared.live.lock().expect("live tasks"));
        let _ = tokio::task::spawn_blocking(move || drop(procs)).await;
    }

    async fn stop_loop(&mut self) {
        self.shared.stop.notify_one();
        if let Some(handle) = self.loop_task.take() {
            let _ = handle.await;
        }
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        if let Some(handle) = self.loop_task.take() {
            handle.abort();
        }
        // Guarded's drop stops each process; then the logs can go.
        self.shared.live.lock().map(|mut l| l.clear()).ok();
        let _ = std::fs::remove_dir_all(&self.log_dir);
    }
}

impl Ctx {
    async fn reconcile(&self) -> anyhow::Result<()> {
        let desired = usize::try_from(self.stack.desired().await?).unwrap_or(0);
        let live = self.shared.live.lock().expect("live tasks").len();
        self.publish_counts(desired, live)?;
        if live < desired {
            self.start_task(desired).await
        } else if live > desired {
            self.stop_task().await
        } else {
            Ok(())
        }
    }

    /// The scheduler's counts, as DescribeServices shows them on ECS (the
    /// PRIMARY deployment's rollout completes once running reaches desired).
    fn publish_counts(&self, desired: usize, live: usize) -> anyhow::Result<()> {
        self.moto
            .set_service_counts(CLUSTER, SERVICE, live, desired.saturating_sub(live))
    }

    async fn start_task(&self, desired: usize) -> anyhow::Result<()> {
        let out = self
            .stack
            .ecs
            .run_task()
            .cluster(CLUSTER)
            .task_definition(&self.stack.task_definition)
            .count(1)
            .started_by(format!("ecs-svc/{SERVICE}"))
            .group(format!("service:{SERVICE}"))
            .launch_type(aws_sdk_ecs::types::LaunchType::Fargate)
            .network_configuration(self.stack.network()?)
            .send()
            .await
            .context("run_task")?;
        let task = out.tasks().first().context("run_task started no task")?;
        let arn = task.task_arn().context("task without ARN")?.to_string();
        let ip = task
            .attachments()
            .iter()
            .flat_map(|a| a.details())
            .find(|d| d.name() == Some("privateIPv4Address"))
            .and_then(|d| d.value())
            .context("awsvpc task without privateIPv4Address")?
            .to_string();
        let twin = loopback_twin(&ip).with_context(|| format!("task IP {ip} is not 10.x"))?;
        let id = task_id(&arn);
        self.shared.note(format!(
            "run_task {id} at {ip} (serving on {twin}:{TASK_PORT})"
        ));
        let meta_uri = self
            .metadata
            .add_task(&arn, CLUSTER, task.availability_zone());
        let log = std::fs::File::create(self.log_dir.join(format!("{id}.log")))?;
        // On AWS the tasks, CloudWatch and the Lambdas never share a CPU;
        // here they share two cores, and a task's CPU burn must not starve
        // the emulator and the functions whose latency the demo measures.
        let mut cmd = Command::new("nice");
        cmd.args(["-n", TASK_NICENESS])
            .arg(&self.binary)
            .env("BIND_ADDR", &twin)
            .env("PORT", TASK_PORT.to_string())
            .env("DATABASE_URL", &self.database_url)
            .env("ADMIN_TOKEN", ADMIN_TOKEN)
            .env("CLUSTER_NAME", CLUSTER)
            .env("SERVICE_NAME", SERVICE)
            .env("ECS_CONTAINER_METADATA_URI_V4", meta_uri)
            .env("SHUTDOWN_GRACE_S", "5")
            .env("METRICS_INTERVAL_S", METRICS_INTERVAL_S.to_string())
            .env("STRESS_TOKEN", STRESS_TOKEN)
            .env("STRESS_MAX_CONCURRENT", STRESS_MAX_CONCURRENT.to_string());
        let opts = GuardOpts {
            grace_s: 10,
            ..GuardOpts::default()
        };
        let mut process = Guarded::spawn(
            &format!("visits-api {id}"),
            &cmd,
            opts,
            Stdio::from(log.try_clone()?),
            Stdio::from(log),
        )?;
        let url = format!("http://{twin}:{TASK_PORT}");
        if let Err(e) = wait_healthy(&url, &id, &mut process).await {
            self.moto
                .set_task_status(&arn, Some("STOPPED"), Some("STOPPED"))?;
            let log =
                std::fs::read_to_string(self.log_dir.join(format!("{id}.log"))).unwrap_or_default();
            let _ = tokio::task::spawn_blocking(move || drop(process)).await;
            bail!("task {id} did not become healthy: {e:#}\n{log}");
        }
        self.stack
            .elb
            .register_targets()
            .target_group_arn(&self.stack.target_group)
            .targets(target(&ip))
            .send()
            .await
            .context("register_targets")?;
        self.moto
            .set_task_status(&arn, Some("RUNNING"), Some("RUNNING"))?;
        self.shared.note(format!(
            "task {id} healthy, registered {ip}:{TASK_PORT}, RUNNING"
        ));
        let task = LiveTask { arn, id, ip, url };
        // Counted before anyone can see the task in `tasks()`.
        let live = self.shared.live.lock().expect("live tasks").len() + 1;
        self.publish_counts(desired, live)?;
        self.shared
            .live
            .lock()
            .expect("live tasks")
            .push(Proc { task, process });
        Ok(())
    }

    async fn stop_task(&self) -> anyhow::Result<()> {
        let arns: Vec<String> = {
            let live = self.shared.live.lock().expect("live tasks");
            live.iter().map(|p| p.task.arn.clone()).collect()
        };
        let prot = self
            .stack
            .ecs
            .get_task_protection()
            .cluster(CLUSTER)
            .set_tasks(Some(arns.clone()))
            .send()
            .await
            .context("get_task_protection")?;
        let protected: Vec<&str> = prot
            .protected_tasks()
            .iter()
            .filter(|t| t.protection_enabled())
            .filter_map(|t| t.task_arn())
            .collect();
        // Newest first, like a scheduler that keeps the longest-lived tasks.
        let Some(victim) = arns.iter().rev().find(|a| !protected.contains(&a.as_str())) else {
            return Ok(()); // all protected: ECS waits too
        };
        let proc = {
            let mut live = self.shared.live.lock().expect("live tasks");
            let i = live
                .iter()
                .position(|p| &p.task.arn == victim)
                .context("victim vanished")?;
            live.remove(i)
        };
        let Proc { task, mut process } = proc;
        self.shared
            .note(format!("stopping task {} (SIGTERM)", task.id));
        // ECS deregisters a stopping task's target; scale-down usually did
        // already, and moto then answers InvalidTarget: the task must still stop.
        let dereg = self
            .stack
            .elb
            .deregister_targets()
            .target_group_arn(&self.stack.target_group)
            .targets(target(&task.ip))
            .send()
            .await;
        if let Err(e) = dereg {
            let e = aws_sdk_elasticloadbalancingv2::error::DisplayErrorContext(e).to_string();
            if !e.contains("InvalidTarget") {
                self.shared
                    .note(format!("deregister_targets {}: {e}", task.id));
            }
        }
        self.moto
            .set_task_status(&task.arn, Some("DEACTIVATING"), Some("STOPPED"))?;
        let _ = process.signal(Signal::SIGTERM);
        let status =
            tokio::task::spawn_blocking(move || process.wait_timeout(Duration::from_secs(40)))
                .await?;
        self.moto
            .set_task_status(&task.arn, Some("STOPPED"), Some("STOPPED"))?;
        self.shared
            .note(format!("task {} STOPPED (exit {status:?})", task.id));
        Ok(())
    }
}

fn target(ip: &str) -> TargetDescription {
    TargetDescription::builder()
        .id(ip)
        .port(i32::from(TASK_PORT))
        .build()
}

/// Polls `/health` until it answers 200 with this task's id.
async fn wait_healthy(url: &str, id: &str, process: &mut Guarded) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?;
    let deadline = Instant::now() + START_TIMEOUT;
    let mut last = String::from("no answer yet");
    while Instant::now() < deadline {
        if let Some(status) = process.try_wait() {
            bail!("process exited ({status})");
        }
        match client.get(format!("{url}/health")).send().await {
            Ok(resp) if resp.status().is_success() => {
                let body: serde_json::Value = resp.json().await?;
                if body["task_id"] == id {
                    return Ok(());
                }
                last = format!("health says {body}");
            }
            Ok(resp) => last = format!("health answered {}", resp.status()),
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bail!("no healthy answer within {START_TIMEOUT:?}: {last}")
}

/// The workspace's debug visits-api binary, built on first use.
pub fn api_binary() -> anyhow::Result<PathBuf> {
    super::workspace_binary("visits-api")
}
