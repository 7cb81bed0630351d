//! `make bench-functions`: scale-up's figures next to their targets.
//!
//! - handler time per event with AWS round-trips excluded: the real handler
//!   against in-process aws-smithy-mocks clients (SDK serialisation included);
//! - cold init: exec of the release binary to its first `/next` call on a tiny
//!   local runtime API (`AWS_LAMBDA_RUNTIME_API`);
//! - peak RSS (VmHWM) after it served one event;
//! - binary sizes given on the command line.
//!
//! Usage: `bench [NATIVE_BINARY [ARM64_BINARY]]`.

use aws_sdk_cloudwatch::operation::put_metric_data::PutMetricDataOutput;
use aws_sdk_ecs::operation::describe_services::DescribeServicesOutput;
use aws_sdk_ecs::operation::tag_resource::TagResourceOutput;
use aws_sdk_ecs::operation::update_service::UpdateServiceOutput;
use aws_sdk_ecs::types::Service;
use aws_smithy_mocks::{mock, mock_client, RuleMode};
use scale_up::{handle_at, Deps};
use scaling::aws::autoscaling::AutoScaling;
use scaling::aws::cloudwatch::CloudWatch;
use scaling::aws::ecs::Ecs;
use scaling::config::Config;
use serde_json::Value;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn event(stem: &str) -> Value {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("../../events/{stem}.json"));
    serde_json::from_str(&std::fs::read_to_string(p).expect("event")).expect("json")
}

fn config() -> Config {
    let m: HashMap<String, String> = [
        ("CLUSTER_NAME", "visits"),
        ("SERVICE_NAME", "visits-api"),
        ("MIN_TASKS", "1"),
        ("MAX_TASKS", "1000000"),
        ("SCALE_OUT_COOLDOWN_S", "0"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    Config::from_map(&m).unwrap()
}

fn deps() -> Deps {
    let describe = mock!(aws_sdk_ecs::Client::describe_services)
        .sequence()
        .output(|| {
            DescribeServicesOutput::builder()
                .services(
                    Service::builder()
                        .service_arn("arn:aws:ecs:us-east-1:123456789012:service/visits/visits-api")
                        .status("ACTIVE")
                        .desired_count(1)
                        .running_count(1)
                        .build(),
                )
                .build()
        })
        .repeatedly()
        .build();
    let tag = mock!(aws_sdk_ecs::Client::tag_resource)
        .sequence()
        .output(|| TagResourceOutput::builder().build())
        .repeatedly()
        .build();
    let update = mock!(aws_sdk_ecs::Client::update_service)
        .sequence()
        .output(|| UpdateServiceOutput::builder().build())
        .repeatedly()
        .build();
    let put = mock!(aws_sdk_cloudwatch::Client::put_metric_data)
        .sequence()
        .output(|| PutMetricDataOutput::builder().build())
        .repeatedly()
        .build();
    let asg_rule = mock!(aws_sdk_autoscaling::Client::describe_auto_scaling_groups)
        .then_output(|| unreachable!());
    Deps {
        config: config(),
        ecs: Ecs::from_client(mock_client!(
            aws_sdk_ecs,
            RuleMode::MatchAny,
            [&describe, &tag, &update]
        )),
        autoscaling: AutoScaling::from_client(mock_client!(aws_sdk_autoscaling, [&asg_rule])),
        cloudwatch: CloudWatch::from_client(mock_client!(
            aws_sdk_cloudwatch,
            RuleMode::MatchAny,
            [&put]
        )),
        region: None,
    }
}

fn bench_handler(rt: &tokio::runtime::Runtime, stem: &str, n: u32) -> Duration {
    let deps = deps();
    let ev = event(stem);
    let now = chrono::Utc::now();
    rt.block_on(async {
        for _ in 0..50 {
            handle_at(ev.clone(), &deps, now).await.unwrap();
        }
        let start = Instant::now();
        for i in 0..n {
            // A new alarm change each time, so every iteration acts (no duplicate skip).
            let mut e = ev.clone();
            if let Some(s) = e.pointer_mut("/alarmData/state/timestamp") {
                let t = now + chrono::Duration::milliseconds(i64::from(i));
                *s = Value::String(t.format("%Y-%m-%dT%H:%M:%S%.3f%z").to_string());
            }
            handle_at(e, &deps, now).await.unwrap();
        }
        start.elapsed() / n
    })
}

/// Runs the binary against a one-event runtime API, with `extra` added to its environment;
/// returns (cold init, peak RSS kB).
fn cold_start(bin: &Path, extra: &[(&str, &str)]) -> std::io::Result<(Duration, u64)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let body = event("scale-up-cpu-high-ok").to_string();
    let start = Instant::now();
    let mut child = Command::new(bin)
        .env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", "scale-up")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "bench")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/scale-up")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "bench")
        .env("AWS_SECRET_ACCESS_KEY", "bench")
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .env("CLUSTER_NAME", "visits")
        .env("SERVICE_NAME", "visits-api")
        .env("MIN_TASKS", "1")
        .env("MAX_TASKS", "4")
        .envs(extra.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let mut init = None;
    let mut nexts = 0;
    for conn in listener.incoming() {
        let mut conn = conn?;
        let mut reader = BufReader::new(conn.try_clone()?);
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let mut len = 0usize;
        loop {
            let mut h = String::new();
            reader.read_line(&mut h)?;
            if h.trim().is_empty() {
                break;
            }
            if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().unwrap_or(0);
            }
        }
        let mut sink = vec![0; len];
        reader.read_exact(&mut sink)?;
        if line.contains("/invocation/next") {
            init.get_or_insert_with(|| start.elapsed());
            nexts += 1;
            if nexts > 1 {
                break; // served one event: the binary waits for the next
            }
            let deadline = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis()
                + 30_000;
            write!(
                conn,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nLambda-Runtime-Aws-Request-Id: bench-1\r\n\
                 Lambda-Runtime-Deadline-Ms: {deadline}\r\n\
                 Lambda-Runtime-Invoked-Function-Arn: arn:aws:lambda:us-east-1:123456789012:function:scale-up\r\n\
                 Content-Length: {}\r\n\r\n{body}",
                body.len()
            )?;
        } else {
            write!(conn, "HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n")?;
        }
    }
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id()))?;
    let hwm = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    child.kill()?;
    child.wait()?;
    Ok((init.unwrap_or_default(), hwm))
}

fn size(path: Option<&String>) -> String {
    match path.map(std::fs::metadata) {
        Some(Ok(m)) => format!("{:.2} MiB", m.len() as f64 / 1_048_576.0),
        Some(Err(e)) => format!("n/a ({e})"),
        None => "n/a (not built)".into(),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let act = bench_handler(&rt, "scale-up-cpu-high-alarm", 2000);
    let skip = bench_handler(&rt, "scale-up-cpu-high-ok", 2000);
    let mut rows = vec![
        (
            "handler, ALARM -> scale out (mocked AWS)".to_string(),
            format!("{:.1} µs", act.as_secs_f64() * 1e6),
            "≤ 1 ms".to_string(),
        ),
        (
            "handler, OK -> skip".to_string(),
            format!("{:.1} µs", skip.as_secs_f64() * 1e6),
            "≤ 1 ms".to_string(),
        ),
    ];
    if let Some(bin) = args.first() {
        // The SDK's HTTPS client loads the system trust store when it is built. This machine
        // (Debian) has a bundle plus a hashed directory of ~300 single-cert files, and both are
        // read; Lambda's provided.al2023 image keeps its roots in one bundle. So cold init is
        // given as is, and with SSL_CERT_FILE naming the bundle alone (what Lambda's layout
        // costs, and what the function's environment can set).
        let variants: [(&str, &[(&str, &str)]); 2] = [
            ("certs as is", &[]),
            (
                "SSL_CERT_FILE=bundle",
                &[("SSL_CERT_FILE", "/etc/ssl/certs/ca-certificates.crt")],
            ),
        ];
        let mut rss = 0;
        for (label, extra) in variants {
            let mut inits = Vec::new();
            for _ in 0..7 {
                match cold_start(Path::new(bin), extra) {
                    Ok((d, kb)) => {
                        inits.push(d);
                        rss = rss.max(kb);
                    }
                    Err(e) => eprintln!("cold start failed: {e}"),
                }
            }
            inits.sort();
            let median = inits.get(inits.len() / 2).copied().unwrap_or_default();
            rows.push((
                format!("cold init, exec -> first /next (median of 7), {label}"),
                format!("{:.1} ms", median.as_secs_f64() * 1e3),
                "≤ 15 ms".into(),
            ));
        }
        rows.push((
            "peak RSS after one event (native)".into(),
            format!("{:.1} MB", rss as f64 / 1024.0),
            "(report)".into(),
        ));
        rows.push((
            "binary size, native release (no fat LTO)".into(),
            size(args.first()),
            "(report)".into(),
        ));
    }
    rows.push((
        "binary size, arm64 stripped (cargo lambda)".into(),
        size(args.get(1)),
        "≤ 8 MB".into(),
    ));
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "\n{:<64} {:>12}   target   (load average {})",
        "scale-up",
        "measured",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    for (what, got, target) in rows {
        println!("{what:<64} {got:>12}   {target}");
    }
}
