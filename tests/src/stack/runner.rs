//! The task runner: plays the ECS agent and the ECS service scheduler for
//! service `visits-api`, as AWS documents them (each rule cites its page).
//!
//! - **Start**: for each missing task it calls `run_task` (group
//!   `service:visits-api`, like the scheduler), starts a real visits-api
//!   process bound to the loopback twin of the task's IP, and once it answers
//!   `/health` (RUNNING and healthy) registers `IP:8080` in the target group.
//!   "Amazon ECS registers and deregisters tasks of a service with its target
//!   groups" (Amazon ECS developer guide, "Use load balancing to distribute
//!   Amazon ECS service traffic",
//!   <https://docs.aws.amazon.com/AmazonECS/latest/developerguide/service-load-balancing.html>).
//! - **Scale-in**: when desired drops below the tasks it keeps, it picks a
//!   task that is not protected ("Protect your Amazon ECS tasks from being
//!   terminated by scale-in events",
//!   <https://docs.aws.amazon.com/AmazonECS/latest/developerguide/task-scale-in-protection.html>),
//!   from the Availability Zone with the most tasks, newest first ("Amazon ECS
//!   services" -> service scheduler: it "attempts to maintain balance across the
//!   Availability Zones" when it stops tasks,
//!   <https://docs.aws.amazon.com/AmazonECS/latest/developerguide/ecs_services.html>),
//!   and stops it ECS's way: desired status STOPPED, deregister its target,
//!   wait until the load balancer has finished draining it (the target leaves
//!   `draining`: the proxy reports no request and no connection left, or the
//!   deregistration delay passed), SIGTERM, wait up to the task definition's
//!   `stopTimeout` (30 s), SIGKILL ("Load balancer connection draining" and
//!   "Task lifecycle",
//!   <https://docs.aws.amazon.com/AmazonECS/latest/developerguide/load-balancer-connection-draining.html>,
//!   <https://docs.aws.amazon.com/AmazonECS/latest/developerguide/task-lifecycle-explanation.html>).
//! - **Health checks**: it checks every registered target like the target
//!   group (`GET /health`, 200, 5 s timeout, [`UNHEALTHY_THRESHOLD`] failures
//!   in a row) and replaces a task whose target fails them, logging
//!   [`REPLACED_AFTER_HEALTH_CHECKS`] ("Health checks for Amazon ECS
//!   services": a task that fails its load balancer health check is stopped
//!   and replaced,
//!   <https://docs.aws.amazon.com/AmazonECS/latest/developerguide/healthcheck.html>).
//! - **Re-registration** (a switch, [`Runner::set_reregister`]): a running
//!   task's target that someone else deregistered is registered again on the
//!   next tick. AWS does not document it; users report that "ECS will
//!   immediately register it again" (aws/containers-roadmap#251), so the
//!   functions are tested both ways.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use aws_sdk_elasticloadbalancingv2::types::TargetDescription;
use nix::sys::signal::Signal;
use test_support::guard::{GuardOpts, Guarded};
use test_support::moto::Moto;
use tokio::sync::Notify;

use super::metadata::{task_id, Metadata};
use super::{
    loopback_twin, Stack, ADMIN_TOKEN, CLUSTER, DEREGISTRATION_DELAY_S, SERVICE, TASK_PORT,
};

/// How long a new API process may take to answer `/health` (migrations on a
/// busy 2-core machine included).
const START_TIMEOUT: Duration = Duration::from_secs(90);
/// `nice` increment of the API processes: below the emulator, the proxy and
/// the function binaries, which run at the harness's own priority.
const TASK_NICENESS: &str = "10";
/// Poll period of the reconcile loop.
const TICK: Duration = Duration::from_millis(300);
/// The task definition's `stopTimeout` (infra/service.yaml): SIGKILL after this.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// Health checks like the target group's (infra/service.yaml: `/health`, 200,
/// 5 s timeout, 2 failures), every second here instead of every 10 s.
const HEALTH_INTERVAL: Duration = Duration::from_secs(1);
const HEALTH_TIMEOUT: Duration = Duration::from_secs(5);
/// Failed health checks in a row after which ECS replaces the task.
pub const UNHEALTHY_THRESHOLD: u32 = 2;
/// What the timeline says when a task is replaced after failed health checks
/// (tests assert that no scale-in ever causes one).
pub const REPLACED_AFTER_HEALTH_CHECKS: &str = "replaced after failed health checks";
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
    /// Its Availability Zone, as `run_task` reported it.
    pub az: Option<String>,
}

struct Proc {
    task: LiveTask,
    process: Guarded,
    /// Failed health checks in a row.
    fails: u32,
}

struct Shared {
    /// The tasks ECS keeps (desired status RUNNING).
    live: Mutex<Vec<Proc>>,
    /// Tasks on their way out (desired status STOPPED), until STOPPED.
    stopping: Mutex<Vec<LiveTask>>,
    timeline: Mutex<Vec<String>>,
    started: Instant,
    stop: Notify,
    /// Register again a kept task's target that someone else deregistered.
    reregister: AtomicBool,
}

impl Shared {
    fn note(&self, what: String) {
        let line = format!("{:>7.1}s  {what}", self.started.elapsed().as_secs_f64());
        tracing::info!("{line}");
        self.timeline.lock().expect("timeline").push(line);
    }
}

/// How the runner is started.
#[derive(Debug, Clone, Default)]
pub struct RunnerOptions {
    /// The tasks' database (None: a fresh database on the shared test cluster).
    pub database_url: Option<String>,
    /// Start with re-registration on (see [`Runner::set_reregister`]).
    pub reregister: bool,
}

/// The running task runner; dropping it stops every API process.
pub struct Runner {
    shared: Arc<Shared>,
    loops: Vec<tokio::task::JoinHandle<()>>,
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
    http: reqwest::Client,
}

impl Runner {
    /// Creates a fresh database (test-support's PostgreSQL), the fake
    /// metadata endpoint, and starts reconciling in the background.
    pub async fn start(stack: Stack, moto: &'static Moto) -> anyhow::Result<Self> {
        Self::start_with(stack, moto, RunnerOptions::default()).await
    }

    /// [`Runner::start`] with options.
    pub async fn start_with(
        stack: Stack,
        moto: &'static Moto,
        opts: RunnerOptions,
    ) -> anyhow::Result<Self> {
        let binary = api_binary()?;
        let database_url = match opts.database_url {
            Some(url) => url,
            None => {
                tokio::task::spawn_blocking(|| test_support::pg::shared().fresh_database("stack"))
                    .await??
            }
        };
        let metadata = Arc::new(Metadata::start().await?);
        let log_dir = test_support::scratch_dir("visits-stack")?;
        let shared = Arc::new(Shared {
            live: Mutex::new(Vec::new()),
            stopping: Mutex::new(Vec::new()),
            timeline: Mutex::new(Vec::new()),
            started: Instant::now(),
            stop: Notify::new(),
            reregister: AtomicBool::new(opts.reregister),
        });
        let ctx = Arc::new(Ctx {
            stack,
            moto,
            metadata: metadata.clone(),
            shared: shared.clone(),
            binary,
            database_url,
            log_dir: log_dir.clone(),
            http: reqwest::Client::builder()
                .timeout(HEALTH_TIMEOUT)
                .pool_max_idle_per_host(0)
                .build()?,
        });
        let reconcile = tokio::spawn({
            let ctx = ctx.clone();
            async move {
                loop {
                    if let Err(e) = ctx.reconcile().await {
                        ctx.shared.note(format!("runner error: {e:#}"));
                    }
                    tokio::select! {
                        _ = ctx.shared.stop.notified() => break,
                        _ = tokio::time::sleep(TICK) => {}
                    }
                }
            }
        });
        let health = tokio::spawn({
            let ctx = ctx.clone();
            async move {
                loop {
                    if let Err(e) = ctx.health_checks().await {
                        ctx.shared.note(format!("health checker error: {e:#}"));
                    }
                    tokio::time::sleep(HEALTH_INTERVAL).await;
                }
            }
        });
        Ok(Self {
            shared,
            loops: vec![reconcile, health],
            _metadata: metadata,
            _log_guard: test_support::guard::DirGuard::new(&log_dir)?,
            log_dir,
        })
    }

    /// Turns ECS's re-registration of deregistered targets on or off.
    pub fn set_reregister(&self, on: bool) {
        if self.shared.reregister.swap(on, Ordering::SeqCst) != on {
            self.note(format!(
                "ECS re-registers targets deregistered by others: {}",
                if on { "on" } else { "off" }
            ));
        }
    }

    /// The tasks ECS keeps now (desired status RUNNING, serving).
    pub fn tasks(&self) -> Vec<LiveTask> {
        let live = self.shared.live.lock().expect("live tasks");
        live.iter().map(|p| p.task.clone()).collect()
    }

    /// Tasks being stopped (deregistered, draining or exiting), not yet STOPPED.
    pub fn stopping(&self) -> Vec<LiveTask> {
        self.shared.stopping.lock().expect("stopping").clone()
    }

    /// Waits until exactly `n` tasks serve and none is still stopping; errors
    /// with the timeline after `timeout`.
    pub async fn wait_for_tasks(
        &self,
        n: usize,
        timeout: Duration,
    ) -> anyhow::Result<Vec<LiveTask>> {
        let deadline = Instant::now() + timeout;
        loop {
            let tasks = self.tasks();
            if tasks.len() == n && self.stopping().is_empty() {
                return Ok(tasks);
            }
            if Instant::now() > deadline {
                bail!(
                    "{} tasks serving ({} stopping) after {timeout:?}, expected {n}; timeline:\n{}\nAPI logs in {}",
                    tasks.len(),
                    self.stopping().len(),
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

    /// Timeline lines of tasks replaced after failed health checks.
    pub fn health_replacements(&self) -> Vec<String> {
        self.timeline()
            .into_iter()
            .filter(|l| l.contains(REPLACED_AFTER_HEALTH_CHECKS))
            .collect()
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
        self.stop_loops().await;
        let procs: Vec<Proc> = std::mem::take(&mut *self.shared.live.lock().expect("live tasks"));
        let _ = tokio::task::spawn_blocking(move || drop(procs)).await;
    }

    async fn stop_loops(&mut self) {
        self.shared.stop.notify_one();
        let mut loops = std::mem::take(&mut self.loops).into_iter();
        if let Some(reconcile) = loops.next() {
            let _ = reconcile.await;
        }
        for other in loops {
            other.abort();
        }
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        for handle in self.loops.drain(..) {
            handle.abort();
        }
        // Guarded's drop stops each process; then the logs can go.
        self.shared.live.lock().map(|mut l| l.clear()).ok();
        let _ = std::fs::remove_dir_all(&self.log_dir);
    }
}

/// Where a target stands in the target group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Registration {
    Registered,
    Draining,
}

impl Ctx {
    async fn reconcile(self: &Arc<Self>) -> anyhow::Result<()> {
        let desired = usize::try_from(self.stack.desired().await?).unwrap_or(0);
        let live = self.shared.live.lock().expect("live tasks").len();
        self.publish_counts(desired, live)?;
        if self.shared.reregister.load(Ordering::SeqCst) {
            self.register_lost_targets().await?;
        }
        if live < desired {
            self.start_task(desired).await
        } else if live > desired {
            self.scale_in().await
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

    /// The target group's targets (`ip` -> registered or draining).
    async fn targets(&self) -> anyhow::Result<BTreeMap<String, Registration>> {
        let seen = self.stack.target_health().await?;
        Ok(seen
            .into_iter()
            .map(|(ip, _, draining)| {
                let reg = if draining {
                    Registration::Draining
                } else {
                    Registration::Registered
                };
                (ip, reg)
            })
            .collect())
    }

    /// The re-registration switch: every kept task's target is in the group.
    async fn register_lost_targets(&self) -> anyhow::Result<()> {
        let targets = self.targets().await?;
        let lost: Vec<LiveTask> = {
            let live = self.shared.live.lock().expect("live tasks");
            live.iter()
                .filter(|p| targets.get(&p.task.ip) != Some(&Registration::Registered))
                .map(|p| p.task.clone())
                .collect()
        };
        for t in lost {
            self.stack
                .world
                .elb
                .register_targets()
                .target_group_arn(&self.stack.target_group)
                .targets(target(&t.ip))
                .send()
                .await
                .context("register_targets")?;
            self.shared.note(format!(
                "ECS registered {}:{TASK_PORT} again (task {} runs; someone else deregistered it)",
                t.ip, t.id
            ));
        }
        Ok(())
    }

    async fn start_task(&self, desired: usize) -> anyhow::Result<()> {
        let out = self
            .stack
            .world
            .ecs
            .run_task()
            .cluster(CLUSTER)
            .task_definition(&self.stack.world.task_definition)
            .count(1)
            .started_by(format!("ecs-svc/{SERVICE}"))
            .group(format!("service:{SERVICE}"))
            .launch_type(aws_sdk_ecs::types::LaunchType::Fargate)
            .network_configuration(self.stack.world.network.clone())
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
            .world
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
        let az = task.availability_zone().map(str::to_string);
        let task = LiveTask {
            arn,
            id,
            ip,
            url,
            az,
        };
        // Counted before anyone can see the task in `tasks()`.
        let live = self.shared.live.lock().expect("live tasks").len() + 1;
        self.publish_counts(desired, live)?;
        self.shared.live.lock().expect("live tasks").push(Proc {
            task,
            process,
            fails: 0,
        });
        Ok(())
    }

    /// Desired is below the kept tasks: stop one that is not protected, from
    /// the Availability Zone with the most tasks, newest first.
    async fn scale_in(self: &Arc<Self>) -> anyhow::Result<()> {
        let kept: Vec<LiveTask> = {
            let live = self.shared.live.lock().expect("live tasks");
            live.iter().map(|p| p.task.clone()).collect()
        };
        let prot = self
            .stack
            .world
            .ecs
            .get_task_protection()
            .cluster(CLUSTER)
            .set_tasks(Some(kept.iter().map(|t| t.arn.clone()).collect()))
            .send()
            .await
            .context("get_task_protection")?;
        let protected: BTreeSet<&str> = prot
            .protected_tasks()
            .iter()
            .filter(|t| t.protection_enabled())
            .filter_map(|t| t.task_arn())
            .collect();
        let Some(victim) = choose_victim(&kept, &protected) else {
            return Ok(()); // all protected: ECS waits too
        };
        self.stop_the_ecs_way(&victim.arn, "service scale-in")
    }

    /// Takes the task out of the kept ones and stops it in the background:
    /// desired STOPPED, deregister, wait for the load balancer's drain,
    /// SIGTERM, wait up to stopTimeout, SIGKILL, STOPPED.
    fn stop_the_ecs_way(self: &Arc<Self>, arn: &str, why: &str) -> anyhow::Result<()> {
        let proc = {
            let mut live = self.shared.live.lock().expect("live tasks");
            let Some(i) = live.iter().position(|p| p.task.arn == arn) else {
                return Ok(()); // already on its way out
            };
            live.remove(i)
        };
        self.shared
            .stopping
            .lock()
            .expect("stopping")
            .push(proc.task.clone());
        let live = self.shared.live.lock().expect("live tasks").len();
        self.publish_counts(live, live)?;
        self.shared.note(format!(
            "ECS stops task {} ({why}): desired STOPPED, deregistering {}:{TASK_PORT}",
            proc.task.id, proc.task.ip
        ));
        let ctx = self.clone();
        tokio::spawn(async move {
            let id = proc.task.id.clone();
            if let Err(e) = ctx.stop_proc(proc).await {
                ctx.shared.note(format!("stopping task {id}: {e:#}"));
            }
        });
        Ok(())
    }

    async fn stop_proc(&self, proc: Proc) -> anyhow::Result<()> {
        let Proc {
            task, mut process, ..
        } = proc;
        let result = async {
            self.moto
                .set_task_status(&task.arn, Some("DEACTIVATING"), Some("STOPPED"))?;
            let dereg = self
                .stack
                .world
                .elb
                .deregister_targets()
                .target_group_arn(&self.stack.target_group)
                .targets(target(&task.ip))
                .send()
                .await;
            if let Err(e) = dereg {
                // Deregistered already (a function's head start): it still drains.
                let e = aws_sdk_elasticloadbalancingv2::error::DisplayErrorContext(e).to_string();
                if !e.contains("InvalidTarget") {
                    self.shared
                        .note(format!("deregister_targets {}: {e}", task.id));
                }
            }
            // The load balancer's drain: the target leaves `draining` once the
            // proxy holds no request and no connection, or at the delay.
            let t0 = Instant::now();
            let bound = Duration::from_secs(u64::from(DEREGISTRATION_DELAY_S) + 10);
            loop {
                let targets = self.targets().await?;
                if !targets.contains_key(&task.ip) {
                    break;
                }
                if t0.elapsed() > bound {
                    self.shared.note(format!(
                        "target {}:{TASK_PORT} still in the group {bound:?} after deregistration",
                        task.ip
                    ));
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            self.shared.note(format!(
                "task {}: deregistration complete after {} ms; SIGTERM",
                task.id,
                t0.elapsed().as_millis()
            ));
            self.moto
                .set_task_status(&task.arn, Some("STOPPING"), Some("STOPPED"))?;
            anyhow::Ok(())
        }
        .await;
        let _ = process.signal(Signal::SIGTERM);
        let (status, process) = tokio::task::spawn_blocking(move || {
            let status = process.wait_timeout(STOP_TIMEOUT);
            (status, process)
        })
        .await?;
        let status = match status {
            Some(s) => format!("exit {s}"),
            None => {
                let _ = process.signal(Signal::SIGKILL);
                format!("no exit within stopTimeout {STOP_TIMEOUT:?}: SIGKILL")
            }
        };
        drop(process);
        self.moto
            .set_task_status(&task.arn, Some("STOPPED"), Some("STOPPED"))?;
        self.shared
            .stopping
            .lock()
            .expect("stopping")
            .retain(|t| t.arn != task.arn);
        self.shared
            .note(format!("task {} STOPPED ({status})", task.id));
        result
    }

    /// One round of the target group's health checks on every registered
    /// target of a kept task; [`UNHEALTHY_THRESHOLD`] failures in a row get
    /// the task replaced.
    async fn health_checks(self: &Arc<Self>) -> anyhow::Result<()> {
        let targets = self.targets().await?;
        let checked: Vec<LiveTask> = {
            let live = self.shared.live.lock().expect("live tasks");
            live.iter()
                .filter(|p| targets.get(&p.task.ip) == Some(&Registration::Registered))
                .map(|p| p.task.clone())
                .collect()
        };
        let mut set = tokio::task::JoinSet::new();
        for (i, t) in checked.iter().enumerate() {
            let http = self.http.clone();
            let url = format!("{}/health", t.url);
            set.spawn(async move {
                let answer = match http.get(&url).send().await {
                    Ok(r) if r.status().as_u16() == 200 => Ok(()),
                    Ok(r) => Err(format!("HTTP {}", r.status().as_u16())),
                    Err(e) => Err(e.to_string()),
                };
                (i, answer)
            });
        }
        let mut answers: Vec<Result<(), String>> = vec![Ok(()); checked.len()];
        while let Some(done) = set.join_next().await {
            let (i, answer) = done?;
            answers[i] = answer;
        }
        let mut replace = Vec::new();
        {
            let mut live = self.shared.live.lock().expect("live tasks");
            for (t, answer) in checked.iter().zip(answers) {
                let Some(p) = live.iter_mut().find(|p| p.task.arn == t.arn) else {
                    continue;
                };
                match answer {
                    Ok(()) => p.fails = 0,
                    Err(why) => {
                        p.fails += 1;
                        if p.fails >= UNHEALTHY_THRESHOLD {
                            replace.push((t.arn.clone(), t.id.clone(), why));
                        }
                    }
                }
            }
        }
        for (arn, id, why) in replace {
            self.shared.note(format!(
                "task {id} {REPLACED_AFTER_HEALTH_CHECKS} ({UNHEALTHY_THRESHOLD} in a row, last: {why})"
            ));
            self.stop_the_ecs_way(&arn, "failed health checks")?;
        }
        Ok(())
    }
}

/// ECS's choice on a scale-in: an unprotected task from the Availability Zone
/// that has the most kept tasks, newest first (the last started).
fn choose_victim(kept: &[LiveTask], protected: &BTreeSet<&str>) -> Option<LiveTask> {
    let mut per_az: BTreeMap<Option<&str>, usize> = BTreeMap::new();
    for t in kept {
        *per_az.entry(t.az.as_deref()).or_default() += 1;
    }
    kept.iter()
        .enumerate()
        .filter(|(_, t)| !protected.contains(t.arn.as_str()))
        .max_by_key(|(i, t)| (per_az[&t.az.as_deref()], *i))
        .map(|(_, t)| t.clone())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn t(n: u32, az: &str) -> LiveTask {
        LiveTask {
            arn: format!("arn:task/{n}"),
            id: n.to_string(),
            ip: format!("10.0.0.{n}"),
            url: String::new(),
            az: Some(az.to_string()),
        }
    }

    #[test]
    fn the_victim_is_unprotected_from_the_fullest_zone_newest_first() {
        let kept = [t(1, "a"), t(2, "b"), t(3, "a"), t(4, "b"), t(5, "a")];
        let none = BTreeSet::new();
        assert_eq!(choose_victim(&kept, &none).unwrap().id, "5");
        let protected: BTreeSet<&str> = ["arn:task/5", "arn:task/3"].into();
        assert_eq!(choose_victim(&kept, &protected).unwrap().id, "1");
        let all: BTreeSet<&str> = kept.iter().map(|t| t.arn.as_str()).collect();
        assert_eq!(choose_victim(&kept, &all), None);
    }
}
