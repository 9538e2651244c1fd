//! Run reports: the terminal table, `report.json`, the `latency.hgrm`
//! percentile distribution, and `perf compare` of two reports.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::load::LoadResult;
use crate::stats::{hgrm, us_to_ms, Sold, StatusCounts};

/// Latency summary in milliseconds, measured from intended send times.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    /// Recorded latencies (responses and timeouts; not connection errors).
    pub count: u64,
    /// Smallest.
    pub min: f64,
    /// Mean.
    pub mean: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// 99.99th percentile.
    pub p9999: f64,
    /// Largest.
    pub max: f64,
}

impl Percentiles {
    /// Summarises a µs histogram.
    pub fn of(h: &Histogram<u64>) -> Percentiles {
        if h.is_empty() {
            return Percentiles::default();
        }
        let q = |q: f64| us_to_ms(h.value_at_quantile(q));
        Percentiles {
            count: h.len(),
            min: us_to_ms(h.min()),
            mean: h.mean() / 1000.0,
            p50: q(0.50),
            p90: q(0.90),
            p99: q(0.99),
            p999: q(0.999),
            p9999: q(0.9999),
            max: us_to_ms(h.max()),
        }
    }

    fn rows(&self) -> [(&'static str, f64); 7] {
        [
            ("p50", self.p50),
            ("p90", self.p90),
            ("p99", self.p99),
            ("p99.9", self.p999),
            ("p99.99", self.p9999),
            ("max", self.max),
            ("mean", self.mean),
        ]
    }
}

/// One second of run time (by intended send time).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SecondStats {
    /// Seconds since the start of the run.
    pub second: u64,
    /// Latencies recorded for requests scheduled in this second.
    pub count: u64,
    /// Median, ms.
    pub p50_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// Largest, ms.
    pub max_ms: f64,
}

/// Everything `report.json` holds. Latencies are in ms and measured from
/// each request's intended send time (open loop).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Scenario name.
    pub scenario: String,
    /// Scenario description.
    pub description: String,
    /// Stated goal, in words.
    pub goal: String,
    /// Machine-checkable goal: p99 at most this many ms.
    pub goal_p99_ms: Option<f64>,
    /// Whether `goal_p99_ms` was met (null without one).
    pub goal_met: Option<bool>,
    /// `local` (bidders and exchange in process) or `run` (external target).
    pub mode: String,
    /// URL the load was sent to.
    pub target: String,
    /// `http1` or `http2`.
    pub protocol: String,
    /// HTTP/2 connections.
    pub connections: usize,
    /// `constant` or `poisson`.
    pub process: String,
    /// Where the request bodies came from.
    pub requests_source: String,
    /// Start of the run, Unix seconds.
    pub started_unix_s: u64,
    /// Planned run length, s.
    pub planned_duration_s: f64,
    /// Planned mean rate, requests/s.
    pub planned_rate: f64,
    /// Requests sent.
    pub sent: u64,
    /// Requests sent per second of the sending window.
    pub achieved_rate: f64,
    /// Answered auctions (200 + 204) per second of the sending window.
    pub answered_rate: f64,
    /// Time until the last response or timeout, s.
    pub elapsed_s: f64,
    /// Largest lag of a send behind its schedule, ms (a generator health check).
    pub max_send_lag_ms: f64,
    /// Outcome counts.
    pub status: StatusCounts,
    /// Impressions sold and revenue, from the 200 answers.
    #[serde(default)]
    pub sold: Sold,
    /// Latency summary over the whole run.
    pub latency_ms: Percentiles,
    /// Latency over time, one entry per second of run time.
    pub per_second: Vec<SecondStats>,
    /// Exchange CPU time (user + system) over the run, s; local mode only.
    pub exchange_cpu_s: Option<f64>,
    /// Exchange CPU time per answered auction, µs; local mode only.
    pub exchange_cpu_us_per_auction: Option<f64>,
    /// Share of all sent requests answered (200/204) within `goal_p99_ms`
    /// (for deadline scenarios the goal is the tmax): deadline adherence.
    #[serde(default)]
    pub within_goal_share: Option<f64>,
    /// The exchange's own stage percentiles over the run (its
    /// `/v1/stats/latency` `stages`, last 5 minutes), local mode only;
    /// `overhead` is end-to-end minus the fan-out wait.
    #[serde(default)]
    pub exchange_stages: Option<serde_json::Value>,
}

/// What a report needs besides the measurements.
#[derive(Debug, Clone, Default)]
pub struct RunInfo {
    /// Scenario name.
    pub scenario: String,
    /// Scenario description.
    pub description: String,
    /// Goal in words.
    pub goal: String,
    /// Machine-checkable goal.
    pub goal_p99_ms: Option<f64>,
    /// `local` or `run`.
    pub mode: String,
    /// Target URL.
    pub target: String,
    /// Protocol name.
    pub protocol: String,
    /// HTTP/2 connections.
    pub connections: usize,
    /// Arrival process name.
    pub process: String,
    /// Body source.
    pub requests_source: String,
    /// Start, Unix seconds.
    pub started_unix_s: u64,
    /// Planned run length, s.
    pub planned_duration_s: f64,
    /// Planned request count.
    pub planned_requests: u64,
    /// Exchange CPU seconds over the run, when known.
    pub exchange_cpu_s: Option<f64>,
    /// The exchange's stage percentiles, when known (local mode).
    pub exchange_stages: Option<serde_json::Value>,
}

impl Report {
    /// Builds the report of a finished run.
    pub fn new(info: RunInfo, result: &LoadResult) -> Report {
        let latency = Percentiles::of(&result.recorder.all);
        let window = result.send_window.as_secs_f64().max(f64::EPSILON);
        let answered = result.recorder.counts.answered();
        let goal_met = info.goal_p99_ms.map(|g| answered > 0 && latency.p99 <= g);
        let per_second = result
            .recorder
            .per_second
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let p = Percentiles::of(h);
                SecondStats {
                    second: i as u64,
                    count: p.count,
                    p50_ms: p.p50,
                    p99_ms: p.p99,
                    max_ms: p.max,
                }
            })
            .collect();
        Report {
            scenario: info.scenario,
            description: info.description,
            goal: info.goal,
            goal_p99_ms: info.goal_p99_ms,
            goal_met,
            mode: info.mode,
            target: info.target,
            protocol: info.protocol,
            connections: info.connections,
            process: info.process,
            requests_source: info.requests_source,
            started_unix_s: info.started_unix_s,
            planned_duration_s: info.planned_duration_s,
            planned_rate: info.planned_requests as f64 / info.planned_duration_s.max(f64::EPSILON),
            sent: result.sent,
            achieved_rate: result.sent as f64 / window,
            answered_rate: answered as f64 / window,
            elapsed_s: result.elapsed.as_secs_f64(),
            max_send_lag_ms: result.max_send_lag.as_secs_f64() * 1000.0,
            status: result.recorder.counts,
            sold: result.recorder.sold,
            latency_ms: latency,
            per_second,
            within_goal_share: info.goal_p99_ms.filter(|_| result.sent > 0).map(|g| {
                let h = &result.recorder.all;
                let micros = (g * 1000.0) as u64;
                let within: u64 = h
                    .iter_recorded()
                    .filter(|v| h.highest_equivalent(v.value_iterated_to()) <= micros)
                    .map(|v| v.count_at_value())
                    .sum();
                // Errors and timeouts that were not recorded count as misses.
                within.min(answered) as f64 / result.sent as f64
            }),
            exchange_stages: info.exchange_stages,
            exchange_cpu_s: info.exchange_cpu_s,
            exchange_cpu_us_per_auction: info
                .exchange_cpu_s
                .filter(|_| answered > 0)
                .map(|s| s * 1e6 / answered as f64),
        }
    }

    /// The terminal table.
    pub fn table(&self) -> String {
        let mut o = String::new();
        let s = &self.status;
        let _ = writeln!(
            o,
            "scenario     {} ({}, {} → {})",
            self.scenario, self.mode, self.protocol, self.target
        );
        let _ = writeln!(o, "goal         {}", self.goal);
        let _ = writeln!(
            o,
            "requests     {} sent in {:.1} s: {:.1}/s achieved of {:.1}/s planned ({}), max send lag {:.1} ms",
            self.sent, self.planned_duration_s, self.achieved_rate, self.planned_rate, self.process, self.max_send_lag_ms
        );
        let _ = writeln!(
            o,
            "status       200: {}  204: {}  503 shed: {}  4xx: {}  5xx: {}  other: {}  timeout: {}  error: {}",
            s.ok_200, s.no_bid_204, s.shed_503, s.client_4xx, s.server_5xx, s.other_status, s.timeouts, s.errors
        );
        let _ = writeln!(
            o,
            "sold         {} imps for {:.6} (sum of clearing prices, CPM)",
            self.sold.imps,
            self.sold.revenue_micros as f64 / 1e6
        );
        let _ = writeln!(
            o,
            "latency ms   (from intended send time, {} recorded)",
            self.latency_ms.count
        );
        for (name, v) in self.latency_ms.rows() {
            let _ = writeln!(o, "  {name:<10} {v:>10.3}");
        }
        let cpu = match self.exchange_cpu_us_per_auction {
            Some(us) => format!(
                "{us:.1} µs/auction ({:.2} s total)",
                self.exchange_cpu_s.unwrap_or(0.0)
            ),
            None => "n/a".to_owned(),
        };
        let _ = writeln!(o, "exchange cpu {cpu}");
        if let Some(share) = self.within_goal_share {
            let _ = writeln!(
                o,
                "within goal  {:.3}% of sent requests answered within goal_p99_ms",
                share * 100.0
            );
        }
        if let Some(stages) = &self.exchange_stages {
            let _ = writeln!(o, "exchange-side stages, ms (p50 / p99 / p99.9 / max):");
            for name in [
                "end_to_end",
                "fanout_wait",
                "overhead",
                "decode",
                "auction",
                "encode",
                "queue",
            ] {
                let st = &stages[name]["last_5m"];
                if st.is_object() {
                    let f = |k: &str| st[k].as_f64().unwrap_or(f64::NAN);
                    let _ = writeln!(
                        o,
                        "  {name:<12} {:>9.3} {:>9.3} {:>9.3} {:>9.3}",
                        f("p50_ms"),
                        f("p99_ms"),
                        f("p999_ms"),
                        f("max_ms")
                    );
                }
            }
        }
        let met = match (self.goal_met, self.goal_p99_ms) {
            (Some(true), Some(g)) => format!("yes (p99 {:.3} ms <= {g} ms)", self.latency_ms.p99),
            (Some(false), Some(g)) => format!(
                "NO (p99 {:.3} ms > {g} ms, or nothing answered)",
                self.latency_ms.p99
            ),
            _ => "n/a (no goal_p99_ms)".to_owned(),
        };
        let _ = writeln!(o, "goal met     {met}");
        o
    }
}

/// Files written for a run.
#[derive(Debug, Clone)]
pub struct Written {
    /// The directory.
    pub dir: PathBuf,
    /// `report.json`.
    pub json: PathBuf,
    /// `latency.hgrm`.
    pub hgrm: PathBuf,
    /// `latency.svg`.
    pub svg: PathBuf,
}

/// Writes `report.json`, `latency.hgrm` and `latency.svg` into `dir`.
pub fn write(dir: &Path, report: &Report, hist: &Histogram<u64>) -> anyhow::Result<Written> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let json = dir.join("report.json");
    let text = serde_json::to_string_pretty(report)?;
    std::fs::write(&json, text + "\n").with_context(|| format!("writing {}", json.display()))?;
    let hgrm_path = dir.join("latency.hgrm");
    std::fs::write(&hgrm_path, hgrm(hist))
        .with_context(|| format!("writing {}", hgrm_path.display()))?;
    let svg = dir.join("latency.svg");
    std::fs::write(&svg, crate::svg::render(report, hist))
        .with_context(|| format!("writing {}", svg.display()))?;
    Ok(Written {
        dir: dir.to_owned(),
        json,
        hgrm: hgrm_path,
        svg,
    })
}

/// Reads a `report.json`.
pub fn read(path: &Path) -> anyhow::Result<Report> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// Side-by-side percentiles of two reports, with differences (B − A).
pub fn compare(a: &Report, b: &Report) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "A: {} ({}, {:.0}/s)   B: {} ({}, {:.0}/s)",
        a.scenario, a.mode, a.achieved_rate, b.scenario, b.mode, b.achieved_rate
    );
    let _ = writeln!(
        o,
        "{:<10} {:>12} {:>12} {:>12} {:>9}",
        "ms", "A", "B", "B-A", "change"
    );
    for ((name, va), (_, vb)) in a.latency_ms.rows().into_iter().zip(b.latency_ms.rows()) {
        let pct = if va > 0.0 {
            format!("{:+.1}%", (vb - va) / va * 100.0)
        } else {
            "-".to_owned()
        };
        let _ = writeln!(
            o,
            "{name:<10} {va:>12.3} {vb:>12.3} {:>+12.3} {pct:>9}",
            vb - va
        );
    }
    let rows = [
        ("sent", a.sent as f64, b.sent as f64),
        ("rate/s", a.achieved_rate, b.achieved_rate),
        ("200", a.status.ok_200 as f64, b.status.ok_200 as f64),
        (
            "204",
            a.status.no_bid_204 as f64,
            b.status.no_bid_204 as f64,
        ),
        ("503", a.status.shed_503 as f64, b.status.shed_503 as f64),
        (
            "timeout",
            a.status.timeouts as f64,
            b.status.timeouts as f64,
        ),
        ("error", a.status.errors as f64, b.status.errors as f64),
    ];
    for (name, va, vb) in rows {
        let _ = writeln!(o, "{name:<10} {va:>12.1} {vb:>12.1} {:>+12.1}", vb - va);
    }
    let cpu = |r: &Report| {
        r.exchange_cpu_us_per_auction
            .map_or("n/a".to_owned(), |v| format!("{v:.1}"))
    };
    let _ = writeln!(o, "{:<10} {:>12} {:>12}", "cpu µs/auc", cpu(a), cpu(b));
    o
}

/// `<scenario>-<UTC yyyymmdd-hhmmss>` for a Unix time.
pub fn run_dir_name(scenario: &str, unix_s: u64) -> String {
    let secs = unix_s % 86_400;
    let (y, m, d) = rtb_ledger::store::civil_from_days((unix_s / 86_400) as i64);
    let safe: String = scenario
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!(
        "{safe}-{y:04}{m:02}{d:02}-{:02}{:02}{:02}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dir_names_carry_a_utc_timestamp() {
        assert_eq!(run_dir_name("quickstart", 0), "quickstart-19700101-000000");
        assert_eq!(run_dir_name("a b", 1_709_251_199), "a_b-20240229-235959");
    }
}
