//! Reading CloudFormation templates: the YAML with its short-form tags
//! (`!Ref`, `!GetAtt`, `!Sub`...) decoded into their JSON form (`{"Ref": ..}`,
//! `{"Fn::GetAtt": [..]}`), as CloudFormation and cfn-lint read them, and the
//! few resolutions the alarm readers need (`!Ref` / `!Sub` of parameter defaults).

use anyhow::{bail, Context};
use serde_json::{Map, Value};
use serde_yaml::Value as Yaml;

/// Decodes a CloudFormation YAML template into its JSON form. Short-form tags
/// become their long form: `!Ref X` -> `{"Ref": "X"}`, `!GetAtt A.B` ->
/// `{"Fn::GetAtt": ["A", "B"]}`, `!Condition C` -> `{"Condition": "C"}`, any
/// other `!Fn` -> `{"Fn::Fn": ..}` (CloudFormation user guide, "Intrinsic
/// function reference": each function's "Syntax for the short form").
pub fn decode_yaml(text: &str) -> anyhow::Result<Value> {
    let y: Yaml = serde_yaml::from_str(text).context("not valid YAML")?;
    to_json(y)
}

/// [`decode_yaml`] of a file, with the path in the error.
pub fn decode_file(path: &std::path::Path) -> anyhow::Result<Value> {
    let text = std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
    decode_yaml(&text).with_context(|| format!("decode {}", path.display()))
}

fn to_json(y: Yaml) -> anyhow::Result<Value> {
    Ok(match y {
        Yaml::Null => Value::Null,
        Yaml::Bool(b) => Value::Bool(b),
        Yaml::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                let f = n.as_f64().context("number out of range")?;
                serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)
            }
        }
        Yaml::String(s) => Value::String(s),
        Yaml::Sequence(s) => Value::Array(s.into_iter().map(to_json).collect::<Result<_, _>>()?),
        Yaml::Mapping(m) => {
            let mut out = Map::new();
            for (k, v) in m {
                let key = match k {
                    Yaml::String(s) => s,
                    Yaml::Number(n) => n.to_string(),
                    Yaml::Bool(b) => b.to_string(),
                    other => bail!("unsupported mapping key {other:?}"),
                };
                out.insert(key, to_json(v)?);
            }
            Value::Object(out)
        }
        Yaml::Tagged(t) => {
            let name = t.tag.to_string();
            let name = name.trim_start_matches('!');
            let value = to_json(t.value)?;
            let (key, value) = match name {
                "Ref" | "Condition" => (name.to_string(), value),
                "GetAtt" => {
                    let value = match value {
                        Value::String(s) => match s.split_once('.') {
                            Some((id, attr)) => Value::from(vec![id, attr]),
                            None => bail!("!GetAtt {s:?} is not Resource.Attribute"),
                        },
                        other => other,
                    };
                    ("Fn::GetAtt".to_string(), value)
                }
                other => (format!("Fn::{other}"), value),
            };
            let mut m = Map::new();
            m.insert(key, value);
            Value::Object(m)
        }
    })
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
    fn short_form_tags_become_their_long_form() {
        let t = decode_yaml(
            "A:\n  - !Ref P\n  - !GetAtt F.Arn\n  - !Sub \"${S}-x\"\n  - !If [C, 1, !Ref AWS::NoValue]\n  - !Condition Ok\n  - 60\n  - \"60\"\n",
        )
        .unwrap();
        assert_eq!(
            t["A"],
            json!([
                {"Ref": "P"},
                {"Fn::GetAtt": ["F", "Arn"]},
                {"Fn::Sub": "${S}-x"},
                {"Fn::If": ["C", 1, {"Ref": "AWS::NoValue"}]},
                {"Condition": "Ok"},
                60,
                "60"
            ])
        );
        assert!(decode_yaml("A: !GetAtt NoDot").is_err());
        assert!(decode_yaml("A: [unclosed").is_err());
    }

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
