//! `simulator simulate` (an operator's what-if on their own traffic) and
//! `simulator bench` (`make bench-scaling`: every shared trace and the
//! synthetic shapes). `simulator params` lists the model's parameters.

use anyhow::{bail, Context};
use simulator::ahead::{daily_reviews, daily_window, HISTORY_DAYS};
use simulator::params::Params;
use simulator::run::{run_all, run_with, scale_factor, Compare, Run, Variant};
use simulator::setup::{default_template, Setup};
use simulator::{report, trace};
use std::path::{Path, PathBuf};
use std::time::Instant;

const USAGE: &str = "\
usage:
  simulator simulate --trace FILE [--set NAME=VALUE]... [--scale F | --fit] [--seed N]
                     [--plot FILE.svg] [--template infra/scaling.yaml] [--all]
      FILE: CSV `t_seconds,requests` (requests per row's bin) or a CloudWatch
      GetMetricData JSON export of the request count. Rates are replayed as they
      are (--scale 1) unless --scale or --fit (peak = PEAK_OF_MAX of max tasks).
      --set: a function variable (SCALE_OUT_STEP=2), a template parameter
      (CpuHighThreshold=60) or a model parameter (TASK_START_S=40; see `params`).
      Prints this project against ECS target tracking and the oracle (--all:
      every policy) and writes the plot.
  simulator bench [--traces DIR] [--out DIR] [--seed N] [--set NAME=VALUE]...
      Every *.csv of DIR (default: ../shared/traces beside the repository) and
      the synthetic shapes, each scaled so its peak minute is PEAK_OF_MAX of
      max tasks; tables on stdout, plots and summary.md in DIR (default
      target/bench-scaling). Traces of more than 4 days also run the project
      with a daily window drawn from their first 3 days, and with
      PREDICTIVE_MODE=on, and list the days where those lose.
  simulator params
      The model's parameters, defaults and sources.";

/// `make bench-scaling` over every shared trace should take a few minutes at most.
const LIMIT_S: u32 = 300;

struct Args {
    words: Vec<String>,
}

impl Args {
    fn value(&mut self, flag: &str) -> anyhow::Result<Option<String>> {
        let Some(i) = self.words.iter().position(|w| w == flag) else {
            return Ok(None);
        };
        if i + 1 >= self.words.len() {
            bail!("{flag} needs a value\n\n{USAGE}");
        }
        let v = self.words.remove(i + 1);
        self.words.remove(i);
        Ok(Some(v))
    }

    fn flag(&mut self, flag: &str) -> bool {
        match self.words.iter().position(|w| w == flag) {
            Some(i) => {
                self.words.remove(i);
                true
            }
            None => false,
        }
    }

    fn sets(&mut self) -> anyhow::Result<Vec<(String, String)>> {
        let mut out = Vec::new();
        while let Some(kv) = self.value("--set")? {
            let (k, v) = kv
                .split_once('=')
                .with_context(|| format!("--set {kv}: expected NAME=VALUE"))?;
            out.push((k.trim().to_string(), v.trim().to_string()));
        }
        Ok(out)
    }

    fn done(&self) -> anyhow::Result<()> {
        if let Some(w) = self.words.first() {
            bail!("unexpected argument {w:?}\n\n{USAGE}");
        }
        Ok(())
    }
}

fn main() {
    if let Err(e) = real_main() {
        eprintln!("error: {e:#}");
        std::process::exit(2);
    }
}

fn real_main() -> anyhow::Result<()> {
    let mut words: Vec<String> = std::env::args().skip(1).collect();
    if words.is_empty() || words.iter().any(|w| w == "-h" || w == "--help") {
        println!("{USAGE}");
        return Ok(());
    }
    let cmd = words.remove(0);
    let mut args = Args { words };
    match cmd.as_str() {
        "simulate" => simulate(&mut args),
        "bench" => bench(&mut args),
        "params" => {
            args.done()?;
            print!("{}", Params::table());
            Ok(())
        }
        other => bail!("unknown command {other:?}\n\n{USAGE}"),
    }
}

fn seed(args: &mut Args) -> anyhow::Result<u64> {
    Ok(match args.value("--seed")? {
        Some(s) => s.parse().with_context(|| format!("--seed {s}"))?,
        None => 1,
    })
}

fn simulate(args: &mut Args) -> anyhow::Result<()> {
    let path = PathBuf::from(args.value("--trace")?.context("--trace FILE is required")?);
    let sets = args.sets()?;
    let seed = seed(args)?;
    let scale = args.value("--scale")?;
    let fit = args.flag("--fit");
    let all = args.flag("--all");
    let template = args
        .value("--template")?
        .map(PathBuf::from)
        .unwrap_or_else(default_template);
    let plot = args.value("--plot")?.map(PathBuf::from);
    args.done()?;
    let mut p = Params::default();
    let setup = Setup::load(&template, &sets, &mut p)?;
    let raw = trace::read(&path)?;
    let factor = match (scale, fit) {
        (Some(_), true) => bail!("--scale and --fit exclude each other"),
        (Some(f), false) => f.parse::<f64>().with_context(|| format!("--scale {f}"))?,
        (None, true) => scale_factor(&raw, &p, setup.bounds())?,
        (None, false) => 1.0,
    };
    let t = raw.scaled(factor);
    let compare = if all { Compare::All } else { Compare::Operator };
    let started = Instant::now();
    let run = run_all(&t, factor, &setup, &p, seed, compare)?;
    print_run(&run, &setup, started.elapsed().as_secs_f64());
    let plot = plot.unwrap_or_else(|| PathBuf::from(format!("{}-simulation.svg", run.trace)));
    std::fs::write(&plot, report::svg(&run))
        .with_context(|| format!("write {}", plot.display()))?;
    println!("plot: {}", plot.display());
    Ok(())
}

fn print_run(run: &Run, setup: &Setup, secs: f64) {
    println!(
        "\n## {} ({:.1} h, trace × {:.4}, {}-{} tasks{})\n",
        run.trace,
        run.seconds as f64 / 3600.0,
        run.scale,
        run.bounds.min,
        run.bounds.max,
        if setup.overrides.is_empty() {
            String::new()
        } else {
            format!(
                ", with {}",
                setup
                    .overrides
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            )
        }
    );
    print!("{}", report::table(run));
    println!("\n(simulated in {secs:.1} s)");
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn bench(args: &mut Args) -> anyhow::Result<()> {
    let dir = args
        .value("--traces")?
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("../shared/traces"));
    let out = args
        .value("--out")?
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target/bench-scaling"));
    let sets = args.sets()?;
    let seed = seed(args)?;
    args.done()?;
    let mut p = Params::default();
    let setup = Setup::load(&default_template(), &sets, &mut p)?;
    std::fs::create_dir_all(&out).with_context(|| format!("create {}", out.display()))?;
    let mut traces = Vec::new();
    match std::fs::read_dir(&dir) {
        Ok(entries) => {
            let mut files: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "csv"))
                .collect();
            files.sort();
            for f in files {
                traces.push(trace::read(&f)?);
            }
        }
        Err(_) => println!(
            "No shared traces at {}: the public traces (NASA-HTTP 1995 and the 1998 World Cup \
             logs from the Internet Traffic Archive, the Azure LLM inference trace 2023 from \
             Azure/AzurePublicDataset, the ArchiveTeam Twitter sample stream) are described in \
             docs/scaling-quality.md; only the synthetic shapes run.",
            dir.display()
        ),
    }
    for shape in trace::SHAPES {
        traces.push(trace::synthetic(shape, p.task_capacity_rps)?);
    }
    let mut summary = format!(
        "# bench-scaling\n\nseed {seed}; min {} max {} tasks; TASK_CAPACITY_RPS {}\n",
        setup.config.min_tasks, setup.config.max_tasks, p.task_capacity_rps
    );
    let all_started = Instant::now();
    for t in traces {
        let factor = if t.name.starts_with("synthetic-") {
            1.0
        } else {
            scale_factor(&t, &p, setup.bounds())?
        };
        let scaled = t.scaled(factor);
        let started = Instant::now();
        let variants = ahead_variants(&scaled, &sets, &setup)?;
        let run = run_with(&scaled, factor, &setup, &variants, &p, seed, Compare::All)?;
        let secs = started.elapsed().as_secs_f64();
        print_run(&run, &setup, secs);
        let losses = report::losses(&run);
        print!("{losses}");
        let plot = out.join(format!("{}.svg", run.trace));
        std::fs::write(&plot, report::svg(&run))
            .with_context(|| format!("write {}", plot.display()))?;
        println!("plot: {}", plot.display());
        summary.push_str(&format!(
            "\n## {} ({:.1} h, trace × {:.4})\n\n{}",
            run.trace,
            run.seconds as f64 / 3600.0,
            run.scale,
            report::table(&run)
        ));
        summary.push_str(&losses);
        let reviews = review_table(&scaled, &setup);
        print!("{reviews}");
        summary.push_str(&reviews);
    }
    let md = out.join("summary.md");
    std::fs::write(&md, summary).with_context(|| format!("write {}", md.display()))?;
    println!(
        "\nall traces in {:.1} s (limit: {LIMIT_S} s on 2 cores); tables in {}, plots beside it",
        all_started.elapsed().as_secs_f64(),
        md.display()
    );
    Ok(())
}

/// The daily forecast review's figures for each day after the first [`HISTORY_DAYS`] (empty
/// for a shorter trace): what the once-a-day email would have told the operator.
fn review_table(t: &trace::Trace, setup: &Setup) -> String {
    let p = &setup.config.predictive;
    let reviews = daily_reviews(t, p);
    if reviews.is_empty() {
        return String::new();
    }
    let pct = |x: Option<f64>| x.map_or("-".to_string(), |v| format!("{:+.1} %", v * 100.0));
    let mut out = format!(
        "\nforecast review, day by day ({} s steps, each forecast {} s ahead, {} req/s per task):\n\n\
         | day | steps compared | WAPE | bias | steps short | task-h short | task-h extra |\n\
         |---|---|---|---|---|---|---|\n",
        p.step.as_secs(),
        reviews[0].horizon_s,
        p.task_rps
    );
    for (i, r) in reviews.iter().enumerate() {
        out.push_str(&format!(
            "| {} | {} of {} | {} | {} | {} | {:.1} | {:.1} |\n",
            HISTORY_DAYS + 1 + i,
            r.compared,
            r.steps,
            pct(r.wape).trim_start_matches('+'),
            pct(r.bias),
            r.short_steps,
            r.short_task_hours,
            r.extra_task_hours
        ));
    }
    out
}

/// The project with a scheduled window (an operator's, from the trace's first days; when some
/// hour of them needs more than the minimum) and with predictive scaling on (5-minute and
/// 1-minute steps), for traces long enough to have that history and a day after it.
fn ahead_variants(
    t: &trace::Trace,
    sets: &[(String, String)],
    setup: &Setup,
) -> anyhow::Result<Vec<Variant>> {
    if t.len_s() < (HISTORY_DAYS + 1) * 86_400 {
        return Ok(Vec::new());
    }
    let with = |extra: &[(&str, &str)]| -> anyhow::Result<Setup> {
        let mut all = sets.to_vec();
        all.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        // Model parameters were applied to the base run already.
        Setup::load(&default_template(), &all, &mut Params::default())
    };
    let c = &setup.config;
    let mut out = Vec::new();
    match daily_window(t, c.predictive.task_rps, c.min_tasks, c.max_tasks) {
        Some(window) => {
            let w: serde_json::Value = serde_json::from_str(&window)?;
            // `cron(M H * * ? *)` -> `H:MM`.
            let at = |k: &str| {
                let e = w[0][k].as_str().unwrap_or_default();
                let f: Vec<&str> = e.trim_start_matches("cron(").split(' ').collect();
                format!(
                    "{}:{:0>2}",
                    f.get(1).unwrap_or(&""),
                    f.first().unwrap_or(&"")
                )
            };
            out.push(Variant {
                label: format!(
                    "this project + window {}-{} min {} (days 1-{HISTORY_DAYS})",
                    at("start"),
                    at("end"),
                    w[0]["min"]
                ),
                setup: with(&[("SCHEDULE_WINDOWS", &window)])?,
            });
        }
        None => println!(
            "\n(no scheduled window: no hour of days 1-{HISTORY_DAYS} needs more than {} tasks)",
            c.min_tasks
        ),
    }
    out.push(Variant {
        label: "this project + predictive (5-min steps)".into(),
        setup: with(&[("PREDICTIVE_MODE", "on")])?,
    });
    out.push(Variant {
        label: "this project + predictive (1-min steps)".into(),
        setup: with(&[("PREDICTIVE_MODE", "on"), ("PREDICTIVE_STEP_S", "60")])?,
    });
    Ok(out)
}
