//! Per-request bookkeeping: request id, in-flight count, one JSON log line, metrics, and
//! `Connection: close` while draining (so clients and the load balancer move elsewhere); and
//! [`admit`], which bounds the request head and reads the whole body before any of that.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::body::{Body, HttpBody};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, LengthLimitError, Limited};

use crate::error::ApiError;
use crate::state::AppState;

/// Keeps the in-flight count right even when the client goes away mid-request (the future is
/// dropped then, and so is this).
struct InFlight<'a>(&'a AppState);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.metrics.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Header that carries the request id back to the client.
pub const REQUEST_ID: &str = "x-request-id";

/// Longest `X-Amzn-Trace-Id` taken as the request id: the ALB's `Root=1-<8 hex>-<24 hex>` is
/// 40 characters; `Self=`, `Parent=` and `Sampled=` fields added by other hops stay well under.
const TRACE_ID_MAX: usize = 256;

/// The ALB's trace header, when it looks like one: bounded, printable ASCII, `Key=Value` fields
/// separated by `;`, with a `Root=1-<8 hex>-<24 hex>` field. Anything else is replaced by our
/// own id, so a client cannot put 60 KB or control characters into every log line and answer.
/// Format: "Request tracing for your Application Load Balancer",
/// https://docs.aws.amazon.com/elasticloadbalancing/latest/application/load-balancer-request-tracing.html
pub fn valid_trace_id(v: &str) -> bool {
    let root_ok = |r: &str| {
        let parts: Vec<&str> = r.split('-').collect();
        parts.len() == 3
            && parts[0] == "1"
            && parts[1].len() == 8
            && parts[2].len() == 24
            && parts[1..]
                .iter()
                .all(|p| p.bytes().all(|b| b.is_ascii_hexdigit()))
    };
    v.len() <= TRACE_ID_MAX
        && v.split(';').all(|field| {
            field.split_once('=').is_some_and(|(k, val)| {
                !k.is_empty()
                    && k.bytes().all(|b| b.is_ascii_alphanumeric())
                    && val
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
            })
        })
        && v.split(';')
            .any(|f| f.strip_prefix("Root=").is_some_and(root_ok))
}

fn request_id(req: &Request) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    req.headers()
        .get("x-amzn-trace-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| valid_trace_id(v))
        .map(str::to_owned)
        .unwrap_or_else(|| {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            format!("{:x}-{n:x}", std::process::id())
        })
}

/// The middleware itself; wraps every route and the fallback.
pub async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let id = request_id(&req);
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "<unmatched>".to_owned(), |p| p.as_str().to_owned());
    // The drain waits for in_flight to reach 0; the admin requests that ask must not count.
    let guard = (!route.starts_with("/admin/")).then(|| {
        state.metrics.in_flight.fetch_add(1, Ordering::Relaxed);
        // Drain mode closes idle keep-alives once no client request arrives. Health checks
        // don't count: the load balancer's checker uses connections of its own, and may go
        // on checking a target that no longer gets traffic.
        if route != "/health" {
            state.drain.saw_request();
        }
        InFlight(&state)
    });
    let mut resp = next.run(req).await;
    drop(guard);
    let latency = start.elapsed();
    let status = resp.status().as_u16();
    state.metrics.finish(status, latency);
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert(REQUEST_ID, v);
    }
    if state.draining() {
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    tracing::info!(
        target: "request",
        method = %method,
        route = %route,
        status,
        latency_ms = latency.as_secs_f64() * 1000.0,
        request_id = %id,
    );
    resp
}

/// Longest request URI (path and query) the API reads; 414 past it.
pub const URI_MAX: usize = 8 * 1024;
/// Total size of the request's header names and values; 431 past it.
pub const HEADERS_MAX_BYTES: usize = 16 * 1024;
/// Number of header fields; 431 past it.
pub const HEADERS_MAX_FIELDS: usize = 64;

/// Outermost layer: a request is admitted, and only then counted in flight by [`track`], once
/// its head is within bounds and its whole body has arrived within `BODY_READ_TIMEOUT_MS` (the
/// API's bodies are at most a few KiB, so reading them first costs nothing). A slow upload
/// then holds one connection, not the in-flight count that drives scale-out and the drain.
pub async fn admit(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let (status, resp) = match read_whole(&state, req).await {
        Ok(req) => return next.run(req).await,
        Err(e) => {
            let resp = e.into_response();
            (resp.status().as_u16(), resp)
        }
    };
    state.metrics.finish(status, start.elapsed());
    tracing::info!(
        target: "request",
        status,
        latency_ms = start.elapsed().as_secs_f64() * 1000.0,
        "request refused before routing"
    );
    resp
}

async fn read_whole(state: &AppState, req: Request) -> Result<Request, ApiError> {
    let uri_len = req.uri().path_and_query().map_or(0, |p| p.as_str().len());
    if uri_len > URI_MAX {
        return Err(ApiError::UriTooLong(URI_MAX));
    }
    let headers = req.headers();
    let header_bytes: usize = headers
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len())
        .sum();
    if header_bytes > HEADERS_MAX_BYTES || headers.len() > HEADERS_MAX_FIELDS {
        return Err(ApiError::HeadersTooLarge(
            HEADERS_MAX_BYTES,
            HEADERS_MAX_FIELDS,
        ));
    }
    let (parts, body) = req.into_parts();
    let limit = crate::routes::BODY_LIMIT;
    if body.size_hint().lower() > limit as u64 {
        return Err(ApiError::TooLarge(limit));
    }
    let timeout = state.config.body_read_timeout;
    let read = tokio::time::timeout(timeout, Limited::new(body, limit).collect()).await;
    let bytes = match read {
        Err(_) => return Err(ApiError::BodyTimeout(timeout.as_millis() as u64)),
        Ok(Err(e)) if e.is::<LengthLimitError>() => return Err(ApiError::TooLarge(limit)),
        Ok(Err(_)) => {
            return Err(ApiError::BadRequest(
                "could not read the request body".into(),
            ))
        }
        Ok(Ok(collected)) => collected.to_bytes(),
    };
    Ok(Request::from_parts(parts, Body::from(bytes)))
}
