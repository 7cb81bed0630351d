//! Cross-checks for what a first deploy on a real AWS account gets wrong although every linter
//! passes: each test names the AWS behaviour it guards against (docs/deploy.md lists the sources).

use super::{template, ROOT, SCALING};
use e2e::template::{of_type, resources};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

const SERVICE: &str = "service.yaml";
const DATABASE: &str = "database.yaml";

fn resource<'a>(t: &'a Value, id: &str) -> &'a Value {
    let r = &t["Resources"][id];
    assert!(!r.is_null(), "resource {id} is missing");
    r
}

fn depends_on(r: &Value) -> Vec<String> {
    match &r["DependsOn"] {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a
            .iter()
            .filter_map(|v| v.as_str().map(String::from))
            .collect(),
        _ => Vec::new(),
    }
}

/// Every `Ref` / `GetAtt` target anywhere under `v`.
fn references(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(m) => {
            if let Some(r) = m.get("Ref").and_then(Value::as_str) {
                out.insert(r.to_string());
            }
            if let Some(g) = m.get("Fn::GetAtt") {
                if let Some(id) = g.get(0).and_then(Value::as_str) {
                    out.insert(id.to_string());
                }
            }
            if let Some(s) = m.get("Fn::Sub") {
                let text = s.as_str().or_else(|| s.get(0).and_then(Value::as_str));
                for part in text.unwrap_or("").split("${").skip(1) {
                    if let Some(name) = part.split('}').next() {
                        out.insert(name.split('.').next().unwrap_or(name).to_string());
                    }
                }
            }
            m.values().for_each(|v| references(v, out));
        }
        Value::Array(a) => a.iter().for_each(|v| references(v, out)),
        _ => {}
    }
}

/// aws/containers-roadmap #493: CloudFormation sends DesiredCount on every service update (a new
/// image too), resetting a scaled-out service with no drain.
#[test]
fn the_service_leaves_desired_count_to_the_autoscaler() {
    for (id, svc) in of_type(template(SERVICE), "AWS::ECS::Service") {
        assert!(
            svc["Properties"].get("DesiredCount").is_none(),
            "{id} sets DesiredCount: every stack update would reset the running task count"
        );
    }
}

/// aws/containers-roadmap #631: in EC2 mode the service must wait for the cluster's capacity
/// provider association, and DependsOn cannot be conditional.
#[test]
fn the_ec2_service_waits_for_the_capacity_provider_association() {
    let t = template(SERVICE);
    let assoc: Vec<_> = of_type(t, "AWS::ECS::ClusterCapacityProviderAssociations")
        .into_iter()
        .map(|(id, _)| id.clone())
        .collect();
    assert!(!assoc.is_empty(), "no capacity provider association");
    for (id, svc) in of_type(t, "AWS::ECS::Service") {
        let deps = depends_on(svc);
        let reached = deps.iter().any(|d| {
            let mut refs = BTreeSet::new();
            references(resource(t, d), &mut refs);
            assoc.contains(d) || assoc.iter().any(|a| refs.contains(a))
        });
        assert!(
            reached,
            "{id} does not depend (directly or through a gate) on {assoc:?}; DependsOn {deps:?}"
        );
    }
}

/// The physical names every stack sets, resolved for one stack name: nested templates' name
/// properties with the root's ClusterName/ServiceName as it passes them.
fn physical_names(stack: &str, overrides: &BTreeMap<String, String>) -> BTreeSet<String> {
    let root = template(ROOT);
    let pick = |param: &str| -> String {
        let set = overrides.get(param).cloned().unwrap_or_default();
        let passed = &resources(root)["ServiceStack"]["Properties"]["Parameters"][param];
        let branches = passed["Fn::If"]
            .as_array()
            .unwrap_or_else(|| panic!("the root passes {param} as {passed}, not derived"));
        let cond = branches[0].as_str().expect("condition name");
        let test = &root["Conditions"][cond]["Fn::Equals"];
        assert_eq!(test[0]["Ref"], param, "{cond} tests {param}");
        assert_eq!(test[1], "", "{cond} derives {param} when it is empty");
        assert_eq!(
            root["Parameters"][param]["Default"], "",
            "{param} defaults to empty"
        );
        let chosen = if set.is_empty() {
            &branches[1]
        } else {
            &branches[2]
        };
        substitute(
            chosen,
            &BTreeMap::from([("AWS::StackName".into(), stack.into()), (param.into(), set)]),
        )
    };
    let params = BTreeMap::from([
        ("ClusterName".to_string(), pick("ClusterName")),
        ("ServiceName".to_string(), pick("ServiceName")),
    ]);
    /// Resource types whose physical name is account- and region-wide, and the property that
    /// sets it (every other resource of these templates gets a generated name).
    const NAMED: &[(&str, &str)] = &[
        ("AWS::ECS::Cluster", "ClusterName"),
        ("AWS::ECS::Service", "ServiceName"),
        ("AWS::ECS::TaskDefinition", "Family"),
        ("AWS::Logs::LogGroup", "LogGroupName"),
        ("AWS::CloudWatch::Alarm", "AlarmName"),
        ("AWS::CloudWatch::Dashboard", "DashboardName"),
        ("AWS::Lambda::Function", "FunctionName"),
        ("AWS::Serverless::Function", "FunctionName"),
        ("AWS::SNS::Topic", "TopicName"),
        ("AWS::IAM::Role", "RoleName"),
    ];
    let mut names = BTreeSet::new();
    for file in [SERVICE, SCALING, "dashboard.yaml", DATABASE, "network.yaml"] {
        for (id, r) in resources(template(file)) {
            let ty = r["Type"].as_str().unwrap_or("");
            for (_, key) in NAMED.iter().filter(|(t, _)| *t == ty) {
                let v = &r["Properties"][*key];
                if v.is_null() {
                    continue;
                }
                let name = substitute(v, &params);
                assert!(
                    name.contains(&params["ClusterName"]) || name.contains(&params["ServiceName"]),
                    "{file}: {id}.{key} = {name:?} is not derived from the stack's names"
                );
                names.insert(format!("{ty}:{name}"));
            }
        }
    }
    names
}

/// `!Ref P` / `!Sub "..${P}.."` / a literal, with `params` substituted; panics on anything else.
fn substitute(v: &Value, params: &BTreeMap<String, String>) -> String {
    let lookup = |p: &str| {
        params
            .get(p)
            .cloned()
            .unwrap_or_else(|| panic!("{p} is not one of the names this check resolves ({v})"))
    };
    match v {
        Value::String(s) => s.clone(),
        _ if v.get("Ref").is_some() => lookup(v["Ref"].as_str().expect("Ref name")),
        _ if v.get("Fn::Sub").is_some() => {
            let mut rest = v["Fn::Sub"].as_str().expect("a string !Sub");
            let mut out = String::new();
            while let Some(start) = rest.find("${") {
                let end = rest[start..].find('}').expect("closed ${") + start;
                out.push_str(&rest[..start]);
                out.push_str(&lookup(&rest[start + 2..end]));
                rest = &rest[end + 1..];
            }
            out.push_str(rest);
            out
        }
        other => panic!("cannot resolve the name {other}"),
    }
}

/// Two stacks in one account (samconfig's default and prod) share no physical name.
#[test]
fn two_stacks_share_no_physical_name() {
    let default = physical_names("visits-autoscaler", &BTreeMap::new());
    let prod = physical_names("visits-autoscaler-prod", &BTreeMap::new());
    assert!(default.len() >= 5, "too few names found: {default:?}");
    let shared: Vec<_> = default.intersection(&prod).collect();
    assert!(shared.is_empty(), "both stacks would create {shared:?}");
    // An operator who sets the names keeps them.
    let set = physical_names(
        "any",
        &BTreeMap::from([("ServiceName".to_string(), "shop-api".to_string())]),
    );
    assert!(
        set.iter().any(|n| n.ends_with(":shop-api-cpu-high")),
        "{set:?}"
    );
}

/// (namespace, metric, statistic period) of every metric an alarm reads: its own, or each
/// `Metrics[].MetricStat` of a metric-math alarm.
fn alarm_metrics(alarm: &Value) -> Vec<(String, String, Value)> {
    let p = &alarm["Properties"];
    let ns = |v: &Value| match v {
        Value::String(s) => s.clone(),
        _ if v.get("Ref").is_some() => format!("${{{}}}", v["Ref"].as_str().unwrap_or("")),
        other => other.to_string(),
    };
    if let Some(metrics) = p["Metrics"].as_array() {
        metrics
            .iter()
            .filter(|m| !m["MetricStat"].is_null())
            .map(|m| {
                let s = &m["MetricStat"];
                (
                    ns(&s["Metric"]["Namespace"]),
                    s["Metric"]["MetricName"].as_str().unwrap_or("").to_string(),
                    s["Period"].clone(),
                )
            })
            .collect()
    } else {
        vec![(
            ns(&p["Namespace"]),
            p["MetricName"].as_str().unwrap_or("").to_string(),
            p["Period"].clone(),
        )]
    }
}

/// Every period a value can take: a literal, or every value its parameter allows, in the
/// scaling template and in the root that passes it down.
fn possible_periods(v: &Value) -> Vec<f64> {
    let num = |v: &Value| {
        v.as_f64()
            .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            .unwrap_or_else(|| panic!("period {v} is not a number"))
    };
    let Some(param) = v["Ref"].as_str() else {
        return vec![num(v)];
    };
    let mut out = Vec::new();
    for t in [template(SCALING), template(ROOT)] {
        let decl = &t["Parameters"][param];
        if decl.is_null() {
            continue;
        }
        match decl["AllowedValues"].as_array() {
            Some(values) => out.extend(values.iter().map(num)),
            None => {
                // Without a list, MinValue bounds it; a missing MinValue lets anything through.
                out.push(decl.get("MinValue").map(num).unwrap_or(1.0));
                out.push(num(&decl["Default"]));
            }
        }
    }
    out
}

/// AWS/ECS and ALB metrics arrive once a minute ("Amazon ECS CloudWatch metrics", "CloudWatch
/// metrics for your Application Load Balancer"): a shorter alarm period stays in
/// INSUFFICIENT_DATA. Only the API's own high-resolution EMF metrics may be sub-minute.
#[test]
fn only_high_resolution_metrics_get_sub_minute_periods() {
    let mut problems = Vec::new();
    let mut checked = 0;
    for (id, alarm) in of_type(template(SCALING), "AWS::CloudWatch::Alarm") {
        for (ns, metric, period) in alarm_metrics(alarm) {
            checked += 1;
            let emf = ns == "${MetricsNamespace}";
            for p in possible_periods(&period) {
                let ok = if emf {
                    [10.0, 30.0].contains(&p) || (p >= 60.0 && p % 60.0 == 0.0)
                } else {
                    p >= 60.0 && p % 60.0 == 0.0
                };
                if !ok {
                    problems.push(format!("{id}: {ns} {metric} may get a {p} s period"));
                }
            }
        }
    }
    assert!(checked >= 5, "found only {checked} alarm metrics");
    assert!(problems.is_empty(), "{problems:#?}");
}

/// What missing data means for each metric an alarm watches, and so its TreatMissingData.
/// `notBreaching` where no data means no load; `missing` where no data means the autoscaler is
/// blind (the metric is published while any task runs), which must stay visible.
const MISSING_DATA: &[(&str, &str, &str)] = &[
    (
        "CPUUtilization",
        "missing",
        "AWS/ECS publishes it every minute while a task runs; none = blind",
    ),
    ("MemoryUtilization", "missing", "as CPUUtilization"),
    (
        "InFlight",
        "missing",
        "every EMF record carries it, idle or not; none = no task reporting",
    ),
    (
        "LatencyP95",
        "notBreaching",
        "declared only for an interval with requests; none = no load",
    ),
    (
        "HTTPCode_Target_5XX_Count",
        "notBreaching",
        "ALB publishes it only when a target answers 5xx",
    ),
    (
        "UnHealthyHostCount",
        "notBreaching",
        "no data = no registered target to be unhealthy",
    ),
    (
        "RequestCount",
        "notBreaching",
        "ALB and EMF: no requests, no datapoint",
    ),
    (
        "TargetResponseTime",
        "notBreaching",
        "published only for requests",
    ),
    (
        "CanWrite",
        "notBreaching",
        "every EMF record carries it; none = no task, which unhealthy-hosts and the CPU alarms see",
    ),
    ("LatencyP99", "notBreaching", "as LatencyP95"),
    ("LatencyP50", "notBreaching", "as LatencyP95"),
];

#[test]
fn each_alarm_treats_missing_data_as_its_metric_means_it() {
    let mut problems = Vec::new();
    for (id, alarm) in of_type(template(SCALING), "AWS::CloudWatch::Alarm") {
        let got = alarm["Properties"]["TreatMissingData"]
            .as_str()
            .unwrap_or("missing");
        for (_, metric, _) in alarm_metrics(alarm) {
            match MISSING_DATA.iter().find(|(m, ..)| *m == metric) {
                Some((_, want, why)) if *want != got => problems.push(format!(
                    "{id} ({metric}): TreatMissingData {got}, want {want}: {why}"
                )),
                Some(_) => {}
                None => problems.push(format!(
                    "{id}: say in MISSING_DATA what missing data means for {metric}"
                )),
            }
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

/// Each awsvpc task takes an ENI; the instance keeps its primary one. The instance types offered
/// are exactly those whose limit is known, and scale-up is told the task limit.
#[test]
fn ec2_capacity_counts_network_interfaces() {
    let root = template(ROOT);
    let map = root["Mappings"]["InstanceEnis"]
        .as_object()
        .expect("Mappings.InstanceEnis");
    for (ty, v) in map {
        let enis = v["Enis"].as_i64().expect("Enis");
        assert_eq!(
            v["Tasks"].as_i64(),
            Some(enis - 1),
            "{ty}: Tasks = Enis - primary"
        );
    }
    assert_eq!(
        map["t4g.medium"]["Tasks"], 2,
        "a t4g.medium (3 ENIs) fits 2 tasks"
    );
    let allowed: BTreeSet<&str> = root["Parameters"]["InstanceType"]["AllowedValues"]
        .as_array()
        .expect("InstanceType AllowedValues")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let mapped: BTreeSet<&str> = map.keys().map(String::as_str).collect();
    assert_eq!(
        allowed, mapped,
        "every offered instance type has its ENI limit"
    );
    let passed = &resources(root)["ScalingStack"]["Properties"]["Parameters"]["TasksPerInstance"];
    assert_eq!(
        passed["Fn::FindInMap"],
        serde_json::json!(["InstanceEnis", {"Ref": "InstanceType"}, "Tasks"])
    );
    let f = &resources(template(SCALING))["ScaleUpFunction"]["Properties"];
    assert_eq!(
        f["Environment"]["Variables"]["TASKS_PER_INSTANCE"]["Ref"],
        "TasksPerInstance"
    );
    // ECS_ENABLE_TASK_ENI is a Windows-only agent setting ("Amazon ECS container agent
    // configuration"); on Linux it does nothing.
    let user_data = resources(template(SERVICE))["LaunchTemplate"].to_string();
    assert!(
        !user_data.contains("ECS_ENABLE_TASK_ENI"),
        "Windows-only agent setting"
    );
}

/// The smaller ones: the engine's major version only, HTTPS in ApiUrl with a certificate, and
/// the database password read at run time instead of injected once at task start.
#[test]
fn engine_url_and_database_secret() {
    let db = resource(template(DATABASE), "Database");
    let v = db["Properties"]["EngineVersion"]
        .as_str()
        .expect("EngineVersion");
    assert!(
        v.chars().all(|c| c.is_ascii_digit()),
        "EngineVersion {v:?}: AutoMinorVersionUpgrade moves the minor version, pin the major"
    );
    let url = template(ROOT)["Outputs"]["ApiUrl"]["Value"].to_string();
    assert!(
        url.contains("HasCertificate") && url.contains("https"),
        "ApiUrl: {url}"
    );

    let t = template(SERVICE);
    let task = resource(t, "TaskDefinition");
    let container = &task["Properties"]["ContainerDefinitions"][0];
    let secrets = container["Secrets"].to_string();
    assert!(
        !secrets.contains("DbSecretArn"),
        "the database secret is injected at task start; a rotation strands running tasks"
    );
    let env = container["Environment"].as_array().expect("Environment");
    assert!(
        env.iter()
            .any(|e| e["Name"] == "DB_SECRET_ARN" && e["Value"]["Ref"] == "DbSecretArn"),
        "the API needs DB_SECRET_ARN to read the secret itself"
    );
    let role = task["Properties"]["TaskRoleArn"]["Fn::GetAtt"][0]
        .as_str()
        .expect("TaskRoleArn");
    let statements = resource(t, role)["Properties"]["Policies"].to_string();
    assert!(
        statements.contains("secretsmanager:GetSecretValue") && statements.contains("DbSecretArn"),
        "{role} must read the database secret"
    );
}

/// Every `period` under `v`, including inside `reasonData` (a JSON string).
fn periods(v: &Value, out: &mut Vec<f64>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                match (k.as_str(), x) {
                    ("period", Value::Number(n)) => out.extend(n.as_f64()),
                    ("reasonData", Value::String(s)) => {
                        if let Ok(inner) = serde_json::from_str::<Value>(s) {
                            periods(&inner, out);
                        }
                    }
                    _ => periods(x, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| periods(x, out)),
        _ => {}
    }
}

/// The alarm data objects (direct, EventBridge `detail`, or a destination's request) under `v`.
fn alarm_data<'a>(v: &'a Value, out: &mut Vec<&'a Value>) {
    match v {
        Value::Object(m) => {
            if m.contains_key("configuration") && m.contains_key("state") {
                out.push(v);
            }
            m.values().for_each(|x| alarm_data(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| alarm_data(x, out)),
        _ => {}
    }
}

/// Every `events/*.json`, by file name, decoded.
fn sample_events() -> Vec<(String, Value)> {
    let dir = test_support::paths::repo_root().join("events");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|x| x == "json") {
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            let text = std::fs::read_to_string(&path).unwrap();
            let v = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
            out.push((name, v));
        }
    }
    out
}

/// The sample events are test data for the functions and the docs: an error type the functions
/// never emit, or a 10 s period on a 60 s AWS metric, teaches the wrong thing.
#[test]
fn sample_events_use_real_error_types_and_periods() {
    let mut problems = Vec::new();
    let mut checked = 0;
    for (name, v) in sample_events() {
        let text = v.to_string();
        for part in text.split("\"errorType\":\"").skip(1) {
            let ty = part.split('"').next().unwrap_or("");
            let ok = ty.split_once('.').is_some_and(|(p, rest)| {
                matches!(p, "Retryable" | "NonRetryable") && !rest.is_empty()
            });
            if !ok {
                problems.push(format!(
                    "{name}: errorType {ty:?} is not Retryable.* / NonRetryable.*"
                ));
            }
        }
        let mut alarms = Vec::new();
        alarm_data(&v, &mut alarms);
        for a in alarms {
            let spaces = a["configuration"].to_string();
            let aws_only = spaces.contains("\"namespace\":\"AWS/")
                && !spaces.contains("\"namespace\":\"VisitsApi\"");
            if !aws_only {
                continue;
            }
            let mut ps = Vec::new();
            periods(a, &mut ps);
            checked += ps.len();
            for p in ps {
                if p < 60.0 || p % 60.0 != 0.0 {
                    problems.push(format!("{name}: a {p} s period on a 60 s AWS metric"));
                }
            }
        }
    }
    assert!(checked >= 10, "only {checked} periods checked");
    assert!(problems.is_empty(), "{problems:#?}");
}

/// A sample event of one of the template's alarms watches what that alarm watches: its
/// namespace, metric and statistic. A sample that watches another metric than the alarm it names
/// teaches the wrong thing, and its golden email shows it. (Thresholds and descriptions may
/// differ: a sample shows an operator's own settings, and the tests size steps from them.)
#[test]
fn sample_alarm_events_watch_what_the_template_alarm_watches() {
    let t = template(SCALING);
    let text = |v: &Value| e2e::template::resolve_text(t, v).unwrap_or_else(|e| panic!("{e:#}"));
    let alarms: BTreeMap<String, &Value> = of_type(t, "AWS::CloudWatch::Alarm")
        .into_iter()
        .map(|(_, a)| (text(&a["Properties"]["AlarmName"]), &a["Properties"]))
        .collect();
    let (mut problems, mut checked) = (Vec::new(), 0);
    for (name, v) in sample_events() {
        let mut found = Vec::new();
        alarm_data(&v, &mut found);
        for a in found {
            let alarm_name = a["alarmName"].as_str().unwrap_or_default();
            let Some(want) = alarms.get(alarm_name) else {
                continue;
            };
            checked += 1;
            let stat = &a["configuration"]["metrics"][0]["metricStat"];
            let pairs = [
                (
                    "namespace",
                    &stat["metric"]["namespace"],
                    text(&want["Namespace"]),
                ),
                ("metric", &stat["metric"]["name"], text(&want["MetricName"])),
                ("statistic", &stat["stat"], text(&want["Statistic"])),
            ];
            for (what, got, want) in pairs {
                if got.as_str() != Some(want.as_str()) {
                    problems.push(format!(
                        "{name}: {alarm_name}'s {what} is {got}, the template's {want:?}"
                    ));
                }
            }
        }
    }
    assert!(
        checked >= 4,
        "only {checked} sample alarm events name a template alarm"
    );
    assert!(problems.is_empty(), "{problems:#?}");
}

/// No secret in a function's environment: a `{{resolve:secretsmanager:…}}` reference puts the
/// value in plaintext in the function's configuration (GetFunctionConfiguration shows it).
/// Scale-down reads the admin token at init from the secret its role may read.
#[test]
fn functions_read_secrets_at_init_not_from_their_environment() {
    let t = template(SCALING);
    for (id, f) in of_type(t, "AWS::Serverless::Function") {
        let env = f["Properties"]["Environment"].to_string();
        assert!(
            !env.contains("resolve:secretsmanager"),
            "{id}: a secret in its environment"
        );
    }
    let globals = t["Globals"]["Function"]["Environment"].to_string();
    assert!(
        !globals.contains("resolve:secretsmanager"),
        "Globals: a secret in the environment"
    );
    let f = &resources(t)["ScaleDownFunction"]["Properties"];
    assert_eq!(
        f["Environment"]["Variables"]["ADMIN_TOKEN_SECRET_ARN"]["Ref"],
        "AdminTokenSecretArn"
    );
    let role = resources(t)["ScaleDownRole"]["Properties"]["Policies"].to_string();
    assert!(
        role.contains("secretsmanager:GetSecretValue") && role.contains("AdminTokenSecretArn"),
        "ScaleDownRole must read the admin token's secret"
    );
}
