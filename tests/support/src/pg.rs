//! A private throwaway PostgreSQL cluster for tests.
//!
//! [`shared`] gives each test binary one cluster (initdb costs seconds); each
//! test then takes its own database with [`PgCluster::fresh_database`]. Tests
//! that stop and restart the server (outage tests) start their own with
//! [`PgCluster::new_private`] so they don't disturb the others.
//!
//! When `DATABASE_URL` is set, [`PgCluster::new`] and [`shared`] use that
//! server instead (databases are still created per test); `stop`/`start` then
//! fail, because we don't own that server.
//!
//! Cleanup: postgres runs under [`crate::guard`], so it is stopped and its
//! directory removed when the cluster drops *or* when the test binary exits
//! by any means (a `static` never drops).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use nix::sys::signal::Signal;

use crate::guard::{GuardOpts, Guarded};

/// A PostgreSQL server the tests may create databases in.
#[derive(Debug)]
pub struct PgCluster {
    inner: Inner,
}

#[derive(Debug)]
enum Inner {
    /// `DATABASE_URL` given: someone else's server.
    External { url: String },
    /// Our own cluster in a scratch directory.
    Local(Local),
}

#[derive(Debug)]
struct Local {
    root: PathBuf,
    bin: PathBuf,
    port: u16,
    user: Option<(u32, u32)>,
    process: Mutex<Option<Guarded>>,
}

/// One cluster per test binary, started on first use.
///
/// Panics with the reason (e.g. PostgreSQL binaries missing: `make setup`)
/// when it cannot start, since no test using it could run.
pub fn shared() -> &'static PgCluster {
    static SHARED: OnceLock<PgCluster> = OnceLock::new();
    SHARED
        .get_or_init(|| PgCluster::new().unwrap_or_else(|e| panic!("PostgreSQL for tests: {e:#}")))
}

impl PgCluster {
    /// The server named by `DATABASE_URL`, or else a new private cluster.
    pub fn new() -> anyhow::Result<Self> {
        match std::env::var("DATABASE_URL") {
            Ok(url) if !url.is_empty() => Ok(Self {
                inner: Inner::External { url },
            }),
            _ => Self::new_private(),
        }
    }

    /// Always a new private cluster (initdb + postgres on a free loopback port).
    pub fn new_private() -> anyhow::Result<Self> {
        let bin = find_bin_dir()?;
        let root = crate::scratch_dir("visits-pg")?;
        let user = postgres_user_if_root()?;
        if let Some((uid, gid)) = user {
            // The guard wrapper runs as postgres and removes this dir itself.
            nix::unistd::chown(&root, Some(uid.into()), Some(gid.into()))
                .context("chown the cluster dir to postgres")?;
        }
        let mut local = Local {
            root,
            bin,
            port: 0,
            user,
            process: Mutex::new(None),
        };
        local.initdb()?;
        // A port picked free can be taken before postgres binds it: retry once.
        let mut last_err = None;
        for _ in 0..2 {
            local.port = crate::free_port()?;
            match local.launch() {
                Ok(()) => {
                    last_err = None;
                    break;
                }
                Err(e) => last_err = Some(e),
            }
        }
        if let Some(e) = last_err {
            let _ = std::fs::remove_dir_all(&local.root);
            return Err(e);
        }
        Ok(Self {
            inner: Inner::Local(local),
        })
    }

    /// URL of the `postgres` maintenance database.
    pub fn url(&self) -> String {
        match &self.inner {
            Inner::External { url } => url.clone(),
            Inner::Local(l) => format!("postgres://postgres@127.0.0.1:{}/postgres", l.port),
        }
    }

    /// Creates database `name` and returns its URL.
    pub fn create_database(&self, name: &str) -> anyhow::Result<String> {
        if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            bail!("database name must be [A-Za-z0-9_]: {name:?}");
        }
        let createdb = match &self.inner {
            Inner::Local(l) => l.bin.join("createdb"),
            Inner::External { .. } => crate::paths::find_tool("createdb", &pg_bin_dirs())
                .context("createdb not found: run `make setup`")?,
        };
        let out = Command::new(createdb)
            .arg(format!("--maintenance-db={}", self.url()))
            .arg(name)
            .env("PGCONNECT_TIMEOUT", "30")
            .output()
            .context("run createdb")?;
        if !out.status.success() {
            bail!(
                "createdb {name}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(with_database(&self.url(), name))
    }

    /// Creates a database with a unique name starting with `prefix`; returns its URL.
    pub fn fresh_database(&self, prefix: &str) -> anyhow::Result<String> {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "{prefix}_{}_{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        self.create_database(&name)
    }

    /// Stops the server (fast shutdown), keeping its data for [`PgCluster::start`].
    pub fn stop(&self) -> anyhow::Result<()> {
        let l = self.local("stop")?;
        let process = l.process.lock().expect("pg lock").take();
        if let Some(p) = process {
            p.stop_keep_files(Signal::SIGINT);
        }
        // The postmaster closes its sockets and removes its pid file last; on a
        // loaded machine that can outlast the wait above, and a start() or an
        // outage assertion must not race it.
        let pidfile = l.data().join("postmaster.pid");
        let t0 = std::time::Instant::now();
        while pidfile.exists() {
            if t0.elapsed() > std::time::Duration::from_secs(60) {
                bail!(
                    "postgres did not stop within 60 s ({} remains)",
                    pidfile.display()
                );
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        Ok(())
    }

    /// Starts the stopped server again on the same port and data; waits until
    /// it accepts connections.
    pub fn start(&self) -> anyhow::Result<()> {
        let l = self.local("start")?;
        if l.process.lock().expect("pg lock").is_some() {
            return Ok(());
        }
        l.launch()
    }

    fn local(&self, what: &str) -> anyhow::Result<&Local> {
        match &self.inner {
            Inner::Local(l) => Ok(l),
            Inner::External { .. } => bail!("cannot {what} a DATABASE_URL server we don't own"),
        }
    }
}

impl Local {
    fn data(&self) -> PathBuf {
        self.root.join("data")
    }

    /// Runs initdb under the guard too, so a test binary killed mid-initdb
    /// leaves no directory behind.
    fn initdb(&self) -> anyhow::Result<()> {
        let mut cmd = Command::new(self.bin.join("initdb"));
        cmd.arg("-D")
            .arg(self.data())
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ])
            .current_dir(&self.root);
        let log_path = self.root.join("initdb.log");
        let log = std::fs::File::create(&log_path)?;
        let opts = GuardOpts {
            stop_signal: "TERM",
            grace_s: 5,
            cleanup_dir: Some(self.root.clone()),
            user: self.user,
        };
        let mut process = Guarded::spawn(
            "initdb",
            &cmd,
            opts,
            Stdio::from(log.try_clone()?),
            Stdio::from(log),
        )?;
        let status = process.wait_timeout(Duration::from_secs(180));
        // Done (or hung): stop the guard without letting it remove the dir.
        process.stop_keep_files(Signal::SIGTERM);
        match status {
            Some(s) if s.success() => Ok(()),
            other => bail!(
                "initdb failed ({other:?}): {}",
                std::fs::read_to_string(&log_path).unwrap_or_default()
            ),
        }
    }

    fn launch(&self) -> anyhow::Result<()> {
        let log_path = self.root.join("postgres.log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)?;
        if let Some((uid, gid)) = self.user {
            nix::unistd::chown(&log_path, Some(uid.into()), Some(gid.into()))?;
        }
        let mut cmd = Command::new(self.bin.join("postgres"));
        cmd.arg("-D")
            .arg(self.data())
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-k"])
            .arg(&self.root)
            // Durability is irrelevant for throwaway data; speed is not.
            .args(["-c", "fsync=off", "-c", "synchronous_commit=off"])
            .args(["-c", "full_page_writes=off", "-c", "max_connections=300"])
            .current_dir(&self.root);
        let opts = GuardOpts {
            // SIGQUIT = immediate shutdown: nothing to keep on parent death.
            stop_signal: "QUIT",
            grace_s: 5,
            cleanup_dir: Some(self.root.clone()),
            user: self.user,
        };
        let mut process = Guarded::spawn(
            "postgres",
            &cmd,
            opts,
            Stdio::from(log.try_clone()?),
            Stdio::from(log),
        )?;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = process.try_wait() {
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                bail!("postgres exited ({status}) while starting:\n{log}");
            }
            if self.ready() {
                break;
            }
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                bail!("postgres did not accept connections within 60 s:\n{log}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        *self.process.lock().expect("pg lock") = Some(process);
        Ok(())
    }

    /// `pg_isready` succeeds only once the server accepts connections (the
    /// socket opens earlier, during recovery).
    fn ready(&self) -> bool {
        Command::new(self.bin.join("pg_isready"))
            .args([
                "-q",
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-t",
                "2",
            ])
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    }
}

impl Drop for Local {
    fn drop(&mut self) {
        if let Some(mut p) = self.process.lock().map(|mut g| g.take()).ok().flatten() {
            p.shutdown();
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn pg_bin_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path().join("bin"))
                .collect()
        })
        .unwrap_or_default();
    // Newest major version first.
    dirs.sort_by_key(|d| std::cmp::Reverse(version_of(d)));
    dirs
}

fn version_of(bin: &Path) -> u32 {
    bin.parent()
        .and_then(|p| p.file_name())
        .and_then(|n| n.to_str())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// The directory holding initdb, postgres, pg_isready and createdb.
fn find_bin_dir() -> anyhow::Result<PathBuf> {
    let initdb = crate::paths::find_tool("initdb", &pg_bin_dirs())
        .context("PostgreSQL server binaries (initdb, postgres) not found: run `make setup`")?;
    // Follow symlinks (/usr/local/bin/initdb -> /usr/lib/postgresql/15/bin/initdb)
    // so pg_isready and createdb come from the same installation.
    let real = std::fs::canonicalize(&initdb).unwrap_or(initdb);
    let dir = real
        .parent()
        .map(PathBuf::from)
        .context("initdb has no parent dir")?;
    for tool in ["postgres", "pg_isready", "createdb"] {
        if !dir.join(tool).is_file() {
            bail!(
                "{} missing next to initdb: run `make setup`",
                dir.join(tool).display()
            );
        }
    }
    Ok(dir)
}

/// postgres refuses to run as root: when we are root, run it as `postgres`.
fn postgres_user_if_root() -> anyhow::Result<Option<(u32, u32)>> {
    if !nix::unistd::geteuid().is_root() {
        return Ok(None);
    }
    let user = nix::unistd::User::from_name("postgres")?
        .context("running as root needs the `postgres` OS user (installed with PostgreSQL): run `make setup`")?;
    Ok(Some((user.uid.as_raw(), user.gid.as_raw())))
}

/// `url` with its database path replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let after_scheme = base.find("://").map(|i| i + 3).unwrap_or(0);
    let base = match base[after_scheme..].find('/') {
        Some(i) => &base[..after_scheme + i],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_replaced_in_url() {
        assert_eq!(
            with_database("postgres://u@h:1/postgres", "x"),
            "postgres://u@h:1/x"
        );
        assert_eq!(with_database("postgres://u@h:1", "x"), "postgres://u@h:1/x");
        assert_eq!(
            with_database("postgres://u:p@h/db?sslmode=disable", "x"),
            "postgres://u:p@h/x?sslmode=disable"
        );
    }
}
