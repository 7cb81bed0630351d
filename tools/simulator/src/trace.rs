//! Request-rate traces: read from a `t_seconds,requests` CSV (the shared
//! traces' format, or an operator's export) or from a CloudWatch
//! `GetMetricData` answer (`aws cloudwatch get-metric-data` JSON), and turned
//! into a demand in requests/s for every simulated second.
//!
//! A row's requests are spread evenly over its bin (the bin is the gap to the
//! next row; the last row takes the previous gap). Bad input is an error that
//! names the file and the line.

use anyhow::{bail, Context};
use serde_json::Value;
use std::path::Path;

/// One trace: requests/s for each second from 0.
#[derive(Debug, Clone, PartialEq)]
pub struct Trace {
    /// A short name (the file stem).
    pub name: String,
    /// Demand, requests per second, one value per simulated second.
    pub rps: Vec<f64>,
    /// The bin width the source had, seconds.
    pub bin_s: u32,
}

impl Trace {
    /// A trace from (t_seconds, requests in the bin) rows, bins contiguous.
    pub fn from_bins(name: &str, rows: &[(u64, f64)]) -> anyhow::Result<Self> {
        if rows.is_empty() {
            bail!("{name}: no data rows");
        }
        let t0 = rows[0].0;
        let bin = if rows.len() > 1 {
            rows[1].0 - rows[0].0
        } else {
            1
        };
        let mut rps = Vec::new();
        for (i, &(t, n)) in rows.iter().enumerate() {
            let width = match rows.get(i + 1) {
                Some(&(next, _)) => next - t,
                None => bin,
            };
            let start = (t - t0) as usize;
            rps.resize(start, 0.0); // a gap between bins: no requests
            rps.extend(std::iter::repeat_n(n / width as f64, width as usize));
        }
        Ok(Trace {
            name: name.to_string(),
            rps,
            bin_s: bin as u32,
        })
    }

    /// Seconds covered.
    pub fn len_s(&self) -> usize {
        self.rps.len()
    }

    /// The highest mean rate over any aligned 60 s window (the scaling
    /// reference: one busy second does not set the scale).
    pub fn peak_minute_rps(&self) -> f64 {
        self.rps
            .chunks(60)
            .map(|c| c.iter().sum::<f64>() / c.len() as f64)
            .fold(0.0, f64::max)
    }

    /// Every rate multiplied by `factor`.
    pub fn scaled(&self, factor: f64) -> Trace {
        Trace {
            name: self.name.clone(),
            rps: self.rps.iter().map(|r| r * factor).collect(),
            bin_s: self.bin_s,
        }
    }

    /// Total requests.
    pub fn total(&self) -> f64 {
        self.rps.iter().sum()
    }
}

/// Reads a trace file: CSV by default, CloudWatch JSON when it ends in `.json`
/// or starts with `{`.
pub fn read(path: &Path) -> anyhow::Result<Trace> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the trace {}", path.display()))?;
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "trace".into());
    let json = path.extension().is_some_and(|e| e == "json") || text.trim_start().starts_with('{');
    let rows = if json {
        parse_get_metric_data(&text).with_context(|| format!("{}", path.display()))?
    } else {
        parse_csv(&text).with_context(|| format!("{}", path.display()))?
    };
    Trace::from_bins(&name, &rows)
}

/// `t_seconds,requests` rows (header required), in increasing time, with one
/// bin width throughout. Errors name the line (1-based).
pub fn parse_csv(text: &str) -> anyhow::Result<Vec<(u64, f64)>> {
    let mut lines = text.lines().enumerate();
    let header = loop {
        match lines.next() {
            Some((_, l)) if l.trim().is_empty() => continue,
            Some((i, l)) => break (i + 1, l.trim().to_ascii_lowercase()),
            None => bail!("empty file: expected the header t_seconds,requests"),
        }
    };
    if header.1.replace(' ', "") != "t_seconds,requests" {
        bail!(
            "line {}: expected the header t_seconds,requests, found {:?}",
            header.0,
            header.1
        );
    }
    let mut rows: Vec<(u64, f64)> = Vec::new();
    let mut width: Option<u64> = None;
    for (i, line) in lines {
        let n = i + 1;
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let mut cells = line.split(',');
        let (Some(t), Some(r), None) = (cells.next(), cells.next(), cells.next()) else {
            bail!("line {n}: expected two fields t_seconds,requests, found {line:?}");
        };
        let t: f64 = t
            .trim()
            .parse()
            .with_context(|| format!("line {n}: t_seconds {t:?} is not a number"))?;
        if t < 0.0 || t.fract() != 0.0 {
            bail!("line {n}: t_seconds {t} must be a whole number of seconds, 0 or more");
        }
        let t = t as u64;
        let r: f64 = r
            .trim()
            .parse()
            .with_context(|| format!("line {n}: requests {r:?} is not a number"))?;
        if !r.is_finite() || r < 0.0 {
            bail!("line {n}: requests {r} must be a finite count, 0 or more");
        }
        if let Some(&(prev, _)) = rows.last() {
            if t <= prev {
                bail!("line {n}: t_seconds {t} is not after the previous row's {prev}");
            }
            let gap = t - prev;
            match width {
                None => width = Some(gap),
                Some(w) if !gap.is_multiple_of(w) => {
                    bail!("line {n}: t_seconds {t} is off the {w} s grid of the rows before it")
                }
                Some(_) => {}
            }
        }
        rows.push((t, r));
    }
    if rows.is_empty() {
        bail!("no data rows after the header");
    }
    Ok(rows)
}

/// A CloudWatch `GetMetricData` answer: `MetricDataResults[0]`'s `Timestamps`
/// (ISO 8601, any order) and `Values` (the request count of each period, e.g.
/// the ALB's `RequestCount` with statistic Sum). Periods are the smallest gap
/// between timestamps; missing periods are 0.
pub fn parse_get_metric_data(text: &str) -> anyhow::Result<Vec<(u64, f64)>> {
    let v: Value = serde_json::from_str(text).map_err(|e| {
        anyhow::anyhow!(
            "line {}: not valid JSON ({e}); expected a GetMetricData answer",
            e.line()
        )
    })?;
    let results = v["MetricDataResults"]
        .as_array()
        .context("no MetricDataResults: expected `aws cloudwatch get-metric-data` output")?;
    let r = match results.as_slice() {
        [one] => one,
        [] => bail!("MetricDataResults is empty"),
        many => bail!(
            "MetricDataResults has {} series; export one (the request count)",
            many.len()
        ),
    };
    let ts = r["Timestamps"].as_array().context("no Timestamps")?;
    let vals = r["Values"].as_array().context("no Values")?;
    if ts.len() != vals.len() {
        bail!("{} Timestamps but {} Values", ts.len(), vals.len());
    }
    let mut rows = Vec::with_capacity(ts.len());
    for (i, (t, v)) in ts.iter().zip(vals).enumerate() {
        let t = t
            .as_str()
            .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
            .with_context(|| format!("Timestamps[{i}] = {t} is not an ISO 8601 time"))?;
        let v = v
            .as_f64()
            .filter(|v| v.is_finite() && *v >= 0.0)
            .with_context(|| format!("Values[{i}] = {v} is not a count, 0 or more"))?;
        rows.push((t.timestamp(), v));
    }
    if rows.is_empty() {
        bail!("the series has no datapoints");
    }
    rows.sort_by_key(|r| r.0);
    if let Some(w) = rows.windows(2).find(|w| w[0].0 == w[1].0) {
        bail!("two datapoints at the same time {}", w[0].0);
    }
    let t0 = rows[0].0;
    let step = rows.windows(2).map(|w| w[1].0 - w[0].0).min().unwrap_or(60);
    let mut out = Vec::new();
    let mut expect = t0;
    for (t, v) in rows {
        if (t - t0) % step != 0 {
            bail!("datapoint at {t} is off the {step} s period grid");
        }
        while expect < t {
            out.push(((expect - t0) as u64, 0.0));
            expect += step;
        }
        out.push(((t - t0) as u64, v));
        expect = t + step;
    }
    Ok(out)
}

/// The synthetic shapes that live in the repository (`step`, `ramp`, `spike`,
/// `sustained`), in requests/s, relative to one task's capacity `c`.
pub fn synthetic(shape: &str, c: f64) -> anyhow::Result<Trace> {
    let secs = |a: usize, b: usize, v: f64, out: &mut Vec<f64>| {
        out.resize(a, 0.0);
        out.extend(std::iter::repeat_n(v, b - a));
    };
    let mut rps = Vec::new();
    match shape {
        // The quiet level of every shape is 0.8 of one task's capacity: two tasks
        // (the minimum) at 36 % CPU, no level sits on an alarm threshold.
        // Four tasks' worth from 20 min, for an hour.
        "step" => {
            secs(0, 1200, 0.8 * c, &mut rps);
            secs(1200, 4800, 4.0 * c, &mut rps);
            secs(4800, 7200, 0.8 * c, &mut rps);
        }
        // Up to five tasks' worth over 40 min, back down over 40 min.
        "ramp" => {
            for s in 0..7200usize {
                let x = if s < 600 {
                    0.0
                } else if s < 3000 {
                    (s - 600) as f64 / 2400.0
                } else if s < 3600 {
                    1.0
                } else if s < 6000 {
                    1.0 - (s - 3600) as f64 / 2400.0
                } else {
                    0.0
                };
                rps.push(c * (0.8 + 4.2 * x));
            }
        }
        // A 90 s burst to five tasks' worth, shorter than the 5 min CPU window.
        "spike" => {
            secs(0, 1800, 0.8 * c, &mut rps);
            secs(1800, 1890, 5.0 * c, &mut rps);
            secs(1890, 3600, 0.8 * c, &mut rps);
        }
        // Far above max (six tasks) for 40 min: everyone overloads; who gets to max first.
        "sustained" => {
            secs(0, 600, 0.8 * c, &mut rps);
            secs(600, 3000, 8.0 * c, &mut rps);
            secs(3000, 4800, 0.8 * c, &mut rps);
        }
        other => bail!("unknown synthetic shape {other:?}: step, ramp, spike or sustained"),
    }
    Ok(Trace {
        name: format!("synthetic-{shape}"),
        rps,
        bin_s: 1,
    })
}

/// The names of [`synthetic`]'s shapes.
pub const SHAPES: [&str; 4] = ["step", "ramp", "spike", "sustained"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_bins_spread_over_their_seconds() {
        let rows = parse_csv("t_seconds,requests\n0,60\n60,120\n").unwrap();
        let t = Trace::from_bins("x", &rows).unwrap();
        assert_eq!(t.len_s(), 120);
        assert_eq!((t.rps[0], t.rps[59], t.rps[60]), (1.0, 1.0, 2.0));
        assert_eq!(t.total(), 180.0);
        assert_eq!(t.bin_s, 60);
    }

    #[test]
    fn csv_errors_name_the_line() {
        for (text, want) in [
            ("", "empty file"),
            ("time,count\n0,1\n", "line 1: expected the header"),
            ("t_seconds,requests\n0,1\n1,x\n", "line 3: requests \"x\""),
            (
                "t_seconds,requests\n0,1\n1\n",
                "line 3: expected two fields",
            ),
            (
                "t_seconds,requests\n0,1\n0,2\n",
                "line 3: t_seconds 0 is not after",
            ),
            ("t_seconds,requests\n0,1\n-5,2\n", "line 3: t_seconds -5"),
            (
                "t_seconds,requests\n0,1\n60,1\n90,1\n",
                "line 4: t_seconds 90 is off the 60 s grid",
            ),
            ("t_seconds,requests\n0,-1\n", "line 2: requests -1"),
            ("t_seconds,requests\n", "no data rows"),
        ] {
            let e = format!("{:#}", parse_csv(text).unwrap_err());
            assert!(e.contains(want), "{text:?}: {e}");
        }
    }

    #[test]
    fn get_metric_data_export_newest_first_with_a_gap() {
        let text = r#"{"MetricDataResults":[{"Id":"r","Label":"RequestCount","StatusCode":"Complete",
            "Timestamps":["2026-11-30T10:03:00Z","2026-11-30T10:01:00Z","2026-11-30T10:00:00Z"],
            "Values":[180.0,120.0,60.0]}],"Messages":[]}"#;
        let rows = parse_get_metric_data(text).unwrap();
        assert_eq!(rows, vec![(0, 60.0), (60, 120.0), (120, 0.0), (180, 180.0)]);
        let e = format!(
            "{:#}",
            parse_get_metric_data("{\n\"MetricDataResults\": [\n").unwrap_err()
        );
        assert!(e.contains("line 3"), "{e}");
        let e =
            parse_get_metric_data(r#"{"MetricDataResults":[{"Timestamps":["x"],"Values":[1]}]}"#)
                .unwrap_err();
        assert!(e.to_string().contains("Timestamps[0]"), "{e}");
    }

    #[test]
    fn synthetic_shapes_and_peak() {
        for s in SHAPES {
            let t = synthetic(s, 100.0).unwrap();
            assert!(t.len_s() >= 3600, "{s}");
        }
        assert_eq!(synthetic("step", 100.0).unwrap().peak_minute_rps(), 400.0);
        assert!(synthetic("nope", 1.0).is_err());
    }
}
