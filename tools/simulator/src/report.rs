//! The run's table (markdown, printed) and its plot (hand-written SVG):
//! demand in tasks' worth against each policy's serving tasks over time.

use crate::run::{Run, PLOT_STEP_S};
use std::fmt::Write as _;

/// Seconds as `1h02m`, `3m20s` or `45s`.
pub fn duration(s: u64) -> String {
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

/// The markdown table of a run.
pub fn table(run: &Run) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "| policy | overloaded time | overloaded requests | task-hours | actions | worst overload to capacity | task-hours / oracle |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|");
    for sc in &run.scores {
        let _ = writeln!(
            s,
            "| {} | {} ({:.2} %) | {:.0} | {:.1} | {} | {} | {:.2} |",
            sc.policy,
            duration(sc.overloaded_s),
            100.0 * sc.overloaded_s as f64 / run.seconds.max(1) as f64,
            sc.overloaded_requests,
            sc.task_hours,
            sc.actions,
            duration(sc.worst_to_capacity_s),
            sc.vs_oracle
        );
    }
    s
}

/// Where each variant of the project (rows 2.. of the run) does worse than the project as
/// configured (row 1), per day of the trace: every day with more overloaded time, and the
/// three days with the most extra task-hours. Empty without variants.
pub fn losses(run: &Run) -> String {
    let mut s = String::new();
    let Some(base) = run.scores.first() else {
        return s;
    };
    for v in run.scores.iter().skip(1).take(run.variants) {
        let _ = writeln!(
            s,
            "\n{} against {}, per day (day 1 = the trace's first):",
            v.policy, base.policy
        );
        let days: Vec<(usize, i64, f64)> = v
            .daily
            .iter()
            .zip(&base.daily)
            .enumerate()
            .map(|(d, (a, b))| (d + 1, a.0 as i64 - b.0 as i64, a.1 - b.1))
            .collect();
        let worse: Vec<String> = days
            .iter()
            .filter(|(_, over, _)| *over > 0)
            .map(|(d, over, th)| {
                format!("day {d} +{} ({th:+.1} task-hours)", duration(*over as u64))
            })
            .collect();
        let better = days.iter().filter(|(_, over, _)| *over < 0).count();
        let _ = writeln!(
            s,
            "- more overloaded time on {} day(s){}{}; less on {better}",
            worse.len(),
            if worse.is_empty() { "" } else { ": " },
            worse.join(", ")
        );
        let mut costly = days.clone();
        costly.sort_by(|a, b| b.2.total_cmp(&a.2));
        let top: Vec<String> = costly
            .iter()
            .take(3)
            .map(|(d, over, th)| {
                format!(
                    "day {d} {th:+.1} task-hours ({}{})",
                    if *over < 0 { "-" } else { "+" },
                    duration(over.unsigned_abs())
                )
            })
            .collect();
        let _ = writeln!(s, "- most extra task-hours: {}", top.join(", "));
    }
    s
}

const COLOURS: [&str; 6] = [
    "#d62728", "#1f77b4", "#17becf", "#ff7f0e", "#9467bd", "#2ca02c",
];

/// An SVG of demand (grey area, tasks' worth) and every policy's serving tasks.
pub fn svg(run: &Run) -> String {
    let (w, h) = (1400.0f64, 520.0f64);
    let (left, right, top, bottom) = (60.0, 260.0, 40.0, 50.0);
    let pw = w - left - right;
    let ph = h - top - bottom;
    let n = run.demand_tasks.len().max(2);
    // Long traces: draw at most ~1400 points per line (max of each bucket, so peaks show).
    let bucket = n.div_ceil(1400);
    let ymax = run
        .demand_tasks
        .iter()
        .copied()
        .fold(f32::from(run.bounds.max as u8) + 1.0, f32::max)
        .ceil() as f64;
    let x = |i: usize| left + pw * i as f64 / (n - 1) as f64;
    let y = |v: f64| top + ph * (1.0 - v / ymax);
    let line = |vals: &[f32]| {
        let mut d = String::new();
        for (j, chunk) in vals.chunks(bucket).enumerate() {
            let v = chunk.iter().copied().fold(f32::MIN, f32::max) as f64;
            let _ = write!(
                d,
                "{}{:.1},{:.1}",
                if j == 0 { "M" } else { " L" },
                x(j * bucket),
                y(v)
            );
        }
        d
    };
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="{w}" height="{h}" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{left}" y="22" font-size="15">{}: demand (grey, in tasks' worth of capacity) and serving tasks per policy; trace × {:.4}</text>"#,
        xml(&run.trace),
        run.scale
    );
    for k in 0..=(ymax as i32) {
        let yy = y(f64::from(k));
        let _ = writeln!(
            s,
            "<line x1=\"{left}\" x2=\"{:.1}\" y1=\"{yy:.1}\" y2=\"{yy:.1}\" stroke=\"#eee\"/><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{k}</text>",
            left + pw,
            left - 6.0,
            yy + 4.0
        );
    }
    let hours = (n * PLOT_STEP_S) as f64 / 3600.0;
    let ticks = 8;
    for i in 0..=ticks {
        let frac = i as f64 / ticks as f64;
        let xx = left + pw * frac;
        let label = if hours > 48.0 {
            format!("{:.1} d", hours * frac / 24.0)
        } else {
            format!("{:.1} h", hours * frac)
        };
        let _ = writeln!(
            s,
            r#"<text x="{xx:.1}" y="{:.1}" text-anchor="middle">{label}</text>"#,
            top + ph + 20.0
        );
    }
    // Demand as an area.
    let mut area = line(&run.demand_tasks);
    let _ = write!(
        area,
        " L{:.1},{:.1} L{:.1},{:.1} Z",
        x(n - 1),
        y(0.0),
        x(0),
        y(0.0)
    );
    let _ = writeln!(s, r##"<path d="{area}" fill="#cccccc" stroke="none"/>"##);
    for (i, sc) in run.scores.iter().enumerate() {
        let c = COLOURS[i % COLOURS.len()];
        let _ = writeln!(
            s,
            r#"<path d="{}" fill="none" stroke="{c}" stroke-width="1.2" opacity="0.85"/>"#,
            line(&sc.serving)
        );
        let ly = top + 18.0 * i as f64;
        let _ = writeln!(
            s,
            r#"<line x1="{:.1}" x2="{:.1}" y1="{ly:.1}" y2="{ly:.1}" stroke="{c}" stroke-width="3"/><text x="{:.1}" y="{:.1}">{}</text>"#,
            w - right + 15.0,
            w - right + 40.0,
            w - right + 46.0,
            ly + 4.0,
            xml(&sc.policy)
        );
    }
    let _ = writeln!(
        s,
        r##"<text x="{:.1}" y="{:.1}" fill="#666">grey: demand</text>"##,
        w - right + 15.0,
        top + 18.0 * run.scores.len() as f64 + 4.0
    );
    let _ = writeln!(s, "</svg>");
    s
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(duration(45), "45s");
        assert_eq!(duration(200), "3m20s");
        assert_eq!(duration(3720), "1h02m");
    }
}
