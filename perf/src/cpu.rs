//! CPU time of the in-process exchange, read from `/proc/self/task/*/stat`
//! for threads whose name starts with `rtb-exchange` (the dedicated runtime
//! names its workers so), to report exchange CPU per auction.

use std::path::Path;
use std::time::Duration;

/// Thread-name prefix of the exchange's dedicated runtime.
pub const EXCHANGE_THREAD_PREFIX: &str = "rtb-exchange";

/// Clock ticks per second of `/proc` CPU times. `sysconf(_SC_CLK_TCK)` needs
/// unsafe FFI, which the project forbids, so `getconf CLK_TCK` is asked once
/// and Linux's almost universal 100 is assumed when that fails.
pub fn clock_ticks_per_second() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<u64>().ok())
        .filter(|&t| t > 0)
        .unwrap_or(100)
}

/// Parses one `stat` line into `(comm, utime + stime in ticks)`.
pub fn parse_stat(line: &str) -> Option<(String, u64)> {
    // comm sits in parentheses and may itself contain spaces or ')', so split
    // at the last ')'.
    let open = line.find('(')?;
    let close = line.rfind(')')?;
    let comm = line.get(open + 1..close)?.to_owned();
    let rest: Vec<&str> = line.get(close + 1..)?.split_whitespace().collect();
    // After comm: state is field 3, utime field 14 and stime field 15 (1-based).
    let utime: u64 = rest.get(11)?.parse().ok()?;
    let stime: u64 = rest.get(12)?.parse().ok()?;
    Some((comm, utime + stime))
}

/// Sum of user + system CPU time of this process's threads whose name starts
/// with `prefix`; `None` where `/proc` cannot be read (not Linux).
pub fn threads_cpu(prefix: &str) -> Option<Duration> {
    threads_cpu_in(
        Path::new("/proc/self/task"),
        prefix,
        clock_ticks_per_second(),
    )
}

fn threads_cpu_in(tasks: &Path, prefix: &str, ticks_per_s: u64) -> Option<Duration> {
    let mut ticks = 0u64;
    for entry in std::fs::read_dir(tasks).ok()?.flatten() {
        // Threads can end between listing and reading; skip those.
        let Ok(line) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        if let Some((comm, t)) = parse_stat(&line) {
            if comm.starts_with(prefix) {
                ticks += t;
            }
        }
    }
    Some(Duration::from_secs_f64(ticks as f64 / ticks_per_s as f64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_stat_line_with_odd_comm() {
        let line =
            "1234 (rtb-exchange) x) S 1 1234 1234 0 -1 4194368 100 0 0 0 37 5 0 0 20 0 4 0 100 0 0";
        assert_eq!(parse_stat(line), Some(("rtb-exchange) x".to_owned(), 42)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn counts_named_threads_of_this_process() {
        if !Path::new("/proc/self/task").exists() {
            return;
        }
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let t = std::thread::Builder::new()
            .name("rtb-exchange-t".into())
            .spawn(move || {
                let mut x = 0u64;
                while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                    x = x.wrapping_mul(31).wrapping_add(1);
                    std::hint::black_box(x);
                }
            })
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let mut seen = Duration::ZERO;
        while seen.is_zero() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
            seen = threads_cpu("rtb-exchange").unwrap();
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        t.join().unwrap();
        assert!(seen > Duration::ZERO);
        assert_eq!(threads_cpu("no-such-thread-name"), Some(Duration::ZERO));
    }
}
