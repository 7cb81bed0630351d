//! Child processes that cannot outlive the process that started them.
//!
//! A test binary can exit without running destructors (a `static` never drops,
//! a panic may abort, the harness may be killed). So every long-running child
//! (postgres, moto, API tasks) is started under a tiny `sh` wrapper that holds
//! the read end of a pipe whose write end only we hold. When we close it — on
//! [`Guarded::shutdown`], on drop, or because our process died, whatever the
//! cause — a watcher in the wrapper sees EOF, signals the child, escalates to
//! SIGKILL after a grace period and removes the child's scratch directory.
//! The pipe, unlike `PR_SET_PDEATHSIG`, does not fire when merely the
//! spawning *thread* ends (test threads end all the time).

use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;

/// The wrapper. `$1..` is the real command line. Environment: GUARD_SIG (the
/// polite stop signal), GUARD_GRACE (seconds before SIGKILL), GUARD_CLEANUP
/// (a directory to remove once the child is gone after EOF; may be empty).
/// Signals TERM/INT sent to the wrapper are forwarded to the child, so
/// [`Guarded::signal`] behaves like signalling the child itself.
const WRAPPER: &str = r#"
exec 3<&0 </dev/null
"$@" & c=$!
(
  read -r _ <&3 || :
  kill -s "$GUARD_SIG" "$c" 2>/dev/null
  n=0
  while kill -0 "$c" 2>/dev/null && [ "$n" -lt $((GUARD_GRACE * 10)) ]; do sleep 0.1; n=$((n + 1)); done
  kill -s KILL "$c" 2>/dev/null
  [ -n "$GUARD_CLEANUP" ] && rm -rf "$GUARD_CLEANUP"
) &
exec 3<&-
trap 'kill -s TERM "$c" 2>/dev/null' TERM
trap 'kill -s INT "$c" 2>/dev/null' INT
while :; do
  wait "$c"; s=$?
  kill -0 "$c" 2>/dev/null || break
done
exit "$s"
"#;

/// How a guarded child is stopped and cleaned up.
#[derive(Debug, Clone)]
pub struct GuardOpts {
    /// Signal name for a polite stop (`TERM`, or `INT`/`QUIT` for postgres).
    pub stop_signal: &'static str,
    /// Seconds between the polite signal and SIGKILL.
    pub grace_s: u32,
    /// Directory removed once the child has gone on shutdown or parent death.
    pub cleanup_dir: Option<PathBuf>,
    /// Run as this uid/gid (postgres refuses to run as root).
    pub user: Option<(u32, u32)>,
}

impl Default for GuardOpts {
    fn default() -> Self {
        Self {
            stop_signal: "TERM",
            grace_s: 10,
            cleanup_dir: None,
            user: None,
        }
    }
}

/// A running child under the guard wrapper. Dropping it stops the child.
pub struct Guarded {
    name: String,
    wrapper: Child,
    lifeline: Option<ChildStdin>,
    opts: GuardOpts,
}

impl Guarded {
    /// Starts `cmd` (its program, args, env and cwd; stdin is always
    /// /dev/null) under the guard, with the given stdout and stderr.
    /// `name` labels errors.
    pub fn spawn(
        name: &str,
        cmd: &Command,
        opts: GuardOpts,
        stdout: Stdio,
        stderr: Stdio,
    ) -> anyhow::Result<Self> {
        use std::os::unix::process::CommandExt;
        let mut sh = Command::new("sh");
        sh.arg("-c").arg(WRAPPER).arg("guard");
        sh.arg(cmd.get_program());
        sh.args(cmd.get_args());
        for (key, value) in cmd.get_envs() {
            match value {
                Some(v) => sh.env(key, v),
                None => sh.env_remove(key),
            };
        }
        if let Some(dir) = cmd.get_current_dir() {
            sh.current_dir(dir);
        }
        let cleanup = opts
            .cleanup_dir
            .as_ref()
            .map(|d| d.clone().into_os_string())
            .unwrap_or_default();
        sh.env("GUARD_SIG", opts.stop_signal)
            .env("GUARD_GRACE", opts.grace_s.to_string())
            .env("GUARD_CLEANUP", cleanup)
            .stdin(Stdio::piped())
            .stdout(stdout)
            .stderr(stderr)
            // Own process group: a terminal's Ctrl-C reaches only us, and we
            // tear the children down in order.
            .process_group(0);
        if let Some((uid, gid)) = opts.user {
            sh.uid(uid).gid(gid);
        }
        let mut wrapper = sh.spawn().with_context(|| format!("start {name}"))?;
        let lifeline = wrapper.stdin.take();
        Ok(Self {
            name: name.to_string(),
            wrapper,
            lifeline,
            opts,
        })
    }

    /// The wrapper's pid (also its process group id).
    pub fn pid(&self) -> u32 {
        self.wrapper.id()
    }

    /// The child's stdout, when it was spawned with `Stdio::piped()`.
    pub fn take_stdout(&mut self) -> Option<std::process::ChildStdout> {
        self.wrapper.stdout.take()
    }

    /// The child's stderr, when it was spawned with `Stdio::piped()`.
    pub fn take_stderr(&mut self) -> Option<std::process::ChildStderr> {
        self.wrapper.stderr.take()
    }

    /// Sends SIGTERM or SIGINT to the child (through the wrapper).
    pub fn signal(&self, sig: Signal) -> anyhow::Result<()> {
        kill(Pid::from_raw(self.wrapper.id() as i32), sig)
            .with_context(|| format!("signal {sig} to {}", self.name))
    }

    /// The exit status once the child (and so the wrapper) has exited.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.wrapper.try_wait().ok().flatten()
    }

    /// Waits up to `timeout` for the child to exit.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the child without removing its scratch directory (e.g. to restart
    /// postgres on the same data): forwards `sig`, waits, then kills the group.
    pub fn stop_keep_files(mut self, sig: Signal) -> Option<ExitStatus> {
        let _ = self.signal(sig);
        let status = self.wait_timeout(Duration::from_secs(u64::from(self.opts.grace_s) + 5));
        // Kill the watcher before it sees EOF, so it does not clean up.
        let _ = killpg(Pid::from_raw(self.wrapper.id() as i32), Signal::SIGKILL);
        let _ = self.wrapper.wait();
        self.lifeline = None;
        status
    }

    /// Stops the child politely, then by force, and removes its scratch dir.
    pub fn shutdown(&mut self) {
        // EOF on the lifeline: the watcher signals, escalates, cleans up.
        self.lifeline = None;
        let _ = self.wait_timeout(Duration::from_secs(u64::from(self.opts.grace_s) + 5));
        if let Some(dir) = &self.opts.cleanup_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
        let _ = killpg(Pid::from_raw(self.wrapper.id() as i32), Signal::SIGKILL);
        let _ = self.wrapper.wait();
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        if self.lifeline.is_some() {
            self.shutdown();
        }
    }
}

impl std::fmt::Debug for Guarded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guarded")
            .field("name", &self.name)
            .field("pid", &self.wrapper.id())
            .finish()
    }
}

/// Removes a scratch directory when dropped *or* when the test binary exits by
/// any means (a `static` stack never drops): a guarded `sleep` whose guard
/// owns the directory.
#[derive(Debug)]
pub struct DirGuard {
    _sleeper: Guarded,
}

impl DirGuard {
    /// Guards `dir` (created by the caller, e.g. with [`crate::scratch_dir`]).
    pub fn new(dir: &std::path::Path) -> anyhow::Result<Self> {
        let mut cmd = Command::new("sleep");
        cmd.arg("2147483647");
        let opts = GuardOpts {
            grace_s: 1,
            cleanup_dir: Some(dir.to_path_buf()),
            ..GuardOpts::default()
        };
        let sleeper = Guarded::spawn(
            &format!("cleanup of {}", dir.display()),
            &cmd,
            opts,
            Stdio::null(),
            Stdio::null(),
        )?;
        Ok(Self { _sleeper: sleeper })
    }
}
