//! Smoke tests of `make demo`'s binary (`demo --fast`: the template's alarm
//! periods at a twentieth): the whole loop runs (scale-out and scale-in
//! completed, 0 failed requests, exit 0), and the demo leaves no process and
//! no scratch directory behind, neither at the end nor on Ctrl-C.
//!
//! Needs what `make test` prepares (TEST_PREREQS in mk/stack.mk): the
//! project venv, HAProxy, and debug builds of visits-api and the functions.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// The demo ends by itself well within this (about a minute when idle).
const RUN_TIMEOUT: Duration = Duration::from_secs(480);

fn demo(args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_demo"))
        .args(args)
        .stdout(Stdio::piped())
        // Unread, a piped stderr could fill up and stall the demo.
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the demo binary")
}

/// Lines of the child's stdout as they come, on a channel.
fn lines(child: &mut Child) -> mpsc::Receiver<String> {
    let out = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Waits for the child to exit, collecting its output and noting its
/// processes and dirs in `seen` meanwhile; kills it after `timeout`.
fn finish(
    child: &mut Child,
    rx: &mpsc::Receiver<String>,
    seen: &mut Seen,
    timeout: Duration,
) -> (i32, String) {
    let deadline = Instant::now() + timeout;
    let mut out = String::new();
    loop {
        while let Ok(line) = rx.try_recv() {
            out.push_str(&line);
            out.push('\n');
        }
        seen.note(child.id());
        if let Some(status) = child.try_wait().expect("wait for the demo") {
            // What is left in the pipe.
            while let Ok(line) = rx.recv_timeout(Duration::from_secs(2)) {
                out.push_str(&line);
                out.push('\n');
            }
            return (status.code().unwrap_or(-1), out);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the demo did not end within {timeout:?}; its output:\n{out}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Scratch directories that the demo process `pid` created (test-support
/// names them `<prefix>-<pid>-<seq>-<nanos>` under the temp dir).
fn scratch_dirs_of(pid: u32) -> Vec<PathBuf> {
    let tag = format!("-{pid}-");
    std::fs::read_dir(std::env::temp_dir())
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with("visits-") && n.contains(&tag))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Every process under `root` now (pid, command), from /proc's parent links.
fn descendants(root: u32) -> Vec<(u32, String)> {
    let mut parent = std::collections::HashMap::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // "pid (comm) state ppid ...": comm may hold spaces, so split after ')'.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if let Some(ppid) = ppid {
            parent.insert(pid, ppid);
        }
    }
    let under = |mut p: u32| {
        for _ in 0..64 {
            match parent.get(&p) {
                Some(&pp) if pp == root => return true,
                Some(&pp) if pp > 1 => p = pp,
                _ => return false,
            }
        }
        false
    };
    parent
        .keys()
        .filter(|&&p| under(p))
        .map(|&p| {
            let cmd = std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
            (p, String::from_utf8_lossy(&cmd).replace('\0', " "))
        })
        .collect()
}

/// The demo's processes and scratch dirs, noted while it runs.
#[derive(Default)]
struct Seen {
    procs: Vec<(u32, String)>,
    dirs: Vec<PathBuf>,
}

impl Seen {
    fn note(&mut self, pid: u32) {
        for p in descendants(pid) {
            if !self.procs.iter().any(|q| q.0 == p.0) {
                self.procs.push(p);
            }
        }
        for d in scratch_dirs_of(pid) {
            if !self.dirs.contains(&d) {
                self.dirs.push(d);
            }
        }
    }
}

/// Everything the demo `pid` started is gone (the guards stop children and
/// remove their dirs right after the demo exits: a short grace for that).
fn assert_torn_down(pid: u32, seen: &Seen, out: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let dirs = scratch_dirs_of(pid);
        let alive: Vec<&(u32, String)> = seen
            .procs
            .iter()
            .filter(|(p, cmd)| {
                let now = std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
                !now.is_empty() && String::from_utf8_lossy(&now).replace('\0', " ") == *cmd
            })
            .collect();
        if dirs.is_empty() && alive.is_empty() {
            return;
        }
        if Instant::now() > deadline {
            panic!(
                "left behind by the demo: dirs {dirs:?}, processes {alive:#?}; its output:\n{out}"
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn the_loop_runs_with_no_failed_request_and_leaves_nothing_behind() {
    let mut child = demo(&["--fast"]);
    let pid = child.id();
    let rx = lines(&mut child);
    // Note its processes and dirs while the stack is up, to look for them after.
    let mut seen = Seen::default();
    let (code, out) = finish(&mut child, &rx, &mut seen, RUN_TIMEOUT);
    assert_eq!(
        code, 0,
        "the demo failed (exit {code}; stderr below the timeline):\n{out}"
    );
    for want in [
        "scale-up -> Completed",
        "scale-down -> Completed",
        "Subject: [visits-api] scaled out",
        "Subject: [visits-api] scaled in",
    ] {
        assert!(out.contains(want), "no {want:?} in the timeline:\n{out}");
    }
    let failed = out
        .lines()
        .find_map(|l| l.trim_start().strip_prefix("failed across the scale-in"))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no 'failed across the scale-in' in the summary:\n{out}"));
    assert_eq!(failed, "0", "failed requests across the scale-in:\n{out}");
    assert!(
        !seen.dirs.is_empty(),
        "the demo made no scratch dir?\n{out}"
    );
    assert!(
        seen.procs.iter().any(|(_, c)| c.contains("visits-api")),
        "no API process seen under the demo: {:#?}",
        seen.procs
    );
    assert_torn_down(pid, &seen, &out);
}

#[test]
fn ctrl_c_tears_everything_down() {
    let mut child = demo(&["--fast"]);
    let pid = child.id();
    let rx = lines(&mut child);
    let mut out = String::new();
    let mut seen = Seen::default();
    // Wait until the whole stack is up (the load starts after it is).
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(line) => {
                let up = line.contains("load rises");
                out.push_str(&line);
                out.push('\n');
                if up {
                    break;
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                panic!("the demo ended before its stack was up:\n{out}")
            }
        }
        assert!(Instant::now() < deadline, "the stack never came up:\n{out}");
    }
    seen.note(pid);
    assert!(!seen.dirs.is_empty(), "no scratch dir while up?\n{out}");
    kill(Pid::from_raw(pid as i32), Signal::SIGINT).expect("send SIGINT");
    let (_, rest) = finish(&mut child, &rx, &mut seen, Duration::from_secs(120));
    out.push_str(&rest);
    assert!(out.contains("Ctrl-C: tearing down"), "{out}");
    assert_torn_down(pid, &seen, &out);
}
