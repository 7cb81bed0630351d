//! The demo's live timeline: one line per event, with the wall clock and the
//! seconds since start, and who did it. The local stand-ins say so in their
//! label (`cloudwatch*`, `ecs-agent*`), so nobody mistakes them for AWS.

use std::sync::Mutex;
use std::time::Instant;

/// Who an event comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The demo itself (set-up, phases, summary).
    Demo,
    /// The load generator and the CPU burner.
    Load,
    /// What the tasks report in their EMF records (load, CPU, in-flight).
    Metrics,
    /// The alarm driver, the local stand-in for CloudWatch.
    CloudWatch,
    /// A function invocation and its report.
    Lambda,
    /// The task runner, the local stand-in for the ECS agent and scheduler.
    Ecs,
    /// HAProxy, playing the ALB.
    Proxy,
    /// The notify function's email, as SNS would deliver it.
    Email,
}

impl Source {
    /// The column label; `*` marks a local stand-in for an AWS part.
    pub fn label(self) -> &'static str {
        match self {
            Self::Demo => "demo",
            Self::Load => "load",
            Self::Metrics => "metrics",
            Self::CloudWatch => "cloudwatch*",
            Self::Lambda => "lambda",
            Self::Ecs => "ecs-agent*",
            Self::Proxy => "alb(haproxy)",
            Self::Email => "email",
        }
    }
}

/// The timeline: prints as it goes (unless quiet) and keeps every line.
#[derive(Debug)]
pub struct Timeline {
    started: Instant,
    echo: bool,
    lines: Mutex<Vec<String>>,
}

impl Timeline {
    /// A timeline starting now; `echo` prints each line to stdout.
    pub fn new(echo: bool) -> Self {
        Self {
            started: Instant::now(),
            echo,
            lines: Mutex::new(Vec::new()),
        }
    }

    /// Seconds since start.
    pub fn elapsed_s(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// Records (and prints) one event; later lines of `what` are indented.
    pub fn log(&self, source: Source, what: impl AsRef<str>) {
        let head = format!(
            "{}  {:>6.1}s  {:<12}",
            chrono::Utc::now().format("%H:%M:%S%.3f"),
            self.elapsed_s(),
            source.label()
        );
        let pad = " ".repeat(head.len() + 2);
        let mut line = head;
        for (i, part) in what.as_ref().lines().enumerate() {
            if i > 0 {
                line.push('\n');
                line.push_str(&pad);
            } else {
                line.push_str("  ");
            }
            line.push_str(part);
        }
        if self.echo {
            println!("{line}");
        }
        self.lines.lock().expect("timeline lines").push(line);
    }

    /// Every line so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().expect("timeline lines").clone()
    }
}

/// The runner's own timeline lines start with its seconds (`   12.3s  what`):
/// strips them so the line can join this timeline.
pub fn strip_runner_time(line: &str) -> &str {
    let t = line.trim_start();
    match t.split_once("s  ") {
        Some((secs, rest)) if secs.parse::<f64>().is_ok() => rest,
        _ => t,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_carry_time_source_and_indent_continuations() {
        let t = Timeline::new(false);
        t.log(Source::CloudWatch, "visits-api-cpu-high OK -> ALARM");
        t.log(Source::Email, "Subject: x\nbody");
        let lines = t.lines();
        let fields: Vec<&str> = lines[0].split_whitespace().collect();
        assert_eq!(fields[1], "0.0s", "{}", lines[0]);
        assert_eq!(fields[2], "cloudwatch*", "{}", lines[0]);
        assert!(
            lines[0].ends_with("  visits-api-cpu-high OK -> ALARM"),
            "{}",
            lines[0]
        );
        let (first, second) = lines[1].split_once('\n').unwrap();
        assert!(first.ends_with("Subject: x"));
        assert_eq!(second.trim_start(), "body");
        assert_eq!(second.len() - 4, first.len() - "Subject: x".len());
    }

    #[test]
    fn runner_lines_lose_their_own_clock() {
        assert_eq!(
            strip_runner_time("   12.3s  task abc RUNNING"),
            "task abc RUNNING"
        );
        assert_eq!(strip_runner_time("no clock here"), "no clock here");
    }
}
