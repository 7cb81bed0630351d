//! The functions, run as their real binaries under a Lambda runtime emulator.
//!
//! Each function's debug binary (built on first use, see
//! [`test_support::paths::workspace_binary`]) runs as its bootstrap against the harness's
//! Runtime API ([`super::runtime_api`]), one instance per function (the
//! template's reserved concurrency 1), with the environment the template
//! gives it, pointed at the emulator. Invocations go through the same
//! emulator's Invoke API, so `cargo lambda invoke --invoke-port PORT <name>`
//! works against a running stack too.
//!
//! cargo-lambda's own emulator (`cargo lambda watch`) was the first choice and
//! is not used: building the functions itself, it uses its own flags (a second
//! full dependency build) and, started from inside `cargo test`, waits on the
//! build lock the outer `cargo` holds; with `--only-lambda-apis` it hands the
//! functions a deadline in 1970 (see [`super::runtime_api`]).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::Value;
use test_support::guard::{GuardOpts, Guarded};
use test_support::moto::Moto;

use super::runtime_api::RuntimeApi;
use super::{workspace_binary, Stack, ADMIN_TOKEN, CLUSTER, IP_REWRITE, SERVICE, TASK_PORT};

/// The four functions of the workspace (package = binary = function name).
pub const FUNCTIONS: [&str; 4] = ["scale-up", "scale-down", "notify", "drain-instance"];
/// The functions' timeout (the deadline they see): the template gives
/// scale-down 300 s.
pub const FUNCTION_TIMEOUT: Duration = Duration::from_secs(300);

/// A function's error, as Lambda reports it (`errorType`, `errorMessage`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionError {
    /// e.g. `NonRetryable.BadEvent`, `Retryable.Aws.Throttling`.
    pub error_type: String,
    /// The error's message.
    pub error_message: String,
}

impl std::fmt::Display for FunctionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.error_type, self.error_message)
    }
}

/// One invocation's outcome.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// The function invoked.
    pub function: String,
    /// Wall time of the Invoke call.
    pub elapsed: Duration,
    /// The function's response (for the scaling functions, a report), or its error.
    pub result: Result<Value, FunctionError>,
}

impl Invocation {
    /// The scaling report in the response; an error names the function error
    /// or the response that is not a report.
    pub fn report(&self) -> anyhow::Result<scaling::report::Report> {
        match &self.result {
            Ok(v) => serde_json::from_value(v.clone())
                .with_context(|| format!("{} answered a non-report: {v}", self.function)),
            Err(e) => bail!("{} failed: {e}", self.function),
        }
    }
}

/// The runtime emulator and one bootstrap per function; all stopped on drop
/// (and their log directory removed).
pub struct Lambdas {
    log_dir: PathBuf,
    functions: BTreeMap<String, std::sync::Mutex<Guarded>>,
    api: RuntimeApi,
    /// Removes `log_dir` even when the stack is never dropped (a static stack).
    _log_guard: test_support::guard::DirGuard,
}

impl Lambdas {
    /// Starts the emulator and `functions` (names from [`FUNCTIONS`]) with
    /// [`function_env`] plus `overrides` (e.g. cooldowns). Fails with a
    /// message naming `make setup` when cargo-lambda or a binary is missing.
    pub async fn start(
        moto: &Moto,
        stack: &Stack,
        functions: &[&str],
        overrides: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        let binaries: Vec<(String, PathBuf)> = functions
            .iter()
            .map(|f| Ok((f.to_string(), workspace_binary(f)?)))
            .collect::<anyhow::Result<_>>()?;
        let log_dir = test_support::scratch_dir("visits-lambda")?;
        let log_guard = test_support::guard::DirGuard::new(&log_dir)?;
        let api = RuntimeApi::start(functions, FUNCTION_TIMEOUT).await?;
        let mut env = function_env(moto, stack);
        for (k, v) in overrides {
            env.insert(k.to_string(), v.to_string());
        }
        let mut started = BTreeMap::new();
        for (name, binary) in binaries {
            let log = std::fs::File::create(log_dir.join(format!("{name}.log")))?;
            let mut cmd = Command::new(&binary);
            cmd.env_clear()
                .env("PATH", "/usr/bin:/bin")
                .envs(&env)
                .env("AWS_LAMBDA_RUNTIME_API", api.runtime_api_for(&name))
                .env("AWS_LAMBDA_FUNCTION_NAME", &name)
                .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
                .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256");
            let opts = GuardOpts {
                grace_s: 2,
                ..GuardOpts::default()
            };
            let process = Guarded::spawn(
                &name,
                &cmd,
                opts,
                Stdio::from(log.try_clone()?),
                Stdio::from(log),
            )?;
            started.insert(name, std::sync::Mutex::new(process));
        }
        Ok(Self {
            log_dir,
            functions: started,
            api,
            _log_guard: log_guard,
        })
    }

    /// The Invoke API's base URL (`cargo lambda invoke --invoke-port` takes the port).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.api.port())
    }

    /// Invokes `function` synchronously (RequestResponse) with `payload`.
    /// Errors only when the emulator or the function's process is unusable;
    /// a function error is in [`Invocation::result`].
    pub async fn invoke(&self, function: &str, payload: &Value) -> anyhow::Result<Invocation> {
        if !self.functions.contains_key(function) {
            bail!("{function} was not started in this stack");
        }
        let started = Instant::now();
        let payload = serde_json::to_vec(payload)?;
        let call = self.api.invoke(function, payload.into());
        tokio::pin!(call);
        let deadline = started + FUNCTION_TIMEOUT + Duration::from_secs(30);
        let (body, failed) = loop {
            tokio::select! {
                outcome = &mut call => match outcome {
                    Some(outcome) => break outcome,
                    None => bail!("{function}: the runtime emulator is gone"),
                },
                _ = tokio::time::sleep(Duration::from_millis(500)) => {
                    let exited = self.functions[function].lock().expect("function process").try_wait();
                    if let Some(status) = exited {
                        bail!("{function} exited ({status}); its log:\n{}", self.log(function));
                    }
                    if Instant::now() > deadline {
                        bail!("{function} did not answer within its timeout; its log:\n{}", self.log(function));
                    }
                }
            }
        };
        let elapsed = started.elapsed();
        let body: Value = serde_json::from_slice(&body)
            .with_context(|| format!("{function}: response is not JSON"))?;
        let result = if failed {
            Err(FunctionError {
                error_type: body["errorType"].as_str().unwrap_or_default().to_string(),
                error_message: body["errorMessage"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            })
        } else {
            Ok(body)
        };
        Ok(Invocation {
            function: function.to_string(),
            elapsed,
            result,
        })
    }

    /// What the function has logged so far (its stdout and stderr).
    pub fn log(&self, function: &str) -> String {
        std::fs::read_to_string(self.log_dir.join(format!("{function}.log"))).unwrap_or_default()
    }
}

impl Drop for Lambdas {
    fn drop(&mut self) {
        // The functions first, while their runtime API still answers.
        self.functions.clear();
    }
}

/// The functions' environment on the local stack, as the template sets it
/// (MIN 1, MAX 4, step 1), pointed at the emulator. Cooldowns are 0 so tests
/// can chain episodes; pass overrides to [`Lambdas::start`] to change any.
pub fn function_env(moto: &Moto, stack: &Stack) -> BTreeMap<String, String> {
    let rewrite = format!("{}={}", IP_REWRITE.0, IP_REWRITE.1);
    [
        ("CLUSTER_NAME", CLUSTER.to_string()),
        ("SERVICE_NAME", SERVICE.to_string()),
        ("MIN_TASKS", "1".into()),
        ("MAX_TASKS", "4".into()),
        ("SCALE_OUT_STEP", "1".into()),
        ("SCALE_OUT_COOLDOWN_S", "0".into()),
        ("SCALE_IN_COOLDOWN_S", "0".into()),
        // As the template's Globals: the reconcile schedule scales in while this stays in ALARM.
        ("SCALE_IN_ALARMS", format!("{SERVICE}-cpu-low")),
        ("TOPIC_ARN", stack.topic_arn.clone()),
        ("ADMIN_TOKEN", ADMIN_TOKEN.into()),
        ("TASK_PORT", TASK_PORT.to_string()),
        ("TASK_IP_PREFIX_REWRITE", rewrite),
        // Fast locally; the template keeps the 1 s default for ECS on AWS.
        ("POLL_INTERVAL_MS", "200".into()),
        ("AWS_ENDPOINT_URL", moto.endpoint()),
        ("AWS_REGION", test_support::moto::REGION.into()),
        ("AWS_ACCESS_KEY_ID", "testing".into()),
        ("AWS_SECRET_ACCESS_KEY", "testing".into()),
        ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ("RUST_LOG", "info".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// An alarm-driver [`Invoker`](super::alarms::Invoker) that invokes these
/// functions; a function error becomes the invoker's error.
pub fn invoker(lambdas: std::sync::Arc<Lambdas>) -> super::alarms::Invoker {
    std::sync::Arc::new(move |name: String, payload: Value| {
        let lambdas = lambdas.clone();
        let call: super::alarms::InvokeFuture = Box::pin(async move {
            let done = lambdas.invoke(&name, &payload).await?;
            done.result
                .map_err(|e| anyhow::anyhow!("{name} failed: {e}"))
        });
        call
    })
}
