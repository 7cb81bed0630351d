//! The AWS emulator (moto in server mode) for tests, with the project's
//! extension (`tests/support/moto/moto_ext.py`): ECS UpdateTaskProtection /
//! GetTaskProtection and Auto Scaling CompleteLifecycleAction /
//! RecordLifecycleActionHeartbeat work, so real binaries run end to end.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! let moto = test_support::moto::Moto::start()?;
//! let ecs = aws_sdk_ecs::Client::new(&moto.sdk_config().await);
//! // ... run the code under test with AWS_ENDPOINT_URL = moto.endpoint() ...
//! let sns = moto.sns_messages()?;
//! # let _ = (ecs, sns); Ok(()) }
//! ```
//!
//! ECS tasks do not move by themselves here: [`Moto::start`] and
//! [`Moto::reset`] set the `ecs::task` state manager to manual, so a task
//! stays RUNNING until someone stops it (`StopTask`, or
//! [`Moto::set_task_status`] as the local task runner does).

use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::{json, Value};

use crate::guard::{GuardOpts, Guarded};
use crate::http;

/// Test account the emulator is used with (moto's default account).
pub const ACCOUNT_ID: &str = "123456789012";
/// Region of every emulated resource.
pub const REGION: &str = "us-east-1";
/// Reads of the state dump before [`Moto::data`] gives up.
pub const DATA_READS: u32 = 5;

/// A running moto server on a free loopback port; stopped on drop.
#[derive(Debug)]
pub struct Moto {
    port: u16,
    _process: Guarded,
}

/// One emulator per test binary, started on first use. Tests sharing it must
/// use distinct resource names, or be serialised, since state is shared.
///
/// Panics with the reason (e.g. venv missing: `make setup`) when it cannot start.
pub fn shared() -> &'static Moto {
    static SHARED: OnceLock<Moto> = OnceLock::new();
    SHARED.get_or_init(|| Moto::start().unwrap_or_else(|e| panic!("moto for tests: {e:#}")))
}

impl Moto {
    /// Starts the extended moto server from the project venv and waits until
    /// it answers; sets the ECS task state manager to manual.
    pub fn start() -> anyhow::Result<Self> {
        let python = crate::paths::venv_bin()?.join("python");
        let launcher = crate::paths::moto_launcher();
        if !launcher.is_file() {
            bail!("{} is missing", launcher.display());
        }
        let dir = crate::scratch_dir("visits-moto")?;
        let mut last_err = None;
        for _ in 0..2 {
            match Self::launch(&python, &launcher, &dir) {
                Ok(moto) => return Ok(moto),
                Err(e) => last_err = Some(e),
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
        Err(last_err.expect("at least one attempt"))
    }

    fn launch(
        python: &std::path::Path,
        launcher: &std::path::Path,
        dir: &std::path::Path,
    ) -> anyhow::Result<Self> {
        let port = crate::free_port()?;
        let log_path = dir.join(format!("moto-{port}.log"));
        let log = std::fs::File::create(&log_path)?;
        let mut cmd = Command::new(python);
        cmd.arg(launcher)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .env("PYTHONUNBUFFERED", "1");
        let opts = GuardOpts {
            stop_signal: "TERM",
            grace_s: 5,
            cleanup_dir: Some(dir.to_path_buf()),
            user: None,
        };
        let mut process = Guarded::spawn(
            "moto",
            &cmd,
            opts,
            Stdio::from(log.try_clone()?),
            Stdio::from(log),
        )?;
        let url = format!("http://127.0.0.1:{port}/moto-api/data.json");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = process.try_wait() {
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                bail!("moto exited ({status}) while starting:\n{log}");
            }
            if matches!(http::request("GET", &url, None), Ok((200, _))) {
                break;
            }
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                bail!("moto did not answer within 60 s:\n{log}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let moto = Self {
            port,
            _process: process,
        };
        moto.manual_task_states()?;
        Ok(moto)
    }

    /// `http://127.0.0.1:PORT`: the value for `AWS_ENDPOINT_URL`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The port moto listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Clears every emulated resource (and the extension's state).
    pub fn reset(&self) -> anyhow::Result<()> {
        http::json("POST", &format!("{}/moto-api/reset", self.endpoint()), None)?;
        // Reset keeps the state manager's settings today; set it again anyway
        // so tests don't depend on that.
        self.manual_task_states()
    }

    fn manual_task_states(&self) -> anyhow::Result<()> {
        let body = json!({
            "model_name": "ecs::task",
            "transition": {"progression": "manual", "times": 1_000_000}
        });
        http::json(
            "POST",
            &format!("{}/moto-api/state-manager/set-transition", self.endpoint()),
            Some(&body.to_string()),
        )?;
        Ok(())
    }

    /// The emulator's whole state (`GET /moto-api/data.json`). moto answers
    /// 500 when the dump races a request that changes the state, so a failed
    /// read is tried again, up to [`DATA_READS`] reads 200 ms apart.
    pub fn data(&self) -> anyhow::Result<Value> {
        let url = format!("{}/moto-api/data.json", self.endpoint());
        let mut reads = 1;
        loop {
            match http::json("GET", &url, None) {
                Err(_) if reads < DATA_READS => {
                    reads += 1;
                    std::thread::sleep(Duration::from_millis(200));
                }
                out => return out.with_context(|| format!("{reads} read(s) of data.json")),
            }
        }
    }

    /// Every message published to SNS so far, across topics, oldest first per
    /// topic: objects `{"topic_arn", "message_id", "message", "subject"}`
    /// (moto stores `(message_id, message, subject, attributes, group_id)`).
    pub fn sns_messages(&self) -> anyhow::Result<Vec<Value>> {
        let data = self.data()?;
        let mut out = Vec::new();
        for topic in data["sns"]["Topic"].as_array().into_iter().flatten() {
            for sent in topic["sent_notifications"].as_array().into_iter().flatten() {
                out.push(json!({
                    "topic_arn": topic["arn"],
                    "message_id": sent.get(0),
                    "message": sent.get(1),
                    "subject": sent.get(2),
                }));
            }
        }
        Ok(out)
    }

    /// Every CompleteLifecycleAction / RecordLifecycleActionHeartbeat call
    /// received, oldest first: objects with `Action`, `AutoScalingGroupName`,
    /// `LifecycleHookName`, `LifecycleActionToken`, `LifecycleActionResult`,
    /// `InstanceId`, `Time`.
    pub fn lifecycle_actions(&self) -> anyhow::Result<Vec<Value>> {
        let v = http::json(
            "GET",
            &format!("{}/moto-ext/lifecycle-actions", self.endpoint()),
            None,
        )?;
        Ok(v["calls"].as_array().cloned().unwrap_or_default())
    }

    /// The default VPC's subnets and default security group: `run_task` in
    /// awsvpc mode works there (in a subnet created in moto it answers 500).
    pub fn default_network(&self) -> anyhow::Result<DefaultNetwork> {
        let v = http::json(
            "GET",
            &format!(
                "{}/moto-ext/default-network?region={REGION}",
                self.endpoint()
            ),
            None,
        )?;
        let strings = |key: &str| -> Vec<String> {
            v[key]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        };
        Ok(DefaultNetwork {
            vpc_id: v["vpcId"].as_str().unwrap_or_default().to_string(),
            subnets: strings("subnets"),
            security_groups: strings("securityGroups"),
        })
    }

    /// Moves an ECS task the way the agent would (`last_status` e.g.
    /// `DEACTIVATING`/`STOPPED`, `desired_status` e.g. `STOPPED`).
    pub fn set_task_status(
        &self,
        task_arn: &str,
        last_status: Option<&str>,
        desired_status: Option<&str>,
    ) -> anyhow::Result<()> {
        let body =
            json!({"task": task_arn, "lastStatus": last_status, "desiredStatus": desired_status});
        http::json(
            "POST",
            &format!("{}/moto-ext/task-status", self.endpoint()),
            Some(&body.to_string()),
        )
        .with_context(|| format!("set status of {task_arn}"))?;
        Ok(())
    }

    /// Opts a target group into the ALB's draining: a deregistered target
    /// stays `draining` until [`Moto::target_drained`] or the group's
    /// deregistration delay (moto alone drops it at once).
    pub fn enable_alb_draining(&self, target_group_arn: &str) -> anyhow::Result<()> {
        let body = json!({"targetGroupArn": target_group_arn});
        http::json(
            "POST",
            &format!("{}/moto-ext/alb-draining", self.endpoint()),
            Some(&body.to_string()),
        )?;
        Ok(())
    }

    /// Tells the emulator that the load balancer has no connection left to a
    /// deregistered (draining) target: its deregistration completes, as on
    /// AWS. Until then, or until the group's deregistration delay has passed,
    /// DescribeTargetHealth shows it `draining`.
    pub fn target_drained(&self, target_group_arn: &str, id: &str) -> anyhow::Result<bool> {
        let v = target_drained_at(&self.endpoint(), target_group_arn, id)?;
        Ok(v["drained"] == true)
    }

    /// Sets an ECS service's running/pending counts the way the scheduler
    /// would; its PRIMARY deployment's rollout becomes `COMPLETED` once
    /// running reaches desired (moto alone leaves it `IN_PROGRESS`).
    pub fn set_service_counts(
        &self,
        cluster: &str,
        service: &str,
        running: usize,
        pending: usize,
    ) -> anyhow::Result<()> {
        let body =
            json!({"cluster": cluster, "service": service, "running": running, "pending": pending});
        http::json(
            "POST",
            &format!("{}/moto-ext/service-counts", self.endpoint()),
            Some(&body.to_string()),
        )
        .with_context(|| format!("set counts of {service}"))?;
        Ok(())
    }

    /// An SDK config pointed at this emulator: test credentials, us-east-1,
    /// and one attempt per call (the SDK retries 5xx, which would hide
    /// emulator errors and slow tests down).
    pub async fn sdk_config(&self) -> aws_config::SdkConfig {
        sdk_config_for(&self.endpoint()).await
    }
}

/// The emulator's default VPC, as [`Moto::default_network`] returns it.
#[derive(Debug, Clone)]
pub struct DefaultNetwork {
    /// `vpc-…`
    pub vpc_id: String,
    /// `subnet-…`, one per availability zone.
    pub subnets: Vec<String>,
    /// The VPC's `default` security group.
    pub security_groups: Vec<String>,
}

/// [`Moto::target_drained`] for any emulator endpoint (blocking HTTP).
pub fn target_drained_at(
    endpoint: &str,
    target_group_arn: &str,
    id: &str,
) -> anyhow::Result<Value> {
    let body = json!({"targetGroupArn": target_group_arn, "id": id});
    http::json(
        "POST",
        &format!("{endpoint}/moto-ext/target-drained"),
        Some(&body.to_string()),
    )
    .with_context(|| format!("report {id} drained"))
}

/// [`Moto::sdk_config`] for any endpoint URL.
pub async fn sdk_config_for(endpoint: &str) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new(REGION))
        .test_credentials()
        .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(1))
        .load()
        .await
}
