//! Visits storage with group commit and coalesced reads.
//!
//! Writes: the POSTs that arrive together become one multi-row `INSERT ... SELECT FROM
//! UNNEST(...) RETURNING`, a single statement and so a single transaction: one commit (one WAL
//! flush, one counter update by the statement trigger) for the whole batch. Each waiter gets
//! its own row only after that statement has returned, i.e. after COMMIT. Up to
//! `WRITE_CONCURRENCY` batches are in flight at once, each on its own connection: while they
//! wait for their flush, newcomers gather into the next batch. The counter is sharded per
//! connection (see the migrations) so that concurrent batches don't queue on one row lock.
//!
//! Reads: the GETs that arrive while reads run share the next read, which starts after they
//! arrived, so no answer is older than its request: `total` counts every visit acknowledged
//! before the GET was sent, by this task or any other. Up to `READ_CONCURRENCY` reads run at
//! once.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::pool::PoolConnection;
use sqlx::{PgPool, Postgres};
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio::time::Instant;

use crate::db::{DbFailure, DbGuard};
use crate::write_health::WriteHealth;

/// A stored visit, as `POST /api/visit` returns it.
#[derive(Clone, Debug, Serialize, sqlx::FromRow, PartialEq, Eq)]
pub struct Visit {
    /// Row id, increasing.
    pub id: i64,
    /// When the row was written (the transaction's time).
    pub visited_at: DateTime<Utc>,
    /// The task that served it.
    pub task_id: String,
    /// The client address: the `X-Forwarded-For` entry left of our trusted proxies' own, else
    /// the peer address.
    pub client_ip: Option<String>,
    /// The request's user agent, truncated.
    pub user_agent: Option<String>,
    /// The optional page from the request body.
    pub page: Option<String>,
}

impl Visit {
    /// The visit as anyone may see it: the address cut to its network (IPv4 /24, IPv6 /48)
    /// and no user agent, which together can single a person out.
    pub fn masked(&self) -> Visit {
        Visit {
            client_ip: self.client_ip.as_deref().map(mask_ip),
            user_agent: None,
            ..self.clone()
        }
    }
}

/// `203.0.113.7` -> `203.0.113.0`, `2001:db8:1:2::5` -> `2001:db8:1::`; anything else hidden.
fn mask_ip(ip: &str) -> String {
    match ip.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(v4)) => {
            let [a, b, c, _] = v4.octets();
            std::net::Ipv4Addr::new(a, b, c, 0).to_string()
        }
        Ok(std::net::IpAddr::V6(v6)) => {
            let s = v6.segments();
            std::net::Ipv6Addr::new(s[0], s[1], s[2], 0, 0, 0, 0, 0).to_string()
        }
        Err(_) => "hidden".into(),
    }
}

/// A visit to record.
#[derive(Debug)]
pub struct NewVisit {
    /// Serving task.
    pub task_id: String,
    /// Client address.
    pub client_ip: Option<String>,
    /// Truncated user agent.
    pub user_agent: Option<String>,
    /// Optional page.
    pub page: Option<String>,
}

/// Why a store call failed; cloned to every waiter of a failed batch.
#[derive(Clone, Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached or is overloaded: the client may retry (503).
    #[error("database unavailable: {0}")]
    Unavailable(Arc<str>),
    /// Anything else (500); the text is logged, never sent.
    #[error("database error: {0}")]
    Internal(Arc<str>),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        // A refused password (a rotated secret) wakes the credentials refresher.
        crate::db_secret::observe(&e);
        let msg: Arc<str> = e.to_string().into();
        let unavailable = match &e {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_) => true,
            // 08: connection exceptions, 57: operator intervention (shutdown, statement timeout),
            // 53: insufficient resources, 28: credentials refused (a rotation; they are re-read).
            sqlx::Error::Database(db) => db.code().is_some_and(|c| {
                ["08", "57", "53", "28"]
                    .iter()
                    .any(|class| c.starts_with(class))
            }),
            _ => false,
        };
        if unavailable {
            StoreError::Unavailable(msg)
        } else {
            StoreError::Internal(msg)
        }
    }
}

/// A visit waiting for its batch; `by` bounds how long it may wait for a connection.
struct WriteJob {
    visit: NewVisit,
    by: Instant,
    tx: oneshot::Sender<Result<Visit, StoreError>>,
}

/// A GET waiting for the next read.
struct ReadJob {
    by: Instant,
    tx: oneshot::Sender<Result<SummaryJson, StoreError>>,
}

/// `{ total, recent }` serialised once per read for all its waiters, both ways.
#[derive(Clone, Debug)]
pub struct SummaryJson {
    /// Visitors' addresses masked and user agents left out: what anyone may read.
    pub public: Bytes,
    /// Everything, for a request with the admin token.
    pub full: Bytes,
}

/// Handle to the writer and reader tasks; cheap to clone.
#[derive(Clone)]
pub struct Store {
    writes: mpsc::Sender<WriteJob>,
    reads: mpsc::Sender<ReadJob>,
    /// How long a request may wait for a database connection (`DB_ACQUIRE_TIMEOUT_MS`),
    /// counted from its arrival, whatever the queue ahead of it.
    acquire: Duration,
    /// Safety net on the whole wait: the batch itself always answers before it.
    wait: Duration,
}

/// How the store batches and how many batches it runs at once, each on its own connection.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Rows per group-commit INSERT at most.
    pub batch_max: usize,
    /// Insert batches in flight at once.
    pub writers: usize,
    /// Summary reads in flight at once: with two, a GET that arrives while a read runs need
    /// not wait for it to finish before its own read starts.
    pub readers: usize,
    /// `DB_ACQUIRE_TIMEOUT_MS`.
    pub acquire: Duration,
}

/// Queue depth before new requests are turned away with 503 instead of piling up.
const QUEUE: usize = 8192;

/// What the writer and the reader share.
#[derive(Clone)]
struct Db {
    pool: PgPool,
    guard: DbGuard,
    health: Arc<WriteHealth>,
}

impl Store {
    /// Starts the writer and reader tasks on `pool`. They end when every `Store` clone is gone.
    pub fn start(pool: PgPool, guard: DbGuard, limits: Limits, health: Arc<WriteHealth>) -> Store {
        let (writes, wrx) = mpsc::channel(QUEUE);
        let (reads, rrx) = mpsc::channel(QUEUE);
        let wait = limits.acquire + guard.query_timeout() + Duration::from_secs(1);
        let db = Db {
            pool,
            guard,
            health,
        };
        tokio::spawn(writer(db.clone(), wrx, limits.batch_max, limits.writers));
        tokio::spawn(reader(db, rrx, limits.readers));
        Store {
            writes,
            reads,
            acquire: limits.acquire,
            wait,
        }
    }

    /// Records a visit; returns only after its row is committed.
    pub async fn record(&self, visit: NewVisit) -> Result<Visit, StoreError> {
        let (tx, rx) = oneshot::channel();
        let by = Instant::now() + self.acquire;
        self.writes
            .try_send(WriteJob { visit, by, tx })
            .map_err(|_| StoreError::Unavailable("write queue full".into()))?;
        self.await_reply(rx).await
    }

    /// `{ total, recent }` as JSON bytes, serialised once per query for all its waiters.
    pub async fn summary(&self) -> Result<SummaryJson, StoreError> {
        let (tx, rx) = oneshot::channel();
        let by = Instant::now() + self.acquire;
        self.reads
            .try_send(ReadJob { by, tx })
            .map_err(|_| StoreError::Unavailable("read queue full".into()))?;
        self.await_reply(rx).await
    }

    async fn await_reply<T>(
        &self,
        rx: oneshot::Receiver<Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(self.wait, rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(StoreError::Internal("store task ended".into())),
            Err(_) => Err(StoreError::Unavailable(
                "timed out waiting for the database".into(),
            )),
        }
    }
}

/// Runs `work` on batches of jobs from `rx`, at most `slots` batches at a time. A batch is
/// taken only once a slot is free, so jobs that arrive while every slot is busy wait and go
/// together into the next batch; and a batch's work always starts after all its jobs arrived.
async fn batches<J, F, Fut>(mut rx: mpsc::Receiver<J>, max: usize, slots: usize, work: F)
where
    J: Send + 'static,
    F: Fn(Vec<J>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(slots.max(1)));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let mut jobs = Vec::new();
        if rx.recv_many(&mut jobs, max).await == 0 {
            return; // every Store clone is gone
        }
        let done = work(jobs);
        tokio::spawn(async move {
            done.await;
            drop(slot);
        });
    }
}

/// A connection for a batch, by the earliest deadline among its jobs: a job never waits for a
/// connection longer than `DB_ACQUIRE_TIMEOUT_MS` from its own arrival, even when it first had
/// to wait for a writer slot (which is what doubled the error latency under concurrency).
async fn connection_by(db: &Db, earliest: Instant) -> Result<PoolConnection<Postgres>, StoreError> {
    if Instant::now() >= earliest {
        return Err(StoreError::Unavailable(
            "no database connection within DB_ACQUIRE_TIMEOUT_MS".into(),
        ));
    }
    db.guard.acquire(&db.pool, earliest).await
}

fn writer(
    db: Db,
    rx: mpsc::Receiver<WriteJob>,
    max: usize,
    writers: usize,
) -> impl Future<Output = ()> {
    batches(rx, max, writers, move |mut jobs: Vec<WriteJob>| {
        // Skip requests whose client has gone (timed out): nobody would learn the id.
        jobs.retain(|j| !j.tx.is_closed());
        let db = db.clone();
        async move {
            if !jobs.is_empty() {
                commit_batch(&db, jobs).await;
            }
        }
    })
}

/// Inserts one batch and answers each of its waiters.
async fn commit_batch(db: &Db, jobs: Vec<WriteJob>) {
    let n = jobs.len() as u64;
    let earliest = jobs.iter().map(|j| j.by).min().unwrap_or_else(Instant::now);
    let result = match connection_by(db, earliest).await {
        Ok(conn) => insert_batch(db, conn, &jobs).await,
        Err(error) => Err(DbFailure {
            error,
            uncertain: false,
        }),
    };
    match result {
        Ok(rows) => {
            let mut unanswered = 0;
            for (job, row) in jobs.into_iter().zip(rows) {
                if job.tx.send(Ok(row)).is_err() {
                    unanswered += 1;
                }
            }
            db.health.committed(n, unanswered);
        }
        Err(DbFailure { error, uncertain }) => {
            tracing::error!(error = %error, rows = n, uncertain, "visit batch failed");
            db.health.failed(n, uncertain, &error.to_string());
            for job in jobs {
                let _ = job.tx.send(Err(error.clone()));
            }
        }
    }
}

async fn insert_batch(
    db: &Db,
    mut conn: PoolConnection<Postgres>,
    jobs: &[WriteJob],
) -> Result<Vec<Visit>, DbFailure> {
    let n = jobs.len();
    let mut task = Vec::with_capacity(n);
    let mut ip = Vec::with_capacity(n);
    let mut ua = Vec::with_capacity(n);
    let mut page = Vec::with_capacity(n);
    for j in jobs {
        task.push(j.visit.task_id.as_str());
        ip.push(j.visit.client_ip.as_deref());
        ua.push(j.visit.user_agent.as_deref());
        page.push(j.visit.page.as_deref());
    }
    let insert = sqlx::query_as(
        "INSERT INTO visits (task_id, client_ip, user_agent, page) \
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[]) \
         RETURNING id, visited_at, task_id, client_ip, user_agent, page",
    )
    .bind(&task)
    .bind(&ip)
    .bind(&ua)
    .bind(&page)
    .fetch_all(&mut *conn);
    let outcome = db.guard.bound(insert).await;
    let mut rows: Vec<Visit> = db.guard.settle(conn, outcome)?;
    if rows.len() != n {
        return Err(DbFailure {
            error: StoreError::Internal(
                format!("inserted {} rows for {n} visits", rows.len()).into(),
            ),
            uncertain: true,
        });
    }
    // Identity values are drawn in the order the rows are inserted, which is UNNEST's order
    // (other batches' values may interleave, but within one statement they increase); sorting
    // by id pairs each row with its request whatever order RETURNING uses.
    rows.sort_unstable_by_key(|r| r.id);
    Ok(rows)
}

fn reader(db: Db, rx: mpsc::Receiver<ReadJob>, readers: usize) -> impl Future<Output = ()> {
    batches(rx, QUEUE, readers, move |waiters: Vec<ReadJob>| {
        let db = db.clone();
        async move {
            let earliest = waiters
                .iter()
                .map(|w| w.by)
                .min()
                .unwrap_or_else(Instant::now);
            let result = match connection_by(&db, earliest).await {
                Ok(conn) => summary(&db, conn).await.map_err(|f| f.error),
                Err(e) => Err(e),
            };
            if let Err(e) = &result {
                tracing::error!(error = %e, "visits summary failed");
            }
            for w in waiters {
                let _ = w.tx.send(result.clone());
            }
        }
    })
}

#[derive(Serialize)]
struct Summary {
    total: i64,
    recent: Vec<Visit>,
}

/// One statement, so the total and the recent rows come from one snapshot.
async fn summary(db: &Db, mut conn: PoolConnection<Postgres>) -> Result<SummaryJson, DbFailure> {
    type Row = (
        i64,
        Option<i64>,
        Option<DateTime<Utc>>,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
    );
    let read = sqlx::query_as(
        "SELECT t.total, v.id, v.visited_at, v.task_id, v.client_ip, v.user_agent, v.page \
         FROM visit_totals t \
         LEFT JOIN LATERAL (SELECT * FROM visits ORDER BY id DESC LIMIT 10) v ON true \
         ORDER BY v.id DESC",
    )
    .fetch_all(&mut *conn);
    let outcome = db.guard.bound(read).await;
    let rows: Vec<Row> = db.guard.settle(conn, outcome)?;
    let total = rows.first().map_or(0, |r| r.0);
    let recent: Vec<Visit> = rows
        .into_iter()
        .filter_map(|(_, id, at, task, ip, ua, page)| {
            Some(Visit {
                id: id?,
                visited_at: at?,
                task_id: task?,
                client_ip: ip,
                user_agent: ua,
                page,
            })
        })
        .collect();
    let masked: Vec<Visit> = recent.iter().map(Visit::masked).collect();
    let json = |recent: Vec<Visit>| {
        serde_json::to_vec(&Summary { total, recent })
            .map(Bytes::from)
            .map_err(|e| DbFailure {
                error: StoreError::Internal(e.to_string().into()),
                uncertain: false,
            })
    };
    Ok(SummaryJson {
        public: json(masked)?,
        full: json(recent)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masking_keeps_the_network_only() {
        assert_eq!(mask_ip("203.0.113.7"), "203.0.113.0");
        assert_eq!(mask_ip("2001:db8:1:2::5"), "2001:db8:1::");
        assert_eq!(mask_ip("nonsense"), "hidden");
    }
}
