//! A scale-down world on the emulator, driven through the production
//! `AwsPort` (real SDK clients, behind a fault-injecting proxy): a Fargate
//! service with a real target group, tasks started with `run_task` and
//! registered by IP, a fake drain control per task on its loopback twin
//! (`TASK_IP_PREFIX_REWRITE=10.=127.`), and an agent that plays ECS:
//! when desired drops below the running tasks it stops an unprotected one.
#![allow(dead_code)]

pub mod api;
pub mod fake_task;
pub mod faults;
pub mod proxy;
pub mod wire;

use aws_sdk_ecs::types::{LaunchType, NetworkConfiguration};
use aws_sdk_elasticloadbalancingv2::types::TargetDescription;
use fake_task::FakeTask;
use faults::Calls;
use scale_down::admin::AdminClient;
use scale_down::aws_port::AwsPort;
use scale_down::Settings;
use scaling::aws::{ecs::Ecs, elb::Elb, protection::Protection};
use scaling::config::IpRewrite;
use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use test_support::emulated_ecs::{EmulatedEcs, TargetGroup};
use test_support::moto;

pub const SERVICE: &str = "visits-api";
/// The bearer token the port sends to the tasks' drain control.
pub const ADMIN_TOKEN: &str = "test-admin-token";

/// One task ECS (the agent) still runs.
#[derive(Debug, Clone)]
pub struct LiveTask {
    pub arn: String,
    pub id: String,
    /// The emulated private IP (10.x.y.z): the target id.
    pub ip: String,
    pub fake: FakeTask,
}

/// One test's service on the shared emulator.
pub struct World {
    pub cluster: String,
    pub tg: String,
    /// The task port (also the target port): free, so worlds never collide.
    pub port: u16,
    pub ecs: aws_sdk_ecs::Client,
    pub elb: aws_sdk_elasticloadbalancingv2::Client,
    pub calls: Calls,
    /// The production port, through the proxy.
    pub aws: AwsPort,
    pub settings: Settings,
    pub live: Arc<Mutex<Vec<LiveTask>>>,
    /// Tasks the agent stopped, in order.
    pub stopped: Arc<Mutex<Vec<LiveTask>>>,
    /// How long the agent lets desired stay below the running tasks before
    /// it stops one (ECS's reaction time; 0 by default).
    pub reaction: Arc<std::sync::atomic::AtomicU64>,
    /// The service's awsvpc configuration, for `run_task`.
    network: NetworkConfiguration,
    agent: tokio::task::JoinHandle<()>,
}

impl Drop for World {
    fn drop(&mut self) {
        self.agent.abort();
    }
}

/// The loopback twin of an emulated task IP.
pub fn twin(ip: &str) -> String {
    let rest = ip
        .strip_prefix("10.")
        .unwrap_or_else(|| panic!("emulated task IP {ip} is not 10.x.y.z"));
    format!("127.{rest}")
}

impl World {
    /// A service of `in_flight.len()` tasks (each with that many requests in
    /// flight) in cluster `sd-<name>`.
    pub async fn new(name: &str, in_flight: &[u64]) -> World {
        let moto = moto::shared();
        let cluster = format!("sd-{name}");
        let port = test_support::free_port().unwrap();
        let emulated = EmulatedEcs::builder()
            .cluster(&cluster)
            .family(&cluster)
            .tasks(in_flight.len() as i32)
            .port(port)
            .target_group(TargetGroup::named(&cluster).deregistration_delay_s(5))
            // scale-down rightly takes the emulator's ever IN_PROGRESS ECS deployment for a rollout.
            .external_deployments()
            .build()
            .await
            .unwrap();
        let tg = emulated.target_group_arn().to_string();
        let EmulatedEcs {
            ecs, elb, network, ..
        } = emulated;
        let calls = Calls::default();
        let endpoint = proxy::start(moto.endpoint(), calls.clone()).await;
        let proxied = moto::sdk_config_for(&endpoint)
            .await
            .to_builder()
            .timeout_config(
                aws_config::timeout::TimeoutConfig::builder()
                    .operation_attempt_timeout(Duration::from_secs(2))
                    .build(),
            )
            .build();
        let proxied_ecs = aws_sdk_ecs::Client::new(&proxied);
        let aws = AwsPort::new(
            Ecs::from_client(proxied_ecs.clone()),
            Elb::new(&proxied),
            Protection::new(proxied_ecs, &cluster, 15),
            AdminClient::new(
                Some(ADMIN_TOKEN.into()),
                Some(IpRewrite {
                    from: "10.".into(),
                    to: "127.".into(),
                }),
                Duration::from_secs(1),
            ),
            &cluster,
            SERVICE,
            Some(i32::from(port)),
        );
        let mut settings = Settings::new(&cluster, SERVICE, 1, 10);
        settings.scale_in_cooldown = Duration::ZERO;
        settings.poll_interval = Duration::from_millis(50);
        settings.stop_timeout = Duration::from_secs(30);
        settings.drain_margin = Duration::from_secs(2);
        settings.deadline_reserve = Duration::ZERO;
        let live = Arc::new(Mutex::new(Vec::new()));
        let stopped = Arc::new(Mutex::new(Vec::new()));
        let reaction = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let agent = tokio::spawn(
            Agent {
                ecs: ecs.clone(),
                elb: elb.clone(),
                cluster: cluster.clone(),
                tg: tg.clone(),
                port,
                live: live.clone(),
                stopped: stopped.clone(),
                reaction: reaction.clone(),
            }
            .run(),
        );
        let world = World {
            cluster,
            tg,
            port,
            ecs,
            elb,
            calls,
            aws,
            settings,
            live,
            stopped,
            reaction,
            network,
            agent,
        };
        for n in in_flight {
            world.start_task(*n).await;
        }
        world
    }

    /// run_task like the service scheduler; returns the task ARN and its
    /// emulated IP (nothing serves on it yet, and it is not registered).
    pub async fn launch(&self) -> (String, String) {
        let out = self
            .ecs
            .run_task()
            .cluster(&self.cluster)
            .task_definition(&self.cluster)
            .started_by("ecs-svc/agent")
            .launch_type(LaunchType::Fargate)
            .group(format!("service:{SERVICE}"))
            .network_configuration(self.network.clone())
            .send()
            .await
            .unwrap();
        let t = &out.tasks()[0];
        let arn = t.task_arn().unwrap().to_string();
        let ip = t
            .attachments()
            .iter()
            .flat_map(|a| a.details())
            .find(|d| d.name() == Some("privateIPv4Address"))
            .and_then(|d| d.value())
            .expect("awsvpc task IP")
            .to_string();
        (arn, ip)
    }

    /// RegisterTargets for a task IP on the world's port.
    pub async fn register(&self, ip: &str) {
        self.elb
            .register_targets()
            .target_group_arn(&self.tg)
            .targets(target(ip, self.port))
            .send()
            .await
            .unwrap();
    }

    /// A task with a fake drain control on its twin, registered, that the
    /// agent stops when desired drops.
    pub async fn start_task(&self, in_flight: u64) -> LiveTask {
        let (arn, ip) = self.launch().await;
        let addr = format!("{}:{}", twin(&ip), self.port).parse().unwrap();
        let fake = FakeTask::start(addr, in_flight, self.calls.clone()).await;
        self.register(&ip).await;
        let task = LiveTask {
            id: arn.rsplit('/').next().unwrap().to_string(),
            arn,
            ip,
            fake,
        };
        self.live.lock().unwrap().push(task.clone());
        task
    }

    /// The low alarm for this world's service; `n` makes the alarm change unique.
    pub fn alarm(&self, n: u32) -> Value {
        let path = test_support::paths::repo_root().join("events/scale-down-alarm.json");
        let mut e: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let metric = &mut e["alarmData"]["configuration"]["metrics"][0]["metricStat"]["metric"];
        metric["dimensions"]["ClusterName"] = self.cluster.clone().into();
        e["alarmData"]["state"]["timestamp"] =
            format!("2026-11-23T15:{:02}:{:02}.000+0000", (n / 60) % 60, n % 60).into();
        e
    }

    /// The reconcile schedule's event.
    pub fn schedule(&self) -> Value {
        let path = test_support::paths::repo_root().join("events/scale-down-schedule.json");
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    /// The service's desired count and tags, read directly.
    pub async fn service(&self) -> (i32, std::collections::BTreeMap<String, String>) {
        let s = Ecs::from_client(self.ecs.clone())
            .describe_service(&self.cluster, SERVICE)
            .await
            .unwrap();
        (s.desired, s.tags)
    }

    /// The target ids registered in the target group.
    pub async fn registered(&self) -> Vec<String> {
        let out = self
            .elb
            .describe_target_health()
            .target_group_arn(&self.tg)
            .send()
            .await
            .unwrap();
        out.target_health_descriptions()
            .iter()
            .filter_map(|d| d.target()?.id().map(str::to_string))
            .collect()
    }

    /// "Nothing half-done" (docs/invariants.md), read from the emulator and the tasks: no marker, no
    /// protection, every running task registered and out of drain mode, no
    /// stopped task registered, desired equal to the running tasks, within limits.
    pub async fn check_settled(&self) -> Result<(), String> {
        let (desired, tags) = self.service().await;
        if let Some((k, v)) = tags
            .iter()
            .find(|(k, _)| k.starts_with("autoscaler:episode") || *k == "autoscaler:cancel")
        {
            return Err(format!("episode state left: {k}={v}"));
        }
        let live = self.live.lock().unwrap().clone();
        let arns: Vec<String> = live.iter().map(|t| t.arn.clone()).collect();
        let prot = self
            .ecs
            .get_task_protection()
            .cluster(&self.cluster)
            .set_tasks(Some(arns))
            .send()
            .await
            .unwrap();
        if let Some(p) = prot
            .protected_tasks()
            .iter()
            .find(|p| p.protection_enabled())
        {
            return Err(format!("protection left on {:?}", p.task_arn()));
        }
        let registered = self.registered().await;
        for t in &live {
            if !registered.contains(&t.ip) {
                return Err(format!("running task {} is not registered", t.id));
            }
            if t.fake.state.lock().unwrap().draining {
                return Err(format!("running task {} left in drain mode", t.id));
            }
        }
        for t in self.stopped.lock().unwrap().iter() {
            if registered.contains(&t.ip) {
                return Err(format!("stopped task {} still registered", t.id));
            }
        }
        if desired != live.len() as i32 {
            return Err(format!("desired {desired} but {} running", live.len()));
        }
        let s = &self.settings;
        if desired < s.min_tasks || desired > s.max_tasks {
            return Err(format!(
                "desired {desired} outside [{}, {}]",
                s.min_tasks, s.max_tasks
            ));
        }
        Ok(())
    }
}

fn target(ip: &str, port: u16) -> TargetDescription {
    TargetDescription::builder()
        .id(ip)
        .port(i32::from(port))
        .build()
}

/// Plays ECS: while more tasks run than desired, stop an unprotected one the
/// way ECS does (desired status STOPPED, target deregistered, the load balancer
/// drains it until its requests are done or the 5 s deregistration delay has
/// passed, then STOPPED and its server stops answering). All protected: wait,
/// as ECS does.
struct Agent {
    ecs: aws_sdk_ecs::Client,
    elb: aws_sdk_elasticloadbalancingv2::Client,
    cluster: String,
    tg: String,
    port: u16,
    live: Arc<Mutex<Vec<LiveTask>>>,
    stopped: Arc<Mutex<Vec<LiveTask>>>,
    reaction: Arc<std::sync::atomic::AtomicU64>,
}

impl Agent {
    async fn run(self) {
        let Agent {
            ecs,
            elb,
            cluster,
            tg,
            port,
            live,
            stopped,
            reaction,
        } = self;
        let svc = Ecs::from_client(ecs.clone());
        let mut over_since: Option<tokio::time::Instant> = None;
        loop {
            tokio::time::sleep(Duration::from_millis(30)).await;
            let Ok(s) = svc.describe_service(&cluster, SERVICE).await else {
                continue;
            };
            let tasks = live.lock().unwrap().clone();
            if tasks.len() as i32 <= s.desired {
                over_since = None;
                continue;
            }
            let since = *over_since.get_or_insert_with(tokio::time::Instant::now);
            let wait = Duration::from_millis(reaction.load(std::sync::atomic::Ordering::Relaxed));
            if since.elapsed() < wait {
                continue;
            }
            let arns: Vec<String> = tasks.iter().map(|t| t.arn.clone()).collect();
            let Ok(prot) = ecs
                .get_task_protection()
                .cluster(&cluster)
                .set_tasks(Some(arns))
                .send()
                .await
            else {
                continue;
            };
            let protected: Vec<&str> = prot
                .protected_tasks()
                .iter()
                .filter(|p| p.protection_enabled())
                .filter_map(|p| p.task_arn())
                .collect();
            let Some(victim) = tasks
                .iter()
                .rev()
                .find(|t| !protected.contains(&t.arn.as_str()))
            else {
                continue;
            };
            let arn = victim.arn.clone();
            tokio::task::spawn_blocking(move || {
                moto::shared().set_task_status(&arn, Some("RUNNING"), Some("STOPPED"))
            })
            .await
            .unwrap()
            .unwrap();
            // No longer one of the service's tasks: ECS is stopping it.
            live.lock().unwrap().retain(|t| t.arn != victim.arn);
            let _ = elb
                .deregister_targets()
                .target_group_arn(&tg)
                .targets(target(&victim.ip, port))
                .send()
                .await;
            let drained_by = tokio::time::Instant::now() + Duration::from_secs(5);
            while victim.fake.state.lock().unwrap().in_flight > 0
                && tokio::time::Instant::now() < drained_by
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let arn = victim.arn.clone();
            tokio::task::spawn_blocking(move || {
                moto::shared().set_task_status(&arn, Some("STOPPED"), Some("STOPPED"))
            })
            .await
            .unwrap()
            .unwrap();
            victim.fake.state.lock().unwrap().stopped = true;
            stopped.lock().unwrap().push(victim.clone());
        }
    }
}
