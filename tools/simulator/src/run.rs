//! The simulation loop and its score. One second per step: the service
//! advances, the demand meets the serving capacity, the tasks' metrics are
//! sampled, the policy acts. Every policy replays the same trace on its own
//! copy of the service, from the same start, with the same seed.

use crate::baselines::{Bounds, Naive, Policy, StepScaling, TargetTracking};
use crate::metrics::{values, Sampler};
use crate::oracle;
use crate::params::Params;
use crate::project::{Invocation, Project};
use crate::service::Service;
use crate::setup::Setup;
use crate::trace::Trace;

/// One policy's result.
#[derive(Debug, Clone, PartialEq)]
pub struct Score {
    pub policy: String,
    /// Seconds with more demand than serving capacity.
    pub overloaded_s: u64,
    /// Requests above serving capacity, summed.
    pub overloaded_requests: f64,
    pub task_hours: f64,
    /// Desired-count changes.
    pub actions: u32,
    /// The longest time from an overload's start until capacity met demand (or
    /// max), overloads less than 60 s apart counted as one.
    pub worst_to_capacity_s: u64,
    /// Task-hours over the oracle's.
    pub vs_oracle: f64,
    /// Serving tasks, one value per [`PLOT_STEP_S`] (the plot's line).
    pub serving: Vec<f32>,
    /// Per day of the trace (from its start): overloaded seconds and task-hours.
    pub daily: Vec<(u64, f64)>,
}

/// The plot's resolution: serving tasks are kept as one value per this many seconds.
pub const PLOT_STEP_S: usize = 60;

/// Everything one run produced.
#[derive(Debug, Clone)]
pub struct Run {
    pub trace: String,
    /// The factor the trace was multiplied by.
    pub scale: f64,
    pub seconds: usize,
    pub scores: Vec<Score>,
    /// Demand in tasks' worth (demand / capacity), per [`PLOT_STEP_S`].
    pub demand_tasks: Vec<f32>,
    pub bounds: Bounds,
    /// The project's invocations.
    pub project_log: Vec<Invocation>,
    /// How many of `scores`, after the first (the project as configured), are the
    /// project under another configuration ([`Variant`]).
    pub variants: usize,
}

/// The project under another configuration (a scheduled window, predictive scaling),
/// scored beside it.
pub struct Variant {
    /// Its row in the table.
    pub label: String,
    pub setup: Setup,
}

/// Streams per-second service states into a [`Score`].
struct Scorer {
    capacity: f64,
    attainable_max: f64,
    over_s: u64,
    over_req: f64,
    billed_s: u64,
    worst: u64,
    episode: Option<(i64, i64)>,
    serving: Vec<f32>,
    acc: f64,
    daily: Vec<(u64, f64)>,
}

impl Scorer {
    fn new(p: &Params, b: Bounds) -> Self {
        Scorer {
            capacity: p.task_capacity_rps,
            attainable_max: f64::from(b.max) * p.task_capacity_rps,
            over_s: 0,
            over_req: 0.0,
            billed_s: 0,
            worst: 0,
            episode: None,
            serving: Vec::new(),
            acc: 0.0,
            daily: Vec::new(),
        }
    }

    fn add(&mut self, t: i64, demand: f64, serving: i32, billed: i32) {
        let cap = f64::from(serving) * self.capacity;
        let excess = demand - cap;
        let day = (t / 86_400) as usize;
        if self.daily.len() <= day {
            self.daily.resize(day + 1, (0, 0.0));
        }
        if excess > 1e-9 {
            self.over_s += 1;
            self.over_req += excess;
            self.daily[day].0 += 1;
        }
        self.daily[day].1 += f64::from(billed.max(0)) / 3600.0;
        // "Enough capacity" is the demand, or max when the demand is beyond it.
        if demand.min(self.attainable_max) - cap > 1e-9 {
            match self.episode {
                Some((start, last)) if t - last <= 60 => self.episode = Some((start, t)),
                _ => {
                    self.close();
                    self.episode = Some((t, t));
                }
            }
        }
        self.billed_s += billed.max(0) as u64;
        self.acc += f64::from(serving);
        if (t as usize + 1).is_multiple_of(PLOT_STEP_S) {
            self.serving.push((self.acc / PLOT_STEP_S as f64) as f32);
            self.acc = 0.0;
        }
    }

    fn close(&mut self) {
        if let Some((start, last)) = self.episode.take() {
            self.worst = self.worst.max((last - start + 1) as u64);
        }
    }

    fn finish(mut self, policy: String, actions: u32) -> Score {
        self.close();
        Score {
            policy,
            overloaded_s: self.over_s,
            overloaded_requests: self.over_req,
            task_hours: self.billed_s as f64 / 3600.0,
            actions,
            worst_to_capacity_s: self.worst,
            vs_oracle: f64::NAN,
            serving: self.serving,
            daily: self.daily,
        }
    }
}

/// Replays `trace` against `policy` on a service that starts with `initial` tasks.
pub fn simulate(
    trace: &Trace,
    policy: &mut dyn Policy,
    p: &Params,
    b: Bounds,
    initial: i32,
    seed: u64,
) -> Score {
    let mut svc = Service::new(initial, p, seed);
    let mut sampler = Sampler::new(p.emf_interval_s.round() as i64);
    let mut scorer = Scorer::new(p, b);
    for (t, &demand) in trace.rps.iter().enumerate() {
        let t = t as i64;
        let serving = svc.serving(t);
        scorer.add(t, demand, serving, svc.billed(t));
        if let Some(s) = sampler.add(t, values(demand, serving, p), serving) {
            policy.on_sample(&s);
        }
        policy.tick(t, &mut svc);
        if t % 3600 == 0 {
            svc.forget_stopped(t);
        }
    }
    scorer.finish(policy.name(), svc.actions)
}

/// The oracle's score on `trace`.
pub fn oracle_score(trace: &Trace, p: &Params, b: Bounds, initial: i32) -> Score {
    let s = oracle::schedule(trace, p, b.min, b.max, initial);
    let mut scorer = Scorer::new(p, b);
    for (t, &demand) in trace.rps.iter().enumerate() {
        scorer.add(t as i64, demand, s.serving[t], s.billed[t]);
    }
    scorer.finish("oracle (knows the future)".into(), s.actions)
}

/// Which policies a run compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compare {
    /// All six (`make bench-scaling`).
    All,
    /// This project, target tracking and the oracle (the operator command).
    Operator,
}

/// Runs every policy of `compare` on `trace` (already scaled by `scale`), on
/// up to two threads.
pub fn run_all(
    trace: &Trace,
    scale: f64,
    setup: &Setup,
    p: &Params,
    seed: u64,
    compare: Compare,
) -> anyhow::Result<Run> {
    run_with(trace, scale, setup, &[], p, seed, compare)
}

/// [`run_all`], with the project also under each of `variants` (rows after the project's).
pub fn run_with(
    trace: &Trace,
    scale: f64,
    setup: &Setup,
    variants: &[Variant],
    p: &Params,
    seed: u64,
    compare: Compare,
) -> anyhow::Result<Run> {
    let b = setup.bounds();
    let initial = oracle::needed(trace.rps.first().copied().unwrap_or(0.0), p, b.min, b.max);
    let mut policies: Vec<Box<dyn Policy + Send>> = vec![Box::new(TargetTracking::new(
        "target tracking (60 s)",
        60,
        p,
        b,
    ))];
    if compare == Compare::All {
        policies.push(Box::new(TargetTracking::new(
            "target tracking (20 s metrics)",
            20,
            p,
            b,
        )));
        policies.push(Box::new(StepScaling::new(p, b)));
        policies.push(Box::new(Naive::new(p, b)));
    }
    // The project runs on this thread (its scale-down handler runs on a
    // single-threaded runtime); the others share a second one.
    let mut project = Project::new(setup, p)?;
    let mut projects = Vec::with_capacity(variants.len());
    for v in variants {
        projects.push(Project::new(&v.setup, p)?.labelled(&v.label));
    }
    let (scores, mut mine) = std::thread::scope(|s| {
        let others = s.spawn(|| {
            policies
                .iter_mut()
                .map(|pol| simulate(trace, pol.as_mut(), p, b, initial, seed))
                .collect::<Vec<_>>()
        });
        let mut mine = vec![simulate(trace, &mut project, p, b, initial, seed)];
        for v in &mut projects {
            mine.push(simulate(trace, v, p, b, initial, seed));
        }
        (others.join().expect("policy thread"), mine)
    });
    let oracle = oracle_score(trace, p, b, initial);
    mine.extend(scores);
    let mut all = mine;
    for s in &mut all {
        s.vs_oracle = s.task_hours / oracle.task_hours;
    }
    let mut oracle = oracle;
    oracle.vs_oracle = 1.0;
    all.push(oracle);
    let demand_tasks = trace
        .rps
        .chunks(PLOT_STEP_S)
        .filter(|c| c.len() == PLOT_STEP_S)
        .map(|c| (c.iter().sum::<f64>() / c.len() as f64 / p.task_capacity_rps) as f32)
        .collect();
    Ok(Run {
        trace: trace.name.clone(),
        scale,
        seconds: trace.len_s(),
        scores: all,
        demand_tasks,
        bounds: b,
        project_log: project.log,
        variants: variants.len(),
    })
}

/// The factor that puts the trace's peak minute at `PEAK_OF_MAX` of max's capacity.
pub fn scale_factor(trace: &Trace, p: &Params, b: Bounds) -> anyhow::Result<f64> {
    let peak = trace.peak_minute_rps();
    anyhow::ensure!(peak > 0.0, "{}: the trace has no requests", trace.name);
    Ok(p.peak_of_max * f64::from(b.max) * p.task_capacity_rps / peak)
}
