//! Overload detection by scheduling lag: shed before deadlines are missed.
//!
//! The concurrency limit alone does not see a starved CPU: when the machine
//! cannot keep up, every auction just takes longer and few are "in flight" at
//! once, yet each overruns its deadline because timers and tasks run late. A
//! probe task on the exchange's own runtime sleeps a short interval again and
//! again and measures how late it wakes; that lateness is what every auction
//! task suffers too. While the smoothed lateness is above the threshold, new
//! auctions are refused with 503 at once, which gives the CPU back to the
//! auctions already accepted. The hot path reads one atomic flag.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::time::Instant;

/// How often the probe wakes: often enough to react within a few tens of
/// milliseconds, rarely enough to cost nothing measurable.
const PROBE_INTERVAL: Duration = Duration::from_millis(5);
/// Weight of the newest sample in the moving average (1/4): one late wake-up
/// (a page fault, a preempted core) does not trip the detector, a sustained
/// backlog does within a handful of probes.
const EWMA_SHIFT: u32 = 2;
/// The recent-peak lateness loses 1/64 of itself per probe (a half-life of
/// about 44 probes, a fifth of a second): timers are assumed to run as late
/// as they did in the last few hundred milliseconds.
const PEAK_DECAY_SHIFT: u32 = 6;
/// Timer slack never exceeds this: past it the CPU is so starved that
/// shedding, not earlier timers, must save the deadline.
const MAX_SLACK: Duration = Duration::from_millis(50);

/// Shared state of the probe.
#[derive(Debug)]
pub struct Overload {
    threshold: Duration,
    /// Smoothed lateness of the probe, in microseconds.
    lag_us: AtomicU64,
    /// Recent peak lateness, decaying (microseconds): how late a timer set
    /// now may fire.
    peak_us: AtomicU64,
    /// Set while the smoothed lateness is above the threshold.
    shedding: AtomicBool,
}

impl Overload {
    /// A detector shedding above `threshold` of smoothed lag; zero disables it.
    /// Starts the probe on the current runtime; it stops when the detector is dropped.
    pub fn spawn(threshold: Duration) -> Arc<Self> {
        Self::spawn_on(threshold, &tokio::runtime::Handle::current())
    }

    /// [`Overload::spawn`] measuring the runtime of `handle`.
    pub fn spawn_on(threshold: Duration, handle: &tokio::runtime::Handle) -> Arc<Self> {
        let this = Arc::new(Self {
            threshold,
            lag_us: AtomicU64::new(0),
            peak_us: AtomicU64::new(0),
            shedding: AtomicBool::new(false),
        });
        if !threshold.is_zero() {
            handle.spawn(probe(Arc::downgrade(&this)));
        }
        this
    }

    /// True while new auctions should be refused.
    pub fn shedding(&self) -> bool {
        self.shedding.load(Ordering::Relaxed)
    }

    /// The smoothed scheduling lag.
    pub fn lag(&self) -> Duration {
        Duration::from_micros(self.lag_us.load(Ordering::Relaxed))
    }

    /// How much earlier than the deadline a timer must be set to fire by
    /// it: the recent peak lateness (at most [`MAX_SLACK`]). Zero while the
    /// detector is off.
    pub fn timer_slack(&self) -> Duration {
        Duration::from_micros(self.peak_us.load(Ordering::Relaxed)).min(MAX_SLACK)
    }

    /// Folds one lateness sample into the average and updates the flag.
    fn observe(&self, late: Duration) {
        let sample = late.as_micros() as u64;
        let peak = self.peak_us.load(Ordering::Relaxed);
        let peak = (peak - (peak >> PEAK_DECAY_SHIFT)).max(sample);
        self.peak_us.store(peak, Ordering::Relaxed);
        let old = self.lag_us.load(Ordering::Relaxed);
        // new = old + (sample - old) / 4, in integers.
        let new = old - (old >> EWMA_SHIFT) + (sample >> EWMA_SHIFT);
        self.lag_us.store(new, Ordering::Relaxed);
        let over = Duration::from_micros(new) > self.threshold;
        if over != self.shedding.swap(over, Ordering::Relaxed) {
            if over {
                tracing::warn!(
                    lag_ms = new / 1000,
                    "scheduling lag above threshold: shedding new auctions"
                );
            } else {
                tracing::info!(
                    lag_ms = new / 1000,
                    "scheduling lag back under threshold: accepting auctions"
                );
            }
        }
    }
}

async fn probe(weak: Weak<Overload>) {
    loop {
        let before = Instant::now();
        tokio::time::sleep(PROBE_INTERVAL).await;
        let late = before.elapsed().saturating_sub(PROBE_INTERVAL);
        let Some(this) = weak.upgrade() else { return };
        this.observe(late);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sustained_lag_trips_and_recovers_single_spikes_do_not() {
        let o = Overload {
            threshold: Duration::from_millis(20),
            lag_us: AtomicU64::new(0),
            peak_us: AtomicU64::new(0),
            shedding: AtomicBool::new(false),
        };
        o.observe(Duration::from_millis(60));
        assert!(!o.shedding(), "one spike: {:?}", o.lag());
        for _ in 0..5 {
            o.observe(Duration::from_millis(60));
        }
        assert!(o.shedding(), "sustained: {:?}", o.lag());
        // Timers are expected to run as late as the recent peak.
        assert_eq!(o.timer_slack(), Duration::from_millis(50));
        for _ in 0..20 {
            o.observe(Duration::ZERO);
        }
        assert!(!o.shedding(), "recovered: {:?}", o.lag());
        let slack = o.timer_slack();
        assert!(
            slack > Duration::from_millis(10) && slack < Duration::from_millis(50),
            "{slack:?}"
        );
        for _ in 0..400 {
            o.observe(Duration::ZERO);
        }
        assert!(
            o.timer_slack() < Duration::from_millis(1),
            "{:?}",
            o.timer_slack()
        );
    }

    /// A runtime whose only worker is blocked makes the probe late: the
    /// detector trips on real scheduling lag, then recovers.
    #[tokio::test(flavor = "current_thread")]
    async fn a_blocked_runtime_is_detected() {
        let o = Overload::spawn(Duration::from_millis(10));
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!o.shedding());
        for _ in 0..8 {
            // Hog the only thread, as a CPU-starved exchange would be.
            std::thread::sleep(Duration::from_millis(40));
            tokio::task::yield_now().await;
        }
        assert!(o.shedding(), "lag {:?}", o.lag());
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!o.shedding(), "lag {:?}", o.lag());
    }
}

/// The adaptive admission limit: how many auctions may be in flight, set
/// from how they finish. The fixed `server.max_in_flight` is only its
/// ceiling: past saturation a fixed limit lets in more auctions than the
/// CPU can finish by their deadlines, and the scheduling-lag detector sees
/// it only once every accepted auction already runs late. So each auction
/// reports whether it answered in time (before its deadline less half the
/// response margin): a late one cuts the limit by a quarter (at most once
/// per [`CUT_EVERY`], so one burst of late answers is one cut), and answers
/// in time raise it by one per eighth of the limit. The auction slots are
/// the permits of one semaphore whose size follows the limit (a cut that
/// finds permits in use takes them as they come back), so admission stays
/// one `try_acquire` in tower's concurrency layer, refused at once by the
/// shedding layer.
///
/// Late answers are a late signal: by the time one comes in, every auction
/// admitted with it has run late too. The earlier one is the auction
/// runtime's queue ([`Capacity::started`]): each admitted auction reports
/// how long it waited for a worker, and when the longest wait of a
/// [`QUEUE_WINDOW`] is above `server.max_queue_delay_ms`, the limit is cut
/// the same way, and it does not grow again until a window passes with no
/// wait above it. The longest wait, not CoDel's shortest: an auction that
/// waits for a worker also wakes late from its fan-out timer, and what must
/// hold is every auction's deadline, so one burst that delays a few of them
/// is already the harm (measured: with the shortest wait as the test, bursts
/// of 15-20 ms waits went on at 2-5 ms shortest waits).
#[derive(Debug)]
pub struct Capacity {
    slots: Arc<Semaphore>,
    max: usize,
    /// Longest wait for a worker a window may see without a cut
    /// (`server.max_queue_delay_ms`); zero disables the queue signal.
    queue_target: Duration,
    state: std::sync::Mutex<CapacityState>,
    gauge: prometheus_client::metrics::gauge::Gauge,
}

#[derive(Debug)]
struct CapacityState {
    limit: usize,
    /// Permits to take out of the semaphore as they are returned.
    debt: usize,
    /// Answers in time since the last raise.
    credit: usize,
    last_cut: Option<Instant>,
    /// Start of the queue signal's current window.
    window_start: Option<Instant>,
    /// Longest queue wait in the current window.
    window_max: Duration,
    /// The last window closed with a wait above the target: no growth
    /// until one closes without.
    hold_growth: bool,
}

/// The fewest auctions the limit lets in: with a bidder that hangs, each
/// auction lasts its whole tmax, and the limit must still pass a useful
/// rate (16 per 100 ms).
const MIN_LIMIT: usize = 16;
/// Where the limit starts (at most `server.max_in_flight`): about the
/// auctions in flight at 2,500/s with every auction lasting 100 ms; it
/// grows from there within seconds when answers are in time.
const START_LIMIT: usize = 256;
/// One cut per burst of late answers: the auctions that were already in
/// flight when the first one came in late finish late too.
const CUT_EVERY: Duration = Duration::from_millis(20);
/// The queue signal's window: at most one cut per window, and a tmax of
/// about 100 ms sees two windows, so a queue is cut within one auction.
pub const QUEUE_WINDOW: Duration = Duration::from_millis(50);

impl Capacity {
    /// A limit of at most `max` (`server.max_in_flight`), shown on `gauge`,
    /// cut also when an admitted auction waited longer than `queue_target`
    /// for a worker (`server.max_queue_delay_ms`; zero: never).
    pub fn new(
        max: usize,
        queue_target: Duration,
        gauge: prometheus_client::metrics::gauge::Gauge,
    ) -> Arc<Self> {
        let start = START_LIMIT.min(max);
        gauge.set(start as i64);
        Arc::new(Self {
            slots: Arc::new(Semaphore::new(start)),
            max,
            queue_target,
            state: std::sync::Mutex::new(CapacityState {
                limit: start,
                debt: 0,
                credit: 0,
                last_cut: None,
                window_start: None,
                window_max: Duration::ZERO,
                hold_growth: false,
            }),
            gauge,
        })
    }

    /// The auction slots (for tower's concurrency layer).
    pub fn slots(&self) -> &Arc<Semaphore> {
        &self.slots
    }

    fn state(&self) -> std::sync::MutexGuard<'_, CapacityState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The limit now.
    pub fn limit(&self) -> usize {
        self.state().limit
    }

    /// Auctions holding a slot now.
    pub fn in_flight(&self) -> usize {
        let s = self.state();
        (s.limit + s.debt).saturating_sub(self.slots.available_permits())
    }

    /// One auction finished: `late` when it answered after its deadline
    /// less half the response margin.
    pub fn report(&self, late: bool) {
        let mut s = self.state();
        if late {
            if !self.cut(&mut s, Instant::now()) {
                return;
            }
        } else if s.limit < self.max && !s.hold_growth {
            s.credit += 1;
            if s.credit >= (s.limit / 8).max(1) {
                s.credit = 0;
                s.limit += 1;
                if s.debt > 0 {
                    s.debt -= 1;
                } else {
                    self.slots.add_permits(1);
                }
            }
        }
        self.settle(&mut s);
    }

    /// An admitted auction started running after waiting `queued` for a
    /// worker. Closes the queue signal's window when it is over: a window
    /// whose longest wait (this one included) was above the target cuts
    /// the limit.
    pub fn started(&self, queued: Duration) {
        if self.queue_target.is_zero() {
            return;
        }
        let now = Instant::now();
        let mut s = self.state();
        s.window_max = s.window_max.max(queued);
        match s.window_start {
            Some(t) if now.duration_since(t) < QUEUE_WINDOW => return,
            Some(_) => {
                s.hold_growth = s.window_max > self.queue_target;
                if s.hold_growth {
                    self.cut(&mut s, now);
                }
                s.window_max = Duration::ZERO;
            }
            None => {}
        }
        s.window_start = Some(now);
        self.settle(&mut s);
    }

    /// Cuts the limit by a quarter, unless it was cut less than
    /// [`CUT_EVERY`] ago; true when it was cut.
    fn cut(&self, s: &mut CapacityState, now: Instant) -> bool {
        if s.last_cut
            .is_some_and(|t| now.duration_since(t) < CUT_EVERY)
        {
            return false;
        }
        s.last_cut = Some(now);
        let new = (s.limit * 3 / 4).max(MIN_LIMIT.min(self.max));
        s.debt += s.limit - new;
        s.limit = new;
        s.credit = 0;
        true
    }

    /// Permits returned since the last call pay the debt; the gauge shows
    /// the limit.
    fn settle(&self, s: &mut CapacityState) {
        let paid = self.slots.forget_permits(s.debt);
        s.debt -= paid;
        self.gauge.set(s.limit as i64);
    }
}

#[cfg(test)]
mod capacity_tests {
    use super::*;

    #[tokio::test]
    async fn late_answers_cut_the_limit_and_answers_in_time_raise_it() {
        let c = Capacity::new(1000, Duration::ZERO, Default::default());
        assert_eq!(c.limit(), 256);
        let held: Vec<_> = (0..200)
            .map(|_| c.slots().clone().try_acquire_owned().unwrap())
            .collect();
        c.report(true);
        assert_eq!(c.limit(), 192);
        // 56 were free and are gone; 8 more go as held ones come back.
        assert_eq!(c.slots().available_permits(), 0);
        c.report(true);
        assert_eq!(c.limit(), 192, "one cut per burst");
        drop(held);
        c.report(false);
        assert_eq!(c.slots().available_permits(), 192);
        assert_eq!(c.in_flight(), 0);
        for _ in 0..24 {
            c.report(false);
        }
        assert_eq!(c.limit(), 193);
        assert_eq!(c.slots().available_permits(), 193);
        tokio::time::sleep(CUT_EVERY).await;
        c.report(true);
        assert_eq!(c.limit(), 144);
    }

    /// A window in which one admitted auction waited longer than the
    /// target for a worker cuts the limit and holds its growth; a window of
    /// short waits does not.
    #[test]
    fn a_long_wait_for_a_worker_cuts_the_limit() {
        let ms = Duration::from_millis;
        let c = Capacity::new(1000, ms(5), Default::default());
        let window = |waits: &[u64]| {
            for &w in waits {
                c.started(ms(w));
            }
        };
        // Waits up to the target: no cut.
        window(&[0, 5, 1, 0]);
        std::thread::sleep(QUEUE_WINDOW);
        window(&[1]);
        assert_eq!(c.limit(), 256, "waits within the target");
        // One wait of the window above 5 ms: cut when the window closes.
        window(&[0, 9, 1]);
        assert_eq!(c.limit(), 256, "cut only when the window closes");
        std::thread::sleep(QUEUE_WINDOW);
        window(&[0]);
        assert_eq!(c.limit(), 192);
        // Until a window closes with no long wait, answers in time do not raise it.
        for _ in 0..100 {
            c.report(false);
        }
        assert_eq!(c.limit(), 192);
        // A window with no long wait lets it grow again.
        window(&[0]);
        std::thread::sleep(QUEUE_WINDOW);
        window(&[0]);
        for _ in 0..24 {
            c.report(false);
        }
        assert_eq!(c.limit(), 193);
        assert_eq!(c.slots().available_permits(), 193);
        // Off: no cut, whatever the waits.
        let off = Capacity::new(1000, Duration::ZERO, Default::default());
        for _ in 0..10 {
            off.started(ms(50));
            std::thread::sleep(QUEUE_WINDOW);
        }
        assert_eq!(off.limit(), 256);
    }

    #[test]
    fn the_limit_stays_between_its_floor_and_the_ceiling() {
        let c = Capacity::new(20, Duration::ZERO, Default::default());
        assert_eq!(c.limit(), 20);
        for _ in 0..100 {
            c.report(false);
        }
        assert_eq!(c.limit(), 20);
        assert_eq!(c.slots().available_permits(), 20);
        for _ in 0..10 {
            c.state().last_cut = None;
            c.report(true);
        }
        assert_eq!(c.limit(), 16);
        assert_eq!(c.slots().available_permits(), 16);
    }
}
