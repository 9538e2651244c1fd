//! Refusal pacing: past saturation, how fast the exchange says "no".
//!
//! A refused request costs little (≈ 30 µs of CPU here, mostly HTTP/2
//! framing), but a closed-loop client sends the next one as soon as the 503
//! arrives, so past saturation refusals multiply until they take the CPU
//! the admitted auctions need to be answered in time: their answers wait on
//! the connection runtime behind the refusals. So refusals are paced across
//! every connection (a GCRA over one atomic): each refusal takes the next
//! `1 / server.max_refusals_per_sec` slot, and a connection that was
//! refused is not *read* again until its slot comes (writes go on, so
//! answers already made still leave at once). What the client sends
//! meanwhile waits in its socket: backpressure, not a queue of ours, and
//! the deadline of a request still runs from when its headers are read.
//! Within the burst tolerance nothing is paced, so an isolated refusal
//! never delays a connection.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use crate::config::ServerConfig;

/// Refusals this far ahead of their schedule are not paced: a burst of this
/// many seconds' worth of refusals passes at once.
const BURST: Duration = Duration::from_millis(10);
/// No connection is paused longer than this, however far the schedule has
/// run ahead: well under every protocol timeout (HTTP/1.1 header read 5 s,
/// HTTP/2 ping answer 10 s by default), so a paused peer is never taken for
/// a dead one.
const MAX_PAUSE: Duration = Duration::from_millis(250);
/// Refusals per second and CPU core when `server.max_refusals_per_sec` is 0:
/// at ≈ 30 µs each, about an eighth of a core.
const AUTO_REFUSALS_PER_CORE: u64 = 4_000;

/// The shared schedule of refusals.
#[derive(Debug)]
pub(super) struct Pacer {
    /// Nanoseconds between two refusals; 0 = pacing off.
    interval_ns: u64,
    /// The theoretical arrival time of the next refusal, in nanoseconds
    /// since `base`.
    next_ns: AtomicU64,
    base: Instant,
}

impl Pacer {
    /// From `server.pace_refusals` and `server.max_refusals_per_sec`.
    pub(super) fn from_config(s: &ServerConfig) -> Self {
        Self::new(s.pace_refusals.then(|| match s.max_refusals_per_sec {
            0 => {
                let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
                AUTO_REFUSALS_PER_CORE * cores as u64
            }
            n => n,
        }))
    }

    /// A pacer for `per_sec` refusals a second; `None` = pacing off.
    fn new(per_sec: Option<u64>) -> Self {
        let interval_ns = match per_sec {
            Some(r) if r > 0 => 1_000_000_000 / r.min(1_000_000_000),
            _ => 0,
        };
        Self {
            interval_ns,
            next_ns: AtomicU64::new(0),
            base: Instant::now(),
        }
    }

    /// Takes a slot for one refusal; returns until when its connection must
    /// not be read (as [`Pause`]'s encoding), 0 when it need not wait.
    fn refused(&self) -> u64 {
        if self.interval_ns == 0 {
            return 0;
        }
        let now = self.now_ns();
        let cap = now + MAX_PAUSE.as_nanos() as u64;
        let step = |t: u64| t.max(now).saturating_add(self.interval_ns).min(cap);
        let prev = self
            .next_ns
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| Some(step(t)))
            .unwrap_or_else(|t| t);
        let until = step(prev).saturating_sub(BURST.as_nanos() as u64);
        if until > now {
            until
        } else {
            0
        }
    }

    fn now_ns(&self) -> u64 {
        self.base.elapsed().as_nanos() as u64
    }

    fn instant(&self, ns: u64) -> Instant {
        self.base + Duration::from_nanos(ns)
    }
}

/// One connection's pause, set by its service, kept by its reader.
#[derive(Debug)]
pub(super) struct Pause {
    pacer: Arc<Pacer>,
    /// `rtb_refusals_paced_total`.
    paced: Counter,
    /// Not read before this (nanoseconds since the pacer's base); 0 = read.
    until_ns: AtomicU64,
}

impl Pause {
    /// A connection's pause under `pacer`, counting pauses on `paced`.
    pub(super) fn new(pacer: Arc<Pacer>, paced: Counter) -> Self {
        Self {
            pacer,
            paced,
            until_ns: AtomicU64::new(0),
        }
    }

    /// Called when a request of this connection was refused: past the
    /// burst, the connection waits its turn before it is read again.
    pub(super) fn refused(&self) {
        let until = self.pacer.refused();
        if until != 0 {
            self.until_ns.fetch_max(until, Ordering::Relaxed);
            self.paced.inc();
        }
    }
}

/// A connection's socket whose reads wait out its [`Pause`].
pub(super) struct Paced<T> {
    inner: T,
    pause: Arc<Pause>,
    /// The timer of the current pause, made on the first pause only.
    sleep: Option<Pin<Box<Sleep>>>,
}

impl<T> Paced<T> {
    /// Wraps `inner`.
    pub(super) fn new(inner: T, pause: Arc<Pause>) -> Self {
        Self {
            inner,
            pause,
            sleep: None,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Paced<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        // The common case, not paused: one relaxed load.
        let until = this.pause.until_ns.load(Ordering::Relaxed);
        if until != 0 {
            let pacer = &this.pause.pacer;
            if pacer.now_ns() < until {
                let at = pacer.instant(until);
                let sleep = this
                    .sleep
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)));
                if sleep.deadline() != at {
                    sleep.as_mut().reset(at);
                }
                if sleep.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
            }
            // Served; a refusal since the load keeps its own later pause.
            let _ = this.pause.until_ns.compare_exchange(
                until,
                0,
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Paced<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_within_the_burst_are_not_paced_then_each_waits_its_slot() {
        // 1,000 a second: a slot every millisecond, 10 free in a burst.
        let pacer = Pacer::new(Some(1_000));
        let pauses: Vec<u64> = (0..30).map(|_| pacer.refused()).collect();
        assert!(pauses[..9].iter().all(|&p| p == 0), "{pauses:?}");
        let paced: Vec<u64> = pauses.iter().copied().filter(|&p| p != 0).collect();
        assert!(paced.len() >= 20, "{pauses:?}");
        // Each paced refusal waits about one slot longer than the last.
        for w in paced.windows(2) {
            let step = w[1] - w[0];
            assert!(
                (900_000..=1_100_000).contains(&step),
                "{step} ns between slots"
            );
        }
    }

    #[test]
    fn no_pause_is_longer_than_the_cap_and_off_means_never() {
        let pacer = Pacer::new(Some(10));
        let last = (0..1_000).map(|_| pacer.refused()).max().unwrap();
        let now = pacer.now_ns();
        assert!(last <= now + MAX_PAUSE.as_nanos() as u64, "{last} vs {now}");
        let off = Pacer::new(None);
        assert!((0..1_000).all(|_| off.refused() == 0));
    }
}
