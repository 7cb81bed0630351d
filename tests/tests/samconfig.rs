//! `samconfig.toml` against the root template: a command-line `--parameter-overrides` replaces
//! an environment's list instead of merging with it (aws/aws-sam-cli #2380), so each
//! environment's own list must hold everything a deploy needs, and `make deploy` must pass that
//! list whole with only the image changed.

use std::collections::BTreeMap;
use std::process::Command;

use serde_json::Value;

fn python() -> std::path::PathBuf {
    test_support::paths::venv_bin()
        .expect("the project venv (make setup)")
        .join("python")
}

/// Every environment with deploy parameters, as `tools/samconfig_params.py` reads it.
fn environments() -> BTreeMap<String, BTreeMap<String, String>> {
    let root = test_support::paths::repo_root();
    let script = "import json, sys, tomllib\n\
        sys.path.insert(0, 'tools')\n\
        import samconfig_params as p\n\
        c = tomllib.loads(open('samconfig.toml').read())\n\
        envs = [e for e, t in c.items() if isinstance(t, dict) and 'deploy' in t]\n\
        print(json.dumps({e: p.environment_params(e) for e in envs}))\n";
    let out = Command::new(python())
        .arg("-c")
        .arg(script)
        .current_dir(&root)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON")
}

fn root_template() -> Value {
    e2e::template::decode(&e2e::template::infra_dir().join("template.yaml"))
        .unwrap_or_else(|e| panic!("{e:#}"))
}

#[test]
fn every_environment_sets_every_parameter_without_a_default() {
    let t = root_template();
    let params = t["Parameters"].as_object().expect("Parameters");
    let required: Vec<&String> = params
        .iter()
        .filter(|(_, p)| p.get("Default").is_none())
        .map(|(k, _)| k)
        .collect();
    assert!(
        required.len() >= 2,
        "OperatorEmail and ImageUri have no default: {required:?}"
    );
    let envs = environments();
    assert!(
        envs.contains_key("default") && envs.contains_key("prod"),
        "{envs:?}"
    );
    for (env, set) in &envs {
        for p in &required {
            assert!(
                set.contains_key(*p),
                "[{env}.deploy.parameters] does not set {p}"
            );
        }
        for (k, v) in set {
            let decl = params
                .get(k)
                .unwrap_or_else(|| panic!("[{env}] sets {k}, which the template does not declare"));
            if let Some(allowed) = decl["AllowedValues"].as_array() {
                // A number in AllowedValues matches its JSON text, as samconfig writes it.
                let ok = allowed.iter().any(|a| match a.as_str() {
                    Some(s) => s == v.as_str(),
                    None => v.parse::<serde_json::Value>().ok().as_ref() == Some(a),
                });
                assert!(ok, "[{env}] {k}={v} is not one of {allowed:?}");
            }
        }
        // Names are derived from the stack name unless set; two environments must not pin the
        // same ones.
        for k in ["ClusterName", "ServiceName"] {
            assert!(
                !set.contains_key(k),
                "[{env}] pins {k}: the stack name derives it uniquely"
            );
        }
    }
    assert_eq!(
        envs["prod"]["DbMultiAz"], "true",
        "prod keeps its own settings"
    );
}

#[test]
fn a_release_keeps_every_setting_and_replaces_only_the_image() {
    let envs = environments();
    let root = test_support::paths::repo_root();
    let image = "123456789012.dkr.ecr.us-east-1.amazonaws.com/visits-api:release-2";
    let out = Command::new(python())
        .args([
            "tools/samconfig_params.py",
            "prod",
            &format!("ImageUri={image}"),
        ])
        .current_dir(&root)
        .output()
        .expect("run samconfig_params.py");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let merged: BTreeMap<String, String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let (k, v) = l.split_once('=').expect("Key=Value lines");
            (k.to_string(), v.to_string())
        })
        .collect();
    let mut want = envs["prod"].clone();
    want.insert("ImageUri".into(), image.into());
    assert_eq!(merged, want, "make deploy must pass prod's whole list");
    let make = std::fs::read_to_string(root.join("mk/deploy.mk")).unwrap();
    assert!(
        make.contains("samconfig_params.py $(ENV)") && make.contains("--parameter-overrides"),
        "make deploy passes the merged list"
    );
}
