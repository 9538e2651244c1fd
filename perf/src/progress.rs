//! The progress bar shown while a run goes on (hidden when stdout is not a
//! terminal, so logs and CI output stay clean).

use std::io::IsTerminal as _;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::load::Live;

/// Shows `live` against the planned request count until the returned guard is
/// finished.
pub fn start(live: Arc<Live>, planned: u64) -> Progress {
    let bar = ProgressBar::with_draw_target(Some(planned.max(1)), ProgressDrawTarget::hidden());
    if std::io::stdout().is_terminal() {
        bar.set_draw_target(ProgressDrawTarget::stdout());
    }
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:40}] {pos}/{len} sent  {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let b = bar.clone();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stop.clone();
    // A plain thread: the display must not compete with the load for the
    // runtime's workers, and it only wakes 5 times a second.
    let thread = std::thread::Builder::new()
        .name("rtb-perf-progress".into())
        .spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                let sent = live.sent.load(Ordering::Relaxed);
                let done = live.done.load(Ordering::Relaxed);
                let failed = live.failed.load(Ordering::Relaxed);
                b.set_position(sent);
                b.set_message(format!(
                    "{done} done, {} in flight, {failed} not 200/204",
                    sent.saturating_sub(done)
                ));
                std::thread::sleep(Duration::from_millis(200));
            }
        })
        .ok();
    Progress { bar, stop, thread }
}

/// A running progress display.
#[derive(Debug)]
pub struct Progress {
    bar: ProgressBar,
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Progress {
    /// Stops and clears the bar.
    pub fn finish(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.bar.finish_and_clear();
    }
}
