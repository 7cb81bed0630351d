//! This task's CPU and memory use, read from the container's cgroup when the process runs in
//! one (cgroup v2 or v1 with a namespaced view, as in ECS), else from /proc for this process.

use std::time::Instant;

/// One reading, as `/api/metrics` and the EMF record report it.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct Sample {
    /// Share of the CPU this task may use (its cgroup quota, else all cores), 0-100.
    pub cpu_percent: f64,
    /// Bytes in use (cgroup memory, else resident set).
    pub memory_bytes: u64,
    /// Share of the memory limit (cgroup limit, else host memory), 0-100.
    pub memory_percent: f64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Source {
    CgroupV2,
    CgroupV1,
    Process,
}

/// Turns cumulative CPU counters into a utilisation over the time between two samples.
pub struct Sampler {
    source: Source,
    last: Option<(Instant, u64)>,
    cpus: f64,
}

impl Default for Sampler {
    fn default() -> Self {
        Self::new()
    }
}

impl Sampler {
    /// Detects where to read from once.
    pub fn new() -> Self {
        let source = detect();
        let cores = std::thread::available_parallelism().map_or(1.0, |n| n.get() as f64);
        let cpus = match source {
            Source::CgroupV2 => read("/sys/fs/cgroup/cpu.max").and_then(|s| quota_v2(&s)),
            Source::CgroupV1 => {
                let quota = read_num("/sys/fs/cgroup/cpu/cpu.cfs_quota_us");
                let period = read_num("/sys/fs/cgroup/cpu/cpu.cfs_period_us");
                match (quota, period) {
                    (Some(q), Some(p)) if p > 0 => Some(q as f64 / p as f64),
                    _ => None,
                }
            }
            Source::Process => None,
        }
        .unwrap_or(cores);
        tracing::debug!(?source, cpus, "resource sampler");
        Sampler {
            source,
            last: None,
            cpus,
        }
    }

    /// CPU since the previous call (0 on the first), and memory now.
    pub fn sample(&mut self) -> Sample {
        let now = Instant::now();
        let used = self.cpu_usec().unwrap_or(0);
        let cpu_percent = match self.last.replace((now, used)) {
            Some((at, before)) => {
                let wall = now.duration_since(at).as_micros() as f64;
                if wall > 0.0 {
                    (used.saturating_sub(before) as f64 / wall / self.cpus * 100.0)
                        .clamp(0.0, 100.0)
                } else {
                    0.0
                }
            }
            None => 0.0,
        };
        let (memory_bytes, limit) = self.memory();
        let memory_percent = match limit {
            Some(l) if l > 0 => (memory_bytes as f64 / l as f64 * 100.0).min(100.0),
            _ => 0.0,
        };
        Sample {
            cpu_percent,
            memory_bytes,
            memory_percent,
        }
    }

    fn cpu_usec(&self) -> Option<u64> {
        match self.source {
            Source::CgroupV2 => read("/sys/fs/cgroup/cpu.stat")?
                .lines()
                .find_map(|l| l.strip_prefix("usage_usec ")?.trim().parse().ok()),
            Source::CgroupV1 => {
                read_num("/sys/fs/cgroup/cpuacct/cpuacct.usage").map(|ns| ns / 1000)
            }
            Source::Process => {
                // Fields 14 and 15 (utime, stime) in USER_HZ ticks, which is 100 on Linux.
                let stat = read("/proc/self/stat")?;
                let rest = &stat[stat.rfind(')')? + 2..];
                let f: Vec<&str> = rest.split_whitespace().collect();
                let ticks: u64 =
                    f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
                Some(ticks * 10_000)
            }
        }
    }

    fn memory(&self) -> (u64, Option<u64>) {
        let host = host_memory();
        match self.source {
            Source::CgroupV2 => (
                read_num("/sys/fs/cgroup/memory.current").unwrap_or(0),
                read_num("/sys/fs/cgroup/memory.max").or(host),
            ),
            Source::CgroupV1 => (
                read_num("/sys/fs/cgroup/memory/memory.usage_in_bytes").unwrap_or(0),
                read_num("/sys/fs/cgroup/memory/memory.limit_in_bytes")
                    .filter(|l| host.is_none_or(|h| *l < h))
                    .or(host),
            ),
            Source::Process => (rss_bytes().unwrap_or(0), host),
        }
    }
}

/// Resident set size of this process, from /proc/self/status.
pub fn rss_bytes() -> Option<u64> {
    kib_field(&read("/proc/self/status")?, "VmRSS:")
}

fn host_memory() -> Option<u64> {
    kib_field(&read("/proc/meminfo")?, "MemTotal:")
}

fn kib_field(text: &str, key: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with(key))?;
    let kib: u64 = line[key.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// A container sees its own cgroup as the root ("/") through its cgroup namespace; a process on
/// a host sees a path, and there the cgroup holds other processes too, so /proc is used.
fn detect() -> Source {
    let Some(cg) = read("/proc/self/cgroup") else {
        return Source::Process;
    };
    let lines: Vec<&str> = cg.lines().collect();
    if lines == ["0::/"] && read("/sys/fs/cgroup/cpu.stat").is_some() {
        return Source::CgroupV2;
    }
    let at_root = |ctrl: &str| {
        lines.iter().any(|l| {
            let mut parts = l.splitn(3, ':');
            let (_, ctrls, path) = (
                parts.next(),
                parts.next().unwrap_or(""),
                parts.next().unwrap_or(""),
            );
            ctrls.split(',').any(|c| c == ctrl) && path == "/"
        })
    };
    if at_root("memory")
        && at_root("cpuacct")
        && read("/sys/fs/cgroup/cpuacct/cpuacct.usage").is_some()
    {
        return Source::CgroupV1;
    }
    Source::Process
}

/// `cpu.max` is "QUOTA PERIOD" or "max PERIOD".
fn quota_v2(s: &str) -> Option<f64> {
    let mut it = s.split_whitespace();
    let quota: f64 = it.next()?.parse().ok()?;
    let period: f64 = it.next()?.parse().ok()?;
    (period > 0.0).then_some(quota / period)
}

fn read(path: &str) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

fn read_num(path: &str) -> Option<u64> {
    read(path)?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cpu_max_and_meminfo() {
        assert_eq!(quota_v2("50000 100000\n"), Some(0.5));
        assert_eq!(quota_v2("max 100000\n"), None);
        assert_eq!(
            kib_field("MemTotal:       2048 kB\n", "MemTotal:"),
            Some(2048 * 1024)
        );
    }

    #[test]
    fn samples_this_process() {
        let mut s = Sampler::new();
        let _ = s.sample();
        let end = Instant::now() + std::time::Duration::from_millis(50);
        while Instant::now() < end {
            std::hint::black_box(0u64);
        }
        let b = s.sample();
        assert!(b.memory_bytes > 0);
        assert!((0.0..=100.0).contains(&b.cpu_percent));
        assert!(rss_bytes().unwrap() > 0);
    }
}
