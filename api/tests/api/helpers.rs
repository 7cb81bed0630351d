//! `spawn_app()`: the API in-process on port 0 against a fresh database, plus one helper per
//! endpoint; and `ApiProcess`: the compiled binary, for signal and crash tests.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Once};
use std::time::Duration;

use reqwest::{Response, StatusCode};
use serde_json::Value;
use sqlx::PgPool;
use test_support::pg::PgCluster;
use visits_api::{Application, Config};

pub const ADMIN_TOKEN: &str = "test-admin-token";
pub const STRESS_TOKEN: &str = "test-stress-token";

/// Log output only when `TEST_LOG` is set, so a failing test's noise stays optional.
fn init_tracing() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            visits_api::telemetry::init();
        }
    });
}

/// A fresh database on the shared test cluster.
pub fn fresh_db() -> String {
    test_support::pg::shared()
        .fresh_database("api")
        .expect("create a test database")
}

/// The variables a test app runs with; `overrides` may add or blank (`""`) any of them.
pub fn test_env(db_url: &str, overrides: &[(&str, &str)]) -> HashMap<String, String> {
    let mut env: HashMap<String, String> = [
        ("DATABASE_URL", db_url),
        ("BIND_ADDR", "127.0.0.1"),
        ("PORT", "0"),
        ("ADMIN_TOKEN", ADMIN_TOKEN),
        ("STRESS_TOKEN", STRESS_TOKEN),
        ("DB_STARTUP_TIMEOUT_S", "30"),
        ("METRICS_INTERVAL_S", "3600"),
        ("CLUSTER_NAME", "visits"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (k, v) in overrides {
        env.insert(k.to_string(), v.to_string());
    }
    env
}

/// The app under test, served on a background task.
pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub pool: PgPool,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

pub async fn spawn_app_with(overrides: &[(&str, &str)]) -> TestApp {
    let db_url = tokio::task::spawn_blocking(fresh_db).await.unwrap();
    spawn_app_on(&db_url, overrides).await
}

pub async fn spawn_app_on(db_url: &str, overrides: &[(&str, &str)]) -> TestApp {
    init_tracing();
    let env = test_env(db_url, overrides);
    let config = Config::from_lookup(|k| env.get(k).cloned()).expect("test config");
    let app = Application::build(config).await.expect("build the app");
    let addr = app.local_addr();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.run_until(async move {
        let _ = rx.await;
    }));
    TestApp {
        base: format!("http://{addr}"),
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap(),
        pool: PgPool::connect(db_url).await.expect("test pool"),
        shutdown: Some(tx),
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get(&self, path: &str) -> Response {
        self.client.get(self.url(path)).send().await.expect("GET")
    }

    /// `POST /api/visit` as JSON, with `body` or none.
    pub async fn post_visit(&self, body: Option<&str>) -> Response {
        let mut req = self
            .client
            .post(self.url("/api/visit"))
            .header("content-type", "application/json");
        if let Some(b) = body {
            req = req.body(b.to_string());
        }
        req.send().await.expect("POST /api/visit")
    }

    pub async fn visits(&self) -> Value {
        let resp = self.get("/api/visits").await;
        assert_eq!(resp.status(), StatusCode::OK);
        resp.json().await.unwrap()
    }

    /// `GET path` with an `Authorization` header as given, parsed as JSON.
    pub async fn get_json_as(&self, path: &str, authorization: &str) -> Value {
        self.client
            .get(self.url(path))
            .header("authorization", authorization)
            .send()
            .await
            .expect("GET")
            .json()
            .await
            .expect("a JSON body")
    }

    pub async fn health(&self) -> Response {
        self.get("/health").await
    }

    pub async fn admin(&self, method: &str, path: &str, token: Option<&str>) -> Response {
        let mut req = self.client.request(method.parse().unwrap(), self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.expect("admin request")
    }

    /// `GET /admin/drain` with the admin token: the drain state as JSON.
    pub async fn drain_status(&self) -> Value {
        self.admin("GET", "/admin/drain", Some(ADMIN_TOKEN))
            .await
            .json()
            .await
            .expect("drain status JSON")
    }

    pub async fn stress(&self, body: &str, token: Option<&str>) -> Response {
        let mut req = self
            .client
            .post(self.url("/api/stress"))
            .header("content-type", "application/json")
            .body(body.to_string());
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.expect("POST /api/stress")
    }

    /// Rows in the table, counted the slow way to check the fast total.
    pub async fn row_count(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM visits")
            .fetch_one(&self.pool)
            .await
            .unwrap()
    }
}

/// Asserts a JSON error body with the given code.
pub async fn assert_json_error(resp: Response, status: StatusCode, code: &str) {
    assert_eq!(resp.status(), status);
    let ct = resp.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ct.starts_with("application/json"), "content-type {ct}");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], code, "{body}");
    assert!(body["message"].is_string(), "{body}");
}

/// Polls `check` every 50 ms until it holds or `within` passes.
pub async fn eventually<F, Fut>(within: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The compiled `visits-api` binary, killed when dropped.
pub struct ApiProcess {
    pub child: Child,
    pub addr: SocketAddr,
    pub base: String,
    /// Every stdout line after "ready".
    pub lines: mpsc::Receiver<String>,
    /// While true, nobody reads the process's stdout (its pipe fills up).
    pub stdout_paused: Arc<AtomicBool>,
}

impl ApiProcess {
    /// Starts the binary and waits for its "ready" log line, which carries the bound address.
    pub fn start(env: &HashMap<String, String>) -> ApiProcess {
        Self::start_wrapped(env, &[])
    }

    /// The same, run through `wrapper` (e.g. `prlimit --nofile=64` to lower its file limit;
    /// the wrapper must exec the binary so that the pid stays the API's).
    pub fn start_wrapped(env: &HashMap<String, String>, wrapper: &[&str]) -> ApiProcess {
        let bin = env!("CARGO_BIN_EXE_visits-api");
        let mut command = match wrapper.split_first() {
            None => Command::new(bin),
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(bin);
                c
            }
        };
        let mut child = command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RUST_LOG", "info")
            .envs(env)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn visits-api");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let stdout_paused = Arc::new(AtomicBool::new(false));
        let paused = stdout_paused.clone();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            loop {
                // Ends when the process does (EOF); `Drop` lifts a pause first.
                while paused.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(20));
                }
                match lines.next() {
                    Some(Ok(line)) => {
                        // The receiver may be gone; keep draining so the process never blocks.
                        let _ = tx.send(line);
                    }
                    _ => break,
                }
            }
        });
        let addr = loop {
            let line = match rx.recv_timeout(Duration::from_secs(60)) {
                Ok(l) => l,
                Err(e) => {
                    let _ = child.kill();
                    panic!("visits-api did not log ready: {e}");
                }
            };
            let Ok(v) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            if v["message"] == "ready" {
                break v["addr"].as_str().unwrap().parse::<SocketAddr>().unwrap();
            }
        };
        ApiProcess {
            child,
            addr,
            base: format!("http://{addr}"),
            lines: rx,
            stdout_paused,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), sig)
            .expect("signal");
    }

    /// Waits for exit up to `within`; `None` if still running.
    pub fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + within;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return Some(s);
            }
            if std::time::Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for ApiProcess {
    fn drop(&mut self) {
        self.stdout_paused.store(false, Ordering::Relaxed);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A private cluster for tests that stop the database (the shared one must stay up).
pub fn private_cluster() -> PgCluster {
    PgCluster::new_private().expect("start a private PostgreSQL cluster (run `make setup`)")
}

/// Starts `POST /api/stress` for `secs` seconds against `base` (a slow request), and returns
/// once the API counts it in flight (asked through `GET /admin/drain`, which is not counted).
pub async fn start_slow_request(
    client: &reqwest::Client,
    base: &str,
    secs: u64,
) -> tokio::task::JoinHandle<reqwest::Result<Response>> {
    let slow = tokio::spawn(
        client
            .post(format!("{base}/api/stress"))
            .bearer_auth(STRESS_TOKEN)
            .body(format!(r#"{{"duration_s":{secs}}}"#))
            .send(),
    );
    let seen = eventually(Duration::from_secs(20), || async {
        let s: Value = client
            .get(format!("{base}/admin/drain"))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        s["in_flight"] == 1
    })
    .await;
    assert!(seen, "the slow request never showed as in flight");
    slow
}
