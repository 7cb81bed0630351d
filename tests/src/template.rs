//! The SAM templates of `infra/`, decoded to JSON, and the few readings of
//! them that both the alarm driver (`stack::alarms::template`) and the
//! template cross-checks (`tests/tests/infra_crosscheck.rs`) need.
//!
//! Templates are decoded by cfn-lint's CloudFormation YAML decoder from the
//! project venv: it understands the short-form tags (`!Ref`, `!GetAtt`,
//! `!Sub`...) and turns them into their JSON form (`{"Ref": ..}`,
//! `{"Fn::GetAtt": [..]}`), which a plain YAML parser would reject.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};
use serde_json::{Map, Value};

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

/// A decoded template's `Resources`.
pub fn resources(t: &Value) -> &Map<String, Value> {
    static EMPTY: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();
    t["Resources"]
        .as_object()
        .unwrap_or_else(|| EMPTY.get_or_init(Map::new))
}

/// The resources of type `ty`, as (logical ID, resource).
pub fn of_type<'a>(t: &'a Value, ty: &str) -> Vec<(&'a String, &'a Value)> {
    resources(t)
        .iter()
        .filter(|(_, r)| r["Type"] == ty)
        .collect()
}

/// The logical ID that `{"Fn::GetAtt": [id, "Arn"]}` (or `"id.Arn"`) or
/// `{"Ref": id}` names.
pub fn referenced_id(v: &Value) -> Option<String> {
    if let Some(r) = v.get("Ref").and_then(Value::as_str) {
        return Some(r.to_string());
    }
    arn_of(v)
}

/// The logical ID that `{"Fn::GetAtt": [id, "Arn"]}` (or `"id.Arn"`) names.
pub fn arn_of(v: &Value) -> Option<String> {
    match v.get("Fn::GetAtt")? {
        Value::Array(a) if a.len() == 2 && a[1] == "Arn" => a[0].as_str().map(str::to_string),
        Value::String(s) => s.strip_suffix(".Arn").map(str::to_string),
        _ => None,
    }
}

/// A parameter's default, or an error naming it.
pub fn default_of<'a>(t: &'a Value, param: &str) -> anyhow::Result<&'a Value> {
    let d = &t["Parameters"][param]["Default"];
    anyhow::ensure!(!d.is_null(), "parameter {param} has no Default");
    Ok(d)
}

/// A literal, `!Ref Param` (its default) or `!Sub "..${Param}.."` (defaults
/// substituted). Pseudo parameters (`${AWS::Region}`...) stay as written:
/// they have no value before deployment.
pub fn resolve_text(t: &Value, v: &Value) -> anyhow::Result<String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        _ if v.get("Ref").is_some() => {
            let param = v["Ref"].as_str().context("Ref is not a name")?;
            resolve_text(t, default_of(t, param)?)
        }
        _ if v.get("Fn::Sub").is_some() => {
            let mut rest = v["Fn::Sub"].as_str().context("only string !Sub")?;
            let mut s = String::new();
            while let Some(start) = rest.find("${") {
                let end = rest[start..].find('}').context("unclosed ${")? + start;
                let param = &rest[start + 2..end];
                s.push_str(&rest[..start]);
                if param.starts_with("AWS::") {
                    s.push_str(&rest[start..=end]);
                } else {
                    s.push_str(&resolve_text(t, default_of(t, param)?)?);
                }
                rest = &rest[end + 1..];
            }
            s.push_str(rest);
            Ok(s)
        }
        other => bail!("cannot resolve {other}"),
    }
}

/// [`resolve_text`], parsed as a number.
pub fn resolve_number(t: &Value, v: &Value) -> anyhow::Result<f64> {
    if let Some(n) = v.as_f64() {
        return Ok(n);
    }
    let s = resolve_text(t, v)?;
    s.trim()
        .parse()
        .with_context(|| format!("{s:?} is not a number"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn resolves_subs_with_defaults_and_keeps_pseudo_parameters() {
        let t = json!({"Parameters": {
            "Svc": {"Type": "String", "Default": "visits-api"},
            "N": {"Type": "Number", "Default": 3},
            "NoDefault": {"Type": "String"}
        }});
        let sub = json!({"Fn::Sub": "arn:${AWS::Partition}:x:${AWS::Region}:alarm:${Svc}-n${N}"});
        assert_eq!(
            resolve_text(&t, &sub).unwrap(),
            "arn:${AWS::Partition}:x:${AWS::Region}:alarm:visits-api-n3"
        );
        assert_eq!(resolve_number(&t, &json!({"Ref": "N"})).unwrap(), 3.0);
        let err = resolve_text(&t, &json!({"Fn::Sub": "${NoDefault}"})).unwrap_err();
        assert!(format!("{err:#}").contains("NoDefault has no Default"));
        assert!(resolve_text(&t, &json!({"Fn::Sub": "${Svc"})).is_err());
    }

    #[test]
    fn references_by_ref_and_get_att() {
        assert_eq!(referenced_id(&json!({"Ref": "A"})).as_deref(), Some("A"));
        let get_att = json!({"Fn::GetAtt": ["F", "Arn"]});
        assert_eq!(referenced_id(&get_att).as_deref(), Some("F"));
        assert_eq!(
            arn_of(&json!({"Fn::GetAtt": "F.Arn"})).as_deref(),
            Some("F")
        );
        assert_eq!(arn_of(&json!({"Ref": "A"})), None);
        assert_eq!(arn_of(&json!({"Fn::GetAtt": ["F", "Name"]})), None);
    }
}
