//! The SAM templates of `infra/`, decoded to JSON, and the few readings of
//! them that both the alarm driver (`stack::alarms::template`) and the
//! template cross-checks (`tests/tests/infra_crosscheck.rs`) need.
//!
//! Templates are decoded by cfn-lint's CloudFormation YAML decoder from the
//! project venv: it understands the short-form tags (`!Ref`, `!GetAtt`,
//! `!Sub`...) and turns them into their JSON form (`{"Ref": ..}`,
//! `{"Fn::GetAtt": [..]}`). The resolution helpers are `alarm_model::cfn`'s
//! (shared with the scaling simulator, whose own decoder is checked against
//! this one in `stack::alarms::template`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};
use serde_json::Value;

pub use alarm_model::cfn::{
    arn_of, default_of, of_type, referenced_id, resolve_number, resolve_text, resources,
};

/// The `infra/` folder of the repository.
pub fn infra_dir() -> PathBuf {
    test_support::paths::repo_root().join("infra")
}

/// Decodes CloudFormation YAML templates with the venv's cfn-lint, in one
/// Python run; the result is keyed by file name (e.g. `scaling.yaml`).
pub fn decode_all(paths: &[PathBuf]) -> anyhow::Result<BTreeMap<String, Value>> {
    let python = test_support::paths::venv_bin()?.join("python");
    let script = "import json, os, sys\n\
        from cfnlint.decode import decode\n\
        out = {}\n\
        for p in sys.argv[1:]:\n\
        \x20   t, errs = decode(p)\n\
        \x20   if errs or t is None:\n\
        \x20       sys.exit(p + ': ' + '; '.join(str(e) for e in errs))\n\
        \x20   out[os.path.basename(p)] = t\n\
        json.dump(out, sys.stdout)\n";
    let out = Command::new(&python)
        .arg("-c")
        .arg(script)
        .args(paths)
        .output()
        .with_context(|| format!("run {} (run `make setup`)", python.display()))?;
    if !out.status.success() {
        bail!(
            "decoding templates failed (is cfn-lint in the venv? run `make setup`): {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    serde_json::from_slice(&out.stdout).context("the decoder printed no JSON")
}

/// Decodes one template (see [`decode_all`]).
pub fn decode(path: &Path) -> anyhow::Result<Value> {
    let mut all = decode_all(&[path.to_path_buf()])?;
    all.pop_first()
        .map(|(_, t)| t)
        .with_context(|| format!("no template decoded from {}", path.display()))
}

/// Every `infra/*.yaml`, decoded, by file name.
pub fn infra_templates() -> anyhow::Result<BTreeMap<String, Value>> {
    let dir = infra_dir();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("read {}", dir.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    files.retain(|p| p.extension().is_some_and(|x| x == "yaml"));
    files.sort();
    anyhow::ensure!(!files.is_empty(), "no templates in {}", dir.display());
    decode_all(&files)
}

/// Every `infra/*.yaml`, decoded once per test process, by file name.
pub fn cached() -> &'static BTreeMap<String, Value> {
    static T: std::sync::OnceLock<BTreeMap<String, Value>> = std::sync::OnceLock::new();
    T.get_or_init(|| infra_templates().unwrap_or_else(|e| panic!("{e:#}")))
}

/// One decoded template of `infra/` by file name (e.g. `scaling.yaml`), from [`cached`].
pub fn infra(name: &str) -> &'static Value {
    cached()
        .get(name)
        .unwrap_or_else(|| panic!("infra/{name} is missing"))
}

/// The alarms of `t` whose `AlarmActions` invoke one of `functions` (logical ids):
/// `(logical id, alarm resource)`.
pub fn alarms_invoking<'a>(t: &'a Value, functions: &[&str]) -> Vec<(&'a String, &'a Value)> {
    of_type(t, "AWS::CloudWatch::Alarm")
        .into_iter()
        .filter(|(_, a)| {
            a["Properties"]["AlarmActions"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(referenced_id)
                .any(|id| functions.contains(&id.as_str()))
        })
        .collect()
}
