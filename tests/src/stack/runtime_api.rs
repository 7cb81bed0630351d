//! A minimal Lambda runtime emulator served from the harness: the Runtime API
//! that function bootstraps poll, and the Invoke API that callers (and
//! `cargo lambda invoke --invoke-port PORT <name>`) use.
//!
//! Why not `cargo lambda watch --only-lambda-apis` (1.9.2), which does the
//! same: it sends `Lambda-Runtime-Deadline-Ms: 600000`, a duration where the
//! Runtime API specifies a Unix time in ms, so every function sees a deadline
//! in 1970. scale-down bounds its drain wait by that deadline and would give
//! up at once. Here the deadline is now + the function's timeout, as on AWS
//! ("Using the Lambda runtime API for custom runtimes", `Lambda-Runtime-Deadline-Ms`:
//! "the date that the function times out in Unix time milliseconds",
//! <https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html>).
//!
//! Routes (one function per path prefix; a bootstrap gets
//! `AWS_LAMBDA_RUNTIME_API=http://127.0.0.1:PORT/fn/<name>`):
//! - `GET  /fn/<name>/2018-06-01/runtime/invocation/next`
//! - `POST /fn/<name>/2018-06-01/runtime/invocation/<id>/response`
//! - `POST /fn/<name>/2018-06-01/runtime/invocation/<id>/error`
//! - `POST /fn/<name>/2018-06-01/runtime/init/error`
//! - `POST /2015-03-31/functions/<name>/invocations` (RequestResponse)

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tokio::sync::{mpsc, oneshot};

/// What an invocation came back with: the response body, or the error body
/// (`{"errorType", "errorMessage"}`) with `true`.
pub type Outcome = (Bytes, bool);

struct Pending {
    payload: Bytes,
    reply: oneshot::Sender<Outcome>,
}

struct Function {
    queue: mpsc::UnboundedSender<Pending>,
    /// The bootstrap takes invocations one at a time (reserved concurrency 1).
    next: tokio::sync::Mutex<mpsc::UnboundedReceiver<Pending>>,
}

struct Inner {
    functions: HashMap<String, Function>,
    in_flight: Mutex<HashMap<String, oneshot::Sender<Outcome>>>,
    timeout: Duration,
    seq: AtomicU64,
}

/// The emulator: serves until dropped.
pub struct RuntimeApi {
    port: u16,
    inner: Arc<Inner>,
    server: tokio::task::JoinHandle<()>,
}

impl RuntimeApi {
    /// Serves `functions` on a free loopback port; each invocation's deadline
    /// is `timeout` after the bootstrap receives it.
    pub async fn start(functions: &[&str], timeout: Duration) -> anyhow::Result<Self> {
        let functions = functions
            .iter()
            .map(|name| {
                let (queue, next) = mpsc::unbounded_channel();
                let f = Function {
                    queue,
                    next: tokio::sync::Mutex::new(next),
                };
                (name.to_string(), f)
            })
            .collect();
        let inner = Arc::new(Inner {
            functions,
            in_flight: Mutex::default(),
            timeout,
            seq: AtomicU64::new(1),
        });
        let app = Router::new()
            .route("/fn/{name}/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/fn/{name}/2018-06-01/runtime/invocation/{id}/response",
                post(response),
            )
            .route(
                "/fn/{name}/2018-06-01/runtime/invocation/{id}/error",
                post(error),
            )
            .route("/fn/{name}/2018-06-01/runtime/init/error", post(init_error))
            .route("/2015-03-31/functions/{name}/invocations", post(invoke_api))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let port = listener.local_addr()?.port();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            port,
            inner,
            server,
        })
    }

    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `AWS_LAMBDA_RUNTIME_API` for `function`'s bootstrap.
    pub fn runtime_api_for(&self, function: &str) -> String {
        format!("http://127.0.0.1:{}/fn/{function}", self.port)
    }

    /// Queues one invocation and waits for its outcome (None: unknown function
    /// or the emulator is shutting down).
    pub async fn invoke(&self, function: &str, payload: Bytes) -> Option<Outcome> {
        enqueue(&self.inner, function, payload).await
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn enqueue(inner: &Inner, function: &str, payload: Bytes) -> Option<Outcome> {
    let f = inner.functions.get(function)?;
    let (reply, outcome) = oneshot::channel();
    f.queue.send(Pending { payload, reply }).ok()?;
    outcome.await.ok()
}

async fn next(State(inner): State<Arc<Inner>>, Path(name): Path<String>) -> Response {
    let Some(f) = inner.functions.get(&name) else {
        return (StatusCode::NOT_FOUND, "unknown function").into_response();
    };
    let pending = f.next.lock().await.recv().await;
    let Some(pending) = pending else {
        return (StatusCode::GONE, "shutting down").into_response();
    };
    let id = format!(
        "local-{name}-{:08}",
        inner.seq.fetch_add(1, Ordering::Relaxed)
    );
    inner
        .in_flight
        .lock()
        .expect("in-flight map")
        .insert(id.clone(), pending.reply);
    let deadline = SystemTime::now() + inner.timeout;
    let deadline_ms = deadline
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default();
    let mut headers = HeaderMap::new();
    let arn = format!("arn:aws:lambda:us-east-1:123456789012:function:{name}");
    for (key, value) in [
        ("lambda-runtime-aws-request-id", id.clone()),
        ("lambda-runtime-deadline-ms", deadline_ms.to_string()),
        ("lambda-runtime-invoked-function-arn", arn),
        (
            "lambda-runtime-trace-id",
            format!("Root=1-00000000-{id};Sampled=0"),
        ),
        ("content-type", "application/json".to_string()),
    ] {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(key, v);
        }
    }
    (StatusCode::OK, headers, pending.payload).into_response()
}

fn finish(inner: &Inner, id: &str, outcome: Outcome) -> StatusCode {
    let reply = inner.in_flight.lock().expect("in-flight map").remove(id);
    match reply {
        Some(reply) => {
            let _ = reply.send(outcome);
            StatusCode::ACCEPTED
        }
        None => StatusCode::NOT_FOUND,
    }
}

async fn response(
    State(inner): State<Arc<Inner>>,
    Path((_name, id)): Path<(String, String)>,
    body: Bytes,
) -> StatusCode {
    finish(&inner, &id, (body, false))
}

async fn error(
    State(inner): State<Arc<Inner>>,
    Path((_name, id)): Path<(String, String)>,
    body: Bytes,
) -> StatusCode {
    finish(&inner, &id, (body, true))
}

async fn init_error(Path(name): Path<String>, body: Bytes) -> StatusCode {
    tracing::error!(function = %name, error = %String::from_utf8_lossy(&body), "function init failed");
    StatusCode::ACCEPTED
}

async fn invoke_api(
    State(inner): State<Arc<Inner>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    match enqueue(&inner, &name, body).await {
        Some((body, false)) => (StatusCode::OK, body).into_response(),
        Some((body, true)) => {
            let mut headers = HeaderMap::new();
            headers.insert(
                "x-amz-function-error",
                HeaderValue::from_static("Unhandled"),
            );
            (StatusCode::OK, headers, body).into_response()
        }
        None => (StatusCode::NOT_FOUND, format!("no function {name}")).into_response(),
    }
}
