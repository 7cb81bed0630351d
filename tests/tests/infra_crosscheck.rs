//! Cross-checks between the SAM templates (`infra/`), the functions' code and `events/`.
//!
//! cfn-lint and `sam validate` (run by `make test-infra`) check each template against AWS's
//! schemas; they cannot know what the Rust code reads or what the sample events name. These
//! tests parse both sides and fail when they drift apart: an env var the code reads but the
//! template never sets, an alarm whose action the target function does not permit, a rule
//! aimed at a function that does not exist, a sample event for an unknown function.
//!
//! Templates are decoded, and `!Ref`/`!Sub` resolved, by `e2e::template` (cfn-lint's
//! CloudFormation YAML decoder from the project venv), which the alarm driver uses too.

use e2e::template::{of_type, referenced_id, resolve_text, resources};

/// What a first deploy on a real account needs beyond the linters (names, periods, missing data,
/// the capacity-provider dependency, ENIs, the database secret).
#[path = "infra_crosscheck/deploy.rs"]
mod deploy;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The template that holds the functions, alarms and rules.
const SCALING: &str = "scaling.yaml";
/// The root template, which passes the alarm parameters down to `SCALING`.
const ROOT: &str = "template.yaml";

/// The alarm names that operators, notify and the local stack rely on (the alarm table of
/// infra/README.md), and the function each one invokes directly (None: notify only, through
/// the alarm-state-change rule).
const DOCUMENTED_ALARMS: &[(&str, Option<&str>)] = &[
    ("visits-api-cpu-high", Some("ScaleUpFunction")),
    ("visits-api-cpu-low", Some("ScaleDownFunction")),
    ("visits-api-memory-high", Some("ScaleUpFunction")),
    ("visits-api-inflight-high", Some("ScaleUpFunction")),
    ("visits-api-latency-p95-high", Some("ScaleUpFunction")),
    ("visits-api-5xx", None),
    ("visits-api-unhealthy-hosts", None),
    ("visits-api-cannot-write", None),
];

/// Variables the code may read that the template rightly leaves unset, and why.
/// `None` as the function means every function.
const NOT_SET_BY_TEMPLATE: &[(Option<&str>, &str, &str)] = &[
    (
        None,
        "AWS_ENDPOINT_URL",
        "local stack only: points the SDK at moto",
    ),
    (
        None,
        "TASK_IP_PREFIX_REWRITE",
        "local stack only: loopback twins of task IPs",
    ),
    (
        None,
        "ADMIN_TOKEN",
        "local stack only: on AWS ADMIN_TOKEN_SECRET_ARN names the secret, read at init",
    ),
    (
        Some("scale-up"),
        "ADMIN_TOKEN_SECRET_ARN",
        "scale-up never calls a task, so it gets no token",
    ),
    (
        Some("notify"),
        "ADMIN_TOKEN_SECRET_ARN",
        "notify never calls a task, so it gets no token",
    ),
    (
        Some("drain-instance"),
        "ADMIN_TOKEN_SECRET_ARN",
        "drain-instance drains through ECS, never calls a task",
    ),
    (
        Some("scale-down"),
        "TASKS_PER_INSTANCE",
        "only scale-up's capacity math counts ENIs",
    ),
    (
        Some("drain-instance"),
        "TASKS_PER_INSTANCE",
        "only scale-up's capacity math counts ENIs",
    ),
];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

use e2e::template::{cached as templates, infra as template};

/// `!Sub` strings (or literals) with `${Param}` replaced by the parameter defaults.
fn resolve_name(t: &Value, v: &Value) -> String {
    resolve_text(t, v).unwrap_or_else(|e| panic!("{v}: {e:#}"))
}

/// One Lambda function of the scaling template.
struct Function {
    logical_id: String,
    /// Folder under functions/, from CodeUri.
    crate_dir: String,
    /// Environment variable names set for it (Globals merged with its own).
    env: BTreeSet<String>,
    props: Value,
}

fn functions() -> Vec<Function> {
    let t = template(SCALING);
    let globals = &t["Globals"]["Function"];
    let global_env: BTreeSet<String> = globals["Environment"]["Variables"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    of_type(t, "AWS::Serverless::Function")
        .into_iter()
        .map(|(id, r)| {
            let code_uri = r["Properties"]["CodeUri"]
                .as_str()
                .expect("CodeUri is a path");
            let crate_dir = code_uri
                .strip_prefix("../functions/")
                .unwrap_or_else(|| panic!("{id}: CodeUri {code_uri} is not ../functions/<name>"))
                .trim_end_matches('/')
                .to_string();
            let mut env = global_env.clone();
            if let Some(m) = r["Properties"]["Environment"]["Variables"].as_object() {
                env.extend(m.keys().cloned());
            }
            let mut props = globals.clone();
            for (k, v) in r["Properties"].as_object().expect("Properties") {
                props[k] = v.clone();
            }
            Function {
                logical_id: id.clone(),
                crate_dir,
                env,
                props,
            }
        })
        .collect()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display())) {
        let p = entry.expect("dir entry").path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Non-test source of a file: everything before its `#[cfg(test)]` module.
fn non_test_source(path: &Path) -> String {
    let src =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    match src.find("#[cfg(test)]") {
        Some(i) => src[..i].to_string(),
        None => src,
    }
}

/// Whether a file is where a crate reads its environment: named for configuration, or
/// calling `env::var` itself.
fn reads_env(path: &Path, src: &str) -> bool {
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
    matches!(stem, "config" | "settings" | "env") || src.contains("env::var")
}

/// Env var names in a config file: UPPER_SNAKE literals passed as the first argument of a call
/// (`env.required("CLUSTER_NAME")`, `std::env::var("X")`, `Missing("Y")`), except calls that
/// wrap values rather than read variables.
fn env_names_in(src: &str) -> BTreeSet<String> {
    const NOT_READERS: &[&str] = &[
        "Some",
        "Ok",
        "Err",
        "matches",
        "assert",
        "assert_eq",
        "eq",
        "contains",
    ];
    let bytes = src.as_bytes();
    let mut names = BTreeSet::new();
    let mut i = 0;
    while let Some(off) = src[i..].find("(\"") {
        let open = i + off;
        i = open + 2;
        let mut start = open;
        while start > 0
            && (bytes[start - 1].is_ascii_alphanumeric()
                || bytes[start - 1] == b'_'
                || bytes[start - 1] == b'!')
        {
            start -= 1;
        }
        let callee = src[start..open].trim_end_matches('!');
        if callee.is_empty() || NOT_READERS.contains(&callee) {
            continue;
        }
        let Some(end) = src[i..].find('"') else { break };
        let lit = &src[i..i + end];
        let is_env_name = lit.len() >= 3
            && lit.starts_with(|c: char| c.is_ascii_uppercase())
            && lit
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
        if is_env_name {
            names.insert(lit.to_string());
        }
    }
    names
}

/// Env names read by the config files under `dir`, and whether any file there reads the shared
/// scaling config.
fn scan_crate(dir: &Path) -> (BTreeSet<String>, bool) {
    let mut files = Vec::new();
    rust_files(dir, &mut files);
    let mut names = BTreeSet::new();
    let mut uses_shared = false;
    for f in files {
        let src = non_test_source(&f);
        // Reading the whole scaling `Config`, not only its reader (`config::Env`, as notify does).
        uses_shared |= src.contains("Config::from_env");
        if reads_env(&f, &src) {
            names.extend(env_names_in(&src));
        }
    }
    (names, uses_shared)
}

/// What each function's code reads from its environment, by crate folder.
fn env_read_by_code() -> BTreeMap<String, BTreeSet<String>> {
    let (shared, _) = scan_crate(&repo().join("functions/scaling/src"));
    assert!(
        shared.contains("CLUSTER_NAME") && shared.contains("MIN_TASKS"),
        "found no env names in functions/scaling/src/config.rs ({shared:?}): has the reader moved?"
    );
    functions()
        .into_iter()
        .map(|f| {
            let (mut names, uses_shared) =
                scan_crate(&repo().join("functions").join(&f.crate_dir).join("src"));
            if uses_shared {
                names.extend(shared.iter().cloned());
            }
            (f.crate_dir, names)
        })
        .collect()
}

fn exempt(function: &str, var: &str) -> bool {
    var.starts_with("AWS_LAMBDA_")
        || matches!(
            var,
            "AWS_REGION" | "AWS_DEFAULT_REGION" | "_X_AMZN_TRACE_ID"
        )
        || NOT_SET_BY_TEMPLATE
            .iter()
            .any(|(f, v, _)| *v == var && f.is_none_or(|f| f == function))
}

#[test]
fn every_env_var_a_function_reads_is_set_for_it() {
    let read = env_read_by_code();
    let mut missing = Vec::new();
    for f in functions() {
        for var in &read[&f.crate_dir] {
            if !f.env.contains(var) && !exempt(&f.crate_dir, var) {
                missing.push(format!("{} ({}) reads {var}", f.logical_id, f.crate_dir));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "set these in infra/{SCALING} (Globals or the function):\n{}",
        missing.join("\n")
    );
}

#[test]
fn every_env_var_the_template_sets_is_read_by_some_function() {
    let read: BTreeSet<String> = env_read_by_code().into_values().flatten().collect();
    // Before the mains are wired, nothing uses the shared config yet: then only the shared
    // reader's names count.
    let (shared, _) = scan_crate(&repo().join("functions/scaling/src"));
    let known: BTreeSet<&String> = read.iter().chain(shared.iter()).collect();
    let mut unread = Vec::new();
    for f in functions() {
        for var in &f.env {
            if !known.contains(var) {
                unread.push(format!("{}: {var}", f.logical_id));
            }
        }
    }
    assert!(
        unread.is_empty(),
        "set in infra/{SCALING} but read by no code (typo or stale?):\n{}",
        unread.join("\n")
    );
}

#[test]
fn env_name_scanner_finds_reads_and_ignores_values() {
    let src = r#"
        let a = env.required("CLUSTER_NAME")?;
        let b = std::env::var("DRY_RUN").ok();
        let c = get("SCALING_ALARM_NAMES");
        let d = Some("ALARM");
        if matches!(s, "RUNNING") {}
        let e = parse_or("lowercase_not_env", 1);
    "#;
    let names: Vec<String> = env_names_in(src).into_iter().collect();
    assert_eq!(names, ["CLUSTER_NAME", "DRY_RUN", "SCALING_ALARM_NAMES"]);
}

#[test]
fn functions_are_rust_arm64_cargolambda_builds_of_their_crates() {
    let t = template(SCALING);
    let fns = functions();
    let ids: BTreeSet<&str> = fns.iter().map(|f| f.logical_id.as_str()).collect();
    assert_eq!(
        ids,
        BTreeSet::from([
            "ScaleUpFunction",
            "ScaleDownFunction",
            "NotifyFunction",
            "DrainInstanceFunction"
        ]),
        "the four functions' logical IDs (docs/design.md)"
    );
    for f in &fns {
        let r = &t["Resources"][&f.logical_id];
        assert_eq!(
            r["Metadata"]["BuildMethod"], "rust-cargolambda",
            "{}",
            f.logical_id
        );
        let manifest = repo()
            .join("functions")
            .join(&f.crate_dir)
            .join("Cargo.toml");
        let cargo = std::fs::read_to_string(&manifest)
            .unwrap_or_else(|e| panic!("{}: {e}", manifest.display()));
        let package = cargo
            .lines()
            .find_map(|l| l.trim().strip_prefix("name = \""))
            .and_then(|l| l.strip_suffix('"'))
            .unwrap_or_else(|| panic!("no package name in {}", manifest.display()));
        assert_eq!(
            r["Metadata"]["BuildProperties"]["Binary"], package,
            "{}: Binary must be the crate's bin (its package name)",
            f.logical_id
        );
        assert!(repo()
            .join("functions")
            .join(&f.crate_dir)
            .join("src/main.rs")
            .exists());
        assert_eq!(f.props["Runtime"], "provided.al2023", "{}", f.logical_id);
        assert_eq!(
            f.props["Architectures"],
            json!(["arm64"]),
            "{}",
            f.logical_id
        );
        assert_eq!(f.props["Handler"], "bootstrap", "{}", f.logical_id);
        assert_eq!(f.props["Tracing"], "Active", "{}", f.logical_id);
        let log_group = referenced_id(&f.props["LoggingConfig"]["LogGroup"]).unwrap_or_else(|| {
            panic!(
                "{}: LoggingConfig.LogGroup must !Ref a log group",
                f.logical_id
            )
        });
        assert!(
            t["Resources"][&log_group]["Properties"]["RetentionInDays"].is_object(),
            "{}: its log group needs a retention",
            f.logical_id
        );
        let role = referenced_id(&f.props["Role"])
            .unwrap_or_else(|| panic!("{}: needs its own Role", f.logical_id));
        let others = fns
            .iter()
            .filter(|o| o.logical_id != f.logical_id)
            .filter(|o| referenced_id(&o.props["Role"]).as_deref() == Some(role.as_str()));
        assert_eq!(others.count(), 0, "{}: role {role} is shared", f.logical_id);
    }
}

#[test]
fn scaling_functions_are_serialised_and_report_to_notify() {
    for f in functions() {
        let dest = &f.props["EventInvokeConfig"]["DestinationConfig"];
        if f.logical_id == "NotifyFunction" {
            // Notify's own failures go straight to the topic: a destination to itself would loop.
            assert_eq!(dest["OnFailure"]["Type"], "SNS");
            assert_eq!(
                referenced_id(&dest["OnFailure"]["Destination"]).as_deref(),
                Some("OpsTopic")
            );
            assert!(dest.get("OnSuccess").is_none());
            // The replay ring in the topic's tags is read-modify-write: one run at a time.
            assert_eq!(f.props["ReservedConcurrentExecutions"], 1, "NotifyFunction");
            continue;
        }
        for cond in ["OnSuccess", "OnFailure"] {
            assert_eq!(dest[cond]["Type"], "Lambda", "{} {cond}", f.logical_id);
            assert_eq!(
                referenced_id(&dest[cond]["Destination"]).as_deref(),
                Some("NotifyFunction"),
                "{} {cond}",
                f.logical_id
            );
        }
        if matches!(
            f.logical_id.as_str(),
            "ScaleUpFunction" | "ScaleDownFunction"
        ) {
            assert_eq!(
                f.props["ReservedConcurrentExecutions"], 1,
                "{}",
                f.logical_id
            );
        }
    }
}

/// A Lambda permission in `t` for `function`, from `principal`, scoped to `source` (a logical ID).
fn has_permission(t: &Value, function: &str, principal: &str, source: &str) -> bool {
    of_type(t, "AWS::Lambda::Permission")
        .into_iter()
        .any(|(_, p)| {
            let p = &p["Properties"];
            p["Action"] == "lambda:InvokeFunction"
                && p["Principal"] == principal
                && referenced_id(&p["FunctionName"]).as_deref() == Some(function)
                && referenced_id(&p["SourceArn"]).as_deref() == Some(source)
        })
}

fn function_ids(t: &Value) -> BTreeSet<String> {
    of_type(t, "AWS::Serverless::Function")
        .into_iter()
        .map(|(id, _)| id.clone())
        .collect()
}

/// Checks that `target` (an alarm action or rule target ARN) names a function of `t` that lets
/// `principal` invoke it from `source` only; describes the problem otherwise.
fn invocation_problem(t: &Value, source: &str, target: &Value, principal: &str) -> Option<String> {
    match referenced_id(target) {
        Some(f) if function_ids(t).contains(&f) => (!has_permission(t, &f, principal, source))
            .then(|| format!("{source} invokes {f} without a Lambda::Permission for {principal} scoped to {source}'s ARN")),
        _ => Some(format!("{source} invokes {target}, which is no function of this template")),
    }
}

#[test]
fn every_alarm_action_invokes_a_function_that_permits_that_alarm() {
    let mut problems = Vec::new();
    for (file, t) in templates() {
        for (id, alarm) in of_type(t, "AWS::CloudWatch::Alarm") {
            for kind in ["AlarmActions", "OKActions", "InsufficientDataActions"] {
                for action in alarm["Properties"][kind].as_array().into_iter().flatten() {
                    let principal = "lambda.alarms.cloudwatch.amazonaws.com";
                    if let Some(p) = invocation_problem(t, id, action, principal) {
                        problems.push(format!("{file}: {kind}: {p}"));
                    }
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_documented_alarms_exist_and_invoke_the_right_function() {
    let t = template(SCALING);
    let mut found = BTreeMap::new();
    for (id, alarm) in of_type(t, "AWS::CloudWatch::Alarm") {
        let name = resolve_name(t, &alarm["Properties"]["AlarmName"]);
        let actions: Vec<String> = alarm["Properties"]["AlarmActions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(referenced_id)
            .collect();
        found.insert(name, (id.clone(), actions));
    }
    for (name, target) in DOCUMENTED_ALARMS {
        let (id, actions) = found
            .get(*name)
            .unwrap_or_else(|| panic!("alarm {name} missing; have {:?}", found.keys()));
        let want: Vec<String> = target.iter().map(|s| s.to_string()).collect();
        assert_eq!(actions, &want, "{name} ({id}) alarm actions");
    }
}

/// The local stack's alarm driver reads each alarm's numbers from the template: they must be
/// literals or parameters with a Default, and the root must pass the same defaults down.
#[test]
fn alarm_numbers_are_literals_or_defaulted_parameters_that_the_root_passes_down() {
    let t = template(SCALING);
    let root = template(ROOT);
    let stack = resources(root)
        .values()
        .find(|r| r["Properties"]["Location"] == SCALING)
        .expect("the root nests scaling.yaml");
    for (id, alarm) in of_type(t, "AWS::CloudWatch::Alarm") {
        for key in [
            "Threshold",
            "Period",
            "EvaluationPeriods",
            "DatapointsToAlarm",
        ] {
            let v = &alarm["Properties"][key];
            if v.is_number() || v.is_string() {
                continue;
            }
            let param = v["Ref"].as_str().unwrap_or_else(|| {
                panic!("{id}.{key} must be a literal or !Ref <Parameter>, is {v}")
            });
            let default = &t["Parameters"][param]["Default"];
            assert!(
                !default.is_null(),
                "{id}.{key}: parameter {param} needs a Default"
            );
            assert_eq!(
                stack["Properties"]["Parameters"][param],
                json!({"Ref": param}),
                "the root must pass {param} through to {SCALING}"
            );
            assert_eq!(
                &root["Parameters"][param]["Default"], default,
                "{param}: the root's Default differs from {SCALING}'s"
            );
        }
    }
}

/// A parameter the root passes straight through (`Name: !Ref Name`) has one default: a root
/// default that differs silently overrides the nested stack's on every deploy from the root
/// (the root once deployed the fixed step while scaling.yaml and the measurements used the
/// proportional one).
#[test]
fn parameters_passed_through_have_the_nested_stacks_default() {
    let root = template(ROOT);
    let mut differ = Vec::new();
    for (id, stack) in resources(root) {
        let Some(location) = stack["Properties"]["Location"].as_str() else {
            continue;
        };
        let nested = template(location);
        let passed = stack["Properties"]["Parameters"].as_object().cloned();
        for (param, v) in passed.unwrap_or_default() {
            if v != json!({ "Ref": param }) {
                continue;
            }
            let (outer, inner) = (
                &root["Parameters"][&param]["Default"],
                &nested["Parameters"][&param]["Default"],
            );
            // Compare as text: YAML may spell the same default as 60 or "60".
            let text = |d: &Value| d.as_str().map_or_else(|| d.to_string(), str::to_string);
            if !inner.is_null() && !outer.is_null() && text(outer) != text(inner) {
                differ.push(format!(
                    "{id} ({location}).{param}: root {outer}, nested {inner}"
                ));
            }
        }
    }
    assert!(
        differ.is_empty(),
        "defaults that differ:\n{}",
        differ.join("\n")
    );
}

#[test]
fn high_resolution_alarms_use_10_second_periods() {
    let t = template(SCALING);
    for (id, alarm) in of_type(t, "AWS::CloudWatch::Alarm") {
        let metric = alarm["Properties"]["MetricName"].as_str().unwrap_or("");
        if matches!(metric, "InFlight" | "LatencyP95") {
            let param = alarm["Properties"]["Period"]["Ref"]
                .as_str()
                .expect("Period is a parameter");
            let default = &t["Parameters"][param]["Default"];
            let secs = default
                .as_f64()
                .or_else(|| default.as_str().and_then(|s| s.parse().ok()));
            assert_eq!(secs, Some(10.0), "{id}: EMF alarms are high-resolution");
        }
    }
}

#[test]
fn every_event_rule_targets_a_function_that_permits_that_rule() {
    let mut problems = Vec::new();
    for (file, t) in templates() {
        for (id, rule) in of_type(t, "AWS::Events::Rule") {
            let targets = rule["Properties"]["Targets"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if targets.is_empty() {
                problems.push(format!("{file}: {id} has no targets"));
            }
            for target in targets {
                if let Some(p) = invocation_problem(t, id, &target["Arn"], "events.amazonaws.com") {
                    problems.push(format!("{file}: {p}"));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The EventBridge rules the design needs (docs/design.md): alarm changes, task stops and
/// service actions to notify, the capacity group's terminate hook to drain-instance, and
/// scale-down's reconcile schedule.
#[test]
fn the_event_rules_exist() {
    let t = template(SCALING);
    let rules = of_type(t, "AWS::Events::Rule");
    let routes = |pred: &dyn Fn(&Value) -> bool, function: &str| {
        rules.iter().any(|(_, r)| {
            pred(&r["Properties"])
                && r["Properties"]["Targets"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|x| referenced_id(&x["Arn"]).as_deref() == Some(function))
        })
    };
    let detail_type = |dt: &'static str| {
        move |p: &Value| {
            p["EventPattern"]["detail-type"]
                .as_array()
                .is_some_and(|a| a.iter().any(|v| v == dt))
        }
    };
    assert!(routes(
        &detail_type("CloudWatch Alarm State Change"),
        "NotifyFunction"
    ));
    assert!(routes(
        &detail_type("ECS Task State Change"),
        "NotifyFunction"
    ));
    assert!(routes(&detail_type("ECS Service Action"), "NotifyFunction"));
    assert!(routes(
        &detail_type("EC2 Instance-terminate Lifecycle Action"),
        "DrainInstanceFunction"
    ));
    assert!(routes(
        &|p: &Value| p["ScheduleExpression"] == "rate(2 minutes)",
        "ScaleDownFunction"
    ));
}

/// Which trigger envelope a sample event is, by the keys AWS puts at its top level.
fn envelope(v: &Value) -> Option<&'static str> {
    if v.get("alarmData").is_some() && v["source"] == "aws.cloudwatch" {
        Some("alarm-action")
    } else if v.get("detail-type").is_some()
        && v.get("source").is_some()
        && v.get("detail").is_some()
    {
        Some("eventbridge")
    } else if v["Records"][0]["Sns"].is_object() {
        Some("sns")
    } else if v["requestContext"]["condition"].is_string()
        && v["requestContext"]["functionArn"].is_string()
    {
        Some("destination")
    } else if v["source"]
        .as_str()
        .is_some_and(|s| s.starts_with("visits-autoscaler."))
        && v["scheduled_time"].is_string()
    {
        // The input the template's EventBridge Scheduler schedules send (window edges, the
        // forecast review), with <aws.scheduler.scheduled-time> filled in.
        Some("scheduler-input")
    } else {
        None
    }
}

/// The alarm an event is about, whichever envelope carries it.
fn alarm_name_in(v: &Value) -> Option<String> {
    if let Some(n) = v["alarmData"]["alarmName"].as_str() {
        return Some(n.to_string());
    }
    if v["detail-type"] == "CloudWatch Alarm State Change" {
        return v["detail"]["alarmName"].as_str().map(str::to_string);
    }
    let msg = v["Records"][0]["Sns"]["Message"].as_str()?;
    let inner: Value = serde_json::from_str(msg).ok()?;
    inner["AlarmName"].as_str().map(str::to_string)
}

#[test]
fn every_sample_event_is_json_for_a_known_function() {
    let crates: BTreeMap<String, String> = functions()
        .into_iter()
        .map(|f| (f.crate_dir, f.logical_id))
        .collect();
    let alarm_names: BTreeSet<&str> = DOCUMENTED_ALARMS.iter().map(|(n, _)| *n).collect();
    let dir = repo().join("events");
    let mut checked = 0;
    let mut problems = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("read events/") {
        let path = entry.expect("dir entry").path();
        let file = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("")
            .to_string();
        if file == "README.md" {
            continue;
        }
        let Some(stem) = file.strip_suffix(".json") else {
            problems.push(format!(
                "{file}: only <function>-<case>.json files belong in events/"
            ));
            continue;
        };
        // The longest function name that prefixes the stem, so `scale-down-x` is not `scale-x`.
        let function = crates
            .keys()
            .filter(|f| stem.starts_with(&format!("{f}-")))
            .max_by_key(|f| f.len());
        let Some(function) = function else {
            problems.push(format!(
                "{file}: names no function of infra/{SCALING} ({:?})",
                crates.keys()
            ));
            continue;
        };
        let text = std::fs::read_to_string(&path).expect("read event");
        let v: Value = match serde_json::from_str(&text) {
            Ok(v) => v,
            Err(e) => {
                problems.push(format!("{file}: not JSON: {e}"));
                continue;
            }
        };
        if envelope(&v).is_none() {
            problems.push(format!(
                "{file}: not an AWS trigger envelope (alarm action, EventBridge, SNS, Lambda destination or Scheduler input) for {function}"
            ));
        }
        if let Some(name) = alarm_name_in(&v) {
            if !alarm_names.contains(name.as_str()) {
                problems.push(format!(
                    "{file}: alarm {name} is not one of the template's alarms"
                ));
            }
        }
        checked += 1;
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    eprintln!("checked {checked} sample events");
}

#[test]
fn direct_alarm_samples_name_an_alarm_that_invokes_that_function() {
    let routed: BTreeMap<&str, &str> = DOCUMENTED_ALARMS
        .iter()
        .filter_map(|(n, f)| f.map(|f| (*n, f)))
        .collect();
    let crates: BTreeMap<String, String> = functions()
        .into_iter()
        .map(|f| (f.crate_dir, f.logical_id))
        .collect();
    for (crate_dir, logical_id) in &crates {
        for entry in std::fs::read_dir(repo().join("events")).expect("read events/") {
            let path = entry.expect("dir entry").path();
            let file = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("")
                .to_string();
            if !file.starts_with(&format!("{crate_dir}-")) || !file.ends_with(".json") {
                continue;
            }
            let Ok(v) =
                serde_json::from_str::<Value>(&std::fs::read_to_string(&path).expect("read"))
            else {
                continue; // reported by every_sample_event_is_json_for_a_known_function
            };
            if envelope(&v) != Some("alarm-action") {
                continue;
            }
            let name = v["alarmData"]["alarmName"].as_str().unwrap_or("");
            assert_eq!(
                routed.get(name).copied(),
                Some(logical_id.as_str()),
                "{file}: a direct alarm action for {logical_id} must name an alarm whose action is {logical_id}"
            );
        }
    }
}

/// The string a `!Sub` or `!Join` of literals and `!Sub`s resolves to with parameter defaults.
fn resolve_joined(t: &Value, v: &Value) -> String {
    match v.get("Fn::Join").and_then(Value::as_array) {
        Some(j) => {
            let sep = j[0].as_str().expect("!Join separator is a literal");
            j[1].as_array()
                .expect("!Join of a literal list")
                .iter()
                .map(|part| resolve_name(t, part))
                .collect::<Vec<_>>()
                .join(sep)
        }
        None => resolve_name(t, v),
    }
}

fn notify() -> Function {
    functions()
        .into_iter()
        .find(|f| f.logical_id == "NotifyFunction")
        .expect("NotifyFunction")
}

#[test]
fn notify_settings_are_found_by_the_scanner_and_set_by_the_template() {
    // Guards the scan itself: if settings.rs moved or changed its reader, the generic
    // env tests would silently check nothing for notify.
    let read = &env_read_by_code()[&notify().crate_dir];
    let f = notify();
    for var in [
        "CLUSTER_NAME",
        "SERVICE_NAME",
        "TOPIC_ARN",
        "CAPACITY_ASG_NAME",
        "SCALING_ALARM_NAMES",
        "FLAP_MAX_TRANSITIONS",
        "FLAP_WINDOW_MIN",
        "NOTIFY_MIN_SEVERITY",
    ] {
        assert!(
            read.contains(var),
            "notify no longer reads {var}? read: {read:?}"
        );
        assert!(f.env.contains(var), "NotifyFunction: {var} is not set");
    }
    let t = template(SCALING);
    let vars = &f.props["Environment"]["Variables"];
    for var in ["FLAP_MAX_TRANSITIONS", "FLAP_WINDOW_MIN"] {
        let v = resolve_name(t, &vars[var]);
        assert!(
            v.parse::<u32>().is_ok_and(|n| n >= 1),
            "{var}={v:?}: notify wants a positive integer"
        );
    }
    let severity = vars["NOTIFY_MIN_SEVERITY"]["Ref"]
        .as_str()
        .expect("NOTIFY_MIN_SEVERITY is a parameter");
    let allowed: BTreeSet<&str> = t["Parameters"][severity]["AllowedValues"]
        .as_array()
        .expect("AllowedValues")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(allowed, BTreeSet::from(["info", "warning", "critical"]));
}

#[test]
fn scaling_alarm_names_are_exactly_the_alarms_that_invoke_scale_up_or_down() {
    let t = template(SCALING);
    let f = notify();
    let listed: BTreeSet<String> = resolve_joined(
        t,
        &f.props["Environment"]["Variables"]["SCALING_ALARM_NAMES"],
    )
    .split(',')
    .map(|s| s.trim().to_string())
    .filter(|s| !s.is_empty())
    .collect();
    let invoking: BTreeSet<String> =
        e2e::template::alarms_invoking(t, &["ScaleUpFunction", "ScaleDownFunction"])
            .into_iter()
            .map(|(_, a)| resolve_name(t, &a["Properties"]["AlarmName"]))
            .collect();
    assert_eq!(
        listed, invoking,
        "NotifyFunction's SCALING_ALARM_NAMES vs the alarms whose actions scale"
    );
}

/// The actions a role's inline policies allow on a resource (compared as decoded JSON).
fn role_allows(t: &Value, role: &str, resource: &Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for policy in t["Resources"][role]["Properties"]["Policies"]
        .as_array()
        .into_iter()
        .flatten()
    {
        for st in policy["PolicyDocument"]["Statement"]
            .as_array()
            .into_iter()
            .flatten()
        {
            if st["Effect"] != "Allow" || &st["Resource"] != resource {
                continue;
            }
            match &st["Action"] {
                Value::String(a) => {
                    out.insert(a.clone());
                }
                Value::Array(a) => out.extend(a.iter().filter_map(Value::as_str).map(String::from)),
                _ => {}
            }
        }
    }
    out
}

#[test]
fn notify_role_allows_the_topic_ring_and_alarm_history() {
    let t = template(SCALING);
    let role = referenced_id(&notify().props["Role"]).expect("NotifyFunction has a Role");
    let on_topic = role_allows(t, &role, &json!({"Ref": "OpsTopic"}));
    for action in ["sns:Publish", "sns:ListTagsForResource", "sns:TagResource"] {
        assert!(
            on_topic.contains(action),
            "{role}: {action} on OpsTopic (have {on_topic:?})"
        );
    }
    // DescribeAlarmHistory scoped to the alarms the alarm rule forwards to notify.
    let history = json!({"Fn::Sub":
        "arn:${AWS::Partition}:cloudwatch:${AWS::Region}:${AWS::AccountId}:alarm:${ServiceName}-*"});
    assert!(
        role_allows(t, &role, &history).contains("cloudwatch:DescribeAlarmHistory"),
        "{role}: cloudwatch:DescribeAlarmHistory on {history}"
    );
    let alarm_rule_prefix = &t["Resources"]["AlarmStateChangeRule"]["Properties"]["EventPattern"]
        ["detail"]["alarmName"][0]["prefix"];
    assert_eq!(alarm_rule_prefix, &json!({"Fn::Sub": "${ServiceName}-"}));
}

#[test]
fn rules_send_notify_only_detail_types_it_decodes() {
    let t = template(SCALING);
    let parser = std::fs::read_to_string(repo().join("functions/notify/src/event/mod.rs"))
        .expect("read functions/notify/src/event/mod.rs");
    let mut problems = Vec::new();
    for (id, rule) in of_type(t, "AWS::Events::Rule") {
        let p = &rule["Properties"];
        let to_notify = p["Targets"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|x| referenced_id(&x["Arn"]).as_deref() == Some("NotifyFunction"));
        if !to_notify {
            continue;
        }
        let types = p["EventPattern"]["detail-type"].as_array();
        assert!(
            types.is_some(),
            "{id}: a rule to notify names its detail-types"
        );
        for dt in types.into_iter().flatten().filter_map(Value::as_str) {
            if !parser.contains(&format!("\"{dt}\"")) {
                problems.push(format!("{id}: notify does not decode {dt:?}"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

// --- Fargate Spot ------------------------------------------------------------------------------
//
// A Spot interruption sends a task-state-change event and SIGTERM two minutes before the task is
// stopped; a Spot task may stay registered in its target group until it is STOPPED, so the
// deregistration delay must stay under those two minutes too (AWS Knowledge Center, "How do I
// handle Spot termination notices in AWS Fargate Spot tasks?").

/// Fargate Spot's warning before the task is stopped.
const SPOT_WARNING_S: f64 = 120.0;
/// What "well inside" the warning means: the API's shutdown and ECS's stop leave this much.
const SPOT_MARGIN_S: f64 = 30.0;

/// The API's `SHUTDOWN_GRACE_S`: the task definition's value, else the code's default.
fn api_shutdown_grace_s(container: &Value) -> f64 {
    let set = container["Environment"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["Name"] == "SHUTDOWN_GRACE_S");
    if let Some(e) = set {
        return e2e::template::resolve_number(template("service.yaml"), &e["Value"])
            .expect("SHUTDOWN_GRACE_S is a number");
    }
    let src = std::fs::read_to_string(repo().join("api/src/config.rs")).expect("api config");
    let re = regex_lite::Regex::new(r#"ranged\("SHUTDOWN_GRACE_S",\s*(\d+)"#).unwrap();
    re.captures(&src)
        .and_then(|c| c[1].parse().ok())
        .expect("api/src/config.rs reads SHUTDOWN_GRACE_S with a default")
}

#[test]
fn graceful_shutdown_and_deregistration_fit_inside_the_spot_warning() {
    let svc = template("service.yaml");
    let td = &resources(svc)["TaskDefinition"]["Properties"];
    let api = &td["ContainerDefinitions"][0];
    let stop_timeout = api["StopTimeout"]
        .as_f64()
        .expect("StopTimeout is set on the API");
    let grace = api_shutdown_grace_s(api);
    assert!(
        grace < stop_timeout,
        "SHUTDOWN_GRACE_S {grace} must end before ECS's SIGKILL at StopTimeout {stop_timeout}"
    );
    assert!(
        stop_timeout + SPOT_MARGIN_S <= SPOT_WARNING_S,
        "StopTimeout {stop_timeout} s leaves less than {SPOT_MARGIN_S} s of the {SPOT_WARNING_S} s Spot warning"
    );
    for (name, t) in [("template.yaml", template(ROOT)), ("service.yaml", svc)] {
        let p = &t["Parameters"]["DeregistrationDelaySeconds"];
        let max = p["MaxValue"].as_f64().unwrap_or(f64::INFINITY);
        let default = p["Default"].as_f64().expect("a default");
        assert!(
            max < SPOT_WARNING_S && default + SPOT_MARGIN_S <= SPOT_WARNING_S,
            "{name}: DeregistrationDelaySeconds (default {default}, max {max}) must stay under the Spot warning"
        );
    }
    // The target group takes the parameter, not a literal.
    let tg = of_type(svc, "AWS::ElasticLoadBalancingV2::TargetGroup");
    let attrs = tg[0].1["Properties"]["TargetGroupAttributes"]
        .as_array()
        .unwrap();
    let delay = attrs
        .iter()
        .find(|a| a["Key"] == "deregistration_delay.timeout_seconds")
        .expect("the target group sets its deregistration delay");
    assert_eq!(
        referenced_id(&delay["Value"]).as_deref(),
        Some("DeregistrationDelaySeconds")
    );
}

#[test]
fn spot_is_a_capacity_provider_strategy_with_an_on_demand_base() {
    let svc = template("service.yaml");
    let r = resources(svc);
    let cluster_providers = &r["Cluster"]["Properties"]["CapacityProviders"]["Fn::If"];
    assert_eq!(cluster_providers[0], "IsFargate");
    assert_eq!(cluster_providers[1], json!(["FARGATE", "FARGATE_SPOT"]));
    let service = &r["Service"]["Properties"];
    // With a Spot weight the service has no launch type, only the strategy.
    assert_eq!(service["LaunchType"]["Fn::If"][0], "UseFargateSpot");
    assert_eq!(
        service["LaunchType"]["Fn::If"][1],
        json!({"Ref": "AWS::NoValue"})
    );
    let spot = &service["CapacityProviderStrategy"]["Fn::If"][2]["Fn::If"];
    assert_eq!(spot[0], "UseFargateSpot");
    let strategy = spot[1].as_array().expect("a strategy");
    let on_demand = strategy
        .iter()
        .find(|s| s["CapacityProvider"] == "FARGATE")
        .expect("an on-demand part");
    assert_eq!(
        referenced_id(&on_demand["Base"]).as_deref(),
        Some("FargateOnDemandBase")
    );
    assert_eq!(
        referenced_id(&on_demand["Weight"]).as_deref(),
        Some("FargateOnDemandWeight")
    );
    let spot_part = strategy
        .iter()
        .find(|s| s["CapacityProvider"] == "FARGATE_SPOT")
        .expect("a Spot part");
    assert_eq!(
        referenced_id(&spot_part["Weight"]).as_deref(),
        Some("FargateSpotWeight")
    );
    assert!(
        spot_part.get("Base").is_none(),
        "the base stays on on-demand"
    );
    // Spot is off by default, and the root passes every Spot parameter down.
    let root = template(ROOT);
    assert_eq!(root["Parameters"]["FargateSpotWeight"]["Default"], json!(0));
    let passed = &resources(root)["ServiceStack"]["Properties"]["Parameters"];
    for p in [
        "FargateSpotWeight",
        "FargateOnDemandBase",
        "FargateOnDemandWeight",
        "TaskCpuArchitecture",
    ] {
        assert_eq!(
            referenced_id(&passed[p]).as_deref(),
            Some(p),
            "root -> service.yaml {p}"
        );
    }
    // Fargate Spot runs X86_64 only: the root's rules say so at deploy time.
    let rule = &root["Rules"]["SpotRunsX86OnFargate"];
    assert!(
        rule["Assertions"].to_string().contains("X86_64"),
        "a Spot weight requires X86_64 tasks: {rule}"
    );
}
