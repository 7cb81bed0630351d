//! The HTTP/1.1 server loop: accept, one hyper connection per socket, and a watchdog per
//! connection that bounds every wait on the client.
//!
//! `axum::serve` installs no timer: a half-sent request head, a body that never completes or an
//! idle keep-alive connection stayed open for good, each holding a file descriptor (and, for
//! bodies, an in-flight count: the metric that drives scale-out and the drain). Here:
//! - **header read timeout** (`HEADER_READ_TIMEOUT_MS`): from the first byte of a request head
//!   to the whole head; past it the connection is closed;
//! - **body read timeout** (`BODY_READ_TIMEOUT_MS`): in [`crate::middleware::read_body`], which
//!   reads the whole (small) body before the request counts as in flight; 408 past it;
//! - **idle timeout** (`IDLE_TIMEOUT_S`): a keep-alive connection with no request is closed.
//!   hyper's own `header_read_timeout` starts when it waits for the next request, so it would
//!   also close idle keep-alive connections at the (short) header bound, before the ALB's 60 s
//!   idle timeout: the ALB could then send a request on a connection the task is closing.
//! - **file descriptors**: accept failing with EMFILE/ENFILE (the task's limit is in the task
//!   definition) closes the idle connections and pauses accepting briefly, never spinning.
//! - **shutdown**: connections with no request being served close at once; the others finish
//!   their request (within the grace period) and close.
//! - **drain mode** (`crate::drain`): idle keep-alive connections close when the drain state
//!   asks (no client request for a quiet period), so the ALB can complete the target's
//!   deregistration at once; a connection serving a request closes after its response, which
//!   carries `Connection: close`.
//!
//! Only HTTP/1.1: the ALB speaks it to targets (target group protocol version HTTP1).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;
use tower::ServiceExt;

use crate::drain::Drain;

/// Client-side bounds of the server loop.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    /// First byte of a request head to its end.
    pub header: Duration,
    /// A keep-alive connection with no request.
    pub idle: Duration,
}

/// hyper's read buffer cap, and so the largest request head it parses. Heads over the API's
/// own (smaller) limits get a JSON 414/431 from the middleware; past this one hyper answers
/// itself, and [`JsonErrors`] turns that bare answer into JSON too.
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// Linux errno values for "out of file descriptors" and "out of buffers".
const EMFILE: i32 = 24;
const ENFILE: i32 = 23;
const ENOBUFS: i32 = 105;
const ENOMEM: i32 = 12;
/// Pause after an accept that failed for lack of resources.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// What every connection shares with the accept loop.
#[derive(Clone)]
struct Shared {
    router: Router,
    timeouts: Timeouts,
    /// True once shutdown begins.
    stopping: watch::Receiver<bool>,
    /// Bumped to ask idle connections to close (out of file descriptors).
    shed: Arc<Notify>,
    /// Drain mode: its "close once idle" signal.
    drain: Arc<Drain>,
    started: Instant,
}

impl Shared {
    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64 + 1
    }
}

/// The server: accepts until `stopping` turns true, then lets connections finish.
pub struct Server {
    connections: JoinSet<()>,
    open: Arc<AtomicUsize>,
}

impl Server {
    /// Accepts connections on `listener` until `stopping` is true; returns the connections
    /// still open at that moment, to be waited for with [`Server::wait`].
    pub async fn accept_until(
        listener: TcpListener,
        router: Router,
        timeouts: Timeouts,
        mut stopping: watch::Receiver<bool>,
        drain: Arc<Drain>,
    ) -> Server {
        let shared = Shared {
            router,
            timeouts,
            stopping: stopping.clone(),
            shed: Arc::new(Notify::new()),
            drain,
            started: Instant::now(),
        };
        let mut server = Server {
            connections: JoinSet::new(),
            open: Arc::new(AtomicUsize::new(0)),
        };
        let mut last_report: Option<Instant> = None;
        let mut refused = 0u64;
        loop {
            // Reap finished connection tasks so the set does not grow.
            while server.connections.try_join_next().is_some() {}
            let accepted = tokio::select! {
                biased;
                _ = stopping.wait_for(|s| *s) => break,
                a = listener.accept() => a,
            };
            match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    let (shared, open) = (shared.clone(), server.open.clone());
                    open.fetch_add(1, Relaxed);
                    server.connections.spawn(async move {
                        serve_connection(stream, peer, shared).await;
                        open.fetch_sub(1, Relaxed);
                    });
                }
                Err(e) if matches!(e.raw_os_error(), Some(EMFILE | ENFILE | ENOBUFS | ENOMEM)) => {
                    refused += 1;
                    // Free descriptors: idle keep-alive connections are the cheapest to lose.
                    shared.shed.notify_waiters();
                    if last_report.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
                        tracing::error!(
                            error = %e,
                            open = server.open.load(Relaxed),
                            refused,
                            "cannot accept: out of file descriptors; closing idle connections"
                        );
                        last_report = Some(Instant::now());
                    }
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
                // Per-connection failures (reset before accept): nothing to wait for.
                Err(e) => tracing::debug!(error = %e, "accept failed"),
            }
        }
        server
    }

    /// Connections still open.
    pub fn open(&self) -> usize {
        self.open.load(Relaxed)
    }

    /// Waits until every connection has closed, or `bound` passes; true when all closed.
    pub async fn wait(&mut self, bound: Duration) -> bool {
        tokio::time::timeout(bound, async {
            while self.connections.join_next().await.is_some() {}
        })
        .await
        .is_ok()
    }

    /// Drops every connection still open.
    pub async fn abort(mut self) {
        self.connections.abort_all();
        while self.connections.join_next().await.is_some() {}
    }
}

/// Per-connection state the service, the socket wrapper and the watchdog share.
#[derive(Default)]
struct ConnState {
    /// Requests whose head has arrived and whose response is not yet produced.
    serving: AtomicUsize,
    /// When the first byte of the next request head arrived (ms since start; 0: none yet).
    head_started: AtomicU64,
    /// When the connection last became idle (ms since start).
    idle_since: AtomicU64,
    /// A request was served on it: only then is it an idle keep-alive that drain mode closes
    /// (a new connection's first request is on its way; closing it would fail that request).
    served: std::sync::atomic::AtomicBool,
    changed: Notify,
}

/// Decrements `serving` when the request's future ends, however it ends.
struct Serving {
    conn: Arc<ConnState>,
    now_ms: u64,
}

impl Drop for Serving {
    fn drop(&mut self) {
        self.conn.idle_since.store(self.now_ms, Relaxed);
        self.conn.serving.fetch_sub(1, Relaxed);
        self.conn.changed.notify_one();
    }
}

async fn serve_connection(stream: TcpStream, peer: SocketAddr, shared: Shared) {
    let state = Arc::new(ConnState::default());
    state.idle_since.store(shared.now_ms(), Relaxed);
    let io = JsonErrors {
        inner: TokioIo::new(stream),
        conn: state.clone(),
        clock: shared.started,
        rewritten: None,
    };
    let service = {
        let (router, state, shared) = (shared.router.clone(), state.clone(), shared.clone());
        hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            state.serving.fetch_add(1, Relaxed);
            state.served.store(true, Relaxed);
            state.head_started.store(0, Relaxed);
            state.changed.notify_one();
            let guard = Serving {
                conn: state.clone(),
                now_ms: 0,
            };
            req.extensions_mut().insert(ConnectInfo(peer));
            let (router, shared) = (router.clone(), shared.clone());
            async move {
                let resp: Result<_, Infallible> =
                    router.oneshot(req.map(axum::body::Body::new)).await;
                let mut guard = guard;
                guard.now_ms = shared.now_ms();
                drop(guard);
                resp
            }
        })
    };
    let mut conn = std::pin::pin!(hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        // The watchdog below bounds the head (hyper's bound would also cut idle connections).
        .header_read_timeout(None)
        .keep_alive(true)
        .max_buf_size(MAX_HEAD_BYTES)
        .serve_connection(io, service));
    let mut stopping = shared.stopping.clone();
    let mut close_idle = shared.drain.subscribe();
    // Requests to close that came before this connection are not for it.
    close_idle.mark_unchanged();
    let mut graceful = false;
    loop {
        let verdict = tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, %peer, "connection ended with an error");
                }
                return;
            }
            v = watchdog(&state, &shared, &mut stopping, &mut close_idle), if !graceful => v,
        };
        match verdict {
            // Nothing owed to the client: close now.
            Verdict::Close(why) => {
                tracing::debug!(%peer, why, "closing connection");
                return;
            }
            // A request is being served (shutdown): finish it, then close.
            Verdict::Finish => {
                conn.as_mut().graceful_shutdown();
                graceful = true;
            }
        }
    }
}

enum Verdict {
    Close(&'static str),
    Finish,
}

/// Waits until the connection must end: its head is too slow, it is idle too long, the server
/// is stopping or short of file descriptors. Never ends while a request is being served, except
/// for shutdown (then the request finishes first).
async fn watchdog(
    state: &ConnState,
    shared: &Shared,
    stopping: &mut watch::Receiver<bool>,
    close_idle: &mut watch::Receiver<u64>,
) -> Verdict {
    loop {
        let serving = state.serving.load(Relaxed) > 0;
        if *stopping.borrow() {
            return if serving {
                Verdict::Finish
            } else {
                Verdict::Close("shutdown")
            };
        }
        let now = shared.now_ms();
        let deadline_ms = if serving {
            None
        } else {
            match state.head_started.load(Relaxed) {
                0 => Some((
                    state.idle_since.load(Relaxed) + shared.timeouts.idle.as_millis() as u64,
                    "idle timeout",
                )),
                t => Some((
                    t + shared.timeouts.header.as_millis() as u64,
                    "header read timeout",
                )),
            }
        };
        if let Some((at, why)) = deadline_ms {
            if now >= at {
                return Verdict::Close(why);
            }
        }
        let sleep = deadline_ms.map(|(at, _)| Duration::from_millis(at - now));
        let idle = !serving && state.head_started.load(Relaxed) == 0;
        tokio::select! {
            _ = state.changed.notified() => {}
            changed = stopping.changed() => {
                // The sender only goes away after saying "stop"; never spin on a closed channel.
                if changed.is_err() && !*stopping.borrow() {
                    return Verdict::Close("server gone");
                }
            }
            _ = shared.shed.notified(), if idle => return Verdict::Close("out of file descriptors"),
            // The drain state's sender lives as long as the app: an error never repeats here.
            changed = close_idle.changed() => {
                if changed.is_ok() && idle && state.served.load(Relaxed) {
                    return Verdict::Close("drain mode: idle keep-alive");
                }
            }
            _ = async {
                match sleep {
                    Some(d) => tokio::time::sleep(d).await,
                    None => std::future::pending().await,
                }
            } => {}
        }
    }
}

/// The socket, watched: notes when the first byte of a request head arrives, and replaces
/// hyper's own bodiless error answers (400, 414, 431 for heads it cannot parse, sent before any
/// request reaches the router) with the API's JSON error body.
struct JsonErrors {
    inner: TokioIo<TcpStream>,
    conn: Arc<ConnState>,
    clock: Instant,
    /// A rewritten answer being written: (bytes, written so far, length hyper asked for).
    rewritten: Option<(Vec<u8>, usize, usize)>,
}

impl Read for JsonErrors {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        // hyper's cursor does not say how much it filled; the watchdog only needs "bytes came
        // while no request was being served", so a poll that completes is enough: a read of 0
        // bytes (EOF) ends the connection anyway.
        let result = Pin::new(&mut this.inner).poll_read(cx, buf);
        if result.is_ready()
            && this.conn.serving.load(Relaxed) == 0
            && this.conn.head_started.load(Relaxed) == 0
        {
            let now = this.clock.elapsed().as_millis() as u64 + 1;
            this.conn.head_started.store(now, Relaxed);
            this.conn.changed.notify_one();
        }
        result
    }
}

impl Write for JsonErrors {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        if this.rewritten.is_none() {
            if let Some(json) = rewrite_parse_error(buf) {
                this.rewritten = Some((json, 0, buf.len()));
            }
        }
        if let Some((bytes, done, asked)) = &mut this.rewritten {
            while *done < bytes.len() {
                match Pin::new(&mut this.inner).poll_write(cx, &bytes[*done..]) {
                    Poll::Ready(Ok(0)) => break,
                    Poll::Ready(Ok(n)) => *done += n,
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => return Poll::Pending,
                }
            }
            let asked = *asked;
            this.rewritten = None;
            return Poll::Ready(Ok(asked));
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// hyper's answer to an unparseable head is a status line and headers with `content-length: 0`
/// (`proto::h1::role::Server::on_error`), written in one piece before the connection closes.
/// The API never answers 400, 414 or 431 without a body, so such a write can only be hyper's.
fn rewrite_parse_error(buf: &[u8]) -> Option<Vec<u8>> {
    let head = std::str::from_utf8(buf).ok()?;
    let (code, reason, message) = match head.get(..13)? {
        "HTTP/1.1 400 " => ("bad_request", "Bad Request", "malformed request"),
        "HTTP/1.1 414 " => ("uri_too_long", "URI Too Long", "request URI too long"),
        "HTTP/1.1 431 " => (
            "headers_too_large",
            "Request Header Fields Too Large",
            "request headers too large",
        ),
        _ => return None,
    };
    let lower = head.to_ascii_lowercase();
    if !head.ends_with("\r\n\r\n") || !lower.contains("\r\ncontent-length: 0\r\n") {
        return None;
    }
    let body = serde_json::json!({ "error": code, "message": message }).to_string();
    Some(
        format!(
            "HTTP/1.1 {} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            &head[9..12],
            body.len()
        )
        .into_bytes(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_bodiless_parse_errors_are_rewritten() {
        let hyper_431 = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: Tue, 01 Dec 2026 00:00:00 GMT\r\n\r\n";
        let out = String::from_utf8(rewrite_parse_error(hyper_431).unwrap()).unwrap();
        assert!(out.starts_with("HTTP/1.1 431 "), "{out}");
        assert!(out.contains("content-type: application/json"), "{out}");
        assert!(
            out.ends_with(r#"{"error":"headers_too_large","message":"request headers too large"}"#)
        );
        let ours = b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 40\r\n\r\n";
        assert!(rewrite_parse_error(ours).is_none());
        assert!(
            rewrite_parse_error(b"HTTP/1.1 201 Created\r\ncontent-length: 0\r\n\r\n").is_none()
        );
    }
}
