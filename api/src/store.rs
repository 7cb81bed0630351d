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
use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot, Semaphore};

/// A stored visit, as `POST /api/visit` returns it.
#[derive(Clone, Debug, Serialize, sqlx::FromRow, PartialEq, Eq)]
pub struct Visit {
    /// Row id, increasing.
    pub id: i64,
    /// When the row was written (the transaction's time).
    pub visited_at: DateTime<Utc>,
    /// The task that served it.
    pub task_id: String,
    /// First hop of `X-Forwarded-For`, else the peer address.
    pub client_ip: Option<String>,
    /// The request's user agent, truncated.
    pub user_agent: Option<String>,
    /// The optional page from the request body.
    pub page: Option<String>,
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
        let msg: Arc<str> = e.to_string().into();
        let unavailable = match &e {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_) => true,
            // 08: connection exceptions, 57: operator intervention (shutdown, statement timeout),
            // 53: insufficient resources.
            sqlx::Error::Database(db) => db
                .code()
                .is_some_and(|c| c.starts_with("08") || c.starts_with("57") || c.starts_with("53")),
            _ => false,
        };
        if unavailable {
            StoreError::Unavailable(msg)
        } else {
            StoreError::Internal(msg)
        }
    }
}

type WriteJob = (NewVisit, oneshot::Sender<Result<Visit, StoreError>>);
type ReadJob = oneshot::Sender<Result<Bytes, StoreError>>;

/// Handle to the writer and reader tasks; cheap to clone.
#[derive(Clone)]
pub struct Store {
    writes: mpsc::Sender<WriteJob>,
    reads: mpsc::Sender<ReadJob>,
    /// Bound on how long a request waits for its batch (acquire + statement timeouts).
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
}

/// Queue depth before new requests are turned away with 503 instead of piling up.
const QUEUE: usize = 8192;

impl Store {
    /// Starts the writer and reader tasks on `pool`. They end when every `Store` clone is gone.
    pub fn start(pool: PgPool, limits: Limits, wait: Duration) -> Store {
        let (writes, wrx) = mpsc::channel(QUEUE);
        let (reads, rrx) = mpsc::channel(QUEUE);
        tokio::spawn(writer(pool.clone(), wrx, limits.batch_max, limits.writers));
        tokio::spawn(reader(pool, rrx, limits.readers));
        Store {
            writes,
            reads,
            wait,
        }
    }

    /// Records a visit; returns only after its row is committed.
    pub async fn record(&self, visit: NewVisit) -> Result<Visit, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.writes
            .try_send((visit, tx))
            .map_err(|_| StoreError::Unavailable("write queue full".into()))?;
        self.await_reply(rx).await
    }

    /// `{ total, recent }` as JSON bytes, serialised once per query for all its waiters.
    pub async fn summary(&self) -> Result<Bytes, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.reads
            .try_send(tx)
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

fn writer(
    pool: PgPool,
    rx: mpsc::Receiver<WriteJob>,
    max: usize,
    writers: usize,
) -> impl Future<Output = ()> {
    batches(rx, max, writers, move |mut jobs: Vec<WriteJob>| {
        // Skip requests whose client has gone (timed out): nobody would learn the id.
        jobs.retain(|(_, tx)| !tx.is_closed());
        let pool = pool.clone();
        async move {
            if !jobs.is_empty() {
                commit_batch(&pool, jobs).await;
            }
        }
    })
}

/// Inserts one batch and answers each of its waiters.
async fn commit_batch(pool: &PgPool, jobs: Vec<WriteJob>) {
    match insert_batch(pool, &jobs).await {
        Ok(rows) => {
            for ((_, tx), row) in jobs.into_iter().zip(rows) {
                let _ = tx.send(Ok(row));
            }
        }
        Err(e) => {
            tracing::error!(error = %e, rows = jobs.len(), "visit batch failed");
            for (_, tx) in jobs {
                let _ = tx.send(Err(e.clone()));
            }
        }
    }
}

async fn insert_batch(pool: &PgPool, jobs: &[WriteJob]) -> Result<Vec<Visit>, StoreError> {
    let n = jobs.len();
    let mut task = Vec::with_capacity(n);
    let mut ip = Vec::with_capacity(n);
    let mut ua = Vec::with_capacity(n);
    let mut page = Vec::with_capacity(n);
    for (v, _) in jobs {
        task.push(v.task_id.as_str());
        ip.push(v.client_ip.as_deref());
        ua.push(v.user_agent.as_deref());
        page.push(v.page.as_deref());
    }
    let mut rows: Vec<Visit> = sqlx::query_as(
        "INSERT INTO visits (task_id, client_ip, user_agent, page) \
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[]) \
         RETURNING id, visited_at, task_id, client_ip, user_agent, page",
    )
    .bind(&task)
    .bind(&ip)
    .bind(&ua)
    .bind(&page)
    .fetch_all(pool)
    .await?;
    if rows.len() != n {
        return Err(StoreError::Internal(
            format!("inserted {} rows for {n} visits", rows.len()).into(),
        ));
    }
    // Identity values are drawn in the order the rows are inserted, which is UNNEST's order
    // (other batches' values may interleave, but within one statement they increase); sorting
    // by id pairs each row with its request whatever order RETURNING uses.
    rows.sort_unstable_by_key(|r| r.id);
    Ok(rows)
}

fn reader(pool: PgPool, rx: mpsc::Receiver<ReadJob>, readers: usize) -> impl Future<Output = ()> {
    batches(rx, QUEUE, readers, move |waiters: Vec<ReadJob>| {
        let pool = pool.clone();
        async move {
            let result = summary(&pool).await;
            if let Err(e) = &result {
                tracing::error!(error = %e, "visits summary failed");
            }
            for w in waiters {
                let _ = w.send(result.clone());
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
async fn summary(pool: &PgPool) -> Result<Bytes, StoreError> {
    type Row = (
        i64,
        Option<i64>,
        Option<DateTime<Utc>>,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
    );
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT t.total, v.id, v.visited_at, v.task_id, v.client_ip, v.user_agent, v.page \
         FROM visit_totals t \
         LEFT JOIN LATERAL (SELECT * FROM visits ORDER BY id DESC LIMIT 10) v ON true \
         ORDER BY v.id DESC",
    )
    .fetch_all(pool)
    .await?;
    let total = rows.first().map_or(0, |r| r.0);
    let recent = rows
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
    serde_json::to_vec(&Summary { total, recent })
        .map(Bytes::from)
        .map_err(|e| StoreError::Internal(e.to_string().into()))
}
