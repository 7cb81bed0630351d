//! Fault tools shared by the fault tests and `make chaos-api`: a TCP proxy that can silence the
//! database's open connections, and a bounded POST load that records every answer.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;
use sqlx::PgPool;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A TCP proxy in front of PostgreSQL. [`Proxy::partition`] silences every connection open at
/// that moment: bytes from either side are read and thrown away and the sockets stay open, so
/// neither end sees an error. Connections opened later pass normally. That is a failover whose
/// old primary's packets vanish while the new primary answers.
pub struct Proxy {
    pub addr: SocketAddr,
    epoch: Arc<AtomicU64>,
    accept: tokio::task::JoinHandle<()>,
}

impl Proxy {
    pub async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let epoch = Arc::new(AtomicU64::new(0));
        let accept = tokio::spawn({
            let epoch = epoch.clone();
            async move {
                while let Ok((client, _)) = listener.accept().await {
                    let born = epoch.load(Ordering::SeqCst);
                    let epoch = epoch.clone();
                    tokio::spawn(async move {
                        let Ok(server) = TcpStream::connect(upstream).await else {
                            return;
                        };
                        let (cr, cw) = client.into_split();
                        let (sr, sw) = server.into_split();
                        tokio::join!(pump(cr, sw, born, epoch.clone()), pump(sr, cw, born, epoch));
                    });
                }
            }
        });
        Proxy {
            addr,
            epoch,
            accept,
        }
    }

    /// Every connection open now goes silent for good; new ones pass.
    pub fn partition(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
    }

    /// `url` with its host and port replaced by the proxy's.
    pub fn url_for(&self, url: &str) -> String {
        let (scheme, rest) = url.split_once("://").unwrap();
        let (auth_host, path) = rest.split_once('/').unwrap();
        let auth = auth_host
            .rsplit_once('@')
            .map_or(String::new(), |(a, _)| format!("{a}@"));
        format!("{scheme}://{auth}{}/{path}", self.addr)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Copies until either side closes; drops the bytes once the proxy's epoch has moved past the
/// connection's. Ends when the reader ends: bounded by the test's sockets.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    born: u64,
    epoch: Arc<AtomicU64>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if epoch.load(Ordering::SeqCst) != born {
            continue; // silenced: swallow
        }
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    if epoch.load(Ordering::SeqCst) == born {
        let _ = to.shutdown().await;
    }
}

/// The upstream address of a `postgres://` URL.
pub fn pg_addr(url: &str) -> SocketAddr {
    let rest = url.split_once("://").unwrap().1;
    let host_port = rest.split('/').next().unwrap();
    let host_port = host_port.rsplit_once('@').map_or(host_port, |(_, h)| h);
    host_port.parse().unwrap()
}

/// One answer to a POST of the load.
#[derive(Clone, Debug)]
pub struct Answer {
    /// When the request was sent, from the load's start.
    pub sent: Duration,
    pub latency: Duration,
    /// 0 for a transport error.
    pub status: u16,
    pub id: Option<i64>,
}

/// POSTs from `workers` loops until `stop` or `max`, recording each answer.
pub struct Load {
    pub started: Instant,
    stop: Arc<AtomicBool>,
    answers: Arc<Mutex<Vec<Answer>>>,
    workers: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    pub fn start(base: &str, workers: usize, max: Duration) -> Load {
        let started = Instant::now();
        let stop = Arc::new(AtomicBool::new(false));
        let answers = Arc::new(Mutex::new(Vec::new()));
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        let url = format!("{base}/api/visit");
        let workers = (0..workers)
            .map(|_| {
                let (client, url, stop, answers) =
                    (client.clone(), url.clone(), stop.clone(), answers.clone());
                tokio::spawn(async move {
                    // Bounded by time and count.
                    for _ in 0..100_000 {
                        if stop.load(Ordering::Relaxed) || started.elapsed() > max {
                            break;
                        }
                        let sent = started.elapsed();
                        let t = Instant::now();
                        let resp = client
                            .post(&url)
                            .header("content-type", "application/json")
                            .body(r#"{"page":"/chaos"}"#)
                            .send()
                            .await;
                        let (status, id) = match resp {
                            Ok(r) => {
                                let status = r.status();
                                let id = if status == StatusCode::CREATED {
                                    r.json::<Value>().await.ok().and_then(|v| v["id"].as_i64())
                                } else {
                                    None
                                };
                                (status.as_u16(), id)
                            }
                            Err(_) => (0, None),
                        };
                        let failed = status != 201;
                        answers.lock().unwrap().push(Answer {
                            sent,
                            latency: t.elapsed(),
                            status,
                            id,
                        });
                        if failed {
                            // Don't spin on errors: a client would back off too.
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                })
            })
            .collect();
        Load {
            started,
            stop,
            answers,
            workers,
        }
    }

    /// Time since the load started.
    pub fn now(&self) -> Duration {
        self.started.elapsed()
    }

    pub async fn finish(self) -> Vec<Answer> {
        self.stop.store(true, Ordering::Relaxed);
        for w in self.workers {
            let _ = w.await;
        }
        let answers = self.answers.lock().unwrap().clone();
        answers
    }
}

/// What a fault run shows.
#[derive(Debug)]
pub struct Outcome {
    pub acknowledged: usize,
    /// Acknowledged ids not in the table.
    pub missing: i64,
    /// Rows in the table beyond the acknowledged ones: committed, but answered 503 (or cut).
    pub unacknowledged_rows: i64,
    pub errors_503: usize,
    pub other_errors: usize,
    pub p50_503: Duration,
    pub max_503: Duration,
    /// From `healed_at` to the first 201 of a request sent after it.
    pub recovery: Option<Duration>,
}

pub async fn outcome(answers: &[Answer], pool: &PgPool, healed_at: Duration) -> Outcome {
    let acked: Vec<i64> = answers.iter().filter_map(|a| a.id).collect();
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM visits WHERE id = ANY($1)")
        .bind(&acked)
        .fetch_one(pool)
        .await
        .unwrap();
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM visits WHERE page = '/chaos'")
        .fetch_one(pool)
        .await
        .unwrap();
    let mut lat_503: Vec<Duration> = answers
        .iter()
        .filter(|a| a.status == 503)
        .map(|a| a.latency)
        .collect();
    lat_503.sort();
    let recovery = answers
        .iter()
        .filter(|a| a.status == 201 && a.sent >= healed_at)
        .map(|a| a.sent + a.latency - healed_at)
        .min();
    Outcome {
        acknowledged: acked.len(),
        missing: acked.len() as i64 - stored,
        unacknowledged_rows: rows - acked.len() as i64,
        errors_503: lat_503.len(),
        other_errors: answers
            .iter()
            .filter(|a| a.status != 201 && a.status != 503)
            .count(),
        p50_503: lat_503.get(lat_503.len() / 2).copied().unwrap_or_default(),
        max_503: lat_503.last().copied().unwrap_or_default(),
        recovery,
    }
}
