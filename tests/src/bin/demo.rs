//! `make demo`: the whole autoscaling loop on this machine, with a live
//! timeline (see `e2e::stack::demo`). Tears everything down on exit and on
//! Ctrl-C.
//!
//! Usage: demo [--fast] [--keep] [--time-scale N]
//!   --fast          periods at 1/20 of the template's (the smoke test's mode)
//!   --keep          after the scenario, keep the stack up and print its URLs
//!                   until Ctrl-C (`make demo KEEP=1`)
//!   --time-scale N  divide the template's alarm periods by N (default 10)

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use e2e::stack::demo::{self, DemoOpts, DemoStack};
use e2e::stack::lambda::{self, Lambdas};
use e2e::stack::timeline::{Source, Timeline};
use e2e::stack::{Proxy, Stack};

/// How long the first task may take to serve (cold start on a busy machine).
const FIRST_TASK_TIMEOUT: Duration = Duration::from_secs(120);

/// The scenario's verdict once its summary is out (the exit code after a
/// Ctrl-C that ends `--keep`).
static PASSED: AtomicBool = AtomicBool::new(false);

struct Args {
    opts: DemoOpts,
    keep: bool,
}

fn args() -> anyhow::Result<Args> {
    let mut opts = DemoOpts::normal();
    let mut keep = false;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--fast" => {
                opts = DemoOpts {
                    echo: opts.echo,
                    ..DemoOpts::fast()
                }
            }
            "--keep" => keep = true,
            "--quiet" => opts.echo = false,
            "--time-scale" => {
                let v = it.next().context("--time-scale needs a number")?;
                opts.time_scale = v.parse().context("--time-scale needs a number")?;
                if !(1.0..=60.0).contains(&opts.time_scale) {
                    bail!("--time-scale must be between 1 and 60");
                }
            }
            "-h" | "--help" => {
                println!("usage: demo [--fast] [--keep] [--quiet] [--time-scale N]");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?} (try --help)"),
        }
    }
    Ok(Args { opts, keep })
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = match args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("demo: {e:#}");
            return std::process::ExitCode::from(2);
        }
    };
    let tl = Arc::new(Timeline::new(args.opts.echo));
    // Ctrl-C drops the demo future: every process it started is stopped by
    // its owner's Drop (and by the guard's lifeline if we die harder).
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("demo: cannot watch SIGTERM: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let outcome = tokio::select! {
        r = run(&args, tl.clone()) => r,
        _ = tokio::signal::ctrl_c() => {
            tl.log(Source::Demo, "Ctrl-C: tearing down");
            // After the summary (KEEP=1), Ctrl-C is the normal way out.
            Ok(PASSED.load(Ordering::SeqCst))
        }
        _ = term.recv() => {
            tl.log(Source::Demo, "SIGTERM: tearing down");
            Ok(false)
        }
    };
    match outcome {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::from(1),
        Err(e) => {
            tl.log(Source::Demo, format!("failed: {e:#}"));
            std::process::ExitCode::from(1)
        }
    }
}

/// Set-up, scenario, summary; true when the loop ran and nothing failed.
async fn run(args: &Args, tl: Arc<Timeline>) -> anyhow::Result<bool> {
    tl.log(
        Source::Demo,
        "starting the local stack: PostgreSQL, moto (AWS emulator), task runner, HAProxy, functions\n\
         (* = local stand-in for an AWS part)",
    );
    let moto: &'static test_support::moto::Moto = Box::leak(Box::new(
        tokio::task::spawn_blocking(test_support::moto::Moto::start).await??,
    ));
    tl.log(Source::Demo, format!("moto at {}", moto.endpoint()));
    let stack = Stack::provision(moto, 1)
        .await
        .context("provision the stack")?;
    let runner = stack
        .start_runner(moto)
        .await
        .context("start the task runner")?;
    let proxy = Proxy::start(&stack).await.context("start HAProxy")?;
    tl.log(
        Source::Demo,
        format!("HAProxy (the ALB) at {}", proxy.url()),
    );
    runner
        .wait_for_tasks(1, FIRST_TASK_TIMEOUT)
        .await
        .context("the first task")?;
    let overrides = args.opts.function_overrides();
    let overrides: Vec<(&str, &str)> = overrides.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let lambdas = Arc::new(
        Lambdas::start(
            moto,
            &stack,
            &["scale-up", "scale-down", "notify"],
            &overrides,
        )
        .await
        .context("start the functions")?,
    );
    tl.log(
        Source::Demo,
        format!(
            "functions scale-up, scale-down, notify: the real binaries, each polling the local Lambda Runtime API at {}",
            lambdas.url()
        ),
    );
    let s = DemoStack {
        moto,
        stack: &stack,
        runner: &runner,
        proxy: &proxy,
        invoke: lambda::invoker(lambdas.clone()),
    };
    let summary = demo::run(&s, &args.opts, tl.clone()).await?;
    tl.log(Source::Demo, summary.render());
    PASSED.store(summary.passed(), Ordering::SeqCst);
    if args.keep {
        tl.log(
            Source::Demo,
            format!(
                "KEEP: the stack stays up until Ctrl-C\n\
                 API (through HAProxy):  {url}/api/visits\n\
                 page:                   {url}/\n\
                 moto (AWS emulator):    {}\n\
                 task logs:              {}",
                moto.endpoint(),
                runner.log_dir().display(),
                url = proxy.url()
            ),
        );
        demo::until_ctrl_c().await?;
        tl.log(Source::Demo, "Ctrl-C: tearing down");
    }
    tl.log(Source::Demo, "tearing down");
    drop(s);
    drop(lambdas);
    drop(proxy);
    runner.shutdown().await;
    Ok(summary.passed())
}
