//! `loadgen`: bounded HTTP load against a loopback URL, with a progress bar,
//! a latency histogram and a JSON summary (the seeds' load-test.py/k6 role).
//!
//! ```text
//! loadgen --url http://127.0.0.1:8080 [--scenario steady|ramp|burst|mix]
//!         [--rate RPS | --concurrency N] [--duration S] [--max-requests N]
//!         [--timeout-ms MS] [--json PATH] [--quiet]
//! ```

use std::time::Duration;

use anyhow::{bail, Context};
use e2e::loadgen::{self, Config, Mode, Scenario};

fn usage() -> &'static str {
    "usage: loadgen --url http://127.0.0.1:PORT [--scenario steady|ramp|burst|mix] \
     [--rate RPS | --concurrency N] [--duration S] [--max-requests N] [--timeout-ms MS] \
     [--json PATH] [--quiet]"
}

fn parse(args: Vec<String>) -> anyhow::Result<(Config, Option<String>)> {
    let mut config = Config {
        base_url: String::new(),
        scenario: Scenario::Steady,
        mode: Mode::Rate(50.0),
        duration: Duration::from_secs(10),
        max_requests: 100_000,
        timeout: Duration::from_secs(10),
        progress: true,
    };
    let mut json = None;
    let mut it = args.into_iter();
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .with_context(|| format!("{flag} needs a value\n{}", usage()))
        };
        match flag.as_str() {
            "--url" => config.base_url = value()?,
            "--scenario" => config.scenario = value()?.parse()?,
            "--rate" => config.mode = Mode::Rate(value()?.parse().context("--rate")?),
            "--concurrency" => {
                config.mode = Mode::Concurrency(value()?.parse().context("--concurrency")?)
            }
            "--duration" => {
                config.duration = Duration::from_secs_f64(value()?.parse().context("--duration")?)
            }
            "--max-requests" => config.max_requests = value()?.parse().context("--max-requests")?,
            "--timeout-ms" => {
                config.timeout = Duration::from_millis(value()?.parse().context("--timeout-ms")?)
            }
            "--json" => json = Some(value()?),
            "--quiet" => config.progress = false,
            "-h" | "--help" => bail!("{}", usage()),
            other => bail!("unknown argument {other:?}\n{}", usage()),
        }
    }
    if config.base_url.is_empty() {
        bail!("--url is required\n{}", usage());
    }
    Ok((config, json))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (config, json_path) = parse(std::env::args().skip(1).collect())?;
    let summary = loadgen::run(config).await?;
    let json = serde_json::to_string_pretty(&summary)?;
    match json_path {
        Some(path) => std::fs::write(&path, &json).with_context(|| format!("write {path}"))?,
        None => println!("{json}"),
    }
    eprintln!(
        "requests {} ok {} failed {} errors {:?} | p50 {:.1} ms p95 {:.1} ms p99 {:.1} ms max {:.1} ms | {:.0} req/s",
        summary.requests,
        summary.ok,
        summary.failed,
        summary.errors,
        summary.latency_ms["p50"],
        summary.latency_ms["p95"],
        summary.latency_ms["p99"],
        summary.latency_ms["max"],
        summary.achieved_rps
    );
    Ok(())
}
