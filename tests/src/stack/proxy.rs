//! The load balancer: a real HAProxy in front of the tasks, playing the ALB.
//!
//! HAProxy listens on a free loopback port with one backend of [`SLOTS`]
//! server slots (`server-template`, all in maintenance at first). A sync loop
//! keeps the slots in step with the emulator's target group, through
//! HAProxy's runtime API (a unix socket), following the ALB's documented rules
//! (Application Load Balancers user guide, "Target groups for your
//! Application Load Balancers" -> "Deregistration delay",
//! <https://docs.aws.amazon.com/elasticloadbalancing/latest/application/edit-target-group-attributes.html#deregistration-delay>):
//! - a registered target gets a free slot: `set server … addr <loopback twin>`,
//!   then `state ready`;
//! - a deregistered target (`draining` in the emulator) has its slot set to
//!   `drain`: "Elastic Load Balancing stops sending requests to targets that
//!   are deregistering", while the requests in flight finish;
//! - "If a deregistering target has no in-flight requests and no active
//!   connections, Elastic Load Balancing immediately completes the
//!   deregistration process": a draining slot with no request and no open
//!   connection (HAProxy's busy and idle server connections) goes to `maint`,
//!   is free again, and the proxy tells the emulator
//!   (`/moto-ext/target-drained`), which ends the target's `draining` state;
//! - "the load balancer … closes any remaining connections" once the
//!   deregistration delay has passed: the slot's sessions are shut down
//!   (`shutdown sessions server`) and the deregistration completes;
//! - a draining target registered again (a rolled-back scale-in, or ECS
//!   registering it again) is `ready` again.
//!
//! HAProxy keeps its connections to the tasks alive between requests, as the
//! ALB does (idle ones are kept for a minute, not purged after 5 s), so a
//! draining task's deregistration only completes early when the task closes
//! its idle keep-alive connections itself. HAProxy also health-checks
//! `/health` like the target group, and retries a request whose connection
//! failed on another server.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use test_support::guard::{GuardOpts, Guarded};

use super::{loopback_twin, Stack};

/// Server slots in the backend: more than the stack's MAX_TASKS ever asks for.
pub const SLOTS: usize = 8;
/// The backend's name in HAProxy's config and runtime API.
const BACKEND: &str = "tasks";
/// Poll period of the sync loop: how long a deregistered target may still get
/// new requests, at most (plus one describe_target_health call).
const TICK: Duration = Duration::from_millis(150);
/// The target group's deregistration delay: what is left on a draining target then is cut.
const DELAY: Duration = Duration::from_secs(super::DEREGISTRATION_DELAY_S as u64);

/// What the proxy is doing with one server slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotState {
    /// In maintenance, no target: takes no traffic.
    Free,
    /// Serving a registered target.
    Ready,
    /// Its target was deregistered: no new requests, in-flight ones finish.
    Draining,
}

/// One server slot as last seen (runtime API `show stat` plus the sync loop's own view).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyServer {
    /// Slot name, `task1` … `task8`.
    pub slot: String,
    /// The target it serves (`10.x.y.z:8080` as registered in the emulator), if any.
    pub target: Option<String>,
    /// Where HAProxy sends its requests (`127.x.y.z:8080`).
    pub addr: String,
    /// The sync loop's state for the slot.
    pub state: SlotState,
    /// HAProxy's status column: `UP`, `DOWN`, `DRAIN`, `MAINT`, `UP 1/2`…
    pub status: String,
    /// Requests (sessions) in progress on the server now.
    pub sessions: u64,
    /// Connections open to the server now, busy or idle (keep-alive).
    pub connections: u64,
    /// Requests it has served since start.
    pub total: u64,
}

/// Something the proxy did, for timelines (`make demo`, test failure output).
#[derive(Debug, Clone)]
pub struct ProxyEvent {
    /// When it happened.
    pub at: Instant,
    /// What happened, e.g. `task2 DRAIN (10.0.3.4:8080 deregistered, 3 in flight)`.
    pub what: String,
}

struct Shared {
    servers: Mutex<Vec<ProxyServer>>,
    events: Mutex<Vec<ProxyEvent>>,
    last_error: Mutex<Option<String>>,
}

impl Shared {
    fn note(&self, what: String) {
        tracing::info!("proxy: {what}");
        let event = ProxyEvent {
            at: Instant::now(),
            what,
        };
        self.events.lock().expect("proxy events").push(event);
    }
}

/// A running HAProxy kept in step with the target group; stopped on drop
/// (process killed, config and socket directory removed).
pub struct Proxy {
    port: u16,
    socket: PathBuf,
    shared: Arc<Shared>,
    sync: tokio::task::JoinHandle<()>,
    _process: Guarded,
}

impl Proxy {
    /// Writes the config, starts `haproxy -db` and the sync loop. Fails with a
    /// message naming `make setup` when haproxy is not installed.
    pub async fn start(stack: &Stack) -> anyhow::Result<Self> {
        let haproxy = haproxy_binary()?;
        let mut last = None;
        // A free port can be taken between probe and bind: try twice.
        for _ in 0..2 {
            match Self::launch(&haproxy, stack).await {
                Ok(proxy) => return Ok(proxy),
                Err(e) => last = Some(e),
            }
        }
        Err(last.expect("one attempt at least"))
    }

    async fn launch(haproxy: &Path, stack: &Stack) -> anyhow::Result<Self> {
        let dir = test_support::scratch_dir("visits-haproxy")?;
        let port = test_support::free_port()?;
        let socket = dir.join("admin.sock");
        let config = dir.join("haproxy.cfg");
        std::fs::write(&config, render_config(port, &socket))?;
        let log_path = dir.join("haproxy.log");
        let log = std::fs::File::create(&log_path)?;
        let mut cmd = Command::new(haproxy);
        cmd.arg("-db").arg("-f").arg(&config);
        let opts = GuardOpts {
            grace_s: 3,
            cleanup_dir: Some(dir.clone()),
            ..GuardOpts::default()
        };
        let mut process = Guarded::spawn(
            "haproxy",
            &cmd,
            opts,
            Stdio::from(log.try_clone()?),
            Stdio::from(log),
        )?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = process.try_wait() {
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                bail!("haproxy exited ({status}) while starting:\n{log}");
            }
            if socket.exists() && runtime(&socket, "show info").is_ok() {
                break;
            }
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                bail!("haproxy's runtime socket did not answer within 30 s:\n{log}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let shared = Arc::new(Shared {
            servers: Mutex::new(Vec::new()),
            events: Mutex::new(Vec::new()),
            last_error: Mutex::new(None),
        });
        let sync = Sync {
            stack: stack.clone(),
            socket: socket.clone(),
            shared: shared.clone(),
            slots: (1..=SLOTS).map(|_| None).collect(),
        };
        sync.refresh_view()?;
        shared.note(format!(
            "HAProxy on 127.0.0.1:{port} plays the ALB ({SLOTS} server slots, kept in step with the target group)"
        ));
        let sync = tokio::spawn(sync.run());
        Ok(Self {
            port,
            socket,
            shared,
            sync,
            _process: process,
        })
    }

    /// The load balancer's URL, `http://127.0.0.1:PORT`: send client traffic here.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The slots as last seen by the sync loop (refreshed every tick).
    pub fn servers(&self) -> Vec<ProxyServer> {
        self.shared.servers.lock().expect("proxy servers").clone()
    }

    /// Every change the proxy made, oldest first.
    pub fn events(&self) -> Vec<ProxyEvent> {
        self.shared.events.lock().expect("proxy events").clone()
    }

    /// The sync loop's last error, if its last tick failed.
    pub fn last_error(&self) -> Option<String> {
        self.shared.last_error.lock().expect("proxy error").clone()
    }

    /// Sends one raw runtime API command (e.g. `show stat`) and returns the answer.
    pub fn command(&self, cmd: &str) -> anyhow::Result<String> {
        runtime(&self.socket, cmd)
    }

    /// Waits until `n` slots serve a registered target (`Ready`).
    pub async fn wait_ready(
        &self,
        n: usize,
        timeout: Duration,
    ) -> anyhow::Result<Vec<ProxyServer>> {
        self.wait_until(&format!("{n} ready"), timeout, |s| {
            s.iter().filter(|s| s.state == SlotState::Ready).count() == n
        })
        .await
    }

    /// Waits until `ok(servers)` holds; errors with the proxy's events after `timeout`.
    pub async fn wait_until(
        &self,
        what: &str,
        timeout: Duration,
        ok: impl Fn(&[ProxyServer]) -> bool,
    ) -> anyhow::Result<Vec<ProxyServer>> {
        let deadline = Instant::now() + timeout;
        loop {
            let servers = self.servers();
            if ok(&servers) {
                return Ok(servers);
            }
            if Instant::now() > deadline {
                let events: Vec<String> = self.events().into_iter().map(|e| e.what).collect();
                bail!(
                    "proxy: not {what} after {timeout:?}; slots {servers:#?}\nlast error: {:?}\nevents:\n{}",
                    self.last_error(),
                    events.join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.sync.abort();
    }
}

/// The sync loop's state: which target each slot serves.
struct Sync {
    stack: Stack,
    socket: PathBuf,
    shared: Arc<Shared>,
    /// Slot i (server `task{i+1}`): its target and since when it drains.
    slots: Vec<Option<(String, Option<Instant>)>>,
}

impl Sync {
    async fn run(mut self) {
        loop {
            let result = self.tick().await;
            *self.shared.last_error.lock().expect("proxy error") =
                result.err().map(|e| format!("{e:#}"));
            tokio::time::sleep(TICK).await;
        }
    }

    async fn tick(&mut self) -> anyhow::Result<()> {
        let (registered, draining) = self.targets().await?;
        let stats = self.stats()?;
        let conns = self.connections()?;
        for (i, slot) in self.slots.clone().into_iter().enumerate() {
            let name = slot_name(i);
            match slot {
                Some((target, Some(_))) if registered.contains(&target) => {
                    self.set_state(&name, "ready")?;
                    self.slots[i] = Some((target.clone(), None));
                    self.shared
                        .note(format!("{name} READY again ({target} registered again)"));
                }
                Some((target, None)) if registered.contains(&target) => {}
                Some((target, None)) => {
                    self.set_state(&name, "drain")?;
                    self.slots[i] = Some((target.clone(), Some(Instant::now())));
                    let n = stats.get(&name).map_or(0, |s| s.sessions);
                    let c = conns.get(&name).copied().unwrap_or(0);
                    self.shared.note(format!(
                        "{name} DRAIN ({target} deregistered, {n} in flight, {c} connections): no new requests"
                    ));
                }
                Some((target, Some(since))) => {
                    let busy = stats.get(&name).is_none_or(|s| s.sessions + s.queued > 0);
                    let open = conns.get(&name).copied().unwrap_or(0);
                    if !busy && open == 0 {
                        self.set_state(&name, "maint")?;
                        self.report_drained(&target)?;
                        self.slots[i] = None;
                        self.shared.note(format!(
                            "{name} MAINT ({target} drained: 0 in flight, 0 connections, after {} ms)",
                            since.elapsed().as_millis()
                        ));
                    } else if since.elapsed() >= DELAY {
                        let n = stats.get(&name).map_or(0, |s| s.sessions);
                        self.set_state(&name, "maint")?;
                        runtime(
                            &self.socket,
                            &format!("shutdown sessions server {BACKEND}/{name}"),
                        )?;
                        self.report_drained(&target)?;
                        self.slots[i] = None;
                        self.shared.note(format!(
                            "{name} MAINT ({target} CUT at the {DELAY:?} deregistration delay: {n} in flight, {open} connections closed)"
                        ));
                    }
                }
                None => {}
            }
        }
        let assigned: BTreeSet<String> = self.slots.iter().flatten().map(|s| s.0.clone()).collect();
        // Draining targets the proxy holds no connection to are drained already.
        for target in draining.difference(&assigned) {
            self.report_drained(target)?;
        }
        for target in registered.difference(&assigned) {
            let Some(i) = self.slots.iter().position(Option::is_none) else {
                bail!("no free server slot for {target} (all {SLOTS} in use)");
            };
            let (ip, port) = target.rsplit_once(':').context("target without port")?;
            let twin = loopback_twin(ip).with_context(|| format!("target {ip} is not 10.x"))?;
            let name = slot_name(i);
            runtime(
                &self.socket,
                &format!("set server {BACKEND}/{name} addr {twin} port {port}"),
            )?;
            self.set_state(&name, "ready")?;
            self.slots[i] = Some((target.clone(), None));
            self.shared.note(format!(
                "{name} READY -> {twin}:{port} ({target} registered)"
            ));
        }
        self.refresh_view()
    }

    /// The group's targets as `ip:port`: those that should get traffic, and
    /// the deregistered ones still `draining`.
    async fn targets(&self) -> anyhow::Result<(BTreeSet<String>, BTreeSet<String>)> {
        let (mut serving, mut draining) = (BTreeSet::new(), BTreeSet::new());
        for (ip, port, is_draining) in self.stack.target_health().await? {
            let set = if is_draining {
                &mut draining
            } else {
                &mut serving
            };
            set.insert(format!("{ip}:{port}"));
        }
        Ok((serving, draining))
    }

    /// Ends a deregistered target's `draining` in the emulator: no connection left.
    fn report_drained(&self, target: &str) -> anyhow::Result<()> {
        let id = target.rsplit_once(':').map_or(target, |(ip, _)| ip);
        let v = test_support::moto::target_drained_at(
            &self.stack.endpoint,
            &self.stack.target_group,
            id,
        )?;
        if v["drained"] == true {
            self.shared
                .note(format!("{target} drained: deregistration complete"));
        }
        Ok(())
    }

    fn set_state(&self, name: &str, state: &str) -> anyhow::Result<()> {
        runtime(
            &self.socket,
            &format!("set server {BACKEND}/{name} state {state}"),
        )?;
        Ok(())
    }

    fn stats(&self) -> anyhow::Result<BTreeMap<String, Stat>> {
        parse_stats(&runtime(&self.socket, "show stat")?)
    }

    /// Open connections per server (busy plus idle keep-alive).
    fn connections(&self) -> anyhow::Result<BTreeMap<String, u64>> {
        parse_connections(&runtime(
            &self.socket,
            &format!("show servers conn {BACKEND}"),
        )?)
    }

    /// Publishes the slots (sync state + HAProxy's stats) for [`Proxy::servers`].
    fn refresh_view(&self) -> anyhow::Result<()> {
        let stats = self.stats()?;
        let conns = self.connections()?;
        let view = (0..SLOTS)
            .map(|i| {
                let name = slot_name(i);
                let stat = stats.get(&name).cloned().unwrap_or_default();
                let connections = conns.get(&name).copied().unwrap_or(0);
                let (target, state) = match &self.slots[i] {
                    None => (None, SlotState::Free),
                    Some((t, None)) => (Some(t.clone()), SlotState::Ready),
                    Some((t, Some(_))) => (Some(t.clone()), SlotState::Draining),
                };
                ProxyServer {
                    slot: name,
                    target,
                    addr: stat.addr,
                    state,
                    status: stat.status,
                    sessions: stat.sessions,
                    connections,
                    total: stat.total,
                }
            })
            .collect();
        *self.shared.servers.lock().expect("proxy servers") = view;
        Ok(())
    }
}

fn slot_name(i: usize) -> String {
    format!("task{}", i + 1)
}

/// One server's row of `show stat`.
#[derive(Debug, Clone, Default)]
struct Stat {
    queued: u64,
    sessions: u64,
    total: u64,
    status: String,
    addr: String,
}

/// Parses `show stat` CSV (header `# pxname,svname,…`) into the backend's servers.
fn parse_stats(csv: &str) -> anyhow::Result<BTreeMap<String, Stat>> {
    let mut lines = csv.lines();
    let header = lines
        .next()
        .and_then(|h| h.strip_prefix("# "))
        .with_context(|| format!("show stat: no header in {csv:?}"))?;
    let cols: Vec<&str> = header.split(',').collect();
    let col = |name: &str| {
        cols.iter()
            .position(|c| *c == name)
            .with_context(|| format!("show stat: no column {name}"))
    };
    let (px, sv, qcur, scur, stot, status, addr) = (
        col("pxname")?,
        col("svname")?,
        col("qcur")?,
        col("scur")?,
        col("stot")?,
        col("status")?,
        col("addr")?,
    );
    let mut out = BTreeMap::new();
    for line in lines.filter(|l| !l.is_empty()) {
        let f: Vec<&str> = line.split(',').collect();
        let get = |i: usize| f.get(i).copied().unwrap_or("");
        if get(px) != BACKEND || matches!(get(sv), "BACKEND" | "FRONTEND") {
            continue;
        }
        let num = |i: usize| get(i).parse().unwrap_or(0);
        out.insert(
            get(sv).to_string(),
            Stat {
                queued: num(qcur),
                sessions: num(scur),
                total: num(stot),
                status: get(status).to_string(),
                addr: get(addr).to_string(),
            },
        );
    }
    Ok(out)
}

/// Parses `show servers conn <backend>` (HAProxy 2.4+; header `# bkname/svname
/// bkid/svid addr port - purge_delay used_cur used_max need_est unsafe_nb
/// safe_nb idle_lim idle_cur …`) into open connections per server: the busy
/// ones (`used_cur`) plus the idle ones kept for reuse (`idle_cur`).
fn parse_connections(text: &str) -> anyhow::Result<BTreeMap<String, u64>> {
    let mut lines = text.lines();
    let header = lines
        .next()
        .and_then(|h| h.strip_prefix("# "))
        .with_context(|| format!("show servers conn: no header in {text:?}"))?;
    let cols: Vec<&str> = header.split_whitespace().collect();
    let col = |name: &str| {
        cols.iter()
            .position(|c| *c == name)
            .with_context(|| format!("show servers conn: no column {name}"))
    };
    let (used, idle) = (col("used_cur")?, col("idle_cur")?);
    let mut out = BTreeMap::new();
    for line in lines.filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split_whitespace().collect();
        let Some((_, server)) = f.first().and_then(|n| n.split_once('/')) else {
            continue;
        };
        let num = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        out.insert(server.to_string(), num(used) + num(idle));
    }
    Ok(out)
}

/// One runtime API command on the admin socket (non-interactive: one
/// command per connection). HAProxy answers errors as text, so an answer that
/// does not look like success for a `set` command is an error here.
fn runtime(socket: &Path, cmd: &str) -> anyhow::Result<String> {
    let mut conn =
        UnixStream::connect(socket).with_context(|| format!("connect {}", socket.display()))?;
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    conn.write_all(format!("{cmd}\n").as_bytes())?;
    conn.shutdown(std::net::Shutdown::Write)?;
    let mut answer = String::new();
    conn.read_to_string(&mut answer)
        .with_context(|| format!("haproxy: {cmd}"))?;
    let lower = answer.to_ascii_lowercase();
    if cmd.starts_with("set ")
        && ["unknown", "no such", "invalid", "require", "error"]
            .iter()
            .any(|w| lower.contains(w))
    {
        bail!("haproxy refused `{cmd}`: {}", answer.trim());
    }
    Ok(answer)
}

/// HAProxy's config: loopback frontend, [`SLOTS`] server slots in maintenance,
/// health checks like the target group's, retries on connection failure.
fn render_config(port: u16, socket: &Path) -> String {
    format!(
        r#"# Written by the local stack (tests/src/stack/proxy.rs); HAProxy plays the ALB.
global
    stats socket {socket} mode 600 level admin
    maxconn 4096

defaults
    mode http
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    timeout queue 10s
    # A request whose connection failed (a task that just exited) goes to another server.
    retries 3
    option redispatch 1
    retry-on conn-failure empty-response

frontend visits
    bind 127.0.0.1:{port}
    default_backend {BACKEND}

backend {BACKEND}
    balance roundrobin
    # The target group's health check (service.yaml: /health, 200). Lenient on
    # purpose: a busy 2-core CI machine must not mark a healthy task down.
    option httpchk GET /health
    http-check expect status 200
    timeout check 5s
    default-server inter 1s fall 3 rise 1 pool-purge-delay 60s
    # Idle connections to the tasks stay open for reuse, as the ALB keeps them.
    http-reuse always
    server-template task 1-{SLOTS} 127.0.0.1:9 check disabled
"#,
        socket = socket.display()
    )
}

/// `haproxy` on PATH or in /usr/sbin (Debian's place), or an error naming `make setup`.
pub fn haproxy_binary() -> anyhow::Result<PathBuf> {
    let extra = [PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/sbin")];
    test_support::paths::find_tool("haproxy", &extra).with_context(|| {
        "haproxy is not installed: run `make setup` (the local stack's prerequisites install it \
         with tools/ensure-apt.sh haproxy:haproxy)"
            .to_string()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_keep_only_the_backend_servers() {
        let csv = "# pxname,svname,qcur,qmax,scur,smax,stot,status,addr\n\
                   visits,FRONTEND,,,3,5,10,OPEN,\n\
                   tasks,task1,0,0,2,4,9,UP,127.0.1.7:8080\n\
                   tasks,task2,1,1,0,0,0,MAINT,127.0.0.1:9\n\
                   tasks,BACKEND,0,0,2,4,9,UP,\n";
        let stats = parse_stats(csv).unwrap();
        assert_eq!(stats.len(), 2);
        assert_eq!(stats["task1"].sessions, 2);
        assert_eq!(stats["task1"].addr, "127.0.1.7:8080");
        assert_eq!(stats["task2"].queued, 1);
        assert_eq!(stats["task2"].status, "MAINT");
    }

    #[test]
    fn connections_count_busy_and_idle() {
        let text = "# bkname/svname bkid/svid addr port - purge_delay used_cur used_max need_est unsafe_nb safe_nb idle_lim idle_cur idle_per_thr[2]\n\
                    tasks/task1 3/1 127.0.1.7 8080 - 60000 2 4 0 0 3 -1 3 3 0\n\
                    tasks/task2 3/2 127.0.0.1 9 - 60000 0 0 0 0 0 -1 0 0 0\n";
        let c = parse_connections(text).unwrap();
        assert_eq!(c["task1"], 5);
        assert_eq!(c["task2"], 0);
    }

    #[test]
    fn config_binds_loopback_and_declares_the_slots() {
        let cfg = render_config(4242, Path::new("/tmp/x/admin.sock"));
        assert!(cfg.contains("bind 127.0.0.1:4242"));
        assert!(cfg.contains(&format!("server-template task 1-{SLOTS}")));
        assert!(cfg.contains("stats socket /tmp/x/admin.sock"));
    }
}
