//! A dependency-free SVG picture of a run: the latency percentile spectrum
//! (log scale of 1/(1-percentile), as HdrHistogram plots it) and p50/p99 over
//! time. Hand-written SVG keeps the build light on small machines.

use std::fmt::Write as _;

use hdrhistogram::Histogram;

use crate::report::Report;
use crate::stats::us_to_ms;

const W: f64 = 560.0;
const H: f64 = 300.0;
const PAD: f64 = 50.0;

/// Renders the two panels side by side.
pub fn render(report: &Report, hist: &Histogram<u64>) -> String {
    let mut o = String::new();
    let total_w = 2.0 * W + 20.0;
    let _ = writeln!(
        o,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{total_w}" height="{h}" font-family="sans-serif" font-size="11">"#,
        h = H + 30.0
    );
    let _ = writeln!(o, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        o,
        r#"<text x="10" y="18" font-size="13">{} — {} sent, {:.0}/s, p99 {:.2} ms</text>"#,
        escape(&report.scenario),
        report.sent,
        report.achieved_rate,
        report.latency_ms.p99
    );
    spectrum(&mut o, hist, 0.0, 30.0);
    over_time(&mut o, report, W + 20.0, 30.0);
    o.push_str("</svg>\n");
    o
}

// Percentile spectrum: x = log10(1/(1-q)) up to 99.999%, y = latency in ms.
fn spectrum(o: &mut String, hist: &Histogram<u64>, x0: f64, y0: f64) {
    let mut points = Vec::new();
    if !hist.is_empty() {
        for v in hist.iter_quantiles(5) {
            let q = v.quantile_iterated_to();
            let x = if q >= 1.0 {
                5.0
            } else {
                (1.0 / (1.0 - q)).log10().min(5.0)
            };
            points.push((x, us_to_ms(v.value_iterated_to())));
        }
    }
    let ymax = points.iter().map(|p| p.1).fold(0.0, f64::max).max(0.001) * 1.1;
    let ticks = [
        (0.0, "0%"),
        (1.0, "90%"),
        (2.0, "99%"),
        (3.0, "99.9%"),
        (4.0, "99.99%"),
        (5.0, "99.999%"),
    ];
    frame(o, x0, y0, "latency by percentile (ms)", ymax, &ticks, 5.0);
    polyline(o, x0, y0, &points, 5.0, ymax, "#1f77b4");
}

// p50 and p99 per second of run time.
fn over_time(o: &mut String, r: &Report, x0: f64, y0: f64) {
    let xmax = (r.per_second.len() as f64).max(1.0);
    let p99: Vec<(f64, f64)> = r
        .per_second
        .iter()
        .map(|s| (s.second as f64 + 0.5, s.p99_ms))
        .collect();
    let p50: Vec<(f64, f64)> = r
        .per_second
        .iter()
        .map(|s| (s.second as f64 + 0.5, s.p50_ms))
        .collect();
    let ymax = p99.iter().map(|p| p.1).fold(0.0, f64::max).max(0.001) * 1.1;
    let step = (xmax / 5.0).ceil().max(1.0);
    let labels: Vec<(f64, String)> = (0..=5)
        .map(|i| i as f64 * step)
        .filter(|t| *t <= xmax)
        .map(|t| (t, format!("{t}s")))
        .collect();
    let ticks: Vec<(f64, &str)> = labels.iter().map(|(t, l)| (*t, l.as_str())).collect();
    frame(
        o,
        x0,
        y0,
        "p50 (grey) and p99 (red) per second (ms)",
        ymax,
        &ticks,
        xmax,
    );
    polyline(o, x0, y0, &p50, xmax, ymax, "#999999");
    polyline(o, x0, y0, &p99, xmax, ymax, "#d62728");
}

fn frame(
    o: &mut String,
    x0: f64,
    y0: f64,
    title: &str,
    ymax: f64,
    xticks: &[(f64, &str)],
    xmax: f64,
) {
    let (l, t, r, b) = (x0 + PAD, y0 + 20.0, x0 + W - 10.0, y0 + H - 25.0);
    let _ = writeln!(
        o,
        r#"<text x="{}" y="{}">{}</text>"#,
        l,
        y0 + 12.0,
        escape(title)
    );
    let _ = writeln!(
        o,
        r#"<rect x="{l}" y="{t}" width="{}" height="{}" fill="none" stroke="black"/>"#,
        r - l,
        b - t
    );
    for i in 0..=4 {
        let v = ymax * i as f64 / 4.0;
        let y = b - (b - t) * i as f64 / 4.0;
        let _ = writeln!(
            o,
            r##"<line x1="{l}" y1="{y}" x2="{r}" y2="{y}" stroke="#eeeeee"/>"##
        );
        let _ = writeln!(
            o,
            r#"<text x="{}" y="{}" text-anchor="end">{v:.1}</text>"#,
            l - 4.0,
            y + 4.0
        );
    }
    for (v, label) in xticks {
        let x = l + (r - l) * v / xmax;
        let _ = writeln!(
            o,
            r#"<text x="{x}" y="{}" text-anchor="middle">{}</text>"#,
            b + 14.0,
            escape(label)
        );
    }
}

fn polyline(
    o: &mut String,
    x0: f64,
    y0: f64,
    pts: &[(f64, f64)],
    xmax: f64,
    ymax: f64,
    color: &str,
) {
    if pts.is_empty() {
        return;
    }
    let (l, t, r, b) = (x0 + PAD, y0 + 20.0, x0 + W - 10.0, y0 + H - 25.0);
    let coords: Vec<String> = pts
        .iter()
        .map(|(x, y)| {
            format!(
                "{:.1},{:.1}",
                l + (r - l) * x / xmax,
                b - (b - t) * y / ymax
            )
        })
        .collect();
    let _ = writeln!(
        o,
        r#"<polyline fill="none" stroke="{color}" stroke-width="1.5" points="{}"/>"#,
        coords.join(" ")
    );
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
