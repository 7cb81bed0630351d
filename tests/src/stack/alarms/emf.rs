//! The tasks' EMF records, read the way the awslogs driver would: each API
//! process writes one JSON line per metrics interval to stdout, which the task
//! runner captures in one log file per task. [`EmfTail`] follows every `*.log`
//! file of that directory and yields the EMF lines (objects with `_aws`, "Specification:
//! Embedded metric format",
//! <https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html>).

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde_json::Value;

/// One EMF record of one task.
#[derive(Debug, Clone, PartialEq)]
pub struct EmfRecord {
    /// `_aws.Timestamp`, unix milliseconds.
    pub t_ms: i64,
    /// `_aws.CloudWatchMetrics[0].Namespace`.
    pub namespace: String,
    /// Dimension values carried by the record (ClusterName, ServiceName).
    pub dimensions: BTreeMap<String, String>,
    /// The `TaskId` property.
    pub task_id: String,
    /// Every declared metric's value.
    pub values: BTreeMap<String, f64>,
}

/// Parses one log line; None unless it is an EMF record.
pub fn parse_line(line: &str) -> Option<EmfRecord> {
    let line = line.trim();
    if !line.starts_with('{') {
        return None;
    }
    let doc: Value = serde_json::from_str(line).ok()?;
    let aws = doc.get("_aws")?;
    let t_ms = aws.get("Timestamp")?.as_i64()?;
    let directive = aws.get("CloudWatchMetrics")?.get(0)?;
    let namespace = directive.get("Namespace")?.as_str()?.to_string();
    let mut dimensions = BTreeMap::new();
    for set in directive["Dimensions"].as_array().into_iter().flatten() {
        for name in set
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            if let Some(v) = doc.get(name).and_then(Value::as_str) {
                dimensions.insert(name.to_string(), v.to_string());
            }
        }
    }
    let mut values = BTreeMap::new();
    for m in directive["Metrics"].as_array().into_iter().flatten() {
        let Some(name) = m.get("Name").and_then(Value::as_str) else {
            continue;
        };
        if let Some(v) = doc.get(name).and_then(Value::as_f64) {
            values.insert(name.to_string(), v);
        }
    }
    Some(EmfRecord {
        t_ms,
        namespace,
        dimensions,
        task_id: doc["TaskId"].as_str().unwrap_or_default().to_string(),
        values,
    })
}

/// Follows the `*.log` files of one directory (new files included).
#[derive(Debug)]
pub struct EmfTail {
    dir: PathBuf,
    /// Bytes read so far, and the unfinished last line, per file.
    files: HashMap<PathBuf, (u64, String)>,
}

impl EmfTail {
    /// Follows `dir` from the start of each file.
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
            files: HashMap::new(),
        }
    }

    /// The EMF records written since the last call, in file order.
    pub fn poll(&mut self) -> Vec<EmfRecord> {
        let mut out = Vec::new();
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return out;
        };
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "log"))
            .collect();
        paths.sort();
        for path in paths {
            let (offset, partial) = self.files.entry(path.clone()).or_default();
            let Ok(mut f) = std::fs::File::open(&path) else {
                continue;
            };
            if f.seek(SeekFrom::Start(*offset)).is_err() {
                continue;
            }
            let mut buf = Vec::new();
            if f.read_to_end(&mut buf).is_err() {
                continue;
            }
            *offset += buf.len() as u64;
            partial.push_str(&String::from_utf8_lossy(&buf));
            // Keep the unfinished last line for the next poll.
            let rest = match partial.rfind('\n') {
                Some(i) => partial.split_off(i + 1),
                None => std::mem::take(partial),
            };
            out.extend(partial.lines().filter_map(parse_line));
            *partial = rest;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const LINE: &str = r#"{"_aws":{"Timestamp":1700000000123,"CloudWatchMetrics":[{"Namespace":"VisitsApi","Dimensions":[["ClusterName","ServiceName"]],"Metrics":[{"Name":"InFlight","Unit":"Count"},{"Name":"CPUUtilization","Unit":"Percent"}]}]},"ClusterName":"visits","ServiceName":"visits-api","TaskId":"t1","InFlight":3,"CPUUtilization":41.5,"Other":7}"#;

    #[test]
    fn parses_emf_and_skips_other_lines() {
        let r = parse_line(LINE).expect("an EMF line");
        assert_eq!(r.t_ms, 1_700_000_000_123);
        assert_eq!(r.namespace, "VisitsApi");
        assert_eq!(r.task_id, "t1");
        assert_eq!(r.dimensions["ServiceName"], "visits-api");
        assert_eq!(r.values["InFlight"], 3.0);
        assert_eq!(r.values["CPUUtilization"], 41.5);
        assert!(
            !r.values.contains_key("Other"),
            "undeclared fields are not metrics"
        );
        assert!(parse_line(r#"{"level":"INFO","msg":"listening"}"#).is_none());
        assert!(parse_line("plain text").is_none());
    }

    #[test]
    fn tails_new_lines_of_every_log_file_and_waits_for_whole_lines() {
        let dir = test_support::scratch_dir("emf-tail").unwrap();
        let mut a = std::fs::File::create(dir.join("a.log")).unwrap();
        writeln!(a, "starting\n{LINE}").unwrap();
        let mut tail = EmfTail::new(&dir);
        assert_eq!(tail.poll().len(), 1);
        assert!(tail.poll().is_empty(), "nothing new");
        let (head, rest) = LINE.split_at(40);
        write!(a, "{head}").unwrap();
        let mut b = std::fs::File::create(dir.join("b.log")).unwrap();
        writeln!(b, "{}", LINE.replace("\"t1\"", "\"t2\"")).unwrap();
        let got = tail.poll();
        assert_eq!(got.len(), 1, "half a line is not read yet");
        assert_eq!(got[0].task_id, "t2");
        writeln!(a, "{rest}").unwrap();
        assert_eq!(tail.poll()[0].task_id, "t1");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
