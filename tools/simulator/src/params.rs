//! The model's parameters: what the simulator assumes about the service, AWS's
//! timing and the comparison policies. Each has a default and the source of
//! that default; `--set NAME=VALUE` changes any of them (`docs/simulator.md`
//! lists them all, from [`Params::table`]).

use anyhow::{bail, Context};

/// One parameter's description, for `--help`, errors and the docs.
#[derive(Debug, Clone, Copy)]
pub struct ParamDoc {
    pub name: &'static str,
    pub default: f64,
    pub unit: &'static str,
    pub source: &'static str,
}

/// Every model parameter (all numbers; times in seconds).
#[derive(Debug, Clone, PartialEq)]
pub struct Params {
    /// Requests/s one task serves within the latency target; above it, requests
    /// are overloaded (queued past the target or dropped).
    pub task_capacity_rps: f64,
    /// The task's CPU % when it serves exactly `task_capacity_rps`.
    pub cpu_at_capacity_pct: f64,
    /// Mean latency of one request on an idle task (M/M/1 service time).
    pub base_latency_ms: f64,
    /// Memory % of every task (the API's memory does not follow load).
    pub memory_pct: f64,
    /// The tasks' EMF interval (`METRICS_INTERVAL_S`).
    pub emf_interval_s: f64,
    /// From the end of a period to its datapoint being visible to alarms.
    pub ecs_metric_delay_s: f64,
    pub emf_metric_delay_s: f64,
    /// Alarm state change to the function having changed desired.
    pub lambda_latency_s: f64,
    /// Desired raised to the task serving: mean and half-width of a uniform spread.
    pub task_start_s: f64,
    pub task_start_jitter_s: f64,
    /// Deregistered to drained (in-flight 0), then SIGTERM to STOPPED.
    pub drain_s: f64,
    pub stop_s: f64,
    /// Trace scaling: the trace's peak (60 s mean) is this fraction of MAX_TASKS' capacity.
    pub peak_of_max: f64,
    /// Target tracking: the CPU % it keeps (ECSServiceAverageCPUUtilization).
    pub tt_target_cpu: f64,
    /// Target tracking cooldowns.
    pub tt_out_cooldown_s: f64,
    pub tt_in_cooldown_s: f64,
    /// Step scaling on 60 s alarms: thresholds and cooldown.
    pub step_high_cpu: f64,
    pub step_low_cpu: f64,
    pub step_cooldown_s: f64,
    /// The original naive design: thresholds, window and cooldown.
    pub naive_high_cpu: f64,
    pub naive_low_cpu: f64,
    pub naive_window_s: f64,
    pub naive_cooldown_s: f64,
}

/// The table of parameters: name, default, unit, source.
pub const DOCS: &[ParamDoc] = &[
    ParamDoc { name: "TASK_CAPACITY_RPS", default: 2700.0, unit: "req/s", source: "make bench-api: 12,120 POST/s on 2 cores shared with PostgreSQL, about 6,000/s per core; a task has 0.5 vCPU (infra/service.yaml TaskCpu 512): 3,000/s at 100 % CPU, 2,700/s at 90 %" },
    ParamDoc { name: "CPU_AT_CAPACITY_PCT", default: 90.0, unit: "%", source: "assumption: the API keeps its latency up to about 90 % CPU (bench-api p99 3-6 ms at full load)" },
    ParamDoc { name: "BASE_LATENCY_MS", default: 5.0, unit: "ms", source: "make bench-api: GET/POST p99 3.3-6.4 ms; latency grows as 1/(1-CPU) (M/M/1)" },
    ParamDoc { name: "MEMORY_PCT", default: 30.0, unit: "%", source: "assumption: the API's memory does not follow load (peak RSS 9 MB of a 1 GiB task)" },
    ParamDoc { name: "EMF_INTERVAL_S", default: 10.0, unit: "s", source: "the API's METRICS_INTERVAL_S default" },
    ParamDoc { name: "ECS_METRIC_DELAY_S", default: 60.0, unit: "s", source: "assumption: AWS/ECS CPUUtilization is published per minute (ECS developer guide, 'Faster auto scaling with high-resolution metrics': 60 s resolution by default) and visible about a minute after its period" },
    ParamDoc { name: "EMF_METRIC_DELAY_S", default: 15.0, unit: "s", source: "assumption: EMF lines reach CloudWatch Logs within seconds and are extracted into metrics shortly after" },
    ParamDoc { name: "LAMBDA_LATENCY_S", default: 2.0, unit: "s", source: "assumption: asynchronous alarm-action invoke plus the handler (make bench-functions: under 1 ms of own work, a few AWS round trips)" },
    ParamDoc { name: "TASK_START_S", default: 55.0, unit: "s", source: "about 23 s of Fargate provisioning in AWS's own test (aws/containers-roadmap issue 2113), image pull and start about 10 s, then 2 ALB health checks 10 s apart (infra/service.yaml HealthyThresholdCount 2, interval 10)" },
    ParamDoc { name: "TASK_START_JITTER_S", default: 10.0, unit: "s", source: "assumption: starts spread uniformly over TASK_START_S ± this" },
    ParamDoc { name: "DRAIN_S", default: 3.0, unit: "s", source: "make bench-scale-down: 2.71 s drain of a 3 s request plus 0.48 s overhead" },
    ParamDoc { name: "STOP_S", default: 30.0, unit: "s", source: "ECS stopTimeout 30 s (infra/service.yaml): SIGTERM to STOPPED, billed until then" },
    ParamDoc { name: "PEAK_OF_MAX", default: 0.9, unit: "x", source: "trace scaling: the trace's highest 60 s mean rate is this share of MAX_TASKS × TASK_CAPACITY_RPS, so every policy meets both min and max" },
    ParamDoc { name: "TT_TARGET_CPU", default: 70.0, unit: "%", source: "the template's CpuHighThreshold, so target tracking aims where this project's alarm fires" },
    ParamDoc { name: "TT_OUT_COOLDOWN_S", default: 300.0, unit: "s", source: "Application Auto Scaling default for ECS services (target tracking ScaleOutCooldown)" },
    ParamDoc { name: "TT_IN_COOLDOWN_S", default: 300.0, unit: "s", source: "Application Auto Scaling default for ECS services (ScaleInCooldown)" },
    ParamDoc { name: "STEP_HIGH_CPU", default: 70.0, unit: "%", source: "the template's CpuHighThreshold" },
    ParamDoc { name: "STEP_LOW_CPU", default: 30.0, unit: "%", source: "the template's CpuLowThreshold" },
    ParamDoc { name: "STEP_COOLDOWN_S", default: 300.0, unit: "s", source: "Application Auto Scaling default cooldown for ECS services" },
    ParamDoc { name: "NAIVE_HIGH_CPU", default: 70.0, unit: "%", source: "the original design: CPU > 70 % for 5 min adds a task" },
    ParamDoc { name: "NAIVE_LOW_CPU", default: 30.0, unit: "%", source: "the original design: CPU < 30 % for 5 min removes a task" },
    ParamDoc { name: "NAIVE_WINDOW_S", default: 300.0, unit: "s", source: "the original design: 5 min" },
    ParamDoc { name: "NAIVE_COOLDOWN_S", default: 300.0, unit: "s", source: "the original design: 5 min cooldown" },
];

fn default_of(name: &str) -> f64 {
    DOCS.iter()
        .find(|d| d.name == name)
        .map(|d| d.default)
        .unwrap_or_else(|| panic!("{name} is not in DOCS"))
}

impl Default for Params {
    fn default() -> Self {
        let d = default_of;
        Params {
            task_capacity_rps: d("TASK_CAPACITY_RPS"),
            cpu_at_capacity_pct: d("CPU_AT_CAPACITY_PCT"),
            base_latency_ms: d("BASE_LATENCY_MS"),
            memory_pct: d("MEMORY_PCT"),
            emf_interval_s: d("EMF_INTERVAL_S"),
            ecs_metric_delay_s: d("ECS_METRIC_DELAY_S"),
            emf_metric_delay_s: d("EMF_METRIC_DELAY_S"),
            lambda_latency_s: d("LAMBDA_LATENCY_S"),
            task_start_s: d("TASK_START_S"),
            task_start_jitter_s: d("TASK_START_JITTER_S"),
            drain_s: d("DRAIN_S"),
            stop_s: d("STOP_S"),
            peak_of_max: d("PEAK_OF_MAX"),
            tt_target_cpu: d("TT_TARGET_CPU"),
            tt_out_cooldown_s: d("TT_OUT_COOLDOWN_S"),
            tt_in_cooldown_s: d("TT_IN_COOLDOWN_S"),
            step_high_cpu: d("STEP_HIGH_CPU"),
            step_low_cpu: d("STEP_LOW_CPU"),
            step_cooldown_s: d("STEP_COOLDOWN_S"),
            naive_high_cpu: d("NAIVE_HIGH_CPU"),
            naive_low_cpu: d("NAIVE_LOW_CPU"),
            naive_window_s: d("NAIVE_WINDOW_S"),
            naive_cooldown_s: d("NAIVE_COOLDOWN_S"),
        }
    }
}

impl Params {
    /// True when `name` is a model parameter.
    pub fn knows(name: &str) -> bool {
        DOCS.iter().any(|d| d.name == name)
    }

    /// Sets one parameter from text; an unknown name or a bad number is an
    /// error naming it.
    pub fn set(&mut self, name: &str, value: &str) -> anyhow::Result<()> {
        let v: f64 = value
            .trim()
            .parse()
            .with_context(|| format!("{name}={value:?}: not a number"))?;
        if !v.is_finite() || v < 0.0 {
            bail!("{name}={value}: must be a finite number, 0 or more");
        }
        let mut next = self.clone();
        let slot = match name {
            "TASK_CAPACITY_RPS" => &mut next.task_capacity_rps,
            "CPU_AT_CAPACITY_PCT" => &mut next.cpu_at_capacity_pct,
            "BASE_LATENCY_MS" => &mut next.base_latency_ms,
            "MEMORY_PCT" => &mut next.memory_pct,
            "EMF_INTERVAL_S" => &mut next.emf_interval_s,
            "ECS_METRIC_DELAY_S" => &mut next.ecs_metric_delay_s,
            "EMF_METRIC_DELAY_S" => &mut next.emf_metric_delay_s,
            "LAMBDA_LATENCY_S" => &mut next.lambda_latency_s,
            "TASK_START_S" => &mut next.task_start_s,
            "TASK_START_JITTER_S" => &mut next.task_start_jitter_s,
            "DRAIN_S" => &mut next.drain_s,
            "STOP_S" => &mut next.stop_s,
            "PEAK_OF_MAX" => &mut next.peak_of_max,
            "TT_TARGET_CPU" => &mut next.tt_target_cpu,
            "TT_OUT_COOLDOWN_S" => &mut next.tt_out_cooldown_s,
            "TT_IN_COOLDOWN_S" => &mut next.tt_in_cooldown_s,
            "STEP_HIGH_CPU" => &mut next.step_high_cpu,
            "STEP_LOW_CPU" => &mut next.step_low_cpu,
            "STEP_COOLDOWN_S" => &mut next.step_cooldown_s,
            "NAIVE_HIGH_CPU" => &mut next.naive_high_cpu,
            "NAIVE_LOW_CPU" => &mut next.naive_low_cpu,
            "NAIVE_WINDOW_S" => &mut next.naive_window_s,
            "NAIVE_COOLDOWN_S" => &mut next.naive_cooldown_s,
            other => bail!("{other} is not a model parameter"),
        };
        *slot = v;
        next.check()?;
        *self = next;
        Ok(())
    }

    /// The combinations the model cannot run.
    pub fn check(&self) -> anyhow::Result<()> {
        if self.task_capacity_rps <= 0.0 {
            bail!("TASK_CAPACITY_RPS must be above 0");
        }
        if !(1.0..=100.0).contains(&self.cpu_at_capacity_pct) {
            bail!("CPU_AT_CAPACITY_PCT must be 1 to 100");
        }
        if self.emf_interval_s < 1.0 {
            bail!("EMF_INTERVAL_S must be 1 or more");
        }
        if self.task_start_jitter_s > self.task_start_s {
            bail!("TASK_START_JITTER_S must not exceed TASK_START_S");
        }
        if self.peak_of_max <= 0.0 {
            bail!("PEAK_OF_MAX must be above 0");
        }
        if self.tt_target_cpu <= 0.0 {
            bail!("TT_TARGET_CPU must be above 0");
        }
        Ok(())
    }

    /// The fastest task start: the oracle's (it knows every draw in advance).
    pub fn fastest_start_s(&self) -> i64 {
        (self.task_start_s - self.task_start_jitter_s).round() as i64
    }

    /// Seconds a stopped task stays billed after it left the target group.
    pub fn stop_tail_s(&self) -> i64 {
        (self.drain_s + self.stop_s).round() as i64
    }

    /// The table for `--help` and the docs (markdown).
    pub fn table() -> String {
        let mut s = String::from("| parameter | default | unit | source |\n|---|---|---|---|\n");
        for d in DOCS {
            s.push_str(&format!(
                "| `{}` | {} | {} | {} |\n",
                d.name, d.default, d.unit, d.source
            ));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_parameter_can_be_set_and_unknown_ones_are_refused() {
        for d in DOCS {
            let mut p = Params::default();
            p.set(d.name, &d.default.to_string())
                .unwrap_or_else(|e| panic!("{}: {e:#}", d.name));
            assert_eq!(p, Params::default(), "{} default round-trips", d.name);
        }
        let mut p = Params::default();
        let e = p.set("NOPE", "1").unwrap_err();
        assert!(e.to_string().contains("NOPE"), "{e}");
        let e = p.set("DRAIN_S", "soon").unwrap_err();
        assert!(format!("{e:#}").contains("DRAIN_S"), "{e:#}");
        assert!(p.set("TASK_START_JITTER_S", "99").is_err());
    }
}
